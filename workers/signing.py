"""Standard Webhooks signatures: ``v1,<base64 HMAC-SHA256("id.timestamp.body")>``."""

import base64
import hashlib
import hmac


def sign(secret, msg_id, timestamp, body):
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()

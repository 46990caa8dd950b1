"""Standard Webhooks v1: the secrets, and the headers that sign an outbound request with them.

A signature is ``v1,<base64 HMAC-SHA256("id.timestamp.body")>`` keyed with the secret's bytes
(``whsec_<base64>``). After a rotation the previous secret signs too, until its grace period
ends: ``webhook-signature`` then holds both, space-separated, as the spec allows, and a
receiver that knows either secret verifies the request. Deliveries and operational
notifications are signed here and nowhere else.
"""

import base64
import hashlib
import hmac
import secrets
import time

PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64 random bytes


def new_secret():
    """A fresh signing secret, as Standard Webhooks writes one."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret, msg_id, timestamp, body):
    key = base64.b64decode(secret.removeprefix(PREFIX))
    content = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def active_secrets(box, row, now):
    """The plain secrets that sign for ``row``'s group at ``now``: the current one, and the
    previous one while its grace period lasts. ``row`` has signing_secret_enc,
    previous_signing_secret_enc and previous_signing_until."""
    found = [box.decrypt(row.signing_secret_enc)] if row.signing_secret_enc else []
    if row.previous_signing_secret_enc and row.previous_signing_until and row.previous_signing_until > now:
        found.append(box.decrypt(row.previous_signing_secret_enc))
    return found


def headers(msg_id, body, signing_secrets, timestamp=None):
    """webhook-id, webhook-timestamp and (with any secret) webhook-signature for one request."""
    timestamp = str(int(time.time())) if timestamp is None else str(timestamp)
    signed = {"webhook-id": msg_id, "webhook-timestamp": timestamp}
    if signing_secrets:
        signed["webhook-signature"] = " ".join(sign(s, msg_id, timestamp, body) for s in signing_secrets)
    return signed

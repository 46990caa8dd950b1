"""workers.signing against the Standard Webhooks reference package from PyPI (not our code)."""

import datetime
import types

import pytest
from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from workers import signing

NOW = datetime.datetime(2030, 1, 1, 12, 0, 0)


class PlainBox:
    """Secrets "encrypted" as themselves: these tests are about which secrets sign."""

    def decrypt(self, text):
        return text


def group(current, previous=None, until=None):
    return types.SimpleNamespace(signing_secret_enc=current, previous_signing_secret_enc=previous,
                                 previous_signing_until=until)


def test_a_new_secret_is_whsec_and_32_random_bytes_the_reference_package_accepts():
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert secret != signing.new_secret()
    body = b'{"id":1}'
    Webhook(secret).verify(body, signing.headers("msg_1", body, [secret]))


def test_during_a_grace_period_either_secret_verifies():
    old, new = signing.new_secret(), signing.new_secret()
    secrets = signing.active_secrets(PlainBox(), group(new, old, NOW + datetime.timedelta(hours=1)), NOW)
    assert secrets == [new, old]
    body = b'{"id":2}'
    headers = signing.headers("msg_2", body, secrets)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(body, headers) == {"id": 2}


def test_after_the_grace_period_only_the_new_secret_signs():
    old, new = signing.new_secret(), signing.new_secret()
    secrets = signing.active_secrets(PlainBox(), group(new, old, NOW), NOW)
    assert secrets == [new]
    body = b'{"id":3}'
    headers = signing.headers("msg_3", body, secrets)
    Webhook(new).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, headers)


def test_no_secret_no_signature_header():
    assert "webhook-signature" not in signing.headers("msg_4", b"{}", signing.active_secrets(PlainBox(), group(None), NOW))


def test_a_tampered_body_fails_verification():
    secret = signing.new_secret()
    headers = signing.headers("msg_5", b'{"id":5}', [secret])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"id":6}', headers)

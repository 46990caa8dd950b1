"""Secrets: random credentials, their hashes, and encryption of receiver secrets at rest."""

import functools
import hashlib
import hmac
import logging
import os
import secrets

from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken
from cryptography.fernet import MultiFernet

log = logging.getLogger(__name__)

MASK = "********"


def new_secret(prefix=""):
    """A random 256-bit credential, URL-safe."""
    return prefix + secrets.token_urlsafe(32)


def digest(value):
    """SHA-256 hex of a high-entropy credential; what the database keeps instead of it."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def same(a, b):
    """Constant-time comparison of text or bytes (hmac refuses non-ASCII text)."""
    def raw(value):
        return value.encode("utf-8") if isinstance(value, str) else value
    return hmac.compare_digest(raw(a), raw(b))


def _key_file_keys(data_dir):
    path = data_dir / "secret.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(Fernet.generate_key().decode() + "\n")
        log.warning("generated a new secret key in %s; set DOO_WEBHOOKS_SECRET_KEYS in production", path)
    return tuple(line.strip() for line in path.read_text().splitlines() if line.strip())


@functools.lru_cache(maxsize=8)
def _fernet(keys):
    return MultiFernet([Fernet(key.encode() if isinstance(key, str) else key) for key in keys])


class SecretBox:
    """Encrypts with the newest key, decrypts with any; ``rotate`` re-encrypts under the newest."""

    def __init__(self, settings):
        keys = settings.secret_keys or _key_file_keys(settings.data_dir)
        try:
            self._fernet = _fernet(tuple(keys))
        except ValueError as exc:
            raise ValueError(f"DOO_WEBHOOKS_SECRET_KEYS holds an invalid Fernet key: {exc}") from None
        # A worker decrypts a group's secrets for every attempt: an AES and an HMAC each time,
        # for the same few ciphertexts. They are kept decrypted, per box (so per key set).
        self._plain = functools.lru_cache(maxsize=4096)(self._decrypt)

    def encrypt(self, plaintext):
        if plaintext is None:
            return None
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token):
        return None if token is None else self._plain(token)

    def _decrypt(self, token):
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise ValueError("a stored secret cannot be decrypted with DOO_WEBHOOKS_SECRET_KEYS") from None

    def rotate(self, token):
        return self._fernet.rotate(token.encode("ascii")).decode("ascii")

"""Secrets at rest: values the service must read back (webhook signing secrets) are stored
encrypted with Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) under keys that live
outside the database: `RETENTION_SECRET_KEY`, or the key file `retention run` makes.

Several keys, comma-separated and newest first, allow rotating the key: the first encrypts,
every one decrypts, and `retention secrets reencrypt` moves stored values to the first."""

import binascii
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from services.core.config import Settings

KEY_FILE = "secret.key"
ENV_NAME = "RETENTION_SECRET_KEY"


class MissingSecretKey(RuntimeError):
    """No key is configured: the process cannot read or write encrypted secrets."""


class UndecryptableSecret(ValueError):
    """A stored value no configured key opens: it was encrypted under a key since removed."""


class SecretBox:
    """Encrypts with the first key, decrypts with any."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError(f"{ENV_NAME} holds no key")
        fernets = []
        for number, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, binascii.Error):
                raise ValueError(
                    f"key {number} of {ENV_NAME} is not a Fernet key (32 bytes in url-safe "
                    "base64, as `retention secrets new-key` prints)"
                ) from None
        self._fernet = MultiFernet(fernets)

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise UndecryptableSecret(
                f"a stored secret cannot be decrypted with the keys in {ENV_NAME}"
            ) from None

    def reencrypt(self, token: str) -> str:
        """The same value encrypted under the first key."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise UndecryptableSecret(
                f"a stored secret cannot be decrypted with the keys in {ENV_NAME}"
            ) from None


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")


def parse_keys(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def key_file(settings: Settings) -> Path:
    return settings.data_dir / KEY_FILE


@lru_cache(maxsize=8)
def _box(keys: tuple[str, ...]) -> SecretBox:
    return SecretBox(keys)


def _read_or_create(path: Path, create: bool) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        if not create:
            raise MissingSecretKey(
                f"{ENV_NAME} is not set and {path} does not exist: set {ENV_NAME} to a key "
                "made by `retention secrets new-key` (the same on every API and worker "
                "process)."
            ) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text()
    with os.fdopen(fd, "w") as handle:
        key = new_key()
        handle.write(key + "\n")
    return key


def load_box(settings: Settings, *, create: bool = False) -> SecretBox:
    """The box of `RETENTION_SECRET_KEY`, else of `<data_dir>/secret.key`, which is made
    (mode 0600) only when `create` is set. Raises MissingSecretKey or ValueError."""
    if settings.secret_key is not None:
        value = settings.secret_key.get_secret_value()
    else:
        value = _read_or_create(key_file(settings), create)
    return _box(tuple(parse_keys(value)))

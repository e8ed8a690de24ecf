"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

A message is signed as `v1,` + base64(HMAC-SHA256(key, b"{id}.{timestamp}." + body)), where the
key is the base64-decoded part of a `whsec_…` secret. While a subscription's secret is being
rotated it holds several secrets and the message carries one signature per secret, separated by
spaces, so receivers holding either the old or the new secret accept it.
"""

import base64
import binascii
import hashlib
import hmac
import secrets as random_source
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
KEY_BYTES = 32
SIGNATURE_VERSION = "v1"


def new_secret() -> str:
    """A fresh signing secret: `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(random_source.token_bytes(KEY_BYTES)).decode("ascii")


def _key(secret: str) -> bytes:
    """The HMAC key inside `secret`; padding may be left off, as some providers do."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a webhook secret holds a base64 key after its prefix") from exc
    if not key:
        raise ValueError("a webhook secret's key is empty")
    return key


def sign(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> str:
    """The `webhook-signature` header value: one `v1,<signature>` entry per secret."""
    if not msg_id:
        raise ValueError("a webhook message needs an id")
    if not secrets:
        raise ValueError("a webhook message needs at least one secret")
    signed_content = f"{msg_id}.{timestamp}.".encode() + body
    entries = []
    for secret in secrets:
        digest = hmac.new(_key(secret), signed_content, hashlib.sha256).digest()
        entries.append(f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}")
    return " ".join(entries)


def headers(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    """The headers of a signed delivery. `msg_id` stays the same across retries of a message so
    that receivers can drop duplicates; `timestamp` is the send time in Unix seconds."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(msg_id, timestamp, body, secrets),
        "content-type": "application/json",
    }

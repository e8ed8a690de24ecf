"""Webhook signing secrets at rest: moving every stored one to the newest key."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.crypto import SecretBox
from services.core.models import WebhookEndpoint
from services.core.webhooks.signing import SECRET_PREFIX


def _reencrypt(box: SecretBox, stored: str) -> str:
    """A plaintext secret (stored before encryption) is encrypted; an encrypted one is
    decrypted with whichever key opens it and encrypted again under the first."""
    return box.encrypt(stored) if stored.startswith(SECRET_PREFIX) else box.reencrypt(stored)


async def reencrypt_all(session: AsyncSession, box: SecretBox) -> int:
    """Re-encrypt every endpoint's secrets under the box's first key; returns how many
    endpoints. Raises UndecryptableSecret, changing nothing, when a secret is under a key the
    box lacks. The rows stay locked until the caller commits."""
    endpoints = (
        await session.scalars(
            select(WebhookEndpoint).order_by(WebhookEndpoint.id).with_for_update()
        )
    ).all()
    for endpoint in endpoints:
        endpoint.secret = _reencrypt(box, endpoint.secret)
        if endpoint.previous_secret is not None:
            endpoint.previous_secret = _reencrypt(box, endpoint.previous_secret)
    await session.flush()
    return len(endpoints)

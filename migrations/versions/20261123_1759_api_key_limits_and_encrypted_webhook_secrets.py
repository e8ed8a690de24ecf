"""api key expiry and rate limits, webhook secrets encrypted at rest

API keys gain an optional expiry and an optional per-key rate limit. Webhook signing secrets
(current and rotated-out) are encrypted with the deployment's secret key: the columns widen to
hold Fernet tokens and every plaintext `whsec_…` value is encrypted here. That step needs the
key (RETENTION_SECRET_KEY, or the key file `retention run` makes) only when such rows exist;
the downgrade decrypts them again.

Revision ID: 8c201d37a52f
Revises: 161eeeb3bd08
Create Date: 2026-11-23 17:59:30.351352
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import context, op

from services.core.config import get_settings
from services.core.crypto import SecretBox, load_box

revision: str = '8c201d37a52f'
down_revision: str | None = '161eeeb3bd08'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PLAINTEXT = "starts_with({column}, 'whsec_')"


def _box() -> SecretBox:
    """The key the caller passed (services/core/migrations.py), else the configured one."""
    box = context.config.attributes.get("secret_box")
    return box if isinstance(box, SecretBox) else load_box(get_settings())


def _convert(where: str, change: Callable[[SecretBox, str], str]) -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(f"SELECT id, secret, previous_secret FROM webhook_endpoints WHERE {where}")
    ).all()
    if not rows:
        return
    box = _box()
    for row in rows:
        bind.execute(
            sa.text(
                "UPDATE webhook_endpoints SET secret = :secret, previous_secret = :previous "
                "WHERE id = :id"
            ),
            {
                "id": row.id,
                "secret": change(box, row.secret),
                "previous": None if row.previous_secret is None
                else change(box, row.previous_secret),
            },
        )


def _encrypt(box: SecretBox, value: str) -> str:
    return box.encrypt(value) if value.startswith("whsec_") else value


def _decrypt(box: SecretBox, value: str) -> str:
    return value if value.startswith("whsec_") else box.decrypt(value)


def upgrade() -> None:
    op.add_column('api_keys', sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('api_keys', sa.Column('rate_limit_per_minute', sa.Integer(), nullable=True))
    op.create_check_constraint(
        op.f('ck_api_keys_rate_limit_not_negative'), 'api_keys', 'rate_limit_per_minute >= 0'
    )
    op.alter_column('webhook_endpoints', 'secret',
               existing_type=sa.VARCHAR(length=100),
               type_=sa.Text(),
               existing_nullable=False)
    op.alter_column('webhook_endpoints', 'previous_secret',
               existing_type=sa.VARCHAR(length=100),
               type_=sa.Text(),
               existing_nullable=True)
    _convert(
        f"{PLAINTEXT.format(column='secret')} OR {PLAINTEXT.format(column='previous_secret')}",
        _encrypt,
    )


def downgrade() -> None:
    _convert(
        f"NOT {PLAINTEXT.format(column='secret')} "
        f"OR NOT {PLAINTEXT.format(column='previous_secret')}",
        _decrypt,
    )
    op.alter_column('webhook_endpoints', 'previous_secret',
               existing_type=sa.Text(),
               type_=sa.VARCHAR(length=100),
               existing_nullable=True)
    op.alter_column('webhook_endpoints', 'secret',
               existing_type=sa.Text(),
               type_=sa.VARCHAR(length=100),
               existing_nullable=False)
    op.drop_constraint(op.f('ck_api_keys_rate_limit_not_negative'), 'api_keys', type_='check')
    op.drop_column('api_keys', 'rate_limit_per_minute')
    op.drop_column('api_keys', 'expires_at')

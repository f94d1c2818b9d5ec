"""The request log keeps whether each answer refused (for live refusal-rate gates).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("gateway_requests") as batch:
        batch.add_column(sa.Column("refused", sa.Boolean, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gateway_requests") as batch:
        batch.drop_column("refused")

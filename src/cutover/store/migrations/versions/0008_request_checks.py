"""The request log keeps which output checks each answer failed (for live invalid-output gates).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("gateway_requests") as batch:
        batch.add_column(sa.Column("checks", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gateway_requests") as batch:
        batch.drop_column("checks")

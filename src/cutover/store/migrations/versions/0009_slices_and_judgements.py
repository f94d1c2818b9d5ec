"""Live rollout gates per slice and on judge scores.

The request log keeps the client's slice label (header ``x-cutover-slice``);
``rollout_judgements`` keeps each logged answer a rollout's judge scored.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("gateway_requests") as batch:
        batch.add_column(sa.Column("slice", sa.String(64), nullable=True))
    op.create_table(
        "rollout_judgements",
        sa.Column("rollout_id", sa.String(32), sa.ForeignKey("rollouts.id"), primary_key=True),
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("slice", sa.String(64), nullable=True),
        sa.Column("request_ts", _TS, nullable=False),
        sa.Column("judged_at", _TS, nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_rollout_judgements_ts", "rollout_judgements", ["rollout_id", "request_ts"])


def downgrade() -> None:
    op.drop_index("ix_rollout_judgements_ts", table_name="rollout_judgements")
    op.drop_table("rollout_judgements")
    with op.batch_alter_table("gateway_requests") as batch:
        batch.drop_column("slice")

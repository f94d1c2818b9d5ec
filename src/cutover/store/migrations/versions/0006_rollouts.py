"""Canary rollouts: one row per rollout (its plan and where it stands) and its events.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("route", sa.Text, nullable=False),
        sa.Column("plan", sa.Text, nullable=False),
        sa.Column("plan_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stage", sa.Integer, nullable=False),
        sa.Column("stage_started_at", _TS, nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("heartbeat_at", _TS, nullable=True),
        sa.Column("owner", sa.Text, nullable=True),
    )
    op.create_index("ix_rollouts_route", "rollouts", ["route", "started_at"])
    op.create_table(
        "rollout_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rollout_id", sa.String(32), sa.ForeignKey("rollouts.id"), nullable=False),
        sa.Column("ts", _TS, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("stage", sa.Integer, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("weight_before", sa.Float, nullable=True),
        sa.Column("weight_after", sa.Float, nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
    )
    op.create_index("ix_rollout_events_rollout", "rollout_events", ["rollout_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_rollout_events_rollout", table_name="rollout_events")
    op.drop_table("rollout_events")
    op.drop_index("ix_rollouts_route", table_name="rollouts")
    op.drop_table("rollouts")

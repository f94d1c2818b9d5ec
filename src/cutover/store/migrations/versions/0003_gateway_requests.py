"""The gateway's request log (one row per request, feedback kept with it).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "gateway_requests",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("ts", _TS, nullable=False),
        sa.Column("route", sa.Text, nullable=True),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("target", sa.Text, nullable=True),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("ttft_ms", sa.Float, nullable=True),
        sa.Column("input_tokens", sa.Integer, nullable=True),
        sa.Column("output_tokens", sa.Integer, nullable=True),
        sa.Column("cost_usd", sa.Float, nullable=True),
        sa.Column("error_class", sa.Text, nullable=True),
        sa.Column("key_hash", sa.Text, nullable=True),
        sa.Column("prompt", sa.Text, nullable=True),
        sa.Column("output", sa.Text, nullable=True),
        sa.Column("feedback_score", sa.Float, nullable=True),
        sa.Column("feedback_at", _TS, nullable=True),
    )
    op.create_index("ix_gateway_requests_route_ts", "gateway_requests", ["route", "ts"])


def downgrade() -> None:
    op.drop_index("ix_gateway_requests_route_ts", table_name="gateway_requests")
    op.drop_table("gateway_requests")

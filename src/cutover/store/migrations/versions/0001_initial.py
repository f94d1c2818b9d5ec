"""The initial store: targets, runs, cases, observations, pairs, response_cache.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

JSON columns are TEXT written by orjson; timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)
_ID = sa.String(32)
_BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "targets",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("base_url", sa.Text, nullable=True),
        sa.Column("prompt_version", sa.Text, nullable=True),
        sa.Column("system", sa.Text, nullable=True),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("simulated", sa.Boolean, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("suite_name", sa.Text, nullable=True),
        sa.Column("suite_path", sa.Text, nullable=True),
        sa.Column("suite_hash", sa.Text, nullable=True),
        sa.Column("old_target", sa.Text, nullable=False),
        sa.Column("new_target", sa.Text, nullable=False),
        sa.Column("old_label", sa.Text, nullable=False),
        sa.Column("new_label", sa.Text, nullable=False),
        sa.Column("repeats", sa.Integer, nullable=False),
        sa.Column("meta", sa.Text, nullable=False),
    )
    op.create_index("ix_runs_fingerprint_created", "runs", ["fingerprint", "created_at"])
    op.create_index("ix_runs_created", "runs", ["created_at"])
    op.create_table(
        "cases",
        sa.Column(
            "run_id",
            _ID,
            sa.ForeignKey("runs.id", ondelete="CASCADE", name="fk_cases_run"),
            primary_key=True,
        ),
        sa.Column("case_id", sa.Text, primary_key=True),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("input", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("critical", sa.Boolean, nullable=False),
        sa.Column("expected", sa.Text, nullable=True),
        sa.Column("asserts", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=True),
    )
    op.create_index("ix_cases_run_idx", "cases", ["run_id", "idx"])
    op.create_table(
        "observations",
        sa.Column("id", _BIGINT_ID, primary_key=True, autoincrement=True),
        sa.Column("run_id", _ID, nullable=False),
        sa.Column("case_id", sa.Text, nullable=False),
        sa.Column("arm", sa.String(8), nullable=False),
        sa.Column("repeat", sa.Integer, nullable=False),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("target_key", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("output", sa.Text, nullable=True),
        sa.Column("tool_calls", sa.Text, nullable=False),
        sa.Column("finish_reason", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("error_class", sa.Text, nullable=True),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=True),
        sa.Column("ttft_ms", sa.Float, nullable=True),
        sa.Column("input_tokens", sa.Integer, nullable=True),
        sa.Column("output_tokens", sa.Integer, nullable=True),
        sa.Column("cost_usd", sa.Float, nullable=True),
        sa.Column("model", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("cached", sa.Boolean, nullable=False),
        sa.Column("simulated", sa.Boolean, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id", "case_id"],
            ["cases.run_id", "cases.case_id"],
            ondelete="CASCADE",
            name="fk_observations_case",
        ),
        sa.UniqueConstraint("run_id", "case_id", "arm", "repeat", name="uq_observations_slot"),
    )
    op.create_index("ix_observations_run_idx", "observations", ["run_id", "idx"])
    op.create_table(
        "pairs",
        sa.Column("run_id", _ID, primary_key=True),
        sa.Column("case_id", sa.Text, primary_key=True),
        sa.Column("repeat", sa.Integer, primary_key=True),
        sa.Column(
            "old_observation_id",
            _BIGINT_ID,
            sa.ForeignKey("observations.id", ondelete="CASCADE", name="fk_pairs_old"),
            nullable=False,
        ),
        sa.Column(
            "new_observation_id",
            _BIGINT_ID,
            sa.ForeignKey("observations.id", ondelete="CASCADE", name="fk_pairs_new"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["run_id", "case_id"],
            ["cases.run_id", "cases.case_id"],
            ondelete="CASCADE",
            name="fk_pairs_case",
        ),
    )
    op.create_table(
        "response_cache",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("target_key", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_response_cache_target", "response_cache", ["target_key"])


def downgrade() -> None:
    op.drop_index("ix_response_cache_target", table_name="response_cache")
    op.drop_table("response_cache")
    op.drop_table("pairs")
    op.drop_index("ix_observations_run_idx", table_name="observations")
    op.drop_table("observations")
    op.drop_index("ix_cases_run_idx", table_name="cases")
    op.drop_table("cases")
    op.drop_index("ix_runs_created", table_name="runs")
    op.drop_index("ix_runs_fingerprint_created", table_name="runs")
    op.drop_table("runs")
    op.drop_table("targets")

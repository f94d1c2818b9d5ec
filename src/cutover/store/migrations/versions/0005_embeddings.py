"""Embedding indexes, their aliases and the alias audit trail.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "embedding_indexes",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("backend", sa.String(16), nullable=False),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("model_spec", sa.Text, nullable=False),
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.Column("model_identity", sa.Text, nullable=False),
        sa.Column("dimensions", sa.Integer, nullable=False),
        sa.Column("normalised", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("doc_count", sa.Integer, nullable=False),
        sa.Column("corpus", sa.Text, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("built_at", _TS, nullable=True),
        sa.Column("retired_at", _TS, nullable=True),
        sa.Column("last_aliased_at", _TS, nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_table(
        "embedding_aliases",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("index_name", sa.Text, nullable=False),
        sa.Column("previous_index", sa.Text, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
    )
    op.create_table(
        "embedding_alias_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", _TS, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("alias", sa.Text, nullable=False),
        sa.Column("before", sa.Text, nullable=True),
        sa.Column("after", sa.Text, nullable=True),
    )
    op.create_index("ix_embedding_alias_events_alias", "embedding_alias_events", ["alias", "id"])


def downgrade() -> None:
    op.drop_index("ix_embedding_alias_events_alias", table_name="embedding_alias_events")
    op.drop_table("embedding_alias_events")
    op.drop_table("embedding_aliases")
    op.drop_table("embedding_indexes")

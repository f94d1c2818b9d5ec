"""Embedding indexes and their aliases in the store: the registry and the audit.

A mixin of :class:`~cutover.store.Store`; every method is one short
transaction. The index itself (vectors, ids, hashes, fitted model state) lives
in its backend; the registry says where (``backend``, ``location``), what it
holds (model, dimensions, corpus snapshot, documents) and its ``status``:
``building`` -> ``complete`` -> ``retired``.

An alias names the index that readers use. :meth:`set_embedding_alias` and
:meth:`rollback_embedding_alias` switch it in one transaction that also writes
the audit event; a reader resolves the alias once per call, so it sees the old
index or the new one, never a mix. An index's ``last_aliased_at`` is the last
moment an alias pointed at it (stamped when an alias arrives and when it
leaves): while an alias points at it, it is in use.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from cutover.errors import VectorIndexError
from cutover.store._schema import JSONText, UTCDateTime, metadata, utcnow

embedding_indexes = sa.Table(  # 0005
    "embedding_indexes",
    metadata,
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
    sa.Column("corpus", JSONText, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("built_at", UTCDateTime, nullable=True),
    sa.Column("retired_at", UTCDateTime, nullable=True),
    sa.Column("last_aliased_at", UTCDateTime, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

embedding_aliases = sa.Table(  # 0005
    "embedding_aliases",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("index_name", sa.Text, nullable=False),
    sa.Column("previous_index", sa.Text, nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("updated_by", sa.Text, nullable=False),
)

embedding_alias_events = sa.Table(  # 0005
    "embedding_alias_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("alias", sa.Text, nullable=False),
    sa.Column("before", JSONText, nullable=True),
    sa.Column("after", JSONText, nullable=True),
    sa.Index("ix_embedding_alias_events_alias", "alias", "id"),
)

_INDEX_FIELDS = tuple(c.name for c in embedding_indexes.columns)


@dataclass(frozen=True, slots=True)
class EmbeddingIndexRow:
    """One registered embedding index."""

    name: str
    backend: str
    location: str
    """embedded: the directory; pgvector: the database URL without its password."""
    model_spec: str
    model_name: str
    model_version: str
    model_identity: str
    dimensions: int
    normalised: bool
    status: str
    doc_count: int
    corpus: dict[str, Any] | None
    created_at: datetime
    built_at: datetime | None
    retired_at: datetime | None
    last_aliased_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class EmbeddingAliasRow:
    """An alias: the index it names now and the one before."""

    name: str
    index_name: str
    previous_index: str | None
    version: int
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True, slots=True)
class EmbeddingAliasEvent:
    """One switch of an alias: who, when, what, before and after."""

    id: int
    ts: datetime
    actor: str
    action: str
    alias: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def _index_row(row: Any) -> EmbeddingIndexRow:
    m = row._mapping
    values = {name: m[name] for name in _INDEX_FIELDS}
    values["normalised"] = bool(values["normalised"])
    values["dimensions"] = int(values["dimensions"])
    values["doc_count"] = int(values["doc_count"])
    return EmbeddingIndexRow(**values)


def _alias_row(row: Any) -> EmbeddingAliasRow:
    m = row._mapping
    return EmbeddingAliasRow(
        name=str(m["name"]),
        index_name=str(m["index_name"]),
        previous_index=m["previous_index"],
        version=int(m["version"]),
        updated_at=m["updated_at"],
        updated_by=str(m["updated_by"]),
    )


def _side(index: EmbeddingIndexRow | None) -> dict[str, Any] | None:
    if index is None:
        return None
    return {"index": index.name, "model": index.model_spec, "dimensions": index.dimensions}


class EmbeddingRegistryMixin:
    """Store methods for the embedding index registry and aliases."""

    if TYPE_CHECKING:

        @property
        def dialect(self) -> str: ...

        def _transaction(
            self, action: str, *, write: bool
        ) -> AbstractContextManager[Connection]: ...

        def _insert_ignore(self, table: sa.Table, keys: Sequence[str]) -> Insert: ...

    # -- indexes ---------------------------------------------------------------

    def register_embedding_index(self, values: dict[str, Any]) -> EmbeddingIndexRow:
        """Record a new index (``values``: the columns); an existing name is left alone.

        Returns the stored row (the existing one when the name was taken).
        """
        t = embedding_indexes
        now = utcnow()
        row_values = {"doc_count": 0, "updated_at": now, **values}
        with self._transaction("registering an embedding index", write=True) as conn:
            if conn.execute(
                sa.select(embedding_aliases.c.name).where(
                    embedding_aliases.c.name == values["name"]
                )
            ).first():
                raise VectorIndexError(
                    f"'{values['name']}' is already an alias",
                    field="index",
                    hint="indexes and aliases share one namespace; pick another index name",
                )
            conn.execute(self._insert_ignore(t, ["name"]), row_values)
            row = conn.execute(sa.select(t).where(t.c.name == values["name"])).one()
        return _index_row(row)

    def update_embedding_index(self, name: str, **values: Any) -> None:
        """Change columns of a registered index (``updated_at`` is stamped)."""
        t = embedding_indexes
        unknown = set(values) - set(_INDEX_FIELDS)
        if unknown:
            raise ValueError(f"unknown embedding index columns: {sorted(unknown)}")
        stmt = t.update().where(t.c.name == name).values(**values, updated_at=utcnow())
        with self._transaction("updating an embedding index", write=True) as conn:
            conn.execute(stmt)

    def embedding_index(self, name: str) -> EmbeddingIndexRow | None:
        t = embedding_indexes
        with self._transaction("reading an embedding index", write=False) as conn:
            row = conn.execute(sa.select(t).where(t.c.name == name)).one_or_none()
        return None if row is None else _index_row(row)

    def embedding_indexes(self) -> list[EmbeddingIndexRow]:
        """Every registered index, newest first."""
        t = embedding_indexes
        query = sa.select(t).order_by(t.c.created_at.desc(), t.c.name)
        with self._transaction("listing embedding indexes", write=False) as conn:
            return [_index_row(row) for row in conn.execute(query)]

    def resolve_embedding_name(
        self, name: str
    ) -> tuple[EmbeddingIndexRow, EmbeddingAliasRow | None] | None:
        """The index an alias names now (or the index of that name), read in one transaction."""
        t, a = embedding_indexes, embedding_aliases
        with self._transaction("resolving an embedding index", write=False) as conn:
            alias_row = conn.execute(sa.select(a).where(a.c.name == name)).one_or_none()
            target = alias_row.index_name if alias_row is not None else name
            row = conn.execute(sa.select(t).where(t.c.name == target)).one_or_none()
        if row is None:
            return None
        return _index_row(row), None if alias_row is None else _alias_row(alias_row)

    def retire_embedding_index(
        self, name: str, *, keep_warm: timedelta, now: datetime | None = None
    ) -> EmbeddingIndexRow:
        """Mark an index retired, unless an alias names it or it was in use within ``keep_warm``.

        Returns the row as it was before. Deleting the vectors is the caller's
        part, after this commits (no alias can reach the index any more).
        """
        t, a = embedding_indexes, embedding_aliases
        moment = now or utcnow()
        with self._transaction("retiring an embedding index", write=True) as conn:
            row = conn.execute(sa.select(t).where(t.c.name == name).with_for_update()).one_or_none()
            if row is None:
                raise VectorIndexError(f"no embedding index '{name}'", field="index")
            before = _index_row(row)
            if before.status == "retired":
                return before  # the caller finishes deleting the vectors
            aliases = [
                r.name for r in conn.execute(sa.select(a.c.name).where(a.c.index_name == name))
            ]
            if aliases:
                raise VectorIndexError(
                    f"index '{name}' is behind alias {', '.join(map(repr, sorted(aliases)))}",
                    field="index",
                    hint="point the alias at another index first (cutover embeddings alias set)",
                )
            last = before.last_aliased_at
            if last is not None and moment - last < keep_warm:
                until = last + keep_warm
                raise VectorIndexError(
                    f"index '{name}' was behind an alias until {last:%Y-%m-%d %H:%M} UTC; "
                    f"it is kept warm (for a rollback) until {until:%Y-%m-%d %H:%M} UTC",
                    field="index",
                    hint="wait, or pass a shorter --keep-warm-days",
                )
            conn.execute(
                t.update()
                .where(t.c.name == name)
                .values(status="retired", retired_at=moment, updated_at=moment)
            )
        return before

    # -- aliases ---------------------------------------------------------------

    def embedding_alias(self, name: str) -> EmbeddingAliasRow | None:
        a = embedding_aliases
        with self._transaction("reading an embedding alias", write=False) as conn:
            row = conn.execute(sa.select(a).where(a.c.name == name)).one_or_none()
        return None if row is None else _alias_row(row)

    def embedding_aliases(self) -> list[EmbeddingAliasRow]:
        a = embedding_aliases
        with self._transaction("listing embedding aliases", write=False) as conn:
            return [_alias_row(r) for r in conn.execute(sa.select(a).order_by(a.c.name))]

    def set_embedding_alias(
        self, name: str, index: str, *, actor: str, action: str = "set"
    ) -> tuple[EmbeddingAliasRow | None, EmbeddingAliasRow]:
        """Point alias ``name`` at ``index`` (complete), audited, in one transaction.

        Returns ``(before, after)``; ``before`` is ``None`` for a new alias.
        """
        t, a = embedding_indexes, embedding_aliases
        now = utcnow()
        with self._transaction("switching an embedding alias", write=True) as conn:
            if conn.execute(sa.select(t.c.name).where(t.c.name == name)).first():
                raise VectorIndexError(
                    f"'{name}' is an index name",
                    field="alias",
                    hint="indexes and aliases share one namespace; pick another alias name",
                )
            target = self._complete_index(conn, index)
            row = conn.execute(sa.select(a).where(a.c.name == name).with_for_update()).one_or_none()
            before = None if row is None else _alias_row(row)
            old_index = None
            if before is not None:
                old = conn.execute(sa.select(t).where(t.c.name == before.index_name)).one_or_none()
                old_index = None if old is None else _index_row(old)
            if before is not None and before.index_name == index:
                return before, before
            after = EmbeddingAliasRow(
                name=name,
                index_name=index,
                previous_index=before.index_name if before is not None else None,
                version=(before.version + 1) if before is not None else 1,
                updated_at=now,
                updated_by=actor,
            )
            self._write_alias(conn, before, after, actor, action, old_index, target, now)
        return before, after

    def rollback_embedding_alias(
        self, name: str, *, actor: str
    ) -> tuple[EmbeddingAliasRow, EmbeddingAliasRow]:
        """Point alias ``name`` back at its previous index, audited, in one transaction."""
        t, a = embedding_indexes, embedding_aliases
        now = utcnow()
        with self._transaction("rolling back an embedding alias", write=True) as conn:
            row = conn.execute(sa.select(a).where(a.c.name == name).with_for_update()).one_or_none()
            if row is None:
                raise VectorIndexError(f"no embedding alias '{name}'", field="alias")
            before = _alias_row(row)
            if before.previous_index is None:
                raise VectorIndexError(
                    f"alias '{name}' has no previous index to roll back to", field="alias"
                )
            target = self._complete_index(conn, before.previous_index)
            old = conn.execute(sa.select(t).where(t.c.name == before.index_name)).one_or_none()
            after = EmbeddingAliasRow(
                name=name,
                index_name=before.previous_index,
                previous_index=before.index_name,
                version=before.version + 1,
                updated_at=now,
                updated_by=actor,
            )
            old_index = None if old is None else _index_row(old)
            self._write_alias(conn, before, after, actor, "rollback", old_index, target, now)
        return before, after

    def embedding_alias_events(self, name: str, limit: int = 50) -> list[EmbeddingAliasEvent]:
        """The newest ``limit`` switches of alias ``name``, newest first."""
        e = embedding_alias_events
        query = sa.select(e).where(e.c.alias == name).order_by(e.c.id.desc()).limit(limit)
        with self._transaction("reading embedding alias events", write=False) as conn:
            rows = conn.execute(query).all()
        return [
            EmbeddingAliasEvent(
                id=int(r.id),
                ts=r.ts,
                actor=str(r.actor),
                action=str(r.action),
                alias=str(r.alias),
                before=r.before,
                after=r.after,
            )
            for r in rows
        ]

    def _complete_index(self, conn: Connection, name: str) -> EmbeddingIndexRow:
        t = embedding_indexes
        row = conn.execute(sa.select(t).where(t.c.name == name).with_for_update()).one_or_none()
        if row is None:
            raise VectorIndexError(f"no embedding index '{name}'", field="index")
        index = _index_row(row)
        if index.status != "complete":
            raise VectorIndexError(
                f"index '{name}' is {index.status}, not complete",
                field="index",
                hint="finish its build first (rerun cutover embeddings build)"
                if index.status == "building"
                else "a retired index has no vectors",
            )
        return index

    def _write_alias(
        self,
        conn: Connection,
        before: EmbeddingAliasRow | None,
        after: EmbeddingAliasRow,
        actor: str,
        action: str,
        old_index: EmbeddingIndexRow | None,
        new_index: EmbeddingIndexRow,
        now: datetime,
    ) -> None:
        t, a = embedding_indexes, embedding_aliases
        values = {
            "index_name": after.index_name,
            "previous_index": after.previous_index,
            "version": after.version,
            "updated_at": now,
            "updated_by": actor,
        }
        if before is None:
            conn.execute(a.insert().values(name=after.name, **values))
        else:
            conn.execute(a.update().where(a.c.name == after.name).values(**values))
        touched = [after.index_name] + ([before.index_name] if before is not None else [])
        conn.execute(t.update().where(t.c.name.in_(touched)).values(last_aliased_at=now))
        before_side = _side(old_index)
        after_side = _side(new_index)
        if before_side is not None and before_side["model"] != new_index.model_spec:
            after_side = {**(after_side or {}), "model_changed_from": before_side["model"]}
        conn.execute(
            embedding_alias_events.insert().values(
                ts=now,
                actor=actor,
                action=action,
                alias=after.name,
                before=before_side,
                after=after_side,
            )
        )


__all__ = [
    "EmbeddingAliasEvent",
    "EmbeddingAliasRow",
    "EmbeddingIndexRow",
    "EmbeddingRegistryMixin",
]

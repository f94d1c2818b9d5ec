"""Indexes and aliases as the store records them: resolve, switch, roll back, retire.

The registry lives in the cutover store (:mod:`cutover.store._embeddings`);
these functions add what needs the backends (opening an index, deleting its
vectors) and the defaults (where a new index goes)::

    from cutover.embeddings import registry
    from cutover.store import open_store

    with open_store() as store:
        registry.set_alias(store, "docs", "docs-minilm-v2", actor="ana")
        registry.rollback_alias(store, "docs", actor="ana")
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cutover.embeddings._types import check_name
from cutover.embeddings.index import VectorIndex, open_index
from cutover.errors import VectorIndexError
from cutover.settings import Settings

if TYPE_CHECKING:
    from cutover.store import Store
    from cutover.store._embeddings import (
        EmbeddingAliasEvent,
        EmbeddingAliasRow,
        EmbeddingIndexRow,
    )

DEFAULT_KEEP_WARM_DAYS = 14.0


@dataclass(frozen=True, slots=True)
class AliasInfo:
    """An alias: the index it names, the previous one, and its history (newest first)."""

    alias: EmbeddingAliasRow
    current: EmbeddingIndexRow | None
    previous: EmbeddingIndexRow | None
    events: list[EmbeddingAliasEvent]


@contextmanager
def store_scope(store: Store | None = None, url: str | None = None) -> Iterator[Store]:
    """``store`` itself, or a store opened at ``url`` (default: the settings) and closed after."""
    if store is not None:
        yield store
        return
    from cutover.store import Store as _Store

    opened = _Store.open(url)
    try:
        yield opened
    finally:
        opened.close()


def default_location(name: str, backend: str, store: Store | None = None) -> str:
    """Where a new index goes: ``<CUTOVER_HOME>/indexes/<name>``, or the pgvector database.

    pgvector takes ``CUTOVER_PGVECTOR_URL``, else the store's database when it
    is PostgreSQL.
    """
    settings = Settings.from_env()
    if backend == "embedded":
        return str(settings.indexes_dir / name)
    if backend == "pgvector":
        if settings.pgvector_url:
            return settings.pgvector_url
        if store is not None and store.dialect == "postgresql":
            return store.url
        raise VectorIndexError(
            "no PostgreSQL database for the pgvector backend",
            field="location",
            hint="pass --location postgresql://user@host/db or set CUTOVER_PGVECTOR_URL",
        )
    raise VectorIndexError(
        f"unknown backend {backend!r}", field="backend", hint="embedded or pgvector"
    )


def registry_location(backend: str, location: str) -> str:
    """What the registry keeps: an absolute directory, or a URL without its password."""
    if backend == "pgvector":
        from cutover.embeddings._pgvector import public_location

        return public_location(location)
    return str(Path(location).expanduser().absolute())


def resolve(store: Store, name: str) -> tuple[EmbeddingIndexRow, EmbeddingAliasRow | None]:
    """The index ``name`` names now (an alias, or an index), in one read."""
    found = store.resolve_embedding_name(name)
    if found is None:
        raise VectorIndexError(
            f"no embedding index or alias '{name}'",
            field="index",
            hint="cutover embeddings list shows them",
        )
    return found


def open_registered(row: EmbeddingIndexRow) -> VectorIndex:
    """Open the backend index of a registry row."""
    return open_index(row.backend, row.location, row.name)


def set_alias(
    store: Store, alias: str, index: str, *, actor: str
) -> tuple[EmbeddingAliasRow | None, EmbeddingAliasRow]:
    """Point ``alias`` at the complete index ``index``: one atomic, audited switch.

    Another model than the current index's is allowed (that is the point of a
    migration alias); the audit event records the change of model.
    """
    check_name(alias, "alias")
    return store.set_embedding_alias(alias, index, actor=actor)


def rollback_alias(
    store: Store, alias: str, *, actor: str
) -> tuple[EmbeddingAliasRow, EmbeddingAliasRow]:
    """Point ``alias`` back at its previous index: one atomic, audited switch."""
    return store.rollback_embedding_alias(alias, actor=actor)


def alias_info(store: Store, alias: str, *, history: int = 20) -> AliasInfo:
    row = store.embedding_alias(alias)
    if row is None:
        raise VectorIndexError(f"no embedding alias '{alias}'", field="alias")
    previous = store.embedding_index(row.previous_index) if row.previous_index else None
    return AliasInfo(
        alias=row,
        current=store.embedding_index(row.index_name),
        previous=previous,
        events=store.embedding_alias_events(alias, history),
    )


def retire(
    store: Store,
    index: str,
    *,
    keep_warm_days: float = DEFAULT_KEEP_WARM_DAYS,
    now: datetime | None = None,
) -> EmbeddingIndexRow:
    """Delete the vectors of ``index`` and mark it retired.

    Refused while an alias names it, or within ``keep_warm_days`` of the last
    moment one did (the rollback window). Retiring a retired index again
    finishes a deletion that was interrupted.
    """
    if keep_warm_days < 0:
        raise VectorIndexError("must not be negative", field="keep_warm_days")
    before = store.retire_embedding_index(index, keep_warm=timedelta(days=keep_warm_days), now=now)
    try:
        handle = open_registered(before)
    except VectorIndexError:
        handle = None  # already gone
    if handle is not None:
        try:
            handle.drop()
        finally:
            handle.close()
    from cutover.embeddings.query import shared_cache  # (query imports this module)

    shared_cache().forget(index)
    store.update_embedding_index(index, doc_count=0)
    row = store.embedding_index(index)
    assert row is not None
    return row


__all__ = [
    "DEFAULT_KEEP_WARM_DAYS",
    "AliasInfo",
    "alias_info",
    "default_location",
    "open_registered",
    "registry_location",
    "resolve",
    "retire",
    "rollback_alias",
    "set_alias",
    "store_scope",
]

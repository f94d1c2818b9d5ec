"""Querying an index by name or alias.

``search("docs", ["how do refunds work?"])`` resolves ``docs`` (an alias or an
index) once per call, in one read of the store, embeds the queries with the
index's own model and searches that index; a concurrent alias switch is
therefore atomic for readers: a call sees the old index or the new one,
never a mix. Opened indexes and loaded models are cached per process
(:func:`shared_cache`), keyed by what identifies them, so a call after the
first costs one store read, the query embedding and the search.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

from cutover.embeddings._types import Hit
from cutover.embeddings.index import VectorIndex
from cutover.embeddings.models import (
    EmbeddingModel,
    ModelOptions,
    Vectors,
    create_model,
    options_for_index,
    parse_model_spec,
)
from cutover.embeddings.registry import open_registered, resolve
from cutover.errors import VectorIndexError
from cutover.settings import Settings

if TYPE_CHECKING:
    from cutover.store import Store
    from cutover.store._embeddings import EmbeddingIndexRow


def model_for_index(
    row: EmbeddingIndexRow, index: VectorIndex, options: ModelOptions | None = None
) -> EmbeddingModel:
    """The index's own model (with its saved state), checked against the index."""
    parsed = parse_model_spec(row.model_spec)
    opts = options_for_index(row.model_identity, row.dimensions, options)
    state = index.load_state() if parsed.kind == "tfidf-svd" else None
    model = create_model(row.model_spec, opts, state=state or None)
    if model.identity != row.model_identity:
        model.close()
        raise VectorIndexError(
            f"index '{row.name}' was built with model {row.model_identity}, but "
            f"'{row.model_spec}' now gives {model.identity}",
            field="model",
        )
    return model


class Lookup(NamedTuple):
    """The hits of a search and the index that gave them (resolved once)."""

    index_name: str
    alias: str | None
    model: str
    hits: list[list[Hit]]


class SearchCache:
    """Opened indexes and loaded models, shared by the searchers of a process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._indexes: dict[tuple[str, ...], VectorIndex] = {}
        self._models: dict[tuple[str, ...], EmbeddingModel] = {}

    def index(self, row: EmbeddingIndexRow) -> VectorIndex:
        key = (row.name, row.backend, row.location, row.created_at.isoformat())
        with self._lock:
            found = self._indexes.get(key)
        if found is not None:
            return found
        opened = open_registered(row)
        with self._lock:
            found = self._indexes.setdefault(key, opened)
        if found is not opened:
            opened.close()
        return found

    def model(self, row: EmbeddingIndexRow, index: VectorIndex) -> EmbeddingModel:
        key = (row.model_spec, row.model_identity)
        with self._lock:
            found = self._models.get(key)
        if found is not None:
            return found
        loaded = model_for_index(row, index)
        with self._lock:
            found = self._models.setdefault(key, loaded)
        if found is not loaded:
            loaded.close()
        return found

    def forget(self, name: str) -> None:
        """Close and forget the cached handles of index ``name`` (it was retired)."""
        with self._lock:
            keys = [key for key in self._indexes if key[0] == name]
            dropped = [self._indexes.pop(key) for key in keys]
        for index in dropped:
            index.close()

    def clear(self) -> None:
        """Close and forget everything cached."""
        with self._lock:
            indexes, self._indexes = self._indexes, {}
            models, self._models = self._models, {}
        for index in indexes.values():
            index.close()
        for model in models.values():
            model.close()


@functools.lru_cache(maxsize=1)
def shared_cache() -> SearchCache:
    """The process's cache of opened indexes and loaded models."""
    return SearchCache()


@functools.lru_cache(maxsize=8)
def _store_for(url: str) -> Store:
    from cutover.store import Store

    return Store.open(url)


class Searcher:
    """Searches the indexes of one store; see the module docs."""

    def __init__(self, store: Store, *, cache: SearchCache | None = None) -> None:
        self.store = store
        self.cache = cache or shared_cache()

    def target(self, name: str) -> tuple[EmbeddingIndexRow, VectorIndex]:
        """The index ``name`` resolves to now, opened."""
        row, _alias = resolve(self.store, name)
        if row.status == "retired":
            raise VectorIndexError(f"index '{row.name}' is retired (its vectors are deleted)")
        return row, self.cache.index(row)

    def embed_queries(self, name: str, queries: Sequence[str]) -> Vectors:
        """The queries embedded with the model of the index ``name`` resolves to."""
        row, index = self.target(name)
        return self.cache.model(row, index).embed(list(queries))

    def search(self, name: str, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        if isinstance(queries, str):
            raise TypeError("queries must be a sequence of strings, not one string")
        row, index = self.target(name)
        if not queries:
            return []
        vectors = self.cache.model(row, index).embed(list(queries))
        return index.search(vectors, k)

    def lookup(self, name: str, queries: Sequence[str], k: int = 10) -> Lookup:
        """Like :meth:`search`, also saying which index answered (and through which alias)."""
        row, alias = resolve(self.store, name)
        if row.status == "retired":
            raise VectorIndexError(f"index '{row.name}' is retired (its vectors are deleted)")
        index = self.cache.index(row)
        vectors = self.cache.model(row, index).embed(list(queries)) if queries else None
        hits = index.search(vectors, k) if vectors is not None else []
        return Lookup(
            index_name=row.name,
            alias=None if alias is None else alias.name,
            model=row.model_spec,
            hits=hits,
        )

    def search_vectors(
        self, name: str, matrix: npt.NDArray[np.floating], k: int = 10
    ) -> list[list[Hit]]:
        _row, index = self.target(name)
        return index.search(np.asarray(matrix, dtype=np.float32), k)


def _searcher(store: Store | None, store_url: str | None) -> Searcher:
    if store is not None:
        return Searcher(store)
    url = store_url if store_url is not None else Settings.from_env().database_url
    return Searcher(_store_for(url))


def search(
    name_or_alias: str,
    queries: Sequence[str],
    k: int = 10,
    *,
    store: Store | None = None,
    store_url: str | None = None,
) -> list[list[Hit]]:
    """The top ``k`` hits for each query, from the index ``name_or_alias`` names now.

    ``store`` (or ``store_url``, default: the settings) holds the registry.
    """
    return _searcher(store, store_url).search(name_or_alias, queries, k)


def search_vectors(
    name_or_alias: str,
    matrix: npt.NDArray[np.floating],
    k: int = 10,
    *,
    store: Store | None = None,
    store_url: str | None = None,
) -> list[list[Hit]]:
    """The top ``k`` hits for each row of ``matrix`` (already embedded queries)."""
    return _searcher(store, store_url).search_vectors(name_or_alias, matrix, k)


def embed_queries(
    name_or_alias: str,
    queries: Sequence[str],
    *,
    store: Store | None = None,
    store_url: str | None = None,
) -> Vectors:
    """The queries embedded with the model of the index ``name_or_alias`` names now."""
    return _searcher(store, store_url).embed_queries(name_or_alias, queries)


__all__ = [
    "Lookup",
    "SearchCache",
    "Searcher",
    "embed_queries",
    "model_for_index",
    "search",
    "search_vectors",
    "shared_cache",
]

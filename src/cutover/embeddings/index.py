"""Vector indexes behind one Protocol: ``embedded`` (default) and ``pgvector``.

An index holds, per document id, the content hash of what was embedded and
its vector, and its own :class:`IndexMeta` (model, dimensions, corpus
snapshot...) plus the fitted model state, if any. Vectors are stored
L2-normalised, so a score is the cosine similarity on both backends, and
search is exact (no approximate index), so two indexes can be compared
without approximation error in the way.

``upsert`` is one durable transaction: after a crash an index holds whole
batches only. Vectors from another model, or of another size, are refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from cutover.embeddings._types import BACKENDS, Hit, IndexMeta
from cutover.embeddings.models import Vectors, l2_normalise
from cutover.errors import VectorIndexError


@runtime_checkable
class VectorIndex(Protocol):
    """One index on one backend."""

    @property
    def meta(self) -> IndexMeta: ...

    @property
    def location(self) -> str:
        """Where it lives: a directory, or a database URL without its password."""
        ...

    def known(self, ids: Sequence[str]) -> dict[str, str]:
        """``id -> content hash`` for the ids the index holds (deleted ones excluded)."""
        ...

    def upsert(
        self, ids: Sequence[str], hashes: Sequence[str], vectors: Vectors, *, model_identity: str
    ) -> None:
        """Add or replace documents, in one durable transaction."""
        ...

    def delete(self, ids: Sequence[str]) -> int:
        """Delete documents; the number that were there."""
        ...

    def search(self, queries: Vectors, k: int) -> list[list[Hit]]:
        """The exact top ``k`` documents by cosine similarity, for each query row."""
        ...

    def count(self) -> int:
        """Documents held (deleted ones excluded)."""
        ...

    def write_meta(self, meta: IndexMeta) -> None:
        """Replace the stored metadata (model and dimensions may not change)."""
        ...

    def load_state(self) -> dict[str, bytes]:
        """The fitted model state saved at creation (empty when there is none)."""
        ...

    def drop(self) -> None:
        """Delete every vector and document (the metadata stays, marked retired)."""
        ...

    def close(self) -> None: ...


def check_vectors(
    meta: IndexMeta,
    ids: Sequence[str],
    hashes: Sequence[str],
    vectors: npt.NDArray[np.floating],
    model_identity: str,
) -> Vectors:
    """The vectors as stored (float32, normalised), or VectorIndexError naming both sides."""
    if model_identity != meta.model_identity:
        raise VectorIndexError(
            f"index '{meta.name}' holds vectors of model {meta.model_identity} "
            f"({meta.model_spec}); refusing vectors of model {model_identity}",
            field="model",
            hint="build another index for the new model and switch an alias to it",
        )
    array = np.asarray(vectors)
    if array.ndim != 2 or array.shape[1] != meta.dimensions:
        got = array.shape[1] if array.ndim == 2 else f"shape {array.shape}"
        raise VectorIndexError(
            f"index '{meta.name}' holds {meta.dimensions}-dimensional vectors; "
            f"refusing vectors of dimension {got}",
            field="dimensions",
        )
    if not (len(ids) == len(hashes) == array.shape[0]):
        raise ValueError(
            f"{len(ids)} ids, {len(hashes)} hashes and {array.shape[0]} vectors do not match"
        )
    if len(set(ids)) != len(ids):
        raise ValueError("an upsert batch holds the same id twice")
    if not np.isfinite(array).all():
        raise VectorIndexError(
            f"refusing non-finite vectors for index '{meta.name}'", field="vectors"
        )
    return l2_normalise(array)


def check_queries(meta: IndexMeta, queries: npt.NDArray[np.floating], k: int) -> Vectors:
    """Query vectors as searched (float32, normalised), or VectorIndexError."""
    array = np.asarray(queries)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[1] != meta.dimensions:
        raise VectorIndexError(
            f"index '{meta.name}' holds {meta.dimensions}-dimensional vectors; "
            f"the queries have shape {array.shape}",
            field="dimensions",
        )
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    return l2_normalise(array)


def merge_top_k(
    best_scores: npt.NDArray[np.float32],
    best_rows: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    rows: npt.NDArray[np.int64],
    k: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """The best ``k`` of two candidate sets per query (unsorted)."""
    all_scores = np.concatenate([best_scores, scores], axis=1)
    all_rows = np.concatenate([best_rows, rows], axis=1)
    if all_scores.shape[1] <= k:
        return all_scores, all_rows
    keep = np.argpartition(all_scores, -k, axis=1)[:, -k:]
    return (
        np.take_along_axis(all_scores, keep, axis=1),
        np.take_along_axis(all_rows, keep, axis=1),
    )


def create_index(
    meta: IndexMeta, location: str, *, state: Mapping[str, bytes] | None = None
) -> VectorIndex:
    """Create the index at ``location`` (or open it when it exists with the same model)."""
    if meta.backend == "embedded":
        from cutover.embeddings._embedded import EmbeddedIndex

        return EmbeddedIndex.create(Path(location), meta, state=state)
    if meta.backend == "pgvector":
        from cutover.embeddings._pgvector import PgVectorIndex

        return PgVectorIndex.create(location, meta, state=state)
    raise VectorIndexError(
        f"unknown backend {meta.backend!r}", field="backend", hint=" or ".join(BACKENDS)
    )


def open_index(backend: str, location: str, name: str) -> VectorIndex:
    """Open an existing index."""
    if backend == "embedded":
        from cutover.embeddings._embedded import EmbeddedIndex

        return EmbeddedIndex.open(Path(location))
    if backend == "pgvector":
        from cutover.embeddings._pgvector import PgVectorIndex

        return PgVectorIndex.open(location, name)
    raise VectorIndexError(
        f"unknown backend {backend!r}", field="backend", hint=" or ".join(BACKENDS)
    )


def same_model(meta: IndexMeta, other: IndexMeta) -> None:
    """VectorIndexError unless ``other`` describes vectors ``meta``'s index can hold."""
    if other.name != meta.name:
        raise VectorIndexError(
            f"this location holds index '{meta.name}', not '{other.name}'", field="location"
        )
    if other.model_identity != meta.model_identity or other.dimensions != meta.dimensions:
        raise VectorIndexError(
            f"index '{meta.name}' at this location holds {meta.dimensions}-dimensional "
            f"vectors of model {meta.model_identity}, not {other.dimensions}-dimensional "
            f"vectors of {other.model_identity}",
            field="model",
        )


__all__ = [
    "VectorIndex",
    "check_queries",
    "check_vectors",
    "create_index",
    "merge_top_k",
    "open_index",
    "same_model",
]

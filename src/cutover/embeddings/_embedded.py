"""The ``embedded`` index: a directory with an SQLite file and float32 vector segments.

Layout of ``<CUTOVER_HOME>/indexes/<name>/`` (or any directory)::

    index.db              SQLite (WAL): meta, docs, model_state
    vectors/000000.f32    rows 0 .. R-1 of the vector matrix, raw float32, row-major
    vectors/000001.f32    rows R .. 2R-1, ... (R rows per segment, ~256 MiB each)

``docs`` maps a document id to its content hash, its row in the matrix and a
deleted flag. Rows are only ever appended: a changed document gets a new row
and its old row is no longer referenced. ``meta`` holds the index metadata
(JSON), ``rows`` (the rows committed) and ``generation`` (bumped by every
write, so readers know when their cached live-row mask is stale).

A write takes SQLite's write lock (``BEGIN IMMEDIATE``), writes the new rows
past the committed end of the segments, fsyncs them, then records the docs
and the new row count in the same transaction. A crash before the commit
leaves bytes past the committed end, which nothing reads and the next write
overwrites; after it, the batch is whole.

Search is exact: each query block is multiplied with one memory-mapped chunk
of rows at a time (``CHUNK_BYTES``), and the best ``k`` per query are kept
with ``argpartition``, so memory depends on the chunk size, not the index
size. A search reads inside one SQLite read transaction (a snapshot), so a
concurrent writer never shows it half a batch.
"""

from __future__ import annotations

import math
import mmap
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import orjson

from cutover.embeddings._types import Hit, IndexMeta
from cutover.embeddings.index import check_queries, check_vectors, merge_top_k, same_model
from cutover.embeddings.models import Vectors
from cutover.errors import VectorIndexError

DB_NAME = "index.db"
VECTORS_DIR = "vectors"
FORMAT = "1"
SEGMENT_BYTES = 256 * 1024 * 1024
CHUNK_BYTES = 32 * 1024 * 1024
"""Rows multiplied at once during a search (per chunk of the matrix)."""
SCORE_BYTES = 16 * 1024 * 1024
"""The largest block of scores held at once during a search (argpartition's
indices take twice that again)."""
_IN_CHUNK = 900
_PAGE = mmap.PAGESIZE

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS docs ("
    " id TEXT PRIMARY KEY, hash TEXT NOT NULL, row INTEGER NOT NULL,"
    " deleted INTEGER NOT NULL DEFAULT 0)",
    "CREATE UNIQUE INDEX IF NOT EXISTS docs_row ON docs (row)",
    "CREATE INDEX IF NOT EXISTS docs_hash ON docs (hash)",
    "CREATE TABLE IF NOT EXISTS model_state (name TEXT PRIMARY KEY, data BLOB NOT NULL)",
)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=60.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=60000")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


@contextmanager
def _write(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _meta_value(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def _bump(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")


class _Mapped(NamedTuple):
    """A memory-mapped segment: the mapping and the rows seen through it."""

    buffer: mmap.mmap
    rows: int
    matrix: npt.NDArray[np.float32]


def _release(buffer: mmap.mmap, start: int, stop: int) -> None:
    """Drop the pages of ``[start, stop)`` from this process (they stay in the page cache).

    Keeps the resident memory of a search at one chunk, whatever the index size.
    """
    first = -(-start // _PAGE) * _PAGE
    if stop > first and hasattr(buffer, "madvise"):
        buffer.madvise(mmap.MADV_DONTNEED, first, stop - first)


class EmbeddedIndex:
    """An index in a local directory; see the module docs for the layout."""

    def __init__(self, directory: Path, meta: IndexMeta, rows_per_segment: int) -> None:
        self._dir = directory
        self._meta = meta
        self._rows_per_segment = rows_per_segment
        self._lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._mask: tuple[int, npt.NDArray[np.bool_] | None, int] | None = None
        self._maps: dict[int, _Mapped] = {}

    # -- lifecycle -------------------------------------------------------------

    @classmethod
    def create(
        cls, directory: Path, meta: IndexMeta, *, state: Mapping[str, bytes] | None = None
    ) -> EmbeddedIndex:
        """Create the index in ``directory`` (or open it when it holds the same model)."""
        directory = directory.absolute()
        try:
            (directory / VECTORS_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VectorIndexError(
                f"cannot create index directory '{directory}': {exc.strerror or exc}",
                field="location",
            ) from None
        conn = _connect(directory / DB_NAME)
        try:
            with _write(conn):
                for statement in _SCHEMA:
                    conn.execute(statement)
                stored = _meta_value(conn, "index")
                if stored is not None:
                    same_model(IndexMeta.from_dict(orjson.loads(stored)), meta)
                else:
                    rows_per_segment = max(1, SEGMENT_BYTES // (4 * meta.dimensions))
                    for key, value in (
                        ("format", FORMAT),
                        ("index", orjson.dumps(meta.to_dict()).decode()),
                        ("rows", "0"),
                        ("generation", "0"),
                        ("rows_per_segment", str(rows_per_segment)),
                    ):
                        _set_meta(conn, key, value)
                    conn.executemany(
                        "INSERT INTO model_state (name, data) VALUES (?, ?)",
                        sorted((state or {}).items()),
                    )
        finally:
            conn.close()
        return cls.open(directory)

    @classmethod
    def open(cls, directory: Path) -> EmbeddedIndex:
        directory = directory.absolute()
        path = directory / DB_NAME
        if not path.is_file():
            raise VectorIndexError(f"no embedded index at '{directory}'", field="location")
        conn = _connect(path)
        try:
            stored = _meta_value(conn, "index")
            segment = _meta_value(conn, "rows_per_segment")
        except sqlite3.DatabaseError as exc:
            raise VectorIndexError(f"cannot read index '{path}': {exc}") from None
        finally:
            conn.close()
        if stored is None or segment is None:
            raise VectorIndexError(f"'{path}' is not a cutover index (no metadata)")
        return cls(directory, IndexMeta.from_dict(orjson.loads(stored)), int(segment))

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._maps.clear()
            self._mask = None

    def __enter__(self) -> EmbeddedIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def meta(self) -> IndexMeta:
        return self._meta

    @property
    def location(self) -> str:
        return str(self._dir)

    def _writer_conn(self) -> sqlite3.Connection:
        if self._writer is None:
            self._writer = _connect(self._dir / DB_NAME)
        return self._writer

    def _segment_path(self, segment: int) -> Path:
        return self._dir / VECTORS_DIR / f"{segment:06d}.f32"

    # -- writes ----------------------------------------------------------------

    def upsert(
        self, ids: Sequence[str], hashes: Sequence[str], vectors: Vectors, *, model_identity: str
    ) -> None:
        rows = check_vectors(self._meta, ids, hashes, vectors, model_identity)
        if not len(ids):
            return
        with self._lock:
            conn = self._writer_conn()
            with _write(conn):
                start = int(_meta_value(conn, "rows") or 0)
                self._write_rows(start, rows)
                conn.executemany(
                    "INSERT INTO docs (id, hash, row, deleted) VALUES (?, ?, ?, 0) "
                    "ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, "
                    "row = excluded.row, deleted = 0",
                    [
                        (doc, h, start + i)
                        for i, (doc, h) in enumerate(zip(ids, hashes, strict=True))
                    ],
                )
                _set_meta(conn, "rows", str(start + len(ids)))
                _bump(conn)

    def _write_rows(self, start: int, rows: Vectors) -> None:
        per = self._rows_per_segment
        row_bytes = 4 * self._meta.dimensions
        done = 0
        while done < len(rows):
            at = start + done
            segment, offset = divmod(at, per)
            take = min(per - offset, len(rows) - done)
            data = np.ascontiguousarray(rows[done : done + take], dtype="<f4").tobytes()
            fd = os.open(self._segment_path(segment), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                view = memoryview(data)
                position = offset * row_bytes
                while view:
                    written = os.pwrite(fd, view, position)
                    view = view[written:]
                    position += written
                os.fsync(fd)
            finally:
                os.close(fd)
            done += take

    def delete(self, ids: Sequence[str]) -> int:
        removed = 0
        with self._lock:
            conn = self._writer_conn()
            with _write(conn):
                for chunk in _chunks(list(dict.fromkeys(ids))):
                    marks = ",".join("?" * len(chunk))
                    cursor = conn.execute(
                        f"UPDATE docs SET deleted = 1 WHERE deleted = 0 AND id IN ({marks})",
                        tuple(chunk),
                    )
                    removed += cursor.rowcount
                if removed:
                    _bump(conn)
        return removed

    def write_meta(self, meta: IndexMeta) -> None:
        same_model(self._meta, meta)
        with self._lock:
            conn = self._writer_conn()
            with _write(conn):
                _set_meta(conn, "index", orjson.dumps(meta.to_dict()).decode())
            self._meta = meta

    def drop(self) -> None:
        with self._lock:
            conn = self._writer_conn()
            with _write(conn):
                conn.execute("DELETE FROM docs")
                conn.execute("DELETE FROM model_state")
                _set_meta(conn, "rows", "0")
                _bump(conn)
                retired = self._meta.evolve(status="retired")
                _set_meta(conn, "index", orjson.dumps(retired.to_dict()).decode())
            self._meta = retired
            self._maps.clear()
            self._mask = None
            shutil.rmtree(self._dir / VECTORS_DIR, ignore_errors=True)
            conn.execute("VACUUM")

    # -- reads -----------------------------------------------------------------

    def known(self, ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self._reader() as conn:
            for chunk in _chunks(list(dict.fromkeys(ids))):
                marks = ",".join("?" * len(chunk))
                found.update(
                    conn.execute(
                        f"SELECT id, hash FROM docs WHERE deleted = 0 AND id IN ({marks})",
                        tuple(chunk),
                    ).fetchall()
                )
        return found

    def count(self) -> int:
        with self._reader() as conn:
            return int(conn.execute("SELECT count(*) FROM docs WHERE deleted = 0").fetchone()[0])

    def load_state(self) -> dict[str, bytes]:
        with self._reader() as conn:
            return {
                str(name): bytes(data)
                for name, data in conn.execute("SELECT name, data FROM model_state")
            }

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """A connection of its own inside one read transaction (a consistent snapshot)."""
        conn = _connect(self._dir / DB_NAME)
        try:
            conn.execute("BEGIN")
            yield conn
            conn.execute("COMMIT")
        finally:
            conn.close()

    def _live(
        self, conn: sqlite3.Connection, rows: int, generation: int
    ) -> tuple[npt.NDArray[np.bool_] | None, int]:
        """The live-row mask (None: every row is live) and the live count, cached."""
        with self._lock:
            cached = self._mask
        if cached is not None and cached[0] == generation:
            return cached[1], cached[2]
        live = int(conn.execute("SELECT count(*) FROM docs WHERE deleted = 0").fetchone()[0])
        mask: npt.NDArray[np.bool_] | None = None
        if live != rows:
            found = np.fromiter(
                (r for (r,) in conn.execute("SELECT row FROM docs WHERE deleted = 0")),
                dtype=np.int64,
                count=live,
            )
            mask = np.zeros(rows, dtype=np.bool_)
            mask[found] = True
        with self._lock:
            self._mask = (generation, mask, live)
        return mask, live

    def _segment(self, segment: int, rows: int) -> _Mapped:
        """The first ``rows`` rows of a segment, memory-mapped read-only (cached)."""
        with self._lock:
            mapped = self._maps.get(segment)
            if mapped is None or mapped.rows < rows:
                row_bytes = 4 * self._meta.dimensions
                with self._segment_path(segment).open("rb") as handle:
                    buffer = mmap.mmap(handle.fileno(), rows * row_bytes, access=mmap.ACCESS_READ)
                matrix = np.frombuffer(buffer, dtype="<f4").reshape(rows, self._meta.dimensions)
                mapped = _Mapped(buffer, rows, matrix)
                self._maps[segment] = mapped
        return mapped

    def search(self, queries: Vectors, k: int) -> list[list[Hit]]:
        q = check_queries(self._meta, queries, k)
        with self._reader() as conn:
            rows = int(_meta_value(conn, "rows") or 0)
            generation = int(_meta_value(conn, "generation") or 0)
            mask, live = self._live(conn, rows, generation)
            if live == 0 or q.shape[0] == 0:
                return [[] for _ in range(q.shape[0])]
            scores, found = self._scan(q, min(k, live), rows, mask)
            wanted = np.unique(found[np.isfinite(scores)])
            ids: dict[int, str] = {}
            for chunk in _chunks(wanted.tolist()):
                marks = ",".join("?" * len(chunk))
                ids.update(
                    conn.execute(
                        f"SELECT row, id FROM docs WHERE row IN ({marks})", tuple(chunk)
                    ).fetchall()
                )
        results: list[list[Hit]] = []
        for i in range(q.shape[0]):
            order = np.lexsort((found[i], -scores[i]))
            hits = [
                Hit(ids[int(found[i, j])], float(scores[i, j]))
                for j in order
                if np.isfinite(scores[i, j]) and int(found[i, j]) in ids
            ]
            results.append(hits[:k])
        return results

    def _scan(
        self, q: Vectors, k: int, rows: int, mask: npt.NDArray[np.bool_] | None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        dim = self._meta.dimensions
        row_bytes = 4 * dim
        align = _PAGE // math.gcd(_PAGE, row_bytes)  # chunks start on page boundaries
        chunk_rows = max(k, CHUNK_BYTES // row_bytes)
        chunk_rows = max(align, chunk_rows // align * align)
        block = max(1, SCORE_BYTES // (4 * chunk_rows))
        starts = range(0, q.shape[0], block)
        best: list[tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]] = [
            (
                np.empty((min(block, q.shape[0] - s), 0), np.float32),
                np.empty((min(block, q.shape[0] - s), 0), np.int64),
            )
            for s in starts
        ]
        per = self._rows_per_segment
        for seg_start in range(0, rows, per):
            seg_rows = min(per, rows - seg_start)
            mapped = self._segment(seg_start // per, seg_rows)
            for c0 in range(0, seg_rows, chunk_rows):
                c1 = min(c0 + chunk_rows, seg_rows)
                chunk = mapped.matrix[c0:c1]
                base = seg_start + c0
                dead = None
                if mask is not None:
                    dead = ~mask[base : base + chunk.shape[0]]
                    if not dead.any():
                        dead = None
                    elif dead.all():
                        continue
                for b, s in enumerate(starts):
                    scores = q[s : s + block] @ chunk.T
                    if dead is not None:
                        scores[:, dead] = -np.inf
                    if scores.shape[1] > k:
                        top = np.argpartition(scores, -k, axis=1)[:, -k:]
                        top_scores = np.take_along_axis(scores, top, axis=1)
                    else:
                        top = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
                        top_scores = scores
                    best[b] = merge_top_k(best[b][0], best[b][1], top_scores, top + base, k)
                _release(mapped.buffer, c0 * row_bytes, c1 * row_bytes)
        return np.concatenate([b[0] for b in best]), np.concatenate([b[1] for b in best])


__all__ = ["CHUNK_BYTES", "DB_NAME", "SEGMENT_BYTES", "EmbeddedIndex"]

"""The ``pgvector`` index: one PostgreSQL table per index, ``vector(DIM)`` column.

Needs the ``vector`` extension in the database (``CREATE EXTENSION vector``;
created on first use when the role may) and psycopg 3 (the ``postgres``
extra). Tables::

    cutover_vector_indexes (name PK, table_name, meta)      one row per index
    cutover_vector_state   (index_name, part, data bytea)   fitted model state
    cutover_vec_<name>_<hash> (id PK, hash, embedding vector(DIM))

Vectors are sent in pgvector's binary format. Search is exact: no ANN index
is ever created, so ``ORDER BY embedding <#> q LIMIT k`` is a scan that ranks
every row (the vectors are normalised, so the negative inner product orders
by cosine similarity). A search runs in one REPEATABLE READ transaction.

The index's ``location`` is the database URL without its password; opening
takes the password from ``CUTOVER_PGVECTOR_URL`` or ``CUTOVER_DATABASE_URL``
when they name the same database, else libpq's own (``PGPASSWORD``,
``~/.pgpass``).
"""

from __future__ import annotations

import hashlib
import re
import struct
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson
from sqlalchemy.engine import URL, make_url

from cutover.embeddings._types import Hit, IndexMeta
from cutover.embeddings.index import check_queries, check_vectors, same_model
from cutover.embeddings.models import Vectors
from cutover.errors import VectorIndexError
from cutover.settings import Settings

REGISTRY_TABLE = "cutover_vector_indexes"
STATE_TABLE = "cutover_vector_state"
_LOCK_KEY = 0x63757476656374  # "cutvect"
_SLUG = re.compile(r"[^a-z0-9]+")


def table_name(index: str) -> str:
    """The table of index ``index``: a readable slug plus a hash (unique, <= 63 chars)."""
    slug = _SLUG.sub("_", index.lower()).strip("_")[:36] or "index"
    digest = hashlib.sha256(index.encode()).hexdigest()[:10]
    return f"cutover_vec_{slug}_{digest}"


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url.strip())
    except Exception as exc:  # noqa: BLE001 - sqlalchemy raises several types here
        raise VectorIndexError(f"invalid PostgreSQL URL: {exc}", field="location") from None
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise VectorIndexError(
            f"the pgvector backend needs a PostgreSQL URL, not '{parsed.drivername}://...'",
            field="location",
            hint="postgresql://user@host:5432/db",
        )
    return parsed.set(drivername="postgresql")


def public_location(url: str) -> str:
    """``url`` as a plain ``postgresql://`` URL without its password."""
    return _parse(url).set(password=None).render_as_string(hide_password=False)


def _with_password(location: str) -> str:
    """The location, with the password of a configured URL for the same database."""
    target = _parse(location)
    settings = Settings.from_env()
    for candidate in (settings.pgvector_url, settings.database_url):
        if not candidate:
            continue
        try:
            parsed = _parse(candidate)
        except VectorIndexError:
            continue
        same = (parsed.host, parsed.port, parsed.database, parsed.username) == (
            target.host,
            target.port,
            target.database,
            target.username,
        )
        if same:
            return parsed.render_as_string(hide_password=False)
    return target.render_as_string(hide_password=False)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise VectorIndexError(
            f"the pgvector backend needs psycopg: {exc}",
            field="backend",
            hint="pip install 'cutover[postgres]'",
        ) from None
    return psycopg


def _connect(url: str) -> Any:
    psycopg = _psycopg()
    safe = public_location(url)
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
        raise VectorIndexError(f"cannot connect to '{safe}': {reason}", field="location") from None
    return conn


def _register_vector(conn: Any, location: str) -> None:
    _psycopg()
    from psycopg.adapt import Dumper
    from psycopg.pq import Format
    from psycopg.types import TypeInfo

    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        raise VectorIndexError(
            f"the database '{location}' has no 'vector' type",
            field="backend",
            hint="CREATE EXTENSION vector (pgvector) in that database",
        )

    class VectorDumper(Dumper):
        format = Format.BINARY
        oid = info.oid

        def dump(self, obj: Any) -> bytes:
            array = np.asarray(obj, dtype=">f4")
            return struct.pack(">HH", array.shape[0], 0) + array.tobytes()

    conn.adapters.register_dumper(np.ndarray, VectorDumper)


class PgVectorIndex:
    """An index in a PostgreSQL table; see the module docs."""

    def __init__(self, conn: Any, location: str, table: str, meta: IndexMeta) -> None:
        self._conn = conn
        self._location = location
        self._table = table
        self._meta = meta
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------

    @classmethod
    def create(
        cls, url: str, meta: IndexMeta, *, state: Mapping[str, bytes] | None = None
    ) -> PgVectorIndex:
        """Create the index's table (or open it when it holds the same model)."""
        location = public_location(url)
        psycopg = _psycopg()
        conn = _connect(url)
        try:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.Error as exc:
                reason = " ".join(str(exc).split())
                raise VectorIndexError(
                    f"cannot enable pgvector in '{location}': {reason}",
                    field="backend",
                    hint="install pgvector on the server and CREATE EXTENSION vector",
                ) from None
            table = table_name(meta.name)
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {REGISTRY_TABLE} ("
                    "name text PRIMARY KEY, table_name text NOT NULL, meta text NOT NULL)"
                )
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} ("
                    "index_name text NOT NULL, part text NOT NULL, data bytea NOT NULL, "
                    "PRIMARY KEY (index_name, part))"
                )
                row = conn.execute(
                    f"SELECT meta FROM {REGISTRY_TABLE} WHERE name = %s", (meta.name,)
                ).fetchone()
                if row is not None:
                    same_model(IndexMeta.from_dict(orjson.loads(row[0])), meta)
                else:
                    conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {table} ("
                        "id text PRIMARY KEY, hash text NOT NULL, "
                        f"embedding vector({int(meta.dimensions)}) NOT NULL)"
                    )
                    conn.execute(
                        f"INSERT INTO {REGISTRY_TABLE} (name, table_name, meta) VALUES (%s, %s, %s)",
                        (meta.name, table, orjson.dumps(meta.to_dict()).decode()),
                    )
                    for part, data in sorted((state or {}).items()):
                        conn.execute(
                            f"INSERT INTO {STATE_TABLE} (index_name, part, data) "
                            "VALUES (%s, %s, %s)",
                            (meta.name, part, data),
                        )
        finally:
            conn.close()
        return cls.open(url, meta.name)

    @classmethod
    def open(cls, url: str, name: str) -> PgVectorIndex:
        location = public_location(url)
        psycopg = _psycopg()
        conn = _connect(url if _parse(url).password else _with_password(url))
        try:
            row = conn.execute(
                f"SELECT table_name, meta FROM {REGISTRY_TABLE} WHERE name = %s", (name,)
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            row = None
        except psycopg.Error as exc:
            conn.close()
            raise VectorIndexError(f"cannot read '{location}': {exc}") from None
        if row is None:
            conn.close()
            raise VectorIndexError(f"no pgvector index '{name}' in '{location}'", field="index")
        try:
            _register_vector(conn, location)
        except BaseException:
            conn.close()
            raise
        return cls(conn, location, str(row[0]), IndexMeta.from_dict(orjson.loads(row[1])))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> PgVectorIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def meta(self) -> IndexMeta:
        return self._meta

    @property
    def location(self) -> str:
        return self._location

    # -- writes ----------------------------------------------------------------

    def upsert(
        self, ids: Sequence[str], hashes: Sequence[str], vectors: Vectors, *, model_identity: str
    ) -> None:
        rows = check_vectors(self._meta, ids, hashes, vectors, model_identity)
        if not len(ids):
            return
        sql = (
            f"INSERT INTO {self._table} (id, hash, embedding) VALUES (%s, %s, %b) "
            "ON CONFLICT (id) DO UPDATE SET hash = EXCLUDED.hash, embedding = EXCLUDED.embedding"
        )
        with self._lock, self._conn.transaction(), self._conn.cursor() as cur:
            cur.executemany(
                sql, [(doc, h, rows[i]) for i, (doc, h) in enumerate(zip(ids, hashes, strict=True))]
            )

    def delete(self, ids: Sequence[str]) -> int:
        with self._lock, self._conn.transaction():
            cursor = self._conn.execute(
                f"DELETE FROM {self._table} WHERE id = ANY(%s)", (list(dict.fromkeys(ids)),)
            )
            return int(cursor.rowcount)

    def write_meta(self, meta: IndexMeta) -> None:
        same_model(self._meta, meta)
        with self._lock:
            self._conn.execute(
                f"UPDATE {REGISTRY_TABLE} SET meta = %s WHERE name = %s",
                (orjson.dumps(meta.to_dict()).decode(), meta.name),
            )
            self._meta = meta

    def drop(self) -> None:
        retired = self._meta.evolve(status="retired")
        with self._lock, self._conn.transaction():
            self._conn.execute(f"DROP TABLE IF EXISTS {self._table}")
            self._conn.execute(f"DELETE FROM {STATE_TABLE} WHERE index_name = %s", (retired.name,))
            self._conn.execute(
                f"UPDATE {REGISTRY_TABLE} SET meta = %s WHERE name = %s",
                (orjson.dumps(retired.to_dict()).decode(), retired.name),
            )
        self._meta = retired

    # -- reads -----------------------------------------------------------------

    def known(self, ids: Sequence[str]) -> dict[str, str]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT id, hash FROM {self._table} WHERE id = ANY(%s)",
                (list(dict.fromkeys(ids)),),
            ).fetchall()
        return {str(doc): str(h) for doc, h in rows}

    def count(self) -> int:
        if self._meta.status == "retired":
            return 0
        with self._lock:
            row = self._conn.execute(f"SELECT count(*) FROM {self._table}").fetchone()
        return int(row[0])

    def load_state(self) -> dict[str, bytes]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT part, data FROM {STATE_TABLE} WHERE index_name = %s", (self._meta.name,)
            ).fetchall()
        return {str(part): bytes(data) for part, data in rows}

    def search(self, queries: Vectors, k: int) -> list[list[Hit]]:
        q = check_queries(self._meta, queries, k)
        sql = (
            f"SELECT id, -(embedding <#> %b) AS score FROM {self._table} "
            "ORDER BY score DESC, id LIMIT %s"
        )
        results: list[list[Hit]] = []
        with self._lock, self._conn.transaction():
            self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            with self._conn.cursor() as cur:
                for row in q:
                    cur.execute(sql, (row, k))
                    results.append([Hit(str(doc), float(score)) for doc, score in cur.fetchall()])
        return results


__all__ = ["REGISTRY_TABLE", "STATE_TABLE", "PgVectorIndex", "public_location", "table_name"]

"""The Store: runs, cases, observations, pairs and the response cache.

SQLite (WAL) by default, PostgreSQL (psycopg 3) when several processes write.
Every public method is one short transaction; writes on SQLite take the write
lock up front (``BEGIN IMMEDIATE``) so concurrent writers wait for each other
(``busy_timeout``) instead of failing with "database is locked". Long reads
(:meth:`Store.iter_pairs`, :meth:`Store.iter_observations`) page through the
run by case position (range scans of ``(run_id, idx)`` indexes), one short
transaction per page, so memory stays flat and no lock is held while the
caller works on a page.
"""

from __future__ import annotations

import math
import re
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic.util.exc import CommandError
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, Row, make_url
from sqlalchemy.sql.dml import Insert

from cutover.errors import StoreError
from cutover.records import Observation, Pair
from cutover.settings import Settings
from cutover.store import migrations
from cutover.store._embeddings import EmbeddingRegistryMixin
from cutover.store._gateway import GatewayLogMixin
from cutover.store._rollouts import RolloutMixin
from cutover.store._routes import RouteStateMixin
from cutover.store._schema import (
    ARMS,
    OBSERVATION_COLUMNS,
    PAIR_CASE_COLUMNS,
    RUN_KINDS,
    RUN_STATUSES,
    ObservationRow,
    RunInfo,
    case_values,
    cases,
    group_pairs,
    observation_from_row,
    observation_values,
    observations,
    pairs,
    response_cache,
    run_info_from_row,
    runs,
    targets,
    utcnow,
)
from cutover.suites._case import Case
from cutover.targets import Target

_FINISHED = frozenset({"complete", "failed"})
_CHUNK = 500
"""Rows per executemany, keys per IN list (under SQLite's old 999-variable limit)."""
_MIGRATION_LOCK = 0x6375746F766572
"""pg_advisory_lock key held while migrating ("cutover" in ASCII)."""
_ANALYZE_AFTER = 5000
"""Rows added at once after which PostgreSQL's statistics are refreshed."""
_WRITE = "cutover_write"
"""Execution option: this SQLite transaction writes, so BEGIN IMMEDIATE."""
_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@/\s]*@")

_T = TypeVar("_T")


def mask_url(text: str) -> str:
    """``text`` with the password of any URL in it replaced by ``***``."""
    return _PASSWORD.sub(r"\1***@", text)


def _reason(exc: BaseException) -> str:
    """The database's own words for ``exc``, on one line, without passwords."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc)
    if orig is None and isinstance(exc, sa_exc.StatementError):
        text = text.split("\n[SQL:", 1)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return mask_url("; ".join(lines) or type(exc).__name__)


def normalize_url(url: str) -> URL:
    """Parse ``url``: PostgreSQL goes through psycopg 3, SQLite paths become absolute."""
    try:
        parsed = make_url(url.strip())
    except (sa_exc.ArgumentError, ValueError) as exc:
        raise StoreError(f"invalid database URL '{mask_url(url)}': {_reason(exc)}") from None
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            parsed = parsed.set(database=str(Path(database).expanduser().absolute()))
    elif backend != "postgresql":
        raise StoreError(
            f"unsupported database '{parsed.render_as_string(hide_password=True)}': "
            "use sqlite:///path/to/file.db or postgresql://user@host/db"
        )
    return parsed


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver must not BEGIN on its own; _sqlite_on_begin does (see module doc).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        try:  # built into SQLite 3.35+ when compiled with math functions (most are)
            cursor.execute("SELECT ln(2.0), floor(1.5)")
        except sqlite3.OperationalError:
            register_math(dbapi_connection)
    finally:
        cursor.close()


def register_math(dbapi_connection: Any) -> None:
    """``ln`` and ``floor`` for a SQLite built without its math functions (the rollout
    window bins latencies with them, :meth:`~cutover.store.Store.gateway_window`)."""

    def ln(x: float | None) -> float | None:
        return math.log(x) if x is not None and x > 0 else None

    def floor(x: float | None) -> int | None:
        return math.floor(x) if x is not None else None

    dbapi_connection.create_function("ln", 1, ln, deterministic=True)
    dbapi_connection.create_function("floor", 1, floor, deterministic=True)


def _sqlite_on_begin(conn: Connection) -> None:
    writes = bool(conn.get_execution_options().get(_WRITE))
    conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


def _create_engine(url: URL) -> Engine:
    safe = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            try:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot open store '{safe}': cannot create directory "
                    f"'{Path(database).parent}': {exc.strerror or exc}"
                ) from None
        engine = sa.create_engine(url)
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        sa.event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = 10
    try:
        return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    except ImportError as exc:
        raise StoreError(
            f"cannot open store '{safe}': {exc}; install the driver with "
            "pip install 'cutover[postgres]'"
        ) from None


def _chunks(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


class Store(GatewayLogMixin, RouteStateMixin, EmbeddingRegistryMixin, RolloutMixin):
    """The database of runs, cases, observations, pairs and cached responses.

    Open with :meth:`Store.open` (or :func:`cutover.store.open_store`); use as
    a context manager or call :meth:`close`.
    """

    def __init__(self, engine: Engine, url: URL) -> None:
        self._engine = engine
        self._url = url
        self.url = url.render_as_string(hide_password=False)
        """The normalized URL (it may hold a password: print :attr:`safe_url`)."""

    # -- lifecycle -----------------------------------------------------------

    @classmethod
    def open(cls, url: str | None = None) -> Store:
        """Open (and migrate to the newest schema) the store at ``url``.

        ``None`` takes ``CUTOVER_DATABASE_URL``, else ``<CUTOVER_HOME>/cutover.db``.
        """
        raw = url if url is not None else Settings.from_env().database_url
        parsed = normalize_url(raw)
        engine = _create_engine(parsed)
        store = cls(engine, parsed)
        try:
            store._migrate()
        except BaseException:
            engine.dispose()
            raise
        return store

    @property
    def safe_url(self) -> str:
        """The URL with its password masked."""
        return self._url.render_as_string(hide_password=True)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for tools that need raw access)."""
        return self._engine

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.safe_url!r})"

    def _migrate(self) -> None:
        head = migrations.head_revision()
        try:
            with self._engine.connect() as conn:
                if migrations.current_revision(conn) == head:
                    return
            if self.dialect == "postgresql":
                self._migrate_postgres()
            else:
                # BEGIN IMMEDIATE: a second process opening the same new file
                # waits here, then finds the schema at head.
                with self._engine.connect() as conn:
                    conn.execution_options(**{_WRITE: True})
                    with conn.begin():
                        migrations.upgrade(conn)
        except (sa_exc.SQLAlchemyError, CommandError, OSError) as exc:
            reason = _reason(exc)
            if isinstance(exc, CommandError) and "Can't locate revision" in reason:
                reason += " (the database was migrated by a newer cutover: upgrade cutover)"
            raise StoreError(f"cannot open store '{self.safe_url}': {reason}") from exc

    def _migrate_postgres(self) -> None:
        lock = sa.select(sa.func.pg_advisory_lock(_MIGRATION_LOCK))
        unlock = sa.select(sa.func.pg_advisory_unlock(_MIGRATION_LOCK))
        with self._engine.connect() as conn:
            conn.execute(lock)
            conn.commit()
            try:
                with conn.begin():
                    migrations.upgrade(conn)
            finally:
                try:
                    conn.execute(unlock)
                    conn.commit()
                except sa_exc.SQLAlchemyError:
                    # Closing the session is what releases the lock then.
                    conn.invalidate()

    # -- plumbing ------------------------------------------------------------

    @contextmanager
    def _transaction(self, action: str, *, write: bool) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(**{_WRITE: True})
                with conn.begin():
                    yield conn
        except sa_exc.SQLAlchemyError as exc:
            raise StoreError(f"{action} failed on '{self.safe_url}': {_reason(exc)}") from exc

    def _insert_ignore(self, table: sa.Table, keys: Sequence[str]) -> Insert:
        if self.dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(keys))
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(keys))

    def _upsert(self, table: sa.Table, keys: Sequence[str], update: Sequence[str]) -> Insert:
        if self.dialect == "postgresql":
            pg = postgresql.insert(table)
            return pg.on_conflict_do_update(
                index_elements=list(keys), set_={c: pg.excluded[c] for c in update}
            )
        lite = sqlite.insert(table)
        return lite.on_conflict_do_update(
            index_elements=list(keys), set_={c: lite.excluded[c] for c in update}
        )

    # -- targets and runs ----------------------------------------------------

    def upsert_target(self, target: Target) -> str:
        """Record ``target`` under its key (label and spec refreshed); return the key."""
        now = utcnow()
        values = {
            "key": target.key,
            "spec": target.spec,
            "provider": target.provider,
            "model": target.model,
            "base_url": target.base_url,
            "prompt_version": target.prompt_version,
            "system": target.system,
            "label": target.label,
            "params": dict(target.params),
            "simulated": target.simulated,
            "created_at": now,
            "updated_at": now,
        }
        update = [k for k in values if k not in ("key", "created_at")]
        with self._transaction("recording a target", write=True) as conn:
            conn.execute(self._upsert(targets, ["key"], update), values)
        return target.key

    def create_run(
        self,
        *,
        fingerprint: str,
        kind: str,
        old_target: str,
        new_target: str,
        old_label: str,
        new_label: str,
        repeats: int = 1,
        suite_name: str | None = None,
        suite_path: str | None = None,
        suite_hash: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> RunInfo:
        """Start a run (status ``running``)."""
        if kind not in RUN_KINDS:
            raise ValueError(f"kind must be one of {RUN_KINDS}, not {kind!r}")
        if repeats < 1:
            raise ValueError(f"repeats must be at least 1, not {repeats}")
        info = RunInfo(
            id=uuid.uuid4().hex,
            created_at=utcnow(),
            finished_at=None,
            status="running",
            fingerprint=fingerprint,
            kind=kind,
            suite_name=suite_name,
            suite_path=suite_path,
            suite_hash=suite_hash,
            old_target=old_target,
            new_target=new_target,
            old_label=old_label,
            new_label=new_label,
            repeats=repeats,
            meta=dict(meta or {}),
        )
        values = {name: getattr(info, name) for name in info.__dataclass_fields__}
        with self._transaction("creating a run", write=True) as conn:
            conn.execute(runs.insert(), values)
        return info

    def find_resumable_run(self, fingerprint: str) -> RunInfo | None:
        """The newest run with ``fingerprint`` that did not complete."""
        query = (
            sa.select(runs)
            .where(runs.c.fingerprint == fingerprint, runs.c.status != "complete")
            .order_by(runs.c.created_at.desc(), runs.c.id.desc())
            .limit(1)
        )
        with self._transaction("finding a resumable run", write=False) as conn:
            row = conn.execute(query).first()
        return run_info_from_row(row) if row is not None else None

    def run_cost(self, run_id: str, arm: str) -> float:
        """The summed ``cost_usd`` of one arm's Observations in a run (0 when none)."""
        o = observations
        query = sa.select(sa.func.coalesce(sa.func.sum(o.c.cost_usd), 0.0)).where(
            o.c.run_id == run_id, o.c.arm == arm
        )
        with self._transaction("summing a run's cost", write=False) as conn:
            return float(conn.execute(query).scalar_one())

    def get_run(self, run_id: str) -> RunInfo | None:
        """The run with id ``run_id``, or the one run whose id starts with it (>= 6 chars)."""
        with self._transaction("reading a run", write=False) as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
            if row is None and len(run_id) >= 6:
                found = conn.execute(
                    sa.select(runs).where(runs.c.id.startswith(run_id, autoescape=True)).limit(2)
                ).all()
                row = found[0] if len(found) == 1 else None
        return run_info_from_row(row) if row is not None else None

    def list_runs(self, limit: int = 20) -> list[RunInfo]:
        """The newest ``limit`` runs, newest first."""
        query = sa.select(runs).order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(limit)
        with self._transaction("listing runs", write=False) as conn:
            return [run_info_from_row(row) for row in conn.execute(query)]

    def set_run_status(self, run_id: str, status: str) -> None:
        """Set the status; ``complete`` and ``failed`` also stamp ``finished_at``."""
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {RUN_STATUSES}, not {status!r}")
        finished = utcnow() if status in _FINISHED else None
        stmt = (
            sa.update(runs).where(runs.c.id == run_id).values(status=status, finished_at=finished)
        )
        with self._transaction("updating a run", write=True) as conn:
            updated = conn.execute(stmt).rowcount
        if updated == 0:
            raise StoreError(f"no run '{run_id}' in '{self.safe_url}'")

    # -- cases and observations ----------------------------------------------

    def add_cases(self, run_id: str, cases_: Iterable[Case]) -> None:
        """Add the cases of a run in order; cases already there are left alone."""
        stmt = self._insert_ignore(cases, ["run_id", "case_id"])
        rows = (case_values(run_id, idx, case) for idx, case in enumerate(cases_))
        sent = 0
        with self._transaction("adding cases", write=True) as conn:
            for chunk in _chunks(rows, _CHUNK):
                conn.execute(stmt, chunk)
                sent += len(chunk)
        if sent >= _ANALYZE_AFTER:
            self._analyze("cases")

    def _analyze(self, table: str) -> None:
        """Refresh PostgreSQL's statistics after a bulk load, so the next plans are right.

        (Without them the planner takes a fresh run for a few rows and scans.)
        """
        if self.dialect == "postgresql":
            with self._transaction(f"analyzing {table}", write=True) as conn:
                conn.exec_driver_sql(f"ANALYZE {table}")

    def case_count(self, run_id: str) -> int:
        query = sa.select(sa.func.count()).select_from(cases).where(cases.c.run_id == run_id)
        with self._transaction("counting cases", write=False) as conn:
            return int(conn.scalar(query) or 0)

    def observation_status(self, run_id: str) -> dict[tuple[str, str, int], bool]:
        """``(case_id, arm, repeat) -> ok`` for every observation of the run."""
        query = sa.select(
            observations.c.case_id,
            observations.c.arm,
            observations.c.repeat,
            observations.c.error.is_(None),
        ).where(observations.c.run_id == run_id)
        with self._transaction("reading observation status", write=False) as conn:
            return {(c, a, r): bool(ok) for c, a, r, ok in conn.execute(query)}

    def write_observations(self, run_id: str, rows: Sequence[ObservationRow]) -> None:
        """Write ``rows`` in one transaction, replacing earlier ones for the same slot.

        Every case must have been added (:meth:`add_cases`) first.
        """
        if not rows:
            return
        now = utcnow()
        values = [observation_values(run_id, row, now) for row in rows]
        keys = ["run_id", "case_id", "arm", "repeat"]
        update = [c.name for c in observations.columns if c.name not in ("id", *keys)]
        stmt = self._upsert(observations, keys, update)
        action = "writing observations"
        with self._transaction(action, write=True) as conn:
            for chunk in _chunks(values, _CHUNK):
                # The case position rides along so pages are read from one index.
                wanted = list({v["case_id"] for v in chunk})
                found = conn.execute(
                    sa.select(cases.c.case_id, cases.c.idx).where(
                        cases.c.run_id == run_id, cases.c.case_id.in_(wanted)
                    )
                )
                positions: dict[str, int] = {case_id: idx for case_id, idx in found}
                missing = sorted(c for c in wanted if c not in positions)
                if missing:
                    raise StoreError(
                        f"{action} failed on '{self.safe_url}': run {run_id} has no case "
                        f"{', '.join(map(repr, missing[:5]))}"
                        f"{' and more' if len(missing) > 5 else ''} (add_cases first)"
                    )
                for v in chunk:
                    v["idx"] = positions[v["case_id"]]
                conn.execute(stmt, chunk)

    # -- response cache ------------------------------------------------------

    def cache_get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Cached payloads (``Observation.to_dict()``) for the keys that have one."""
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(keys))
        if not unique:
            return found
        col = response_cache.c
        with self._transaction("reading the response cache", write=False) as conn:
            for chunk in _chunks(unique, _CHUNK):
                query = sa.select(col.key, col.payload).where(col.key.in_(chunk))
                found.update({key: payload for key, payload in conn.execute(query)})
        return found

    def cache_put_many(self, items: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        """Cache ``(key, target_key, payload)`` items; keys already cached are kept."""
        if not items:
            return
        now = utcnow()
        values = [
            {"key": key, "target_key": target_key, "payload": payload, "created_at": now}
            for key, target_key, payload in items
        ]
        stmt = self._insert_ignore(response_cache, ["key"])
        with self._transaction("writing the response cache", write=True) as conn:
            for chunk in _chunks(values, _CHUNK):
                conn.execute(stmt, chunk)

    # -- pairs ---------------------------------------------------------------

    def build_pairs(self, run_id: str) -> int:
        """(Re)build the ``pairs`` rows of a run: every (case, repeat) with both arms."""
        old = observations.alias("old_obs")
        new = observations.alias("new_obs")
        joined = old.join(
            new,
            sa.and_(
                new.c.run_id == old.c.run_id,
                new.c.case_id == old.c.case_id,
                new.c.repeat == old.c.repeat,
                new.c.arm == "new",
            ),
        )
        source = (
            sa.select(old.c.run_id, old.c.case_id, old.c.repeat, old.c.id, new.c.id)
            .select_from(joined)
            .where(old.c.run_id == run_id, old.c.arm == "old")
        )
        target_cols = ["run_id", "case_id", "repeat", "old_observation_id", "new_observation_id"]
        count = sa.select(sa.func.count()).select_from(pairs).where(pairs.c.run_id == run_id)
        self._analyze("observations")
        with self._transaction("building pairs", write=True) as conn:
            conn.execute(sa.delete(pairs).where(pairs.c.run_id == run_id))
            conn.execute(pairs.insert().from_select(target_cols, source))
            return int(conn.scalar(count) or 0)

    def _pages(
        self, run_id: str, batch_size: int, arm: str | None, action: str
    ) -> Iterator[tuple[dict[str, Row[Any]], Sequence[Row[Any]]]]:
        """The run read a page of ``batch_size`` case positions at a time.

        Each page is ``(cases by id, observations)``; observations are ordered
        by case position (``idx``, then case id), repeat, arm. Both reads are
        range scans of a ``(run_id, idx)`` index, whatever the planner knows.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        obs, case = observations.c, cases.c
        last: int | None = None
        while True:
            # The page ends at the batch_size-th next position (or the end).
            upper = sa.select(case.idx).where(case.run_id == run_id)
            if last is not None:
                upper = upper.where(case.idx > last)
            upper = upper.order_by(case.idx).offset(batch_size - 1).limit(1)
            with self._transaction(action, write=False) as conn:
                hi: int | None = conn.scalar(upper)
                obs_query = sa.select(*OBSERVATION_COLUMNS).where(obs.run_id == run_id)
                case_query = sa.select(*PAIR_CASE_COLUMNS).where(case.run_id == run_id)
                if last is not None:
                    obs_query = obs_query.where(obs.idx > last)
                    case_query = case_query.where(case.idx > last)
                if hi is not None:
                    obs_query = obs_query.where(obs.idx <= hi)
                    case_query = case_query.where(case.idx <= hi)
                if arm is not None:
                    obs_query = obs_query.where(obs.arm == arm)
                order = (obs.idx, obs.case_id, obs.repeat, obs.arm)
                found = conn.execute(obs_query.order_by(*order)).all()
                by_id: dict[str, Row[Any]] = {}
                if found and arm is None:
                    by_id = {row.case_id: row for row in conn.execute(case_query)}
            if found:
                yield by_id, found
            if hi is None:
                return
            last = hi

    def iter_pairs(self, run_id: str, *, batch_size: int = 1000) -> Iterator[Pair]:
        """Every (case, repeat) with at least one observation, in case order.

        A side without an observation is ``None``. Pages of ``batch_size``
        cases are read one at a time, so memory does not grow with the run.
        """
        for by_id, rows in self._pages(run_id, batch_size, None, "reading pairs"):
            yield from group_pairs(by_id, rows)

    def iter_observations(self, run_id: str, arm: str) -> Iterator[Observation]:
        """The observations of one arm, in case order then repeat."""
        if arm not in ARMS:
            raise ValueError(f"arm must be one of {ARMS}, not {arm!r}")
        for _, rows in self._pages(run_id, 1000, arm, "reading observations"):
            for row in rows:
                yield observation_from_row(row)


__all__ = ["Store", "mask_url", "normalize_url"]

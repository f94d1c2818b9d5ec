"""Shared fixtures: an isolated CUTOVER_HOME and the databases the store runs on.

Services: PostgreSQL at 127.0.0.1:5432 (user ``postgres``, trust auth) and
Redis at 127.0.0.1:6379. A test that needs one SKIPS, with the reason, when
it is not reachable, unless ``CUTOVER_REQUIRE_SERVICES`` is set (as in CI),
in which case it FAILS. Tests that use ``postgres_url`` (also through
``store_url``) carry the ``postgres`` marker; those that use ``redis_url``
carry ``redis``. Run ``pytest -m "not postgres"`` to leave PostgreSQL out.

``pgvector_url`` (also ``postgres``-marked) is a fresh database with the
``vector`` extension, on the first of: ``CUTOVER_PGVECTOR_URL``; the
PostgreSQL above when it has pgvector; a throwaway PostgreSQL 16 + pgvector
from the ``pgserver`` wheel's binaries (:mod:`cutover.testing.postgres`;
Debian bookworm packages no pgvector for its PostgreSQL 15).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from cutover.settings import Settings

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_ADMIN_DSN = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=test connect_timeout=5"
REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "redis: needs the Redis service (127.0.0.1:6379)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "postgres_url" in names or "pgvector_url" in names:
            item.add_marker(pytest.mark.postgres)
        if "redis_url" in names:
            item.add_marker(pytest.mark.redis)


def service_unavailable(what: str, error: str) -> NoReturn:
    """Skip (or, with CUTOVER_REQUIRE_SERVICES set, fail) a test that needs ``what``."""
    reason = f"{what}: {error}"
    if Settings.from_env().require_services:
        pytest.fail(f"{reason} (CUTOVER_REQUIRE_SERVICES is set)", pytrace=False)
    pytest.skip(f"{reason}; set CUTOVER_REQUIRE_SERVICES=1 to make this a failure")


def _one_line(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__


@pytest.fixture(autouse=True)
def cutover_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own CUTOVER_HOME and no CUTOVER_DATABASE_URL."""
    home = tmp_path_factory.mktemp("cutover-home")
    monkeypatch.setenv("CUTOVER_HOME", str(home))
    monkeypatch.delenv("CUTOVER_DATABASE_URL", raising=False)
    return home


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'store' / 'cutover.db'}"


def postgres_problem(dsn: str = PG_ADMIN_DSN) -> str | None:
    """Why PostgreSQL at ``dsn`` cannot be used, or None when it can."""
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not installed ({exc})"
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except (psycopg.Error, OSError) as exc:
        return _one_line(exc)
    return None


@pytest.fixture(scope="session")
def _postgres_error() -> str | None:
    """Checked once per session."""
    return postgres_problem()


@pytest.fixture
def postgres_url(_postgres_error: str | None) -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database, dropped (FORCE) afterwards."""
    if _postgres_error is not None:
        service_unavailable(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}", _postgres_error)
    import psycopg
    from psycopg import sql

    name = f"cutover_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def store_url(request: pytest.FixtureRequest) -> str:
    """A fresh database URL on each backend the store supports."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url = request.getfixturevalue(fixture)
    assert isinstance(url, str)
    return url


@pytest.fixture(scope="session")
def _pgvector_server() -> Iterator[tuple[str | None, str | None]]:
    """``(admin URL, None)`` of a PostgreSQL with pgvector, or ``(None, why not)``."""
    configured = Settings.from_env().pgvector_url
    if configured:
        yield configured, None
        return
    problems: list[str] = []
    problem = postgres_problem()
    if problem is None:
        import psycopg

        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
            ).fetchone()
        if found is not None:
            yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test", None
            return
        problems.append(f"{PG_HOST}:{PG_PORT} has no pgvector extension")
    else:
        problems.append(f"{PG_HOST}:{PG_PORT}: {problem}")
    from cutover.testing.postgres import LocalPostgres, LocalPostgresError, bundled_bin_dir

    if bundled_bin_dir() is None:
        problems.append("pgserver (dev extra) is not installed")
        yield None, "; ".join(problems)
        return
    server = LocalPostgres()
    try:
        url = server.start()
    except LocalPostgresError as exc:
        problems.append(f"bundled PostgreSQL: {_one_line(exc)}")
        yield None, "; ".join(problems)
        return
    try:
        yield url, None
    finally:
        server.stop()


@pytest.fixture
def pgvector_url(_pgvector_server: tuple[str | None, str | None]) -> Iterator[str]:
    """A fresh database with the ``vector`` extension, dropped afterwards.

    Without the right to create databases (a ``CUTOVER_PGVECTOR_URL`` of a
    plain role), the configured database itself is used.
    """
    admin, why = _pgvector_server
    if admin is None:
        service_unavailable("PostgreSQL with pgvector", why or "unavailable")
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = f"cutover_vec_{uuid.uuid4().hex[:16]}"
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        yield admin
        return
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def redis_problem(host: str = REDIS_HOST, port: int = REDIS_PORT) -> str | None:
    """Why Redis at ``host:port`` cannot be used (a raw PING), or None when it can."""
    try:
        with socket.create_connection((host, port), timeout=3) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = sock.recv(128)
    except OSError as exc:
        return _one_line(exc)
    if not reply.startswith(b"+PONG"):
        return f"unexpected reply to PING: {reply.decode(errors='replace').strip()!r}"
    return None


@pytest.fixture(scope="session")
def _redis_error() -> str | None:
    """Checked once per session."""
    return redis_problem()


@pytest.fixture
def redis_url(_redis_error: str | None) -> str:
    """The Redis service's URL (database 0)."""
    if _redis_error is not None:
        service_unavailable(f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT}", _redis_error)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"

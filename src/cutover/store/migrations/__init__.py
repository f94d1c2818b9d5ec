"""The store's numbered Alembic migrations, run from code (no alembic.ini).

``versions/0001_initial.py`` and its successors are plain modules of this
package, so they ship with it. Every helper takes a SQLAlchemy connection;
when the connection is already inside a transaction the migration runs in it
and the caller commits (this is how :meth:`cutover.store.Store.open` wraps an
upgrade in a lock).

To write the next migration from a changed ``_schema.py``::

    from alembic import command
    from sqlalchemy import create_engine
    from cutover.store.migrations import alembic_config

    engine = create_engine("sqlite:////tmp/scratch.db")
    with engine.begin() as conn:
        upgrade(conn)
        command.revision(alembic_config(conn), "what changed", autogenerate=True,
                         rev_id="0002")

then review the generated file (``render_as_batch`` is on for SQLite).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from cutover.store._schema import VERSION_TABLE

MIGRATIONS_DIR = Path(__file__).resolve().parent
"""Where ``env.py``, ``script.py.mako`` and ``versions/`` live."""


def alembic_config(connection: Connection | None = None, *, url: str | None = None) -> Config:
    """An Alembic Config built in code, bound to ``connection`` (or ``url``)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    """The newest migration shipped with this version of cutover."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The migration the database is at (``None``: nothing applied yet)."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    command.upgrade(alembic_config(connection), revision)


def downgrade(connection: Connection, revision: str = "base") -> None:
    """Revert migrations down to ``revision`` (``base``: drop every table)."""
    command.downgrade(alembic_config(connection), revision)


__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "downgrade",
    "head_revision",
    "upgrade",
]

"""Settings: the one place cutover reads its environment.

Every other module takes a :class:`Settings` (or the values it holds) as an
argument; nothing else reads ``os.environ``. Nothing is cached: call
:meth:`Settings.from_env` where the values are needed.

=========================  ===================================================
``CUTOVER_HOME``           where cutover keeps its files (``~/.cutover``)
``CUTOVER_DATABASE_URL``   the store (``sqlite:///<home>/cutover.db``);
                           ``postgresql://user:pw@host/db`` for several
                           processes
``CUTOVER_REQUIRE_SERVICES``  ``1``/``true``/``yes``: tests that need
                           PostgreSQL or Redis fail instead of skipping
``CUTOVER_PGVECTOR_URL``   the PostgreSQL database (with the ``vector``
                           extension) for ``pgvector`` embedding indexes;
                           default: the store's, when it is PostgreSQL
``USER`` / ``LOGNAME``     who is named in audit events when no actor is given
=========================  ===================================================

Embedding indexes of the ``embedded`` backend live under
``<CUTOVER_HOME>/indexes/<name>/`` (:attr:`Settings.indexes_dir`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_TRUE = frozenset({"1", "true", "yes"})


@dataclass(frozen=True, slots=True)
class Settings:
    """What cutover reads from the environment, read once per call."""

    home: Path
    database_url: str
    require_services: bool = False
    pgvector_url: str | None = None
    user: str = ""

    @property
    def indexes_dir(self) -> Path:
        """Where ``embedded`` embedding indexes live: ``<home>/indexes``."""
        return self.home / "indexes"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``env`` (default: ``os.environ``)."""
        source: Mapping[str, str] = os.environ if env is None else env
        raw_home = source.get("CUTOVER_HOME", "").strip()
        home = Path(raw_home).expanduser() if raw_home else Path.home() / ".cutover"
        home = home.absolute()
        database_url = source.get("CUTOVER_DATABASE_URL", "").strip()
        if not database_url:
            database_url = f"sqlite:///{home / 'cutover.db'}"
        require = source.get("CUTOVER_REQUIRE_SERVICES", "").strip().lower() in _TRUE
        pgvector_url = source.get("CUTOVER_PGVECTOR_URL", "").strip() or None
        user = (source.get("USER") or source.get("LOGNAME") or "").strip()
        return cls(
            home=home,
            database_url=database_url,
            require_services=require,
            pgvector_url=pgvector_url,
            user=user,
        )


__all__ = ["Settings"]

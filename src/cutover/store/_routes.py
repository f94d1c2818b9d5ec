"""The gateway's route state in the store: weights shared by replicas, and the audit.

A mixin of :class:`~cutover.store.Store`; every method is one short transaction.
The table is the source of truth once a route is in it: the config's weight
only seeds a route that is not there yet (:meth:`RouteStateMixin.seed_gateway_routes`).
On PostgreSQL a change sends ``NOTIFY cutover_routes, '<alias>'`` in the same
transaction, so listeners hear it exactly when it commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from cutover.store._schema import JSONText, UTCDateTime, metadata, utcnow

ROUTES_CHANNEL = "cutover_routes"
"""The PostgreSQL NOTIFY channel; the payload is the changed route's alias."""

gateway_routes = sa.Table(  # 0004
    "gateway_routes",
    metadata,
    sa.Column("alias", sa.Text, primary_key=True),
    sa.Column("weight", sa.Float, nullable=False),
    sa.Column("candidate", sa.Text, nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("updated_by", sa.Text, nullable=False),
)

gateway_audit = sa.Table(  # 0004
    "gateway_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("alias", sa.Text, nullable=False),
    sa.Column("before", JSONText, nullable=True),
    sa.Column("after", JSONText, nullable=True),
    sa.Index("ix_gateway_audit_ts", "ts"),
)


@dataclass(frozen=True, slots=True)
class RouteRow:
    """One route's shared state."""

    alias: str
    weight: float
    candidate: str | None
    """The candidate's ``provider:model[@url]`` (never a key), or ``None``."""
    version: int
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One change to a route: who, when, what, before and after."""

    id: int
    ts: datetime
    actor: str
    action: str
    alias: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def _route(row: Any) -> RouteRow:
    m = row._mapping
    return RouteRow(
        alias=str(m["alias"]),
        weight=float(m["weight"]),
        candidate=m["candidate"],
        version=int(m["version"]),
        updated_at=m["updated_at"],
        updated_by=str(m["updated_by"]),
    )


def _state(row: RouteRow) -> dict[str, Any]:
    return {"weight": row.weight, "version": row.version, "candidate": row.candidate}


class RouteStateMixin:
    """Store methods for the gateway's shared route state."""

    if TYPE_CHECKING:

        @property
        def dialect(self) -> str: ...

        def _transaction(
            self, action: str, *, write: bool
        ) -> AbstractContextManager[Connection]: ...

        def _insert_ignore(self, table: sa.Table, keys: Sequence[str]) -> Insert: ...

    def seed_gateway_routes(self, seeds: Sequence[tuple[str, float, str | None]]) -> None:
        """Insert ``(alias, weight, candidate)`` for each alias not stored yet.

        A stored route is left as it is: the store, not the config, is the source
        of truth once a route has been seeded.
        """
        if not seeds:
            return
        now = utcnow()
        values = [
            {
                "alias": alias,
                "weight": float(weight),
                "candidate": candidate,
                "version": 1,
                "updated_at": now,
                "updated_by": "config",
            }
            for alias, weight, candidate in seeds
        ]
        insert = self._insert_ignore(gateway_routes, ["alias"])
        with self._transaction("seeding the gateway routes", write=True) as conn:
            conn.execute(insert, values)

    def gateway_routes(self) -> list[RouteRow]:
        """Every stored route, by alias."""
        query = sa.select(gateway_routes).order_by(gateway_routes.c.alias)
        with self._transaction("reading the gateway routes", write=False) as conn:
            return [_route(row) for row in conn.execute(query)]

    def gateway_route(self, alias: str) -> RouteRow | None:
        """One stored route, or ``None``."""
        query = sa.select(gateway_routes).where(gateway_routes.c.alias == alias)
        with self._transaction("reading a gateway route", write=False) as conn:
            row = conn.execute(query).one_or_none()
        return None if row is None else _route(row)

    def set_gateway_route_weight(
        self, alias: str, weight: float, *, actor: str, action: str
    ) -> tuple[RouteRow, RouteRow] | None:
        """Set the route's weight (version + 1), audited; ``(before, after)`` or ``None``.

        ``None`` when the route is not stored. On PostgreSQL the change is
        announced on :data:`ROUTES_CHANNEL` when the transaction commits.
        """
        t = gateway_routes
        with self._transaction("changing a gateway route", write=True) as conn:
            row = conn.execute(
                sa.select(t).where(t.c.alias == alias).with_for_update()
            ).one_or_none()
            if row is None:
                return None
            before = _route(row)
            now = utcnow()
            after = RouteRow(
                alias=alias,
                weight=float(weight),
                candidate=before.candidate,
                version=before.version + 1,
                updated_at=now,
                updated_by=actor,
            )
            conn.execute(
                t.update()
                .where(t.c.alias == alias)
                .values(
                    weight=after.weight, version=after.version, updated_at=now, updated_by=actor
                )
            )
            conn.execute(
                gateway_audit.insert().values(
                    ts=now,
                    actor=actor,
                    action=action,
                    alias=alias,
                    before=_state(before),
                    after=_state(after),
                )
            )
            if self.dialect == "postgresql":
                conn.execute(sa.select(sa.func.pg_notify(ROUTES_CHANNEL, alias)))
        return before, after

    def gateway_audit(self, limit: int = 100) -> list[AuditRow]:
        """The newest ``limit`` changes, newest first."""
        a = gateway_audit
        query = sa.select(a).order_by(a.c.id.desc()).limit(limit)
        with self._transaction("reading the gateway audit", write=False) as conn:
            rows = conn.execute(query).all()
        return [
            AuditRow(
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


__all__ = ["ROUTES_CHANNEL", "AuditRow", "RouteRow", "RouteStateMixin"]

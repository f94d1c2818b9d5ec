"""Canary rollouts in the store: where each rollout stands, what it decided, and the window.

A mixin of :class:`~cutover.store.Store`; every method is one short transaction.
The ``rollouts`` row is the controller's whole state (plan, status, stage and
when the stage began), so a restarted controller resumes the stage it was in;
``rollout_events`` is the record: every start, decision (with the metrics
that drove it), weight change, pause, manual action and alert, in order.
:meth:`RolloutMixin.gateway_window` reads what the gateways logged for one
route over a window, per arm: the controller's evidence.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cutover.store._schema import JSONText, UTCDateTime, gateway_requests, metadata, utcnow

ROLLOUT_STATUSES = ("running", "paused", "promoted", "rolled_back", "stopped")
"""``running`` and ``paused`` are active (one active rollout per route at most)."""
ACTIVE = ("running", "paused")
STREAM_FAILURES = frozenset({"timeout", "upstream_stream_broken"})
"""Error classes of a 200 stream that broke after it started: failures of the arm too."""

rollouts = sa.Table(  # 0006
    "rollouts",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("route", sa.Text, nullable=False),
    sa.Column("plan", JSONText, nullable=False),
    sa.Column("plan_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("stage", sa.Integer, nullable=False),
    sa.Column("stage_started_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime, nullable=True),
    sa.Column("owner", sa.Text, nullable=True),
    sa.Index("ix_rollouts_route", "route", "started_at"),
)

rollout_events = sa.Table(  # 0006
    "rollout_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rollout_id", sa.String(32), sa.ForeignKey("rollouts.id"), nullable=False),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("stage", sa.Integer, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("weight_before", sa.Float, nullable=True),
    sa.Column("weight_after", sa.Float, nullable=True),
    sa.Column("detail", JSONText, nullable=True),
    sa.Index("ix_rollout_events_rollout", "rollout_id", "id"),
)


@dataclass(frozen=True, slots=True)
class RolloutRow:
    """One rollout: its plan (as validated data) and where it stands."""

    id: str
    route: str
    plan: dict[str, Any]
    plan_hash: str
    status: str
    stage: int
    stage_started_at: datetime
    started_at: datetime
    updated_at: datetime
    heartbeat_at: datetime | None
    owner: str | None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


@dataclass(frozen=True, slots=True)
class RolloutEvent:
    """One entry of a rollout's record."""

    id: int
    rollout_id: str
    ts: datetime
    kind: str
    stage: int
    actor: str
    weight_before: float | None
    weight_after: float | None
    detail: dict[str, Any] | None


@dataclass(slots=True)
class ArmLog:
    """What the request log holds for one arm over a window (raw, for the analysis)."""

    requests: int = 0
    errors: int = 0
    latency_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    cost_usd: list[float] = field(default_factory=list)
    feedback: int = 0
    negative_feedback: int = 0
    refusals: int = 0
    """Answers that refused, of ``answers_checked``."""
    answers_checked: int = 0
    checks: dict[str, list[int]] = field(default_factory=dict)
    """Output check name -> [answers it flagged, answers it applied to]."""
    sticky_keys: set[str] = field(default_factory=set)


class RolloutActiveError(ValueError):
    """The route already has an active rollout."""


def _rollout(row: Any) -> RolloutRow:
    m = row._mapping
    return RolloutRow(
        id=str(m["id"]),
        route=str(m["route"]),
        plan=dict(m["plan"]),
        plan_hash=str(m["plan_hash"]),
        status=str(m["status"]),
        stage=int(m["stage"]),
        stage_started_at=m["stage_started_at"],
        started_at=m["started_at"],
        updated_at=m["updated_at"],
        heartbeat_at=m["heartbeat_at"],
        owner=m["owner"],
    )


class RolloutMixin:
    """Store methods for canary rollouts."""

    if TYPE_CHECKING:

        def _transaction(
            self, action: str, *, write: bool
        ) -> AbstractContextManager[Connection]: ...

    def create_rollout(
        self, route: str, plan: dict[str, Any], plan_hash: str, *, owner: str | None, actor: str
    ) -> RolloutRow:
        """Start a rollout of ``route`` at stage 0; refused while another one is active."""
        now = utcnow()
        rollout_id = uuid.uuid4().hex
        t = rollouts
        with self._transaction("starting a rollout", write=True) as conn:
            active = conn.execute(
                sa.select(t.c.id).where(t.c.route == route, t.c.status.in_(ACTIVE))
            ).first()
            if active is not None:
                raise RolloutActiveError(
                    f"route '{route}' already has an active rollout ({active.id}); "
                    "roll it back, promote it or stop it first"
                )
            conn.execute(
                t.insert().values(
                    id=rollout_id,
                    route=route,
                    plan=plan,
                    plan_hash=plan_hash,
                    status="running",
                    stage=0,
                    stage_started_at=now,
                    started_at=now,
                    updated_at=now,
                    heartbeat_at=None,
                    owner=owner,
                )
            )
            conn.execute(
                rollout_events.insert().values(
                    rollout_id=rollout_id,
                    ts=now,
                    kind="start",
                    stage=0,
                    actor=actor,
                    detail={"plan_hash": plan_hash},
                )
            )
            row = conn.execute(sa.select(t).where(t.c.id == rollout_id)).one()
        return _rollout(row)

    def get_rollout(self, rollout_id: str) -> RolloutRow | None:
        with self._transaction("reading a rollout", write=False) as conn:
            row = conn.execute(sa.select(rollouts).where(rollouts.c.id == rollout_id)).first()
        return None if row is None else _rollout(row)

    def latest_rollout(self, route: str) -> RolloutRow | None:
        """The route's active rollout, else its most recent one, else ``None``."""
        t = rollouts
        with self._transaction("reading a rollout", write=False) as conn:
            row = conn.execute(
                sa.select(t)
                .where(t.c.route == route)
                .order_by(t.c.status.in_(ACTIVE).desc(), t.c.started_at.desc())
                .limit(1)
            ).first()
        return None if row is None else _rollout(row)

    def update_rollout(
        self,
        rollout_id: str,
        *,
        event: str,
        actor: str,
        status: str | None = None,
        stage: int | None = None,
        weight_before: float | None = None,
        weight_after: float | None = None,
        detail: dict[str, Any] | None = None,
        expect_status: Sequence[str] | None = None,
        expect_stage: int | None = None,
    ) -> RolloutRow | None:
        """Record ``event`` and move the rollout (status, stage) in one transaction.

        A new ``stage`` restarts the stage clock. With ``expect_status`` the
        change happens only if the rollout's status is one of them (else
        ``None``): two controllers, or a controller and an operator, cannot
        both act on the same state.
        """
        if status is not None and status not in ROLLOUT_STATUSES:
            raise ValueError(f"unknown rollout status '{status}'")
        t = rollouts
        now = utcnow()
        with self._transaction("recording a rollout decision", write=True) as conn:
            row = conn.execute(sa.select(t).where(t.c.id == rollout_id).with_for_update()).first()
            if row is None:
                return None
            current = _rollout(row)
            if expect_status is not None and current.status not in expect_status:
                return None
            if expect_stage is not None and current.stage != expect_stage:
                return None
            values: dict[str, Any] = {"updated_at": now}
            if status is not None:
                values["status"] = status
            if stage is not None and stage != current.stage:
                values["stage"] = stage
                values["stage_started_at"] = now
            conn.execute(t.update().where(t.c.id == rollout_id).values(**values))
            conn.execute(
                rollout_events.insert().values(
                    rollout_id=rollout_id,
                    ts=now,
                    kind=event,
                    stage=current.stage if stage is None else stage,
                    actor=actor,
                    weight_before=weight_before,
                    weight_after=weight_after,
                    detail=detail,
                )
            )
            row = conn.execute(sa.select(t).where(t.c.id == rollout_id)).one()
        return _rollout(row)

    def rollout_heartbeat(self, rollout_id: str) -> None:
        """The controller is alive (``rollout status`` shows when it last said so)."""
        with self._transaction("recording a controller heartbeat", write=True) as conn:
            conn.execute(
                rollouts.update().where(rollouts.c.id == rollout_id).values(heartbeat_at=utcnow())
            )

    def rollout_events(self, rollout_id: str) -> list[RolloutEvent]:
        """The rollout's record, oldest first."""
        e = rollout_events
        query = sa.select(e).where(e.c.rollout_id == rollout_id).order_by(e.c.id)
        with self._transaction("reading a rollout's events", write=False) as conn:
            rows = conn.execute(query).all()
        return [
            RolloutEvent(
                id=int(r.id),
                rollout_id=str(r.rollout_id),
                ts=r.ts,
                kind=str(r.kind),
                stage=int(r.stage),
                actor=str(r.actor),
                weight_before=r.weight_before,
                weight_after=r.weight_after,
                detail=r.detail,
            )
            for r in rows
        ]

    def gateway_window(
        self, route: str, since: datetime, until: datetime | None = None
    ) -> dict[str, ArmLog]:
        """Per arm (``baseline``, ``candidate``), the route's logged requests in the window.

        Errors are answers with status >= 400 (a fallback is logged with the
        candidate's failed status, so it counts) and streams that broke after
        they started (status 200, error class ``timeout`` or
        ``upstream_stream_broken``); negative feedback is a score
        below 0. Latency, time to first token and cost are the raw values (the
        analysis takes quantiles and means of them).
        """
        g = gateway_requests
        query = sa.select(
            g.c.arm,
            g.c.status,
            g.c.latency_ms,
            g.c.ttft_ms,
            g.c.cost_usd,
            g.c.feedback_score,
            g.c.key_hash,
            g.c.refused,
            g.c.error_class,
            g.c.checks,
        ).where(g.c.route == route, g.c.ts >= since, g.c.arm.in_(("baseline", "candidate")))
        if until is not None:
            query = query.where(g.c.ts < until)
        arms = {"baseline": ArmLog(), "candidate": ArmLog()}
        with self._transaction("reading the gateway request log", write=False) as conn:
            for (
                arm,
                status,
                latency,
                ttft,
                cost,
                score,
                key_hash,
                refused,
                error_class,
                checks,
            ) in conn.execute(query):
                log = arms[str(arm)]
                log.requests += 1
                if status >= 400 or error_class in STREAM_FAILURES:
                    log.errors += 1
                else:
                    log.latency_ms.append(float(latency))
                    if ttft is not None:
                        log.ttft_ms.append(float(ttft))
                    if cost is not None:
                        log.cost_usd.append(float(cost))
                if score is not None:
                    log.feedback += 1
                    if score < 0:
                        log.negative_feedback += 1
                if key_hash is not None:
                    log.sticky_keys.add(str(key_hash))
                if refused is not None:
                    log.answers_checked += 1
                    log.refusals += bool(refused)
                for name, flagged in (checks or {}).items():
                    tally = log.checks.setdefault(str(name), [0, 0])
                    tally[0] += int(flagged)
                    tally[1] += 1
        return arms


__all__ = [
    "ACTIVE",
    "ROLLOUT_STATUSES",
    "ArmLog",
    "RolloutActiveError",
    "RolloutEvent",
    "RolloutMixin",
    "RolloutRow",
]

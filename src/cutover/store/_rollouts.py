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

import math
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

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

rollout_judgements = sa.Table(  # 0009
    "rollout_judgements",
    metadata,
    sa.Column("rollout_id", sa.String(32), sa.ForeignKey("rollouts.id"), primary_key=True),
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("arm", sa.String(16), nullable=False),
    sa.Column("slice", sa.String(64), nullable=True),
    sa.Column("request_ts", UTCDateTime, nullable=False),
    sa.Column("judged_at", UTCDateTime, nullable=False),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_rollout_judgements_ts", "rollout_id", "request_ts"),
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


LATENCY_BINS_PER_E: Final = 200
"""Latency and time-to-first-token bins per unit of natural log: each bin is 0.501% wide
(``exp(1/200) - 1``), so a quantile bound read from them is at most one bin off the
exact one (and on the conservative side)."""
_MIN_MS: Final = 0.001


def latency_bin_edges(first: int, last: int) -> tuple[float, ...]:
    """The edges (ms) of bins ``first`` to ``last``: bin ``k`` holds ``[e^(k/B), e^((k+1)/B))``."""
    return tuple(math.exp(k / LATENCY_BINS_PER_E) for k in range(first, last + 2))


@dataclass(slots=True)
class ArmLog:
    """What the request log holds for one arm over a window, aggregated by the database.

    Counts and sums for the rates and means; latency and time to first token as
    log-spaced bins (:data:`LATENCY_BINS_PER_E`), so a window of any size is a few
    thousand numbers, never the rows themselves.
    """

    requests: int = 0
    errors: int = 0
    latency_bins: dict[int, int] = field(default_factory=dict)
    """Bin -> answers (errors excluded); see :func:`latency_bin_edges`."""
    ttft_bins: dict[int, int] = field(default_factory=dict)
    cost_n: int = 0
    cost_sum: float = 0.0
    cost_sq: float = 0.0
    """Answers with a cost, the costs' sum and sum of squares (errors excluded)."""
    feedback: int = 0
    negative_feedback: int = 0
    refusals: int = 0
    """Answers that refused, of ``answers_checked``."""
    answers_checked: int = 0
    checks: dict[str, list[int]] = field(default_factory=dict)
    """Output check name -> [answers it flagged, answers it applied to]."""
    units: int = 0
    """Distinct sticky keys (sessions) seen; only for a whole arm, not per slice."""

    def histogram(self, bins: dict[int, int]) -> tuple[tuple[float, ...], tuple[int, ...]]:
        """``bins`` (``latency_bins`` or ``ttft_bins``) as contiguous ``(edges, counts)``."""
        first, last = min(bins), max(bins)
        counts = tuple(bins.get(k, 0) for k in range(first, last + 1))
        return latency_bin_edges(first, last), counts

    def _add_counts(self, row: Sequence[Any]) -> None:
        requests, errors, feedback, negative, checked, refused, cost_n, cost_sum, cost_sq = row
        self.requests += int(requests)
        self.errors += int(errors or 0)
        self.feedback += int(feedback or 0)
        self.negative_feedback += int(negative or 0)
        self.answers_checked += int(checked or 0)
        self.refusals += int(refused or 0)
        self.cost_n += int(cost_n or 0)
        self.cost_sum += float(cost_sum or 0.0)
        self.cost_sq += float(cost_sq or 0.0)

    def _add_checks(self, checks: dict[str, Any] | None, n: int) -> None:
        for name, flagged in (checks or {}).items():
            tally = self.checks.setdefault(str(name), [0, 0])
            tally[0] += int(flagged) * n
            tally[1] += n


@dataclass(slots=True)
class RouteWindow:
    """A route's request log over a window: per arm, and per arm within each slice asked."""

    arms: dict[str, ArmLog] = field(
        default_factory=lambda: {"baseline": ArmLog(), "candidate": ArmLog()}
    )
    slices: dict[str, dict[str, ArmLog]] = field(default_factory=dict)
    """Slice label -> arm -> log (every slice asked for is here, empty if none was seen)."""


@dataclass(frozen=True, slots=True)
class Judgement:
    """A judge's score of one logged answer (``None`` with ``error`` when it could not)."""

    request_id: str
    arm: str
    slice: str | None
    request_ts: datetime
    score: float | None
    error: str | None = None


def _count_if(condition: Any) -> Any:
    """``SUM(CASE WHEN condition THEN 1 ELSE 0 END)``: rows where it holds (NULL: not)."""
    return sa.func.sum(sa.case((condition, 1), else_=0))


def _not_in(column: Any, values: frozenset[str]) -> Any:
    """``column`` is NULL or none of ``values``."""
    return sa.or_(column.is_(None), column.not_in(sorted(values)))


def sample_point(request_id: str) -> float | None:
    """Where a gateway request id falls in ``[0, 1)``: its first 8 random hex digits over
    2^32 (the judge's sampling order); ``None`` for an id not of the gateway's form."""
    if len(request_id) != 28 or not request_id.startswith("req_"):
        return None
    try:
        return int(request_id[4:12], 16) / 2.0**32
    except ValueError:
        return None


@dataclass(slots=True)
class AnswersToJudge:
    """What :meth:`RolloutMixin.answers_to_judge` found at one look."""

    chosen: list[tuple[str, str, str | None, datetime]] = field(default_factory=list)
    """``(request_id, arm, slice, ts)`` of the answers to judge now."""
    with_text: int = 0
    """Answers not judged yet whose text the gateway logged."""
    without_text: int = 0
    """Answers not judged yet without logged text (``log.prompts`` off)."""


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

        @property
        def dialect(self) -> str: ...

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
        """The controller is alive (``rollout status`` shows when it last said so).

        On PostgreSQL the time is the database's, as is :meth:`database_now`, so the
        gateways judge the controller's silence on one clock whatever the hosts' clocks.
        """
        now = sa.func.now() if self.dialect == "postgresql" else utcnow()
        with self._transaction("recording a controller heartbeat", write=True) as conn:
            conn.execute(
                rollouts.update().where(rollouts.c.id == rollout_id).values(heartbeat_at=now)
            )

    def database_now(self) -> datetime:
        """The database server's time on PostgreSQL (shared by every host), else this host's."""
        if self.dialect != "postgresql":
            return utcnow()
        with self._transaction("reading the database clock", write=False) as conn:
            value = conn.execute(sa.select(sa.func.now())).scalar_one()
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

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
        self,
        route: str,
        since: datetime,
        until: datetime | None = None,
        *,
        slices: Sequence[str] = (),
    ) -> RouteWindow:
        """Per arm (``baseline``, ``candidate``), the route's logged requests in the window,
        and per arm within each of ``slices`` (the client's ``x-cutover-slice`` label).

        Errors are answers with status >= 400 (a fallback is logged with the
        candidate's failed status, so it counts) and streams that broke after
        they started (status 200, error class ``timeout`` or
        ``upstream_stream_broken``); negative feedback is a score below 0.
        Everything is aggregated by the database (grouped by arm and slice), so
        what comes back does not grow with the window: counts and sums, and
        latency and time to first token in log-spaced bins.
        """
        g = gateway_requests
        window = RouteWindow(
            slices={name: {"baseline": ArmLog(), "candidate": ArmLog()} for name in slices}
        )
        where = [g.c.route == route, g.c.ts >= since, g.c.arm.in_(("baseline", "candidate"))]
        if until is not None:
            where.append(g.c.ts < until)
        failed = sa.or_(g.c.status >= 400, g.c.error_class.in_(sorted(STREAM_FAILURES)))
        answered = sa.and_(g.c.status < 400, _not_in(g.c.error_class, STREAM_FAILURES))
        cost = sa.case((answered, g.c.cost_usd), else_=None)
        # Four grouped passes, each cheap for the database: the counts and sums per arm and
        # slice; the latency bins (NULL for an error) with the output checks' JSON text (a
        # few distinct values); the time-to-first-token bins; the sessions (grouped, then
        # counted: a hash aggregate, where COUNT(DISTINCT) sorts).
        counts = (
            sa.select(
                g.c.arm,
                g.c.slice,
                sa.func.count(),
                _count_if(failed),
                _count_if(g.c.feedback_score.is_not(None)),
                _count_if(g.c.feedback_score < 0),
                _count_if(g.c.refused.is_not(None)),
                _count_if(g.c.refused.is_(True)),
                sa.func.count(cost),
                sa.func.sum(cost),
                sa.func.sum(cost * cost),
            )
            .where(*where)
            .group_by(g.c.arm, g.c.slice)
        )
        latency = sa.case((answered, self._latency_bin(g.c.latency_ms)), else_=None)
        binned = (
            sa.select(g.c.arm, g.c.slice, latency, g.c.checks, sa.func.count())
            .where(*where)
            .group_by(g.c.arm, g.c.slice, latency, g.c.checks)
        )
        ttft = self._latency_bin(g.c.ttft_ms)
        first_token = (
            sa.select(g.c.arm, g.c.slice, ttft, sa.func.count())
            .where(*where, answered, g.c.ttft_ms.is_not(None))
            .group_by(g.c.arm, g.c.slice, ttft)
        )
        keys = (
            sa.select(g.c.arm)
            .where(*where, g.c.key_hash.is_not(None))
            .group_by(g.c.arm, g.c.key_hash)
            .subquery()
        )
        units = sa.select(keys.c.arm, sa.func.count()).group_by(keys.c.arm)

        def logs(arm: str, label: str | None) -> list[ArmLog]:
            out = [window.arms[arm]]
            if label is not None and label in window.slices:
                out.append(window.slices[label][arm])
            return out

        with self._transaction("reading the gateway request log", write=False) as conn:
            if self.dialect == "postgresql":  # the four passes see the same rows (SQLite does)
                conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            for arm, label, *row in conn.execute(counts):
                for log in logs(arm, label):
                    log._add_counts(row)
            for arm, label, k, tally, n in conn.execute(binned):
                for log in logs(arm, label):
                    if k is not None:
                        log.latency_bins[int(k)] = log.latency_bins.get(int(k), 0) + int(n)
                    log._add_checks(tally, int(n))
            for arm, label, k, n in conn.execute(first_token):
                for log in logs(arm, label):
                    log.ttft_bins[int(k)] = log.ttft_bins.get(int(k), 0) + int(n)
            for arm, n in conn.execute(units):
                window.arms[str(arm)].units = int(n)
        return window

    def _latency_bin(self, column: Any) -> Any:
        """``floor(ln(max(column, 0.001)) * B)``: the column's log-spaced bin."""
        floor = sa.func.greatest if self.dialect == "postgresql" else sa.func.max
        return sa.func.floor(sa.func.ln(floor(column, _MIN_MS)) * LATENCY_BINS_PER_E)

    # -- live judge scores ---------------------------------------------------------------

    def answers_to_judge(
        self, rollout_id: str, route: str, since: datetime, *, per_arm: int, sample: float = 1.0
    ) -> AnswersToJudge:
        """The route's answers since ``since`` that rollout ``rollout_id`` has not judged:
        how many there are (with and without logged text), and per arm the ``per_arm``
        with logged text whose sample point is lowest among those below ``sample``.

        The sample point is the request id's random part: the gateway's ids are
        ``req_`` and 24 hex digits from ``os.urandom``, and the point is the first 8 of
        them read as a fraction of 2^32 (:func:`sample_point`). It depends on nothing
        but the random id, so the answers picked are a random sample of each arm's;
        the database does the picking, so a look reads ``2 x per_arm`` rows whatever
        the stage's size.
        """
        g, j = gateway_requests, rollout_judgements
        judged = sa.exists().where(j.c.rollout_id == rollout_id, j.c.request_id == g.c.request_id)
        todo = [
            g.c.route == route,
            g.c.ts >= since,
            g.c.arm.in_(("baseline", "candidate")),
            g.c.status < 300,
            _not_in(g.c.error_class, STREAM_FAILURES),
            ~judged,
        ]
        has_text = g.c.output.is_not(None)
        key = sa.collate(g.c.request_id, "C") if self.dialect == "postgresql" else g.c.request_id
        eligible = [*todo, has_text]
        if sample < 1.0:
            point: Any = sa.func.substr(g.c.request_id, 5, 8)
            if self.dialect == "postgresql":
                point = sa.collate(point, "C")
            eligible.append(point < f"{min(int(sample * 2**32), 2**32 - 1):08x}")
        counts = sa.select(_count_if(has_text), sa.func.count()).where(*todo)
        out = AnswersToJudge()
        with self._transaction("reading the answers to judge", write=False) as conn:
            with_text, total = conn.execute(counts).one()
            out.with_text, out.without_text = int(with_text or 0), int(total) - int(with_text or 0)
            for arm in ("baseline", "candidate"):
                query = (
                    sa.select(g.c.request_id, g.c.arm, g.c.slice, g.c.ts)
                    .where(*eligible, g.c.arm == arm)
                    .order_by(key)
                    .limit(per_arm)
                )
                out.chosen += [
                    (str(rid), str(a), label, ts) for rid, a, label, ts in conn.execute(query)
                ]
        return out

    def request_texts(self, request_ids: Sequence[str]) -> dict[str, tuple[str | None, str]]:
        """Request id -> (prompt as logged, answer text), for the logged answers among ids."""
        g = gateway_requests
        out: dict[str, tuple[str | None, str]] = {}
        with self._transaction("reading logged answers", write=False) as conn:
            for start in range(0, len(request_ids), 500):
                chunk = list(request_ids[start : start + 500])
                query = sa.select(g.c.request_id, g.c.prompt, g.c.output).where(
                    g.c.request_id.in_(chunk), g.c.output.is_not(None)
                )
                for rid, prompt, output in conn.execute(query):
                    out[str(rid)] = (prompt, str(output))
        return out

    def record_judgements(self, rollout_id: str, judgements: Sequence[Judgement]) -> int:
        """Keep the judge's scores of a rollout's answers (an answer judged already is kept
        as it was); how many were new."""
        if not judgements:
            return 0
        j = rollout_judgements
        now = utcnow()
        with self._transaction("recording judge scores", write=True) as conn:
            ids = [x.request_id for x in judgements]
            seen = {
                str(r)
                for start in range(0, len(ids), 500)
                for r in conn.execute(
                    sa.select(j.c.request_id).where(
                        j.c.rollout_id == rollout_id, j.c.request_id.in_(ids[start : start + 500])
                    )
                ).scalars()
            }
            fresh = [
                {
                    "rollout_id": rollout_id,
                    "request_id": x.request_id,
                    "arm": x.arm,
                    "slice": x.slice,
                    "request_ts": x.request_ts,
                    "judged_at": now,
                    "score": x.score,
                    "error": x.error,
                }
                for x in {x.request_id: x for x in judgements}.values()
                if x.request_id not in seen
            ]
            if fresh:
                conn.execute(j.insert(), fresh)
        return len(fresh)

    def rollout_judgements(self, rollout_id: str, since: datetime) -> list[Judgement]:
        """The rollout's judgements of answers logged since ``since``, oldest first."""
        j = rollout_judgements
        query = (
            sa.select(j.c.request_id, j.c.arm, j.c.slice, j.c.request_ts, j.c.score, j.c.error)
            .where(j.c.rollout_id == rollout_id, j.c.request_ts >= since)
            .order_by(j.c.request_ts, j.c.request_id)
        )
        with self._transaction("reading judge scores", write=False) as conn:
            return [Judgement(*row) for row in conn.execute(query)]


__all__ = [
    "ACTIVE",
    "ROLLOUT_STATUSES",
    "AnswersToJudge",
    "ArmLog",
    "Judgement",
    "RolloutActiveError",
    "RolloutEvent",
    "RolloutMixin",
    "RolloutRow",
    "RouteWindow",
    "sample_point",
]

"""The rollout controller: runs a plan against the gateways through the shared store.

The gateways and the controller share one store (PostgreSQL for several
replicas). Everything the controller knows is there, so it can stop and start
again at any moment:

- the ``rollouts`` row is its state (plan, status, stage, when the stage
  began); a restarted ``cutover rollout start`` with the same plan resumes the
  active rollout of the route at the stage it was in;
- weights are changed through the store's audited route state
  (:meth:`~cutover.store.Store.set_gateway_route_weight`), which every replica
  follows within a second (LISTEN/NOTIFY);
- the evidence is the gateways' request log: both arms of the route over the
  same window, from the start of the current stage
  (:meth:`~cutover.store.Store.gateway_window`);
- every decision is an event of the rollout's record with the metrics that
  drove it (each gate's estimate and interval).

One look (:meth:`Controller.step`): read the window, judge the stage
(:func:`cutover.rollout.decide.decide_stage`: sequential tests that stay valid
under continuous looks), then promote (next stage's weight), roll back
(weight 0 at once), or hold. A hold is recorded when its cause changes, not at
every look. If the store cannot be read the controller holds (it never acts
blind), alerts the webhooks once, and keeps trying.

Notifications are ``POST``\\ s of a JSON body to each ``notify`` URL (5 s
timeout); a failed one is recorded as a ``notify_failed`` event and never
stops the rollout.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from cutover.errors import CutoverError, InputError, StoreError
from cutover.rollout.decide import (
    ArmWindow,
    Counts,
    Histogram,
    Moments,
    StageDecision,
    StageWindow,
    decide_stage,
)
from cutover.rollout.live_judge import (
    JudgeFailures,
    JudgeLook,
    LiveJudge,
    judge_failures,
    judge_scores,
)
from cutover.rollout.plan import Plan
from cutover.store import Store
from cutover.store._rollouts import ArmLog, RolloutRow
from cutover.store._schema import utcnow
from cutover.targets import parse_target

NOTIFY_TIMEOUT_S = 5.0
ACTOR = "rollout-controller"

logger = logging.getLogger(__name__)


class RolloutError(InputError):
    """A rollout cannot start or act: the route is not served, the plan does not fit it."""


def plan_data(plan: Plan) -> dict[str, Any]:
    """The plan as stored (JSON data that :class:`Plan` validates again)."""
    return plan.model_dump(mode="json")


def plan_hash(plan: Plan) -> str:
    return hashlib.sha256(json.dumps(plan_data(plan), sort_keys=True).encode()).hexdigest()


def arm_window(log: ArmLog, judge_score: Moments | None = None) -> ArmWindow:
    """One arm of the request log (and its judge scores), as the analysis takes it."""
    return ArmWindow(
        requests=log.requests,
        errors=log.errors,
        units=log.units or None,
        latency_ms=Histogram(*log.histogram(log.latency_bins)) if log.latency_bins else None,
        ttft_ms=Histogram(*log.histogram(log.ttft_bins)) if log.ttft_bins else None,
        cost_usd=Moments(log.cost_n, log.cost_sum, log.cost_sq) if log.cost_n else None,
        negative_feedback=Counts(log.negative_feedback, log.feedback) if log.feedback else None,
        refusals=Counts(log.refusals, log.answers_checked) if log.answers_checked else None,
        invalid_outputs={name: Counts(hits, n) for name, (hits, n) in log.checks.items()},
        judge_score=judge_score,
    )


def _check_live_gates(plan: Plan) -> None:
    """Refuse, before anything changes, a gate the controller cannot feed on live traffic.

    A ``judge_score`` gate without ``judge:`` (the model and rubric that score
    live answers) would get ``no_data`` at every look, so its stage could never
    be promoted: the rollout would sit at the first weight until it timed out.
    """
    for i, gate in enumerate(plan.gates):
        if gate.metric == "judge_score" and gate.judge is None:
            raise RolloutError(
                "a judge_score gate on live traffic needs 'judge:' (the model and rubric that "
                "score a sample of the live answers), or it could never be promoted",
                field=f"gates.{i}.judge",
                hint="add judge: {target: provider:model@url, rubric: ...}; "
                "`cutover rollout simulate` takes the gate without it",
            )


@dataclass(frozen=True, slots=True)
class Look:
    """What one look did: the decision (``None`` if the store could not be read) and the row."""

    decision: StageDecision | None
    rollout: RolloutRow | None
    action: str
    """``promote``, ``complete``, ``rollback``, ``hold``, ``paused``, ``idle`` (ended, e.g. by
    a manual rollback) or ``blind`` (the store could not be reached)."""


class Controller:
    """Drives one rollout (see the module docs)."""

    def __init__(
        self,
        store: Store,
        plan: Plan,
        *,
        actor: str = ACTOR,
        notify: Callable[[dict[str, Any]], Sequence[str]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.plan = plan
        self.actor = actor
        self._notify = notify or post_webhooks(plan.notify)
        self._clock = clock
        self._last_hold: str | None = None
        self._blind_since: float | None = None
        self._alerted: set[str] = set()
        gate = plan.judge_gate
        self._judge = (
            LiveJudge(store, gate.judge) if gate is not None and gate.judge is not None else None
        )
        self.rollout_id: str | None = None

    # -- start or resume ---------------------------------------------------------------

    def start(self) -> RolloutRow:
        """Start the plan's rollout, or resume the route's active one if it has this plan."""
        plan, store = self.plan, self.store
        _check_live_gates(plan)
        if self._judge is not None:
            try:
                self._judge.check()
            except CutoverError as exc:
                index = next(i for i, g in enumerate(plan.gates) if g.metric == "judge_score")
                detail = exc.message if isinstance(exc, InputError) else str(exc)
                raise RolloutError(
                    f"the judge cannot be called: {detail}",
                    field=f"gates.{index}.judge.target",
                    hint=exc.hint if isinstance(exc, InputError) else None,
                ) from None
        route = store.gateway_route(plan.route)
        if route is None:
            raise RolloutError(
                f"route '{plan.route}' is not in the store: start a gateway that serves it "
                "with this store first",
                field="route",
            )
        if route.candidate is None:
            raise RolloutError(
                f"route '{plan.route}' has no candidate in the gateway config", field="candidate"
            )
        if route.candidate != parse_target(plan.candidate).spec:
            raise RolloutError(
                f"the plan's candidate {plan.candidate} is not the route's candidate "
                f"{route.candidate}",
                field="candidate",
                hint="the gateway config decides which target the candidate arm calls",
            )
        digest = plan_hash(plan)
        current = store.latest_rollout(plan.route)
        if current is not None and current.active:
            if current.plan_hash != digest:
                raise RolloutError(
                    f"route '{plan.route}' has an active rollout ({current.id}) with another "
                    "plan; roll it back or stop it first",
                    field="route",
                )
            self.rollout_id = current.id
            store.update_rollout(current.id, event="resume_controller", actor=self.actor)
            return current
        row = store.create_rollout(
            plan.route, plan_data(plan), digest, owner=plan.owner, actor=self.actor
        )
        self.rollout_id = row.id
        self._set_weight(row, plan.stages[0].weight, event="stage_weight", stage=0)
        self._send(row, "started", detail={"weight": plan.stages[0].weight})
        return row

    # -- one look ------------------------------------------------------------------------

    def step(self) -> Look:
        """Look once: judge the current stage and act on it."""
        assert self.rollout_id is not None, "start() first"
        try:
            row = self.store.get_rollout(self.rollout_id)
            if row is not None and row.status == "paused":
                self.store.rollout_heartbeat(row.id)
                return Look(None, row, "paused")
            if row is None or row.status != "running":
                return Look(None, row, "idle")
            self.store.rollout_heartbeat(row.id)
            since, slices = row.stage_started_at, self.plan.slice_names
            judged, failures = None, None
            scores: dict[tuple[str | None, str], Moments] = {}
            if self._judge is not None:
                judged = self._judge.look(row.id, row.route, since)
                kept = self.store.rollout_judgements(row.id, since)
                failures = judge_failures(kept, self.plan.test_level())
                if not failures.uneven:  # else the judge gate gets no data: it holds
                    scores = judge_scores(kept, slices)
            logs = self.store.gateway_window(row.route, since, slices=slices)
        except StoreError as exc:
            return self._blind(exc)
        if self._blind_since is not None:
            self._blind_since = None
            logger.warning("the store is back; the rollout goes on")
        elapsed = (utcnow() - row.stage_started_at).total_seconds()

        def arms(label: str | None, by_arm: dict[str, ArmLog]) -> tuple[ArmWindow, ArmWindow]:
            return (
                arm_window(by_arm["baseline"], scores.get((label, "baseline"))),
                arm_window(by_arm["candidate"], scores.get((label, "candidate"))),
            )

        baseline, candidate = arms(None, logs.arms)
        window = StageWindow(
            baseline=baseline,
            candidate=candidate,
            elapsed_s=max(elapsed, 0.0),
            slices={label: arms(label, by_arm) for label, by_arm in logs.slices.items()},
        )
        decision = decide_stage(self.plan, row.stage, window)
        try:
            self._alert_unfed(row, window, judged, failures)
            return self._act(row, decision)
        except StoreError as exc:
            return self._blind(exc)

    def _alert_unfed(
        self,
        row: RolloutRow,
        window: StageWindow,
        judged: JudgeLook | None,
        failures: JudgeFailures | None,
    ) -> None:
        """Alert once (recorded and sent) when a gate cannot get data from live traffic: the
        gateways log no answer text for the judge, the judge fails on every answer or on one
        arm's answers more than the other's, or no request carries a slice the plan names."""
        problems: list[tuple[str, str]] = []
        if judged is not None and judged.blind:
            problems.append(
                (
                    "judge_blind",
                    "the judge_score gate has no answers to judge: the gateways do not log "
                    "answer text (set log: {prompts: true} in the gateway config)",
                )
            )
        if judged is not None and judged.failed and not judged.judged:
            problems.append(
                (
                    "judge_failing",
                    f"the judge failed on all {judged.failed} answers of this look: "
                    + "; ".join(judged.errors),
                )
            )
        if failures is not None and failures.uneven:
            problems.append(("judge_uneven", failures.message()))
        if window.baseline.requests + window.candidate.requests >= 100:
            for label, (b, c) in window.slices.items():
                if b.requests + c.requests == 0:
                    problems.append(
                        (
                            f"slice_missing:{label}",
                            f"no request carried slice '{label}' (header x-cutover-slice), so "
                            "its gates cannot pass",
                        )
                    )
        for key, message in problems:
            if key in self._alerted:
                continue
            self._alerted.add(key)
            logger.warning("rollout %s: %s", row.id, message)
            detail = {"problem": key.split(":")[0], "message": message}
            self.store.update_rollout(row.id, event="alert", actor=self.actor, detail=detail)
            self._send(row, "alert", detail=detail)

    def _act(self, row: RolloutRow, decision: StageDecision) -> Look:
        detail = decision.to_dict()
        if decision.outcome == "rollback":
            # Weight 0 first (always safe), then the state, only if still running: a person
            # may have acted meanwhile, and their action stands.
            after = self._set_weight(
                row, 0.0, event="rollback", detail=detail, status="rolled_back"
            )
            self._send(after or row, "rolled_back", detail=detail)
            return Look(decision, after, "rollback")
        if decision.outcome == "promote":
            last = len(self.plan.stages) - 1
            if row.stage >= last:
                after = self.store.update_rollout(
                    row.id,
                    event="complete",
                    actor=self.actor,
                    status="promoted",
                    detail=detail,
                    expect_status=("running",),
                )
                if after is None:  # paused or ended by hand during the look
                    return Look(decision, self.store.get_rollout(row.id), "idle")
                self._send(after, "promoted", detail=detail)
                return Look(decision, after, "complete")
            weight = self.plan.stages[row.stage + 1].weight
            # The state first, conditioned on still running at this stage; the weight only then.
            after = self.store.update_rollout(
                row.id,
                event="promote",
                actor=self.actor,
                stage=row.stage + 1,
                weight_before=self.plan.stages[row.stage].weight,
                weight_after=weight,
                detail=detail,
                expect_status=("running",),
                expect_stage=row.stage,
            )
            if after is None:
                return Look(decision, self.store.get_rollout(row.id), "idle")
            self.store.set_gateway_route_weight(
                row.route, weight, actor=f"rollout:{row.id[:12]}", action="rollout_promote"
            )
            self._send(after, "stage_promoted", detail=detail)
            self._last_hold = None
            return Look(decision, after, "promote")
        if decision.cause != self._last_hold:  # a hold is recorded when its cause changes
            self._last_hold = decision.cause
            self.store.update_rollout(
                row.id, event="hold", actor=self.actor, detail=detail, expect_status=("running",)
            )
            if decision.alert:
                self._send(row, "alert", detail=detail)
        return Look(decision, row, "hold")

    def _blind(self, exc: CutoverError) -> Look:
        """The store cannot be read or written: hold, alert once, keep trying."""
        if self._blind_since is None:
            self._blind_since = self._clock()
            logger.warning("holding: the store cannot be reached (%s)", exc)
            self._notify(
                {
                    "event": "store_unreachable",
                    "route": self.plan.route,
                    "rollout": self.rollout_id,
                    "owner": self.plan.owner,
                    "message": f"the rollout holds: {exc}",
                }
            )
        return Look(None, None, "blind")

    def _set_weight(
        self,
        row: RolloutRow,
        weight: float,
        *,
        event: str,
        detail: dict[str, Any] | None = None,
        stage: int | None = None,
        status: str | None = None,
    ) -> RolloutRow | None:
        """Set the route's weight (audited, announced to replicas) and record the event."""
        changed = self.store.set_gateway_route_weight(
            row.route, weight, actor=f"rollout:{row.id[:12]}", action=f"rollout_{event}"
        )
        before = changed[0].weight if changed is not None else None
        return self.store.update_rollout(
            row.id,
            event=event,
            actor=self.actor,
            stage=stage,
            status=status,
            weight_before=before,
            weight_after=weight,
            detail=detail,
            expect_status=None if event == "stage_weight" else ("running",),
        )

    def _send(self, row: RolloutRow, event: str, *, detail: dict[str, Any] | None) -> None:
        payload = {
            "event": event,
            "route": row.route,
            "rollout": row.id,
            "owner": self.plan.owner,
            "stage": row.stage,
            "status": row.status,
            "decision": detail,
        }
        for failure in self._notify(payload):
            self.store.update_rollout(
                row.id, event="notify_failed", actor=self.actor, detail={"error": failure}
            )

    # -- the loop ------------------------------------------------------------------------

    async def run(self, *, interval_s: float | None = None, max_looks: int | None = None) -> Look:
        """Look every ``interval_s`` (default: the plan's ``check_interval``) until it ends."""
        pause = self.plan.check_interval if interval_s is None else interval_s
        looks = 0
        while True:
            look = await asyncio.to_thread(self.step)
            looks += 1
            if look.action in ("complete", "rollback", "idle"):
                return look
            if max_looks is not None and looks >= max_looks:
                return look
            await asyncio.sleep(pause)


def post_webhooks(urls: Sequence[str]) -> Callable[[dict[str, Any]], list[str]]:
    """A notifier POSTing the payload to every URL; returns the failures (never raises)."""

    def notify(payload: dict[str, Any]) -> list[str]:
        if not urls:
            return []
        return asyncio.run(_post_all(urls, payload))

    return notify


async def _post_all(urls: Sequence[str], payload: dict[str, Any]) -> list[str]:
    failures: list[str] = []
    timeout = aiohttp.ClientTimeout(total=NOTIFY_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for url in urls:
            try:
                async with session.post(url, json=payload) as resp:
                    if resp.status >= 300:
                        failures.append(f"{url}: HTTP {resp.status}")
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                failures.append(f"{url}: {type(exc).__name__}: {exc}")
    return failures


__all__ = [
    "ACTOR",
    "Controller",
    "Look",
    "RolloutError",
    "arm_window",
    "plan_hash",
    "post_webhooks",
]

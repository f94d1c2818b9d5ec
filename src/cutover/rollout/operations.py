"""What an operator does to a rollout by hand: pause, resume, promote, roll back; and its record.

Each action is one audited store transaction (the actor is recorded), takes
effect on every gateway like the controller's own changes, and is refused
with a clear error when the rollout is not in a state it applies to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cutover.rollout.controller import RolloutError
from cutover.rollout.plan import Plan
from cutover.store import Store
from cutover.store._rollouts import RolloutEvent, RolloutRow


def active_rollout(store: Store, route: str) -> RolloutRow:
    row = store.latest_rollout(route)
    if row is None or not row.active:
        state = "no rollout" if row is None else f"its last rollout is {row.status}"
        raise RolloutError(f"route '{route}' has no active rollout ({state})", field="route")
    return row


def pause(store: Store, route: str, *, actor: str) -> RolloutRow:
    row = active_rollout(store, route)
    done = store.update_rollout(
        row.id, event="pause", actor=actor, status="paused", expect_status=("running",)
    )
    if done is None:
        raise RolloutError(f"the rollout of '{route}' is already paused", field="route")
    return done


def resume(store: Store, route: str, *, actor: str) -> RolloutRow:
    row = active_rollout(store, route)
    done = store.update_rollout(
        row.id, event="resume", actor=actor, status="running", expect_status=("paused",)
    )
    if done is None:
        raise RolloutError(f"the rollout of '{route}' is not paused", field="route")
    return done


def promote(store: Store, route: str, *, actor: str) -> RolloutRow:
    """Move to the next stage now (or complete it from the last), whatever the gates say."""
    row = active_rollout(store, route)
    plan = Plan.model_validate(row.plan)
    if row.stage >= len(plan.stages) - 1:
        done = store.update_rollout(
            row.id, event="manual_complete", actor=actor, status="promoted", expect_status=ACTIVE
        )
    else:
        weight = plan.stages[row.stage + 1].weight
        done = store.update_rollout(
            row.id,
            event="manual_promote",
            actor=actor,
            stage=row.stage + 1,
            weight_before=plan.stages[row.stage].weight,
            weight_after=weight,
            expect_status=ACTIVE,
            expect_stage=row.stage,
        )
        if done is not None:  # the weight only once the state says so (no race with the controller)
            store.set_gateway_route_weight(
                route, weight, actor=f"rollout:{row.id[:12]}", action="rollout_manual_promote"
            )
    if done is None:
        raise RolloutError(f"the rollout of '{route}' ended meanwhile", field="route")
    return done


def rollback(store: Store, route: str, *, actor: str, reason: str | None = None) -> RolloutRow:
    """Weight 0 at once and the rollout ended as rolled back."""
    row = active_rollout(store, route)
    changed = store.set_gateway_route_weight(route, 0.0, actor=actor, action="rollout_rollback")
    done = store.update_rollout(
        row.id,
        event="manual_rollback",
        actor=actor,
        status="rolled_back",
        weight_before=None if changed is None else changed[0].weight,
        weight_after=0.0,
        detail={"reason": reason} if reason else None,
        expect_status=ACTIVE,
    )
    if done is None:
        raise RolloutError(f"the rollout of '{route}' ended meanwhile", field="route")
    return done


ACTIVE = ("running", "paused")


def record(store: Store, row: RolloutRow) -> dict[str, Any]:
    """The migration record: the plan, where it ended, and every event with its metrics."""
    events = store.rollout_events(row.id)
    return {
        "rollout": row.id,
        "route": row.route,
        "status": row.status,
        "stage": row.stage,
        "owner": row.owner,
        "started_at": _iso(row.started_at),
        "updated_at": _iso(row.updated_at),
        "plan": row.plan,
        "events": [_event(e) for e in events],
    }


def _event(e: RolloutEvent) -> dict[str, Any]:
    return {
        "ts": _iso(e.ts),
        "kind": e.kind,
        "stage": e.stage,
        "actor": e.actor,
        "weight_before": e.weight_before,
        "weight_after": e.weight_after,
        "detail": e.detail,
    }


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.isoformat()


def record_markdown(data: dict[str, Any]) -> str:
    """The record as a Markdown page: a timeline, and each decision's gates."""
    lines = [
        f"# Rollout of `{data['route']}`: {data['status']}",
        "",
        f"- rollout `{data['rollout']}`, owner {data['owner']}",
        f"- candidate `{data['plan']['candidate']}`",
        f"- started {data['started_at']}, last change {data['updated_at']}",
        f"- stages: {', '.join(str(s['weight']) + '%' for s in data['plan']['stages'])}",
        "",
        "## Timeline",
        "",
        "| time (UTC) | event | stage | by | weight | why |",
        "|---|---|---:|---|---|---|",
    ]
    for e in data["events"]:
        weight = (
            f"{_num(e['weight_before'])} -> {_num(e['weight_after'])}"
            if e["weight_after"] is not None
            else ""
        )
        detail = e["detail"] or {}
        why = (
            detail.get("cause")
            or detail.get("reason")
            or detail.get("error")
            or detail.get("message")
            or ""
        )
        lines.append(
            f"| {e['ts'][:19].replace('T', ' ')} | {e['kind']} | {e['stage']} | {e['actor']} "
            f"| {weight} | {why} |"
        )
    for e in data["events"]:
        gates = (e["detail"] or {}).get("gates")
        if not gates:
            continue
        requests = e["detail"].get("requests", {})
        lines += [
            "",
            f"## {e['kind']} at stage {e['stage']}, {e['ts'][:19].replace('T', ' ')}",
            "",
            f"Requests in the window: baseline {requests.get('baseline')}, "
            f"candidate {requests.get('candidate')}.",
            "",
            "| gate | scope | baseline | candidate | estimate | interval | threshold | status |",
            "|---|---|---:|---:|---:|---|---:|---|",
        ]
        for g in gates:
            low, high = g["interval"]
            lines.append(
                f"| {g['gate']} | {g['scope']} | {_num(g['baseline'])} | {_num(g['candidate'])} "
                f"| {_num(g['estimate'])} | [{_num(low)}, {_num(high)}] | {_num(g['threshold'])} "
                f"| {g['status']} |"
            )
    return "\n".join(lines) + "\n"


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


__all__ = [
    "active_rollout",
    "pause",
    "promote",
    "record",
    "record_markdown",
    "resume",
    "rollback",
]

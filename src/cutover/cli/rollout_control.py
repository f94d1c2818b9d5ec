"""``cutover rollout start|status|pause|resume|promote|rollback|report``: the controller's CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cutover.cli._common import cli_errors, err, open_store, out

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="The store the gateways share (default: CUTOVER_DATABASE_URL)."),
]
RouteArg = Annotated[str, typer.Option("--route", "-r", help="The route (alias) of the rollout.")]
ActorOption = Annotated[str, typer.Option("--actor", help="Who does this (recorded).")]


def register(app: typer.Typer) -> None:
    app.command("start")(start_command)
    app.command("status")(status_command)
    app.command("pause")(pause_command)
    app.command("resume")(resume_command)
    app.command("promote")(promote_command)
    app.command("rollback")(rollback_command)
    app.command("report")(report_command)
    app.command("drill")(drill_command)


def start_command(
    plan: Annotated[Path, typer.Option("--plan", "-p", help="The rollout plan (plan.yaml).")],
    db: DbOption = None,
    interval: Annotated[
        float | None,
        typer.Option("--interval", min=0.1, help="Seconds between looks (default: the plan's)."),
    ] = None,
) -> None:
    """Run a plan: set weights, judge each stage, promote or roll back, until it ends.

    Started again with the same plan, it resumes the route's active rollout at
    the stage it was in. Exit 0 when promoted to the end, 1 when rolled back.
    """
    import asyncio

    from cutover.rollout.controller import Controller
    from cutover.rollout.plan import load_plan

    with cli_errors():
        loaded = load_plan(plan)
        with open_store(db) as store:
            controller = Controller(store, loaded)
            row = controller.start()
            err.print(
                f"rollout {row.id[:12]} of {row.route}: stage {row.stage + 1} of "
                f"{len(loaded.stages)} ({loaded.stages[row.stage].weight:g}%)",
                highlight=False,
            )
            look = asyncio.run(controller.run(interval_s=interval))
        final = look.rollout
        status = final.status if final is not None else "unknown"
        err.print(f"rollout {row.id[:12]} of {row.route}: {status}", highlight=False)
        raise typer.Exit(1 if status == "rolled_back" else 0)


def status_command(route: RouteArg, db: DbOption = None) -> None:
    """Where the route's rollout stands: stage, weight, each gate's estimate and interval."""
    with cli_errors(), open_store(db) as store:
        row = store.latest_rollout(route)
        if row is None:
            err.print(f"route '{route}' has no rollout", highlight=False)
            raise typer.Exit(1)
        weight = store.gateway_route(route)
        events = store.rollout_events(row.id)
    stages = row.plan["stages"]
    out.print(
        f"rollout {row.id} of [bold]{row.route}[/]: {row.status}, stage {row.stage + 1} of "
        f"{len(stages)} ({stages[row.stage]['weight']:g}% planned), weight now "
        f"{'?' if weight is None else f'{weight.weight:g}%'}",
        highlight=False,
    )
    out.print(
        f"stage began {row.stage_started_at:%Y-%m-%d %H:%M:%S} UTC; controller last seen "
        f"{'never' if row.heartbeat_at is None else f'{row.heartbeat_at:%H:%M:%S} UTC'}",
        highlight=False,
    )
    last = next((e for e in reversed(events) if e.detail and e.detail.get("gates")), None)
    if last is None or last.detail is None:
        out.print("no decision yet")
        return
    table = Table(title=f"last look: {last.kind} ({last.detail.get('cause')})")
    for column in ("gate", "baseline", "candidate", "estimate", "interval", "status"):
        table.add_column(column)
    for g in last.detail["gates"]:
        low, high = g["interval"]
        table.add_row(
            f"{g['gate']} ({g['scope']})",
            _fmt(g["baseline"]),
            _fmt(g["candidate"]),
            _fmt(g["estimate"]),
            f"[{_fmt(low)}, {_fmt(high)}]",
            g["status"],
        )
    out.print(table)


def pause_command(route: RouteArg, db: DbOption = None, actor: ActorOption = "cli") -> None:
    """Stop judging (weights stay) until 'resume'."""
    from cutover.rollout import operations

    with cli_errors(), open_store(db) as store:
        row = operations.pause(store, route, actor=actor)
    err.print(f"rollout {row.id[:12]} of {route}: paused", highlight=False)


def resume_command(route: RouteArg, db: DbOption = None, actor: ActorOption = "cli") -> None:
    """Judge again after a 'pause'."""
    from cutover.rollout import operations

    with cli_errors(), open_store(db) as store:
        row = operations.resume(store, route, actor=actor)
    err.print(f"rollout {row.id[:12]} of {route}: running", highlight=False)


def promote_command(route: RouteArg, db: DbOption = None, actor: ActorOption = "cli") -> None:
    """Move to the next stage now, whatever the gates say (recorded as manual)."""
    from cutover.rollout import operations

    with cli_errors(), open_store(db) as store:
        row = operations.promote(store, route, actor=actor)
    err.print(f"rollout {row.id[:12]} of {route}: {row.status}, stage {row.stage + 1}")


def rollback_command(
    route: RouteArg,
    db: DbOption = None,
    actor: ActorOption = "cli",
    reason: Annotated[str | None, typer.Option("--reason", help="Why (recorded).")] = None,
) -> None:
    """Weight 0 at once on every gateway; the rollout ends as rolled back."""
    from cutover.rollout import operations

    with cli_errors(), open_store(db) as store:
        row = operations.rollback(store, route, actor=actor, reason=reason)
    err.print(f"rollout {row.id[:12]} of {route}: rolled back (weight 0)", highlight=False)


def report_command(
    route: RouteArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for rollout.json and .md.")],
    db: DbOption = None,
) -> None:
    """Write the migration record: timeline, decisions, the metrics at each decision."""
    from cutover.rollout import operations

    with cli_errors(), open_store(db) as store:
        row = store.latest_rollout(route)
        if row is None:
            err.print(f"route '{route}' has no rollout", highlight=False)
            raise typer.Exit(1)
        data = operations.record(store, row)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "rollout.json").write_text(json.dumps(data, indent=2) + "\n")
    (out_dir / "rollout.md").write_text(operations.record_markdown(data))
    err.print(f"record: {out_dir / 'rollout.md'} ({len(data['events'])} events)", highlight=False)


def drill_command(
    route: RouteArg,
    gateway: Annotated[
        list[str],
        typer.Option("--gateway", "-g", help="A gateway replica's root URL (repeat for each)."),
    ],
    admin_token: Annotated[
        str,
        typer.Option(
            "--admin-token", envvar="CUTOVER_ADMIN_TOKEN", help="The gateways' admin token."
        ),
    ],
    db: DbOption = None,
    width: Annotated[
        float,
        typer.Option("--width", min=0.0001, max=1.0, help="Percent of keys in the test cohort."),
    ] = 0.01,
) -> None:
    """Move a test cohort to the candidate and back; how long each switch took per replica.

    Exit 1 if a replica took 1 s or more (or did not switch within 10 s).
    """
    import asyncio

    from cutover.rollout.drill import drill

    with cli_errors(), open_store(db) as store:
        result = asyncio.run(
            drill(store, route, list(gateway), admin_token=admin_token, width=width)
        )
    table = Table(title=f"drill on {route}: weight {result.weight:g}% <-> {result.drill_weight:g}%")
    table.add_column("replica")
    for switch in result.switches:
        table.add_column(f"-> {switch.to_arm}", justify="right")
    for url in gateway:
        cells = []
        for switch in result.switches:
            seconds = switch.seconds[url]
            cells.append("did not switch" if seconds is None else f"{seconds * 1000:.0f} ms")
        table.add_row(url, *cells)
    out.print(table)
    worst = [s.worst for s in result.switches]
    slow = any(w is None or w >= 1.0 for w in worst)
    raise typer.Exit(1 if slow else 0)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


__all__ = ["register"]

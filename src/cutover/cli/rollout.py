"""``cutover rollout``: check a rollout plan, and replay it against simulated traffic."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cutover.cli._common import cli_errors, err, out
from cutover.cli.rollout_control import register

rollout_app = typer.Typer(
    help="Canary rollouts: plans with sequential gates, and a simulator to try them.",
    no_args_is_help=True,
)


register(rollout_app)


@rollout_app.command("check-plan")
def check_plan(
    path: Annotated[Path, typer.Argument(help="The plan file (plan.yaml).")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the plan as the controller reads it, as JSON.")
    ] = False,
) -> None:
    """Validate a plan; errors name the file, line and field."""
    from cutover.rollout import load_plan
    from cutover.rollout.plan import format_duration

    with cli_errors():
        plan = load_plan(path)
    if as_json:
        data = plan.as_dict()
        data["tests_per_stage"] = plan.tests_per_stage
        data["test_level"] = plan.test_level()
        out.print_json(json.dumps(data))
        return
    out.print(
        f"{escape(str(path))}: route '{escape(plan.route)}', candidate {escape(plan.candidate)}, "
        f"owner {escape(plan.owner)}",
        highlight=False,
        soft_wrap=True,
    )
    stages = Table(title="stages")
    for column in ("#", "weight", "min requests/arm", "min duration", "max duration"):
        stages.add_column(column)
    for i, stage in enumerate(plan.stages):
        if not stage.compared:
            stages.add_row(str(i), f"{stage.weight:g}%", "-", "-", "- (rollout complete)")
            continue
        stages.add_row(
            str(i),
            f"{stage.weight:g}%",
            str(stage.min_requests),
            format_duration(stage.min_duration),
            f"{format_duration(stage.max_duration)} then {plan.on_timeout}"
            if stage.max_duration is not None
            else "-",
        )
    out.print(stages)
    gates = Table(title="gates")
    gates.add_column("gate", no_wrap=True)
    for column in ("where", "margin", "hard limit", "method"):
        gates.add_column(column)
    for gate in plan.gates:
        limit = "-" if gate.hard_limit is None else f"{gate.hard_limit:g}"
        gates.add_row(
            escape(gate.label),
            escape(", ".join(gate.scopes)),
            str(gate.margin),
            f"{limit} (critical)" if gate.critical else limit,
            _METHODS[gate.spec.kind],
        )
    out.print(gates)
    out.print(
        f"alpha {plan.alpha:g} per stage over {plan.tests_per_stage} gate tests "
        f"(each at {plan.test_level():.3g}); roll back when {plan.rollback_when.replace('_', ' ')}; "
        f"look every {format_duration(plan.check_interval)}; sample-ratio check at "
        f"{plan.srm_alpha:g}, then {plan.on_srm}",
        highlight=False,
        soft_wrap=True,
    )
    if plan.notify:
        out.print("notify: " + ", ".join(escape(u) for u in plan.notify), highlight=False)


_METHODS = MappingProxyType(
    {"rate": "Beta mixture", "quantile": "quantile CS", "mean": "asymptotic CS"}
)


@rollout_app.command("simulate")
def simulate_command(
    plan_path: Annotated[Path, typer.Option("--plan", help="The plan file.")],
    scenario_path: Annotated[Path, typer.Option("--scenario", help="The scenario file.")],
    runs: Annotated[int, typer.Option("--runs", min=1, help="Simulated rollouts.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same result).")] = 0,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write the result as JSON here.")
    ] = None,
    policy: Annotated[
        str, typer.Option("--policy", help="sequential (ours) or threshold (Flagger-style).")
    ] = "sequential",
    threshold_scale: Annotated[
        float,
        typer.Option(
            "--threshold-scale", min=0.0, help="threshold: fail a check past scale x the margin."
        ),
    ] = 1.0,
    threshold_failures: Annotated[
        int,
        typer.Option(
            "--threshold-failures", min=1, help="threshold: failed checks that roll back."
        ),
    ] = 5,
) -> None:
    """Replay a plan against simulated traffic (no network): how often it promotes, holds,
    rolls back, and how many candidate requests a rollback takes."""
    from cutover.rollout import load_plan, load_scenario
    from cutover.rollout.simulator import POLICIES, ThresholdPolicy, simulate

    if policy not in POLICIES:
        raise typer.BadParameter(f"choose one of {', '.join(POLICIES)}", param_hint="--policy")
    with cli_errors():
        plan = load_plan(plan_path)
        scenario = load_scenario(scenario_path)
        started = time.perf_counter()
        result = simulate(
            plan,
            scenario,
            runs=runs,
            seed=seed,
            policy=policy,  # type: ignore[arg-type]
            threshold=ThresholdPolicy(threshold_scale, threshold_failures),
        )
        wall = time.perf_counter() - started
    _print_result(result)
    err.print(f"{runs} runs in {wall:.1f} s", highlight=False)
    if out_path is not None:
        out_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        err.print(f"wrote {escape(str(out_path))}", highlight=False)


def _print_result(result: dict[str, Any]) -> None:
    runs = result["runs"]
    table = Table(title=f"{result['policy']} policy, {runs} runs")
    for column in ("promoted", "held", "rolled back", "detection p50", "detection p90"):
        table.add_column(column)
    detection = result["detection_requests"]

    def share(key: str) -> str:
        return f"{result[key]} ({result[key] / runs:.1%})"

    def requests(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f} req"

    table.add_row(
        share("promoted"),
        share("held"),
        share("rolled_back"),
        requests(detection["p50"]),
        requests(detection["p90"]),
    )
    out.print(table)
    for kind in ("rolled_back", "held"):
        causes = result["causes"][kind]
        if causes:
            text = ", ".join(f"{k} {v}" for k, v in causes.items())
            out.print(f"{kind.replace('_', ' ')}: {escape(text)}", highlight=False)
    gates = {k: v for k, v in result["rollback_gates"].items() if v}
    if gates:
        text = ", ".join(f"{k} {v}" for k, v in gates.items())
        out.print(f"gates behind rollbacks: {escape(text)}", highlight=False)


__all__ = ["rollout_app"]

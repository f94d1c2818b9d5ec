"""``cutover demo``: the built-in scenario, end to end, no keys, no network."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from cutover.cli._common import EXIT_GATE_FAILED, EXIT_OK, cli_errors, open_store, out
from cutover.cli.compare import _print_result, run_live, write_reports


def demo_command(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Directory for the report.")] = Path(
        "demo-out"
    ),
    db: Annotated[str | None, typer.Option("--db", help="Store URL.")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1)] = 32,
) -> None:
    """Compare two simulated models on a built-in support-bot suite.

    sim:baseline-v1 is the model in production; sim:fast-v2 is cheaper and faster
    but worse on the billing slice, where it also wraps JSON in code fences.
    """
    from cutover.analysis.gates import parse_gates
    from cutover.runner import CompareOptions
    from cutover.suites import load_suite

    suite_file = resources.files("cutover.scenarios").joinpath("demo_suite.yaml")
    with cli_errors(), resources.as_file(suite_file) as path:
        suite = load_suite(path)
        old, new = suite.targets["old"], suite.targets["new"]
        out.print(
            f"[bold]cutover demo[/] (simulated models, no network): {len(suite)} cases, "
            f"{old.label} -> {new.label}"
        )
        store = open_store(db)
        options = CompareOptions(concurrency=concurrency, use_cache=False, resume=False)
        result = run_live(suite, old, new, store, options)
        gates = parse_gates(suite.gates, path="demo_suite.yaml")
        outcome = write_reports(store, result.run.id, out_dir, gates=gates)
    _print_result(result, outcome, quiet=False)
    if not outcome.gate_passed:
        out.print(
            "[yellow]The gate fails on purpose: the scenario's candidate regressed on one slice.[/]"
        )
    raise typer.Exit(EXIT_OK if outcome.gate_passed else EXIT_GATE_FAILED)

"""``cutover runs``: what the store holds; ``cutover report``: rewrite a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cutover.cli._common import (
    EXIT_GATE_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    cli_errors,
    err,
    open_store,
    out,
    print_report_summary,
    print_verdict,
)

runs_app = typer.Typer(help="List and inspect recorded runs.", no_args_is_help=True)

DbOption = Annotated[str | None, typer.Option("--db", help="Store URL.")]


@runs_app.command("list")
def list_runs(
    limit: Annotated[int, typer.Option("--limit", "-n")] = 20, db: DbOption = None
) -> None:
    """The newest runs first."""
    with cli_errors():
        store = open_store(db)
        runs = store.list_runs(limit)
    table = Table()
    for column in ("id", "created", "kind", "status", "suite", "old", "new", "cases"):
        table.add_column(column)
    for run in runs:
        table.add_row(
            run.id[:12],
            run.created_at.strftime("%Y-%m-%d %H:%M"),
            run.kind,
            run.status,
            run.suite_name or "-",
            run.old_label,
            run.new_label,
            str(store.case_count(run.id)),
        )
    out.print(table)


def report_command(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix (6+ characters).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Directory for report.json.")],
    gates_file: Annotated[
        Path | None, typer.Option("--gates", help="YAML list of gate criteria.")
    ] = None,
    db: DbOption = None,
) -> None:
    """Analyse a recorded run again and write its reports (exit 1 when a gate fails)."""
    from cutover.analysis.gates import load_gates_file
    from cutover.cli.compare import write_reports

    with cli_errors():
        store = open_store(db)
        run = store.get_run(run_id)
        if run is None:
            err.print(f"[bold red]error:[/] no run '{run_id}' in {store.url}")
            raise typer.Exit(EXIT_USAGE)
        gates = load_gates_file(gates_file) if gates_file is not None else []
        outcome = write_reports(store, run.id, out_dir, gates=gates)
    print_report_summary(outcome.header)
    print_verdict(outcome)
    out.print(f"report: {outcome.paths['json']}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_OK if outcome.gate_passed else EXIT_GATE_FAILED)

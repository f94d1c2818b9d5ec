"""``cutover runs``: what the store holds; ``cutover report``: rewrite a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cutover.cli._common import EXIT_USAGE, cli_errors, err, open_store, out, print_report_summary

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
    db: DbOption = None,
) -> None:
    """Write the report of a recorded run again."""
    from cutover.reports import write_json_report

    with cli_errors():
        store = open_store(db)
        run = store.get_run(run_id)
        if run is None:
            err.print(f"[bold red]error:[/] no run '{run_id}' in {store.url}")
            raise typer.Exit(EXIT_USAGE)
        path = write_json_report(store, run.id, out_dir)
    print_report_summary(path)
    out.print(f"report: {path}", highlight=False, soft_wrap=True)

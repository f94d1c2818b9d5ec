"""``cutover compare``: old vs new on a suite, or from recorded outputs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cutover.cli._common import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    cli_errors,
    err,
    open_store,
    out,
    print_report_summary,
)
from cutover.errors import InputError

if TYPE_CHECKING:  # the library is imported inside the commands: `--help` stays fast
    from cutover.runner import CompareOptions, RunResult
    from cutover.runner import Progress as RunProgress
    from cutover.store import Store
    from cutover.suites import Suite
    from cutover.targets import Target


def run_live(
    suite: Suite,
    old: Target,
    new: Target,
    store: Store,
    options: CompareOptions,
    *,
    quiet: bool = False,
) -> RunResult:
    """Run with a Rich progress bar (on stderr); Ctrl-C keeps what finished."""
    from cutover.calls import TargetCaller
    from cutover.runner import run_compare

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("errors {task.fields[errors]} · cached {task.fields[cached]}"),
        TimeElapsedColumn(),
    )
    # Built before the bar shows: a missing key or unknown model fails first.
    callers = {"old": TargetCaller(old), "new": TargetCaller(new)}
    with Progress(*columns, console=err, disable=quiet, transient=False) as bar:
        task = bar.add_task(f"{old.label} vs {new.label}", total=None, errors=0, cached=0)

        def on_progress(p: RunProgress) -> None:
            bar.update(task, total=p.total, completed=p.done, errors=p.errors, cached=p.cached)

        async def go() -> RunResult:
            try:
                return await run_compare(
                    suite, old, new, store, options, progress=on_progress, callers=callers
                )
            finally:
                for caller in callers.values():
                    await caller.aclose()

        return asyncio.run(go())


def compare_command(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Directory for report.json.")],
    suite_path: Annotated[
        Path | None,
        typer.Option(
            "--suite", "-s", help="Suite: cutover YAML/JSONL, promptfoo YAML or OpenAI-evals JSONL."
        ),
    ] = None,
    old: Annotated[
        str | None,
        typer.Option(
            "--old",
            help="Baseline target: provider:model, provider:model@URL, or a name from --targets.",
        ),
    ] = None,
    new: Annotated[
        str | None,
        typer.Option(
            "--new",
            help="Candidate target: provider:model, provider:model@URL, or a name from --targets.",
        ),
    ] = None,
    targets_file: Annotated[
        Path | None, typer.Option("--targets", help="YAML file of named targets.")
    ] = None,
    old_outputs: Annotated[
        Path | None, typer.Option("--old-outputs", help="Recorded outputs of the baseline (JSONL).")
    ] = None,
    new_outputs: Annotated[
        Path | None,
        typer.Option("--new-outputs", help="Recorded outputs of the candidate (JSONL)."),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", "-c", min=1, max=1024, help="Calls in flight, both targets together."
        ),
    ] = 16,
    repeats: Annotated[
        int,
        typer.Option(
            "--repeats", "-k", min=1, max=100, help="Calls per case per target (non-determinism)."
        ),
    ] = 1,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not reuse cached responses.")
    ] = False,
    retry_errors: Annotated[
        bool, typer.Option("--retry-errors", help="On resume, also redo calls recorded as errors.")
    ] = False,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Start a new run even if an unfinished one matches.")
    ] = False,
    suite_format: Annotated[
        str, typer.Option("--suite-format", help="auto, cutover, promptfoo or openai-evals.")
    ] = "auto",
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Store URL (default: CUTOVER_DATABASE_URL or ~/.cutover/cutover.db)."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table.")] = False,
) -> None:
    """Compare a baseline (old) and a candidate (new) target side by side.

    Live: --suite S --old T --new T. Recorded: --old-outputs A.jsonl --new-outputs B.jsonl.
    Writes OUT/report.json. Running the same command again resumes an interrupted run.
    """
    from cutover.reports import write_json_report
    from cutover.runner import CompareOptions, compare_recorded
    from cutover.suites import load_suite
    from cutover.targets import load_targets_file

    recorded = old_outputs is not None or new_outputs is not None
    live = suite_path is not None
    if recorded == live:
        err.print(
            "[bold red]error:[/] give either --suite with --old/--new, "
            "or --old-outputs with --new-outputs"
        )
        raise typer.Exit(EXIT_USAGE)
    with cli_errors():
        if recorded:
            if old_outputs is None or new_outputs is None:
                raise InputError(
                    "--old-outputs and --new-outputs go together",
                    field="--new-outputs" if old_outputs else "--old-outputs",
                )
            store = open_store(db)
            result = compare_recorded(old_outputs, new_outputs, store)
        else:
            assert suite_path is not None
            suite = load_suite(suite_path, format=suite_format)
            named = dict(suite.targets)
            if targets_file is not None:
                named.update(load_targets_file(targets_file))
            old_t = _pick(old, named, "old", "--old")
            new_t = _pick(new, named, "new", "--new")
            store = open_store(db)
            options = CompareOptions(
                concurrency=concurrency,
                repeats=repeats,
                use_cache=not no_cache,
                retry_errors=retry_errors,
                resume=not fresh,
            )
            try:
                result = run_live(suite, old_t, new_t, store, options, quiet=quiet)
            except KeyboardInterrupt:
                err.print(
                    "[yellow]interrupted:[/] what finished is recorded; "
                    "run the same command again to finish what is missing."
                )
                raise typer.Exit(EXIT_INTERRUPTED) from None
        report_path = write_json_report(store, result.run.id, out_dir)
    _print_result(result, report_path, quiet=quiet)


def _pick(value: str | None, named: dict[str, Target], default: str, flag: str) -> Target:
    from cutover.targets import resolve_target

    if value is not None:
        return resolve_target(value, named)
    if default in named:
        return named[default]
    raise InputError(f"{flag} is required (the suite defines no '{default}' target)", field=flag)


def _print_result(result: RunResult, report_path: Path, *, quiet: bool) -> None:
    p = result.progress
    if not quiet:
        print_report_summary(report_path)
        verb = "resumed" if result.resumed else "run"
        out.print(
            f"{verb} {result.run.id[:12]}: {p.called} called, {p.cached} cached, "
            f"{p.skipped} already recorded, {p.errors} errors, {result.pairs} pairs "
            f"in {result.elapsed_s:.1f}s"
        )
        for note in result.notes:
            out.print(f"[yellow]note:[/] {note}")
    out.print(f"report: {report_path}", highlight=False, soft_wrap=True)

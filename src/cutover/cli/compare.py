"""``cutover compare``: old vs new on a suite, from recorded outputs, or from shadow traffic."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cutover.cli._common import (
    EXIT_GATE_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    cli_errors,
    err,
    open_store,
    out,
    print_report_summary,
    print_verdict,
)
from cutover.errors import InputError

if TYPE_CHECKING:  # the library is imported inside the commands: `--help` stays fast
    from cutover.analysis.gates import GateCriterion
    from cutover.reports.build import ReportOutcome
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
    from_shadow: Annotated[
        str | None,
        typer.Option(
            "--from-shadow",
            help="Route alias: judge the gateway's shadow Pairs of this route (see --since).",
        ),
    ] = None,
    since: Annotated[
        str,
        typer.Option("--since", help="With --from-shadow: how far back (24h, 90m, 7d)."),
    ] = "24h",
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
    gates_file: Annotated[
        Path | None,
        typer.Option("--gates", help="YAML list of gate criteria (added to the suite's)."),
    ] = None,
    judge: Annotated[
        str | None,
        typer.Option(
            "--judge", help="Judge target for pairwise verdicts (provider:model or a name)."
        ),
    ] = None,
    judge_sample: Annotated[
        int,
        typer.Option("--judge-sample", min=0, help="Pairs the judge compares (position-swapped)."),
    ] = 200,
    alpha: Annotated[
        float, typer.Option("--alpha", min=0.0001, max=0.5, help="Significance level.")
    ] = 0.05,
    correction: Annotated[
        str, typer.Option("--correction", help="Multiple-comparison correction: bh, holm or none.")
    ] = "bh",
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
    Shadow: --from-shadow ROUTE --since 24h (the gateway's shadow Pairs, from --db).
    Writes OUT/report.json, report.md, report.html and junit.xml. Running the same
    command again resumes an interrupted run. Exit 0 when every gate passes, 1 when
    any fails, 2 on bad usage or input.
    """
    from cutover.analysis.gates import load_gates_file, parse_gates
    from cutover.runner import CompareOptions, compare_recorded
    from cutover.suites import load_suite
    from cutover.targets import load_targets_file

    recorded = old_outputs is not None or new_outputs is not None
    live = suite_path is not None
    shadow = from_shadow is not None
    if (recorded, live, shadow).count(True) != 1:
        err.print(
            "[bold red]error:[/] give exactly one of --suite (with --old/--new), "
            "--old-outputs (with --new-outputs) or --from-shadow ROUTE"
        )
        raise typer.Exit(EXIT_USAGE)
    if correction not in ("bh", "holm", "none"):
        err.print("[bold red]error:[/] --correction must be bh, holm or none")
        raise typer.Exit(EXIT_USAGE)
    if from_shadow is not None:
        _compare_shadow(
            from_shadow, since, out_dir, db=db, gates_file=gates_file, targets_file=targets_file,
            judge=judge, judge_sample=judge_sample, alpha=alpha, correction=correction,
            quiet=quiet,
        )  # fmt: skip
    with cli_errors():
        gates = load_gates_file(gates_file) if gates_file is not None else []
        named: dict[str, Target] = {}
        if targets_file is not None:
            named.update(load_targets_file(targets_file))
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
            gates = [*parse_gates(suite.gates, path=str(suite_path)), *gates]
            named = {**suite.targets, **named}
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
        judge_target = resolve_judge(judge, named)
        outcome = write_reports(
            store, result.run.id, out_dir, gates=gates, alpha=alpha, correction=correction,
            judge=judge_target, judge_sample=judge_sample,
        )  # fmt: skip
    _print_result(result, outcome, quiet=quiet)
    raise typer.Exit(EXIT_OK if outcome.gate_passed else EXIT_GATE_FAILED)


def _compare_shadow(
    alias: str,
    since: str,
    out_dir: Path,
    *,
    db: str | None,
    gates_file: Path | None,
    targets_file: Path | None,
    judge: str | None,
    judge_sample: int,
    alpha: float,
    correction: str,
    quiet: bool,
) -> None:
    """``--from-shadow``: the route's shadow runs of the window, merged into one, judged."""
    from cutover.analysis.gates import load_gates_file
    from cutover.gateway.shadow_runs import collect_shadow_run, parse_since
    from cutover.targets import load_targets_file

    with cli_errors():
        try:
            window = parse_since(since)
        except ValueError as exc:
            raise InputError(str(exc), field="--since") from None
        gates = load_gates_file(gates_file) if gates_file is not None else []
        named = load_targets_file(targets_file) if targets_file is not None else {}
        store = open_store(db)
        run, sources, pairs = collect_shadow_run(store, alias, window)
        outcome = write_reports(
            store, run.id, out_dir, gates=gates, alpha=alpha, correction=correction,
            judge=resolve_judge(judge, named), judge_sample=judge_sample,
        )  # fmt: skip
    if not quiet:
        print_report_summary(outcome.header)
        print_verdict(outcome)
        out.print(f"shadow {run.id[:12]}: route {alias}, {pairs} pairs from {sources} daily run(s)")
    out.print(f"report: {outcome.paths['json']}", highlight=False, soft_wrap=True)
    if quiet:
        out.print(f"gate: {'PASSED' if outcome.gate_passed else 'FAILED'}", highlight=False)
    raise typer.Exit(EXIT_OK if outcome.gate_passed else EXIT_GATE_FAILED)


def _pick(value: str | None, named: dict[str, Target], default: str, flag: str) -> Target:
    from cutover.targets import resolve_target

    if value is not None:
        return resolve_target(value, named)
    if default in named:
        return named[default]
    raise InputError(f"{flag} is required (the suite defines no '{default}' target)", field=flag)


def resolve_judge(spec: str | None, named: dict[str, Target]) -> Target | None:
    from cutover.targets import resolve_target

    return resolve_target(spec, named) if spec else None


def write_reports(
    store: Store,
    run_id: str,
    out_dir: Path,
    *,
    gates: list[GateCriterion],
    alpha: float = 0.05,
    correction: str = "bh",
    judge: Target | None = None,
    judge_sample: int = 200,
) -> ReportOutcome:
    """Analyse the run and write every report format."""
    from cutover.analysis.verdict import AnalysisOptions
    from cutover.reports.build import build_reports

    judge_obj = None
    if judge is not None:
        from cutover.assertions import Judge

        judge_obj = Judge(judge)
    return build_reports(
        store,
        run_id,
        out_dir,
        gates=gates,
        options=AnalysisOptions(alpha=alpha, correction=correction),
        judge=judge_obj,
        judge_sample=judge_sample,
    )


def _print_result(result: RunResult, outcome: ReportOutcome, *, quiet: bool) -> None:
    p = result.progress
    report_path = outcome.paths["json"]
    if not quiet:
        print_report_summary(outcome.header)
        print_verdict(outcome)
        verb = "resumed" if result.resumed else "run"
        out.print(
            f"{verb} {result.run.id[:12]}: {p.called} called, {p.cached} cached, "
            f"{p.skipped} already recorded, {p.errors} errors, {result.pairs} pairs "
            f"in {result.elapsed_s:.1f}s"
        )
        for note in result.notes:
            out.print(f"[yellow]note:[/] {note}")
    out.print(f"report: {report_path}", highlight=False, soft_wrap=True)
    if quiet:
        out.print(f"gate: {'PASSED' if outcome.gate_passed else 'FAILED'}", highlight=False)

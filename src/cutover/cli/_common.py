"""What every command shares: the consoles, error handling, store, output."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cutover.errors import CutoverError, InputError, RunAbortedError, StoreError

if TYPE_CHECKING:
    from cutover.reports.build import ReportOutcome
    from cutover.store import Store

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_ABORTED = 3
EXIT_INTERRUPTED = 130

out = Console()
err = Console(stderr=True)


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn cutover errors into one clear line on stderr and an exit code."""
    try:
        yield
    except InputError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    except StoreError as exc:
        err.print(f"[bold red]store error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    except RunAbortedError as exc:
        err.print(f"[bold red]run aborted:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_ABORTED) from None
    except CutoverError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None


def open_store(db: str | None) -> Store:
    from cutover.store import Store

    return Store.open(db)


def fmt_ms(figures: dict[str, float] | None, key: str) -> str:
    return "-" if not figures else f"{figures[key]:,.0f}"


def fmt_usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.4f}" if value >= 0.01 else f"${value:.6f}"


def summary_table(report: dict[str, Any]) -> Table:
    """Old vs new figures from a report.json dict."""
    targets = report.get("targets", {})
    old, new = report["summary"]["old"], report["summary"]["new"]
    table = Table(title="old vs new", show_lines=False)
    table.add_column("")
    table.add_column(f"old: {targets.get('old', {}).get('label', 'old')}")
    table.add_column(f"new: {targets.get('new', {}).get('label', 'new')}")
    rows = [
        ("requests", str(old["n"]), str(new["n"])),
        ("error rate", f"{old['error_rate']:.2%}", f"{new['error_rate']:.2%}"),
        ("latency p50 ms", fmt_ms(old["latency_ms"], "p50"), fmt_ms(new["latency_ms"], "p50")),
        ("latency p95 ms", fmt_ms(old["latency_ms"], "p95"), fmt_ms(new["latency_ms"], "p95")),
        ("latency p99 ms", fmt_ms(old["latency_ms"], "p99"), fmt_ms(new["latency_ms"], "p99")),
        ("ttft p50 ms", fmt_ms(old["ttft_ms"], "p50"), fmt_ms(new["ttft_ms"], "p50")),
        (
            "tokens / request",
            str(old["tokens_per_request"] or "-"),
            str(new["tokens_per_request"] or "-"),
        ),
        (
            "cost / request",
            fmt_usd(old["cost_per_request_usd"]),
            fmt_usd(new["cost_per_request_usd"]),
        ),
        ("cost total", fmt_usd(old["cost_usd"]), fmt_usd(new["cost_usd"])),
    ]
    for row in rows:
        table.add_row(*row)
    return table


def print_report_summary(report: dict[str, Any]) -> None:
    if report.get("simulated"):
        out.print(
            "[bold yellow]SIMULATED:[/] outputs come from the built-in sim provider, not a real model."
        )
    out.print(summary_table(report))
    unpaired = report.get("unpaired", {})
    for side in ("only_old", "only_new"):
        ids = unpaired.get(side) or []
        if ids:
            out.print(
                f"[yellow]{len(ids)} case(s) {side.replace('_', ' in ')}:[/] {', '.join(ids[:8])}"
            )


def print_verdict(outcome: ReportOutcome) -> None:
    """The slice to watch, the significant changes and the gate."""
    analysis = outcome.analysis
    flips = analysis.get("flips") or {}
    triage = analysis.get("triage") or {}
    out.print(
        f"flips: {flips.get('negative', 0)} pass -> fail, {flips.get('positive', 0)} fail -> pass; "
        + ", ".join(f"{k} {v}" for k, v in triage.items())
    )
    significant = [r for r in analysis.get("slices", []) if r.get("significant")]
    if significant:
        table = Table(title="significant changes (new vs old)")
        for column in ("slice", "metric", "old", "new", "delta", "95% CI", "p adj"):
            table.add_column(column)
        for row in significant[:15]:
            ci = (
                escape(f"[{row['ci_low']:.3g}, {row['ci_high']:.3g}]")
                if row.get("ci_low") is not None and row.get("ci_high") is not None
                else "-"
            )
            table.add_row(
                row["name"], row["metric"], f"{row['old']:.3g}", f"{row['new']:.3g}",
                f"{row['delta']:+.3g}", ci, f"{row['p_adjusted']:.3g}",
            )  # fmt: skip
        out.print(table)
    watch = analysis.get("watch")
    if watch:
        text = escape(f"{watch['slice']}: {watch['reason']}")
        out.print(f"[bold]watch:[/] {text}", highlight=False, soft_wrap=True)
    gate = analysis.get("gate") or {}
    for criterion in gate.get("criteria", []):
        mark = "[green]pass[/]" if criterion["passed"] else "[bold red]FAIL[/]"
        text = escape(f"{criterion['name']}: {criterion['reason']}")
        out.print(f"  {mark} {text}", highlight=False, soft_wrap=True)
    if gate.get("criteria"):
        verdict = "[bold green]PASSED[/]" if gate.get("passed") else "[bold red]FAILED[/]"
        out.print(f"gate: {verdict}")
    for note in analysis.get("notes", []):
        out.print(f"[yellow]note:[/] {escape(note)}", highlight=False)

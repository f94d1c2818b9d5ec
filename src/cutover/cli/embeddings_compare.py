"""``cutover embeddings compare``: the old and new index's answers to the same queries."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cutover.cli._common import EXIT_USAGE, cli_errors, err, out

if TYPE_CHECKING:  # the library is imported inside the command: `--help` stays fast
    from cutover.embeddings.compare import IndexComparison


def compare_command(
    old: Annotated[str, typer.Option("--old", help="Baseline index or alias.")],
    new: Annotated[str, typer.Option("--new", help="Candidate index or alias.")],
    queries: Annotated[
        Path, typer.Option("--queries", help='BEIR queries.jsonl: {"_id", "text"} per line.')
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for report.json and report.html.")
    ],
    qrels: Annotated[
        Path | None,
        typer.Option(
            "--qrels", help="BEIR qrels TSV (query-id, corpus-id, score): adds nDCG@10 and recall."
        ),
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, help="Top k compared.")] = 10,
    depth: Annotated[
        int,
        typer.Option(
            "--depth",
            min=1,
            help="Results retrieved per query (where the documents that left went).",
        ),
    ] = 100,
    rbo_p: Annotated[float, typer.Option("--rbo-p", help="RBO persistence p, in (0, 1).")] = 0.9,
    corpus: Annotated[
        Path | None,
        typer.Option("--corpus", help="BEIR corpus.jsonl: titles for the documents shown."),
    ] = None,
    max_changed: Annotated[
        int, typer.Option("--max-changed", min=0, help="Queries shown side by side, per list.")
    ] = 20,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            "--db",
            help="Store URL (default: CUTOVER_DATABASE_URL or ~/.cutover/cutover.db).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table.")] = False,
) -> None:
    """Compare two indexes' top k on the same queries: overlap, RBO, nDCG@10, recall.

    Both indexes are searched to --depth; report.json and a self-contained
    report.html go to --out. Exit 0, or 2 on bad usage or input.
    """
    from cutover.embeddings.compare import compare_indexes

    if depth < k:
        err.print(f"[bold red]error:[/] --depth ({depth}) must be at least --k ({k})")
        raise typer.Exit(EXIT_USAGE)
    if not 0.0 < rbo_p < 1.0:
        err.print(f"[bold red]error:[/] --rbo-p must be between 0 and 1 (exclusive), got {rbo_p}")
        raise typer.Exit(EXIT_USAGE)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with cli_errors(), Progress(*columns, console=err, disable=quiet, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def on_progress(side: str, done: int, total: int) -> None:
            if side not in tasks:
                name = old if side == "old" else new
                tasks[side] = bar.add_task(f"{side}: {name}", total=total)
            bar.update(tasks[side], completed=done)

        result = compare_indexes(
            old, new, queries, qrels, k=k, out_dir=out_dir, depth=depth, store_url=store,
            rbo_p=rbo_p, corpus_path=corpus, max_changed=max_changed, progress=on_progress,
        )  # fmt: skip
    if not quiet:
        print_summary(result)
    out.print(f"report: {result.paths['json']}", highlight=False, soft_wrap=True)


def _fmt(value: Any, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _label(index: dict[str, Any]) -> str:
    name, resolved = str(index["name"]), index.get("index")
    return f"{name} (= {resolved})" if resolved and resolved != name else name


def _spread(buckets: list[dict[str, Any]]) -> str:
    parts = []
    for b in buckets:
        if b["documents"]:
            where = f"at ranks {b['label']}" if b["low"] is not None else b["label"]
            parts.append(f"{b['documents']} {where}")
    return ", ".join(parts)


def print_summary(result: IndexComparison) -> None:
    """Overlap, RBO, nDCG@10 and recall of both sides, with the change's interval."""
    report = result.report
    k, n = report["k"], report["n_queries"]
    names = {side: escape(_label(report["indexes"][side])) for side in ("old", "new")}
    out.print(
        f"[bold]{names['old']} -> {names['new']}[/]: {n} queries, "
        f"same top {k} for {report['identical_top_k']}",
        highlight=False,
    )
    out.print(
        f"top-{k} overlap {_fmt(report['overlap_at_k'])} · RBO (p={report['rbo_p']:g}) "
        f"{_fmt(report['rbo'])}, bounds {_fmt(report['rbo_min'])}-{_fmt(report['rbo_max'])}",
        highlight=False,
    )
    metrics = [(label, report.get(key)) for label, key in
               (("nDCG@10", "ndcg_at_10"), (f"recall@{k}", "recall_at_k"))]  # fmt: skip
    if any(m for _, m in metrics):
        table = Table(title=f"relevance ({report['n_judged']} judged queries)")
        for column in ("", "old", "new", "change", "95% CI", "p"):
            table.add_column(column)
        for label, m in metrics:
            if not m:
                continue
            ci = "-"
            if m["ci_low"] is not None and m["ci_high"] is not None:
                ci = escape(f"[{_fmt(m['ci_low'], True)}, {_fmt(m['ci_high'], True)}]")
            p = "-" if m["p_value"] is None else f"{m['p_value']:.3g}"
            table.add_row(label, _fmt(m["old"]), _fmt(m["new"]), _fmt(m["delta"], True), ci, p)
        out.print(table)
    dropped = report["where_the_rest_went"]["dropped"]
    if dropped["documents"]:
        relevant = (
            f"; {dropped['relevant']} of them judged relevant"
            if dropped["relevant"] is not None
            else ""
        )
        out.print(
            f"left the top {k}: {dropped['documents']} documents, now "
            f"{escape(_spread(dropped['buckets']))} in {names['new']}{relevant}",
            highlight=False,
            soft_wrap=True,
        )
    entered = report["where_the_rest_went"]["entered"]
    if entered["documents"] and entered["relevant"] is not None:
        out.print(
            f"entered the top {k}: {entered['documents']} documents; "
            f"{entered['relevant']} of them judged relevant",
            highlight=False,
        )
    for note in report.get("notes", []):
        out.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)


__all__ = ["compare_command", "print_summary"]

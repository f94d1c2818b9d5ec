"""``cutover embeddings``: build indexes, search them, switch aliases, retire."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from cutover.cli._common import EXIT_INTERRUPTED, cli_errors, err, open_store, out
from cutover.cli.embeddings_compare import compare_command

if TYPE_CHECKING:  # the library is imported inside each command: `--help` stays fast
    from cutover.store._embeddings import EmbeddingAliasRow, EmbeddingIndexRow

embeddings_app = typer.Typer(
    help="Embedding indexes: build (resumable), search, compare, switch aliases, retire.",
    no_args_is_help=True,
)
alias_app = typer.Typer(
    help="Aliases: the name readers search, switched from one index to another atomically.",
    no_args_is_help=True,
)
embeddings_app.add_typer(alias_app, name="alias")
embeddings_app.command("compare")(compare_command)

DbOption = Annotated[str | None, typer.Option("--db", help="Store URL (the registry).")]
ActorOption = Annotated[
    str | None, typer.Option("--actor", help="Who is switching (default: $USER).")
]


def _actor(actor: str | None) -> str:
    from cutover.settings import Settings

    return (actor or "").strip() or Settings.from_env().user or "cli"


@embeddings_app.command("build")
def build_command(
    index: Annotated[str, typer.Option("--index", help="Name of the index to build or update.")],
    corpus: Annotated[
        Path | None,
        typer.Option("--corpus", help="BEIR corpus.jsonl: {_id, title, text} per line."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="minilm, openai:MODEL (or openai:MODEL@BASE_URL), tfidf-svd:DIM or "
            "hash:DIM (needed for a new index).",
        ),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option("--backend", help="embedded (default for a new index) or pgvector."),
    ] = None,
    location: Annotated[
        str | None,
        typer.Option(
            "--location",
            help="embedded: the index directory (default <CUTOVER_HOME>/indexes/NAME); "
            "pgvector: the database URL (default CUTOVER_PGVECTOR_URL, else the store's).",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Documents per batch (one commit each).")
    ] = 256,
    priority: Annotated[
        Path | None,
        typer.Option("--priority", help="Document ids, most retrieved first: embedded first."),
    ] = None,
    changes: Annotated[
        Path | None,
        typer.Option("--changes", help="JSONL upserts and deletes, applied after the corpus."),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="openai: requests in flight.")
    ] = 4,
    max_rps: Annotated[
        float | None,
        typer.Option("--max-rps", min=0.01, help="openai: requests per second at most."),
    ] = None,
    request_size: Annotated[
        int, typer.Option("--request-size", min=1, help="openai: texts per request.")
    ] = 64,
    dimensions: Annotated[
        int | None,
        typer.Option("--dimensions", min=1, help="openai: the 'dimensions' request parameter."),
    ] = None,
    retries: Annotated[
        int, typer.Option("--retries", min=0, help="openai: retries of a failed request.")
    ] = 5,
    db: DbOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Build an index from a corpus, resume an interrupted build, or apply changes.

    Documents already in the index with the same content are never embedded
    again, so rerunning the same command after a crash or a failed model
    resumes where the last committed batch ended.
    """
    from cutover.embeddings.build import build_index
    from cutover.embeddings.models import ModelOptions

    options = ModelOptions(
        request_size=request_size,
        concurrency=concurrency,
        max_rps=max_rps,
        max_retries=retries,
        dimensions=dimensions,
    )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with cli_errors(), Progress(*columns, console=err, disable=quiet) as bar:
        tasks: dict[str, TaskID] = {}

        def on_progress(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        store = open_store(db)
        try:
            result = build_index(
                index,
                corpus=corpus,
                model=model,
                backend=backend,
                location=location,
                changes=changes,
                priority=priority,
                batch_size=batch_size,
                model_options=options,
                store=store,
                progress=on_progress,
            )
        except KeyboardInterrupt:
            err.print(
                "[yellow]interrupted:[/] every committed batch is kept; "
                "run the same command again to resume."
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None
        finally:
            store.close()
    out.print(
        f"index [bold]{escape(result.index)}[/] ({result.backend}, {escape(result.model)}): "
        f"{result.status}, {result.count:,} documents; this run wrote {result.written:,} "
        f"(embedded {result.embedded:,} texts), {result.unchanged:,} unchanged, "
        f"{result.duplicates:,} shared a text, {result.deleted:,} deleted "
        f"in {result.seconds:,.1f}s",
        highlight=False,
        soft_wrap=True,
    )
    if result.priority_missing:
        err.print(f"[yellow]note:[/] {result.priority_missing} priority id(s) not in the corpus")


def _index_table(rows: list[EmbeddingIndexRow], aliases: dict[str, list[str]]) -> Table:
    table = Table()
    for column in ("index", "status", "backend", "model", "dims", "docs", "built", "aliases"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            escape(row.name),
            row.status,
            row.backend,
            escape(row.model_spec),
            str(row.dimensions),
            f"{row.doc_count:,}",
            row.built_at.strftime("%Y-%m-%d %H:%M") if row.built_at else "-",
            escape(", ".join(aliases.get(row.name, []))) or "-",
        )
    return table


@embeddings_app.command("list")
def list_command(db: DbOption = None) -> None:
    """The indexes (newest first) with their model, size and aliases."""
    with cli_errors():
        store = open_store(db)
        try:
            rows = store.embedding_indexes()
            aliases: dict[str, list[str]] = {}
            for alias in store.embedding_aliases():
                aliases.setdefault(alias.index_name, []).append(alias.name)
        finally:
            store.close()
    out.print(_index_table(rows, aliases))


@embeddings_app.command("search")
def search_command(
    name: Annotated[str, typer.Argument(help="Index or alias.")],
    queries: Annotated[list[str], typer.Argument(help="One or more query texts.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Hits per query.")] = 10,
    db: DbOption = None,
) -> None:
    """Print the top k hits of each query (id and cosine similarity)."""
    from cutover.embeddings.query import Searcher

    with cli_errors():
        store = open_store(db)
        try:
            searcher = Searcher(store)
            row, _index = searcher.target(name)
            results = searcher.search(name, queries, k)
        finally:
            store.close()
    for query, hits in zip(queries, results, strict=True):
        table = Table(title=f"{escape(query)}  ({escape(row.name)})", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("id")
        table.add_column("score", justify="right")
        for rank, hit in enumerate(hits, start=1):
            table.add_row(str(rank), escape(hit.id), f"{hit.score:.4f}")
        out.print(table)


def _alias_line(row: EmbeddingAliasRow) -> str:
    previous = f" (previous: {row.previous_index})" if row.previous_index else ""
    return f"alias {row.name} -> {row.index_name}{previous}, version {row.version}"


@alias_app.command("set")
def alias_set(
    name: Annotated[str, typer.Argument(help="The alias.")],
    to: Annotated[str, typer.Option("--to", help="The (complete) index it names from now.")],
    actor: ActorOption = None,
    db: DbOption = None,
) -> None:
    """Point an alias at an index, in one transaction (the switch is audited)."""
    from cutover.embeddings.registry import set_alias

    with cli_errors():
        store = open_store(db)
        try:
            before, after = set_alias(store, name, to, actor=_actor(actor))
        finally:
            store.close()
    if before is not None and before.index_name == after.index_name:
        out.print(f"alias {escape(name)} already names {escape(to)}", highlight=False)
        return
    out.print(escape(_alias_line(after)), highlight=False)


@alias_app.command("rollback")
def alias_rollback(
    name: Annotated[str, typer.Argument(help="The alias.")],
    actor: ActorOption = None,
    db: DbOption = None,
) -> None:
    """Point an alias back at its previous index, in one transaction."""
    from cutover.embeddings.registry import rollback_alias

    with cli_errors():
        store = open_store(db)
        try:
            _before, after = rollback_alias(store, name, actor=_actor(actor))
        finally:
            store.close()
    out.print(escape(_alias_line(after)), highlight=False)


@alias_app.command("show")
def alias_show(
    name: Annotated[str, typer.Argument(help="The alias.")],
    history: Annotated[int, typer.Option("--history", min=0, help="Events shown.")] = 20,
    db: DbOption = None,
) -> None:
    """The index an alias names, the previous one, and its history."""
    from cutover.embeddings.registry import alias_info

    with cli_errors():
        store = open_store(db)
        try:
            info = alias_info(store, name, history=history)
        finally:
            store.close()
    out.print(escape(_alias_line(info.alias)), highlight=False)
    shown = [row for row in (info.current, info.previous) if row is not None]
    if shown:
        out.print(_index_table(shown, {info.alias.index_name: [name]}))
    if info.events:
        table = Table(title="history (newest first)", title_justify="left")
        for column in ("when (UTC)", "who", "action", "before", "after"):
            table.add_column(column)
        for event in info.events:
            before = event.before or {}
            after = event.after or {}
            table.add_row(
                event.ts.strftime("%Y-%m-%d %H:%M:%S"),
                escape(event.actor),
                event.action,
                escape(f"{before.get('index', '-')} ({before.get('model', '-')})")
                if before
                else "-",
                escape(f"{after.get('index', '-')} ({after.get('model', '-')})"),
            )
        out.print(table)


@embeddings_app.command("retire")
def retire_command(
    index: Annotated[str, typer.Argument(help="The index to retire.")],
    keep_warm_days: Annotated[
        float,
        typer.Option(
            "--keep-warm-days",
            min=0.0,
            help="Refuse within this many days of the index's last use behind an alias.",
        ),
    ] = 14.0,
    db: DbOption = None,
) -> None:
    """Delete an index's vectors and mark it retired.

    Refused while an alias names the index, or within the keep-warm period
    after an alias last named it (it is the rollback target until then).
    """
    from cutover.embeddings.registry import retire

    with cli_errors():
        store = open_store(db)
        try:
            row = retire(store, index, keep_warm_days=keep_warm_days)
        finally:
            store.close()
    out.print(f"index {escape(row.name)} retired; its vectors are deleted", highlight=False)


__all__ = ["alias_app", "embeddings_app"]

"""Validate an embedding-index migration: the old and new index's answers to the same queries.

Two layers, as everywhere in cutover:

* :func:`compare_rankings` (pure, no I/O): given each query's ranked document
  ids from both indexes, and optionally graded relevance judgments, the
  per-query top-k overlap and rank-biased overlap, nDCG@10 and recall@k with
  a paired bootstrap interval of the change, where the documents that left
  the top k went, and the queries that changed most.
* :func:`compare_indexes`: reads BEIR queries (and qrels), asks both indexes
  through :func:`cutover.embeddings.search` (or any callable with its
  signature, for tests), compares, and writes ``report.json`` and
  ``report.html`` (:mod:`cutover.embeddings.report`).

``docs/embeddings_compare.md`` sets out each figure's method and assumptions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from cutover.embeddings._compare_metrics import RBO, ndcg_at_k, overlap_at_k, rbo, recall_at_k
from cutover.embeddings._compare_rankings import (
    NDCG_CUTOFF,
    MetricChange,
    Movement,
    QueryComparison,
    RankBucket,
    RankingComparison,
    compare_rankings,
)
from cutover.errors import InputError

__all__ = [
    "NDCG_CUTOFF",
    "RBO",
    "IndexComparison",
    "MetricChange",
    "Movement",
    "QueryComparison",
    "RankBucket",
    "RankingComparison",
    "SearchFunction",
    "compare_indexes",
    "compare_rankings",
    "ndcg_at_k",
    "overlap_at_k",
    "pin_indexes",
    "rbo",
    "recall_at_k",
]

SEARCH_BATCH = 256
"""Queries per search call: the progress callback is told after each batch."""


class _Hit(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def score(self) -> float: ...


class SearchFunction(Protocol):
    """The signature of :func:`cutover.embeddings.search`."""

    def __call__(
        self,
        name_or_alias: str,
        queries: Sequence[str],
        k: int = 10,
        *,
        store_url: str | None = None,
    ) -> Sequence[Sequence[_Hit]]: ...


ProgressFunction = Callable[[str, int, int], None]
"""``progress(side, queries done, queries in all)``, after each batch of each side."""


class IndexComparison(NamedTuple):
    """What :func:`compare_indexes` found and wrote."""

    comparison: RankingComparison
    report: dict[str, Any]
    paths: dict[str, Path]
    """``{"json": ..., "html": ...}``; empty when no ``out_dir`` was given."""


def compare_indexes(
    old_name: str,
    new_name: str,
    queries_path: str | Path,
    qrels_path: str | Path | None = None,
    k: int = 10,
    out_dir: str | Path | None = None,
    depth: int = 100,
    store_url: str | None = None,
    *,
    rbo_p: float = 0.9,
    corpus_path: str | Path | None = None,
    index_meta: Mapping[str, Mapping[str, Any]] | None = None,
    max_changed: int = 20,
    seed: int = 0,
    search: SearchFunction | None = None,
    progress: ProgressFunction | None = None,
) -> IndexComparison:
    """Ask two indexes (or aliases) the same queries and compare their answers.

    Both are searched to ``depth`` (at least ``k``, and at least 10 when there
    are qrels, for nDCG@10) so the report can say where the documents that
    left the top ``k`` went. ``corpus_path`` (a BEIR ``corpus.jsonl``) gives
    titles to the documents shown side by side; ``index_meta`` is written into
    the report as ``indexes`` (``{"old": {...}, "new": {...}}``, the names are
    added). ``search`` defaults to :func:`cutover.embeddings.search`;
    then each name is first resolved in the store (:func:`pin_indexes`), every
    batch searches that index, and the report records what each side was. With
    ``out_dir`` the reports are written there.
    """
    from cutover.embeddings.corpus import load_qrels, load_queries
    from cutover.embeddings.report import build_report, documents_shown, write_report

    if k < 1:
        raise InputError(f"must be >= 1, got {k}", field="k")
    if depth < k:
        raise InputError(f"must be >= k ({k}), got {depth}", field="depth")
    if not 0.0 < rbo_p < 1.0:
        raise InputError(f"must be in (0, 1), got {rbo_p}", field="rbo_p")
    queries = load_queries(queries_path)
    if not queries:
        raise InputError("holds no queries", path=str(queries_path))
    qrels = load_qrels(qrels_path) if qrels_path is not None else None
    search_depth = max(depth, NDCG_CUTOFF) if qrels is not None else depth
    sides = {"old": old_name, "new": new_name}
    described = {side: {"name": name} for side, name in sides.items()}
    if search is None:  # the real indexes: pin what each name resolves to now
        described = pin_indexes(sides, store_url)
        sides = {side: str(info["index"]) for side, info in described.items()}
        search = _default_search()
    ids = list(queries)
    texts = [queries[q] for q in ids]
    rankings: dict[str, dict[str, list[str]]] = {}
    ties: dict[str, int] = {}
    for side, name in sides.items():
        hits = _search_all(search, side, name, texts, search_depth, store_url, progress)
        rankings[side] = {qid: [h.id for h in row] for qid, row in zip(ids, hits, strict=True)}
        ties[side] = sum(1 for row in hits if _tied_at(row, k))
    comparison = compare_rankings(
        rankings["old"], rankings["new"], k=k, qrels=qrels, rbo_p=rbo_p, query_texts=queries,
        max_changed=max_changed, seed=seed,
    )  # fmt: skip
    notes = [
        f"{n} {'query has' if n == 1 else 'queries have'} a score tie across the top-{k} cut "
        f"in the {side} index: which of the tied documents made the top k is arbitrary."
        for side, n in ties.items()
        if n
    ]
    indexes = {
        side: {**info, **dict((index_meta or {}).get(side) or {})}
        for side, info in described.items()
    }
    inputs = {
        "queries": str(queries_path),
        "qrels": str(qrels_path) if qrels_path is not None else None,
        "corpus": str(corpus_path) if corpus_path is not None else None,
        "search_depth": search_depth,
    }
    report = build_report(comparison, indexes=indexes, inputs=inputs, notes=notes)
    if corpus_path is not None:
        report["titles"] = _titles(corpus_path, documents_shown(report))
    paths = write_report(report, out_dir) if out_dir is not None else {}
    return IndexComparison(comparison, report, paths)


def _default_search() -> SearchFunction:
    from cutover.embeddings import search  # the query API, imported when first needed

    found: SearchFunction = search
    return found


def pin_indexes(
    names: Mapping[str, str], store_url: str | None = None
) -> dict[str, dict[str, Any]]:
    """Resolve each side's index or alias once, in the store; what each side is.

    Searching the resolved index (``"index"``) for every batch keeps the
    comparison on one index per side even if an alias is switched meanwhile.
    The rest (alias and its version, backend, model, dimensions, documents,
    build time) goes into the report as given.
    """
    from cutover.embeddings import registry

    pinned: dict[str, dict[str, Any]] = {}
    with registry.store_scope(url=store_url) as store:
        for side, name in names.items():
            row, alias = registry.resolve(store, name)
            pinned[side] = {
                "name": name,
                "index": row.name,
                "alias": alias.name if alias is not None else None,
                "alias_version": alias.version if alias is not None else None,
                "backend": row.backend,
                "model": row.model_spec,
                "model_identity": row.model_identity,
                "dimensions": row.dimensions,
                "documents": row.doc_count,
                "status": row.status,
                "built_at": row.built_at.isoformat() if row.built_at else None,
            }
    return pinned


def _search_all(
    search: SearchFunction,
    side: str,
    name: str,
    texts: Sequence[str],
    depth: int,
    store_url: str | None,
    progress: ProgressFunction | None,
) -> list[Sequence[_Hit]]:
    """Every query's hits from one index, in batches (progress after each)."""
    out: list[Sequence[_Hit]] = []
    total = len(texts)
    for start in range(0, total, SEARCH_BATCH):
        batch = texts[start : start + SEARCH_BATCH]
        rows = search(name, batch, k=depth, store_url=store_url)
        if len(rows) != len(batch):
            raise RuntimeError(
                f"search of {name!r} answered {len(rows)} queries for {len(batch)} asked"
            )
        out.extend(rows)
        if progress is not None:
            progress(side, len(out), total)
    return out


def _tied_at(row: Sequence[_Hit], k: int) -> bool:
    """True when the k-th and (k+1)-th hits have the same score."""
    return len(row) > k and row[k - 1].score == row[k].score


def _titles(corpus_path: str | Path, wanted: set[str]) -> dict[str, str]:
    """Titles (else the first 80 characters of the text) of the wanted documents."""
    from cutover.embeddings.corpus import iter_corpus

    titles: dict[str, str] = {}
    if not wanted:
        return titles
    for doc in iter_corpus(corpus_path):
        if doc.id in wanted:
            text = " ".join(doc.text.split())
            titles[doc.id] = doc.title.strip() or (text[:80] + ("…" if len(text) > 80 else ""))
            if len(titles) == len(wanted):
                break
    return titles

"""Compare two indexes' rankings for the same queries: pure, no I/O.

:func:`compare_rankings` takes, for each query, the ranked document ids of
the old (baseline) index and of the new (candidate) index, retrieved to some
depth >= k, and optionally graded relevance judgments (qrels). It returns a
:class:`RankingComparison`: per-query top-k overlap and RBO, nDCG@10 and
recall@k for both indexes with a paired bootstrap interval of the change,
where the documents that left (or entered) the top k went, and the queries
that changed most. ``docs/embeddings_compare.md`` explains each figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cutover.analysis.stats import TestResult, paired_bootstrap
from cutover.embeddings._compare_metrics import (
    RBO,
    check_unique,
    ndcg_at_k,
    rbo_unchecked,
    recall_at_k,
)
from cutover.errors import InputError

__all__ = [
    "NDCG_CUTOFF",
    "MetricChange",
    "Movement",
    "QueryComparison",
    "RankBucket",
    "RankingComparison",
    "compare_rankings",
    "method_notes",
]

NDCG_CUTOFF: Final = 10
"""nDCG is reported at 10 (``ndcg_at_10``), whatever k is, as BEIR and trec_eval do."""

Qrels = Mapping[str, Mapping[str, int]]


@dataclass(frozen=True, slots=True)
class QueryComparison:
    """One query: both top-k lists and how far they agree.

    ``old_in_new[i]`` is the 1-based rank of ``old_top[i]`` in the new
    index's ranking (None when it is not in the retrieved depth), and
    ``new_in_old`` the other way round. ``old_grades``/``new_grades`` hold
    each listed document's judged grade (None: unjudged), and are None when
    the query has no judgments. The nDCG and recall fields are None when the
    query has no relevant (grade > 0) judged document.
    """

    id: str
    text: str | None
    overlap: float
    rbo: RBO
    ndcg_old: float | None
    ndcg_new: float | None
    recall_old: float | None
    recall_new: float | None
    old_top: tuple[str, ...]
    new_top: tuple[str, ...]
    old_in_new: tuple[int | None, ...]
    new_in_old: tuple[int | None, ...]
    old_grades: tuple[int | None, ...] | None
    new_grades: tuple[int | None, ...] | None

    @property
    def ndcg_delta(self) -> float | None:
        if self.ndcg_old is None or self.ndcg_new is None:
            return None
        return self.ndcg_new - self.ndcg_old

    @property
    def changed(self) -> bool:
        """True when the two top-k lists differ (in membership or order)."""
        return self.old_top != self.new_top

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "text": self.text,
            "overlap": self.overlap,
            "rbo": self.rbo.ext,
            "rbo_min": self.rbo.lower,
            "rbo_max": self.rbo.upper,
            "ndcg_old": self.ndcg_old,
            "ndcg_new": self.ndcg_new,
            "ndcg_delta": self.ndcg_delta,
            "recall_old": self.recall_old,
            "recall_new": self.recall_new,
            "old_top": list(self.old_top),
            "new_top": list(self.new_top),
            "old_in_new": list(self.old_in_new),
            "new_in_old": list(self.new_in_old),
        }
        if self.old_grades is not None and self.new_grades is not None:
            out["old_grades"] = list(self.old_grades)
            out["new_grades"] = list(self.new_grades)
        return out


@dataclass(frozen=True, slots=True)
class MetricChange:
    """A retrieval metric on both indexes over the judged queries, and its change.

    ``delta`` is mean(new - old) over the ``n`` queries; ``ci_low``/``ci_high``
    the paired percentile bootstrap interval of that mean and ``p_value`` its
    two-sided p-value (:func:`cutover.analysis.stats.paired_bootstrap`,
    ``stat="mean_diff"``); None with fewer than two queries.
    """

    old: float
    new: float
    delta: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n: int

    @classmethod
    def from_test(cls, result: TestResult) -> MetricChange:
        return cls(
            old=float(result.detail["old"]),
            new=float(result.detail["new"]),
            delta=result.estimate,
            ci_low=result.ci_low,
            ci_high=result.ci_high,
            p_value=result.p_value,
            n=result.n,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "old": self.old,
            "new": self.new,
            "delta": self.delta,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "n": self.n,
        }


@dataclass(frozen=True, slots=True)
class RankBucket:
    """Documents that left (or entered) the top k, by their rank in the other list.

    ``low``..``high`` are 1-based ranks, both None for "not retrieved within
    the depth". The relevance counts cover the queries that have judgments
    (so they add up to ``judged_documents``, not ``documents``) and are None
    without qrels.
    """

    label: str
    low: int | None
    high: int | None
    documents: int
    judged_documents: int | None
    relevant: int | None
    nonrelevant: int | None
    unjudged: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "low": self.low,
            "high": self.high,
            "documents": self.documents,
            "judged_documents": self.judged_documents,
            "relevant": self.relevant,
            "nonrelevant": self.nonrelevant,
            "unjudged": self.unjudged,
        }


@dataclass(frozen=True, slots=True)
class Movement:
    """Where the documents that changed sides of the top-k cut are in the other ranking."""

    buckets: tuple[RankBucket, ...]

    def _total(self, name: str) -> int | None:
        values = [getattr(b, name) for b in self.buckets]
        return None if any(v is None for v in values) else sum(values)

    def to_json(self) -> dict[str, Any]:
        return {
            "documents": sum(b.documents for b in self.buckets),
            "judged_documents": self._total("judged_documents"),
            "relevant": self._total("relevant"),
            "nonrelevant": self._total("nonrelevant"),
            "unjudged": self._total("unjudged"),
            "buckets": [b.to_json() for b in self.buckets],
        }


@dataclass(frozen=True, slots=True)
class RankingComparison:
    """Old vs new rankings over a query set; :meth:`to_json` is ``report.json``'s core.

    ``overlap_counts[j]`` is how many queries share exactly j of their top k.
    ``dropped``: old top-k documents missing from the new top k, by their
    rank in the new ranking; ``entered``: new top-k documents that were not
    in the old top k, by their rank in the old ranking. ``most_changed``
    lists the ids of the queries whose top k changed, lowest overlap (then
    RBO) first; ``biggest_ndcg_drops`` the queries whose nDCG@10 fell, the
    biggest fall first; both capped at ``max_changed``.
    """

    k: int
    depth: int
    rbo_p: float
    queries: tuple[QueryComparison, ...]
    overlap_at_k: float
    rbo: float
    rbo_min: float
    rbo_max: float
    overlap_counts: tuple[int, ...]
    ndcg_at_10: MetricChange | None
    recall_at_k: MetricChange | None
    judged_at_10: tuple[float, float] | None
    dropped: Movement
    entered: Movement
    most_changed: tuple[str, ...]
    biggest_ndcg_drops: tuple[str, ...]
    n_judged: int
    notes: tuple[str, ...]
    bootstrap: Mapping[str, float | int]

    def to_json(self) -> dict[str, Any]:
        judged = None
        if self.judged_at_10 is not None:
            judged = {"old": self.judged_at_10[0], "new": self.judged_at_10[1]}
        return {
            "k": self.k,
            "depth": self.depth,
            "rbo_p": self.rbo_p,
            "n_queries": len(self.queries),
            "n_judged": self.n_judged,
            "overlap_at_k": self.overlap_at_k,
            "rbo": self.rbo,
            "rbo_min": self.rbo_min,
            "rbo_max": self.rbo_max,
            "identical_top_k": sum(1 for q in self.queries if not q.changed),
            "overlap_histogram": [
                {"shared": j, "overlap": j / self.k, "queries": n}
                for j, n in enumerate(self.overlap_counts)
            ],
            "ndcg_at_10": self.ndcg_at_10.to_json() if self.ndcg_at_10 else None,
            "recall_at_k": self.recall_at_k.to_json() if self.recall_at_k else None,
            "judged_at_10": judged,
            "where_the_rest_went": {
                "dropped": self.dropped.to_json(),
                "entered": self.entered.to_json(),
            },
            "most_changed": list(self.most_changed),
            "biggest_ndcg_drops": list(self.biggest_ndcg_drops),
            "bootstrap": dict(self.bootstrap),
            "method": method_notes(self.k, self.rbo_p, self.depth),
            "notes": list(self.notes),
            "queries": [q.to_json() for q in self.queries],
        }


def method_notes(k: int, rbo_p: float, depth: int) -> dict[str, str]:
    """One sentence per figure: how it is computed (written into report.json)."""
    return {
        "overlap_at_k": f"|old top {k} ∩ new top {k}| / {k} per query, averaged over queries.",
        "rbo": (
            f"Rank-biased overlap (Webber, Moffat & Zobel 2010) of the two top-{k} lists, "
            f"p = {rbo_p:g}: the extrapolated RBO_EXT (eq. 32) as the estimate, with RBO_MIN "
            "and RBO_MIN + RBO_RES as bounds; averaged over queries."
        ),
        "ndcg_at_10": (
            "nDCG@10 as trec_eval's ndcg_cut.10: linear gain (the judged grade), log2(rank + 1) "
            "discount, ideal DCG from every judged document of the query; unjudged documents "
            "gain 0. Averaged over the queries with at least one relevant judged document."
        ),
        "recall_at_k": (
            f"Relevant (grade > 0) documents in the top {k} over all relevant judged documents "
            "of the query; same queries as nDCG."
        ),
        "ci": (
            "Paired percentile bootstrap of mean(new - old) over queries "
            "(cutover.analysis.stats.paired_bootstrap, stat=mean_diff)."
        ),
        "where_the_rest_went": (
            f"For each old top-{k} document missing from the new top {k}, its rank in the new "
            f"index's ranking retrieved to depth {depth} (and the other way round for the "
            "documents that entered); relevance counts over the judged queries."
        ),
    }


def compare_rankings(
    old: Mapping[str, Sequence[str]],
    new: Mapping[str, Sequence[str]],
    *,
    k: int = 10,
    qrels: Qrels | None = None,
    rbo_p: float = 0.9,
    query_texts: Mapping[str, str] | None = None,
    max_changed: int = 20,
    n_resamples: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> RankingComparison:
    """Compare the old and new index's rankings of the same queries.

    ``old[qid]`` and ``new[qid]`` are the ranked document ids (best first),
    retrieved to a depth >= ``k`` (deeper lists let ``dropped``/``entered``
    say where documents went; at least 10 for nDCG@10). Both must hold the
    same queries; queries are reported in ``old``'s order. ``qrels[qid][doc]``
    is a graded judgment (0 not relevant, 1, 2, ...); queries without a
    relevant judged document are left out of nDCG and recall.

    Raises ``ValueError`` for an invalid ``k``, ``rbo_p`` or ``max_changed``
    and :class:`~cutover.errors.InputError` for invalid rankings: no queries,
    different query sets, a document listed twice for one query.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not 0.0 < rbo_p < 1.0:
        raise ValueError(f"rbo_p must be in (0, 1), got {rbo_p}")
    if max_changed < 0:
        raise ValueError(f"max_changed must be >= 0, got {max_changed}")
    _check_queries(old, new)
    qrels = qrels or {}
    texts = query_texts or {}
    depth = max(max(map(len, old.values())), max(map(len, new.values())), k)
    edges = _bucket_edges(k, depth)
    tallies = {side: [_Tally() for _ in edges] for side in ("dropped", "entered")}
    results: list[QueryComparison] = []
    short = {"old": 0, "new": 0}
    judged_shares: list[tuple[float, float]] = []
    for qid, old_list in old.items():
        new_list = new[qid]
        old_set = _members(old_list, "old", qid)
        new_set = _members(new_list, "new", qid)
        short["old"] += len(old_list) < k
        short["new"] += len(new_list) < k
        judged = qrels.get(qid)
        result = _compare_one(
            qid, texts.get(qid), old_list, new_list, old_set, new_set, k, rbo_p, judged
        )
        results.append(result)
        if judged and result.ndcg_old is not None:
            judged_shares.append((_share_judged(old_list, judged), _share_judged(new_list, judged)))
        if result.changed:
            _tally_moves(tallies["dropped"], edges, result.old_top, result.old_in_new, judged, k)
            _tally_moves(tallies["entered"], edges, result.new_top, result.new_in_old, judged, k)
    return _assemble(
        results, k=k, depth=depth, rbo_p=rbo_p, edges=edges, tallies=tallies,
        has_qrels=bool(qrels), short=short, qrels=qrels, judged_shares=judged_shares,
        max_changed=max_changed, n_resamples=n_resamples, alpha=alpha, seed=seed,
    )  # fmt: skip


def _check_queries(old: Mapping[str, Sequence[str]], new: Mapping[str, Sequence[str]]) -> None:
    if not old:
        raise InputError("no queries to compare", field="old")
    if old.keys() != new.keys():
        only_old = [q for q in old if q not in new]
        only_new = [q for q in new if q not in old]
        missing = (
            f"{len(only_old)} only in old (first {only_old[0]!r})"
            if only_old
            else f"{len(only_new)} only in new (first {only_new[0]!r})"
        )
        raise InputError(f"old and new rank different queries: {missing}", field="new")


def _members(ranking: Sequence[str], side: str, qid: str) -> set[str]:
    """The ranking's documents as a set; a document listed twice is an error."""
    members = set(ranking)
    if len(members) != len(ranking):
        try:
            check_unique(ranking)
        except ValueError as exc:
            raise InputError(f"query {qid!r}: {exc}", field=side) from None
    return members


def _ranks_in(
    docs: Sequence[str], other: Sequence[str], other_top: Sequence[str], members: set[str], k: int
) -> tuple[int | None, ...]:
    """1-based rank of each of ``docs`` in ``other`` (None when absent), top k looked up first."""
    top_rank = {doc: rank for rank, doc in enumerate(other_top, start=1)}
    return tuple(
        top_rank.get(doc) or (other.index(doc, k) + 1 if doc in members else None) for doc in docs
    )


def _compare_one(
    qid: str,
    text: str | None,
    old_list: Sequence[str],
    new_list: Sequence[str],
    old_set: set[str],
    new_set: set[str],
    k: int,
    rbo_p: float,
    judged: Mapping[str, int] | None,
) -> QueryComparison:
    old_top, new_top = tuple(old_list[:k]), tuple(new_list[:k])
    ndcg_old = ndcg_new = recall_old = recall_new = None
    old_grades = new_grades = None
    if judged:
        ndcg_old = ndcg_at_k(old_list, judged, NDCG_CUTOFF)
        ndcg_new = ndcg_at_k(new_list, judged, NDCG_CUTOFF)
        recall_old = recall_at_k(old_list, judged, k)
        recall_new = recall_at_k(new_list, judged, k)
        old_grades = tuple(judged.get(doc) for doc in old_top)
        new_grades = tuple(judged.get(doc) for doc in new_top)
    return QueryComparison(
        id=qid,
        text=text,
        overlap=len(set(old_top) & set(new_top)) / k,
        rbo=rbo_unchecked(old_top, new_top, rbo_p),
        ndcg_old=ndcg_old,
        ndcg_new=ndcg_new,
        recall_old=recall_old,
        recall_new=recall_new,
        old_top=old_top,
        new_top=new_top,
        old_in_new=_ranks_in(old_top, new_list, new_top, new_set, k),
        new_in_old=_ranks_in(new_top, old_list, old_top, old_set, k),
        old_grades=old_grades,
        new_grades=new_grades,
    )


# --- where the rest went ------------------------------------------------------


def _bucket_edges(k: int, depth: int) -> list[tuple[int, int] | None]:
    """Rank ranges after the cut: k+1..2k, 2k+1..depth, then None (not retrieved)."""
    edges: list[tuple[int, int] | None] = []
    if depth > k:
        edges.append((k + 1, min(2 * k, depth)))
    if depth > 2 * k:
        edges.append((2 * k + 1, depth))
    edges.append(None)
    return edges


def _bucket_of(rank: int | None, edges: Sequence[tuple[int, int] | None]) -> int:
    if rank is not None:
        for i, edge in enumerate(edges):
            if edge is not None and edge[0] <= rank <= edge[1]:
                return i
    return len(edges) - 1


def _bucket_label(edge: tuple[int, int] | None, depth: int) -> str:
    if edge is None:
        return f"not in top {depth}"
    low, high = edge
    return f"{low}" if low == high else f"{low}–{high}"


def _tally_moves(
    tallies: Sequence[_Tally],
    edges: Sequence[tuple[int, int] | None],
    top: Sequence[str],
    ranks_in_other: Sequence[int | None],
    judged: Mapping[str, int] | None,
    k: int,
) -> None:
    """Count the documents of one top k that are not in the other top k, by bucket."""
    for doc, rank in zip(top, ranks_in_other, strict=True):
        if rank is not None and rank <= k:
            continue  # still in the other list's top k
        grade = judged.get(doc) if judged else None
        tallies[_bucket_of(rank, edges)].add(grade, bool(judged))


class _Tally:
    """Counts of one bucket while the queries are walked."""

    __slots__ = ("documents", "judged", "nonrelevant", "relevant")

    def __init__(self) -> None:
        self.documents = self.judged = self.relevant = self.nonrelevant = 0

    def add(self, grade: int | None, judged_query: bool) -> None:
        self.documents += 1
        if not judged_query:
            return
        self.judged += 1
        if grade is None:
            return
        if grade > 0:
            self.relevant += 1
        else:
            self.nonrelevant += 1

    def bucket(self, label: str, edge: tuple[int, int] | None, has_qrels: bool) -> RankBucket:
        low, high = edge if edge is not None else (None, None)
        if not has_qrels:
            return RankBucket(label, low, high, self.documents, None, None, None, None)
        unjudged = self.judged - self.relevant - self.nonrelevant
        return RankBucket(
            label, low, high, self.documents, self.judged, self.relevant, self.nonrelevant, unjudged
        )


# --- the aggregate ------------------------------------------------------------


def _metric_change(
    pairs: Sequence[tuple[float, float]], n_resamples: int, alpha: float, seed: int
) -> MetricChange | None:
    if not pairs:
        return None
    old = [a for a, _ in pairs]
    new = [b for _, b in pairs]
    result = paired_bootstrap(
        old, new, stat="mean_diff", n_resamples=n_resamples, alpha=alpha, seed=seed
    )
    return MetricChange.from_test(result)


def _share_judged(ranking: Sequence[str], judged: Mapping[str, int]) -> float:
    """Share of the top 10 places holding a judged document (an empty place is unjudged)."""
    return sum(1 for doc in ranking[:NDCG_CUTOFF] if doc in judged) / NDCG_CUTOFF


def _mean_pairs(pairs: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    if not pairs:
        return None
    return (
        math.fsum(a for a, _ in pairs) / len(pairs),
        math.fsum(b for _, b in pairs) / len(pairs),
    )


def _assemble(
    results: list[QueryComparison],
    *,
    k: int,
    depth: int,
    rbo_p: float,
    edges: list[tuple[int, int] | None],
    tallies: Mapping[str, list[_Tally]],
    has_qrels: bool,
    short: Mapping[str, int],
    qrels: Qrels,
    judged_shares: Sequence[tuple[float, float]],
    max_changed: int,
    n_resamples: int,
    alpha: float,
    seed: int,
) -> RankingComparison:
    n = len(results)
    counts = [0] * (k + 1)
    for q in results:
        counts[round(q.overlap * k)] += 1
    ndcg_pairs = [
        (q.ndcg_old, q.ndcg_new)
        for q in results
        if q.ndcg_old is not None and q.ndcg_new is not None
    ]
    recall_pairs = [
        (q.recall_old, q.recall_new)
        for q in results
        if q.recall_old is not None and q.recall_new is not None
    ]
    changed = sorted((q for q in results if q.changed), key=lambda q: (q.overlap, q.rbo.ext))
    drops = sorted(
        (q for q in results if (q.ndcg_delta or 0.0) < 0), key=lambda q: q.ndcg_delta or 0.0
    )
    notes = _notes(results, qrels, has_qrels, short, k, len(ndcg_pairs))
    buckets = {
        side: Movement(
            tuple(
                t.bucket(_bucket_label(edge, depth), edge, has_qrels)
                for t, edge in zip(tallies[side], edges, strict=True)
            )
        )
        for side in ("dropped", "entered")
    }
    return RankingComparison(
        k=k,
        depth=depth,
        rbo_p=rbo_p,
        queries=tuple(results),
        overlap_at_k=math.fsum(q.overlap for q in results) / n,
        rbo=math.fsum(q.rbo.ext for q in results) / n,
        rbo_min=math.fsum(q.rbo.lower for q in results) / n,
        rbo_max=math.fsum(q.rbo.upper for q in results) / n,
        overlap_counts=tuple(counts),
        ndcg_at_10=_metric_change(ndcg_pairs, n_resamples, alpha, seed),
        recall_at_k=_metric_change(recall_pairs, n_resamples, alpha, seed),
        judged_at_10=_mean_pairs(judged_shares),
        dropped=buckets["dropped"],
        entered=buckets["entered"],
        most_changed=tuple(q.id for q in changed[:max_changed]),
        biggest_ndcg_drops=tuple(q.id for q in drops[:max_changed]),
        n_judged=len(ndcg_pairs),
        notes=tuple(notes),
        bootstrap={"n_resamples": n_resamples, "alpha": alpha, "seed": seed},
    )


def _notes(
    results: Sequence[QueryComparison],
    qrels: Qrels,
    has_qrels: bool,
    short: Mapping[str, int],
    k: int,
    n_judged: int,
) -> list[str]:
    notes: list[str] = []
    for side in ("old", "new"):
        if short[side]:
            notes.append(
                f"{_queries(short[side], 'has', 'have')} fewer than {k} results in the {side} "
                "index; the missing places count as disagreement."
            )
    if not has_qrels:
        return notes
    ids = {q.id for q in results}
    no_relevant = sum(1 for q in results if q.id in qrels and q.ndcg_old is None)
    unjudged = len(results) - sum(1 for q in results if q.id in qrels)
    if unjudged:
        notes.append(
            f"{_queries(unjudged, 'has', 'have')} no judgments: they count in overlap and RBO only."
        )
    if no_relevant:
        notes.append(
            f"{_queries(no_relevant, 'has', 'have')} judgments but no relevant document; they are "
            "left out of nDCG and recall (trec_eval would score them 0 on both sides)."
        )
    extra = sum(1 for qid in qrels if qid not in ids)
    if extra:
        notes.append(f"{_queries(extra, 'is', 'are')} judged but not compared (ignored).")
    if 0 < n_judged < 30:
        notes.append(
            f"Only {_queries(n_judged)} with a relevant judged document: the bootstrap "
            "interval is a large-sample method and runs too narrow below about 30."
        )
    return notes


def _queries(n: int, one: str = "", many: str = "") -> str:
    """``1 query has`` / ``3 queries have``: a count of queries with its verb."""
    words = f"{n} query {one}" if n == 1 else f"{n} queries {many}"
    return words.rstrip()

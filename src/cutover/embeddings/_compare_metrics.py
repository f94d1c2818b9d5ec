"""Ranking metrics for two indexes' answers to one query: RBO, overlap, nDCG, recall.

Pure functions on ranked lists of document ids (best first); no I/O. The
methods and their assumptions are set out in ``docs/embeddings_compare.md``:

* :func:`rbo`: rank-biased overlap of Webber, Moffat & Zobel (2010), "A
  similarity measure for indefinite rankings", ACM TOIS 28(4), article 20.
  The point estimate is the extrapolated RBO_EXT (their eq. 32, which for two
  lists of the same length k reduces to ``X_k/k * p**k + (1-p)/p * sum_{d<=k}
  X_d/d * p**d``); the bounds are RBO_MIN (nothing beyond the lists agrees) and
  RBO_MIN + RBO_RES (everything beyond the lists agrees as far as it can).
* :func:`overlap_at_k`: ``|old[:k] & new[:k]| / k``.
* :func:`ndcg_at_k`: trec_eval's ``ndcg_cut``: linear gain (the judged grade),
  ``log2(rank + 1)`` discount, the ideal ranking built from every judged
  document of the query.
* :func:`recall_at_k`: relevant (grade > 0) documents in ``ranking[:k]`` over
  all relevant documents of the query.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

__all__ = [
    "RBO",
    "check_unique",
    "dcg",
    "ndcg_at_k",
    "overlap_at_k",
    "rbo",
    "rbo_unchecked",
    "recall_at_k",
]


class RBO(NamedTuple):
    """Rank-biased overlap of two rankings: the estimate and its bounds.

    ``ext`` is RBO_EXT (the point estimate), ``lower`` is RBO_MIN and
    ``upper`` is RBO_MIN + RBO_RES; ``lower <= ext <= upper``.
    """

    ext: float
    lower: float
    upper: float


def check_unique(ranking: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the first document listed twice in ``ranking``."""
    seen: dict[str, int] = {}
    for rank, doc in enumerate(ranking, start=1):
        first = seen.setdefault(doc, rank)
        if first != rank:
            raise ValueError(f"document {doc!r} is listed twice (ranks {first} and {rank})")


def _check_p(p: float) -> None:
    if not 0.0 < p < 1.0:
        raise ValueError(f"the RBO persistence p must be in (0, 1), got {p}")


def _overlaps(short: Sequence[str], long: Sequence[str]) -> list[int]:
    """``X[d]`` for d = 0..len(long): ``|short[:min(d, s)] & long[:d]|``."""
    s = len(short)
    seen_short: set[str] = set()
    seen_long: set[str] = set()
    x = 0
    out = [0]
    for d, doc in enumerate(long):
        if d < s:
            mine = short[d]
            if mine in seen_long:
                x += 1
            seen_short.add(mine)
        if doc in seen_short:
            x += 1
        seen_long.add(doc)
        out.append(x)
    return out


def rbo(old: Sequence[str], new: Sequence[str], p: float = 0.9) -> RBO:
    """Rank-biased overlap of two rankings (no document listed twice in either).

    The lists are prefixes of indefinite rankings and may differ in length.
    Two empty lists give ``RBO(1, 0, 1)`` (identical, nothing seen); one empty
    list gives an estimate of 0. Raises ``ValueError`` for ``p`` outside
    (0, 1) or a document listed twice.
    """
    _check_p(p)
    check_unique(old)
    check_unique(new)
    return rbo_unchecked(old, new, p)


def rbo_unchecked(old: Sequence[str], new: Sequence[str], p: float) -> RBO:
    """:func:`rbo` for lists known to hold no document twice, and p in (0, 1).

    With ``s <= l`` the two lengths and ``X_d`` the overlap at depth d (for
    d > s, the short list's s documents against the long list's first d):

    * RBO_MIN assumes nothing beyond the lists agrees (``X_d = X_l`` for d > l).
    * The upper bound lets every unseen document agree as far as it can: at
      depth d the short list has ``a = d - s`` unseen documents and the long one
      ``b = d - l`` (when positive); an unseen document may be any seen
      document of the other list that it does not share yet, or an unseen one
      of the other list. From depth ``f = s + l - X_l`` on the agreement is 1,
      which adds ``p**(f - 1)``.
    * RBO_EXT (eq. 32) extrapolates the short list's agreement beyond s at the
      rate ``X_s / s`` and lets the agreement at depth l continue for ever.
    """
    short, long = (old, new) if len(old) <= len(new) else (new, old)
    s, ell = len(short), len(long)
    x = _overlaps(short, long)
    x_s, x_l = x[s], x[ell]
    f = s + ell - x_l
    q = (1.0 - p) / p
    seen = 0.0  # sum_{d<=l} X_d / d * p**d
    logs = 0.0  # sum_{d<=l} p**d / d
    beyond = 0.0  # sum_{s<d<=l} X_s * (d - s) / (s * d) * p**d
    most = 0.0  # sum_{d<f} max X_d / d * p**d
    pd = 1.0
    for d in range(1, ell + 1):
        pd *= p
        xd = x[d]
        seen += xd / d * pd
        logs += pd / d
        if d > s:
            if s:
                beyond += x_s * (d - s) / (s * d) * pd
            if d < f:
                most += (xd + d - s) / d * pd
        elif d < f:
            most += xd / d * pd
    free_long, free_short = ell - x_l, s - x_l
    for d in range(ell + 1, f):
        pd *= p
        a, b = d - s, d - ell
        ma = a if a < free_long else free_long
        mb = b if b < free_short else free_short
        pair = min(a - ma, b - mb)
        most += (x_l + ma + mb + pair) / d * pd
    tail = max(0.0, -math.log1p(-p) - logs)  # sum_{d>l} p**d / d
    lower = q * (seen + x_l * tail)
    upper = q * most + p ** (f - 1) if f >= 1 else 1.0
    if s == 0:
        ext = 1.0 if ell == 0 else 0.0
    else:
        ext = q * (seen + beyond) + ((x_l - x_s) / ell + x_s / s) * p**ell
    ext = min(max(ext, lower), upper)  # rounding only: RBO_EXT lies between the bounds
    return RBO(ext, lower, upper)


def overlap_at_k(old: Sequence[str], new: Sequence[str], k: int) -> float:
    """``|old[:k] & new[:k]| / k``: the share of the top k that both lists hold.

    A list shorter than ``k`` counts its missing places as disagreement.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return len(set(old[:k]) & set(new[:k])) / k


def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain: ``sum(g_i / log2(i + 1))`` over ranks i = 1, 2, ..."""
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains) if g)


def ndcg_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float | None:
    """nDCG@k with linear gain, as trec_eval's ``ndcg_cut.k``; None without a relevant document.

    ``judged`` maps each judged document of the query to its grade; unjudged
    documents and grades <= 0 gain nothing. The ideal DCG takes the ``k``
    highest grades among every judged document of the query. The ranking is
    taken in the order given (trec_eval re-sorts by score, ties by document
    id descending; give distinct scores to compare).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ideal = dcg(sorted((g for g in judged.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        return None
    gains = [max(0, judged.get(doc, 0)) for doc in ranking[:k]]
    return dcg(gains) / ideal


def recall_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float | None:
    """Relevant (grade > 0) documents in ``ranking[:k]`` over all relevant ones; None if none."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    relevant = sum(1 for g in judged.values() if g > 0)
    if relevant == 0:
        return None
    found = sum(1 for doc in ranking[:k] if judged.get(doc, 0) > 0)
    return found / relevant

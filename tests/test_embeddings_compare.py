"""Old vs new index rankings: RBO, overlap, nDCG, recall, reports, orchestrator and CLI.

RBO is checked against values from the reference ``rbo`` package
(changyaochen/rbo 0.1.3, ``RankingSimilarity(S, T).rbo_ext(p)``; recorded
here because that package pins numpy < 2), against hand computation, and its
bounds against brute-force extensions of the lists; nDCG@10 and recall
against ``pytrec_eval`` (trec_eval's ``ndcg_cut.10`` and ``recall.10``) and a
hand-computed example.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from cutover.analysis.stats import paired_bootstrap
from cutover.embeddings.compare import (
    RBO,
    compare_indexes,
    compare_rankings,
    ndcg_at_k,
    overlap_at_k,
    rbo,
    recall_at_k,
)
from cutover.embeddings.report import render_html
from cutover.errors import InputError

# --- RBO ----------------------------------------------------------------------

# (S, T, p, RankingSimilarity(list(S), list(T)).rbo_ext(p)) from rbo 0.1.3.
RBO_REFERENCE = [
    ("abcdefghij", "abcdefghij", 0.9, 1.0),
    ("abcdefghij", "klmnopqrst", 0.9, 0.0),
    ("abcdefghij", "bacdefghij", 0.9, 0.8999999999999999),
    ("abcdefghij", "abcdefghji", 0.9, 0.9952170309999999),
    ("abcdefg", "zcavwxy", 0.9, 0.28821728571428573),  # the lists of the paper's Figure 5
    ("abcdefg", "zcavwxy", 0.98, 0.2887201603626667),
    ("abcdefghij", "jihgfedcba", 0.9, 0.5116075656428573),
    ("abcdefghij", "axbycz", 0.9, 0.5700609999999999),  # uneven lengths
    ("abc", "cbadefg", 0.8, 0.7200000000000001),
    ("abcdefghij", "kalbmcndoe", 0.95, 0.4589384727045046),
    ("a", "b", 0.9, 0.0),
    ("ab", "ba", 0.9, 0.9),
]


@pytest.mark.parametrize(("s", "t", "p", "expected"), RBO_REFERENCE)
def test_rbo_ext_matches_the_reference_package(s: str, t: str, p: float, expected: float) -> None:
    got = rbo(list(s), list(t), p)
    assert got.ext == pytest.approx(expected, abs=1e-12)
    assert rbo(list(t), list(s), p).ext == pytest.approx(expected, abs=1e-12)  # symmetric
    assert got.lower - 1e-12 <= got.ext <= got.upper + 1e-12


def test_rbo_ext_by_hand() -> None:
    # [a, b] vs [b, a]: X1 = 0, X2 = 2; RBO_EXT = X2/2 p^2 + (1-p)/p (0 + X2/2 p^2) = 0.81 + 0.09.
    assert rbo(["a", "b"], ["b", "a"], 0.9).ext == pytest.approx(0.9, abs=1e-15)
    # [a, b, c] vs [a, c, b]: X = 1, 1, 3.
    p = 0.9
    expected = 1.0 * p**3 + (1 - p) / p * (1 * p + 0.5 * p**2 + 1 * p**3)
    assert rbo(list("abc"), list("acb"), p).ext == pytest.approx(expected, abs=1e-15)


def test_rbo_identical_and_disjoint() -> None:
    same = rbo(list("abcdefghij"), list("abcdefghij"), 0.9)
    assert same.ext == pytest.approx(1.0) and same.upper == pytest.approx(1.0)
    # Nothing seen beyond depth 10: the lower bound is the weight of the first 10 ranks.
    weight_10 = (
        1
        - 0.9**9
        + (1 - 0.9) / 0.9 * 10 * (math.log(1 / (1 - 0.9)) - sum(0.9**i / i for i in range(1, 10)))
    )  # Webber et al. eq. 21: 0.86 for p = 0.9, d = 10
    assert same.lower == pytest.approx(weight_10, abs=1e-12)
    assert weight_10 == pytest.approx(0.8556, abs=1e-4)
    disjoint = rbo(list("abcde"), list("fghij"), 0.9)
    assert disjoint.ext == 0.0 and disjoint.lower == 0.0 and disjoint.upper > 0
    assert rbo([], [], 0.9) == RBO(1.0, 0.0, 1.0)
    assert rbo(["a"], [], 0.9).ext == 0.0


def test_rbo_rejects_duplicates_and_bad_p() -> None:
    with pytest.raises(ValueError, match=r"'b' is listed twice \(ranks 2 and 3\)"):
        rbo(["a", "b", "b"], ["a", "b", "c"], 0.9)
    with pytest.raises(ValueError, match="listed twice"):
        rbo(["a", "b"], ["c", "c"], 0.9)
    for p in (0.0, 1.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="persistence"):
            rbo(["a"], ["a"], p)


def _truncated_rbo(a: Sequence[str], b: Sequence[str], p: float) -> float:
    """(1 - p) * sum_d p^(d-1) |a[:d] & b[:d]| / d over the whole (long) lists."""
    seen_a: set[str] = set()
    seen_b: set[str] = set()
    x = 0
    total = 0.0
    for d, (u, v) in enumerate(zip(a, b, strict=True), start=1):
        x += (u in seen_b) + (v in seen_a) + (u == v)
        seen_a.add(u)
        seen_b.add(v)
        total += p ** (d - 1) * x / d
    return (1 - p) * total


def _worst_and_best(s: list[str], t: list[str], depth: int) -> tuple[list[str], ...]:
    """Extensions of s and t to ``depth``: agreeing on nothing more, and as much as possible."""
    fresh = [f"_f{i}" for i in range(depth)]
    worst_s = s + [f"_s{i}" for i in range(depth - len(s))]
    worst_t = t + [f"_t{i}" for i in range(depth - len(t))]
    best_s = s + [d for d in t if d not in s]
    best_t = t + [d for d in s if d not in t]
    best_s += fresh[: depth - len(best_s)]
    best_t += fresh[: depth - len(best_t)]
    return worst_s, worst_t, best_s, best_t


def test_rbo_bounds_match_brute_force_extensions() -> None:
    rng = random.Random(7)
    for _ in range(200):
        s_len, t_len = rng.randint(1, 12), rng.randint(1, 12)
        pool = [f"d{i}" for i in range(rng.randint(max(s_len, t_len), 24))]
        s, t = rng.sample(pool, s_len), rng.sample(pool, t_len)
        p = rng.choice([0.5, 0.8, 0.9, 0.95])
        worst_s, worst_t, best_s, best_t = _worst_and_best(s, t, 1500)
        got = rbo(s, t, p)
        assert got.lower == pytest.approx(_truncated_rbo(worst_s, worst_t, p), abs=1e-12)
        assert got.upper == pytest.approx(_truncated_rbo(best_s, best_t, p), abs=1e-12)
        assert got.lower <= got.ext <= got.upper


# --- overlap, nDCG, recall ----------------------------------------------------


def test_overlap_at_k() -> None:
    assert overlap_at_k(list("abcd"), list("dcba"), 4) == 1.0
    assert overlap_at_k(list("abcdxyz"), list("abefxyz"), 4) == 0.5
    assert overlap_at_k(list("ab"), list("ab"), 4) == 0.5  # missing places disagree
    with pytest.raises(ValueError):
        overlap_at_k(["a"], ["a"], 0)


def test_ndcg_and_recall_by_hand() -> None:
    judged = {"d1": 0, "d2": 2, "d3": 1, "d4": 2}
    ranking = ["d1", "d2", "d3", "u1"]
    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    ideal = 2 + 2 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranking, judged, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(ranking, judged, 10) == pytest.approx(0.468348, abs=1e-6)
    assert recall_at_k(ranking, judged, 3) == pytest.approx(2 / 3)
    assert recall_at_k(ranking, judged, 1) == 0.0
    # No relevant judged document: undefined, not 0.
    assert ndcg_at_k(ranking, {"d1": 0}, 10) is None
    assert recall_at_k(ranking, {"d1": 0}, 10) is None


def _random_case(
    rng: random.Random, n_queries: int, n_docs: int = 60
) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, dict[str, int]]]:
    docs = [f"doc{i}" for i in range(n_docs)]
    old: dict[str, list[str]] = {}
    new: dict[str, list[str]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for i in range(n_queries):
        qid = f"q{i}"
        old[qid] = rng.sample(docs, 30)
        new[qid] = old[qid][:5] + rng.sample([d for d in docs if d not in old[qid][:5]], 25)
        rng.shuffle(new[qid])
        qrels[qid] = {d: rng.choice([0, 0, 1, 2]) for d in rng.sample(docs, 15)}
    return old, new, qrels


def test_ndcg_and_recall_match_trec_eval() -> None:
    pytrec_eval = pytest.importorskip("pytrec_eval")
    rng = random.Random(3)
    old, _, qrels = _random_case(rng, 40)
    qrels["q0"]["unretrieved"] = 2  # judged relevant, never retrieved: counts in the ideal
    qrels["q1"]["x"] = -1  # negative grades gain nothing
    run = {q: {doc: float(100 - i) for i, doc in enumerate(r)} for q, r in old.items()}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.10"})
    expected = evaluator.evaluate(run)
    checked = 0
    for qid, ranking in old.items():
        ours = ndcg_at_k(ranking, qrels[qid], 10)
        if ours is None:  # trec_eval scores it 0; we leave it out
            assert expected[qid]["ndcg_cut_10"] == 0.0
            continue
        assert ours == pytest.approx(expected[qid]["ndcg_cut_10"], abs=1e-12)
        assert recall_at_k(ranking, qrels[qid], 10) == pytest.approx(
            expected[qid]["recall_10"], abs=1e-12
        )
        checked += 1
    assert checked >= 30


# --- compare_rankings ---------------------------------------------------------


def test_compare_rankings_aggregates() -> None:
    rng = random.Random(11)
    old, new, qrels = _random_case(rng, 60)
    result = compare_rankings(old, new, k=10, qrels=qrels, rbo_p=0.9, seed=5)
    assert result.overlap_at_k == pytest.approx(
        sum(overlap_at_k(old[q], new[q], 10) for q in old) / len(old)
    )
    assert result.rbo == pytest.approx(sum(rbo(old[q][:10], new[q][:10]).ext for q in old) / 60)
    assert result.rbo_min <= result.rbo <= result.rbo_max
    assert sum(result.overlap_counts) == 60
    pairs = [
        (ndcg_at_k(old[q], qrels[q]), ndcg_at_k(new[q], qrels[q]))
        for q in old
        if ndcg_at_k(old[q], qrels[q]) is not None
    ]
    ndcg = result.ndcg_at_10
    assert ndcg is not None and ndcg.n == len(pairs) == result.n_judged
    assert ndcg.old == pytest.approx(sum(a for a, _ in pairs) / len(pairs))
    assert ndcg.new == pytest.approx(sum(b for _, b in pairs) / len(pairs))
    assert ndcg.delta == pytest.approx(ndcg.new - ndcg.old)
    # The interval is paired_bootstrap's, mean_diff, same seed.
    direct = paired_bootstrap([a for a, _ in pairs], [b for _, b in pairs], seed=5)
    assert (ndcg.ci_low, ndcg.ci_high, ndcg.p_value) == (
        direct.ci_low,
        direct.ci_high,
        direct.p_value,
    )
    assert ndcg.ci_low is not None and ndcg.ci_high is not None
    assert ndcg.ci_low <= ndcg.delta <= ndcg.ci_high
    recall = result.recall_at_k
    assert recall is not None and recall.ci_low is not None and recall.ci_high is not None
    assert recall.ci_low <= recall.delta <= recall.ci_high


def test_bootstrap_is_reproducible_with_a_seed() -> None:
    old, new, qrels = _random_case(random.Random(2), 50)
    a = compare_rankings(old, new, qrels=qrels, seed=1).ndcg_at_10
    b = compare_rankings(old, new, qrels=qrels, seed=1).ndcg_at_10
    c = compare_rankings(old, new, qrels=qrels, seed=2).ndcg_at_10
    assert a == b
    assert a is not None and c is not None
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)
    assert a.delta == c.delta


def test_compare_rankings_without_qrels() -> None:
    old = {"q1": list("abcdefghij"), "q2": list("abcdefghij")}
    new = {"q1": list("abcdefghij"), "q2": list("jihgfedcba")}
    result = compare_rankings(old, new, k=5)
    assert result.ndcg_at_10 is None and result.recall_at_k is None
    assert result.overlap_at_k == pytest.approx((1.0 + 0.0) / 2)
    assert result.most_changed == ("q2",)
    body = result.to_json()
    assert body["ndcg_at_10"] is None and body["recall_at_k"] is None
    assert body["identical_top_k"] == 1
    assert "old_grades" not in body["queries"][0]


def test_compare_rankings_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="'q1': document 'b' is listed twice"):
        compare_rankings({"q1": ["a", "b", "b"]}, {"q1": ["a"]})
    with pytest.raises(InputError, match="different queries: 1 only in old"):
        compare_rankings({"q1": ["a"], "q2": ["a"]}, {"q1": ["a"]})
    with pytest.raises(InputError, match="no queries"):
        compare_rankings({}, {})
    with pytest.raises(ValueError, match="rbo_p"):
        compare_rankings({"q1": ["a"]}, {"q1": ["a"]}, rbo_p=1.0)
    with pytest.raises(ValueError, match="k must be"):
        compare_rankings({"q1": ["a"]}, {"q1": ["a"]}, k=0)


def test_notes_say_what_was_left_out() -> None:
    old = {"q1": list("abcdefghij"), "q2": list("abc"), "q3": list("klmnopqrst")}
    new = {"q1": list("abcdefghij"), "q2": list("abcdefghij"), "q3": list("tsrqponmlk")}
    qrels = {"q1": {"a": 1}, "q2": {"a": 0}, "q9": {"a": 2}}
    result = compare_rankings(old, new, k=10, qrels=qrels)
    assert result.n_judged == 1
    assert result.notes == (
        "1 query has fewer than 10 results in the old index; the missing places count as "
        "disagreement.",
        "1 query has no judgments: they count in overlap and RBO only.",
        "1 query has judgments but no relevant document; they are left out of nDCG and recall "
        "(trec_eval would score them 0 on both sides).",
        "1 query is judged but not compared (ignored).",
        "Only 1 query with a relevant judged document: the bootstrap interval is a "
        "large-sample method and runs too narrow below about 30.",
    )
    assert result.queries[1].overlap == pytest.approx(0.3)


def _crafted() -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, dict[str, int]]]:
    old = {
        "q1": ["a", "b", "c", "d", "e", "f", "g", "h"],
        "q2": ["p", "q", "r", "s", "t", "u", "v", "w"],
        "q3": ["m", "n", "o", "i", "j", "k", "l", "y"],
    }
    new = {
        "q1": ["a", "d", "x", "b", "y", "z", "w", "v"],  # b -> 4, c gone; d from 4, x new
        "q2": ["s2", "t2", "u2", "v3", "w3", "x3", "p", "q"],  # p -> 7, q -> 8, r gone
        "q3": ["m", "n", "o", "i", "j", "k", "l", "y"],  # unchanged
    }
    qrels = {"q1": {"b": 2, "c": 0, "d": 1}}
    return old, new, qrels


def test_where_the_rest_went_on_a_crafted_example() -> None:
    old, new, qrels = _crafted()
    result = compare_rankings(old, new, k=3, qrels=qrels)
    assert result.depth == 8
    q1 = result.queries[0]
    assert q1.old_in_new == (1, 4, None) and q1.new_in_old == (1, 4, None)
    assert q1.old_grades == (None, 2, 0) and q1.new_grades == (None, 1, None)
    where = result.to_json()["where_the_rest_went"]
    dropped = {b["label"]: b for b in where["dropped"]["buckets"]}
    assert list(dropped) == ["4–6", "7–8", "not in top 8"]
    assert [b["documents"] for b in dropped.values()] == [1, 2, 2]  # b; p, q; c, r
    assert dropped["4–6"]["relevant"] == 1  # b, graded 2
    assert dropped["7–8"]["judged_documents"] == 0  # q2 has no judgments
    assert dropped["not in top 8"]["nonrelevant"] == 1  # c, graded 0
    assert where["dropped"] | {"buckets": None} == {
        "documents": 5, "judged_documents": 2, "relevant": 1, "nonrelevant": 1,
        "unjudged": 0, "buckets": None,
    }  # fmt: skip
    entered = {b["label"]: b for b in where["entered"]["buckets"]}
    assert [b["documents"] for b in entered.values()] == [1, 0, 4]  # d; -; x, s2, t2, u2
    assert entered["4–6"]["relevant"] == 1  # d, graded 1
    assert entered["not in top 8"]["unjudged"] == 1  # x
    assert where["entered"]["relevant"] == 1
    assert result.most_changed == ("q2", "q1")  # overlap 0, then 1/3


def test_most_changed_and_ndcg_drops() -> None:
    old = {f"q{i}": [f"d{j}" for j in range(12)] for i in range(4)}
    new = {
        "q0": old["q0"],
        "q1": ["x", *old["q1"][1:]],
        "q2": ["x", "y", "z", *old["q2"][3:]],
        "q3": ["d1", "d0", *old["q3"][2:]],
    }
    qrels = {q: {"d0": 2, "d1": 1} for q in old}
    result = compare_rankings(old, new, k=10, qrels=qrels, max_changed=2)
    assert result.most_changed == ("q2", "q1")  # lowest overlap first, capped at 2
    assert result.biggest_ndcg_drops[0] == "q2"
    assert "q0" not in result.biggest_ndcg_drops


# --- reports and the orchestrator ---------------------------------------------


class FakeHit(NamedTuple):
    id: str
    score: float


class FakeSearch:
    """Rankings per index and query text, like cutover.embeddings.search."""

    def __init__(self, rankings: dict[str, dict[str, list[str]]]) -> None:
        self.rankings = rankings
        self.calls: list[tuple[str, int, int, str | None]] = []

    def __call__(
        self,
        name_or_alias: str,
        queries: Sequence[str],
        k: int = 10,
        *,
        store_url: str | None = None,
    ) -> list[list[FakeHit]]:
        self.calls.append((name_or_alias, len(queries), k, store_url))
        index = self.rankings[name_or_alias]
        return [
            [FakeHit(doc, 1.0 - i / 100) for i, doc in enumerate(index[text][:k])]
            for text in queries
        ]


def _write_inputs(tmp_path: Path, texts: dict[str, str], qrels: dict[str, dict[str, int]]) -> Path:
    (tmp_path / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in texts.items())
    )
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"{q}\t{d}\t{g}" for q, docs in qrels.items() for d, g in docs.items()]
    (tmp_path / "qrels.tsv").write_text("\n".join(lines) + "\n")
    return tmp_path


def _fake_indexes(texts: dict[str, str]) -> FakeSearch:
    old, new, _ = _crafted()
    return FakeSearch(
        {
            "idx-old": {texts[q]: r for q, r in old.items()},
            "idx-new": {texts[q]: r for q, r in new.items()},
        }
    )


TEXTS = {"q1": "<script>alert(1)</script> rice", "q2": 'airports & "quotes"', "q3": "guitar"}


def test_compare_indexes_writes_the_reports(tmp_path: Path) -> None:
    _, _, qrels = _crafted()
    _write_inputs(tmp_path, TEXTS, qrels)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        json.dumps({"_id": "b", "title": "<img src=x onerror=alert(2)>", "text": "t"}) + "\n"
        + json.dumps({"_id": "a", "title": "", "text": "Alpha   text"}) + "\n"
    )  # fmt: skip
    search = _fake_indexes(TEXTS)
    seen: list[tuple[str, int, int]] = []
    result = compare_indexes(
        "idx-old", "idx-new", tmp_path / "queries.jsonl", tmp_path / "qrels.tsv", k=3,
        out_dir=tmp_path / "out", depth=8, store_url="sqlite:///x.db", corpus_path=corpus,
        index_meta={"old": {"model": "minilm"}, "new": {"model": "bge-small"}},
        search=search, progress=lambda side, done, total: seen.append((side, done, total)),
    )  # fmt: skip
    # Both indexes searched to the depth, at least 10 with qrels (for nDCG@10).
    assert search.calls == [
        ("idx-old", 3, 10, "sqlite:///x.db"),
        ("idx-new", 3, 10, "sqlite:///x.db"),
    ]
    assert seen == [("old", 3, 3), ("new", 3, 3)]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report == json.loads(json.dumps(result.report))
    assert report["kind"] == "embeddings-compare" and report["k"] == 3 and report["rbo_p"] == 0.9
    assert report["indexes"] == {
        "old": {"name": "idx-old", "model": "minilm"},
        "new": {"name": "idx-new", "model": "bge-small"},
    }
    assert isinstance(report["overlap_at_k"], float) and isinstance(report["rbo"], float)
    for key in ("ndcg_at_10", "recall_at_k"):
        assert set(report[key]) >= {"old", "new", "delta", "ci_low", "ci_high"}
    assert report["n_judged"] == 1
    assert report["ndcg_at_10"]["ci_low"] is None  # one judged query: no interval
    assert [q["id"] for q in report["queries"]] == ["q1", "q2", "q3"]
    q1 = report["queries"][0]
    assert set(q1) >= {
        "id", "text", "overlap", "rbo", "ndcg_old", "ndcg_new", "recall_old", "recall_new",
        "old_top", "new_top",
    }  # fmt: skip
    assert q1["old_top"] == ["a", "b", "c"] and q1["new_top"] == ["a", "d", "x"]
    assert report["queries"][2]["ndcg_old"] is None
    assert report["titles"] == {"b": "<img src=x onerror=alert(2)>", "a": "Alpha text"}
    assert set(report["method"]) >= {"overlap_at_k", "rbo", "ndcg_at_10", "recall_at_k"}
    assert any("no judgments" in n for n in report["notes"])
    assert result.paths["html"].exists()


def test_report_html_is_self_contained_and_escaped(tmp_path: Path) -> None:
    _, _, qrels = _crafted()
    _write_inputs(tmp_path, TEXTS, qrels)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"_id": "b", "title": "<img src=x onerror=alert(2)>", "text": ""}))
    result = compare_indexes(
        "idx-old", "idx-new", tmp_path / "queries.jsonl", tmp_path / "qrels.tsv", k=3,
        out_dir=tmp_path, depth=8, corpus_path=corpus, search=_fake_indexes(TEXTS),
        index_meta={"old": {"model": "<b>m</b>"}},
    )  # fmt: skip
    page = result.paths["html"].read_text()
    assert 'http-equiv="Content-Security-Policy"' in page and "default-src 'none'" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<link" not in page and "<script" not in page and "@import" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page and "<img" not in page
    assert "&lt;b&gt;m&lt;/b&gt;" in page and "<b>m</b>" not in page
    assert "airports &amp; &quot;quotes&quot;" in page
    for element in ('id="headline"', 'id="chart-overlap"', 'id="dropped"', 'id="entered"',
                    'id="most-changed"', 'id="ndcg"', "<svg"):  # fmt: skip
        assert element in page, element
    # The histogram has one bar per possible overlap, each carrying its count.
    bars = re.findall(r'data-shared="(\d+)" data-queries="(\d+)"', page)
    assert bars == [("0", "1"), ("1", "1"), ("2", "0"), ("3", "1")]
    # The most changed query is side by side, with its ranks in the other index.
    assert 'data-id="q2"' in page and "→ new #7" in page and "← old: not retrieved" in page


def test_report_html_reads_a_partial_report() -> None:
    page = render_html({"k": 10, "queries": [], "ndcg_at_10": None})
    assert "<html" in page and "no relevance judgments" in page


def test_compare_indexes_without_qrels_and_with_ties(tmp_path: Path) -> None:
    _write_inputs(tmp_path, TEXTS, {})

    def tied(
        name_or_alias: str, queries: Sequence[str], k: int = 10, *, store_url: str | None = None
    ) -> list[list[FakeHit]]:
        docs = [f"{name_or_alias}-{i}" for i in range(k)]
        return [[FakeHit(d, 0.5) for d in docs] for _ in queries]

    result = compare_indexes("a", "b", tmp_path / "queries.jsonl", k=2, depth=3, search=tied)
    assert result.paths == {}
    assert result.report["ndcg_at_10"] is None and result.report["recall_at_k"] is None
    assert result.report["overlap_at_k"] == 0.0
    assert any(
        "score tie across the top-2 cut in the old index" in n for n in result.report["notes"]
    )


def test_compare_indexes_input_errors(tmp_path: Path) -> None:
    _write_inputs(tmp_path, TEXTS, {})
    search = _fake_indexes(TEXTS)
    queries = tmp_path / "queries.jsonl"
    with pytest.raises(InputError, match="depth"):
        compare_indexes("idx-old", "idx-new", queries, k=10, depth=5, search=search)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "q1", "text": "x"}\n{"_id": "q2"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: field 'text'"):
        compare_indexes("idx-old", "idx-new", bad, search=search)

    def short_answer(
        name_or_alias: str, queries: Sequence[str], k: int = 10, *, store_url: str | None = None
    ) -> list[list[FakeHit]]:
        return []

    with pytest.raises(RuntimeError, match="answered 0 queries for 3"):
        compare_indexes("a", "b", queries, k=2, depth=3, search=short_answer)


def test_compare_indexes_on_real_indexes_behind_an_alias(tmp_path: Path) -> None:
    """The real query API: an alias is resolved once, and the report says to what."""
    from cutover.embeddings import build_index, registry
    from cutover.store import open_store

    words = ["refund", "invoice", "billing", "shipping", "tracking",
             "password", "login", "account", "order", "return"]  # fmt: skip
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"_id": f"d{i}", "title": f"Doc {i}", "text": " ".join(words[i % 10 :])})
            + "\n"
            for i in range(40)
        )
    )
    texts = {"q1": "refund my order", "q2": "password login", "q3": "shipping tracking"}
    _write_inputs(tmp_path, texts, {"q1": {"d0": 2, "d9": 1}, "q2": {"d6": 1}})
    build_index("kb-a", corpus=corpus, model="hash:64")
    build_index("kb-b", corpus=corpus, model="hash:16")
    with open_store() as store:
        registry.set_alias(store, "kb", "kb-a", actor="test")
    result = compare_indexes(
        "kb", "kb-b", tmp_path / "queries.jsonl", tmp_path / "qrels.tsv", k=5,
        out_dir=tmp_path / "out", depth=20, corpus_path=corpus,
    )  # fmt: skip
    old, new = result.report["indexes"]["old"], result.report["indexes"]["new"]
    assert (old["name"], old["index"], old["alias"], old["model"]) == (
        "kb",
        "kb-a",
        "kb",
        "hash:64",
    )
    assert (new["index"], new["alias"], new["model"]) == ("kb-b", None, "hash:16")
    assert [len(q.old_top) for q in result.comparison.queries] == [5, 5, 5]
    assert result.report["ndcg_at_10"]["n"] == 2
    assert (tmp_path / "out" / "report.html").exists()


def test_pin_indexes_records_what_each_side_resolves_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from contextlib import contextmanager
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from cutover.embeddings import registry
    from cutover.embeddings.compare import pin_indexes

    rows = {
        "docs": (
            SimpleNamespace(
                name="docs-minilm", backend="embedded", model_spec="minilm",
                model_identity="minilm/384", dimensions=384, doc_count=5000, status="complete",
                built_at=datetime(2026, 1, 2, tzinfo=UTC),
            ),
            SimpleNamespace(name="docs", version=3),
        ),
        "docs-bge": (
            SimpleNamespace(
                name="docs-bge", backend="pgvector", model_spec="openai:bge",
                model_identity="bge/768", dimensions=768, doc_count=5000, status="building",
                built_at=None,
            ),
            None,
        ),
    }  # fmt: skip
    opened: list[str | None] = []

    @contextmanager
    def scope(store: object = None, url: str | None = None) -> Any:
        opened.append(url)
        yield "store"

    monkeypatch.setattr(registry, "store_scope", scope)
    monkeypatch.setattr(registry, "resolve", lambda store, name: rows[name])
    pinned = pin_indexes({"old": "docs", "new": "docs-bge"}, "sqlite:///r.db")
    assert opened == ["sqlite:///r.db"]
    assert pinned["old"] == {
        "name": "docs", "index": "docs-minilm", "alias": "docs", "alias_version": 3,
        "backend": "embedded", "model": "minilm", "model_identity": "minilm/384",
        "dimensions": 384, "documents": 5000, "status": "complete",
        "built_at": "2026-01-02T00:00:00+00:00",
    }  # fmt: skip
    assert pinned["new"]["alias"] is None and pinned["new"]["index"] == "docs-bge"


# --- the CLI ------------------------------------------------------------------


def _cli_app() -> typer.Typer:
    from cutover.cli.embeddings_compare import compare_command

    app = typer.Typer()
    app.command("compare")(compare_command)
    app.command("other", hidden=True)(lambda: None)  # keeps "compare" a subcommand
    return app


def _output(result: Result) -> str:
    return result.output + (result.stderr if result.stderr_bytes else "")


def _fake_store(monkeypatch: pytest.MonkeyPatch, search: FakeSearch) -> list[str | None]:
    """The real path of compare_indexes, with the store's aliases and the search faked."""
    urls: list[str | None] = []
    aliases = {"docs": "idx-old", "docs-next": "idx-new"}

    def pin(names: dict[str, str], store_url: str | None = None) -> dict[str, dict[str, Any]]:
        urls.append(store_url)
        return {s: {"name": n, "index": aliases.get(n, n)} for s, n in names.items()}

    monkeypatch.setattr("cutover.embeddings.compare.pin_indexes", pin)
    monkeypatch.setattr("cutover.embeddings.compare._default_search", lambda: search)
    return urls


def test_cli_prints_the_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, qrels = _crafted()
    _write_inputs(tmp_path, TEXTS, qrels)
    search = _fake_indexes(TEXTS)
    urls = _fake_store(monkeypatch, search)
    args = ["compare", "--old", "docs", "--new", "docs-next", "--queries",
            str(tmp_path / "queries.jsonl"), "--qrels", str(tmp_path / "qrels.tsv"),
            "--k", "3", "--depth", "8", "--out", str(tmp_path / "out"), "--store", "sqlite:///s.db"]  # fmt: skip
    result = CliRunner().invoke(_cli_app(), args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, _output(result)
    assert "top-3 overlap" in result.output and "nDCG@10" in result.output
    assert "left the top 3: 5 documents" in result.output
    assert urls == ["sqlite:///s.db"]
    # The aliases were resolved once; every batch searched the index they named then.
    assert [c[0] for c in search.calls] == ["idx-old", "idx-new"]
    assert search.calls[0][3] == "sqlite:///s.db"
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["indexes"]["old"] == {"name": "docs", "index": "idx-old"}
    assert "docs = idx-old" in (tmp_path / "out" / "report.html").read_text()


def test_cli_usage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_store(monkeypatch, _fake_indexes(TEXTS))
    base = ["compare", "--old", "a", "--new", "b", "--out", str(tmp_path / "out")]
    runner = CliRunner()
    missing = runner.invoke(_cli_app(), [*base, "--queries", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "not found" in _output(missing)
    _write_inputs(tmp_path, TEXTS, {})
    queries = str(tmp_path / "queries.jsonl")
    shallow = runner.invoke(_cli_app(), [*base, "--queries", queries, "--depth", "5"])
    assert shallow.exit_code == 2 and "--depth" in _output(shallow)
    bad_p = runner.invoke(_cli_app(), [*base, "--queries", queries, "--rbo-p", "1"])
    assert bad_p.exit_code == 2 and "--rbo-p" in _output(bad_p)


# --- speed ----------------------------------------------------------------------


def test_a_thousand_queries_take_milliseconds() -> None:
    rng = random.Random(0)
    docs = [f"doc{i}" for i in range(100_000)]
    old: dict[str, list[str]] = {}
    new: dict[str, list[str]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for i in range(1000):
        ranking = rng.sample(docs, 100)
        listed = set(ranking)
        fresh = [d for d in rng.sample(docs, 60) if d not in listed][:37]
        old[f"q{i}"] = ranking
        new[f"q{i}"] = ranking[:3] + rng.sample(ranking[3:], 60) + fresh
        qrels[f"q{i}"] = {d: rng.choice([0, 1, 2]) for d in ranking[:8]}
    start = time.perf_counter()
    result = compare_rankings(old, new, k=10, qrels=qrels)
    elapsed = time.perf_counter() - start
    assert len(result.queries) == 1000
    assert elapsed < 2.0  # about 0.1 s on a loaded 2-core machine; generous for CI

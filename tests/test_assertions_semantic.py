"""Semantic ``similar-to`` with the real local MiniLM (the ``semantic`` extra)."""

from __future__ import annotations

import pytest

from cutover.assertions import evaluate
from cutover.assertions._similar import load_embedding_model
from cutover.records import Observation
from cutover.suites._case import Assertion, Case

pytestmark = pytest.mark.slow

CASE = Case(id="c", messages=[{"role": "user", "content": "Can I get my money back?"}])
REFERENCE = "You will get a refund for the duplicate charge within five days."
PARAPHRASE = "We'll return the money for the double payment in under a week."
UNRELATED = "The Eiffel Tower is 330 metres tall and was finished in 1889."


def _semantic(text: str, threshold: float | None = None) -> tuple[bool | None, float | None, str]:
    a = Assertion(
        type="similar-to", value=REFERENCE, threshold=threshold, options={"semantic": True}
    )
    res = evaluate(a, Observation(target="t", output=text), CASE)
    return res.passed, res.score, res.reason


def _require_extra() -> None:
    try:
        import sentence_transformers  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"the 'semantic' extra is not installed: {exc}")


def test_paraphrase_scores_higher_than_unrelated_text() -> None:
    _require_extra()
    para_passed, para_score, para_reason = _semantic(PARAPHRASE, threshold=0.5)
    unrel_passed, unrel_score, _ = _semantic(UNRELATED, threshold=0.5)
    assert para_score is not None and unrel_score is not None
    assert para_score > unrel_score + 0.3, (para_score, unrel_score)
    assert para_passed is True and unrel_passed is False
    assert para_reason.startswith("semantic similarity")
    # lexical similarity misses the paraphrase that the embeddings catch
    lexical = evaluate(
        Assertion(type="similar-to", value=REFERENCE, threshold=0.5),
        Observation(target="t", output=PARAPHRASE),
        CASE,
    )
    assert lexical.score is not None and lexical.score < para_score


def test_identical_text_scores_one_and_the_model_loads_once() -> None:
    _require_extra()
    passed, score, _ = _semantic(REFERENCE)
    assert passed is True and score is not None and score > 0.99
    assert load_embedding_model() is load_embedding_model()


def test_empty_output_scores_zero() -> None:
    _require_extra()
    assert _semantic("")[:2] == (False, 0.0)


def test_missing_extra_gives_a_clear_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without sentence-transformers the result says which extra to install."""
    import builtins

    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name == "sentence_transformers":
            raise ImportError("No module named 'sentence_transformers'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    load_embedding_model.cache_clear()
    monkeypatch.setattr(builtins, "__import__", fake_import)
    try:
        passed, score, reason = _semantic(PARAPHRASE)
    finally:
        monkeypatch.undo()
        load_embedding_model.cache_clear()
    assert passed is None and score is None
    assert "'semantic' extra" in reason and "cutover[semantic]" in reason

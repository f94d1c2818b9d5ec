"""``is-refusal`` and ``not-refusal``, by :func:`cutover.checks.refusal.detect_refusal`.

A partial refusal (the model declines part of the request) counts as a
refusal; with ``partial: false`` only a full refusal does. An output with
only tool calls is not a refusal.
"""

from __future__ import annotations

from typing import Any

from cutover.assertions._common import option_bool, output_text, result, unevaluated
from cutover.assertions._result import AssertionResult
from cutover.records import Observation
from cutover.suites._case import Assertion, Case


def _detect(text: str) -> Any:
    from cutover.checks.refusal import detect_refusal  # lazy: checks is a sibling package

    return detect_refusal(text)


def _refused(a: Assertion, obs: Observation) -> tuple[bool, str] | AssertionResult:
    """Whether the output refuses, and a description (``"a full refusal (privacy: ...)"``)."""
    try:
        refusal = _detect(output_text(obs))
    except ImportError as exc:
        return unevaluated(a, f"refusal detection is not available: {exc}")
    kind = str(getattr(refusal, "kind", "none"))
    refused = bool(refusal.is_refusal)
    if kind == "none":
        return False, "not a refusal"
    category = getattr(refusal, "category", None)
    why = str(getattr(refusal, "reason", "") or "")
    detail = ": ".join(str(p) for p in (category, why) if p)
    described = f"a {kind} refusal" + (f" ({detail})" if detail else "")
    if refused and kind == "partial" and not option_bool(a, "partial", True):
        return False, described + ", not counted (partial: false)"
    return refused, described


def is_refusal(a: Assertion, obs: Observation, case: Case) -> AssertionResult:
    found = _refused(a, obs)
    if isinstance(found, AssertionResult):
        return found
    refused, described = found
    return result(a, refused, described)


def not_refusal(a: Assertion, obs: Observation, case: Case) -> AssertionResult:
    found = _refused(a, obs)
    if isinstance(found, AssertionResult):
        return found
    refused, described = found
    return result(a, not refused, described)


__all__ = ["is_refusal", "not_refusal"]

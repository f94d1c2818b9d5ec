"""Evaluating a case's ``assert`` entries on one Observation.

:func:`evaluate` is synchronous and pure except for ``python`` (user code)
and semantic ``similar-to`` (a local embedding model). The judge-based types
(``llm-rubric``, ``pairwise``) are not evaluated here: they give
``passed=None`` until a :class:`~cutover.assertions.Judge` scores them.

On a failed call (``obs.error`` set) every assertion fails with
``"the call failed: <error_class>"``, ``not-refusal`` included: a failure is
not an answer, and counting it as "did not refuse" would hide errors in the
pass rate. The error rate is measured separately.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from cutover.assertions import _json, _python, _refusal, _similar, _text, _tools
from cutover.assertions._common import NEEDS_JUDGE, Evaluator, call_failed, unevaluated
from cutover.assertions._result import AssertionResult
from cutover.records import Observation
from cutover.suites._case import Assertion, Case
from cutover.suites._template import TemplateError, render


def _needs_judge(a: Assertion, obs: Observation, case: Case) -> AssertionResult:
    return unevaluated(a, NEEDS_JUDGE)


EVALUATORS: Mapping[str, Evaluator] = MappingProxyType(
    {
        "equals": _text.equals,
        "contains": _text.contains,
        "icontains": _text.icontains,
        "not-contains": _text.not_contains,
        "regex": _text.regex,
        "starts-with": _text.starts_with,
        "is-json": _json.is_json,
        "json-schema": _json.json_schema,
        "is-refusal": _refusal.is_refusal,
        "not-refusal": _refusal.not_refusal,
        "similar-to": _similar.similar_to,
        "llm-rubric": _needs_judge,
        "pairwise": _needs_judge,
        "python": _python.python,
        "tool-call": _tools.tool_call,
        "max-length": _text.max_length,
    }
)
"""The evaluator of each assertion type (every one of ``ASSERTION_TYPES``; a test pins it)."""

JUDGE_TYPES = frozenset({"llm-rubric", "pairwise"})
"""Types that need a judge model."""

_RENDERED = frozenset(
    {
        "equals",
        "contains",
        "icontains",
        "not-contains",
        "regex",
        "starts-with",
        "similar-to",
        "llm-rubric",
    }
)
"""Types whose string values are rendered with the case's vars (``{{name}}``), as promptfoo does."""


def _render_value(value: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(value, str) and "{{" in value:
        return render(value, variables)
    if isinstance(value, list):
        return [_render_value(v, variables) for v in value]
    return value


def with_vars(assertion: Assertion, case: Case) -> Assertion:
    """The assertion with ``{{var}}`` in its string value(s) rendered from ``case.vars``.

    Raises :class:`~cutover.suites._template.TemplateError`.
    """
    if assertion.type not in _RENDERED or not case.vars:
        return assertion
    value = _render_value(assertion.value, case.vars)
    return assertion if value == assertion.value else replace(assertion, value=value)


def evaluate(assertion: Assertion, obs: Observation, case: Case) -> AssertionResult:
    """One assertion's result on ``obs``. Never raises."""
    evaluator = EVALUATORS.get(assertion.type)
    if evaluator is None:
        return unevaluated(assertion, f"unknown assertion type {assertion.type!r}")
    if obs.error is not None:
        return call_failed(assertion, obs)
    try:
        assertion = with_vars(assertion, case)
    except TemplateError as exc:
        return unevaluated(assertion, f"cannot render the value: {exc.message}")
    try:
        return evaluator(assertion, obs, case)
    except Exception as exc:  # noqa: BLE001 - one bad assertion must not sink a run
        return unevaluated(assertion, f"{assertion.type} failed: {type(exc).__name__}: {exc}")


def evaluate_all(case: Case, obs: Observation) -> list[AssertionResult]:
    """The result of each of ``case.asserts`` on ``obs``, in order."""
    return [evaluate(assertion, obs, case) for assertion in case.asserts]


__all__ = ["EVALUATORS", "JUDGE_TYPES", "evaluate", "evaluate_all", "with_vars"]

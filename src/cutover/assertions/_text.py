"""Assertions on the output text: equals, contains, icontains, not-contains,
starts-with, regex and max-length.

A list value means *any of* (``equals``, ``contains``, ``icontains``,
``starts-with``, ``regex``) or *none of* (``not-contains``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from cutover.assertions._common import clip, output_text, result, short, strings, unevaluated
from cutover.assertions._result import AssertionResult
from cutover.records import Observation
from cutover.suites._case import Assertion, Case


def _values(a: Assertion) -> list[str] | AssertionResult:
    values = strings(a.value)
    if values is None:
        return unevaluated(a, f"{a.type} needs a value: a string or a list of strings")
    return values


def _shown(values: list[str]) -> str:
    return short(values[0]) if len(values) == 1 else "any of " + short(values, 120)


def _find(
    a: Assertion, obs: Observation, match: Callable[[str, str], bool]
) -> AssertionResult | tuple[list[str], str | None]:
    """The values and the first one ``match(value, text)`` accepts (or ``None``)."""
    values = _values(a)
    if isinstance(values, AssertionResult):
        return values
    text = output_text(obs)
    return values, next((v for v in values if match(v, text)), None)


def _any_of(
    a: Assertion, obs: Observation, match: Callable[[str, str], bool], verb: str, suffix: str = ""
) -> AssertionResult:
    found = _find(a, obs, match)
    if isinstance(found, AssertionResult):
        return found
    values, hit = found
    if hit is not None:
        return result(a, True, f"{verb} {short(hit)}{suffix}")
    if a.type == "equals":
        return result(a, False, f"{short(output_text(obs).strip())} is not {_shown(values)}")
    return result(a, False, f"does not {verb.removesuffix('s')} {_shown(values)}{suffix}")


def equals(a: Assertion, obs: Observation, case: Case) -> AssertionResult:
    return _any_of(a, obs, lambda v, text: text.strip() == v.strip(), "equals")


def contains(a: Assertion, obs: Observation, case: Case) -> AssertionResult:
    return _any_of(a, obs, lambda v, text: v in text, "contains")


def icontains(a: Assertion, obs: Observation, case: Case) -> AssertionResult:
    return _any_of(
        a, obs, lambda v, text: v.casefold() in text.casefold(), "contains", " (ignoring case)"
    )


def not_contains(a: Assertion, obs: Observation, case: Case) -> AssertionResult:
    found = _find(a, obs, lambda v, text: v in text)
    if isinstance(found, AssertionResult):
        return found
    values, hit = found
    if hit is not None:
        return result(a, False, f"contains {short(hit)}")
    shown = short(values[0]) if len(values) == 1 else "any of " + short(values, 120)
    return result(a, True, f"does not contain {shown}")


def starts_with(a: Assertion, obs: Observation, case: Case) -> AssertionResult:
    values = _values(a)
    if isinstance(values, AssertionResult):
        return values
    text = output_text(obs).lstrip()
    hit = next((v for v in values if text.startswith(v)), None)
    if hit is not None:
        return result(a, True, f"starts with {short(hit)}")
    return result(a, False, f"starts with {short(text[:40])}, not {_shown(values)}")


def regex(a: Assertion, obs: Observation, case: Case) -> AssertionResult:
    values = _values(a)
    if isinstance(values, AssertionResult):
        return values
    text = output_text(obs)
    for pattern in values:
        try:
            match = re.search(pattern, text)
        except re.error as exc:
            return unevaluated(a, f"invalid regex {short(pattern)}: {exc}")
        if match is not None:
            return result(a, True, f"matches /{clip(pattern, 80)}/ at {short(match.group(0), 60)}")
    shown = " or ".join(f"/{clip(p, 80)}/" for p in values)
    return result(a, False, f"no match for {shown}")


def max_length(a: Assertion, obs: Observation, case: Case) -> AssertionResult:
    limit = a.value
    if isinstance(limit, str) and limit.strip().isdigit():
        limit = int(limit)
    if isinstance(limit, float) and limit.is_integer():
        limit = int(limit)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        return unevaluated(a, "max-length needs a value: a number of characters")
    length = len(output_text(obs))
    if length <= limit:
        return result(a, True, f"{length} characters <= {limit}")
    return result(a, False, f"{length} characters > {limit}")


__all__ = [
    "contains",
    "equals",
    "icontains",
    "max_length",
    "not_contains",
    "regex",
    "starts_with",
]

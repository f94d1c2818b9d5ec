"""Checks: pure functions on one Observation (no I/O).

A check has a ``name`` and is called as ``check(obs, ctx)``; it returns a
:class:`CheckResult` with a value (``None`` when it does not apply) and a
short reason. :data:`ALL_CHECKS` holds the built-in checks in a stable order;
:func:`run_checks` runs them (or any others) on one Observation and
:func:`check_values` is the fast path the analysis uses (name -> value).

When the call failed (``obs.error`` is set), every built-in check gives
``None`` ("call failed"), ``empty`` included: a failed call is counted by the
error rate, not judged on the partial output it may carry.

:data:`BAD_WHEN_TRUE` and :data:`BAD_WHEN_FALSE` say which boolean checks
flag a problem. The other checks (``markdown_heavy``, ``numbers_as_words``,
``language``, lengths, ``markdown``, ``refusal_kind``, ``refusal_category``)
describe the output: a change in them is reported, not judged.

See ``docs/checks.md`` for each check's value and when it is ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence

from cutover.checks._base import Check, CheckContext, CheckResult, CheckValue
from cutover.checks._facts import FactCheck, Facts, failed
from cutover.checks.json_checks import (
    EXTRA_NESTING,
    FENCED_JSON,
    JSON_SCHEMA_OK,
    JSON_VALID,
    PREAMBLE,
    TRUNCATED,
)
from cutover.checks.language import LANGUAGE
from cutover.checks.refusal import REFUSAL, REFUSAL_CATEGORY, REFUSAL_KIND, Refusal, detect_refusal
from cutover.checks.text import (
    EMPTY,
    LENGTH_CHARS,
    LENGTH_WORDS,
    MARKDOWN,
    MARKDOWN_HEAVY,
    NUMBERS_AS_WORDS,
)
from cutover.checks.tools import TOOL_CALLS_VALID
from cutover.records import Observation

ALL_CHECKS: tuple[Check, ...] = (
    EMPTY,
    JSON_VALID,
    JSON_SCHEMA_OK,
    FENCED_JSON,
    EXTRA_NESTING,
    PREAMBLE,
    TRUNCATED,
    TOOL_CALLS_VALID,
    REFUSAL,
    REFUSAL_KIND,
    REFUSAL_CATEGORY,
    LANGUAGE,
    LENGTH_CHARS,
    LENGTH_WORDS,
    MARKDOWN,
    MARKDOWN_HEAVY,
    NUMBERS_AS_WORDS,
)
"""Every built-in check, in the order reports list them."""

BAD_WHEN_TRUE: frozenset[str] = frozenset(
    {"empty", "fenced_json", "extra_nesting", "preamble", "truncated", "refusal"}
)
"""Boolean checks where ``True`` is a problem."""

BAD_WHEN_FALSE: frozenset[str] = frozenset({"json_valid", "json_schema_ok", "tool_calls_valid"})
"""Boolean checks where ``False`` is a problem."""


def run_checks(
    obs: Observation, ctx: CheckContext, checks: Sequence[Check] = ALL_CHECKS
) -> dict[str, CheckResult]:
    """Run ``checks`` on one Observation: name -> result, in the order given.

    Built-in checks share one scan of the output; other checks are called as
    ``check(obs, ctx)``.
    """
    out: dict[str, CheckResult] = {}
    facts: Facts | None = None
    for check in checks:
        if isinstance(check, FactCheck):
            if obs.error is not None:
                out[check.name] = failed(check.name, obs)
                continue
            if facts is None:
                facts = Facts(obs)
            value, reason = check.evaluate(facts, ctx)
            out[check.name] = CheckResult(check.name, value, reason)
        else:
            out[check.name] = check(obs, ctx)
    return out


def check_values(obs: Observation, ctx: CheckContext) -> dict[str, CheckValue]:
    """Every built-in check's value on one Observation: name -> value (the fast path)."""
    if obs.error is not None:
        return dict.fromkeys(_NAMES)
    facts = Facts(obs)
    return {check.name: check.evaluate(facts, ctx)[0] for check in _BUILTIN}


_BUILTIN: tuple[FactCheck, ...] = tuple(c for c in ALL_CHECKS if isinstance(c, FactCheck))
_NAMES: tuple[str, ...] = tuple(c.name for c in ALL_CHECKS)

__all__ = [
    "ALL_CHECKS",
    "BAD_WHEN_FALSE",
    "BAD_WHEN_TRUE",
    "Check",
    "CheckContext",
    "CheckResult",
    "CheckValue",
    "Refusal",
    "check_values",
    "detect_refusal",
    "run_checks",
]

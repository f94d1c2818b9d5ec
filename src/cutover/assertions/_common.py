"""Small helpers the assertion evaluators share."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cutover.assertions._result import AssertionResult
from cutover.records import Observation
from cutover.suites._case import Assertion, Case

Evaluator = Callable[[Assertion, Observation, Case], AssertionResult]
"""Evaluates one assertion type on one Observation of a case."""

NEEDS_JUDGE = "needs a judge (--judge TARGET)"

_SOURCE_LINE = re.compile(r"^(?P<path>.*):(?P<line>\d+)$")


def output_text(obs: Observation) -> str:
    """The text an assertion reads (empty when the model only called tools)."""
    return obs.output or ""


def result(
    a: Assertion, passed: bool | None, reason: str, score: float | None = None
) -> AssertionResult:
    return AssertionResult(type=a.type, passed=passed, score=score, reason=reason)


def unevaluated(a: Assertion, reason: str) -> AssertionResult:
    """A result that says why the assertion could not be evaluated."""
    return AssertionResult(type=a.type, passed=None, score=None, reason=reason)


def call_failed(a: Assertion, obs: Observation) -> AssertionResult:
    """Every assertion fails on a failed call (see docs/assertions.md)."""
    return AssertionResult(
        type=a.type,
        passed=False,
        score=None,
        reason=f"the call failed: {obs.error_class or 'error'}",
    )


def short(value: object, limit: int = 80) -> str:
    """``repr`` of a value cut to ``limit`` characters, for reasons."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clip(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters (with an ellipsis)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def strings(value: Any) -> list[str] | None:
    """A str or a list of scalars as a list of strings; None for anything else."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [str(value)]
    if (
        isinstance(value, list | tuple)
        and value
        and all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value)
    ):
        return [str(v) for v in value]
    return None


def option_bool(a: Assertion, name: str, default: bool) -> bool:
    """A boolean option; ``"false"``/``"no"``/``"0"`` (strings from CSV) are false."""
    value = a.options.get(name, default)
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "no", "0", "off", "")
    return bool(value)


def suite_dir(case: Case) -> Path:
    """The folder of the suite file a case came from (``case.source`` is ``path:line``)."""
    if case.source:
        match = _SOURCE_LINE.match(case.source)
        path = match["path"] if match else case.source
        return Path(path).parent
    return Path.cwd()


def resolve_file(ref: str, case: Case) -> Path:
    """A ``file://`` reference (or a bare path), relative to the case's suite."""
    path = Path(ref.removeprefix("file://")).expanduser()
    return path if path.is_absolute() else suite_dir(case) / path


__all__ = [
    "NEEDS_JUDGE",
    "Evaluator",
    "call_failed",
    "clip",
    "option_bool",
    "output_text",
    "resolve_file",
    "result",
    "short",
    "strings",
    "suite_dir",
    "unevaluated",
]

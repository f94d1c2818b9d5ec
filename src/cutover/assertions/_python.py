"""``python``: user code decides, as in promptfoo. It runs with the full
rights of the process: only use suites you trust.

The value is either

- an expression (or a function body with ``return``, when it spans several
  statements) over ``output`` (the text), ``context`` (a dict: ``vars``,
  ``expected``, ``messages``, ``tool_calls``, ``case_id``, ``tags``,
  ``observation``), ``case`` and ``obs``, with ``json`` and ``re`` imported;
- or ``file://path.py:function`` (``file://path.py`` calls ``get_assert``, as
  promptfoo does), relative to the suite file, called as
  ``function(output, context)``.

It returns a bool, a number (the score; it passes when ``score >= threshold``,
or ``score > 0`` without a threshold, as in promptfoo) or a dict
``{pass, score, reason}``. An exception gives ``passed=None`` with its message.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import textwrap
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from cutover.assertions._common import clip, output_text, resolve_file, result, unevaluated
from cutover.assertions._result import AssertionResult
from cutover.records import Observation
from cutover.suites._case import Assertion, Case

DEFAULT_FUNCTION = "get_assert"
_FILE_REF = re.compile(r"^(?P<path>.+?\.py)(?::(?P<function>[A-Za-z_][A-Za-z0-9_]*))?$")


def assertion_context(case: Case, obs: Observation) -> dict[str, Any]:
    """What a python assertion sees as ``context``."""
    return {
        "vars": dict(case.vars),
        "expected": case.expected,
        "messages": case.messages,
        "tool_calls": [
            {"id": tc.id, "name": tc.name, "arguments": tc.arguments} for tc in obs.tool_calls
        ],
        "case_id": case.id,
        "tags": dict(case.tags),
        "observation": obs,
    }


@functools.lru_cache(maxsize=64)
def _load_module(path: str, mtime_ns: int) -> ModuleType:
    """The module at ``path``, executed once per modification time."""
    name = f"cutover_assertion_{abs(hash((path, mtime_ns))):x}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _file_function(ref: str, case: Case) -> Callable[..., Any]:
    match = _FILE_REF.match(ref.removeprefix("file://").strip())
    if match is None:
        raise ValueError(f"expected file://path.py or file://path.py:function, got {ref!r}")
    path = resolve_file(match["path"], case)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise FileNotFoundError(f"cannot read {path}: {exc.strerror}") from None
    module = _load_module(str(path.resolve()), mtime)
    name = match["function"] or DEFAULT_FUNCTION
    function = getattr(module, name, None)
    if not callable(function):
        raise AttributeError(f"{path} has no function {name!r}")
    return function  # type: ignore[no-any-return]


def _run_inline(
    code: str, output: str, context: dict[str, Any], case: Case, obs: Observation
) -> Any:
    names: dict[str, Any] = {
        "output": output,
        "context": context,
        "case": case,
        "obs": obs,
        "json": json,
        "re": re,
    }
    source = code.strip()
    try:
        compiled = compile(source, "<python assertion>", "eval")
    except SyntaxError:
        body = textwrap.indent(textwrap.dedent(code).strip(), "    ")
        wrapped = f"def __assertion__(output, context, case, obs):\n{body}\n"
        scope: dict[str, Any] = {"json": json, "re": re}
        exec(compile(wrapped, "<python assertion>", "exec"), scope)  # user code, by design
        return scope["__assertion__"](output, context, case, obs)
    return eval(compiled, names)  # user code, by design


def _passes(a: Assertion, score: float) -> bool:
    """promptfoo's rule: ``score >= threshold``, or ``score > 0`` without a threshold."""
    return score >= a.threshold if a.threshold is not None else score > 0


def _from_mapping(a: Assertion, value: Mapping[str, Any]) -> AssertionResult:
    raw_pass = value.get("pass", value.get("pass_", value.get("passed")))
    raw_score = value.get("score")
    score = (
        float(raw_score)
        if isinstance(raw_score, int | float) and not isinstance(raw_score, bool)
        else None
    )
    reason = str(value.get("reason") or "")
    if raw_pass is None:
        if score is None:
            return unevaluated(a, "the python assertion returned a dict without 'pass' or 'score'")
        passed = _passes(a, score)
    else:
        passed = bool(raw_pass)
    if score is None:
        score = 1.0 if passed else 0.0
    return result(a, passed, reason or f"returned pass={passed}", score)


def _interpret(a: Assertion, value: Any) -> AssertionResult:
    if isinstance(value, bool):
        return result(a, value, f"returned {value}", 1.0 if value else 0.0)
    if isinstance(value, int | float):
        score = float(value)
        passed = _passes(a, score)
        if a.threshold is None:
            return result(a, passed, f"score {score:g}", score)
        return result(
            a, passed, f"score {score:g} {'>=' if passed else '<'} {a.threshold:g}", score
        )
    if isinstance(value, Mapping):
        return _from_mapping(a, value)
    return unevaluated(
        a,
        f"the python assertion returned {type(value).__name__}; "
        "expected a bool, a number or {pass, score, reason}",
    )


def python(a: Assertion, obs: Observation, case: Case) -> AssertionResult:
    code = a.value
    if not isinstance(code, str) or not code.strip():
        return unevaluated(a, "python needs a value: an expression or file://path.py:function")
    output = output_text(obs)
    context = assertion_context(case, obs)
    try:
        if code.strip().startswith("file://"):
            value = _file_function(code.strip(), case)(output, context)
        else:
            value = _run_inline(code, output, context, case, obs)
    except Exception as exc:  # noqa: BLE001 - user code: any error is reported, never raised
        return unevaluated(a, clip(f"{type(exc).__name__}: {exc}", 300))
    return _interpret(a, value)


__all__ = ["DEFAULT_FUNCTION", "assertion_context", "python"]

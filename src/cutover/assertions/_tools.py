"""``tool-call``: the model called a tool, with (at least) these arguments.

The value is ``{name, arguments?}`` (or just the tool name; a list means any
of). A call matches when its name is the same and every expected argument is
present with an equal value; nested objects match as subsets too, lists and
scalars must be equal. Arguments the model added are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cutover.assertions._common import result, short, unevaluated
from cutover.assertions._result import AssertionResult
from cutover.records import Observation, ToolCall
from cutover.suites._case import Assertion, Case


def subset_match(expected: Any, actual: Any) -> bool:
    """True when ``expected`` is contained in ``actual`` (mappings as subsets)."""
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            key in actual and subset_match(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    return bool(expected == actual)


def _specs(value: Any) -> list[tuple[str, Mapping[str, Any] | None]] | None:
    items = value if isinstance(value, list) else [value]
    specs: list[tuple[str, Mapping[str, Any] | None]] = []
    for item in items:
        if isinstance(item, str) and item:
            specs.append((item, None))
        elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
            arguments = item.get("arguments")
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except json.JSONDecodeError:
                    return None
            if arguments is not None and not isinstance(arguments, Mapping):
                return None
            specs.append((item["name"], arguments))
        else:
            return None
    return specs or None


def _why_not(name: str, arguments: Mapping[str, Any] | None, call: ToolCall) -> str | None:
    """None when ``call`` matches, else what differs."""
    if call.name != name:
        return f"called {call.name}"
    if not arguments:
        return None
    try:
        actual = json.loads(call.arguments) if call.arguments.strip() else {}
    except json.JSONDecodeError:
        return f"{name} arguments are not JSON: {short(call.arguments)}"
    for key, value in arguments.items():
        if not isinstance(actual, Mapping) or key not in actual:
            return f"{name} without argument {key!r}"
        if not subset_match(value, actual[key]):
            return f"{name} with {key}={short(actual[key], 60)}, expected {short(value, 60)}"
    return None


def tool_call(a: Assertion, obs: Observation, case: Case) -> AssertionResult:
    specs = _specs(a.value)
    if specs is None:
        return unevaluated(
            a, "tool-call needs a value: {name: ..., arguments: {...}} or a tool name"
        )
    if not obs.tool_calls:
        wanted = " or ".join(name for name, _ in specs)
        return result(a, False, f"no tool call (expected {wanted})")
    misses: list[str] = []
    for name, arguments in specs:
        for call in obs.tool_calls:
            why = _why_not(name, arguments, call)
            if why is None:
                shown = f" with {short(dict(arguments), 80)}" if arguments else ""
                return result(a, True, f"called {name}{shown}")
            misses.append(why)
    same_name = [m for m in misses if not m.startswith("called ")]
    return result(a, False, "; ".join(same_name or misses[:3]))


__all__ = ["subset_match", "tool_call"]

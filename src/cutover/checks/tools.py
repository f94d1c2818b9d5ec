"""The ``tool_calls_valid`` check: each tool call matches a declared tool.

Tools are read in the OpenAI format (``{"type": "function", "function":
{"name", "parameters", "strict"}}``); a flat ``{"name", "parameters"}`` and
Anthropic's ``{"name", "input_schema"}`` are accepted too. A call is valid
when it names a declared tool, its arguments parse as a JSON object (an empty
string counts as ``{}``), and the arguments conform to the tool's parameter
schema: required parameters present, no unknown parameter when the schema
sets ``additionalProperties: false`` (or the tool is ``strict``), and the
types, enums and bounds of the parameters (see :mod:`cutover.checks.schema`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from cutover.checks._base import CheckContext
from cutover.checks._facts import FactCheck, Facts, Outcome
from cutover.checks.schema import json_type, schema_error
from cutover.records import ToolCall

_NAME = "tool_calls_valid"


def declared_tools(tools: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Tool name -> its parameter schema (``{}`` when it declares none)."""
    out: dict[str, dict[str, Any]] = {}
    for tool in tools or ():
        if not isinstance(tool, Mapping):
            continue
        function = tool.get("function")
        spec: Mapping[str, Any] = function if isinstance(function, Mapping) else tool
        name = spec.get("name")
        if not isinstance(name, str):
            continue
        params = spec.get("parameters", spec.get("input_schema"))
        schema: dict[str, Any] = dict(params) if isinstance(params, Mapping) else {}
        if spec.get("strict") is True and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        out[name] = schema
    return out


def tool_call_error(call: ToolCall, tools: Mapping[str, dict[str, Any]]) -> str | None:
    """What is wrong with one call, or ``None`` when it is valid."""
    if call.name not in tools:
        return f"tool {call.name!r} is not declared"
    text = call.arguments.strip()
    if not text:
        args: Any = {}
    else:
        try:
            args = orjson.loads(text)
        except orjson.JSONDecodeError:
            return f"{call.name}: arguments are not valid JSON"
    if not isinstance(args, dict):
        return f"{call.name}: arguments are a JSON {json_type(args)}, not an object"
    err = schema_error(args, tools[call.name])
    if err is None:
        return None
    return f"{call.name}: {err.removeprefix('$: ').replace('$.', '', 1)}"


def _tool_calls_valid(f: Facts, ctx: CheckContext) -> Outcome:
    calls = f.obs.tool_calls
    if not calls and not ctx.tools:
        return (None, "no tools declared and no tool calls")
    if not calls:
        return (True, "no tool calls to validate")
    tools = declared_tools(ctx.tools)
    problems = [err for call in calls if (err := tool_call_error(call, tools)) is not None]
    if not problems:
        n = len(calls)
        return (True, f"{n} tool call{'s' if n > 1 else ''} valid")
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return (False, problems[0] + more)


TOOL_CALLS_VALID = FactCheck(_NAME, _tool_calls_valid)

__all__ = ["TOOL_CALLS_VALID", "declared_tools", "tool_call_error"]

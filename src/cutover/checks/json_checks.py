"""Checks on structured output: JSON validity, schema, fences, nesting, preamble, truncation.

Every check here reads one :class:`JsonView` of the output, built once per
Observation by :func:`analyze_json`. The view finds the JSON the output
carries, in this order:

1. ``raw``: the stripped output starts like JSON (``{"``, ``[{``, ``[1``...);
   it parses as-is, or a JSON value parses from its start with text after it.
2. ``fence``: the first markdown code fence tagged ``json`` (or untagged with
   a body that starts like JSON).
3. ``embedded``: a line that starts like a JSON object or array after some
   prose ("Sure! Here is the JSON:\\n{...}").

An output "looks like JSON" (the checks apply to it) when one of these is
present, even if it does not parse.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from cutover.checks._base import CheckContext
from cutover.checks._facts import FactCheck, Facts, Fence, Outcome
from cutover.checks.schema import schema_error

# The start of a JSON object or array (not "[1] a citation" prose: see _EMBEDDED).
_LOOKS_JSON = re.compile(r"""\{\s*(?:["'}]|\Z)|\[\s*(?:[\[{"\]\-\d]|true\b|false\b|null\b|\Z)""")
# A line in prose that starts a JSON object, or an array of objects, arrays or strings.
_EMBEDDED = re.compile(r"""^[ \t]*(\{\s*(?:["'}]|$)|\[\s*[\[{"])""", re.MULTILINE)
# A complete JSON string (possessive: linear even on an unterminated one).
_JSON_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"')
_JSON_LANGS = frozenset({"json", "json5", "jsonc", "jsonl"})
_MAYBE_JSON_LANGS = frozenset({"", "javascript", "js", "text"})
_LENGTH_REASONS = frozenset({"length", "max_tokens", "max_output_tokens", "model_length"})
_DECODER = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class JsonView:
    """Where the output's JSON is and what it parses to."""

    jsonish: bool = False
    """The output looks like it tries to be JSON (raw, fenced or after prose)."""
    strict_ok: bool = False
    """The stripped output parses as JSON as it is."""
    found: bool = False
    """A JSON value was parsed, leniently (``value`` holds it)."""
    value: Any = None
    where: str = ""
    """``"raw"``, ``"fence"`` or ``"embedded"``; ``""`` when not JSON-ish."""
    start: int = -1
    """Offset in the stripped output where the JSON (or its fence) starts."""
    end: int = -1
    """Offset just past the JSON (or its fence)."""
    fence: Fence | None = None
    cut_off: bool = False
    """The JSON starts but stops short: an unclosed bracket or string."""
    error: str = ""
    """Why the stripped output does not parse as-is (short)."""


_NOT_JSON = JsonView()


def analyze_json(facts: Facts) -> JsonView:
    """Find the JSON in one output (see the module docstring for the order)."""
    s = facts.stripped
    if not s:
        return _NOT_JSON
    if _LOOKS_JSON.match(s):
        try:
            return JsonView(True, True, True, orjson.loads(s), "raw", 0, len(s))
        except orjson.JSONDecodeError as exc:
            error = _short_error(exc)
        found, value, end = _decode_prefix(s, 0)
        if not found:
            return JsonView(
                True, where="raw", start=0, end=len(s), cut_off=_cut_off(s), error=error
            )
        if _structured(value) or end * 2 >= len(s):
            return JsonView(True, False, True, value, "raw", 0, end, error=error)
        # prose that happens to open with "[1]": look for JSON further on
    else:
        error = "does not start with { or ["
    for fence in facts.fences:
        body = s[fence.body_start : fence.body_end].strip()
        if fence.lang in _JSON_LANGS or (
            fence.lang in _MAYBE_JSON_LANGS and _LOOKS_JSON.match(body) is not None
        ):
            found, value, _ = _decode_whole(body) if body else (False, None, -1)
            cut = not found and _cut_off(body)
            return JsonView(
                True, False, found, value, "fence", fence.start, fence.end, fence, cut, error
            )
    m = _EMBEDDED.search(s) if "{" in s or "[" in s else None
    if m is not None:
        start = m.start(1)
        found, value, end = _decode_whole(s, start)
        cut = not found and _cut_off(s[start:])
        return JsonView(True, False, found, value, "embedded", start, end, None, cut, error)
    return _NOT_JSON


def _structured(value: Any) -> bool:
    """An object, or an array holding objects or arrays: JSON, not a "[1]" citation."""
    if isinstance(value, dict):
        return True
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict | list)


def _decode_whole(text: str, start: int = 0) -> tuple[bool, Any, int]:
    """Parse ``text[start:]`` up to its last closing bracket, else the longest JSON prefix."""
    closer = "}" if text[start] == "{" else "]" if text[start] == "[" else ""
    if not closer:
        return _decode_prefix(text, start)
    last = text.rfind(closer)
    if last > start:
        try:
            return True, orjson.loads(text[start : last + 1]), last + 1
        except orjson.JSONDecodeError:
            pass
    return _decode_prefix(text, start)


def _decode_prefix(text: str, start: int) -> tuple[bool, Any, int]:
    try:
        value, end = _DECODER.raw_decode(text, start)
    except ValueError:
        return False, None, -1
    return True, value, end


def _cut_off(text: str) -> bool:
    """Whether JSON text stops inside a string or with brackets left open."""
    rest = _JSON_STRING.sub("", text)
    if '"' in rest:
        return True
    opens = rest.count("{") + rest.count("[")
    closes = rest.count("}") + rest.count("]")
    return opens > closes or rest.rstrip().endswith((",", ":"))


def _short_error(exc: Exception, limit: int = 60) -> str:
    text = str(exc).split(":", 1)[0] if ": line" in str(exc) else str(exc)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fence_label(fence: Fence | None) -> str:
    lang = fence.lang if fence is not None else ""
    return f"```{lang} fence"


def schema_of(ctx: CheckContext) -> dict[str, Any] | None:
    """The schema the output must follow: ``ctx.json_schema``, else the response_format's."""
    if ctx.json_schema is not None:
        return ctx.json_schema
    rf = ctx.response_format
    if isinstance(rf, dict) and rf.get("type") == "json_schema":
        spec = rf.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict):
            return schema
    return None


def _json_valid(f: Facts, ctx: CheckContext) -> Outcome:
    v = f.json
    if not (v.jsonish or ctx.expects_json):
        return (None, "not JSON and no JSON expected")
    if v.strict_ok:
        return (True, "valid JSON")
    if not v.jsonish:
        if not f.stripped:
            return (False, "empty output")
        try:
            orjson.loads(f.stripped)
        except orjson.JSONDecodeError:
            return (False, "no JSON in the output")
        return (True, "valid JSON (a scalar)")
    if v.cut_off:
        reason = "JSON cut off (unclosed bracket or string)"
    elif v.where == "fence":
        before = ", after prose" if v.start > 0 else ""
        reason = f"json wrapped in {_fence_label(v.fence)}{before}"
    elif v.where == "embedded":
        reason = "prose before JSON" if v.found else "prose before invalid JSON"
    elif v.found:
        reason = "extra text after JSON"
    else:
        reason = f"invalid JSON: {v.error}"
    return (False, reason)


def _json_schema_ok(f: Facts, ctx: CheckContext) -> Outcome:
    schema = schema_of(ctx)
    if schema is None:
        return (None, "no schema")
    v = f.json
    if not f.stripped:
        if f.obs.tool_calls:
            return (None, "answered with tool calls, no text")
        return (False, "empty output")
    if v.found:
        value = v.value
    else:
        try:
            value = orjson.loads(f.stripped)
        except orjson.JSONDecodeError:
            what = "JSON cut off" if v.cut_off else "invalid JSON" if v.jsonish else "no JSON"
            return (False, f"{what}, nothing to validate")
    err = schema_error(value, schema)
    if err is None:
        return (True, "conforms to the schema")
    return (False, err)


def _fenced_json(f: Facts, ctx: CheckContext) -> Outcome:
    v = f.json
    if not v.jsonish:
        return (None, "not JSON")
    if v.where == "fence":
        return (True, f"json wrapped in {_fence_label(v.fence)}")
    return (False, "no code fence around the JSON")


def _expected_shape(ctx: CheckContext) -> tuple[str, frozenset[str]] | None:
    """``("object", keys)`` or ``("array", {})`` from the schema, else the expected output."""
    schema = schema_of(ctx)
    if schema is not None:
        kind = schema.get("type")
        if kind == "array":
            return "array", frozenset()
        props = schema.get("properties")
        if kind == "object" or isinstance(props, dict):
            keys = schema.get("required") or (props if isinstance(props, dict) else ())
            return "object", frozenset(str(k) for k in keys)
    if ctx.expected:
        try:
            expected = orjson.loads(ctx.expected)
        except orjson.JSONDecodeError:
            return None
        if isinstance(expected, dict):
            return "object", frozenset(expected)
        if isinstance(expected, list):
            return "array", frozenset()
    return None


def _extra_nesting(f: Facts, ctx: CheckContext) -> Outcome:
    shape = _expected_shape(ctx)
    if shape is None:
        return (None, "no schema or expected JSON to compare")
    v = f.json
    if not v.found:
        return (None, "no parsable JSON")
    kind, keys = shape
    value = v.value
    if kind == "object":
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
            return (True, "object wrapped in a one-item array")
        if isinstance(value, dict) and len(value) == 1 and keys:
            ((key, inner),) = value.items()
            if key not in keys:
                if isinstance(inner, dict) and keys & inner.keys():
                    return (True, f'object wrapped in {{"{key}": ...}}')
                if (
                    isinstance(inner, list)
                    and len(inner) == 1
                    and isinstance(inner[0], dict)
                    and keys & inner[0].keys()
                ):
                    return (True, f'object wrapped in {{"{key}": [...]}}')
        return (False, "top level as expected")
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        if isinstance(inner, list):
            return (True, f'array wrapped in {{"{key}": [...]}}')
    return (False, "top level as expected")


def _preamble(f: Facts, ctx: CheckContext) -> Outcome:
    v = f.json
    if v.jsonish:
        if v.start <= 0:
            return (False, "starts with the JSON")
        what = "the JSON fence" if v.where == "fence" else "the JSON"
        prose = f.stripped[: v.start].strip()
        return (True, f"prose before {what}: {_quote(prose)}")
    fences = f.fences
    if not fences:
        return (None, "not structured output")
    code = sum(fc.end - fc.start for fc in fences)
    if code * 2 < len(f.stripped):
        return (None, "prose with code examples, not structured output")
    if fences[0].start == 0:
        return (False, "starts with the code block")
    prose = f.stripped[: fences[0].start].strip()
    return (True, f"prose before the code block: {_quote(prose)}")


def _quote(text: str, limit: int = 40) -> str:
    line = " ".join(text.split())
    return repr(line if len(line) <= limit else line[: limit - 3] + "...")


def _truncated(f: Facts, ctx: CheckContext) -> Outcome:
    reason = f.obs.finish_reason
    if reason is not None and reason.lower() in _LENGTH_REASONS:
        return (True, f"finish_reason {reason!r}")
    fences = f.fences
    if fences and not fences[-1].closed:
        return (True, f"{_fence_label(fences[-1])} never closed")
    if f.json.cut_off:
        return (True, "JSON cut off (unclosed bracket or string)")
    return (False, "complete")


JSON_VALID = FactCheck("json_valid", _json_valid)
JSON_SCHEMA_OK = FactCheck("json_schema_ok", _json_schema_ok)
FENCED_JSON = FactCheck("fenced_json", _fenced_json)
EXTRA_NESTING = FactCheck("extra_nesting", _extra_nesting)
PREAMBLE = FactCheck("preamble", _preamble)
TRUNCATED = FactCheck("truncated", _truncated)

__all__ = [
    "EXTRA_NESTING",
    "FENCED_JSON",
    "JSON_SCHEMA_OK",
    "JSON_VALID",
    "PREAMBLE",
    "TRUNCATED",
    "JsonView",
    "analyze_json",
    "schema_of",
]

"""``is-json`` and ``json-schema``, and the lenient JSON finder they share
with the judge.

Strict (the default): the whole output, stripped, must parse as JSON (any
JSON value). ``strict: false`` (or ``contains: true``, what promptfoo's
``contains-json`` imports as) also accepts JSON inside a markdown code fence
or after a preamble ("Here is the JSON: {...}"): the first fenced block that
parses, else the first ``{`` or ``[`` from which a whole JSON value parses.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import jsonschema
import jsonschema.exceptions
import jsonschema.validators
import yaml

from cutover.assertions._common import (
    clip,
    option_bool,
    output_text,
    resolve_file,
    result,
    unevaluated,
)
from cutover.assertions._result import AssertionResult
from cutover.records import Observation
from cutover.suites._case import Assertion, Case

_FENCED = re.compile(r"```[^\n`]*\n(?P<body>.*?)(?:\n[ \t]*```|\Z)", re.S)
_DECODER = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class FoundJson:
    """A JSON value found in a text, and how (``"whole"``, ``"fence"``, ``"embedded"``)."""

    value: Any
    how: str


class JsonNotFound(ValueError):
    """No JSON in the text; the message is the parser's complaint."""


def parse_json(text: str, *, strict: bool = True) -> FoundJson:
    """The JSON in ``text``: the whole text, or with ``strict=False`` a fenced or
    embedded value. Raises :class:`JsonNotFound` with the reason."""
    stripped = text.strip()
    if not stripped:
        raise JsonNotFound("the output is empty")
    try:
        return FoundJson(json.loads(stripped), "whole")
    except json.JSONDecodeError as exc:
        first_error = f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
    if strict:
        raise JsonNotFound(first_error)
    for match in _FENCED.finditer(text):
        try:
            return FoundJson(json.loads(match["body"].strip()), "fence")
        except json.JSONDecodeError:
            continue
    found = find_embedded(text)
    if found is not None:
        return FoundJson(found, "embedded")
    raise JsonNotFound(f"no JSON object or array found ({first_error})")


def find_embedded(text: str, *, want_object: bool = False) -> Any:
    """The first JSON object or array (only objects with ``want_object``) that
    starts at a ``{`` or ``[`` of ``text``; None when there is none."""
    openers = "{" if want_object else "{["
    pos = 0
    while True:
        starts = [i for i in (text.find(c, pos) for c in openers) if i >= 0]
        if not starts:
            return None
        at = min(starts)
        try:
            value, _ = _DECODER.raw_decode(text, at)
        except json.JSONDecodeError:
            pos = at + 1
            continue
        return value


def _describe(found: FoundJson) -> str:
    kind = type(found.value).__name__
    kind = {"dict": "object", "list": "array", "str": "string", "NoneType": "null"}.get(kind, kind)
    where = {"whole": "", "fence": " in a code fence", "embedded": " after other text"}[found.how]
    return f"valid JSON ({kind}){where}"


def _lenient(a: Assertion) -> bool:
    return not option_bool(a, "strict", True) or option_bool(a, "contains", False)


def is_json(a: Assertion, obs: Observation, case: Case) -> AssertionResult:
    try:
        found = parse_json(output_text(obs), strict=not _lenient(a))
    except JsonNotFound as exc:
        return result(a, False, f"not JSON: {exc}")
    return result(a, True, _describe(found))


def _schema(a: Assertion, case: Case) -> Any:
    """The schema of a json-schema assertion; raises ValueError with the reason."""
    value = a.value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("file://") or text.endswith((".json", ".yaml", ".yml")):
            path = resolve_file(text, case)
            try:
                value = yaml.safe_load(path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise ValueError(f"cannot read schema file {path}: {exc.strerror}") from None
            except yaml.YAMLError as exc:
                raise ValueError(f"schema file {path} is not JSON or YAML: {exc}") from None
        else:
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise ValueError(
                    "json-schema needs a schema: an object or file://schema.json"
                ) from None
    if not isinstance(value, dict | bool):
        raise ValueError("json-schema needs a schema: an object or file://schema.json")
    return value


def _path(error: jsonschema.exceptions.ValidationError) -> str:
    out = "$"
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def json_schema(a: Assertion, obs: Observation, case: Case) -> AssertionResult:
    try:
        schema = _schema(a, case)
    except ValueError as exc:
        return unevaluated(a, str(exc))
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        return unevaluated(a, f"invalid schema: {exc.message}")
    try:
        found = parse_json(output_text(obs), strict=not _lenient(a))
    except JsonNotFound as exc:
        return result(a, False, f"not JSON: {exc}")
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    error = jsonschema.exceptions.best_match(validator.iter_errors(found.value))
    if error is None:
        return result(a, True, f"{_describe(found)} matching the schema")
    return result(a, False, f"{_path(error)}: {clip(error.message)}")


__all__ = ["FoundJson", "JsonNotFound", "find_embedded", "is_json", "json_schema", "parse_json"]

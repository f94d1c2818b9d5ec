"""The small JSON-Schema validator the JSON and tool-call checks use."""

from __future__ import annotations

from typing import Any

import pytest

from cutover.checks.schema import json_type, schema_error, type_matches

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "tags"],
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "name": {"type": "string", "minLength": 1, "maxLength": 5},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
        "kind": {"const": "user"},
        "score": {"type": ["number", "null"], "exclusiveMaximum": 10},
        "ref": {"$ref": "#/$defs/code"},
    },
    "additionalProperties": False,
    "$defs": {"code": {"type": "string", "pattern": "^[A-Z]{3}$"}},
}


@pytest.mark.parametrize(
    ("instance", "error"),
    [
        ({"id": 1, "tags": []}, None),
        ({"id": 1, "tags": ["a", "b"], "kind": "user", "score": None, "ref": "ABC"}, None),
        ({"id": 1.0, "tags": []}, None),  # 1.0 is an integer in JSON Schema
        ({"tags": []}, "$: missing required property 'id'"),
        ({"id": 0, "tags": []}, "$.id: 0 is below the minimum 1"),
        ({"id": True, "tags": []}, "$.id: expected integer, got boolean"),
        ({"id": 1, "tags": ["c"]}, "$.tags[0]: 'c' is not one of ['a', 'b']"),
        ({"id": 1, "tags": ["a", "a", "a"]}, "$.tags: 3 items, more than 2"),
        ({"id": 1, "tags": [], "name": ""}, "$.name: string shorter than 1"),
        ({"id": 1, "tags": [], "name": "abcdef"}, "$.name: string longer than 5"),
        ({"id": 1, "tags": [], "kind": "admin"}, "$.kind: expected 'user', got 'admin'"),
        ({"id": 1, "tags": [], "score": 10}, "$.score: 10 is not below 10"),
        ({"id": 1, "tags": [], "ref": "abc"}, "$.ref: 'abc' does not match /^[A-Z]{3}$/"),
        ({"id": 1, "tags": [], "extra": 1}, "$: unexpected property 'extra'"),
        ([], "$: expected object, got array"),
    ],
)
def test_schema_error(instance: Any, error: str | None) -> None:
    assert schema_error(instance, SCHEMA) == error


def test_combinators() -> None:
    any_of = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    assert schema_error("x", any_of) is None
    assert schema_error(1.5, any_of) is not None
    one_of = {"oneOf": [{"type": "number"}, {"type": "integer"}]}
    assert schema_error(1.5, one_of) is None
    assert schema_error(2, one_of) == "$: matches 2 of oneOf, not exactly 1"
    all_of = {"allOf": [{"minimum": 0}, {"maximum": 5}]}
    assert schema_error(3, all_of) is None
    assert schema_error(6, all_of) == "$: 6 is above the maximum 5"
    assert schema_error(1, {"not": {"type": "integer"}}) is not None
    assert schema_error(1, False) is not None
    assert schema_error(1, True) is None
    assert schema_error(1, {}) is None


def test_additional_properties_schema_and_prefix_items() -> None:
    schema = {"type": "object", "additionalProperties": {"type": "integer"}}
    assert schema_error({"a": 1}, schema) is None
    assert schema_error({"a": "x"}, schema) == "$.a: expected integer, got string"
    pair = {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]}
    assert schema_error(["a", 1], pair) is None
    assert schema_error([1, 1], pair) == "$[0]: expected string, got integer"


def test_types() -> None:
    assert json_type(None) == "null"
    assert json_type(1) == "integer" and json_type(1.5) == "number"
    assert type_matches(1, "number")
    assert not type_matches(True, "integer")
    assert not type_matches(1.5, "integer")

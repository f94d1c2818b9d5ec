"""A small JSON-Schema validator: the subset LLM structured outputs use.

Supported keywords: ``type`` (a name or a list), ``enum``, ``const``,
``properties``, ``required``, ``additionalProperties`` (false or a schema),
``items`` (one schema), ``prefixItems``, ``minItems``/``maxItems``,
``minimum``/``maximum``/``exclusiveMinimum``/``exclusiveMaximum``,
``minLength``/``maxLength``, ``pattern``, ``anyOf``/``oneOf``/``allOf``/``not``,
and local ``$ref`` (``#/$defs/...``, ``#/definitions/...``). Other keywords
(``format``, ``uniqueItems``, ...) are ignored, so the validator errs towards
accepting. Booleans are not integers or numbers, as in JSON Schema.

:func:`schema_error` returns the first problem as a short message with its
path (``"$.items[2].price: expected number, got string"``) or ``None`` when
the instance conforms. It interprets the schema directly: no compilation
step, nothing cached, fast enough for schemas of the size prompts carry.
"""

from __future__ import annotations

import re
from typing import Any

_MAX_DEPTH = 64

_TYPE_NAMES: dict[type, str] = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


def json_type(value: Any) -> str:
    """The JSON type name of a parsed value (``"integer"`` for ints, not ``"number"``)."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def type_matches(value: Any, expected: str) -> bool:
    """Whether ``value`` is of the JSON-Schema type ``expected``."""
    actual = json_type(value)
    if actual == expected:
        return True
    if expected == "number":
        return actual == "integer"
    if expected == "integer" and actual == "number":
        return float(value).is_integer()
    return False


def schema_error(instance: Any, schema: Any) -> str | None:
    """The first way ``instance`` breaks ``schema``, or ``None`` when it conforms."""
    return _check(instance, schema, "$", schema, 0)


def _check(value: Any, schema: Any, path: str, root: Any, depth: int) -> str | None:
    if schema is False:
        return f"{path}: no value is allowed here"
    if not isinstance(schema, dict) or not schema:
        return None
    if depth > _MAX_DEPTH:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = _resolve(ref, root)
        if target is not None:
            err = _check(value, target, path, root, depth + 1)
            if err:
                return err

    expected = schema.get("type")
    if expected is not None:
        names = expected if isinstance(expected, list) else [expected]
        if not any(type_matches(value, str(n)) for n in names):
            want = " or ".join(str(n) for n in names)
            return f"{path}: expected {want}, got {json_type(value)}"
    enum = schema.get("enum")
    if isinstance(enum, list) and not any(_same(value, option) for option in enum):
        return f"{path}: {_short(value)} is not one of {_short(schema['enum'])}"
    if "const" in schema and not _same(value, schema["const"]):
        return f"{path}: expected {_short(schema['const'])}, got {_short(value)}"

    if isinstance(value, dict):
        err = _check_object(value, schema, path, root, depth)
    elif isinstance(value, list):
        err = _check_array(value, schema, path, root, depth)
    elif isinstance(value, str):
        err = _check_string(value, schema, path)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        err = _check_number(value, schema, path)
    else:
        err = None
    if err:
        return err
    return _check_combinators(value, schema, path, root, depth)


def _check_object(
    value: dict[str, Any], schema: dict[str, Any], path: str, root: Any, depth: int
) -> str | None:
    for key in schema.get("required") or ():
        if key not in value:
            return f"{path}: missing required property {key!r}"
    props = schema.get("properties")
    props = props if isinstance(props, dict) else {}
    additional = schema.get("additionalProperties", True)
    for key, item in value.items():
        sub = props.get(key)
        if sub is not None:
            err = _check(item, sub, f"{path}.{key}", root, depth + 1)
        elif additional is False:
            err = f"{path}: unexpected property {key!r}"
        elif isinstance(additional, dict):
            err = _check(item, additional, f"{path}.{key}", root, depth + 1)
        else:
            err = None
        if err:
            return err
    return None


def _check_array(
    value: list[Any], schema: dict[str, Any], path: str, root: Any, depth: int
) -> str | None:
    lo, hi = schema.get("minItems"), schema.get("maxItems")
    if isinstance(lo, int) and len(value) < lo:
        return f"{path}: {len(value)} items, fewer than {lo}"
    if isinstance(hi, int) and len(value) > hi:
        return f"{path}: {len(value)} items, more than {hi}"
    prefix = schema.get("prefixItems")
    start = 0
    if isinstance(prefix, list):
        for i, (item, sub) in enumerate(zip(value, prefix, strict=False)):
            err = _check(item, sub, f"{path}[{i}]", root, depth + 1)
            if err:
                return err
        start = len(prefix)
    items = schema.get("items")
    if isinstance(items, dict):
        for i in range(start, len(value)):
            err = _check(value[i], items, f"{path}[{i}]", root, depth + 1)
            if err:
                return err
    return None


def _check_string(value: str, schema: dict[str, Any], path: str) -> str | None:
    lo, hi = schema.get("minLength"), schema.get("maxLength")
    if isinstance(lo, int) and len(value) < lo:
        return f"{path}: string shorter than {lo}"
    if isinstance(hi, int) and len(value) > hi:
        return f"{path}: string longer than {hi}"
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            found = re.search(pattern, value) is not None
        except re.error:
            found = True  # a pattern Python cannot read is not the output's fault
        if not found:
            return f"{path}: {_short(value)} does not match /{pattern}/"
    return None


def _check_number(value: float, schema: dict[str, Any], path: str) -> str | None:
    lo, hi = _bound(schema, "minimum"), _bound(schema, "maximum")
    xlo, xhi = _bound(schema, "exclusiveMinimum"), _bound(schema, "exclusiveMaximum")
    if lo is not None and value < lo:
        return f"{path}: {value} is below the minimum {lo:g}"
    if hi is not None and value > hi:
        return f"{path}: {value} is above the maximum {hi:g}"
    if xlo is not None and value <= xlo:
        return f"{path}: {value} is not above {xlo:g}"
    if xhi is not None and value >= xhi:
        return f"{path}: {value} is not below {xhi:g}"
    return None


def _check_combinators(
    value: Any, schema: dict[str, Any], path: str, root: Any, depth: int
) -> str | None:
    all_of = schema.get("allOf")
    if isinstance(all_of, list):
        for sub in all_of:
            err = _check(value, sub, path, root, depth + 1)
            if err:
                return err
    any_of = schema.get("anyOf")
    if isinstance(any_of, list) and any_of:
        errors = [_check(value, sub, path, root, depth + 1) for sub in any_of]
        if all(errors):
            return f"{path}: matches none of anyOf ({errors[0]})"
    one_of = schema.get("oneOf")
    if isinstance(one_of, list) and one_of:
        passing = sum(_check(value, sub, path, root, depth + 1) is None for sub in one_of)
        if passing != 1:
            return f"{path}: matches {passing} of oneOf, not exactly 1"
    not_ = schema.get("not")
    if isinstance(not_, dict) and _check(value, not_, path, root, depth + 1) is None:
        return f"{path}: matches a schema it must not"
    return None


def _resolve(ref: str, root: Any) -> Any:
    if not ref.startswith("#"):
        return None
    node = root
    for part in ref[1:].split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == 1.0`` but ``True != 1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _bound(schema: dict[str, Any], key: str) -> float | None:
    x = schema.get(key)
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

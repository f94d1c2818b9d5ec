"""YAML and JSONL reading that remembers where every value was written.

A suite error should say ``suite.yaml:42: field 'cases[3].assert[0].type'``.
PyYAML's ``safe_load`` forgets positions, so :func:`load_yaml` composes the
node graph and builds plain dicts and lists itself, recording the line of
every mapping key and every sequence item under its *location* (the tuple of
keys and indices that reaches it, the same shape as a pydantic error's
``loc``). :meth:`Located.line_of` then answers with the line of the deepest
recorded prefix of a location.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import BaseModel, ValidationError

from cutover.errors import InputError, SuiteError

Loc = tuple[str | int, ...]
"""A location inside a document: keys and list indices from the root."""


def format_loc(loc: Sequence[str | int]) -> str:
    """``("cases", 3, "assert", 0, "type")`` -> ``cases[3].assert[0].type``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(slots=True)
class Located:
    """Plain data (dicts, lists, scalars) plus the line of every location."""

    data: Any
    path: str
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The line of ``loc``, else of its deepest recorded ancestor."""
        parts = tuple(loc)
        while True:
            line = self.lines.get(parts)
            if line is not None:
                return line
            if not parts:
                return None
            parts = parts[:-1]


def read_text(path: Path, error: type[InputError] = SuiteError) -> str:
    """The file's text, or an ``error`` naming the path."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error("file not found", path=str(path)) from None
    except IsADirectoryError:
        raise error("is a directory, expected a file", path=str(path)) from None
    except UnicodeDecodeError as exc:
        raise error(f"not UTF-8 text: {exc.reason} at byte {exc.start}", path=str(path)) from None
    except OSError as exc:
        raise error(f"cannot read file: {exc.strerror}", path=str(path)) from None


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser when PyYAML was built with it (several times faster)."""


def load_yaml(path: Path, text: str | None = None) -> Located:
    """Parse one YAML document, keeping the line of every key and item."""
    if text is None:
        text = read_text(path)
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        located = Located(data=None, path=str(path))
        if node is not None:
            located.data = _build(loader, node, (), located)
        return located
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise SuiteError(
            f"not valid YAML: {problem}",
            path=str(path),
            line=mark.line + 1 if mark is not None else None,
        ) from None
    except yaml.YAMLError as exc:
        raise SuiteError(f"not valid YAML: {exc}", path=str(path)) from None
    finally:
        loader.dispose()


def _build(
    loader: yaml.SafeLoader | yaml.CSafeLoader, node: yaml.Node, loc: Loc, out: Located
) -> Any:
    out.lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        own = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
        loader.flatten_mapping(node)  # resolves ``<<`` merge keys in place, first
        merged = len(node.value) - own
        result: dict[Any, Any] = {}
        seen: dict[Any, int] = {}
        for index, (key_node, value_node) in enumerate(node.value):
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                hash(key)
            except TypeError:
                raise SuiteError(
                    "a mapping key must be a scalar (string or number)",
                    path=out.path,
                    line=line,
                    field=format_loc(loc) or None,
                ) from None
            if key in seen and index >= merged:
                raise SuiteError(
                    f"duplicate key '{key}' (first written on line {seen[key]})",
                    path=out.path,
                    line=line,
                    field=format_loc(loc) or None,
                )
            if index >= merged:  # keys written here override merged ones
                seen[key] = line
            child: Loc = (*loc, key if isinstance(key, int) else str(key))
            out.lines[child] = line
            result[key] = _build(loader, value_node, child, out)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*loc, i), out) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


@dataclass(frozen=True, slots=True)
class JsonLine:
    """One non-blank line of a JSONL file, parsed."""

    line: int
    data: Any


def _binary_lines(path: Path, error: type[InputError]) -> Iterator[bytes]:
    """The file's lines as bytes, read one at a time (memory flat in file size)."""
    try:
        with path.open("rb") as fh:
            first = True
            for raw in fh:
                if first:
                    raw = raw.removeprefix(b"\xef\xbb\xbf")
                    first = False
                yield raw
    except OSError as exc:
        raise error(f"cannot read file: {exc.strerror}", path=str(path)) from None


def iter_jsonl(
    path: Path, text: str | None = None, *, error: type[InputError] = SuiteError
) -> Iterator[JsonLine]:
    """Parse each non-blank line (numbered from 1); bad JSON -> ``error`` with the line."""
    lines: Iterable[bytes]
    if text is None:
        if not path.is_file():
            read_text(path, error)  # raises the precise error (not found, a directory...)
        lines = _binary_lines(path, error)
    else:
        lines = (line.encode("utf-8", "surrogatepass") for line in text.splitlines())
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if not stripped:
            continue
        try:
            data = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise error(
                f"not valid JSON: {exc.msg} (column {exc.colno})",
                path=str(path),
                line=number,
                hint="each line must be one JSON object",
            ) from None
        yield JsonLine(number, data)


def closest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a choice is close to ``word``, else ``""``."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


class HintedValueError(ValueError):
    """A validator's complaint plus what would be valid (becomes the error's hint)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


FieldsAt = Callable[[Loc], Sequence[str] | None]
"""Given the location of a model, the field names it accepts (for hints)."""


def field_names(model: type[BaseModel]) -> list[str]:
    """The names a model accepts in a file (aliases where set)."""
    return [info.alias or name for name, info in model.model_fields.items()]


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def fields_of(root: type[BaseModel]) -> FieldsAt:
    """A :data:`FieldsAt` that walks ``root``'s annotations along a location."""

    def at(loc: Loc) -> Sequence[str] | None:
        current: Any = root
        for part in loc:
            current = _unwrap(current)
            if isinstance(part, int):
                if typing.get_origin(current) is not list:
                    return None
                current = typing.get_args(current)[0]
            elif isinstance(current, type) and issubclass(current, BaseModel):
                by_alias = {(i.alias or n): i for n, i in current.model_fields.items()}
                info = by_alias.get(part)
                if info is None:
                    return None
                current = info.annotation
            else:
                return None
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            return field_names(current)
        return None

    return at


def validation_error(
    exc: ValidationError,
    *,
    path: str,
    line_of: Callable[[Loc], int | None],
    prefix: Loc = (),
    fields_at: FieldsAt | None = None,
    error: type[InputError] = SuiteError,
) -> InputError:
    """Turn the first pydantic error into an ``error`` with path, line and field."""
    errors = exc.errors(include_url=False)
    # An unknown field is usually the typo behind a "missing" one: report it first.
    rank = {"extra_forbidden": 0, "missing": 2}
    first = min(errors, key=lambda e: rank.get(e["type"], 1))
    loc: Loc = (*prefix, *(p for p in first["loc"] if isinstance(p, str | int)))
    kind = first["type"]
    message = first["msg"]
    hint: str | None = None
    if kind == "extra_forbidden" and loc:
        name = str(loc[-1])
        valid = fields_at(loc[len(prefix) : -1]) if fields_at else None
        message = f"unknown field '{name}'"
        if valid:
            message += closest(name, valid)
            hint = "valid fields: " + ", ".join(valid)
    elif kind == "missing":
        message = "required field is missing"
    elif kind.startswith("value_error"):
        cause = first.get("ctx", {}).get("error")
        message = str(cause) if cause is not None else message
        if isinstance(cause, HintedValueError):
            hint = cause.hint
    elif kind in _TYPE_HINTS:
        got = type(first.get("input")).__name__
        message = f"{message}, got {_json_type(got)}"
    extra = len(errors) - 1
    if extra:
        more = f"{extra} more error{'s' if extra > 1 else ''} in this file"
        hint = f"{hint}; {more}" if hint else more
    return error(message, path=path, line=line_of(loc), field=format_loc(loc) or None, hint=hint)


_TYPE_HINTS = frozenset(
    {
        "string_type",
        "int_type",
        "int_parsing",
        "float_type",
        "float_parsing",
        "bool_type",
        "bool_parsing",
        "list_type",
        "dict_type",
        "model_type",
        "model_attributes_type",
    }
)


def _json_type(python_name: str) -> str:
    return {
        "str": "a string",
        "int": "a number",
        "float": "a number",
        "bool": "a boolean",
        "list": "a list",
        "dict": "a mapping",
        "NoneType": "null",
    }.get(python_name, python_name)


__all__ = [
    "HintedValueError",
    "JsonLine",
    "Loc",
    "Located",
    "closest",
    "field_names",
    "fields_of",
    "format_loc",
    "iter_jsonl",
    "load_yaml",
    "read_text",
    "validation_error",
]

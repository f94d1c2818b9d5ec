"""Reading the small YAML files users write (targets, gates), with clear errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from cutover.errors import InputError

M = TypeVar("M", bound=BaseModel)


def read_yaml_file(path: str | Path, error: type[InputError]) -> Any:
    """The parsed document, or ``error`` naming the file (and the line of a syntax error)."""
    p = Path(path)
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"cannot read file: {exc.strerror}", path=str(p)) from None
    except UnicodeDecodeError as exc:
        raise error(f"not UTF-8 text: {exc.reason}", path=str(p)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise error(
            f"not valid YAML: {getattr(exc, 'problem', exc)}",
            path=str(p),
            line=mark.line + 1 if mark else None,
        ) from None


def yaml_line(path: str | Path, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (keys and list indexes), or its nearest parent."""
    try:
        node = yaml.compose(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if node is None:
        return None
    line: int = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def validation_input_error(
    exc: ValidationError, path: str | Path, error: type[InputError]
) -> InputError:
    """The first error of a pydantic validation of a YAML file, as ``error`` (file, line, field)."""
    first = exc.errors()[0]
    loc = tuple(part for part in first["loc"] if not _is_union_tag(part))
    field = ".".join(str(part) for part in loc) or None
    message = str(first["msg"]).removeprefix("Value error, ")
    return error(message, path=str(path), line=yaml_line(path, loc), field=field)


def _is_union_tag(part: Any) -> bool:
    """pydantic adds the member type of a union to the location (``float``, ``str``...)."""
    return isinstance(part, str) and part in {"float", "int", "str", "bool", "none"}


ErrorFactory = Callable[[ValidationError, Path, type[InputError]], InputError]


def load_yaml_model(
    path: str | Path,
    model: type[M],
    error: type[InputError],
    *,
    expected: str,
    to_error: ErrorFactory | None = None,
) -> M:
    """A YAML mapping file validated as ``model``; errors name the file, the line and the field.

    ``expected`` says what the top level should be (for a file that is not a
    mapping); ``to_error`` turns a validation error into ``error`` (default:
    :func:`validation_input_error`).
    """
    p = Path(path)
    data = read_yaml_file(p, error)
    if not isinstance(data, dict):
        raise error(f"expected {expected}", path=str(p), line=1)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise (to_error or validation_input_error)(exc, p, error) from None


__all__ = ["load_yaml_model", "read_yaml_file", "validation_input_error", "yaml_line"]

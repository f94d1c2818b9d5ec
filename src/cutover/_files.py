"""Reading the small YAML files users write (targets, gates), with clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cutover.errors import InputError


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


__all__ = ["read_yaml_file"]

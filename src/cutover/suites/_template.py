"""``{{ var }}`` templates: the small, safe subset of nunjucks/jinja suites use.

Supported:

- ``{{ name }}``, ``{{ name.sub }}``, ``{{ items.0 }}`` / ``{{ items[0] }}``;
- filters ``upper``, ``lower``, ``trim``, ``dump`` / ``tojson`` (JSON text):
  ``{{ name | upper }}``;
- string literals, which is how a literal ``{{`` is written: ``{{ "{{" }}``;
  ``\\{{`` also renders as ``{{``;
- ``{% raw %}...{% endraw %}`` (copied as is) and ``{# comments #}``.

Anything else inside ``{% %}`` (``if``, ``for``) is refused rather than
rendered wrongly. A variable that is not defined is an error, never an empty
string: a suite that silently sends ``"Answer: "`` measures nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from cutover.errors import SuiteError

_TOKEN = re.compile(r"\\\{\{|\{\{(?P<expr>.*?)\}\}|\{%-?\s*(?P<tag>.*?)\s*-?%\}|\{#.*?#\}", re.S)
_ENDRAW = re.compile(r"\{%-?\s*endraw\s*-?%\}")
_PATH_PART = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_-]*)|\.(\d+)|\[(\d+)\]|\[(['\"])(.*?)\4\]")
_STRING = re.compile(r"^(['\"])(.*)\1$", re.S)


class TemplateError(ValueError):
    """A template cannot be rendered; ``var`` is the missing name, if that is why."""

    def __init__(self, message: str, *, var: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.var = var


def _stringify(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool | dict | list | tuple):
        return orjson.dumps(value).decode()
    return str(value)


def _dump(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _filters() -> dict[str, Callable[[Any], str]]:
    return {
        "upper": lambda v: _stringify(v).upper(),
        "lower": lambda v: _stringify(v).lower(),
        "trim": lambda v: _stringify(v).strip(),
        "dump": _dump,
        "tojson": _dump,
    }


def _lookup(expr: str, variables: Mapping[str, Any]) -> Any:
    literal = _STRING.match(expr)
    if literal:
        return literal.group(2)
    parts: list[str | int] = []
    pos = 0
    while pos < len(expr):
        match = _PATH_PART.match(expr, pos)
        if not match or (pos == 0 and (not match.group(1) or expr.startswith("."))):
            raise TemplateError(f"unsupported expression '{{{{ {expr} }}}}'")
        name, dot_index, bracket_index, _quote, key = match.groups()
        if name is not None:
            parts.append(name)
        elif key is not None:
            parts.append(key)
        else:
            parts.append(int(dot_index or bracket_index))
        pos = match.end()
    value: Any = variables
    for depth, part in enumerate(parts):
        dotted = _dotted(parts[: depth + 1])
        if isinstance(part, int) and isinstance(value, list | tuple):
            if part >= len(value):
                raise TemplateError(f"variable '{dotted}' is not defined", var=dotted)
            value = value[part]
        elif isinstance(value, Mapping) and str(part) in value:
            value = value[str(part)]
        elif isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            raise TemplateError(f"variable '{dotted}' is not defined", var=dotted)
    return value


def _dotted(parts: list[str | int]) -> str:
    return ".".join(str(p) for p in parts)


def render(template: str, variables: Mapping[str, Any]) -> str:
    """Render ``template`` against ``variables``; raise :class:`TemplateError`."""
    if "{" not in template and "\\" not in template:
        return template
    filters = _filters()
    out: list[str] = []
    pos = 0
    while True:
        match = _TOKEN.search(template, pos)
        if match is None:
            out.append(template[pos:])
            return "".join(out)
        out.append(template[pos : match.start()])
        pos = match.end()
        text = match.group(0)
        if text == "\\{{":
            out.append("{{")
        elif match.group("expr") is not None:
            expr, *pipes = (p.strip() for p in match.group("expr").split("|"))
            value = _lookup(expr, variables)
            for name in pipes:
                if name not in filters:
                    raise TemplateError(
                        f"unsupported filter '{name}' (supported: {', '.join(sorted(filters))})"
                    )
                value = filters[name](value)
            out.append(_stringify(value))
        elif match.group("tag") is not None:
            tag = match.group("tag")
            if tag != "raw":
                raise TemplateError(
                    f"unsupported template tag '{{% {tag} %}}' "
                    "(only {% raw %}...{% endraw %} is supported)"
                )
            end = _ENDRAW.search(template, pos)
            if end is None:
                raise TemplateError("'{% raw %}' without '{% endraw %}'")
            out.append(template[pos : end.start()])
            pos = end.end()
        # else: a {# comment #}, dropped


def variables_in(template: str) -> list[str]:
    """The top-level variable names a template reads (in order, no repeats)."""
    names: list[str] = []
    for match in _TOKEN.finditer(template):
        expr = match.group("expr")
        if expr is None:
            continue
        head = expr.split("|")[0].strip()
        name = re.match(r"[A-Za-z_][A-Za-z0-9_-]*", head)
        if name and not _STRING.match(head) and name.group(0) not in names:
            names.append(name.group(0))
    return names


def render_for_case(
    template: str,
    variables: Mapping[str, Any],
    *,
    case_id: str,
    path: str | None = None,
    line: int | None = None,
    field: str | None = None,
) -> str:
    """:func:`render`, with a failure reported as a :class:`SuiteError` for the case."""
    try:
        return render(template, variables)
    except TemplateError as exc:
        if exc.var is not None:
            defined = ", ".join(sorted(str(k) for k in variables)) or "none"
            raise SuiteError(
                f"template variable '{exc.var}' is not defined for case '{case_id}'",
                path=path,
                line=line,
                field=field,
                hint=f"vars defined for this case: {defined}",
            ) from None
        raise SuiteError(
            f"{exc.message} in the template of case '{case_id}'",
            path=path,
            line=line,
            field=field,
        ) from None


__all__ = ["TemplateError", "render", "render_for_case", "variables_in"]

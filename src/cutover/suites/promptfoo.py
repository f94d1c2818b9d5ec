"""Import a promptfoo config (``promptfooconfig.yaml``) as a cutover Suite.

Read: ``prompts`` (strings, ``file://`` references relative to the config,
``{raw, id, label}`` objects, chat message lists as JSON/YAML), ``tests`` (a
list, ``file://tests.csv`` or ``file://tests.yaml``), ``defaultTest``
(``vars``, ``assert``, ``metadata``, ``options`` merged into every test).
Every test is crossed with every prompt: the case id is the test's
description (else ``t<i>``), plus ``/p<j>`` when there are several prompts.
A var whose value is a list expands the test into one case per value, as
promptfoo does. ``providers`` is ignored: targets are chosen by cutover.

Assertion types are mapped onto cutover's (``contains-json`` becomes
``is-json`` with ``contains: true``, ``similar`` becomes ``similar-to``...);
JavaScript (``javascript`` assertions, ``transform``) is refused: write a
``python`` assertion instead.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cutover.errors import SuiteError
from cutover.records import Message
from cutover.suites._case import ASSERTION_TYPES, Assertion, Case, Suite
from cutover.suites._template import render_for_case
from cutover.suites._yaml import (
    HintedValueError,
    Loc,
    Located,
    closest,
    fields_of,
    format_loc,
    load_yaml,
    read_text,
    validation_error,
)
from cutover.suites.native import ROLES, MessageModel

_SIMPLE: Mapping[str, str] = MappingProxyType(
    {
        "equals": "equals",
        "contains": "contains",
        "icontains": "icontains",
        "not-contains": "not-contains",
        "regex": "regex",
        "starts-with": "starts-with",
        "is-refusal": "is-refusal",
        "not-is-refusal": "not-refusal",
        "llm-rubric": "llm-rubric",
        "python": "python",
        "similar": "similar-to",
    }
)
_SPECIAL = (
    "is-json",
    "contains-json",
    "contains-any",
    "icontains-any",
    "contains-all",
    "icontains-all",
    "not-icontains",
)
SUPPORTED_ASSERTIONS = tuple(sorted({*_SIMPLE, *_SPECIAL, *ASSERTION_TYPES}))
"""promptfoo assertion types the importer understands (cutover's own names too)."""

_CODE_SUFFIXES = (".py", ".js", ".ts", ".mjs", ".cjs")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromptfooAssert(BaseModel):
    """One promptfoo assertion; unknown keys (``provider``, ``metric``) become options."""

    model_config = ConfigDict(extra="allow")

    type: str
    value: Any = None
    weight: float = Field(default=1.0, ge=0)
    threshold: float | None = None


class PromptfooTest(_Strict):
    """One promptfoo test (also the shape of ``defaultTest``)."""

    description: str | None = None
    vars: dict[str, Any] | None = None
    assert_: list[PromptfooAssert] | None = Field(default=None, alias="assert")
    options: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class _Prompt:
    label: str
    text: str | None
    chat: list[Message] | None


@dataclass(frozen=True, slots=True)
class _Where:
    """Where a value was written: its file, a line lookup and its location there."""

    path: str
    line_of: Callable[[Loc], int | None]
    loc: Loc

    def line(self, *more: str | int) -> int | None:
        return self.line_of((*self.loc, *more))

    def error(self, message: str, *more: str | int, hint: str | None = None) -> SuiteError:
        return SuiteError(
            message,
            path=self.path,
            line=self.line(*more),
            field=format_loc((*self.loc, *more)) or None,
            hint=hint,
        )


def _resolve(ref: str, base: Path, where: _Where) -> Path:
    target = ref.removeprefix("file://")
    if any(ch in target for ch in "*?["):
        raise where.error(f"glob '{ref}' is not supported", hint="list each file")
    path = Path(target)
    if not path.is_absolute():
        path = base / path
    return path


def _as_chat(data: Any, where: _Where, path: str | None = None) -> list[Message] | None:
    """``data`` as chat messages if it is a list of ``{role, content}``, else ``None``."""
    if not isinstance(data, list) or not data:
        return None
    if not all(isinstance(m, dict) and "role" in m for m in data):
        return None
    out: list[Message] = []
    for i, raw in enumerate(data):
        try:
            out.append(MessageModel.model_validate(raw).to_message())
        except ValidationError as exc:
            err = validation_error(exc, path=where.path, line_of=lambda _loc: where.line())
            raise SuiteError(
                f"message {i} of chat prompt{f' {path}' if path else ''}: {err.message}",
                path=where.path,
                line=where.line(),
                field=format_loc(where.loc),
                hint=err.hint or "valid roles: " + ", ".join(ROLES),
            ) from None
    return out


def _prompt_text(text: str, label: str, where: _Where) -> _Prompt:
    stripped = text.strip()
    if stripped.startswith("[") and "role" in stripped:
        try:
            parsed = yaml.safe_load(stripped)
        except yaml.YAMLError:
            parsed = None
        chat = _as_chat(parsed, where)
        if chat is not None:
            return _Prompt(label, None, chat)
    return _Prompt(label, text, None)


def _prompts_from_file(ref: str, label: str | None, base: Path, where: _Where) -> list[_Prompt]:
    path = _resolve(ref, base, where)
    name = ref.removeprefix("file://")
    if path.suffix in _CODE_SUFFIXES or re.search(r"\.(py|js|ts):", name):
        raise where.error(
            f"prompt function '{ref}' is not supported",
            hint="use a text, JSON or YAML prompt file",
        )
    try:
        text = read_text(path)
    except SuiteError as exc:
        raise where.error(f"prompt file {path}: {exc.message}") from None
    if path.suffix in (".json", ".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise where.error(f"prompt file {path} is not valid JSON/YAML: {exc}") from None
        chat = _as_chat(data, where, str(path))
        if chat is None:
            if isinstance(data, str):
                return [_Prompt(label or ref, data, None)]
            raise where.error(
                f"prompt file {path} holds neither a chat message list nor a string",
                hint="write [{role: user, content: '...'}]",
            )
        return [_Prompt(label or ref, None, chat)]
    parts = [p for p in re.split(r"(?m)^-{3,}\s*$", text) if p.strip()]
    if len(parts) <= 1:
        return [_prompt_text(text.strip("\n"), label or ref, where)]
    return [
        _prompt_text(p.strip("\n"), f"{label or ref}#{k}", where)
        for k, p in enumerate(parts, start=1)
    ]


def _prompts(raw: Any, base: Path, where: _Where) -> list[_Prompt]:
    if isinstance(raw, str):
        raw = [raw]
    elif isinstance(raw, dict):  # legacy form: {file_or_text: label}
        raw = [{"raw": k, "label": v} for k, v in raw.items()]
    if not isinstance(raw, list) or not raw:
        raise where.error(
            "prompts must be a non-empty list", hint="write prompts: ['Answer: {{question}}']"
        )
    out: list[_Prompt] = []
    for j, item in enumerate(raw):
        at = _Where(where.path, where.line_of, (*where.loc, j))
        default_label = f"p{j + 1}"
        if isinstance(item, list):
            chat = _as_chat(item, at)
            if chat is None:
                raise at.error("a prompt list must be chat messages [{role, content}]")
            out.append(_Prompt(default_label, None, chat))
            continue
        if isinstance(item, dict):
            text = item.get("raw")
            ref = item.get("id") if text is None else text
            label = item.get("label") or item.get("id") or default_label
            if not isinstance(ref, str):
                raise at.error(
                    "a prompt object needs 'raw' (the text) or 'id: file://...'",
                    hint="valid keys: raw, id, label",
                )
            item, label_text = ref, str(label)
        elif isinstance(item, str):
            label_text = item if item.startswith("file://") else default_label
        else:
            raise at.error(f"a prompt must be a string or an object, got {type(item).__name__}")
        if item.startswith("file://"):
            out.extend(_prompts_from_file(item, label_text, base, at))
        else:
            out.append(_prompt_text(item, label_text, at))
    return out


_EXPECTED = re.compile(
    r"^(?P<type>[a-z][a-z0-9-]*)(?:\((?P<th>[0-9.]+)\))?(?::\s?(?P<value>.*))?$", re.S
)
_EXPECTED_ALIASES: Mapping[str, str] = MappingProxyType(
    {"grader": "llm-rubric", "fn": "javascript", "eval": "javascript"}
)


def _expected_assert(text: str) -> dict[str, Any]:
    """promptfoo's ``__expected`` CSV syntax: ``contains: x``, ``similar(0.8): x``, or text."""
    match = _EXPECTED.match(text.strip())
    if match:
        kind = _EXPECTED_ALIASES.get(match["type"], match["type"])
        if kind in SUPPORTED_ASSERTIONS or kind == "javascript":
            out: dict[str, Any] = {"type": kind}
            if match["value"] is not None:
                out["value"] = match["value"]
            if match["th"]:
                out["threshold"] = float(match["th"])
            return out
    return {"type": "equals", "value": text}


def _tests_from_csv(text: str) -> list[tuple[dict[str, Any], int]]:
    """Tests from promptfoo's CSV form, each with the line its record starts on."""
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    out: list[tuple[dict[str, Any], int]] = []
    start = 1
    for row in reader:
        line, start = start, reader.line_num + 1  # a quoted cell may span lines
        if header is None:
            header = [h.strip() for h in row]
            continue
        if not any(cell.strip() for cell in row):
            continue
        test: dict[str, Any] = {"vars": {}}
        for name, cell in zip(header, row, strict=False):
            if name.startswith("__expected"):
                if cell.strip():
                    test.setdefault("assert", []).append(_expected_assert(cell))
            elif name == "__description":
                test["description"] = cell
            elif name.startswith("__metadata:"):
                test.setdefault("metadata", {})[name.split(":", 1)[1]] = cell
            elif name in ("__prefix", "__suffix"):
                test.setdefault("options", {})[name[2:]] = cell
            elif not name.startswith("__"):
                test["vars"][name] = cell
        out.append((test, line))
    return out


def _tests(raw: Any, base: Path, where: _Where) -> list[tuple[Any, _Where]]:
    """Every test with where it was written (the config, a YAML file or a CSV row)."""
    if isinstance(raw, str | dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise where.error("tests must be a list or 'file://tests.csv'")
    out: list[tuple[Any, _Where]] = []
    for i, item in enumerate(raw):
        at = _Where(where.path, where.line_of, (*where.loc, i))
        if not (isinstance(item, str) and item.startswith("file://")):
            out.append((item, at))
            continue
        path = _resolve(item, base, at)
        if path.suffix == ".csv":
            text = read_text(path)
            for test, line in _tests_from_csv(text):
                out.append((test, _Where(str(path), _const(line), ())))
        elif path.suffix in (".yaml", ".yml", ".json"):
            located = load_yaml(path)
            items = located.data if isinstance(located.data, list) else [located.data]
            loc_of: Callable[[int], Loc] = (
                (lambda k: (k,)) if isinstance(located.data, list) else (lambda k: ())
            )
            for k, test in enumerate(items):
                out.append((test, _Where(str(path), located.line_of, loc_of(k))))
        else:
            raise at.error(
                f"unsupported tests file '{item}'", hint="use a .csv, .yaml, .yml or .json file"
            )
    return out


def _const(line: int) -> Callable[[Loc], int | None]:
    return lambda _loc: line


def _validate(raw: Any, where: _Where) -> PromptfooTest:
    if not isinstance(raw, dict):
        raise where.error(f"a test must be a mapping, got {type(raw).__name__}")
    try:
        return PromptfooTest.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(
            exc,
            path=where.path,
            line_of=where.line_of,
            prefix=where.loc,
            fields_at=fields_of(PromptfooTest),
        ) from None


def _file_value(value: Any, base: Path) -> Any:
    if isinstance(value, str) and value.startswith("file://"):
        path = Path(value.removeprefix("file://"))
        return "file://" + str(path if path.is_absolute() else (base / path))
    return value


def _values(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    raise HintedValueError("value must be a list of strings", hint="write value: [a, b]")


def map_assertion(raw: PromptfooAssert, base: Path) -> list[Assertion]:
    """One promptfoo assertion as cutover assertions; raises :class:`HintedValueError`."""
    kind = raw.type
    options = dict(raw.model_extra or {})
    if kind == "javascript":
        raise HintedValueError(
            "javascript assertions are not supported, use python",
            hint="write {type: python, value: 'output.startswith(...)'}",
        )
    if "transform" in options:
        raise HintedValueError(
            "'transform' is JavaScript and not supported", hint="use a python assertion"
        )
    value = _file_value(raw.value, base)

    def one(type_: str, val: Any = value, **extra: Any) -> Assertion:
        return Assertion(
            type=type_,
            value=val,
            weight=raw.weight,
            threshold=raw.threshold,
            options={**options, **extra},
        )

    if kind in _SIMPLE:
        return [one(_SIMPLE[kind])]
    if kind in ("is-json", "contains-json"):
        extra = {"contains": True} if kind == "contains-json" else {}
        return [one("json-schema" if value is not None else "is-json", **extra)]
    if kind in ("contains-any", "icontains-any"):
        flags = "(?i)" if kind.startswith("i") else ""
        pattern = flags + "(?:" + "|".join(re.escape(v) for v in _values(value)) + ")"
        return [one("regex", pattern)]
    if kind in ("contains-all", "icontains-all"):
        return [one(kind.removesuffix("-all"), v) for v in _values(value)]
    if kind == "not-icontains":
        return [one("regex", r"(?i)^(?![\s\S]*" + re.escape(str(value)) + ")")]
    if kind in ASSERTION_TYPES:
        return [one(kind)]
    raise HintedValueError(
        f"unsupported assertion type '{kind}'{closest(kind, SUPPORTED_ASSERTIONS)}",
        hint="supported: " + ", ".join(SUPPORTED_ASSERTIONS),
    )


def _asserts(test: PromptfooTest, where: _Where, base: Path) -> list[Assertion]:
    out: list[Assertion] = []
    for k, raw in enumerate(test.assert_ or []):
        try:
            out.extend(map_assertion(raw, base))
        except HintedValueError as exc:
            raise where.error(exc.message, "assert", k, "type", hint=exc.hint) from None
    return out


def _load_vars(variables: dict[str, Any], base: Path, where: _Where) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in variables.items():
        if isinstance(value, str) and value.startswith("file://"):
            path = _resolve(value, base, where)
            text = read_text(path)
            value = yaml.safe_load(text) if path.suffix in (".json", ".yaml", ".yml") else text
        out[str(name)] = value
    return out


def _expand(variables: dict[str, Any]) -> list[dict[str, Any]]:
    """A list-valued var makes one set of vars per value (the cartesian product)."""
    listed = [k for k, v in variables.items() if isinstance(v, list)]
    if not listed:
        return [variables]
    combos = itertools.product(*(variables[k] for k in listed))
    return [{**variables, **dict(zip(listed, combo, strict=True))} for combo in combos]


def _stringify_tag(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) or value is None:
        return "" if value is None else str(value)
    return orjson.dumps(value).decode()


def _render_prompt(
    prompt: _Prompt, options: Mapping[str, Any], render: Callable[[str], str]
) -> list[Message]:
    prefix = str(options.get("prefix") or "")
    suffix = str(options.get("suffix") or "")
    if prompt.text is not None:
        return [{"role": "user", "content": prefix + render(prompt.text) + suffix}]
    messages = [
        {**m, "content": render(m["content"])} if isinstance(m.get("content"), str) else dict(m)
        for m in prompt.chat or []
    ]
    if prefix or suffix:
        for message in reversed(messages):
            if message.get("role") == "user" and isinstance(message.get("content"), str):
                message["content"] = prefix + message["content"] + suffix
                break
    return messages


def _renderer(
    variables: Mapping[str, Any], case_id: str, where: _Where, line: int
) -> Callable[[str], str]:
    def render(template: str) -> str:
        return render_for_case(
            template,
            variables,
            case_id=case_id,
            path=where.path,
            line=line,
            field=format_loc((*where.loc, "vars")),
        )

    return render


def suite_from_promptfoo(located: Located) -> Suite:
    """Build a Suite from a parsed promptfoo config."""
    data = located.data
    path = located.path
    base = Path(path).parent
    root = _Where(path, located.line_of, ())
    if not isinstance(data, dict):
        raise root.error("a promptfoo config must be a mapping with 'prompts' and 'tests'")
    for key in ("prompts", "tests"):
        if key not in data:
            raise root.error(f"a promptfoo config needs '{key}'", hint="see promptfoo docs")
    if "scenarios" in data:
        raise root.error("'scenarios' are not supported", "scenarios", hint="use tests")
    prompts = _prompts(data["prompts"], base, _Where(path, located.line_of, ("prompts",)))
    default = PromptfooTest()
    default_where = _Where(path, located.line_of, ("defaultTest",))
    raw_default = data.get("defaultTest")
    if isinstance(raw_default, str) and raw_default.startswith("file://"):
        default_file = load_yaml(_resolve(raw_default, base, default_where))
        default_where = _Where(default_file.path, default_file.line_of, ())
        raw_default = default_file.data
    if raw_default is not None:
        default = _validate(raw_default, default_where)
    default_asserts = _asserts(default, default_where, base)
    default_vars = _load_vars(default.vars or {}, base, default_where)
    if "transform" in (default.options or {}):
        raise default_where.error("'transform' is JavaScript and not supported", "options")

    cases: list[Case] = []
    used: dict[str, int] = {}
    tests = _tests(data["tests"], base, _Where(path, located.line_of, ("tests",)))
    for i, (raw, where) in enumerate(tests, start=1):
        test = _validate(raw, where)
        options = {**(default.options or {}), **(test.options or {})}
        if "transform" in (test.options or {}):
            raise where.error("'transform' is JavaScript and not supported", "options")
        asserts = default_asserts + _asserts(test, where, base)
        tags = {
            str(k): _stringify_tag(v)
            for k, v in {**(default.metadata or {}), **(test.metadata or {})}.items()
        }
        expected = next(
            (a.value for a in asserts if a.type == "equals" and isinstance(a.value, str)), None
        )
        merged = {**default_vars, **_load_vars(test.vars or {}, base, where)}
        expansions = _expand(merged)
        line = where.line() or 0
        for v, variables in enumerate(expansions, start=1):
            for j, prompt in enumerate(prompts, start=1):
                case_id = test.description or f"t{i}"
                if len(expansions) > 1:
                    case_id += f"/v{v}"
                if len(prompts) > 1:
                    case_id += f"/p{j}"
                used[case_id] = used.get(case_id, 0) + 1
                if used[case_id] > 1:
                    case_id += f"#{used[case_id]}"

                render = _renderer(variables, case_id, where, line)
                case_tags = dict(tags)
                if len(prompts) > 1:
                    case_tags.setdefault("prompt", prompt.label)
                cases.append(
                    Case(
                        id=case_id,
                        messages=_render_prompt(prompt, options, render),
                        tags=case_tags,
                        expected=expected,
                        asserts=list(asserts),
                        vars=dict(variables),
                        source=f"{where.path}:{line}",
                    )
                )
    if not cases:
        raise root.error("the suite has no cases", "tests", hint="add at least one test")
    return Suite(name=Path(path).stem, cases=cases, path=path)


def load_promptfoo(path: Path, text: str | None = None) -> Suite:
    """Load a promptfoo config file as a Suite."""
    return suite_from_promptfoo(load_yaml(path, text))


__all__ = [
    "SUPPORTED_ASSERTIONS",
    "PromptfooAssert",
    "PromptfooTest",
    "load_promptfoo",
    "map_assertion",
    "suite_from_promptfoo",
]

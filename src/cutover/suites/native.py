"""The cutover suite format: YAML (a suite) or JSONL (one case per line).

YAML::

    name: support-bot                 # optional, default: the file's stem
    system: "You are a support agent."  # prepended to every case without one
    prompt: "Answer: {{question}}"    # shared template for cases with only vars
    defaults: {tags: {...}, params: {...}, assert: [...], critical: false, vars: {...}}
    targets: {old: "openai:gpt-4o-mini", new: {target: "sim:fast-v2"}}
    gates: [{...}]                    # kept raw for the verdict pipeline
    cases:
      - id: refund-1
        messages: [{role: user, content: "..."}]  # or prompt: "..." + vars, or input: "..."
        tags: {use_case: billing}     # or [billing, "tenant:acme", "tenant=acme"]
        critical: true
        expected: "..."
        assert: [{type: contains, value: refund}]  # "asserts" works too

Every error names the file, the line and the field (``cases[3].tags``) and
says what would be valid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cutover.errors import SuiteError, TargetSpecError
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
    iter_jsonl,
    load_yaml,
    validation_error,
)
from cutover.targets import Target, targets_from_mapping

ROLES = ("system", "user", "assistant", "tool")

_TAG_HINT = "write tags as a mapping {use_case: billing} or a list [billing, 'tenant:acme']"


def normalize_tags(value: Any) -> dict[str, str]:
    """Tags as ``{name: value}`` strings, from a mapping or a list of tags.

    A list item ``tenant:acme`` or ``tenant=acme`` is a name and a value; a
    bare ``x`` is ``{"x": "true"}``. Values are stringified (booleans as
    ``true``/``false``, null as ``""``). Raises :class:`HintedValueError`.
    """
    if value is None:
        return {}
    if isinstance(value, str):
        value = [value]
    if isinstance(value, Mapping):
        return {str(k): _tag_value(k, v) for k, v in value.items()}
    if isinstance(value, list):
        out: dict[str, str] = {}
        for item in value:
            if not isinstance(item, str | int | float) or isinstance(item, bool):
                raise HintedValueError(
                    f"a tag in a list must be a string, got {type(item).__name__}", hint=_TAG_HINT
                )
            text = str(item).strip()
            cuts = [i for i in (text.find(":"), text.find("=")) if i > 0]
            if cuts:
                cut = min(cuts)
                out[text[:cut].strip()] = text[cut + 1 :].strip()
            elif text:
                out[text] = "true"
        return out
    raise HintedValueError(
        f"tags must be a mapping or a list, got {type(value).__name__}", hint=_TAG_HINT
    )


def _tag_value(name: Any, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise HintedValueError(
        f"tag '{name}' must have a string, number or boolean value, got {type(value).__name__}",
        hint=_TAG_HINT,
    )


def _scalar_to_str(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageModel(_Strict):
    """One chat message in the OpenAI format."""

    role: str
    content: Any = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    @field_validator("role")
    @classmethod
    def _known_role(cls, value: str) -> str:
        if value not in ROLES:
            raise HintedValueError(
                f"unknown role '{value}'{closest(value, ROLES)}",
                hint="valid roles: " + ", ".join(ROLES),
            )
        return value

    @field_validator("content")
    @classmethod
    def _content_shape(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(p, dict) for p in value):
            return value
        raise HintedValueError(
            f"content must be a string or a list of parts, got {type(value).__name__}",
            hint="write content: 'text' or content: [{type: text, text: '...'}]",
        )

    @model_validator(mode="after")
    def _has_content(self) -> MessageModel:
        if self.content is None and not self.tool_calls:
            raise HintedValueError(
                "a message needs 'content'",
                hint="only an assistant message with 'tool_calls' may omit content",
            )
        return self

    def to_message(self) -> Message:
        out: Message = {"role": self.role, "content": self.content}
        for key in ("tool_calls", "tool_call_id", "name"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


def check_messages(value: list[MessageModel] | None) -> list[MessageModel] | None:
    if value is not None and not value:
        raise HintedValueError(
            "messages must not be empty", hint="give at least one {role: user, content: ...}"
        )
    return value


class AssertionModel(BaseModel):
    """One ``assert`` entry; keys other than type/value/weight/threshold are options."""

    model_config = ConfigDict(extra="allow")

    type: str
    value: Any = None
    weight: float = Field(default=1.0, ge=0)
    threshold: float | None = None
    options: dict[str, Any] | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in ASSERTION_TYPES:
            raise HintedValueError(
                f"unknown assertion type '{value}'{closest(value, ASSERTION_TYPES)}",
                hint="valid types: " + ", ".join(ASSERTION_TYPES),
            )
        return value

    def to_assertion(self) -> Assertion:
        options = dict(self.options or {})
        options.update(self.model_extra or {})
        return Assertion(
            type=self.type,
            value=self.value,
            weight=self.weight,
            threshold=self.threshold,
            options=options,
        )


class DefaultsModel(_Strict):
    """Merged into every case: the case wins, assertion lists are concatenated."""

    tags: dict[str, str] | None = None
    params: dict[str, Any] | None = None
    vars: dict[str, Any] | None = None
    critical: bool | None = None
    assert_: list[AssertionModel] | None = Field(default=None, alias="assert")
    asserts: list[AssertionModel] | None = None

    _tags = field_validator("tags", mode="before")(normalize_tags)

    def all_asserts(self) -> list[Assertion]:
        return [a.to_assertion() for a in (self.assert_ or []) + (self.asserts or [])]


class CaseModel(_Strict):
    """One case as written in a suite file."""

    id: str | None = None
    description: str | None = None
    messages: list[MessageModel] | None = None
    prompt: str | None = None
    input: str | None = None
    vars: dict[str, Any] | None = None
    tags: dict[str, str] | None = None
    critical: bool | None = None
    expected: str | None = None
    assert_: list[AssertionModel] | None = Field(default=None, alias="assert")
    asserts: list[AssertionModel] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    params: dict[str, Any] | None = None

    _tags = field_validator("tags", mode="before")(normalize_tags)
    _scalars = field_validator("id", "expected", mode="before")(_scalar_to_str)
    _messages = field_validator("messages")(check_messages)

    def all_asserts(self) -> list[Assertion]:
        return [a.to_assertion() for a in (self.assert_ or []) + (self.asserts or [])]


class SuiteModel(_Strict):
    """A whole cutover YAML suite."""

    name: str | None = None
    description: str | None = None
    system: str | None = None
    prompt: str | None = None
    defaults: DefaultsModel | None = None
    targets: dict[str, Any] | None = None
    gates: list[dict[str, Any]] | None = None
    cases: list[CaseModel]


_INPUT_HINT = "give messages: [...], prompt: '...' (with vars) or input: '...'"


class CaseBuilder:
    """Turns validated case models into Cases: defaults, system, templates, ids."""

    def __init__(
        self,
        path: str,
        *,
        system: str | None = None,
        prompt: str | None = None,
        defaults: DefaultsModel | None = None,
    ) -> None:
        self.path = path
        self.system = system
        self.prompt = prompt
        self.defaults = defaults or DefaultsModel()
        self.seen: dict[str, int] = {}

    def build(self, model: CaseModel, *, position: int, line: int, loc: Loc) -> Case:
        """``position`` is 1-based; ``loc`` is where the case sits (for field names)."""
        where = format_loc(loc)
        case_id = model.id if model.id is not None else f"case-{position}"
        id_field = format_loc((*loc, "id"))
        if not case_id.strip():
            raise SuiteError("case id must not be empty", path=self.path, line=line, field=id_field)
        if case_id in self.seen:
            raise SuiteError(
                f"duplicate case id '{case_id}' (first used on line {self.seen[case_id]})",
                path=self.path,
                line=line,
                field=id_field,
                hint="case ids must be unique; a case without an id is named case-<position>",
            )
        self.seen[case_id] = line
        variables = {**(self.defaults.vars or {}), **(model.vars or {})}

        def render(template: str, field_loc: Loc) -> str:
            return render_for_case(
                template,
                variables,
                case_id=case_id,
                path=self.path,
                line=line,
                field=format_loc(field_loc),
            )

        messages = self._messages(model, loc, where, line, variables, render)
        if self.system is not None and not any(m.get("role") == "system" for m in messages):
            system = render(self.system, ("system",)) if variables else self.system
            messages.insert(0, {"role": "system", "content": system})
        tags = {**(self.defaults.tags or {}), **(model.tags or {})}
        critical = model.critical if model.critical is not None else self.defaults.critical
        return Case(
            id=case_id,
            messages=messages,
            tags=tags,
            critical=bool(critical),
            expected=model.expected,
            asserts=self.defaults.all_asserts() + model.all_asserts(),
            tools=model.tools,
            tool_choice=model.tool_choice,
            response_format=model.response_format,
            params={**(self.defaults.params or {}), **(model.params or {})},
            vars=variables,
            source=f"{self.path}:{line}",
        )

    def _messages(
        self,
        model: CaseModel,
        loc: Loc,
        where: str,
        line: int,
        variables: dict[str, Any],
        render: Callable[[str, Loc], str],
    ) -> list[Message]:
        given = [k for k in ("messages", "prompt", "input") if getattr(model, k) is not None]
        if len(given) > 1:
            raise SuiteError(
                f"a case takes one of messages, prompt or input, got {' and '.join(given)}",
                path=self.path,
                line=line,
                field=where or None,
                hint=_INPUT_HINT,
            )
        if model.messages is not None:
            messages = [m.to_message() for m in model.messages]
            if variables:
                for i, message in enumerate(messages):
                    content_loc = (*loc, "messages", i, "content")
                    if isinstance(message["content"], str):
                        message["content"] = render(message["content"], content_loc)
                    elif isinstance(message["content"], list):
                        message["content"] = [
                            {**part, "text": render(part["text"], content_loc)}
                            if isinstance(part.get("text"), str)
                            else part
                            for part in message["content"]
                        ]
            return messages
        if model.prompt is not None:
            return [{"role": "user", "content": render(model.prompt, (*loc, "prompt"))}]
        if model.input is not None:
            return [{"role": "user", "content": model.input}]
        if self.prompt is not None and model.vars:
            return [{"role": "user", "content": render(self.prompt, ("prompt",))}]
        hint = _INPUT_HINT
        if self.prompt is not None:
            hint += ", or vars for the suite's prompt"
        raise SuiteError(
            "case has no input", path=self.path, line=line, field=where or None, hint=hint
        )


def _targets(raw: dict[str, Any], located: Located) -> dict[str, Target]:
    try:
        return targets_from_mapping(raw, path=located.path)
    except TargetSpecError as exc:
        parts = (exc.field or "targets").split(".")
        loc: Loc = tuple(parts[:2])
        raise SuiteError(
            exc.message,
            path=located.path,
            line=located.line_of(loc),
            field=exc.field,
            hint=exc.hint,
        ) from None


def suite_from_yaml(located: Located) -> Suite:
    """Build a Suite from a parsed cutover YAML document (a mapping, or a list of cases)."""
    bare_list = isinstance(located.data, list)
    data = {"cases": located.data} if bare_list else located.data
    if not isinstance(data, dict):
        raise SuiteError(
            "a suite must be a mapping with 'cases' (or a list of cases)",
            path=located.path,
            line=located.line_of(()),
            hint="write 'cases:' followed by a list of cases",
        )

    def line_of(loc: Loc) -> int | None:
        return located.line_of(loc[1:] if bare_list else loc)

    try:
        model = SuiteModel.model_validate(data)
    except ValidationError as exc:
        raise validation_error(
            exc, path=located.path, line_of=line_of, fields_at=fields_of(SuiteModel)
        ) from None
    if not model.cases:
        raise SuiteError(
            "the suite has no cases",
            path=located.path,
            line=line_of(("cases",)),
            field="cases",
            hint="add at least one case with messages, prompt or input",
        )
    builder = CaseBuilder(
        located.path, system=model.system, prompt=model.prompt, defaults=model.defaults
    )
    cases = [
        builder.build(case, position=i + 1, line=line_of(("cases", i)) or 0, loc=("cases", i))
        for i, case in enumerate(model.cases)
    ]
    return Suite(
        name=model.name or Path(located.path).stem,
        cases=cases,
        path=located.path,
        targets=_targets(model.targets, located) if model.targets else {},
        gates=list(model.gates or []),
    )


def load_native_yaml(path: Path, text: str | None = None) -> Suite:
    """Load a cutover YAML suite."""
    return suite_from_yaml(load_yaml(path, text))


def at_line(line: int) -> Callable[[Loc], int | None]:
    """A ``line_of`` for a JSONL record: every field is on the record's line."""
    return lambda _loc: line


def load_native_jsonl(path: Path, text: str | None = None) -> Suite:
    """Load a cutover JSONL suite: one case object per line (blank lines skipped)."""
    builder = CaseBuilder(str(path))
    cases: list[Case] = []
    for record in iter_jsonl(path, text):
        if not isinstance(record.data, dict):
            raise SuiteError(
                f"each line must be a JSON object (a case), got {type(record.data).__name__}",
                path=str(path),
                line=record.line,
            )
        try:
            model = CaseModel.model_validate(record.data)
        except ValidationError as exc:
            raise validation_error(
                exc,
                path=str(path),
                line_of=at_line(record.line),
                fields_at=fields_of(CaseModel),
            ) from None
        cases.append(builder.build(model, position=len(cases) + 1, line=record.line, loc=()))
    if not cases:
        raise SuiteError(
            "the suite has no cases",
            path=str(path),
            hint="write one JSON case object per line",
        )
    return Suite(name=path.stem, cases=cases, path=str(path))


__all__ = [
    "ROLES",
    "AssertionModel",
    "CaseBuilder",
    "CaseModel",
    "DefaultsModel",
    "MessageModel",
    "SuiteModel",
    "load_native_jsonl",
    "load_native_yaml",
    "normalize_tags",
    "suite_from_yaml",
]

"""Recorded outputs: Pairs from two JSONL files, without calling anything.

Each file holds what one model answered, one JSON object per line::

    {"id": "refund-1", "input": "Where is my refund?", "output": "...",
     "tags": {"use_case": "billing"}, "latency_ms": 812, "ttft_ms": 240,
     "usage": {"input_tokens": 31, "output_tokens": 88}, "cost_usd": 0.0004,
     "error": null, "finish_reason": "stop", "model": "gpt-4o-mini"}

``input`` is a string (one user message) or a list of chat messages; it may be
left out when ``id`` is given. A line without ``id`` is keyed by the hash of
its input (``hash:<input_hash>``); the same input recorded again without an id
becomes ``hash:<h>#2``, ``#3``... so repeated traffic pairs up in order.
``usage`` may use OpenAI's names (``prompt_tokens``, ``completion_tokens``);
``tool_calls`` may be ``{name, arguments}`` or OpenAI's ``{function: {...}}``;
an output or arguments that is not a string is kept as its JSON text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cutover.errors import RecordedOutputsError
from cutover.records import Message, Observation, Pair, ToolCall
from cutover.suites._case import Case, input_hash
from cutover.suites._yaml import iter_jsonl, validation_error
from cutover.suites.native import at_line, normalize_tags

RECORDED_ERROR_CLASS = "recorded_error"
"""The ``error_class`` of a recorded error that does not name its own."""

_LINE_HINT = 'each line is {"id": ..., "input": ..., "output": "..."} (id or input required)'


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _scalar_id(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


class _Usage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input_tokens: int | None = Field(default=None, ge=0)
    output_tokens: int | None = Field(default=None, ge=0)
    prompt_tokens: int | None = Field(default=None, ge=0)
    completion_tokens: int | None = Field(default=None, ge=0)


class _ToolCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    name: str | None = None
    arguments: Any = None
    function: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _has_name(self) -> _ToolCall:
        name = self.name or (self.function or {}).get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("a tool call needs a 'name' (or 'function.name')")
        return self

    def to_tool_call(self) -> ToolCall:
        fn = self.function or {}
        name = str(self.name or fn.get("name"))
        arguments = self.arguments if self.arguments is not None else fn.get("arguments")
        return ToolCall(
            id=self.id or "",
            name=name,
            arguments="{}" if arguments is None else _json_text(arguments),
        )


class _Line(BaseModel):
    """One recorded line as written; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    input: Any = None
    output: Any = None
    tags: dict[str, str] | None = None
    latency_ms: float | None = Field(default=None, ge=0)
    ttft_ms: float | None = Field(default=None, ge=0)
    usage: _Usage | None = None
    input_tokens: int | None = Field(default=None, ge=0)
    output_tokens: int | None = Field(default=None, ge=0)
    error: Any = None
    error_class: str | None = None
    cost_usd: float | None = Field(default=None, ge=0)
    tool_calls: list[_ToolCall] | None = None
    finish_reason: str | None = None
    model: str | None = None
    grades: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    expected: Any = None

    _id = field_validator("id", mode="before")(_scalar_id)
    _tags = field_validator("tags", mode="before")(normalize_tags)

    @field_validator("input")
    @classmethod
    def _input_shape(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if (
            isinstance(value, list)
            and value
            and all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in value)
        ):
            return value
        raise ValueError(
            "input must be a string or a non-empty list of chat messages {role, content}"
        )


@dataclass(slots=True)
class RecordedLine:
    """One recorded answer: where it is, what it answered, how long it took."""

    key: str
    case_id: str | None
    input: list[Message] | None
    tags: dict[str, str]
    line: int
    output: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    latency_ms: float | None = None
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    error: str | None = None
    error_class: str | None = None
    finish_reason: str | None = None
    model: str | None = None
    grades: dict[str, Any] = field(default_factory=dict)
    tools: list[dict[str, Any]] | None = None
    expected: str | None = None

    def observation(self, target_label: str) -> Observation:
        """The Observation this line records, attributed to ``target_label``."""
        error_class = self.error_class
        if self.error is not None and error_class is None:
            error_class = RECORDED_ERROR_CLASS
        return Observation(
            target=target_label,
            output=self.output,
            tool_calls=self.tool_calls,
            finish_reason=self.finish_reason,
            error=self.error,
            error_class=error_class,
            latency_ms=self.latency_ms,
            ttft_ms=self.ttft_ms,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_usd=self.cost_usd,
            model=self.model,
            grades=dict(self.grades),
        )


@dataclass(slots=True)
class RecordedOutputs:
    """One recorded-outputs file: its lines by key (the id, else ``hash:<input hash>``)."""

    path: str
    lines: dict[str, RecordedLine]
    _by_hash: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for key, line in self.lines.items():
            if line.input is not None:
                self._by_hash.setdefault(input_hash(line.input), key)

    def __len__(self) -> int:
        return len(self.lines)

    def __iter__(self) -> Iterator[RecordedLine]:
        return iter(self.lines.values())

    def get(self, case_id: str | None, input: Any) -> RecordedLine | None:
        """The line recorded for ``case_id``, else the first whose input hashes like ``input``."""
        if case_id is not None and case_id in self.lines:
            return self.lines[case_id]
        if input is None:
            return None
        key = self._by_hash.get(input_hash(input))
        return self.lines[key] if key is not None else None


def _parse_line(model: _Line, *, key: str, number: int) -> RecordedLine:
    messages: list[Message] | None
    if isinstance(model.input, str):
        messages = [{"role": "user", "content": model.input}]
    else:
        messages = model.input
    usage = model.usage or _Usage()
    input_tokens = usage.input_tokens if usage.input_tokens is not None else usage.prompt_tokens
    output_tokens = (
        usage.output_tokens if usage.output_tokens is not None else usage.completion_tokens
    )
    return RecordedLine(
        key=key,
        case_id=model.id,
        input=messages,
        tags=dict(model.tags or {}),
        line=number,
        output=None if model.output is None else _json_text(model.output),
        tool_calls=tuple(tc.to_tool_call() for tc in model.tool_calls or ()),
        latency_ms=model.latency_ms,
        ttft_ms=model.ttft_ms,
        input_tokens=input_tokens if input_tokens is not None else model.input_tokens,
        output_tokens=output_tokens if output_tokens is not None else model.output_tokens,
        cost_usd=model.cost_usd,
        error=None if model.error is None else _json_text(model.error),
        error_class=model.error_class,
        finish_reason=model.finish_reason,
        model=model.model,
        grades=dict(model.grades or {}),
        tools=model.tools,
        expected=None if model.expected is None else _json_text(model.expected),
    )


def load_recorded(path: str | Path) -> RecordedOutputs:
    """Read a recorded-outputs JSONL file; raise :class:`RecordedOutputsError` with the line."""
    p = Path(path)
    where = str(p)
    lines: dict[str, RecordedLine] = {}
    for record in iter_jsonl(p, error=RecordedOutputsError):
        if not isinstance(record.data, dict):
            raise RecordedOutputsError(
                f"each line must be a JSON object, got {type(record.data).__name__}",
                path=where,
                line=record.line,
                hint=_LINE_HINT,
            )
        try:
            model = _Line.model_validate(record.data)
        except ValidationError as exc:
            raise validation_error(
                exc, path=where, line_of=at_line(record.line), error=RecordedOutputsError
            ) from None
        if model.id is None and model.input is None:
            raise RecordedOutputsError(
                "a line needs an 'id' or an 'input'",
                path=where,
                line=record.line,
                hint=_LINE_HINT,
            )
        if model.id is not None:
            key = model.id
            if key in lines:
                raise RecordedOutputsError(
                    f"duplicate id '{key}' (first on line {lines[key].line})",
                    path=where,
                    line=record.line,
                    field="id",
                    hint="ids must be unique within one file",
                )
        else:
            key = base = f"hash:{input_hash(model.input)}"
            repeat = 1
            while key in lines:
                repeat += 1
                key = f"{base}#{repeat}"
        lines[key] = _parse_line(model, key=key, number=record.line)
    if not lines:
        raise RecordedOutputsError("no recorded outputs in the file", path=where, hint=_LINE_HINT)
    return RecordedOutputs(path=where, lines=lines)


def cases_from_recorded(
    old: RecordedOutputs, new: RecordedOutputs
) -> tuple[list[Case], list[str], list[str]]:
    """Cases for the union of both files' keys (old's order, then new-only keys).

    Returns ``(cases, only_old, only_new)``: the keys recorded on one side only.
    A case's messages are the recorded input (old's first); tags are merged,
    old's winning.
    """
    keys = list(old.lines) + [k for k in new.lines if k not in old.lines]
    cases: list[Case] = []
    for key in keys:
        old_line = old.lines.get(key)
        new_line = new.lines.get(key)
        sides = [s for s in (old_line, new_line) if s is not None]
        messages = next((s.input for s in sides if s.input is not None), None)
        tools = next((s.tools for s in sides if s.tools), None)
        expected = next((s.expected for s in sides if s.expected is not None), None)
        tags = {**(new_line.tags if new_line else {}), **(old_line.tags if old_line else {})}
        first = sides[0]
        source = old.path if old_line is not None else new.path
        cases.append(
            Case(
                id=key,
                messages=list(messages or []),
                tags=tags,
                tools=tools,
                expected=expected,
                source=f"{source}:{first.line}",
            )
        )
    only_old = [k for k in old.lines if k not in new.lines]
    only_new = [k for k in new.lines if k not in old.lines]
    return cases, only_old, only_new


def pairs_from_recorded(
    old: RecordedOutputs,
    new: RecordedOutputs,
    *,
    old_label: str = "old",
    new_label: str = "new",
) -> list[Pair]:
    """One Pair per case of :func:`cases_from_recorded`; a missing side is ``None``."""
    cases, _, _ = cases_from_recorded(old, new)
    pairs: list[Pair] = []
    for case in cases:
        old_line = old.lines.get(case.id)
        new_line = new.lines.get(case.id)
        pairs.append(
            Pair(
                case_id=case.id,
                old=old_line.observation(old_label) if old_line else None,
                new=new_line.observation(new_label) if new_line else None,
                tags=case.tags,
                input=case.messages or None,
            )
        )
    return pairs


__all__ = [
    "RECORDED_ERROR_CLASS",
    "RecordedLine",
    "RecordedOutputs",
    "cases_from_recorded",
    "load_recorded",
    "pairs_from_recorded",
]

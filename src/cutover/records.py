"""The records every part of cutover exchanges: requests, Observations, Pairs.

A *Pair* is one input with the baseline ("old") target's Observation and the
candidate ("new") target's Observation, plus the tags that place it in a
slice. Every source of evidence (the eval runner, recorded outputs, the
gateway's shadow traffic) produces Pairs, and one analysis pipeline judges
them all.

Messages, tools and tool calls are held in the OpenAI chat format, the
lingua franca of suites; the Anthropic provider translates at its edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cutover.suites._case import Case

Message = dict[str, Any]
"""One chat message in the OpenAI format: ``{"role": ..., "content": ...}``."""

Tags = Mapping[str, str]
"""The slice of a case: ``{"use_case": "billing", "tenant": "acme"}``."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the model made; ``arguments`` is the JSON text it wrote."""

    id: str
    name: str
    arguments: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass(slots=True)
class ModelRequest:
    """What a provider is asked to do for one case (one repeat)."""

    messages: list[Message]
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    case_id: str | None = None
    tags: Tags = field(default_factory=dict)
    repeat: int = 0
    expected: str | None = None
    """The case's expected output, if any. Only the ``sim`` provider reads it."""


@dataclass(slots=True)
class Observation:
    """What one target did for one input: output or error, timing, tokens, cost.

    ``error_class`` is a stable short name (``rate_limited``, ``server_error``,
    ``timeout``, ``connection_error``, ``malformed_response``, ``auth_error``,
    ``request_error``, ``unexpected_error`` for a provider bug, ``recorded_error``
    for an error read from recorded outputs); ``error`` is the human message. A failed call may still
    carry ``output`` (the part of a stream that arrived before it broke).
    ``simulated`` is true for anything the ``sim`` provider made.
    """

    target: str
    output: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    error: str | None = None
    error_class: str | None = None
    status_code: int | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    model: str | None = None
    attempts: int = 1
    cached: bool = False
    simulated: bool = False
    grades: dict[str, Any] = field(default_factory=dict)
    """External grades recorded with the output (e.g. ``{"passed": true}`` from
    another grader, or a judge's ``{"judge_preference": 1.7}``)."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        # Field by field: dataclasses.asdict deep-copies and is ~8x slower.
        data = {name: getattr(self, name) for name in _OBSERVATION_FIELDS}
        data["tool_calls"] = [tc.to_dict() for tc in self.tool_calls]
        data["grades"] = dict(self.grades)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Observation:
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["grades"] = dict(data.get("grades") or {})
        kwargs["tool_calls"] = tuple(
            ToolCall(id=str(tc.get("id", "")), name=str(tc["name"]), arguments=str(tc["arguments"]))
            for tc in data.get("tool_calls") or ()
        )
        return cls(**kwargs)


_OBSERVATION_FIELDS = tuple(Observation.__dataclass_fields__)


@dataclass(slots=True)
class Pair:
    """One input judged twice: the baseline's and the candidate's Observation.

    Either side may be ``None`` when recorded outputs do not cover the case on
    both sides; the analysis reports such cases as unpaired.
    """

    case_id: str
    old: Observation | None
    new: Observation | None
    tags: Tags = field(default_factory=dict)
    repeat: int = 0
    input: list[Message] | None = None
    critical: bool = False
    case: Case | None = None
    """The whole case (expected output, assertions, tools) when the source has it."""


__all__ = ["Message", "ModelRequest", "Observation", "Pair", "Tags", "ToolCall"]

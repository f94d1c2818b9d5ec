"""What every check is: a pure function of one Observation (and its case)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from cutover.records import Observation

CheckValue = bool | int | float | str | None
"""``None`` means the check does not apply (e.g. JSON checks on prose)."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's verdict on one Observation: its name, a value and a short reason."""

    name: str
    value: CheckValue
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What a check may know about the case besides the output."""

    tools: list[dict[str, Any]] | None = None
    """The tools declared in the request (OpenAI format)."""
    response_format: dict[str, Any] | None = None
    json_schema: dict[str, Any] | None = None
    """A schema the output must follow (from response_format or a json-schema assertion)."""
    expects_json: bool = False
    """True when the case asks for JSON (response_format, an is-json/json-schema assertion,
    or an expected output that is JSON)."""
    expected: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Check(Protocol):
    """A check: ``name`` and a pure call on one Observation."""

    name: str

    def __call__(self, obs: Observation, ctx: CheckContext) -> CheckResult: ...

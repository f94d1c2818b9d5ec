"""Cases and suites: what the loaders produce and the runner consumes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from cutover.records import Message, ModelRequest
from cutover.targets import Target

ASSERTION_TYPES = (
    "equals",
    "contains",
    "icontains",
    "not-contains",
    "regex",
    "starts-with",
    "is-json",
    "json-schema",
    "is-refusal",
    "not-refusal",
    "similar-to",
    "llm-rubric",
    "pairwise",
    "python",
    "tool-call",
    "max-length",
)
"""Assertion types a suite may declare (they are evaluated by the verdict pipeline)."""


@dataclass(frozen=True, slots=True)
class Assertion:
    """One ``assert`` entry of a case: a type, a value and its options."""

    type: str
    value: Any = None
    weight: float = 1.0
    threshold: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.value is not None:
            out["value"] = self.value
        if self.weight != 1.0:
            out["weight"] = self.weight
        if self.threshold is not None:
            out["threshold"] = self.threshold
        out.update(self.options)
        return out


@dataclass(slots=True)
class Case:
    """One input of a suite, with its slice tags and what a good answer is."""

    id: str
    messages: list[Message]
    tags: dict[str, str] = field(default_factory=dict)
    critical: bool = False
    expected: str | None = None
    asserts: list[Assertion] = field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    """Where the case came from (``file:line``), for error messages."""

    def input_payload(self) -> dict[str, Any]:
        """What is sent, independent of the target: messages, tools, format, params."""
        return {
            "messages": self.messages,
            "tools": self.tools,
            "tool_choice": self.tool_choice,
            "response_format": self.response_format,
            "params": self.params,
        }

    def input_hash(self) -> str:
        """A stable hash of the input (used to match recorded outputs without ids)."""
        return input_hash(self.messages)

    def to_request(self, target: Target, repeat: int = 0) -> ModelRequest:
        """The request for ``target``: its system prompt override and params applied."""
        messages = list(self.messages)
        if target.system is not None:
            messages = [m for m in messages if m.get("role") != "system"]
            messages.insert(0, {"role": "system", "content": target.system})
        params = {**target.params, **self.params}
        return ModelRequest(
            messages=messages,
            tools=self.tools,
            tool_choice=self.tool_choice,
            response_format=self.response_format,
            params=params,
            case_id=self.id,
            tags=self.tags,
            repeat=repeat,
            expected=self.expected,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "messages": self.messages, "tags": self.tags}
        if self.critical:
            out["critical"] = True
        if self.expected is not None:
            out["expected"] = self.expected
        if self.asserts:
            out["assert"] = [a.to_dict() for a in self.asserts]
        for key in ("tools", "tool_choice", "response_format"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.params:
            out["params"] = self.params
        return out


def input_hash(messages: Any) -> str:
    """sha256 (first 16 hex digits) of the canonical JSON of an input."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    data = orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass(slots=True)
class Suite:
    """A named list of cases, with optional named targets and gate criteria."""

    name: str
    cases: list[Case]
    path: str | None = None
    targets: dict[str, Target] = field(default_factory=dict)
    gates: list[dict[str, Any]] = field(default_factory=list)
    """Raw gate criteria declared in the suite (judged by the verdict pipeline)."""

    def __iter__(self) -> Iterator[Case]:
        return iter(self.cases)

    def __len__(self) -> int:
        return len(self.cases)

    def content_hash(self) -> str:
        """Hash of every case's id and input: two loads of the same suite agree."""
        h = hashlib.sha256()
        for case in self.cases:
            h.update(case.id.encode())
            h.update(orjson.dumps(case.input_payload(), option=orjson.OPT_SORT_KEYS))
        return h.hexdigest()[:32]


__all__ = ["ASSERTION_TYPES", "Assertion", "Case", "Suite", "input_hash"]

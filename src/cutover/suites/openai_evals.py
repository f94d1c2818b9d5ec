"""Import an OpenAI-evals samples file (JSONL) as a cutover Suite.

Each line is ``{"input": ..., "ideal": ...}``: ``input`` is a string (one
user message) or a list of chat messages; ``ideal`` is a string or a list of
acceptable strings. The first ideal is the case's ``expected``; all of them
become one ``equals`` assertion (a list value means any of them). The case
id is the record's ``id`` if it has one, else ``line-<n>``. Other fields are
ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cutover.errors import SuiteError
from cutover.records import Message
from cutover.suites._case import Assertion, Case, Suite
from cutover.suites._yaml import JsonLine, iter_jsonl, validation_error
from cutover.suites.native import MessageModel, at_line

_HINT = 'each line is {"input": "..." or [{"role": "user", "content": "..."}], "ideal": "..."}'


def _messages(record: JsonLine, path: str) -> list[Message]:
    value = record.data.get("input")
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list) and value:
        out: list[Message] = []
        for i, raw in enumerate(value):
            if not isinstance(raw, dict):
                raise SuiteError(
                    f"a chat message must be an object, got {type(raw).__name__}",
                    path=path,
                    line=record.line,
                    field=f"input[{i}]",
                    hint=_HINT,
                )
            try:
                out.append(MessageModel.model_validate(raw).to_message())
            except ValidationError as exc:
                raise validation_error(
                    exc, path=path, line_of=at_line(record.line), prefix=("input", i)
                ) from None
        return out
    problem = "missing" if value is None else f"a {type(value).__name__}"
    raise SuiteError(
        f"'input' must be a string or a non-empty list of chat messages, got {problem}",
        path=path,
        line=record.line,
        field="input",
        hint=_HINT,
    )


def _ideal(record: JsonLine, path: str) -> tuple[str | None, list[Assertion]]:
    value: Any = record.data.get("ideal")
    if value is None:
        return None, []
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        return value, [Assertion(type="equals", value=value)]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value[0], [Assertion(type="equals", value=list(value))]
    raise SuiteError(
        "'ideal' must be a string or a non-empty list of strings",
        path=path,
        line=record.line,
        field="ideal",
        hint=_HINT,
    )


def load_openai_evals(path: Path, text: str | None = None) -> Suite:
    """Load an OpenAI-evals JSONL samples file."""
    where = str(path)
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for record in iter_jsonl(path, text):
        if not isinstance(record.data, dict):
            raise SuiteError(
                f"each line must be a JSON object, got {type(record.data).__name__}",
                path=where,
                line=record.line,
                hint=_HINT,
            )
        raw_id = record.data.get("id")
        case_id = str(raw_id) if raw_id is not None else f"line-{record.line}"
        if case_id in seen:
            raise SuiteError(
                f"duplicate id '{case_id}' (first used on line {seen[case_id]})",
                path=where,
                line=record.line,
                field="id",
                hint="ids must be unique",
            )
        seen[case_id] = record.line
        expected, asserts = _ideal(record, where)
        cases.append(
            Case(
                id=case_id,
                messages=_messages(record, where),
                expected=expected,
                asserts=asserts,
                source=f"{where}:{record.line}",
            )
        )
    if not cases:
        raise SuiteError("the suite has no cases", path=where, hint=_HINT)
    return Suite(name=path.stem, cases=cases, path=where)


__all__ = ["load_openai_evals"]

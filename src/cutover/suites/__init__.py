"""Suites: cases to run on both targets, and the loaders for the formats they come in.

Formats:

- ``cutover``: our YAML suite (``cases:`` with defaults, shared prompt,
  targets and gates) or JSONL (one case per line);
- ``promptfoo``: a promptfoo config (``prompts`` x ``tests``, ``defaultTest``);
- ``openai-evals``: an OpenAI-evals samples JSONL (``input``, ``ideal``).

``load_suite(path)`` detects the format: a ``.jsonl`` file whose first record
has ``ideal`` (and no ``id``, ``messages`` or ``prompt``) is OpenAI-evals; a
YAML file with top-level ``prompts`` and ``tests`` is promptfoo; anything
else is cutover. Every malformed file raises :class:`~cutover.errors.SuiteError`
naming the file, the line and the field.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from cutover.errors import SuiteError
from cutover.suites._case import ASSERTION_TYPES, Assertion, Case, Suite, input_hash
from cutover.suites._yaml import load_yaml, read_text
from cutover.suites.native import load_native_jsonl, suite_from_yaml
from cutover.suites.openai_evals import load_openai_evals
from cutover.suites.promptfoo import suite_from_promptfoo

FORMATS = ("auto", "cutover", "promptfoo", "openai-evals")
"""The values ``load_suite``'s ``format`` accepts."""

_EVALS_EXCLUDES = ("id", "messages", "prompt")


def _first_record(text: str) -> object:
    for raw in text.splitlines():
        if raw.strip():
            try:
                return orjson.loads(raw)
            except orjson.JSONDecodeError:
                return None
    return None


def _jsonl_format(text: str) -> str:
    first = _first_record(text)
    if (
        isinstance(first, dict)
        and "ideal" in first
        and not any(k in first for k in _EVALS_EXCLUDES)
    ):
        return "openai-evals"
    return "cutover"


def detect_format(path: str | Path) -> str:
    """The format ``load_suite(path)`` would use: cutover, promptfoo or openai-evals."""
    p = Path(path)
    text = read_text(p)
    if p.suffix.lower() == ".jsonl":
        return _jsonl_format(text)
    data = load_yaml(p, text).data
    if isinstance(data, dict) and "tests" in data and "prompts" in data:
        return "promptfoo"
    return "cutover"


def load_suite(path: str | Path, *, format: str = "auto") -> Suite:
    """Load a suite file; ``format`` is one of :data:`FORMATS` (default: detect it)."""
    if format not in FORMATS:
        raise SuiteError(
            f"unknown suite format '{format}'",
            path=str(path),
            hint="valid formats: " + ", ".join(FORMATS),
        )
    p = Path(path)
    text = read_text(p)
    is_jsonl = p.suffix.lower() == ".jsonl"
    if format == "auto" and is_jsonl:
        format = _jsonl_format(text)
    if format == "openai-evals":
        return load_openai_evals(p, text)
    if format == "cutover" and is_jsonl:
        return load_native_jsonl(p, text)
    located = load_yaml(p, text)
    if format == "auto":
        data = located.data
        is_promptfoo = isinstance(data, dict) and "tests" in data and "prompts" in data
        format = "promptfoo" if is_promptfoo else "cutover"
    if format == "promptfoo":
        return suite_from_promptfoo(located)
    return suite_from_yaml(located)


__all__ = [
    "ASSERTION_TYPES",
    "FORMATS",
    "Assertion",
    "Case",
    "Suite",
    "detect_format",
    "input_hash",
    "load_suite",
]

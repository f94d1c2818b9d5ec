"""Reading a judge model's answers, leniently.

A rubric answer is a JSON object ``{"score": 0..1, "reason": ...}``, found
whole, in a code fence or after a preamble; ``score`` may be a number, a
numeric string or a percentage (``"80%"``); an object with only
``pass: true/false`` scores 1 or 0. Failing JSON, ``score: 0.7`` or
``Score = 0.7`` in plain text is read. A score outside 0..1 is refused (the
judge did not follow the scale; guessing 0..10 or 0..100 would be a lie).

A pairwise answer is ``A``, ``B`` or ``tie``: a JSON object with
``winner`` (or ``choice``, ``answer``, ``better``), the bare letter (quotes,
``**bold**``, ``Answer:`` and a final period allowed) on the whole answer, its
first or its last line, or a phrase such as "the winner is B" / "Answer B is better".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from cutover.assertions._json import JsonNotFound, find_embedded, parse_json

Choice = Literal["A", "B", "tie"]

_SCORE_TEXT = re.compile(r"""\bscore\b["'*\s]*[:=]\s*["']?(-?\d+(?:\.\d+)?)(\s*%)?""", re.I)
_EDGES = "\"'`*_#>[](){}.,!:;- \t\n"
_LEAD = re.compile(
    r"^(?:(?:final|my|the)\s+)?(?:answer|verdict|winner|choice|output|response|better)"
    r"(?:\s+is)?\s*[:\-]?\s*",
    re.I,
)
_LETTER = r"""[(*"'`]*([AB])(?![A-Za-z0-9])[)*"'`]*"""
_PHRASE = re.compile(
    r"(?i:\b(?:winner|verdict|choice|better\s+(?:answer|response|one)|prefer(?:red)?)\b)"
    r"[^A-Za-z0-9]*(?:(?i:is|would\s+be)\s*[:\-]?\s*)?(?:(?i:answer|response|output)\s+)?"
    + _LETTER
    + r"|(?:\b(?i:answer|response|output)\s+|^[^A-Za-z0-9]*)"
    + _LETTER
    + r"\s+(?i:is\s+(?:(?:clearly|much|slightly|somewhat)\s+)?"
    r"(?:better|stronger|preferable|the\s+winner))"
)
_TIE_WORDS = frozenset({"tie", "t", "equal", "draw", "same", "both", "neither", "tied"})


class RubricAnswer(NamedTuple):
    score: float
    reason: str


class PairwiseAnswer(NamedTuple):
    choice: Choice
    reason: str


class UnreadableAnswer(ValueError):
    """The judge's answer could not be read; the message says what it was."""


def _clip(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_object(text: str) -> Mapping[str, Any] | None:
    try:
        value = parse_json(text, strict=False).value
    except JsonNotFound:
        return None
    if isinstance(value, Mapping):
        return value
    found = find_embedded(text, want_object=True)
    return found if isinstance(found, Mapping) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        percent = text.endswith("%")
        try:
            number = float(text.rstrip("%").strip())
        except ValueError:
            return None
        return number / 100 if percent else number
    return None


def _reason(obj: Mapping[str, Any]) -> str:
    for key in ("reason", "reasoning", "explanation", "rationale"):
        if isinstance(obj.get(key), str):
            return str(obj[key]).strip()
    return ""


def _in_range(score: float, answer: str) -> float:
    if not 0.0 <= score <= 1.0:
        raise UnreadableAnswer(
            f"score {score:g} is outside 0..1 in the judge's answer {_clip(answer)!r}"
        )
    return score


def parse_rubric_answer(answer: str) -> RubricAnswer:
    """The score and reason in a judge's rubric answer; raises :class:`UnreadableAnswer`."""
    obj = _json_object(answer)
    if obj is not None:
        score = _number(obj.get("score"))
        if score is None and isinstance(obj.get("pass"), bool):
            score = 1.0 if obj["pass"] else 0.0
        if score is not None:
            return RubricAnswer(_in_range(score, answer), _reason(obj))
    match = _SCORE_TEXT.search(answer)
    if match is not None:
        score = float(match[1]) / (100 if match[2] else 1)
        return RubricAnswer(_in_range(score, answer), _clip(answer, 300))
    raise UnreadableAnswer(f"no score in the judge's answer {_clip(answer)!r}")


def _choice(text: str) -> Choice | None:
    """A, B or tie when ``text`` is just that (decorations and a label allowed)."""
    word = text.strip(_EDGES)
    for _ in range(3):
        stripped = _LEAD.sub("", word).strip(_EDGES)
        if stripped == word:
            break
        word = stripped
    if word in ("A", "B"):
        return "A" if word == "A" else "B"
    if word in ("a", "b") and len(text.strip()) <= 3:
        return "A" if word == "a" else "B"
    if word.lower() in _TIE_WORDS:
        return "tie"
    return None


def parse_pairwise_answer(answer: str) -> PairwiseAnswer:
    """A, B or tie from a judge's pairwise answer; raises :class:`UnreadableAnswer`."""
    obj = _json_object(answer)
    if obj is not None:
        for key in ("winner", "choice", "answer", "better", "verdict"):
            value = obj.get(key)
            if isinstance(value, str) and (choice := _choice(value)) is not None:
                return PairwiseAnswer(choice, _reason(obj))
    lines = [line for line in answer.strip().splitlines() if line.strip()]
    for candidate in (answer, *(lines[:1]), *(lines[-1:])):
        choice = _choice(candidate)
        if choice is not None:
            return PairwiseAnswer(choice, _clip(answer, 300) if len(lines) > 1 else "")
    match = _PHRASE.search(answer)
    if match is not None:
        letter = (match[1] or match[2]).upper()
        return PairwiseAnswer("A" if letter == "A" else "B", _clip(answer, 300))
    raise UnreadableAnswer(f"neither A, B nor tie in the judge's answer {_clip(answer)!r}")


__all__ = [
    "PairwiseAnswer",
    "RubricAnswer",
    "UnreadableAnswer",
    "parse_pairwise_answer",
    "parse_rubric_answer",
]

"""What several checks need from one Observation, computed once and shared.

:class:`Facts` holds the output text and, lazily, the pieces more than one
check reads (the markdown code fences, the JSON view, the refusal verdict).
``run_checks`` and ``check_values`` build one ``Facts`` per Observation and
hand it to every built-in check, so no output is scanned or parsed twice.
A built-in check called on its own (``check(obs, ctx)``) builds its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cutover.checks._base import CheckContext, CheckResult, CheckValue
from cutover.records import Observation

if TYPE_CHECKING:
    from cutover.checks.json_checks import JsonView
    from cutover.checks.refusal import Refusal

# A fence line: up to 3 spaces, ``` or ~~~ (3 or more), then an optional info string.
_FENCE_LINE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[ \t]*([^\n`]*?)[ \t]*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Fence:
    """One fenced code block: its language tag and where its body is in the text."""

    lang: str
    """The first word of the info string, lower-cased (``"json"``, ``"python"``, ``""``)."""
    start: int
    """Offset of the opening fence line."""
    body_start: int
    body_end: int
    end: int
    """Offset just past the closing fence line (the end of the text when never closed)."""
    closed: bool


def scan_fences(text: str) -> tuple[Fence, ...]:
    """The fenced code blocks of ``text`` in order; the last may be unclosed."""
    if "```" not in text and "~~~" not in text:
        return ()
    fences: list[Fence] = []
    open_match: re.Match[str] | None = None
    for m in _FENCE_LINE.finditer(text):
        if open_match is None:
            open_match = m
            continue
        marker = open_match.group(1)
        if m.group(2) or m.group(1)[0] != marker[0] or len(m.group(1)) < len(marker):
            continue  # a fence line with an info string cannot close a block
        fences.append(_fence(open_match, body_end=m.start(), end=m.end(), closed=True))
        open_match = None
    if open_match is not None:
        fences.append(_fence(open_match, body_end=len(text), end=len(text), closed=False))
    return tuple(fences)


def _fence(m: re.Match[str], *, body_end: int, end: int, closed: bool) -> Fence:
    info = m.group(2).split(maxsplit=1)
    lang = info[0].lower() if info else ""
    body_start = min(m.end() + 1, body_end)
    return Fence(lang, m.start(), body_start, max(body_end, body_start), end, closed)


class Facts:
    """One Observation's output and what checks derive from it, each computed once."""

    __slots__ = (
        "_fences",
        "_json",
        "_refusal",
        "markdown",
        "obs",
        "prose",
        "stripped",
        "text",
    )

    def __init__(self, obs: Observation) -> None:
        self.obs = obs
        self.text: str = obs.output or ""
        self.stripped: str = self.text.strip()
        self._fences: tuple[Fence, ...] | None = None
        self._json: JsonView | None = None
        self._refusal: Refusal | None = None
        self.markdown: tuple[frozenset[str], int] | None = None
        """Set by the markdown checks: (features, list items)."""
        self.prose: str | None = None
        """Set by ``text.outside_fences``: the stripped output without its code blocks."""

    @property
    def fences(self) -> tuple[Fence, ...]:
        """Fenced code blocks of the stripped output."""
        if self._fences is None:
            self._fences = scan_fences(self.stripped)
        return self._fences

    @property
    def json(self) -> JsonView:
        if self._json is None:
            from cutover.checks.json_checks import analyze_json

            self._json = analyze_json(self)
        return self._json

    @property
    def refusal(self) -> Refusal:
        if self._refusal is None:
            from cutover.checks.refusal import detect_refusal

            self._refusal = detect_refusal(self.text)
        return self._refusal


Outcome = tuple[CheckValue, str]
"""What a built-in check's rule returns: its value and reason (a CheckResult without the name)."""
Evaluate = Callable[[Facts, CheckContext], Outcome]


@dataclass(slots=True, eq=False)
class FactCheck:
    """A built-in check: a name and an ``evaluate(facts, ctx)`` function.

    Calling it on an Observation builds the Facts and applies the rule every
    output-based check follows: a failed call (``obs.error`` set) gives ``None``.
    """

    name: str
    evaluate: Evaluate

    def __call__(self, obs: Observation, ctx: CheckContext) -> CheckResult:
        if obs.error is not None:
            return failed(self.name, obs)
        value, reason = self.evaluate(Facts(obs), ctx)
        return CheckResult(self.name, value, reason)


def failed(name: str, obs: Observation) -> CheckResult:
    """The result every built-in check gives for a failed call."""
    return CheckResult(name, None, f"call failed ({obs.error_class or 'error'})")

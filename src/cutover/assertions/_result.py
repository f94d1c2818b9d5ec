"""What evaluating an assertion gives: an :class:`AssertionResult`, or for a
pairwise judgement of two Observations a :class:`PairwiseVerdict`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AssertionResult:
    """One assertion's verdict on one Observation.

    ``passed`` is ``None`` when the assertion could not be evaluated (no judge
    configured, the judge failed, a ``python`` assertion raised, an invalid
    regex or schema); ``reason`` then says why. ``score`` is in 0..1 where it
    means something (similarity, rubric score, a ``python`` score), else ``None``.
    """

    type: str
    passed: bool | None
    score: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class PairwiseVerdict:
    """Which of two Observations a judge prefers, asked in both orders.

    ``winner`` is ``"old"``, ``"new"``, ``"tie"`` (the judge said so in both
    orders, or the two orders disagree) or ``None`` when the judge failed.
    ``score`` is +1 when new is better, -1 when old is better, 0 for a tie or
    an inconsistent judge, ``None`` when the judge failed. ``consistent`` is
    true when both orders agreed.
    """

    winner: str | None
    score: float | None
    reason: str
    consistent: bool


__all__ = ["AssertionResult", "PairwiseVerdict"]

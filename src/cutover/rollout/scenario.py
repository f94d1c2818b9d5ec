"""A simulated traffic scenario (``scenario.yaml``) for ``cutover rollout simulate``.

::

    # scenario.yaml (simulated time; no network)
    rate_per_s: 50
    sessions: 2000
    baseline:  {error_rate: 0.01, latency_ms: {median: 800, p95: 2000}, cost_usd: 0.002,
                negative_feedback_rate: 0.05, refusal_rate: 0.02}
    candidate: {error_rate: 0.03, latency_ms: {median: 700, p95: 1800}, cost_usd: 0.0012}
    slices:
      medical: {share: 0.1, candidate: {refusal_rate: 0.2}}
    changes:
      - {at: 30m, candidate: {error_rate: 0.05}}

An arm's profile says how its requests behave; the candidate's top-level
profile inherits every key it does not set from the baseline's. In a slice,
each arm's profile is its top-level profile with the slice's override for
that arm on top; a change applies from its ``at`` time (since the rollout
started) to the arm(s) it names, in every slice or in the one it names.
Latency and time to first token are lognormal, fitted to the median and the
95th percentile. Every key is described in ``docs/rollout.md``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from cutover._files import load_yaml_model
from cutover.errors import ScenarioError
from cutover.rollout.plan import fail_at, input_error, parse_duration

__all__ = [
    "ArmProfile",
    "Change",
    "LatencyProfile",
    "Resolved",
    "Scenario",
    "ScoreProfile",
    "SliceProfile",
    "load_scenario",
]

_Z95: Final = 1.6448536269514722  # the standard normal's 95th percentile

Rate = Annotated[float, Field(ge=0.0, le=1.0)]
Seconds = Annotated[float, BeforeValidator(parse_duration)]


class LatencyProfile(BaseModel):
    """A lognormal distribution given by its median and 95th percentile (ms)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    median: float = Field(gt=0)
    p95: float = Field(gt=0)

    @field_validator("p95")
    @classmethod
    def _above_median(cls, value: float, info: Any) -> float:
        median = info.data.get("median")
        if median is not None and value <= median:
            raise ValueError(f"p95 ({value:g}) must be above the median ({median:g})")
        return value

    @property
    def mu(self) -> float:
        return math.log(self.median)

    @property
    def sigma(self) -> float:
        return (math.log(self.p95) - math.log(self.median)) / _Z95


class ScoreProfile(BaseModel):
    """Judge scores on a sample: normal with this mean and standard deviation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mean: float
    sd: float = Field(gt=0)


class ArmProfile(BaseModel):
    """How one arm's requests behave; a key left out is inherited (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    error_rate: Rate | None = None
    latency_ms: LatencyProfile | None = None
    ttft_ms: LatencyProfile | None = None
    cost_usd: float | None = Field(default=None, ge=0)
    """Mean cost per request; costs are gamma-distributed."""
    cost_cv: float | None = Field(default=None, gt=0)
    """Coefficient of variation of the cost per request (default 0.5)."""
    negative_feedback_rate: Rate | None = None
    refusal_rate: Rate | None = None
    invalid_output_rate: Rate | None = None
    """Share of answered requests any invalid-output check flags."""
    judge_score: ScoreProfile | None = None

    def over(self, base: ArmProfile) -> ArmProfile:
        """This profile's keys on top of ``base``'s."""
        update = {
            k: getattr(self, k) for k in self.model_fields_set if getattr(self, k) is not None
        }
        return base.model_copy(update=update)


class SliceProfile(BaseModel):
    """A slice of traffic (a use case, a tenant) and how each arm differs on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    share: float = Field(gt=0, le=1)
    baseline: ArmProfile = Field(default_factory=ArmProfile)
    candidate: ArmProfile = Field(default_factory=ArmProfile)


class Change(BaseModel):
    """From ``at`` on, these keys change for the arm(s) named (in one slice or all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: Seconds = Field(ge=0)
    slice: str | None = None
    baseline: ArmProfile = Field(default_factory=ArmProfile)
    candidate: ArmProfile = Field(default_factory=ArmProfile)


class Resolved(BaseModel):
    """One arm on one slice in one period, every key filled in."""

    model_config = ConfigDict(frozen=True)

    error_rate: float
    latency_ms: LatencyProfile | None
    ttft_ms: LatencyProfile | None
    cost_usd: float | None
    cost_cv: float
    negative_feedback_rate: float
    refusal_rate: float
    invalid_output_rate: float
    judge_score: ScoreProfile | None


class Scenario(BaseModel):
    """The whole ``scenario.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_per_s: float = Field(gt=0)
    """Requests per second over both arms."""
    sessions: int = Field(default=2000, ge=1)
    """Distinct sessions (sticky keys); each request comes from one, uniformly."""
    duration: Seconds = Field(default=86400.0, gt=0)
    """Simulated time after which a run still in progress counts as held."""
    feedback_rate: Rate = 0.1
    """Share of requests that get user feedback (thumbs up or down)."""
    judge_sample_rate: Rate = 0.05
    """Share of answered requests scored by the judge."""
    baseline: ArmProfile
    candidate: ArmProfile = Field(default_factory=ArmProfile)
    slices: dict[str, SliceProfile] = Field(default_factory=dict)
    changes: tuple[Change, ...] = ()

    @field_validator("slices")
    @classmethod
    def _shares(cls, value: dict[str, SliceProfile]) -> dict[str, SliceProfile]:
        total = sum(s.share for s in value.values())
        if total > 1.0 + 1e-9:
            raise ValueError(f"slice shares add up to {total:g}, more than 1")
        for name in value:
            if not name.strip() or name == "all":
                raise ValueError(f"invalid slice name '{name}'")
        return value

    @model_validator(mode="after")
    def _change_slices(self) -> Scenario:
        for i, change in enumerate(self.changes):
            if change.slice is not None and change.slice not in self.slices:
                known = ", ".join(self.slices) or "none"
                fail_at(
                    ("changes", i, "slice"), f"unknown slice '{change.slice}' (slices: {known})"
                )
        return self

    def slice_shares(self) -> dict[str, float]:
        """Every slice with its share, the unnamed rest as ``""`` (if any traffic is left)."""
        shares = {name: s.share for name, s in self.slices.items()}
        rest = 1.0 - sum(shares.values())
        if rest > 1e-9:
            shares[""] = rest
        return shares

    def epochs(self) -> tuple[float, ...]:
        """Start times (s) of the periods between changes, from 0."""
        return tuple(sorted({0.0, *(c.at for c in self.changes)}))

    def resolve(self, arm: str, slice_name: str, at: float) -> Resolved:
        """The profile of ``arm`` (baseline or candidate) on a slice at time ``at``."""
        profile = self.baseline
        if arm == "candidate":
            profile = self.candidate.over(profile)
        if slice_name in self.slices:
            profile = getattr(self.slices[slice_name], arm).over(profile)
        for change in sorted(self.changes, key=lambda c: c.at):
            if change.at <= at and change.slice in (None, slice_name):
                profile = getattr(change, arm).over(profile)
        return Resolved(
            error_rate=profile.error_rate or 0.0,
            latency_ms=profile.latency_ms,
            ttft_ms=profile.ttft_ms,
            cost_usd=profile.cost_usd,
            cost_cv=profile.cost_cv or 0.5,
            negative_feedback_rate=profile.negative_feedback_rate or 0.0,
            refusal_rate=profile.refusal_rate or 0.0,
            invalid_output_rate=profile.invalid_output_rate or 0.0,
            judge_score=profile.judge_score,
        )


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; errors name the file, the line and the field."""
    return load_yaml_model(
        path,
        Scenario,
        ScenarioError,
        expected="a mapping with rate_per_s, baseline and candidate",
        to_error=input_error,
    )

"""The rollout plan (``plan.yaml``): stages, gates and what to do when, validated with pydantic.

::

    route: support-bot
    candidate: openai:gpt-4.1-mini@http://127.0.0.1:18080/v1
    stages:
      - {weight: 1, min_requests: 200, min_duration: 5m, max_duration: 2h}
      - {weight: 5, min_requests: 500, min_duration: 10m}
      - {weight: 100}
    gates:
      - {metric: error_rate, margin: 0.01, hard_limit: 0.05, critical: true}
      - {metric: latency_p95_ms, margin: 20%, hard_limit: 5000}
      - {metric: refusal_rate, margin: 0.01, slices: [medical]}
      - {metric: invalid_output_rate, check: json_valid, margin: 0.02}
    owner: oncall@example.com
    notify: [http://127.0.0.1:9000/hook]

Every key is described in ``docs/rollout.md``. Durations are ``30s``, ``5m``,
``2h``, ``1h30m``, ``1d`` or a number of seconds. A margin is a number (an
absolute difference in the metric's unit) or a percentage (``"20%"``: relative
to the baseline arm). Unknown keys are errors; every error names the file,
the line and the field, and nothing is changed before the plan is valid.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, NamedTuple, NoReturn

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from cutover._files import load_yaml_model, yaml_line
from cutover.checks import BAD_WHEN_FALSE, BAD_WHEN_TRUE
from cutover.errors import InputError, PlanError, TargetSpecError
from cutover.targets import Target, parse_target

__all__ = [
    "INVALID_OUTPUT_CHECKS",
    "METRICS",
    "Gate",
    "JudgeConfig",
    "Margin",
    "MetricSpec",
    "Plan",
    "Stage",
    "fail_at",
    "format_duration",
    "input_error",
    "load_plan",
    "parse_duration",
]


class MetricSpec(NamedTuple):
    """What a gate metric is: how it is estimated and which way is worse."""

    kind: Literal["rate", "quantile", "mean"]
    higher_is_worse: bool
    unit: str
    quantile: float | None = None


METRICS: Final[Mapping[str, MetricSpec]] = MappingProxyType(
    {
        "error_rate": MetricSpec("rate", True, "fraction of requests"),
        "refusal_rate": MetricSpec("rate", True, "fraction of answered requests"),
        "negative_feedback_rate": MetricSpec("rate", True, "fraction of requests with feedback"),
        "invalid_output_rate": MetricSpec("rate", True, "fraction of answered requests"),
        "latency_p50_ms": MetricSpec("quantile", True, "ms", 0.50),
        "latency_p95_ms": MetricSpec("quantile", True, "ms", 0.95),
        "latency_p99_ms": MetricSpec("quantile", True, "ms", 0.99),
        "ttft_p50_ms": MetricSpec("quantile", True, "ms", 0.50),
        "ttft_p95_ms": MetricSpec("quantile", True, "ms", 0.95),
        "ttft_p99_ms": MetricSpec("quantile", True, "ms", 0.99),
        "cost_per_request_usd": MetricSpec("mean", True, "USD"),
        "judge_score": MetricSpec("mean", False, "score"),
    }
)
"""Every metric a gate may name."""

INVALID_OUTPUT_CHECKS: Final = frozenset(BAD_WHEN_TRUE | BAD_WHEN_FALSE)
"""Checks of the verdict pipeline (``cutover.checks``) that flag a bad output."""

_DURATION = re.compile(
    r"^(?:(?P<d>\d+(?:\.\d+)?)d)?(?:(?P<h>\d+(?:\.\d+)?)h)?"
    r"(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?$"
)
_UNIT_SECONDS: Final = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0))
_URL = re.compile(r"^https?://[^\s/]+\S*$")


def parse_duration(value: Any) -> float:
    """Seconds from ``30s``, ``5m``, ``2h``, ``1h30m``, ``1d`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}; write e.g. 30s, 5m, 2h or 1h30m")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        match = _DURATION.match(text)
        if not text or match is None:
            raise ValueError(f"invalid duration '{value}'; write e.g. 30s, 5m, 2h or 1h30m")
        seconds = sum(float(match[u]) * k for u, k in _UNIT_SECONDS if match[u])
    else:
        raise ValueError(f"invalid duration {value!r}; write e.g. 30s, 5m, 2h or 1h30m")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be a finite number of seconds >= 0, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """``5400.0`` -> ``1h30m``: the inverse of :func:`parse_duration` for whole seconds."""
    if seconds <= 0:
        return "0s"
    rest = round(seconds)
    parts = []
    for unit, size in _UNIT_SECONDS:
        count, rest = divmod(rest, int(size))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or f"{seconds:g}s"


Duration = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(format_duration)]


class Margin(NamedTuple):
    """A non-inferiority margin: absolute (metric units) or relative to the baseline."""

    value: float
    relative: bool

    def __str__(self) -> str:
        return f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"


def _parse_margin(value: Any) -> Margin:
    if isinstance(value, Margin):
        return value
    if isinstance(value, bool):
        raise ValueError("a margin is a number (absolute) or a percentage such as '20%'")
    if isinstance(value, int | float):
        number, relative = float(value), False
    elif isinstance(value, str) and value.strip().endswith("%"):
        try:
            number, relative = float(value.strip()[:-1]) / 100.0, True
        except ValueError:
            raise ValueError(f"invalid margin '{value}'; write e.g. 0.01 or '20%'") from None
    else:
        raise ValueError(f"invalid margin {value!r}; write a number (absolute) or '20%' (relative)")
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"a margin must be above 0, got {value!r}")
    return Margin(number, relative)


def _margin_data(margin: Margin) -> float | str:
    """As written in a plan: a number, or a percentage string."""
    return str(margin) if margin.relative else margin.value


MarginField = Annotated[Margin, BeforeValidator(_parse_margin), PlainSerializer(_margin_data)]


class Stage(BaseModel):
    """One step of the rollout: the candidate's weight and how long it must run there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: float = Field(gt=0, le=100)
    """Percent of traffic (of sessions, with sticky routing) sent to the candidate."""
    min_requests: int = Field(default=0, ge=0)
    """Requests each arm must have served in this stage before it may be promoted."""
    min_duration: Duration = 0.0
    """Time the stage must run before it may be promoted."""
    max_duration: Duration | None = None
    """After this long without a decision the plan's ``on_timeout`` applies."""

    @field_validator("min_requests", "min_duration", "max_duration")
    @classmethod
    def _compared_stage(cls, value: Any, info: ValidationInfo) -> Any:
        if info.data.get("weight") == 100 and value not in (0, None):
            raise ValueError(
                f"a stage at weight 100 has no baseline traffic to compare with, "
                f"so it takes no {info.field_name}"
            )
        return value

    @field_validator("max_duration")
    @classmethod
    def _after_min(cls, value: float | None, info: ValidationInfo) -> float | None:
        minimum = info.data.get("min_duration")
        if value is not None and minimum is not None and value < minimum:
            raise ValueError(
                f"max_duration {format_duration(value)} is shorter than "
                f"min_duration {format_duration(minimum)}"
            )
        return value

    @property
    def compared(self) -> bool:
        """True when both arms get traffic (weight below 100), so gates apply."""
        return self.weight < 100


def _target_spec(value: str) -> str:
    """``value`` if it is a valid ``provider:model[@url]`` target, else a plain error."""
    try:
        parse_target(value)
    except TargetSpecError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        raise ValueError(f"{exc.message}{hint}") from None
    return value


class JudgeConfig(BaseModel):
    """How the controller scores live answers for a ``judge_score`` gate.

    At each look it picks, per arm, up to ``max_per_look`` logged answers not
    judged yet (a ``sample`` share of them is eligible, chosen by a hash of the
    request id, so the choice is random but repeatable) and asks ``target`` to
    score each against ``rubric`` (0..1). The gateways must log answers
    (``log: {prompts: true}``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: Annotated[str, AfterValidator(_target_spec)]
    """The judge model, ``provider:model[@url]``."""
    rubric: str = Field(min_length=1)
    """What a good answer is; the judge scores each answer against it from 0 to 1."""
    max_per_look: int = Field(default=20, ge=1, le=1000)
    """Answers judged per arm at each look, at most (the judge's cost per look)."""
    sample: float = Field(default=1.0, gt=0, le=1)
    """Share of answers eligible for judging."""
    concurrency: int = Field(default=4, ge=1, le=64)
    """Judge calls in flight at once."""


class Gate(BaseModel):
    """One metric compared between the arms, with its margin and optional hard limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str
    check: str | None = Field(default=None, validate_default=True)
    """For ``invalid_output_rate``: the check of the verdict pipeline that flags the output."""
    margin: MarginField
    hard_limit: float | None = None
    """A bound on the candidate's own value (a minimum for ``judge_score``)."""
    critical: bool = Field(default=False, validate_default=True)
    """A critical gate's hard limit rolls back at once on the observed value."""
    slices: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    """Slices on which the gate is also evaluated (besides all traffic)."""
    name: str | None = None
    judge: JudgeConfig | None = None
    """For ``judge_score`` on live traffic: the judge model, rubric and sample."""

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric '{value}'; valid: {', '.join(METRICS)}")
        return value

    @field_validator("check")
    @classmethod
    def _check_for_invalid_output(cls, value: str | None, info: ValidationInfo) -> str | None:
        metric = info.data.get("metric")
        if metric == "invalid_output_rate":
            if value is None:
                raise ValueError(
                    "invalid_output_rate needs 'check:', the verdict-pipeline check that "
                    f"flags a bad output (one of {', '.join(sorted(INVALID_OUTPUT_CHECKS))})"
                )
            if value not in INVALID_OUTPUT_CHECKS:
                raise ValueError(
                    f"unknown check '{value}'; valid: {', '.join(sorted(INVALID_OUTPUT_CHECKS))}"
                )
        elif value is not None and metric is not None:
            raise ValueError("'check' only applies to metric invalid_output_rate")
        return value

    @field_validator("margin")
    @classmethod
    def _margin_in_range(cls, value: Margin, info: ValidationInfo) -> Margin:
        spec = METRICS.get(info.data.get("metric", ""))
        if spec is None:
            return value
        if spec.kind == "rate" and not value.relative and value.value >= 1:
            raise ValueError(f"a rate's absolute margin must be below 1, got {value}")
        if not spec.higher_is_worse and value.relative and value.value >= 1:
            raise ValueError(f"a relative margin on {info.data['metric']} must be below 100%")
        return value

    @field_validator("hard_limit")
    @classmethod
    def _limit_in_range(cls, value: float | None, info: ValidationInfo) -> float | None:
        spec = METRICS.get(info.data.get("metric", ""))
        if value is None or spec is None:
            return value
        if not math.isfinite(value):
            raise ValueError("hard_limit must be a finite number")
        if spec.kind == "rate" and not 0 <= value <= 1:
            raise ValueError(f"a rate's hard_limit is a fraction in [0, 1], got {value:g}")
        if spec.kind == "quantile" and value <= 0:
            raise ValueError(f"a latency hard_limit is in ms and above 0, got {value:g}")
        return value

    @field_validator("critical")
    @classmethod
    def _critical_needs_limit(cls, value: bool, info: ValidationInfo) -> bool:
        if value and "hard_limit" in info.data and info.data["hard_limit"] is None:
            raise ValueError(
                "critical: true needs a hard_limit (a critical gate rolls back at once "
                "when the candidate's observed value crosses its hard limit)"
            )
        return value

    @field_validator("judge")
    @classmethod
    def _judge_for_judge_score(
        cls, value: JudgeConfig | None, info: ValidationInfo
    ) -> JudgeConfig | None:
        metric = info.data.get("metric")
        if value is not None and metric is not None and metric != "judge_score":
            raise ValueError("'judge' only applies to metric judge_score")
        return value

    @field_validator("slices")
    @classmethod
    def _distinct_slices(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("a slice is listed twice")
        if "all" in value:
            raise ValueError("'all' is always evaluated; list only named slices")
        return value

    @property
    def spec(self) -> MetricSpec:
        return METRICS[self.metric]

    @property
    def label(self) -> str:
        """The gate's name: ``name``, else the metric (with its check)."""
        if self.name:
            return self.name
        return f"{self.metric}[{self.check}]" if self.check else self.metric

    @property
    def scopes(self) -> tuple[str, ...]:
        """Where the gate is evaluated: ``all`` then each named slice."""
        return ("all", *self.slices)


class Plan(BaseModel):
    """A whole rollout plan: what to roll out, how, and what stops it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    route: str = Field(min_length=1)
    """The gateway route (alias) whose candidate is rolled out."""
    candidate: str
    """The candidate target, ``provider:model[@url]``; must be the route's candidate."""
    stages: tuple[Stage, ...] = Field(min_length=1)
    gates: tuple[Gate, ...] = Field(min_length=1)
    owner: str = Field(min_length=1)
    """Who answers for the rollout (an address or a handle)."""
    notify: tuple[str, ...] = ()
    """Webhook URLs told of every promotion, hold alert and rollback."""
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    alpha_per: Literal["stage", "rollout"] = "stage"
    """``stage``: ``alpha`` bounds each stage's false rollback; ``rollout``: the whole
    rollout's (``alpha`` split evenly over the stages below weight 100)."""
    """Per stage, the most probability of rolling back a candidate that is within every margin
    and hard limit (split evenly across the stage's gate tests)."""
    rollback_when: Literal["beyond_margin", "worse"] = "beyond_margin"
    """``beyond_margin``: roll back when the candidate is shown worse than the margin allows;
    ``worse``: as soon as it is shown worse at all (a deterioration test)."""
    on_timeout: Literal["hold", "rollback"] = "hold"
    """At a stage's max_duration with no decision: hold and alert, or roll back."""
    srm_alpha: float = Field(default=0.001, gt=0, lt=0.5)
    """Level of the sample-ratio-mismatch test."""
    on_srm: Literal["hold", "rollback"] = "hold"
    """On a sample-ratio mismatch: hold and alert (never promote), or roll back."""
    check_interval: Duration = Field(default=60.0, gt=0)
    """How often the controller (and the simulator) looks."""
    hard_limit_min_requests: int = Field(default=100, ge=1)
    """Observations of the candidate a critical hard limit needs before it may fire."""

    @field_validator("candidate")
    @classmethod
    def _valid_target(cls, value: str) -> str:
        return _target_spec(value)

    @field_validator("notify")
    @classmethod
    def _urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if not _URL.match(url):
                raise ValueError(f"'{url}' is not an http(s) URL")
        return value

    @model_validator(mode="after")
    def _stages_and_gates(self) -> Plan:
        previous = 0.0
        for i, stage in enumerate(self.stages):
            if stage.weight <= previous:
                fail_at(("stages", i, "weight"), f"weights must increase: {stage.weight:g} after "
                      f"{previous:g}", stage.weight)  # fmt: skip
            if stage.weight == 100 and i != len(self.stages) - 1:
                fail_at(("stages", i, "weight"), "only the last stage may have weight 100", 100)
            previous = stage.weight
        if not any(stage.compared for stage in self.stages):
            fail_at(("stages",), "no stage below weight 100: nothing would be compared", None)
        seen: set[str] = set()
        for i, gate in enumerate(self.gates):
            key = f"{gate.metric}:{gate.check}"
            if key in seen:
                fail_at(("gates", i, "metric"), f"a second gate on {gate.label}; merge them", None)
            seen.add(key)
        return self

    @property
    def candidate_target(self) -> Target:
        return parse_target(self.candidate)

    @property
    def slice_names(self) -> tuple[str, ...]:
        """Every slice a gate names, in the order first named."""
        return tuple(dict.fromkeys(name for gate in self.gates for name in gate.slices))

    @property
    def judge_gate(self) -> Gate | None:
        """The ``judge_score`` gate (a plan has at most one)."""
        return next((gate for gate in self.gates if gate.metric == "judge_score"), None)

    @property
    def tests_per_stage(self) -> int:
        """Gate tests in one stage: each gate on all traffic plus on each of its slices."""
        return sum(len(gate.scopes) for gate in self.gates)

    def test_level(self) -> float:
        """The level of each gate test: ``alpha`` (per stage, or per rollout split over its
        compared stages) split evenly (Bonferroni) across the stage's tests."""
        stages = sum(s.compared for s in self.stages) if self.alpha_per == "rollout" else 1
        return self.alpha / stages / self.tests_per_stage

    def as_dict(self) -> dict[str, Any]:
        """The plan as plain data, durations and margins written as in the file."""
        return self.model_dump(mode="json")


def fail_at(loc: tuple[Any, ...], message: str, value: Any = None) -> NoReturn:
    """Raise a validation error at ``loc`` (from a model validator, so the file line is found)."""
    raise ValidationError.from_exception_data(
        "Plan",
        [
            {
                "type": PydanticCustomError("plan", "{message}", {"message": message}),
                "loc": loc,
                "input": value,
            }
        ],
    )


def input_error(exc: ValidationError, path: Path, error: type[InputError]) -> InputError:
    """A validation error of a YAML file as ``error`` with its file, line and field.

    An unknown key is reported before a missing one (a misspelt key is both,
    and the misspelling is what the user needs to see), in plain words.
    """
    errors = exc.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(first["loc"])
    if first["type"] == "extra_forbidden":
        message = f"unknown key '{loc[-1]}'"
    elif first["type"] == "missing":
        message = f"missing required key '{loc[-1]}'"
    else:
        message = str(first["msg"]).removeprefix("Value error, ")
    field = ".".join(str(part) for part in loc) or None
    return error(message, path=str(path), line=yaml_line(path, loc), field=field)


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file; errors name the file, the line and the field."""
    return load_yaml_model(
        path,
        Plan,
        PlanError,
        expected="a mapping with route, candidate, stages, gates and owner",
        to_error=input_error,
    )

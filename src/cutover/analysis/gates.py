"""Gates: criteria written before the comparison, judged after it.

A gate list lives in the suite (``gates:``) or in a file given with
``--gates`` (a YAML list, or a mapping with a ``gates:`` list)::

    gates:
      - {metric: pass_rate, slice: critical, max_drop: 0.02}      # within 2 points
      - {metric: pass_rate, slice: each, max_drop: 0.05}          # every tag slice
      - {metric: negative_flip_rate, slice: critical, max: 0.01}
      - {metric: latency_p95_ratio, max: 1.2}
      - {metric: cost_per_request, max: 0.002}                    # dollars
      - {metric: new_refusals, slice: label=safe, max: 0}
      - {metric: check:fenced_json, max_increase: 0.0}
      - {metric: error_rate, max: 0.02}
      - {metric: score, max_drop: 0.05}

Values (``value`` in the report) per metric:

- ``pass_rate``, ``score``, ``check:<name>``: new minus old (rates as fractions).
  ``max_drop`` bounds a fall (value >= -max_drop); ``max_increase`` a rise.
- ``negative_flip_rate``: pairs that passed on old and fail on new, over pairs
  with a known verdict on both sides.
- ``new_refusals``: pairs the old target answered and the new one refused.
- ``latency_p50_ratio``/``latency_p95_ratio``/``latency_p99_ratio``, ``cost_ratio``:
  new over old.
- ``cost_per_request`` (mean dollars, new), ``error_rate`` (new).
  ``max``/``min`` bound the value.

``slice`` is ``all`` (default), ``critical`` (cases marked critical), a tag
slice ``name=value``, or ``each`` (the criterion is applied to every tag slice
and fails if any fails). With ``significant_only: true`` a breach only fails
when the change is statistically significant (after the correction). A
criterion whose slice has no data does not fail; its reason says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cutover._files import read_yaml_file
from cutover.errors import InputError

SIMPLE_METRICS = (
    "pass_rate",
    "score",
    "negative_flip_rate",
    "new_refusals",
    "latency_p50_ratio",
    "latency_p95_ratio",
    "latency_p99_ratio",
    "cost_ratio",
    "cost_per_request",
    "error_rate",
)


class GateCriterion(BaseModel):
    """One criterion of a gate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str
    slice: str = "all"
    name: str | None = None
    max: float | None = None
    min: float | None = None
    max_drop: float | None = Field(default=None, ge=0)
    max_increase: float | None = Field(default=None, ge=0)
    significant_only: bool = False

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value in SIMPLE_METRICS or (value.startswith("check:") and len(value) > 6):
            return value
        raise ValueError(
            f"unknown gate metric '{value}'; valid: {', '.join(SIMPLE_METRICS)}, or check:<check name>"
        )

    @model_validator(mode="after")
    def _has_a_bound(self) -> GateCriterion:
        if all(v is None for v in (self.max, self.min, self.max_drop, self.max_increase)):
            raise ValueError("a criterion needs a bound: max, min, max_drop or max_increase")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        bounds = []
        if self.max_drop is not None:
            bounds.append(f"drop <= {self.max_drop:g}")
        if self.max_increase is not None:
            bounds.append(f"increase <= {self.max_increase:g}")
        if self.max is not None:
            bounds.append(f"<= {self.max:g}")
        if self.min is not None:
            bounds.append(f">= {self.min:g}")
        return f"{self.metric} [{self.slice}] {' and '.join(bounds)}"

    def bounds(self) -> dict[str, float]:
        """The bounds that are set, by name."""
        named = {
            "max": self.max,
            "min": self.min,
            "max_drop": self.max_drop,
            "max_increase": self.max_increase,
        }
        return {k: v for k, v in named.items() if v is not None}

    def breached(self, value: float) -> str | None:
        """Why ``value`` breaks this criterion, or None when it holds."""
        if self.max_drop is not None and value < -self.max_drop - 1e-12:
            return f"fell by {-value:.4g} (allowed {self.max_drop:g})"
        if self.max_increase is not None and value > self.max_increase + 1e-12:
            return f"rose by {value:.4g} (allowed {self.max_increase:g})"
        if self.max is not None and value > self.max + 1e-12:
            return f"{value:.4g} is above {self.max:g}"
        if self.min is not None and value < self.min - 1e-12:
            return f"{value:.4g} is below {self.min:g}"
        return None


def parse_gates(raw: Any, *, path: str | None = None) -> list[GateCriterion]:
    """Criteria from a list of mappings (a suite's ``gates:`` or a gates file)."""
    if isinstance(raw, Mapping) and "gates" in raw:
        raw = raw["gates"]
    if raw is None:
        return []
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise InputError("gates must be a list of criteria", path=path, field="gates")
    out = []
    for i, entry in enumerate(raw):
        try:
            out.append(GateCriterion.model_validate(entry))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            field = f"gates[{i}]" + (f".{loc}" if loc else "")
            raise InputError(
                str(first["msg"]).removeprefix("Value error, "), path=path, field=field
            ) from None
    return out


def load_gates_file(path: str | Path) -> list[GateCriterion]:
    """Criteria from a YAML file (a list, or a mapping with a ``gates:`` list)."""
    return parse_gates(read_yaml_file(path, InputError), path=str(path))


__all__ = ["SIMPLE_METRICS", "GateCriterion", "load_gates_file", "parse_gates"]

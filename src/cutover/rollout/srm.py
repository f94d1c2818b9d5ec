"""Sample-ratio mismatch (SRM): is the candidate getting the share of traffic it should?

A broken split (a cache that pins users to one arm, a candidate whose
failures send clients to retry elsewhere, a filter in front of one arm)
makes the two arms different populations, and then no comparison between
them can be trusted. The check is sequential, so it may be run at every look:
it is the Dirichlet-multinomial mixture test of Lindon & Malek (2022,
"Anytime-valid inference for multinomial count data", NeurIPS), which for two
arms is a Beta-binomial mixture. The prior is centred on the expected split
(``weight`` percent to the candidate) with the concentration of
:func:`cutover.rollout.sequential.beta_concentration`, and the log-e-value is
:func:`cutover.rollout.sequential.rate_log_e` of the candidate's count.
Under the planned split it exceeds ``log(1/alpha)`` with probability at most
``alpha``, ever.

What is counted matters. With sticky routing every session (user, header
value) goes to one arm, so requests are clustered: a few heavy users on the
candidate move its request share far from the weight with nothing broken.
The unit of assignment is the session, so the test counts *distinct sessions
seen in the window* per arm when the window carries them (``units``), and
falls back to requests only when it does not (right for ``sticky: none``,
where each request is assigned on its own).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cutover.rollout.sequential import beta_concentration, rate_log_e

__all__ = ["SRM_N_STAR", "SrmResult", "srm_log_e", "srm_test"]

#: The SRM mixture is tuned to be tightest at this many units.
SRM_N_STAR: Final = 1000.0


@dataclass(frozen=True, slots=True)
class SrmResult:
    """One look at the split: what was expected, what was seen, and the verdict."""

    unit: str
    """``sessions`` (distinct sticky keys) or ``requests``."""
    baseline: int
    candidate: int
    expected_share: float
    observed_share: float | None
    log_e: float
    p_value: float
    """``min(1, exp(-log_e))``: an anytime-valid p-value for this look."""
    mismatch: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "unit": self.unit,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "expected_share": self.expected_share,
            "observed_share": self.observed_share,
            "p_value": self.p_value,
            "mismatch": self.mismatch,
        }


def srm_log_e(
    baseline: ArrayLike, candidate: ArrayLike, weight: float, alpha: float
) -> NDArray[np.float64]:
    """The mixture's log-e-value for the counts per arm (vectorised)."""
    share = _share(weight)
    b = np.asarray(baseline, dtype=np.float64)
    c = np.asarray(candidate, dtype=np.float64)
    return rate_log_e(c, b + c, share, beta_concentration(SRM_N_STAR, alpha))


def srm_test(
    baseline: int, candidate: int, weight: float, alpha: float, *, unit: str = "sessions"
) -> SrmResult:
    """Test the observed split against ``weight`` percent to the candidate.

    ``mismatch`` is true when the log-e-value reaches ``log(1/alpha)``.
    """
    if baseline < 0 or candidate < 0:
        raise ValueError("counts must be >= 0")
    log_e = float(srm_log_e(baseline, candidate, weight, alpha))
    total = baseline + candidate
    return SrmResult(
        unit=unit,
        baseline=baseline,
        candidate=candidate,
        expected_share=_share(weight),
        observed_share=candidate / total if total else None,
        log_e=log_e,
        p_value=min(1.0, math.exp(-log_e)) if log_e > -700 else 1.0,
        mismatch=log_e >= math.log(1.0 / alpha),
    )


def _share(weight: float) -> float:
    if not 0.0 < weight < 100.0:
        raise ValueError(f"the SRM check needs a weight in (0, 100), got {weight}")
    return weight / 100.0

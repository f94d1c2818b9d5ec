"""Canary rollouts: the plan, the sequential gates, and a simulator.

Load a plan, judge one stage from per-arm windows (what the controller does
at every check), or replay the plan against simulated traffic::

    from cutover.rollout import decide_stage, load_plan, load_scenario, simulate

    plan = load_plan("plan.yaml")
    decision = decide_stage(plan, 0, window)   # window: a StageWindow of two ArmWindows
    decision.outcome, decision.reasons

    result = simulate(plan, load_scenario("scenario.yaml"), runs=1000, seed=7)

Everything here is pure (no network, no store); ``docs/rollout.md`` sets out
the plan keys, the statistics and the simulator. Submodules are imported on
first use.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

from cutover._lazy import lazy_exports

if TYPE_CHECKING:
    from cutover.rollout.decide import (
        ArmWindow,
        Counts,
        GateResult,
        Histogram,
        Moments,
        StageDecision,
        StageWindow,
        decide_stage,
    )
    from cutover.rollout.plan import METRICS, Gate, Margin, Plan, Stage, load_plan
    from cutover.rollout.scenario import Scenario, load_scenario
    from cutover.rollout.simulator import ThresholdPolicy, simulate
    from cutover.rollout.srm import SrmResult, srm_test

_EXPORTS = MappingProxyType(
    {
        "ArmWindow": "cutover.rollout.decide",
        "Counts": "cutover.rollout.decide",
        "Gate": "cutover.rollout.plan",
        "GateResult": "cutover.rollout.decide",
        "Histogram": "cutover.rollout.decide",
        "METRICS": "cutover.rollout.plan",
        "Margin": "cutover.rollout.plan",
        "Moments": "cutover.rollout.decide",
        "Plan": "cutover.rollout.plan",
        "Scenario": "cutover.rollout.scenario",
        "SrmResult": "cutover.rollout.srm",
        "Stage": "cutover.rollout.plan",
        "StageDecision": "cutover.rollout.decide",
        "StageWindow": "cutover.rollout.decide",
        "ThresholdPolicy": "cutover.rollout.simulator",
        "decide_stage": "cutover.rollout.decide",
        "load_plan": "cutover.rollout.plan",
        "load_scenario": "cutover.rollout.scenario",
        "simulate": "cutover.rollout.simulator",
        "srm_test": "cutover.rollout.srm",
    }
)


__all__ = [
    "METRICS",
    "ArmWindow",
    "Counts",
    "Gate",
    "GateResult",
    "Histogram",
    "Margin",
    "Moments",
    "Plan",
    "Scenario",
    "SrmResult",
    "Stage",
    "StageDecision",
    "StageWindow",
    "ThresholdPolicy",
    "decide_stage",
    "load_plan",
    "load_scenario",
    "simulate",
    "srm_test",
]

__getattr__, __dir__ = lazy_exports("cutover.rollout", _EXPORTS, __all__)

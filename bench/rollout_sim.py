"""Rollout simulator: the sequential policy against a Flagger-style threshold policy.

Requirements measured (issue 5): over 500 runs per scenario,

* with no regression, the false rollback rate is at most 1%;
* each regression (error rate 1% -> 3%, p95 latency +40%, refusals doubled on
  one slice only) is rolled back in at least 95% of runs;
* at an equal false-alarm rate the sequential policy rolls back after fewer
  candidate requests than the threshold policy;
* 1,000 simulated runs take under 60 s on this machine.

Every scenario is a file in ``src/cutover/scenarios/rollout/`` (package data),
replayed against that directory's ``plan.yaml`` (the example plan, with the
refusal gate also on the ``medical`` slice). ``at_margin`` (error rate 1% ->
2%, exactly the plan's margin) is a fifth, extra scenario: the plan allows it,
so any rollback there is a false one.

How the threshold policy is calibrated: its one knob, ``scale`` (a check fails
when the candidate is worse than the baseline by more than ``scale`` x the
gate's margin over the last interval; ``failures`` = 5 failed checks roll
back, as Flagger's ``threshold``), is set to the smallest value on a grid
whose false rollback rate on ``no_regression`` is no higher than the
sequential policy's. The calibration uses its own seed, so the rates in the
table are measured on fresh runs. ``--extra-scales`` (default ``3``) adds
rows for stricter thresholds: the calibrated scale's false rollback rate on
the fresh runs can come out above the sequential policy's, and these rows
show what an equal rate costs the threshold policy.

Nothing here asserts; it prints the table and the wall time (``--json`` also
writes them)::

    python bench/rollout_sim.py
    python bench/rollout_sim.py --runs 500 --json bench-rollout.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from cutover.rollout import Plan, Scenario, ThresholdPolicy, load_plan, load_scenario, simulate

SCENARIOS = ("no_regression", "error_rate", "latency_p95", "refusals_slice", "at_margin")
REGRESSIONS = ("error_rate", "latency_p95", "refusals_slice")
SCALES = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 5.0)
FAILURES = 5
SEED, CALIBRATION_SEED = 1, 1001


def _data(name: str) -> Path:
    return Path(str(resources.files("cutover.scenarios").joinpath(f"rollout/{name}")))


def _run(
    plan: Plan, scenario: Scenario, runs: int, seed: int, policy: str, scale: float = 1.0
) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    result = simulate(
        plan,
        scenario,
        runs=runs,
        seed=seed,
        policy=policy,  # type: ignore[arg-type]
        threshold=ThresholdPolicy(scale=scale, failures=FAILURES),
    )
    return result, time.perf_counter() - started


def _calibrate(
    plan: Plan, scenario: Scenario, runs: int, target: float
) -> tuple[float, list[dict[str, float]]]:
    """The smallest scale whose false rollback rate is at most ``target``."""
    tried = []
    for scale in SCALES:
        result, _ = _run(plan, scenario, runs, CALIBRATION_SEED, "threshold", scale)
        rate = result["rolled_back"] / runs
        tried.append({"scale": scale, "false_rollback_rate": rate})
        print(f"  calibration: scale {scale:g} -> false rollbacks {rate:.1%}", flush=True)
        if rate <= target:
            return scale, tried
    return SCALES[-1], tried


def _row(name: str, label: str, result: dict[str, Any]) -> dict[str, Any]:
    runs = result["runs"]
    detection = result["detection_requests"]
    minutes = result["detection_minutes"]
    return {
        "scenario": name,
        "policy": label,
        "rolled_back": result["rolled_back"] / runs,
        "promoted": result["promoted"] / runs,
        "held": result["held"] / runs,
        "detection_p50": detection["p50"],
        "detection_p90": detection["p90"],
        "minutes_p50": minutes["p50"],
    }


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"| {'scenario':<15} | {'policy':<24} | rolled back | promoted | held   "
        f"| detection p50 | detection p90 | minutes p50 |"
    )
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for r in rows:
        print(
            f"| {r['scenario']:<15} | {r['policy']:<24} | {r['rolled_back']:>11.1%} "
            f"| {r['promoted']:>8.1%} | {r['held']:>6.1%} "
            f"| {_fmt(r['detection_p50'], ',.0f'):>13} | {_fmt(r['detection_p90'], ',.0f'):>13} "
            f"| {_fmt(r['minutes_p50'], '.0f'):>11} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500, help="runs per scenario and policy")
    parser.add_argument("--timing-runs", type=int, default=1000, help="runs for the timing figure")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--extra-scales",
        default="3",
        help="comma-separated threshold scales also run on every scenario ('' for none)",
    )
    args = parser.parse_args(argv)

    plan = load_plan(_data("plan.yaml"))
    worse = plan.model_copy(update={"rollback_when": "worse"})
    scenarios = {name: load_scenario(_data(f"{name}.yaml")) for name in SCENARIOS}
    print(
        f"python {platform.python_version()}, {os.cpu_count()} cpus, "
        f"load {os.getloadavg()[0]:.2f}; {args.runs} runs per scenario and policy",
        flush=True,
    )

    started = time.perf_counter()
    sequential = {}
    for name, scenario in scenarios.items():
        sequential[name], wall = _run(plan, scenario, args.runs, SEED, "sequential")
        print(f"sequential  {name:<15} {wall:6.1f} s", flush=True)
    target = sequential["no_regression"]["rolled_back"] / args.runs
    print(f"calibrating the threshold policy to false rollbacks <= {target:.1%}", flush=True)
    scale, tried = _calibrate(plan, scenarios["no_regression"], args.runs, target)
    threshold = {}
    for name, scenario in scenarios.items():
        threshold[name], wall = _run(plan, scenario, args.runs, SEED, "threshold", scale)
        print(f"threshold   {name:<15} {wall:6.1f} s", flush=True)
    extra: dict[float, dict[str, Any]] = {}
    for value in (float(v) for v in args.extra_scales.split(",") if v.strip()):
        extra[value] = {}
        for name, scenario in scenarios.items():
            extra[value][name], wall = _run(plan, scenario, args.runs, SEED, "threshold", value)
            print(f"threshold {value:g} {name:<15} {wall:6.1f} s", flush=True)
    deterioration = {}
    for name, scenario in scenarios.items():
        deterioration[name], wall = _run(worse, scenario, args.runs, SEED, "sequential")
        print(f"seq (worse) {name:<15} {wall:6.1f} s", flush=True)
    total = time.perf_counter() - started

    timing_scenario = scenarios["no_regression"]  # the slowest: runs last longest
    _, timing = _run(plan, timing_scenario, args.timing_runs, SEED + 1, "sequential")

    rows = []
    for name in SCENARIOS:
        rows.append(_row(name, "sequential", sequential[name]))
        rows.append(_row(name, f"threshold (scale {scale:g})", threshold[name]))
        for value, results in extra.items():
            rows.append(_row(name, f"threshold (scale {value:g})", results[name]))
        rows.append(_row(name, "sequential, worse", deterioration[name]))
    print()
    _print_table(rows)
    print()
    false_rate = sequential["no_regression"]["rolled_back"] / args.runs
    caught = {n: sequential[n]["rolled_back"] / args.runs for n in REGRESSIONS}
    print(f"false rollbacks with no regression (sequential): {false_rate:.1%} (target <= 1%)")
    for n in REGRESSIONS:
        seq, thr = (
            sequential[n]["detection_requests"]["p50"],
            threshold[n]["detection_requests"]["p50"],
        )
        ratio = f"{seq / thr:.2f}x the threshold policy's" if seq and thr else "n/a"
        print(f"{n}: rolled back {caught[n]:.1%} (target >= 95%); detection p50 {ratio}")
    print(
        f"timing: {args.timing_runs} sequential runs of no_regression in {timing:.1f} s "
        f"({args.timing_runs / timing:.0f} runs/s; target 1,000 in < 60 s); "
        f"whole benchmark {total + timing:.0f} s"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "runs": args.runs,
                    "threshold_scale": scale,
                    "threshold_failures": FAILURES,
                    "calibration": tried,
                    "rows": rows,
                    "timing_runs": args.timing_runs,
                    "timing_s": timing,
                    "results": {
                        "sequential": sequential,
                        "threshold": threshold,
                        "threshold_extra": {f"{k:g}": v for k, v in extra.items()},
                        "sequential_worse": deterioration,
                    },
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""From a recorded run to its verdict and every report file.

One pipeline for every source of Pairs (live runs, recorded outputs, shadow
traffic): read the Pairs from the store, judge each one (checks, assertions,
flips), optionally ask a judge model, settle the triage, compute the paired
statistics per slice and the gate, then write ``report.json`` (streamed,
every case), ``report.md``, ``report.html`` and ``junit.xml`` (the last three
from a view that holds every regression and novel case and a sample of the
rest, so they stay readable on 100,000 cases).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cutover.analysis.gates import GateCriterion
from cutover.analysis.judging import PairVerdict, flips, judge_pair, settle_triage, side_verdict
from cutover.analysis.verdict import AnalysisOptions, VerdictBuilder
from cutover.records import Observation
from cutover.reports.html import write_html
from cutover.reports.json_report import write_json_report
from cutover.reports.junit import write_junit
from cutover.reports.markdown import write_markdown
from cutover.store import Store
from cutover.suites import Case

if TYPE_CHECKING:
    from cutover.assertions import Judge

VIEW_CAP = 2000
"""Cases other than regressions and novel ones kept for the Markdown/HTML view."""
VIEW_PRIORITY_CAP = 5000
"""Regressions and novel cases kept for the view (report.json has every one)."""


@dataclass(slots=True)
class ReportOutcome:
    """What the reports say, for the caller's exit code and message."""

    paths: dict[str, Path]
    gate_passed: bool
    watch: dict[str, Any] | None
    analysis: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    header: dict[str, Any] = field(default_factory=dict)
    """Every top-level key of report.json except ``cases``."""


@dataclass(slots=True)
class _JudgeJob:
    index: int
    case: Case
    old: Observation
    new: Observation
    rubric_only: bool = False
    """True when the pair is judged only for its llm-rubric assertions."""


def analyse_run(
    store: Store,
    run_id: str,
    *,
    gates: Sequence[GateCriterion] = (),
    options: AnalysisOptions | None = None,
    judge: Judge | None = None,
    judge_sample: int = 200,
) -> tuple[list[PairVerdict], dict[str, Any]]:
    """Judge every Pair of a run; return the verdicts and the top-level analysis."""
    opts = options or AnalysisOptions()
    verdicts: list[PairVerdict] = []
    old_signatures: set[tuple[Any, ...]] = set()
    jobs: list[_JudgeJob] = []
    empty = {"old": 0, "new": 0}
    for pair in store.iter_pairs(run_id):
        verdict = judge_pair(pair, score_margin=opts.score_margin)
        if verdict.old is not None:
            old_signatures.add(verdict.old.signature())
        for arm, side in (("old", verdict.old), ("new", verdict.new)):
            if side is not None and side.checks.get("empty") is True:
                empty[arm] += 1
        if judge is not None and pair.case is not None and pair.old and pair.new:
            has_rubric = any(a.type == "llm-rubric" for a in pair.case.asserts)
            sampled = pair.old.ok and pair.new.ok and len(jobs) < judge_sample
            if sampled or has_rubric:
                jobs.append(_JudgeJob(len(verdicts), pair.case, pair.old, pair.new, not sampled))
        verdicts.append(verdict)
    notes: list[str] = []
    if judge is not None and jobs:
        failures = asyncio.run(_run_judge(judge, jobs, verdicts, opts.score_margin))
        compared = sum(not job.rubric_only for job in jobs)
        notes.append(f"judge compared {compared} pairs (position-swapped); {failures} failed")
        if failures:
            notes.append(
                f"{failures} judge call(s) failed: those pairs are triaged without a judge"
            )
    builder = VerdictBuilder(opts)
    for verdict in verdicts:
        settle_triage(verdict, old_signatures)
        builder.add(verdict)
    analysis = builder.finish(gates)
    if builder.untagged:
        notes.append(f"{builder.untagged} pair(s) have no tags: they count in the 'all' slice only")
    if builder.unpaired:
        notes.append(f"{builder.unpaired} case(s) were recorded on one side only (see 'unpaired')")
    for arm, count in empty.items():
        if count:
            notes.append(f"{count} {arm} output(s) are empty (no text and no tool calls)")
    analysis["notes"] = notes
    return verdicts, analysis


async def _run_judge(
    judge: Judge, jobs: list[_JudgeJob], verdicts: list[PairVerdict], score_margin: float
) -> int:
    """Pairwise verdicts on the sampled pairs; llm-rubric assertions scored by the judge."""
    slots = asyncio.Semaphore(8)
    failures = 0

    async def rubric(job: _JudgeJob) -> None:
        verdict = verdicts[job.index]
        for side, obs in (("old", job.old), ("new", job.new)):
            current = getattr(verdict, side)
            if current is None:
                continue
            results = list(current.assertions)
            for i, assertion in enumerate(job.case.asserts):
                if assertion.type == "llm-rubric" and i < len(results):
                    async with slots:
                        results[i] = await judge.evaluate(assertion, obs, job.case)
            setattr(verdict, side, side_verdict(obs, current.checks, results))
        if verdict.old is not None and verdict.new is not None:
            verdict.worse, verdict.better = flips(verdict.old, verdict.new, score_margin)

    async def one(job: _JudgeJob) -> None:
        nonlocal failures
        if any(a.type == "llm-rubric" for a in job.case.asserts):
            await rubric(job)
        if job.rubric_only:
            return
        async with slots:
            result = await judge.pairwise(job.case, job.old, job.new)
        if result.winner is None:
            failures += 1
        verdicts[job.index].judge = {
            "winner": result.winner,
            "score": result.score,
            "consistent": result.consistent,
            "reason": result.reason,
        }

    try:
        await asyncio.gather(*(one(job) for job in jobs))
    finally:
        await judge.aclose()
    return failures


class _View:
    """Regressions and novel cases (up to ``VIEW_PRIORITY_CAP``) and ``VIEW_CAP`` others."""

    def __init__(self) -> None:
        self.cases: list[dict[str, Any]] = []
        self.others = 0
        self.priority = 0
        self.left_out = 0
        self.distributions: dict[str, dict[str, list[float]]] = {
            key: {"old": [], "new": []} for key in ("latency_ms", "ttft_ms", "cost_usd")
        }

    def _collect(self, entry: dict[str, Any]) -> None:
        for arm in ("old", "new"):
            side = entry.get(arm)
            if not side:
                continue
            for key, values in self.distributions.items():
                value = side.get(key)
                if value is not None and (key == "cost_usd" or side.get("error") is None):
                    values[arm].append(float(value))

    def __call__(self, entry: dict[str, Any]) -> None:
        self._collect(entry)
        if entry.get("triage") in ("regression", "novel"):
            if self.priority < VIEW_PRIORITY_CAP:
                self.priority += 1
                self.cases.append(entry)
            else:
                self.left_out += 1
        elif self.others < VIEW_CAP:
            self.others += 1
            self.cases.append(entry)
        else:
            self.left_out += 1


def build_reports(
    store: Store,
    run_id: str,
    out_dir: str | Path,
    *,
    gates: Sequence[GateCriterion] = (),
    options: AnalysisOptions | None = None,
    judge: Judge | None = None,
    judge_sample: int = 200,
) -> ReportOutcome:
    """Analyse a run and write report.json, report.md, report.html and junit.xml."""
    out = Path(out_dir)
    verdicts, analysis = analyse_run(
        store, run_id, gates=gates, options=options, judge=judge, judge_sample=judge_sample
    )
    view = _View()
    header: dict[str, Any] = {}
    json_path = write_json_report(
        store, run_id, out, verdicts=verdicts, analysis=analysis, on_case=view, header=header
    )
    report = {**header, **analysis, "cases": view.cases, "distributions": view.distributions}
    if view.left_out:
        report["notes"] = [
            *analysis.get("notes", []),
            f"{view.left_out} case(s) are in report.json only (the HTML and Markdown show "
            f"{VIEW_PRIORITY_CAP} regressions/novel and {VIEW_CAP} others at most)",
        ]
    paths = {
        "json": json_path,
        "md": write_markdown(report, out / "report.md"),
        "html": write_html(report, out / "report.html"),
        "junit": write_junit(report, out / "junit.xml"),
    }
    gate = analysis["gate"]
    return ReportOutcome(
        paths, bool(gate["passed"]), analysis.get("watch"), analysis, analysis["notes"], header
    )


__all__ = ["VIEW_CAP", "VIEW_PRIORITY_CAP", "ReportOutcome", "analyse_run", "build_reports"]

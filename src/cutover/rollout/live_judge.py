"""Judge scores on live traffic: the controller's side of a ``judge_score`` gate.

At each look the controller reads the route's answers of the current stage
that this rollout has not judged yet, picks a sample per arm, asks the judge
model to score each against the plan's rubric, and keeps every score (or why
there is none) in the store (``rollout_judgements``). The gate then compares
the arms' mean scores over the stage like any other mean (see
``docs/rollout.md``).

The sample: an answer is eligible when its sample point (the random part of
the gateway's request id, :func:`~cutover.store._rollouts.sample_point`) falls
below the plan's ``sample`` share, and at most ``max_per_look`` eligible
answers per arm are judged at each look, lowest point first; the database
picks them (:meth:`~cutover.store.Store.answers_to_judge`), so a look reads a
few rows whatever the stage's size. The point does not depend on the arm, the
answer or the time, so the judged answers are a random sample of each arm's
answers; answers left over by the cap stay eligible for the next look. A
restarted controller goes on from what the store holds.

Judging needs the answers' text: the gateways must log it (``log: {prompts:
true}``). When a look finds answers but none with text, :class:`LiveJudge`
says so (``blind``) and the controller alerts.

A judge that fails more often on one arm's answers (the candidate's are too
long for its context, say, or trip its content filter) leaves the two means
over different kinds of answers. :func:`judge_failures` compares the arms'
failure rates with the same always-valid confidence sequences as the rate
gates; while they differ, the controller alerts and keeps the judge scores
from the gate, which then cannot pass (the stage holds; never promoted on a
biased comparison).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
import orjson

from cutover.assertions import Judge
from cutover.calls import TargetCaller
from cutover.errors import CutoverError
from cutover.records import Observation
from cutover.rollout._core import rate_bounds
from cutover.rollout.decide import Moments
from cutover.rollout.plan import JudgeConfig
from cutover.rollout.sequential import beta_concentration
from cutover.store import Store
from cutover.store._rollouts import Judgement, sample_point
from cutover.suites._case import Case
from cutover.targets import parse_target

T = TypeVar("T")


def run_blocking(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine ``make()`` to the end from synchronous code: here, or in a
    thread of its own when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cutover-judge") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def logged_messages(prompt: str | None) -> list[dict[str, Any]]:
    """The request's messages as the gateway logged them (a JSON array), or a stand-in."""
    if prompt:
        try:
            messages = orjson.loads(prompt)
        except orjson.JSONDecodeError:
            messages = None
        if isinstance(messages, list) and all(isinstance(m, dict) for m in messages):
            return messages
        return [{"role": "user", "content": prompt}]
    return [{"role": "user", "content": "(the prompt was not logged)"}]


@dataclass(slots=True)
class JudgeLook:
    """What one look's judging did."""

    judged: int = 0
    failed: int = 0
    pending: int = 0
    """Answers not judged (yet): over the cap, or not in the sample."""
    blind: bool = False
    """Answers were there, but the gateways logged none of their text."""
    errors: list[str] = field(default_factory=list)


class LiveJudge:
    """Scores a sample of a rollout's live answers (see the module docs)."""

    def __init__(self, store: Store, config: JudgeConfig) -> None:
        self.store = store
        self.config = config
        self.target = parse_target(config.target)

    def check(self) -> None:
        """Build the judge's client once (blocking): a missing API key or a bad target
        raises its :class:`~cutover.errors.CutoverError` here, before the rollout starts."""

        async def build() -> None:
            await TargetCaller(self.target).aclose()

        run_blocking(build)

    def look(self, rollout_id: str, route: str, since: datetime) -> JudgeLook:
        """Judge the answers picked at this look and keep their scores (blocking)."""
        found = self.store.answers_to_judge(
            rollout_id,
            route,
            since,
            per_arm=self.config.max_per_look,
            sample=self.config.sample,
        )
        result = JudgeLook()
        if found.without_text and not found.with_text:
            result.blind = True
            return result
        chosen = found.chosen
        result.pending = found.with_text + found.without_text - len(chosen)
        if not chosen:
            return result
        texts = self.store.request_texts([row[0] for row in chosen])
        try:
            judgements = run_blocking(lambda: self._judge_all(chosen, texts))
        except CutoverError as exc:  # the judge cannot be called at all: nothing is kept,
            result.failed, result.errors = len(chosen), [str(exc)]  # so the next look retries
            return result
        self.store.record_judgements(rollout_id, judgements)
        for j in judgements:
            if j.score is None:
                result.failed += 1
                if j.error and len(result.errors) < 3:
                    result.errors.append(j.error)
            else:
                result.judged += 1
        return result

    async def _judge_all(
        self,
        chosen: Sequence[tuple[str, str, str | None, datetime]],
        texts: dict[str, tuple[str | None, str]],
    ) -> list[Judgement]:
        gate = asyncio.Semaphore(self.config.concurrency)
        async with Judge(self.target) as judge:

            async def one(row: tuple[str, str, str | None, datetime]) -> Judgement:
                request_id, arm, label, ts = row
                logged = texts.get(request_id)
                if logged is None:
                    return Judgement(request_id, arm, label, ts, None, "the answer was not logged")
                prompt, output = logged
                case = Case(id=request_id, messages=logged_messages(prompt))
                async with gate:
                    verdict = await judge.rubric(
                        case, Observation(target=arm, output=output), self.config.rubric
                    )
                if verdict.score is None:
                    return Judgement(request_id, arm, label, ts, None, verdict.reason)
                return Judgement(request_id, arm, label, ts, float(verdict.score))

            return list(await asyncio.gather(*(one(row) for row in chosen)))


def judge_scores(
    judgements: Iterable[Judgement], slices: Sequence[str] = ()
) -> dict[tuple[str | None, str], Moments]:
    """Mean-score data per (slice or ``None`` for all traffic, arm) from kept judgements."""
    scores: dict[tuple[str | None, str], list[float]] = {}
    for j in judgements:
        if j.score is None:
            continue
        scores.setdefault((None, j.arm), []).append(j.score)
        if j.slice is not None and j.slice in slices:
            scores.setdefault((j.slice, j.arm), []).append(j.score)
    return {key: Moments.of(values) for key, values in scores.items()}


#: The judge-failure comparison's mixtures are tightest at this many judgements per arm.
FAILURES_N_STAR = 200.0


@dataclass(frozen=True, slots=True)
class JudgeFailures:
    """How often the judge failed on each arm's answers, and whether the rates differ."""

    failed: dict[str, int]
    judged: dict[str, int]
    """Answers the judge was asked about (scored or failed), per arm."""
    uneven: bool

    def message(self) -> str:
        def share(arm: str) -> str:
            n = self.judged.get(arm, 0)
            return f"{self.failed.get(arm, 0)} of {n}" + (
                f" ({self.failed.get(arm, 0) / n:.0%})" if n else ""
            )

        return (
            f"the judge fails on the arms' answers at different rates (candidate "
            f"{share('candidate')}, baseline {share('baseline')}): its means would compare "
            "different kinds of answers, so the judge gate holds until the rates agree"
        )


def judge_failures(judgements: Iterable[Judgement], level: float) -> JudgeFailures:
    """The arms' judge-failure rates and whether they differ at ``level``.

    Each arm's failure rate gets the rate gates' one-sided Beta-mixture confidence
    sequence ends at ``level / 4`` each; the rates differ when one arm's low end
    is above the other's high end. With equal rates that happens, at any look
    ever, with probability at most ``level`` (each of the two directions needs
    one of two ends to miss).
    """
    failed = {"baseline": 0, "candidate": 0}
    judged = {"baseline": 0, "candidate": 0}
    for j in judgements:
        if j.arm in judged:
            judged[j.arm] += 1
            failed[j.arm] += j.score is None
    if not failed["baseline"] and not failed["candidate"]:
        return JudgeFailures(failed, judged, False)
    gamma = level / 4.0
    kappa = beta_concentration(FAILURES_N_STAR, gamma)
    b, c = (
        rate_bounds(np.array([float(failed[arm])]), np.array([float(judged[arm])]), gamma, kappa)
        for arm in ("baseline", "candidate")
    )
    uneven = bool(c.low[0] > b.high[0] or b.low[0] > c.high[0])
    return JudgeFailures(failed, judged, uneven)


__all__ = [
    "JudgeFailures",
    "JudgeLook",
    "LiveJudge",
    "judge_failures",
    "judge_scores",
    "logged_messages",
    "sample_point",
]

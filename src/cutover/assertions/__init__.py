"""Evaluating the ``assert`` entries of suite cases on Observations.

::

    from cutover.assertions import Judge, evaluate_all

    results = evaluate_all(case, obs)          # sync; judge types give passed=None
    async with Judge(parse_target("openai:gpt-4o-mini")) as judge:
        graded = await judge.rubric(case, obs, "Apologises and offers a refund")
        verdict = await judge.pairwise(case, old_obs, new_obs)

Every assertion type, its options and examples: ``docs/assertions.md``.
"""

from __future__ import annotations

from cutover.assertions._common import NEEDS_JUDGE, Evaluator
from cutover.assertions._evaluate import EVALUATORS, JUDGE_TYPES, evaluate, evaluate_all
from cutover.assertions._judge import Judge
from cutover.assertions._result import AssertionResult, PairwiseVerdict

__all__ = [
    "EVALUATORS",
    "JUDGE_TYPES",
    "NEEDS_JUDGE",
    "AssertionResult",
    "Evaluator",
    "Judge",
    "PairwiseVerdict",
    "evaluate",
    "evaluate_all",
]

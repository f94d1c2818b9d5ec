"""A judge model for ``llm-rubric`` and ``pairwise``.

:class:`Judge` calls one target (through a
:class:`~cutover.calls.TargetCaller`, so limits, retries and pricing apply).
It never raises for a judge failure: a provider error that outlasts the
retries or an answer that cannot be read gives ``passed=None`` (rubric) or
``winner=None`` (pairwise) with the reason.

``pairwise`` asks twice, once with the old output as answer A and once with
the new output as answer A, to cancel the judge's position bias: a winner is
declared only when both orders agree; otherwise the verdict is a tie with
``consistent=False``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from cutover.assertions._evaluate import evaluate
from cutover.assertions._judge_answers import (
    PairwiseAnswer,
    RubricAnswer,
    UnreadableAnswer,
    parse_pairwise_answer,
    parse_rubric_answer,
)
from cutover.assertions._result import AssertionResult, PairwiseVerdict
from cutover.calls import TargetCaller
from cutover.records import Message, ModelRequest, Observation
from cutover.suites._case import Assertion, Case
from cutover.suites._template import TemplateError, render
from cutover.targets import Target

DEFAULT_RUBRIC_THRESHOLD = 0.5

RUBRIC_SYSTEM = (
    "You are an impartial grader. You are shown a conversation with an AI assistant, "
    "the assistant's answer, and a rubric. Judge only how well the answer satisfies "
    "the rubric. Reply with only a JSON object, no other text: "
    '{"score": <a number from 0 to 1>, "reason": "<one or two sentences>"} '
    "where 1 means the rubric is fully satisfied and 0 means not at all."
)

PAIRWISE_SYSTEM = (
    "You are an impartial judge. You are shown a conversation with an AI assistant and "
    "two candidate answers to it, A and B. Decide which answer better follows the "
    "instructions and serves the user: correct, complete, in the requested format. "
    "Do not let the order of the answers or their length influence you. Reply with only "
    'a JSON object, no other text: {"winner": "A" | "B" | "tie", "reason": "<one sentence>"}'
)

Side = Literal["old", "new"]


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, dict):
                parts.append(f"[{part.get('type', 'part')}]")
        return "\n".join(parts)
    return "" if content is None else str(content)


def conversation_text(messages: list[Message]) -> str:
    """The case's messages as ``[role] text`` blocks (tool calls and results included)."""
    blocks = []
    for message in messages:
        role = str(message.get("role", "user"))
        text = _content_text(message.get("content"))
        for call in message.get("tool_calls") or ():
            function = call.get("function", {}) if isinstance(call, dict) else {}
            text += f"\n(tool call) {function.get('name')}({function.get('arguments', '')})"
        blocks.append(f"[{role}]\n{text.strip()}")
    return "\n\n".join(blocks)


def answer_text(obs: Observation) -> str:
    """What an Observation answered: its text and its tool calls."""
    parts = [obs.output.strip()] if obs.output and obs.output.strip() else []
    parts += [f"(tool call) {tc.name}({tc.arguments})" for tc in obs.tool_calls]
    return "\n".join(parts) if parts else "(empty answer)"


class Judge:
    """Scores outputs with a judge model. Use ``await judge.aclose()`` when done.

    The judge's own target params (``temperature: 0`` is recommended) apply;
    ``calls`` and ``cost_usd`` count what judging cost.
    """

    def __init__(self, target: Target, *, caller: TargetCaller | None = None) -> None:
        self.target = target
        self._owns_caller = caller is None
        self.caller = caller if caller is not None else TargetCaller(target)
        self.calls = 0
        self.cost_usd = 0.0

    async def aclose(self) -> None:
        """Close the caller if this judge made it (a caller passed in stays open)."""
        if self._owns_caller:
            await self.caller.aclose()

    async def __aenter__(self) -> Judge:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- calling the judge ----------------------------------------------------------

    async def _ask(self, system: str, user: str, case_id: str) -> str:
        """The judge's answer text; raises :class:`UnreadableAnswer` on a failed call."""
        request = ModelRequest(
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            params=dict(self.target.params),
            case_id=f"judge:{case_id}",
        )
        obs = await self.caller.call(request)
        self.calls += 1
        self.cost_usd += obs.cost_usd or 0.0
        if obs.error is not None:
            raise UnreadableAnswer(
                f"the judge call failed: {obs.error_class or 'error'}: {obs.error}"
            )
        if not obs.output or not obs.output.strip():
            raise UnreadableAnswer("the judge returned an empty answer")
        return obs.output

    async def evaluate(self, assertion: Assertion, obs: Observation, case: Case) -> AssertionResult:
        """Like :func:`~cutover.assertions.evaluate`, with ``llm-rubric`` scored by this judge
        (``value`` is the rubric, ``threshold`` defaults to 0.5). ``pairwise`` needs both
        Observations: use :meth:`pairwise`."""
        if assertion.type != "llm-rubric" or obs.error is not None:
            return evaluate(assertion, obs, case)
        threshold = DEFAULT_RUBRIC_THRESHOLD if assertion.threshold is None else assertion.threshold
        return await self.rubric(case, obs, assertion.value, threshold=threshold)

    # -- llm-rubric -------------------------------------------------------------------

    async def rubric(
        self,
        case: Case,
        obs: Observation,
        rubric: str,
        *,
        threshold: float = DEFAULT_RUBRIC_THRESHOLD,
    ) -> AssertionResult:
        """Score ``obs`` against ``rubric`` (0..1); passes when ``score >= threshold``."""
        if obs.error is not None:
            return AssertionResult(
                "llm-rubric", False, None, f"the call failed: {obs.error_class or 'error'}"
            )
        if not isinstance(rubric, str) or not rubric.strip():
            return AssertionResult("llm-rubric", None, None, "llm-rubric needs a rubric (value)")
        if "{{" in rubric and case.vars:
            try:
                rubric = render(rubric, case.vars)
            except TemplateError as exc:
                return AssertionResult(
                    "llm-rubric", None, None, f"cannot render the rubric: {exc.message}"
                )
        user = (
            f"<conversation>\n{conversation_text(case.messages)}\n</conversation>\n\n"
            f"<answer>\n{answer_text(obs)}\n</answer>\n\n"
            f"<rubric>\n{rubric.strip()}\n</rubric>"
        )
        try:
            parsed: RubricAnswer = parse_rubric_answer(
                await self._ask(RUBRIC_SYSTEM, user, case.id)
            )
        except UnreadableAnswer as exc:
            return AssertionResult("llm-rubric", None, None, str(exc))
        except Exception as exc:  # noqa: BLE001 - a judge failure is a result, never a crash
            return AssertionResult(
                "llm-rubric", None, None, f"the judge failed: {type(exc).__name__}: {exc}"
            )
        passed = parsed.score >= threshold
        sign = ">=" if passed else "<"
        reason = f"score {parsed.score:.2f} {sign} {threshold:g}"
        if parsed.reason:
            reason += f": {parsed.reason}"
        return AssertionResult("llm-rubric", passed, parsed.score, reason)

    # -- pairwise ---------------------------------------------------------------------

    def _pairwise_prompt(
        self, case: Case, a: Observation, b: Observation, criteria: str | None
    ) -> str:
        focus = f"\n\nJudge them by this criterion: {criteria.strip()}" if criteria else ""
        return (
            f"<conversation>\n{conversation_text(case.messages)}\n</conversation>\n\n"
            f"<answer_A>\n{answer_text(a)}\n</answer_A>\n\n"
            f"<answer_B>\n{answer_text(b)}\n</answer_B>{focus}\n\n"
            "Which answer is better: A, B, or tie?"
        )

    async def _order(
        self, case: Case, first: Observation, second: Observation, criteria: str | None
    ) -> PairwiseAnswer | str:
        """The judge's choice with ``first`` as A, or why there is none."""
        try:
            prompt = self._pairwise_prompt(case, first, second, criteria)
            return parse_pairwise_answer(await self._ask(PAIRWISE_SYSTEM, prompt, case.id))
        except UnreadableAnswer as exc:
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - a judge failure is a verdict, never a crash
            return f"the judge failed: {type(exc).__name__}: {exc}"

    async def pairwise(
        self, case: Case, old: Observation, new: Observation, *, criteria: str | None = None
    ) -> PairwiseVerdict:
        """Which of ``old`` and ``new`` better answers ``case``, asked in both orders.

        ``criteria`` (a ``pairwise`` assertion's value) narrows what "better" means.
        """
        if old.error is not None or new.error is not None:
            return _failed_sides(old, new)
        first, second = await asyncio.gather(
            self._order(case, old, new, criteria),  # old is A
            self._order(case, new, old, criteria),  # new is A
        )
        if isinstance(first, str) or isinstance(second, str):
            problems = [p for p in (first, second) if isinstance(p, str)]
            return PairwiseVerdict(None, None, "; ".join(dict.fromkeys(problems)), False)
        old_first = _side(first.choice, a_is="old")
        new_first = _side(second.choice, a_is="new")
        why = _reasons(first, second)
        if old_first == new_first:
            score = {"new": 1.0, "old": -1.0, "tie": 0.0}[old_first]
            said = "a tie" if old_first == "tie" else f"{old_first} is better"
            return PairwiseVerdict(old_first, score, f"both orders: {said}{why}", True)
        return PairwiseVerdict(
            "tie",
            0.0,
            f"the orders disagree (old as A: {old_first}; new as A: {new_first}): "
            f"position bias or a close call{why}",
            False,
        )


def _side(choice: str, *, a_is: Side) -> str:
    if choice == "tie":
        return "tie"
    b_is = "new" if a_is == "old" else "old"
    return a_is if choice == "A" else b_is


def _reasons(first: PairwiseAnswer, second: PairwiseAnswer) -> str:
    parts = [
        f"old as A: {first.reason}" if first.reason else "",
        f"new as A: {second.reason}" if second.reason else "",
    ]
    shown = " | ".join(p for p in parts if p)
    return f" ({shown})" if shown else ""


def _failed_sides(old: Observation, new: Observation) -> PairwiseVerdict:
    """A verdict without asking the judge: at least one side's call failed."""
    if old.error is not None and new.error is not None:
        return PairwiseVerdict(
            "tie", 0.0, f"both calls failed: old {old.error_class}, new {new.error_class}", True
        )
    if old.error is not None:
        return PairwiseVerdict("new", 1.0, f"the old call failed: {old.error_class}", True)
    return PairwiseVerdict("old", -1.0, f"the new call failed: {new.error_class}", True)


__all__ = [
    "DEFAULT_RUBRIC_THRESHOLD",
    "PAIRWISE_SYSTEM",
    "RUBRIC_SYSTEM",
    "Judge",
    "answer_text",
    "conversation_text",
]

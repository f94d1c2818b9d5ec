"""The judge (llm-rubric, pairwise) against the local OpenAI-compatible server."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from cutover.assertions import Judge, PairwiseVerdict
from cutover.assertions._judge_answers import parse_pairwise_answer, parse_rubric_answer
from cutover.calls import TargetCaller
from cutover.records import Observation
from cutover.suites._case import Case
from cutover.targets import parse_target
from cutover.testing import Fault, OpenAIServer, WireRequest

CASE = Case(
    id="refund-1",
    messages=[
        {"role": "system", "content": "You are the support agent of Acme."},
        {"role": "user", "content": "I was charged twice, can I get a refund?"},
    ],
    vars={"topic": "refund"},
)
GOOD = Observation(target="new", output="Yes: the duplicate charge will be refunded within 5 days.")
BAD = Observation(target="old", output="Please read our terms of service.")
FAILED = Observation(target="old", error="HTTP 503", error_class="server_error")


def _answer(request: WireRequest, tag: str) -> str:
    match = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", request.last_user_text, re.S)
    assert match is not None, request.last_user_text
    return match.group(1)


def rubric_responder(request: WireRequest) -> str:
    assert "rubric" in request.system
    answer = _answer(request, "answer")
    score = 0.9 if "refund" in answer else 0.1
    return orjson.dumps({"score": score, "reason": f"mentions refund: {score > 0.5}"}).decode()


def fair_pairwise(request: WireRequest) -> str:
    """Prefers the answer that mentions a refund, wherever it is."""
    letter = "A" if "refund" in _answer(request, "answer_A") else "B"
    return f'{{"winner": "{letter}", "reason": "answer {letter} offers the refund"}}'


async def _serve(responder: Callable[[WireRequest], Any]) -> OpenAIServer:
    return await OpenAIServer(responder=responder).start()


@pytest.fixture
async def servers() -> AsyncIterator[list[OpenAIServer]]:
    started: list[OpenAIServer] = []
    yield started
    for server in started:
        await server.close()


async def judge_for(
    servers: list[OpenAIServer], responder: Callable[[WireRequest], Any], **target: Any
) -> Judge:
    server = await _serve(responder)
    servers.append(server)
    return Judge(parse_target(f"openai:judge-model@{server.base_url}", **target))


async def test_rubric_passes_and_fails(servers: list[OpenAIServer]) -> None:
    judge = await judge_for(servers, rubric_responder)
    try:
        good = await judge.rubric(CASE, GOOD, "Offers a {{topic}} for the duplicate charge")
        bad = await judge.rubric(CASE, BAD, "Offers a refund for the duplicate charge")
        strict = await judge.rubric(CASE, GOOD, "Offers a refund", threshold=0.95)
    finally:
        await judge.aclose()
    assert (good.type, good.passed, good.score) == ("llm-rubric", True, 0.9)
    assert good.reason == "score 0.90 >= 0.5: mentions refund: True"
    assert (bad.passed, bad.score) == (False, 0.1)
    assert strict.passed is False and strict.reason.startswith("score 0.90 < 0.95")
    body = servers[0].received[0].body
    assert body["model"] == "judge-model"
    prompt = body["messages"][1]["content"]
    assert "Offers a refund for the duplicate charge" in prompt  # {{topic}} rendered
    assert "[user]\nI was charged twice" in prompt and "<answer>\nYes: the duplicate" in prompt
    assert judge.calls == 3


async def test_rubric_reads_a_fenced_answer_with_preamble(servers: list[OpenAIServer]) -> None:
    judge = await judge_for(
        servers, lambda r: 'Sure.\n```json\n{"score": "75%", "reasoning": "mostly"}\n```'
    )
    async with judge:
        res = await judge.rubric(CASE, GOOD, "Is helpful")
    assert (res.passed, res.score, res.reason) == (True, 0.75, "score 0.75 >= 0.5: mostly")


async def test_rubric_garbage_answer_is_unevaluated(servers: list[OpenAIServer]) -> None:
    judge = await judge_for(servers, lambda r: "I like turtles.")
    async with judge:
        res = await judge.rubric(CASE, GOOD, "Is helpful")
        out_of_range = Judge(judge.target, caller=judge.caller)
        servers[0].responder = lambda r: '{"score": 8, "reason": "eight out of ten"}'
        res2 = await out_of_range.rubric(CASE, GOOD, "Is helpful")
    assert res.passed is None and res.score is None
    assert res.reason == "no score in the judge's answer 'I like turtles.'"
    assert res2.passed is None and "outside 0..1" in res2.reason


async def test_rubric_on_server_errors_is_unevaluated(servers: list[OpenAIServer]) -> None:
    server = await _serve(rubric_responder)
    servers.append(server)
    server.inject(Fault.status(500), times=10)
    target = parse_target(f"openai:judge-model@{server.base_url}", max_retries=2)

    async def no_sleep(_: float) -> None:
        return None

    caller = TargetCaller(target, sleep=no_sleep)
    judge = Judge(target, caller=caller)
    res = await judge.rubric(CASE, GOOD, "Is helpful")
    await judge.aclose()  # the caller was passed in: it stays open
    await caller.aclose()
    assert res.passed is None and res.score is None
    assert res.reason.startswith("the judge call failed: server_error")
    assert server.requests_total == 3  # 1 + 2 retries


async def test_rubric_on_a_failed_call_fails_without_asking(servers: list[OpenAIServer]) -> None:
    judge = await judge_for(servers, rubric_responder)
    async with judge:
        res = await judge.rubric(CASE, FAILED, "Is helpful")
        empty = await judge.rubric(CASE, GOOD, "  ")
    assert (res.passed, res.reason) == (False, "the call failed: server_error")
    assert empty.passed is None
    assert servers[0].requests_total == 0


async def test_pairwise_fair_judge_agrees_in_both_orders(servers: list[OpenAIServer]) -> None:
    judge = await judge_for(servers, fair_pairwise)
    async with judge:
        new_better = await judge.pairwise(CASE, BAD, GOOD)
        old_better = await judge.pairwise(CASE, GOOD, BAD)
    assert (new_better.winner, new_better.score, new_better.consistent) == ("new", 1.0, True)
    assert new_better.reason.startswith("both orders: new is better")
    assert (old_better.winner, old_better.score, old_better.consistent) == ("old", -1.0, True)
    prompts = [r.body["messages"][1]["content"] for r in servers[0].received[:2]]
    a_sides = sorted(_between(p, "answer_A") for p in prompts)
    assert a_sides == sorted([str(BAD.output), str(GOOD.output)])  # each side was A once


def _between(text: str, tag: str) -> str:
    match = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", text, re.S)
    assert match is not None
    return match.group(1)


async def test_pairwise_position_bias_is_a_tie(servers: list[OpenAIServer]) -> None:
    judge = await judge_for(servers, lambda r: "A")
    async with judge:
        verdict = await judge.pairwise(CASE, BAD, GOOD)
    assert verdict.winner == "tie" and verdict.score == 0.0 and verdict.consistent is False
    assert "old as A: old; new as A: new" in verdict.reason


async def test_pairwise_judge_saying_tie(servers: list[OpenAIServer]) -> None:
    judge = await judge_for(servers, lambda r: '{"winner": "tie", "reason": "same"}')
    async with judge:
        verdict = await judge.pairwise(CASE, BAD, GOOD)
    assert verdict == PairwiseVerdict("tie", 0.0, verdict.reason, True)


async def test_pairwise_garbage_and_errors_give_no_winner(servers: list[OpenAIServer]) -> None:
    judge = await judge_for(servers, lambda r: "Both have merits, hard to say.")
    async with judge:
        verdict = await judge.pairwise(CASE, BAD, GOOD)
    assert (verdict.winner, verdict.score, verdict.consistent) == (None, None, False)
    assert "neither A, B nor tie" in verdict.reason

    judge = await judge_for(servers, fair_pairwise, max_retries=0)
    servers[-1].inject(Fault.status(500), times=10)
    async with judge:
        verdict = await judge.pairwise(CASE, BAD, GOOD)
    assert verdict.winner is None and verdict.score is None
    assert verdict.reason.startswith("the judge call failed: server_error")


async def test_pairwise_with_a_failed_side(servers: list[OpenAIServer]) -> None:
    judge = await judge_for(servers, fair_pairwise)
    async with judge:
        assert (await judge.pairwise(CASE, FAILED, GOOD)).winner == "new"
        assert (await judge.pairwise(CASE, GOOD, FAILED)).winner == "old"
        both = await judge.pairwise(CASE, FAILED, FAILED)
    assert both.winner == "tie" and both.reason.startswith("both calls failed")
    assert servers[0].requests_total == 0


@pytest.mark.parametrize(
    ("answer", "choice"),
    [
        ("A", "A"), ("B", "B"), ("**B**", "B"), ("Answer: A", "A"), ("Final answer: B.", "B"),
        ("tie", "tie"), ('{"winner": "B", "reason": "ok"}', "B"),
        ("```json\n{\"choice\": \"A\"}\n```", "A"), ("The winner is B because it is complete", "B"),
        ("Response B is better.", "B"), ("A is clearly better.", "A"),
        ("Some thoughts first.\n\nVerdict: A", "A"),
    ],
)  # fmt: skip
def test_pairwise_answers_are_read_leniently(answer: str, choice: str) -> None:
    assert parse_pairwise_answer(answer).choice == choice


@pytest.mark.parametrize(
    ("answer", "score"),
    [
        ('{"score": 0.8, "reason": "good"}', 0.8), ('Here: {"score": "80%", "reason": "x"}', 0.8),
        ("Score: 0.7 because it is ok", 0.7), ('{"pass": true}', 1.0), ('{"pass": false}', 0.0),
    ],
)  # fmt: skip
def test_rubric_answers_are_read_leniently(answer: str, score: float) -> None:
    assert parse_rubric_answer(answer).score == score


async def test_judge_evaluate_scores_rubrics_and_delegates_the_rest(
    servers: list[OpenAIServer],
) -> None:
    from cutover.suites._case import Assertion

    judge = await judge_for(servers, rubric_responder)
    async with judge:
        rubric = await judge.evaluate(
            Assertion("llm-rubric", "Offers a refund", threshold=0.95), GOOD, CASE
        )
        plain = await judge.evaluate(Assertion("contains", "refund"), GOOD, CASE)
        failed = await judge.evaluate(Assertion("llm-rubric", "Offers a refund"), FAILED, CASE)
    assert (rubric.passed, rubric.score) == (False, 0.9)
    assert plain.passed is True
    assert (failed.passed, failed.reason) == (False, "the call failed: server_error")
    assert servers[0].requests_total == 1


async def test_pairwise_criteria_reach_the_prompt(servers: list[OpenAIServer]) -> None:
    judge = await judge_for(servers, fair_pairwise)
    async with judge:
        verdict = await judge.pairwise(CASE, BAD, GOOD, criteria="Which is more concise?")
    assert verdict.winner == "new"
    prompt = servers[0].received[0].body["messages"][1]["content"]
    assert "Judge them by this criterion: Which is more concise?" in prompt

"""The rollout controller end to end: a real gateway on PostgreSQL, a local upstream, the plan.

The gateway serves on a real port with its store worker writing the request
log to PostgreSQL; traffic comes through the official OpenAI SDK from many
sticky users; the controller reads the same database, judges each stage and
sets the weights the gateway follows (LISTEN/NOTIFY). One rollout promotes to
100%; in the other the candidate model fails a third of its requests and the
controller rolls it back by itself. Each leaves a complete record.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import openai
import pytest

from cutover.gateway import Gateway, GatewayConfig
from cutover.rollout.controller import Controller, RolloutError
from cutover.rollout.plan import load_plan
from cutover.store import Store, open_store
from cutover.store._rollouts import RolloutRow
from cutover.testing import Fault, OpenAIServer, serve_app
from cutover.testing._respond import WireRequest

pytestmark = pytest.mark.postgres

KEY = "sk-client-1"
BASE, CAND = "gpt-4o-mini", "gpt-4.1-mini"


def write_plan(tmp_path: Path, upstream: str, **gate: Any) -> Path:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"""route: bot
candidate: openai:{CAND}@{upstream}
stages:
  - {{weight: 20, min_requests: 150, min_duration: 0s}}
  - {{weight: 50, min_requests: 150}}
  - {{weight: 100}}
gates:
  - {{metric: error_rate, margin: 0.1, hard_limit: 0.25, critical: true}}
  - {{metric: latency_p95_ms, margin: 200%}}
  - {{metric: refusal_rate, margin: 0.1}}
  - {{metric: invalid_output_rate, check: empty, margin: 0.1}}
owner: oncall@example.com
check_interval: 1s
"""
    )
    return plan


@asynccontextmanager
async def gateway(db: str, upstream: str, *, prompts: bool = False) -> AsyncIterator[str]:
    cfg = GatewayConfig.model_validate(
        {
            "client_keys": [KEY],
            "store": db,
            "log": {"flush_interval_s": 0.05, "prompts": prompts},
            "routes": {
                "bot": {
                    "baseline": f"openai:{BASE}@{upstream}",
                    "candidate": f"openai:{CAND}@{upstream}",
                    "weight": 0,
                    "sticky": "user",
                    "retries": 0,
                }
            },
        }
    )
    async with serve_app(Gateway(cfg, env={}).app()) as root:
        yield root


async def traffic(root: str, n: int, offset: int, *, medical_every: int = 0) -> dict[str, int]:
    """``n`` requests from as many users; how many each arm served. With ``medical_every``,
    every so many users ask a medical question, labelled with the slice header."""
    async with openai.AsyncOpenAI(
        base_url=f"{root}/v1", api_key=KEY, max_retries=0, timeout=10
    ) as client:
        return await _send(client, n, offset, medical_every)


async def _send(
    client: openai.AsyncOpenAI, n: int, offset: int, medical_every: int = 0
) -> dict[str, int]:
    arms = {"baseline": 0, "candidate": 0}

    async def one(i: int) -> None:
        user = offset + i
        medical = medical_every > 0 and user % medical_every == 0
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model="bot",
                messages=[{"role": "user", "content": "my medication dose?" if medical else "hi"}],
                user=f"u{user}",
                extra_headers={"x-cutover-slice": "medical"} if medical else None,
            )
            arms[raw.headers["x-cutover-arm"]] += 1
        except openai.APIStatusError as exc:
            arms[exc.response.headers["x-cutover-arm"]] += 1

    for start in range(0, n, 50):
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + 50))))
    return arms


async def drive(
    controller: Controller,
    root: str,
    upstream: OpenAIServer,
    *,
    fail: bool,
    medical_every: int = 0,
) -> str:
    """Traffic and looks until the rollout ends; its last action."""
    offset = 0
    for _ in range(60):
        if fail:  # a third of the candidate's requests fail
            upstream.faults.clear()
            upstream.inject(Fault.status(500), model=CAND, times=60)
        await traffic(root, 300, offset, medical_every=medical_every)
        offset += 300
        await asyncio.sleep(0.3)  # the store worker writes the log
        look = await asyncio.to_thread(controller.step)
        if look.action in ("complete", "rollback"):
            return look.action
    raise AssertionError("the rollout did not end")


async def test_rollout_promotes_to_full_traffic_with_a_record(
    tmp_path: Path, postgres_url: str
) -> None:
    async with OpenAIServer() as upstream, gateway(postgres_url, upstream.base_url) as root:
        await traffic(root, 10, 0)  # the gateway seeded its route in the store
        plan = load_plan(write_plan(tmp_path, upstream.base_url))
        with open_store(postgres_url) as store:
            controller = Controller(store, plan, notify=lambda payload: [])
            row = controller.start()
            assert controller.start().id == row.id  # a restarted controller resumes it
            action = await drive(controller, root, upstream, fail=False)
            assert action == "complete"
            final = store.get_rollout(row.id)
            events = store.rollout_events(row.id)
            route = store.gateway_route("bot")
        arms = await traffic(root, 40, 10_000)  # the gateway follows: all on the candidate
    assert final is not None and final.status == "promoted"
    assert route is not None and route.weight == 100
    assert arms == {"baseline": 0, "candidate": 40}
    kinds = [e.kind for e in events]
    assert kinds[:2] == ["start", "stage_weight"] and kinds[-1] == "complete"
    promotions = [e for e in events if e.kind == "promote"]
    assert [(e.weight_before, e.weight_after) for e in promotions] == [(20, 50), (50, 100)]
    for event in promotions:
        assert event.detail is not None and event.detail["outcome"] == "promote"
        gates = {g["metric"]: g for g in event.detail["gates"]}
        assert set(gates) == {
            "error_rate",
            "latency_p95_ms",
            "refusal_rate",
            "invalid_output_rate",
        }
        assert gates["invalid_output_rate"]["candidate"] == 0.0  # checked live too
        assert gates["refusal_rate"]["candidate"] == 0.0  # every answer checked live
        assert all(g["status"] == "pass" and None not in g["interval"] for g in gates.values())
        assert event.detail["requests"]["candidate"] >= 150


async def test_injected_regression_is_rolled_back_automatically(
    tmp_path: Path, postgres_url: str
) -> None:
    async with OpenAIServer() as upstream, gateway(postgres_url, upstream.base_url) as root:
        await traffic(root, 10, 0)
        plan = load_plan(write_plan(tmp_path, upstream.base_url))
        sent: list[dict[str, Any]] = []
        with open_store(postgres_url) as store:
            controller = Controller(store, plan, notify=lambda p: sent.append(p) or [])
            row = controller.start()
            action = await drive(controller, root, upstream, fail=True)
            final = store.get_rollout(row.id)
            events = store.rollout_events(row.id)
            route = store.gateway_route("bot")
            audit = store.gateway_audit(10)
        upstream.faults.clear()
        arms = await traffic(root, 40, 20_000)
    assert action == "rollback"
    assert final is not None and final.status == "rolled_back"
    assert route is not None and route.weight == 0
    assert arms == {"baseline": 40, "candidate": 0}  # every replica's users are back
    rollback = events[-1]
    assert rollback.kind == "rollback" and rollback.weight_after == 0
    assert rollback.detail is not None and rollback.detail["outcome"] == "rollback"
    error_gate = next(g for g in rollback.detail["gates"] if g["metric"] == "error_rate")
    assert error_gate["candidate"] > 0.2 and error_gate["status"] in ("over_limit", "rollback")
    assert [p["event"] for p in sent] == ["started", "rolled_back"]
    assert audit[0].action == "rollout_rollback" and audit[0].actor.startswith("rollout:")


@asynccontextmanager
async def rollout_behind_gateway(
    tmp_path: Path,
    postgres_url: str,
    reply: Callable[[WireRequest], str],
    plan: Callable[[str], str] | None = None,
    *,
    prompts: bool = False,
) -> AsyncIterator[tuple[str, OpenAIServer, Store, Controller, RolloutRow]]:
    """A gateway on PostgreSQL in front of ``reply`` and a started rollout of ``plan``
    (its text for the upstream's URL; :func:`write_plan`'s plan when not given)."""
    async with (
        OpenAIServer(responder=reply) as upstream,
        gateway(postgres_url, upstream.base_url, prompts=prompts) as root,
    ):
        await traffic(root, 10, 0)
        if plan is None:
            path = write_plan(tmp_path, upstream.base_url)
        else:
            path = tmp_path / "plan.yaml"
            path.write_text(plan(upstream.base_url))
        with open_store(postgres_url) as store:
            controller = Controller(store, load_plan(path), notify=lambda p: [])
            yield root, upstream, store, controller, controller.start()


async def test_candidate_refusing_more_is_rolled_back_on_live_refusal_checks(
    tmp_path: Path, postgres_url: str
) -> None:
    count = 0

    def reply(wire: WireRequest) -> str:
        nonlocal count
        count += 1
        if wire.model == CAND and count % 3 == 0:  # a third of the candidate's answers
            return "I'm sorry, but I can't help with that request."
        return f"Here is the answer to: {wire.last_user_text}"

    async with rollout_behind_gateway(tmp_path, postgres_url, reply) as (
        root,
        upstream,
        store,
        controller,
        row,
    ):
        action = await drive(controller, root, upstream, fail=False)
        events = store.rollout_events(row.id)
    assert action == "rollback"
    gates = {g["metric"]: g for g in events[-1].detail["gates"]}  # type: ignore[index]
    assert gates["refusal_rate"]["status"] == "rollback"
    assert gates["refusal_rate"]["baseline"] == 0.0 and gates["refusal_rate"]["candidate"] > 0.2
    assert gates["error_rate"]["candidate"] == 0.0  # the answers were 200s: only the text tells


async def test_plan_must_fit_the_route(tmp_path: Path, postgres_url: str) -> None:
    async with OpenAIServer() as upstream, gateway(postgres_url, upstream.base_url) as root:
        await traffic(root, 2, 0)
        other = write_plan(tmp_path, "http://127.0.0.1:1/v1")
        with open_store(postgres_url) as store:
            with pytest.raises(RolloutError, match="not the route's candidate"):
                Controller(store, load_plan(other)).start()
            assert store.latest_rollout("bot") is None  # nothing changed


def test_a_judge_gate_without_a_judge_is_refused_before_anything_changes(
    tmp_path: Path,
) -> None:
    """A judge_score gate needs the model and rubric that score live answers: refused at
    start with the field, nothing written."""
    path = write_plan(tmp_path, "http://127.0.0.1:1/v1")
    path.write_text(
        path.read_text().replace("owner:", "  - {metric: judge_score, margin: 0.05}\nowner:")
    )
    plan = load_plan(path)
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        with pytest.raises(RolloutError) as caught:
            Controller(store, plan).start()
        assert caught.value.field == "gates.4.judge"
        assert "judge:" in (caught.value.hint or "")
        assert store.latest_rollout("bot") is None


SLICE_PLAN = """route: bot
candidate: openai:{cand}@{upstream}
stages:
  - {{weight: 20, min_requests: 150, min_duration: 0s}}
  - {{weight: 50, min_requests: 150}}
  - {{weight: 100}}
gates:
  - {{metric: error_rate, margin: 0.1}}
  - {{metric: refusal_rate, margin: 0.3, slices: [medical]}}
owner: oncall@example.com
check_interval: 1s
"""


async def test_a_regression_on_one_slice_is_rolled_back_on_that_slice(
    tmp_path: Path, postgres_url: str
) -> None:
    """The candidate refuses every medical question (a fifth of the users, labelled by the
    x-cutover-slice header): within the margin over all traffic, far beyond it on the slice."""

    def reply(wire: WireRequest) -> str:
        if wire.model == CAND and "medication" in wire.last_user_text:
            return "I'm sorry, but I can't help with that request."
        return f"Here is the answer to: {wire.last_user_text}"

    def plan(upstream: str) -> str:
        return SLICE_PLAN.format(cand=CAND, upstream=upstream)

    async with rollout_behind_gateway(tmp_path, postgres_url, reply, plan) as (
        root,
        upstream,
        store,
        controller,
        row,
    ):
        action = await drive(controller, root, upstream, fail=False, medical_every=5)
        events = store.rollout_events(row.id)
    assert action == "rollback"
    gates = {(g["metric"], g["scope"]): g for g in events[-1].detail["gates"]}  # type: ignore[index]
    medical = gates[("refusal_rate", "medical")]
    assert medical["status"] == "rollback"
    assert medical["baseline"] == 0.0 and medical["candidate"] == 1.0
    overall = gates[("refusal_rate", "all")]
    assert overall["status"] != "rollback" and 0.1 < overall["candidate"] < 0.3
    assert events[-1].detail["cause"] == "beyond_margin"  # type: ignore[index]


def judge_plan(upstream: str, judge: str) -> str:
    return f"""route: bot
candidate: openai:{CAND}@{upstream}
stages:
  - {{weight: 30, min_requests: 150, min_duration: 0s}}
  - {{weight: 100}}
gates:
  - {{metric: error_rate, margin: 0.1}}
  - metric: judge_score
    margin: 0.15
    judge:
      target: openai:judge-model@{judge}
      rubric: The answer helps the user with what they asked.
      max_per_look: 40
owner: oncall@example.com
check_interval: 1s
"""


def rubric_score(wire: WireRequest) -> str:
    """The judge: 0.2 for a curt answer, else 0.7 to 0.95 by the answer's text."""
    answer = wire.last_user_text.split("<answer>\n", 1)[1].split("\n</answer>", 1)[0]
    score = 0.2 if answer.startswith("No.") else 0.7 + (sum(map(ord, answer)) % 6) * 0.05
    return f'{{"score": {score:.2f}, "reason": "scored"}}'


@asynccontextmanager
async def judged_rollout(
    tmp_path: Path,
    postgres_url: str,
    reply: Callable[[WireRequest], str],
    judge_reply: Callable[[WireRequest], str] = rubric_score,
) -> AsyncIterator[tuple[str, OpenAIServer, OpenAIServer, Store, Controller, RolloutRow]]:
    """A gateway logging answer text to PostgreSQL in front of ``reply``, a judge answering
    with ``judge_reply`` and a started rollout of :func:`judge_plan`."""
    async with (
        OpenAIServer(responder=judge_reply) as judge,
        rollout_behind_gateway(
            tmp_path,
            postgres_url,
            reply,
            lambda upstream: judge_plan(upstream, judge.base_url),
            prompts=True,
        ) as (root, upstream, store, controller, row),
    ):
        yield root, upstream, judge, store, controller, row


@pytest.mark.parametrize("curt", [False, True], ids=["as-good", "worse"])
async def test_judge_scores_of_live_answers_promote_or_roll_back(
    tmp_path: Path, postgres_url: str, curt: bool
) -> None:
    """The controller judges a sample of both arms' logged answers at each look: the same
    quality is promoted; a candidate the judge scores far lower is rolled back."""

    def reply(wire: WireRequest) -> str:
        if curt and wire.model == CAND:
            return "No."
        return f"Here is the answer to {wire.last_user_text} for user {wire.body.get('user')}"

    async with judged_rollout(tmp_path, postgres_url, reply) as (
        root,
        upstream,
        judge,
        store,
        controller,
        row,
    ):
        action = await drive(controller, root, upstream, fail=False)
        events = store.rollout_events(row.id)
        kept = store.rollout_judgements(row.id, row.started_at)
    assert action == ("rollback" if curt else "complete")
    decided = next(e for e in events if e.kind in ("rollback", "promote"))
    gate = next(g for g in decided.detail["gates"] if g["metric"] == "judge_score")  # type: ignore[index]
    assert gate["status"] == ("rollback" if curt else "pass")
    assert gate["n"]["baseline"] >= 40 and gate["n"]["candidate"] >= 40
    if curt:
        assert gate["candidate"] == pytest.approx(0.2) and gate["baseline"] > 0.7
    # every judged answer is kept once, both arms sampled, at most 40 per arm per look
    assert len({j.request_id for j in kept}) == len(kept)
    assert {j.arm for j in kept} == {"baseline", "candidate"}
    assert all(j.score is not None for j in kept)
    assert len(judge.received) == len(kept)


async def test_a_judge_failing_more_on_one_arm_holds_the_stage_and_alerts(
    tmp_path: Path, postgres_url: str
) -> None:
    """The judge cannot score about half of the candidate's answers (and scores all of the
    baseline's): the means it gets would compare different kinds of answers, so the judge
    gate is left without data (``no_data``, where the scored half alone would feed it) and
    the stage holds, with one alert."""

    def reply(wire: WireRequest) -> str:
        who = "Candidate answer" if wire.model == CAND else "Here is the answer"
        return f"{who} to {wire.last_user_text} for user {wire.body.get('user')}"

    def judge_reply(wire: WireRequest) -> str:
        answer = wire.last_user_text.split("<answer>\n", 1)[1]
        if answer.startswith("Candidate") and sum(map(ord, answer)) % 2 == 0:
            return "I cannot rate this answer."  # no score: a judge failure
        return rubric_score(wire)

    async with judged_rollout(tmp_path, postgres_url, reply, judge_reply) as (
        root,
        _,
        _,
        store,
        controller,
        row,
    ):
        actions = []
        for k in range(4):
            await traffic(root, 300, 1_000 + 300 * k)
            await asyncio.sleep(0.3)  # the store worker writes the log
            look = await asyncio.to_thread(controller.step)
            actions.append(look.action)
        final = store.get_rollout(row.id)
        events = store.rollout_events(row.id)
        kept = store.rollout_judgements(row.id, row.started_at)
    assert actions == ["hold"] * 4
    assert final is not None and (final.status, final.stage) == ("running", 0)
    assert look.decision is not None and look.decision.minimums_met
    gate = next(g for g in look.decision.gates if g.metric == "judge_score")
    assert gate.status == "no_data"
    failed = {
        arm: sum(j.score is None for j in kept if j.arm == arm) for arm in ("baseline", "candidate")
    }
    assert failed["baseline"] == 0 and failed["candidate"] >= 20
    alerts = [e for e in events if e.kind == "alert"]
    assert [a.detail["problem"] for a in alerts] == ["judge_uneven"]  # type: ignore[index]
    assert "candidate" in alerts[0].detail["message"]  # type: ignore[index]

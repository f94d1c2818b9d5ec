"""The live judge's sample, and the controller's alerts when a gate cannot be fed.

The store is real (SQLite); the request log is written as a gateway writes it,
and the judge is the local OpenAI-compatible server.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cutover.rollout.controller import Controller, RolloutError
from cutover.rollout.live_judge import judge_failures, judge_scores, logged_messages
from cutover.rollout.plan import load_plan
from cutover.store import GatewayRequestRow, open_store
from cutover.store._rollouts import Judgement
from cutover.store._schema import utcnow
from cutover.testing import OpenAIServer
from cutover.testing._respond import WireRequest

CAND = "openai:gpt-4.1-mini@http://127.0.0.1:1/v1"


def test_logged_messages_and_scores_per_scope() -> None:
    assert logged_messages('[{"role": "user", "content": "hi"}]') == [
        {"role": "user", "content": "hi"}
    ]
    assert logged_messages("not json") == [{"role": "user", "content": "not json"}]
    assert logged_messages(None)[0]["content"] == "(the prompt was not logged)"
    now = utcnow()
    kept = [
        Judgement("a", "baseline", "medical", now, 0.5),
        Judgement("b", "baseline", None, now, 1.0),
        Judgement("c", "candidate", "medical", now, 0.25),
        Judgement("d", "candidate", "legal", now, None, "timeout"),
    ]
    scores = judge_scores(kept, slices=("medical",))
    assert scores[(None, "baseline")].n == 2 and scores[(None, "baseline")].total == 1.5
    assert scores[("medical", "candidate")].n == 1
    assert (None, "candidate") in scores and ("legal", "candidate") not in scores


def kept(arm: str, n: int, failed: int) -> list[Judgement]:
    now = utcnow()
    return [
        Judgement(f"{arm}-{i}", arm, None, now, None if i < failed else 0.8, "unparseable")
        for i in range(n)
    ]


def test_judge_failures_uneven_only_when_the_arms_rates_differ() -> None:
    same = judge_failures(kept("baseline", 200, 10) + kept("candidate", 200, 14), 0.05)
    assert not same.uneven
    assert same.failed == {"baseline": 10, "candidate": 14}
    assert same.judged == {"baseline": 200, "candidate": 200}
    worse = judge_failures(kept("baseline", 100, 2) + kept("candidate", 100, 30), 0.05)
    assert worse.uneven
    assert "candidate 30 of 100 (30%), baseline 2 of 100 (2%)" in worse.message()
    # the other way round counts as much: the means are biased either way
    assert judge_failures(kept("baseline", 100, 30) + kept("candidate", 100, 2), 0.05).uneven
    assert not judge_failures(kept("baseline", 50, 0) + kept("candidate", 50, 0), 0.05).uneven
    # one arm not judged yet: nothing to compare
    assert not judge_failures(kept("candidate", 40, 40), 0.05).uneven
    # a small sample is not enough to call a difference
    assert not judge_failures(kept("baseline", 10, 0) + kept("candidate", 10, 3), 0.05).uneven


def test_judge_failures_keep_their_level_while_looked_at_again_and_again() -> None:
    """A/A: both arms' answers fail 10% of the time; checked after every 40 judgements
    per arm up to 400, over 150 seeded runs, the comparison calls a difference in at most
    the level's share of runs (always-valid ends: the looks do not add up)."""
    rng = np.random.default_rng(7)
    level, alarms = 0.05, 0
    for _ in range(150):
        fails = {arm: rng.random(400) < 0.10 for arm in ("baseline", "candidate")}
        for n in range(40, 401, 40):
            kept_now = [
                Judgement(f"{arm}{i}", arm, None, utcnow(), None if fails[arm][i] else 0.5)
                for arm in fails
                for i in range(n)
            ]
            if judge_failures(kept_now, level).uneven:
                alarms += 1
                break
    assert alarms / 150 <= level


PLAN = """route: bot
candidate: {cand}
stages:
  - {{weight: 50, min_requests: 50, min_duration: 0s}}
  - {{weight: 100}}
gates:
  - {{metric: error_rate, margin: 0.1}}
{extra}  - metric: judge_score
    margin: 0.1
    judge: {{target: "{judge}", rubric: helpful, max_per_look: 5}}
owner: oncall@example.com
"""
SLICE_GATE = "  - {metric: refusal_rate, margin: 0.1, slices: [medical]}\n"


def _controller(
    tmp_path: Path, store: Any, judge: str, sent: list[dict[str, Any]], extra: str = ""
) -> Controller:
    """A controller for :data:`PLAN` (judge target ``judge``) on the seeded route ``bot``,
    its notifications appended to ``sent``."""
    plan_path = tmp_path / "plan.yaml"
    plan_path.write_text(PLAN.format(cand=CAND, extra=extra, judge=judge))
    store.seed_gateway_routes([("bot", 0.0, CAND)])
    return Controller(store, load_plan(plan_path), notify=lambda p: sent.append(p) or [])


def _log(store: Any, since: Any, n: int, *, text: bool, label: str | None = None) -> None:
    """``n`` answers logged as the gateway logs them, alternating arms, every fifth with the
    slice ``label``; with ``text`` their prompt and answer too."""
    store.write_gateway_requests(
        [
            GatewayRequestRow(
                request_id=f"r{i}",
                ts=since + timedelta(milliseconds=i + 1),
                route="bot",
                arm="candidate" if i % 2 else "baseline",
                target="openai:m",
                status=200,
                latency_ms=100.0,
                refused=False,
                prompt='[{"role": "user", "content": "hi"}]' if text else None,
                output="hello" if text else None,
                slice=label if i % 5 == 0 else None,
            )
            for i in range(n)
        ]
    )


async def test_the_controller_alerts_once_when_a_gate_cannot_be_fed(tmp_path: Path) -> None:
    """No answer text logged (the judge has nothing to read) and no request in the plan's
    slice: each is one alert event and one webhook, not one per look; the judge is never
    called."""

    def never(wire: WireRequest) -> str:
        raise AssertionError("the judge must not be called")

    async with OpenAIServer(responder=never) as judge:
        sent: list[dict[str, Any]] = []
        with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
            judged_by = f"openai:judge@{judge.base_url}"
            controller = _controller(tmp_path, store, judged_by, sent, SLICE_GATE)
            row = controller.start()
            _log(store, row.stage_started_at, 200, text=False)
            looks = [controller.step() for _ in range(3)]
            events = store.rollout_events(row.id)
        assert judge.received == []
    assert [look.action for look in looks] == ["hold"] * 3
    alerts = [e.detail for e in events if e.kind == "alert"]
    assert [a["problem"] for a in alerts] == ["judge_blind", "slice_missing"]  # type: ignore[index]
    assert "log: {prompts: true}" in alerts[0]["message"]  # type: ignore[index]
    assert "x-cutover-slice" in alerts[1]["message"]  # type: ignore[index]
    assert [p["event"] for p in sent] == ["started", "alert", "alert"]


def test_start_refuses_a_judge_that_cannot_be_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        with pytest.raises(RolloutError) as caught:
            _controller(tmp_path, store, "openai:gpt-4.1", []).start()
        assert caught.value.field == "gates.1.judge.target"
        assert "OPENAI_API_KEY" in caught.value.message
        assert store.latest_rollout("bot") is None


async def test_a_judge_that_answers_nonsense_is_kept_as_failures_and_alerted(
    tmp_path: Path,
) -> None:
    """Unreadable judge answers: each is kept with its reason (never a score), the gate has
    no data and holds, and one judge_failing alert says why."""
    async with OpenAIServer(responder=lambda wire: "I would rather not score this.") as judge:
        sent: list[dict[str, Any]] = []
        with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
            controller = _controller(tmp_path, store, f"openai:j@{judge.base_url}", sent)
            row = controller.start()
            _log(store, row.stage_started_at, 100, text=True, label="medical")
            looks = [await asyncio.to_thread(controller.step) for _ in range(2)]
            kept = store.rollout_judgements(row.id, row.stage_started_at)
            events = store.rollout_events(row.id)
    assert [look.action for look in looks] == ["hold", "hold"]
    assert len(kept) == 20 and all(j.score is None and j.error for j in kept)  # 5 per arm, twice
    assert len(judge.received) == 20
    gate = next(g for g in looks[-1].decision.gates if g.metric == "judge_score")  # type: ignore[union-attr]
    assert gate.status == "no_data"
    alerts = [e.detail for e in events if e.kind == "alert"]
    assert [a["problem"] for a in alerts] == ["judge_failing"]  # type: ignore[index]
    assert "judge" in alerts[0]["message"]  # type: ignore[index]

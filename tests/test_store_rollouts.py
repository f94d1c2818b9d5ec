"""Rollout state and record in the store (SQLite and PostgreSQL), and the per-arm window."""

from __future__ import annotations

import math
import random
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from cutover.store import GatewayRequestRow, open_store
from cutover.store._rollouts import (
    LATENCY_BINS_PER_E,
    Judgement,
    RolloutActiveError,
    sample_point,
)
from cutover.store._store import register_math

PLAN = {"route": "bot", "stages": [{"weight": 1}, {"weight": 100}], "gates": []}


def test_one_active_rollout_per_route_and_its_record(store_url: str) -> None:
    with open_store(store_url) as store:
        first = store.create_rollout("bot", PLAN, "h1", owner="oncall@x", actor="ana")
        assert (first.status, first.stage, first.active) == ("running", 0, True)
        with pytest.raises(RolloutActiveError, match="already has an active rollout"):
            store.create_rollout("bot", PLAN, "h1", owner=None, actor="bo")
        other = store.create_rollout("other", PLAN, "h1", owner=None, actor="bo")
        assert other.id != first.id

        moved = store.update_rollout(
            first.id,
            event="promote",
            actor="controller",
            stage=1,
            weight_before=1.0,
            weight_after=100.0,
            detail={"gates": [{"metric": "error_rate", "estimate": 0.001}]},
        )
        assert moved is not None and moved.stage == 1
        assert moved.stage_started_at > first.stage_started_at
        # a change conditioned on a status it no longer has does nothing
        assert (
            store.update_rollout(first.id, event="x", actor="a", expect_status=("paused",)) is None
        )
        done = store.update_rollout(
            first.id, event="complete", actor="controller", status="promoted"
        )
        assert done is not None and not done.active
        again = store.create_rollout("bot", PLAN, "h2", owner=None, actor="ana")  # allowed now
        assert store.latest_rollout("bot") == again

        events = store.rollout_events(first.id)
        assert [(e.kind, e.stage, e.actor) for e in events] == [
            ("start", 0, "ana"),
            ("promote", 1, "controller"),
            ("complete", 1, "controller"),
        ]
        assert events[1].detail == {"gates": [{"metric": "error_rate", "estimate": 0.001}]}
        assert (events[1].weight_before, events[1].weight_after) == (1.0, 100.0)
        with pytest.raises(ValueError, match="unknown rollout status"):
            store.update_rollout(first.id, event="x", actor="a", status="exploded")


def lbin(ms: float) -> int:
    return math.floor(math.log(ms) * LATENCY_BINS_PER_E)


def test_gateway_window_per_arm(store_url: str) -> None:
    t0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    def row(i: int, arm: str, status: int = 200, score: float | None = None) -> GatewayRequestRow:
        return GatewayRequestRow(
            request_id=f"r{i}",
            ts=t0 + timedelta(seconds=i),
            route="bot",
            arm=arm,
            target="openai:m",
            status=status,
            latency_ms=100.0 + i,
            ttft_ms=10.0,
            cost_usd=0.001,
            key_hash=f"k{i % 3}",
            refused=i % 2 == 0 if status < 400 else None,
            checks={"json_valid": int(i == 3), "empty": 0} if status < 400 else None,
        )

    with open_store(store_url) as store:
        rows = [row(i, "baseline") for i in range(6)] + [
            row(10, "candidate", 503),
            row(11, "candidate"),
            row(12, "none", 401),
        ]
        store.write_gateway_requests(rows)
        store.record_feedback("r1", -1.0)
        store.record_feedback("r2", 1.0)
        window = store.gateway_window("bot", t0 + timedelta(seconds=1)).arms
        late = store.gateway_window("bot", t0, t0 + timedelta(seconds=3)).arms
    base, cand = window["baseline"], window["candidate"]
    assert (base.requests, base.errors, base.feedback, base.negative_feedback) == (5, 0, 2, 1)
    # latency and TTFT in 0.5% log bins, computed by the database as here
    assert base.latency_bins == {lbin(100.0 + i): 1 for i in range(1, 6)}
    assert base.ttft_bins == {lbin(10.0): 5}
    assert (cand.requests, cand.errors, cand.latency_bins) == (2, 1, {lbin(111.0): 1})
    edges, counts = base.histogram(base.latency_bins)
    assert sum(counts) == 5 and edges[0] <= 101.0 < edges[1] and edges[-2] <= 105.0 < edges[-1]
    assert (base.cost_n, cand.cost_n) == (5, 1)  # the 503 has no answer to cost
    assert base.cost_sum == pytest.approx(0.005) and base.cost_sq == pytest.approx(5e-6)
    assert base.units == 3  # k0, k1, k2
    assert late["baseline"].requests == 3 and late["candidate"].requests == 0
    assert (base.refusals, base.answers_checked) == (2, 5)  # r2, r4 of r1..r5
    assert base.checks == {"json_valid": [1, 5], "empty": [0, 5]}
    assert cand.checks == {"json_valid": [0, 1], "empty": [0, 1]}  # the 503 is not an answer


def test_gateway_window_per_slice(store_url: str) -> None:
    t0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    labels = ["medical", None, "billing", "medical"]
    rows = [
        GatewayRequestRow(
            request_id=f"r{i}",
            ts=t0 + timedelta(seconds=i),
            route="bot",
            arm="candidate" if i % 2 else "baseline",
            target="openai:m",
            status=500 if i == 5 else 200,
            latency_ms=100.0 + i,
            refused=i in (3, 7) if i != 5 else None,
            slice=labels[i % 4],
        )
        for i in range(8)
    ]
    with open_store(store_url) as store:
        store.write_gateway_requests(rows)
        window = store.gateway_window("bot", t0, slices=("medical", "legal"))
    assert set(window.slices) == {"medical", "legal"}  # every slice asked, seen or not
    medical = window.slices["medical"]
    # medical: r0, r4 (baseline), r3, r7 (candidate: both refused)
    assert (medical["baseline"].requests, medical["candidate"].requests) == (2, 2)
    assert (medical["candidate"].refusals, medical["candidate"].answers_checked) == (2, 2)
    assert window.slices["legal"]["baseline"].requests == 0
    assert window.arms["candidate"].requests == 4 and window.arms["candidate"].errors == 1


def rid(i: int) -> str:
    """A request id of the gateway's form (``req_`` + 24 hex digits), ordered by ``i``."""
    return f"req_{i:08x}" + "0" * 16


def test_judgements_are_kept_once_per_answer(store_url: str) -> None:
    t0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    rows = [
        GatewayRequestRow(
            request_id=rid(i),
            ts=t0 + timedelta(seconds=i),
            route="bot",
            arm="candidate" if i % 2 else "baseline",
            target="openai:m",
            status=503 if i == 4 else 200,
            latency_ms=100.0,
            error_class="upstream_stream_broken" if i == 5 else None,
            prompt='[{"role": "user", "content": "hi"}]' if i != 3 else None,
            output=f"answer {i}" if i != 3 else None,
            slice="medical" if i < 2 else None,
        )
        for i in range(6)
    ]
    with open_store(store_url) as store:
        store.write_gateway_requests(rows)
        rollout = store.create_rollout("bot", {}, "h", owner=None, actor="t")
        todo = store.answers_to_judge(rollout.id, "bot", t0, per_arm=10)
        # the 503 and the broken stream are not answers; r3 has no logged text
        assert todo.chosen == [
            (rid(0), "baseline", "medical", t0),
            (rid(2), "baseline", None, t0 + timedelta(seconds=2)),
            (rid(1), "candidate", "medical", t0 + timedelta(seconds=1)),
        ]
        assert (todo.with_text, todo.without_text) == (3, 1)
        texts = store.request_texts([rid(0), rid(3), rid(9)])
        assert texts == {rid(0): ('[{"role": "user", "content": "hi"}]', "answer 0")}
        first = [
            Judgement(rid(0), "baseline", "medical", t0, 0.8),
            Judgement(rid(1), "candidate", "medical", t0 + timedelta(seconds=1), None, "timeout"),
        ]
        assert store.record_judgements(rollout.id, first) == 2
        again = [Judgement(rid(0), "baseline", "medical", t0, 0.1)]
        assert store.record_judgements(rollout.id, again) == 0  # the first score stands
        left = store.answers_to_judge(rollout.id, "bot", t0, per_arm=10)
        assert [c[0] for c in left.chosen] == [rid(2)]
        assert (left.with_text, left.without_text) == (1, 1)
        kept = store.rollout_judgements(rollout.id, t0)
        assert [(j.request_id, j.score, j.error) for j in kept] == [
            (rid(0), 0.8, None),
            (rid(1), None, "timeout"),
        ]
        assert store.rollout_judgements(rollout.id, t0 + timedelta(seconds=1))[0].request_id == rid(
            1
        )
        other = store.create_rollout("bot2", {}, "h", owner=None, actor="t")
        fresh = store.answers_to_judge(other.id, "bot", t0, per_arm=10)
        assert fresh.with_text + fresh.without_text == 4  # judged per rollout


def test_the_database_picks_a_capped_random_sample_per_arm(store_url: str) -> None:
    """Per arm, the answers with the lowest sample points (the random part of the
    gateway's ids), at most ``per_arm``, only those below ``sample``."""
    t0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    rng = random.Random(3)
    ids = ["req_" + rng.randbytes(12).hex() for _ in range(1200)]  # as the gateway makes them
    arm = {rid_: "baseline" if i < 1000 else "candidate" for i, rid_ in enumerate(ids)}
    rows = [
        GatewayRequestRow(
            request_id=rid_,
            ts=t0 + timedelta(milliseconds=i),
            route="bot",
            arm=arm[rid_],
            target="openai:m",
            status=200,
            latency_ms=100.0,
            output="an answer",
        )
        for i, rid_ in enumerate(ids)
    ]
    with open_store(store_url) as store:
        store.write_gateway_requests(rows)
        rollout = store.create_rollout("bot", {}, "h", owner=None, actor="t")
        capped = store.answers_to_judge(rollout.id, "bot", t0, per_arm=20)
        half = store.answers_to_judge(rollout.id, "bot", t0, per_arm=10_000, sample=0.5)
        none = store.answers_to_judge(rollout.id, "bot", t0, per_arm=10, sample=0.0)
    for side in ("baseline", "candidate"):
        lowest = sorted((r for r in ids if arm[r] == side), key=lambda r: sample_point(r) or 1.0)
        assert [c[0] for c in capped.chosen if c[1] == side] == lowest[:20]
    points = {c[0]: sample_point(c[0]) for c in half.chosen}
    assert set(points) == {r for r in ids if (sample_point(r) or 1.0) < 0.5}  # exactly those
    assert 440 < sum(arm[r] == "baseline" for r in points) < 560  # about half of 1,000
    assert none.chosen == [] and none.with_text == 1200


def test_sample_points_of_gateway_ids() -> None:
    assert sample_point("req_00000000" + "f" * 16) == 0.0
    assert sample_point("req_80000000" + "0" * 16) == 0.5
    assert sample_point("req_ffffffff" + "0" * 16) == pytest.approx(1.0 - 2.0**-32)
    assert sample_point("r1") is None and sample_point("req_zzzzzzzz" + "0" * 16) is None


def test_the_window_bins_latencies_on_a_sqlite_without_math_functions() -> None:
    """SQLite built without its math functions gets ``ln`` and ``floor`` from Python,
    and they bin like the built-ins (and PostgreSQL's)."""
    conn = sqlite3.connect(":memory:")
    register_math(conn)  # application functions override the built-ins, if any
    values = [0.0, 0.0004, 1.0, 101.0, 2_000.5, 59_999.0]
    got = [
        conn.execute("SELECT floor(ln(max(?, 0.001)) * ?)", (v, LATENCY_BINS_PER_E)).fetchone()[0]
        for v in values
    ]
    assert got == [lbin(max(v, 0.001)) for v in values]
    assert conn.execute("SELECT ln(NULL), ln(0), floor(NULL)").fetchone() == (None, None, None)

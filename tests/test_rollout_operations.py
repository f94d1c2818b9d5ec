"""Manual rollout actions and the record, through the CLI (SQLite store, no gateway needed)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cutover.cli import app
from cutover.rollout.controller import Controller
from cutover.rollout.plan import load_plan
from cutover.store import open_store

CAND = "openai:gpt-4.1-mini@http://127.0.0.1:18080/v1"


def setup(tmp_path: Path) -> tuple[str, str]:
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"route: bot\ncandidate: {CAND}\n"
        "stages:\n  - {weight: 5, min_requests: 10}\n  - {weight: 50, min_requests: 10}\n"
        "  - {weight: 100}\n"
        "gates:\n  - {metric: error_rate, margin: 0.01, hard_limit: 0.05, critical: true}\n"
        "owner: oncall@example.com\n"
    )
    with open_store(db) as store:
        store.seed_gateway_routes([("bot", 0.0, CAND)])  # what a gateway does at start-up
        Controller(store, load_plan(plan), notify=lambda p: []).start()
    return db, str(plan)


def test_pause_resume_promote_rollback_and_the_record(tmp_path: Path) -> None:
    db, _ = setup(tmp_path)
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(app, [*args, "--route", "bot", "--db", db])
        assert result.exit_code == 0, result.output
        return result.output

    assert "paused" in cli("rollout", "pause", "--actor", "ana")
    again = runner.invoke(app, ["rollout", "pause", "--route", "bot", "--db", db])
    assert again.exit_code == 2 and "already paused" in again.output
    cli("rollout", "resume", "--actor", "ana")
    assert "stage 2" in cli("rollout", "promote", "--actor", "bo")
    with open_store(db) as store:
        route = store.gateway_route("bot")
        assert route is not None and route.weight == 50
    status = cli("rollout", "status")
    assert "running, stage 2 of 3" in status and "weight now 50%" in status
    cli("rollout", "rollback", "--actor", "bo", "--reason", "pager went off")
    with open_store(db) as store:
        route = store.gateway_route("bot")
        assert route is not None and route.weight == 0
    nothing = runner.invoke(app, ["rollout", "rollback", "--route", "bot", "--db", db])
    assert nothing.exit_code == 2 and "no active rollout" in nothing.output

    out = tmp_path / "record"
    cli("rollout", "report", "--out", str(out))
    data = json.loads((out / "rollout.json").read_text())
    assert data["status"] == "rolled_back"
    assert [(e["kind"], e["actor"]) for e in data["events"]] == [
        ("start", "rollout-controller"),
        ("stage_weight", "rollout-controller"),
        ("pause", "ana"),
        ("resume", "ana"),
        ("manual_promote", "bo"),
        ("manual_rollback", "bo"),
    ]
    assert data["events"][-1]["detail"] == {"reason": "pager went off"}
    md = (out / "rollout.md").read_text()
    assert "# Rollout of `bot`: rolled_back" in md
    assert "| manual_rollback | 1 | bo | 50 -> 0 | pager went off |" in md


def test_a_bad_plan_changes_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"route: bot\ncandidate: {CAND}\nstages: []\ngates: []\nowner: x\n")
    result = CliRunner().invoke(app, ["rollout", "start", "--plan", str(plan), "--db", db])
    assert result.exit_code == 2
    assert "plan.yaml:3" in result.output and "stages" in result.output


def test_a_manual_rollback_during_a_look_stands(tmp_path: Path) -> None:
    """The controller decided to promote, but a person rolled back meanwhile: their action
    stands (state first, weight only if the state allowed it)."""
    import dataclasses

    from cutover.rollout.decide import ArmWindow, StageWindow, decide_stage
    from cutover.rollout.operations import rollback

    db, plan_path = setup(tmp_path)
    plan = load_plan(plan_path)
    with open_store(db) as store:
        controller = Controller(store, plan, notify=lambda p: [])
        row = controller.start()  # resumes the one setup() started
        looked_at = store.get_rollout(row.id)
        assert looked_at is not None and looked_at.status == "running"
        window = StageWindow(ArmWindow(requests=10), ArmWindow(requests=10), elapsed_s=1.0)
        decision = dataclasses.replace(decide_stage(plan, 0, window), outcome="promote")
        rollback(store, "bot", actor="alice")  # lands between the read and the act
        look = controller._act(looked_at, decision)
        route = store.gateway_route("bot")
        final = store.get_rollout(row.id)
    assert look.action == "idle"
    assert route is not None and route.weight == 0
    assert final is not None and final.status == "rolled_back" and final.stage == 0


async def test_no_drill_during_a_rollout(tmp_path: Path) -> None:
    import pytest

    from cutover.rollout.controller import RolloutError
    from cutover.rollout.drill import drill

    db, _ = setup(tmp_path)
    with open_store(db) as store, pytest.raises(RolloutError, match="active rollout"):
        await drill(store, "bot", ["http://127.0.0.1:9"], admin_token="t")

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

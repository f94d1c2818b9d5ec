"""Recorded outputs: two JSONL files make Pairs without calling anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cutover.errors import RecordedOutputsError
from cutover.recorded import (
    RECORDED_ERROR_CLASS,
    cases_from_recorded,
    load_recorded,
    pairs_from_recorded,
)
from cutover.records import ToolCall
from cutover.suites import Case, input_hash


def write_jsonl(tmp_path: Path, name: str, rows: list[Any]) -> Path:
    path = tmp_path / name
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n",
        encoding="utf-8",
    )
    return path


def recorded_error(path: Path) -> RecordedOutputsError:
    with pytest.raises(RecordedOutputsError) as info:
        load_recorded(path)
    return info.value


def test_load_full_line_and_observation(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path,
        "old.jsonl",
        [
            {
                "id": "refund-1",
                "input": "Where is my refund?",
                "output": "On its way.",
                "tags": {"use_case": "billing", "priority": 2},
                "latency_ms": 812,
                "ttft_ms": 240.5,
                "usage": {"prompt_tokens": 31, "completion_tokens": 88},
                "cost_usd": 0.0004,
                "finish_reason": "stop",
                "model": "gpt-4o-mini",
                "timestamp": "ignored",
            },
            "",
            {
                "input": [{"role": "user", "content": "weather?"}],
                "output": None,
                "tags": ["vip", "tenant:acme"],
                "tool_calls": [
                    {"name": "get_weather", "arguments": {"city": "Paris"}},
                    {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                ],
                "usage": {"input_tokens": 5, "output_tokens": 7},
            },
            {"id": 7, "output": {"answer": 42}, "error": "boom"},
        ],
    )
    recorded = load_recorded(path)
    assert recorded.path == str(path)
    weather_key = f"hash:{input_hash('weather?')}"
    assert list(recorded.lines) == ["refund-1", weather_key, "7"]
    assert len(recorded) == 3

    first = recorded.lines["refund-1"]
    assert first.case_id == "refund-1" and first.line == 1
    assert first.input == [{"role": "user", "content": "Where is my refund?"}]
    assert first.tags == {"use_case": "billing", "priority": "2"}
    obs = first.observation("baseline")
    assert obs.target == "baseline"
    assert obs.output == "On its way."
    assert (obs.latency_ms, obs.ttft_ms) == (812, 240.5)
    assert (obs.input_tokens, obs.output_tokens) == (31, 88)
    assert obs.cost_usd == 0.0004 and obs.finish_reason == "stop" and obs.model == "gpt-4o-mini"
    assert obs.ok and obs.error_class is None

    weather = recorded.lines[weather_key]
    assert weather.case_id is None and weather.line == 3
    assert weather.tags == {"vip": "true", "tenant": "acme"}
    obs = weather.observation("new")
    assert obs.output is None
    assert obs.tool_calls == (
        ToolCall(id="", name="get_weather", arguments='{"city":"Paris"}'),
        ToolCall(id="c2", name="f", arguments="{}"),
    )
    assert (obs.input_tokens, obs.output_tokens) == (5, 7)

    errored = recorded.lines["7"].observation("x")
    assert errored.output == '{"answer":42}'
    assert errored.error == "boom" and errored.error_class == RECORDED_ERROR_CLASS
    assert not errored.ok


def test_error_class_kept_when_given(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path, "r.jsonl", [{"id": "a", "error": "slow", "error_class": "timeout"}]
    )
    assert load_recorded(path).lines["a"].observation("t").error_class == "timeout"


def test_get_by_id_then_by_input_hash(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path,
        "r.jsonl",
        [
            {"id": "a", "input": "hello", "output": "A"},
            {"input": "bye", "output": "B"},
        ],
    )
    recorded = load_recorded(path)
    assert recorded.get("a", None) is recorded.lines["a"]
    line = recorded.get("unknown", [{"role": "user", "content": "bye"}])
    assert line is not None and line.output == "B"
    # a line with an id is also found by its input
    line = recorded.get(None, "hello")
    assert line is not None and line.output == "A"
    # the case messages of a suite match a recorded string input
    case = Case(id="zzz", messages=[{"role": "user", "content": "bye"}])
    line = recorded.get(case.id, case.messages)
    assert line is not None and line.output == "B"
    assert recorded.get("nope", "never recorded") is None
    assert recorded.get(None, None) is None


def test_repeated_input_without_id_is_numbered(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path, "r.jsonl", [{"input": "hi", "output": "1"}, {"input": "hi", "output": "2"}]
    )
    h = input_hash("hi")
    assert list(load_recorded(path).lines) == [f"hash:{h}", f"hash:{h}#2"]


def test_line_without_id_or_input(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path, "r.jsonl", [{"id": "a", "output": "x"}, {"output": "y"}])
    err = recorded_error(path)
    assert err.path == str(path) and err.line == 2
    assert "'id' or an 'input'" in err.message and err.hint is not None


def test_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path, "r.jsonl", [{"id": "a", "output": "x"}, "", {"id": "a", "output": "y"}]
    )
    err = recorded_error(path)
    assert err.line == 3 and err.field == "id"
    assert "duplicate id 'a'" in err.message and "line 1" in err.message


def test_invalid_json_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path, "r.jsonl", [{"id": "a", "output": "x"}, '{"id": "b", "output": }'])
    err = recorded_error(path)
    assert err.line == 2 and "not valid JSON" in err.message
    assert str(err).startswith(f"{path}:2: not valid JSON")


def test_bad_fields_name_line_and_field(tmp_path: Path) -> None:
    err = recorded_error(write_jsonl(tmp_path, "a.jsonl", [{"id": "a", "latency_ms": "slow"}]))
    assert (err.line, err.field) == (1, "latency_ms")
    err = recorded_error(
        write_jsonl(tmp_path, "b.jsonl", [{"id": "a", "usage": {"input_tokens": -1}}])
    )
    assert (err.line, err.field) == (1, "usage.input_tokens")
    err = recorded_error(
        write_jsonl(tmp_path, "c.jsonl", [{"id": "a", "tool_calls": [{"arguments": "{}"}]}])
    )
    assert (err.line, err.field) == (1, "tool_calls[0]") and "name" in err.message
    err = recorded_error(write_jsonl(tmp_path, "d.jsonl", [{"input": 5, "output": "x"}]))
    assert (err.line, err.field) == (1, "input") and "chat messages" in err.message
    err = recorded_error(write_jsonl(tmp_path, "e.jsonl", [[1, 2]]))
    assert err.line == 1 and "JSON object" in err.message
    err = recorded_error(write_jsonl(tmp_path, "f.jsonl", [""]))
    assert "no recorded outputs" in err.message
    err = recorded_error(tmp_path / "missing.jsonl")
    assert "file not found" in err.message


def test_cases_from_recorded_union_and_pairs(tmp_path: Path) -> None:
    old = load_recorded(
        write_jsonl(
            tmp_path,
            "old.jsonl",
            [
                {"id": "a", "input": "one", "output": "A1", "tags": {"t": "old", "x": "1"}},
                {"id": "b", "input": "two", "output": "B1"},
                {"input": "three", "output": "C1"},
            ],
        )
    )
    new = load_recorded(
        write_jsonl(
            tmp_path,
            "new.jsonl",
            [
                {"id": "d", "output": "D2"},
                {"id": "a", "output": "A2", "tags": {"t": "new", "y": "2"}},
                {"input": "three", "output": "C2"},
            ],
        )
    )
    cases, only_old, only_new = cases_from_recorded(old, new)
    h = f"hash:{input_hash('three')}"
    assert [c.id for c in cases] == ["a", "b", h, "d"]
    assert only_old == ["b"] and only_new == ["d"]
    a, b, three, d = cases
    assert a.messages == [{"role": "user", "content": "one"}]
    assert a.tags == {"t": "old", "x": "1", "y": "2"}  # merged, old wins
    assert b.messages == [{"role": "user", "content": "two"}] and b.tags == {}
    assert d.messages == [] and d.source == f"{new.path}:1"
    assert three.source == f"{old.path}:3"
    pairs = pairs_from_recorded(old, new, old_label="gpt-4o", new_label="gpt-5")
    by_id = {p.case_id: p for p in pairs}
    assert by_id["a"].old is not None and by_id["a"].old.output == "A1"
    assert by_id["a"].new is not None and by_id["a"].new.target == "gpt-5"
    assert by_id["b"].new is None and by_id["d"].old is None
    paired = by_id[h].new
    assert paired is not None and paired.output == "C2"
    assert by_id["d"].input is None

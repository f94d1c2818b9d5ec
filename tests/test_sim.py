"""The seeded simulated model: deterministic, per-tag behaviour, labelled simulated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cutover.errors import ProviderServerError, RateLimitedError, TargetSpecError
from cutover.providers.sim import REFUSAL_TEXT, SimProvider, builtin_profiles, load_profile
from cutover.records import ModelRequest
from cutover.targets import parse_target


def _request(
    case_id: str, tags: dict[str, str] | None = None, expected: str | None = None, **kw: object
) -> ModelRequest:
    return ModelRequest(
        messages=[{"role": "user", "content": f"question {case_id}"}],
        case_id=case_id,
        tags=tags or {},
        expected=expected,
        **kw,  # type: ignore[arg-type]
    )


def _profile_file(tmp_path: Path, **spec: object) -> str:
    path = tmp_path / "model.yaml"
    base = {"name": "t", "time_scale": 0, "seed": 3}
    base.update(spec)
    path.write_text(json.dumps(base))  # JSON is YAML
    return str(path)


async def test_same_seed_same_outputs_and_labelled_simulated() -> None:
    target = parse_target("sim:fast-v2", params={"time_scale": 0})
    first = [await SimProvider(target).complete(_request(f"c{i}")) for i in range(20)]
    second = [await SimProvider(target).complete(_request(f"c{i}")) for i in range(20)]
    assert [o.output for o in first] == [o.output for o in second]
    assert [o.latency_ms for o in first] == [o.latency_ms for o in second]
    assert all(o.simulated for o in first)
    assert all("(simulated)" in (o.model or "") for o in first)
    assert all(o.cost_usd is not None and o.cost_usd > 0 for o in first)
    # latency varies across cases (a distribution, not a constant)
    assert len({o.latency_ms for o in first}) > 10


async def test_per_tag_behaviour_changes_only_that_slice(tmp_path: Path) -> None:
    target = parse_target(
        "sim:"
        + _profile_file(tmp_path, accuracy=1.0, by_tag={"billing": {"fence": 1.0, "refuse": 0.0}})
    )
    provider = SimProvider(target)
    expected = '{"plan": "Pro", "amount": 49.99}'
    billing = await provider.complete(_request("b1", {"use_case": "billing"}, expected))
    support = await provider.complete(_request("s1", {"use_case": "support"}, expected))
    assert billing.output is not None and billing.output.startswith("```json\n")
    assert json.loads(billing.output.removeprefix("```json\n").removesuffix("\n```")) == json.loads(
        expected
    )
    assert support.output == expected


async def test_refusal_preamble_truncation(tmp_path: Path) -> None:
    refuser = SimProvider(parse_target("sim:" + _profile_file(tmp_path, refuse=1.0)))
    assert (await refuser.complete(_request("x", expected="hello"))).output == REFUSAL_TEXT
    path = tmp_path / "p2.yaml"
    path.write_text(
        json.dumps(
            {"name": "p2", "time_scale": 0, "accuracy": 1.0, "preamble": 1.0, "truncate": 1.0}
        )
    )
    obs = await SimProvider(parse_target(f"sim:{path}")).complete(_request("y", expected="a" * 100))
    assert obs.finish_reason == "length"
    assert obs.output is not None and obs.output.startswith("Sure!")
    assert len(obs.output) < len("Sure! Here is the answer you asked for:\n\n") + 100


async def test_errors_and_429_are_raised_per_attempt(tmp_path: Path) -> None:
    limited = SimProvider(parse_target("sim:" + _profile_file(tmp_path, rate_limit_rate=1.0)))
    with pytest.raises(RateLimitedError) as info:
        await limited.complete(_request("z"))
    assert info.value.retry_after_s is not None and info.value.status_code == 429
    path = tmp_path / "e.yaml"
    path.write_text(json.dumps({"name": "e", "time_scale": 0, "error_rate": 0.5, "seed": 11}))
    flaky = SimProvider(parse_target(f"sim:{path}"))
    outcomes = []
    for _ in range(12):  # the same case retried: the attempt number reseeds the fault draw
        try:
            await flaky.complete(_request("same"))
            outcomes.append("ok")
        except ProviderServerError:
            outcomes.append("500")
    assert "ok" in outcomes and "500" in outcomes


async def test_tool_call_when_tools_given() -> None:
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    ]
    obs = await SimProvider(parse_target("sim:echo")).complete(
        _request("t", expected='{"city": "Paris"}', tools=tools)
    )
    assert obs.finish_reason == "tool_calls"
    assert obs.tool_calls[0].name == "get_weather"
    assert json.loads(obs.tool_calls[0].arguments) == {"city": "Paris"}


def test_unknown_profile_and_bad_profile_file(tmp_path: Path) -> None:
    with pytest.raises(TargetSpecError, match=r"unknown simulated model 'sim:nope'.*built-in"):
        load_profile("nope")
    bad = _profile_file(tmp_path, by_tag={"billing": {"acuracy": 0.5}})
    with pytest.raises(TargetSpecError) as info:
        load_profile(bad)
    assert info.value.field == "by_tag.billing.acuracy"
    assert set(builtin_profiles()) >= {"baseline-v1", "fast-v2", "echo"}

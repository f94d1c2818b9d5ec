"""Target strings, named targets and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover.errors import TargetSpecError
from cutover.pricing import cost_usd, quote
from cutover.targets import Price, load_targets_file, parse_target, resolve_target


def test_parse_forms() -> None:
    t = parse_target("openai:gpt-4o-mini")
    assert (t.provider, t.model, t.base_url) == ("openai", "gpt-4o-mini", None)
    t = parse_target("openai:my-model@http://127.0.0.1:8000/v1")
    assert (t.model, t.base_url) == ("my-model", "http://127.0.0.1:8000/v1")
    assert parse_target("anthropic:claude-sonnet-4-5").provider == "anthropic"
    assert parse_target("replay:path/to/outputs.jsonl").model == "path/to/outputs.jsonl"
    # a model name may itself contain '@' (Vertex style); only @http(s):// starts a URL
    assert parse_target("openai:claude-3@20240229").model == "claude-3@20240229"


def test_identity_key_ignores_limits_but_not_params() -> None:
    a = parse_target("openai:m", rpm=10)
    b = parse_target("openai:m", rpm=99, timeout_s=5)
    c = parse_target("openai:m", params={"temperature": 0})
    assert a.key == b.key != c.key


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("gpt-4o", "invalid target"),
        ("cohere:command-r", "unknown provider 'cohere'"),
        ("openai:", "invalid target"),
    ],
)
def test_bad_specs_say_what_is_valid(spec: str, needle: str) -> None:
    with pytest.raises(TargetSpecError) as info:
        parse_target(spec)
    assert needle in str(info.value)
    assert "openai" in str(info.value)  # lists the valid providers


def test_targets_file_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(
        "targets:\n"
        "  old: openai:gpt-4o-mini\n"
        "  new:\n"
        "    target: anthropic:claude-sonnet-4-5\n"
        "    prompt_version: v2\n"
        "    rpm: 50\n"
    )
    named = load_targets_file(path)
    assert named["new"].prompt_version == "v2"
    assert named["new"].label == "anthropic:claude-sonnet-4-5#v2"  # the key is a lookup name only
    assert resolve_target("old", named).model == "gpt-4o-mini"
    with pytest.raises(TargetSpecError, match="neither"):
        resolve_target("nope", named)
    path.write_text("targets:\n  new:\n    target: sim:echo\n    rpm: -3\n")
    with pytest.raises(TargetSpecError) as info:
        load_targets_file(path)
    assert info.value.field == "targets.new.rpm" and str(path) in str(info.value)
    path.write_text("targets: [\n")
    with pytest.raises(TargetSpecError) as info:
        load_targets_file(path)
    assert info.value.line is not None


def test_prices_from_catalogue_and_override() -> None:
    q = quote(parse_target("openai:gpt-4o-mini"))
    assert q is not None and q.source == "genai-prices" and q.input_per_mtok == pytest.approx(0.15)
    assert quote(parse_target("openai:surely-not-a-model-xyz")) is None
    over = quote(
        parse_target("openai:my-ft@http://x:1/v1", price=Price(input_per_mtok=3, output_per_mtok=4))
    )
    assert over is not None and over.source == "override"
    assert cost_usd(over, 1_000_000, 500_000) == pytest.approx(5.0)
    assert cost_usd(over, None, 3) is None

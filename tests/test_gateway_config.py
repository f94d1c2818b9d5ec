"""The gateway's config file and its sticky arm assignment (pure, no sockets)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cutover.errors import GatewayConfigError, InputError
from cutover.gateway import Arm, assign, load_gateway_config, sticky_point
from cutover.gateway.config import GatewayConfig, StickyKey

ISSUE_YAML = """\
listen: {host: 127.0.0.1, port: 8787}
client_keys: [sk-client-1]
admin_token: adm-secret-token
store: sqlite:///gateway.db          # or postgresql://...
routes:
  support-bot:
    baseline: openai:gpt-4o-mini@http://127.0.0.1:18080/v1
    candidate: openai:gpt-4.1-mini@http://127.0.0.1:18080/v1
    weight: 10                       # percent of sticky keys on the candidate
    sticky: user                     # user | header:x-session-id | api_key | none
    shadow: {target: anthropic:claude-haiku-4-5@http://127.0.0.1:18081, sample: 1.0, budget_usd_per_day: 5}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_issue_yaml_loads_as_written(tmp_path: Path) -> None:
    cfg = load_gateway_config(write(tmp_path, ISSUE_YAML))
    assert cfg.listen.host == "127.0.0.1" and cfg.listen.port == 8787
    assert cfg.client_keys == ("sk-client-1",)
    assert cfg.admin_token == "adm-secret-token"
    assert cfg.store == "sqlite:///gateway.db"
    route = cfg.routes["support-bot"]
    assert route.baseline.spec == "openai:gpt-4o-mini@http://127.0.0.1:18080/v1"
    assert route.candidate is not None and route.candidate.model == "gpt-4.1-mini"
    assert route.weight == 10
    assert route.sticky_key == StickyKey("user")
    assert route.allow == ()
    assert route.shadow is not None
    assert route.shadow.target.provider == "anthropic"
    assert route.shadow.target.base_url == "http://127.0.0.1:18081"
    assert route.shadow.sample == 1.0 and route.shadow.budget_usd_per_day == 5


def test_target_mappings_key_env_allow_and_header_sticky(tmp_path: Path) -> None:
    text = """\
client_keys: [k]
routes:
  bot:
    baseline: {target: "openai:a@http://127.0.0.1:1/v1", key_env: MY_KEY, timeout_s: 3}
    candidate: openai:b@http://127.0.0.1:1/v1
    weight: 33.3
    sticky: header:X-Session-Id
    allow: [alice, bob]
"""
    cfg = load_gateway_config(write(tmp_path, text))
    route = cfg.routes["bot"]
    assert route.baseline.api_key_env == "MY_KEY" and route.baseline.timeout_s == 3
    assert route.weight == pytest.approx(33.3)
    assert route.sticky_key == StickyKey("header", "x-session-id")
    assert route.allow == ("alice", "bob")
    assert cfg.listen.port == 8787  # default


@pytest.mark.parametrize(
    ("text", "field", "line", "words"),
    [
        (ISSUE_YAML.replace("weight: 10 ", "weight: 150"), "routes.support-bot.weight", 9, "100"),
        (ISSUE_YAML.replace("sticky: user", "sticky: cookie"), "routes.support-bot.sticky", 10, "header:<name>"),
        (ISSUE_YAML.replace("    weight:", "    wieght:"), "routes.support-bot.wieght", 9, "not permitted"),
        (ISSUE_YAML.replace("openai:gpt-4o-mini@", "opneai:gpt-4o-mini@"), "routes.support-bot.baseline", 7, "opneai"),
        (ISSUE_YAML.replace("client_keys: [sk-client-1]", "client_keys: []"), "client_keys", 2, "at least 1"),
        (ISSUE_YAML.replace("port: 8787", "port: many"), "listen.port", 1, "integer"),
        (ISSUE_YAML.replace("sample: 1.0", "sample: 2"), "routes.support-bot.shadow.sample", 11, "1"),
    ],
)  # fmt: skip
def test_bad_fields_are_named_with_file_and_line(
    tmp_path: Path, text: str, field: str, line: int, words: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(GatewayConfigError) as info:
        load_gateway_config(path)
    err = info.value
    assert isinstance(err, InputError)
    assert err.field == field
    assert err.path == str(path)
    assert err.line == line
    assert words in str(err)
    assert str(err).startswith(f"{path}:{line}: field '{field}'")


def test_weight_without_candidate_and_bad_yaml(tmp_path: Path) -> None:
    text = "client_keys: [k]\nroutes:\n  bot:\n    baseline: openai:a\n    weight: 5\n"
    with pytest.raises(GatewayConfigError, match="no candidate") as info:
        load_gateway_config(write(tmp_path, text))
    assert info.value.field == "routes.bot"
    with pytest.raises(GatewayConfigError, match="not valid YAML") as info:
        load_gateway_config(write(tmp_path, "routes: [unclosed\n"))
    assert info.value.line is not None
    with pytest.raises(GatewayConfigError, match="cannot read"):
        load_gateway_config(tmp_path / "missing.yaml")


# -- sticky assignment -----------------------------------------------------------


def test_same_key_same_arm_always() -> None:
    for key in ("alice", "bob", "carol", "u-123"):
        first = assign("bot", key, weight=50)
        assert first.key_hash is not None and key not in first.key_hash
        for _ in range(50):
            assert assign("bot", key, weight=50) == first


@pytest.mark.parametrize("weight", [0.5, 10, 33.3, 50, 90])
def test_realised_split_over_10000_keys_is_within_one_point(weight: float) -> None:
    keys = [f"user-{i}" for i in range(10_000)]
    on_candidate = sum(assign("support-bot", k, weight=weight).arm is Arm.CANDIDATE for k in keys)
    assert abs(on_candidate / 100 - weight) < 1.0


def test_raising_the_weight_keeps_everyone_on_the_candidate() -> None:
    keys = [f"user-{i}" for i in range(10_000)]
    at_10 = {k for k in keys if assign("bot", k, weight=10).arm is Arm.CANDIDATE}
    at_20 = {k for k in keys if assign("bot", k, weight=20).arm is Arm.CANDIDATE}
    assert at_10 <= at_20 and len(at_20) > len(at_10)
    assert not {k for k in keys if assign("bot", k, weight=0).arm is Arm.CANDIDATE}
    assert len({k for k in keys if assign("bot", k, weight=100).arm is Arm.CANDIDATE}) == 10_000


def test_routes_hash_independently_and_points_are_in_range() -> None:
    keys = [f"user-{i}" for i in range(2_000)]
    a = {k for k in keys if assign("a", k, weight=10).arm is Arm.CANDIDATE}
    b = {k for k in keys if assign("b", k, weight=10).arm is Arm.CANDIDATE}
    assert a != b
    assert all(0.0 <= sticky_point("a", k)[0] < 100.0 for k in keys)


def test_allow_list_no_candidate_and_no_key() -> None:
    assert assign("bot", "vip", weight=0, allow={"vip"}).arm is Arm.CANDIDATE
    assert assign("bot", "vip", weight=0, allow={"vip"}, has_candidate=False).arm is Arm.BASELINE
    assert assign("bot", None, weight=0).arm is Arm.BASELINE
    rng = random.Random(7)
    arms = [assign("bot", None, weight=30, rng=rng) for _ in range(4_000)]
    assert all(a.key_hash is None for a in arms)
    share = sum(a.arm is Arm.CANDIDATE for a in arms) / len(arms)
    assert 0.26 < share < 0.34


def test_each_of_n_workers_gets_its_share_of_the_shadow_budget() -> None:
    from cutover.gateway.config import with_budget_share

    cfg = GatewayConfig.model_validate(
        {
            "client_keys": ["k"],
            "routes": {
                "a": {
                    "baseline": "openai:gpt-4o-mini",
                    "shadow": {"target": "openai:gpt-4o", "budget_usd_per_day": 5},
                },
                "b": {"baseline": "openai:gpt-4o-mini", "shadow": {"target": "openai:gpt-4o"}},
            },
        }
    )
    shared = with_budget_share(cfg, 0.25)
    assert shared.routes["a"].shadow is not None
    assert shared.routes["a"].shadow.budget_usd_per_day == 1.25
    assert shared.routes["b"].shadow is not None
    assert shared.routes["b"].shadow.budget_usd_per_day is None  # no budget stays unlimited
    assert cfg.routes["a"].shadow is not None and cfg.routes["a"].shadow.budget_usd_per_day == 5
    assert with_budget_share(cfg, 1.0) is cfg

"""The admin API (routes, weight, rollback, audit) and replicas sharing route state.

Gateways run on free ports in the test's event loop, in front of the local
OpenAI wire server. The replica test runs three gateway apps against one
PostgreSQL store and times a rollback's arrival at the other two.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import pytest

from cutover.gateway import Gateway, GatewayConfig
from cutover.testing import OpenAIServer, serve_app

KEY = "sk-client-1"
TOKEN = "adm-secret-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "sk-upstream-secret-123"
ALIAS = "support-bot"


def config(upstream: str, *, store: str | None = None, **route: Any) -> GatewayConfig:
    entry: dict[str, Any] = {
        "baseline": f"openai:gpt-4o-mini@{upstream}",
        "candidate": {"target": f"openai:gpt-4.1-mini@{upstream}", "key_env": "ALT_KEY"},
        "weight": 0,
        "sticky": "user",
    }
    entry.update(route)
    data: dict[str, Any] = {
        "client_keys": [KEY],
        "admin_token": TOKEN,
        "routes": {ALIAS: entry, "plain": {"baseline": f"openai:gpt-4o-mini@{upstream}"}},
    }
    if store is not None:
        data["store"] = store
    return GatewayConfig.model_validate(data)


@asynccontextmanager
async def gateway(cfg: GatewayConfig) -> AsyncIterator[str]:
    env = {"OPENAI_API_KEY": SECRET, "ALT_KEY": SECRET}
    async with serve_app(Gateway(cfg, env=env).app()) as root:
        yield root


@pytest.fixture
async def upstream() -> AsyncIterator[OpenAIServer]:
    async with OpenAIServer() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def arm(http: aiohttp.ClientSession, root: str, user: str) -> str:
    body = {"model": ALIAS, "user": user, "messages": [{"role": "user", "content": "hi"}]}
    async with http.post(
        f"{root}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
    ) as resp:
        assert resp.status == 200, await resp.text()
        return resp.headers["x-cutover-arm"]


async def arms(http: aiohttp.ClientSession, root: str, users: list[str]) -> dict[str, str]:
    got = await asyncio.gather(*(arm(http, root, u) for u in users))
    return dict(zip(users, got, strict=True))


async def post(
    http: aiohttp.ClientSession, url: str, body: Any = None, headers: dict[str, str] = ADMIN
) -> tuple[int, Any]:
    async with http.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url, headers=ADMIN) as resp:
        return resp.status, await resp.json()


USERS = [f"user-{i}" for i in range(300)]


async def test_admin_auth(
    upstream: OpenAIServer, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return bool(real(a, b))

    monkeypatch.setattr("cutover.gateway.admin.hmac.compare_digest", spy)
    async with gateway(config(upstream.base_url)) as root:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            async with http.get(f"{root}/admin/routes", headers=headers) as resp:
                assert resp.status == 401
            status, _ = await post(http, f"{root}/admin/routes/{ALIAS}/rollback", {}, headers)
            assert status == 401
        async with http.get(
            f"{root}/admin/routes", headers={"Authorization": f"Bearer {KEY}"}
        ) as r:
            assert r.status == 401  # a client key is not an admin token
        assert (await get(http, f"{root}/admin/routes"))[0] == 200
    assert (b"wrong", TOKEN.encode()) in calls
    assert (TOKEN.encode(), TOKEN.encode()) in calls


async def test_admin_closed_without_a_token(
    upstream: OpenAIServer, http: aiohttp.ClientSession
) -> None:
    cfg = config(upstream.base_url).model_copy(update={"admin_token": None})
    async with gateway(cfg) as root:
        status, body = await get(http, f"{root}/admin/routes")
    assert status == 401
    assert "admin_token" in body["error"]["message"]


async def test_routes_listed_without_keys(
    upstream: OpenAIServer, http: aiohttp.ClientSession
) -> None:
    async with (
        gateway(config(upstream.base_url, weight=10)) as root,
        http.get(f"{root}/admin/routes", headers=ADMIN) as resp,
    ):
        text = await resp.text()
        body = await resp.json()
    assert SECRET not in text
    routes = {r["alias"]: r for r in body["routes"]}
    assert routes[ALIAS]["baseline"] == f"openai:gpt-4o-mini@{upstream.base_url}"
    assert routes[ALIAS]["candidate"] == f"openai:gpt-4.1-mini@{upstream.base_url}"
    assert routes[ALIAS]["weight"] == 10
    assert routes[ALIAS]["version"] == 1
    assert routes["plain"]["candidate"] is None


async def test_weight_changes_the_split_and_keeps_candidates(
    upstream: OpenAIServer, http: aiohttp.ClientSession
) -> None:
    async with gateway(config(upstream.base_url)) as root:
        assert set((await arms(http, root, USERS)).values()) == {"baseline"}
        status, body = await post(http, f"{root}/admin/routes/{ALIAS}/weight", {"weight": 30})
        assert status == 200, body
        assert body["route"]["weight"] == 30 and body["before"]["weight"] == 0
        at30 = await arms(http, root, USERS)
        share = sum(a == "candidate" for a in at30.values()) / len(USERS)
        assert 0.2 < share < 0.4
        await post(http, f"{root}/admin/routes/{ALIAS}/weight", {"weight": 60.5})
        at60 = await arms(http, root, USERS)
        assert all(at60[u] == "candidate" for u, a in at30.items() if a == "candidate")
        assert sum(a == "candidate" for a in at60.values()) > sum(
            a == "candidate" for a in at30.values()
        )
        status, body = await post(http, f"{root}/admin/routes/{ALIAS}/rollback", {"actor": "ops"})
        assert status == 200 and body["route"]["weight"] == 0
        assert set((await arms(http, root, USERS)).values()) == {"baseline"}


async def test_bad_input(upstream: OpenAIServer, http: aiohttp.ClientSession) -> None:
    async with gateway(config(upstream.base_url)) as root:
        url = f"{root}/admin/routes/{ALIAS}/weight"
        for body, field in [
            ({"weight": "10"}, "weight"),
            ({"weight": 101}, "weight"),
            ({"weight": -1}, "weight"),
            ({"weight": True}, "weight"),
            ({}, "weight"),
            ({"weight": 5, "actor": 7}, "actor"),
            ([1], "body"),
        ]:
            status, answer = await post(http, url, body)
            assert status == 400, body
            assert answer["error"]["param"] == field
        async with http.post(url, data=b"{nope", headers=ADMIN) as resp:
            assert resp.status == 400
        status, answer = await post(http, f"{root}/admin/routes/plain/weight", {"weight": 5})
        assert status == 400 and answer["error"]["param"] == "weight"
        status, answer = await post(http, f"{root}/admin/routes/nope/rollback", {})
        assert status == 404 and answer["error"]["param"] == "alias"
        status, answer = await get(http, f"{root}/admin/audit?limit=abc")
        assert status == 400 and answer["error"]["param"] == "limit"


async def test_changes_are_audited_in_the_store(
    upstream: OpenAIServer, http: aiohttp.ClientSession, store_url: str
) -> None:
    async with gateway(config(upstream.base_url, store=store_url, weight=5)) as root:
        await post(http, f"{root}/admin/routes/{ALIAS}/weight", {"weight": 25, "actor": "alice"})
        async with http.post(f"{root}/admin/routes/{ALIAS}/rollback", headers=ADMIN) as resp:
            assert resp.status == 200  # an empty body is fine for a rollback
        status, body = await get(http, f"{root}/admin/audit?limit=10")
    assert status == 200
    newest, older = body["audit"]
    assert (newest["actor"], newest["action"], newest["alias"]) == ("admin", "rollback", ALIAS)
    assert newest["before"]["weight"] == 25 and newest["after"]["weight"] == 0
    assert (older["actor"], older["action"]) == ("alice", "set_weight")
    assert older["before"] == {
        "weight": 5,
        "version": 1,
        "candidate": f"openai:gpt-4.1-mini@{upstream.base_url}",
    }
    assert older["after"]["weight"] == 25 and older["after"]["version"] == 2
    assert newest["ts"] >= older["ts"]
    assert SECRET not in str(body)


async def test_the_store_wins_over_the_config_after_a_restart(
    upstream: OpenAIServer, http: aiohttp.ClientSession, sqlite_url: str
) -> None:
    async with gateway(config(upstream.base_url, store=sqlite_url, weight=5)) as root:
        await post(http, f"{root}/admin/routes/{ALIAS}/weight", {"weight": 40})
    async with gateway(config(upstream.base_url, store=sqlite_url, weight=90)) as root:
        _, body = await get(http, f"{root}/admin/routes")
    route = next(r for r in body["routes"] if r["alias"] == ALIAS)
    assert route["weight"] == 40 and route["version"] == 2


async def _weights(http: aiohttp.ClientSession, roots: list[str]) -> list[float]:
    out = []
    for root in roots:
        _, body = await get(http, f"{root}/admin/routes")
        out.append(next(r["weight"] for r in body["routes"] if r["alias"] == ALIAS))
    return out


async def test_sqlite_replicas_follow_by_polling(
    upstream: OpenAIServer, http: aiohttp.ClientSession, sqlite_url: str
) -> None:
    async with AsyncExitStack() as stack:
        roots = [
            await stack.enter_async_context(
                gateway(config(upstream.base_url, store=sqlite_url, weight=50))
            )
            for _ in range(2)
        ]
        status, _ = await post(http, f"{roots[0]}/admin/routes/{ALIAS}/rollback", {})
        assert status == 200
        # A 0.5 s poll; each read is a thread's SQLite query, so give a loaded machine room.
        start = time.perf_counter()
        while (weights := await _weights(http, roots)) != [0, 0]:
            assert time.perf_counter() - start < 10.0, f"replica weights still {weights}"
            await asyncio.sleep(0.02)


async def test_rollback_reaches_three_postgres_replicas_within_1s(
    upstream: OpenAIServer, http: aiohttp.ClientSession, postgres_url: str
) -> None:
    async with AsyncExitStack() as stack:
        roots = [
            await stack.enter_async_context(
                gateway(config(upstream.base_url, store=postgres_url, weight=50))
            )
            for _ in range(3)
        ]
        before = [await arms(http, root, USERS[:100]) for root in roots]
        assert before[0] == before[1] == before[2]  # sticky across replicas
        on_candidate = [u for u, a in before[0].items() if a == "candidate"]
        assert on_candidate
        start = time.perf_counter()
        status, _ = await post(http, f"{roots[0]}/admin/routes/{ALIAS}/rollback", {"actor": "t"})
        assert status == 200
        pending = set(roots[1:])
        seen: dict[str, float] = {}
        while pending:
            for root in list(pending):
                got = await arms(http, root, on_candidate[:5])
                if set(got.values()) == {"baseline"}:
                    seen[root] = time.perf_counter() - start
                    pending.discard(root)
            assert time.perf_counter() - start < 1.0, f"not all replicas rolled back: {pending}"
            await asyncio.sleep(0.005)
        assert await _weights(http, roots) == [0, 0, 0]
        worst = max(seen.values())
        print(f"\nrollback reached replicas 2 and 3 in {worst * 1000:.1f} ms (worst)")
        assert worst < 1.0


async def test_drill_times_a_cohort_switch_on_every_replica(
    upstream: OpenAIServer, http: aiohttp.ClientSession, postgres_url: str
) -> None:
    from cutover.rollout.drill import drill
    from cutover.store import open_store

    async with AsyncExitStack() as stack:
        roots = [
            await stack.enter_async_context(
                gateway(config(upstream.base_url, store=postgres_url, weight=10))
            )
            for _ in range(3)
        ]
        with open_store(postgres_url) as store:
            result = await drill(store, ALIAS, roots, admin_token=TOKEN)
            route = store.gateway_route(ALIAS)
            audit = store.gateway_audit(5)
        print(f"\ndrill: {result.to_dict()}")
        assert route is not None and route.weight == 10  # restored
        to_candidate, back = result.switches
        assert (to_candidate.to_arm, back.to_arm) == ("candidate", "baseline")
        assert result.drill_weight == pytest.approx(10.01)
        for switch in result.switches:
            assert set(switch.seconds) == set(roots)
            assert switch.worst is not None and switch.worst < 1.0
        assert [a.action for a in audit[:2]] == ["drill", "drill"]
        assert await _weights(http, roots) == [10, 10, 10]
        # a real user outside the drill slice never moved
        status, body = await get(http, f"{roots[0]}/admin/routes/{ALIAS}/arm?key={result.key}")
        assert status == 200 and body["arm"] == "baseline"


async def test_drill_command_prints_each_replica(upstream: OpenAIServer, postgres_url: str) -> None:
    import os
    import sys

    async with AsyncExitStack() as stack:
        roots = [
            await stack.enter_async_context(
                gateway(config(upstream.base_url, store=postgres_url, weight=100))
            )
            for _ in range(2)
        ]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cutover", "rollout", "drill", "--route", ALIAS,
            "--gateway", roots[0], "--gateway", roots[1], "--db", postgres_url,
            env={**os.environ, "CUTOVER_ADMIN_TOKEN": TOKEN, "COLUMNS": "200"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await proc.communicate()
    text = stdout.decode()
    assert proc.returncode == 0, stderr.decode()
    assert "weight 100% <-> 99.99%" in text  # at 100 the cohort comes from just below
    assert "-> baseline" in text and "-> candidate" in text
    assert all(root in text for root in roots) and " ms" in text

"""``POST /v1/embeddings/search`` on the gateway: an alias resolved per request.

Two real indexes (the offline ``hash`` model) in the gateway's SQLite store;
the alias is switched and rolled back with the library while the gateway
serves, and each request answers from the index the alias names at that
moment. Errors are OpenAI-shaped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from cutover.embeddings import build_index, registry
from cutover.gateway import Gateway, GatewayConfig
from cutover.store import open_store
from cutover.testing import serve_app

KEY = "sk-client-1"


def corpus(tmp_path: Path, prefix: str) -> Path:
    path = tmp_path / f"{prefix}.jsonl"
    rows = [
        {"_id": f"{prefix}-{i}", "title": "", "text": f"text {i} of {prefix}"} for i in range(12)
    ]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


@asynccontextmanager
async def serving(cfg: GatewayConfig) -> AsyncIterator[str]:
    async with serve_app(Gateway(cfg, env={}).app()) as root:
        yield root


async def post(root: str, body: Any, key: str = KEY) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{root}/v1/embeddings/search",
            data=orjson.dumps(body),
            headers={"Authorization": f"Bearer {key}"},
        ) as resp,
    ):
        return resp.status, await resp.json()


async def test_search_follows_the_alias_per_request(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    with open_store(url) as store:
        build_index("old-idx", corpus=corpus(tmp_path, "old"), model="hash:8", store=store)
        build_index("new-idx", corpus=corpus(tmp_path, "new"), model="hash:16", store=store)
        registry.set_alias(store, "docs", "old-idx", actor="test")
    cfg = GatewayConfig.model_validate(
        {"client_keys": [KEY], "store": url, "routes": {"bot": {"baseline": "openai:gpt-4o-mini"}}}
    )
    async with serving(cfg) as root:
        status, body = await post(root, {"index": "docs", "query": "text 3 of old", "k": 2})
        assert status == 200
        assert (body["index"], body["alias"], body["model"]) == ("old-idx", "docs", "hash:8")
        assert body["results"][0][0]["id"] == "old-3" and len(body["results"][0]) == 2
        with open_store(url) as store:
            registry.set_alias(store, "docs", "new-idx", actor="test")
        status, body = await post(root, {"index": "docs", "queries": ["text 5 of new"], "k": 1})
        assert (status, body["index"], body["results"][0][0]["id"]) == (200, "new-idx", "new-5")
        with open_store(url) as store:
            registry.rollback_alias(store, "docs", actor="test")
        status, body = await post(root, {"index": "docs", "query": "text 5 of old", "k": 1})
        assert (status, body["index"], body["results"][0][0]["id"]) == (200, "old-idx", "old-5")
        status, body = await post(root, {"index": "new-idx", "query": "text 1 of new", "k": 1})
        assert (body["index"], body["alias"]) == ("new-idx", None)  # an index by its own name

        status, body = await post(root, {"index": "nope", "query": "x"})
        assert status == 404 and body["error"]["code"] == "index_not_found"
        status, body = await post(root, {"index": "docs", "query": "x", "queries": ["y"]})
        assert status == 400 and body["error"]["param"] == "query"
        status, body = await post(root, {"index": "docs", "query": "x", "k": 0})
        assert status == 400 and body["error"]["param"] == "k"
        status, body = await post(root, {"index": "docs", "query": "x"}, key="wrong")
        assert status == 401


async def test_search_without_a_store_is_503() -> None:
    cfg = GatewayConfig.model_validate(
        {"client_keys": [KEY], "routes": {"bot": {"baseline": "openai:gpt-4o-mini"}}}
    )
    async with serving(cfg) as root:
        status, body = await post(root, {"index": "docs", "query": "x"})
    assert status == 503 and body["error"]["type"] == "service_unavailable"

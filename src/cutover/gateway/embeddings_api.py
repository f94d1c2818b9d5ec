"""``POST /v1/embeddings/search``: retrieval through an embedding alias, resolved per request.

Applications that retrieve through the gateway name an alias (or an index);
each request resolves it once (:meth:`cutover.embeddings.query.Searcher.lookup`),
so an ``cutover embeddings alias set`` or ``rollback`` takes effect on the
next request, and a request never mixes two indexes::

    POST /v1/embeddings/search
    {"index": "docs", "query": "how do refunds work?", "k": 5}
    {"index": "docs", "queries": ["...", "..."], "k": 5}

    200 {"index": "docs-minilm", "alias": "docs", "model": "minilm",
         "results": [[{"id": "d17", "score": 0.83}, ...]]}

The registry is the gateway's ``store``. The query is embedded with the
index's own model and the index searched in a worker thread (a model and an
opened index are cached per process), so the event loop keeps serving.
Errors are OpenAI-shaped: 400 names the field, an unknown index or alias is
404, no ``store`` is 503.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from cutover.errors import CutoverError, VectorIndexError
from cutover.gateway._errors import bad_request, error_response

if TYPE_CHECKING:
    from cutover.embeddings.query import Lookup, Searcher

MAX_QUERIES = 256
MAX_K = 1000


class EmbeddingsSearch:
    """The endpoint; the store is opened (in a thread) on the first request."""

    def __init__(self, store_url: str | None) -> None:
        self.store_url = store_url
        self._searcher: Searcher | None = None
        self._lock = threading.Lock()

    def searcher(self) -> Searcher:
        from cutover.embeddings.query import Searcher
        from cutover.store import Store

        assert self.store_url is not None
        with self._lock:
            if self._searcher is None:
                self._searcher = Searcher(Store.open(self.store_url))
            return self._searcher

    def close(self) -> None:
        with self._lock:
            searcher, self._searcher = self._searcher, None
        if searcher is not None:
            searcher.store.close()

    async def handle(self, request: web.Request, headers: Mapping[str, str]) -> web.Response:
        if self.store_url is None:
            return error_response(
                503,
                "This gateway has no store, so it has no embedding indexes.",
                error_type="service_unavailable",
                headers=headers,
            )
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            return bad_request(f"We could not parse the JSON body ({exc}).", None, headers)
        parsed = _parse(body)
        if isinstance(parsed, tuple):
            return bad_request(parsed[1], parsed[0], headers)
        name, queries, k = parsed["index"], parsed["queries"], parsed["k"]
        run: Callable[[], Lookup] = lambda: self.searcher().lookup(name, queries, k)  # noqa: E731
        try:
            found = await asyncio.to_thread(run)
        except VectorIndexError as exc:
            status = 404 if "no embedding index or alias" in exc.message else 409
            return error_response(
                status,
                str(exc),
                error_type="invalid_request_error",
                code="index_not_found" if status == 404 else "index_unavailable",
                param="index",
                headers=headers,
            )
        except CutoverError as exc:
            return error_response(503, str(exc), error_type="service_unavailable", headers=headers)
        payload = {
            "index": found.index_name,
            "alias": found.alias,
            "model": found.model,
            "results": [[{"id": h.id, "score": h.score} for h in hits] for hits in found.hits],
        }
        return web.Response(body=orjson.dumps(payload), content_type="application/json")


def _parse(body: Any) -> dict[str, Any] | tuple[str, str]:
    """The checked request, or ``(param, message)`` for the first bad field."""
    if not isinstance(body, dict):
        return "", "The request body must be a JSON object."
    name = body.get("index")
    if not isinstance(name, str) or not name:
        return "index", "'index' must be a non-empty string (an index or alias name)."
    if ("query" in body) == ("queries" in body):
        return "query", "Send exactly one of 'query' (a string) or 'queries' (a list of strings)."
    queries = [body["query"]] if "query" in body else body["queries"]
    if not isinstance(queries, list) or not all(isinstance(q, str) and q for q in queries):
        return "queries", "'query' must be a non-empty string; 'queries' a list of them."
    if not 1 <= len(queries) <= MAX_QUERIES:
        return "queries", f"Send 1 to {MAX_QUERIES} queries per request."
    k = body.get("k", 10)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        return "k", f"'k' must be an integer from 1 to {MAX_K}."
    return {"index": name, "queries": queries, "k": k}


__all__ = ["EmbeddingsSearch"]

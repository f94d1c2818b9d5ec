"""Time to first token over streamed chat completions, one at a time, interleaved over servers.

    python bench/gateway/ttft.py http://127.0.0.1:18080 http://127.0.0.1:18101 -n 500 --rounds 10

Each server gets its own keep-alive connection; the n requests per server are
spread over ``rounds`` rounds, and in each round every server gets n/rounds
requests, in a rotating order, so that a slow moment of the machine falls on
all servers alike instead of on whichever was measured then. Prints JSON: per
URL the median, p99 and mean TTFT in milliseconds (time from sending the
request to receiving the first SSE data chunk) and the total stream time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import aiohttp

BODY = {
    "model": "support-bot",
    "user": "ttft-user",
    "stream": True,
    "messages": [{"role": "user", "content": "Say hello."}],
    "max_tokens": 16,
}


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def one(session: aiohttp.ClientSession, url: str, body: dict, headers: dict) -> tuple:
    t0 = time.perf_counter()
    async with session.post(url + "/v1/chat/completions", json=body, headers=headers) as r:
        if r.status != 200:
            raise SystemExit(f"{url}: HTTP {r.status}: {await r.text()}")
        first = None
        async for chunk in r.content.iter_any():
            if first is None and b"data:" in chunk:
                first = time.perf_counter()
        t1 = time.perf_counter()
    return (None if first is None else (first - t0) * 1000), (t1 - t0) * 1000


async def measure(
    urls: list[str], n: int, rounds: int, warmup: int, key: str, model: str
) -> dict[str, dict[str, float]]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    sessions = {u: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) for u in urls}
    ttfts: dict[str, list[float]] = {u: [] for u in urls}
    totals: dict[str, list[float]] = {u: [] for u in urls}
    try:
        for u in urls:
            for i in range(warmup):
                await one(sessions[u], u, dict(BODY, model=model, user=f"w{i}"), headers)
        per_round = max(1, n // rounds)
        for r in range(rounds):
            order = urls[r % len(urls) :] + urls[: r % len(urls)]
            for u in order:
                for i in range(per_round):
                    body = dict(BODY, model=model, user=f"ttft-user-{i % 50}")
                    first, total = await one(sessions[u], u, body, headers)
                    if first is not None:
                        ttfts[u].append(first)
                        totals[u].append(total)
    finally:
        for s in sessions.values():
            await s.close()
    return {
        u: {
            "n": len(ttfts[u]),
            "ttft_median_ms": statistics.median(ttfts[u]),
            "ttft_p99_ms": pct(ttfts[u], 0.99),
            "ttft_mean_ms": statistics.fmean(ttfts[u]),
            "total_median_ms": statistics.median(totals[u]),
        }
        for u in urls
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("urls", nargs="+", help="root URLs, e.g. http://127.0.0.1:18101")
    parser.add_argument("-n", type=int, default=200, help="requests per server")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--key", default="sk-client-1")
    parser.add_argument("--model", default="support-bot")
    args = parser.parse_args()
    result = asyncio.run(measure(args.urls, args.n, args.rounds, args.warmup, args.key, args.model))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

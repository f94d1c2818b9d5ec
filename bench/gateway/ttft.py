"""Time to first token over N streamed chat completions, one at a time.

    python bench/gateway/ttft.py http://127.0.0.1:18101 -n 200

Prints JSON: median, p99 and mean TTFT in milliseconds (time from sending the
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


async def measure(url: str, n: int, warmup: int, key: str, model: str) -> dict[str, float]:
    body = dict(BODY, model=model)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    ttfts: list[float] = []
    totals: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        for i in range(warmup + n):
            body["user"] = f"ttft-user-{i % 50}"
            t0 = time.perf_counter()
            async with session.post(url + "/v1/chat/completions", json=body, headers=headers) as r:
                if r.status != 200:
                    raise SystemExit(f"{url}: HTTP {r.status}: {await r.text()}")
                first = None
                async for chunk in r.content.iter_any():
                    if first is None and b"data:" in chunk:
                        first = time.perf_counter()
                t1 = time.perf_counter()
            if i >= warmup and first is not None:
                ttfts.append((first - t0) * 1000)
                totals.append((t1 - t0) * 1000)
    return {
        "n": len(ttfts),
        "ttft_median_ms": statistics.median(ttfts),
        "ttft_p99_ms": pct(ttfts, 0.99),
        "ttft_mean_ms": statistics.fmean(ttfts),
        "total_median_ms": statistics.median(totals),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url", help="root URL, e.g. http://127.0.0.1:18101")
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--key", default="sk-client-1")
    parser.add_argument("--model", default="support-bot")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.url, args.n, args.warmup, args.key, args.model))))


if __name__ == "__main__":
    main()

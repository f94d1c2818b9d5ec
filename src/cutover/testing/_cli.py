"""Running a wire server from the command line (for benchmarks and demos)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import signal
from collections.abc import Sequence
from typing import Any

from cutover.testing._server import WireServer


def run_cli(
    server_cls: type[WireServer], argv: Sequence[str] | None, *, prog: str, default_port: int
) -> int:
    """Serve until SIGINT or SIGTERM; print the base URL once listening.

    ``--workers N`` runs N processes on the same port (SO_REUSEPORT), for
    load tests that need more than one core's worth of requests per second.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description=f"A local {server_cls.dialect} wire-format server for tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="fixed latency per request")
    parser.add_argument(
        "--ttft-fraction",
        type=float,
        default=0.5,
        help="share of the latency before the first streamed token (default 0.5)",
    )
    parser.add_argument("--api-key", default=None, help="require this key (401 otherwise)")
    parser.add_argument("--record", type=int, default=0, help="keep the last N requests")
    parser.add_argument(
        "--workers", type=int, default=1, help="processes sharing the port (default 1)"
    )
    args = parser.parse_args(argv)
    if args.workers > 1 and args.port == 0:
        parser.error("--workers needs a fixed --port")
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "latency_s": args.latency_ms / 1000.0,
        "ttft_fraction": args.ttft_fraction,
        "api_key": args.api_key,
        "record_limit": args.record,
        "reuse_port": args.workers > 1,
    }
    context = multiprocessing.get_context("spawn")
    helpers = [
        context.Process(target=_worker, args=(server_cls, options, os.getpid()), daemon=True)
        for _ in range(args.workers - 1)
    ]
    for process in helpers:
        process.start()
    try:
        asyncio.run(_serve(server_cls(**options), announce=True))
    finally:
        for process in helpers:
            process.terminate()
        for process in helpers:
            process.join(timeout=5)
    return 0


def _worker(server_cls: type[WireServer], options: dict[str, Any], parent: int) -> None:
    asyncio.run(_serve(server_cls(**options), announce=False, parent=parent))


async def _serve(server: WireServer, *, announce: bool, parent: int | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        if announce:
            print(server.base_url, flush=True)
        if parent is None:
            await stop.wait()
            return
        # A helper process also stops when its parent is gone (killed hard).
        while not stop.is_set() and os.getppid() == parent:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)


__all__ = ["run_cli"]

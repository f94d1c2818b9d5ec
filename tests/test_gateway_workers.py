"""``cutover gateway --workers N``: several processes on one port, supervised.

Run as a real command (a subprocess) against a local upstream: requests are
spread over the workers (seen by the pid in ``/healthz`` on fresh
connections), a killed worker is replaced, the shared request log gets every
request, and SIGTERM stops them all.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import openai

from cutover.store import Store
from cutover.testing import OpenAIServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def pids_seen(root: str, tries: int = 60) -> set[int]:
    seen: set[int] = set()
    for _ in range(tries):
        # a new connection each time, so the kernel may pick another worker
        async with aiohttp.ClientSession() as http, http.get(f"{root}/healthz") as resp:
            seen.add(int((await resp.json())["pid"]))
    return seen


async def wait_for_pids(
    root: str, wanted: Callable[[set[int]], bool], timeout: float = 60.0
) -> set[int]:
    """The pids answering ``/healthz`` (20 fresh connections a round) once they are
    ``wanted``, else at the deadline. Timed, not counted in rounds: starting a worker
    (Python, its store worker) takes seconds on a loaded machine."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        seen = await pids_seen(root, 20)
        if wanted(seen) or asyncio.get_running_loop().time() >= deadline:
            return seen
        await asyncio.sleep(0.2)


async def wait_up(root: str, proc: asyncio.subprocess.Process, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        assert proc.returncode is None, "the gateway exited"
        try:
            await pids_seen(root, tries=1)
            return
        except aiohttp.ClientError:
            await asyncio.sleep(0.2)
    raise AssertionError("the gateway did not start")


async def start_workers(
    tmp_path: Path, upstream: OpenAIServer, extra: str = ""
) -> tuple[asyncio.subprocess.Process, str]:
    """``cutover gateway --workers 2`` with one route ``bot`` on ``upstream``, up and
    (most likely) both workers accepting; the process and its root URL."""
    port = free_port()
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(
        f"client_keys: [sk-client-1]\n{extra}"
        f"routes:\n  bot:\n    baseline: openai:gpt-4o-mini@{upstream.base_url}\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cutover", "gateway", "--config", str(cfg),
        "--port", str(port), "--workers", "2",
        env={**os.environ, "OPENAI_API_KEY": "sk-up"},
    )  # fmt: skip
    root = f"http://127.0.0.1:{port}"
    try:
        await wait_up(root, proc)  # one worker is up; the other may still be starting
        await wait_for_pids(root, lambda seen: len(seen) == 2)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return proc, root


async def test_workers_share_the_port_restart_and_stop(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"
    async with OpenAIServer() as up:
        proc, root = await start_workers(tmp_path, up, f"store: sqlite:///{db}\n")
        try:
            first = await pids_seen(root)
            assert len(first) == 2
            victim = min(first)
            os.kill(victim, signal.SIGKILL)
            client = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key="sk-client-1")
            ids = set()
            for i in range(30):  # served throughout (the client retries a refused connection)
                raw = await client.chat.completions.with_raw_response.create(
                    model="bot", messages=[{"role": "user", "content": f"q{i}"}]
                )
                ids.add(raw.headers["x-cutover-request-id"])
            later = await wait_for_pids(root, lambda seen: len(seen) == 2 and victim not in seen)
            assert len(later) == 2 and victim not in later  # replaced
        finally:
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 30)
        assert code == 0
        for pid in first | later:  # every worker stopped with the supervisor
            assert not os.path.exists(f"/proc/{pid}") or _is_zombie(pid)
    with Store.open(f"sqlite:///{db}") as store:
        assert all(store.get_gateway_request(rid) is not None for rid in ids)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True

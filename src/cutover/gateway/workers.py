"""``cutover gateway --workers N``: N gateway processes on one port, supervised.

Each worker is a whole gateway (``cutover gateway`` in a child process) bound
to the same address with ``SO_REUSEPORT``, so the kernel spreads connections
over them; each has its own store worker. They share what replicas share: the
routes' weights through the store (a change through any worker's admin API
reaches the others like it reaches other replicas: LISTEN/NOTIFY on
PostgreSQL, a 0.5 s poll on SQLite), the request log and the shadow runs.
Each worker gets ``1/N`` of every route's daily shadow budget, so the
processes together spend at most the budget. ``/metrics`` answers for the
whole host from any worker: the supervisor makes a directory where each
worker writes its series every second and a scrape sums them
(:class:`cutover.gateway.metrics.SharedMetrics`); the directory is removed
when the supervisor stops.

The supervisor restarts a worker that dies (after 1 s, or longer if workers
keep dying at once: a port in use, a broken config) and stops every worker on
SIGINT or SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

RESTART_PAUSE_S = 1.0
GIVE_UP_AFTER = 5
"""Workers dying within :data:`QUICK_DEATH_S` of their start this many times in a row: stop."""
QUICK_DEATH_S = 2.0
STOP_GRACE_S = 15.0

logger = logging.getLogger(__name__)


def worker_command(
    config: Path, host: str, port: int, workers: int, metrics_dir: Path
) -> list[str]:
    """The command line of one worker."""
    return [
        sys.executable,
        "-m",
        "cutover",
        "gateway",
        "--config",
        str(config),
        "--host",
        host,
        "--port",
        str(port),
        "--reuse-port",
        "--budget-share",
        repr(1.0 / workers),
        "--metrics-dir",
        str(metrics_dir),
    ]


def supervise(config: Path, host: str, port: int, workers: int) -> int:
    """Run ``workers`` gateway processes until SIGINT/SIGTERM; the exit code."""
    metrics_dir = Path(tempfile.mkdtemp(prefix="cutover-gateway-metrics-"))
    try:
        return _supervise(worker_command(config, host, port, workers, metrics_dir), workers)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _supervise(command: list[str], workers: int) -> int:
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    procs: list[tuple[subprocess.Popen[bytes], float]] = []
    quick_deaths = 0
    code = 0
    try:
        procs = [(subprocess.Popen(command), time.monotonic()) for _ in range(workers)]
        while not stopping:
            time.sleep(0.2)
            for i, (proc, started) in enumerate(procs):
                if stopping or proc.poll() is None:
                    continue
                lived = time.monotonic() - started
                quick_deaths = quick_deaths + 1 if lived < QUICK_DEATH_S else 0
                if quick_deaths >= GIVE_UP_AFTER:
                    print(
                        f"cutover gateway: workers keep exiting at once (last code "
                        f"{proc.returncode}); stopping",
                        file=sys.stderr,
                    )
                    stopping, code = True, 1
                    break
                print(
                    f"cutover gateway: worker {proc.pid} exited with {proc.returncode} "
                    f"after {lived:.1f}s; restarting it",
                    file=sys.stderr,
                )
                time.sleep(RESTART_PAUSE_S * (1 + quick_deaths))
                if stopping:  # a signal came during the pause
                    break
                procs[i] = (subprocess.Popen(command), time.monotonic())
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc, _ in procs:
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code


__all__ = ["supervise", "worker_command"]

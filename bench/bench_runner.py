"""Benchmark of the side-by-side runner against a local OpenAI-compatible server.

Requirement measured: against a server with a fixed latency L (100 ms), N cases
(1,000) x 2 targets at concurrency C (64) finish within 1.15x the ideal
(2N x L / C = 3.125 s), with memory flat in the number of cases.

The server runs in a separate process (its own GIL). Every figure is printed,
with ratios against references measured in the same invocation:

* ideal      2N x L / C, what a zero-cost client would take;
* reference  a bare aiohttp client (no cutover code) sending the same 2N
             requests at the same concurrency to the same server: what this
             machine and this server can do;
* cutover    :func:`cutover.runner.run_compare` over an in-memory suite, with a
             fresh SQLite store, the response cache off; streaming (the
             default) and non-streaming targets.

Memory: for each size in ``--memory-sizes`` a fresh child process builds the
suite and runs the comparison (server latency ``--memory-latency-ms``, 5 ms by
default, to keep it quick) and reports its peak RSS; the slope in MB per 1,000
cases is printed for the whole process and for the run alone (the suite itself
is held in memory by design and is reported separately).

Nothing here asserts on time; it prints figures (``--json`` also writes them)::

    python bench/bench_runner.py
    python bench/bench_runner.py --cases 1000 --concurrency 64 --latency-ms 100 \
        --memory-sizes 1000,4000,16000 --json bench-runner.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import resource
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from cutover.pricing import quote
from cutover.runner import CompareOptions, run_compare
from cutover.store import Store
from cutover.suites import Case, Suite
from cutover.targets import parse_target

TARGET_RATIO = 1.15
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = resource.getpagesize()


# -- the server process ---------------------------------------------------------


@dataclass
class ServerProcess:
    """``python -m cutover.testing.openai_server`` running in its own process."""

    process: subprocess.Popen[bytes]
    base_url: str
    stderr_path: Path

    def cpu_seconds(self) -> float | None:
        """User + system CPU the server has used so far (Linux /proc), else None."""
        return _proc_cpu_seconds(self.process.pid)


def _proc_cpu_seconds(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


@contextlib.contextmanager
def openai_server(latency_ms: float, workdir: Path) -> Iterator[ServerProcess]:
    """Start the server on a free port, wait until GET /v1/models answers, kill it after."""
    stderr_path = workdir / f"server-{latency_ms:g}ms.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cutover.testing.openai_server",
                "--port",
                "0",
                "--latency-ms",
                f"{latency_ms:g}",
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
        )
    try:
        base_url = _read_announced_url(process, stderr_path, timeout_s=30.0)
        _wait_until_answers(f"{base_url}/models", process, stderr_path, timeout_s=30.0)
        yield ServerProcess(process, base_url, stderr_path)
    finally:
        _stop(process)


def _read_announced_url(process: subprocess.Popen[bytes], stderr: Path, timeout_s: float) -> str:
    """The server prints its base URL once listening (``--port 0`` picks a free port)."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    buffer = b""
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or process.poll() is not None:
            raise RuntimeError(f"the server did not start: {_tail(stderr)}")
        ready, _, _ = select.select([process.stdout], [], [], min(remaining, 0.5))
        if ready:
            data = os.read(process.stdout.fileno(), 4096)
            if not data:
                raise RuntimeError(f"the server exited: {_tail(stderr)}")
            buffer += data
    return buffer.split(b"\n", 1)[0].decode().strip()


def _wait_until_answers(
    url: str, process: subprocess.Popen[bytes], stderr: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {_tail(stderr)}")
        try:
            with urllib.request.urlopen(url, timeout=2.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server at {url} did not answer within {timeout_s:g} s")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    if process.stdout is not None:
        process.stdout.close()


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:] or "(no stderr)"
    except OSError:
        return "(no stderr)"


# -- what is sent -----------------------------------------------------------------


def build_suite(n: int) -> Suite:
    """``n`` cases with distinct user messages (in memory, no file)."""
    return Suite(
        name=f"bench-{n}",
        cases=[
            Case(
                id=f"case-{i:06d}",
                messages=[
                    {
                        "role": "user",
                        "content": f"Question {i}: summarise ticket #{i * 7919 % 100003} "
                        "in one sentence.",
                    }
                ],
                tags={"slice": f"s{i % 8}"},
            )
            for i in range(n)
        ],
    )


def reference_body(model: str, i: int, *, stream: bool) -> bytes:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": f"Question {i}: summarise ticket #{i}."}],
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


# -- measurements -------------------------------------------------------------------


@dataclass
class Timing:
    wall_s: float
    client_cpu_s: float
    server_cpu_s: float | None
    requests: int
    failures: int
    extra: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "wall_s": round(self.wall_s, 4),
            "client_cpu_s": round(self.client_cpu_s, 4),
            "server_cpu_s": None if self.server_cpu_s is None else round(self.server_cpu_s, 4),
            "requests": self.requests,
            "failures": self.failures,
            **self.extra,
        }


async def _reference(base_url: str, cases: int, concurrency: int, *, stream: bool) -> int:
    """2 x ``cases`` POSTs from ``concurrency`` workers on one keep-alive session."""
    url = f"{base_url}/chat/completions"
    bodies = [
        reference_body(model, i, stream=stream)
        for i in range(cases)
        for model in ("model-a", "model-b")
    ]
    headers = {"Content-Type": "application/json"}
    failures = 0
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        iterator = iter(bodies)

        async def worker() -> None:
            nonlocal failures
            for body in iterator:
                async with session.post(url, data=body, headers=headers) as response:
                    payload = await response.read()
                    if response.status != 200 or not payload:
                        failures += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failures


def measure_reference(
    server: ServerProcess, cases: int, concurrency: int, *, stream: bool
) -> Timing:
    server_cpu = server.cpu_seconds()
    cpu = time.process_time()
    start = time.perf_counter()
    failures = asyncio.run(_reference(server.base_url, cases, concurrency, stream=stream))
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    server_after = server.cpu_seconds()
    return Timing(
        wall,
        cpu,
        None if server_cpu is None or server_after is None else server_after - server_cpu,
        2 * cases,
        failures,
        {},
    )


def _count_recorded(store: Store, run_id: str) -> dict[str, Any]:
    counts: dict[str, Any] = {}
    for arm in ("old", "new"):
        total = errors = retried = 0
        classes: dict[str, int] = {}
        for observation in store.iter_observations(run_id, arm):
            total += 1
            retried += observation.attempts > 1
            if observation.error is not None:
                errors += 1
                key = observation.error_class or "unknown"
                classes[key] = classes.get(key, 0) + 1
        counts[arm] = {"recorded": total, "errors": errors, "retried": retried, "by_class": classes}
    return counts


async def _cutover_run(
    base_url: str, suite: Suite, store: Store, concurrency: int, *, stream: bool
) -> Any:
    old = parse_target(f"openai:model-a@{base_url}", stream=stream)
    new = parse_target(f"openai:model-b@{base_url}", stream=stream)
    return await run_compare(
        suite, old, new, store, CompareOptions(concurrency=concurrency, use_cache=False)
    )


def measure_cutover(
    server: ServerProcess,
    cases: int,
    concurrency: int,
    workdir: Path,
    *,
    stream: bool,
    profile: Path | None = None,
) -> Timing:
    suite = build_suite(cases)
    db = workdir / f"cutover-{'stream' if stream else 'json'}-{time.monotonic_ns()}.db"
    store = Store.open(f"sqlite:///{db}")
    profiler = cProfile.Profile() if profile is not None else None
    try:
        server_cpu = server.cpu_seconds()
        cpu = time.process_time()
        start = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        result = asyncio.run(
            _cutover_run(server.base_url, suite, store, concurrency, stream=stream)
        )
        if profiler is not None:
            profiler.disable()
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu
        server_after = server.cpu_seconds()
        recorded = _count_recorded(store, result.run.id)
    finally:
        store.close()
    if profiler is not None and profile is not None:
        profiler.dump_stats(str(profile))
    recorded_total = sum(arm["recorded"] for arm in recorded.values())
    errors = sum(arm["errors"] for arm in recorded.values())
    return Timing(
        wall,
        cpu,
        None if server_cpu is None or server_after is None else server_after - server_cpu,
        result.progress.called,
        errors + (2 * cases - recorded_total),
        {
            "run_elapsed_s": round(result.elapsed_s, 4),
            "expected_observations": 2 * cases,
            "recorded_observations": recorded_total,
            "observation_errors": errors,
            "pairs": result.pairs,
            "run_status": result.run.status,
            "by_arm": recorded,
        },
    )


# -- memory (one child process per size) ----------------------------------------------


def _current_rss_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * _PAGE / 2**20


def _ru_maxrss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _peak_rss_mb() -> float:
    """This process's own peak RSS: ``VmHWM`` where Linux has it, else ``ru_maxrss``.

    ``ru_maxrss`` of a child started by ``subprocess`` (vfork + exec) also
    includes the parent's peak at the time of the exec (the kernel keeps the
    larger of the pre-exec and the current high-water mark), so when the
    benchmark process is larger than the child it reports the parent's size.
    ``VmHWM`` is the child's own address space only.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return _ru_maxrss_mb()


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0: ``/proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def memory_child(base_url: str, cases: int, concurrency: int) -> dict[str, Any]:
    """Runs in a fresh process: RSS after imports, after the suite, and the peak.

    A warm-up comparison of 8 cases first pays the one-time costs (lazy imports
    such as alembic's and genai-prices', the first sessions and threads) so the
    baseline is a warm process. The peak mark is then reset, so ``peak_rss_mb``
    is the peak from the baseline on, not the start-up's (``ru_maxrss_mb`` is
    reported too; see :func:`_peak_rss_mb` for why it can be the parent's).
    """
    with tempfile.TemporaryDirectory(prefix="cutover-bench-warm-") as tmp:
        store = Store.open(f"sqlite:///{Path(tmp) / 'warm.db'}")
        try:
            asyncio.run(_cutover_run(base_url, build_suite(8), store, concurrency, stream=True))
        finally:
            store.close()
    startup_peak = _peak_rss_mb()
    peak_reset = _reset_peak_rss()
    baseline_rss = _current_rss_mb()
    suite = build_suite(cases)
    suite_rss = _current_rss_mb()
    with tempfile.TemporaryDirectory(prefix="cutover-bench-mem-") as tmp:
        store = Store.open(f"sqlite:///{Path(tmp) / 'mem.db'}")
        try:
            start = time.perf_counter()
            result = asyncio.run(_cutover_run(base_url, suite, store, concurrency, stream=True))
            wall = time.perf_counter() - start
            after_rss = _current_rss_mb()
            recorded = _count_recorded(store, result.run.id)
        finally:
            store.close()
    peak = _peak_rss_mb()
    ru_maxrss = _ru_maxrss_mb()
    return {
        "cases": cases,
        "baseline_rss_mb": round(baseline_rss, 2),
        "startup_peak_mb": round(startup_peak, 2),
        "peak_reset": peak_reset,
        "after_suite_rss_mb": round(suite_rss, 2),
        "after_run_rss_mb": round(after_rss, 2),
        "peak_rss_mb": round(peak, 2),
        "ru_maxrss_mb": round(ru_maxrss, 2),
        "suite_mb": round(suite_rss - baseline_rss, 2),
        "growth_mb": round(peak - baseline_rss, 2),
        "run_growth_mb": round(peak - suite_rss, 2),
        "wall_s": round(wall, 3),
        "recorded_observations": sum(arm["recorded"] for arm in recorded.values()),
        "observation_errors": sum(arm["errors"] for arm in recorded.values()),
    }


def measure_memory(base_url: str, cases: int, concurrency: int) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--memory-child",
        str(cases),
        "--url",
        base_url,
        "--concurrency",
        str(concurrency),
    ]
    done = subprocess.run(command, capture_output=True, check=False, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(
            f"memory child ({cases} cases) failed: {done.stderr.decode(errors='replace')[-2000:]}"
        )
    last = done.stdout.decode().strip().splitlines()[-1]
    result: dict[str, Any] = json.loads(last)
    return result


def slope_per_1000(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ys over xs, per 1,000 of x."""
    if len(xs) < 2:
        return None
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    if den == 0:
        return None
    return 1000.0 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den


def warm_price_table() -> float:
    """Seconds the first price quote of a process takes (genai-prices loads its table).

    Every run pays it once per process (``TargetCaller`` quotes its target before
    the first call); the benchmark pays it here so the timed runs are comparable.
    """
    start = time.perf_counter()
    quote(parse_target("openai:model-a@http://127.0.0.1:9/v1"))
    return time.perf_counter() - start


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# -- reporting ------------------------------------------------------------------------


def _fmt_cpu(t: Timing) -> str:
    server = "n/a" if t.server_cpu_s is None else f"{t.server_cpu_s:6.2f}"
    return f"client CPU {t.client_cpu_s:6.2f} s, server CPU {server} s"


def _profile_summary(path: Path, lines: int = 30) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("tottime").print_stats(lines)
    return out.getvalue()


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    n, c, latency_ms = args.cases, args.concurrency, args.latency_ms
    ideal = 2 * n * (latency_ms / 1000.0) / c
    # With a fixed latency each worker makes ceil(2N / C) sequential calls at best.
    wave_floor = -(-2 * n // c) * (latency_ms / 1000.0)
    figures: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "aiohttp": aiohttp.__version__,
        },
        "params": {"cases": n, "targets": 2, "concurrency": c, "latency_ms": latency_ms},
        "ideal_s": ideal,
        "wave_floor_s": wave_floor,
        "load_average_before": load_average(),
        "target_ratio": TARGET_RATIO,
        "rounds": [],
    }
    print(
        f"runner benchmark: {n} cases x 2 targets = {2 * n} calls, concurrency {c}, "
        f"server latency {latency_ms:g} ms, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}"
    )
    print(f"ideal (2 x {n} x {latency_ms / 1000:g} s / {c}): {ideal:.3f} s")
    print(
        f"wave floor (ceil(2 x {n} / {c}) x {latency_ms / 1000:g} s): {wave_floor:.3f} s "
        f"= {wave_floor / ideal:.3f} x ideal"
    )
    price_load = warm_price_table()
    figures["price_table_load_s"] = price_load
    print(
        f"one-time price-table load (first quote in a process): {price_load:.3f} s "
        "(paid once per process; excluded from the timed runs below)"
    )
    loadavg = figures["load_average_before"]
    if loadavg is not None:
        busy = " - the machine is busy, figures will be noisy" if loadavg[0] > 0.5 else ""
        print(f"load average before: {loadavg}{busy}")
    with tempfile.TemporaryDirectory(prefix="cutover-bench-") as tmp:
        workdir = Path(tmp)
        with openai_server(latency_ms, workdir) as server:
            print(f"server: {server.base_url} (pid {server.process.pid})")
            # Warm both sides (imports, first connections) before timing anything.
            measure_reference(server, min(n, c), c, stream=True)
            measure_reference(server, min(n, c), c, stream=False)
            for round_no in range(1, args.rounds + 1):
                print(f"\n-- round {round_no}/{args.rounds}")
                row: dict[str, Any] = {"load_average": load_average()}
                for stream in (True, False):
                    mode = "stream" if stream else "json"
                    ref = measure_reference(server, n, c, stream=stream)
                    profile = (
                        args.profile
                        if args.profile is not None and stream and round_no == 1
                        else None
                    )
                    cut = measure_cutover(server, n, c, workdir, stream=stream, profile=profile)
                    row[mode] = {
                        "reference": ref.as_dict(),
                        "cutover": cut.as_dict(),
                        "cutover_over_ideal": cut.wall_s / ideal,
                        "cutover_over_reference": cut.wall_s / ref.wall_s,
                        "reference_over_ideal": ref.wall_s / ideal,
                    }
                    verdict = "within" if cut.wall_s / ideal <= TARGET_RATIO else "OVER"
                    print(
                        f"[{mode:6}] reference (bare aiohttp): {ref.wall_s:6.3f} s "
                        f"= {ref.wall_s / ideal:5.3f} x ideal; {ref.failures} failed; "
                        f"{_fmt_cpu(ref)}"
                    )
                    print(
                        f"[{mode:6}] cutover run_compare:      {cut.wall_s:6.3f} s "
                        f"= {cut.wall_s / ideal:5.3f} x ideal ({verdict} {TARGET_RATIO}x), "
                        f"{cut.wall_s / ref.wall_s:5.3f} x reference; {_fmt_cpu(cut)}"
                    )
                    extra = cut.extra
                    arms = extra["by_arm"]
                    print(
                        f"[{mode:6}]   recorded {extra['recorded_observations']}/"
                        f"{extra['expected_observations']} observations "
                        f"(old {arms['old']['recorded']}, new {arms['new']['recorded']}), "
                        f"errors {extra['observation_errors']}, "
                        f"retried {arms['old']['retried'] + arms['new']['retried']}, "
                        f"pairs {extra['pairs']}, run {extra['run_status']}"
                    )
                figures["rounds"].append(row)
                print(f"load average after round {round_no}: {load_average()}")
            if args.profile is not None:
                print(f"\ncProfile of the first streaming cutover run: {args.profile}")
                print(_profile_summary(args.profile))
        summary: dict[str, Any] = {}
        for mode in ("stream", "json"):
            walls = [r[mode]["cutover"]["wall_s"] for r in figures["rounds"]]
            refs = [r[mode]["reference"]["wall_s"] for r in figures["rounds"]]
            summary[mode] = {
                "cutover_median_s": statistics.median(walls),
                "reference_median_s": statistics.median(refs),
                "cutover_over_ideal_median": statistics.median(walls) / ideal,
                "cutover_over_reference_median": statistics.median(
                    [w / r for w, r in zip(walls, refs, strict=True)]
                ),
            }
        figures["summary"] = summary
        print("\nsummary (median over rounds)")
        print(f"  ideal                        {ideal:7.3f} s")
        print(f"  wave floor                   {wave_floor:7.3f} s")
        for mode in ("stream", "json"):
            s = summary[mode]
            print(
                f"  [{mode:6}] reference {s['reference_median_s']:7.3f} s   cutover "
                f"{s['cutover_median_s']:7.3f} s   cutover/ideal "
                f"{s['cutover_over_ideal_median']:5.3f} (target <= {TARGET_RATIO})   "
                f"cutover/reference {s['cutover_over_reference_median']:5.3f}"
            )

        sizes = [int(s) for s in args.memory_sizes.split(",") if s.strip()]
        if sizes:
            print(
                f"\nmemory: one fresh process per size, server latency "
                f"{args.memory_latency_ms:g} ms, concurrency {c}, streaming"
            )
            with openai_server(args.memory_latency_ms, workdir) as mem_server:
                rows = [measure_memory(mem_server.base_url, size, c) for size in sizes]
            print(
                "  baseline = RSS after imports and a warm-up run; +suite = RSS the suite adds;\n"
                "  peak = the child's own peak RSS from the baseline on (VmHWM, reset after the\n"
                "  warm-up); growth = peak - baseline; run only = peak - (baseline + suite);\n"
                "  ru_maxrss = getrusage(RUSAGE_SELF) in the child (see _peak_rss_mb)"
            )
            print(
                f"  {'cases':>7} {'baseline':>9} {'+suite':>8} {'peak':>8} "
                f"{'growth':>8} {'run only':>9} {'after run':>10} {'ru_maxrss':>10} "
                f"{'wall':>7} {'recorded':>12}"
            )
            for r in rows:
                print(
                    f"  {r['cases']:>7} {r['baseline_rss_mb']:>7.1f}MB {r['suite_mb']:>6.1f}MB "
                    f"{r['peak_rss_mb']:>6.1f}MB {r['growth_mb']:>6.1f}MB "
                    f"{r['run_growth_mb']:>7.1f}MB {r['after_run_rss_mb']:>8.1f}MB "
                    f"{r['ru_maxrss_mb']:>8.1f}MB "
                    f"{r['wall_s']:>6.2f}s {r['recorded_observations']:>6}/{2 * r['cases']}"
                    f"{'' if not r['observation_errors'] else ' ERR ' + str(r['observation_errors'])}"
                )
            xs = [float(r["cases"]) for r in rows]
            slopes = {
                "peak_mb_per_1000": slope_per_1000(xs, [r["peak_rss_mb"] for r in rows]),
                "ru_maxrss_mb_per_1000": slope_per_1000(xs, [r["ru_maxrss_mb"] for r in rows]),
                "suite_mb_per_1000": slope_per_1000(xs, [r["suite_mb"] for r in rows]),
                "run_only_mb_per_1000": slope_per_1000(xs, [r["run_growth_mb"] for r in rows]),
            }
            figures["memory"] = {
                "latency_ms": args.memory_latency_ms,
                "sizes": rows,
                "slopes": slopes,
            }

            def show(value: float | None) -> str:
                return "n/a" if value is None else f"{value:.3f}"

            print(
                f"  slope, MB per 1,000 cases: peak RSS {show(slopes['peak_mb_per_1000'])}, "
                f"of which the suite in memory {show(slopes['suite_mb_per_1000'])}, "
                f"the run itself {show(slopes['run_only_mb_per_1000'])} "
                f"(ru_maxrss {show(slopes['ru_maxrss_mb_per_1000'])})"
            )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument(
        "--memory-sizes", default="1000,4000,16000", help="comma-separated; empty to skip"
    )
    parser.add_argument("--memory-latency-ms", type=float, default=5.0)
    parser.add_argument(
        "--rounds", type=int, default=3, help="repeat the timed part (medians reported)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write all figures here")
    parser.add_argument(
        "--profile", type=Path, default=None, help="cProfile the first streaming cutover run"
    )
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--url", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        print(json.dumps(memory_child(args.url, args.memory_child, args.concurrency)))
        return 0
    figures = run_benchmark(args)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

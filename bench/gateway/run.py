"""Gateway benchmark: direct vs aiohttp pass-through vs cutover (vs LiteLLM).

Starts, each in its own process and with one worker: two instant upstreams
(upstream.py), the reference pass-through (passthrough.py), cutover's gateway
with split + sticky + SQLite request log + metrics, the same with 100% shadow
to the second upstream, and LiteLLM proxy if a venv with it is given. Then,
one target after the other, it runs wrk for throughput (-c32) and for
latency at one connection (-c1), measures streaming TTFT (ttft.py) and
prints a Markdown table and the target ratios.

    .venv/bin/python bench/gateway/run.py [--duration 10] [--litellm-venv /tmp/litellm-venv]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
UP, UP2, PT, PTU, GW, GWS, GWN, LL = 18080, 18081, 18090, 18091, 18101, 18102, 18103, 18110

GATEWAY_YAML = """\
listen: {{host: 127.0.0.1, port: {port}}}
client_keys: [sk-client-1]
store: sqlite:///{db}
routes:
  support-bot:
    baseline: openai:gpt-4o-mini@http://127.0.0.1:{up}/v1
    candidate: openai:gpt-4.1-mini@http://127.0.0.1:{up}/v1
    weight: 10
    sticky: user
"""
SHADOW_YAML = "    shadow: {{target: openai:gpt-4o-mini@http://127.0.0.1:{up2}/v1, sample: 1.0}}\n"
LITELLM_YAML = """\
model_list:
  - model_name: support-bot
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:{up}/v1
      api_key: sk-upstream
general_settings:
  master_key: {master_key}
"""
LITELLM_KEY = "sk-bench-5f0c2a9e7d3b4c1a8e6f0d2b9c7a4e13"


def wait_port(port: int, proc: subprocess.Popen, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        time.sleep(0.1)
    return False


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(text)
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(port: int, conns: int, duration: float, env: dict[str, str]) -> dict[str, float]:
    cmd = [
        "wrk",
        "-t1",
        f"-c{conns}",
        f"-d{duration:g}s",
        "--latency",
        "-s",
        str(HERE / "post.lua"),
        f"http://127.0.0.1:{port}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    pcts = {p: to_ms(v) for p, v in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    return {
        "rps": rps,
        "p50": pcts["50"],
        "p99": pcts["99"],
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "errors": errors.group(0) if errors else "",
    }


def log_metrics(port: int) -> dict[str, float]:
    """The request-log counters from the gateway's /metrics, after the load."""
    import urllib.request

    time.sleep(1.0)  # let the writer catch up
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for name in ("log_written", "log_dropped", "log_write_failures"):
        m = re.search(rf"^cutover_gateway_{name}_total (\S+)$", text, re.M)
        out[name] = float(m.group(1)) if m else float("nan")
    return out


def ttft(ports: list[int], n: int) -> dict[int, dict[str, float]]:
    """TTFT of every port, measured interleaved (ttft.py) so drift hits all alike."""
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    out = subprocess.run(
        [PY, str(HERE / "ttft.py"), *urls, "-n", str(n)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    measured = json.loads(out)
    return {port: measured[url] for port, url in zip(ports, urls, strict=True)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--ttft-n", type=int, default=200)
    parser.add_argument(
        "--litellm-venv",
        default="/tmp/litellm-venv",
        help="venv with litellm[proxy]; skipped if absent",
    )
    parser.add_argument("--litellm-start-timeout", type=float, default=120.0)
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument(
        "--diagnostics",
        action="store_true",
        help="also run cutover without a store (no request log) and the pass-through on uvloop",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install -y wrk")

    tmp = Path(tempfile.mkdtemp(prefix="cutover-gwbench-"))
    env = dict(os.environ, OPENAI_API_KEY="sk-upstream", LITELLM_LOCAL_MODEL_COST_MAP="True")
    procs: dict[str, subprocess.Popen] = {}

    def start(name: str, cmd: list[str], port: int, timeout: float = 20.0) -> bool:
        with open(tmp / f"{name}.log", "w") as log:  # the child keeps its own copy
            procs[name] = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp, start_new_session=True
            )
        ok = wait_port(port, procs[name], timeout)
        if not ok:
            print(f"[{name}] did not start; see {tmp / (name + '.log')}", file=sys.stderr)
        return ok

    targets: list[tuple[str, int, str]] = []  # (label, port, client key)
    try:
        start("upstream", [PY, str(HERE / "upstream.py"), "--port", str(UP)], UP)
        start("upstream2", [PY, str(HERE / "upstream.py"), "--port", str(UP2)], UP2)
        targets.append(("direct (upstream)", UP, "sk-client-1"))
        if start(
            "passthrough",
            [
                PY,
                str(HERE / "passthrough.py"),
                "--port",
                str(PT),
                "--upstream",
                f"http://127.0.0.1:{UP}",
            ],
            PT,
        ):
            targets.append(("aiohttp pass-through", PT, "sk-client-1"))
        if args.diagnostics and start(
            "passthrough-uvloop",
            [
                PY,
                str(HERE / "passthrough.py"),
                "--port",
                str(PTU),
                "--upstream",
                f"http://127.0.0.1:{UP}",
                "--uvloop",
            ],
            PTU,
        ):
            targets.append(("diag: aiohttp pass-through on uvloop", PTU, "sk-client-1"))
        cutover = str(Path(PY).with_name("cutover"))
        gateways = [
            ("cutover", GW, False, "cutover (split+sticky+log+metrics)"),
            ("cutover+shadow", GWS, True, "cutover, 100% shadow"),
        ]
        if args.diagnostics:
            gateways.append(("cutover-nostore", GWN, False, "diag: cutover, no store/log"))
        gateway_ports: dict[str, int] = {}
        for name, port, shadow, label in gateways:
            cfg = tmp / f"{name}.yaml"
            text = GATEWAY_YAML.format(port=port, db=tmp / f"{name}.db", up=UP)
            if name.endswith("nostore"):
                text = "\n".join(x for x in text.splitlines() if not x.startswith("store:")) + "\n"
            if shadow:
                text += SHADOW_YAML.format(up2=UP2)
            cfg.write_text(text)
            if start(name, [cutover, "gateway", "--config", str(cfg)], port):
                targets.append((label, port, "sk-client-1"))
                gateway_ports[label] = port
        litellm = Path(args.litellm_venv) / "bin" / "litellm"
        if litellm.exists():
            cfg = tmp / "litellm.yaml"
            cfg.write_text(LITELLM_YAML.format(up=UP, master_key=LITELLM_KEY))
            t0 = time.monotonic()
            if start(
                "litellm",
                [
                    str(litellm),
                    "--config",
                    str(cfg),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(LL),
                    "--num_workers",
                    "1",
                ],
                LL,
                timeout=args.litellm_start_timeout,
            ):
                print(f"[litellm] up in {time.monotonic() - t0:.1f}s", file=sys.stderr)
                targets.append(("LiteLLM proxy", LL, LITELLM_KEY))
        else:
            print(f"[litellm] {litellm} not found: skipped", file=sys.stderr)

        results: dict[str, dict] = {}
        for label, port, key in targets:
            wenv = dict(env, BENCH_KEY=key)
            print(f"[bench] {label} ...", file=sys.stderr, flush=True)
            wrk(port, 32, 2, wenv)  # warm-up
            r32 = wrk(port, 32, args.duration, wenv)
            r1 = wrk(port, 1, args.duration, wenv)
            results[label] = {"c32": r32, "c1": r1}
        streamed = [(label, port) for label, port, _ in targets if label != "LiteLLM proxy"]
        print("[bench] TTFT, interleaved ...", file=sys.stderr, flush=True)
        for (label, _), figures in zip(
            streamed, ttft([port for _, port in streamed], args.ttft_n).values(), strict=True
        ):
            results[label]["ttft"] = figures
        for label, port in gateway_ports.items():
            results[label]["log_metrics"] = log_metrics(port)
    finally:
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
        for proc in procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)

    report(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"\n(logs and databases in {tmp})")
    return 0


def report(results: dict[str, dict], args: argparse.Namespace) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"Gateway benchmark, {now}; {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, wrk -t1, {args.duration:g}s runs, "
        "one worker each\n"
    )
    print(
        "| server | req/s (c=32) | p50 ms (c=1) | p99 ms (c=1) | p99 ms (c=32) "
        "| TTFT median ms | TTFT p99 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, r in results.items():
        t = r.get("ttft")
        ttft_cells = f"{t['ttft_median_ms']:.3f} | {t['ttft_p99_ms']:.3f}" if t else "- | -"
        bad = r["c32"]["non2xx"] + r["c1"]["non2xx"]
        note = f" ({bad} non-2xx!)" if bad else ""
        print(
            f"| {label}{note} | {r['c32']['rps']:.0f} | {r['c1']['p50']:.3f} | "
            f"{r['c1']['p99']:.3f} | {r['c32']['p99']:.2f} | {ttft_cells} |"
        )

    logs = {k: r["log_metrics"] for k, r in results.items() if "log_metrics" in r}
    if logs:
        print("\nRequest log counters after the load (from /metrics):")
        for label, m in logs.items():
            print(
                f"- {label}: written {m['log_written']:.0f}, dropped {m['log_dropped']:.0f}, "
                f"write failures {m['log_write_failures']:.0f}"
            )

    d = results.get("direct (upstream)")
    p = results.get("aiohttp pass-through")
    c = results.get("cutover (split+sticky+log+metrics)")
    s = results.get("cutover, 100% shadow")
    lit = results.get("LiteLLM proxy")
    print("\n| check | figure | target | met |")
    print("|---|---:|---|---|")

    def row(name: str, value: str, target: str, ok: bool | None) -> None:
        print(f"| {name} | {value} | {target} | {'-' if ok is None else ('yes' if ok else 'NO')} |")

    if c and p:
        ratio = c["c32"]["rps"] / p["c32"]["rps"]
        row("cutover / pass-through throughput", f"{ratio:.2f}", ">= 0.70", ratio >= 0.70)
    if c and lit:
        ratio = c["c32"]["rps"] / lit["c32"]["rps"]
        row("cutover / LiteLLM throughput", f"{ratio:.1f}x", ">= 30x", ratio >= 30)
    elif c:
        row("cutover / LiteLLM throughput", "LiteLLM not run", ">= 30x", None)
    if c and p and d:
        added_c = c["c1"]["p50"] - d["c1"]["p50"]
        added_p = p["c1"]["p50"] - d["c1"]["p50"]
        ratio = added_c / added_p if added_p > 0 else float("inf")
        row(
            "added median latency, c=1: cutover / pass-through",
            f"{added_c:.3f} ms / {added_p:.3f} ms = {ratio:.2f}x",
            "<= 1.5x",
            ratio <= 1.5,
        )
    if c and lit and d:
        row(
            "LiteLLM added median latency, c=1",
            f"{lit['c1']['p50'] - d['c1']['p50']:.3f} ms",
            "(reference)",
            None,
        )
    if c and s:
        ch1 = s["c1"]["p99"] / c["c1"]["p99"] - 1
        ch32 = s["c32"]["p99"] / c["c32"]["p99"] - 1
        row("100% shadow: change of primary p99, c=1", f"{ch1:+.1%}", "< 10%", ch1 < 0.10)
        row("100% shadow: change of primary p99, c=32", f"{ch32:+.1%}", "(info)", None)
        row(
            "100% shadow: change of throughput, c=32",
            f"{s['c32']['rps'] / c['c32']['rps'] - 1:+.1%}",
            "(info)",
            None,
        )
    if c and d and c.get("ttft") and d.get("ttft"):
        gap = c["ttft"]["ttft_median_ms"] - d["ttft"]["ttft_median_ms"]
        row("TTFT median, cutover - direct", f"{gap:.3f} ms", "< 1 ms", gap < 1.0)
        if p and p.get("ttft"):
            row(
                "TTFT median, pass-through - direct",
                f"{p['ttft']['ttft_median_ms'] - d['ttft']['ttft_median_ms']:.3f} ms",
                "(reference)",
                None,
            )


if __name__ == "__main__":
    raise SystemExit(main())

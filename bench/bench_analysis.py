"""Benchmark of the analysis of recorded outputs, from 1,000 to 100,000 Pairs.

Requirement measured: analysing 100,000 recorded Pairs with all lexical checks
takes under a minute on this machine and memory stays under 2 GB; how
throughput scales from 1,000 to 100,000 Pairs.

Inputs are real model outputs: alpaca_eval's gpt-3.5-turbo-0301 (old) and
gpt-3.5-turbo-1106 (new), 805 instructions each, replicated cyclically to N
lines per side with unique ids, tags (the alpaca_eval ``dataset`` and one of
5 tenants), a seeded lognormal latency, token usage (length / 4), a cost, a
seeded ``passed`` grade and, on about 10% of the lines, a JSON-ish output
(raw, fenced, after a preamble, truncated, nested) so that the JSON checks do
work too; 0.5% of the new lines are recorded errors. Writing the two JSONL
files is timed separately and is not part of any figure.

Each size runs in a fresh child process (so its peak RSS is its own):

* ingest     ``compare_recorded(old.jsonl, new.jsonl, store)`` into a fresh
             SQLite store in a temp dir (parse, validate, write cases and
             observations, build pairs);
* analysis   ``build_reports(store, run_id, out_dir)``: every built-in check
             on both sides, triage, per-slice McNemar and bootstrap, no gates,
             then report.json, report.md, report.html and junit.xml. The
             phases inside it (analyse_run, its judge_pair calls and the
             statistics, each report writer) are timed by wrapping those
             functions in the child; nothing in ``src`` is changed.

Peak RSS is ``VmHWM`` from ``/proc/self/status``: the whole child (ingest
included), and separately the analysis alone (the mark is reset after ingest).
Nothing here asserts on time; it prints figures (``--json`` also writes them)::

    python bench/bench_analysis.py
    python bench/bench_analysis.py --sizes 1000,10000,100000 --json bench-analysis.json
    python bench/bench_analysis.py --sizes 1000,100000 --profile analysis.prof
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

TIME_LIMIT_S = 60.0
MEMORY_LIMIT_MB = 2048.0
OLD_FILE = "gpt-3.5-turbo-0301__model_outputs.json"
NEW_FILE = "gpt-3.5-turbo-1106__model_outputs.json"
TENANTS = 5
JSON_SHARE = 0.10
ERROR_SHARE = 0.005
# $ per million tokens (input, output): the published prices of the two models.
PRICES = {"old": (1.5, 2.0), "new": (1.0, 2.0)}
REPO_ROOT = Path(__file__).resolve().parent.parent


# -- inputs ---------------------------------------------------------------------------


def load_alpaca(data_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    folder = data_dir / "alpaca_eval"
    old = json.loads((folder / OLD_FILE).read_text())
    new = json.loads((folder / NEW_FILE).read_text())
    if len(old) != len(new):
        raise SystemExit(f"{OLD_FILE} and {NEW_FILE} differ in length")
    return old, new


def _json_payload(i: int, text: str, rng: np.random.Generator) -> dict[str, Any]:
    words = text.split()
    return {
        "id": i,
        "answer": " ".join(words[:20]),
        "keywords": sorted({w.strip(".,:;!?").lower() for w in words[:40] if len(w) > 6})[:5],
        "confidence": round(float(rng.random()), 3),
        "sources": int(rng.integers(0, 4)),
    }


def _jsonish(kind: str, payload: dict[str, Any]) -> tuple[str, str]:
    """(output, finish_reason) for one JSON-ish shape."""
    body = json.dumps(payload)
    if kind == "raw":
        return body, "stop"
    if kind == "fenced":
        return f"```json\n{json.dumps(payload, indent=2)}\n```", "stop"
    if kind == "preamble":
        return f"Sure! Here is the JSON you asked for:\n{body}", "stop"
    if kind == "nested":
        return json.dumps({"result": {"data": payload}}), "stop"
    # truncated: the model ran out of tokens half-way through the object
    return body[: max(8, len(body) // 2)], "length"


_OLD_KINDS = ("raw", "raw", "raw", "raw", "fenced")
_NEW_KINDS = ("raw",) * 5 + ("fenced",) * 2 + ("preamble", "nested", "truncated")


def _line(
    i: int,
    side: str,
    record: dict[str, Any],
    tags: dict[str, str],
    latency: float,
    passed: bool,
    json_kind: str | None,
    error: bool,
    rng: np.random.Generator,
) -> dict[str, Any]:
    instruction = record["instruction"]
    output, finish = record["output"], "stop"
    if json_kind is not None:
        output, finish = _jsonish(json_kind, _json_payload(i, output, rng))
    line: dict[str, Any] = {
        "id": f"{i:07d}",
        "input": instruction,
        "tags": tags,
        "model": record.get("generator"),
    }
    if error:
        line |= {"output": None, "error": "429 Too Many Requests", "error_class": "rate_limit"}
        line["latency_ms"] = round(latency / 10, 1)
        return line
    tokens_in, tokens_out = len(instruction) // 4, len(output) // 4
    price_in, price_out = PRICES[side]
    line |= {
        "output": output,
        "latency_ms": round(latency, 1),
        "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
        "cost_usd": round((tokens_in * price_in + tokens_out * price_out) / 1e6, 8),
        "finish_reason": finish,
        "grades": {"passed": passed},
    }
    return line


def write_inputs(
    old_src: list[dict[str, Any]],
    new_src: list[dict[str, Any]],
    n: int,
    out_dir: Path,
    seed: int,
) -> dict[str, Any]:
    """Write old.jsonl and new.jsonl with ``n`` lines each; return their paths and shape."""
    rng = np.random.default_rng(seed)
    m = len(old_src)
    tenant = rng.integers(0, TENANTS, n)
    lat_old = rng.lognormal(np.log(900.0), 0.55, n)
    lat_new = rng.lognormal(np.log(780.0), 0.60, n)
    old_pass = rng.random(n) < 0.80
    # new keeps old's grade except for flips: 8% of passes fail, 25% of failures pass
    flip = rng.random(n)
    new_pass = np.where(old_pass, flip >= 0.08, flip < 0.25)
    is_json = rng.random(n) < JSON_SHARE
    old_kind = rng.integers(0, len(_OLD_KINDS), n)
    new_kind = rng.integers(0, len(_NEW_KINDS), n)
    new_error = rng.random(n) < ERROR_SHARE
    paths = {"old": out_dir / "old.jsonl", "new": out_dir / "new.jsonl"}
    with paths["old"].open("wb") as f_old, paths["new"].open("wb") as f_new:
        for i in range(n):
            j = i % m
            tags = {"dataset": old_src[j]["dataset"], "tenant": f"tenant-{int(tenant[i])}"}
            json_old = _OLD_KINDS[old_kind[i]] if is_json[i] else None
            json_new = _NEW_KINDS[new_kind[i]] if is_json[i] else None
            old = _line(
                i,
                "old",
                old_src[j],
                tags,
                float(lat_old[i]),
                bool(old_pass[i]),
                json_old,
                False,
                rng,
            )
            new = _line(
                i,
                "new",
                new_src[j],
                tags,
                float(lat_new[i]),
                bool(new_pass[i]),
                json_new,
                bool(new_error[i]),
                rng,
            )
            f_old.write(orjson.dumps(old) + b"\n")
            f_new.write(orjson.dumps(new) + b"\n")
    return {
        "old": str(paths["old"]),
        "new": str(paths["new"]),
        "bytes": sum(p.stat().st_size for p in paths.values()),
        "json_lines_per_side": int(is_json.sum()),
        "new_errors": int(new_error.sum()),
    }


# -- the child: one size, one fresh process ----------------------------------------------


def _status_mb(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return float("nan")


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (``VmHWM``) to the current RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class _Phases:
    """Wall time spent in wrapped functions (and in iterating a wrapped generator)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.outer = ""

    def wrap(self, name: str, fn: Callable[..., Any], *, outer: bool = False) -> Callable[..., Any]:
        """Time ``fn``; an ``outer`` phase also names what the inner phases are part of."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            previous = self.outer
            if outer:
                self.outer = name
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._add(name if outer else f"{self.outer} > {name}", time.perf_counter() - start)
                self.outer = previous

        return timed

    def wrap_iter(self, name: str, fn: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            iterator = fn(*args, **kwargs)
            while True:
                start = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    self._add(f"{self.outer} > {name}", time.perf_counter() - start)
                    return
                self._add(f"{self.outer} > {name}", time.perf_counter() - start)
                yield item

        return timed

    def _add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        self.calls[name] = self.calls.get(name, 0) + 1


def run_child(size: int, workdir: Path, profile: Path | None) -> dict[str, Any]:
    """Ingest and analyse one size; runs in its own process."""
    from cutover.analysis import verdict as verdict_mod
    from cutover.reports import build as build_mod
    from cutover.runner import compare_recorded
    from cutover.store import Store

    baseline_mb = _status_mb("VmRSS")
    out: dict[str, Any] = {"pairs_requested": size, "baseline_rss_mb": baseline_mb}
    store = Store.open(f"sqlite:///{workdir / 'store.db'}")
    try:
        cpu = time.process_time()
        start = time.perf_counter()
        result = compare_recorded(workdir / "old.jsonl", workdir / "new.jsonl", store)
        out["ingest_s"] = time.perf_counter() - start
        out["ingest_cpu_s"] = time.process_time() - cpu
        out["pairs"] = result.pairs
        out["run_status"] = result.run.status
        out["after_ingest_rss_mb"] = _status_mb("VmRSS")
        out["ingest_peak_rss_mb"] = _status_mb("VmHWM")
        out["peak_reset"] = _reset_peak_rss()

        phases = _Phases()
        # Phase timers: the module globals build_reports and analyse_run call, wrapped.
        outers = ("analyse_run", "write_json_report", "write_markdown", "write_html", "write_junit")
        for name in outers:
            setattr(build_mod, name, phases.wrap(name, getattr(build_mod, name), outer=True))
        build_mod.judge_pair = phases.wrap("judge_pair", build_mod.judge_pair)
        build_mod.settle_triage = phases.wrap("settle_triage", build_mod.settle_triage)
        builder = verdict_mod.VerdictBuilder
        builder.finish = phases.wrap("VerdictBuilder.finish", builder.finish)  # type: ignore[method-assign]
        store.iter_pairs = phases.wrap_iter("store.iter_pairs", store.iter_pairs)  # type: ignore[method-assign]

        report_dir = workdir / "reports"
        profiler = cProfile.Profile() if profile is not None else None
        cpu = time.process_time()
        start = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        outcome = build_mod.build_reports(store, result.run.id, report_dir)
        if profiler is not None:
            profiler.disable()
        out["analysis_s"] = time.perf_counter() - start
        out["analysis_cpu_s"] = time.process_time() - cpu
        if profiler is not None and profile is not None:
            profiler.dump_stats(str(profile))
    finally:
        store.close()
    out["analysis_peak_rss_mb"] = _status_mb("VmHWM")
    out["end_rss_mb"] = _status_mb("VmRSS")
    out["peak_rss_mb"] = max(out["ingest_peak_rss_mb"], out["analysis_peak_rss_mb"])
    out["phases_s"] = phases.seconds
    out["report_mb"] = {kind: path.stat().st_size / 2**20 for kind, path in outcome.paths.items()}
    analysis = outcome.analysis
    out["triage"] = analysis["triage"]
    out["slice_rows"] = len(analysis["slices"])
    out["slices"] = len({row["name"] for row in analysis["slices"]})
    out["metrics"] = sorted({row["metric"] for row in analysis["slices"]})
    out["tests"] = {
        test: sum(1 for row in analysis["slices"] if row["test"] == test)
        for test in sorted({row["test"] for row in analysis["slices"]})
    }
    out["gate_passed"] = outcome.gate_passed
    out["watch"] = (analysis.get("watch") or {}).get("reason")
    return out


# -- the parent ------------------------------------------------------------------------


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def spawn_child(size: int, workdir: Path, profile: Path | None) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(size)]
    cmd += ["--workdir", str(workdir)]
    if profile is not None:
        cmd += ["--profile", str(profile)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(
            f"child for {size} pairs failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def profile_summary(path: Path, lines: int = 30) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("cumulative").print_stats(lines)
    stats.sort_stats("tottime").print_stats(lines)
    return out.getvalue()


def _fmt_table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'pairs':>8} {'inputs s':>9} {'ingest s':>9} {'analysis s':>11} "
        f"{'pairs/s':>9} {'ingest+an. s':>13} {'peak RSS':>10} {'an. peak':>10} "
        f"{'report.json':>12}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['pairs']:>8,} {r['inputs_s']:>9.2f} {r['ingest_s']:>9.2f} "
            f"{r['analysis_s']:>11.2f} {r['pairs_per_s']:>9,.0f} "
            f"{r['ingest_s'] + r['analysis_s']:>13.2f} {r['peak_rss_mb']:>8.0f}MB "
            f"{r['analysis_peak_rss_mb']:>8.0f}MB {r['report_mb']['json']:>10.1f}MB"
        )
    return "\n".join(lines)


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    old_src, new_src = load_alpaca(args.data)
    figures: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "data": {"old": OLD_FILE, "new": NEW_FILE, "records": len(old_src)},
        "limits": {"time_s": TIME_LIMIT_S, "memory_mb": MEMORY_LIMIT_MB},
        "sizes": [],
    }
    print(f"inputs: {OLD_FILE} -> {NEW_FILE}, {len(old_src)} records each, replicated")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cutover-bench-analysis-") as tmp:
        for size in sizes:
            workdir = Path(tmp) / f"n{size}"
            workdir.mkdir()
            start = time.perf_counter()
            shape = write_inputs(old_src, new_src, size, workdir, args.seed)
            inputs_s = time.perf_counter() - start
            load_before = load_average()
            print(
                f"\n-- {size:,} pairs: wrote inputs in {inputs_s:.2f} s "
                f"({shape['bytes'] / 2**20:.1f} MB, {shape['json_lines_per_side']} JSON-ish "
                f"lines per side, {shape['new_errors']} new errors); load average {load_before}"
            )
            row = spawn_child(size, workdir, None)
            row |= {"inputs_s": inputs_s, "inputs": shape, "load_average_before": load_before}
            row["load_average_after"] = load_average()
            row["pairs_per_s"] = row["pairs"] / row["analysis_s"]
            row["ingest_pairs_per_s"] = row["pairs"] / row["ingest_s"]
            rows.append(row)
            print(
                f"   ingest {row['ingest_s']:.2f} s (cpu {row['ingest_cpu_s']:.2f}), "
                f"analysis+reports {row['analysis_s']:.2f} s (cpu {row['analysis_cpu_s']:.2f}), "
                f"peak RSS {row['peak_rss_mb']:.0f} MB (ingest {row['ingest_peak_rss_mb']:.0f}, "
                f"analysis {row['analysis_peak_rss_mb']:.0f}, baseline "
                f"{row['baseline_rss_mb']:.0f}); load average after {row['load_average_after']}"
            )
            for name, seconds in row["phases_s"].items():
                print(f"     {name:<55} {seconds:8.2f} s")
            print(
                f"   triage {row['triage']}; {row['slice_rows']} slice rows over "
                f"{row['slices']} slices; tests {row['tests']}"
            )
            print(f"   metrics: {', '.join(row['metrics'])}")
            print(
                "   reports: " + ", ".join(f"{k} {v:.2f} MB" for k, v in row["report_mb"].items())
            )
            with contextlib.suppress(OSError):
                for name in ("store.db", "old.jsonl", "new.jsonl"):
                    (workdir / name).unlink(missing_ok=True)
        if args.profile is not None and sizes:
            size = max(sizes)
            workdir = Path(tmp) / f"profile-n{size}"
            workdir.mkdir()
            write_inputs(old_src, new_src, size, workdir, args.seed)
            print(f"\n-- cProfile of the analysis of {size:,} pairs (separate child, not timed)")
            prof = spawn_child(size, workdir, args.profile)
            figures["profile"] = {
                "pairs": prof["pairs"],
                "analysis_s_under_profile": prof["analysis_s"],
                "file": str(args.profile),
            }
            print(f"   analysis under cProfile: {prof['analysis_s']:.2f} s -> {args.profile}")
            print(profile_summary(args.profile))
    figures["sizes"] = rows

    print("\nsummary (analysis = build_reports: checks, triage, statistics, 4 report files)")
    print(_fmt_table(rows))
    base = next((r for r in rows if r["pairs"] == 1000), rows[0] if rows else None)
    if base is not None:
        print(
            f"\nscaling relative to {base['pairs']:,} pairs (pairs/s at size / pairs/s at base);"
            "\n  analysis = build_reports, judging = analyse_run alone (every pair, no report"
            "\n  writing: the HTML/Markdown view is capped, so build_reports is not linear)"
        )
        for r in rows:
            r["judging_pairs_per_s"] = r["pairs"] / r["phases_s"]["analyse_run"]
            r["analysis_scaling"] = r["pairs_per_s"] / base["pairs_per_s"]
            r["judging_scaling"] = r["judging_pairs_per_s"] / base["judging_pairs_per_s"]
            r["ingest_scaling"] = r["ingest_pairs_per_s"] / base["ingest_pairs_per_s"]
            print(
                f"  {r['pairs']:>8,}: analysis {r['pairs_per_s']:>7,.0f} pairs/s "
                f"({r['analysis_scaling']:.2f}x)   judging {r['judging_pairs_per_s']:>7,.0f} "
                f"pairs/s ({r['judging_scaling']:.2f}x)   ingest "
                f"{r['ingest_pairs_per_s']:>7,.0f} pairs/s ({r['ingest_scaling']:.2f}x)"
            )
    largest = max(rows, key=lambda r: r["pairs"]) if rows else None
    if largest is not None:
        total = largest["ingest_s"] + largest["analysis_s"]
        verdict = {
            "pairs": largest["pairs"],
            "analysis_under_limit": largest["analysis_s"] < TIME_LIMIT_S,
            "ingest_plus_analysis_under_limit": total < TIME_LIMIT_S,
            "memory_under_limit": largest["peak_rss_mb"] < MEMORY_LIMIT_MB,
        }
        figures["verdict"] = verdict

        def yes(ok: bool) -> str:
            return "yes" if ok else "NO"

        print(
            f"\n{largest['pairs']:,} pairs: analysis {largest['analysis_s']:.1f} s < "
            f"{TIME_LIMIT_S:.0f} s: {yes(verdict['analysis_under_limit'])}; "
            f"ingest + analysis {total:.1f} s < {TIME_LIMIT_S:.0f} s: "
            f"{yes(verdict['ingest_plus_analysis_under_limit'])}; peak RSS "
            f"{largest['peak_rss_mb']:.0f} MB < {MEMORY_LIMIT_MB:.0f} MB: "
            f"{yes(verdict['memory_under_limit'])}"
        )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated pairs")
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO_ROOT.parent / "shared" / "data",
        help="the shared data folder (holds alpaca_eval/)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write all figures here")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="cProfile the largest size's analysis in an extra child (not in the figures)",
    )
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(run_child(args.child, args.workdir, args.profile)))
        return 0
    figures = run_benchmark(args)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

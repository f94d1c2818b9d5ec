"""Benchmark of the embedding pipeline: build throughput, exact search, build memory.

Requirements measured (figures printed, nothing asserted):

(a) re-embedding throughput: :func:`cutover.embeddings.build_index` with
    ``minilm`` on N dbpedia documents, against the model's own
    ``SentenceTransformer.encode`` on the same batches of the same texts
    (target: pipeline <= 1.2x the raw encode time). The model is loaded and
    warmed before either is timed; raw and pipeline alternate ``--rounds``
    times so both see the same machine load.
(b) search: top-10 for 1,000 queries over 100,000 random 384-d unit vectors on
    the ``embedded`` backend (target: < 10 s), checked against a numpy
    brute-force answer.
(c) memory: peak RSS of a build at several synthetic corpus sizes, each in a
    fresh child process with the cheap ``hash:DIM`` model (the pipeline's
    memory, not a model's), to show it does not grow with the corpus.

::

    python bench/bench_embeddings.py --data /work/shared/data/retrieval/dbpedia/corpus.jsonl
    python bench/bench_embeddings.py --skip-minilm --memory-sizes 20000,80000,320000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_DATA = "/work/shared/data/retrieval/dbpedia/corpus.jsonl"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def proc_status_mb(key: str) -> float:
    """``VmRSS`` or ``VmHWM`` (peak since the last reset) of this process, in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


# -- (a) build throughput vs raw encode --------------------------------------


def bench_throughput(data: Path, docs: int, batch_size: int, rounds: int, out: Path) -> None:
    from cutover.embeddings import build_index
    from cutover.embeddings._minilm import load_minilm
    from cutover.embeddings._types import document_text
    from cutover.embeddings.corpus import iter_corpus
    from cutover.store import Store

    corpus = out / "corpus.jsonl"
    with data.open("rb") as source, corpus.open("wb") as sink:
        for i, line in enumerate(source):
            if i >= docs:
                break
            sink.write(line)
    texts = [document_text(d.title, d.text) for d in iter_corpus(corpus)]
    batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    started = time.perf_counter()
    encoder = load_minilm()
    encoder.encode(texts[:64], batch_size=64, normalize_embeddings=True)
    print(f"(a) MiniLM loaded and warmed in {time.perf_counter() - started:.1f}s; "
          f"{len(texts)} docs, batches of {batch_size}, load {load_average()}")  # fmt: skip

    raw_times: list[float] = []
    pipe_times: list[float] = []
    for r in range(rounds):
        started = time.perf_counter()
        for batch in batches:
            encoder.encode(
                batch, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                show_progress_bar=False,
            )  # fmt: skip
        raw_times.append(time.perf_counter() - started)
        with Store.open(f"sqlite:///{out / f'store-{r}.db'}") as store:
            started = time.perf_counter()
            result = build_index(
                f"minilm-{r}", corpus=corpus, model="minilm", batch_size=batch_size,
                location=str(out / f"index-{r}"), store=store,
            )  # fmt: skip
            pipe_times.append(time.perf_counter() - started)
        assert result.written == len(texts), result
        print(
            f"    round {r + 1}: raw encode {raw_times[-1]:.1f}s "
            f"({len(texts) / raw_times[-1]:.1f} docs/s), pipeline {pipe_times[-1]:.1f}s "
            f"({len(texts) / pipe_times[-1]:.1f} docs/s), ratio "
            f"{pipe_times[-1] / raw_times[-1]:.3f}, load {load_average()}"
        )
    raw, pipe = float(np.median(raw_times)), float(np.median(pipe_times))
    ratios = [p / r for p, r in zip(pipe_times, raw_times, strict=True)]
    print(
        f"(a) median: raw {raw:.1f}s, pipeline {pipe:.1f}s; pipeline/raw per round "
        f"{', '.join(f'{x:.3f}' for x in ratios)}, median {float(np.median(ratios)):.3f} "
        "(target <= 1.2)"
    )
    with Store.open(f"sqlite:///{out / 'store-0.db'}") as store:
        started = time.perf_counter()
        again = build_index("minilm-0", corpus=corpus, store=store)
        print(
            f"    rerun over the built index: {time.perf_counter() - started:.2f}s, "
            f"embedded {again.embedded}, unchanged {again.unchanged}"
        )


# -- (b) search ----------------------------------------------------------------


def bench_search(vectors: int, queries: int, dim: int, k: int, out: Path) -> None:
    from cutover.embeddings._types import IndexMeta
    from cutover.embeddings.index import create_index
    from cutover.store._schema import utcnow

    rng = np.random.default_rng(0)
    meta = IndexMeta(
        name="bench", backend="embedded", model_spec=f"hash:{dim}", model_name=f"hash:{dim}",
        model_version="1", model_identity=f"hash:{dim}", dimensions=dim, normalised=True,
        created_at=utcnow(),
    )  # fmt: skip
    index = create_index(meta, str(out / "search-index"))
    started = time.perf_counter()
    step = 10_000
    sample: list[np.ndarray[Any, Any]] = []
    for start in range(0, vectors, step):
        block = rng.standard_normal((min(step, vectors - start), dim)).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        ids = [f"v{start + i}" for i in range(len(block))]
        index.upsert(ids, ["h"] * len(ids), block, model_identity=meta.model_identity)
        sample.append(block)
    load_s = time.perf_counter() - started
    q = rng.standard_normal((queries, dim)).astype(np.float32)
    reset_peak_rss()
    rss_before = proc_status_mb("VmRSS")
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        hits = index.search(q, k)
        timings.append(time.perf_counter() - started)
    print(
        f"(b) {vectors:,} x {dim}-d vectors loaded in {load_s:.1f}s; top-{k} for {queries:,} "
        f"queries: {', '.join(f'{t:.2f}s' for t in timings)} (target < 10 s); "
        f"RSS {rss_before:.0f} MB before, peak {proc_status_mb('VmHWM'):.0f} MB during the "
        f"searches; load {load_average()}"
    )
    matrix = np.concatenate(sample)
    qn = q[:50] / np.linalg.norm(q[:50], axis=1, keepdims=True)
    expected = np.argsort(-(qn @ matrix.T), axis=1)[:, :k]
    same = all(
        [h.id for h in hits[i]] == [f"v{j}" for j in expected[i]] for i in range(len(expected))
    )
    print(f"    exact: the first 50 queries match numpy brute force: {same}")
    index.close()


# -- (c) memory ------------------------------------------------------------------

_CHILD = """
import json, sys, time
from cutover.embeddings import build_index
from cutover.store import Store

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024

corpus, home, dim = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Store.open(f"sqlite:///{home}/store.db") as store:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS mark: imports and the store are the baseline
    base = status("VmRSS")
    started = time.perf_counter()
    r = build_index("mem", corpus=corpus, model=f"hash:{dim}", location=f"{home}/index",
                    store=store)
    seconds = time.perf_counter() - started
print(json.dumps({"base_mb": base, "peak_mb": status("VmHWM"), "count": r.count,
                  "seconds": seconds}))
"""


def synthetic_corpus(path: Path, docs: int) -> None:
    rng = np.random.default_rng(docs)
    words = [f"w{i}" for i in range(5000)]
    with path.open("w") as sink:
        for i in range(docs):
            text = " ".join(words[j] for j in rng.integers(0, len(words), 40))
            sink.write(json.dumps({"_id": f"doc-{i}", "title": f"Title {i}", "text": text}) + "\n")


def bench_memory(sizes: list[int], dim: int, out: Path) -> None:
    rows = []
    for size in sizes:
        home = out / f"mem-{size}"
        home.mkdir()
        corpus = home / "corpus.jsonl"
        synthetic_corpus(corpus, size)
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(corpus), str(home), str(dim)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append((size, figures))
        print(
            f"(c) {size:>8,} docs (corpus {corpus.stat().st_size / 1e6:.0f} MB, vectors "
            f"{size * dim * 4 / 1e6:.0f} MB): RSS before the build {figures['base_mb']:.0f} MB, "
            f"peak during it {figures['peak_mb']:.0f} MB, "
            f"{figures['seconds']:.1f}s, {figures['count']:,} in the index"
        )
    if len(rows) > 1:
        (s0, f0), (s1, f1) = rows[0], rows[-1]
        slope = (f1["peak_mb"] - f0["peak_mb"]) / ((s1 - s0) / 1000)
        print(f"    slope: {slope:.3f} MB per 1,000 documents (hash:{dim}, batches of 256)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(DEFAULT_DATA), help="BEIR corpus.jsonl")
    parser.add_argument("--docs", type=int, default=2000, help="(a) documents embedded")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2, help="(a) raw/pipeline alternations")
    parser.add_argument("--skip-minilm", action="store_true", help="leave (a) out")
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--memory-sizes", default="20000,80000,320000")
    parser.add_argument("--memory-dim", type=int, default=128)
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, load {load_average()}")
    with tempfile.TemporaryDirectory(prefix="cutover-bench-emb-") as tmp:
        out = Path(tmp)
        os.environ["CUTOVER_HOME"] = str(out / "home")
        if not args.skip_minilm:
            bench_throughput(args.data, args.docs, args.batch_size, args.rounds, out)
        bench_search(args.vectors, args.queries, args.dim, 10, out)
        sizes = [int(s) for s in args.memory_sizes.split(",") if s.strip()]
        if sizes:
            bench_memory(sizes, args.memory_dim, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

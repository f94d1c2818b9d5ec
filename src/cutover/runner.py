"""The side-by-side runner: both targets over a suite, every call recorded.

:func:`run_compare` calls the baseline ("old") and candidate ("new") targets
on every case (``repeats`` times each, for non-deterministic models) with a
fixed pool of ``concurrency`` workers shared by both targets, so the two arms
progress together. Each target also keeps its own limits (see
:mod:`cutover.calls`).

Recording and resume
    A run is identified by a fingerprint of the suite's content, the two
    targets' identities and the number of repeats. Observations are written to
    the store in small batches as they complete (one transaction each), so a
    run killed half-way keeps what it finished; running the same command again
    finds the unfinished run by its fingerprint and calls only what is missing.
    ``retry_errors`` also redoes calls that were recorded as errors.

Response cache
    Successful responses are cached in the store under a key of target
    identity, request (messages, tools, format, params) and repeat index, and
    reused by any later run unless ``use_cache`` is off. Errors are never cached.

Memory
    Cases are walked lazily in chunks and the work queue is bounded, so memory
    does not grow with the number of cases (beyond the suite itself).

:func:`compare_recorded` builds the same Pairs from two recorded-outputs files
without calling anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cutover.calls import TargetCaller
from cutover.errors import RunAbortedError
from cutover.pricing import PriceQuote, quote
from cutover.recorded import cases_from_recorded, load_recorded
from cutover.records import Observation
from cutover.store import ObservationRow, RunInfo, Store
from cutover.suites import Case, Suite
from cutover.targets import Target

ARMS = ("old", "new")
_CHUNK = 256
_FLUSH_ROWS = 200
_FLUSH_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class CompareOptions:
    """How a live comparison runs."""

    concurrency: int = 16
    repeats: int = 1
    use_cache: bool = True
    retry_errors: bool = False
    resume: bool = True


@dataclass(slots=True)
class Progress:
    """Counts reported to the progress callback after every finished item."""

    total: int
    done: int = 0
    called: int = 0
    cached: int = 0
    errors: int = 0
    skipped: int = 0


ProgressCallback = Callable[[Progress], None]


@dataclass(slots=True)
class RunResult:
    """What one invocation did (a resumed run counts only this invocation)."""

    run: RunInfo
    resumed: bool
    progress: Progress
    elapsed_s: float = 0.0
    pairs: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Item:
    case: Case
    arm: str
    repeat: int
    cache_key: str | None


def describe_target(target: Target) -> dict[str, Any]:
    """What a report says about a target (never its key or headers)."""
    price = quote(target) if target.provider != "sim" else None
    if target.provider == "sim" and target.price is None:
        from cutover.providers.sim import load_profile

        profile_price = load_profile(target.model).price
        price = PriceQuote(
            profile_price.input_per_mtok, profile_price.output_per_mtok, "sim profile"
        )
    return {
        "label": target.label,
        "spec": target.spec,
        "provider": target.provider,
        "model": target.model,
        "base_url": target.base_url,
        "prompt_version": target.prompt_version,
        "params": target.params,
        "simulated": target.simulated,
        "price_per_mtok": (
            {"input": price.input_per_mtok, "output": price.output_per_mtok, "source": price.source}
            if price
            else None
        ),
    }


def run_fingerprint(suite: Suite, old: Target, new: Target, repeats: int) -> str:
    """What makes two invocations the same run (so the second resumes the first)."""
    parts = ["live", suite.content_hash(), old.key, new.key, str(repeats)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def cache_key(target: Target, case: Case, repeat: int) -> str:
    """Response-cache key: target identity + the exact request + repeat index."""
    request = case.to_request(target, repeat)
    payload = {
        "target": target.key,
        "messages": request.messages,
        "tools": request.tools,
        "tool_choice": request.tool_choice,
        "response_format": request.response_format,
        "params": request.params,
        "repeat": repeat,
    }
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def run_compare(
    suite: Suite,
    old: Target,
    new: Target,
    store: Store,
    options: CompareOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    callers: dict[str, TargetCaller] | None = None,
) -> RunResult:
    """Run both targets over ``suite``, recording every Observation in ``store``.

    ``callers`` lets a caller supply pre-built :class:`TargetCaller` objects
    (keyed ``"old"``/``"new"``), e.g. with a custom provider.
    Raises :class:`RunAbortedError` when a target is unreachable or rejects
    the key on every call, or on cancellation (Ctrl-C); what finished is kept.
    """
    opts = options or CompareOptions()
    targets = {"old": old, "new": new}
    started = time.perf_counter()
    # Providers first: a missing key or bad profile fails before a run is recorded.
    built = callers if callers is not None else {arm: TargetCaller(t) for arm, t in targets.items()}
    run, resumed = _open_run(suite, old, new, store, opts)
    status = store.observation_status(run.id) if resumed else {}
    todo = sum(
        1
        for case in suite
        for repeat in range(opts.repeats)
        for arm in ARMS
        if _needs_call(status, case.id, arm, repeat, opts.retry_errors)
    )
    counts = Progress(total=todo)
    counts.skipped = len(suite) * opts.repeats * 2 - todo
    job = _Job(store, run, targets, built, opts, counts, progress)
    try:
        await job.execute(suite, status)
    except asyncio.CancelledError:
        store.set_run_status(run.id, "interrupted")
        raise
    finally:
        if callers is None:
            for caller in built.values():
                await caller.aclose()
    if job.abort_reason is not None:
        store.set_run_status(run.id, "interrupted")
        raise RunAbortedError(
            f"{job.abort_reason}; {counts.done} observations recorded in run {run.id[:12]}. "
            "Fix the target and run the same command again to finish what is missing.",
            run_id=run.id,
            recorded=counts.done,
        )
    pairs = store.build_pairs(run.id)
    store.set_run_status(run.id, "complete")
    finished = store.get_run(run.id) or run
    return RunResult(finished, resumed, counts, time.perf_counter() - started, pairs)


def _open_run(
    suite: Suite, old: Target, new: Target, store: Store, opts: CompareOptions
) -> tuple[RunInfo, bool]:
    fingerprint = run_fingerprint(suite, old, new, opts.repeats)
    store.upsert_target(old)
    store.upsert_target(new)
    existing = store.find_resumable_run(fingerprint) if opts.resume else None
    if existing is not None:
        store.set_run_status(existing.id, "running")
        store.add_cases(existing.id, suite.cases)
        return existing, True
    run = store.create_run(
        fingerprint=fingerprint,
        kind="live",
        old_target=old.key,
        new_target=new.key,
        old_label=old.label,
        new_label=new.label,
        repeats=opts.repeats,
        suite_name=suite.name,
        suite_path=suite.path,
        suite_hash=suite.content_hash(),
        meta={"targets": {"old": describe_target(old), "new": describe_target(new)}},
    )
    store.add_cases(run.id, suite.cases)
    return run, False


def _needs_call(
    status: dict[tuple[str, str, int], bool],
    case_id: str,
    arm: str,
    repeat: int,
    retry_errors: bool,
) -> bool:
    ok = status.get((case_id, arm, repeat))
    return ok is None or (retry_errors and not ok)


class _Job:
    """One invocation's workers, writer and bookkeeping."""

    def __init__(
        self,
        store: Store,
        run: RunInfo,
        targets: dict[str, Target],
        callers: dict[str, TargetCaller],
        opts: CompareOptions,
        counts: Progress,
        progress: ProgressCallback | None,
    ) -> None:
        self.store = store
        self.run = run
        self.targets = targets
        self.callers = callers
        self.opts = opts
        self.counts = counts
        self.progress = progress
        self.abort_reason: str | None = None
        self._rows: list[ObservationRow] = []
        self._cache_rows: list[tuple[str, str, dict[str, object]]] = []
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue(
            maxsize=max(2, opts.concurrency * 2)
        )
        self._wake = asyncio.Event()
        self._closing = False

    async def execute(self, suite: Suite, status: dict[tuple[str, str, int], bool]) -> None:
        workers = [asyncio.create_task(self._worker()) for _ in range(self.opts.concurrency)]
        writer = asyncio.create_task(self._writer())
        try:
            await self._produce(suite, status)
            for _ in workers:
                await self._queue.put(None)
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self._closing = True
            self._wake.set()
            await asyncio.shield(writer)

    def _items(self, suite: Suite, status: dict[tuple[str, str, int], bool]) -> Iterator[_Item]:
        for case in suite:
            for repeat in range(self.opts.repeats):
                for arm in ARMS:
                    if _needs_call(status, case.id, arm, repeat, self.opts.retry_errors):
                        key = (
                            cache_key(self.targets[arm], case, repeat)
                            if self.opts.use_cache
                            else None
                        )
                        yield _Item(case, arm, repeat, key)

    async def _produce(self, suite: Suite, status: dict[tuple[str, str, int], bool]) -> None:
        chunk: list[_Item] = []
        for item in self._items(suite, status):
            chunk.append(item)
            if len(chunk) >= _CHUNK:
                if not await self._dispatch(chunk):
                    return
                chunk = []
        if chunk:
            await self._dispatch(chunk)

    async def _dispatch(self, chunk: Sequence[_Item]) -> bool:
        """Serve cache hits, queue the rest; False once the job is aborting."""
        hits: dict[str, dict[str, object]] = {}
        keys = [item.cache_key for item in chunk if item.cache_key]
        if keys:
            hits = await asyncio.to_thread(self.store.cache_get_many, keys)
        for item in chunk:
            if self.abort_reason is not None:
                return False
            payload = hits.get(item.cache_key) if item.cache_key else None
            if payload is not None:
                observation = Observation.from_dict(payload)
                observation.cached = True
                observation.target = self.targets[item.arm].label
                self._record(item, observation, cached=True)
            else:
                await self._queue.put(item)
        return self.abort_reason is None

    async def _worker(self) -> None:
        while (item := await self._queue.get()) is not None:
            if self.abort_reason is not None:
                continue
            caller = self.callers[item.arm]
            request = item.case.to_request(self.targets[item.arm], item.repeat)
            observation = await caller.call(request)
            self._record(item, observation, cached=False)
            self._check_fatal(caller)

    def _check_fatal(self, caller: TargetCaller) -> None:
        if self.abort_reason is not None:
            return
        target = caller.target
        if caller.unreachable:
            where = target.base_url or "its default endpoint"
            self.abort_reason = (
                f"cannot reach target {target.label} at {where}: "
                f"{caller.consecutive_connection_failures} connection failures and no success"
            )
        elif caller.successes == 0 and caller.auth_failures >= 3:
            self.abort_reason = (
                f"target {target.label} rejected the API key on every call "
                f"(set {target.api_key_env or 'the provider key variable'} to a valid key)"
            )

    def _record(self, item: _Item, observation: Observation, *, cached: bool) -> None:
        target = self.targets[item.arm]
        self._rows.append(
            ObservationRow(item.case.id, item.arm, item.repeat, target.key, observation)
        )
        if not cached and observation.ok and item.cache_key:
            self._cache_rows.append((item.cache_key, target.key, observation.to_dict()))
        counts = self.counts
        counts.done += 1
        counts.cached += cached
        counts.called += not cached
        counts.errors += not observation.ok
        if self.progress is not None:
            self.progress(counts)
        if len(self._rows) >= _FLUSH_ROWS:
            self._wake.set()

    async def _writer(self) -> None:
        """Write buffered rows in batches, off the event loop; workers never wait."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=_FLUSH_SECONDS)
            self._wake.clear()
            rows, self._rows = self._rows, []
            cache_rows, self._cache_rows = self._cache_rows, []
            if rows:
                await asyncio.to_thread(self._write, rows, cache_rows)
            if self._closing and not self._rows:
                return

    def _write(
        self, rows: list[ObservationRow], cache_rows: list[tuple[str, str, dict[str, object]]]
    ) -> None:
        self.store.write_observations(self.run.id, rows)
        if cache_rows:
            self.store.cache_put_many(cache_rows)


def compare(
    suite: Suite,
    old: Target,
    new: Target,
    store: Store,
    options: CompareOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
) -> RunResult:
    """Synchronous :func:`run_compare`."""
    return asyncio.run(run_compare(suite, old, new, store, options, progress=progress))


def compare_recorded(old_path: str | Path, new_path: str | Path, store: Store) -> RunResult:
    """Pairs from two recorded-outputs JSONL files, matched by id (else input hash)."""
    started = time.perf_counter()
    old_rec = load_recorded(old_path)
    new_rec = load_recorded(new_path)
    cases, only_old, only_new = cases_from_recorded(old_rec, new_rec)
    labels = {"old": f"recorded:{Path(old_path).name}", "new": f"recorded:{Path(new_path).name}"}
    digest = hashlib.sha256()
    for path in (old_path, new_path):
        digest.update(Path(path).read_bytes())
    fingerprint = "recorded-" + digest.hexdigest()[:24]
    keys = {
        arm: "recorded-" + hashlib.sha256(label.encode()).hexdigest()[:22]
        for arm, label in labels.items()
    }
    run = store.create_run(
        fingerprint=fingerprint,
        kind="recorded",
        old_target=keys["old"],
        new_target=keys["new"],
        old_label=labels["old"],
        new_label=labels["new"],
        suite_name=f"{Path(old_path).stem} vs {Path(new_path).stem}",
        suite_path=str(old_path),
        meta={
            "targets": {
                "old": {"label": labels["old"], "provider": "recorded", "path": str(old_path)},
                "new": {"label": labels["new"], "provider": "recorded", "path": str(new_path)},
            }
        },
    )
    store.add_cases(run.id, cases)
    counts = Progress(total=0)
    batch: list[ObservationRow] = []
    for arm, recorded in (("old", old_rec), ("new", new_rec)):
        for line in recorded.lines.values():
            batch.append(ObservationRow(line.key, arm, 0, keys[arm], line.observation(labels[arm])))
            counts.done += 1
            if len(batch) >= 1000:
                store.write_observations(run.id, batch)
                batch = []
    if batch:
        store.write_observations(run.id, batch)
    counts.total = counts.done
    pairs = store.build_pairs(run.id)
    store.set_run_status(run.id, "complete")
    notes = []
    if only_old:
        notes.append(f"{len(only_old)} case(s) only in {old_path}: {', '.join(only_old[:5])}")
    if only_new:
        notes.append(f"{len(only_new)} case(s) only in {new_path}: {', '.join(only_new[:5])}")
    finished = store.get_run(run.id) or run
    return RunResult(finished, False, counts, time.perf_counter() - started, pairs, notes)


__all__ = [
    "CompareOptions",
    "Progress",
    "ProgressCallback",
    "RunResult",
    "cache_key",
    "compare",
    "compare_recorded",
    "describe_target",
    "run_compare",
    "run_fingerprint",
]

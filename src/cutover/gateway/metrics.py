"""The gateway's Prometheus metrics, in a registry of its own (one per app).

Served at ``GET /metrics`` in the Prometheus text format. Requests rejected
before a route was chosen are counted under ``route="-"``, ``arm="none"`` (so
a client sending made-up aliases cannot create new series).

The per-request series (requests, latency, time to first token, tokens,
errors) are plain counters on the request path (:meth:`GatewayMetrics.observe_request`:
a dict lookup and a few additions, no locks: the event loop is the only
writer) and are turned into Prometheus families only when ``/metrics`` is
scraped. prometheus-client's labelled children cost about 2 us per update,
which at five updates per request showed in the gateway's throughput.
The shadow's counters are read from it at scrape time too.

With ``--workers N`` every process serves ``/metrics`` for the whole host
(:class:`SharedMetrics`): each worker writes its own series to a file in a
directory the supervisor gives it, once a second and when it stops, and a
scrape adds the other workers' files to the answering worker's live series.
Every series is a counter, a histogram or the shadow's spending (a gauge that
adds up over processes), so the host's value is the sum. A worker that died
leaves its last file, so the host's counters never go back; its gauges stop
counting once its file is :data:`STALE_AFTER_S` old (a dead worker spends
nothing today).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

NO_ROUTE = "-"
SHARE_INTERVAL_S: Final = 1.0
"""How often a worker writes its series for the others' scrapes (``--workers N``)."""
STALE_AFTER_S: Final = 5 * SHARE_INTERVAL_S
"""A worker's file not written for this long is a dead worker's: its counters still
count (they happened), its gauges no longer do (they describe a live process)."""
_SUFFIX: Final = ".prom"

logger = logging.getLogger(__name__)
_LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


class _Histogram:
    """Bucket counts (Prometheus ``le`` semantics), sum and count."""

    __slots__ = ("count", "counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(_LATENCY_BUCKETS) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(_LATENCY_BUCKETS, value)] += 1
        self.sum += value
        self.count += 1

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(_LATENCY_BUCKETS, self.counts, strict=False):
            running += n
            out.append((repr(float(bound)), running))
        out.append(("+Inf", self.count))
        return out


class _ArmSeries:
    """Every per-request series of one (route, arm)."""

    __slots__ = (
        "errors",
        "fallbacks",
        "input_tokens",
        "latency",
        "output_tokens",
        "retries",
        "statuses",
        "ttft",
    )

    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}
        self.errors: dict[str, int] = {}
        self.latency = _Histogram()
        self.ttft = _Histogram()
        self.input_tokens = 0
        self.output_tokens = 0
        self.retries = 0
        self.fallbacks = 0


class _RequestCollector(Collector):
    """The per-request series as Prometheus families, built at scrape time."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        series = self._metrics.series
        requests = CounterMetricFamily(
            "cutover_gateway_requests",
            "Requests answered, by route, arm and HTTP status.",
            labels=["route", "arm", "status"],
        )
        latency = HistogramMetricFamily(
            "cutover_gateway_request_latency_seconds",
            "Time from the request's arrival to the end of the answer.",
            labels=["route", "arm"],
        )
        ttft = HistogramMetricFamily(
            "cutover_gateway_ttft_seconds",
            "Time to the first streamed chunk (streaming requests).",
            labels=["route", "arm"],
        )
        tokens = CounterMetricFamily(
            "cutover_gateway_tokens",
            "Tokens reported by the upstream, by kind (input | output).",
            labels=["route", "arm", "kind"],
        )
        errors = CounterMetricFamily(
            "cutover_gateway_errors",
            "Failed requests by error class.",
            labels=["route", "arm", "error_class"],
        )
        retries = CounterMetricFamily(
            "cutover_gateway_upstream_retries",
            "Upstream attempts repeated after 429/5xx/unreachable (before any byte was sent).",
            labels=["route", "arm"],
        )
        fallbacks = CounterMetricFamily(
            "cutover_gateway_fallbacks",
            "Candidate failures answered by the baseline (counted as candidate errors too).",
            labels=["route", "arm"],
        )
        for (route, arm), s in sorted(series.items()):
            for status, n in sorted(s.statuses.items()):
                requests.add_metric([route, arm, str(status)], n)
            latency.add_metric([route, arm], s.latency.buckets(), s.latency.sum)
            if s.ttft.count:
                ttft.add_metric([route, arm], s.ttft.buckets(), s.ttft.sum)
            if s.input_tokens:
                tokens.add_metric([route, arm, "input"], s.input_tokens)
            if s.output_tokens:
                tokens.add_metric([route, arm, "output"], s.output_tokens)
            for error_class, n in sorted(s.errors.items()):
                errors.add_metric([route, arm, error_class], n)
            if s.retries:
                retries.add_metric([route, arm], s.retries)
            if s.fallbacks:
                fallbacks.add_metric([route, arm], s.fallbacks)
        yield from (requests, latency, ttft, tokens, errors, retries, fallbacks)
        shadow = self._metrics.shadow_counters
        if shadow is not None:
            yield from _shadow_families(shadow())


_SHADOW_COUNTERS = {
    "scheduled": "Shadow calls started.",
    "completed": "Shadow calls finished (answered or failed).",
    "errors": "Shadow calls that failed.",
    "skipped_sample": "Requests not shadowed: not drawn by the route's sample rate.",
    "skipped_budget": "Requests not shadowed: the route's daily shadow budget is spent.",
    "skipped_busy": "Requests not shadowed: too many shadow calls waiting.",
    "skipped_unsupported": "Requests not shadowed: nothing whole to compare (e.g. client left).",
    "written": "Shadow pairs written to the store.",
    "dropped": "Shadow pairs dropped (queue full or store down too long).",
    "write_failures": "Failed attempts to write a batch of shadow pairs.",
}


def _shadow_families(counters: Mapping[str, Any]) -> Iterator[Any]:
    for key, doc in _SHADOW_COUNTERS.items():
        family = CounterMetricFamily(f"cutover_gateway_shadow_{key}", doc)
        family.add_metric([], float(counters.get(key) or 0))
        yield family
    spent = GaugeMetricFamily(
        "cutover_gateway_shadow_spent_usd",
        "Shadow spending of the current UTC day, by route.",
        labels=["route"],
    )
    for route, usd in sorted((counters.get("spent_usd") or {}).items()):
        spent.add_metric([route], float(usd))
    yield spent


class GatewayMetrics:
    """Every series the gateway exports."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.series: dict[tuple[str, str], _ArmSeries] = {}
        self.shadow_counters: Callable[[], Mapping[str, Any]] | None = None
        r.register(_RequestCollector(self))
        self.feedback = Counter(
            "cutover_gateway_feedback",
            "Feedback received, by arm and value (positive | neutral | negative).",
            ["arm", "value"],
            registry=r,
        )
        self.log_dropped = Counter(
            "cutover_gateway_log_dropped",
            "Request-log records dropped because the queue was full.",
            registry=r,
        )
        self.log_write_failures = Counter(
            "cutover_gateway_log_write_failures",
            "Failed attempts to write a batch of the request log.",
            registry=r,
        )
        self.log_written = Counter(
            "cutover_gateway_log_written",
            "Request-log records written to the store.",
            registry=r,
        )

    def observe_request(
        self,
        route: str,
        arm: str,
        status: int,
        latency_s: float,
        ttft_s: float | None,
        error_class: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        *,
        retries: int = 0,
        fallback: bool = False,
    ) -> None:
        """Count one answered request (the request path; no I/O, no locks).

        The request counts under its arm; after a fallback its tokens count under the
        baseline, whose model produced (and bills) them."""
        s = self._series(route, arm)
        s.statuses[status] = s.statuses.get(status, 0) + 1
        s.latency.observe(latency_s)
        if ttft_s is not None:
            s.ttft.observe(ttft_s)
        if error_class is not None:
            s.errors[error_class] = s.errors.get(error_class, 0) + 1
        billed = self._series(route, "baseline") if fallback else s
        if input_tokens:
            billed.input_tokens += input_tokens
        if output_tokens:
            billed.output_tokens += output_tokens
        if retries:
            s.retries += retries
        if fallback:
            s.fallbacks += 1

    def _series(self, route: str, arm: str) -> _ArmSeries:
        s = self.series.get((route, arm))
        if s is None:
            s = self.series[(route, arm)] = _ArmSeries()
        return s

    def render(self) -> bytes:
        return generate_latest(self.registry)


def merge_expositions(texts: Iterable[str], stale: Iterable[str] = ()) -> bytes:
    """Several processes' ``/metrics`` texts as one: each sample summed over the texts.

    Samples are matched by name and labels (a histogram's ``le`` included), so
    counters, histogram buckets, sums and counts add up; a family or series
    only some processes have is kept as it is. ``*_created`` samples (when a
    counter started) take the earliest value, not the sum. ``stale`` texts (dead
    processes') add their counters and histograms but not their gauges.
    """
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    given = [(text, False) for text in texts] + [(text, True) for text in stale]
    for text, dead in given:
        try:
            parsed = list(text_string_to_metric_families(text))
        except ValueError as exc:  # a damaged file must not fail the scrape
            logger.warning("skipping a worker's metrics that cannot be read (%s)", exc)
            continue
        for family in parsed:
            if dead and family.type == "gauge":
                continue
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type)
                values[family.name] = {}
            merged = values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                before = merged.get(key)
                if before is None:
                    merged[key] = sample.value
                elif sample.name.endswith("_created"):
                    merged[key] = min(before, sample.value)
                else:
                    merged[key] = before + sample.value
    for name, family in families.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(list(families.values())))
    return generate_latest(registry)


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class SharedMetrics:
    """One worker's view of the host's metrics (``cutover gateway --workers N``).

    ``directory`` is the supervisor's, shared by its workers: each keeps its
    own series in ``<pid>-<random>.prom`` there, written every :data:`SHARE_INTERVAL_S`
    (:meth:`run`), at every scrape it answers and once more when it stops
    (:meth:`write`). A scrape (:meth:`render`) sums the files, its own
    written first, so successive scrapes never go back whichever worker
    answers them; the other workers' part is at most about a second old.
    """

    def __init__(self, metrics: GatewayMetrics, directory: Path) -> None:
        self.metrics = metrics
        self.directory = directory
        # pid and a random part: a new worker that gets a dead one's pid keeps its own file
        self.path = directory / f"{os.getpid()}-{os.urandom(4).hex()}{_SUFFIX}"
        self._lock = threading.Lock()
        self._taken = 0  # snapshots taken (on the event loop)
        self._written = 0  # the newest snapshot in the file

    def _snapshot(self) -> tuple[int, bytes]:
        """This worker's series now: on the loop, the series' only writer."""
        self._taken += 1
        return self._taken, self.metrics.render()

    def _store(self, number: int, body: bytes) -> None:
        """Replace the file atomically (a reader never sees half of it), never with an older
        snapshot than it holds."""
        with self._lock:
            if number <= self._written:
                return
            partial = self.path.with_suffix(".tmp")
            partial.write_bytes(body)
            partial.replace(self.path)
            self._written = number

    async def write(self) -> None:
        """Write this worker's series now."""
        await asyncio.to_thread(self._store, *self._snapshot())

    async def run(self) -> None:
        """Write this worker's series every :data:`SHARE_INTERVAL_S` until cancelled."""
        while True:
            try:
                await self.write()
            except OSError as exc:  # the directory went away, a full disk: keep serving
                logger.warning("cannot share this worker's metrics (%s); retrying", exc)
            await asyncio.sleep(SHARE_INTERVAL_S)

    async def render(self) -> bytes:
        """The host's series: this worker's, live, plus the other workers' last files."""
        number, own = self._snapshot()
        return await asyncio.to_thread(self._with_others, number, own)

    def _with_others(self, number: int, own: bytes) -> bytes:
        try:
            self._store(number, own)
        except OSError as exc:
            logger.warning("cannot share this worker's metrics (%s)", exc)
        texts, stale = [own.decode()], list[str]()
        try:
            others = sorted(self.directory.glob(f"*{_SUFFIX}"))
        except OSError:
            others = []
        stale_before = time.time() - STALE_AFTER_S
        for path in others:
            if path == self.path:
                continue
            try:
                text = path.read_text()
                old = path.stat().st_mtime < stale_before
            except OSError:  # gone since it was listed
                continue
            (stale if old else texts).append(text)
        return merge_expositions(texts, stale)


def feedback_value(score: float) -> str:
    """The ``value`` label of a feedback score."""
    if score > 0:
        return "positive"
    if score < 0:
        return "negative"
    return "neutral"


__all__ = [
    "NO_ROUTE",
    "SHARE_INTERVAL_S",
    "STALE_AFTER_S",
    "GatewayMetrics",
    "SharedMetrics",
    "feedback_value",
    "merge_expositions",
]

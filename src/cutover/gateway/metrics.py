"""The gateway's Prometheus metrics, in a registry of its own (one per app).

Served at ``GET /metrics`` in the Prometheus text format. Requests rejected
before a route was chosen are counted under ``route="-"``, ``arm="none"`` (so
a client sending made-up aliases cannot create new series).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

NO_ROUTE = "-"
_LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


class GatewayMetrics:
    """Every series the gateway exports."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "cutover_gateway_requests",
            "Requests answered, by route, arm and HTTP status.",
            ["route", "arm", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "cutover_gateway_request_latency_seconds",
            "Time from the request's arrival to the end of the answer.",
            ["route", "arm"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "cutover_gateway_ttft_seconds",
            "Time to the first streamed chunk (streaming requests).",
            ["route", "arm"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "cutover_gateway_tokens",
            "Tokens reported by the upstream, by kind (input | output).",
            ["route", "arm", "kind"],
            registry=r,
        )
        self.errors = Counter(
            "cutover_gateway_errors",
            "Failed requests by error class.",
            ["route", "arm", "error_class"],
            registry=r,
        )
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

    def render(self) -> bytes:
        return generate_latest(self.registry)


def feedback_value(score: float) -> str:
    """The ``value`` label of a feedback score."""
    if score > 0:
        return "positive"
    if score < 0:
        return "negative"
    return "neutral"


__all__ = ["NO_ROUTE", "GatewayMetrics", "feedback_value"]

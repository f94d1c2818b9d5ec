"""The gateway's request log in the store: batched writes, feedback, per-arm stats.

A mixin of :class:`~cutover.store.Store`; every method is one short transaction.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from cutover.store._schema import gateway_requests, utcnow

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class GatewayRequestRow:
    """One request through the gateway, as the request log keeps it."""

    request_id: str
    ts: datetime
    route: str | None
    arm: str
    """baseline | candidate | none (rejected before an arm was chosen)"""
    target: str | None
    status: int
    latency_ms: float
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    error_class: str | None = None
    key_hash: str | None = None
    prompt: str | None = None
    output: str | None = None
    refused: bool | None = None
    """The answer refused, fully or in part (``detect_refusal``); ``None``: not an answer."""
    checks: dict[str, int] | None = None
    """Each output check that applied to the answer: 1 if it flagged a problem, else 0."""
    slice: str | None = None
    """The client's slice label (header ``x-cutover-slice``), for per-slice rollout gates."""


_ROW_FIELDS = tuple(GatewayRequestRow.__dataclass_fields__)


def _row_values(row: GatewayRequestRow) -> dict[str, object]:
    # Field by field: dataclasses.asdict deep-copies and shows in the gateway's profile.
    return {name: getattr(row, name) for name in _ROW_FIELDS}


@dataclass(frozen=True, slots=True)
class ArmStats:
    """One arm's requests, errors and feedback over a window."""

    requests: int
    errors: int
    feedback: int
    negative_feedback: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def negative_feedback_rate(self) -> float:
        return self.negative_feedback / self.feedback if self.feedback else 0.0


class GatewayLogMixin:
    """Store methods for the gateway's request log."""

    if TYPE_CHECKING:

        def _transaction(
            self, action: str, *, write: bool
        ) -> AbstractContextManager[Connection]: ...

        def _insert_ignore(self, table: sa.Table, keys: Sequence[str]) -> Insert: ...

    def write_gateway_requests(self, rows: Sequence[GatewayRequestRow]) -> None:
        """Insert ``rows`` in one transaction; a request id already logged is skipped.

        Skipping makes a retried batch (after a failure whose commit did land) safe.
        """
        if not rows:
            return
        insert = self._insert_ignore(gateway_requests, ["request_id"])
        with self._transaction("writing the gateway request log", write=True) as conn:
            for chunk in _chunks(rows):
                conn.execute(insert, [_row_values(row) for row in chunk])

    def record_feedback(self, request_id: str, score: float) -> str | None:
        """Store ``score`` with the request; its arm, or ``None`` for an unknown id.

        A later score for the same request replaces the earlier one.
        """
        if not math.isfinite(score):
            raise ValueError(f"feedback score must be a finite number, not {score!r}")
        table = gateway_requests
        with self._transaction("recording feedback", write=True) as conn:
            arm = conn.execute(
                sa.select(table.c.arm).where(table.c.request_id == request_id)
            ).scalar_one_or_none()
            if arm is None:
                return None
            conn.execute(
                table.update()
                .where(table.c.request_id == request_id)
                .values(feedback_score=float(score), feedback_at=utcnow())
            )
        return str(arm)

    def get_gateway_request(self, request_id: str) -> dict[str, Any] | None:
        """One logged request as a mapping of its columns, or ``None``."""
        table = gateway_requests
        with self._transaction("reading the gateway request log", write=False) as conn:
            row = conn.execute(
                sa.select(table).where(table.c.request_id == request_id)
            ).one_or_none()
        return None if row is None else dict(row._mapping)

    def gateway_arm_stats(self, route: str, since: datetime) -> dict[str, ArmStats]:
        """Per arm of ``route`` since ``since``: requests, errors (status >= 400), feedback.

        Negative feedback is a score below 0 (thumbs down is -1).
        """
        t = gateway_requests
        errors = sa.func.sum(sa.case((t.c.status >= 400, 1), else_=0))
        feedback = sa.func.count(t.c.feedback_score)
        negative = sa.func.sum(sa.case((t.c.feedback_score < 0, 1), else_=0))
        query = (
            sa.select(t.c.arm, sa.func.count(), errors, feedback, negative)
            .where(t.c.route == route, t.c.ts >= since)
            .group_by(t.c.arm)
        )
        with self._transaction("reading per-arm gateway stats", write=False) as conn:
            rows = conn.execute(query).all()
        return {
            str(arm): ArmStats(int(n), int(e or 0), int(f or 0), int(neg or 0))
            for arm, n, e, f, neg in rows
        }


def _chunks(rows: Sequence[GatewayRequestRow]) -> Iterator[Sequence[GatewayRequestRow]]:
    for start in range(0, len(rows), _CHUNK):
        yield rows[start : start + _CHUNK]


__all__ = ["ArmStats", "GatewayLogMixin", "GatewayRequestRow"]

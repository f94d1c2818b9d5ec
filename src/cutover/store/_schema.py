"""The store's tables (SQLAlchemy Core), their column types, and the row shapes.

The second half maps rows to the records the rest of cutover exchanges
(:class:`RunInfo`, :class:`ObservationRow`, ``Observation``, ``Pair``) and back.

The migrations in ``migrations/versions`` create exactly these tables; a test
compares the migrated database with this metadata so the two cannot drift.

JSON is kept as text written by orjson (``JSONText``) on both backends: the
same bytes on SQLite and PostgreSQL, TEXT affinity on SQLite (no numeric
coercion of ``"1"``), and one fast serializer. Timestamps are timezone-aware
UTC on the way in and on the way out (``UTCDateTime``), also on SQLite, which
stores them without a zone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Dialect, Row, RowMapping

from cutover.records import Observation, Pair, ToolCall
from cutover.suites._case import Assertion, Case

_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def _json_default(value: Any) -> Any:
    """What orjson cannot write natively: sets, tuples of odd things, objects."""
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def dumps_json(value: Any) -> str:
    """The JSON text the store writes for ``value``."""
    return orjson.dumps(value, default=_json_default, option=_JSON_OPTIONS).decode()


class JSONText(sa.types.TypeDecorator[Any]):
    """A JSON value kept as text; Python ``None`` is SQL NULL."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return dumps_json(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return orjson.loads(value)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps timezone-aware UTC")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite keeps the text without a zone; always UTC so it sorts.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


ID = sa.String(32)
"""A run id: uuid4 hex."""

KEY = sa.Text
"""A target key or response-cache key (hex digests, but no length is imposed)."""

metadata = sa.MetaData()

targets = sa.Table(
    "targets",
    metadata,
    sa.Column("key", KEY, primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("base_url", sa.Text, nullable=True),
    sa.Column("prompt_version", sa.Text, nullable=True),
    sa.Column("system", sa.Text, nullable=True),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("params", JSONText, nullable=False),
    sa.Column("simulated", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("suite_name", sa.Text, nullable=True),
    sa.Column("suite_path", sa.Text, nullable=True),
    sa.Column("suite_hash", sa.Text, nullable=True),
    sa.Column("old_target", KEY, nullable=False),
    sa.Column("new_target", KEY, nullable=False),
    sa.Column("old_label", sa.Text, nullable=False),
    sa.Column("new_label", sa.Text, nullable=False),
    sa.Column("repeats", sa.Integer, nullable=False),
    sa.Column("meta", JSONText, nullable=False),
    sa.Index("ix_runs_fingerprint_created", "fingerprint", "created_at"),
    sa.Index("ix_runs_created", "created_at"),
)

cases = sa.Table(
    "cases",
    metadata,
    sa.Column(
        "run_id",
        ID,
        sa.ForeignKey("runs.id", ondelete="CASCADE", name="fk_cases_run"),
        primary_key=True,
    ),
    sa.Column("case_id", sa.Text, primary_key=True),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("input", JSONText, nullable=False),
    sa.Column("tags", JSONText, nullable=False),
    sa.Column("critical", sa.Boolean, nullable=False),
    sa.Column("expected", sa.Text, nullable=True),
    sa.Column("asserts", JSONText, nullable=False),
    sa.Column("source", sa.Text, nullable=True),
    sa.Index("ix_cases_run_idx", "run_id", "idx"),
)

_BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""An autoincrementing id: BIGINT on PostgreSQL, the rowid alias on SQLite."""

observations = sa.Table(
    "observations",
    metadata,
    sa.Column("id", _BIGINT_ID, primary_key=True, autoincrement=True),
    sa.Column("run_id", ID, nullable=False),
    sa.Column("case_id", sa.Text, nullable=False),
    sa.Column("arm", sa.String(8), nullable=False),
    sa.Column("repeat", sa.Integer, nullable=False),
    sa.Column("idx", sa.Integer, nullable=False),  # the case's position, copied from cases
    sa.Column("target_key", KEY, nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("output", sa.Text, nullable=True),
    sa.Column("tool_calls", JSONText, nullable=False),
    sa.Column("finish_reason", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("error_class", sa.Text, nullable=True),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("latency_ms", sa.Float, nullable=True),
    sa.Column("ttft_ms", sa.Float, nullable=True),
    sa.Column("input_tokens", sa.Integer, nullable=True),
    sa.Column("output_tokens", sa.Integer, nullable=True),
    sa.Column("cost_usd", sa.Float, nullable=True),
    sa.Column("model", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("cached", sa.Boolean, nullable=False),
    sa.Column("simulated", sa.Boolean, nullable=False),
    sa.Column("grades", JSONText, nullable=True),  # 0002
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.ForeignKeyConstraint(
        ["run_id", "case_id"],
        ["cases.run_id", "cases.case_id"],
        ondelete="CASCADE",
        name="fk_observations_case",
    ),
    sa.UniqueConstraint("run_id", "case_id", "arm", "repeat", name="uq_observations_slot"),
    sa.Index("ix_observations_run_idx", "run_id", "idx"),
)

pairs = sa.Table(
    "pairs",
    metadata,
    sa.Column("run_id", ID, primary_key=True),
    sa.Column("case_id", sa.Text, primary_key=True),
    sa.Column("repeat", sa.Integer, primary_key=True),
    sa.Column(
        "old_observation_id",
        _BIGINT_ID,
        sa.ForeignKey("observations.id", ondelete="CASCADE", name="fk_pairs_old"),
        nullable=False,
    ),
    sa.Column(
        "new_observation_id",
        _BIGINT_ID,
        sa.ForeignKey("observations.id", ondelete="CASCADE", name="fk_pairs_new"),
        nullable=False,
    ),
    sa.ForeignKeyConstraint(
        ["run_id", "case_id"],
        ["cases.run_id", "cases.case_id"],
        ondelete="CASCADE",
        name="fk_pairs_case",
    ),
)

response_cache = sa.Table(
    "response_cache",
    metadata,
    sa.Column("key", KEY, primary_key=True),
    sa.Column("target_key", KEY, nullable=False),
    sa.Column("payload", JSONText, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_response_cache_target", "target_key"),
)

gateway_requests = sa.Table(  # 0003
    "gateway_requests",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("route", sa.Text, nullable=True),
    sa.Column("arm", sa.String(16), nullable=False),
    sa.Column("target", sa.Text, nullable=True),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("ttft_ms", sa.Float, nullable=True),
    sa.Column("input_tokens", sa.Integer, nullable=True),
    sa.Column("output_tokens", sa.Integer, nullable=True),
    sa.Column("cost_usd", sa.Float, nullable=True),
    sa.Column("error_class", sa.Text, nullable=True),
    sa.Column("key_hash", sa.Text, nullable=True),
    sa.Column("prompt", sa.Text, nullable=True),
    sa.Column("output", sa.Text, nullable=True),
    sa.Column("feedback_score", sa.Float, nullable=True),
    sa.Column("feedback_at", UTCDateTime, nullable=True),
    sa.Column("refused", sa.Boolean, nullable=True),  # 0007
    sa.Column("checks", JSONText, nullable=True),  # 0008
    sa.Column("slice", sa.String(64), nullable=True),  # 0009
    sa.Index("ix_gateway_requests_route_ts", "route", "ts"),
)

# -- rows <-> records ---------------------------------------------------------

RUN_STATUSES = ("running", "interrupted", "complete", "failed")
RUN_KINDS = ("live", "recorded", "shadow")
ARMS = ("old", "new")

OBSERVATION_FIELDS = (
    "target",
    "output",
    "finish_reason",
    "error",
    "error_class",
    "status_code",
    "latency_ms",
    "ttft_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "model",
    "attempts",
    "cached",
    "simulated",
)
"""Observation fields kept in a column of the same name (``tool_calls`` is JSON)."""


@dataclass(frozen=True)
class RunInfo:
    """One run of a comparison as the store holds it."""

    id: str
    created_at: datetime
    finished_at: datetime | None
    status: str
    """running | interrupted | complete | failed"""
    fingerprint: str
    kind: str
    """live | recorded | shadow"""
    suite_name: str | None
    suite_path: str | None
    suite_hash: str | None
    old_target: str
    new_target: str
    old_label: str
    new_label: str
    repeats: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ObservationRow:
    """One Observation to write: which case, which arm, which repeat."""

    case_id: str
    arm: str
    """old | new"""
    repeat: int
    target_key: str
    observation: Observation


def run_info_from_row(row: Row[Any]) -> RunInfo:
    m = row._mapping
    return RunInfo(
        id=m["id"],
        created_at=m["created_at"],
        finished_at=m["finished_at"],
        status=m["status"],
        fingerprint=m["fingerprint"],
        kind=m["kind"],
        suite_name=m["suite_name"],
        suite_path=m["suite_path"],
        suite_hash=m["suite_hash"],
        old_target=m["old_target"],
        new_target=m["new_target"],
        old_label=m["old_label"],
        new_label=m["new_label"],
        repeats=m["repeats"],
        meta=dict(m["meta"] or {}),
    )


def observation_from_row(row: Row[Any]) -> Observation:
    m = row._mapping
    values = {name: m[name] for name in OBSERVATION_FIELDS}
    values["tool_calls"] = tuple(
        ToolCall(id=str(tc.get("id", "")), name=str(tc["name"]), arguments=str(tc["arguments"]))
        for tc in m["tool_calls"] or ()
    )
    values["grades"] = dict(m["grades"] or {})
    return Observation(**values)


def observation_values(run_id: str, row: ObservationRow, now: datetime) -> dict[str, Any]:
    if row.arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, not {row.arm!r}")
    obs = row.observation
    values: dict[str, Any] = {name: getattr(obs, name) for name in OBSERVATION_FIELDS}
    values.update(
        run_id=run_id,
        case_id=row.case_id,
        arm=row.arm,
        repeat=row.repeat,
        target_key=row.target_key,
        tool_calls=[tc.to_dict() for tc in obs.tool_calls],
        grades=obs.grades or None,
        created_at=now,
    )
    return values


def case_values(run_id: str, idx: int, case: Case) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "case_id": case.id,
        "idx": idx,
        "input": case.input_payload(),
        "tags": dict(case.tags),
        "critical": bool(case.critical),
        "expected": case.expected,
        "asserts": [a.to_dict() for a in case.asserts],
        "source": case.source,
    }


OBSERVATION_COLUMNS: tuple[Any, ...] = (
    observations.c.idx,
    observations.c.case_id,
    observations.c.arm,
    observations.c.repeat,
    observations.c.tool_calls,
    observations.c.grades,
    *(observations.c[name] for name in OBSERVATION_FIELDS),
)
PAIR_CASE_COLUMNS: tuple[Any, ...] = (
    cases.c.case_id,
    cases.c.tags,
    cases.c.critical,
    cases.c.input,
    cases.c.expected,
    cases.c.asserts,
    cases.c.source,
)


def case_from_row(m: RowMapping | Mapping[str, Any]) -> Case:
    """The Case a ``PAIR_CASE_COLUMNS`` row stores."""
    payload = m["input"] or {}
    asserts = []
    for raw in m["asserts"] or ():
        options = {
            k: v for k, v in raw.items() if k not in ("type", "value", "weight", "threshold")
        }
        asserts.append(
            Assertion(
                type=raw["type"],
                value=raw.get("value"),
                weight=float(raw.get("weight", 1.0)),
                threshold=raw.get("threshold"),
                options=options,
            )
        )
    return Case(
        id=m["case_id"],
        messages=list(payload.get("messages") or []),
        tags=dict(m["tags"] or {}),
        critical=bool(m["critical"]),
        expected=m["expected"],
        asserts=asserts,
        tools=payload.get("tools"),
        tool_choice=payload.get("tool_choice"),
        response_format=payload.get("response_format"),
        params=dict(payload.get("params") or {}),
        source=m["source"],
    )


def group_pairs(
    case_rows: Mapping[str, Row[Any]], observation_rows: Sequence[Row[Any]]
) -> Iterator[Pair]:
    """Fold observations ordered by (case, repeat, arm) into one Pair per (case, repeat).

    ``case_rows`` maps each case id to its row (``PAIR_CASE_COLUMNS``).
    """
    current: Pair | None = None
    for row in observation_rows:
        m = row._mapping
        if current is None or (current.case_id, current.repeat) != (m["case_id"], m["repeat"]):
            if current is not None:
                yield current
            case = case_from_row(case_rows[m["case_id"]]._mapping)
            current = Pair(
                case_id=m["case_id"],
                old=None,
                new=None,
                tags=case.tags,
                repeat=m["repeat"],
                input=case.messages,
                critical=case.critical,
                case=case,
            )
        if m["arm"] == "old":
            current.old = observation_from_row(row)
        else:
            current.new = observation_from_row(row)
    if current is not None:
        yield current


TABLES = (
    "targets",
    "runs",
    "cases",
    "observations",
    "pairs",
    "response_cache",
    "gateway_requests",
    "gateway_routes",
    "gateway_audit",
    "embedding_indexes",
    "embedding_aliases",
    "embedding_alias_events",
    "rollouts",
    "rollout_events",
    "rollout_judgements",
)
"""Every table the store owns, in creation order."""

VERSION_TABLE = "cutover_alembic_version"
"""Alembic's bookkeeping table (named so it cannot clash with an app's own)."""

__all__ = [
    "ARMS",
    "OBSERVATION_COLUMNS",
    "OBSERVATION_FIELDS",
    "PAIR_CASE_COLUMNS",
    "RUN_KINDS",
    "RUN_STATUSES",
    "TABLES",
    "VERSION_TABLE",
    "JSONText",
    "ObservationRow",
    "RunInfo",
    "UTCDateTime",
    "case_from_row",
    "case_values",
    "cases",
    "dumps_json",
    "gateway_requests",
    "group_pairs",
    "metadata",
    "observation_from_row",
    "observation_values",
    "observations",
    "pairs",
    "response_cache",
    "run_info_from_row",
    "runs",
    "targets",
    "utcnow",
]

"""The store on SQLite and PostgreSQL: migrations, runs, cases, observations, pairs, cache."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import cutover.store
from conftest import postgres_problem, redis_problem, service_unavailable
from cutover.errors import StoreError
from cutover.records import Observation, ToolCall
from cutover.settings import Settings
from cutover.store import ObservationRow, RunInfo, Store, migrations, open_store
from cutover.store._schema import OBSERVATION_FIELDS, TABLES, VERSION_TABLE, metadata, runs
from cutover.store._store import mask_url, normalize_url
from cutover.suites._case import Assertion, Case
from cutover.targets import parse_target

# -- helpers -----------------------------------------------------------------


def make_case(i: int, **extra: Any) -> Case:
    return Case(
        id=f"case-{i}",
        messages=[{"role": "user", "content": f"question {i}"}],
        tags={"use_case": "billing" if i % 2 else "search"},
        **extra,
    )


def obs(target: str, output: str | None = "ok", **fields: Any) -> Observation:
    return Observation(target=target, output=output, **fields)


RUN_ARGS: dict[str, Any] = {
    "kind": "live",
    "old_target": "key-old",
    "new_target": "key-new",
    "old_label": "old-model",
    "new_label": "new-model",
}


def new_run(store: Store, fingerprint: str = "fp", **kwargs: Any) -> RunInfo:
    return store.create_run(fingerprint=fingerprint, **{**RUN_ARGS, **kwargs})


@pytest.fixture
def store(store_url: str) -> Any:
    with Store.open(store_url) as opened:
        yield opened


def table_names(store: Store) -> set[str]:
    return set(sa.inspect(store.engine).get_table_names())


# -- public API, settings, URLs ----------------------------------------------


def test_public_api_is_pinned() -> None:
    assert sorted(cutover.store.__all__) == sorted(
        [
            "ARMS",
            "RUN_KINDS",
            "RUN_STATUSES",
            "ArmStats",
            "GatewayRequestRow",
            "ObservationRow",
            "RunInfo",
            "Store",
            "open_store",
        ]
    )


def test_every_observation_field_has_a_column() -> None:
    fields = {f.name for f in dataclasses.fields(Observation)}
    assert fields == set(OBSERVATION_FIELDS) | {"tool_calls", "grades"}
    columns = set(metadata.tables["observations"].columns.keys())
    assert fields <= columns


def test_settings_from_env() -> None:
    s = Settings.from_env(
        {
            "CUTOVER_HOME": "/srv/cut",
            "CUTOVER_DATABASE_URL": "postgresql://u@h/db",
            "CUTOVER_REQUIRE_SERVICES": "Yes",
        }
    )
    assert s == Settings(
        home=Path("/srv/cut"), database_url="postgresql://u@h/db", require_services=True
    )
    default = Settings.from_env({})
    assert default.home == Path.home() / ".cutover"
    assert default.database_url == f"sqlite:///{Path.home() / '.cutover' / 'cutover.db'}"
    assert default.require_services is False
    assert Settings.from_env({"CUTOVER_REQUIRE_SERVICES": "0"}).require_services is False
    assert Settings.from_env({"CUTOVER_HOME": "/x"}).database_url == "sqlite:////x/cutover.db"
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.home = Path("/elsewhere")  # type: ignore[misc]


def test_default_url_lands_under_cutover_home(cutover_home: Path) -> None:
    with open_store() as store:
        assert store.url == f"sqlite:///{cutover_home / 'cutover.db'}"
        assert (cutover_home / "cutover.db").is_file()
        assert store.dialect == "sqlite"


def test_database_url_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cutover_home: Path
) -> None:
    target = tmp_path / "elsewhere" / "db.sqlite"
    monkeypatch.setenv("CUTOVER_DATABASE_URL", f"sqlite:///{target}")
    with open_store() as store:
        assert store.url == f"sqlite:///{target}"
    assert target.is_file()
    assert not (cutover_home / "cutover.db").exists()


def test_url_normalization(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for raw in ("postgres://u:pw@db.example/x", "postgresql://u:pw@db.example/x"):
        url = normalize_url(raw)
        assert url.drivername == "postgresql+psycopg"
        assert url.render_as_string(hide_password=False) == "postgresql+psycopg://u:pw@db.example/x"
    monkeypatch.chdir(tmp_path)
    assert normalize_url("sqlite:///rel/c.db").database == str(tmp_path / "rel" / "c.db")
    assert mask_url("failed for postgresql://u:s3cret@h/db") == "failed for postgresql://u:***@h/db"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@localhost/x", "unsupported database"),
        ("this is not a url", "invalid database URL"),
    ],
)
def test_bad_urls_raise_store_error(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        Store.open(url)


def test_unreachable_postgres_raises_store_error() -> None:
    url = "postgresql://postgres:s3cret@127.0.0.1:1/nothing?connect_timeout=3"
    with pytest.raises(StoreError) as info:
        Store.open(url)
    text = str(info.value)
    assert "127.0.0.1:1" in text
    assert "s3cret" not in text
    assert "***" in text
    assert "refused" in text.lower() or "failed" in text.lower()


def test_unwritable_sqlite_path_raises_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create directory") as info:
        Store.open(f"sqlite:///{blocker / 'sub' / 'cutover.db'}")
    assert str(blocker) in str(info.value)
    # A directory where the database file should be: SQLite cannot open it.
    with pytest.raises(StoreError, match="unable to open database file"):
        Store.open(f"sqlite:///{tmp_path}")


def test_sqlite_connections_use_wal_and_foreign_keys(sqlite_url: str) -> None:
    with Store.open(sqlite_url) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


# -- the service rule of the fixtures -------------------------------------------


def test_unreachable_service_skips_unless_services_are_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    what = "PostgreSQL not reachable at 127.0.0.1:5432"
    monkeypatch.delenv("CUTOVER_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        service_unavailable(what, "connection refused")
    assert str(skipped.value) == (
        "PostgreSQL not reachable at 127.0.0.1:5432: connection refused; "
        "set CUTOVER_REQUIRE_SERVICES=1 to make this a failure"
    )
    monkeypatch.setenv("CUTOVER_REQUIRE_SERVICES", "true")
    with pytest.raises(pytest.fail.Exception) as failed:
        service_unavailable(what, "connection refused")
    assert str(failed.value).startswith(f"{what}: connection refused")


def test_service_probes_say_why_a_service_is_unusable() -> None:
    pg = postgres_problem("host=127.0.0.1 port=1 user=postgres dbname=test connect_timeout=3")
    assert pg is not None and "refused" in pg.lower()
    redis = redis_problem("127.0.0.1", 1)
    assert redis is not None and "refused" in redis.lower()


# -- migrations ---------------------------------------------------------------


def test_migrations_create_every_table_and_reopen_is_a_no_op(store_url: str) -> None:
    with Store.open(store_url) as store:
        assert table_names(store) == {*TABLES, VERSION_TABLE}
        inspector = sa.inspect(store.engine)
        uniques = {
            u["name"]: u["column_names"] for u in inspector.get_unique_constraints("observations")
        }
        assert uniques["uq_observations_slot"] == ["run_id", "case_id", "arm", "repeat"]
        run_indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("runs")}
        assert run_indexes["ix_runs_fingerprint_created"][0] == "fingerprint"
        run = new_run(store)
    with Store.open(store_url) as again:
        assert again.get_run(run.id) == run
        with again.engine.connect() as conn:
            assert migrations.current_revision(conn) == migrations.head_revision() == "0009"
            versions = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
        assert [v[0] for v in versions] == ["0009"]


def test_a_database_from_a_newer_cutover_is_refused_clearly(store_url: str) -> None:
    with Store.open(store_url) as store, store.engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    with pytest.raises(StoreError, match="newer cutover"):
        Store.open(store_url)


def test_migrated_schema_matches_the_metadata(store: Store) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE, "compare_type": True}
        )
        assert compare_metadata(context, metadata) == []


def test_downgrade_to_base_and_upgrade_to_head(store_url: str) -> None:
    with Store.open(store_url) as store:
        new_run(store)
        with store.engine.begin() as conn:
            migrations.downgrade(conn, "base")
        assert table_names(store) & set(TABLES) == set()
        with store.engine.connect() as conn:
            assert migrations.current_revision(conn) is None
        with store.engine.begin() as conn:
            migrations.upgrade(conn, "head")
        assert set(TABLES) <= table_names(store)
        assert store.list_runs() == []
    with Store.open(store_url) as reopened:
        assert reopened.list_runs() == []


# -- targets and runs ---------------------------------------------------------


def test_upsert_target(store: Store) -> None:
    target = parse_target("sim:fast-v2", params={"temperature": 0}, prompt_version="v3")
    assert store.upsert_target(target) == target.key
    renamed = target.model_copy(update={"name": "candidate"})
    assert renamed.key == target.key
    assert store.upsert_target(renamed) == target.key
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM targets")).mappings().all()
    assert len(rows) == 1
    row = rows[0]
    assert (row["spec"], row["provider"], row["model"]) == ("sim:fast-v2", "sim", "fast-v2")
    assert row["label"] == "candidate"
    assert row["prompt_version"] == "v3"
    assert row["params"] == '{"temperature":0}'
    assert bool(row["simulated"]) is True


def test_run_lifecycle(store: Store) -> None:
    before = datetime.now(UTC)
    run = new_run(store, suite_name="support", suite_hash="abc", meta={"cli": {"c": 8}})
    assert run.status == "running" and run.finished_at is None
    assert len(run.id) == 32 and int(run.id, 16) >= 0
    assert run.created_at.tzinfo is not None and run.created_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= run.created_at <= datetime.now(UTC)

    loaded = store.get_run(run.id)
    assert loaded == run
    assert loaded is not None and loaded.meta == {"cli": {"c": 8}}

    store.set_run_status(run.id, "interrupted")
    assert store.get_run(run.id) == dataclasses.replace(run, status="interrupted")

    store.set_run_status(run.id, "complete")
    done = store.get_run(run.id)
    assert done is not None and done.status == "complete"
    assert done.finished_at is not None and done.finished_at >= done.created_at
    assert done.finished_at.tzinfo is not None

    with pytest.raises(ValueError, match="status"):
        store.set_run_status(run.id, "paused")
    with pytest.raises(StoreError, match="no run"):
        store.set_run_status("0" * 32, "failed")
    with pytest.raises(ValueError, match="kind"):
        new_run(store, kind="nightly")


def test_resumable_run_is_the_newest_unfinished_one(store: Store) -> None:
    assert store.find_resumable_run("fp") is None
    first = new_run(store)
    time.sleep(0.01)
    second = new_run(store)
    new_run(store, fingerprint="other")
    found = store.find_resumable_run("fp")
    assert found is not None and found.id == second.id
    store.set_run_status(second.id, "complete")
    found = store.find_resumable_run("fp")
    assert found is not None and found.id == first.id
    store.set_run_status(first.id, "failed")
    found = store.find_resumable_run("fp")
    assert found is not None and found.id == first.id and found.status == "failed"
    store.set_run_status(first.id, "complete")
    assert store.find_resumable_run("fp") is None


def test_list_runs_newest_first(store: Store) -> None:
    made = []
    for _ in range(4):
        made.append(new_run(store).id)
        time.sleep(0.01)
    assert [r.id for r in store.list_runs()] == made[::-1]
    assert [r.id for r in store.list_runs(limit=2)] == made[:1:-1]


def test_get_run_accepts_a_unique_prefix(store: Store) -> None:
    run = new_run(store)
    assert store.get_run(run.id[:6]) == run
    assert store.get_run(run.id[:12]) == run
    assert store.get_run(run.id[:5]) is None  # too short to be taken as a prefix
    assert store.get_run("zzzzzzzz") is None
    # Two runs sharing a prefix: the prefix is ambiguous, the full ids are not.
    for suffix in ("01", "02"):
        made = new_run(store, fingerprint="x")
        with store.engine.begin() as conn:
            conn.execute(
                sa.update(runs).where(runs.c.id == made.id).values(id=f"abcdef{suffix}" + "0" * 24)
            )
    assert store.get_run("abcdef") is None
    found = store.get_run("abcdef02")
    assert found is not None and found.id == "abcdef02" + "0" * 24
    # LIKE wildcards are taken literally (unescaped, each would match abcdef02...).
    assert store.get_run("abcdef02%") is None
    assert store.get_run("abcde_02") is None


# -- cases and observations ---------------------------------------------------


def test_add_cases_is_idempotent_and_keeps_order(store: Store) -> None:
    run = new_run(store)
    first = [make_case(i) for i in range(5)]
    store.add_cases(run.id, iter(first))
    assert store.case_count(run.id) == 5
    store.add_cases(run.id, (make_case(i) for i in range(7)))
    assert store.case_count(run.id) == 7
    store.add_cases(run.id, [])
    assert store.case_count(run.id) == 7
    other = new_run(store)
    assert store.case_count(other.id) == 0
    with pytest.raises(StoreError, match="adding cases"):
        store.add_cases("no-such-run", [make_case(0)])
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT case_id, idx FROM cases WHERE run_id = :r ORDER BY idx"), {"r": run.id}
        ).all()
    assert [(r[0], r[1]) for r in rows] == [(f"case-{i}", i) for i in range(7)]


def test_case_fields_are_stored(store: Store) -> None:
    run = new_run(store)
    case = make_case(
        1,
        critical=True,
        expected="42",
        asserts=[Assertion(type="contains", value="42"), Assertion(type="is-json", weight=2.0)],
        tools=[{"type": "function", "function": {"name": "lookup"}}],
        tool_choice="auto",
        params={"max_tokens": 10},
        source="suite.yaml:3",
    )
    store.add_cases(run.id, [case])
    with store.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM cases")).mappings().one()
    assert bool(row["critical"]) is True and row["expected"] == "42"
    assert row["source"] == "suite.yaml:3"
    assert orjson.loads(row["input"]) == case.input_payload()
    assert orjson.loads(row["asserts"]) == [
        {"type": "contains", "value": "42"},
        {"type": "is-json", "weight": 2.0},
    ]
    assert orjson.loads(row["tags"]) == {"use_case": "billing"}


FULL = Observation(
    target="openai:gpt-4o-mini",
    output=None,
    tool_calls=(
        ToolCall(id="call_1", name="lookup", arguments='{"q": "é ✓"}'),
        ToolCall(id="call_2", name="refund", arguments="{}"),
    ),
    finish_reason="tool_calls",
    error="server said no",
    error_class="server_error",
    status_code=503,
    latency_ms=1234.5,
    ttft_ms=87.25,
    input_tokens=1200,
    output_tokens=33,
    cost_usd=0.000123,
    model="gpt-4o-mini-2024-07-18",
    attempts=3,
    cached=True,
    simulated=True,
)
MINIMAL = Observation(target="sim:x")


def test_observation_round_trip(store: Store) -> None:
    run = new_run(store)
    store.add_cases(run.id, [make_case(0)])
    store.write_observations(
        run.id,
        [
            ObservationRow("case-0", "old", 0, "key-old", FULL),
            ObservationRow("case-0", "new", 0, "key-new", MINIMAL),
        ],
    )
    assert list(store.iter_observations(run.id, "old")) == [FULL]
    assert list(store.iter_observations(run.id, "new")) == [MINIMAL]
    (pair,) = store.iter_pairs(run.id)
    assert pair.old == FULL and pair.new == MINIMAL
    assert pair.old is not None and pair.old.tool_calls[0].arguments == '{"q": "é ✓"}'
    assert store.observation_status(run.id) == {
        ("case-0", "old", 0): False,
        ("case-0", "new", 0): True,
    }
    with pytest.raises(ValueError, match="arm"):
        list(store.iter_observations(run.id, "baseline"))


def test_write_observations_replaces_an_earlier_row(store: Store) -> None:
    run = new_run(store)
    store.add_cases(run.id, [make_case(0)])
    failed = obs("t", output=None, error="timed out", error_class="timeout", attempts=5)
    store.write_observations(run.id, [ObservationRow("case-0", "old", 0, "k1", failed)])
    assert store.observation_status(run.id) == {("case-0", "old", 0): False}
    fixed = obs("t", output="fine", latency_ms=10.0)
    store.write_observations(run.id, [ObservationRow("case-0", "old", 0, "k2", fixed)])
    assert store.observation_status(run.id) == {("case-0", "old", 0): True}
    assert list(store.iter_observations(run.id, "old")) == [fixed]
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT target_key, error FROM observations")).all()
    assert [tuple(r) for r in rows] == [("k2", None)]
    store.write_observations(run.id, [])  # nothing to do


def test_write_observations_is_one_transaction(store: Store) -> None:
    run = new_run(store)
    store.add_cases(run.id, [make_case(0)])
    good = ObservationRow("case-0", "old", 0, "k", obs("t"))
    unknown_case = ObservationRow("no-such-case", "old", 0, "k", obs("t"))
    with pytest.raises(StoreError, match="writing observations") as info:
        store.write_observations(run.id, [good, unknown_case])
    assert "'no-such-case'" in str(info.value) and "add_cases first" in str(info.value)
    assert store.observation_status(run.id) == {}
    with pytest.raises(ValueError, match="arm"):
        store.write_observations(run.id, [ObservationRow("case-0", "baseline", 0, "k", obs("t"))])


# -- response cache -----------------------------------------------------------


def test_cache_get_and_put_ignore_existing_keys(store: Store) -> None:
    assert store.cache_get_many([]) == {}
    assert store.cache_get_many(["nope"]) == {}
    payload = FULL.to_dict()
    store.cache_put_many([("k1", "t", payload), ("k2", "t", {"output": "two"})])
    store.cache_put_many(
        [("k1", "t", {"output": "overwritten?"}), ("k3", "t", {"n": 3}), ("k3", "t", {"n": 4})]
    )
    store.cache_put_many([])
    got = store.cache_get_many(["k1", "k2", "k3", "missing", "k1"])
    assert got == {"k1": payload, "k2": {"output": "two"}, "k3": {"n": 3}}
    assert Observation.from_dict(got["k1"]) == FULL


def test_cache_handles_more_keys_than_one_query(store: Store) -> None:
    items = [(f"key-{i}", "t", {"i": i}) for i in range(2500)]
    store.cache_put_many(items)
    got = store.cache_get_many([k for k, _, _ in items] + ["absent"])
    assert len(got) == 2500 and got["key-2499"] == {"i": 2499}


# -- pairs --------------------------------------------------------------------


def _pairs_fixture(store: Store) -> RunInfo:
    """10 cases, added in an order unrelated to their ids; repeats 0 and 1.

    case-9 .. case-3: both arms for repeat 0, and repeat 1 too for even ids
    case-2: old only; case-1: new only; case-0: nothing
    """
    run = new_run(store, repeats=2)
    order = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    store.add_cases(run.id, [make_case(i, critical=i == 5) for i in order])
    rows = []
    for i in order[:7]:
        for rep in (0, 1) if i % 2 == 0 else (0,):
            rows.append(ObservationRow(f"case-{i}", "new", rep, "kn", obs("n", f"new {i}/{rep}")))
            rows.append(ObservationRow(f"case-{i}", "old", rep, "ko", obs("o", f"old {i}/{rep}")))
    rows.append(ObservationRow("case-2", "old", 0, "ko", obs("o", "old 2")))
    rows.append(ObservationRow("case-1", "new", 0, "kn", obs("n", "new 1")))
    store.write_observations(run.id, rows)
    return run


def test_iter_pairs_orders_by_case_position_and_keeps_unpaired(store: Store) -> None:
    run = _pairs_fixture(store)
    pairs = list(store.iter_pairs(run.id, batch_size=3))
    keys = [(p.case_id, p.repeat) for p in pairs]
    expected = ["9/0", "8/0", "8/1", "7/0", "6/0", "6/1", "5/0", "4/0", "4/1", "3/0", "2/0", "1/0"]
    assert keys == [(f"case-{k[0]}", int(k[2])) for k in expected]
    by_key = {(p.case_id, p.repeat): p for p in pairs}
    p81 = by_key[("case-8", 1)]
    assert p81.old is not None and p81.old.output == "old 8/1"
    assert p81.new is not None and p81.new.output == "new 8/1"
    assert by_key[("case-2", 0)].new is None and by_key[("case-2", 0)].old is not None
    assert by_key[("case-1", 0)].old is None and by_key[("case-1", 0)].new is not None
    assert [by_key[(f"case-{i}", 0)].critical for i in (5, 4)] == [True, False]
    assert by_key[("case-5", 0)].tags == {"use_case": "billing"}
    assert by_key[("case-5", 0)].input == [{"role": "user", "content": "question 5"}]
    # Every page size gives the same stream.
    for size in (1, 2, 4, 7, 9, 10, 1000):
        assert list(store.iter_pairs(run.id, batch_size=size)) == pairs
    with pytest.raises(ValueError, match="batch_size"):
        list(store.iter_pairs(run.id, batch_size=0))
    assert list(store.iter_pairs(new_run(store).id)) == []


def test_iter_pairs_reads_one_page_at_a_time(store: Store) -> None:
    run = _pairs_fixture(store)
    observation_reads: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM observations" in statement:
            observation_reads.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        stream = store.iter_pairs(run.id, batch_size=3)
        first = next(stream)
        assert first.case_id == "case-9"
        assert len(observation_reads) == 1
        rest = list(stream)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)
    # 10 case positions in pages of 3: 0-2, 3-5, 6-8, 9 (case-0, no observations).
    assert len(observation_reads) == 4
    assert len(rest) == 11


def test_iter_observations_streams_one_arm_in_order(store: Store) -> None:
    run = _pairs_fixture(store)
    olds = [o.output for o in store.iter_observations(run.id, "old")]
    expected = ["9/0", "8/0", "8/1", "7/0", "6/0", "6/1", "5/0", "4/0", "4/1", "3/0"]
    assert olds == [f"old {k}" for k in expected] + ["old 2"]
    news = [o.output for o in store.iter_observations(run.id, "new")]
    assert news[-1] == "new 1" and len(news) == 11


def test_build_pairs_is_idempotent_and_refreshes(store: Store) -> None:
    run = _pairs_fixture(store)
    assert store.build_pairs(run.id) == 10
    assert store.build_pairs(run.id) == 10
    # case-2 gets its new arm: one more pair.
    store.write_observations(run.id, [ObservationRow("case-2", "new", 0, "kn", obs("n", "new 2"))])
    assert store.build_pairs(run.id) == 11
    query = sa.text(
        """
        SELECT p.case_id, p.repeat, o.arm AS old_arm, o.output AS old_output,
               n.arm AS new_arm, n.output AS new_output
        FROM pairs p
        JOIN observations o ON o.id = p.old_observation_id
        JOIN observations n ON n.id = p.new_observation_id
        WHERE p.run_id = :r
        """
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query, {"r": run.id}).mappings().all()
    assert len(rows) == 11
    for row in rows:
        assert (row["old_arm"], row["new_arm"]) == ("old", "new")
        assert row["old_output"].startswith("old ") and row["new_output"].startswith("new ")
        assert row["old_output"][4:5] == row["new_output"][4:5] == row["case_id"][-1]
    assert {(r["case_id"], r["repeat"]) for r in rows} >= {("case-2", 0), ("case-8", 1)}
    assert ("case-1", 0) not in {(r["case_id"], r["repeat"]) for r in rows}
    other = new_run(store)
    assert store.build_pairs(other.id) == 0
    assert store.build_pairs(run.id) == 11  # the other run's rebuild left this one alone


# -- concurrency --------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from cutover.records import Observation
    from cutover.store import ObservationRow, open_store
    from cutover.suites._case import Case

    url, go, name = sys.argv[1:4]
    Path(f"{go}.{name}").touch()  # ready: imports done
    while not Path(go).exists():
        time.sleep(0.002)
    with open_store(url) as store:
        run = store.create_run(fingerprint=name, kind="live", old_target="a", new_target="b",
                               old_label="a", new_label="b")
        store.add_cases(run.id, [Case(id=f"c{i}", messages=[{"role": "user", "content": "hi"}])
                                 for i in range(40)])
        for i in range(40):
            store.write_observations(run.id, [
                ObservationRow(f"c{i}", arm, 0, "k", Observation(target=arm, output=name))
                for arm in ("old", "new")
            ])
            store.cache_put_many([(f"{name}-{i}", "k", {"i": i}), ("shared", "k", {"by": name})])
            store.observation_status(run.id)
        print(run.id)
    """
)


def test_concurrent_processes_share_one_store(store_url: str, tmp_path: Path) -> None:
    """Several processes open a fresh store at once (migration race) and write to it."""
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, store_url, str(go), f"w{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"go.w{n}").exists() for n in range(3)):
        assert time.monotonic() < deadline, "workers did not start"
        time.sleep(0.01)
    go.touch()  # all three at the starting line: off they go, at once
    results = [w.communicate(timeout=90) for w in workers]
    for worker, (_out, err) in zip(workers, results, strict=True):
        assert "locked" not in err
        assert worker.returncode == 0, err
    run_ids = [out.strip() for out, _ in results]
    with Store.open(store_url) as store:
        for run_id in run_ids:
            status = store.observation_status(run_id)
            assert len(status) == 80 and all(status.values())
        cached = store.cache_get_many([f"w{n}-{i}" for n in range(3) for i in range(40)])
        assert len(cached) == 120
        assert store.cache_get_many(["shared"])["shared"]["by"] in {"w0", "w1", "w2"}
        assert {r.id for r in store.list_runs()} == set(run_ids)

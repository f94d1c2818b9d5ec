"""Aliases and retirement: atomic switches, rollback, audit, keep-warm, readers during flips."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from cutover.embeddings import build_index, registry, search
from cutover.errors import VectorIndexError
from cutover.store import Store, open_store
from cutover.store._schema import utcnow


def corpus(tmp_path: Path, prefix: str, n: int = 20) -> Path:
    path = tmp_path / f"{prefix}.jsonl"
    rows = [
        {"_id": f"{prefix}-{i}", "title": "", "text": f"text {i} of {prefix}"} for i in range(n)
    ]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    with open_store(sqlite_url) as opened:
        yield opened


def test_alias_set_rollback_show_on_both_stores(tmp_path: Path, store_url: str) -> None:
    with open_store(store_url) as store:
        build_index("old", corpus=corpus(tmp_path, "old"), model="hash:8", store=store)
        build_index("new", corpus=corpus(tmp_path, "new"), model="hash:16", store=store)
        before, after = registry.set_alias(store, "live", "old", actor="ana")
        assert before is None and (after.index_name, after.version) == ("old", 1)
        assert search("live", ["text 3 of old"], k=1, store=store)[0][0].id == "old-3"

        _, after = registry.set_alias(store, "live", "new", actor="bo")
        assert (after.index_name, after.previous_index, after.version) == ("new", "old", 2)
        assert search("live", ["text 3 of new"], k=1, store=store)[0][0].id == "new-3"

        _, after = registry.rollback_alias(store, "live", actor="ana")
        assert (after.index_name, after.previous_index, after.version) == ("old", "new", 3)
        info = registry.alias_info(store, "live")
        assert info.current is not None and info.current.name == "old"
        assert info.previous is not None and info.previous.name == "new"
        assert [(e.action, e.actor) for e in info.events] == [
            ("rollback", "ana"), ("set", "bo"), ("set", "ana"),
        ]  # fmt: skip
        switch = info.events[1]
        assert switch.before == {"index": "old", "model": "hash:8", "dimensions": 8}
        assert switch.after == {
            "index": "new", "model": "hash:16", "dimensions": 16, "model_changed_from": "hash:8",
        }  # fmt: skip
        same_before, same_after = registry.set_alias(store, "live", "old", actor="ana")
        assert same_before == same_after and same_after.version == 3  # no event for a no-op
        assert len(registry.alias_info(store, "live").events) == 3


def test_alias_refusals(tmp_path: Path, store: Store) -> None:
    build_index("ready", corpus=corpus(tmp_path, "ready"), model="hash:8", store=store)
    with pytest.raises(VectorIndexError, match="no embedding index 'ghost'"):
        registry.set_alias(store, "live", "ghost", actor="t")
    with pytest.raises(VectorIndexError, match="'ready' is an index name"):
        registry.set_alias(store, "ready", "ready", actor="t")
    registry.set_alias(store, "live", "ready", actor="t")
    with pytest.raises(VectorIndexError, match="'live' is already an alias"):
        build_index("live", corpus=corpus(tmp_path, "x"), model="hash:8", store=store)
    with pytest.raises(VectorIndexError, match="no previous index"):
        registry.rollback_alias(store, "live", actor="t")
    with pytest.raises(VectorIndexError, match="no embedding alias 'nope'"):
        registry.rollback_alias(store, "nope", actor="t")
    with pytest.raises(VectorIndexError, match="no embedding index or alias 'nope'"):
        search("nope", ["q"], store=store)
    # A build that stopped half-way is not complete: no alias may point at it.
    store.register_embedding_index(
        {
            "name": "half", "backend": "embedded", "location": str(tmp_path / "half"),
            "model_spec": "hash:8", "model_name": "hash:8", "model_version": "1",
            "model_identity": "hash:8", "dimensions": 8, "normalised": True,
            "status": "building", "created_at": utcnow(),
        }
    )  # fmt: skip
    with pytest.raises(VectorIndexError, match="'half' is building, not complete"):
        registry.set_alias(store, "live", "half", actor="t")


def test_retire_waits_for_the_alias_and_the_keep_warm_period(tmp_path: Path, store: Store) -> None:
    build_index("v1", corpus=corpus(tmp_path, "v1"), model="hash:8", store=store)
    build_index("v2", corpus=corpus(tmp_path, "v2"), model="hash:8", store=store)
    build_index("spare", corpus=corpus(tmp_path, "spare"), model="hash:8", store=store)
    registry.set_alias(store, "live", "v1", actor="t")
    registry.set_alias(store, "live", "v2", actor="t")
    with pytest.raises(VectorIndexError, match="'v2' is behind alias 'live'"):
        registry.retire(store, "v2")
    with pytest.raises(VectorIndexError, match=r"kept warm .* until"):
        registry.retire(store, "v1")
    with pytest.raises(VectorIndexError, match="kept warm"):
        registry.retire(store, "v1", now=utcnow() + timedelta(days=13))
    assert search("v1", ["text 1 of v1"], k=1, store=store)[0][0].id == "v1-1"

    retired = registry.retire(store, "v1", now=utcnow() + timedelta(days=15))
    assert retired.status == "retired" and retired.doc_count == 0 and retired.retired_at
    assert not (Path(retired.location) / "vectors").exists()
    with pytest.raises(VectorIndexError, match="retired"):
        search("v1", ["text 1 of v1"], store=store)
    with pytest.raises(VectorIndexError, match="'v1' is retired, not complete"):
        registry.rollback_alias(store, "live", actor="t")
    with pytest.raises(VectorIndexError, match="is retired"):
        build_index("v1", corpus=corpus(tmp_path, "v1"), model="hash:8", store=store)
    assert registry.retire(store, "v1").status == "retired"  # again: finishes, no error
    assert registry.retire(store, "spare", keep_warm_days=14).status == "retired"  # never aliased


def test_readers_see_one_index_per_call_while_the_alias_flips(tmp_path: Path, store: Store) -> None:
    build_index("left", corpus=corpus(tmp_path, "left", 200), model="hash:16", store=store)
    build_index("right", corpus=corpus(tmp_path, "right", 200), model="hash:16", store=store)
    registry.set_alias(store, "flip", "left", actor="t")
    queries = [f"text {i} of left" for i in range(10)] + [f"text {i} of right" for i in range(10)]
    seen: dict[str, int] = {"left": 0, "right": 0}
    problems: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                results = search("flip", queries, k=5, store=store)
            except Exception as exc:  # noqa: BLE001 - reported below
                problems.append(repr(exc))
                return
            sides = {hit.id.split("-")[0] for hits in results for hit in hits}
            if len(sides) != 1:
                problems.append(f"one call mixed indexes: {sorted(sides)}")
                return
            seen[sides.pop()] += 1

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for thread in readers:
        thread.start()
    try:
        for i in range(60):
            registry.set_alias(store, "flip", "right" if i % 2 == 0 else "left", actor="flipper")
    finally:
        stop.set()
        for thread in readers:
            thread.join(timeout=30)
    assert not problems, problems[:3]
    assert seen["left"] > 0 and seen["right"] > 0
    assert registry.alias_info(store, "flip").alias.version == 61

"""Index backends (embedded, pgvector): exact search, upserts, deletes, refusals, durability."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from cutover.embeddings import _embedded
from cutover.embeddings._types import IndexMeta
from cutover.embeddings.index import VectorIndex, create_index, open_index
from cutover.errors import VectorIndexError

DIM = 8
MODEL = "hash:8"

MakeIndex = Callable[..., VectorIndex]


def meta(name: str = "idx", backend: str = "embedded", dim: int = DIM) -> IndexMeta:
    return IndexMeta(
        name=name,
        backend=backend,
        model_spec=f"hash:{dim}",
        model_name=f"hash:{dim}",
        model_version="1",
        model_identity=f"hash:{dim}",
        dimensions=dim,
        normalised=True,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> npt.NDArray[np.float32]:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def brute_force(
    ids: list[str], vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.float32], k: int
) -> list[list[str]]:
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = q @ vectors.T
    return [[ids[j] for j in np.argsort(-row, kind="stable")[:k]] for row in scores]


@pytest.fixture(params=["embedded", pytest.param("pgvector", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_index(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> MakeIndex:
    location = (
        str(tmp_path / "index")
        if backend == "embedded"
        else str(request.getfixturevalue("pgvector_url"))
    )
    opened: list[VectorIndex] = []

    def make(
        name: str = "idx", dim: int = DIM, state: Mapping[str, bytes] | None = None
    ) -> VectorIndex:
        index = create_index(meta(name, backend, dim), location, state=state)
        opened.append(index)
        return index

    request.addfinalizer(lambda: [i.close() for i in opened])
    return make


def test_exact_search_upsert_and_delete(make_index: MakeIndex) -> None:
    rng = np.random.default_rng(1)
    index = make_index()
    ids = [f"d{i:03d}" for i in range(300)]
    vectors = unit(rng, 300)
    for start in range(0, 300, 64):
        stop = start + 64
        index.upsert(
            ids[start:stop], [f"h{i}" for i in range(start, min(stop, 300))],
            vectors[start:stop], model_identity=MODEL,
        )  # fmt: skip
    assert index.count() == 300
    queries = rng.standard_normal((6, DIM)).astype(np.float32)
    got = index.search(queries, 7)
    assert [[h.id for h in hits] for hits in got] == brute_force(ids, vectors, queries, 7)
    q0 = queries[0] / np.linalg.norm(queries[0])
    assert got[0][0].score == pytest.approx(float(vectors[ids.index(got[0][0].id)] @ q0), abs=1e-5)

    # A changed document replaces its vector; deleted ones leave search, known and count.
    moved = -vectors[5]
    index.upsert(["d005"], ["changed"], moved[None, :], model_identity=MODEL)
    assert index.known(["d005", "d006", "nope"]) == {"d005": "changed", "d006": "h6"}
    assert index.delete(["d010", "d011", "missing"]) == 2
    assert index.count() == 298
    vectors[5] = moved
    keep = [i for i in range(300) if ids[i] not in ("d010", "d011")]
    expected = brute_force([ids[i] for i in keep], vectors[keep], queries, 7)
    assert [[h.id for h in hits] for hits in index.search(queries, 7)] == expected
    assert index.known(["d010"]) == {}
    assert len(index.search(queries[:1], 1000)[0]) == 298


def test_refuses_other_dimensions_and_other_models(make_index: MakeIndex) -> None:
    index = make_index()
    with pytest.raises(
        VectorIndexError, match="holds 8-dimensional vectors; refusing vectors of dimension 4"
    ):
        index.upsert(["a"], ["h"], np.ones((1, 4), np.float32), model_identity=MODEL)
    with pytest.raises(
        VectorIndexError,
        match=r"holds vectors of model hash:8 \(hash:8\); refusing vectors of model minilm",
    ):
        index.upsert(["a"], ["h"], np.ones((1, DIM), np.float32), model_identity="minilm:x")
    with pytest.raises(VectorIndexError, match="the queries have shape"):
        index.search(np.ones((1, 3), np.float32), 3)
    with pytest.raises(VectorIndexError, match="not 16-dimensional vectors of hash:16"):
        make_index(dim=16)  # the same name at the same place, another model
    assert index.count() == 0


def test_reopen_keeps_meta_and_state_and_drop_retires(make_index: MakeIndex, backend: str) -> None:
    index = make_index(state={"a.json": b'{"x": 1}', "b.npy": b"\x93NUMPY"})
    index.upsert(["a", "b"], ["1", "2"], np.eye(DIM, dtype=np.float32)[:2], model_identity=MODEL)
    again = open_index(backend, index.location, "idx")
    try:
        assert again.meta == index.meta
        assert again.load_state() == {"a.json": b'{"x": 1}', "b.npy": b"\x93NUMPY"}
        assert [h.id for h in again.search(np.eye(DIM, dtype=np.float32)[1:2], 1)[0]] == ["b"]
        again.write_meta(again.meta.evolve(status="complete"))
        again.drop()
        assert again.count() == 0 and again.meta.status == "retired"
        assert again.load_state() == {}
    finally:
        again.close()
    with pytest.raises(VectorIndexError):
        again.write_meta(meta(dim=4))


def test_both_backends_give_the_same_ranking(tmp_path: Path, pgvector_url: str) -> None:
    rng = np.random.default_rng(7)
    ids = [f"doc-{i}" for i in range(500)]
    vectors = unit(rng, 500, 16)
    queries = rng.standard_normal((20, 16)).astype(np.float32)
    results = []
    for backend, location in (("embedded", str(tmp_path / "e")), ("pgvector", pgvector_url)):
        index = create_index(meta("same", backend, 16), location)
        try:
            index.upsert(ids, [str(i) for i in range(500)], vectors, model_identity="hash:16")
            results.append(index.search(queries, 10))
        finally:
            index.close()
    embedded, pgvector = results
    assert [[h.id for h in r] for r in embedded] == [[h.id for h in r] for r in pgvector]
    for a, b in zip(embedded, pgvector, strict=True):
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-5)


def test_embedded_search_is_exact_across_segments_and_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_embedded, "SEGMENT_BYTES", DIM * 4 * 37)  # 37 rows per segment
    monkeypatch.setattr(_embedded, "CHUNK_BYTES", DIM * 4 * 10)  # 10 rows per product
    monkeypatch.setattr(_embedded, "SCORE_BYTES", 4 * 10 * 3)  # 3 queries per block
    rng = np.random.default_rng(3)
    index = create_index(meta(), str(tmp_path / "seg"))
    ids = [f"d{i}" for i in range(200)]
    vectors = unit(rng, 200)
    for start in range(0, 200, 23):
        index.upsert(
            ids[start : start + 23], ["h"] * len(ids[start : start + 23]),
            vectors[start : start + 23], model_identity=MODEL,
        )  # fmt: skip
    index.delete([f"d{i}" for i in range(0, 200, 3)])
    assert len(list((tmp_path / "seg" / "vectors").iterdir())) == 6
    queries = rng.standard_normal((8, DIM)).astype(np.float32)
    live = [i for i in range(200) if i % 3]
    expected = brute_force([ids[i] for i in live], vectors[live], queries, 12)
    assert [[h.id for h in hits] for hits in index.search(queries, 12)] == expected
    index.close()


def test_embedded_crash_before_commit_leaves_whole_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = create_index(meta(), str(tmp_path / "crash"))
    eye = np.eye(DIM, dtype=np.float32)
    index.upsert(["a", "b"], ["1", "2"], eye[:2], model_identity=MODEL)

    def die(*_args: object) -> None:
        raise OSError("disk gone")

    with monkeypatch.context() as patch:
        patch.setattr(_embedded, "_bump", die)  # after the rows are written, before COMMIT
        with pytest.raises(OSError, match="disk gone"):
            index.upsert(["c", "d"], ["3", "4"], eye[2:4], model_identity=MODEL)
    assert index.count() == 2 and index.known(["c"]) == {}
    index.upsert(["e"], ["5"], eye[4:5], model_identity=MODEL)  # overwrites the torn rows
    hits = index.search(eye[[2, 4]], 3)
    assert {h.id for h in hits[0]} == {"a", "b", "e"}  # "c" was never committed
    assert hits[1][0].id == "e" and hits[1][0].score == pytest.approx(1.0, abs=1e-6)
    index.close()


def test_open_missing_index(tmp_path: Path) -> None:
    with pytest.raises(VectorIndexError, match="no embedded index"):
        open_index("embedded", str(tmp_path / "none"), "none")
    with pytest.raises(VectorIndexError, match="unknown backend"):
        open_index("faiss", "x", "y")

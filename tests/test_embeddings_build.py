"""Building indexes: resume after failure or SIGKILL, dedupe, changes, priority, refusals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from cutover.embeddings import build_index, search
from cutover.embeddings._types import document_text
from cutover.embeddings.index import open_index
from cutover.embeddings.models import ModelOptions
from cutover.embeddings.query import embed_queries, shared_cache
from cutover.errors import BuildAbortedError, CorpusError, EmbeddingModelError, VectorIndexError
from cutover.store import Store, open_store
from cutover.testing import Fault, serve_in_thread
from cutover.testing.embeddings_server import EmbeddingsServer

TOPICS = ["cats", "dogs", "taxes", "rain", "chess", "bread", "trains", "jazz"]


def make_docs(n: int, prefix: str = "d") -> list[dict[str, str]]:
    return [
        {
            "_id": f"{prefix}{i}",
            "title": f"{TOPICS[i % 8].title()} note {i}",
            "text": f"A short note about {TOPICS[i % 8]} and {TOPICS[(i * 3) % 8]}, number {i}.",
        }
        for i in range(n)
    ]


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def text_of(doc: dict[str, str]) -> str:
    return document_text(doc["title"], doc["text"])


@pytest.fixture
def server() -> Iterator[EmbeddingsServer]:
    with serve_in_thread(EmbeddingsServer(dimensions=16)) as running:
        yield running


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    with open_store(sqlite_url) as opened:
        yield opened


def fast(**kwargs: object) -> ModelOptions:
    return ModelOptions(**{"backoff_s": 0.01, "max_retries": 1, **kwargs})  # type: ignore[arg-type]


def test_build_then_rebuild_embeds_nothing_and_search_finds_documents(
    tmp_path: Path, store: Store
) -> None:
    docs = make_docs(50)
    corpus = write_jsonl(tmp_path / "corpus.jsonl", docs)
    first = build_index("notes", corpus=corpus, model="hash:16", batch_size=16, store=store)
    assert (first.status, first.count, first.written, first.embedded, first.batches) == (
        "complete", 50, 50, 50, 4,
    )  # fmt: skip
    again = build_index("notes", corpus=corpus, model="hash:16", store=store)
    assert (again.written, again.embedded, again.unchanged) == (0, 0, 50)
    hits = search("notes", [text_of(docs[7])], k=3, store=store)
    assert hits[0][0].id == "d7" and hits[0][0].score == pytest.approx(1.0, abs=1e-5)
    row = store.embedding_index("notes")
    assert row is not None and row.status == "complete" and row.doc_count == 50
    assert row.corpus is not None and row.corpus["docs"] == 50
    assert row.location == str(Path(os.environ["CUTOVER_HOME"]) / "indexes" / "notes")


def test_endpoint_failing_halfway_keeps_batches_and_resume_embeds_only_the_rest(
    tmp_path: Path, store: Store, server: EmbeddingsServer
) -> None:
    docs = make_docs(60)
    corpus = write_jsonl(tmp_path / "corpus.jsonl", docs)
    model = f"openai:emb@{server.base_url}"
    # One request probes the model's size, three batches pass, then the endpoint fails.
    server.inject(*[Fault.delay(0)] * 4, *[Fault.status(500)] * 10)
    with pytest.raises(BuildAbortedError) as info:
        build_index(
            "oai", corpus=corpus, model=model, batch_size=10, store=store,
            model_options=fast(request_size=10),
        )  # fmt: skip
    assert info.value.recorded == 30 and info.value.run_id == "oai"
    assert "HTTP 500" in str(info.value) and "run the same command again" in str(info.value)
    row = store.embedding_index("oai")
    assert row is not None and row.status == "building"
    index = open_index(row.backend, row.location, "oai")
    committed = set(index.known([d["_id"] for d in docs]))
    index.close()
    assert committed == {f"d{i}" for i in range(30)}

    server.reset()
    result = build_index(
        "oai", corpus=corpus, model=model, batch_size=10, store=store,
        model_options=fast(request_size=10),
    )  # fmt: skip
    assert (result.status, result.count, result.written, result.unchanged) == (
        "complete", 60, 30, 30,
    )  # fmt: skip
    assert server.requests_total == 3
    assert set(server.embedded) == {text_of(d) for d in docs[30:]}
    assert max(server.embedded.values()) == 1


def test_sigkill_mid_build_then_rerun_resumes(tmp_path: Path, cutover_home: Path) -> None:
    docs = make_docs(200)
    corpus = write_jsonl(tmp_path / "corpus.jsonl", docs)
    with serve_in_thread(EmbeddingsServer(dimensions=16, latency_s=0.02)) as server:
        command = [
            sys.executable, "-m", "cutover", "embeddings", "build", "--quiet",
            "--index", "killed", "--corpus", str(corpus),
            "--model", f"openai:emb@{server.base_url}",
            "--batch-size", "5", "--request-size", "5", "--concurrency", "1",
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while server.inputs_total < 60 and time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"build ended early: {process.communicate()}")
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert process.returncode == -signal.SIGKILL

        location = cutover_home / "indexes" / "killed"
        index = open_index("embedded", str(location), "killed")
        committed = set(index.known([d["_id"] for d in docs]))
        index.close()
        assert 0 < len(committed) < 200
        assert len(committed) % 5 == 0  # whole batches only

        server.reset()
        rerun = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        assert "complete, 200 documents" in rerun.stdout
        again = {text_of(d) for d in docs if d["_id"] in committed}
        assert not again & set(server.embedded), "a committed document was embedded again"
        assert set(server.embedded) == {text_of(d) for d in docs if d["_id"] not in committed}
    index = open_index("embedded", str(location), "killed")
    assert index.count() == 200 and index.meta.status == "complete"
    index.close()


def test_dedupe_by_content_and_a_changes_file(
    tmp_path: Path, store: Store, server: EmbeddingsServer
) -> None:
    docs = make_docs(12)
    docs[5] = {**docs[4], "_id": "d5"}  # the same title and text under another id
    corpus = write_jsonl(tmp_path / "corpus.jsonl", docs)
    model = f"openai:emb@{server.base_url}"
    first = build_index("dedupe", corpus=corpus, model=model, batch_size=12, store=store)
    assert (first.written, first.embedded, first.duplicates) == (12, 11, 1)
    assert server.embedded[text_of(docs[4])] == 1

    changed = {**docs[3], "text": "A rewritten note about trains."}
    changes = write_jsonl(
        tmp_path / "changes.jsonl",
        [
            {"op": "upsert", **changed},
            {"op": "upsert", **docs[6]},  # unchanged: not embedded again
            {"op": "delete", "_id": "d8"},
            {"op": "upsert", "_id": "new", "title": "Fresh", "text": "Brand new document."},
            {"op": "delete", "_id": "new-gone"},
            {"op": "upsert", "_id": "new-gone", "title": "x", "text": "y"},
            {"op": "delete", "_id": "new-gone"},  # the last operation on an id wins
        ],
    )  # type: ignore[list-item]
    server.reset()
    result = build_index("dedupe", changes=changes, store=store)
    assert set(server.embedded) == {text_of(changed), "Fresh Brand new document."}
    assert (result.written, result.unchanged, result.deleted, result.count) == (2, 1, 1, 12)
    hits = search("dedupe", ["Fresh Brand new document."], k=1, store=store)
    assert hits[0][0].id == "new"
    assert "d8" not in {h.id for h in search("dedupe", [text_of(docs[8])], k=20, store=store)[0]}
    row = store.embedding_index("dedupe")
    index = open_index("embedded", row.location, "dedupe")  # type: ignore[union-attr]
    assert index.meta.updates[-1]["upserts"] == 3 and index.meta.updates[-1]["deletes"] == 1
    index.close()

    # Rebuilding from the (old) corpus embeds just the document the corpus now differs on.
    server.reset()
    rebuilt = build_index("dedupe", corpus=corpus, store=store)
    assert set(server.embedded) == {text_of(docs[3]), text_of(docs[8])}
    assert rebuilt.count == 13


def test_priority_ids_are_embedded_first(
    tmp_path: Path, store: Store, server: EmbeddingsServer
) -> None:
    docs = make_docs(30)
    corpus = write_jsonl(tmp_path / "corpus.jsonl", docs)
    priority = tmp_path / "top.txt"
    priority.write_text("d21\t900\nd4\t500\nnot-there\t400\nd13\t100\n")
    result = build_index(
        "prio", corpus=corpus, model=f"openai:emb@{server.base_url}", batch_size=3,
        priority=priority, store=store,
    )  # fmt: skip
    assert result.priority_missing == 1 and result.count == 30
    assert server.received[0].body["input"] == ["dimension probe"]
    first = server.received[1].body["input"]
    assert first == [text_of(docs[21]), text_of(docs[4]), text_of(docs[13])]
    second = server.received[2].body["input"]
    assert second == [text_of(docs[0]), text_of(docs[1]), text_of(docs[2])]


def test_rebuild_refuses_another_model_backend_or_location(tmp_path: Path, store: Store) -> None:
    corpus = write_jsonl(tmp_path / "corpus.jsonl", make_docs(5))
    build_index("fixed", corpus=corpus, model="hash:8", store=store)
    with pytest.raises(VectorIndexError, match="holds vectors of model hash:8, not hash:16"):
        build_index("fixed", corpus=corpus, model="hash:16", store=store)
    with pytest.raises(VectorIndexError, match="embedded backend, not pgvector"):
        build_index("fixed", corpus=corpus, backend="pgvector", store=store)
    with pytest.raises(VectorIndexError, match="is at"):
        build_index("fixed", corpus=corpus, location=str(tmp_path / "elsewhere"), store=store)
    with pytest.raises(EmbeddingModelError, match="needs a model"):
        build_index("other", corpus=corpus, store=store)
    with pytest.raises(VectorIndexError, match="no index 'other' to apply changes to"):
        build_index("other", changes=corpus, store=store)
    with pytest.raises(VectorIndexError, match="invalid index name"):
        build_index("../x", corpus=corpus, model="hash:8", store=store)


def test_a_corrupt_corpus_writes_nothing(tmp_path: Path, store: Store) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(
        b"".join(orjson.dumps(d) + b"\n" for d in make_docs(5)) + b'{"_id": "x", "text": 1}\n'
    )
    with pytest.raises(CorpusError, match=r"corpus\.jsonl:6: field 'text'"):
        build_index("bad", corpus=corpus, model="hash:8", store=store)
    assert store.embedding_index("bad") is None


def test_tfidf_state_is_saved_with_the_index(tmp_path: Path, store: Store) -> None:
    docs = make_docs(40)
    corpus = write_jsonl(tmp_path / "corpus.jsonl", docs)
    result = build_index("lexical", corpus=corpus, model="tfidf-svd:6", store=store)
    assert result.count == 40
    queries = ["notes about jazz and trains", text_of(docs[9])]
    before = embed_queries("lexical", queries, store=store)
    hits = search("lexical", queries, k=3, store=store)
    shared_cache().clear()  # as a new process would: the model comes back from the index
    after = embed_queries("lexical", queries, store=store)
    assert (before == after).all()
    assert search("lexical", queries, k=3, store=store) == hits
    assert hits[1][0].score == pytest.approx(1.0, abs=1e-5)
    # Resuming loads the saved fit instead of fitting again.
    again = build_index("lexical", corpus=corpus, model="tfidf-svd:6", store=store)
    assert again.embedded == 0 and again.unchanged == 40


def test_build_on_pgvector_matches_embedded(
    tmp_path: Path, store: Store, pgvector_url: str
) -> None:
    docs = make_docs(80)
    corpus = write_jsonl(tmp_path / "corpus.jsonl", docs)
    build_index("on-disk", corpus=corpus, model="hash:16", store=store, batch_size=32)
    pg = build_index(
        "in-pg", corpus=corpus, model="hash:16", backend="pgvector", location=pgvector_url,
        store=store, batch_size=32,
    )  # fmt: skip
    assert pg.count == 80
    row = store.embedding_index("in-pg")
    assert row is not None and row.backend == "pgvector" and "@" in row.location
    queries = [text_of(docs[i]) + " and more" for i in (1, 17, 33)]
    a = search("on-disk", queries, k=10, store=store)
    b = search("in-pg", queries, k=10, store=store)
    assert [[h.id for h in r] for r in a] == [[h.id for h in r] for r in b]
    again = build_index("in-pg", corpus=corpus, store=store)
    assert again.embedded == 0

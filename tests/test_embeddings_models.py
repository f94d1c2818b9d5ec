"""Embedding models: specs, hash, tfidf-svd state, the OpenAI wire format (real server), MiniLM."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from cutover.embeddings._hash_model import hash_vectors
from cutover.embeddings._tfidf import TfidfSvdModel
from cutover.embeddings.models import ModelOptions, create_model, parse_model_spec
from cutover.errors import (
    EmbeddingModelError,
    MissingKeyError,
    ProviderRequestError,
    ProviderServerError,
)
from cutover.testing import Fault, serve_in_thread
from cutover.testing.embeddings_server import EmbeddingsServer

TEXTS = [f"document number {i} about {['cats', 'dogs', 'tax', 'rain'][i % 4]}" for i in range(10)]


@pytest.fixture
def server() -> Iterator[EmbeddingsServer]:
    with serve_in_thread(EmbeddingsServer(dimensions=16)) as running:
        yield running


def fast(**kwargs: object) -> ModelOptions:
    return ModelOptions(**{"backoff_s": 0.01, "max_retries": 3, **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "kind", "model", "dims", "url"),
    [
        ("minilm", "minilm", "all-MiniLM-L6-v2", 384, None),
        ("openai:text-embedding-3-small", "openai", "text-embedding-3-small", None, None),
        ("openai:m@http://127.0.0.1:9/v1/", "openai", "m", None, "http://127.0.0.1:9/v1"),
        ("tfidf-svd:256", "tfidf-svd", "", 256, None),
        ("HASH:8", "hash", "", 8, None),
    ],
)
def test_specs(spec: str, kind: str, model: str, dims: int | None, url: str | None) -> None:
    parsed = parse_model_spec(spec)
    assert (parsed.kind, parsed.model, parsed.dimensions, parsed.base_url) == (
        kind,
        model,
        dims,
        url,
    )


@pytest.mark.parametrize(
    "spec", ["", "bert", "tfidf-svd", "tfidf-svd:0", "tfidf-svd:x", "openai:", "openai:m@ftp://x"]
)
def test_bad_specs(spec: str) -> None:
    with pytest.raises(EmbeddingModelError) as info:
        parse_model_spec(spec)
    assert info.value.field == "model"


def test_hash_model_is_deterministic_and_normalised() -> None:
    model = create_model("hash:8")
    a = model.embed(["x", "y", "x"])
    assert a.dtype == np.float32 and a.shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(a[0], a[2])
    assert model.identity == "hash:8" and model.normalised


def test_tfidf_state_round_trip_gives_the_same_vectors() -> None:
    corpus = [
        f"{w} {v} report {i}"
        for i, (w, v) in enumerate(zip(TEXTS * 4, TEXTS[::-1] * 4, strict=True))
    ]
    model = TfidfSvdModel(4, ModelOptions(fit_sample=1000))
    model.fit(iter(corpus))
    state = model.state()
    assert sorted(state) == ["components.npy", "idf.npy", "params.json", "vocabulary.json"]
    assert all(b"pickle" not in blob for blob in state.values())
    again = create_model("tfidf-svd:4", state=state)
    queries = ["cats and dogs", "tax report 3", "nothing known here zzz"]
    np.testing.assert_array_equal(model.embed(queries), again.embed(queries))
    assert model.identity == again.identity and model.identity.startswith("tfidf-svd:4:")
    unknown = again.embed(["zzz qqq"])
    assert not unknown.any()  # no known term: the zero vector
    refit = TfidfSvdModel(4, ModelOptions(fit_sample=1000))
    refit.fit(corpus)
    assert refit.identity == model.identity  # seeded: the same corpus fits the same state


def test_tfidf_refuses_a_corpus_too_small_and_a_broken_state() -> None:
    with pytest.raises(EmbeddingModelError, match="cannot fit tfidf-svd:64 on 3 documents"):
        TfidfSvdModel(64).fit(["alpha beta", "gamma delta", "epsilon zeta"])
    with pytest.raises(EmbeddingModelError, match="not fitted"):
        TfidfSvdModel(4).embed(["x"])
    with pytest.raises(EmbeddingModelError, match=r"lacks components\.npy"):
        create_model("tfidf-svd:4", state={"idf.npy": b""})


def test_openai_model_batches_requests_in_the_wire_format(server: EmbeddingsServer) -> None:
    model = create_model(f"openai:emb-small@{server.base_url}", fast(request_size=4))
    try:
        vectors = model.embed(TEXTS)
        assert vectors.shape == (10, 16) and vectors.dtype == np.float32
        np.testing.assert_allclose(vectors, hash_vectors(TEXTS, 16), atol=1e-6)
        assert server.requests_total == 3
        body = server.received[0].body
        assert body["model"] == "emb-small" and body["input"] == TEXTS[:4]
        assert model.dimensions == 16 and model.identity == "openai:emb-small"
        assert server.requests_total == 3  # the size came from the answers: no probe
    finally:
        model.close()


def test_openai_model_retries_429_5xx_resets_and_garbage(server: EmbeddingsServer) -> None:
    server.inject(
        Fault.status(429, retry_after=0.3),
        Fault.status(503),
        Fault.disconnect(),
        Fault.garbage(),
        Fault.bad_json_stream_chunk(),
    )
    model = create_model(f"openai:emb@{server.base_url}", fast(max_retries=6))
    try:
        started = time.perf_counter()
        vectors = model.embed(TEXTS[:3])
        elapsed = time.perf_counter() - started
    finally:
        model.close()
    np.testing.assert_allclose(vectors, hash_vectors(TEXTS[:3], 16), atol=1e-6)
    assert server.requests_total == 6
    assert elapsed >= 0.3  # Retry-After was honoured
    assert server.embedded == {t: 1 for t in TEXTS[:3]}


def test_openai_model_gives_up_clearly(server: EmbeddingsServer) -> None:
    server.inject(Fault.status(500), times=10)
    model = create_model(f"openai:emb@{server.base_url}", fast(max_retries=2))
    try:
        with pytest.raises(ProviderServerError, match=r"HTTP 500 .*\(after 3 attempts\)"):
            model.embed(TEXTS[:2])
        assert server.requests_total == 3
        server.reset()
        server.inject(Fault.status(400, message="input too long"))
        with pytest.raises(ProviderRequestError, match="input too long"):
            model.embed(TEXTS[:2])
        assert server.requests_total == 1  # a 400 is not retried
    finally:
        model.close()


def test_openai_model_limits_rate_and_concurrency() -> None:
    with serve_in_thread(EmbeddingsServer(dimensions=8, latency_s=0.1)) as server:
        model = create_model(
            f"openai:emb@{server.base_url}", fast(request_size=1, concurrency=4, max_rps=4.0)
        )
        try:
            started = time.perf_counter()
            model.embed(TEXTS[:8])
            elapsed = time.perf_counter() - started
        finally:
            model.close()
    # A burst of 4, then one request every 0.25 s: the last starts near 1.0 s.
    assert elapsed >= 0.9
    assert server.requests_total == 8


def test_openai_model_probes_its_size_and_sends_dimensions(server: EmbeddingsServer) -> None:
    model = create_model(f"openai:text-embedding-3-small@{server.base_url}", fast())
    try:
        assert model.dimensions == 1536
        assert server.requests_total == 1
    finally:
        model.close()
    shorter = create_model(f"openai:text-embedding-3-small@{server.base_url}", fast(dimensions=8))
    try:
        assert shorter.dimensions == 8 and shorter.identity == "openai:text-embedding-3-small/8"
        assert shorter.embed(["a"]).shape == (1, 8)
        assert server.last_request.body["dimensions"] == 8
    finally:
        shorter.close()


def test_openai_needs_a_key_only_for_the_official_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingKeyError, match="OPENAI_API_KEY"):
        create_model("openai:text-embedding-3-small")


def test_the_official_sdk_reads_the_local_server(server: EmbeddingsServer) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
    answer = client.embeddings.create(model="emb", input=["hello", "world"])
    got = np.array([d.embedding for d in answer.data], dtype=np.float32)
    np.testing.assert_allclose(got, hash_vectors(["hello", "world"], 16), atol=1e-6)
    assert answer.usage.prompt_tokens == 2
    short = client.embeddings.create(model="emb", input="hello", dimensions=4)
    assert len(short.data[0].embedding) == 4
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="emb", input=[])


def test_minilm_embeds_locally() -> None:
    model = create_model("minilm")
    vectors = model.embed(
        ["The cat sits on the mat.", "A cat is sitting on a rug.", "Quarterly revenue grew 8%."]
    )
    assert vectors.shape == (3, 384) and model.dimensions == 384
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert model.identity == "minilm:all-MiniLM-L6-v2"

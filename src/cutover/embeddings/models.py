"""Embedding models behind one Protocol, named on the command line.

=====================================  ==========================================
``minilm``                             the local all-MiniLM-L6-v2 (384 dimensions,
                                       the ``semantic`` extra)
``openai:MODEL[@BASE_URL]``            any OpenAI-compatible ``POST /v1/embeddings``
                                       (key from ``OPENAI_API_KEY``)
``tfidf-svd:DIM``                      TF-IDF + truncated SVD fitted on the corpus
                                       (the ``embeddings`` extra); a cheap baseline
``hash:DIM``                           deterministic vectors from a hash of the text;
                                       no meaning at all, for tests and rehearsals
=====================================  ==========================================

Every model returns float32 rows, L2-normalised (``normalised`` is true for
all of them), so the inner product of two vectors is their cosine similarity.
A model's ``identity`` is what two vectors must share to be comparable: the
model, its size and, for ``tfidf-svd``, the fitted state.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable

import numpy as np
import numpy.typing as npt

from cutover.errors import EmbeddingModelError

Vectors = npt.NDArray[np.float32]
"""An ``(n, dimensions)`` float32 matrix, one row per text."""

MODEL_KINDS = ("minilm", "openai", "tfidf-svd", "hash")
_SPEC_HINT = "minilm, openai:MODEL[@BASE_URL], tfidf-svd:DIM or hash:DIM"
_DIM = re.compile(r"[1-9][0-9]{0,4}")
MAX_DIMENSIONS = 16_000


@runtime_checkable
class EmbeddingModel(Protocol):
    """Turns texts into vectors."""

    @property
    def spec(self) -> str:
        """The model as named on the command line (``minilm``, ``tfidf-svd:256``...)."""
        ...

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def identity(self) -> str:
        """What two vectors must share to be comparable."""
        ...

    @property
    def dimensions(self) -> int: ...

    @property
    def normalised(self) -> bool: ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One float32 row per text, in order."""
        ...

    def close(self) -> None:
        """Release sessions and threads (the model may not be used afterwards)."""
        ...


@runtime_checkable
class FittedModel(EmbeddingModel, Protocol):
    """A model fitted on the corpus first; its state is saved with the index."""

    @property
    def fitted(self) -> bool: ...

    def fit(self, texts: Iterable[str]) -> None:
        """Fit on a stream of texts (read once)."""
        ...

    def state(self) -> dict[str, bytes]:
        """The fitted state as named blobs (JSON and ``.npy``, never pickles)."""
        ...


@dataclass(frozen=True, slots=True)
class ModelOptions:
    """How a model is run (not part of its identity, except ``dimensions``)."""

    request_size: int = 64
    """openai: texts per request."""
    concurrency: int = 4
    """openai: requests in flight."""
    max_rps: float | None = None
    """openai: requests per second (None: no limit)."""
    timeout_s: float = 60.0
    max_retries: int = 5
    """openai: retries of a request on 429, 5xx, timeouts, resets and malformed bodies."""
    backoff_s: float = 0.5
    """openai: the first retry's delay (doubling, with jitter) when there is no Retry-After."""
    api_key_env: str = "OPENAI_API_KEY"
    dimensions: int | None = None
    """openai: the ``dimensions`` request parameter (models that support it)."""
    encode_batch_size: int = 64
    """minilm: texts per forward pass."""
    fit_sample: int = 50_000
    """tfidf-svd: at most this many documents (a seeded reservoir sample) fit the model."""
    vocabulary_size: int = 50_000
    """tfidf-svd: the most frequent terms kept."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A parsed model spec."""

    kind: str
    model: str
    """openai: the model name; minilm: ``all-MiniLM-L6-v2``; others: empty."""
    dimensions: int | None = None
    base_url: str | None = None

    @property
    def spec(self) -> str:
        if self.kind == "openai":
            return f"openai:{self.model}" + (f"@{self.base_url}" if self.base_url else "")
        if self.kind in ("tfidf-svd", "hash"):
            return f"{self.kind}:{self.dimensions}"
        return self.kind


def parse_model_spec(spec: str) -> ModelSpec:
    """Parse ``minilm``, ``openai:MODEL[@BASE_URL]``, ``tfidf-svd:DIM`` or ``hash:DIM``."""
    text = spec.strip() if isinstance(spec, str) else ""
    kind, sep, rest = text.partition(":")
    kind = kind.lower()
    if kind == "minilm" and not sep:
        return ModelSpec("minilm", "all-MiniLM-L6-v2", 384)
    if kind == "openai" and sep:
        model, at, base_url = rest.partition("@")
        model = model.strip()
        base_url = base_url.strip()
        if not model or (at and not base_url.startswith(("http://", "https://"))):
            raise EmbeddingModelError(
                f"invalid model {spec!r}",
                field="model",
                hint="openai:MODEL or openai:MODEL@http://host:port/v1",
            )
        return ModelSpec("openai", model, None, base_url.rstrip("/") or None)
    if kind in ("tfidf-svd", "hash") and sep:
        if _DIM.fullmatch(rest.strip()) is None or int(rest) > MAX_DIMENSIONS:
            raise EmbeddingModelError(
                f"invalid dimensions in {spec!r}",
                field="model",
                hint=f"{kind}:DIM with DIM a whole number from 1 to {MAX_DIMENSIONS}",
            )
        return ModelSpec(kind, "", int(rest))
    raise EmbeddingModelError(f"unknown embedding model {spec!r}", field="model", hint=_SPEC_HINT)


def create_model(
    spec: str,
    options: ModelOptions | None = None,
    *,
    state: Mapping[str, bytes] | None = None,
) -> EmbeddingModel:
    """The model named by ``spec``; a fitted model takes its saved ``state``."""
    parsed = parse_model_spec(spec)
    opts = options or ModelOptions()
    if parsed.kind == "minilm":
        from cutover.embeddings._minilm import MiniLMModel

        return MiniLMModel(opts)
    if parsed.kind == "openai":
        from cutover.embeddings._openai import OpenAIEmbeddingModel

        return OpenAIEmbeddingModel(parsed.model, parsed.base_url, opts)
    assert parsed.dimensions is not None
    if parsed.kind == "tfidf-svd":
        from cutover.embeddings._tfidf import TfidfSvdModel

        return TfidfSvdModel(parsed.dimensions, opts, state=state)
    from cutover.embeddings._hash_model import HashModel

    return HashModel(parsed.dimensions)


def options_for_index(
    identity: str, dimensions: int, options: ModelOptions | None = None
) -> ModelOptions:
    """``options`` for re-creating an index's model: an ``openai:`` index built with
    ``dimensions`` (its identity ends in ``/DIM``) gets them back."""
    opts = options or ModelOptions()
    if (
        identity.startswith("openai:")
        and identity.endswith(f"/{dimensions}")
        and opts.dimensions is None
    ):
        opts = dataclasses.replace(opts, dimensions=dimensions)
    return opts


def as_fitted(model: EmbeddingModel) -> FittedModel | None:
    """``model`` when it is fitted on a corpus (it has ``fit`` and ``state``), else None.

    Looks at the class, so no property of the instance is evaluated.
    """
    cls = type(model)
    if callable(getattr(cls, "fit", None)) and callable(getattr(cls, "state", None)):
        return cast(FittedModel, model)
    return None


def l2_normalise(vectors: npt.NDArray[np.floating]) -> Vectors:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    out = np.asarray(vectors, dtype=np.float32)
    if out.ndim != 2:
        out = out.reshape(len(out), -1)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.maximum(norms, np.float32(1e-12), out=norms)
    return np.ascontiguousarray(out / norms, dtype=np.float32)


__all__ = [
    "MODEL_KINDS",
    "EmbeddingModel",
    "FittedModel",
    "ModelOptions",
    "ModelSpec",
    "Vectors",
    "as_fitted",
    "create_model",
    "l2_normalise",
    "options_for_index",
    "parse_model_spec",
]

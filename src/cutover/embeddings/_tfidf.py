"""``tfidf-svd:DIM``: TF-IDF then truncated SVD, fitted on the corpus.

A cheap lexical baseline (scikit-learn, the ``embeddings`` extra). Fitting
reads the texts once and keeps a seeded reservoir sample of at most
``ModelOptions.fit_sample`` of them, so memory does not grow with the corpus.
The fitted state is saved with the index as plain data, never a pickle:
``vocabulary.json`` (terms in column order), ``idf.npy``, ``components.npy``
(``DIM x terms`` float32) and ``params.json``; its sha256 is part of the
model's identity, so vectors of two different fits never mix in one index.
"""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from cutover.embeddings.models import ModelOptions, Vectors, l2_normalise
from cutover.errors import EmbeddingModelError

_PARAMS: dict[str, Any] = {"sublinear_tf": True, "lowercase": True, "ngram_range": [1, 1]}
_SEED = 20240601
STATE_FILES = ("components.npy", "idf.npy", "params.json", "vocabulary.json")


def _sklearn() -> Any:
    try:
        import sklearn
    except ImportError as exc:
        raise EmbeddingModelError(
            f"the tfidf-svd model needs the 'embeddings' extra: {exc}",
            field="model",
            hint="pip install 'cutover[embeddings]'",
        ) from None
    return sklearn


def _npy(array: npt.NDArray[Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _load_npy(data: bytes) -> npt.NDArray[Any]:
    array: npt.NDArray[Any] = np.load(io.BytesIO(data), allow_pickle=False)
    return array


def state_digest(state: Mapping[str, bytes]) -> str:
    """sha256 over the state's blobs, by name."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode() + b"\0" + len(state[name]).to_bytes(8, "little"))
        digest.update(state[name])
    return digest.hexdigest()


class Reservoir:
    """A uniform sample of at most ``size`` texts from a stream (algorithm R), seeded."""

    def __init__(self, size: int, seed: int = _SEED) -> None:
        self.size = max(1, size)
        self.items: list[str] = []
        self.seen = 0
        self._rng = random.Random(seed)

    def add(self, text: str) -> None:
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(text)
            return
        slot = self._rng.randrange(self.seen)
        if slot < self.size:
            self.items[slot] = text


def reservoir_sample(texts: Iterable[str], size: int, seed: int = _SEED) -> list[str]:
    """At most ``size`` texts, each equally likely, read once."""
    reservoir = Reservoir(size, seed)
    for text in texts:
        reservoir.add(text)
    return reservoir.items


class TfidfSvdModel:
    """The ``tfidf-svd:DIM`` model."""

    normalised = True

    def __init__(
        self,
        dimensions: int,
        options: ModelOptions | None = None,
        *,
        state: Mapping[str, bytes] | None = None,
    ) -> None:
        self._dimensions = dimensions
        self._options = options or ModelOptions()
        self._vectorizer: Any = None
        self._components: Vectors | None = None
        self._state: dict[str, bytes] | None = None
        self._digest: str | None = None
        self.version = f"scikit-learn {_sklearn().__version__}"
        if state is not None:
            self._load(state)

    @property
    def spec(self) -> str:
        return f"tfidf-svd:{self._dimensions}"

    @property
    def name(self) -> str:
        return self.spec

    @property
    def dimensions(self) -> int:
        return self._dimensions

    @property
    def fitted(self) -> bool:
        return self._components is not None

    @property
    def identity(self) -> str:
        if self._digest is None:
            raise EmbeddingModelError(f"{self.spec} is not fitted yet", field="model")
        return f"{self.spec}:{self._digest[:16]}"

    def fit(self, texts: Iterable[str]) -> None:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        sample = reservoir_sample(texts, self._options.fit_sample)
        vectorizer = TfidfVectorizer(
            max_features=self._options.vocabulary_size,
            dtype=np.float32,
            sublinear_tf=True,
            lowercase=True,
        )
        try:
            matrix = vectorizer.fit_transform(sample)
        except ValueError as exc:  # an empty vocabulary
            raise EmbeddingModelError(
                f"cannot fit {self.spec}: {exc}", field="model", hint="the corpus has no words"
            ) from None
        docs, terms = matrix.shape
        if terms <= self._dimensions or docs <= self._dimensions:
            raise EmbeddingModelError(
                f"cannot fit {self.spec} on {docs} documents with {terms} distinct terms",
                field="model",
                hint=f"DIM must be below both; try tfidf-svd:{max(1, min(docs, terms) // 2)}",
            )
        svd = TruncatedSVD(n_components=self._dimensions, random_state=0, algorithm="randomized")
        svd.fit(matrix)
        vocabulary = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
        state = {
            "components.npy": _npy(np.ascontiguousarray(svd.components_, dtype=np.float32)),
            "idf.npy": _npy(np.asarray(vectorizer.idf_, dtype=np.float64)),
            "params.json": orjson.dumps({**_PARAMS, "fit_docs": docs}),
            "vocabulary.json": orjson.dumps(vocabulary),
        }
        self._load(state)

    def _load(self, state: Mapping[str, bytes]) -> None:
        _sklearn()
        from sklearn.feature_extraction.text import TfidfVectorizer

        missing = [name for name in STATE_FILES if name not in state]
        if missing:
            raise EmbeddingModelError(
                f"the saved {self.spec} state lacks {', '.join(missing)}", field="model"
            )
        try:
            vocabulary = orjson.loads(state["vocabulary.json"])
            idf = _load_npy(state["idf.npy"])
            components = _load_npy(state["components.npy"]).astype(np.float32, copy=False)
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise EmbeddingModelError(
                f"the saved {self.spec} state is corrupt: {exc}", field="model"
            ) from None
        if components.shape != (self._dimensions, len(vocabulary)) or idf.shape != (
            len(vocabulary),
        ):
            raise EmbeddingModelError(
                f"the saved {self.spec} state has components {components.shape} for "
                f"{len(vocabulary)} terms",
                field="model",
            )
        vectorizer = TfidfVectorizer(
            vocabulary={term: i for i, term in enumerate(vocabulary)},
            dtype=np.float32,
            sublinear_tf=True,
            lowercase=True,
        )
        vectorizer.idf_ = idf
        self._vectorizer = vectorizer
        self._components = np.ascontiguousarray(components.T)
        self._state = dict(state)
        self._digest = state_digest(state)

    def state(self) -> dict[str, bytes]:
        if self._state is None:
            raise EmbeddingModelError(f"{self.spec} is not fitted yet", field="model")
        return dict(self._state)

    def embed(self, texts: Sequence[str]) -> Vectors:
        if self._components is None:
            raise EmbeddingModelError(f"{self.spec} is not fitted yet", field="model")
        if not texts:
            return np.zeros((0, self._dimensions), dtype=np.float32)
        matrix = self._vectorizer.transform(list(texts))
        return l2_normalise(np.asarray(matrix @ self._components))

    def close(self) -> None:
        return None


__all__ = ["STATE_FILES", "Reservoir", "TfidfSvdModel", "reservoir_sample", "state_digest"]

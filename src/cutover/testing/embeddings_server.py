"""A local server speaking the OpenAI embeddings wire format.

Serves ``POST /v1/embeddings`` (plus everything :class:`OpenAIServer` serves)
with deterministic unit vectors: the vector of a text is the ``hash:DIM``
model's (:func:`cutover.embeddings._hash_model.hash_vector`), so an index built
through this server equals one built with ``hash:DIM``. ``input`` may be a
string, a list of strings or token arrays; ``encoding_format`` ``float`` or
``base64``; ``dimensions`` shortens (and renormalises) the vectors like the
text-embedding-3 models do. The official ``openai`` SDK can use it.

Scripted faults work as on the other servers: ``Fault.status(429,
retry_after=1)``, ``Fault.status(500)``, ``Fault.disconnect()`` (a reset),
``Fault.garbage()`` and ``Fault.bad_json_stream_chunk()`` (a malformed body),
``Fault.hang()``, ``Fault.delay(s)``. ``embedded`` counts each text the server
answered for (a request that met a fault embeds nothing)::

    python -m cutover.testing.embeddings_server --port 18082
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from aiohttp import web

from cutover.embeddings._hash_model import hash_vectors
from cutover.testing._cli import run_cli
from cutover.testing.openai_server import OpenAIServer

DEFAULT_DIMENSIONS = 32
"""The size of the vectors of a model the server has no size for."""

KNOWN_DIMENSIONS: Mapping[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


def _bad_input(value: Any) -> bool:
    if isinstance(value, str):
        return not value
    if not isinstance(value, list) or not value:
        return True
    if all(isinstance(v, int) for v in value):
        return False
    for item in value:
        if isinstance(item, str):
            if not item:
                return True
        elif not (isinstance(item, list) and item and all(isinstance(t, int) for t in item)):
            return True
    return False


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if all(isinstance(v, int) for v in value):
        return [" ".join(map(str, value))]
    return [item if isinstance(item, str) else " ".join(map(str, item)) for item in value]


class EmbeddingsServer(OpenAIServer):
    """``POST /v1/embeddings`` on 127.0.0.1; ``base_url`` is ``http://127.0.0.1:PORT/v1``."""

    dialect: ClassVar[str] = "openai"

    def __init__(
        self,
        *,
        dimensions: int = DEFAULT_DIMENSIONS,
        model_dimensions: Mapping[str, int] | None = None,
        max_inputs: int = 2048,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dimensions = dimensions
        self.model_dimensions = {**KNOWN_DIMENSIONS, **(model_dimensions or {})}
        self.max_inputs = max_inputs
        self.embedded: Counter[str] = Counter()
        """How many times each text was embedded (answered without a fault)."""
        self.inputs_total = 0

    def add_routes(self, app: web.Application) -> None:
        super().add_routes(app)
        app.router.add_post("/v1/embeddings", self.handle_embeddings)

    def reset(self) -> None:
        super().reset()
        self.embedded.clear()
        self.inputs_total = 0

    def native_dimensions(self, model: str) -> int:
        return self.model_dimensions.get(model, self.dimensions)

    def validate_embeddings(self, body: Mapping[str, Any]) -> str | None:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return "you must provide a model parameter"
        value: Any = body.get("input")
        if _bad_input(value):
            return (
                "'input' must be a non-empty string, a non-empty array of non-empty "
                "strings, or token arrays"
            )
        count = 1 if isinstance(value, str) else len(value)
        if count > self.max_inputs:
            return f"'input' holds {count} items; at most {self.max_inputs} are allowed"
        if body.get("encoding_format", "float") not in ("float", "base64"):
            return "'encoding_format' must be 'float' or 'base64'"
        size = body.get("dimensions")
        if size is not None and (
            not isinstance(size, int)
            or isinstance(size, bool)
            or not 1 <= size <= self.native_dimensions(model)
        ):
            return f"'dimensions' must be an integer from 1 to {self.native_dimensions(model)}"
        return None

    async def handle_embeddings(self, request: web.Request) -> web.StreamResponse:
        admitted = await self.admit(request, self.validate_embeddings)
        if isinstance(admitted, web.StreamResponse):
            return admitted
        body, model, fault, latency = admitted
        assert model is not None
        texts = _texts(body["input"])
        payload = self.encode_embeddings(model, texts, body)
        if fault is None or fault.kind == "delay":
            self.embedded.update(texts)
            self.inputs_total += len(texts)
        return await self._send_json(request, payload, latency, fault)

    def encode_embeddings(
        self, model: str, texts: Sequence[str], body: Mapping[str, Any]
    ) -> dict[str, Any]:
        vectors = hash_vectors(texts, self.native_dimensions(model))
        size = body.get("dimensions")
        if isinstance(size, int) and size < vectors.shape[1]:
            vectors = vectors[:, :size]
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, np.float32(1e-12))
        as_base64 = body.get("encoding_format") == "base64"
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()
                if as_base64
                else [float(x) for x in v],
            }
            for i, v in enumerate(vectors)
        ]
        tokens = sum(max(1, len(t.split())) for t in texts)
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(
        EmbeddingsServer,
        argv,
        prog="python -m cutover.testing.embeddings_server",
        default_port=18082,
    )


__all__ = ["DEFAULT_DIMENSIONS", "KNOWN_DIMENSIONS", "EmbeddingsServer", "main"]


if __name__ == "__main__":
    raise SystemExit(main())

"""The records the embeddings package exchanges: hits, index metadata, names, hashes."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple

from cutover.errors import VectorIndexError

BACKENDS = ("embedded", "pgvector")
"""Where an index keeps its vectors."""

INDEX_STATUSES = ("building", "complete", "retired")
"""``building`` until a build finishes; ``retired`` once its vectors are deleted."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_NAME_HINT = (
    "letters, digits, '.', '_' and '-', at most 63 characters, starting with a letter or digit"
)


class Hit(NamedTuple):
    """One search result: a document id and its cosine similarity to the query."""

    id: str
    score: float


class CorpusSnapshot(NamedTuple):
    """Which corpus an index was built from: its path, content hash and size."""

    path: str
    sha256: str
    docs: int


def check_name(name: str, what: str = "index") -> str:
    """``name`` when it is a valid index or alias name, else a VectorIndexError."""
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise VectorIndexError(f"invalid {what} name {name!r}", field=what, hint=_NAME_HINT)
    return name


def content_hash(text: str) -> str:
    """The hash that says whether a document changed: sha256 of the embedded text (128 bits)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def document_text(title: str, text: str) -> str:
    """What is embedded for a document: ``title text`` (the BEIR convention), or the text."""
    title = title.strip()
    return f"{title} {text}" if title else text


@dataclass(frozen=True, slots=True)
class IndexMeta:
    """What an index says about itself; the store's registry keeps a copy."""

    name: str
    backend: str
    model_spec: str
    """The model as named on the command line, e.g. ``minilm`` or ``tfidf-svd:256``."""
    model_name: str
    model_version: str
    model_identity: str
    """What two vectors must share to be comparable (model, size, fitted state)."""
    dimensions: int
    normalised: bool
    created_at: datetime
    status: str = "building"
    built_at: datetime | None = None
    corpus: CorpusSnapshot | None = None
    updates: tuple[dict[str, Any], ...] = field(default=())
    """Changes files applied after the build: path, sha256, upserts, deletes, at."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": self.backend,
            "model_spec": self.model_spec,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "model_identity": self.model_identity,
            "dimensions": self.dimensions,
            "normalised": self.normalised,
            "created_at": self.created_at.isoformat(),
            "status": self.status,
            "built_at": self.built_at.isoformat() if self.built_at else None,
            "corpus": self.corpus._asdict() if self.corpus else None,
            "updates": list(self.updates),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexMeta:
        corpus = data.get("corpus")
        built = data.get("built_at")
        return cls(
            name=str(data["name"]),
            backend=str(data["backend"]),
            model_spec=str(data["model_spec"]),
            model_name=str(data["model_name"]),
            model_version=str(data["model_version"]),
            model_identity=str(data["model_identity"]),
            dimensions=int(data["dimensions"]),
            normalised=bool(data["normalised"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            status=str(data.get("status", "building")),
            built_at=datetime.fromisoformat(built) if built else None,
            corpus=CorpusSnapshot(**corpus) if corpus else None,
            updates=tuple(data.get("updates") or ()),
        )

    def evolve(self, **changes: Any) -> IndexMeta:
        return replace(self, **changes)


__all__ = [
    "BACKENDS",
    "INDEX_STATUSES",
    "CorpusSnapshot",
    "Hit",
    "IndexMeta",
    "check_name",
    "content_hash",
    "document_text",
]

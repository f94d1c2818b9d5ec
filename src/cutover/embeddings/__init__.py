"""Embedding migration: models, indexes, resumable builds, aliases, search.

Build an index per model, compare them, switch an alias, keep the old one
warm for a rollback, retire it::

    from cutover.embeddings import build_index, search
    from cutover.embeddings import registry
    from cutover.store import open_store

    build_index("docs-minilm", corpus="corpus.jsonl", model="minilm")
    build_index("docs-oai", corpus="corpus.jsonl", model="openai:text-embedding-3-small")
    with open_store() as store:
        registry.set_alias(store, "docs", "docs-oai", actor="ana")
    hits = search("docs", ["how do refunds work?"], k=10)   # [[Hit(id, score), ...]]

Heavy dependencies (numpy aside: scikit-learn, sentence-transformers, psycopg)
are imported only by the model or backend that needs them; this package
itself imports its submodules on first use.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

from cutover._lazy import lazy_exports

if TYPE_CHECKING:
    from cutover.embeddings._types import CorpusSnapshot, Hit, IndexMeta
    from cutover.embeddings.build import BuildResult, build_index
    from cutover.embeddings.corpus import (
        Change,
        Document,
        check_corpus,
        iter_changes,
        iter_corpus,
        load_priority,
        load_qrels,
        load_queries,
    )
    from cutover.embeddings.index import VectorIndex, create_index, open_index
    from cutover.embeddings.models import (
        EmbeddingModel,
        FittedModel,
        ModelOptions,
        create_model,
        parse_model_spec,
    )
    from cutover.embeddings.query import Searcher, embed_queries, search, search_vectors
    from cutover.embeddings.registry import (
        alias_info,
        retire,
        rollback_alias,
        set_alias,
    )

_EXPORTS = MappingProxyType(
    {
        "BuildResult": "cutover.embeddings.build",
        "Change": "cutover.embeddings.corpus",
        "CorpusSnapshot": "cutover.embeddings._types",
        "Document": "cutover.embeddings.corpus",
        "EmbeddingModel": "cutover.embeddings.models",
        "FittedModel": "cutover.embeddings.models",
        "Hit": "cutover.embeddings._types",
        "IndexMeta": "cutover.embeddings._types",
        "ModelOptions": "cutover.embeddings.models",
        "Searcher": "cutover.embeddings.query",
        "VectorIndex": "cutover.embeddings.index",
        "alias_info": "cutover.embeddings.registry",
        "build_index": "cutover.embeddings.build",
        "check_corpus": "cutover.embeddings.corpus",
        "create_index": "cutover.embeddings.index",
        "create_model": "cutover.embeddings.models",
        "embed_queries": "cutover.embeddings.query",
        "iter_changes": "cutover.embeddings.corpus",
        "iter_corpus": "cutover.embeddings.corpus",
        "load_priority": "cutover.embeddings.corpus",
        "load_qrels": "cutover.embeddings.corpus",
        "load_queries": "cutover.embeddings.corpus",
        "open_index": "cutover.embeddings.index",
        "parse_model_spec": "cutover.embeddings.models",
        "retire": "cutover.embeddings.registry",
        "rollback_alias": "cutover.embeddings.registry",
        "search": "cutover.embeddings.query",
        "search_vectors": "cutover.embeddings.query",
        "set_alias": "cutover.embeddings.registry",
    }
)


__all__ = [
    "BuildResult",
    "Change",
    "CorpusSnapshot",
    "Document",
    "EmbeddingModel",
    "FittedModel",
    "Hit",
    "IndexMeta",
    "ModelOptions",
    "Searcher",
    "VectorIndex",
    "alias_info",
    "build_index",
    "check_corpus",
    "create_index",
    "create_model",
    "embed_queries",
    "iter_changes",
    "iter_corpus",
    "load_priority",
    "load_qrels",
    "load_queries",
    "open_index",
    "parse_model_spec",
    "retire",
    "rollback_alias",
    "search",
    "search_vectors",
    "set_alias",
]

__getattr__, __dir__ = lazy_exports("cutover.embeddings", _EXPORTS, __all__)

"""Building an index: streamed, batched, resumable, deduplicated.

:func:`build_index` makes two passes over a corpus:

1. **check**: every line validated, duplicate ids refused, the file hashed
   (the corpus snapshot), the byte offsets of the priority ids noted, and, for
   a model fitted on the corpus (``tfidf-svd``), a bounded sample kept to fit
   it. The index is then created with the fitted state.
2. **embed**: documents in batches of ``batch_size``: the priority ids first
   (most retrieved first), then the rest in file order. For each batch the
   index says which ids it already holds with the same content hash; those
   are skipped, identical texts are embedded once, and the batch is written
   in one durable transaction.

So a rerun after a crash, a Ctrl-C or a model that failed for good
(:class:`~cutover.errors.BuildAbortedError`) embeds only what was not
committed, and a rebuild from an updated corpus embeds only changed
documents. A changes file (see :mod:`cutover.embeddings.corpus`) applies
upserts and deletes to a built index the same way, batch by batch.

Memory depends on the batch size, not on the corpus, apart from 24 bytes
per document for the duplicate check, the priority offsets, and the fitting
sample (at most ``ModelOptions.fit_sample`` texts).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from cutover.embeddings._types import (
    BACKENDS,
    IndexMeta,
    check_name,
    content_hash,
    document_text,
)
from cutover.embeddings.corpus import (
    Change,
    CorpusCheck,
    Document,
    check_corpus,
    file_sha256,
    iter_changes,
    iter_corpus,
    load_priority,
    read_documents_at,
)
from cutover.embeddings.index import VectorIndex, create_index, open_index
from cutover.embeddings.models import (
    EmbeddingModel,
    ModelOptions,
    as_fitted,
    create_model,
    options_for_index,
    parse_model_spec,
)
from cutover.embeddings.registry import default_location, registry_location, store_scope
from cutover.errors import (
    BuildAbortedError,
    EmbeddingModelError,
    InputError,
    ProviderError,
    VectorIndexError,
)
from cutover.store._schema import utcnow

if TYPE_CHECKING:
    from cutover.store import Store
    from cutover.store._embeddings import EmbeddingIndexRow

DEFAULT_BATCH_SIZE = 256

ProgressFn = Callable[[str, int, int | None], None]
"""``progress(phase, done, total)``; phases: checking, fitting, embedding, changes."""

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What a build did."""

    index: str
    backend: str
    location: str
    model: str
    status: str
    count: int
    """Documents in the index at the end."""
    documents: int = 0
    """Corpus documents read (each once)."""
    written: int = 0
    """Documents written (new or changed)."""
    unchanged: int = 0
    """Documents skipped: already in the index with the same content."""
    embedded: int = 0
    """Texts sent to the model (identical texts in a batch count once)."""
    duplicates: int = 0
    """Documents whose text another document of the same batch had."""
    deleted: int = 0
    batches: int = 0
    """Batches written."""
    priority_missing: int = 0
    """Priority ids not in the corpus."""
    seconds: float = 0.0


@dataclass(slots=True)
class _Counts:
    documents: int = 0
    written: int = 0
    unchanged: int = 0
    embedded: int = 0
    duplicates: int = 0
    deleted: int = 0
    batches: int = 0
    priority_missing: int = 0
    upserts: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def _batches(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


class _Builder:
    """One build: the index, the model, the counters."""

    def __init__(
        self,
        name: str,
        index: VectorIndex,
        model: EmbeddingModel,
        batch_size: int,
        progress: ProgressFn | None,
    ) -> None:
        self.name = name
        self.index = index
        self.model = model
        self.batch_size = batch_size
        self.progress = progress
        self.counts = _Counts()

    def embed_batch(self, docs: list[Document]) -> None:
        """Write the documents of one batch that the index lacks or holds with other content."""
        texts = [document_text(d.title, d.text) for d in docs]
        hashes = [content_hash(t) for t in texts]
        known = self.index.known([d.id for d in docs])
        todo = [i for i, d in enumerate(docs) if known.get(d.id) != hashes[i]]
        self.counts.unchanged += len(docs) - len(todo)
        if not todo:
            return
        unique: dict[str, str] = {}
        for i in todo:
            unique.setdefault(hashes[i], texts[i])
        try:
            vectors = self.model.embed(list(unique.values()))
        except ProviderError as exc:
            raise BuildAbortedError(
                f"index '{self.name}': the model failed for good: {exc}. "
                f"{self.counts.written} document(s) were written by this run and every "
                "committed batch is kept; run the same command again to resume",
                run_id=self.name,
                recorded=self.counts.written,
            ) from exc
        position = {h: i for i, h in enumerate(unique)}
        rows = vectors[[position[hashes[i]] for i in todo]]
        self.index.upsert(
            [docs[i].id for i in todo],
            [hashes[i] for i in todo],
            rows,
            model_identity=self.model.identity,
        )
        self.counts.embedded += len(unique)
        self.counts.duplicates += len(todo) - len(unique)
        self.counts.written += len(todo)
        self.counts.batches += 1

    def embed_corpus(self, corpus: Path, check: CorpusCheck, ranks: dict[str, int]) -> None:
        total = check.snapshot.docs
        first = sorted(check.offsets, key=ranks.__getitem__)
        self.counts.priority_missing = len(ranks) - len(first)
        ordered = read_documents_at(corpus, (check.offsets[i] for i in first))
        rest = (d for d in iter_corpus(corpus) if d.id not in check.offsets)
        done = 0
        for source in (ordered, rest):
            for batch in _batches(source, self.batch_size):
                self.embed_batch(batch)
                done += len(batch)
                self.counts.documents = done
                if self.progress is not None:
                    self.progress("embedding", done, total)

    def apply_changes(self, changes: Path) -> None:
        done = 0
        for batch in _batches(iter_changes(changes), self.batch_size):
            last: dict[str, Change] = {}
            for change in batch:
                last.pop(change.id, None)
                last[change.id] = change
            deletes = [c.id for c in last.values() if c.op == "delete"]
            upserts = [c.document for c in last.values() if c.document is not None]
            if deletes:
                self.counts.deleted += self.index.delete(deletes)
            if upserts:
                self.embed_batch(upserts)
                self.counts.upserts += len(upserts)
            done += len(batch)
            if self.progress is not None:
                self.progress("changes", done, None)


def _check_existing(
    row: EmbeddingIndexRow, backend: str | None, model: str | None, location: str | None
) -> None:
    if row.status == "retired":
        raise VectorIndexError(
            f"index '{row.name}' is retired", field="index", hint="build under a new name"
        )
    if backend is not None and backend != row.backend:
        raise VectorIndexError(
            f"index '{row.name}' is on the {row.backend} backend, not {backend}", field="backend"
        )
    if location is not None and registry_location(row.backend, location) != row.location:
        raise VectorIndexError(
            f"index '{row.name}' is at {row.location}, not {registry_location(row.backend, location)}",
            field="location",
        )
    if model is not None and parse_model_spec(model).spec != row.model_spec:
        raise VectorIndexError(
            f"index '{row.name}' holds vectors of model {row.model_spec}, not "
            f"{parse_model_spec(model).spec}",
            field="model",
            hint="build another index for the new model and switch an alias to it",
        )


def build_index(
    name: str,
    *,
    corpus: str | Path | None = None,
    model: str | EmbeddingModel | None = None,
    backend: str | None = None,
    location: str | None = None,
    changes: str | Path | None = None,
    priority: str | Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    model_options: ModelOptions | None = None,
    store: Store | None = None,
    store_url: str | None = None,
    progress: ProgressFn | None = None,
) -> BuildResult:
    """Build (or resume, or update) the index ``name``; see the module docs.

    A new index needs ``corpus`` and ``model`` (a spec such as ``minilm``, or a
    model object); ``backend`` defaults to ``embedded`` and ``location`` to
    ``<CUTOVER_HOME>/indexes/<name>``. An existing index keeps its backend,
    location and model (naming others is refused). ``changes`` is applied
    after the corpus, or alone to a built index.
    """
    started = time.perf_counter()
    check_name(name)
    if batch_size < 1:
        raise InputError("must be at least 1", field="batch_size")
    if corpus is None and changes is None:
        raise InputError("nothing to do: give a corpus, a changes file or both", field="corpus")
    if backend is not None and backend not in BACKENDS:
        raise VectorIndexError(
            f"unknown backend {backend!r}", field="backend", hint=" or ".join(BACKENDS)
        )
    spec = model.spec if model is not None and not isinstance(model, str) else model
    with store_scope(store, store_url) as st:
        row = st.embedding_index(name)
        if row is not None:
            _check_existing(row, backend, spec, location)
            backend, target, spec = row.backend, row.location, row.model_spec
            model_options = options_for_index(row.model_identity, row.dimensions, model_options)
        else:
            if corpus is None:
                raise VectorIndexError(
                    f"no index '{name}' to apply changes to",
                    field="index",
                    hint="build it from a corpus first (--corpus)",
                )
            if spec is None:
                raise EmbeddingModelError("a new index needs a model", field="model")
            backend = backend or "embedded"
            target = location or default_location(name, backend, st)
        assert spec is not None
        index: VectorIndex | None = None
        if row is not None:
            try:
                index = open_index(backend, target, name)
            except VectorIndexError:
                index = None  # registered, but a crash came before the index was created
        own_model = model is None or isinstance(model, str)
        embedding_model: EmbeddingModel
        if not own_model:
            assert not isinstance(model, str) and model is not None
            embedding_model = model
        else:
            state = index.load_state() if index is not None else None
            embedding_model = create_model(spec, model_options, state=state or None)
        try:
            return _run(
                st, name, backend, target, index, embedding_model, corpus, changes, priority,
                batch_size, model_options or ModelOptions(), progress, started,
            )  # fmt: skip
        finally:
            if own_model:
                embedding_model.close()


def _run(
    st: Store,
    name: str,
    backend: str,
    target: str,
    index: VectorIndex | None,
    model: EmbeddingModel,
    corpus: str | Path | None,
    changes: str | Path | None,
    priority: str | Path | None,
    batch_size: int,
    options: ModelOptions,
    progress: ProgressFn | None,
    started: float,
) -> BuildResult:
    from cutover.embeddings._tfidf import Reservoir

    ranks = load_priority(priority) if priority is not None else {}
    check: CorpusCheck | None = None
    fitted = as_fitted(model)
    if fitted is not None and not fitted.fitted and (index is not None or corpus is None):
        raise VectorIndexError(f"index '{name}' has no saved state for {model.spec}", field="model")
    if corpus is not None:
        corpus = Path(corpus)
        sampler = None
        if fitted is not None and not fitted.fitted:
            sampler = Reservoir(options.fit_sample)
        checked = 0

        def on_document(doc: Document) -> None:
            nonlocal checked
            checked += 1
            if sampler is not None:
                sampler.add(document_text(doc.title, doc.text))
            if progress is not None and checked % 1000 == 0:
                progress("checking", checked, None)

        check = check_corpus(corpus, want_offsets=ranks or None, on_document=on_document)
        if progress is not None:
            progress("checking", checked, checked)
        if sampler is not None and fitted is not None:
            if progress is not None:
                progress("fitting", 0, 1)
            fitted.fit(sampler.items)
            if progress is not None:
                progress("fitting", 1, 1)
    if index is None:
        index = _create(st, name, backend, target, model, check)
    elif index.meta.model_identity != model.identity:
        raise VectorIndexError(
            f"index '{name}' holds vectors of model {index.meta.model_identity}; "
            f"refusing vectors of model {model.identity}",
            field="model",
        )
    builder = _Builder(name, index, model, batch_size, progress)
    try:
        if check is not None:
            assert corpus is not None
            builder.embed_corpus(Path(corpus), check, ranks)
        if changes is not None:
            builder.apply_changes(Path(changes))
        meta = index.meta
        now = utcnow()
        if check is not None:
            meta = meta.evolve(status="complete", built_at=now, corpus=check.snapshot)
        if changes is not None:
            update = {
                "path": str(Path(changes).absolute()),
                "sha256": file_sha256(changes),
                "upserts": builder.counts.upserts,
                "deletes": builder.counts.deleted,
                "at": now.isoformat(),
            }
            meta = meta.evolve(updates=(*meta.updates, update))
        index.write_meta(meta)
        count = index.count()
        values: dict[str, object] = {"status": meta.status, "doc_count": count}
        if check is not None:
            values.update(built_at=now, corpus=check.snapshot._asdict())
        st.update_embedding_index(name, **values)
    finally:
        index.close()
    c = builder.counts
    return BuildResult(
        index=name,
        backend=backend,
        location=index.location,
        model=model.spec,
        status=meta.status,
        count=count,
        documents=c.documents,
        written=c.written,
        unchanged=c.unchanged,
        embedded=c.embedded,
        duplicates=c.duplicates,
        deleted=c.deleted,
        batches=c.batches,
        priority_missing=c.priority_missing,
        seconds=time.perf_counter() - started,
    )


def _create(
    st: Store,
    name: str,
    backend: str,
    target: str,
    model: EmbeddingModel,
    check: CorpusCheck | None,
) -> VectorIndex:
    """Register the index in the store, then create it with the model's state."""
    now = utcnow()
    meta = IndexMeta(
        name=name,
        backend=backend,
        model_spec=model.spec,
        model_name=model.name,
        model_version=model.version,
        model_identity=model.identity,
        dimensions=model.dimensions,
        normalised=True,
        created_at=now,
        corpus=check.snapshot if check is not None else None,
    )
    row = st.register_embedding_index(
        {
            "name": name,
            "backend": backend,
            "location": registry_location(backend, target),
            "model_spec": meta.model_spec,
            "model_name": meta.model_name,
            "model_version": meta.model_version,
            "model_identity": meta.model_identity,
            "dimensions": meta.dimensions,
            "normalised": True,
            "status": "building",
            "corpus": meta.corpus._asdict() if meta.corpus else None,
            "created_at": now,
        }
    )
    if row.model_identity != meta.model_identity or row.dimensions != meta.dimensions:
        # A crash between registering and creating, then a refit that came out
        # different: nothing was written, so the registry takes the new fit.
        st.update_embedding_index(
            name,
            model_identity=meta.model_identity,
            model_version=meta.model_version,
            dimensions=meta.dimensions,
        )
    fitted = as_fitted(model)
    state = fitted.state() if fitted is not None else None
    return create_index(meta, target, state=state)


__all__ = ["DEFAULT_BATCH_SIZE", "BuildResult", "ProgressFn", "build_index"]

"""BEIR corpora, queries and qrels; changes files; priority lists.

Every reader streams its file and every error is a
:class:`~cutover.errors.CorpusError` naming the file, the line, the field and
what would be valid.

``corpus.jsonl``, one document per line::

    {"_id": "doc1", "title": "Oceanic Airlines", "text": "Oceanic Airlines is ..."}

``_id`` is a non-empty string (an integer is taken as its decimal string);
``text`` a string; ``title`` a string or absent. Other fields are ignored.
What is embedded is ``title + " " + text`` (the text alone without a title).

``queries.jsonl``: ``{"_id": "q1", "text": "..."}`` per line.

``qrels/test.tsv``: a header row, then ``query-id<TAB>corpus-id<TAB>score``
with an integer score.

A changes file (JSONL) updates a built index, applied in file order::

    {"op": "upsert", "_id": "doc1", "title": "...", "text": "..."}
    {"op": "delete", "_id": "doc7"}

A priority file lists document ids, most retrieved first, one per line (a
tab and anything after it are ignored, as are blank lines and ``#`` comments).
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, NamedTuple

import numpy as np
import orjson

from cutover.embeddings._types import CorpusSnapshot
from cutover.errors import CorpusError

_HASH_DIGEST = 8


class Document(NamedTuple):
    """One corpus document."""

    id: str
    title: str
    text: str


class Change(NamedTuple):
    """One line of a changes file: an upsert (with its document) or a delete."""

    op: Literal["upsert", "delete"]
    id: str
    document: Document | None
    line: int


@dataclass(frozen=True, slots=True)
class CorpusCheck:
    """What a full pass over a corpus found: its snapshot, and where wanted ids are."""

    snapshot: CorpusSnapshot
    offsets: Mapping[str, int]
    """Byte offset of each document whose id was asked for (see :func:`check_corpus`)."""


def _open(path: Path, what: str) -> BinaryIO:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise CorpusError(f"{what} file not found", path=str(path)) from None
    except OSError as exc:
        raise CorpusError(
            f"cannot read {what} file: {exc.strerror or exc}", path=str(path)
        ) from None


def _json_object(raw: bytes, path: Path, line: int) -> dict[str, Any] | None:
    """The object on a JSONL line; ``None`` for a blank line."""
    if not raw.strip():
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CorpusError(
            f"not valid JSON ({exc})", path=str(path), line=line, hint="one JSON object per line"
        ) from None
    if not isinstance(data, dict):
        raise CorpusError(
            f"expected a JSON object, got {type(data).__name__}",
            path=str(path),
            line=line,
            hint="one JSON object per line",
        )
    return data


def _id(data: Mapping[str, Any], path: Path, line: int, key: str = "_id") -> str:
    value = data.get(key)
    if isinstance(value, bool) or value is None:
        problem = "is missing" if value is None else "must be a string"
        raise CorpusError(
            problem, path=str(path), line=line, field=key, hint='e.g. "_id": "doc-1"'
        ) from None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise CorpusError(
            "must be a non-empty string",
            path=str(path),
            line=line,
            field=key,
            hint='e.g. "_id": "doc-1"',
        )
    return value


def _string(data: Mapping[str, Any], key: str, path: Path, line: int, *, required: bool) -> str:
    value = data.get(key)
    if value is None:
        if required and key not in data:
            raise CorpusError("is missing", path=str(path), line=line, field=key, hint="a string")
        return ""
    if not isinstance(value, str):
        raise CorpusError(
            f"must be a string, not {type(value).__name__}",
            path=str(path),
            line=line,
            field=key,
        )
    return value


def _document(data: Mapping[str, Any], path: Path, line: int) -> Document:
    return Document(
        id=_id(data, path, line),
        title=_string(data, "title", path, line, required=False),
        text=_string(data, "text", path, line, required=True),
    )


def iter_corpus_lines(path: str | Path) -> Iterator[tuple[int, int, bytes]]:
    """``(line number, byte offset, raw line)`` of a file, streamed."""
    path = Path(path)
    offset = 0
    with _open(path, "corpus") as handle:
        for number, raw in enumerate(handle, start=1):
            yield number, offset, raw
            offset += len(raw)


def iter_corpus(path: str | Path) -> Iterator[Document]:
    """The documents of ``corpus.jsonl`` in file order, one line at a time.

    Each line is validated as it is read; duplicate ids are found by
    :func:`check_corpus` (a full pass), not here.
    """
    path = Path(path)
    for number, _, raw in iter_corpus_lines(path):
        data = _json_object(raw, path, number)
        if data is not None:
            yield _document(data, path, number)


def read_document_at(path: str | Path, offset: int) -> Document:
    """The document on the line starting at byte ``offset`` (from :func:`check_corpus`)."""
    return next(read_documents_at(path, [offset]))


def read_documents_at(path: str | Path, offsets: Iterable[int]) -> Iterator[Document]:
    """The documents on the lines starting at each byte offset, in the order given."""
    path = Path(path)
    with _open(path, "corpus") as handle:
        for offset in offsets:
            handle.seek(offset)
            raw = handle.readline()
            data = _json_object(raw, path, 0)
            if data is None:
                raise CorpusError(
                    f"no document at byte {offset} (did the file change?)", path=str(path)
                )
            yield _document(data, path, 0)


def check_corpus(
    path: str | Path,
    *,
    want_offsets: Mapping[str, object] | None = None,
    on_document: Callable[[Document], object] | None = None,
) -> CorpusCheck:
    """One streamed pass: validate every line, refuse duplicate ids, hash the file.

    ``on_document(doc)`` is called for every document (to sample it, say);
    the byte offsets of the ids in ``want_offsets`` are returned. Memory is 24
    bytes per document (a 64-bit id digest, its line and its byte offset) plus
    the offsets asked for.
    """
    path = Path(path)
    digest = hashlib.sha256()
    id_hashes: array[int] = array("Q")
    lines: array[int] = array("Q")
    line_offsets: array[int] = array("Q")
    offsets: dict[str, int] = {}
    count = 0
    for number, offset, raw in iter_corpus_lines(path):
        digest.update(raw)
        data = _json_object(raw, path, number)
        if data is None:
            continue
        doc = _document(data, path, number)
        count += 1
        id_hashes.append(_id_digest(doc.id))
        lines.append(number)
        line_offsets.append(offset)
        if want_offsets is not None and doc.id in want_offsets:
            offsets.setdefault(doc.id, offset)
        if on_document is not None:
            on_document(doc)
    _refuse_duplicates(path, id_hashes, lines, line_offsets)
    snapshot = CorpusSnapshot(path=str(path.absolute()), sha256=digest.hexdigest(), docs=count)
    return CorpusCheck(snapshot=snapshot, offsets=offsets)


def _id_digest(doc_id: str) -> int:
    raw = hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=_HASH_DIGEST)
    return int.from_bytes(raw.digest(), "little")


def _refuse_duplicates(
    path: Path, id_hashes: array[int], lines: array[int], line_offsets: array[int]
) -> None:
    if len(id_hashes) < 2:
        return
    hashes = np.frombuffer(id_hashes, dtype=np.uint64)
    order = np.argsort(hashes, kind="stable")
    sorted_hashes = hashes[order]
    same = np.flatnonzero(sorted_hashes[1:] == sorted_hashes[:-1])
    if same.size == 0:
        return
    line_numbers = np.frombuffer(lines, dtype=np.uint64)
    starts = np.frombuffer(line_offsets, dtype=np.uint64)
    found: list[tuple[int, int, str]] = []
    for i in same:
        first, second = int(order[i]), int(order[i + 1])
        a = read_document_at(path, int(starts[first]))
        b = read_document_at(path, int(starts[second]))
        if a.id == b.id:  # not a 64-bit digest collision
            found.append((int(line_numbers[second]), int(line_numbers[first]), a.id))
    if found:
        line, first_line, doc_id = min(found)
        more = f"; {len(found) - 1} more duplicate(s)" if len(found) > 1 else ""
        raise CorpusError(
            f"duplicate id {doc_id!r} (first on line {first_line}){more}",
            path=str(path),
            line=line,
            field="_id",
            hint="every document needs its own _id",
        )


def load_queries(path: str | Path) -> dict[str, str]:
    """``queries.jsonl`` as ``{id: text}`` in file order (queries are small)."""
    path = Path(path)
    queries: dict[str, str] = {}
    first_line: dict[str, int] = {}
    with _open(path, "queries") as handle:
        for number, raw in enumerate(handle, start=1):
            data = _json_object(raw, path, number)
            if data is None:
                continue
            query_id = _id(data, path, number)
            text = _string(data, "text", path, number, required=True)
            if query_id in queries:
                raise CorpusError(
                    f"duplicate query id {query_id!r} (first on line {first_line[query_id]})",
                    path=str(path),
                    line=number,
                    field="_id",
                )
            queries[query_id] = text
            first_line[query_id] = number
    return queries


def load_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """A qrels TSV as ``{query id: {document id: score}}``; the header row is skipped."""
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    with _open(path, "qrels") as handle:
        for number, raw in enumerate(handle, start=1):
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not text.strip():
                continue
            parts = text.split("\t")
            if len(parts) != 3:
                raise CorpusError(
                    f"expected 3 tab-separated columns, got {len(parts)}",
                    path=str(path),
                    line=number,
                    hint="query-id<TAB>corpus-id<TAB>score",
                )
            query_id, doc_id, raw_score = (p.strip() for p in parts)
            try:
                score = int(raw_score)
            except ValueError:
                if number == 1:
                    continue  # the header row
                raise CorpusError(
                    f"score {raw_score!r} is not an integer",
                    path=str(path),
                    line=number,
                    field="score",
                ) from None
            if not query_id or not doc_id:
                column = "query-id" if not query_id else "corpus-id"
                raise CorpusError("is empty", path=str(path), line=number, field=column)
            qrels.setdefault(query_id, {})[doc_id] = score
    return qrels


def iter_changes(path: str | Path) -> Iterator[Change]:
    """The operations of a changes file, in file order."""
    path = Path(path)
    with _open(path, "changes") as handle:
        for number, raw in enumerate(handle, start=1):
            data = _json_object(raw, path, number)
            if data is None:
                continue
            op = data.get("op")
            if op == "upsert":
                doc = _document(data, path, number)
                yield Change("upsert", doc.id, doc, number)
            elif op == "delete":
                yield Change("delete", _id(data, path, number), None, number)
            else:
                raise CorpusError(
                    f"unknown op {op!r}" if op is not None else "is missing",
                    path=str(path),
                    line=number,
                    field="op",
                    hint="'upsert' (with _id, title, text) or 'delete' (with _id)",
                )


def load_priority(path: str | Path) -> dict[str, int]:
    """A priority file as ``{document id: rank}`` (0 first); later repeats are ignored."""
    path = Path(path)
    ranks: dict[str, int] = {}
    with _open(path, "priority") as handle:
        for raw in handle:
            text = raw.decode("utf-8", "replace").split("\t", 1)[0].strip()
            if text and not text.startswith("#"):
                ranks.setdefault(text, len(ranks))
    return ranks


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with _open(Path(path), "input") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


__all__ = [
    "Change",
    "CorpusCheck",
    "Document",
    "check_corpus",
    "file_sha256",
    "iter_changes",
    "iter_corpus",
    "iter_corpus_lines",
    "load_priority",
    "load_qrels",
    "load_queries",
    "read_document_at",
    "read_documents_at",
]

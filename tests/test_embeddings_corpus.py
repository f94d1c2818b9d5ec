"""BEIR corpora, queries, qrels, changes and priority files: streaming, and errors that say where."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from cutover.embeddings.corpus import (
    check_corpus,
    iter_changes,
    iter_corpus,
    load_priority,
    load_qrels,
    load_queries,
    read_documents_at,
)
from cutover.errors import CorpusError, InputError


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_bytes(
        b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in rows)
    )
    return path


def test_corpus_streams_documents_and_snapshot(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "corpus.jsonl",
        [
            {"_id": "a", "title": "Alpha", "text": "first", "extra": 1},
            b"",
            {"_id": 7, "text": "no title"},
            {"_id": "c", "title": None, "text": ""},
        ],
    )
    docs = list(iter_corpus(path))
    assert [(d.id, d.title, d.text) for d in docs] == [
        ("a", "Alpha", "first"),
        ("7", "", "no title"),
        ("c", "", ""),
    ]
    check = check_corpus(path, want_offsets={"c": 0, "zzz": 1})
    assert check.snapshot.docs == 3
    assert check.snapshot.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert check.snapshot.path == str(path.absolute())
    assert list(check.offsets) == ["c"]
    assert next(read_documents_at(path, [check.offsets["c"]])).id == "c"


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        (b'{"_id": "x", "text": "broken', None, "not valid JSON"),
        (b'["_id", "x"]', None, "expected a JSON object"),
        (b'{"title": "t", "text": "no id"}', "_id", "is missing"),
        (b'{"_id": "", "text": "empty id"}', "_id", "non-empty string"),
        (b'{"_id": ["x"], "text": "list id"}', "_id", "non-empty string"),
        (b'{"_id": "x", "text": 3}', "text", "must be a string, not int"),
        (b'{"_id": "x"}', "text", "is missing"),
        (b'{"_id": "x", "title": {"a": 1}, "text": "t"}', "title", "must be a string"),
    ],
)
def test_corpus_errors_name_file_line_and_field(
    tmp_path: Path, line: bytes, field: str | None, message: str
) -> None:
    path = write_jsonl(tmp_path / "corpus.jsonl", [{"_id": "ok", "text": "fine"}, line])
    with pytest.raises(CorpusError) as info:
        list(iter_corpus(path))
    error = info.value
    assert isinstance(error, InputError)
    assert error.path == str(path) and error.line == 2 and error.field == field
    assert message in str(error)
    assert str(error).startswith(f"{path}:2: ")


def test_duplicate_ids_are_refused_with_both_lines(tmp_path: Path) -> None:
    rows: list[object] = [{"_id": f"d{i}", "text": f"doc {i}"} for i in range(50)]
    rows.insert(40, {"_id": "d7", "text": "again"})
    path = write_jsonl(tmp_path / "corpus.jsonl", rows)
    with pytest.raises(CorpusError) as info:
        check_corpus(path)
    assert info.value.line == 41 and info.value.field == "_id"
    assert "duplicate id 'd7' (first on line 8)" in str(info.value)


def test_missing_corpus_file(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="corpus file not found"):
        list(iter_corpus(tmp_path / "nope.jsonl"))


def test_queries(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "q.jsonl", [{"_id": "q1", "text": "one"}, {"_id": 2, "text": "two"}]
    )
    assert load_queries(path) == {"q1": "one", "2": "two"}
    write_jsonl(path, [{"_id": "q1", "text": "one"}, {"_id": "q1", "text": "again"}])
    with pytest.raises(CorpusError, match=r"q\.jsonl:2: field '_id': duplicate query id 'q1'"):
        load_queries(path)


def test_qrels(tmp_path: Path) -> None:
    path = tmp_path / "test.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\n\nq2\td1\t1\n")
    assert load_qrels(path) == {"q1": {"d1": 2, "d2": 0}, "q2": {"d1": 1}}
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\n")
    with pytest.raises(CorpusError, match=r"test\.tsv:2: expected 3 tab-separated columns, got 2"):
        load_qrels(path)
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\thigh\n")
    with pytest.raises(CorpusError, match=r":3: field 'score': score 'high' is not an integer"):
        load_qrels(path)


def test_changes(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "changes.jsonl",
        [
            {"op": "upsert", "_id": "a", "title": "A", "text": "new a"},
            {"op": "delete", "_id": "b"},
        ],
    )
    changes = list(iter_changes(path))
    assert [(c.op, c.id, c.line) for c in changes] == [("upsert", "a", 1), ("delete", "b", 2)]
    assert changes[0].document is not None and changes[0].document.text == "new a"
    write_jsonl(path, [{"op": "replace", "_id": "a"}])
    with pytest.raises(CorpusError, match=r":1: field 'op': unknown op 'replace' \('upsert'"):
        list(iter_changes(path))
    write_jsonl(path, [{"op": "upsert", "_id": "a"}])
    with pytest.raises(CorpusError, match=r":1: field 'text': is missing"):
        list(iter_changes(path))


def test_priority_file(tmp_path: Path) -> None:
    path = tmp_path / "top.txt"
    path.write_text("# most retrieved first\nd3\t120\n\nd1\nd3\n")
    assert load_priority(path) == {"d3": 0, "d1": 1}

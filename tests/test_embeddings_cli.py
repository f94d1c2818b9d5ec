"""``cutover embeddings``: build, list, search, alias, retire from the command line."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from cutover.cli import app
from cutover.testing import Fault, serve_in_thread
from cutover.testing.embeddings_server import EmbeddingsServer

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["embeddings", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def corpus(tmp_path: Path, prefix: str, n: int = 12) -> Path:
    path = tmp_path / f"{prefix}.jsonl"
    rows = [
        {"_id": f"{prefix}{i}", "title": f"T{i}", "text": f"{prefix} text {i}"} for i in range(n)
    ]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def test_build_list_search_alias_retire(tmp_path: Path) -> None:
    code, text = invoke(
        "build", "--index", "a", "--corpus", str(corpus(tmp_path, "a")), "--model", "hash:8",
        "--quiet",
    )  # fmt: skip
    assert code == 0, text
    assert "index a (embedded, hash:8): complete, 12 documents; this run wrote 12" in text
    code, text = invoke("build", "--index", "b", "--corpus", str(corpus(tmp_path, "b")),
                        "--model", "hash:8", "--batch-size", "5")  # fmt: skip
    assert code == 0, text

    code, text = invoke("list")
    assert code == 0 and "a " in text and "hash:8" in text and "complete" in text

    code, text = invoke("search", "a", "T3 a text 3", "-k", "2")
    assert code == 0 and "a3" in text and "1.0000" in text

    assert invoke("alias", "set", "live", "--to", "a", "--actor", "ana")[0] == 0
    code, text = invoke("alias", "set", "live", "--to", "b", "--actor", "bo")
    assert code == 0 and "alias live -> b (previous: a), version 2" in text
    code, text = invoke("alias", "show", "live")
    assert code == 0 and "bo" in text and "ana" in text and "history" in text

    code, text = invoke("retire", "a")
    assert code == 2 and "kept warm" in text
    code, text = invoke("retire", "b", "--keep-warm-days", "0")
    assert code == 2 and "behind alias 'live'" in text
    code, text = invoke("alias", "rollback", "live")
    assert code == 0 and "alias live -> a (previous: b), version 3" in text
    code, text = invoke("retire", "b", "--keep-warm-days", "0")
    assert code == 0 and "index b retired" in text
    code, text = invoke("search", "b", "anything")
    assert code == 2 and "retired" in text


def test_errors_exit_2_and_say_where(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "a", "text": "ok"}\n{"_id": "b", "text": "broken\n')
    code, text = invoke("build", "--index", "x", "--corpus", str(bad), "--model", "hash:8")
    assert code == 2 and f"{bad}:2: not valid JSON" in text
    code, text = invoke("build", "--index", "x", "--corpus", str(bad), "--model", "bert")
    assert code == 2 and "unknown embedding model 'bert'" in text
    code, text = invoke("alias", "show", "nope")
    assert code == 2 and "no embedding alias 'nope'" in text


def test_a_model_that_fails_for_good_exits_3_and_the_rerun_resumes(tmp_path: Path) -> None:
    path = corpus(tmp_path, "c", 20)
    with serve_in_thread(EmbeddingsServer(dimensions=8)) as server:
        server.inject(*[Fault.delay(0)] * 3, *[Fault.status(503)] * 20)
        args = ["build", "--index", "c", "--corpus", str(path), "--batch-size", "5",
                "--model", f"openai:emb@{server.base_url}", "--retries", "1", "--quiet"]  # fmt: skip
        code, text = invoke(*args)
        assert code == 3 and "run aborted" in text and "HTTP 503" in text
        assert "10 document(s) were written" in text
        server.reset()
        code, text = invoke(*args)
        assert code == 0 and "this run wrote 10" in text and "10 unchanged" in text
        assert server.inputs_total == 10

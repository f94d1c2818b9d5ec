"""``report.json``: the run, both targets' figures and every case side by side.

The file is written as a stream: cases are read from the store in batches and
written one by one, so memory stays flat in the number of cases. Layout::

    {
      "schema_version": 1,
      "tool": {"name": "cutover", "version": "..."},
      "run": {"id", "kind", "status", "created_at", "finished_at", "suite", "repeats"},
      "simulated": false,            # true when either side is the sim provider
      "targets": {"old": {...}, "new": {...}},
      "cases": [{"id", "tags", "critical", "input", "old": Observation, "new": Observation,
                 "samples": [{"repeat", "old", "new"}, ...]   # only with repeats > 1
      }],
      "unpaired": {"only_old": [...], "only_new": [...]},
      "summary": {"old": TargetSummary, "new": TargetSummary}
    }
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from cutover import __version__
from cutover.analysis.summary import SummaryAccumulator
from cutover.records import Pair
from cutover.store import RunInfo, Store

REPORT_SCHEMA_VERSION = 1
_OPTS = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS


def _grouped(pairs: Iterator[Pair]) -> Iterator[list[Pair]]:
    """Consecutive pairs of the same case (its repeats) as one list."""
    group: list[Pair] = []
    for pair in pairs:
        if group and pair.case_id != group[0].case_id:
            yield group
            group = []
        group.append(pair)
    if group:
        yield group


def _case_entry(group: list[Pair]) -> dict[str, Any]:
    first = group[0]
    entry: dict[str, Any] = {
        "id": first.case_id,
        "tags": dict(first.tags),
        "critical": first.critical,
        "input": first.input,
        "old": first.old.to_dict() if first.old else None,
        "new": first.new.to_dict() if first.new else None,
    }
    if len(group) > 1:
        entry["samples"] = [
            {
                "repeat": p.repeat,
                "old": p.old.to_dict() if p.old else None,
                "new": p.new.to_dict() if p.new else None,
            }
            for p in group
        ]
    return entry


def _run_header(run: RunInfo) -> dict[str, Any]:
    return {
        "id": run.id,
        "kind": run.kind,
        "status": run.status,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "suite": {"name": run.suite_name, "path": run.suite_path, "hash": run.suite_hash},
        "repeats": run.repeats,
        "meta": run.meta,
    }


def _write_key(fh: IO[bytes], key: str, value: Any, *, first: bool = False) -> None:
    fh.write(b"" if first else b",\n")
    fh.write(orjson.dumps(key) + b": " + orjson.dumps(value, option=_OPTS))


def write_json_report(store: Store, run_id: str, out_dir: str | Path) -> Path:
    """Write ``out_dir/report.json`` for a recorded run and return its path."""
    run = store.get_run(run_id)
    if run is None:
        raise KeyError(f"no run {run_id!r} in the store")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    accs = {"old": SummaryAccumulator(), "new": SummaryAccumulator()}
    only: dict[str, list[str]] = {"old": [], "new": []}
    tmp = path.with_suffix(".json.tmp")
    with tmp.open("wb") as fh:
        fh.write(b"{\n")
        _write_key(fh, "schema_version", REPORT_SCHEMA_VERSION, first=True)
        _write_key(fh, "tool", {"name": "cutover", "version": __version__})
        _write_key(fh, "run", _run_header(run))
        default_targets = {"old": {"label": run.old_label}, "new": {"label": run.new_label}}
        _write_key(fh, "targets", run.meta.get("targets", default_targets))
        fh.write(b',\n"cases": [')
        first = True
        for group in _grouped(store.iter_pairs(run_id)):
            for pair in group:
                if pair.old is not None:
                    accs["old"].add(pair.old)
                if pair.new is not None:
                    accs["new"].add(pair.new)
            head = group[0]
            if head.old is None:
                only["new"].append(head.case_id)
            elif head.new is None:
                only["old"].append(head.case_id)
            fh.write(b"\n" if first else b",\n")
            fh.write(orjson.dumps(_case_entry(group)))
            first = False
        fh.write(b"\n]")
        summary = {arm: acc.result().to_dict() for arm, acc in accs.items()}
        simulated = summary["old"]["simulated"] or summary["new"]["simulated"]
        _write_key(fh, "simulated", simulated)
        _write_key(fh, "unpaired", {"only_old": only["old"], "only_new": only["new"]})
        _write_key(fh, "summary", summary)
        fh.write(b"\n}\n")
    tmp.replace(path)
    return path


__all__ = ["REPORT_SCHEMA_VERSION", "write_json_report"]

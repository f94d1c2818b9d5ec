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

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from cutover import __version__
from cutover.analysis.judging import PairVerdict, SideVerdict
from cutover.analysis.summary import SummaryAccumulator
from cutover.records import Observation, Pair
from cutover.store import RunInfo, Store

REPORT_SCHEMA_VERSION = 2
_OPTS = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


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


def _side(obs: Observation | None, verdict: SideVerdict | None) -> dict[str, Any] | None:
    if obs is None:
        return None
    out = obs.to_dict()
    if verdict is not None:
        out.update(verdict.to_dict())
    return out


def _case_entry(group: list[Pair], verdicts: list[PairVerdict | None]) -> dict[str, Any]:
    first, head = group[0], verdicts[0]
    entry: dict[str, Any] = {
        "id": first.case_id,
        "tags": dict(first.tags),
        "critical": first.critical,
        "input": first.input,
        "old": _side(first.old, head.old if head else None),
        "new": _side(first.new, head.new if head else None),
    }
    if head is not None:
        entry.update(
            triage=head.triage, reasons=head.reasons, similarity=head.similarity, judge=head.judge
        )
    if len(group) > 1:
        entry["samples"] = [
            {
                "repeat": p.repeat,
                "old": _side(p.old, v.old if v else None),
                "new": _side(p.new, v.new if v else None),
                **({"triage": v.triage, "reasons": v.reasons} if v else {}),
            }
            for p, v in zip(group, verdicts, strict=True)
        ]
        triages = [v.triage for v in verdicts if v]
        # A case is a regression when any repeat regressed (repeats are listed in samples).
        for label in ("regression", "novel", "improvement"):
            if head is not None and label in triages:
                entry["triage"] = label
                break
    return entry


def _next_verdict(verdicts: Iterator[PairVerdict] | None, pair: Pair) -> PairVerdict | None:
    if verdicts is None:
        return None
    verdict = next(verdicts, None)
    if verdict is None or (verdict.case_id, verdict.repeat) != (pair.case_id, pair.repeat):
        raise RuntimeError(
            f"verdicts out of step with the store at case {pair.case_id!r} repeat {pair.repeat}"
        )
    return verdict


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


def write_json_report(
    store: Store,
    run_id: str,
    out_dir: str | Path,
    *,
    verdicts: Sequence[PairVerdict] | None = None,
    analysis: Mapping[str, Any] | None = None,
    on_case: Callable[[dict[str, Any]], None] | None = None,
    header: dict[str, Any] | None = None,
) -> Path:
    """Write ``out_dir/report.json`` for a recorded run and return its path.

    With ``verdicts`` (one per Pair, in the store's order) each case carries
    its check values, assertion results, triage and reasons, and ``analysis``
    (flips, triage counts, slices, watch, gate, notes) is written at the top
    level. ``on_case`` sees every case entry as it is written; ``header``, when
    given, receives every top-level key except ``cases``.
    """
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
        default_targets = {"old": {"label": run.old_label}, "new": {"label": run.new_label}}
        top: dict[str, Any] = {
            "schema_version": REPORT_SCHEMA_VERSION,
            "tool": {"name": "cutover", "version": __version__},
            "run": _run_header(run),
            "targets": run.meta.get("targets", default_targets),
        }
        fh.write(b"{\n")
        for i, (key, value) in enumerate(top.items()):
            _write_key(fh, key, value, first=i == 0)
        fh.write(b',\n"cases": [')
        first = True
        verdict_iter = iter(verdicts) if verdicts is not None else None
        for group in _grouped(store.iter_pairs(run_id)):
            group_verdicts: list[PairVerdict | None] = [
                _next_verdict(verdict_iter, pair) for pair in group
            ]
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
            entry = _case_entry(group, group_verdicts)
            if on_case is not None:
                on_case(entry)
            fh.write(b"\n" if first else b",\n")
            fh.write(orjson.dumps(entry, option=orjson.OPT_SERIALIZE_NUMPY))
            first = False
        fh.write(b"\n]")
        summary = {arm: acc.result().to_dict() for arm, acc in accs.items()}
        tail: dict[str, Any] = {
            "simulated": summary["old"]["simulated"] or summary["new"]["simulated"],
            "unpaired": {"only_old": only["old"], "only_new": only["new"]},
            "summary": summary,
            **(analysis or {}),
        }
        for key, value in tail.items():
            _write_key(fh, key, value)
        if header is not None:
            header.update(top)
            header.update(tail)
        fh.write(b"\n}\n")
    tmp.replace(path)
    return path


__all__ = ["REPORT_SCHEMA_VERSION", "write_json_report"]

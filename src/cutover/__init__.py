"""cutover: make changing an LLM safe.

The public API. Everything the CLI does can be done from here::

    from cutover import Store, load_suite, parse_target, run_compare, write_json_report
"""

__version__ = "0.1.0.dev0"

from types import MappingProxyType
from typing import TYPE_CHECKING

from cutover._lazy import lazy_exports

if TYPE_CHECKING:
    from cutover.analysis import TargetSummary, summarize
    from cutover.analysis.gates import GateCriterion, load_gates_file, parse_gates
    from cutover.analysis.verdict import AnalysisOptions
    from cutover.assertions import AssertionResult, Judge, evaluate_all
    from cutover.calls import RateLimiter, RetryPolicy, TargetCaller
    from cutover.checks import check_values, detect_refusal, run_checks
    from cutover.errors import (
        CutoverError,
        InputError,
        MissingKeyError,
        ProviderError,
        RecordedOutputsError,
        RunAbortedError,
        StoreError,
        SuiteError,
        TargetSpecError,
    )
    from cutover.providers import Provider, create_provider
    from cutover.recorded import RecordedOutputs, load_recorded
    from cutover.records import ModelRequest, Observation, Pair, ToolCall
    from cutover.reports import write_json_report
    from cutover.reports.build import ReportOutcome, analyse_run, build_reports
    from cutover.runner import (
        CompareOptions,
        RunResult,
        compare,
        compare_recorded,
        run_compare,
    )
    from cutover.store import RunInfo, Store
    from cutover.suites import Assertion, Case, Suite, load_suite
    from cutover.targets import Price, Target, load_targets_file, parse_target, resolve_target

# Imported on first use, so that `cutover --help` does not load the database
# and HTTP stacks.
_EXPORTS = MappingProxyType(
    {
        "AnalysisOptions": "cutover.analysis.verdict",
        "Assertion": "cutover.suites",
        "AssertionResult": "cutover.assertions",
        "Case": "cutover.suites",
        "CompareOptions": "cutover.runner",
        "CutoverError": "cutover.errors",
        "GateCriterion": "cutover.analysis.gates",
        "InputError": "cutover.errors",
        "Judge": "cutover.assertions",
        "MissingKeyError": "cutover.errors",
        "ModelRequest": "cutover.records",
        "Observation": "cutover.records",
        "Pair": "cutover.records",
        "Price": "cutover.targets",
        "Provider": "cutover.providers",
        "ProviderError": "cutover.errors",
        "RateLimiter": "cutover.calls",
        "RecordedOutputs": "cutover.recorded",
        "RecordedOutputsError": "cutover.errors",
        "ReportOutcome": "cutover.reports.build",
        "RetryPolicy": "cutover.calls",
        "RunAbortedError": "cutover.errors",
        "RunInfo": "cutover.store",
        "RunResult": "cutover.runner",
        "Store": "cutover.store",
        "StoreError": "cutover.errors",
        "Suite": "cutover.suites",
        "SuiteError": "cutover.errors",
        "Target": "cutover.targets",
        "TargetCaller": "cutover.calls",
        "TargetSpecError": "cutover.errors",
        "TargetSummary": "cutover.analysis",
        "ToolCall": "cutover.records",
        "analyse_run": "cutover.reports.build",
        "build_reports": "cutover.reports.build",
        "check_values": "cutover.checks",
        "compare": "cutover.runner",
        "compare_recorded": "cutover.runner",
        "create_provider": "cutover.providers",
        "detect_refusal": "cutover.checks",
        "evaluate_all": "cutover.assertions",
        "load_gates_file": "cutover.analysis.gates",
        "load_recorded": "cutover.recorded",
        "load_suite": "cutover.suites",
        "load_targets_file": "cutover.targets",
        "parse_gates": "cutover.analysis.gates",
        "parse_target": "cutover.targets",
        "resolve_target": "cutover.targets",
        "run_checks": "cutover.checks",
        "run_compare": "cutover.runner",
        "summarize": "cutover.analysis",
        "write_json_report": "cutover.reports",
    }
)


__all__ = [
    "AnalysisOptions",
    "Assertion",
    "AssertionResult",
    "Case",
    "CompareOptions",
    "CutoverError",
    "GateCriterion",
    "InputError",
    "Judge",
    "MissingKeyError",
    "ModelRequest",
    "Observation",
    "Pair",
    "Price",
    "Provider",
    "ProviderError",
    "RateLimiter",
    "RecordedOutputs",
    "RecordedOutputsError",
    "ReportOutcome",
    "RetryPolicy",
    "RunAbortedError",
    "RunInfo",
    "RunResult",
    "Store",
    "StoreError",
    "Suite",
    "SuiteError",
    "Target",
    "TargetCaller",
    "TargetSpecError",
    "TargetSummary",
    "ToolCall",
    "__version__",
    "analyse_run",
    "build_reports",
    "check_values",
    "compare",
    "compare_recorded",
    "create_provider",
    "detect_refusal",
    "evaluate_all",
    "load_gates_file",
    "load_recorded",
    "load_suite",
    "load_targets_file",
    "parse_gates",
    "parse_target",
    "resolve_target",
    "run_checks",
    "run_compare",
    "summarize",
    "write_json_report",
]

__getattr__, __dir__ = lazy_exports("cutover", _EXPORTS, __all__)

"""cutover: make changing an LLM safe.

The public API. Everything the CLI does can be done from here::

    from cutover import Store, load_suite, parse_target, run_compare, write_json_report
"""

__version__ = "0.1.0.dev0"

from cutover.analysis import TargetSummary, summarize
from cutover.calls import RateLimiter, RetryPolicy, TargetCaller
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

__all__ = [
    "Assertion",
    "Case",
    "CompareOptions",
    "CutoverError",
    "InputError",
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
    "compare",
    "compare_recorded",
    "create_provider",
    "load_recorded",
    "load_suite",
    "load_targets_file",
    "parse_target",
    "resolve_target",
    "run_compare",
    "summarize",
    "write_json_report",
]

"""The public API is what __init__ re-exports; this pins it."""

from __future__ import annotations

import cutover

PINNED = {
    "Assertion", "Case", "CompareOptions", "CutoverError", "InputError", "MissingKeyError",
    "ModelRequest", "Observation", "Pair", "Price", "Provider", "ProviderError", "RateLimiter",
    "RecordedOutputs", "RecordedOutputsError", "RetryPolicy", "RunAbortedError", "RunInfo",
    "RunResult", "Store", "StoreError", "Suite", "SuiteError", "Target", "TargetCaller",
    "TargetSpecError", "TargetSummary", "ToolCall", "__version__", "compare", "compare_recorded",
    "create_provider", "load_recorded", "load_suite", "load_targets_file", "parse_target",
    "resolve_target", "run_compare", "summarize", "write_json_report",
    "GateCriterion", "load_gates_file", "parse_gates", "AnalysisOptions", "AssertionResult",
    "Judge", "evaluate_all", "check_values", "detect_refusal", "run_checks", "ReportOutcome",
    "analyse_run", "build_reports",
}  # fmt: skip


def test_public_api_is_pinned() -> None:
    assert set(cutover.__all__) == PINNED
    for name in PINNED:
        assert hasattr(cutover, name), name


def test_every_error_is_a_cutover_error() -> None:
    from cutover import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.CutoverError)

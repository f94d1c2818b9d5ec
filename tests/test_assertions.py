"""The assertion evaluators: every type, positive and negative."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import cutover.assertions as assertions
from cutover.assertions import (
    EVALUATORS,
    NEEDS_JUDGE,
    AssertionResult,
    evaluate,
    evaluate_all,
)
from cutover.records import Observation, ToolCall
from cutover.suites import load_suite
from cutover.suites._case import ASSERTION_TYPES, Assertion, Case


def make_obs(text: str | None = "", **kwargs: Any) -> Observation:
    return Observation(target="t", output=text, **kwargs)


def make_case(**kwargs: Any) -> Case:
    kwargs.setdefault("id", "c1")
    kwargs.setdefault("messages", [{"role": "user", "content": "hi"}])
    return Case(**kwargs)


def run(
    type_: str,
    value: Any,
    text: str | None,
    *,
    threshold: float | None = None,
    case: Case | None = None,
    obs: Observation | None = None,
    **options: Any,
) -> AssertionResult:
    a = Assertion(type=type_, value=value, threshold=threshold, options=options)
    return evaluate(a, obs if obs is not None else make_obs(text), case or make_case())


def test_public_api_is_pinned() -> None:
    assert set(assertions.__all__) == {
        "EVALUATORS", "JUDGE_TYPES", "NEEDS_JUDGE", "AssertionResult", "Evaluator", "Judge",
        "PairwiseVerdict", "evaluate", "evaluate_all",
    }  # fmt: skip


def test_every_declared_type_has_an_evaluator() -> None:
    assert set(EVALUATORS) == set(ASSERTION_TYPES)


# -- text ------------------------------------------------------------------------------


def test_equals() -> None:
    assert run("equals", "Paris", "  Paris\n").passed is True
    assert run("equals", "Paris", "paris").passed is False
    assert run("equals", ["Paris", "Paris, France"], "Paris, France").passed is True
    res = run("equals", ["Rome", "Madrid"], "Paris")
    assert res.passed is False and "any of" in res.reason
    assert run("equals", 42, "42").passed is True


def test_contains_and_icontains() -> None:
    assert run("contains", "refund", "We will refund you").passed is True
    assert run("contains", "Refund", "We will refund you").passed is False
    assert run("contains", ["credit", "refund"], "a refund").passed is True
    assert run("contains", ["credit", "voucher"], "a refund").passed is False
    assert run("icontains", "REFUND", "We will refund you").passed is True
    assert run("icontains", ["x", "WILL"], "We will").passed is True
    assert run("icontains", "nope", "We will").passed is False


def test_not_contains_list_means_none_of() -> None:
    assert run("not-contains", "sorry", "Here you go").passed is True
    res = run("not-contains", "sorry", "I'm sorry")
    assert res.passed is False and "'sorry'" in res.reason
    assert run("not-contains", ["sorry", "apologize"], "I apologize").passed is False
    assert run("not-contains", ["sorry", "apologize"], "Done.").passed is True


def test_starts_with() -> None:
    assert run("starts-with", "Yes", "  Yes, we can.").passed is True
    assert run("starts-with", ["No", "Yes"], "Yes").passed is True
    assert run("starts-with", "Yes", "Well, yes").passed is False


def test_regex() -> None:
    assert run("regex", r"\d{4}-\d{2}-\d{2}", "on 2026-03-02.").passed is True
    assert run("regex", r"^\d+$", "12 apples").passed is False
    assert run("regex", r"(?i)^hello", "HELLO there").passed is True
    assert run("regex", [r"^x", r"apples$"], "12 apples").passed is True
    bad = run("regex", "(unclosed", "text")
    assert bad.passed is None and "invalid regex" in bad.reason


def test_max_length() -> None:
    assert run("max-length", 5, "hello").passed is True
    res = run("max-length", 4, "hello")
    assert res.passed is False and res.reason == "5 characters > 4"
    assert run("max-length", "nope", "hello").passed is None


def test_missing_value_cannot_be_evaluated() -> None:
    res = run("contains", None, "x")
    assert res.passed is None and "needs a value" in res.reason


def test_values_are_rendered_with_case_vars() -> None:
    case = make_case(vars={"city": "Paris"})
    assert run("contains", "{{city}}", "I love Paris", case=case).passed is True
    res = run("contains", "{{country}}", "I love Paris", case=case)
    assert res.passed is None and "country" in res.reason


# -- JSON ------------------------------------------------------------------------------


def test_is_json_strict_and_lenient() -> None:
    assert run("is-json", None, ' {"a": 1} ').passed is True
    assert run("is-json", None, "[1, 2]").passed is True
    fenced = 'Here you go:\n```json\n{"a": 1}\n```'
    res = run("is-json", None, fenced)
    assert res.passed is False and res.reason.startswith("not JSON")
    res = run("is-json", None, fenced, strict=False)
    assert res.passed is True and "code fence" in res.reason
    res = run("is-json", None, 'Sure! {"a": {"b": [1]}} Hope it helps', strict=False)
    assert res.passed is True and "after other text" in res.reason
    assert run("is-json", None, "no json {here", strict=False).passed is False
    assert run("is-json", None, '```json\n{"a": 1}\n```', contains=True).passed is True
    assert run("is-json", None, "").passed is False


SCHEMA = {
    "type": "object",
    "properties": {"amount": {"type": "number"}, "currency": {"enum": ["USD", "EUR"]}},
    "required": ["amount", "currency"],
    "additionalProperties": False,
}


def test_json_schema() -> None:
    assert run("json-schema", SCHEMA, '{"amount": 49.99, "currency": "USD"}').passed is True
    res = run("json-schema", SCHEMA, '{"amount": "49.99", "currency": "USD"}')
    assert res.passed is False and res.reason.startswith("$.amount:")
    res = run("json-schema", SCHEMA, '{"amount": 1}')
    assert res.passed is False and "currency" in res.reason
    assert run("json-schema", SCHEMA, "not json").passed is False
    fenced = '```json\n{"amount": 1, "currency": "EUR"}\n```'
    assert run("json-schema", SCHEMA, fenced).passed is False
    assert run("json-schema", SCHEMA, fenced, strict=False).passed is True


def test_json_schema_nested_path_and_formats() -> None:
    schema = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"type": "object",
            "properties": {"date": {"type": "string", "format": "date"}}}}},
    }  # fmt: skip
    res = run("json-schema", schema, '{"items": [{"date": "2026-03-02"}, {"date": 7}]}')
    assert res.passed is False and res.reason.startswith("$.items[1].date:")


def test_json_schema_bad_schema_and_file(tmp_path: Path) -> None:
    res = run("json-schema", {"type": "nonsense"}, "{}")
    assert res.passed is None and res.reason.startswith("invalid schema")
    assert run("json-schema", "just words", "{}").passed is None
    (tmp_path / "schema.json").write_text('{"type": "object", "required": ["a"]}')
    case = make_case(source=f"{tmp_path / 'suite.yaml'}:3")
    assert run("json-schema", "file://schema.json", '{"a": 1}', case=case).passed is True
    assert run("json-schema", "file://schema.json", '{"b": 1}', case=case).passed is False
    missing = run("json-schema", "file://nope.json", "{}", case=case)
    assert missing.passed is None and "cannot read" in missing.reason


# -- refusal ---------------------------------------------------------------------------

REFUSAL = "I'm sorry, but I can't help with that request."
PARTIAL = (
    "I can't go into detail about the internal pricing model. However, here is how "
    "you can estimate your bill: 1. open the calculator, 2. pick your plan, 3. add seats, "
    "4. compare the monthly and yearly totals, then export the quote as a PDF."
)


def test_is_refusal_and_not_refusal() -> None:
    res = run("is-refusal", None, REFUSAL)
    assert res.passed is True and res.reason.startswith("a full refusal")
    assert run("is-refusal", None, "Sure, here is the answer.").passed is False
    assert run("not-refusal", None, "Sure, here is the answer.").passed is True
    res = run("not-refusal", None, REFUSAL)
    assert res.passed is False and "refusal" in res.reason
    # tool calls only: no text, not a refusal
    obs = make_obs(None, tool_calls=(ToolCall("1", "lookup", "{}"),))
    assert run("not-refusal", None, None, obs=obs).passed is True


def test_partial_refusal_counts_unless_partial_false() -> None:
    from cutover.checks.refusal import detect_refusal

    if detect_refusal(PARTIAL).kind != "partial":
        pytest.skip(f"the detector does not read this text as partial: {detect_refusal(PARTIAL)}")
    assert run("is-refusal", None, PARTIAL).passed is True
    assert run("not-refusal", None, PARTIAL).passed is False
    assert run("not-refusal", None, PARTIAL, partial=False).passed is True


# -- similar-to (lexical) ----------------------------------------------------------------


def test_similar_to_lexical() -> None:
    ref = "The duplicate charge will be refunded within 5 days."
    res = run("similar-to", ref, "the duplicate charge will be refunded within 5 days")
    assert res.passed is True and res.score == 1.0
    res = run("similar-to", ref, "Within 5 days the duplicate charge will be refunded!")
    assert res.passed is True and res.score is not None and res.score > 0.95
    res = run("similar-to", ref, "Our office is closed on Sundays.")
    assert res.passed is False and res.score is not None and res.score < 0.5
    assert "token_sort similarity" in res.reason


def test_similar_to_threshold_list_metric_and_expected() -> None:
    res = run("similar-to", "yes", "yes, the charge is refunded")
    assert res.passed is False  # token_sort: every word counts
    res = run("similar-to", "yes", "yes, the charge is refunded", metric="token_set")
    assert res.passed is True and res.score == 1.0
    res = run("similar-to", ["cats", "a refund is on its way"], "A refund is on its way")
    assert res.passed is True and "a refund" in res.reason
    assert run("similar-to", "abcd", "abce", threshold=0.7).passed is True
    assert run("similar-to", "abcd", "abce", threshold=0.9).passed is False
    case = make_case(expected="Refunded within 5 days.")
    assert run("similar-to", None, "refunded within 5 days", case=case).passed is True
    assert run("similar-to", None, "x").passed is None
    assert run("similar-to", "x", "x", metric="cosine").passed is None


# -- tool-call -------------------------------------------------------------------------


def tool_obs(*calls: tuple[str, str]) -> Observation:
    return make_obs(
        None, tool_calls=tuple(ToolCall(str(i), n, a) for i, (n, a) in enumerate(calls))
    )


def test_tool_call() -> None:
    obs = tool_obs(("get_weather", '{"city": "Paris", "unit": "c", "extra": {"x": 1, "y": 2}}'))
    ok = {"name": "get_weather", "arguments": {"city": "Paris"}}
    assert run("tool-call", ok, None, obs=obs).passed is True
    assert run("tool-call", "get_weather", None, obs=obs).passed is True
    nested = {"name": "get_weather", "arguments": {"extra": {"y": 2}}}
    assert run("tool-call", nested, None, obs=obs).passed is True
    wrong = run("tool-call", {"name": "get_weather", "arguments": {"city": "Rome"}}, None, obs=obs)
    assert wrong.passed is False and "city='Paris'" in wrong.reason
    missing = run("tool-call", {"name": "get_weather", "arguments": {"day": 1}}, None, obs=obs)
    assert missing.passed is False and "without argument 'day'" in missing.reason
    other = run("tool-call", {"name": "book_flight"}, None, obs=obs)
    assert other.passed is False and "called get_weather" in other.reason
    none = run("tool-call", {"name": "get_weather"}, "It is sunny")
    assert none.passed is False and none.reason.startswith("no tool call")
    assert run("tool-call", ["book_flight", "get_weather"], None, obs=obs).passed is True
    assert run("tool-call", {"arguments": {}}, None, obs=obs).passed is None


def test_tool_call_among_several_and_bad_arguments() -> None:
    obs = tool_obs(("lookup", "not json"), ("lookup", '{"id": 7}'))
    assert run("tool-call", {"name": "lookup", "arguments": {"id": 7}}, None, obs=obs).passed
    assert (
        run("tool-call", {"name": "lookup", "arguments": {"id": True}}, None, obs=obs).passed
        is False
    )
    bad = tool_obs(("lookup", "not json"))
    res = run("tool-call", {"name": "lookup", "arguments": {"id": 7}}, None, obs=bad)
    assert res.passed is False and "not JSON" in res.reason


# -- python ----------------------------------------------------------------------------


def test_python_expression() -> None:
    assert run("python", "'refund' in output", "a refund").passed is True
    assert run("python", "len(output) < 3", "a refund").passed is False
    res = run("python", "len(output) / 10", "hello")
    assert res.passed is True and res.score == 0.5
    assert run("python", "len(output) / 10", "hello", threshold=0.6).passed is False
    case = make_case(vars={"name": "Ada"}, expected="Hi Ada")
    assert run("python", "context['vars']['name'] in output", "Hi Ada", case=case).passed
    assert run("python", "output == case.expected", "Hi Ada", case=case).passed
    assert run("python", "json.loads(output)['a'] == 1", '{"a": 1}').passed


def test_python_function_body_and_dict_result() -> None:
    body = (
        "words = output.split()\nreturn {'pass': len(words) > 1, 'score': 0.7, 'reason': 'counted'}"
    )
    res = run("python", body, "two words")
    assert (res.passed, res.score, res.reason) == (True, 0.7, "counted")


def test_python_errors_are_unevaluated() -> None:
    res = run("python", "1 / 0", "x")
    assert res.passed is None and res.reason == "ZeroDivisionError: division by zero"
    res = run("python", "raise ValueError('bad output')", "x")
    assert res.passed is None and res.reason == "ValueError: bad output"
    res = run("python", "'a string'", "x")
    assert res.passed is None and "returned str" in res.reason
    assert run("python", "", "x").passed is None


def test_python_file_functions(tmp_path: Path) -> None:
    (tmp_path / "checks.py").write_text(
        "def get_assert(output, context):\n"
        "    return output.startswith('Dear')\n"
        "\n"
        "def politeness(output, context):\n"
        "    score = 1.0 if 'please' in output.lower() else 0.2\n"
        "    return {'pass': score > 0.5, 'score': score, 'reason': f'score {score}'}\n"
        "\n"
        "def broken(output, context):\n"
        "    raise RuntimeError('checker exploded')\n"
    )
    case = make_case(source=f"{tmp_path / 'suite.yaml'}:12")
    assert run("python", "file://checks.py", "Dear Ada", case=case).passed is True
    assert run("python", "file://checks.py", "Hi Ada", case=case).passed is False
    res = run("python", "file://checks.py:politeness", "Please wait", case=case)
    assert (res.passed, res.score) == (True, 1.0)
    res = run("python", "file://checks.py:broken", "x", case=case)
    assert res.passed is None and res.reason == "RuntimeError: checker exploded"
    res = run("python", "file://checks.py:nothing", "x", case=case)
    assert res.passed is None and "no function 'nothing'" in res.reason
    res = run("python", "file://missing.py", "x", case=case)
    assert res.passed is None and "cannot read" in res.reason


def test_python_file_is_reloaded_when_it_changes(tmp_path: Path) -> None:
    import os

    path = tmp_path / "f.py"
    path.write_text("def get_assert(output, context):\n    return True\n")
    case = make_case(source=f"{tmp_path / 's.yaml'}:1")
    assert run("python", "file://f.py", "x", case=case).passed is True
    path.write_text("def get_assert(output, context):\n    return False\n")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert run("python", "file://f.py", "x", case=case).passed is False


# -- judge types, failed calls, evaluate_all ------------------------------------------------


def test_judge_types_need_a_judge() -> None:
    for type_ in ("llm-rubric", "pairwise"):
        res = run(type_, "Is polite", "hello")
        assert res == AssertionResult(type_, None, None, NEEDS_JUDGE)


def test_failed_call_fails_every_assertion() -> None:
    failed = make_obs("partial te", error="HTTP 500", error_class="server_error")
    for type_ in ASSERTION_TYPES:
        res = run(type_, "x", None, obs=failed)
        assert res.passed is False, type_
        assert res.reason == "the call failed: server_error"


def test_unknown_type() -> None:
    res = run("contains-any", "x", "x")
    assert res.passed is None and "unknown assertion type" in res.reason


def test_evaluate_all_on_a_loaded_suite(tmp_path: Path) -> None:
    (tmp_path / "suite.yaml").write_text(
        "name: s\n"
        "cases:\n"
        "  - id: a\n"
        "    input: 'Give me JSON'\n"
        "    assert:\n"
        "      - {type: is-json, strict: false}\n"
        "      - {type: contains, value: [total, amount]}\n"
        "      - {type: max-length, value: 10}\n"
        "      - {type: python, value: 'file://c.py:has_total'}\n"
        "      - {type: llm-rubric, value: 'Is valid JSON'}\n"
    )
    (tmp_path / "c.py").write_text(
        "def has_total(output, context):\n    return 'total' in output\n"
    )
    suite = load_suite(tmp_path / "suite.yaml")
    case = suite.cases[0]
    results = evaluate_all(case, make_obs('Sure: {"total": 3}'))
    assert [r.type for r in results] == [
        "is-json",
        "contains",
        "max-length",
        "python",
        "llm-rubric",
    ]
    assert [r.passed for r in results] == [True, True, False, True, None]

"""The checks package: the API, the JSON and structure checks, tool calls, text checks."""

from __future__ import annotations

import time
from typing import Any

import pytest

import cutover.checks as checks
from cutover.checks import (
    ALL_CHECKS,
    BAD_WHEN_FALSE,
    BAD_WHEN_TRUE,
    CheckContext,
    CheckResult,
    check_values,
    run_checks,
)
from cutover.records import Observation, ToolCall

NAMES = (
    "empty",
    "json_valid",
    "json_schema_ok",
    "fenced_json",
    "extra_nesting",
    "preamble",
    "truncated",
    "tool_calls_valid",
    "refusal",
    "refusal_kind",
    "refusal_category",
    "language",
    "length_chars",
    "length_words",
    "markdown",
    "markdown_heavy",
    "numbers_as_words",
)
PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "age"],
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "additionalProperties": False,
}
WEATHER_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["c", "f"]},
                    "days": {"type": "integer"},
                },
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    },
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]
NO_CTX = CheckContext()
JSON_CTX = CheckContext(expects_json=True, json_schema=PERSON_SCHEMA)


def obs(output: str | None = "", **kw: Any) -> Observation:
    return Observation(target="t", output=output, **kw)


def values(output: str | None, ctx: CheckContext = NO_CTX, **kw: Any) -> dict[str, Any]:
    return check_values(obs(output, **kw), ctx)


def result(name: str, output: str | None, ctx: CheckContext = NO_CTX, **kw: Any) -> CheckResult:
    return run_checks(obs(output, **kw), ctx)[name]


# -- the API ---------------------------------------------------------------------------


def test_public_api_is_pinned() -> None:
    assert set(checks.__all__) == {
        "ALL_CHECKS",
        "BAD_WHEN_FALSE",
        "BAD_WHEN_TRUE",
        "Check",
        "CheckContext",
        "CheckResult",
        "CheckValue",
        "Refusal",
        "check_values",
        "detect_refusal",
        "run_checks",
    }


def test_all_checks_names_and_order_are_stable() -> None:
    assert tuple(c.name for c in ALL_CHECKS) == NAMES


def test_bad_sets_are_boolean_checks_and_disjoint() -> None:
    assert BAD_WHEN_TRUE.isdisjoint(BAD_WHEN_FALSE)
    assert {"json_valid", "json_schema_ok", "tool_calls_valid"} == BAD_WHEN_FALSE
    assert {"fenced_json", "extra_nesting", "preamble", "truncated", "refusal", "empty"} <= (
        BAD_WHEN_TRUE
    )
    assert set(NAMES) >= (BAD_WHEN_TRUE | BAD_WHEN_FALSE)


@pytest.mark.parametrize(
    "output",
    [
        'Sure! Here is the JSON:\n```json\n{"name": "Ada", "age": 36}\n```',
        "I'm sorry, but I can't help with that.",
        "# Plan\n\n- one\n- two\n- three",
        "",
    ],
)
def test_run_checks_and_check_values_agree_and_single_checks_too(output: str) -> None:
    o = obs(output)
    results = run_checks(o, JSON_CTX)
    assert tuple(results) == NAMES
    assert {k: r.value for k, r in results.items()} == check_values(o, JSON_CTX)
    for check in ALL_CHECKS:
        alone = check(o, JSON_CTX)
        assert alone == results[check.name]
        assert alone.name == check.name
        assert alone.reason


def test_run_checks_takes_any_check() -> None:
    class Shouty:
        name = "shouty"

        def __call__(self, obs: Observation, ctx: CheckContext) -> CheckResult:
            text = obs.output or ""
            return CheckResult(self.name, text.isupper(), "all caps" if text.isupper() else "")

    got = run_checks(obs("HELLO"), NO_CTX, [Shouty(), checks.ALL_CHECKS[0]])
    assert list(got) == ["shouty", "empty"]
    assert got["shouty"].value is True


def test_a_failed_call_gives_none_everywhere() -> None:
    o = obs("partial outp", error="boom", error_class="timeout")
    assert set(check_values(o, JSON_CTX).values()) == {None}
    results = run_checks(o, JSON_CTX)
    assert all(r.value is None and "timeout" in r.reason for r in results.values())
    assert ALL_CHECKS[0](o, NO_CTX).value is None


# -- JSON ------------------------------------------------------------------------------


def test_json_valid() -> None:
    assert values('{"name": "Ada", "age": 36}')["json_valid"] is True
    assert values('  [{"a": 1}]\n')["json_valid"] is True
    assert values("Hello there, general prose.")["json_valid"] is None
    assert result("json_valid", "Just prose.", JSON_CTX).value is False
    assert result("json_valid", '"a JSON string"', JSON_CTX).value is True
    fenced = result("json_valid", '```json\n{"a": 1}\n```')
    assert fenced.value is False
    assert fenced.reason == "json wrapped in ```json fence"
    assert result("json_valid", '{"a": 1}\nHope this helps!').reason == "extra text after JSON"
    assert result("json_valid", "{'a': 1}").value is False
    assert "cut off" in result("json_valid", '{"a": [1, 2').reason
    assert result("json_valid", "", JSON_CTX).value is False


def test_prose_opening_with_a_citation_is_not_json() -> None:
    v = values("[1] Smith et al. showed this in 2020.")
    assert v["json_valid"] is None and v["fenced_json"] is None and v["preamble"] is None


def test_json_schema_ok() -> None:
    assert values('{"name": "Ada", "age": 36}', JSON_CTX)["json_schema_ok"] is True
    # lenient: fence and preamble do not matter here
    fenced = 'Here you go:\n```json\n{"name": "Ada", "age": 36}\n```\nAnything else?'
    assert values(fenced, JSON_CTX)["json_schema_ok"] is True
    r = result("json_schema_ok", '{"name": "Ada", "age": "36"}', JSON_CTX)
    assert r.value is False and r.reason == "$.age: expected integer, got string"
    r = result("json_schema_ok", '{"name": "Ada", "age": 3, "x": 1}', JSON_CTX)
    assert r.value is False and "unexpected property 'x'" in r.reason
    assert values("no json here", JSON_CTX)["json_schema_ok"] is False
    assert values('{"name": "Ada"}')["json_schema_ok"] is None  # no schema


def test_json_schema_from_response_format() -> None:
    ctx = CheckContext(
        response_format={"type": "json_schema", "json_schema": {"schema": PERSON_SCHEMA}}
    )
    assert values('{"name": "Ada", "age": -1}', ctx)["json_schema_ok"] is False


def test_fenced_json() -> None:
    r = result("fenced_json", '```json\n{"a": 1}\n```')
    assert r.value is True and r.reason == "json wrapped in ```json fence"
    assert values('```\n[{"a": 1}]\n```')["fenced_json"] is True
    assert values('{"a": 1}')["fenced_json"] is False
    assert values("plain prose")["fenced_json"] is None
    assert values("```python\nprint(1)\n```")["fenced_json"] is None


def test_extra_nesting_against_the_schema() -> None:
    wrapped = result("extra_nesting", '{"result": {"name": "Ada", "age": 36}}', JSON_CTX)
    assert wrapped.value is True and wrapped.reason == 'object wrapped in {"result": ...}'
    assert values('[{"name": "Ada", "age": 36}]', JSON_CTX)["extra_nesting"] is True
    assert values('{"name": "Ada", "age": 36}', JSON_CTX)["extra_nesting"] is False
    assert values('{"name": "Ada", "age": 36}')["extra_nesting"] is None  # nothing to compare
    assert values("not json", JSON_CTX)["extra_nesting"] is None


def test_extra_nesting_against_the_expected_output() -> None:
    ctx = CheckContext(expected='{"city": "Paris", "country": "FR"}')
    assert values('{"data": {"city": "Paris", "country": "FR"}}', ctx)["extra_nesting"] is True
    assert values('{"city": "Paris", "country": "FR"}', ctx)["extra_nesting"] is False
    arrays = CheckContext(expected="[1, 2, 3]")
    assert values('{"items": [1, 2, 3]}', arrays)["extra_nesting"] is True
    assert values("[1, 2, 3]", arrays)["extra_nesting"] is False
    assert values('{"a": 1}', CheckContext(expected="plain text"))["extra_nesting"] is None


def test_preamble() -> None:
    r = result("preamble", 'Sure! Here is the JSON:\n{"name": "Ada", "age": 36}')
    assert r.value is True and "Sure! Here is the JSON:" in r.reason
    assert values('Here:\n```json\n{"a": 1}\n```')["preamble"] is True
    assert values('{"a": 1}')["preamble"] is False
    assert values('```json\n{"a": 1}\n```')["preamble"] is False
    assert values("Here is the script:\n```python\nprint('hello world')\n```")["preamble"] is True
    assert values("```python\nprint('hello world')\n```")["preamble"] is False
    assert values("A plain answer.")["preamble"] is None
    long_prose = "Some explanation. " * 20 + "\n```python\nx = 1\n```\n"
    assert values(long_prose)["preamble"] is None  # prose with a code example


def test_truncated() -> None:
    assert values("A fine answer.", finish_reason="stop")["truncated"] is False
    r = result("truncated", "An answer that goes on and on", finish_reason="length")
    assert r.value is True and r.reason == "finish_reason 'length'"
    assert values("x", finish_reason="max_tokens")["truncated"] is True
    assert values('{"name": "Ada", "tags": ["a", "b"')["truncated"] is True
    assert values('{"name": "Ada", "bio": "born in 18')["truncated"] is True
    assert values('{"name": "Ada",')["truncated"] is True
    assert values('Here it is:\n{"items": [{"a": 1}, {"a": 2')["truncated"] is True
    r = result("truncated", "```python\ndef f():\n    return 1\n")
    assert r.value is True and "never closed" in r.reason
    assert values('{"brace": "}{ [ in a string"}')["truncated"] is False
    assert values("")["truncated"] is False


# -- tool calls ------------------------------------------------------------------------


def tool_ctx() -> CheckContext:
    return CheckContext(tools=WEATHER_TOOLS)


def calls(*pairs: tuple[str, str]) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(id=f"c{i}", name=n, arguments=a) for i, (n, a) in enumerate(pairs))


def test_tool_calls_valid() -> None:
    ok = result(
        "tool_calls_valid", "", tool_ctx(), tool_calls=calls(("get_weather", '{"city": "Paris"}'))
    )
    assert ok.value is True and ok.reason == "1 tool call valid"
    two = calls(("get_weather", '{"city": "Oslo", "unit": "c", "days": 3}'), ("get_time", ""))
    assert values("", tool_ctx(), tool_calls=two)["tool_calls_valid"] is True


@pytest.mark.parametrize(
    ("name", "arguments", "reason"),
    [
        ("get_wether", '{"city": "Paris"}', "tool 'get_wether' is not declared"),
        ("get_weather", '{"city": "Par', "get_weather: arguments are not valid JSON"),
        ("get_weather", '["Paris"]', "get_weather: arguments are a JSON array, not an object"),
        ("get_weather", "{}", "get_weather: missing required property 'city'"),
        (
            "get_weather",
            '{"city": "Paris", "town": "x"}',
            "get_weather: unexpected property 'town'",
        ),
        ("get_weather", '{"city": 75001}', "get_weather: city: expected string, got integer"),
        ("get_weather", '{"city": "Paris", "unit": "k"}', "get_weather: unit: 'k' is not one of"),
        ("get_weather", '{"city": "Paris", "days": 2.5}', "get_weather: days: expected integer"),
    ],
)
def test_tool_calls_invalid(name: str, arguments: str, reason: str) -> None:
    r = result("tool_calls_valid", "", tool_ctx(), tool_calls=calls((name, arguments)))
    assert r.value is False
    assert r.reason.startswith(reason)


def test_tool_calls_without_declared_tools_and_without_calls() -> None:
    assert values("text")["tool_calls_valid"] is None
    undeclared = values("", tool_calls=calls(("get_weather", "{}")))
    assert undeclared["tool_calls_valid"] is False
    assert values("I'll answer in text.", tool_ctx())["tool_calls_valid"] is True


def test_tool_calls_count_every_problem_in_the_reason() -> None:
    bad = calls(("nope", "{}"), ("get_weather", "{}"))
    r = result("tool_calls_valid", "", tool_ctx(), tool_calls=bad)
    assert r.reason == "tool 'nope' is not declared (+1 more)"


def test_tool_formats_anthropic_and_strict() -> None:
    anthropic = CheckContext(
        tools=[{"name": "lookup", "input_schema": {"type": "object", "required": ["q"]}}]
    )
    assert values("", anthropic, tool_calls=calls(("lookup", '{"q": "x"}')))["tool_calls_valid"]
    assert not values("", anthropic, tool_calls=calls(("lookup", "{}")))["tool_calls_valid"]
    strict = CheckContext(
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "f",
                    "strict": True,
                    "parameters": {"type": "object", "properties": {"a": {"type": "string"}}},
                },
            }
        ]
    )
    assert not values("", strict, tool_calls=calls(("f", '{"a": "x", "b": 1}')))["tool_calls_valid"]


# -- text ------------------------------------------------------------------------------


def test_empty() -> None:
    assert values("")["empty"] is True
    assert values(None)["empty"] is True
    assert values("  \n ")["empty"] is True
    assert values("", tool_calls=calls(("get_time", "{}")))["empty"] is False
    assert values("hi")["empty"] is False


def test_lengths() -> None:
    v = values("Hello,  world!\nHow are you?")
    assert v["length_chars"] == 27
    assert v["length_words"] == 5
    assert values(None)["length_chars"] == 0


def test_markdown() -> None:
    assert values("Just a sentence.")["markdown"] == "plain"
    doc = "# Title\n\nIntro.\n\n- a\n- b\n\n| x | y |\n|---|---|\n| 1 | 2 |\n"
    assert values(doc)["markdown"] == "headings+lists+table"
    r = result("markdown", "Steps:\n1. one\n2. two\n\nSee **this** and [docs](https://x.y).")
    assert r.value == "lists+bold+links"
    assert values("Run:\n```sh\n# not a heading\nls\n```")["markdown"] == "code"
    assert values("> quoted\n\ntext")["markdown"] == "quote"


def test_markdown_heavy() -> None:
    assert values("## Heading\ntext")["markdown_heavy"] is True
    assert values("| a | b |\n| --- | --- |\n| 1 | 2 |")["markdown_heavy"] is True
    assert values("- a\n- b\n- c")["markdown_heavy"] is True
    assert values("- a\n- b")["markdown_heavy"] is False
    assert values("**bold** only")["markdown_heavy"] is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("There were twenty-five people.", True),
        ("It costs three hundred dollars.", True),
        ("Fifteen minutes later.", True),
        ("There were 25 people and two dogs.", False),
        ("Pick one of the two options.", False),
        ("It happened in the twenty-first century, in 2001.", False),
        ("No numbers at all here.", None),
        ("Someone did it.", None),
    ],
)
def test_numbers_as_words(text: str, expected: bool | None) -> None:
    assert values(text)["numbers_as_words"] is expected


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("The weather is nice today and I think that we should go for a walk in the park.", "en"),
        (
            "Le temps est magnifique aujourd'hui et je pense que nous devons aller dans le parc.",
            "fr",
        ),
        ("Das Wetter ist heute schön und ich denke, dass wir in den Park gehen sollten.", "de"),
        ("El clima está muy agradable hoy y creo que deberíamos ir al parque con los niños.", "es"),
        ("Il tempo è bello oggi e penso che dovremmo andare al parco con gli amici.", "it"),
        ("O tempo está muito bom hoje e acho que devemos ir ao parque com os amigos.", "pt"),
        (
            "Het weer is vandaag mooi en ik denk dat we naar het park moeten gaan met de kinderen.",
            "nl",
        ),
        ("今日はとても良い天気なので、公園に散歩に行きましょう。", "ja"),
        ("今天天气很好，我们去公园散步吧。", "zh"),
        ("오늘 날씨가 정말 좋아서 공원에 산책하러 가요.", "ko"),
        ("Сегодня прекрасная погода, и я думаю, что нам стоит пойти в парк.", "ru"),
        ("الطقس جميل اليوم وأعتقد أننا يجب أن نذهب إلى الحديقة.", "ar"),
        ("Lorem ipsum dolor sit amet consectetur adipiscing elit sed.", "und"),
        ("ok", None),
        ("", None),
    ],
)
def test_language(text: str, code: str | None) -> None:
    assert values(text)["language"] == code


def test_language_ignores_code_blocks() -> None:
    text = (
        "Voici la fonction que vous avez demandée, elle est très simple et "
        "elle fonctionne avec les listes:\n```python\nfor item in items:\n"
        "    if item is not None and item in the_list:\n        print(item)\n```\n"
    )
    assert values(text)["language"] == "fr"


# -- speed -----------------------------------------------------------------------------


def test_speed_sanity() -> None:
    """Runs every check over a mixed batch and prints the time: no timing assert."""
    outputs = [
        "Sure! Here is the JSON:\n```json\n" + '{"name": "Ada", "age": 36}' + "\n```",
        "I'm sorry, but I can't help with that. If you are struggling, please reach out.",
        "# Steps\n\n1. Mix the flour.\n2. Add twenty grams of salt.\n3. Bake.\n" * 3,
        "The capital of France is Paris. It has about 2 million inhabitants. " * 8,
        '{"items": [{"a": 1}, {"a": 2',
    ]
    batch = [obs(text, finish_reason="stop") for text in outputs] * 200
    t0 = time.perf_counter()
    for o in batch:
        check_values(o, JSON_CTX)
    per_obs_us = (time.perf_counter() - t0) / len(batch) * 1e6
    print(f"check_values: {per_obs_us:.1f} us per Observation")
    assert per_obs_us > 0

"""Suite loaders: cutover YAML/JSONL, promptfoo, OpenAI-evals; errors with file, line, field."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import cutover.suites as suites
from cutover.errors import SuiteError
from cutover.suites import ASSERTION_TYPES, Assertion, Case, Suite, input_hash, load_suite
from cutover.suites._template import TemplateError, render
from cutover.suites.native import normalize_tags


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load_error(path: Path, **kwargs: str) -> SuiteError:
    with pytest.raises(SuiteError) as info:
        load_suite(path, **kwargs)
    return info.value


def test_public_api_is_pinned() -> None:
    assert set(suites.__all__) == {
        "ASSERTION_TYPES",
        "FORMATS",
        "Assertion",
        "Case",
        "Suite",
        "detect_format",
        "input_hash",
        "load_suite",
    }
    assert suites.Case is Case and suites.Suite is Suite and suites.Assertion is Assertion
    assert "contains" in ASSERTION_TYPES
    assert input_hash("hi") == input_hash([{"role": "user", "content": "hi"}])


# --- cutover YAML -------------------------------------------------------------

FULL = """
name: support-bot
system: "You are a support agent."
prompt: "Answer: {{question}}"
defaults:
  tags: {tenant: acme, use_case: general}
  params: {temperature: 0, max_tokens: 100}
  assert: [{type: is-json}]
  critical: false
targets:
  old: "openai:gpt-4o-mini"
  new: {target: "sim:fast-v2", prompt_version: v2}
gates:
  - {metric: regressions, max: 0}
cases:
  - id: refund-1
    vars: {question: "Where is my refund?"}
    tags: {use_case: billing}
    critical: true
    expected: "It is on its way."
    params: {max_tokens: 200}
    assert:
      - {type: contains, value: refund, case_sensitive: false}
  - messages:
      - {role: system, content: "Custom system."}
      - {role: user, content: "Hi {{ name | upper }}"}
    vars: {name: bob}
    asserts: [{type: max-length, value: 50}]
  - input: "plain {{ not a template }}"
    tags: [vip, "tier:gold", "region=eu"]
    tools: [{type: function, function: {name: lookup}}]
    tool_choice: auto
    response_format: {type: json_object}
"""


def test_cutover_yaml_full(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, "suite.yaml", FULL))
    assert suite.name == "support-bot"
    assert [c.id for c in suite] == ["refund-1", "case-2", "case-3"]
    first, second, third = suite.cases
    assert first.messages == [
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "content": "Answer: Where is my refund?"},
    ]
    # defaults merged, the case wins; assert lists concatenated (defaults first)
    assert first.tags == {"tenant": "acme", "use_case": "billing"}
    assert first.params == {"temperature": 0, "max_tokens": 200}
    assert [a.type for a in first.asserts] == ["is-json", "contains"]
    assert first.asserts[1].options == {"case_sensitive": False}
    assert first.critical is True and second.critical is False
    assert first.expected == "It is on its way."
    assert first.source == f"{tmp_path / 'suite.yaml'}:15"
    # a case with its own system message keeps it; messages are rendered with vars
    assert second.messages == [
        {"role": "system", "content": "Custom system."},
        {"role": "user", "content": "Hi BOB"},
    ]
    assert [a.type for a in second.asserts] == ["is-json", "max-length"]
    # input is plain text, not a template
    assert third.messages[-1] == {"role": "user", "content": "plain {{ not a template }}"}
    assert third.tags == {
        "tenant": "acme",
        "use_case": "general",
        "vip": "true",
        "tier": "gold",
        "region": "eu",
    }
    assert third.tool_choice == "auto" and third.response_format == {"type": "json_object"}
    assert third.tools == [{"type": "function", "function": {"name": "lookup"}}]
    assert suite.targets["old"].spec == "openai:gpt-4o-mini"
    assert suite.targets["new"].prompt_version == "v2"
    assert suite.gates == [{"metric": "regressions", "max": 0}]


def test_name_defaults_to_stem_and_list_of_cases(tmp_path: Path) -> None:
    path = write(tmp_path, "smoke.yml", "- input: hello\n- id: two\n  input: bye\n")
    suite = load_suite(path)
    assert suite.name == "smoke"
    assert [c.id for c in suite] == ["case-1", "two"]
    assert suite.cases[1].source == f"{path}:2"


def test_tag_values_stringified() -> None:
    assert normalize_tags({"n": 3, "flag": True, "x": 1.5, "none": None}) == {
        "n": "3",
        "flag": "true",
        "x": "1.5",
        "none": "",
    }
    assert normalize_tags(["a", "b:c", "d=e:f"]) == {"a": "true", "b": "c", "d": "e:f"}


def test_content_hash_stable(tmp_path: Path) -> None:
    path = write(tmp_path, "suite.yaml", FULL)
    assert load_suite(path).content_hash() == load_suite(path).content_hash()


# --- errors carry path, line, field and what would be valid -------------------


def test_bad_yaml_has_line(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "cases:\n  - id: a\n    input: [unclosed\n  - id: b\n")
    err = load_error(path)
    assert err.path == str(path)
    assert err.line == 4
    assert "not valid YAML" in str(err)
    assert str(err).startswith(f"{path}:4: ")


def test_unknown_field_names_line_field_and_valid_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.yaml",
        """
        cases:
          - id: a
            input: hi
          - id: b
            input: hi
            tagz: [x]
        """,
    )
    err = load_error(path)
    assert (err.line, err.field) == (6, "cases[1].tagz")
    assert "unknown field 'tagz'" in err.message and "did you mean 'tags'" in err.message
    assert err.hint is not None and "valid fields:" in err.hint and "messages" in err.hint
    assert f"{path}:6: field 'cases[1].tagz':" in str(err)


def test_unknown_top_level_field(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, "s.yaml", "name: x\ncasez: []\n"))
    assert (err.line, err.field) == (2, "casez")
    assert err.hint is not None and "cases" in err.hint and "defaults" in err.hint


def test_wrong_type(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.yaml",
        """
        cases:
          - id: a
            input: hi
            critical: true
            params: [1, 2]
        """,
    )
    err = load_error(path)
    assert (err.line, err.field) == (5, "cases[0].params")
    assert "valid dictionary" in err.message and "got a list" in err.message


def test_bad_tags(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "cases:\n  - input: hi\n    tags: {a: [1, 2]}\n")
    err = load_error(path)
    assert (err.line, err.field) == (3, "cases[0].tags")
    assert err.hint is not None and "mapping" in err.hint


def test_missing_input(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "cases:\n  - id: a\n    input: x\n  - id: b\n    tags: [x]\n")
    err = load_error(path)
    assert (err.line, err.field) == (4, "cases[1]")
    assert "no input" in err.message
    assert err.hint is not None and "messages" in err.hint and "prompt" in err.hint


def test_empty_messages_and_bad_role(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, "a.yaml", "cases:\n  - id: a\n    messages: []\n"))
    assert (err.line, err.field) == (3, "cases[0].messages")
    assert "must not be empty" in err.message
    path = write(
        tmp_path,
        "b.yaml",
        """
        cases:
          - id: a
            messages:
              - role: user
                content: hi
              - role: robot
                content: hi
        """,
    )
    err = load_error(path)
    assert (err.line, err.field) == (6, "cases[0].messages[1].role")
    assert err.hint == "valid roles: system, user, assistant, tool"


def test_several_inputs_refused(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, "s.yaml", "cases:\n  - input: a\n    prompt: b\n"))
    assert err.line == 2 and "one of messages, prompt or input" in err.message


def test_bad_assertion_type(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.yaml",
        """
        cases:
          - id: a
            input: hi
            assert:
              - type: contains
                value: x
              - type: contians
                value: y
        """,
    )
    err = load_error(path)
    assert (err.line, err.field) == (7, "cases[0].assert[1].type")
    assert "unknown assertion type 'contians'" in err.message
    assert "did you mean 'contains'" in err.message
    assert err.hint is not None and err.hint.startswith("valid types: ")
    assert all(t in err.hint for t in ASSERTION_TYPES)


def test_bad_assertion_type_in_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path, "s.yaml", "defaults:\n  assert:\n    - type: nope\ncases:\n  - input: a\n"
    )
    err = load_error(path)
    assert (err.line, err.field) == (3, "defaults.assert[0].type")


def test_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.yaml",
        """
        cases:
          - id: a
            input: one
          - id: b
            input: two
          - id: a
            input: three
        """,
    )
    err = load_error(path)
    assert (err.line, err.field) == (6, "cases[2].id")
    assert "duplicate case id 'a'" in err.message and "line 2" in err.message


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, "s.yaml", "cases:\n  - input: a\n    input: b\n"))
    assert err.line == 3 and "duplicate key 'input'" in err.message and "line 2" in err.message


def test_missing_template_var(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.yaml",
        """
        prompt: "Q: {{question}} ({{lang}})"
        cases:
          - id: ok
            vars: {question: a, lang: en}
          - id: refund-2
            vars: {question: b}
        """,
    )
    err = load_error(path)
    assert err.line == 5 and err.field == "prompt"
    assert "'lang'" in err.message and "'refund-2'" in err.message
    assert err.hint == "vars defined for this case: question"


def test_missing_nested_template_var_in_case_prompt(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.yaml",
        "cases:\n  - id: c\n    prompt: 'Hi {{user.name}}'\n    vars: {user: {age: 3}}\n",
    )
    err = load_error(path)
    assert (err.line, err.field) == (2, "cases[0].prompt")
    assert "'user.name'" in err.message


def test_empty_suite(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, "s.yaml", "name: x\ncases: []\n"))
    assert (err.line, err.field) == (2, "cases")
    assert "no cases" in err.message and err.hint is not None
    err = load_error(write(tmp_path, "m.yaml", "name: x\n"))
    assert err.field == "cases" and "missing" in err.message
    err = load_error(write(tmp_path, "e.jsonl", "\n\n"))
    assert "no cases" in err.message


def test_bad_target_in_suite(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "targets:\n  old: 'nope:model'\ncases:\n  - input: a\n")
    err = load_error(path)
    assert err.line == 2 and err.field == "targets.old"
    assert "unknown provider" in err.message


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    err = load_error(tmp_path / "nope.yaml")
    assert "file not found" in err.message and err.path == str(tmp_path / "nope.yaml")
    err = load_error(write(tmp_path, "s.yaml", "cases: []"), format="csv")
    assert err.hint is not None and "promptfoo" in err.hint and "openai-evals" in err.hint


# --- cutover JSONL ------------------------------------------------------------


def test_cutover_jsonl(tmp_path: Path) -> None:
    lines = [
        {"id": "a", "messages": [{"role": "user", "content": "hi"}], "tags": ["x", "t:y"]},
        {
            "prompt": "Say {{w}}",
            "vars": {"w": "yes"},
            "assert": [{"type": "equals", "value": "yes"}],
        },
    ]
    text = json.dumps(lines[0]) + "\n\n" + json.dumps(lines[1]) + "\n"
    path = write(tmp_path, "cases.jsonl", text)
    suite = load_suite(path)
    assert suite.name == "cases"
    assert [c.id for c in suite] == ["a", "case-2"]
    assert suite.cases[0].tags == {"x": "true", "t": "y"}
    assert suite.cases[1].messages == [{"role": "user", "content": "Say yes"}]
    assert suite.cases[1].source == f"{path}:3"  # blank lines keep their number
    assert suites.detect_format(path) == "cutover"


def test_jsonl_bad_json_line(tmp_path: Path) -> None:
    path = write(tmp_path, "c.jsonl", '{"id": "a", "input": "x"}\n\n{"id": "b", input}\n')
    err = load_error(path)
    assert err.line == 3 and "not valid JSON" in err.message
    assert err.hint is not None and "JSON object" in err.hint


def test_jsonl_errors_name_line_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.jsonl",
        '{"id": "a", "input": "x"}\n{"id": "b", "input": "y", "critcal": true}\n',
    )
    err = load_error(path)
    assert (err.line, err.field) == (2, "critcal")
    assert "did you mean 'critical'" in err.message
    path = write(tmp_path, "d.jsonl", '{"id": "a", "input": "x"}\n{"id": "a", "input": "y"}\n')
    err = load_error(path)
    assert (err.line, err.field) == (2, "id") and "line 1" in err.message
    path = write(
        tmp_path, "e.jsonl", '{"input": "x", "assert": [{"type": "ok"}, {"type": "bogus"}]}\n'
    )
    err = load_error(path)
    assert (err.line, err.field) == (1, "assert[0].type")
    assert err.hint is not None and "valid types:" in err.hint
    err = load_error(write(tmp_path, "f.jsonl", '["not", "an", "object"]\n'))
    assert err.line == 1 and "JSON object" in err.message


# --- templates ----------------------------------------------------------------


def test_template_rendering() -> None:
    variables = {"q": "why?", "user": {"name": "Ann", "tags": ["a", "b"]}, "n": 3, "ok": True}
    assert render("{{q}} / {{ user.name }} / {{user.tags.1}} / {{ user.tags[0] }}", variables) == (
        "why? / Ann / b / a"
    )
    assert render("{{ n }} {{ ok }} {{ user.tags }}", variables) == '3 true ["a","b"]'
    assert render("{{ q | upper }} {{ user | dump }}", variables) == (
        'WHY? {"name":"Ann","tags":["a","b"]}'
    )
    assert render('\\{{q}} {{ "{{" }} {% raw %}{{q}}{% endraw %}{# note #}', variables) == (
        "{{q}} {{ {{q}}"
    )
    assert render("no braces", {}) == "no braces"
    with pytest.raises(TemplateError) as info:
        render("{{ missing }}", variables)
    assert info.value.var == "missing"
    with pytest.raises(TemplateError, match="unsupported template tag"):
        render("{% if q %}x{% endif %}", variables)
    with pytest.raises(TemplateError, match="unsupported filter"):
        render("{{ q | title }}", variables)


# --- promptfoo ----------------------------------------------------------------


def test_promptfoo_prompts_x_tests_and_default_test(tmp_path: Path) -> None:
    write(
        tmp_path,
        "prompts/chat.json",
        '[{"role": "system", "content": "Be {{tone}}."},'
        ' {"role": "user", "content": "{{question}}"}]',
    )
    path = write(
        tmp_path,
        "promptfooconfig.yaml",
        """
        description: demo
        prompts:
          - "Answer briefly: {{question}}"
          - file://prompts/chat.json
        providers: [openai:gpt-4o-mini]
        defaultTest:
          vars: {tone: polite}
          assert:
            - type: not-contains
              value: sorry
          metadata: {tenant: acme}
        tests:
          - description: refund
            vars: {question: "Where is my refund?"}
            assert:
              - type: contains-json
              - type: similar
                value: It is on its way
                threshold: 0.8
            metadata: {use_case: billing, priority: 1}
          - vars: {question: Hello, tone: curt}
            assert:
              - type: equals
                value: Hi
        """,
    )
    assert suites.detect_format(path) == "promptfoo"
    suite = load_suite(path)
    assert [c.id for c in suite] == ["refund/p1", "refund/p2", "t2/p1", "t2/p2"]
    refund_text, refund_chat, hello_text, hello_chat = suite.cases
    assert refund_text.messages == [
        {"role": "user", "content": "Answer briefly: Where is my refund?"}
    ]
    assert refund_chat.messages == [
        {"role": "system", "content": "Be polite."},
        {"role": "user", "content": "Where is my refund?"},
    ]
    assert hello_chat.messages[0]["content"] == "Be curt."  # the test's vars win
    assert refund_text.tags == {
        "tenant": "acme",
        "use_case": "billing",
        "priority": "1",
        "prompt": "p1",
    }
    assert refund_chat.tags["prompt"] == "file://prompts/chat.json"
    assert refund_text.vars == {"tone": "polite", "question": "Where is my refund?"}
    # defaultTest assertions first, then the test's, mapped to cutover types
    assert [(a.type, a.options) for a in refund_text.asserts] == [
        ("not-contains", {}),
        ("is-json", {"contains": True}),
        ("similar-to", {}),
    ]
    assert refund_text.asserts[2].threshold == 0.8
    assert hello_text.expected == "Hi"
    assert hello_text.source == f"{path}:21"


def test_promptfoo_single_prompt_ids_and_file_prompt_split(tmp_path: Path) -> None:
    write(tmp_path, "p.txt", "First {{x}}\n---\nSecond {{x}}\n")
    path = write(
        tmp_path,
        "pf.yaml",
        """
        prompts: [file://p.txt]
        tests:
          - vars: {x: "1"}
          - description: same
            vars: {x: [a, b]}
        """,
    )
    suite = load_suite(path)
    assert [c.id for c in suite] == [
        "t1/p1",
        "t1/p2",
        "same/v1/p1",
        "same/v1/p2",
        "same/v2/p1",
        "same/v2/p2",
    ]
    assert suite.cases[1].messages[0]["content"] == "Second 1"
    assert suite.cases[4].messages[0]["content"] == "First b"

    one = write(
        tmp_path, "one.yaml", "prompts: ['Hi {{n}}']\ntests:\n  - vars: {n: 1}\n  - vars: {n: 2}\n"
    )
    assert [c.id for c in load_suite(one)] == ["t1", "t2"]


def test_promptfoo_prompt_objects_chat_and_csv_tests(tmp_path: Path) -> None:
    write(
        tmp_path,
        "tests.csv",
        "question,__expected,__description\n"
        "What is 2+2?,4,math\n"
        '"multi\nline",contains: hello,greet\n'
        "Bad,javascript: output.length > 1,js\n",
    )
    path = write(
        tmp_path,
        "pf.yaml",
        """
        prompts:
          - id: short
            raw: "Q: {{question}}"
        tests: file://tests.csv
        """,
    )
    err = load_error(path)
    assert err.path == str(tmp_path / "tests.csv") and err.line == 5
    assert "javascript" in err.message and "use python" in err.message

    (tmp_path / "tests.csv").write_text(
        'question,__expected\nWhat is 2+2?,4\n"multi\nline",icontains-any: hi,hello\n'
    )
    suite = load_suite(path)
    assert [c.id for c in suite] == ["t1", "t2"]
    assert suite.cases[0].messages == [{"role": "user", "content": "Q: What is 2+2?"}]
    assert suite.cases[0].asserts == [Assertion(type="equals", value="4")]
    assert suite.cases[0].expected == "4"
    assert suite.cases[1].asserts[0].type == "regex"
    assert suite.cases[1].asserts[0].value == "(?i)(?:hi)"
    assert suite.cases[1].source == f"{tmp_path / 'tests.csv'}:3"


def test_promptfoo_inline_chat_prompt_and_yaml_tests_file(tmp_path: Path) -> None:
    write(tmp_path, "tests.yaml", "- vars: {q: a}\n- vars: {q: b}\n  assert:\n    - type: bleu\n")
    path = write(
        tmp_path,
        "pf.yaml",
        """
        prompts:
          - '[{"role": "user", "content": "{{q}}?"}]'
        tests: [file://tests.yaml]
        """,
    )
    err = load_error(path)
    assert err.path == str(tmp_path / "tests.yaml")
    assert (err.line, err.field) == (4, "[1].assert[0].type")
    assert "unsupported assertion type 'bleu'" in err.message
    assert err.hint is not None and "contains-json" in err.hint and "llm-rubric" in err.hint


def test_promptfoo_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "pf.yaml",
        """
        prompts: ["Hi {{name}}"]
        tests:
          - vars: {name: a}
          - vars: {nam: b}
        """,
    )
    err = load_error(path)
    assert (err.line, err.field) == (4, "tests[1].vars")
    assert "'name'" in err.message and "'t2'" in err.message
    assert err.hint == "vars defined for this case: nam"

    path = write(
        tmp_path,
        "pf2.yaml",
        """
        prompts: ["Hi"]
        tests:
          - vars: {}
            asert: []
        """,
    )
    err = load_error(path)
    assert (err.line, err.field) == (4, "tests[0].asert")
    assert err.hint is not None and "assert" in err.hint and "metadata" in err.hint

    path = write(
        tmp_path,
        "pf3.yaml",
        'prompts: ["Hi"]\ntests:\n  - assert:\n      - type: javascript\n        value: "1"\n',
    )
    err = load_error(path)
    assert (err.line, err.field) == (4, "tests[0].assert[0].type")
    assert "use python" in err.message

    path = write(tmp_path, "pf4.yaml", "prompts: [file://missing.txt]\ntests: [{}]\n")
    err = load_error(path)
    assert (err.line, err.field) == (1, "prompts[0]") and "file not found" in err.message

    err = load_error(write(tmp_path, "pf5.yaml", "prompts: ['x']\ntests: []\n"))
    assert "no cases" in err.message


def test_format_can_be_forced(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "prompts: ['Hi']\ntests: [{}]\n")
    err = load_error(path, format="cutover")
    assert err.field == "prompts" and "unknown field" in err.message
    assert len(load_suite(path, format="promptfoo")) == 1


# --- OpenAI evals -------------------------------------------------------------


def test_openai_evals(tmp_path: Path) -> None:
    records = [
        {"input": "2+2?", "ideal": "4"},
        {
            "input": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "Capital of France?"},
            ],
            "ideal": ["Paris", "paris"],
            "extra": {"ignored": True},
        },
        {"id": "custom", "input": "x", "ideal": "y"},
    ]
    path = write(tmp_path, "samples.jsonl", "\n".join(json.dumps(r) for r in records) + "\n")
    assert suites.detect_format(path) == "openai-evals"
    suite = load_suite(path)
    assert [c.id for c in suite] == ["line-1", "line-2", "custom"]
    first, second, _ = suite.cases
    assert first.messages == [{"role": "user", "content": "2+2?"}]
    assert first.expected == "4" and first.asserts == [Assertion(type="equals", value="4")]
    assert second.messages[0] == {"role": "system", "content": "Be terse."}
    assert second.expected == "Paris"
    assert second.asserts == [Assertion(type="equals", value=["Paris", "paris"])]
    assert second.source == f"{path}:2"


def test_openai_evals_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "s.jsonl", '{"input": "a", "ideal": "b"}\n{"ideal": "b"}\n')
    err = load_error(path)
    assert (err.line, err.field) == (2, "input") and err.hint is not None
    path = write(
        tmp_path,
        "t.jsonl",
        '{"input": "a", "ideal": "b"}\n{"input": "a", "ideal": 5.5}\n{"input": "a", "ideal": [1]}\n',
    )
    err = load_error(path)
    assert (err.line, err.field) == (3, "ideal")
    path = write(
        tmp_path, "u.jsonl", '{"input": [{"role": "bot", "content": "x"}], "ideal": "b"}\n'
    )
    err = load_error(path)
    assert (err.line, err.field) == (1, "input[0].role")
    path = write(tmp_path, "v.jsonl", '{"input": "a", "ideal": "b"}\n{"input": "a", "ideal": "b"\n')
    err = load_error(path)
    assert err.line == 2 and "not valid JSON" in err.message


def test_jsonl_with_id_and_ideal_is_cutover(tmp_path: Path) -> None:
    path = write(tmp_path, "s.jsonl", '{"id": "a", "input": "x", "ideal": "y"}\n')
    assert suites.detect_format(path) == "cutover"
    err = load_error(path)
    assert err.field == "ideal" and "unknown field" in err.message
    assert load_suite(path, format="openai-evals").cases[0].id == "a"


def test_yaml_anchors_and_merge_keys_keep_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.yaml",
        """
        x-base: &base
          tags: {team: core}
          input: shared
        cases:
          - <<: *base
            id: one
          - <<: *base
            id: two
            input: own
            tags: {bad: [1]}
        """,
    )
    from cutover.suites._yaml import load_yaml

    located = load_yaml(path)
    assert located.data["cases"][0] == {"tags": {"team": "core"}, "input": "shared", "id": "one"}
    assert located.data["cases"][1]["input"] == "own"
    assert located.line_of(("cases", 1, "input")) == 9
    assert located.line_of(("cases", 0, "tags", "team")) == 2  # written at the anchor
    err = load_error(path)
    assert (err.line, err.field) == (1, "x-base")  # unknown top-level field


def test_json_suite_file(tmp_path: Path) -> None:
    path = write(tmp_path, "s.json", json.dumps({"cases": [{"id": "j", "input": "hi"}]}, indent=1))
    suite = load_suite(path)
    assert suite.cases[0].id == "j" and suite.cases[0].source == f"{path}:3"

"""Fuzzing the two doors with generated input (hypothesis), through the real entry point:

- the JSONL door: ``llmbatch submit FILE`` with lines built from valid requests with one field
  replaced by any JSON value, random JSON objects, hostile text (deep nesting, 5,000-digit
  integers, NaN, NUL, lone surrogates, markup in ids) and random bytes;
- the config door: ``llmbatch config validate FILE`` and ``submit -c FILE`` with configuration
  files built from the real keys with random values, and hostile YAML.

Each case asserts: exit 2 or success (0), never a traceback (any exception other than
``SystemExit`` out of ``main()`` fails the test), and the database unchanged after a refusal.
Under the ``ci`` hypothesis profile (CI=true, or HYPOTHESIS_PROFILE=ci) each door runs 1,000
cases, the same on every run (``derandomize``: CI stability); under ``dev`` 200 random ones,
so a developer's run stays short (tests/conftest.py). The number run is printed.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from door_support import FUZZ_CASES, command_built_once, run_cli, sqlite_counts

CASES = FUZZ_CASES.get(settings.get_current_profile_name(), FUZZ_CASES["ci"])
FUZZ = settings(max_examples=CASES, deadline=None, suppress_health_check=list(HealthCheck))
HI = [{"role": "user", "content": "Hi"}]

# ---- strategies shared by both doors --------------------------------------------------------

HOSTILE_TEXT = st.sampled_from([
    "", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "[/red]", "[bold]x[/bold]", "[link=x]",
    "\u2028", "\ufeff", "é", "🙂", "x" * 300, "x" * 5000, "\n", "\r\n", "\\", '"', "null",
    "models/gpt", "1e999", "-0", "%s%n", "${HOME}", "../../etc/passwd",
])
TEXT = st.one_of(HOSTILE_TEXT, st.text(max_size=20),
                 st.text(alphabet=st.characters(codec="utf-8"), max_size=8))
NUMBERS = st.one_of(st.integers(min_value=-(2**80), max_value=2**80),
                    st.sampled_from([0, -1, 1, 2**31, 2**63, 2**63 - 1, 2**70, 10**30]),
                    st.floats(allow_nan=False, allow_infinity=False))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
KEYS = st.one_of(st.sampled_from(["role", "content", "type", "text", "model", "messages",
                                  "max_tokens", "custom_id", "body", "native", "input"]),
                 TEXT)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(KEYS, inner, max_size=3), max_leaves=8)

# ---- the JSONL door -------------------------------------------------------------------------

CHAT_FIELDS = ["messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n",
               "stop", "stream", "model", "response_format", "tools", "tool_choice", "user",
               "seed", "logprobs", "metadata", "unknown_field"]
MESSAGE_FIELDS = ["role", "content", "name", "tool_calls", "tool_call_id"]


@st.composite
def mutated_request(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request with one place replaced by an arbitrary JSON value."""
    line: dict[str, Any] = {"custom_id": draw(st.one_of(st.just("c"), TEXT)),
                            "body": {"messages": [{"role": "user", "content": "Hi"}],
                                     "max_tokens": 5}}
    where = draw(st.sampled_from(["line", "body", "message", "part", "native"]))
    value = draw(JSON)
    if where == "line":
        line[draw(st.sampled_from(["custom_id", "body", "native", "url", "method", "extra"]))] \
            = value
    elif where == "body":
        line["body"][draw(st.sampled_from(CHAT_FIELDS))] = value
    elif where == "message":
        line["body"]["messages"][0][draw(st.sampled_from(MESSAGE_FIELDS))] = value
    elif where == "part":
        line["body"]["messages"][0]["content"] = [{"type": "text", "text": "x",
                                                   draw(st.sampled_from(["type", "text",
                                                                         "image_url"])): value}]
    else:
        line.pop("body")
        line["native"] = {"max_tokens": 5, "messages": HI,
                          draw(st.sampled_from(["messages", "max_tokens", "system",
                                                "contents", "temperature"])): value}
    return line


def _json_text(obj: Any) -> str:
    try:
        return json.dumps(obj, ensure_ascii=False).encode("utf-8").decode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: written as an escape, as JSON allows
        return json.dumps(obj)


HOSTILE_LINES = st.one_of(
    st.integers(1, 6000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 6000).map(lambda n: '{"custom_id": "c", "body": ' * n + "{}" + "}" * n),
    st.integers(15, 6000).map(
        lambda n: '{"custom_id": "c", "body": {"messages": [{"role": "user", "content": "x"}],'
                  ' "max_tokens": ' + "9" * n + "}}"),
    st.sampled_from([
        '{"custom_id": "c", "body": {"messages": [{"role": "user", "content": "x"}], '
        '"temperature": NaN}}',
        '{"custom_id": "c", "body": {"temperature": Infinity}}',
        '{"custom_id": "c", "body": {"temperature": 1e999}}',
        '{"custom_id": "\\ud800", "body": {"messages": [{"role": "user", "content": "x"}]}}',
        '{"custom_id": "c", "body": {"messages": [{"role": "user", "content": "\\u0000"}]}}',
        '{"custom_id": "[/red]", "body": {"messages": []}}',
        '{"custom_id": "c", "body": {"messages": [{"role": ["user"], "content": "x"}]}}',
        '{"custom_id": "c", "body": {"messages": [{"role": {"a": 1}, "content": "x"}]}}',
        '{"custom_id": "c"', "", "   ", "{}", "[]", "null", "1", '"x"',
    ]),
)
LINES = st.one_of(
    mutated_request().map(_json_text),
    st.dictionaries(KEYS, JSON, max_size=4).map(_json_text),
    HOSTILE_LINES,
)
RAW_LINES = st.one_of(LINES.map(lambda t: t.encode("utf-8", "surrogatepass")),
                      st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" ")))
GOOD_LINE = json.dumps({"custom_id": "good", "body": {"messages": HI, "max_tokens": 5}})


def _jsonl_config(tmp_path: Path, db: Path) -> Path:
    config = tmp_path / "cfg.yaml"
    config.write_text(f"""
database: {{url: "sqlite:///{db}"}}
broker: {{url: "memory://"}}
providers:
  openai: {{api_key: k, allow_unlisted_models: true}}
  anthropic: {{api_key: k, allow_unlisted_models: true, options: {{api_version: "2023-06-01"}}}}
  gemini: {{api_key: k, allow_unlisted_models: true}}
""", encoding="utf-8")
    return config


# Hypothesis warns when it prints a large falsifying example; with warnings as errors that
# warning replaced the failure it was printing (seen once: the real assertion never showed).
LARGE_EXAMPLES = pytest.mark.filterwarnings(
    "ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning")


@LARGE_EXAMPLES
def test_the_jsonl_door_refuses_cleanly_and_stores_nothing_on_refusal(tmp_path: Path) -> None:
    db = tmp_path / "fuzz.db"
    config = _jsonl_config(tmp_path, db)
    path = tmp_path / "in.jsonl"
    seen = {"cases": 0, "refused": 0, "accepted": 0}

    @FUZZ
    @given(lines=st.lists(RAW_LINES, min_size=1, max_size=3), with_good=st.booleans(),
           provider=st.sampled_from(["openai", "anthropic", "gemini"]),
           strict=st.booleans())
    # Random cases are mostly refused; these make sure both verdicts are exercised every run.
    @example(lines=[GOOD_LINE.encode()], with_good=False, provider="openai", strict=False)
    @example(lines=[b"{}"], with_good=True, provider="gemini", strict=False)
    def case(lines: list[bytes], with_good: bool, provider: str, strict: bool) -> None:
        path.write_bytes(b"".join(line + b"\n" for line in
                                  ([GOOD_LINE.encode()] if with_good else []) + lines))
        before = sqlite_counts(db)
        result = run_cli("submit", str(path), "--provider", provider, "--model", "m",
                         "-c", str(config), *(["--strict-model"] if strict else []))
        seen["cases"] += 1
        assert result.code in (0, 2), result
        assert "Traceback" not in result.text
        after = sqlite_counts(db)
        if result.code == 2:
            seen["refused"] += 1
            assert after == before, result
            assert result.err.startswith("error: "), result
        else:
            seen["accepted"] += 1
            assert after["jobs"] == before["jobs"] + 1

    with command_built_once():
        case()
    print(f"\nJSONL door: {seen['cases']} cases, {seen['refused']} refused (exit 2), "
          f"{seen['accepted']} accepted, 0 tracebacks")
    assert seen["cases"] >= CASES and seen["refused"] > 0 and seen["accepted"] > 0


# ---- the config door ------------------------------------------------------------------------

URLS = st.one_of(st.sampled_from([
    "not a url", "mysql://u@h/db", "sqlite://", "sqlite:///x.db", "postgresql://",
    "postgresql+psycopg://u@h:notaport/db", "redis://", "amqp://guest:guest@h:5672//",
    "sqla+sqlite:///b.db", "kafka://h", "http://x", "://", "", "memory://",
]), TEXT)
CONFIG_SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT.filter(
    lambda s: "\x00" not in s and not any("\ud800" <= c <= "\udfff" for c in s)))
CONFIG_VALUES = st.recursive(CONFIG_SCALARS, lambda inner: st.lists(inner, max_size=3)
                             | st.dictionaries(st.text(string.ascii_lowercase, max_size=8),
                                               inner, max_size=3), max_leaves=6)


def _maybe(keys: dict[str, Any]) -> Any:
    return st.fixed_dictionaries({}, optional=keys)


PROVIDER = _maybe({
    "api_key": st.one_of(st.just("k"), CONFIG_VALUES),
    "api_key_env": CONFIG_VALUES, "enabled": CONFIG_VALUES, "base_url": URLS,
    "allow_unlisted_models": st.one_of(st.just(True), CONFIG_VALUES),
    "models": st.one_of(st.lists(_maybe({"name": CONFIG_VALUES,
                                         "max_requests": CONFIG_VALUES}), max_size=2),
                        CONFIG_VALUES),
    "limits": _maybe({"max_requests": CONFIG_VALUES, "max_bytes": CONFIG_VALUES}),
    "options": st.one_of(_maybe({"completion_window": st.one_of(st.just("24h"),
                                                                CONFIG_VALUES),
                                 "api_version": CONFIG_VALUES,
                                 "default_max_tokens": CONFIG_VALUES,
                                 "inline_max_bytes": CONFIG_VALUES,
                                 "nonsense": CONFIG_VALUES}), CONFIG_VALUES),
    "timeout_s": CONFIG_VALUES,
})
CONFIG = _maybe({
    "database": st.one_of(_maybe({"url": URLS, "echo": CONFIG_VALUES,
                                  "busy_timeout_ms": CONFIG_VALUES}), CONFIG_VALUES),
    "broker": st.one_of(_maybe({"url": URLS, "polling_interval_s": CONFIG_VALUES}),
                        CONFIG_VALUES),
    "worker": st.one_of(_maybe({"lease_s": CONFIG_VALUES, "tick_interval_s": CONFIG_VALUES}),
                        CONFIG_VALUES),
    "polling": _maybe({"min_s": CONFIG_VALUES, "max_s": CONFIG_VALUES,
                       "strategy": CONFIG_VALUES}),
    "providers": st.one_of(st.dictionaries(st.sampled_from(["openai", "anthropic", "gemini",
                                                            "nope"]), PROVIDER, max_size=3),
                           CONFIG_VALUES),
    "unknown": CONFIG_VALUES,
})
HOSTILE_YAML = st.one_of(
    st.integers(1, 3000).map(lambda n: "a: " + "[" * n + "]" * n + "\n"),
    st.integers(1, 3000).map(lambda n: "a:\n" + "".join(" " * i + "b:\n"
                                                         for i in range(1, min(n, 200)))),
    st.integers(1, 12).map(lambda n: "a0: &a0 [x, x]\n" + "".join(
        f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, n))),
    st.sampled_from([
        "!!python/object/apply:os.system ['echo hi']\n", "a: !!binary AAAA\n",
        "%YAML 9.9\n---\na: 1\n", "a: 1\na: 2\n", "? [a]\n: 1\n", "<<: {a: 1}\n",
        "a: *undefined\n", "\t\u0430: 1\n", "---\na: 1\n---\nb: 2\n", "a: " + "9" * 5000 + "\n",
        "database: {url: 2026-13-45}\n", "a: 2026-13-45\n", "a: .nan\n", "a: !!float x\n",
    ]),
    st.text(max_size=60),
)
VALID_CONFIG: dict[str, Any] = {
    "worker": {"lease_s": 60}, "polling": {"min_s": 1, "max_s": 60},
    "providers": {
        "openai": {"api_key": "k", "allow_unlisted_models": True,
                   "options": {"completion_window": "24h"}},
        "anthropic": {"api_key": "k", "allow_unlisted_models": True,
                      "options": {"api_version": "2023-06-01", "default_max_tokens": 16}},
        "gemini": {"api_key": "k", "allow_unlisted_models": True,
                   "options": {"api_version": "v1beta"}}}}
CONFIG_PATHS = [("worker", "lease_s"), ("polling", "min_s"), ("database", "url"),
                ("broker", "url"), ("providers", "openai", "options", "completion_window"),
                ("providers", "anthropic", "options", "api_version"),
                ("providers", "anthropic", "options", "default_max_tokens"),
                ("providers", "gemini", "options", "inline_max_bytes"),
                ("providers", "openai", "api_key"), ("providers", "gemini", "models"),
                ("providers", "openai", "limits", "max_requests"), ("retry", "max_attempts"),
                ("providers", "openai", "unknown"), ("unknown",)]


@st.composite
def mutated_config(draw: st.DrawFn) -> dict[str, Any]:
    """A configuration that works, with at most one place replaced by an arbitrary value."""
    config = json.loads(json.dumps(VALID_CONFIG))
    if draw(st.integers(0, 4)) == 0:
        return config  # some cases must get through to a stored job
    *parents, leaf = draw(st.sampled_from(CONFIG_PATHS))
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = draw(st.one_of(URLS, CONFIG_VALUES))
    return config


RAW_CONFIG = st.one_of(
    mutated_config().map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode("utf-8")),
    CONFIG.map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode("utf-8")),
    HOSTILE_YAML.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=60),
)


def test_the_config_door_refuses_cleanly_and_stores_nothing_on_refusal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "fuzz.db"
    config = tmp_path / "cfg.yaml"
    good = tmp_path / "in.jsonl"
    good.write_text(GOOD_LINE + "\n", encoding="utf-8")
    # Whatever the file says, a submit that gets past the config stores into this database:
    # the override is validated like the file's own value, and refusals are checked here.
    monkeypatch.setenv("LLMBATCH_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("LLMBATCH_BROKER_URL", "memory://")
    monkeypatch.delenv("LLMBATCH_CONFIG", raising=False)
    seen = {"cases": 0, "refused": 0, "accepted": 0}

    @FUZZ
    @given(content=RAW_CONFIG, provider=st.sampled_from(["openai", "anthropic", "gemini"]))
    def case(content: bytes, provider: str) -> None:
        config.write_bytes(content)
        checked = run_cli("config", "validate", str(config))
        seen["cases"] += 1
        assert checked.code in (0, 2), checked
        assert "Traceback" not in checked.text
        before = sqlite_counts(db)
        submitted = run_cli("submit", str(good), "--provider", provider, "--model", "m",
                            "-c", str(config))
        assert submitted.code in (0, 2), submitted
        assert "Traceback" not in submitted.text
        if checked.code == 2:
            seen["refused"] += 1
            assert submitted.code == 2, (checked, submitted)
        if submitted.code == 2:
            assert sqlite_counts(db) == before, submitted
        else:
            seen["accepted"] += 1

    with command_built_once():
        case()
    print(f"\nconfig door: {seen['cases']} cases, {seen['refused']} refused by config "
          f"validate (exit 2), {seen['accepted']} submitted, 0 tracebacks")
    assert seen["cases"] >= CASES and seen["refused"] > 0 and seen["accepted"] > 0

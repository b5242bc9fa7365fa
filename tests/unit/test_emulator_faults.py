"""Fault rules and profiles: what fires, how often, on what; and loading them from YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from llmbatch.emulator import (
    EmulatorSettings,
    FaultProfile,
    HttpFault,
    bundled_profiles,
    load_profile,
)
from llmbatch.emulator.faults import (
    FaultInjector,
    PoisonOutputFault,
    json_line,
    parse_rules,
    poison_answer,
)
from llmbatch.errors import ConfigError


def injector(*rules: dict[str, object], seed: int = 0) -> FaultInjector:
    return FaultInjector(FaultProfile(seed=seed, rules=tuple(parse_rules(rules))))


def statuses(inj: FaultInjector, operation: str, n: int, **tags: str) -> list[int | None]:
    out = []
    for _ in range(n):
        error = inj.for_call("openai", operation, tags).error
        out.append(error.status if error else None)
    return out


def test_an_http_rule_with_times_fires_on_the_next_n_matching_calls_only() -> None:
    inj = injector({"kind": "http", "operation": "batches.create", "status": 429, "times": 2})
    assert statuses(inj, "files.create", 3) == [None, None, None]
    assert statuses(inj, "batches.create", 3) == [429, 429, None]


def test_operation_patterns_match_exactly_by_prefix_or_everything() -> None:
    inj = injector({"kind": "http", "operation": "files.*", "status": 500})
    assert statuses(inj, "files.content", 1) == [500]
    assert statuses(inj, "batches.retrieve", 1) == [None]
    assert statuses(injector({"kind": "http", "status": 502}), "anything", 1) == [502]


def test_rules_apply_to_their_provider_only() -> None:
    inj = injector({"kind": "http", "provider": "gemini", "status": 503})
    assert inj.for_call("openai", "batches.create", {}).error is None
    assert inj.for_call("gemini", "batches.create", {}).error is not None


def test_a_rule_with_match_fires_only_for_batches_carrying_those_tags() -> None:
    inj = injector({"kind": "http", "operation": "batches.retrieve", "status": 500,
                    "match": {"job": "7"}})
    assert statuses(inj, "batches.retrieve", 1, job="8") == [None]
    assert statuses(inj, "batches.retrieve", 1) == [None]
    assert statuses(inj, "batches.retrieve", 1, job="7", other="x") == [500]


def test_probability_draws_are_reproducible_for_a_seed() -> None:
    rule = {"kind": "http", "status": 500, "probability": 0.3}
    first = statuses(injector(rule, seed=11), "x", 200)
    assert first == statuses(injector(rule, seed=11), "x", 200)
    assert first != statuses(injector(rule, seed=12), "x", 200)
    assert 30 < sum(1 for s in first if s) < 90


def test_draws_for_other_operations_do_not_shift_a_probabilistic_rule() -> None:
    rule = {"kind": "http", "operation": "batches.retrieve", "status": 500, "probability": 0.5}
    plain = statuses(injector(rule, seed=3), "batches.retrieve", 50)
    inj = injector(rule, seed=3)
    mixed = []
    for _ in range(50):
        statuses(inj, "files.create", 1)
        mixed += statuses(inj, "batches.retrieve", 1)
    assert mixed == plain


def test_a_delay_and_an_error_can_both_apply_to_one_call() -> None:
    inj = injector({"kind": "delay", "delay_s": 0.5}, {"kind": "http", "status": 504})
    drawn = inj.for_call("openai", "files.list", {})
    assert drawn.delay_s == 0.5
    assert drawn.error is not None and drawn.error.status == 504


def test_batch_faults_draw_one_rule_per_kind_and_ignore_call_rules() -> None:
    inj = injector(
        {"kind": "http", "status": 500},
        {"kind": "item_errors", "rate": 0.1, "times": 1},
        {"kind": "item_errors", "rate": 0.9},
        {"kind": "expire", "at_fraction": 0.2, "match": {"job": "x"}},
    )
    first = inj.for_batch("openai", {"job": "x"})
    assert first.item_errors is not None and first.item_errors.rate == 0.1
    assert first.expire is not None and first.fail is None and first.stuck is None
    second = inj.for_batch("openai", {})
    assert second.item_errors is not None and second.item_errors.rate == 0.9
    assert second.expire is None


def test_a_poison_output_rule_is_drawn_per_batch_and_hits_a_stable_share_of_items() -> None:
    inj = injector({"kind": "poison_output", "rate": 0.5, "poison": "huge_usage"})
    poison = inj.for_batch("openai", {}).poison
    assert isinstance(poison, PoisonOutputFault) and poison.poison == "huge_usage"
    hits = [poison.hits(0, "batch_1", f"q-{i}") for i in range(400)]
    assert 150 < sum(hits) < 250
    assert hits == [poison.hits(0, "batch_1", f"q-{i}") for i in range(400)]
    assert all(PoisonOutputFault(kind="poison_output").hits(0, "b", f"q-{i}")
               for i in range(50))  # rate 1 by default


@pytest.mark.parametrize(("poison", "tail"), [("nul", "\x00"), ("lone_surrogate", "\ud800")])
def test_text_poison_lands_in_every_providers_answer_text(poison: str, tail: str) -> None:
    openai_like = {"choices": [{"message": {"role": "assistant", "content": "hi"}}]}
    anthropic_like = {"content": [{"type": "text", "text": "hi"}], "role": "assistant"}
    gemini_like = {"candidates": [{"content": {"parts": [{"text": "hi"}], "role": "model"}}]}
    assert poison_answer(openai_like, poison)["choices"][0]["message"] == {
        "role": "assistant", "content": "hi" + tail}
    assert poison_answer(anthropic_like, poison)["content"][0]["text"] == "hi" + tail
    assert poison_answer(gemini_like, poison)["candidates"][0]["content"]["parts"][0] == {
        "text": "hi" + tail}
    assert openai_like["choices"][0]["message"]["content"] == "hi"  # a copy, not in place


def test_huge_usage_poison_sets_every_token_count_and_nothing_else() -> None:
    answer = {"usage": {"prompt_tokens": 5, "completion_tokens_details": {"reasoning_tokens": 0},
                        "note": 3},
              "usageMetadata": {"promptTokenCount": 4}, "created": 17}
    poisoned = poison_answer(answer, "huge_usage")
    assert poisoned == {"usage": {"prompt_tokens": 10**20,
                                  "completion_tokens_details": {"reasoning_tokens": 10**20},
                                  "note": 3},
                        "usageMetadata": {"promptTokenCount": 10**20}, "created": 17}


def test_a_result_line_with_a_lone_surrogate_is_written_as_its_json_escape() -> None:
    assert json_line({"t": "é"}) == '{"t":"é"}'.encode()
    assert json_line({"t": "é\ud800"}) == b'{"t":"\\u00e9\\ud800"}'


def test_describe_reports_remaining_budget_and_reset_restores_the_profile() -> None:
    inj = injector({"kind": "http", "status": 500, "times": 2})
    inj.for_call("openai", "x", {})
    [described] = inj.describe()
    assert (described["remaining"], described["fired"]) == (1, 1)
    inj.set_rules([{"kind": "delay", "delay_s": 1}], mode="append")
    assert len(inj.describe()) == 2
    inj.reset()
    assert [(r["kind"], r["remaining"]) for r in inj.describe()] == [("http", 2)]
    inj.set_rules([], mode="replace")
    assert inj.describe() == []


@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "http", "status": 200},
        {"kind": "http", "status": 429, "retry_after_s": 300},
        {"kind": "explode"},
        {"kind": "item_errors", "rate": 1.5},
        {"kind": "http", "status": 500, "surprise": True},
        {"kind": "stuck", "at_fraction": 1.0},
    ],
)
def test_malformed_rules_are_rejected(rule: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        parse_rules([rule])


def test_rules_given_as_models_are_accepted() -> None:
    [rule] = parse_rules([HttpFault(kind="http", status=503)])
    assert isinstance(rule, HttpFault)


def test_bundled_profiles_load() -> None:
    assert {"default", "fast", "chaos"} <= set(bundled_profiles())
    assert load_profile("fast").timing.run_base_s < 1
    chaos = load_profile("chaos")
    assert chaos.faults.rules and chaos.faults.seed == 7


def test_a_profile_file_sets_settings_and_overrides_win(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("timing:\n  validate_s: 3\napi_keys: [k1]\nfaults:\n  rules:\n"
                    "    - {kind: http, operation: files.create, status: 503, times: 1}\n")
    settings = load_profile(path, seed=5)
    assert settings.timing.validate_s == 3
    assert settings.api_keys == ("k1",)
    assert settings.seed == 5
    assert isinstance(settings.faults.rules[0], HttpFault)
    assert load_profile(None) == EmulatorSettings()


def test_a_bad_profile_names_the_offending_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("timing:\n  validate: 3\n")
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert "timing.validate: unknown key" in str(info.value)


def test_an_unknown_profile_name_lists_the_bundled_ones() -> None:
    with pytest.raises(ConfigError, match="fast"):
        load_profile("no-such-profile")


def test_a_profile_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_profile(path)


def test_settings_are_frozen_and_reject_unknown_keys() -> None:
    with pytest.raises(ValidationError):
        EmulatorSettings.model_validate({"timing": {"validate_s": 1}, "colour": "red"})
    settings = EmulatorSettings()
    with pytest.raises(ValidationError):
        settings.seed = 3  # type: ignore[misc]

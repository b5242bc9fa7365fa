"""Model rules (``domain.model_rules``) and where they come from: the price catalogue's context
window, each vendor's table (OpenAI reasoning models, Anthropic extended output), config
overrides, and per-job Anthropic betas."""

from __future__ import annotations

from typing import Any

import pytest

from llmbatch.config import ModelConfig, ProviderConfig
from llmbatch.domain.model_rules import ModelRules, certain_tokens, rule_problems
from llmbatch.domain.models import Endpoint, RequestLine
from llmbatch.errors import ConfigError, InputError
from llmbatch.providers.anthropic import AnthropicProvider
from llmbatch.providers.gemini import GeminiProvider
from llmbatch.providers.openai import OpenAIProvider
from llmbatch.service_layer.model_checks import LineRules, job_adapter, stored_job_adapter

pytestmark = pytest.mark.unit

HI = [{"role": "user", "content": "Hi"}]


def problems(adapter: Any, model: str, body: dict[str, Any], tokens: int = 10) -> list[str]:
    rules = LineRules(adapter, model=model, endpoint=Endpoint.CHAT)
    return [f"{p.field}: {p.message}"
            for p in rules.problems(RequestLine(0, "a", {"messages": HI, **body}), tokens)]


def openai(**config: Any) -> OpenAIProvider:
    return OpenAIProvider(ProviderConfig(**config))


@pytest.mark.parametrize("model", ["o3", "o4-mini-2025-04-16", "o1", "gpt-5", "gpt-5-mini"])
def test_reasoning_models_refuse_sampling_parameters_naming_the_field(model: str) -> None:
    found = problems(openai(), model, {"temperature": 0.2, "top_p": 0.5, "max_tokens": 10})
    assert found == [
        f"body.temperature: model {model} does not accept temperature (only 1)",
        f"body.top_p: model {model} does not accept top_p (only 1)",
        f"body.max_tokens: model {model} does not accept max_tokens; use "
        "max_completion_tokens"]


def test_the_default_value_and_models_without_rules_pass() -> None:
    assert problems(openai(), "o3", {"temperature": 1, "logprobs": False,
                                     "max_completion_tokens": 100}) == []
    for model in ("gpt-4o-mini", "gpt-5-chat-latest", "gpt-5.6-sol", "my-private-model"):
        assert problems(openai(), model, {"temperature": 0.2, "max_tokens": 10}) == []
    # True is not 1: a boolean where the default is a number is still refused.
    assert problems(openai(), "o3", {"temperature": True}) != []


def test_config_overrides_the_vendor_table() -> None:
    adapter = openai(models=(ModelConfig(name="o3", refused_params=()),
                             ModelConfig(name="gpt-4o-mini", refused_params=("seed",))))
    assert problems(adapter, "o3", {"temperature": 0.2}) == []
    assert problems(adapter, "gpt-4o-mini", {"seed": 3}) == [
        "body.seed: model gpt-4o-mini does not accept seed"]


def test_the_context_window_comes_from_the_catalogue_and_counts_output_where_the_vendor_does(
        ) -> None:
    rules = openai().model_rules("gpt-4o-mini", endpoint=Endpoint.CHAT)
    assert rules.context_window == 128_000 and rules.window_counts_output
    assert "genai-prices" in rules.sources[0]
    assert problems(openai(), "gpt-4o-mini", {"max_completion_tokens": 200_000}) == [
        "body: does not fit the 128,000-token context window of gpt-4o-mini: the prompt "
        "holds at least 4 tokens plus 200,000 output tokens asked"]
    gemini = GeminiProvider(ProviderConfig())
    assert not gemini.model_rules("gemini-2.5-flash", endpoint=Endpoint.CHAT)\
        .window_counts_output
    assert problems(gemini, "gemini-2.5-flash", {"max_completion_tokens": 2_000_000}) == []


def test_only_a_prompt_certainly_over_the_window_is_refused() -> None:
    adapter = openai(models=(ModelConfig(name="m", context_window=1000),))
    # The estimate (4 characters a token) says 2,000 tokens, but a prompt that size could
    # tokenize into fewer than 1,000: not certain, not refused.
    assert problems(adapter, "m", {}, tokens=2000) == []
    assert certain_tokens(2600) == 1040
    assert problems(adapter, "m", {}, tokens=2600) == [
        "body: does not fit the 1,000-token context window of m: the prompt holds at least "
        "1,040 tokens"]


def test_embedding_and_chat_models_serve_their_own_endpoint() -> None:
    with pytest.raises(InputError) as err:
        job_adapter(openai(), model="text-embedding-3-small", endpoint=Endpoint.CHAT)
    assert err.value.field == "endpoint"
    assert "does not serve chat requests (it serves: embeddings)" in err.value.message
    with pytest.raises(InputError):
        job_adapter(openai(), model="gpt-4o-mini", endpoint=Endpoint.EMBEDDINGS)
    job_adapter(openai(), model="some-new-embedder", endpoint=Endpoint.EMBEDDINGS)


def test_a_native_body_is_left_to_the_providers_own_check() -> None:
    rules = ModelRules(model="o3", refused={"temperature": ()})
    assert rule_problems(rules, None, estimated_tokens=1, output_tokens=None,
                         output_field="native") == []


def anthropic(**options: Any) -> AnthropicProvider:
    return AnthropicProvider(ProviderConfig(options=options))


def test_anthropic_max_tokens_above_128k_needs_the_extended_output_beta() -> None:
    body = {"max_tokens": 200_000}
    assert problems(anthropic(), "claude-opus-4-8", body) == [
        "body.max_tokens: model claude-opus-4-8 writes at most 128,000 output tokens, "
        "200,000 asked"]
    view, stored = job_adapter(anthropic(), model="claude-opus-4-8", endpoint=Endpoint.CHAT,
                               job_options={"betas": ["output-300k-2026-03-24"]})
    assert stored == {"betas": ["output-300k-2026-03-24"]}
    assert problems(view, "claude-opus-4-8", body) == []
    assert problems(view, "claude-opus-4-8", {"max_tokens": 300_001}) != []
    # A model the beta does not cover keeps the standard cap.
    assert problems(view, "claude-haiku-4-5", body) != []


def test_an_unknown_beta_is_refused_per_job_and_in_config() -> None:
    with pytest.raises(InputError) as err:
        job_adapter(anthropic(), model="claude-opus-4-8", endpoint=Endpoint.CHAT,
                    job_options={"betas": ["no-such-beta-2026-01-01"]})
    assert err.value.field == "betas"
    assert err.value.message.startswith("beta 'no-such-beta-2026-01-01' is not known to "
                                        "work in Anthropic batches")
    with pytest.raises(InputError, match="fast mode"):
        anthropic().job_options({"betas": ["fast-mode-2026-02-01"]})
    with pytest.raises(ConfigError) as config_err:
        anthropic(betas=["no-such-beta-2026-01-01"])
    assert config_err.value.problems[0].startswith("providers.anthropic.options.betas: ")
    allowed = anthropic(allow_unlisted_betas=True, betas=["files-api-2025-04-14"])
    assert allowed.job_options({"betas": ["no-such-beta-2026-01-01"]})


def test_a_provider_without_job_options_refuses_them() -> None:
    with pytest.raises(InputError, match="takes no per-job options"):
        job_adapter(openai(), model="gpt-4o-mini", endpoint=Endpoint.CHAT,
                    job_options={"betas": ["x"]})


def test_job_betas_add_to_the_configured_ones_and_reach_the_header() -> None:
    adapter = anthropic(betas=["prompt-caching-2024-07-31"])
    assert adapter.beta_header == {"anthropic-beta": "prompt-caching-2024-07-31"}
    view = stored_job_adapter(adapter, {"job_options": {
        "betas": ["output-300k-2026-03-24", "prompt-caching-2024-07-31"]}})
    assert isinstance(view, AnthropicProvider) and view is not adapter
    assert view.beta_header == {
        "anthropic-beta": "prompt-caching-2024-07-31,output-300k-2026-03-24"}
    assert adapter.options.betas == ("prompt-caching-2024-07-31",)  # shared adapter untouched
    assert stored_job_adapter(adapter, {}) is adapter


def test_the_remote_client_sends_a_jobs_betas_as_the_apis_form_field(tmp_path: Any) -> None:
    import httpx

    from llmbatch.client.backends import RemoteBackend

    sent: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.read())
        return httpx.Response(422, json={"type": "about:blank", "title": "bad", "status": 422,
                                         "detail": "refused", "errors": []},
                              headers={"content-type": "application/problem+json"})

    path = tmp_path / "in.jsonl"
    path.write_text('{"body": {"messages": [{"role": "user", "content": "hi"}]}}\n')
    backend = RemoteBackend("http://api.invalid", "key", transport=httpx.MockTransport(answer))
    with pytest.raises(InputError):
        backend.create(path, provider="anthropic", model=MODEL_OPUS, endpoint=Endpoint.CHAT,
                       name=None, metadata=None, idempotency_key=None,
                       betas=["output-300k-2026-03-24", "prompt-caching-2024-07-31"])
    assert b'name="betas"\r\n\r\noutput-300k-2026-03-24,prompt-caching-2024-07-31' in sent[0]


MODEL_OPUS = "claude-opus-4-8"


def test_a_responses_job_is_held_to_the_same_rules_and_its_output_field_is_named() -> None:
    rules = LineRules(openai(models=(ModelConfig(name="o3", max_output_tokens=1000),)),
                      model="o3", endpoint=Endpoint.RESPONSES)
    found = rules.problems(RequestLine(0, "r", {"input": "hi", "temperature": 0.5,
                                                "max_output_tokens": 5000}), 10)
    assert [(p.field, p.message) for p in found] == [
        ("body.temperature", "model o3 does not accept temperature (only 1)"),
        ("body.max_output_tokens", "model o3 writes at most 1,000 output tokens, 5,000 asked")]
    assert openai().model_rules("omni-moderation-latest",
                                endpoint=Endpoint.MODERATIONS).context_window is None

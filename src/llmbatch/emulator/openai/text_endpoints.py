"""``/v1/responses``, ``/v1/completions`` and ``/v1/moderations`` in a batch (PROVIDER_APIS A.8).

Each answers with the body its spec schema describes (``Response``, ``CreateCompletionResponse``,
``CreateModerationResponse``), content and token counts derived from the request alone, as the
chat endpoint does. Each refuses the names its request schema lacks (``CreateResponse``,
``CreateCompletionRequest``, ``CreateModerationRequest``; checked against the API description by
tests/contract/test_emulator_strictness.py) with OpenAI's "Unrecognized request argument".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from llmbatch.emulator import synth
from llmbatch.emulator.openai.endpoint_kit import Rejection, Usage, positive_int, unrecognized

__all__ = ["Completions", "Moderations", "Responses"]

_REASONING_PREFIXES: Final = ("o1", "o3", "o4", "gpt-5", "gpt-6")
# The Responses API's floor for max_output_tokens (its error text, PROVIDER_APIS A.2).
MIN_OUTPUT_TOKENS: Final = 16


def _streaming(body: Mapping[str, Any]) -> Rejection | None:
    if body.get("stream") is True:
        return Rejection(400, "Streaming is not supported in the Batch API.", "stream",
                         "invalid_value")
    return None


def _input_messages(value: Any) -> list[Any]:
    """Responses ``input`` as message-like items (a string is one user message)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return list(value) if isinstance(value, list) else []


class Responses:
    """``/v1/responses``: one assistant message (or function call), after a reasoning item on
    reasoning models; ``status: "incomplete"`` when ``max_output_tokens`` cuts it short."""

    # ``CreateResponse`` (its allOf merged).
    NAMES: Final = frozenset({
        "background", "context_management", "conversation", "include", "input",
        "instructions", "max_output_tokens", "max_tool_calls", "metadata", "model",
        "moderation", "parallel_tool_calls", "previous_response_id", "prompt",
        "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention", "reasoning",
        "safety_identifier", "service_tier", "store", "stream", "stream_options",
        "temperature", "text", "tool_choice", "tools", "top_logprobs", "top_p", "truncation",
        "user"})

    def reject(self, body: Mapping[str, Any]) -> Rejection | None:
        """Unknown names, nothing to answer, a token limit below 16, streaming."""
        if message := unrecognized(body, self.NAMES):
            return Rejection(400, message)
        if body.get("input") in (None, "", []) and not any(
                body.get(k) for k in ("prompt", "previous_response_id", "conversation")):
            return Rejection(400, "Missing required parameter: 'input'.", "input",
                             "missing_required_parameter")
        if problem := positive_int(body, "max_output_tokens", MIN_OUTPUT_TOKENS):
            return problem
        return _streaming(body)

    def prompt_tokens(self, body: Mapping[str, Any]) -> int:
        """Input item text plus instructions, with chat framing."""
        return synth.chat_prompt_tokens(_input_messages(body.get("input")),
                                        system=body.get("instructions"))

    def respond(
        self, body: Mapping[str, Any], *, created: int, response_id: str, default_dim: int
    ) -> tuple[dict[str, Any], Usage]:
        """A ``Response`` with ``usage`` in Responses terms (input/output tokens)."""
        seed = synth.digest(body)
        model = str(body.get("model", ""))
        limit = body.get("max_output_tokens")
        length, cut = synth.reply_length(seed, limit if isinstance(limit, int) else None)
        reasoning_model = model.startswith(_REASONING_PREFIXES)
        thought = length // 2 if reasoning_model and length > 1 else 0
        visible = max(length - thought, 1)
        output: list[dict[str, Any]] = []
        if thought:
            output.append({"id": f"rs_{response_id}", "type": "reasoning", "summary": []})
        call = self._function_call(body, seed, response_id)
        if call is not None:
            output.append(call)
            visible, cut = max(synth.estimate_tokens(call["arguments"]), 1), False
        else:
            text, structured = self._text(body, seed, visible)
            if structured:
                visible = max(synth.estimate_tokens(text), 1)
            output.append({"id": f"msg_{response_id}", "type": "message", "role": "assistant",
                           "status": "incomplete" if cut else "completed",
                           "content": [{"type": "output_text", "text": text,
                                        "annotations": [], "logprobs": []}]})
        prompt = self.prompt_tokens(body)
        cached = synth.cached_tokens(seed, prompt)
        produced = thought + visible
        asked = body.get("reasoning")
        reasoning: Mapping[str, Any] = asked if isinstance(asked, Mapping) else {}
        response = {
            "id": f"resp_{response_id}",
            "object": "response",
            "created_at": created,
            "completed_at": created,
            "status": "incomplete" if cut else "completed",
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": limit if isinstance(limit, int) else None,
            "model": model,
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "metadata": body.get("metadata") or {},
            "reasoning": {"effort": reasoning.get("effort", "medium") if reasoning_model
                          else None, "summary": None},
            "service_tier": "default",
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": {
                "input_tokens": prompt,
                "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
                "output_tokens": produced,
                "output_tokens_details": {"reasoning_tokens": thought},
                "total_tokens": prompt + produced,
            },
        }
        return response, Usage(input=prompt, cached=cached, output=produced, reasoning=thought)

    @staticmethod
    def _function_call(body: Mapping[str, Any], seed: bytes,
                       response_id: str) -> dict[str, Any] | None:
        """A ``function_call`` item for about half the requests offering function tools
        (Responses tools are flat: ``{"type": "function", "name", "parameters"}``)."""
        tools = [t for t in body.get("tools") or [] if isinstance(t, Mapping)
                 and t.get("type") == "function" and isinstance(t.get("name"), str)]
        choice = body.get("tool_choice", "auto")
        forced = None
        if isinstance(choice, Mapping):
            forced = choice.get("name") if isinstance(choice.get("name"), str) else None
            choice = "required"
        if not tools or not synth.wants_tool_call(seed, str(choice)):
            return None
        tool = tools[synth.pick_tool(seed, [t["name"] for t in tools], forced)]
        arguments = synth.json_instance(tool.get("parameters") or {"type": "object"}, seed)
        return {"id": f"fc_{response_id}", "type": "function_call",
                "call_id": f"call_{response_id[:24]}", "name": tool["name"],
                "arguments": json.dumps(arguments), "status": "completed"}

    @staticmethod
    def _text(body: Mapping[str, Any], seed: bytes, words: int) -> tuple[str, bool]:
        """Plain words, or JSON (flagged True) for ``text.format`` json_schema / json_object
        (Responses puts the schema directly in the format object)."""
        text = body.get("text")
        fmt = text.get("format") if isinstance(text, Mapping) else None
        if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
            return json.dumps(synth.json_instance(fmt.get("schema"), seed)), True
        if isinstance(fmt, Mapping) and fmt.get("type") == "json_object":
            return json.dumps({"answer": synth.reply_words(seed, words)}), True
        return synth.reply_words(seed, words), False


def _prompts(value: Any) -> list[str]:
    """Legacy ``prompt``: a string or a list of strings (token arrays count as text)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return [json.dumps(value)] if value not in (None, "", []) else []


class Completions:
    """``/v1/completions`` (legacy): ``n`` choices per prompt, ``max_tokens`` defaults to 16
    as the real endpoint's does."""

    # ``CreateCompletionRequest``.
    NAMES: Final = frozenset({
        "best_of", "echo", "frequency_penalty", "logit_bias", "logprobs", "max_tokens",
        "model", "n", "presence_penalty", "prompt", "seed", "stop", "stream",
        "stream_options", "suffix", "temperature", "top_p", "user"})
    DEFAULT_MAX_TOKENS: Final = 16

    def reject(self, body: Mapping[str, Any]) -> Rejection | None:
        """Unknown names, missing prompt, bad token limits or ``n``, streaming."""
        if message := unrecognized(body, self.NAMES):
            return Rejection(400, message)
        if "prompt" not in body:
            return Rejection(400, "Missing required parameter: 'prompt'.", "prompt",
                             "missing_required_parameter")
        for name in ("max_tokens", "n"):
            if problem := positive_int(body, name):
                return problem
        return _streaming(body)

    def prompt_tokens(self, body: Mapping[str, Any]) -> int:
        """Text tokens of every prompt."""
        return sum(synth.estimate_tokens(p) for p in _prompts(body.get("prompt"))) or 1

    def respond(
        self, body: Mapping[str, Any], *, created: int, response_id: str, default_dim: int
    ) -> tuple[dict[str, Any], Usage]:
        """A ``text_completion``."""
        seed = synth.digest(body)
        limit = body.get("max_tokens")
        limit = limit if isinstance(limit, int) else self.DEFAULT_MAX_TOKENS
        choices, output = [], 0
        count = max(len(_prompts(body.get("prompt"))), 1) * int(body.get("n") or 1)
        for index in range(count):
            choice_seed = synth.stream(seed, 32, f"choice:{index}")
            length, cut = synth.reply_length(choice_seed, limit)
            output += length
            choices.append({"index": index, "text": synth.reply_words(choice_seed, length),
                            "logprobs": None, "finish_reason": "length" if cut else "stop"})
        prompt = self.prompt_tokens(body)
        response = {
            "id": f"cmpl-{response_id}", "object": "text_completion", "created": created,
            "model": str(body.get("model", "")), "choices": choices,
            "system_fingerprint": "fp_emulator",
            "usage": {"prompt_tokens": prompt, "completion_tokens": output,
                      "total_tokens": prompt + output},
        }
        return response, Usage(input=prompt, output=output)


_CATEGORIES: Final = (
    "hate", "hate/threatening", "harassment", "harassment/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions", "sexual",
    "sexual/minors", "violence", "violence/graphic")
# Words that make the emulator flag a text as ``violence``: enough to test both verdicts.
_FLAG_WORDS: Final = ("kill", "murder")


def _moderation_inputs(value: Any) -> list[str] | None:
    """The texts to judge: a string, a list of strings, or a list of multimodal parts (one
    input, its text parts joined); None for a shape the API refuses."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return list(value)
        if all(isinstance(v, Mapping) and v.get("type") in ("text", "image_url")
               for v in value):
            return [" ".join(str(v.get("text", "")) for v in value)]
    return None


class Moderations:
    """``/v1/moderations``: one verdict per input; no ``usage`` in the body (A.8)."""

    # ``CreateModerationRequest``.
    NAMES: Final = frozenset({"input", "model"})
    DEFAULT_MODEL: Final = "omni-moderation-latest"

    def reject(self, body: Mapping[str, Any]) -> Rejection | None:
        """Unknown names, missing or malformed input, streaming."""
        if message := unrecognized(body, self.NAMES):
            return Rejection(400, message)
        if "input" not in body:
            return Rejection(400, "Missing required parameter: 'input'.", "input",
                             "missing_required_parameter")
        if _moderation_inputs(body["input"]) is None:
            return Rejection(400, "'$.input' is invalid. Please check the API reference: "
                             "https://platform.openai.com/docs/api-reference.", "input",
                             "invalid_value")
        return None

    def prompt_tokens(self, body: Mapping[str, Any]) -> int:
        """Text tokens of every input."""
        return sum(synth.estimate_tokens(t) for t in _moderation_inputs(body.get("input"))
                   or [])

    def respond(
        self, body: Mapping[str, Any], *, created: int, response_id: str, default_dim: int
    ) -> tuple[dict[str, Any], Usage]:
        """A ``CreateModerationResponse``: ``violence`` flagged for texts naming a flag
        word, every other category clear, scores drawn from the text."""
        results = []
        for text in _moderation_inputs(body.get("input")) or []:
            seed = synth.digest(text)
            violent = any(word in text.lower() for word in _FLAG_WORDS)
            scores = {name: round(synth.stream(seed, 1, name)[0] / 2550, 6)
                      for name in _CATEGORIES}
            if violent:
                scores["violence"] = 0.93
            categories = {name: violent and name == "violence" for name in _CATEGORIES}
            results.append({"flagged": violent, "categories": categories,
                            "category_scores": scores,
                            "category_applied_input_types": {n: ["text"] for n in _CATEGORIES}})
        response = {"id": f"modr-{response_id}",
                    "model": str(body.get("model") or self.DEFAULT_MODEL), "results": results}
        return response, Usage(input=self.prompt_tokens(body))

"""What each emulated endpoint answers for one request body.

An endpoint can *reject* a body the way the real endpoint would (HTTP 400 with an OpenAI error
body, which lands in the batch's error file) and otherwise *respond* with a body shaped like
the real one (spec ``CreateChatCompletionResponse`` / ``CreateEmbeddingResponse``), whose
content and token counts are derived from the request body alone (see ``synth``).
Supported: ``/v1/chat/completions`` and ``/v1/embeddings`` here, ``/v1/responses``,
``/v1/completions`` and ``/v1/moderations`` in ``text_endpoints``; other batch endpoints of the
real API (images, videos) are refused at batch creation with a message saying the emulator
lacks them.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Mapping
from typing import Any, Final

from llmbatch.emulator import synth
from llmbatch.emulator.openai.endpoint_kit import (
    Endpoint,
    Rejection,
    Usage,
    positive_int,
    unrecognized,
)
from llmbatch.emulator.openai.text_endpoints import Completions, Moderations, Responses

__all__ = ["ENDPOINTS", "Endpoint", "Rejection", "Usage", "unrecognized"]

_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


class ChatCompletions:
    """``/v1/chat/completions``."""

    # ``CreateChatCompletionRequest`` (OpenAI's API description, its allOf merged). Checked
    # against the description by tests/contract/test_emulator_strictness.py.
    NAMES: Final = frozenset({
        "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
        "max_completion_tokens", "max_tokens", "messages", "metadata", "modalities", "model",
        "moderation", "n", "parallel_tool_calls", "prediction", "presence_penalty",
        "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention",
        "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier",
        "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools",
        "top_logprobs", "top_p", "user", "verbosity", "web_search_options"})

    def reject(self, body: Mapping[str, Any]) -> Rejection | None:
        """Unknown names, missing messages, bad token limits, bad ``n``, streaming."""
        if message := unrecognized(body, self.NAMES):
            return Rejection(400, message)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return Rejection(400, "Missing required parameter: 'messages'.", "messages",
                             "missing_required_parameter")
        for name in ("max_tokens", "max_completion_tokens", "n"):
            if problem := positive_int(body, name):
                return problem
        if body.get("stream") is True:
            return Rejection(400, "Streaming is not supported in the Batch API.", "stream",
                             "invalid_value")
        return None

    def prompt_tokens(self, body: Mapping[str, Any]) -> int:
        """Message text tokens plus framing."""
        return synth.chat_prompt_tokens(body.get("messages"))

    def respond(
        self, body: Mapping[str, Any], *, created: int, response_id: str, default_dim: int
    ) -> tuple[dict[str, Any], Usage]:
        """A chat completion with ``n`` choices of deterministic text (or JSON)."""
        seed = synth.digest(body)
        model = str(body.get("model", ""))
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        reasoning_model = model.startswith(_REASONING_PREFIXES)
        choices, output, reasoning = [], 0, 0
        for index in range(int(body.get("n") or 1)):
            choice_seed = synth.stream(seed, 32, f"choice:{index}")
            length, cut = synth.reply_length(choice_seed, limit if isinstance(limit, int) else
                                             None)
            thought = length // 2 if reasoning_model and length > 1 else 0
            visible = max(length - thought, 1)
            message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None,
                                       "annotations": []}
            call = self._tool_call(body, choice_seed, f"{response_id}{index}")
            if call is not None:
                message["tool_calls"] = [call]
                visible, finish = max(synth.estimate_tokens(call["function"]["arguments"]),
                                      1), "tool_calls"
            else:
                content, structured = self._content(body, choice_seed, visible)
                if structured:
                    visible = max(synth.estimate_tokens(content), 1)
                message["content"], finish = content, "length" if cut else "stop"
            output += thought + visible
            reasoning += thought
            choices.append({"index": index, "message": message, "logprobs": None,
                            "finish_reason": finish})
        prompt = self.prompt_tokens(body)
        cached = synth.cached_tokens(seed, prompt)
        response = {
            "id": f"chatcmpl-{response_id}",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": output,
                "total_tokens": prompt + output,
                "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": reasoning,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": "fp_emulator",
        }
        return response, Usage(input=prompt, cached=cached, output=output, reasoning=reasoning)

    @staticmethod
    def _tool_call(body: Mapping[str, Any], seed: bytes, call_id: str) -> dict[str, Any] | None:
        """A function tool call (``tools`` of type function), for about half the requests
        that offer tools; always under ``tool_choice: required`` or a named function, never
        under ``none``. Arguments satisfy the function's ``parameters`` schema."""
        tools = [t["function"] for t in body.get("tools") or []
                 if isinstance(t, Mapping) and t.get("type") == "function"
                 and isinstance(t.get("function"), Mapping)
                 and isinstance(t["function"].get("name"), str)]
        choice = body.get("tool_choice", "auto")
        forced = None
        if isinstance(choice, Mapping):
            named = choice.get("function")
            forced = named.get("name") if isinstance(named, Mapping) else None
            choice = "required"
        if not tools or not synth.wants_tool_call(seed, str(choice)):
            return None
        tool = tools[synth.pick_tool(seed, [t["name"] for t in tools], forced)]
        arguments = synth.json_instance(tool.get("parameters") or {"type": "object"}, seed)
        return {"id": f"call_{call_id[:24]}", "type": "function",
                "function": {"name": tool["name"], "arguments": json.dumps(arguments)}}

    @staticmethod
    def _content(body: Mapping[str, Any], seed: bytes, words: int) -> tuple[str, bool]:
        """Plain words, or JSON (flagged True) when the request asks for JSON or a schema."""
        fmt = body.get("response_format")
        if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
            spec = fmt.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, Mapping) else None
            return json.dumps(synth.json_instance(schema, seed)), True
        if isinstance(fmt, Mapping) and fmt.get("type") == "json_object":
            return json.dumps({"answer": synth.reply_words(seed, words)}), True
        return synth.reply_words(seed, words), False


def _embedding_inputs(value: Any) -> list[Any] | None:
    """The list of inputs, or None when the shape is not one the API takes."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return [value]
        if all(isinstance(v, str) for v in value) or all(isinstance(v, list) for v in value):
            return list(value)
    return None


class Embeddings:
    """``/v1/embeddings``: deterministic unit vectors, ``dimensions`` or the configured size."""

    NAMES: Final = frozenset({"dimensions", "encoding_format", "input", "model", "user"})

    def reject(self, body: Mapping[str, Any]) -> Rejection | None:
        """Unknown names, missing or empty input, bad dimensions."""
        if message := unrecognized(body, self.NAMES):
            return Rejection(400, message)
        if "input" not in body:
            return Rejection(400, "Missing required parameter: 'input'.", "input",
                             "missing_required_parameter")
        inputs = _embedding_inputs(body["input"])
        if inputs is None or any(item in ("", []) for item in inputs):
            return Rejection(400, "'$.input' is invalid. Please check the API reference: "
                             "https://platform.openai.com/docs/api-reference.", "input",
                             "invalid_value")
        return positive_int(body, "dimensions")

    def prompt_tokens(self, body: Mapping[str, Any]) -> int:
        """Text tokens of string inputs, list length of token-array inputs."""
        total = 0
        for item in _embedding_inputs(body.get("input")) or []:
            total += len(item) if isinstance(item, list) else synth.estimate_tokens(item)
        return total

    def respond(
        self, body: Mapping[str, Any], *, created: int, response_id: str, default_dim: int
    ) -> tuple[dict[str, Any], Usage]:
        """One vector per input; base64 (float32 little-endian) when asked."""
        dim = body.get("dimensions") or default_dim
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(_embedding_inputs(body.get("input")) or []):
            vector: Any = synth.embedding(synth.digest(item), int(dim))
            if as_base64:
                vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        prompt = self.prompt_tokens(body)
        response = {
            "object": "list",
            "data": data,
            "model": str(body.get("model", "")),
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }
        return response, Usage(input=prompt)


ENDPOINTS: dict[str, Endpoint] = {
    "/v1/chat/completions": ChatCompletions(),
    "/v1/embeddings": Embeddings(),
    "/v1/responses": Responses(),
    "/v1/completions": Completions(),
    "/v1/moderations": Moderations(),
}

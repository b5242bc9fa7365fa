"""What OpenAI models certainly refuse, for the check at submit (``domain.model_rules``).

Reasoning models (the o-series and the original gpt-5 family) answer a Chat Completions body
that sets a sampling parameter with a 400 (``unsupported_parameter`` / ``unsupported_value``:
"Only the default (1) value is supported"), and refuse ``max_tokens`` in favour of
``max_completion_tokens``. In a batch that is every line failing hours after the job was
accepted, so such a job is refused at once. The later gpt-5.x models take sampling
parameters when ``reasoning_effort`` is ``none``, so nothing is refused for them; neither for
the ``-chat`` variants (not reasoning models) nor for any model not matched here.

Embedding models serve only ``/v1/embeddings`` and chat models never do.

Sources: OpenAI's reasoning-models guide and the API error texts above (docs/providers/
openai.md, "Model rules"); PROVIDER_APIS.md does not list them. Config overrides all of it
per model (``providers.openai.models[].refused_params``).
"""

from __future__ import annotations

import re
from typing import Any, Final

__all__ = ["CHAT_MODEL", "EMBEDDING_MODEL", "REASONING_HINTS", "REASONING_MODEL",
           "REASONING_REFUSED"]

_DATED: Final = r"(-\d{4}-\d{2}-\d{2})?"
REASONING_MODEL: Final = re.compile(
    rf"^(o1|o3|o4)(-mini|-pro|-preview|-deep-research)?{_DATED}$"
    rf"|^gpt-5(-mini|-nano|-pro|-codex)?{_DATED}$")
EMBEDDING_MODEL: Final = re.compile(r"^text-embedding-|^text-similarity-")
CHAT_MODEL: Final = re.compile(r"^(ft:)?(gpt-|chatgpt-|o\d)")
# Field -> the values still accepted (the default), on a reasoning model.
REASONING_REFUSED: Final[dict[str, tuple[Any, ...]]] = {
    "temperature": (1,), "top_p": (1,), "presence_penalty": (0,), "frequency_penalty": (0,),
    "logprobs": (False,), "top_logprobs": (), "logit_bias": (), "max_tokens": (),
}
REASONING_HINTS: Final = {"max_tokens": "use max_completion_tokens"}

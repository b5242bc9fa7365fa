"""Gemini Developer API Batch Mode adapter (``llmbatch[gemini]``).

- ``provider``: ``GeminiProvider``, the calls (upload, create inline or from a file, get, list,
  cancel, delete, download);
- ``translate``: the neutral chat body as a ``GenerateContentRequest`` (and the embeddings body
  as an ``EmbedContentRequest``), and responses back;
- ``wire``: Operations and result entries in neutral terms, as pure functions;
- ``errors``: the one translation of SDK and transport exceptions into ``llmbatch.errors``.

The ``google-genai`` SDK is imported in this package only, and only when a call needs it.
"""

from llmbatch.providers.gemini.errors import translate_error
from llmbatch.providers.gemini.provider import GeminiProvider
from llmbatch.providers.gemini.translate import to_embed_content, to_generate_content

__all__ = ["GeminiProvider", "to_embed_content", "to_generate_content", "translate_error"]

"""The ``minibatch`` provider: ``MiniBatchProvider`` (calls) and ``wire`` (formats)."""

from plugin_provider.minibatch.provider import MiniBatchOptions, MiniBatchProvider

__all__ = ["MiniBatchOptions", "MiniBatchProvider"]

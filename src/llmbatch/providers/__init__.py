"""Provider adapters: one module per vendor, found through the ``llmbatch.providers`` group."""

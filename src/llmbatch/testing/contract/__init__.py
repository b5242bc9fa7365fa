"""The provider contract: scenarios every adapter passes, the harness they run on, and the
built-in providers' harnesses. Import the submodules directly (``builtin`` needs the
emulator extra; ``scenarios`` and ``harness`` need pytest and httpx2 only)."""

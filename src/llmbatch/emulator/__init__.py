"""Offline, stateful imitations of the providers' batch APIs, for tests, demo and benchmarks.

One server, one path prefix per provider (``/openai/v1``, ``/anthropic``, ``/gemini``), shared
clock, blob store, fault injection and control endpoint (``/_emulator``). The official SDKs
work against it unchanged, and it refuses what the real APIs refuse, in their own error
shapes. Needs the ``llmbatch[emulator]`` extra (FastAPI, uvicorn); docs/emulator.md::

    from llmbatch.emulator import EmulatorServer, load_profile
    with EmulatorServer(load_profile("fast")) as emu:
        client = openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-test")
        ...
        emu.set_faults([{"kind": "http", "operation": "batches.create", "status": 429,
                         "retry_after_s": 0.1, "times": 1}])
"""

from llmbatch.emulator.app import PROVIDERS, create_app
from llmbatch.emulator.clock import AdvanceableClock, Clock, FakeClock, ShiftableClock, SystemClock
from llmbatch.emulator.faults import (
    DelayFault,
    ExpireFault,
    FailBatchFault,
    FaultProfile,
    FaultRule,
    HttpFault,
    ItemErrorsFault,
    StuckFault,
)
from llmbatch.emulator.runtime import EmulatorHTTPError, EmulatorRuntime
from llmbatch.emulator.server import EmulatorServer, serve
from llmbatch.emulator.settings import (
    EmulatorSettings,
    OpenAISettings,
    TimingSettings,
    bundled_profiles,
    load_profile,
)

__all__ = [
    "PROVIDERS",
    "AdvanceableClock",
    "Clock",
    "DelayFault",
    "EmulatorHTTPError",
    "EmulatorRuntime",
    "EmulatorServer",
    "EmulatorSettings",
    "ExpireFault",
    "FailBatchFault",
    "FakeClock",
    "FaultProfile",
    "FaultRule",
    "HttpFault",
    "ItemErrorsFault",
    "OpenAISettings",
    "ShiftableClock",
    "StuckFault",
    "SystemClock",
    "TimingSettings",
    "bundled_profiles",
    "create_app",
    "load_profile",
    "serve",
]

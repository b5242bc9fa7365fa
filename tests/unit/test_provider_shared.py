"""What every adapter shares instead of repeating: the lazily built client, the missing-key
error, the options check, compact JSON, the result-stream reader, file clean-up, and the
neutral batch failure."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import pytest
import structlog.testing
from pydantic import Field

from llmbatch.config import ProviderConfig
from llmbatch.domain.models import (
    BatchFailure,
    BatchProgress,
    FailureKind,
    ItemResult,
    RequestLine,
    SubmittedBatch,
)
from llmbatch.domain.states import ItemStatus
from llmbatch.errors import (
    AuthenticationError,
    ConfigError,
    InputError,
    PermanentProviderError,
    ResourceGoneError,
    TransientProviderError,
)
from llmbatch.providers.base import BatchProvider, EncodedLine, ProviderOptions
from llmbatch.providers.cleanup import delete_each, delete_orphan
from llmbatch.providers.jsonl import compact_json, parse_result_stream
from llmbatch.providers.sdk_client import LazyClient


class Client:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_lazy_client_is_built_once_on_first_use_even_by_many_threads() -> None:
    built: list[Client] = []
    gate = threading.Barrier(8)

    def build() -> Client:
        built.append(Client())
        return built[-1]

    lazy = LazyClient(build, Client.close)
    assert built == []
    seen: list[Client] = []

    def use() -> None:
        gate.wait()
        seen.append(lazy.get())

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1 and all(client is built[0] for client in seen)

    lazy.close()
    assert built[0].closed
    assert lazy.get() is not built[0]  # closing is not the end: the next use builds again


def test_a_lazy_client_leaves_an_injected_client_to_its_owner() -> None:
    injected = Client()
    lazy = LazyClient(Client, Client.close, injected=injected)
    lazy.close()
    assert lazy.get() is injected and not injected.closed


class Options(ProviderOptions):
    colour: str = "blue"
    size: int = Field(1, gt=0)


class Tiny(BatchProvider):
    """The least a provider is: every operation refused."""

    name: ClassVar[str] = "tiny"
    label: ClassVar[str] = "Tiny Inc."
    max_requests: ClassVar[int] = 10
    max_bytes: ClassVar[int] = 1000
    options_model: ClassVar[type[ProviderOptions]] = Options

    def encode(self, request: RequestLine, *, endpoint: Any, model: str) -> EncodedLine:
        raise NotImplementedError

    def submit(self, lines: Iterable[bytes], *, tag: str, endpoint: Any,
               model: str) -> SubmittedBatch:
        raise NotImplementedError

    def find_by_tag(self, tag: str) -> SubmittedBatch | None:
        raise NotImplementedError

    def poll(self, provider_batch_id: str) -> BatchProgress:
        raise NotImplementedError

    def iter_results(self, provider_batch_id: str, progress: BatchProgress) -> Iterator[ItemResult]:
        raise NotImplementedError

    def cancel(self, provider_batch_id: str) -> BatchProgress:
        raise NotImplementedError


def test_options_are_read_by_the_providers_own_model() -> None:
    assert Tiny(ProviderConfig(options={"colour": "red"})).options == Options(colour="red")
    with pytest.raises(ConfigError) as err:
        Tiny(ProviderConfig(options={"colour": 3, "size": 0, "shape": "round"}))
    assert err.value.problems == ["providers.tiny.options.colour: Input should be a valid string",
                                  "providers.tiny.options.size: Input should be greater than 0",
                                  "providers.tiny.options.shape: unknown key"]


def test_the_missing_key_error_names_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TINY_KEY", raising=False)
    with pytest.raises(AuthenticationError) as err:
        Tiny(ProviderConfig(api_key_env="TINY_KEY")).require_api_key()
    assert str(err.value) == ("[tiny missing_api_key] no Tiny Inc. API key: set the environment "
                              "variable TINY_KEY (named by providers.tiny.api_key_env)")
    with pytest.raises(AuthenticationError, match=r"set providers\.tiny\.api_key_env to the name"):
        Tiny(ProviderConfig()).require_api_key()
    monkeypatch.setenv("TINY_KEY", "k-env")
    assert Tiny(ProviderConfig(api_key_env="TINY_KEY")).require_api_key() == "k-env"


def test_compact_json_is_one_utf8_line_and_refuses_what_json_cannot_say() -> None:
    assert compact_json({"a": "é", "b": [1, 2]}, field="body") == '{"a":"é","b":[1,2]}'.encode()
    assert compact_json({"x": "\ud800"}, field="body") == b'{"x":"\\ud800"}'  # kept escaped
    with pytest.raises(InputError) as err:
        compact_json({"x": float("nan")}, field="native")
    assert err.value.field == "native"


def test_the_result_stream_skips_blank_and_unreadable_lines_and_says_where() -> None:
    def parse(raw: bytes, line_no: int) -> ItemResult | None:
        value = json.loads(raw).get("k") if raw.startswith(b"{") else None
        return ItemResult(value, ItemStatus.SUCCEEDED) if isinstance(value, str) else None

    chunks = [b'{"k": "a"}\n\n{"k"', b': "b"}\ngarbage\n{"k": "c"}']
    with structlog.testing.capture_logs() as logs:
        read = list(parse_result_stream(chunks, parse, provider="tiny", file="f1"))
    assert [(r.provider_key, r.line) for r in read] == [("a", 1), ("b", 3), ("c", 5)]
    assert [(e["event"], e["provider"], e["file"], e["line"]) for e in logs] == [
        ("llmbatch.provider.result_line_unreadable", "tiny", "f1", 4)]


def test_deleting_tries_every_object_and_reports_each_outcome() -> None:
    deleted: list[str] = []

    def delete(name: str) -> None:
        if name == "gone":
            raise ResourceGoneError("no such file", status_code=404)
        if name.startswith("broken"):
            raise TransientProviderError(f"{name} failed", status_code=503)
        deleted.append(name)

    done = delete_each([("input_file", "a"), ("output_file", None), ("error_file", "gone"),
                        ("batch", "b")], delete)
    assert deleted == ["a", "b"]
    assert [(d.kind, d.object_id, str(d.outcome)) for d in done] == [
        ("input_file", "a", "deleted"), ("error_file", "gone", "gone"),
        ("batch", "b", "deleted")]
    done = delete_each([("input_file", n) for n in ("broken-1", "c", "broken-2", "d")], delete)
    assert deleted == ["a", "b", "c", "d"]  # a failure does not stop the others
    assert [str(d.outcome) for d in done] == ["failed", "deleted", "failed", "deleted"]
    assert done[0].error is not None and "broken-1 failed" in done[0].error


def test_an_orphan_file_that_cannot_be_deleted_is_only_logged() -> None:
    def refuse(name: str) -> None:
        raise PermanentProviderError("nope", status_code=400)

    with structlog.testing.capture_logs() as logs:
        delete_orphan("file-1", refuse, provider="tiny")
    assert [(e["event"], e["file"]) for e in logs] == [("llmbatch.provider.orphan_file", "file-1")]


@pytest.mark.parametrize(("failure", "refunds"), [
    (BatchFailure(FailureKind.QUOTA, "queue full", retryable=True, items_ran=False), True),
    (BatchFailure(FailureKind.QUOTA, "queue full", retryable=True, items_ran=True), False),
    (BatchFailure(FailureKind.EXPIRED, "48 h", retryable=True, items_ran=False), False),
    (BatchFailure(FailureKind.INVALID_INPUT, "bad", retryable=False, items_ran=False), False),
    (BatchFailure.lost("404"), False),
])
def test_only_a_quota_refusal_that_ran_nothing_gives_the_attempt_back(
        failure: BatchFailure, refunds: bool) -> None:
    assert failure.refunds_attempts is refunds
    assert BatchFailure.from_dict(json.loads(json.dumps(failure.as_dict()))) == failure


def test_compact_json_writes_what_the_standard_encoder_writes() -> None:
    """``compact_json`` writes with ``orjson`` where it says the same as the standard
    encoder: the same JSON value, compact, UTF-8; ``null`` anywhere takes the standard path
    (``orjson`` would write NaN as ``null``), and so does what ``orjson`` refuses."""
    values: list[Any] = [
        {"a": "é\n\u2028\x01", "b": [1, -2, 2**63 - 1], "c": {"d": 1.5, "e": 1e-5, "f": 1e16}},
        {"n": None, "t": True}, {"text": "null"}, {1: "int key"}, {"big": 2**70}, [],
        {"x": "\ud800"}, {"deep": [[[[{"k": "v"}]]]]},
    ]
    for value in values:
        data = compact_json(value, field="body")
        assert json.loads(data) == json.loads(json.dumps(value)), value
        assert b"\n" not in data and b", " not in data and b": " not in data
    for bad in (float("inf"), float("-inf"), {"t": [float("nan")]}, {"d": object()}):
        with pytest.raises(InputError):
            compact_json(bad, field="body")

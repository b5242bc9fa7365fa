"""The official ``openai`` SDK against the emulator over real loopback HTTP."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from llmbatch.emulator import EmulatorServer, EmulatorSettings, load_profile

Lines = Callable[..., list[dict[str, Any]]]


def test_the_whole_batch_lifecycle_works_through_the_sdk(
    emu: EmulatorServer, openai_client: Any, chat_lines: Lines, to_jsonl: Any,
    wait_for_batch: Any,
) -> None:
    lines = chat_lines(12, prefix="life")
    uploaded = openai_client.files.create(
        file=("life.jsonl", to_jsonl(lines), "application/jsonl"), purpose="batch",
        expires_after={"anchor": "created_at", "seconds": 7200})
    assert uploaded.purpose == "batch" and uploaded.status == "processed"
    assert uploaded.bytes == len(to_jsonl(lines))
    assert uploaded.expires_at == uploaded.created_at + 7200
    assert openai_client.files.retrieve(uploaded.id).filename == "life.jsonl"

    batch = openai_client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
        metadata={"suite": "sdk-life"},
        output_expires_after={"anchor": "created_at", "seconds": 3600})
    assert batch.status == "validating"
    assert batch.metadata == {"suite": "sdk-life"}
    done = wait_for_batch(batch.id)
    assert done.status == "completed"
    assert done.request_counts.total == done.request_counts.completed == 12
    assert done.error_file_id is None
    assert done.usage.output_tokens > 0

    text = openai_client.files.content(done.output_file_id).text
    assert text.endswith("\n") and "\n\n" not in text
    results = {r["custom_id"]: r for r in map(json.loads, text.splitlines())}
    assert set(results) == {line["custom_id"] for line in lines}
    reply = results["life-0"]["response"]
    assert reply["status_code"] == 200
    assert reply["body"]["choices"][0]["message"]["role"] == "assistant"
    output_file = openai_client.files.retrieve(done.output_file_id)
    assert output_file.purpose == "batch_output"
    assert output_file.expires_at == output_file.created_at + 3600

    assert openai_client.files.delete(uploaded.id).deleted is True
    with pytest.raises(openai.NotFoundError) as info:
        openai_client.files.retrieve(uploaded.id)
    assert info.value.body["message"] == f"No such File object: {uploaded.id}"
    assert openai_client.batches.retrieve(batch.id).status == "completed"


def test_listing_paginates_with_the_sdk_cursor(
    openai_client: Any, submit_batch: Any, chat_lines: Lines
) -> None:
    created = [submit_batch(chat_lines(1, prefix=f"page{i}")).id for i in range(5)]
    first = openai_client.batches.list(limit=2)
    assert len(first.data) == 2 and first.has_more
    seen = [b.id for b in openai_client.batches.list(limit=2)]  # auto-paginates with after=
    assert seen.index(created[4]) < seen.index(created[0])
    assert set(created) <= set(seen)
    assert len(seen) == len(set(seen))
    files = [f.id for f in openai_client.files.list(purpose="batch", limit=3)]
    assert len(files) == len(set(files)) >= 5


def test_cancel_goes_through_cancelling_to_cancelled(
    openai_client: Any, submit_batch: Any, chat_lines: Lines, wait_for_batch: Any
) -> None:
    batch = submit_batch(chat_lines(4, prefix="cancel"))
    cancelling = openai_client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None
    cancelled = wait_for_batch(batch.id)
    assert cancelled.status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        openai_client.batches.cancel(batch.id)


def test_an_embeddings_batch_returns_vectors(
    openai_client: Any, submit_batch: Any, wait_for_batch: Any
) -> None:
    lines = [{"custom_id": f"emb-{i}", "method": "POST", "url": "/v1/embeddings",
              "body": {"model": "text-embedding-3-small", "input": f"text {i}"}}
             for i in range(3)]
    done = wait_for_batch(submit_batch(lines, endpoint="/v1/embeddings").id)
    rows = [json.loads(x) for x in openai_client.files.content(done.output_file_id).text
            .splitlines()]
    assert {len(r["response"]["body"]["data"][0]["embedding"]) for r in rows} == {8}


def test_a_429_with_retry_after_is_retried_by_the_sdk(
    emu: EmulatorServer, openai_client: Any, to_jsonl: Any, chat_lines: Lines
) -> None:
    emu.set_faults([{"kind": "http", "operation": "files.create", "status": 429,
                     "retry_after_s": 0.2, "times": 1}])
    started = time.monotonic()
    uploaded = openai_client.files.create(file=("r.jsonl", to_jsonl(chat_lines(1))),
                                          purpose="batch")
    assert time.monotonic() - started >= 0.2
    assert uploaded.id.startswith("file-")
    stats = emu.stats()
    assert stats["calls"]["openai"]["files.create"] == 2
    assert stats["faults_injected"]["openai"]["files.create"] == 1


def test_the_429_carries_retry_after_headers_and_an_openai_body(emu: EmulatorServer) -> None:
    emu.set_faults([{"kind": "http", "operation": "batches.list", "status": 429,
                     "retry_after_s": 1.5}])
    response = httpx.get(f"{emu.openai_base_url}/batches",
                         headers={"Authorization": "Bearer k"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.headers["retry-after-ms"] == "1500"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert response.headers["x-request-id"].startswith("req_")


def test_persistent_5xx_exhausts_the_sdk_retries(
    emu: EmulatorServer, openai_client: Any
) -> None:
    emu.set_faults([{"kind": "http", "operation": "batches.retrieve", "status": 503,
                     "times": 3, "retry_after_s": 0.05}])
    client = openai_client.with_options(max_retries=2)
    with pytest.raises(openai.InternalServerError):
        client.batches.retrieve("batch_whatever")
    assert emu.stats()["calls"]["openai"]["batches.retrieve"] == 3
    with pytest.raises(openai.NotFoundError):  # the rule is used up: now a plain 404
        client.batches.retrieve("batch_whatever")


def test_a_delay_fault_makes_the_client_time_out(emu: EmulatorServer, openai_client: Any) -> None:
    emu.set_faults([{"kind": "delay", "operation": "files.list", "delay_s": 1.0, "times": 1}])
    with pytest.raises(openai.APITimeoutError):
        openai_client.with_options(timeout=0.2, max_retries=0).files.list()


def test_faults_can_target_one_batch_by_its_metadata_tag(
    emu: EmulatorServer, openai_client: Any, submit_batch: Any, chat_lines: Lines,
    wait_for_batch: Any,
) -> None:
    emu.set_faults([
        {"kind": "item_errors", "rate": 1.0, "shape": "error", "match": {"job": "doomed"}},
        {"kind": "http", "operation": "batches.retrieve", "status": 500,
         "match": {"job": "doomed"}, "times": 1},
    ])
    fine = wait_for_batch(submit_batch(chat_lines(3, prefix="fine"), metadata={"job": "ok"}).id)
    assert fine.request_counts.failed == 0
    doomed = submit_batch(chat_lines(3, prefix="doom"), metadata={"job": "doomed"})
    done = wait_for_batch(doomed.id)  # the first retrieve fails, the SDK retries it
    assert done.output_file_id is None
    errors = [json.loads(x) for x in openai_client.files.content(done.error_file_id).text
              .splitlines()]
    assert {(e["response"], e["error"]["code"]) for e in errors} == {(None, "server_error")}
    assert emu.stats()["faults_injected"]["openai"] == {"batches.retrieve": 1}


def test_stats_count_creates_per_tag_to_expose_duplicates(
    emu: EmulatorServer, submit_batch: Any, chat_lines: Lines
) -> None:
    submit_batch(chat_lines(1, prefix="dup-a"), metadata={"llmbatch_batch_id": "pb-1"})
    submit_batch(chat_lines(1, prefix="dup-b"), metadata={"llmbatch_batch_id": "pb-1"})
    submit_batch(chat_lines(1, prefix="dup-c"), metadata={"llmbatch_batch_id": "pb-2"})
    stats = emu.stats()
    assert stats["batches_created"] == {"openai": 3}
    assert stats["creates_by_tag"]["openai"] == {"llmbatch_batch_id=pb-1": 2,
                                                 "llmbatch_batch_id=pb-2": 1}


def test_stats_report_the_peak_of_concurrent_requests(emu: EmulatorServer) -> None:
    emu.set_faults([{"kind": "delay", "operation": "files.list", "delay_s": 0.3}])
    barrier = threading.Barrier(6)

    def call() -> None:
        with httpx.Client() as client:
            barrier.wait()
            client.get(f"{emu.openai_base_url}/files", headers={"Authorization": "Bearer k"})

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert emu.stats()["max_in_flight"] >= 4
    deadline = time.monotonic() + 5  # an earlier test's abandoned slow call may still run
    while emu.stats()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert emu.stats()["in_flight"] == 0


def test_requests_without_a_key_get_openai_401(emu: EmulatorServer) -> None:
    response = httpx.get(f"{emu.openai_base_url}/batches")
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "You didn't provide an API key" in error["message"]
    assert emu.stats()["auth_failures"] == {"openai": 1}


def test_only_configured_keys_are_accepted_when_keys_are_set() -> None:
    with EmulatorServer(EmulatorSettings(api_keys=("sk-good",))) as server:
        with (openai.OpenAI(base_url=server.openai_base_url, api_key="sk-wrong-key-123") as bad,
              pytest.raises(openai.AuthenticationError) as info):
            bad.batches.list()
        assert info.value.code == "invalid_api_key"
        assert "sk-wrong-key-123" not in info.value.message
        with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-good") as good:
            assert good.batches.list().data == []


def test_uploads_are_checked_like_the_real_service(emu: EmulatorServer, openai_client: Any) -> None:
    with pytest.raises(openai.BadRequestError, match=r"Must be \.jsonl"):
        openai_client.files.create(file=("data.csv", b"a,b\n"), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="purpose"):
        openai_client.files.create(file=("x.jsonl", b"{}\n"), purpose="nonsense")
    response = httpx.post(f"{emu.openai_base_url}/files", headers={"Authorization": "Bearer k"},
                          files={"file": ("x.jsonl", b"{}\n")})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "missing_required_parameter"
    assert openai_client.files.create(file=("n.txt", b"notes"), purpose="user_data").bytes == 5


def test_unknown_routes_and_bad_json_get_openai_errors(emu: EmulatorServer) -> None:
    auth = {"Authorization": "Bearer k"}
    response = httpx.get(f"{emu.openai_base_url}/nothing/here", headers=auth)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Invalid URL (GET /v1/nothing/here)"
    response = httpx.post(f"{emu.openai_base_url}/batches", headers=auth, content=b"{oops")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("We could not parse the JSON body")
    response = httpx.get(f"{emu.openai_base_url}/batches?limit=101", headers=auth)
    assert response.status_code == 400


def test_the_control_endpoint_manages_faults_stats_and_clock(emu: EmulatorServer) -> None:
    control = f"{emu.url}/_emulator"
    assert httpx.get(f"{control}/health").json() == {"status": "ok"}
    rules = {"rules": [{"kind": "http", "operation": "files.list", "status": 502, "times": 1}]}
    view = httpx.post(f"{control}/faults", json=rules).json()
    assert view["rules"][0]["remaining"] == 1
    auth = {"Authorization": "Bearer k"}
    assert httpx.get(f"{emu.openai_base_url}/files", headers=auth).status_code == 502
    assert httpx.get(f"{emu.openai_base_url}/files", headers=auth).status_code == 200
    assert httpx.get(f"{control}/stats").json()["calls"]["openai"]["files.list"] == 2
    bad = httpx.post(f"{control}/faults", json={"rules": [{"kind": "http", "status": 99}]})
    assert bad.status_code == 422
    httpx.post(f"{control}/faults", json={**rules, "mode": "append"})
    assert len(httpx.get(f"{control}/faults").json()["rules"]) == 2
    assert httpx.delete(f"{control}/faults").json()["rules"] == []
    assert httpx.post(f"{control}/reset", json={"stats": True}).json() == {"status": "ok"}
    assert httpx.get(f"{control}/stats").json()["calls"] == {}
    assert httpx.get(f"{control}/settings").json()["timing"]["validate_s"] == 0.2
    assert httpx.get(f"{control}/clock").json()["now"] > 1_600_000_000


def test_advancing_the_clock_expires_a_stuck_batch(chat_lines: Lines, to_jsonl: Any) -> None:
    settings = load_profile("fast").model_copy(update={"faults": load_profile(None).faults})
    with EmulatorServer(settings) as server:
        server.set_faults([{"kind": "stuck", "at_fraction": 0.5}])
        with openai.OpenAI(base_url=server.openai_base_url, api_key="k") as client:
            uploaded = client.files.create(file=("s.jsonl", to_jsonl(chat_lines(4))),
                                           purpose="batch")
            batch = client.batches.create(input_file_id=uploaded.id, completion_window="24h",
                                          endpoint="/v1/chat/completions")
            time.sleep(1.0)  # long past the 0.8 s a healthy batch needs
            assert client.batches.retrieve(batch.id).status == "in_progress"
            moved = httpx.post(f"{server.url}/_emulator/clock", json={"advance_s": 86_400})
            assert moved.status_code == 200
            expired = client.batches.retrieve(batch.id)
            assert expired.status == "expired"
            assert expired.request_counts.completed == 2
            errors = client.files.content(expired.error_file_id).text.splitlines()
            assert [json.loads(e)["error"]["code"] for e in errors] == ["batch_expired"] * 2


def test_serve_runs_the_emulator_in_the_foreground_from_a_profile(tmp_path: Any) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text("api_keys: [sk-cli]\ntiming: {validate_s: 0.1}\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = ("from llmbatch.emulator import serve; "
            f"serve('127.0.0.1', {port}, {str(profile)!r}, log_level='warning')")
    process = subprocess.Popen([sys.executable, "-c", code])
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                settings = httpx.get(f"{base}/_emulator/settings").json()
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        assert settings["api_keys"] == ["sk-cli"]
        assert settings["timing"]["validate_s"] == 0.1
        denied = httpx.get(f"{base}/openai/v1/batches", headers={"Authorization": "Bearer x"})
        assert denied.status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_server_runs_once() -> None:
    server = EmulatorServer()
    with server:
        assert httpx.get(f"{server.url}/_emulator/health").status_code == 200
    with pytest.raises(RuntimeError, match="runs once"):
        server.start()


def test_the_synchronous_chat_endpoint_answers_what_a_batch_line_holds(
    emu: EmulatorServer, openai_client: Any, chat_lines: Lines, to_jsonl: Any,
    wait_for_batch: Any,
) -> None:
    # The comparison with SDK loops (benchmarks/compare_litellm.py) relies on both paths
    # getting the same synthesized answer for the same body.
    lines = chat_lines(3, prefix="sync")
    uploaded = openai_client.files.create(
        file=("sync.jsonl", to_jsonl(lines), "application/jsonl"), purpose="batch")
    batch = openai_client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    done = wait_for_batch(batch.id)
    text = openai_client.files.content(done.output_file_id).text
    in_batch = {r["custom_id"]: r["response"]["body"] for r in map(json.loads, text.splitlines())}
    for line in lines:
        answer = openai_client.chat.completions.create(**line["body"])
        assert answer.object == "chat.completion"
        expected = in_batch[line["custom_id"]]
        assert answer.choices[0].message.content == expected["choices"][0]["message"]["content"]
        assert answer.usage.model_dump(exclude_none=True) == expected["usage"]


def test_the_synchronous_chat_endpoint_refuses_what_the_batch_line_would(
    emu: EmulatorServer, openai_client: Any, chat_lines: Lines,
) -> None:
    body = chat_lines(1)[0]["body"]
    with pytest.raises(openai.BadRequestError, match="Unrecognized request argument"):
        openai_client.chat.completions.create(**body, extra_body={"colour": "blue"})
    with pytest.raises(openai.BadRequestError, match="does not stream"):
        openai_client.chat.completions.create(**body, stream=True)

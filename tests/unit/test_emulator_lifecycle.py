"""The OpenAI emulator's batch lifecycle and results, driven by a fake clock (no HTTP)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from llmbatch.emulator import EmulatorHTTPError, EmulatorRuntime, EmulatorSettings, FakeClock
from llmbatch.emulator.openai import OpenAIService

TIMING = {"validate_s": 10, "run_base_s": 100, "run_per_item_s": 0, "finalize_s": 5,
          "cancel_s": 3}


@dataclass
class World:
    clock: FakeClock
    runtime: EmulatorRuntime
    service: OpenAIService

    def upload(self, lines: list[Any], *, purpose: str = "batch") -> str:
        blob = self.runtime.ids.new("file-")
        text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
        self.runtime.blobs.path(blob).write_text(text)
        return str(self.service.add_file(blob_id=blob, filename="in.jsonl", purpose=purpose,
                                          expires_after_s=None)["id"])

    def create(self, lines: list[Any], **params: Any) -> dict[str, Any]:
        file_id = self.upload(lines)
        return self.service.create_batch({"input_file_id": file_id, "completion_window": "24h",
                                          "endpoint": "/v1/chat/completions", **params})

    def at(self, seconds_after_create: float, batch: dict[str, Any]) -> dict[str, Any]:
        self.clock.advance(batch["created_at"] + seconds_after_create - self.clock.now())
        return self.service.retrieve_batch(batch["id"])

    def lines(self, file_id: str | None) -> list[dict[str, Any]]:
        assert file_id is not None
        text = self.service.content_path(file_id).read_text()
        assert text.endswith("\n") and "\n\n" not in text
        return [json.loads(line) for line in text.splitlines()]


def make_world(**settings: Any) -> World:
    clock = FakeClock(1_750_000_000.0)
    merged = {"timing": TIMING, **settings}
    runtime = EmulatorRuntime.build(EmulatorSettings.model_validate(merged), clock)
    return World(clock, runtime, OpenAIService(runtime))


@pytest.fixture
def world() -> Iterator[World]:
    w = make_world()
    yield w
    w.runtime.close()


def chat(n: int, prefix: str = "r", model: str = "gpt-4o-mini", **body: Any) -> list[Any]:
    return [{"custom_id": f"{prefix}{i}", "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": model, "messages": [{"role": "user", "content": f"hello {i}"}],
                      **body}} for i in range(n)]


def test_a_batch_moves_through_every_status_with_its_timestamps(world: World) -> None:
    batch = world.create(chat(10), metadata={"job": "j1"})
    assert batch["status"] == "validating"
    assert batch["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert batch["expires_at"] == batch["created_at"] + 86_400
    assert batch["metadata"] == {"job": "j1"}
    assert batch["model"] == "gpt-4o-mini"
    running = world.at(60, batch)
    assert running["status"] == "in_progress"
    assert running["in_progress_at"] == batch["created_at"] + 10
    assert running["request_counts"] == {"total": 10, "completed": 5, "failed": 0}
    assert running["output_file_id"] is None
    assert world.at(112, batch)["status"] == "finalizing"
    done = world.at(120, batch)
    assert done["status"] == "completed"
    assert done["finalizing_at"] == batch["created_at"] + 110
    assert done["completed_at"] == batch["created_at"] + 115
    assert done["request_counts"] == {"total": 10, "completed": 10, "failed": 0}
    assert done["error_file_id"] is None
    assert done["errors"] is None
    assert {done[k] for k in ("failed_at", "expired_at", "cancelling_at", "cancelled_at")} == {
        None}
    output = world.lines(done["output_file_id"])
    assert sorted(line["custom_id"] for line in output) == sorted(f"r{i}" for i in range(10))
    assert world.service.file(done["output_file_id"]).purpose == "batch_output"


def test_usage_aggregates_the_output_lines(world: World) -> None:
    done = world.at(200, world.create(chat(7, max_tokens=30)))
    bodies = [line["response"]["body"] for line in world.lines(done["output_file_id"])]
    usage = done["usage"]
    assert usage["input_tokens"] == sum(b["usage"]["prompt_tokens"] for b in bodies)
    assert usage["output_tokens"] == sum(b["usage"]["completion_tokens"] for b in bodies)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert all(b["usage"]["completion_tokens"] <= 30 for b in bodies)


def test_outputs_are_shuffled_but_deterministic(world: World) -> None:
    lines = chat(600)
    first = world.at(200, world.create(lines))
    second = world.at(200, world.create(lines))
    out1 = world.lines(first["output_file_id"])
    out2 = world.lines(second["output_file_id"])
    assert [x["custom_id"] for x in out1] != [f"r{i}" for i in range(600)]
    by_id1 = {x["custom_id"]: x["response"]["body"] for x in out1}
    by_id2 = {x["custom_id"]: x["response"]["body"] for x in out2}
    for custom_id, body in by_id1.items():
        assert body["choices"] == by_id2[custom_id]["choices"]
        assert body["usage"] == by_id2[custom_id]["usage"]


def test_item_errors_come_in_both_line_shapes_and_are_counted(world: World) -> None:
    world.runtime.faults.set_rules([{"kind": "item_errors", "rate": 0.3, "shape": "mixed",
                                     "status_code": 503}], mode="replace")
    done = world.at(200, world.create(chat(200)))
    errors = world.lines(done["error_file_id"])
    counts = done["request_counts"]
    assert counts["failed"] == len(errors) > 0
    assert counts["completed"] == len(world.lines(done["output_file_id"]))
    assert counts["completed"] + counts["failed"] == 200
    top_level = [e for e in errors if e["response"] is None]
    http = [e for e in errors if e["error"] is None]
    assert top_level and http and len(top_level) + len(http) == len(errors)
    assert {e["error"]["code"] for e in top_level} == {"server_error"}
    assert {e["response"]["status_code"] for e in http} == {503}
    assert all(set(e["response"]["body"]["error"]) == {"message", "type", "param", "code"}
               for e in http)


def test_live_counts_include_failures_as_they_happen(world: World) -> None:
    world.runtime.faults.set_rules([{"kind": "item_errors", "rate": 0.5}], mode="replace")
    batch = world.create(chat(100))
    mid = world.at(60, batch)["request_counts"]
    assert mid["completed"] + mid["failed"] == 50
    assert 0 < mid["failed"] < 50
    end = world.at(200, batch)["request_counts"]
    assert end["failed"] >= mid["failed"] and end["completed"] >= mid["completed"]


def test_a_request_the_endpoint_rejects_lands_in_the_error_file(world: World) -> None:
    lines = chat(3)
    lines[1]["body"]["max_tokens"] = 0
    done = world.at(200, world.create(lines))
    [error] = world.lines(done["error_file_id"])
    assert error["custom_id"] == "r1"
    assert error["error"] is None
    assert error["response"]["status_code"] == 400
    assert error["response"]["body"]["error"]["code"] == "integer_below_min_value"
    assert done["request_counts"] == {"total": 3, "completed": 2, "failed": 1}


def test_a_batch_where_every_request_failed_completes_without_an_output_file(
    world: World,
) -> None:
    world.runtime.faults.set_rules([{"kind": "item_errors", "rate": 1.0}], mode="replace")
    done = world.at(200, world.create(chat(9)))
    assert done["status"] == "completed"
    assert done["output_file_id"] is None
    assert done["request_counts"] == {"total": 9, "completed": 0, "failed": 9}
    assert len(world.lines(done["error_file_id"])) == 9


def test_cancel_keeps_finished_results_and_reports_the_rest_as_batch_cancelled(
    world: World,
) -> None:
    batch = world.create(chat(100))
    world.at(40, batch)
    cancelling = world.service.cancel_batch(batch["id"])
    assert cancelling["status"] == "cancelling"
    assert cancelling["cancelling_at"] == batch["created_at"] + 40
    assert cancelling["output_file_id"] is None
    done = world.at(50, batch)
    assert done["status"] == "cancelled"
    assert done["cancelled_at"] == batch["created_at"] + 43
    assert done["request_counts"] == {"total": 100, "completed": 30, "failed": 0}
    assert len(world.lines(done["output_file_id"])) == 30
    cancelled = world.lines(done["error_file_id"])
    assert len(cancelled) == 70
    assert {e["error"]["code"] for e in cancelled} == {"batch_cancelled"}
    assert all(e["response"] is None for e in cancelled)


def test_cancelled_requests_can_be_left_out_of_the_error_file() -> None:
    w = make_world(openai={"cancelled_requests": "omit"})
    try:
        batch = w.create(chat(100))
        w.at(40, batch)
        w.service.cancel_batch(batch["id"])
        done = w.at(50, batch)
        assert done["error_file_id"] is None
        assert len(w.lines(done["output_file_id"])) == 30
    finally:
        w.runtime.close()


def test_cancelling_a_completed_batch_is_refused(world: World) -> None:
    batch = world.create(chat(2))
    world.at(200, batch)
    with pytest.raises(EmulatorHTTPError) as info:
        world.service.cancel_batch(batch["id"])
    assert info.value.status == 400
    assert "completed" in info.value.body["error"]["message"]


def test_a_batch_cancelled_while_validating_has_no_result_files(world: World) -> None:
    batch = world.create(chat(5))
    world.service.cancel_batch(batch["id"])
    done = world.at(100, batch)
    assert done["status"] == "cancelled"
    assert done["output_file_id"] is None and done["error_file_id"] is None
    assert done["in_progress_at"] is None


def test_expiry_fault_gives_partial_results_and_batch_expired_lines(world: World) -> None:
    world.runtime.faults.set_rules([{"kind": "expire", "at_fraction": 0.25,
                                     "match": {"job": "late"}}], mode="replace")
    untouched = world.create(chat(4), metadata={"job": "other"})
    batch = world.create(chat(40), metadata={"job": "late"})
    done = world.at(200, batch)
    assert done["status"] == "expired"
    assert done["expired_at"] == batch["created_at"] + 35
    assert done["request_counts"] == {"total": 40, "completed": 10, "failed": 0}
    assert len(world.lines(done["output_file_id"])) == 10
    expired = world.lines(done["error_file_id"])
    assert len(expired) == 30
    assert {e["error"]["code"] for e in expired} == {"batch_expired"}
    assert world.service.retrieve_batch(untouched["id"])["status"] == "completed"


def test_a_stuck_batch_stays_in_progress_then_expires_at_its_deadline(world: World) -> None:
    world.runtime.faults.set_rules([{"kind": "stuck", "at_fraction": 0.5, "times": 1}],
                                   mode="replace")
    batch = world.create(chat(10))
    assert world.at(50_000, batch)["status"] == "in_progress"
    assert world.at(50_000, batch)["request_counts"]["completed"] == 5
    done = world.at(86_400, batch)
    assert done["status"] == "expired"
    assert len(world.lines(done["error_file_id"])) == 5
    assert world.at(200, world.create(chat(1)))["status"] == "completed"


def test_fail_batch_fault_fails_validation_with_the_given_code(world: World) -> None:
    world.runtime.faults.set_rules([{"kind": "fail_batch", "code": "token_limit_exceeded"}],
                                   mode="replace")
    failed = world.at(20, world.create(chat(3)))
    assert failed["status"] == "failed"
    assert failed["failed_at"] == failed["created_at"] + 10
    assert failed["errors"]["data"][0]["code"] == "token_limit_exceeded"
    assert failed["request_counts"] == {"total": 0, "completed": 0, "failed": 0}


def test_the_enqueued_token_limit_fails_batches_beyond_it_until_others_finish() -> None:
    w = make_world(openai={"enqueued_token_limits": {"gpt-4o-mini": 200}})
    try:
        first = w.create(chat(10))  # about 100 prompt tokens
        second = w.create(chat(10))
        third = w.create(chat(10))
        assert w.at(20, first)["status"] == "in_progress"
        assert w.service.retrieve_batch(second["id"])["status"] == "in_progress"
        failed = w.service.retrieve_batch(third["id"])
        assert failed["status"] == "failed"
        [error] = failed["errors"]["data"]
        assert error["code"] == "token_limit_exceeded"
        assert error["line"] is None and error["param"] is None
        assert "Enqueued token limit reached for gpt-4o-mini" in error["message"]
        w.at(500, first)
        assert w.at(20, w.create(chat(10)))["status"] == "in_progress"
    finally:
        w.runtime.close()


def test_the_enqueued_token_limit_can_refuse_synchronously() -> None:
    w = make_world(openai={"enqueued_token_limits": {"*": 50}, "token_limit_mode": "sync"})
    try:
        with pytest.raises(EmulatorHTTPError) as info:
            w.create(chat(10))
        assert info.value.status == 429
        assert info.value.body["error"]["code"] == "token_limit_exceeded"
        assert w.service.list_batches(after=None, limit=10)["data"] == []
    finally:
        w.runtime.close()


def test_deleting_the_input_file_mid_run_does_not_break_results(world: World) -> None:
    batch = world.create(chat(5))
    world.at(30, batch)
    assert world.service.delete_file(batch["input_file_id"])["deleted"] is True
    done = world.at(200, batch)
    assert len(world.lines(done["output_file_id"])) == 5
    with pytest.raises(EmulatorHTTPError) as info:
        world.service.file(batch["input_file_id"])
    assert info.value.status == 404


def test_files_expire_and_then_read_as_missing(world: World) -> None:
    file_id = world.upload(chat(1))
    record = world.service.file(file_id)
    assert record.expires_at == record.created_at + 30 * 86_400
    world.clock.advance(30 * 86_400)
    with pytest.raises(EmulatorHTTPError):
        world.service.file(file_id)


def test_output_files_honour_output_expires_after(world: World) -> None:
    done = world.at(200, world.create(
        chat(1), output_expires_after={"anchor": "created_at", "seconds": 3600}))
    record = world.service.file(done["output_file_id"])
    assert record.expires_at == record.created_at + 3600


def test_embeddings_batches_return_deterministic_vectors() -> None:
    w = make_world(openai={"embedding_dim": 4})
    try:
        lines = [{"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
                  "body": {"model": "text-embedding-3-small", "input": ["same", f"t{i}"]}}
                 for i in range(3)]
        file_id = w.upload(lines)
        batch = w.service.create_batch({"input_file_id": file_id, "endpoint": "/v1/embeddings",
                                        "completion_window": "24h"})
        done = w.at(200, batch)
        bodies = {x["custom_id"]: x["response"]["body"] for x in w.lines(done["output_file_id"])}
        vectors = [b["data"][0]["embedding"] for b in bodies.values()]
        assert all(len(v) == 4 for v in vectors)
        assert vectors[0] == vectors[1] == vectors[2]
        assert bodies["e0"]["data"][1]["embedding"] != bodies["e1"]["data"][1]["embedding"]
        assert bodies["e0"]["object"] == "list"
    finally:
        w.runtime.close()


def test_list_batches_pages_newest_first(world: World) -> None:
    ids = [world.create(chat(1))["id"] for _ in range(5)]
    page = world.service.list_batches(after=None, limit=2)
    assert [b["id"] for b in page["data"]] == ids[::-1][:2]
    assert page["has_more"] is True
    assert page["first_id"] == ids[4] and page["last_id"] == ids[3]
    rest = world.service.list_batches(after=page["last_id"], limit=10)
    assert [b["id"] for b in rest["data"]] == ids[::-1][2:]
    assert rest["has_more"] is False


def test_reset_state_forgets_files_and_batches(world: World) -> None:
    batch = world.create(chat(1))
    world.runtime.reset(state=True)
    with pytest.raises(EmulatorHTTPError):
        world.service.retrieve_batch(batch["id"])
    assert not any(world.runtime.blobs.root.iterdir())

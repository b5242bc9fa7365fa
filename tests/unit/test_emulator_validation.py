"""Validation like the real service: batch-level ``failed`` errors and create-time 4xx."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmbatch.emulator import EmulatorHTTPError, EmulatorRuntime, EmulatorSettings, FakeClock
from llmbatch.emulator.openai import OpenAIService
from llmbatch.emulator.openai.validation import scan_input
from llmbatch.emulator.settings import OpenAISettings

CHAT = "/v1/chat/completions"


def line(custom_id: str = "a", model: str = "gpt-4o-mini", url: str = CHAT, **extra: Any) -> str:
    record = {"custom_id": custom_id, "method": "POST", "url": url,
              "body": {"model": model, "messages": [{"role": "user", "content": "hi"}]}}
    record.update(extra)
    return json.dumps(record)


def scan(tmp_path: Path, text: str, **settings: Any) -> Any:
    path = tmp_path / "in.jsonl"
    path.write_text(text)
    return scan_input(path, endpoint_url=CHAT, settings=OpenAISettings(**settings),
                      batch_id="batch_1", seed=0, item_errors=None)


def codes(result: Any) -> list[tuple[str, int | None]]:
    return [(e["code"], e["line"]) for e in result.errors]


def test_a_valid_file_reports_count_model_and_prompt_tokens(tmp_path: Path) -> None:
    result = scan(tmp_path, line("a") + "\n" + line("b") + "\n")
    assert result.errors == []
    assert result.total == 2
    assert result.model == "gpt-4o-mini"
    assert result.prompt_tokens > 0


def test_an_unparseable_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    result = scan(tmp_path, line("a") + "\n{not json\n" + line("c") + "\n[1, 2]\n")
    assert codes(result) == [("invalid_json_line", 2), ("invalid_json_line", 4)]
    assert result.errors[0]["message"] == "This line is not parseable as valid JSON."


def test_a_url_that_differs_from_the_batch_endpoint_is_url_mismatch(tmp_path: Path) -> None:
    result = scan(tmp_path, line("a") + "\n" + line("b", url="/v1/embeddings") + "\n")
    assert codes(result) == [("url_mismatch", 2)]
    assert result.errors[0]["param"] == "url"


def test_more_than_one_model_is_model_mismatch(tmp_path: Path) -> None:
    result = scan(tmp_path, line("a") + "\n" + line("b", model="gpt-4o") + "\n")
    assert codes(result) == [("model_mismatch", 2)]


def test_a_repeated_custom_id_is_duplicate_custom_id(tmp_path: Path) -> None:
    result = scan(tmp_path, line("a") + "\n" + line("b") + "\n" + line("a") + "\n")
    assert codes(result) == [("duplicate_custom_id", 3)]


def test_an_empty_file_is_empty_file(tmp_path: Path) -> None:
    assert codes(scan(tmp_path, "")) == [("empty_file", None)]
    assert codes(scan(tmp_path, "\n\n")) == [("empty_file", None)]


def test_more_requests_than_allowed_is_too_many_tasks(tmp_path: Path) -> None:
    text = "".join(line(f"r{i}") + "\n" for i in range(4))
    assert codes(scan(tmp_path, text, max_requests=3)) == [("too_many_tasks", None)]
    assert scan(tmp_path, text, max_requests=4).errors == []


def test_a_file_over_the_byte_limit_fails(tmp_path: Path) -> None:
    text = "".join(line(f"r{i}") + "\n" for i in range(4))
    assert codes(scan(tmp_path, text, max_batch_bytes=100)) == [("file_too_large", None)]


def test_blank_lines_fail_between_requests_but_not_at_the_end(tmp_path: Path) -> None:
    assert scan(tmp_path, line("a") + "\n\n\n").errors == []
    assert codes(scan(tmp_path, line("a") + "\n\n" + line("b") + "\n")) == [
        ("invalid_json_line", 2)]


def test_crlf_line_endings_are_accepted(tmp_path: Path) -> None:
    assert scan(tmp_path, line("a") + "\r\n" + line("b") + "\r\n").errors == []


@pytest.mark.parametrize(
    ("mutation", "code", "param"),
    [
        ({"custom_id": None}, "missing_required_parameter", "custom_id"),
        ({"method": "GET"}, "invalid_value", "method"),
        ({"body": "text"}, "missing_required_parameter", "body"),
        ({"body": {"messages": []}}, "missing_required_parameter", "body.model"),
    ],
)
def test_a_malformed_request_line_names_the_parameter(
    tmp_path: Path, mutation: dict[str, Any], code: str, param: str
) -> None:
    record = {**json.loads(line("x")), **mutation}
    result = scan(tmp_path, json.dumps(record) + "\n")
    assert [(e["code"], e["param"], e["line"]) for e in result.errors] == [(code, param, 1)]


def test_reported_errors_are_capped(tmp_path: Path) -> None:
    result = scan(tmp_path, "nope\n" * 50, max_reported_errors=5)
    assert len(result.errors) == 5


# -- through the service: failed batches and create-time errors --------------------------------


@pytest.fixture
def service() -> Any:
    runtime = EmulatorRuntime.build(EmulatorSettings(), FakeClock())
    yield OpenAIService(runtime)
    runtime.close()


def upload(service: OpenAIService, text: str, purpose: str = "batch") -> str:
    blob = service.runtime.ids.new("file-")
    service.runtime.blobs.path(blob).write_text(text)
    record = service.add_file(blob_id=blob, filename="in.jsonl", purpose=purpose,
                              expires_after_s=None)
    return str(record["id"])


def create(service: OpenAIService, **params: Any) -> dict[str, Any]:
    return service.create_batch({"endpoint": CHAT, "completion_window": "24h", **params})


def test_an_invalid_file_makes_a_failed_batch_with_errors(service: OpenAIService) -> None:
    batch = create(service, input_file_id=upload(service, "oops\n"))
    assert batch["status"] == "validating"
    service.runtime.advance_clock(10)
    failed = service.retrieve_batch(batch["id"])
    assert failed["status"] == "failed"
    assert failed["errors"] == {"object": "list", "data": [{
        "code": "invalid_json_line", "message": "This line is not parseable as valid JSON.",
        "param": None, "line": 1}]}
    assert failed["output_file_id"] is None and failed["error_file_id"] is None


def error_of(call: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(EmulatorHTTPError) as info:
        call()
    return info.value.status, info.value.body["error"]


def test_an_unknown_input_file_is_404(service: OpenAIService) -> None:
    status, error = error_of(lambda: create(service, input_file_id="file-nope"))
    assert status == 404
    assert error == {"message": "No such File object: file-nope",
                     "type": "invalid_request_error", "param": "input_file_id", "code": None}


def test_an_input_file_with_another_purpose_is_400(service: OpenAIService) -> None:
    file_id = upload(service, line() + "\n", purpose="user_data")
    status, error = error_of(lambda: create(service, input_file_id=file_id))
    assert status == 400
    assert "purpose 'batch'" in error["message"]


@pytest.mark.parametrize(
    ("params", "param", "status"),
    [
        ({"endpoint": "/v1/nope"}, "endpoint", 400),
        ({"endpoint": "/v1/videos"}, "endpoint", 400),
        ({"completion_window": "48h"}, "completion_window", 400),
        ({"completion_window": None}, "completion_window", 400),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", 400),
        ({"metadata": {"k": "v" * 513}}, "metadata", 400),
        ({"output_expires_after": {"anchor": "created_at", "seconds": 60}},
         "output_expires_after.seconds", 400),
        ({"output_expires_after": {"anchor": "now", "seconds": 3600}},
         "output_expires_after.anchor", 400),
    ],
)
def test_bad_create_parameters_are_400_naming_the_parameter(
    service: OpenAIService, params: dict[str, Any], param: str, status: int
) -> None:
    file_id = upload(service, line() + "\n")
    got, error = error_of(lambda: create(service, **{"input_file_id": file_id, **params}))
    assert (got, error["param"]) == (status, param)
    assert error["type"] == "invalid_request_error"


def test_a_missing_input_file_id_is_missing_required_parameter(service: OpenAIService) -> None:
    status, error = error_of(lambda: create(service))
    assert status == 400
    assert error["code"] == "missing_required_parameter"
    assert error["param"] == "input_file_id"

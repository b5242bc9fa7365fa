"""What the API writes about a request passes through the redaction step: a problem body
quoting the caller's input (a job id in the path, a custom_id, a file name) and uvicorn's
access log line, whose request target uvicorn percent-encodes (``jane%40example.org``: the
redactor must see it decoded). The real API process is checked end to end by
tests/integration/test_privacy.py."""

from __future__ import annotations

import io
import json
import logging

from llmbatch.api.models import ProblemError
from llmbatch.api.problems import problem_response

EMAIL, PHONE, KEY = "jane.doe@example.org", "+1 415 555 0133", "sk-proj-AbC123dEf456gHi789"


def test_a_problem_body_masks_what_it_quotes() -> None:
    problem = problem_response(
        422, f"requests:2: field 'custom_id': duplicate custom_id '{EMAIL}'",
        instance=f"/v1/jobs/{PHONE}/cancel",
        errors=[ProblemError(message=f"unknown model '{KEY}'", file=f"in-{EMAIL}.jsonl",
                             line=2, field="model", text=f"in-{EMAIL}.jsonl:2: {KEY}")])
    body = bytes(problem.body).decode()
    assert EMAIL not in body and PHONE not in body and KEY not in body
    doc = json.loads(body)
    assert doc["detail"] == "requests:2: field 'custom_id': duplicate custom_id '[email]'"
    assert doc["instance"] == "/v1/jobs/[phone]/cancel"
    # (an email address's local part may hold "in-", its domain ".jsonl": all masked)
    assert doc["errors"][0] == {"message": "unknown model '[api-key]'", "file": "[email]",
                                "line": 2, "field": "model", "text": "[email]:2: [api-key]"}
    assert doc["status"] == 422 and problem.media_type == "application/problem+json"


def test_the_access_log_line_is_decoded_then_masked(captured_logs: io.StringIO) -> None:
    access = logging.getLogger("uvicorn.access")
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
                "/v1/jobs/jane.doe%40example.org/items?custom_id=%2B1+415+555+0133&x=%2B1%20415"
                "%20555%200133", "1.1", 404)
    logging.getLogger("uvicorn.error").info("plain %s", "jane.doe@example.org")
    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    assert [line["event"] for line in lines] == [
        '127.0.0.1:5000 - "GET /v1/jobs/[email]/items?custom_id=[phone]&x=[phone] HTTP/1.1" 404',
        "plain [email]"]

"""The JSON shape of ``POST /v1/validations``: the input door's whole verdict on a job's
requests, what ``llmbatch validate`` and ``submit --dry-run`` print, with nothing stored."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from llmbatch.api.models import ProblemError
from llmbatch.domain.models import Endpoint
from llmbatch.errors import InputError
from llmbatch.service_layer.intake import IntakeReport, validate_file

if TYPE_CHECKING:
    from llmbatch.bootstrap import Runtime

__all__ = ["ValidationOut"]


class ValidationOut(BaseModel):
    """Whether the requests would be accepted; every problem (the first 20 listed, all
    counted) with its file, line and field, and what would be done unasked."""

    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        "ok": False, "file": "prompts.jsonl", "model": "gpt-4o-mini", "requests": 2,
        "problem_count": 1, "problems": [{
            "message": "must be a JSON object", "file": "prompts.jsonl", "line": 3,
            "field": "body", "text": "prompts.jsonl:3: field 'body' must be a JSON object"}],
        "warnings": []}]})

    ok: bool = Field(description="Whether a job of these requests would be accepted")
    file: str = Field(description="The name problems give the input (the uploaded file's)")
    model: str
    requests: int = Field(description="Requests that passed")
    problem_count: int = Field(description="Every problem found, listed or not")
    problems: list[ProblemError] = Field(description="The first problems, in file order")
    warnings: list[str] = Field(description="Things a job would do unasked, one line each")

    @classmethod
    def of_file(cls, rt: Runtime, path: Path, *, provider: str, model: str, endpoint: Endpoint,
                strict_model: bool, job_options: dict[str, Any] | None,
                shown_as: str | None = None) -> ValidationOut:
        """``intake.validate_file`` on ``path``, as the API answers it and the CLI and client
        read it in every mode (``shown_as``: the name the caller knows the file by)."""
        report = validate_file(rt, path, provider=provider, model=model, endpoint=endpoint,
                               strict_model=strict_model, job_options=job_options)
        return cls.from_report(report, shown_as=shown_as or str(path), actual=str(path))

    @classmethod
    def from_report(cls, report: IntakeReport, *, shown_as: str,
                    actual: str) -> ValidationOut:
        """The report on file ``actual``, its problems naming the file ``shown_as``."""
        def named(text: str) -> str:
            return text.replace(actual, shown_as)

        problems = []
        for p in report.problems:
            file = shown_as if p.file == actual else p.file
            shown = InputError(p.message, file=file, line=p.line, field=p.field)
            problems.append(ProblemError(message=p.message, file=file, line=p.line,
                                         field=p.field, text=str(shown)))
        return cls(ok=report.ok, file=shown_as, model=report.model, requests=report.requests,
                   problem_count=report.problem_count, problems=problems,
                   warnings=[named(w) for w in report.warnings()])

    def report(self) -> IntakeReport:
        """Back as the report the CLI prints (``cli.validate.print_report``)."""
        return IntakeReport(file=self.file, model=self.model, requests=self.requests,
                            problems=[InputError(p.message, file=p.file, line=p.line,
                                                 field=p.field) for p in self.problems],
                            problem_count=self.problem_count)

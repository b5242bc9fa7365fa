"""The input door: one validation pass over a JSONL file, shared by ``submit`` (which stores
what passes), ``llmbatch validate`` / ``submit --dry-run`` (which store nothing) and, next,
the REST API.

Every line is checked to the end of the file, so that one run names every problem (the first
``MAX_LISTED`` listed, the rest counted): UTF-8, JSON within the limits of
``domain.input_limits``, the envelope, the neutral body against OpenAI's request schema, a
native body against the provider's own (``BatchProvider.native_problems``), what the adapter
cannot translate, and the provider's per-request size and the model's token quota. Before the
file, ``preflight`` refuses what would certainly fail later: an unknown or disabled provider, an
unknown model, an endpoint the provider lacks, a missing API key.

Duplicate ids are not kept in memory (a set of every id costs ~125 bytes a line): ``submit``
leaves them to the items table's unique constraint (``db.item_ingest``) and, when it fires,
names the lines with ``check_file``; ``check_file`` (``validate``, ``--dry-run``) spills the
ids to disk (``duplicate_ids.SpilledIds``). Either way the refusal names file:line:field.
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final, NamedTuple, Protocol

from llmbatch import json_text
from llmbatch.bootstrap import Runtime
from llmbatch.domain.input_limits import MAX_LINE_BYTES
from llmbatch.domain.models import Endpoint, RequestLine, new_tuple
from llmbatch.domain.plain_chat import PlainChat, PlainChatReader
from llmbatch.domain.requests import parse_request_line
from llmbatch.domain.tokens import estimate_tokens
from llmbatch.errors import AuthenticationError, ConfigError, InputError, InputProblems
from llmbatch.providers.base import BatchLimits, BatchProvider, EncodedLine
from llmbatch.service_layer.input_lines import input_lines
from llmbatch.service_layer.model_checks import LineRules, job_adapter

__all__ = ["MAX_LISTED", "AcceptedLine", "IdSink", "Intake", "IntakeReport", "check_file",
           "preflight", "stored_request", "validate_file"]

MAX_LISTED: Final = 20


class AcceptedLine(NamedTuple):
    """A line that passed every check, ready to store; ``output_limit`` is the adapter's
    ``max_output_tokens`` for it (what bounds its cost), ``stored`` the JSON text of its
    ``request`` column (``stored_request``). A tuple: one is made per line."""

    request: RequestLine
    encoded: EncodedLine
    tokens: int
    line: int
    output_limit: int | None
    stored: str


class IdSink(Protocol):
    """Where the intake sends each parsed line's ids when duplicates are checked in the pass
    (``duplicate_ids.SpilledIds``); ``provider_key`` is None for a line not encoded."""

    def add(self, line: int, custom_id: str, provider_key: str | None) -> None: ...


@dataclass
class IntakeReport:
    """What one pass found: requests accepted, problems (listed up to ``MAX_LISTED``, all
    counted), and the lines whose ``body.model`` was ignored for the job's model."""

    file: str
    model: str
    requests: int = 0
    problems: list[InputError] = field(default_factory=list)
    problem_count: int = 0
    ignored_models: Counter[str] = field(default_factory=Counter)
    first_ignored_line: int | None = None

    def add(self, problem: InputError) -> None:
        for one in getattr(problem, "problems", None) or [problem]:
            self.problem_count += 1
            if len(self.problems) < MAX_LISTED:
                self.problems.append(one)

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def merge(self, later: Iterable[InputError]) -> None:
        """Add problems found after the pass (duplicate ids, in line order): all counted, and
        the listed ones are again the first ``MAX_LISTED`` of the file by line."""
        extra: list[InputError] = []
        for problem in later:
            self.problem_count += 1
            if len(extra) < MAX_LISTED:
                extra.append(problem)
        self.problems = sorted(self.problems + extra,
                               key=lambda p: p.line or 0)[:MAX_LISTED]

    def error(self) -> InputProblems | None:
        """The refusal to raise (every listed problem, and the count), or None when clean."""
        if self.ok:
            return None
        return InputProblems(self.problems, total=self.problem_count, file=self.file)

    def warnings(self) -> list[str]:
        """One line per thing done that the user did not ask for."""
        if not self.ignored_models:
            return []
        lines = sum(self.ignored_models.values())
        named = ", ".join(repr(m) for m, _ in self.ignored_models.most_common(3))
        return [f"{self.file}:{self.first_ignored_line}: {lines} line(s) name another model "
                f"in body.model ({named}); they run on the job's model {self.model!r} "
                "(--strict-model refuses them instead)"]


class Intake:
    """One pass over one file for one provider and model; ``scan`` yields what passes and
    fills ``report``. With ``ids`` every parsed line's ids go there (duplicates are checked
    after the pass); without, the caller checks them (``submit``: the database).
    ``mapped_keys`` tells whether some line's provider key differs from its custom_id, so
    that unique custom_ids alone do not prove unique provider keys."""

    def __init__(self, adapter: BatchProvider, *, file: str, endpoint: Endpoint, model: str,
                 limits: BatchLimits, strict_model: bool = False,
                 ids: IdSink | None = None) -> None:
        self.adapter = adapter
        self.endpoint = endpoint
        self.model = model
        self.limits = limits
        self.strict_model = strict_model
        self.report = IntakeReport(file=file, model=model)
        self.digest = hashlib.sha256(
            f"{adapter.name}\0{model}\0{endpoint}\0".encode())
        self.ids = ids
        self.mapped_keys = False
        self._rules = LineRules(adapter, model=model, endpoint=endpoint)
        # Nearly every line of a chat job is plain: read in one typed pass (domain.plain_chat),
        # then checked with what the job's lines share worked out once.
        self._plain = PlainChatReader(model) if PlainChatReader.applies_to(endpoint) else None
        self._encode_plain = (adapter.plain_encoder(endpoint=endpoint, model=model)
                              if self._plain is not None else None)
        self._output_limit = adapter.max_output_tokens
        self._max_tokens = sys.maxsize if limits.max_tokens is None else limits.max_tokens

    @property
    def content_hash(self) -> str:
        return self.digest.hexdigest()

    def scan(self, handle: BinaryIO) -> Iterator[AcceptedLine]:
        """Every line of ``handle`` checked; the ones that pass, in order. A problem is added to
        ``report`` and the scan goes on."""
        index = 0
        read_plain = self._plain.read if self._plain is not None else None
        for line_no, raw in enumerate(input_lines(handle, self.digest), start=1):
            if raw is None:
                self.report.add(InputError(f"longer than {MAX_LINE_BYTES:,} bytes",
                                           file=self.report.file, line=line_no))
                continue
            accepted = None
            if read_plain is not None and (plain := read_plain(raw)) is not None:
                accepted = self._plain_accepted(plain, line_no, index)
            if accepted is None:
                accepted = self._check(raw, line_no, index)
                if accepted is None:
                    continue
            index += 1
            self.report.requests += 1
            yield accepted

    def _check(self, raw: bytes, line_no: int, index: int) -> AcceptedLine | None:
        """Every check, for any line; what it finds goes to ``report``."""
        file = self.report.file
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.report.add(InputError(f"not valid UTF-8 (byte {exc.start + 1})", file=file,
                                       line=line_no))
            return None
        if not text or text.isspace():
            return None
        try:
            req = parse_request_line(text, line=line_no, index=index, file=file,
                                     endpoint=self.endpoint, model=self.model,
                                     on_model_conflict=None if self.strict_model
                                     else lambda given: self._ignored(given, line_no),
                                     raw=raw)
        except InputError as exc:
            self.report.add(exc)
            return None
        problems: list[InputError] = []
        if req.native is not None:
            problems += self.adapter.native_problems(req.native, endpoint=self.endpoint,
                                                     model=self.model)
        encoded = None
        if not problems:
            try:
                encoded = self.adapter.encode(req, endpoint=self.endpoint, model=self.model)
            except InputError as exc:
                problems.append(exc)
        tokens = estimate_tokens(req)
        output_limit = None
        if encoded is not None:
            output_limit = self.adapter.max_output_tokens(req, endpoint=self.endpoint)
            problems += self._size_problems(encoded, tokens)
            problems += self._rules.problems(req, tokens, output_tokens=output_limit)
            if encoded.provider_key != req.custom_id:
                self.mapped_keys = True
        if self.ids is not None:
            self.ids.add(line_no, req.custom_id,
                         None if encoded is None else encoded.provider_key)
        if problems:
            for problem in problems:
                self.report.add(InputError(problem.message, file=file, line=line_no,
                                           field=problem.field))
            return None
        assert encoded is not None
        return AcceptedLine(req, encoded, tokens, line_no, output_limit, stored_request(req))

    def _plain_accepted(self, plain: PlainChat, line_no: int,
                        index: int) -> AcceptedLine | None:
        """A plain chat line (its envelope, schema and limits already certain) through the
        checks that remain: encoding, size, the model's rules. None when one finds anything:
        the full checks then take the line and say what."""
        req = RequestLine(index, plain.custom_id, plain.body)
        assert self._encode_plain is not None  # made with the reader
        try:
            encoded = self._encode_plain(req, plain.body_json)
        except InputError:
            return None
        tokens = plain.tokens
        output_limit = self._output_limit(req, endpoint=self.endpoint)
        if not self._fits(encoded, tokens) or self._rules.problems(
                req, tokens, output_tokens=output_limit):
            return None
        if encoded.provider_key != req.custom_id:
            self.mapped_keys = True
        if self.ids is not None:
            self.ids.add(line_no, req.custom_id, encoded.provider_key)
        # ``stored_request``'s text, from the bytes the reader wrote once.
        stored = _BODY_HEAD + plain.body_json.decode() + "}"
        return new_tuple(AcceptedLine, (req, encoded, tokens, line_no, output_limit, stored))

    def _fits(self, encoded: EncodedLine, tokens: int) -> bool:
        """Whether the line and its estimate are within the provider's per-request limits
        (the line with its newline)."""
        return len(encoded.data) < self.limits.max_bytes and tokens <= self._max_tokens

    def _size_problems(self, encoded: EncodedLine, tokens: int) -> list[InputError]:
        if self._fits(encoded, tokens):
            return []
        limits = self.limits
        problems = []
        if len(encoded.data) + 1 > limits.max_bytes:
            problems.append(InputError(
                f"request is {len(encoded.data)} bytes, over the {limits.max_bytes}-byte "
                f"batch limit of {self.adapter.name}", field="body"))
        if limits.max_tokens is not None and tokens > limits.max_tokens:
            problems.append(InputError(
                f"request is about {tokens} tokens (estimated), over the "
                f"{limits.max_tokens}-token enqueued limit of {self.model} "
                f"(providers.{self.adapter.name}.models[].enqueued_token_limit)", field="body"))
        return problems

    def _ignored(self, given: str, line_no: int) -> None:
        self.report.ignored_models[given] += 1
        if self.report.first_ignored_line is None:
            self.report.first_ignored_line = line_no


_BODY_HEAD: Final = '{"body":'


def stored_request(request: RequestLine) -> str:
    """The JSON text of an item's ``request`` column: ``{"body": ...}`` (the neutral body,
    without ``model``) or ``{"native": ...}``, as ``json_text.dumps`` writes it
    (``jobs.request_from_stored`` reads it back)."""
    return json_text.dumps({"native": request.native} if request.native is not None
                           else {"body": request.body})


def preflight(rt: Runtime, *, provider: str, model: str, endpoint: Endpoint) -> BatchProvider:
    """The adapter for a new job, after refusing what would certainly fail later: an unknown
    or disabled provider, options a configured provider does not accept, an unknown model, an
    endpoint it lacks, no API key (for a provider whose every call needs one)."""
    adapter = rt.registry.get(provider, for_new_job=True)
    # The whole configuration, as a worker checks it when it starts: a job stored under a
    # configuration no worker accepts (another provider's bad option) would never run.
    rt.registry.check_limits()
    pconf = rt.config.provider(provider)
    if pconf.model(model) is None and not pconf.allow_unlisted_models:
        known = ", ".join(m.name for m in pconf.models) or "none configured"
        raise InputError(f"unknown model {model!r} for provider {provider!r} (configured: "
                         f"{known}; set providers.{provider}.allow_unlisted_models to allow any)",
                         field="model")
    if endpoint not in adapter.endpoints:
        raise InputError(f"provider {provider!r} has no {endpoint} batches", field="endpoint")
    if adapter.requires_api_key:
        try:
            adapter.require_api_key()
        except AuthenticationError as exc:
            raise ConfigError(exc.message) from None
    return adapter


def validate_file(rt: Runtime, path: Path, *, provider: str, model: str,
                  endpoint: Endpoint = Endpoint.CHAT, strict_model: bool = False,
                  job_options: dict[str, Any] | None = None) -> IntakeReport:
    """Check ``path`` as ``submit`` would, storing nothing; the report lists every problem."""
    adapter, _ = job_adapter(preflight(rt, provider=provider, model=model, endpoint=endpoint),
                             model=model, endpoint=endpoint, job_options=job_options)
    return check_file(adapter, path, endpoint=endpoint, model=model, strict_model=strict_model)


def check_file(adapter: BatchProvider, path: Path, *, endpoint: Endpoint, model: str,
               strict_model: bool = False) -> IntakeReport:
    """Every problem of ``path`` for ``adapter``, duplicate ids included (spilled to disk, so
    memory stays flat); stores nothing. ``validate`` and ``--dry-run`` report this, and so
    does ``submit`` when the database found a duplicate."""
    from llmbatch.service_layer.duplicate_ids import SpilledIds

    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read input: {exc.strerror}", file=str(path)) from exc
    with handle, SpilledIds() as ids:
        intake = Intake(adapter, file=str(path), endpoint=endpoint, model=model,
                        limits=adapter.effective_limits(model), strict_model=strict_model,
                        ids=ids)
        for _ in intake.scan(handle):
            pass
        intake.report.merge(ids.problems(str(path)))
    if intake.report.ok and intake.report.requests == 0:
        intake.report.add(InputError("the file holds no requests", file=str(path)))
    return intake.report

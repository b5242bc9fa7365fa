"""Request bodies checked against the official API descriptions, compiled once per process.

A vendored document (an extract of an OpenAPI ``components.schemas``, made by
``tests/fixtures/extract_request_schemas.py``) is checked in two steps, by two libraries:

- ``fastjsonschema`` decides: it compiles a schema to Python code, about 20 times faster than
  an interpreting validator (0.04 ms against 0.8 ms for a one-message chat body), which is what
  lets every line of a 50,000-line file be checked at submit in a couple of seconds;
- ``jsonschema`` explains, only for a body already refused: it lists every error with its exact
  path, where fastjsonschema stops at the first and reports a ``oneOf`` as "0 matches found".
  A ``oneOf``/``anyOf`` is explained through the branch the body was meant for (the one its
  ``role`` or ``type`` selects), so a user message with a numeric ``content`` reads "must be a
  string or an array", not "not valid under any of the given schemas".

This module names no provider: the neutral document lives here (the neutral form is the OpenAI
body, by design); each provider package ships its own native document and loads it with
``load_document``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

import fastjsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from llmbatch.errors import InputError

__all__ = ["SchemaProblem", "SchemaSet", "dispatch_on_role", "json_path", "load_document",
           "neutral_schemas"]

_MAX_REASON = 160


@dataclass(frozen=True)
class SchemaProblem:
    """One reason a body does not fit its schema; ``path`` is relative to the body
    (``messages[0].role``, empty for the body itself)."""

    path: str
    reason: str


def json_path(parts: Iterable[Any]) -> str:
    """``("messages", 0, "role")`` -> ``messages[0].role``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_document(package: str, name: str) -> dict[str, Any]:
    """A vendored schema document shipped as package data."""
    document: dict[str, Any] = json.loads(
        resources.files(package).joinpath(name).read_text(encoding="utf-8"))
    return document


class SchemaSet:
    """The named request schemas of one vendored document; each compiled on first use."""

    def __init__(self, document: Mapping[str, Any], uri: str) -> None:
        self._document = dict(document)
        self._uri = uri
        self._fast: dict[str, Callable[[Any], Any]] = {}
        self._slow: dict[str, Draft202012Validator] = {}
        self._properties: dict[str, frozenset[str]] = {}

    def names(self) -> list[str]:
        return sorted(self._document["components"]["schemas"])

    def property_names(self, name: str) -> frozenset[str]:
        """The top-level field names schema ``name`` declares, through ``$ref`` and ``allOf``
        (an ``allOf`` cannot close itself with ``additionalProperties: false``). Worked out
        once per name: the intake asks for every line."""
        if name in self._properties:
            return self._properties[name]
        schemas = self._document["components"]["schemas"]
        names: set[str] = set()
        stack: list[Any] = [schemas[name]]
        while stack:
            node = stack.pop()
            if not isinstance(node, dict):
                continue
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                stack.append(schemas[ref.rsplit("/", 1)[1]])
            names.update(node.get("properties") or {})
            stack.extend(node.get("allOf") or [])
        self._properties[name] = frozenset(names)
        return self._properties[name]

    def input_errors(self, name: str, instance: Any, *, prefix: str) -> list[InputError]:
        """``problems`` as ``InputError``s whose field is ``prefix.path`` (``native.messages``),
        the form the intake reports."""
        return [InputError(p.reason, field=f"{prefix}.{p.path}" if p.path else prefix)
                for p in self.problems(name, instance)]

    def problems(self, name: str, instance: Any) -> list[SchemaProblem]:
        """Every way ``instance`` departs from schema ``name`` (empty when it fits)."""
        try:
            self._compiled(name)(instance)
        except fastjsonschema.JsonSchemaValueException as exc:
            found = explain(self._validator(name), instance)
            # The two libraries agree on the keywords these documents use; should they not,
            # the fast verdict stands, with its own words.
            return found or [SchemaProblem(json_path(exc.path[1:]), _short(exc.message))]
        return []

    def _compiled(self, name: str) -> Callable[[Any], Any]:
        if name not in self._fast:
            components = dict(self._document["components"])
            components["schemas"] = dispatch_on_role(components["schemas"])
            schema = {"$schema": "http://json-schema.org/draft-07/schema#",
                      "components": components,
                      "$ref": f"#/components/schemas/{name}"}
            self._fast[name] = _compile_by_function(schema)
        return self._fast[name]

    def _validator(self, name: str) -> Draft202012Validator:
        if name not in self._slow:
            registry: Registry[Any] = Registry().with_resource(
                self._uri, Resource.from_contents(self._document,
                                                  default_specification=DRAFT202012))
            self._slow[name] = Draft202012Validator(
                {"$ref": f"{self._uri}#/components/schemas/{name}"}, registry=registry)
        return self._slow[name]


def _compile_by_function(schema: dict[str, Any]) -> Callable[[Any], Any]:
    """``fastjsonschema.compile(schema)``, with the generated module run one function at a time.

    The chat schema generates ~280 kB of Python; compiling it in one piece needs ~20 MB for
    the compiler's syntax tree, which stays in the process's resident memory (and made most
    of ``submit``'s peak over its imports). One top-level statement at a time needs about a
    quarter of that, for the same functions. Should the text ever not split into statements,
    it is compiled whole, as fastjsonschema does.
    """
    code = fastjsonschema.compile_to_code(schema, use_default=False)
    namespace: dict[str, Any] = {}
    try:
        head, *functions = code.split("\ndef ")
        exec(head, namespace)  # generated by fastjsonschema
        for function in functions:
            exec("def " + function, namespace)
    except SyntaxError:
        namespace = {}
        exec(code, namespace)
    validate: Callable[[Any], Any] = namespace["validate"]
    return validate


# Chat messages by how often a line holds them: one user message, often a system one.
_ROLES_FIRST: Final = {"user": 0, "system": 1, "assistant": 2}


def dispatch_on_role(schemas: Mapping[str, Any]) -> dict[str, Any]:
    """``schemas`` with each ``oneOf`` of messages told apart by ``role`` rewritten as an
    ``if``/``then`` chain on that role, for the fast validator only.

    A ``oneOf`` must try every branch (to be sure exactly one matches); in generated code each
    failing branch raises, and a chat body's messages paid ~18 of those a line, half the cost
    of checking it. When every branch is a ``$ref`` to an object schema that requires a
    ``role`` of one value of its own, an object whose role names a branch can only match that
    branch, so checking that branch alone gives the same verdict; anything else (no role, an
    unknown one, not an object) still meets the original ``oneOf`` at the end of the chain.
    """
    out = dict(schemas)
    for name, node in schemas.items():
        branches = node.get("oneOf") if isinstance(node, Mapping) and len(node) == 1 else None
        roles = _branch_roles(schemas, branches) if isinstance(branches, list) else None
        if roles is None:
            continue
        chained: dict[str, Any] = {"oneOf": branches}
        # The chain tries the roles in turn and each miss raises inside the generated code,
        # so the roles nearly every line holds come first (the verdict is the same).
        roles.sort(key=lambda pair: _ROLES_FIRST.get(pair[0], len(_ROLES_FIRST)))
        for role, ref in reversed(roles):
            chained = {"if": {"type": "object", "required": ["role"],
                              "properties": {"role": {"const": role}}},
                       "then": {"$ref": ref}, "else": chained}
        out[name] = chained
    return out


def _branch_roles(schemas: Mapping[str, Any], branches: list[Any]) -> list[tuple[str, str]] | None:
    """``(role, $ref)`` per branch when each requires a role of one value, all distinct."""
    found: list[tuple[str, str]] = []
    for branch in branches:
        ref = branch.get("$ref") if isinstance(branch, Mapping) else None
        if not isinstance(ref, str) or not ref.startswith("#/components/schemas/"):
            return None
        target = schemas.get(ref.rsplit("/", 1)[1])
        if not isinstance(target, Mapping) or "role" not in (target.get("required") or []):
            return None
        role = ((target.get("properties") or {}).get("role") or {}).get("enum")
        if not isinstance(role, list) or len(role) != 1 or not isinstance(role[0], str):
            return None
        found.append((role[0], ref))
    if len({role for role, _ in found}) != len(found) or len(found) < 2:
        return None
    return found


@cache
def neutral_schemas() -> SchemaSet:
    """OpenAI's ``CreateChatCompletionRequest`` and ``CreateEmbeddingRequest``: the neutral
    request form."""
    return SchemaSet(load_document(__name__, "neutral_requests.json"),
                     "urn:llmbatch:neutral-requests")


def explain(validator: Draft202012Validator, instance: Any) -> list[SchemaProblem]:
    """Every error of ``instance``, each reduced to the branch the body was meant for."""
    found: dict[tuple[str, str], None] = {}
    for error in validator.iter_errors(instance):
        for problem in _reduce(error, tuple(error.absolute_path)):
            found.setdefault((problem.path, problem.reason))
    return [SchemaProblem(path, reason) for path, reason in found]


def _reduce(error: ValidationError, where: tuple[Any, ...]) -> list[SchemaProblem]:
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        return [SchemaProblem(json_path((*where, name)), "is required")
                for name in _as_list(error.validator_value) if name not in instance]
    if error.validator == "additionalProperties" and error.validator_value is False \
            and isinstance(instance, dict):
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        declared = schema.get("properties") or {}
        return [SchemaProblem(json_path((*where, name)), "unknown field")
                for name in instance if name not in declared]
    if error.validator not in ("oneOf", "anyOf") or not error.context:
        return [SchemaProblem(json_path(where), _reason(error))]
    branches: dict[Any, list[ValidationError]] = defaultdict(list)
    for sub in error.context:
        branches[sub.relative_schema_path[0]].append(sub)
    meant = [errs for errs in branches.values() if not any(map(_rules_out, errs))]
    if meant:
        best = min(meant, key=len)
        out: list[SchemaProblem] = []
        for sub in best:
            out += _reduce(sub, where + tuple(sub.relative_path))
        return out
    return [_no_branch(branches.values(), where)]


def _rules_out(error: ValidationError) -> bool:
    """An error that shows the branch was not the one meant: the body is another type, or a
    discriminating property (``role``, ``type``) holds another constant."""
    path = list(error.relative_path)
    if not path and error.validator == "type":
        return True
    return len(path) == 1 and error.validator in ("const", "enum", "type") \
        and path[0] in ("role", "type")


def _no_branch(branches: Iterable[list[ValidationError]], where: tuple[Any, ...]) -> SchemaProblem:
    """No branch fits even in kind: say what would (the allowed types or discriminator values)."""
    kinds: list[str] = []
    values: dict[str, list[Any]] = defaultdict(list)
    for errs in branches:
        for sub in errs:
            path = list(sub.relative_path)
            if not path and sub.validator == "type":
                kinds += _as_list(sub.validator_value)
            elif len(path) == 1 and sub.validator in ("const", "enum"):
                values[str(path[0])] += _as_list(sub.validator_value)
    if values:
        key, allowed = max(values.items(), key=lambda kv: len(kv[1]))
        return SchemaProblem(json_path((*where, key)),
                             f"must be one of {_listing(allowed)}")
    if kinds:
        return SchemaProblem(json_path(where), f"must be {_types(kinds)}")
    return SchemaProblem(json_path(where), "does not match any allowed form")


def _reason(error: ValidationError) -> str:
    """A reason that does not repeat the (possibly huge) value."""
    rule, expected = error.validator, error.validator_value
    if rule == "type":
        return f"must be {_types(_as_list(expected))}"
    if rule in ("enum", "const"):
        return f"must be one of {_listing(_as_list(expected))}"
    if rule == "required":
        return _short(error.message)
    if rule == "additionalProperties":
        return _short(error.message.replace("Additional properties are not allowed",
                                            "unknown field(s)"))
    if rule in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        word = {"minimum": "at least", "maximum": "at most",
                "exclusiveMinimum": "more than", "exclusiveMaximum": "less than"}[str(rule)]
        return f"must be {word} {expected}"
    if rule in ("minItems", "maxItems"):
        return f"must hold {'at least' if rule == 'minItems' else 'at most'} {expected} item(s)"
    if rule in ("minLength", "maxLength"):
        return f"must be {'at least' if rule == 'minLength' else 'at most'} {expected} " \
               "character(s) long"
    if rule == "pattern":
        return f"must match {expected}"
    return _short(error.message)


_TYPE_WORDS = {"string": "a string", "integer": "an integer", "number": "a number",
               "boolean": "a boolean", "array": "an array", "object": "an object",
               "null": "null"}


def _types(kinds: list[Any]) -> str:
    words = list(dict.fromkeys(_TYPE_WORDS.get(str(k), str(k)) for k in kinds))
    return " or ".join(words) if len(words) < 3 else ", ".join(words[:-1]) + " or " + words[-1]


def _listing(values: list[Any]) -> str:
    shown = list(dict.fromkeys(json.dumps(v) for v in values))
    text = ", ".join(shown[:12]) + (f" (and {len(shown) - 12} more)" if len(shown) > 12 else "")
    return _short(text)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _short(text: str) -> str:
    return text if len(text) <= _MAX_REASON else text[:_MAX_REASON - 1] + "…"

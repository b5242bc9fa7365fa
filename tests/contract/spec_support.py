"""What the ``test_emulator_*_spec.py`` contract tests share: loading an extractor script from
``tests/fixtures``, checking the vendored extract against a fresh one, validating against a
vendored document, and running an emulator on a fake clock."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import httpx
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from llmbatch.emulator import EmulatorServer, EmulatorSettings, FakeClock

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TIMING = {"validate_s": 10, "run_base_s": 100, "run_per_item_s": 0, "finalize_s": 5,
          "cancel_s": 3}


def load_extractor(name: str) -> Any:
    """The module ``tests/fixtures/<name>.py`` (its sibling ``schema_extract`` importable)."""
    if str(FIXTURES) not in sys.path:
        sys.path.append(str(FIXTURES))
    spec = importlib.util.spec_from_file_location(name, FIXTURES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def vendored_refs(vendored: Path) -> set[str]:
    """The schema names the vendored file references."""
    return set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', vendored.read_text()))


def assert_fresh_extract_matches(extractor: Any, spec: str, vendored: Path, what: str) -> None:
    """When ``spec`` is in the extractor's spec directory, a fresh extraction must equal the
    vendored file; without it (a checkout without ``../shared``) the vendored copy stands in."""
    spec_dir = extractor.DEFAULT_SPEC_DIR
    if not (spec_dir / spec).exists():
        return
    fresh = extractor.render(extractor.extract(spec_dir))
    assert fresh == vendored.read_text(encoding="utf-8"), (
        f"the {what} changed: re-run tests/fixtures/{extractor.__name__}.py")


def schema_validator(document: Any, uri: str, name: str) -> Draft202012Validator:
    """A validator for ``#/components/schemas/<name>`` of ``document`` (registered at ``uri``)."""
    registry: Registry[Any] = Registry().with_resource(
        uri, Resource.from_contents(document, default_specification=DRAFT202012))
    return Draft202012Validator({"$ref": f"{uri}#/components/schemas/{name}"},
                                registry=registry)


def assert_no_errors(validator: Draft202012Validator, instance: Any, name: str) -> None:
    errors = sorted(validator.iter_errors(instance), key=lambda e: e.path)
    assert not errors, f"{name}: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])


class EmulatorClient:
    """An HTTP client for one provider's routes of a running emulator, and its fake clock."""

    def __init__(self, server: EmulatorServer, clock: FakeClock, base_url: str,
                 headers: dict[str, str]) -> None:
        self.server, self.clock = server, clock
        self.http = httpx.Client(base_url=base_url, headers=headers)

    def get(self, path: str) -> Any:
        response = self.http.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.http.post(path, **kwargs)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


E = TypeVar("E", bound=EmulatorClient)


@contextmanager
def running_emulator(make: Callable[[EmulatorServer, FakeClock], E]) -> Iterator[E]:
    """An emulator server on a fake clock, wrapped by ``make``; its client closed after."""
    clock = FakeClock()
    settings = EmulatorSettings.model_validate({"timing": TIMING})
    with EmulatorServer(settings, clock=clock) as server:
        emu = make(server, clock)
        yield emu
        emu.http.close()

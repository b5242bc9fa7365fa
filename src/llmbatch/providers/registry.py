"""Finding provider classes by name through the ``llmbatch.providers`` entry-point group.

Built-in providers register through the same group a third-party package would use, so adding
a provider is one package plus one line in its ``pyproject.toml``: the class brings its own
limits, options model (``providers.<name>.options``), latency prior and error mapping, and no
module outside it names the provider (``tests/plugin_provider`` shows one added that way).
"""

from __future__ import annotations

import contextlib
from importlib.metadata import entry_points

from llmbatch.config import AppConfig, ProviderConfig
from llmbatch.domain.journal import SubmitJournal
from llmbatch.errors import ConfigError, InputError
from llmbatch.providers.base import BatchProvider

__all__ = ["ENTRY_POINT_GROUP", "ProviderRegistry", "available_providers"]

ENTRY_POINT_GROUP = "llmbatch.providers"


def available_providers() -> dict[str, str]:
    """Installed provider names and the ``module:Class`` they point to."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


class ProviderRegistry:
    """Builds and caches one adapter per provider from the app config."""

    def __init__(self, config: AppConfig, journal: SubmitJournal | None = None) -> None:
        self._config = config
        self._journal = journal
        self._instances: dict[str, BatchProvider] = {}
        # The names whose adapter this registry built (and so closes); one passed to
        # ``register`` belongs to whoever passed it, like an injected SDK client.
        self._built: set[str] = set()

    def names(self) -> list[str]:
        return sorted(available_providers())

    def register(self, name: str, instance: BatchProvider) -> None:
        """Use ``instance`` for ``name`` instead of building one from the entry point: the seam
        through which tests and embedding applications inject an adapter."""
        self._instances[name] = instance
        self._built.discard(name)

    def get(self, name: str, *, for_new_job: bool = False) -> BatchProvider:
        """The adapter for ``name``; refuses unknown providers clearly, and disabled ones when
        ``for_new_job`` (work a provider already accepted still runs to its end)."""
        provider_config = self._config.provider(name)
        if name in self._instances:
            if for_new_job:
                self._check_enabled(name, provider_config)
            return self._instances[name]
        eps = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        if name not in eps:
            known = ", ".join(sorted(eps)) or "none installed"
            raise InputError(f"unknown provider {name!r} (known: {known})", field="provider")
        if for_new_job:
            self._check_enabled(name, provider_config)
        try:
            cls = eps[name].load()
        except ImportError as exc:
            raise ConfigError(f"provider {name!r} needs an extra: pip install 'llmbatch[{name}]' "
                              f"({exc})") from exc
        if not (isinstance(cls, type) and issubclass(cls, BatchProvider)):
            raise ConfigError(f"entry point {name!r} does not name a BatchProvider subclass")
        # Options are checked before the adapter is built, with the name the config uses.
        cls.read_options(provider_config.options, where=f"providers.{name}.options")
        if cls.needs_submit_journal and self._journal is not None:
            instance = cls(provider_config, journal=self._journal)  # type: ignore[call-arg]
        else:
            instance = cls(provider_config)
        problems = instance.limit_problems()
        if problems:
            raise ConfigError(f"provider {name!r}: a limit in the configuration is above the "
                              "provider's own", problems)
        problems = instance.retention_problems(provider_config.retention,
                                               where=f"providers.{name}.retention")
        if problems:
            raise ConfigError(f"provider {name!r}: retention settings it cannot honour",
                              problems)
        self._instances[name] = instance
        self._built.add(name)
        return instance

    def check_limits(self) -> None:
        """Build every configured, installed provider so that a limit above the provider's own
        or an option it does not accept is a ``ConfigError`` at start-up (worker,
        ``config validate``), not at the first job. Providers whose extra is not installed are
        left for when they are used."""
        problems: list[str] = []
        installed = available_providers()
        for name in sorted(self._config.providers):
            if name not in installed and name not in self._instances:
                continue
            try:
                self.get(name)
            except ConfigError as exc:
                problems += exc.problems or [exc.message]
        if problems:
            raise ConfigError("the configuration does not fit the providers (a limit above "
                              "the provider's own, or an option it does not accept)", problems)

    def preload(self) -> None:
        """Import the SDKs of the configured, enabled, installed providers (``preload`` of
        each adapter); one that cannot be imported is left for its first call to report."""
        installed = available_providers()
        for name in sorted(self._config.providers):
            if not self._config.provider(name).enabled or (
                    name not in installed and name not in self._instances):
                continue
            with contextlib.suppress(ImportError, ConfigError):
                self.get(name).preload()

    def close(self) -> None:
        """Close the adapters this registry built (each releases its SDK client's pooled
        connections) and forget them; a later ``get`` builds a new one. A process that drops
        its runtime without this leaves open sockets for the garbage collector, which warns
        (``ResourceWarning``) wherever it happens to run. Every adapter is closed even if
        one fails; the first failure is raised after."""
        built = [self._instances.pop(name) for name in sorted(self._built)
                 if name in self._instances]
        self._built.clear()
        failure: Exception | None = None
        for adapter in built:
            try:
                adapter.close()
            except Exception as exc:  # close the others first
                failure = failure or exc
        if failure is not None:
            raise failure

    @staticmethod
    def _check_enabled(name: str, provider_config: ProviderConfig) -> None:
        if not provider_config.enabled:
            raise InputError(f"provider {name!r} is disabled in the configuration "
                             f"(providers.{name}.enabled)", field="provider")

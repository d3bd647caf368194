"""Plugin discovery and the registry of named implementations.

Every plugin, the core's own built-ins included, is an entry point in the
group ``engine_core.plugins``. stevedore loads the group; a plugin that fails
to import is recorded as failed (name, distribution, error) and the rest load.
Each loaded object is registered with a pluggy ``PluginManager``; its
registration hooks fill a :class:`Registry` of named factories by kind.

``ENGINE_DISABLE_PLUGIN_AUTOLOAD=1`` turns entry-point loading off (tests
register the plugins they need explicitly).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from engine_core import hookspecs
from engine_core.errors import EngineError, PluginError

ENTRY_POINT_GROUP = "engine_core.plugins"
AUTOLOAD_ENV = "ENGINE_DISABLE_PLUGIN_AUTOLOAD"

KINDS = ("source", "indicator", "strategy_host", "broker", "sink")
_HOOK_OF_KIND = {
    "source": "register_data_sources",
    "indicator": "register_indicators",
    "strategy_host": "register_strategy_hosts",
    "broker": "register_brokers",
    "sink": "register_event_sinks",
}

# Which distribution provides a name that is not installed (for the error).
KNOWN_PROVIDERS = {
    ("source", "binance"): "engine-plugin-binance",
    ("broker", "binance"): "engine-plugin-binance",
    ("source", "alpaca"): "engine-plugin-alpaca",
    ("broker", "alpaca"): "engine-plugin-alpaca",
    ("source", "csv"): "engine-plugin-csv",
    ("source", "mqtt"): "engine-plugin-mqtt",
    ("sink", "mqtt"): "engine-plugin-mqtt",
    ("indicator", "*"): "engine-plugin-indicators",
}


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin."""

    name: str
    distribution: str
    version: str
    status: str = "loaded"  # loaded | failed
    error: str = ""
    hooks: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Registration:
    kind: str
    name: str
    obj: Any
    plugin: PluginInfo


class Registry:
    """Named implementations of each kind, and the plugins they came from."""

    def __init__(self, pm: pluggy.PluginManager, plugins: list[PluginInfo]) -> None:
        self.pm = pm
        self.plugins = plugins
        self._by_kind: dict[str, dict[str, Registration]] = {k: {} for k in KINDS}

    def add(self, kind: str, name: str, obj: Any, plugin: PluginInfo) -> None:
        table = self._by_kind[kind]
        if name in table:
            other = table[name].plugin
            raise PluginError(
                f"{kind} {name!r} is registered twice: by {other.name} ({other.distribution}) "
                f"and by {plugin.name} ({plugin.distribution}); uninstall one of them"
            )
        table[name] = Registration(kind, name, obj, plugin)

    def names(self, kind: str) -> list[str]:
        return sorted(self._by_kind[kind])

    def registrations(self, kind: str | None = None) -> list[Registration]:
        kinds = [kind] if kind else list(KINDS)
        return [r for k in kinds for _, r in sorted(self._by_kind[k].items())]

    def get(self, kind: str, name: str) -> Any:
        table = self._by_kind[kind]
        if name in table:
            return table[name].obj
        label = kind.replace("_", " ")
        installed = ", ".join(sorted(table)) or "none"
        hint = ""
        provider = KNOWN_PROVIDERS.get((kind, name)) or (
            KNOWN_PROVIDERS.get((kind, "*")) if kind == "indicator" else None
        )
        failed = [p for p in self.plugins if p.status == "failed"]
        if provider:
            hint = f"; it is provided by {provider} (pip install {provider})"
        if failed:
            hint += "; plugins that failed to load: " + ", ".join(f"{p.name} ({p.error})" for p in failed)
        raise PluginError(f"unknown {label} {name!r}; installed: {installed}{hint}")

    def has(self, kind: str, name: str) -> bool:
        return name in self._by_kind[kind]


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _distributions() -> dict[tuple[str, str], tuple[str, str]]:
    """(entry-point name, value) -> (distribution, version) for the plugin group.

    stevedore's cached entry points do not carry their distribution, so it is
    looked up once from importlib.metadata.
    """
    from importlib.metadata import entry_points

    out: dict[tuple[str, str], tuple[str, str]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        if dist is not None:
            out[(ep.name, ep.value)] = (dist.metadata["Name"] or "?", dist.version or "?")
    return out


def _dist_of(ep: Any, dists: dict[tuple[str, str], tuple[str, str]]) -> tuple[str, str]:
    return dists.get((ep.name, ep.value), ("?", "?"))


def _entry_point_plugins() -> Iterable[tuple[PluginInfo, Any]]:
    from stevedore import ExtensionManager

    failures: list[PluginInfo] = []
    dists = _distributions()

    def on_failure(_manager: Any, ep: Any, err: BaseException) -> None:
        dist, version = _dist_of(ep, dists)
        failures.append(PluginInfo(ep.name, dist, version, "failed", f"{type(err).__name__}: {err}"))

    # stevedore keeps a per-process cache of each group; drop it so that a
    # registry built after an install sees the new plugins.
    ExtensionManager.ENTRY_POINT_CACHE.pop(ENTRY_POINT_GROUP, None)
    mgr = ExtensionManager(
        namespace=ENTRY_POINT_GROUP,
        invoke_on_load=False,
        on_load_failure_callback=on_failure,
    )
    loaded = []
    for ext in mgr:
        dist, version = _dist_of(ext.entry_point, dists)
        loaded.append((PluginInfo(ext.name, dist, version), ext.plugin))
    yield from sorted(loaded, key=lambda item: item[0].name)
    for info in failures:
        yield info, None


def build_registry(extra: Iterable[tuple[str, Any]] = (), *, autoload: bool | None = None) -> Registry:
    """Load plugins (entry points unless disabled, then ``extra``) into a registry.

    ``extra`` is ``(name, plugin_object)`` pairs, used by tests and embedders.
    """
    if autoload is None:
        autoload = os.environ.get(AUTOLOAD_ENV, "") not in ("1", "true", "yes")
    pm = new_plugin_manager()
    infos: list[PluginInfo] = []
    candidates: list[tuple[PluginInfo, Any]] = []
    if autoload:
        candidates.extend(_entry_point_plugins())
    for name, obj in extra:
        mod = getattr(obj, "__module__", None) or getattr(obj, "__name__", "")
        candidates.append((PluginInfo(name, f"(registered: {mod})", "-"), obj))

    for info, obj in candidates:
        infos.append(info)
        if obj is None:
            continue
        try:
            pm.register(obj, name=info.name)
        except ValueError as err:  # pluggy: already registered
            info.status, info.error = "failed", str(err)
            continue
        except pluggy.PluginValidationError as err:
            info.status, info.error = "failed", str(err)
            continue
        info.hooks = sorted(impl_name for impl_name in _hook_names(pm, obj))

    registry = Registry(pm, infos)
    info_by_name = {i.name: i for i in infos}
    for kind, hook_name in _HOOK_OF_KIND.items():
        caller = getattr(pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            info = info_by_name[impl.plugin_name]
            # Each plugin gets its own register callback, so the implementations
            # are called one by one, with the spec's arguments they take (pluggy's
            # argument matching: an implementation may take a subset).
            kwargs = {"register": _registrar(registry, kind, info)}
            try:
                impl.function(**{name: kwargs[name] for name in impl.argnames})
            except EngineError:
                raise
            except Exception as err:
                raise PluginError(
                    f'plugin "{info.name}" ({info.distribution}) failed in {hook_name}: {type(err).__name__}: {err}'
                ) from err
    return registry


def _hook_names(pm: pluggy.PluginManager, obj: Any) -> Iterable[str]:
    for caller in pm.get_hookcallers(obj) or []:
        yield caller.name


def _registrar(registry: Registry, kind: str, info: PluginInfo) -> Any:
    if kind == "indicator":

        def register_indicator(indicator_kind: Any) -> None:
            registry.add(kind, indicator_kind.spec.name, indicator_kind, info)

        return register_indicator

    def register(name: str, obj: Any) -> None:
        registry.add(kind, name, obj, info)

    return register


_lock = threading.Lock()
_current: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _current
    with _lock:
        if _current is None:
            _current = build_registry()
        return _current


def set_registry(registry: Registry | None) -> None:
    """Replace the process-wide registry (``None`` rebuilds on next use)."""
    global _current
    with _lock:
        _current = registry

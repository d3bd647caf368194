"""Plugin discovery and the registry of named implementations.

Every plugin, the core's own built-ins included, is an entry point in the
group ``engine_core.plugins``. stevedore loads the group; a plugin that fails
to import is recorded as failed (name, distribution, error) and the rest load.
Each loaded object is registered with a pluggy ``PluginManager``; its
registration hooks fill a :class:`Registry` of named factories by kind. A
factory may be registered as a reference, ``"package.module:Class"``, imported
the first time a config names it: registering every installed plugin then
imports none of their dependencies (a CSV backtest loads no aiohttp or MQTT
client).

Two environment variables choose what loads:

* ``ENGINE_LOAD_PLUGINS=engine-plugin-csv,engine-plugin-indicators`` loads
  only the named distributions (comma-separated; ``-``, ``_`` and case do not
  matter) besides the core's own built-ins, which always load; set and empty,
  only the built-ins load. A name that is not installed is an error naming it
  and what is installed; nothing of an unnamed distribution is imported.
* ``ENGINE_DISABLE_PLUGIN_AUTOLOAD=1`` turns entry-point loading off
  altogether, built-ins included (tests register the plugins they need
  explicitly); it wins over ``ENGINE_LOAD_PLUGINS``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from engine_core import hookspecs
from engine_core.errors import EngineError, PluginError, error_text

ENTRY_POINT_GROUP = "engine_core.plugins"
AUTOLOAD_ENV = "ENGINE_DISABLE_PLUGIN_AUTOLOAD"
LOAD_ENV = "ENGINE_LOAD_PLUGINS"
CORE_DISTRIBUTION = "engine-trading-core"

KINDS = ("source", "indicator", "strategy_host", "broker", "sink", "service")
_HOOK_OF_KIND = {
    "source": "register_data_sources",
    "indicator": "register_indicators",
    "strategy_host": "register_strategy_hosts",
    "broker": "register_brokers",
    "sink": "register_event_sinks",
    "service": "register_services",
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
    ("command", "optimize"): "engine-plugin-optimize",
    ("command", "download binance"): "engine-plugin-binance",
    ("command", "download alpaca"): "engine-plugin-alpaca",
    ("command", "dashboard"): "engine-plugin-dashboard",
    ("service", "dashboard"): "engine-plugin-dashboard",
}


def install_hint(distribution: str, extra: str = "") -> str:
    """How to install a plugin distribution (with an optional ``extra``, e.g.
    ``ray``): from this checkout's ``plugins/<name>`` when the core runs from
    one (the plugins are not on PyPI yet), else by name."""
    import engine_core

    folder = Path(engine_core.__file__).resolve().parents[1] / "plugins" / distribution.removeprefix("engine-plugin-")
    extras = f"[{extra}]" if extra else ""
    if not (folder / "pyproject.toml").is_file():
        spec = f"'{distribution}{extras}'" if extra else distribution
        return f"pip install {spec} (from a checkout of the engine: pip install -e plugins/<name>)"
    try:
        where = os.path.relpath(folder)
    except ValueError:  # another drive (Windows)
        where = str(folder)
    if where.startswith(".."):
        where = str(folder)
    elif not where.startswith("."):
        where = f"./{where}"
    return f"pip install -e '{where}{extras}'" if extra else f"pip install -e {where}"


def provider_hint(registry: Registry, kind: str, name: str) -> str:
    """Why ``name`` of ``kind`` is not there and what to do ("; ..."), or ""
    when no known distribution provides it."""
    provider = KNOWN_PROVIDERS.get((kind, name)) or (KNOWN_PROVIDERS.get((kind, "*")) if kind == "indicator" else None)
    if provider is None:
        return ""
    if _canonical(provider) in map(_canonical, registry.skipped):
        return f"; it is provided by {provider}, installed but not named in {LOAD_ENV}"
    if not _installed(provider):
        return f"; it is provided by {provider}, not installed ({install_hint(provider)})"
    if not registry.autoload:
        return f"; it is provided by {provider}, installed but not loaded ({AUTOLOAD_ENV}=1)"
    failed = [
        p for p in registry.plugins if p.status == "failed" and _canonical(p.distribution) == _canonical(provider)
    ]
    if failed:
        return f"; it is provided by {provider}, installed but it failed to load: {failed[0].error}"
    return (
        f"; it is provided by {provider}, installed but it did not register it (reinstall it: {install_hint(provider)})"
    )


def _installed(distribution: str) -> bool:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import distribution as find

    try:
        find(distribution)
    except PackageNotFoundError:
        return False
    return True


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
    obj: Any  # the factory, or its "module:Class" reference until the registry's get imports it
    plugin: PluginInfo


class Registry:
    """Named implementations of each kind, and the plugins they came from."""

    def __init__(self, pm: pluggy.PluginManager, plugins: list[PluginInfo], skipped: Iterable[str] = ()) -> None:
        self.pm = pm
        self.plugins = plugins
        self.skipped = sorted(skipped)  # distributions installed but left out by ENGINE_LOAD_PLUGINS
        self.autoload = True  # False when entry points were not loaded (ENGINE_DISABLE_PLUGIN_AUTOLOAD)
        self._by_kind: dict[str, dict[str, Registration]] = {k: {} for k in KINDS}

    def add(self, kind: str, name: str, obj: Any, plugin: PluginInfo) -> None:
        if isinstance(obj, str):
            _check_reference(obj, f"{kind} {name!r} of plugin {plugin.name!r} ({plugin.distribution})")
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
            reg = table[name]
            if isinstance(reg.obj, str):  # a reference: imported on first use
                reg = table[name] = Registration(kind, name, _import(reg), reg.plugin)
            return reg.obj
        label = kind.replace("_", " ")
        installed = ", ".join(sorted(table)) or "none"
        hint = provider_hint(self, kind, name)
        if not self.autoload and AUTOLOAD_ENV not in hint:  # said once, where it explains most
            installed += f" ({AUTOLOAD_ENV}=1 turns plugin loading off)"
        failed = [p for p in self.plugins if p.status == "failed"]
        if failed and "failed to load" not in hint:
            hint += "; plugins that failed to load: " + ", ".join(f"{p.name} ({p.error})" for p in failed)
        raise PluginError(f"unknown {label} {name!r}; installed: {installed}{hint}")

    def has(self, kind: str, name: str) -> bool:
        return name in self._by_kind[kind]


_REFERENCE = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _check_reference(ref: str, what: str) -> None:
    """A ``"module:attr"`` reference is well formed and its module exists
    (found, not imported: mistakes surface when the plugin loads)."""
    if not _REFERENCE.fullmatch(ref):
        raise PluginError(f'{what}: expected a class or "module:Class", got {ref!r}')
    module = ref.partition(":")[0]
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise PluginError(f"{what}: no module {module!r} (registered as {ref!r})")


def _import(reg: Registration) -> Any:
    """The object a reference names, imported now; a failure names the plugin."""
    module, _, attr = str(reg.obj).partition(":")
    p = reg.plugin
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as err:
        raise PluginError(
            f'plugin "{p.name}" ({p.distribution}) failed to import {reg.kind} {reg.name!r} '
            f"({reg.obj}): {error_text(err)}"
        ) from err
    return obj


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _distributions() -> dict[tuple[str, str], tuple[str, str]]:
    """(entry-point name, value) -> (distribution, version) for the plugin group.

    stevedore's cached entry points do not carry their distribution, so it is
    looked up once from importlib.metadata. Each distribution's metadata is
    read once (every read parses the file again; the core's, with its
    README, has five entry points).
    """
    from importlib.metadata import entry_points

    out: dict[tuple[str, str], tuple[str, str]] = {}
    named: dict[int, tuple[str, str]] = {}  # id of a distribution -> (name, version)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        if dist is None:
            out[(ep.name, ep.value)] = ("?", "?")
            continue
        if id(dist) not in named:
            meta = dist.metadata
            named[id(dist)] = (meta["Name"] or "?", meta["Version"] or "?")
        out[(ep.name, ep.value)] = named[id(dist)]
    return out


def _dist_of(ep: Any, dists: dict[tuple[str, str], tuple[str, str]]) -> tuple[str, str]:
    return dists.get((ep.name, ep.value), ("?", "?"))


def _canonical(distribution: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _wanted(dists: dict[tuple[str, str], tuple[str, str]]) -> tuple[set[str] | None, set[str]]:
    """The distributions ``ENGINE_LOAD_PLUGINS`` names (canonical, the core's
    added; None when it is not set) and those it leaves out."""
    value = os.environ.get(LOAD_ENV)
    installed = {_canonical(dist): dist for dist, _ in dists.values() if dist != "?"}
    if value is None:
        return None, set()
    named = {_canonical(name.strip()) for name in value.split(",") if name.strip()}
    unknown = sorted(named - installed.keys())
    if unknown:
        others = sorted(dist for key, dist in installed.items() if key != CORE_DISTRIBUTION)
        raise PluginError(
            f"{LOAD_ENV} names {', '.join(unknown)}, which {'is' if len(unknown) == 1 else 'are'} not installed; "
            f"installed plugin distributions: {', '.join(others) or 'none'}"
        )
    named.add(CORE_DISTRIBUTION)
    return named, {dist for key, dist in installed.items() if key not in named}


def _entry_point_plugins() -> tuple[list[tuple[PluginInfo, Any]], set[str]]:
    """The plugins of the entry-point group (loaded, then failed), and the
    distributions ``ENGINE_LOAD_PLUGINS`` left out."""
    from stevedore import NamedExtensionManager

    failures: list[PluginInfo] = []
    dists = _distributions()
    wanted, skipped = _wanted(dists)

    def on_failure(_manager: Any, ep: Any, err: BaseException) -> None:
        dist, version = _dist_of(ep, dists)
        failures.append(PluginInfo(ep.name, dist, version, "failed", f"{error_text(err)}"))

    # stevedore keeps a per-process cache of each group; drop it so that a
    # registry built after an install sees the new plugins.
    NamedExtensionManager.ENTRY_POINT_CACHE.pop(ENTRY_POINT_GROUP, None)
    # Entry points are chosen by name before anything is imported.
    names = [name for (name, _), (dist, _) in dists.items() if wanted is None or _canonical(dist) in wanted]
    mgr = NamedExtensionManager(
        namespace=ENTRY_POINT_GROUP,
        names=names,
        invoke_on_load=False,
        on_load_failure_callback=on_failure,
        on_missing_entrypoints_callback=None,
    )
    loaded = []
    for ext in mgr:
        dist, version = _dist_of(ext.entry_point, dists)
        loaded.append((PluginInfo(ext.name, dist, version), ext.plugin))
    return sorted(loaded, key=lambda item: item[0].name) + [(info, None) for info in failures], skipped


def build_registry(extra: Iterable[tuple[str, Any]] = (), *, autoload: bool | None = None) -> Registry:
    """Load plugins (entry points unless disabled, then ``extra``) into a registry.

    ``extra`` is ``(name, plugin_object)`` pairs, used by tests and embedders.
    """
    if autoload is None:
        autoload = os.environ.get(AUTOLOAD_ENV, "") not in ("1", "true", "yes")
    pm = new_plugin_manager()
    infos: list[PluginInfo] = []
    candidates: list[tuple[PluginInfo, Any]] = []
    skipped: set[str] = set()
    if autoload:
        found, skipped = _entry_point_plugins()
        candidates.extend(found)
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

    registry = Registry(pm, infos, skipped)
    registry.autoload = autoload
    info_by_name = {i.name: i for i in infos}
    for kind, hook_name in _HOOK_OF_KIND.items():
        caller = getattr(pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            info = info_by_name[impl.plugin_name]
            # Each plugin gets its own register callback, so the implementations
            # are called one by one.
            try:
                call_impl(impl, {"register": _registrar(registry, kind, info)})
            except EngineError:
                raise
            except Exception as err:
                raise PluginError(
                    f'plugin "{info.name}" ({info.distribution}) failed in {hook_name}: {error_text(err)}'
                ) from err
    return registry


def call_impl(impl: pluggy.HookImpl, kwargs: Mapping[str, Any]) -> Any:
    """Call one hook implementation as pluggy's hook call does: with those of the
    spec's arguments (``kwargs``) that it names, since pluggy lets an
    implementation take a subset. For callers that call each implementation on
    its own (a registrar per plugin; an observer that fails is disabled alone)."""
    return impl.function(*[kwargs[name] for name in impl.argnames])


def caller_of(impl: pluggy.HookImpl, name: str) -> Callable[[Any], Any]:
    """``call_impl`` for a spec of one argument, ``name``, made once: the
    implementation's own function when it takes that argument (an
    observation hook is called for every event of its kind)."""
    if impl.argnames == (name,):
        return impl.function  # type: ignore[no-any-return]
    return lambda value: call_impl(impl, {name: value})


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

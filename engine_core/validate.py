"""What can be known about a config without running it.

``engine validate`` loads the config (every plugin's table checked by its
plugin), loads the strategy, asks the source to ``check()`` its data, and
checks that the report folder can be made. Nothing is written, no broker is
contacted and no journal is opened. ``engine run`` makes the cheap checks of
:func:`preflight` before any work, and prints :func:`load_warnings`.

:func:`venue_refusal` is the one check that a backtest, an optimisation or a
replay never reaches a venue: validate, run (``Engine`` itself, before it
builds the broker) and ``engine optimize`` all ask it.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from engine_core.config import LEGACY_ENGINE_ID, LoadedConfig, in_config, keeps_legacy_id, load_config, read_toml
from engine_core.errors import ConfigError, EngineError
from engine_core.plugins import Registry

NOT_CHECKED_BY_VALIDATE = (
    "indicator parameters and decisions (known only when the strategy runs)",
    "the broker (not contacted)",
)


@dataclass
class Validation:
    """The outcome for one config file: ``ok`` when ``problems`` is empty."""

    path: Path
    summary: str = ""  # e.g. "backtest, 2 symbols, source csv, strategy sma_cross.lua on lua, broker paper"
    problems: list[str] = field(default_factory=list)  # one line each, starting with the config file
    warnings: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add_problem(self, err: EngineError) -> None:
        self.problems += in_config(self.path, err).splitlines()


def validate(path: Path, registry: Registry, runs: str | None = None) -> Validation:
    """Every check that needs no run; each failed check adds one problem.

    A file for ``engine optimize`` that names its backtest config
    (``[optimize] config = ...``) is checked as that config, for what engine
    optimize runs (``runs``: only simulated brokers, whatever the mode). A
    ``${NAME}`` that is not set is a warning: ``engine run`` needs it, not
    the checks."""
    try:
        base = optimize_base(path)
    except EngineError as err:
        result = Validation(path)
        result.add_problem(err)
        return result
    if base is not None:
        return _for_optimize(path, base, validate(base, registry, "engine optimize"))
    unset: list[tuple[str, str]] = []
    result = _validate(path, registry, unset, runs)
    names = dict.fromkeys(name for _, name in unset)
    result.warnings[:0] = [
        f"{path}: environment variable {name} is not set ({', '.join(k for k, v in unset if v == name)}); "
        "engine run needs it"
        for name in names
    ]
    return result


def _validate(path: Path, registry: Registry, unset: list[tuple[str, str]], runs: str | None) -> Validation:
    result = Validation(path)
    try:
        loaded = load_config(path, registry, unset_env=unset)
    except EngineError as err:
        result.add_problem(err)
        return result
    cfg = loaded.config
    for problem in preflight(loaded, registry, report=True, runs=runs):
        result.problems.append(problem)
    host = loaded.host_cls(cfg.strategy, loaded.base_dir)
    try:
        host.load()
    except EngineError as err:
        result.add_problem(err)
    try:
        source = loaded.source_cls(loaded.source_config, symbols=cfg.engine.symbols, base_dir=loaded.base_dir)
        try:
            result.unchecked += source.check()
        finally:
            source.close()
    except EngineError as err:
        result.add_problem(err)
    result.unchecked += NOT_CHECKED_BY_VALIDATE
    result.warnings = load_warnings(loaded)
    limits = host.limits()
    result.summary = (
        f"{cfg.engine.mode}, {len(cfg.engine.symbols)} symbols, source {cfg.source.type}, "
        f"strategy {host.name} on {cfg.strategy.host}{f' ({limits})' if limits else ''}, broker {cfg.broker.type}"
    )
    if cfg.engine.mode == "live":
        from engine_core.recording.paths import recording_enabled, recordings_dir

        where = recordings_dir(loaded.base_dir, cfg.engine)
        result.summary += f", recorded to {where}" if recording_enabled(cfg.engine) else ", not recorded"
    return result


def optimize_base(path: Path) -> Path | None:
    """The backtest config a file for ``engine optimize`` names (``[optimize]
    config = "..."``, relative to it), or None for any other config. A file
    with an ``[optimize]`` table and no ``[engine]`` that names none is told
    how to use it."""
    raw = read_toml(path)
    table = raw.get("optimize")
    if not isinstance(table, dict):
        return None
    name = table.get("config")
    if not isinstance(name, str):
        if "engine" not in raw:
            raise ConfigError(
                f"{path}: engine: required key is missing; this file has an [optimize] table: add the backtest's "
                'tables, or name its config with [optimize] config = "backtest.toml" (engine optimize -c)'
            )
        return None
    others = sorted(k for k in raw if k != "optimize")
    if others:
        raise ConfigError(
            f"{path}: {others[0]}: this file names its backtest config (optimize.config); "
            "put the backtest's tables there"
        )
    base = path.parent / name
    if not base.is_file():
        raise ConfigError(f"{path}: optimize.config: no such config file {base} (this file is for engine optimize)")
    return base


def _for_optimize(path: Path, base: Path, inner: Validation) -> Validation:
    """The outcome of the backtest config that the ``engine optimize`` file ``path`` names."""
    return Validation(
        path,
        summary=f"for engine optimize, on {base}: {inner.summary}" if inner.ok else "",
        problems=[f"{path}: optimize.config: {base} has a problem", *inner.problems] if not inner.ok else [],
        warnings=inner.warnings,
        unchecked=[*inner.unchecked, "the [optimize] table (engine optimize checks it)"],
    )


def preflight(loaded: LoadedConfig, registry: Registry, *, report: bool, runs: str | None = None) -> list[str]:
    """Problems a run would meet that cost nothing to find out: a venue broker
    in a mode that runs only simulated ones; the report folder cannot be made
    (when a report is written)."""
    problems = []
    refusal = venue_refusal(loaded, registry, runs)
    if refusal is not None:
        problems.append(refusal)
    if report:
        out = report_dir(loaded)
        why = cannot_create(out)
        if why:
            problems.append(f"{loaded.path}: report.dir: cannot create {out}: {why}")
    return problems


def venue_refusal(loaded: LoadedConfig, registry: Registry, runs: str | None = None) -> str | None:
    """Why ``loaded`` must not run, when its broker is a venue's and it runs
    what only simulated brokers may: a backtest (``engine.mode``), or what
    ``runs`` names (``"engine optimize"``, a replay), whatever the mode. None
    when it may. Read from the broker class the registry resolved
    (``Broker.simulated``), never by building or connecting it, so a venue
    plugin of any origin is refused before anything opens."""
    if getattr(loaded.broker_cls, "simulated", False) is True:
        return None
    mode = loaded.config.engine.mode
    if runs is None and mode == "live":
        return None
    what = runs or f'mode "{mode}"'
    simulated = [n for n in registry.names("broker") if getattr(registry.get("broker", n), "simulated", False) is True]
    return (
        f'{loaded.path}: [broker] type = "{loaded.config.broker.type}" is a venue broker; '
        f"{what} runs only simulated brokers ({', '.join(simulated) or 'none installed'})"
    )


def refuse_venue_broker(loaded: LoadedConfig, registry: Registry, runs: str | None = None) -> None:
    """Raise ConfigError with :func:`venue_refusal`'s line, if any."""
    refusal = venue_refusal(loaded, registry, runs)
    if refusal is not None:
        raise ConfigError(refusal)


def report_dir(loaded: LoadedConfig) -> Path:
    """The run's report folder; shard K of N writes its own, ``<report.dir>-KofN``
    (``engine report merge`` shows the shards together). A live run whose
    config sets no ``report.dir`` writes ``reports/<engine id>``, never into
    ``reports`` itself beside other runs' folders."""
    section = loaded.config.report
    folder = (loaded.base_dir / section.dir).resolve()
    if loaded.config.engine.mode == "live" and "dir" not in section.model_fields_set:
        return folder / loaded.config.engine.id  # a shard's id ends in -KofN already
    shard = loaded.config.engine.shard
    return folder.with_name(f"{folder.name}-{shard.replace('/', 'of')}") if shard else folder


def cannot_create(folder: Path) -> str | None:
    """Why ``folder`` (or the folders above it) could not be made; None when it can."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            return "no existing folder above it"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file" if probe != folder else "it is a file"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable" if probe != folder else "it is not writable"
    return None


# A params key read by the strategy: params.qty, params["qty"], params.get("qty"), p.qty (a local alias), ...
_READS = r"(\.{0}\b|\[\s*[\"']{0}[\"']\s*\]|\.get\(\s*[\"']{0}[\"'])"


def load_warnings(loaded: LoadedConfig) -> list[str]:
    """One line per config setting a user likely expects to matter and that does not."""
    cfg = loaded.config
    warnings = []
    params = cfg.strategy.params
    if "qty" in params:
        source = strategy_source(loaded)
        sizes = _entry_sizes(loaded)
        same = sizes == {f"[strategy] qty = {cfg.strategy.qty}"} and _same_qty(params["qty"], cfg.strategy.qty)
        if source is not None and not same and not re.search(_READS.format("qty"), source):
            name = cfg.strategy.script or cfg.strategy.class_
            warnings.append(
                f"{loaded.path}: strategy.params.qty = {params['qty']!r} has no effect: {name} never reads "
                f"params.qty, so an entry is sized by {' or '.join(sorted(sizes))}"
            )
    engine = cfg.engine
    if engine.id.startswith(LEGACY_ENGINE_ID) and keeps_legacy_id(loaded.path, engine.state_dir):
        if "id" not in (read_toml(loaded.path).get("engine") or {}):
            warnings.append(
                f"{loaded.path}: engine.id: not set, so the engine keeps the id {LEGACY_ENGINE_ID!r} of the journal "
                f"in {loaded.base_dir / engine.state_dir} (a config without an id is now named after its file); "
                f'set id = "{LEGACY_ENGINE_ID}" to keep it'
            )
    strategy = cfg.strategy
    unused = "max_instructions" if strategy.budget == "time" else "max_call_ms"
    if unused in strategy.model_fields_set:
        warnings.append(
            f"{loaded.path}: strategy.{unused} = {getattr(strategy, unused)} is not used: the CPU budget is "
            f'budget = "{strategy.budget}"'
            + (
                ' (the default); set budget = "instructions" to count instructions'
                if unused == "max_instructions"
                else ""
            )
        )
    return warnings


def _entry_sizes(loaded: LoadedConfig) -> set[str]:
    """What sizes an entry whose decision gives no qty, for each symbol (as the config says it)."""
    cfg = loaded.config
    sizes = set()
    for symbol in cfg.engine.symbols:
        lim = cfg.risk.for_symbol(symbol)
        where = f"[risk.symbols.{symbol}]" if symbol in cfg.risk.symbols else "[risk]"
        if lim.sizing != "fixed_qty":
            sizes.add(f'{where} sizing = "{lim.sizing}"')
        elif lim.qty is not None:
            sizes.add(f"{where} qty = {lim.qty}")
        else:
            sizes.add(f"[strategy] qty = {cfg.strategy.qty}")
    return sizes


def _same_qty(value: object, qty: Decimal) -> bool:
    try:
        return Decimal(str(value)) == qty
    except ArithmeticError:
        return False


def strategy_source(loaded: LoadedConfig) -> str | None:
    """The text of the strategy's file, found without running it; None when unknown."""
    strategy = loaded.config.strategy
    if strategy.script:
        path = loaded.base_dir / strategy.script
    elif strategy.class_:
        module = strategy.class_.partition(":")[0]
        if module.endswith(".py"):
            path = loaded.base_dir / module
        else:
            try:
                spec = importlib.util.find_spec(module)
            except (ImportError, ValueError):
                return None
            if spec is None or not spec.origin or not spec.origin.endswith(".py"):
                return None
            path = Path(spec.origin)
    else:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


__all__ = [
    "Validation",
    "cannot_create",
    "load_warnings",
    "preflight",
    "refuse_venue_broker",
    "validate",
    "venue_refusal",
]

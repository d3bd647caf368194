"""What can be known about a config without running it.

``engine validate`` loads the config (every plugin's table checked by its
plugin), loads the strategy, asks the source to ``check()`` its data, and
checks that the report folder can be made. Nothing is written, no broker is
contacted and no journal is opened. ``engine run`` makes the cheap checks of
:func:`preflight` before any work, and prints :func:`load_warnings`.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine_core.config import LoadedConfig, load_config
from engine_core.errors import EngineError
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
        text = str(err)
        self.problems.append(text if text.startswith(f"{self.path}:") else f"{self.path}: {text}")


def validate(path: Path, registry: Registry) -> Validation:
    """Every check that needs no run; each failed check adds one problem."""
    result = Validation(path)
    try:
        loaded = load_config(path, registry)
    except EngineError as err:
        result.add_problem(err)
        return result
    cfg = loaded.config
    for problem in preflight(loaded, report=True):
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
    result.summary = (
        f"{cfg.engine.mode}, {len(cfg.engine.symbols)} symbols, source {cfg.source.type}, "
        f"strategy {host.name} on {cfg.strategy.host}, broker {cfg.broker.type}"
    )
    if cfg.engine.mode == "live":
        from engine_core.recording.format import recording_enabled, recordings_dir

        where = recordings_dir(loaded.base_dir, cfg.engine)
        result.summary += f", recorded to {where}" if recording_enabled(cfg.engine) else ", not recorded"
    return result


def preflight(loaded: LoadedConfig, *, report: bool) -> list[str]:
    """Problems a run would meet that cost nothing to find out: the report
    folder cannot be made (when a report is written)."""
    problems = []
    if report:
        out = report_dir(loaded)
        why = cannot_create(out)
        if why:
            problems.append(f"{loaded.path}: report.dir: cannot create {out}: {why}")
    return problems


def report_dir(loaded: LoadedConfig) -> Path:
    """The run's report folder; shard K of N writes its own, ``<report.dir>-KofN``
    (``engine report merge`` shows the shards together)."""
    folder = (loaded.base_dir / loaded.config.report.dir).resolve()
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
        if source is not None and not re.search(_READS.format("qty"), source):
            name = cfg.strategy.script or cfg.strategy.class_
            warnings.append(
                f"{loaded.path}: strategy.params.qty = {params['qty']!r} is not used for sizing: {name} never reads "
                f"it, and a decision without qty trades [strategy] qty = {cfg.strategy.qty} (or the [risk] sizing)"
            )
    return warnings


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


__all__ = ["Validation", "cannot_create", "load_warnings", "preflight", "validate"]

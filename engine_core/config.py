"""TOML configuration, validated into typed objects before anything starts.

Every error is one line naming the file, the key path and what was expected::

    config.toml: broker.cash: expected a positive number, got 'abc'

``${NAME}`` in string values is replaced from the environment; a missing
variable is an error. Values that came from the environment are never shown
in messages (they are usually secrets).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine_core.errors import ConfigError, PluginError
from engine_core.plugins import Registry
from engine_core.risk import RiskSection

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EngineSection(_Section):
    mode: Literal["backtest", "live"] = "backtest"
    symbols: list[str] = Field(min_length=1)
    window: int = Field(default=500, ge=2, le=1_000_000)
    id: str = Field(default="engine", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    chunk: int = Field(default=16384, ge=1, le=10_000_000)  # bars a backtest hands a worker at once
    state_dir: str = ".engine"  # where the journal lives: <state_dir>/<id>.sqlite
    journal: bool | None = None  # default: on for live runs, off for backtests
    journal_sync: Literal["full", "normal"] = "full"  # "normal" survives a crash, not power loss
    record: bool | None = None  # record what enters a live run (engine replay); default: on for live runs
    shard: str | None = None  # "K/N": run only the symbols of shard K of N (see shard_symbols)

    @field_validator("shard")
    @classmethod
    def _shard(cls, shard: str | None) -> str | None:
        if shard is not None:
            parse_shard(shard)
        return shard

    @field_validator("symbols")
    @classmethod
    def _unique(cls, symbols: list[str]) -> list[str]:
        for s in symbols:
            if not re.fullmatch(r"[A-Za-z0-9._/:-]{1,40}", s):
                raise ValueError(f"symbol {s!r} has characters a symbol cannot have")
        dupes = sorted({s for s in symbols if symbols.count(s) > 1})
        if dupes:
            raise ValueError(f"symbol {dupes[0]!r} is listed twice")
        return symbols


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` as (K, N), 1 <= K <= N; ValueError saying what was expected."""
    m = re.fullmatch(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*", text)
    if m is None or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ValueError('expected "K/N" with 1 <= K <= N (e.g. "2/4")')
    return int(m.group(1)), int(m.group(2))


def shard_of(symbol: str, shards: int) -> int:
    """The shard (1..shards) a symbol belongs to: the first 8 bytes of the
    SHA-256 of its UTF-8 name, big-endian, modulo ``shards``, plus one. Stable
    across processes, machines and Python versions (unlike ``hash()``)."""
    digest = hashlib.sha256(symbol.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shards + 1


def shard_symbols(symbols: list[str], shard: str) -> list[str]:
    """The symbols of shard ``"K/N"``, in configured order."""
    k, n = parse_shard(shard)
    return [s for s in symbols if shard_of(s, n) == k]


class PluginSection(_Section):
    """A table naming a plugin by ``type``; its other keys belong to the plugin."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str


class StrategySection(_Section):
    host: str = "lua"
    script: str | None = None
    class_: str | None = Field(default=None, alias="class")
    params: dict[str, Any] = Field(default_factory=dict)
    qty: Decimal = Field(default=Decimal(1), gt=0)
    stop_loss: float | None = Field(default=None, gt=0, lt=1)
    take_profit: float | None = Field(default=None, gt=0)
    trailing_stop: float | None = Field(default=None, gt=0, lt=1)
    on_error: Literal["keep", "flatten"] = "flatten"
    max_instructions: int = Field(default=1_000_000, ge=1000)
    max_memory_mb: int = Field(default=64, ge=1)
    reload: bool = True


class ReportSection(_Section):
    dir: str = "reports"
    html: bool = True


class EngineConfig(_Section):
    engine: EngineSection
    source: PluginSection
    strategy: StrategySection
    broker: PluginSection = PluginSection(type="paper")
    sinks: list[PluginSection] = Field(default_factory=list)
    report: ReportSection = ReportSection()
    risk: RiskSection = RiskSection()
    # The [optimize] table belongs to ``engine optimize`` (engine-plugin-optimize),
    # which validates it; a run ignores it, so one file serves both commands.
    optimize: dict[str, Any] | None = None


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with each plugin table validated by its plugin."""

    path: Path
    config: EngineConfig
    source_cls: type
    source_config: Any
    broker_cls: type
    broker_config: Any
    host_cls: type
    sinks: list[tuple[type, Any]]
    secret_paths: frozenset[str] = frozenset()  # key paths whose values came from the environment

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def public_params(self) -> dict[str, Any]:
        """The strategy's params for reports, with values from the environment hidden."""
        return {
            key: "<from environment>" if f"strategy.params.{key}" in self.secret_paths else value
            for key, value in self.config.strategy.params.items()
        }


def _substitute(value: Any, path: str, env_paths: set[str], where: str) -> Any:
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                raise ConfigError(f"{where}: {path}: environment variable {name} is not set")
            env_paths.add(path)
            return os.environ[name]

        return _ENV.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, f"{path}.{k}" if path else str(k), env_paths, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, f"{path}[{i}]", env_paths, where) for i, v in enumerate(value)]
    return value


_EXPECTED = {
    "missing": "required key is missing",
    "extra_forbidden": "unknown key",
    "greater_than": "expected a number > {gt}",
    "greater_than_equal": "expected a number >= {ge}",
    "less_than": "expected a number < {lt}",
    "less_than_equal": "expected a number <= {le}",
}


def _describe(err: Any, secret: bool) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = "" if secret or kind in ("missing", "extra_forbidden") else f", got {err.get('input')!r}"
    if kind in ("decimal_parsing", "float_parsing", "int_parsing", "decimal_type", "float_type", "int_type"):
        return f"expected a number{got}"
    if kind in ("greater_than", "greater_than_equal") and ctx.get("gt", ctx.get("ge")) in (0, "0"):
        return f"expected a positive number{got}"
    if kind in _EXPECTED:
        return _EXPECTED[kind].format(**ctx) + got
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}{got}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{msg[0].lower() + msg[1:] if msg else kind}{got}"


def format_validation_error(
    err: ValidationError,
    where: str,
    prefix: str = "",
    env_paths: set[str] | None = None,
    model: type[BaseModel] | None = None,
) -> ConfigError:
    """One line for the first problem (and how many more there are); an
    unknown key of ``model`` gets the closest known one as a suggestion."""
    errors = err.errors()
    first = errors[0]
    loc = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in first["loc"]).replace(".[", "[")
    key = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
    secret = bool(env_paths) and any(key == p or key.startswith(p + ".") for p in env_paths or ())
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    hint = _suggestion(model, first["loc"]) if first["type"] == "extra_forbidden" and model is not None else ""
    return ConfigError(f"{where}: {key}: {_describe(first, secret)}{hint}{more}")


def _suggestion(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """``; did you mean 'x'?`` for an unknown key close to a known one at ``loc``."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if isinstance(part, str) else None
        inner = getattr(field, "annotation", None)
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return ""
        model = inner
    known = [f.alias or name for name, f in model.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.7)
    return f"; did you mean {close[0]!r}?" if close else ""


def read_toml(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from err
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")  # editors on Windows may write a BOM
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        raise ConfigError(
            f"{path}: not UTF-8 text: line {line}, byte {column} (0x{data[err.start]:02x}); save the file as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from err


def validate_plugin_config(
    model: type[BaseModel],
    values: dict[str, Any],
    where: str,
    prefix: str,
    env_paths: set[str],
    base_dir: Path | None = None,
) -> Any:
    """Validate a plugin's table. Validators find the config file's directory
    as ``info.context["base_dir"]`` (to resolve and check relative paths)."""
    try:
        return model.model_validate(values, context={"base_dir": base_dir})
    except ValidationError as err:
        raise format_validation_error(err, where, prefix, env_paths, model) from err


def _plugin(registry: Registry, kind: str, name: str, where: str, key: str) -> Any:
    try:
        return registry.get(kind, name)
    except PluginError as err:
        raise PluginError(f"{where}: {key}: {err}") from err


def _apply_shard(engine: EngineSection, shard: str | None, where: str) -> EngineSection:
    """Keep the symbols of the shard (``shard`` overrides ``engine.shard``); the
    engine id gains ``-KofN`` so each shard has its own journal, client ids
    and MQTT topics."""
    shard = shard if shard is not None else engine.shard
    if shard is None:
        return engine
    try:
        k, n = parse_shard(shard)
    except ValueError as err:
        raise ConfigError(f"--shard: {err}, got {shard!r}") from None
    symbols = shard_symbols(engine.symbols, shard)
    if not symbols:
        raise ConfigError(
            f"{where}: engine.shard: shard {k}/{n} holds none of the {len(engine.symbols)} symbols; use fewer shards"
        )
    return engine.model_copy(update={"symbols": symbols, "shard": f"{k}/{n}", "id": f"{engine.id}-{k}of{n}"})


def read_engine_section(path: Path, shard: str | None = None) -> EngineSection:
    """The ``[engine]`` table of the config at ``path`` alone, validated and
    sharded as a run reads it: for commands that need no plugin (``engine status``)."""
    where = str(path)
    env_paths: set[str] = set()
    raw = _substitute(read_toml(path).get("engine", {}), "engine", env_paths, where)
    try:
        engine = EngineSection.model_validate(raw)
    except ValidationError as err:
        raise format_validation_error(err, where, "engine", env_paths, EngineSection) from err
    return _apply_shard(engine, shard, where)


def journal_path(base_dir: Path, engine: EngineSection) -> Path:
    """Where an engine's journal lives: ``<state_dir>/<engine id>.sqlite``, the
    folder relative to the config's."""
    return base_dir / engine.state_dir / f"{engine.id}.sqlite"


def load_config(path: str | Path, registry: Registry, shard: str | None = None) -> LoadedConfig:
    """Read, substitute, validate; resolve every named plugin and validate its table.

    ``shard`` ("K/N", e.g. from ``engine run --shard``) overrides ``engine.shard``."""
    path = Path(path)
    where = str(path)
    raw = read_toml(path)
    env_paths: set[str] = set()
    raw = _substitute(raw, "", env_paths, where)
    if "sink" in raw or isinstance(raw.get("sinks"), dict):
        key = "sink" if "sink" in raw else "sinks"
        raise ConfigError(
            f"{where}: {key}: sinks are a list of tables: write [[sinks]] (once per sink) instead of [{key}]"
        )
    try:
        cfg = EngineConfig.model_validate(raw)
    except ValidationError as err:
        raise format_validation_error(err, where, "", env_paths, EngineConfig) from err
    cfg = cfg.model_copy(update={"engine": _apply_shard(cfg.engine, shard, where)})
    strat = cfg.strategy
    if strat.script and strat.class_:
        raise ConfigError(f"{where}: strategy: give either script or class, not both")
    if not strat.script and not strat.class_:
        raise ConfigError(f'{where}: strategy: expected script = "file.lua" or class = "module:Class"')

    def extras(section: PluginSection) -> dict[str, Any]:
        return dict(section.model_extra or {})

    base = path.parent
    source_cls = _plugin(registry, "source", cfg.source.type, where, "source.type")
    source_config = validate_plugin_config(source_cls.Config, extras(cfg.source), where, "source", env_paths, base)
    broker_cls = _plugin(registry, "broker", cfg.broker.type, where, "broker.type")
    broker_config = validate_plugin_config(broker_cls.Config, extras(cfg.broker), where, "broker", env_paths, base)
    host_cls = _plugin(registry, "strategy_host", strat.host, where, "strategy.host")
    sinks = []
    for i, sink in enumerate(cfg.sinks):
        sink_cls = _plugin(registry, "sink", sink.type, where, f"sinks[{i}].type")
        sink_config = validate_plugin_config(sink_cls.Config, extras(sink), where, f"sinks[{i}]", env_paths, base)
        sinks.append((sink_cls, sink_config))
    return LoadedConfig(
        path, cfg, source_cls, source_config, broker_cls, broker_config, host_cls, sinks, frozenset(env_paths)
    )

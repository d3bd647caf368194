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

from engine_core.errors import ConfigError, EngineError, PluginError
from engine_core.plugins import KNOWN_PROVIDERS, Registry
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
    id: str = "engine"  # unset: the config file's name (default_engine_id)
    chunk: int = Field(default=16384, ge=1, le=10_000_000)  # bars a backtest hands a worker at once
    state_dir: str = ".engine"  # where the journal lives: <state_dir>/<id>.sqlite
    journal: bool | None = None  # default: on for live runs, off for backtests
    journal_sync: Literal["full", "normal"] = "full"  # "normal" survives a crash, not power loss
    record: bool | None = None  # record what enters a live run (engine replay); default: on for live runs
    shard: str | None = None  # "K/N": run only the symbols of shard K of N (see shard_symbols)
    # seconds a live engine's stop gives an order already sent to be answered
    # (else it is journaled unknown, for the next start to ask about)
    stop_timeout: float = Field(default=10.0, ge=0, le=600)

    @field_validator("id")
    @classmethod
    def _id(cls, engine_id: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", engine_id):
            raise ValueError("expected 1 to 32 letters, digits, '-' or '_' (it names the journal and MQTT topics)")
        return engine_id

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
    budget: Literal["time", "instructions"] = "time"  # how a sandboxed call's CPU is limited
    max_call_ms: int = Field(default=100, ge=1)  # budget = "time": CPU time per call
    max_instructions: int = Field(default=1_000_000, ge=1000)  # budget = "instructions": per call
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
    # (table name, Service class, its validated config): the top-level tables of services (engine_core.services)
    services: tuple[tuple[str, type, Any], ...] = ()

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def public_params(self) -> dict[str, Any]:
        """The strategy's params for reports, with values from the environment hidden."""
        return {
            key: "<from environment>" if f"strategy.params.{key}" in self.secret_paths else value
            for key, value in self.config.strategy.params.items()
        }


def _substitute(
    value: Any, path: str, env_paths: set[str], where: str, unset: list[tuple[str, str]] | None = None
) -> Any:
    """``${NAME}`` replaced from the environment; a variable that is not set
    is an error, or, with ``unset``, noted there (key path, name) and left as written."""
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            env_paths.add(path)
            if name in os.environ:
                return os.environ[name]
            if unset is None:
                raise ConfigError(f"{where}: {path}: environment variable {name} is not set")
            unset.append((path, name))
            return m.group(0)

        return _ENV.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, f"{path}.{k}" if path else str(k), env_paths, where, unset) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, f"{path}[{i}]", env_paths, where, unset) for i, v in enumerate(value)]
    return value


_EXPECTED = {
    "missing": "required key is missing",
    "extra_forbidden": "unknown key",
    "greater_than": "expected a number > {gt}",
    "greater_than_equal": "expected a number >= {ge}",
    "less_than": "expected a number < {lt}",
    "less_than_equal": "expected a number <= {le}",
    "int_from_float": "expected a whole number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string",
    "string_pattern_mismatch": "expected text matching {pattern}",
    "list_type": "expected a list",
    "dict_type": "expected a table",
    "model_type": "expected a table",
    "model_attributes_type": "expected a table",
}
_NUMBER = ("decimal_parsing", "float_parsing", "int_parsing", "decimal_type", "float_type", "int_type")
MAX_PROBLEMS = 50
"""At most this many problems are listed one per line; a last line says how many more there are."""


_DATES = (
    "datetime_type",
    "datetime_parsing",
    "datetime_from_date_parsing",
    "date_type",
    "date_parsing",
    "date_from_datetime_parsing",
    "date_from_datetime_inexact",
)
# The last part of a key path that names a member of a union (``str | int``) in
# pydantic's errors, not a key: every member's error comes with the same value.
_UNION_MEMBER = re.compile(
    r"(str|int|float|bool|bytes|datetime|date|time|timedelta|decimal"
    r"|(list|dict|tuple|set|frozenset|literal|function-[a-z]+|is-instance|lax-or-strict|json-or-python|chain)\[.*\])"
)


def _expected(err: Any) -> str:
    """What was expected, in the engine's words."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in _NUMBER:
        return "expected a number"
    if kind == "greater_than" and ctx.get("gt") in (0, "0"):
        return "expected a positive number"
    if kind == "greater_than_equal" and ctx.get("ge") in (0, "0"):
        return "expected 0 or more"
    if kind in _EXPECTED:
        return _EXPECTED[kind].format(**ctx)
    if kind in ("string_too_short", "string_too_long"):
        n = ctx.get("min_length" if kind == "string_too_short" else "max_length")
        if kind == "string_too_short" and n == 1:
            return "expected a non-empty string"
        return f"expected at {'least' if kind == 'string_too_short' else 'most'} {n} characters"
    if kind in ("too_short", "too_long"):
        n = ctx.get("min_length" if kind == "too_short" else "max_length")
        return f"expected at {'least' if kind == 'too_short' else 'most'} {n} item{'' if n == 1 else 's'}"
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}"
    if kind in _DATES:
        why = err["msg"].partition(", ")[2]
        return "expected a date (2024-01-31) or a date and time (2024-01-31T09:30:00)" + (f": {why}" if why else "")
    msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    msg = msg.replace("Input should be ", "expected ", 1)
    return msg[0].lower() + msg[1:] if msg else kind


def _describe(errs: list[Any], secret: bool) -> str:
    """What was expected (by any member of a union: ``a string or a whole
    number``) and what was found, unless it is a secret, a whole table, or
    the message already shows it."""
    texts = list(dict.fromkeys(_expected(err) for err in errs))
    text = texts[0] if len(texts) == 1 else "expected " + " or ".join(t.removeprefix("expected ") for t in texts)
    kind, value = errs[0]["type"], errs[0].get("input")
    shown = repr(value)
    if secret or kind in ("missing", "extra_forbidden") or isinstance(value, dict) or shown in text:
        return text
    return f"{text}, got {shown}"


def _merge_unions(errors: list[Any]) -> list[tuple[tuple[Any, ...], list[Any]]]:
    """(key path, errors) per problem: the errors of a union's members (same
    value, paths that differ only in a last part naming the member) are one."""
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for err in errors:
        loc = tuple(err["loc"])
        member = bool(loc) and isinstance(loc[-1], str) and _UNION_MEMBER.fullmatch(loc[-1]) is not None
        key = ("union", loc[:-1], repr(err.get("input"))) if member else ("one", loc, len(groups))
        groups.setdefault(key, []).append(err)
    out = []
    for key, errs in groups.items():
        loc = tuple(errs[0]["loc"])
        out.append((loc[:-1] if key[0] == "union" and len(errs) > 1 else loc, errs))
    return out


def validation_problems(
    err: ValidationError,
    where: str,
    prefix: str = "",
    env_paths: set[str] | None = None,
    model: type[BaseModel] | None = None,
    plugin: str = "",
) -> list[str]:
    """One line per problem, ``where: key.path: what was expected``; an
    unknown key of ``model`` gets the closest known one as a suggestion, and
    a plugin's table names the plugin (``broker.api_key: required key is missing (binance broker)``)."""
    lines = []
    for path, errs in _merge_unions(err.errors()):
        is_key = bool(path) and path[-1] == "[key]"  # a table's key, not its value, is wrong
        path = path[:-1] if is_key else path
        loc = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path).replace(".[", "[")
        key = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        secret = bool(env_paths) and any(key == p or key.startswith(p + ".") for p in env_paths or ())
        hint = ""
        if errs[0]["type"] == "extra_forbidden" and model is not None:
            hint = _suggestion(model, errs[0]["loc"])
        named = f" ({plugin})" if plugin else ""
        what = f"unknown key; {_expected(errs[0])}" if is_key else _describe(errs, secret)
        lines.append(f"{where}: {key}: {what}{named}{hint}")
    return lines


def problems_text(lines: list[str]) -> str:
    """Problems one per line, at most :data:`MAX_PROBLEMS` of them."""
    if len(lines) <= MAX_PROBLEMS:
        return "\n".join(lines)
    more = len(lines) - MAX_PROBLEMS
    return "\n".join([*lines[:MAX_PROBLEMS], f"... and {more} more problem{'' if more == 1 else 's'}"])


def format_validation_error(
    err: ValidationError,
    where: str,
    prefix: str = "",
    env_paths: set[str] | None = None,
    model: type[BaseModel] | None = None,
    plugin: str = "",
) -> ConfigError:
    """A ConfigError listing every problem of ``err``, one per line."""
    return ConfigError(problems_text(validation_problems(err, where, prefix, env_paths, model, plugin)))


def in_config(path: Path | str, err: BaseException) -> str:
    """The message of ``err`` with every line starting with the config file's
    path (errors raised from deeper down, such as a missing data file, name
    only their key)."""
    head = f"{path}:"
    return "\n".join(line if line.startswith(head) else f"{head} {line}" for line in str(err).splitlines())


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
    plugin: str = "",
    tables: dict[str, Any] | None = None,
) -> Any:
    """Validate a plugin's table (``plugin`` names it in the messages, e.g.
    ``binance``). Validators find the config file's directory as
    ``info.context["base_dir"]`` (to resolve and check relative paths) and
    the config's other tables as ``info.context["tables"]`` (a source that
    follows its broker's account, for example; empty when validated alone)."""
    try:
        return model.model_validate(values, context={"base_dir": base_dir, "tables": tables or {}})
    except ValidationError as err:
        raise format_validation_error(err, where, prefix, env_paths, model, plugin) from err


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


LEGACY_ENGINE_ID = "engine"  # the default engine id before ids came from the config file's name


def default_engine_id(path: Path, engine: EngineSection) -> EngineSection:
    """``engine.id`` when the config sets it; else the config file's name
    (``binance_paper.toml``: ``binance_paper``, so topics read
    ``engine/binance_paper/BTCUSDT/...``), or the former default ``engine``
    while a journal of that name, and none of the new, sits in the state
    folder (an open position stays with the journal and client ids that know it)."""
    if "id" in engine.model_fields_set or keeps_legacy_id(path, engine.state_dir):
        return engine
    return engine.model_copy(update={"id": _stem_id(path)})


def _stem_id(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", path.stem)[:32].strip("-") or LEGACY_ENGINE_ID


def keeps_legacy_id(path: Path, state_dir: str) -> bool:
    """Whether a config without ``engine.id`` keeps the former default: its
    state folder holds a journal of that id (or of its shards) and none of
    the file's name."""

    def journals(engine_id: str) -> bool:
        return (folder / f"{engine_id}.sqlite").exists() or any(folder.glob(f"{engine_id}-*of*.sqlite"))

    folder = path.parent / state_dir
    stem = _stem_id(path)
    return stem != LEGACY_ENGINE_ID and journals(LEGACY_ENGINE_ID) and not journals(stem)


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
    return _apply_shard(default_engine_id(path, engine), shard, where)


def journal_path(base_dir: Path, engine: EngineSection) -> Path:
    """Where an engine's journal lives: ``<state_dir>/<engine id>.sqlite``, the
    folder relative to the config's."""
    return base_dir / engine.state_dir / f"{engine.id}.sqlite"


class _Problems:
    """Every problem of one config, so that one run of ``engine validate`` or
    ``engine run`` lists them all; raised as the first problem's error class."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.kind: type[EngineError] | None = None

    def add(self, err: EngineError) -> None:
        self.note(type(err), str(err).splitlines())

    def note(self, kind: type[EngineError], lines: list[str]) -> None:
        self.kind = self.kind or kind
        self.lines += lines

    def raise_any(self) -> None:
        if self.kind is not None:
            raise self.kind(problems_text(self.lines))


def load_config(
    path: str | Path, registry: Registry, shard: str | None = None, *, unset_env: list[tuple[str, str]] | None = None
) -> LoadedConfig:
    """Read, substitute, validate; resolve every named plugin and validate its table.

    Every problem is reported at once (one line each). ``shard`` ("K/N", e.g.
    from ``engine run --shard``) overrides ``engine.shard``. With ``unset_env``
    (``engine validate``), a ``${NAME}`` that is not set is not an error: it
    is noted there (key path, variable) and left as written."""
    path = Path(path)
    where = str(path)
    raw = read_toml(path)
    env_paths: set[str] = set()
    raw = _substitute(raw, "", env_paths, where, unset_env)
    if "sink" in raw or isinstance(raw.get("sinks"), dict):
        key = "sink" if "sink" in raw else "sinks"
        raise ConfigError(
            f"{where}: {key}: sinks are a list of tables: write [[sinks]] (once per sink) instead of [{key}]"
        )
    # a top-level table the engine does not know may be a service's ([dashboard])
    service_tables = {
        key: raw.pop(key)
        for key in list(raw)
        if key not in EngineConfig.model_fields
        and (registry.has("service", key) or ("service", key) in KNOWN_PROVIDERS)
    }
    problems = _Problems()
    cfg: EngineConfig | None = None
    try:
        cfg = EngineConfig.model_validate(raw)
    except ValidationError as err:
        problems.note(ConfigError, validation_problems(err, where, "", env_paths, EngineConfig))
    base = path.parent

    def plugin_table(kind: str, key: str, table: Any) -> tuple[type, Any] | None:
        """The plugin a table names and its validated keys (None after a problem)."""
        if not isinstance(table, dict) or not isinstance(table.get("type"), str):
            return None  # already reported by EngineConfig
        name = table["type"]
        try:
            cls = _plugin(registry, kind, name, where, f"{key}.type")
        except PluginError as err:
            problems.add(err)
            return None
        extras = {k: v for k, v in table.items() if k != "type"}
        try:
            return cls, cls.Config.model_validate(extras, context={"base_dir": base, "tables": raw})
        except ValidationError as err:
            label = f"{name} {kind}"
            problems.note(ConfigError, validation_problems(err, where, key, env_paths, cls.Config, label))
            return None

    source = plugin_table("source", "source", raw.get("source"))
    broker = plugin_table("broker", "broker", raw.get("broker", {"type": "paper"}))
    sinks = []
    raw_sinks = raw.get("sinks")
    for i, table in enumerate(raw_sinks if isinstance(raw_sinks, list) else []):
        sink = plugin_table("sink", f"sinks[{i}]", table)
        if sink is not None:
            sinks.append(sink)
    services = []
    for key, table in service_tables.items():
        try:
            service_cls = _plugin(registry, "service", key, where, key)
        except PluginError as err:
            problems.add(err)
            continue
        if not isinstance(table, dict):
            problems.add(ConfigError(f"{where}: {key}: expected a table [{key}], got {table!r}"))
            continue
        try:
            services.append(
                (key, service_cls, service_cls.Config.model_validate(table, context={"base_dir": base, "tables": raw}))
            )
        except ValidationError as err:
            problems.note(ConfigError, validation_problems(err, where, key, env_paths, service_cls.Config))
    host_cls = None
    if cfg is not None:
        try:
            engine = _apply_shard(default_engine_id(path, cfg.engine), shard, where)
            cfg = cfg.model_copy(update={"engine": engine})
        except ConfigError as err:
            problems.add(err)
        strat = cfg.strategy
        if strat.script and strat.class_:
            problems.add(ConfigError(f"{where}: strategy: give either script or class, not both"))
        if not strat.script and not strat.class_:
            problems.add(ConfigError(f'{where}: strategy: expected script = "file.lua" or class = "module:Class"'))
        try:
            host_cls = _plugin(registry, "strategy_host", strat.host, where, "strategy.host")
        except PluginError as err:
            problems.add(err)
    problems.raise_any()
    assert cfg is not None and source is not None and broker is not None and host_cls is not None
    return LoadedConfig(
        path,
        cfg,
        source[0],
        source[1],
        broker[0],
        broker[1],
        host_cls,
        sinks,
        frozenset(env_paths),
        tuple(services),
    )

"""The ``[optimize]`` table, validated against the backtest config it searches.

It lives in the backtest's own config, or in a file of its own that names
the backtest's config (``config = "sma_cross.toml"``, relative to that
file). Every mistake is one line naming the file and the key path, before
any trial runs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, field_validator, model_validator

from engine_core import ConfigError
from engine_core.config import LoadedConfig, load_config, read_toml, validate_plugin_config
from engine_core.plugins import Registry
from engine_core.validate import refuse_venue_broker
from engine_plugin_optimize.constraints import Constraint, ConstraintSyntaxError, parse_constraint
from engine_plugin_optimize.metrics import METRICS, Direction, unknown_metric_message

Scalar = str | int | float | bool


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("expected a number")
    return value


def _scalar(value: Any) -> Scalar:
    if not isinstance(value, (str, int, float, bool)):
        raise ValueError("expected a string, a number or true/false")
    return value


# one type each (a union would add its member's name to the key path of an error)
Number = Annotated[Any, PlainValidator(_number)]
Choice = Annotated[Any, PlainValidator(_scalar)]
GRID_LIMIT = 100_000  # parameter sets a grid may hold


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParamSpec(_Table):
    """One searched parameter: a range (``low``, ``high``, optional ``step`` or
    ``log``) or a list of ``choices``. A range of integers (integer ``low``,
    ``high`` and ``step``) gives integers, any other range floats."""

    low: Number | None = None
    high: Number | None = None
    step: Number | None = None
    log: bool = False
    choices: list[Choice] | None = None

    @model_validator(mode="before")
    @classmethod
    def _a_table(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError("expected a range { low = ..., high = ... } or { choices = [...] }")
        return value

    @field_validator("step")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        if value is not None and not value > 0:
            raise ValueError("expected a positive number")
        return value

    def problem(self) -> str | None:
        """What makes this an unusable range, if anything (checked with the config)."""
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.step is not None or self.log:
                return "give either choices or a range (low, high), not both"
            return None if self.choices else "empty range: choices is empty"
        if self.low is None or self.high is None:
            return "expected a range { low = ..., high = ... } or { choices = [...] }"
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return "low and high must be finite numbers"
        if self.low > self.high:
            return f"empty range: low {self.low} > high {self.high}"
        if self.log and self.step is not None:
            return "give step or log = true, not both"
        if self.log and self.low <= 0:
            return f"a log range needs low > 0, got {self.low}"
        return None

    @property
    def is_int(self) -> bool:
        return self.choices is None and all(isinstance(v, int) for v in (self.low, self.high, self.step or 1))

    @property
    def numeric(self) -> bool:
        """Whether every value it gives is a number (so a constraint can use it)."""
        if self.choices is None:
            return True
        return all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in self.choices)

    def distribution(self) -> Any:
        """The Optuna distribution of this parameter."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.choices is not None:
            return CategoricalDistribution(self.choices)
        assert self.low is not None and self.high is not None
        if self.is_int:
            return IntDistribution(int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return FloatDistribution(float(self.low), float(self.high), step=self.step, log=self.log)

    def grid(self) -> list[Scalar] | None:
        """Every value a grid search tries; None for a float range without step."""
        if self.choices is not None:
            return list(self.choices)
        assert self.low is not None and self.high is not None
        if self.is_int:
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            return None
        low, step = Decimal(str(self.low)), Decimal(str(self.step))
        count = int((Decimal(str(self.high)) - low) / step) + 1
        return [float(low + k * step) for k in range(count)]


class WalkForwardSettings(_Table):
    """``[optimize.walk_forward]``: folds over the data's time range."""

    folds: int = Field(ge=1, le=100)
    test_fraction: float = Field(gt=0, lt=1)
    anchored: bool = False  # in-sample windows all start at the first bar (else they roll)


class OptimizeSettings(_Table):
    """``[optimize]``."""

    config: str | None = None  # the backtest config, when this file only holds [optimize]
    metric: str = "sharpe"
    trials: int = Field(default=100, ge=1)
    sampler: Literal["tpe", "random", "grid", "cmaes"] = "tpe"
    seed: int | None = None
    min_trades: int = Field(default=0, ge=0)
    constraints: list[str] = Field(default_factory=list)
    study: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    storage: str | None = None
    top: int = Field(default=10, ge=1, le=1000)  # rows of the terminal table
    params: dict[str, ParamSpec] = Field(min_length=1)
    walk_forward: WalkForwardSettings | None = None


@dataclass(frozen=True)
class Job:
    """Everything a search needs, checked: the settings, the loaded backtest, the parsed constraints."""

    settings: OptimizeSettings
    loaded: LoadedConfig
    where: Path  # the file holding [optimize]
    raw_config: dict[str, Any]  # the backtest config as written (no environment values)
    constraints: tuple[Constraint, ...]

    @property
    def direction(self) -> Direction:
        return METRICS[self.settings.metric]

    @property
    def base_params(self) -> dict[str, Any]:
        return dict(self.loaded.config.strategy.params)

    @property
    def study_name(self) -> str:
        return self.settings.study or re.sub(r"[^A-Za-z0-9_.-]", "_", self.where.stem)[:64]

    @property
    def report_dir(self) -> Path:
        return (self.loaded.base_dir / self.loaded.config.report.dir).resolve()

    def default_storage(self) -> str:
        return f"sqlite:///{self.where.parent.resolve() / (self.where.stem + '.optuna.sqlite')}"

    def distributions(self) -> dict[str, Any]:
        return {name: spec.distribution() for name, spec in self.settings.params.items()}

    def grid(self) -> dict[str, list[Scalar]]:
        values = {name: spec.grid() for name, spec in self.settings.params.items()}
        return {name: v for name, v in values.items() if v is not None}

    def violation(self, params: dict[str, Any]) -> str | None:
        """Why a parameter set may not run (the first constraint it breaks), or None."""
        merged = {**self.base_params, **params}
        for constraint in self.constraints:
            reason = constraint.violation(merged)
            if reason is not None:
                return reason
        return None


def load_job(path: str | Path, registry: Registry) -> Job:
    """Read the file with ``[optimize]``, load the backtest config it belongs to, check both."""
    path = Path(path)
    where = str(path)
    raw = read_toml(path)
    table = raw.get("optimize")
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: optimize: the [optimize] table is missing (what to search, see the plugin README)")
    settings: OptimizeSettings = validate_plugin_config(OptimizeSettings, table, where, "optimize", set())
    if settings.config is not None:
        others = sorted(k for k in raw if k != "optimize")
        if others:
            raise ConfigError(
                f"{where}: {others[0]}: this file names its backtest config (optimize.config); "
                "put the backtest's tables there"
            )
        config_path = path.parent / settings.config
        if not config_path.is_file():
            raise ConfigError(f"{where}: optimize.config: no such config file {config_path}")
        raw_config = read_toml(config_path)
    else:
        config_path, raw_config = path, raw
    loaded = load_config(config_path, registry)
    refuse_venue_broker(loaded, registry, "engine optimize")  # before anything is read or started
    if loaded.config.engine.mode != "backtest":
        raise ConfigError(f'{config_path}: engine.mode: engine optimize runs backtests; set mode = "backtest"')
    params = loaded.config.strategy.params
    for name, spec in settings.params.items():
        if name not in params:
            known = ", ".join(params) or "nothing"
            raise ConfigError(
                f"{where}: optimize.params.{name}: not a strategy parameter; "
                f"[strategy.params] of {config_path} has {known}"
            )
        problem = spec.problem()
        if problem is not None:
            raise ConfigError(f"{where}: optimize.params.{name}: {problem}")
    if settings.metric not in METRICS:
        raise ConfigError(f"{where}: optimize.metric: {unknown_metric_message(settings.metric)}")
    constraints = tuple(
        _constraint(text, f"{where}: optimize.constraints[{i}]", settings, params)
        for i, text in enumerate(settings.constraints)
    )
    if settings.sampler == "grid":
        _check_grid(settings, where)
    return Job(settings, loaded, path, raw_config, constraints)


def _constraint(text: str, at: str, settings: OptimizeSettings, params: dict[str, Any]) -> Constraint:
    try:
        constraint = parse_constraint(text)
    except ConstraintSyntaxError as err:
        raise ConfigError(f"{at}: {text!r} {err}") from None
    for name in sorted(constraint.names):
        if name not in params:
            raise ConfigError(f"{at}: {name!r} is not a strategy parameter ({', '.join(params) or 'none'})")
        spec = settings.params.get(name)
        numeric = spec.numeric if spec is not None else _is_number(params[name])
        if not numeric:
            raise ConfigError(f"{at}: {name!r} is not a number, a constraint can only compare numbers")
    return constraint


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_grid(settings: OptimizeSettings, where: str) -> None:
    size = 1
    for name, spec in settings.params.items():
        values = spec.grid()
        if values is None:
            raise ConfigError(f"{where}: optimize.params.{name}: the grid sampler needs a step for a float range")
        size *= len(values)
    if size > GRID_LIMIT:
        raise ConfigError(f"{where}: optimize.params: the grid holds {size:,} parameter sets (at most {GRID_LIMIT:,})")


__all__ = ["Job", "OptimizeSettings", "ParamSpec", "WalkForwardSettings", "load_job"]

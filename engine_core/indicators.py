"""The indicator API every strategy host and plugin uses.

Indicators are registered by plugins (``register_indicators``); this module
never imports a plugin. Two ways to use each, giving the same numbers:

    compute("macd", close=arr, fast=12, slow=26, signal=9)  -> arrays (batch)
    ind = create("rsi", period=14); ind.update(bar); ind.value, ind.ready

Parameter names are the spec's; a spec may also accept other names for
them (``aliases``: TA-Lib's ``timeperiod`` for ``period``, for example).

Until an indicator has enough bars it is not ``ready`` and its value is NaN,
exactly where TA-Lib's own output starts.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine_core.errors import IndicatorError

PRICE_INPUTS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class IndicatorSpec:
    """What an indicator is: name, inputs it reads, parameters, outputs."""

    name: str  # lower case, e.g. "macd"
    inputs: tuple[str, ...]  # subset of PRICE_INPUTS, e.g. ("high", "low", "close")
    params: Mapping[str, Any]  # parameter name -> default value, in TA-Lib's order
    outputs: tuple[str, ...]  # e.g. ("macd", "macdsignal", "macdhist")
    group: str = ""
    description: str = ""
    o1: bool = False  # True when streaming updates are O(1)
    aliases: Mapping[str, str] = field(default_factory=dict)  # other accepted name -> parameter name


class StreamingIndicator(abc.ABC):
    """One indicator instance fed one bar at a time.

    ``update_many`` must give exactly what calling ``update`` bar by bar gives,
    and leave the instance in the same state.
    """

    # (no instance dict of its own: an indicator may declare slots, which a
    # live bar reads at fixed places in the object; one that does not has a dict)
    __slots__ = ()

    spec: IndicatorSpec

    @abc.abstractmethod
    def update(self, bar: Any) -> None:
        """Feed one bar (any object with open/high/low/close/volume attributes)."""

    @abc.abstractmethod
    def update_many(self, bars: Any) -> tuple[np.ndarray, ...]:
        """Feed consecutive bars as columns (a BarChunk or an object with array
        attributes); return one float64 array per output, aligned with the input."""

    @property
    @abc.abstractmethod
    def value(self) -> float | tuple[float, ...]:
        """The latest value (a tuple for multi-output indicators); NaN until ready."""

    def step(self, bar: Any) -> tuple[float, ...]:
        """``update``, then the latest value as a tuple (one number per output):
        what the engine calls on each live bar. An indicator may do it in
        one call, without building its ``value``."""
        self.update(bar)
        value = self.value
        return value if isinstance(value, tuple) else (value,)

    @property
    @abc.abstractmethod
    def ready(self) -> bool:
        """Whether the indicator has seen enough bars for a value."""


class IndicatorKind(abc.ABC):
    """A registered indicator: its spec, a batch function, a streaming factory."""

    spec: IndicatorSpec

    @abc.abstractmethod
    def batch(self, inputs: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> tuple[np.ndarray, ...]:
        """Compute over whole arrays; ``params`` are complete and validated."""

    @abc.abstractmethod
    def stream(self, params: Mapping[str, Any]) -> StreamingIndicator:
        """A new streaming instance; ``params`` are complete and validated."""


def _registry() -> Any:
    from engine_core.plugins import get_registry

    return get_registry()


def kind(name: str) -> IndicatorKind:
    reg = _registry()
    key = name.lower()
    if not reg.has("indicator", key):
        names = reg.names("indicator")
        shown = ", ".join(names[:40]) + (f", ... ({len(names)} in all)" if len(names) > 40 else "")
        hint = "" if names else "; install engine-plugin-indicators"
        raise IndicatorError(f"unknown indicator {name!r}; available: {shown or 'none'}{hint}")
    return reg.get("indicator", key)


def resolve_params(spec: IndicatorSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    """Complete ``given`` with defaults; reject unknown names and bad values.
    A parameter may be given by one of its aliases (not by two names at once)."""
    named: dict[str, Any] = {}
    for key, value in given.items():
        name = spec.aliases.get(key, key)
        if name not in spec.params:
            accepted = ", ".join(f"{k}={v!r}" for k, v in spec.params.items()) or "none"
            raise IndicatorError(f"indicator {spec.name!r} has no parameter {key!r}; accepted: {accepted}")
        if name in named:
            raise IndicatorError(f"indicator {spec.name!r}: {name} given twice (as {key!r} too)")
        named[name] = value
    params = dict(spec.params)
    for key, value in named.items():
        default = params[key]
        if isinstance(default, int) and not isinstance(default, bool):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool):
                raise IndicatorError(f"indicator {spec.name!r}: {key} must be a whole number, got {value!r}")
        elif isinstance(default, float):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise IndicatorError(f"indicator {spec.name!r}: {key} must be a number, got {value!r}")
            value = float(value)
        params[key] = value
    return params


def positional_params(name: str, args: tuple[Any, ...]) -> dict[str, Any]:
    """Map positional arguments (``sma(20)``, ``macd(12, 26, 9)``) to parameter names."""
    spec = kind(name).spec
    names = list(spec.params)
    if len(args) > len(names):
        raise IndicatorError(
            f"indicator {spec.name!r} takes at most {len(names)} parameters "
            f"({', '.join(names) or 'none'}), got {len(args)}"
        )
    return dict(zip(names, args))


def create(name: str, **params: Any) -> StreamingIndicator:
    """A streaming indicator instance, e.g. ``create("rsi", period=14)``."""
    k = kind(name)
    return k.stream(resolve_params(k.spec, params))


def compute(name: str, **kwargs: Any) -> np.ndarray | tuple[np.ndarray, ...]:
    """Batch: input arrays and parameters by keyword; one array, or a tuple for
    multi-output indicators (in ``spec.outputs`` order)."""
    k = kind(name)
    inputs = {key: kwargs.pop(key) for key in list(kwargs) if key in PRICE_INPUTS}
    missing = [i for i in k.spec.inputs if i not in inputs]
    if missing:
        raise IndicatorError(
            f"indicator {k.spec.name!r} needs input arrays {', '.join(k.spec.inputs)}; missing {', '.join(missing)}"
        )
    arrays = {key: np.ascontiguousarray(inputs[key], dtype=np.float64) for key in k.spec.inputs}
    out = k.batch(arrays, resolve_params(k.spec, kwargs))
    return out[0] if len(out) == 1 else out


def available() -> list[IndicatorSpec]:
    reg = _registry()
    return [r.obj.spec for r in reg.registrations("indicator")]

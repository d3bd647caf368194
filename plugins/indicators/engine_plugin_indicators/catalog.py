"""One indicator kind per TA-Lib function, described by TA-Lib's own metadata.

Names are TA-Lib's in lower case; parameters, defaults, inputs, outputs,
group and description come from ``talib.abstract.Function(name).info``.
Inputs map to price columns as TA-Lib's metadata names them: ``price`` and
``prices`` are columns already, the two arbitrary series of BETA, CORREL,
ADD, SUB, MULT and DIV use TA-Lib's defaults (high, low), and MAVP's
per-bar ``periods`` are read from the volume column.

Parameters keep TA-Lib's names, order and defaults, except the periods
that name the window of the whole indicator, which take the short names the
classic indicators are known by: ``timeperiod`` is ``period``,
``fastperiod``/``slowperiod``/``signalperiod`` are ``fast``/``slow``/``signal``
(``sma(period)``, ``adx(period)``, ``macd(fast, slow, signal)``, ``apo(fast,
slow, matype)``). TA-Lib's names stay accepted as aliases.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import talib
from talib import abstract

from engine_core import IndicatorError, IndicatorKind, IndicatorSpec, StreamingIndicator
from engine_plugin_indicators.streaming import O1_CLASSES
from engine_plugin_indicators.window import WindowIndicator

RENAMED: Mapping[str, str] = {
    "timeperiod": "period",
    "fastperiod": "fast",
    "slowperiod": "slow",
    "signalperiod": "signal",
}
"""TA-Lib parameter name -> the engine's, for every function."""

_TINY = np.ones(1)


class _AbstractFunction(Protocol):
    """What this module uses of a ``talib.abstract.Function``."""

    @property
    def info(self) -> dict[str, Any]: ...

    @property
    def lookback(self) -> int: ...

    def set_parameters(self, parameters: Mapping[str, Any]) -> None: ...


# talib/abstract.py defines ``Function(name)``, but the stub TA-Lib ships (abstract.pyi)
# declares only the functions themselves, so mypy cannot see it
_function: Callable[[str], _AbstractFunction] = abstract.Function  # type: ignore[attr-defined]


def _columns(input_names: Mapping[str, Any]) -> tuple[str, ...]:
    """Price columns in the order TA-Lib's function takes its input arrays."""
    columns: list[str] = []
    for key, value in input_names.items():
        if isinstance(value, (list, tuple)):
            columns.extend(value)
        else:
            columns.append("volume" if key == "periods" else value)
    return tuple(columns)


class TalibKind(IndicatorKind):
    """A TA-Lib function: batch is the function itself, streaming is O(1) where
    the plugin keeps incremental state, else a bounded-window recomputation."""

    def __init__(self, talib_name: str) -> None:
        info = _function(talib_name).info
        rename = {k: RENAMED[k] for k in info["parameters"] if k in RENAMED}
        self.talib_name = talib_name
        self.func: Callable[..., Any] = getattr(talib, talib_name)
        self.columns = _columns(info["input_names"])
        self.flags: tuple[str, ...] = tuple(info["function_flags"] or ())
        self.index_outputs = talib_name.endswith("INDEX")  # positions in the input array
        self._talib_params = tuple(info["parameters"])
        self.spec = IndicatorSpec(
            name=talib_name.lower(),
            inputs=self.columns,
            params={rename.get(k, k): v for k, v in info["parameters"].items()},
            outputs=tuple(info["output_names"]),
            group=info["group"],
            description=info["display_name"],
            o1=talib_name in O1_CLASSES,
            aliases={talib: ours for talib, ours in rename.items()},
        )

    def call(self, arrays: Sequence[np.ndarray], params: Mapping[str, Any]) -> tuple[np.ndarray, ...]:
        """TA-Lib on arrays in ``self.columns`` order; its failures become IndicatorError."""
        try:
            out = self.func(*arrays, *[params[k] for k in self.spec.params])
        except Exception as err:  # TA-Lib raises bare Exception
            raise self._error(params, err) from err
        return out if isinstance(out, tuple) else (out,)

    def batch(self, inputs: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> tuple[np.ndarray, ...]:
        return self.call([inputs[c] for c in self.columns], params)

    def stream(self, params: Mapping[str, Any]) -> StreamingIndicator:
        self.call([_TINY] * len(self.columns), params)  # rejects bad parameters up front
        cls = O1_CLASSES.get(self.talib_name)
        if cls is not None and cls.supports(params):
            return cls(self, params)
        return WindowIndicator(self, params)

    def lookback(self, params: Mapping[str, Any]) -> int:
        """TA-Lib's lookback (bars before the first value) for these parameters."""
        return _lookback(self.talib_name, tuple(zip(self._talib_params, self._values(params))))

    def _values(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[k] for k in self.spec.params]

    def _accepts(self, params: Mapping[str, Any]) -> bool:
        try:
            self.func(*[_TINY] * len(self.columns), *self._values(params))
        except Exception:  # noqa: BLE001 - TA-Lib raises bare Exception
            return False
        return True

    def _error(self, params: Mapping[str, Any], err: Exception) -> IndicatorError:
        """An IndicatorError naming this indicator and, when it can be found, the
        parameter TA-Lib rejected."""
        name, reason = self.spec.name, str(err).split(": ", 1)[-1]
        if "TA_BAD_PARAM" not in str(err):
            return IndicatorError(f"indicator {name!r}: {reason}")
        for key, default in self.spec.params.items():
            if params[key] != default and self._accepts({**params, key: default}):
                return IndicatorError(
                    f"indicator {name!r}: {key}={params[key]!r} is outside TA-Lib's accepted "
                    f"range ({reason}); default {key}={default!r}"
                )
        shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
        return IndicatorError(f"indicator {name!r}: TA-Lib rejected parameters {shown} ({reason})")


@functools.lru_cache(maxsize=4096)
def _lookback(talib_name: str, talib_params: tuple[tuple[str, Any], ...]) -> int:
    function = _function(talib_name)
    function.set_parameters(dict(talib_params))
    return int(function.lookback)


@functools.lru_cache(maxsize=1)
def kinds() -> tuple[TalibKind, ...]:
    """Every TA-Lib function, built once."""
    return tuple(TalibKind(name) for name in talib.get_functions())

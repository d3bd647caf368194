"""The Python strategy host: a strategy is a class named ``module:Class``.

``module`` is an importable module or a ``.py`` file relative to the
config's directory. The class has the same decision functions as a Lua
script (``watch``, ``close_watch``, ``in_trade``, optional ``init`` and
``on_fill``), each taking ``ctx``; one instance per symbol.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import traceback
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from engine_core.errors import StrategyError, error_text
from engine_core.hookspecs import hookimpl
from engine_core.model import Bar, Fill, State, bar_at
from engine_core.strategy import (
    FUNCTION_OF_STATE,
    REQUIRED_FUNCTIONS,
    Decision,
    StrategyHost,
    SymbolStrategy,
    SymbolView,
    parse_decision,
)


def _value(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


class _Indicators:
    """``ctx.ind.sma(20)``: the value at the context's bar (``ago`` bars back)."""

    __slots__ = ("_ctx", "_ago")

    def __init__(self, ctx: Context, ago: int) -> None:
        self._ctx = ctx
        self._ago = ago

    def __getattr__(self, name: str) -> Callable[..., Any]:
        ctx, ago = self._ctx, self._ago

        def read(*args: Any) -> Any:
            outputs = ctx._view.indicator(name, args)
            i = ctx._i - ago
            if i < 0:
                return None if len(outputs) == 1 else (None,) * len(outputs)
            values = tuple(_value(o[i]) for o in outputs)
            return values[0] if len(values) == 1 else values

        return read


class Context:
    """What a Python strategy sees; mirrors the Lua ``ctx``."""

    def __init__(self, view: SymbolView, state: dict[str, Any]) -> None:
        self._view = view
        self._i = 0
        self.symbol = view.symbol
        self.params = MappingProxyType(view.params)
        self.state = state
        self.ind = _Indicators(self, 0)
        self.prev = _Indicators(self, 1)
        self.index = 0

    def _at(self, column: str, n: int) -> Any:
        """``n`` bars ago; None at or beyond the window, so that what a strategy
        sees never depends on where a backtest's chunks begin."""
        i = self._i - n
        if i < 0 or n < 0 or n >= self._view.window:
            return None
        value = getattr(self._view, column)[i]
        return int(value) if column == "ts" else float(value)

    @property
    def bar(self) -> Bar:
        return bar_at(self._view, self._view.symbol, self._i)

    # One accessor per column, as the Lua ctx has them (deliberately alike: each is _at of its column).
    def open(self, n: int = 0) -> float | None:
        return self._at("open", n)

    def high(self, n: int = 0) -> float | None:
        return self._at("high", n)

    def low(self, n: int = 0) -> float | None:
        return self._at("low", n)

    def close(self, n: int = 0) -> float | None:
        return self._at("close", n)

    def volume(self, n: int = 0) -> float | None:
        return self._at("volume", n)

    def time(self, n: int = 0) -> int | None:
        return self._at("ts", n)

    @property
    def position(self) -> Any:
        return self._view.position

    def log(self, *args: Any) -> None:
        """Log the arguments, joined with spaces, at the current bar (terminal and event bus)."""
        view, i = self._view, self._i
        view.log(int(view.ts[i]) if 0 <= i < len(view.ts) else None, " ".join(map(str, args)))


def _where(err: BaseException, fallback: str) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    if frames:
        last = frames[-1]
        return f"{last.filename}:{last.lineno} in {last.name}"
    return fallback


class PythonSymbolStrategy(SymbolStrategy):
    def __init__(self, cls: type, symbol: str, view: SymbolView, name: str) -> None:
        self.symbol = symbol
        self.view = view
        self.name = name
        self.ctx = Context(view, {})
        try:
            self.obj = cls()
            self.has_on_fill = callable(getattr(self.obj, "on_fill", None))
        except Exception as err:
            raise self._error(err, "__init__") from err

    def _error(self, err: BaseException, function: str) -> StrategyError:
        return StrategyError(
            f"{self.name}: {function} failed for {self.symbol} at {_where(err, function)}: {error_text(err)}"
        )

    def _call(self, function: str, *args: Any) -> Any:
        fn = getattr(self.obj, function, None)
        if fn is None:
            return None
        try:
            return fn(*args)
        except StrategyError:
            raise
        except Exception as err:
            raise self._error(err, function) from err

    def init(self) -> None:
        self._call("init", self.ctx)

    def state(self) -> Any:
        return json.loads(json.dumps(self.ctx.state, default=lambda _: None))

    def restore_state(self, data: Any) -> None:
        self.ctx.state.clear()
        if isinstance(data, dict):
            self.ctx.state.update(data)

    def scan(self, state: State, start: int, stop: int) -> tuple[int, Decision | None]:
        function = FUNCTION_OF_STATE[state]
        fn = getattr(self.obj, function)
        ctx = self.ctx
        base = self.view.offset
        for k in range(start, stop):
            ctx._i = base + k
            ctx.index = self.view.seen + k + 1
            try:
                result = fn(ctx)
            except StrategyError:
                raise
            except Exception as err:
                raise self._error(err, function) from err
            if result is not None:
                where = f"{self.name}: {function} for {self.symbol}"
                return k, parse_decision(state, result, where)
        return stop, None

    def on_fill(self, fill: Fill) -> None:
        self._call("on_fill", self.ctx, fill)


class PythonHost(StrategyHost):
    def load(self) -> None:
        spec = self.config.class_ or ""
        module_name, _, class_name = spec.partition(":")
        if not module_name or not class_name:
            raise StrategyError(f'strategy.class: expected "module:Class", got {spec!r}')
        module = self._import(module_name)
        cls = getattr(module, class_name, None)
        if not isinstance(cls, type):
            raise StrategyError(f"strategy.class: {module_name} has no class {class_name!r}")
        missing = [f for f in REQUIRED_FUNCTIONS if not callable(getattr(cls, f, None))]
        if missing:
            raise StrategyError(f"strategy.class: {spec} does not define {', '.join(missing)}")
        self.cls = cls

    def _import(self, module_name: str) -> Any:
        try:
            if module_name.endswith(".py"):
                path = (self.base_dir / module_name).resolve()
                if not path.is_file():
                    raise StrategyError(f"strategy.class: no such file {path}")
                spec = importlib.util.spec_from_file_location(f"engine_strategy_{path.stem}", path)
                assert spec and spec.loader
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module
            return importlib.import_module(module_name)
        except StrategyError:
            raise
        except Exception as err:
            raise StrategyError(
                f"strategy.class: cannot import {module_name}: {_where(err, module_name)}: {error_text(err)}"
            ) from err

    def bind(self, symbol: str, view: SymbolView) -> SymbolStrategy:
        return PythonSymbolStrategy(self.cls, symbol, view, self.config.class_ or "?")


@hookimpl
def register_strategy_hosts(register: Any) -> None:
    register("python", PythonHost)

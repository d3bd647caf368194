"""The strategy-host contract, the decisions strategies return, and the view
of its symbol a strategy reads.

A strategy is a set of decision functions, one per state of the symbol's
state machine: ``watch(ctx)``, ``close_watch(ctx)``, ``in_trade(ctx)``, plus
optional ``init(ctx)`` and ``on_fill(ctx, fill)``. A host (Lua, Python, ...)
runs them. The worker hands the host bars in chunks (one bar live, many in a
backtest) and asks it to *scan*: call the function of the current state on
bar after bar until one returns a decision. Scanning in the host's own loop
keeps the per-bar cost of a backtest to one function call, while live runs
take exactly the same path with chunks of one bar.

Decisions (what the functions return; nothing / nil means "no change"):

==============  =====================  ===========================================
state           action                 meaning
==============  =====================  ===========================================
watch           ``setup``              a setup: move to close_watch (``expires``
                                       bars, optional), then close_watch runs on
                                       the same bar
watch           ``enter``              setup and enter on this bar
close_watch     ``enter``              send the entry order (``side`` buy or sell,
                                       ``qty``, ``limit_price``, ``stop_price``,
                                       ``take_profit_price``, ``trailing_stop``;
                                       ``expires`` bars for a limit to fill)
close_watch     ``cancel``             back to watch
in_trade        ``exit``               send the exit order
in_trade        ``adjust``             move ``stop_price`` / ``take_profit_price`` /
                                       ``trailing_stop``
==============  =====================  ===========================================

A decision is a string (the action) or a table / mapping with ``action`` and
the optional keys above plus ``reason``. Prices are named ``*_price``; the
config's ``stop_loss`` / ``take_profit`` are fractions of the entry price.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine_core.errors import StrategyError
from engine_core.model import Bar, BarChunk, Fill, Side, State, bar_at, to_decimal
from engine_core.storage import COLUMNS as _ARRAYS
from engine_core.storage import BarWindow
from engine_core.strategy_log import StrategyLog
from engine_core.tracked import PositionView, TrackedIndicator

if TYPE_CHECKING:
    from engine_core.config import StrategySection

ACTIONS: dict[State, tuple[str, ...]] = {
    State.WATCH: ("setup", "enter"),
    State.CLOSE_WATCH: ("enter", "cancel"),
    State.IN_TRADE: ("exit", "adjust"),
}
FUNCTION_OF_STATE = {
    State.WATCH: "watch",
    State.CLOSE_WATCH: "close_watch",
    State.IN_TRADE: "in_trade",
}
# The functions a strategy (a Lua script, a Python class) must define, and those it may.
REQUIRED_FUNCTIONS = tuple(FUNCTION_OF_STATE.values())
OPTIONAL_FUNCTIONS = ("init", "on_fill")
_RENAMED = {
    "stop_loss": "stop_price (a price; the config's stop_loss is a fraction of the entry)",
    "take_profit": "take_profit_price (a price; the config's take_profit is a fraction of the entry)",
}


@dataclass(frozen=True, slots=True)
class Decision:
    action: str
    side: Side = Side.BUY
    qty: Decimal | None = None  # None: the strategy's configured quantity
    stop_price: float | None = None
    take_profit_price: float | None = None
    trailing_stop: float | None = None  # fraction of the best price since entry
    expires: int | None = None  # bars a setup (or an entry limit) stays valid
    limit_price: float | None = None  # an entry as a limit order at this price
    reason: str = ""

    def detail(self) -> dict[str, Any]:
        """What a signal event carries besides the action: the side of an entry,
        the fields the strategy gave (Decimals as text), its reason."""
        out: dict[str, Any] = {"side": self.side._value_} if self.action == "enter" else {}
        for key in _DETAIL_FIELDS:
            value = getattr(self, key)
            if value is not None:
                out[key] = str(value) if value.__class__ is Decimal else value
        if self.reason:
            out["reason"] = self.reason
        return out


# Every field a decision may have, in the order the Lua host passes them flattened.
DECISION_FIELDS = tuple(f.name for f in fields(Decision))
_KEYS = frozenset(DECISION_FIELDS)
_DETAIL_FIELDS = tuple(k for k in DECISION_FIELDS if k not in ("action", "side", "reason"))  # what detail() may add


def _number(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StrategyError(f"{where}: decision field {key!r} must be a finite number, got {value!r}")
    return float(value)


_SIDES = {"buy": Side.BUY, "sell": Side.SELL}
# The decisions a bare action string makes, parsed once: (state, action) -> Decision.
_ACTION_ONLY: dict[tuple[State, str], Decision] = {}


def parse_decision(state: State, value: Any, where: str) -> Decision | None:
    """Validate what a decision function returned; ``where`` names script,
    function and line for the error message."""
    if value is None or value is False:
        return None
    if value.__class__ is str:
        known = _ACTION_ONLY.get((state, value))
        if known is not None:
            return known
    if isinstance(value, str):
        fields: Mapping[str, Any] = {"action": value}
    elif isinstance(value, Mapping):
        fields = value
    else:
        raise StrategyError(f"{where}: a decision must be nil, an action string or a table, got {type(value).__name__}")
    unknown = sorted(set(map(str, fields)) - _KEYS)
    if unknown and unknown[0] in _RENAMED:
        raise StrategyError(f"{where}: decision field {unknown[0]!r} is now {_RENAMED[unknown[0]]}")
    if unknown:
        raise StrategyError(f"{where}: unknown decision field {unknown[0]!r}; fields are {', '.join(sorted(_KEYS))}")
    action = fields.get("action")
    allowed = ACTIONS[state]
    if action not in allowed:
        raise StrategyError(
            f"{where}: action {action!r} is not valid in state {state.value}; "
            f"expected one of {', '.join(allowed)} (or nil)"
        )
    side = fields.get("side", "buy")
    if side not in ("buy", "sell"):
        raise StrategyError(f'{where}: decision field \'side\' must be "buy" or "sell", got {side!r}')
    qty = fields.get("qty")
    if qty is not None:
        q = _number(qty, "qty", where)
        if q <= 0:
            raise StrategyError(f"{where}: decision field 'qty' must be positive, got {qty!r}")
        qty = Decimal(qty) if isinstance(qty, int) else to_decimal(q)
    prices = {}
    for key in ("stop_price", "take_profit_price", "trailing_stop", "limit_price"):
        if fields.get(key) is not None:
            prices[key] = _number(fields[key], key, where)
            if prices[key] <= 0:
                raise StrategyError(f"{where}: decision field {key!r} must be positive")
    if prices.get("trailing_stop", 0) >= 1:
        raise StrategyError(f"{where}: 'trailing_stop' is a fraction below 1 (0.02 = 2%)")
    expires = fields.get("expires")
    if expires is not None:
        e = _number(expires, "expires", where)
        if e < 1 or not e.is_integer():
            raise StrategyError(f"{where}: 'expires' must be a whole number of bars >= 1")
        expires = int(e)
    reason = fields.get("reason", "")
    decision = Decision(
        action=str(action),
        side=_SIDES[side],
        qty=qty,
        expires=expires,
        reason=str(reason),
        **prices,
    )
    if value.__class__ is str:  # one of a few valid (state, action) pairs
        _ACTION_ONLY[(state, value)] = decision
    return decision


class SymbolView:
    """What a strategy reads of its symbol: bars with history, indicators, position.

    The arrays ``ts, open, high, low, close, volume`` hold up to ``window - 1``
    earlier bars followed by the current chunk; the chunk's first bar is at
    index ``offset`` and it has ``n`` bars; ``seen`` bars of the symbol came
    before it. ``indicator(name, args)`` returns
    the indicator's output arrays aligned with them (NaN before it is ready).
    ``log(ts, message)`` is the strategy's ``ctx.log`` (terminal and event bus).
    Only the worker thread of the symbol touches a view.
    """

    __slots__ = tuple(
        "symbol log params window ts open high low close volume offset n seen position _indicators _last"
        " _newest_ts _store live".split()
    )

    def __init__(self, symbol: str, params: Mapping[str, Any], window: int, log: StrategyLog | None = None) -> None:
        self.symbol = symbol
        self.log = log or StrategyLog(symbol)
        self.params = dict(params)
        self.window = window
        empty = np.empty(0)
        self.ts = np.empty(0, dtype=np.int64)
        self.open = self.high = self.low = self.close = self.volume = empty
        self.offset = 0
        self.n = 0
        self.seen = 0  # bars of the symbol before the current chunk
        self.position = PositionView()
        self._indicators: dict[tuple[str, tuple[Any, ...]], Any] = {}
        self._last: Bar | None = None
        self._newest_ts: int | None = None  # the time of the newest bar set
        # A live bar's store while the arrays above are not made yet (``show``:
        # they are made when first read, ``__getattr__``); None once they are.
        self._store: BarWindow | None = None
        # The live bar the view shows (its one bar), None for a chunk: the
        # order path reads the bar's values from it, making no array.
        self.live: Bar | None = None

    def last_bar(self) -> Bar:
        """The newest bar of the view (built once per chunk)."""
        bar = self._last
        if bar is None:
            bar = self._last = bar_at(self, self.symbol, -1)
        return bar

    # The worker calls these.
    def show(self, store: BarWindow, chunk: BarChunk, bar: Bar | None = None) -> None:
        """Store ``chunk`` in ``store`` and make it the view's bars. ``bar`` is
        its one bar when it came live as a Bar: the arrays are then views of
        the store made when first read (a live bar that only a strategy's
        indicators and the Lua context see, which read numbers, makes none)."""
        if bar is None:
            self.set_data(*store.push(chunk, self.window - 1))
            return
        offset = store.push_bar(bar, self.window - 1)
        if self._store is None:  # the arrays of the bar before were made: they go
            del self.ts, self.open, self.high, self.low, self.close, self.volume
        self._store = store
        before = self._newest_ts
        self._last = self.live = bar
        self.offset = offset
        self.seen += self.n
        self.n = 1
        ts = self._newest_ts = bar.ts
        for tracked in self._indicators.values():
            if tracked.fed_until_ts == before and before is not None:  # fed up to the bar before this one
                tracked.step(bar, offset + 1, ts)
            else:
                tracked.advance(self, before)

    if not TYPE_CHECKING:  # (for mypy the arrays are plain attributes)

        def __getattr__(self, name: str) -> Any:
            """An array of a live bar's view read for the first time (``show``)."""
            # (the name first: an unset slot, _store's included, comes here too)
            store = self._store if name in _ARRAYS else None
            if store is None:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            self._store = None
            cols = store.columns(self.offset + 1)
            self.ts, self.open, self.high, self.low = cols["ts"], cols["open"], cols["high"], cols["low"]
            self.close, self.volume = cols["close"], cols["volume"]
            return cols[name]

    def set_data(self, cols: Mapping[str, np.ndarray], offset: int, last: Bar | None = None) -> None:
        """The view's new arrays; ``last`` is the newest bar when the worker
        holds it already, so indicators need not rebuild it."""
        before = self._newest_ts
        self._last = last
        self._store = self.live = None
        ts = self.ts = cols["ts"]
        self.open, self.high, self.low = cols["open"], cols["high"], cols["low"]
        self.close, self.volume = cols["close"], cols["volume"]
        self.offset = offset
        self.seen += self.n
        self.n = len(ts) - offset
        self._newest_ts = last.ts if last is not None else int(ts[-1]) if len(ts) else None
        for tracked in self._indicators.values():
            tracked.advance(self, before)

    def indicator(self, name: str, args: tuple[Any, ...] = ()) -> tuple[np.ndarray, ...]:
        return self.tracker(name, args).outputs

    def tracker(self, name: str, args: tuple[Any, ...] = ()) -> TrackedIndicator:
        """The indicator ``name(args)`` kept in step with the view: its
        ``outputs`` are what ``indicator`` returns, replaced at each chunk."""
        key = (name, args)
        tracked = self._indicators.get(key)
        if tracked is None:
            tracked = TrackedIndicator(name, args, self)
            self._indicators[key] = tracked
        return tracked

    def latest_indicators(self, ts: int) -> dict[str, float | None] | None:
        """Each indicator the strategy has read, at the bar ``ts``: ``{"sma(10)":
        101.2, "bbands(20,2).upper": 104.9, ...}`` (None before it is ready).
        None when the view is no longer at that bar. For a sink on another
        thread (the mqtt sink publishes them with each live bar): it reads
        what the worker last computed and checks it was for ``ts``."""
        values: dict[str, float | None] = {}
        for (name, args), tracked in list(self._indicators.items()):
            if tracked.fed_until_ts != ts:
                return None
            latest, names = tracked.latest, tracked.output_names
            label = f"{name}({','.join(map(str, args))})"
            for out_name, value in zip(names, latest):
                number = float(value)
                values[label if len(names) == 1 else f"{label}.{out_name}"] = None if math.isnan(number) else number
            if tracked.fed_until_ts != ts:  # the worker moved on while this was read
                return None
        return values


class SymbolStrategy(abc.ABC):
    """One symbol's running strategy, made by a host's ``bind``."""

    has_on_fill = True  # False: the strategy defines no on_fill, and the worker does not call it
    # True while the worker feeds warm-up bars, whose decisions it drops: a
    # host asks nothing ahead of them (the Lua host asks close_watch on a
    # setup's bar in the setup's own call, and answers the worker's scan of
    # close_watch at that bar, next, from it)
    warming = False

    @abc.abstractmethod
    def init(self) -> None:
        """Call the strategy's ``init(ctx)`` if it has one."""

    @abc.abstractmethod
    def scan(self, state: State, start: int, stop: int) -> tuple[int, Decision | None]:
        """Call the decision function of ``state`` on chunk bars ``start`` ..
        ``stop - 1`` (indices relative to the chunk) until one returns a decision.

        Returns ``(i, decision)`` for the first bar that decided, or
        ``(stop, None)``. Raises StrategyError (naming script, function, line
        and symbol) when the strategy fails. After a setup at ``i`` (not
        ``warming``) the worker scans close_watch at ``i`` next.
        """

    @abc.abstractmethod
    def on_fill(self, fill: Fill) -> None:
        """Call the strategy's ``on_fill(ctx, fill)`` if it has one."""

    def state(self) -> Any:
        """The strategy's ``ctx.state`` as JSON-able values, journaled with
        the symbol so that a restart continues where it was (None: none)."""
        return None

    def restore_state(self, data: Any) -> None:
        """Put back what ``state`` returned before a restart (after ``init``)."""

    def reload_if_changed(self, force: bool = False) -> str | None:
        """Swap in a changed strategy file between bars (keeping state): the
        line saying what was reloaded, None when nothing changed. A changed
        file that cannot run raises :class:`StrategyError` naming the file and
        line; the running version stays. ``force`` (a reload command): look
        at the file now, even within the watcher's interval."""
        return None

    def close(self) -> None:
        """Release the strategy's resources."""


class StrategyHost(abc.ABC):
    """A strategy language. One host per run; ``bind`` once per symbol."""

    def __init__(self, config: StrategySection, base_dir: Path) -> None:
        self.config = config
        self.base_dir = base_dir

    @abc.abstractmethod
    def load(self) -> None:
        """Load and check the strategy (compiles, defines the required
        functions); raise StrategyError naming the file and line."""

    @abc.abstractmethod
    def bind(self, symbol: str, view: SymbolView) -> SymbolStrategy:
        """A strategy instance for one symbol, reading ``view``."""

    def limits(self) -> str:
        """What bounds the strategy's calls, as ``engine validate`` shows it ("": nothing)."""
        return ""

    @property
    def name(self) -> str:
        """How reports name the strategy: the script's file name, or the class."""
        if self.config.script:
            return Path(self.config.script).name
        return self.config.class_ or "?"

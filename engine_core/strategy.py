"""The strategy-host contract and the decisions strategies return (the view
of its symbol a strategy reads is ``view.py``'s ``SymbolView``).

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

from engine_core.errors import StrategyError
from engine_core.model import Fill, Side, State, to_decimal
from engine_core.view import SymbolView

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

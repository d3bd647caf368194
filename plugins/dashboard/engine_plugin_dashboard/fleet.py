"""What the dashboard knows of the engines: each engine's status and each
symbol's row, kept from the mqtt plugin's messages (or a journal), with what
changed since the page was last told.

The retained statuses give each symbol's state, position, pending order,
paused, halted and the stop levels the engine armed; the events add what no
status holds: the stop levels of the last entry signal (until the entry
fills), the PnL realised by the fills this dashboard saw, the bars for the
charts, the source's connection state, and the events list.
Messages are checked before use: one that is not as the mqtt plugin's
README says is counted and shown as a problem, never applied.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
from engine_plugin_mqtt.wire import symbol_of_level

from engine_core import error_text

log = logging.getLogger("engine_plugin_dashboard")

SCHEMA = 1
BARS_KEPT = 1000  # per symbol, for its chart
EVENTS_KEPT = 300  # per symbol, for its events list
RECENT_KEPT = 100  # fleet-wide: fills, orders, errors
PNL_KEPT = 3600  # points of an engine's PnL curve
SEQS_KEPT = 20_000  # event numbers remembered per engine, to drop redelivered ones
PROBLEMS_KEPT = 20
LOGGED_PROBLEMS = 5  # malformed messages written to the terminal one by one; then every 100th
EVENT_KINDS = ("bar", "signal", "transition", "order", "fill", "error", "log", "connection")
_ZERO = Decimal(0)


class Malformed(ValueError):
    """A message that is not as the mqtt plugin's README says."""


class BarMessage(msgspec.Struct, gc=False):
    """A bar event (``<prefix>/<engine>/<symbol>/bar``), the most frequent
    message with the symbol's status: decoded and checked in one step into a
    typed struct (no dict, no per-key look-ups). Keys it does not name are
    ignored, so fields the sink adds later do no harm."""

    schema: int
    symbol: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    event: str = "bar"
    seq: int | None = None
    time: str | None = None
    indicators: dict[str, float | None] | None = None


_json = msgspec.json.Decoder()  # any JSON, as dicts and lists (about twice as fast as the json module)
_bar = msgspec.json.Decoder(BarMessage)


def _decimal(value: Any, what: str) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise Malformed(f"{what}: expected a decimal, got {value!r}") from None


def _text(d: Decimal | None) -> str | None:
    return None if d is None else format(d.normalize(), "f")


def item_id(engine: str, seq: Any, run: Any = None) -> str | None:
    """A listed item's id (engine, its start and event number): a page lists
    an item once, though the snapshot it loaded and the next push may both
    hold it; an engine numbers its events from 1 again at each start."""
    if not isinstance(seq, int):
        return None
    return f"{engine}:{seq}" if run is None else f"{engine}@{run}:{seq}"


def describe(event: dict[str, Any]) -> str:
    """One line for an event in the events lists."""
    kind = event.get("event")
    if kind == "signal":
        detail = event.get("detail") or {}
        parts = " ".join(f"{k}={v}" for k, v in detail.items() if v is not None)
        return f"signal {event.get('action')} {parts}".strip()
    if kind == "transition":
        return f"{event.get('from')} -> {event.get('to')} ({event.get('reason')})"
    if kind == "order":
        return (
            f"order {event.get('status')}: {event.get('side')} {event.get('qty')} "
            f"{event.get('client_id')} {event.get('reason') or ''}".strip()
        )
    if kind == "fill":
        return (
            f"fill {event.get('side')} {event.get('qty')} @ {event.get('price')} "
            f"(commission {event.get('commission')}) {event.get('client_id')}"
        )
    if kind == "error":
        return f"error {event.get('kind')}: {event.get('message')}"
    if kind == "log":
        return f"log: {event.get('message')}"
    if kind == "connection":
        return f"{event.get('source')} {event.get('state')} {event.get('detail') or ''}".strip()
    return str(kind)


# row key -> the symbol status's ``stops`` field (prices, as the mqtt README says)
_ARMED = {"stop_loss": "stop_price", "take_profit": "take_profit_price", "trailing_stop": "trailing_price"}


class SymbolView:
    """One symbol of one engine."""

    def __init__(self, engine: str, symbol: str) -> None:
        self.engine = engine
        self.symbol = symbol
        self.status: dict[str, Any] = {}
        self.qty = _ZERO  # from fills (seeded from the status), for the realised PnL
        self.avg: Decimal | None = None
        self.realised = _ZERO
        self.close: float | None = None
        self.stops: dict[str, Any] = {}
        self.bars: deque[list[float]] = deque(maxlen=BARS_KEPT)  # [time s, open, high, low, close]
        self.markers: deque[dict[str, Any]] = deque(maxlen=BARS_KEPT)
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENTS_KEPT)
        self.bar_seen: float | None = None  # wall time the last bar arrived
        self.bar_interval: float | None = None  # seconds between its last two bars (market time)
        self._qty_text: str | None = None  # the last status's position, while no fill changed qty since

    def set_status(self, status: dict[str, Any]) -> None:
        first = not self.status
        self.status = status
        position = status.get("position") or "0"
        if position != self._qty_text:  # (the same text as last time, with no fill since: nothing to compare)
            qty = _decimal(position, "position")
            if first or self.qty != qty:
                # the status knows a position no fill of ours has shown (started late, restored engine)
                self.qty = qty
                avg = status.get("avg_price")
                self.avg = None if avg is None else _decimal(avg, "avg_price")
            self._qty_text = position
        last = status.get("last_bar") or {}
        if isinstance(last.get("close"), (int, float)):
            self.close = float(last["close"])
        if status.get("state") == "watch":
            self.stops = {}
        armed = status.get("stops")
        if isinstance(armed, dict):  # the levels the engine armed replace the entry signal's
            self.stops = {k: armed[key] for k, key in _ARMED.items() if armed.get(key) is not None}

    def bar(self, event: BarMessage) -> list[Any]:
        t = event.ts / 1e9
        row: list[Any] = [t, event.open, event.high, event.low, event.close]
        if event.indicators:
            row.append(event.indicators)
        if self.bars and self.bars[-1][0] >= t:
            if self.bars[-1][0] == t:
                self.bars[-1] = row
            return row
        if self.bars:
            self.bar_interval = t - self.bars[-1][0]
        self.bars.append(row)
        self.close = row[4]
        self.bar_seen = time.time()
        return row

    def signal(self, event: dict[str, Any]) -> None:
        detail = event.get("detail") or {}
        if event.get("action") in ("setup", "enter", "adjust"):
            # a signal's levels are prices (its trailing_stop is a fraction: the status gives its price)
            for key, field in _ARMED.items():
                if key != "trailing_stop" and detail.get(field) is not None:
                    self.stops[key] = detail[field]

    def fill(self, event: dict[str, Any]) -> dict[str, Any]:
        qty = _decimal(event["qty"], "qty")
        price = _decimal(event["price"], "price")
        commission = _decimal(event.get("commission") or "0", "commission")
        signed = qty if event["side"] == "buy" else -qty
        before, after = self.qty, self.qty + signed
        if before != 0 and (before > 0) != (signed > 0) and self.avg is not None:
            closed = min(abs(before), qty)
            self.realised += (price - self.avg) * closed * (1 if before > 0 else -1)
        self.realised -= commission
        if after == 0:
            self.avg = None
        elif before == 0 or (before > 0) != (after > 0):
            self.avg = price
        elif abs(after) > abs(before) and self.avg is not None:
            self.avg = (self.avg * abs(before) + price * qty) / abs(after)
        self.qty = after
        self._qty_text = None
        marker = {"time": event["ts"] / 1e9, "side": event["side"], "price": float(price), "qty": str(qty)}
        self.markers.append(marker)
        return marker

    def unrealised(self) -> Decimal | None:
        if self.qty == 0 or self.avg is None or self.close is None:
            return None
        return (Decimal(repr(self.close)) - self.avg) * self.qty

    def row(self) -> dict[str, Any]:
        s = self.status
        last = s.get("last_bar") or {}
        unrealised = self.unrealised()
        return {
            "engine": self.engine,
            "symbol": self.symbol,
            "state": s.get("state"),
            "position": s.get("position"),
            "avg_price": s.get("avg_price"),
            "close": self.close,
            "unrealised": _text(unrealised.quantize(Decimal("0.01")) if unrealised is not None else None),
            "realised": _text(self.realised.quantize(Decimal("0.01"))),
            "pending": s.get("pending_order"),
            "stops": self.stops,
            "last_bar": last.get("time"),
            "paused": bool(s.get("paused")),
            "halted": s.get("halted"),
            "bar_seen": self.bar_seen,
            "bar_interval": self.bar_interval,
        }


class EngineView:
    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.status: dict[str, Any] = {}
        self.symbols: dict[str, SymbolView] = {}
        self.feed: dict[str, Any] | None = None  # the live source's last connection event
        self.seqs: set[int] = set()
        self._order: deque[int] = deque()
        self.run: Any = None  # the engine's start ("since" in its status): its event numbers start again with it
        self.counted = 0  # events this dashboard took
        self._rate_at: tuple[float, int] = (time.monotonic(), 0)
        self.rate = 0.0
        self.pnl: deque[list[float]] = deque(maxlen=PNL_KEPT)  # [wall time s, equity or PnL seen]
        self.curve = "pnl"  # what self.pnl holds: "equity" (the engine's status says it) or "pnl" (seen here)

    def symbol(self, symbol: str) -> SymbolView:
        view = self.symbols.get(symbol)
        if view is None:
            view = self.symbols[symbol] = SymbolView(self.engine, symbol)
        return view

    def started(self, since: Any) -> None:
        """The engine's status names its start: a new start numbers its events
        from 1 again, so the numbers taken before it no longer say "seen"."""
        if since is None or since == self.run:
            return
        if self.run is not None:
            self.seqs.clear()
            self._order.clear()
        self.run = since

    def fresh(self, seq: Any) -> bool:
        """False for an event number already taken (QoS 1 redelivers after a reconnect)."""
        if not isinstance(seq, int):
            return True
        if seq in self.seqs:
            return False
        self.seqs.add(seq)
        self._order.append(seq)
        if len(self._order) > SEQS_KEPT:
            self.seqs.discard(self._order.popleft())
        return True

    def tick(self, now: float) -> None:
        """Every second: events per second, and a point of the curve: the
        engine's equity when its status carries it, else the PnL seen."""
        then, counted = self._rate_at
        if now - then >= 1.0:
            self.rate = (self.counted - counted) / (now - then)
            self._rate_at = (now, self.counted)
        equity = self.status.get("equity")
        if equity is None and self.curve == "equity" and self.status.get("online") is False:
            return  # its last will (no figures): keep the equity curve until it is back
        kind = "pnl" if equity is None else "equity"
        if kind == "equity":
            value = float(_decimal(equity, "equity"))
        else:
            total = _ZERO
            for view in self.symbols.values():
                total += view.realised + (view.unrealised() or _ZERO)
            value = float(total)
        if kind != self.curve:
            self.curve = kind
            self.pnl.clear()
        point = [round(time.time(), 3), value]
        if not self.pnl or self.pnl[-1][1] != point[1] or now - self.pnl[-1][0] > 60:
            self.pnl.append(point)

    def summary(self) -> dict[str, Any]:
        s = self.status
        return {
            "engine": self.engine,
            "online": s.get("online"),
            "reason": s.get("reason"),
            "mode": s.get("mode"),
            "shard": s.get("shard"),
            "control": bool(s.get("control")),
            "since": s.get("since"),
            "events": s.get("events"),
            "dropped": s.get("dropped"),
            "queued": s.get("queued"),
            "connects": s.get("connects"),
            "symbols": sorted(self.symbols) or s.get("symbols") or [],
            "feed": self.feed,
            "rate": round(self.rate, 2),
            "curve": self.curve,
            "pnl": self.pnl[-1][1] if self.pnl else None,
            "cash": s.get("cash"),
            "equity": s.get("equity"),
            "kill_switches": s.get("kill_switches"),
        }


class Fleet:
    """Every engine under one prefix, and what changed since :meth:`take_changes`."""

    def __init__(self, source: str) -> None:
        self.source = source  # "mqtt" or "journal"
        self.engines: dict[str, EngineView] = {}
        self.link: dict[str, Any] = {"state": "connecting", "detail": None, "since": time.time()}
        self.problems: deque[dict[str, Any]] = deque(maxlen=PROBLEMS_KEPT)
        self.malformed = 0
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_KEPT)
        self.replies: dict[str, dict[str, Any]] = {}  # request_id -> reply (the control waits on them)
        self._rows: set[tuple[str, str]] = set()
        self._engines: set[str] = set()
        self._events: list[dict[str, Any]] = []
        self._recent_new: list[dict[str, Any]] = []
        self._bars: list[dict[str, Any]] = []
        self._link_changed = True

    def engine(self, engine: str) -> EngineView:
        view = self.engines.get(engine)
        if view is None:
            view = self.engines[engine] = EngineView(engine)
            self._engines.add(engine)
        return view

    # ------------------------------------------------------------ in

    def touched(self, engine: str, symbol: str | None = None) -> None:
        """Tell the pages about this engine's (or symbol's) row again."""
        if symbol is None:
            self._engines.add(engine)
        else:
            self._rows.add((engine, symbol))

    def listed(self, engine: str, symbol: str, item: dict[str, Any]) -> None:
        """Add an item to a symbol's events list."""
        item = {"id": item_id(engine, item.get("seq"), self.engine(engine).run), **item}
        self.engine(engine).symbol(symbol).events.append(item)
        self._events.append({"engine": engine, "symbol": symbol, **item})

    def set_link(self, state: str, detail: str | None = None) -> None:
        if self.link["state"] != state or self.link["detail"] != detail:
            self.link = {"state": state, "detail": detail, "since": time.time()}
            self._link_changed = True

    def problem(self, where: str, why: str) -> None:
        self.malformed += 1
        self.problems.append({"time": time.time(), "where": where, "why": why})
        self._link_changed = True
        if self.malformed <= LOGGED_PROBLEMS or self.malformed % 100 == 0:
            log.warning("dashboard: malformed message #%d on %s: %s", self.malformed, where, why)

    def message(self, prefix: str, topic: str, payload: bytes) -> None:
        """One MQTT message under ``prefix``; a malformed one is counted and shown, never applied."""
        levels = topic[len(prefix) + 1 :].split("/") if topic.startswith(prefix + "/") else []
        if len(levels) < 2 or levels[1] == "control" or not payload:
            return  # commands (ours included), and retained statuses being cleared
        try:
            if levels[-1] == "bar" and len(levels) == 3:
                self._bar_message(levels[0], _bar.decode(payload))
            else:
                self._apply(levels, _json.decode(payload))
        except msgspec.ValidationError as err:
            self.problem(topic, f"unexpected content: {err}")
        except msgspec.DecodeError as err:
            self.problem(topic, f"not JSON: {err}")
        except Malformed as err:
            self.problem(topic, str(err))
        except (KeyError, TypeError, ValueError) as err:
            self.problem(topic, f"unexpected content: {error_text(err)}")

    def _bar_message(self, engine: str, bar: BarMessage) -> None:
        if bar.schema != SCHEMA:
            raise Malformed(f"schema {bar.schema!r} is not supported (the dashboard reads schema {SCHEMA})")
        if bar.event != "bar":
            raise Malformed(f"event {bar.event!r} on a bar topic")
        view = self.engine(engine)
        if not view.fresh(bar.seq):
            return
        view.counted += 1
        sym = view.symbol(bar.symbol)
        self._rows.add((engine, sym.symbol))
        self._bars.append({"engine": engine, "symbol": sym.symbol, "bar": sym.bar(bar)})

    def _apply(self, levels: list[str], data: Any) -> None:
        engine = levels[0]
        tail = levels[1:]
        if tail == ["reply"]:
            self._object(data)
            if data.get("request_id") is not None:
                self.replies[str(data["request_id"])] = data
            return
        if tail in (["events"], [tail[0], "events"]):
            if not isinstance(data, list):
                raise Malformed("a batch of events must be a JSON array")
            for item in data:
                self.event(engine, self._object(item))
            return
        obj = self._object(data)
        if tail == ["status"]:
            for key in ("cash", "equity"):
                if obj.get(key) is not None:
                    _decimal(obj[key], key)
            if not isinstance(obj.get("kill_switches") or {}, dict):
                raise Malformed("kill_switches: expected an object")
            view = self.engine(engine)
            view.started(obj.get("since"))
            view.status = obj
            self._engines.add(engine)
            for symbol in obj.get("symbols") or []:
                self.engine(engine).symbol(str(symbol))
            return
        if len(tail) == 2 and tail[1] == "status":
            sym = self.engine(engine).symbol(symbol_of_level(tail[0]))
            sym.set_status(obj)
            self._rows.add((engine, sym.symbol))
            return
        if tail[-1] in EVENT_KINDS:
            self.event(engine, obj)
            return
        raise Malformed(f"unknown topic level {tail[-1]!r}")

    @staticmethod
    def _object(data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise Malformed(f"expected a JSON object, got {type(data).__name__}")
        if data.get("schema") != SCHEMA:
            raise Malformed(f"schema {data.get('schema')!r} is not supported (the dashboard reads schema {SCHEMA})")
        return data

    def event(self, engine: str, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind not in EVENT_KINDS:
            raise Malformed(f"unknown event {kind!r}")
        if not isinstance(event.get("ts"), (int, type(None))):
            raise Malformed(f"ts: expected integer nanoseconds, got {event.get('ts')!r}")
        view = self.engine(engine)
        if not view.fresh(event.get("seq")):
            return
        view.counted += 1
        symbol = event.get("symbol")
        if kind == "connection" or symbol is None:
            if kind == "connection":
                view.feed = {"state": event.get("state"), "detail": event.get("detail"), "time": event.get("time")}
            self._engines.add(engine)
            if kind == "error":
                self._recent(engine, None, event)
            return
        sym = view.symbol(str(symbol))
        self._rows.add((engine, sym.symbol))
        if kind == "bar":
            row = sym.bar(msgspec.convert(event, BarMessage))
            self._bars.append({"engine": engine, "symbol": sym.symbol, "bar": row})
            return
        if kind == "signal":
            sym.signal(event)
        elif kind == "fill":
            marker = sym.fill(event)
            self._bars.append({"engine": engine, "symbol": sym.symbol, "marker": marker})
        item = {
            "seq": event.get("seq"),
            "time": event.get("time"),
            "event": kind,
            "text": describe(event),
        }
        self.listed(engine, sym.symbol, item)
        if kind in ("fill", "order", "error"):
            self._recent(engine, sym.symbol, event)

    def _recent(self, engine: str, symbol: str | None, event: dict[str, Any]) -> None:
        item = {
            "id": item_id(engine, event.get("seq"), self.engine(engine).run),
            "engine": engine,
            "symbol": symbol,
            "time": event.get("time"),
            "event": event.get("event"),
            "text": describe(event),
        }
        self.recent.append(item)
        self._recent_new.append(item)

    def tick(self) -> None:
        now = time.monotonic()
        for view in self.engines.values():
            before = (view.rate, view.pnl[-1][1] if view.pnl else None)
            view.tick(now)
            if (view.rate, view.pnl[-1][1] if view.pnl else None) != before:
                self._engines.add(view.engine)

    # ------------------------------------------------------------ out

    def snapshot(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "link": self.link,
            "malformed": self.malformed,
            "problems": list(self.problems),
            "engines": [e.summary() for e in self.engines.values()],
            "rows": [s.row() for e in self.engines.values() for s in e.symbols.values()],
            "recent": list(self.recent),
            "pnl": {name: list(e.pnl) for name, e in self.engines.items()},
        }

    def symbol_detail(self, engine: str, symbol: str) -> dict[str, Any] | None:
        view = self.engines.get(engine)
        sym = view.symbols.get(symbol) if view is not None else None
        if sym is None:
            return None
        return {
            "row": sym.row(),
            "engine": view.summary(),  # type: ignore[union-attr]
            "bars": list(sym.bars),
            "markers": list(sym.markers),
            "events": list(sym.events),
            "link": self.link,
            "source": self.source,
        }

    def forget_changes(self) -> None:
        self._rows, self._engines, self._events, self._bars, self._recent_new = set(), set(), [], [], []

    def take_changes(self) -> dict[str, Any] | None:
        """What changed since the last call (None: nothing), for the pages' streams."""
        if not (self._rows or self._engines or self._events or self._bars or self._recent_new or self._link_changed):
            return None
        changes: dict[str, Any] = {
            "rows": [self.engines[e].symbols[s].row() for e, s in self._rows],
            "engines": [self.engines[e].summary() for e in self._engines if e in self.engines],
            "events": self._events,  # each symbol's events list
            "recent": self._recent_new,  # the fleet's orders, fills and errors
            "bars": self._bars,
        }
        if self._link_changed:
            changes["link"] = self.link
            changes["malformed"] = self.malformed
            changes["problems"] = list(self.problems)
        self._rows, self._engines, self._events, self._bars, self._recent_new = set(), set(), [], [], []
        self._link_changed = False
        return changes

"""A local Alpaca for tests and demos: one server on 127.0.0.1 speaking the
market data stream v2 (``/v2/<feed>``), the market data REST v2
(``/v2/stocks/bars``), the trading REST v2 (clock, calendar, account,
positions, assets, orders) and the ``trade_updates`` stream (``/stream``),
in Alpaca's wire format.

It runs on its own thread and event loop; tests drive it with plain method
calls (``push_bars``, ``drop_streams``, ``set_clock``, ``fill_leg``...) from any
thread. Its clock is the one ``set_clock`` sets (held there; this machine's
until then): ``/v2/clock`` and every answer's ``Date`` header tell it. A bar
in progress (``open_bar``) is served by REST with what it holds so far;
``close_bar`` gives it its final values and streams it. Orders fill as ``behaviour[symbol]`` says: ``fill`` (at once, at
``prices[symbol]``), ``partial`` (half, then the rest on ``fill_rest``),
``hold`` (stay ``new``), ``reject``. Fault plans: ``hold_order_answer`` (the
order's answer comes after its trade_updates), ``delay_next_order``,
``spend_rate_limit``, ``fail_next``.

Point a config at it with ``data_url``/``trading_url`` = ``server.http_url`` and
``stream_url`` = ``server.ws_url``.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from engine_core import Bar
from engine_core.testing import BackgroundServer
from engine_plugin_alpaca.wire import (
    SessionDay,
    calendar_row,
    decimal_text,
    format_time,
    parse_time,
)

MINUTE = 60_000_000_000
KEY_ID = "PKTEST"
SECRET = "test-secret"
# The two regular sessions the tests trade (New York hours, in UTC).
DAY1_OPEN = parse_time("2024-01-02T14:30:00Z")
DAY1_CLOSE = parse_time("2024-01-02T21:00:00Z")
DAY2_OPEN = parse_time("2024-01-03T14:30:00Z")
DAY2_CLOSE = parse_time("2024-01-03T21:00:00Z")


def live_tables(server: FakeAlpaca, **broker: Any) -> dict[str, dict[str, Any]]:
    """The ``[source]`` and ``[broker]`` tables of a live config trading on
    ``server`` with its keys (``broker`` adds or overrides broker keys)."""
    urls = {"trading_url": server.http_url}
    return {
        "source": {
            "type": "alpaca",
            "key_id": KEY_ID,
            "secret_key": SECRET,
            "data_url": server.http_url,
            "stream_url": server.ws_url,
            "clock_poll": 0.2,
            **urls,
        },
        "broker": {"type": "alpaca", "key_id": KEY_ID, "secret_key": SECRET, "poll_interval": 0.2, **urls, **broker},
    }


# A strategy class (s.py:S) that sets up at once, enters 2 shares and holds
# them (exits at once when its params say ``exit = true``).
ENTER_TWO_AND_HOLD = """
class S:
    def watch(self, ctx):
        return "setup"
    def close_watch(self, ctx):
        return {"action": "enter", "qty": 2}
    def in_trade(self, ctx):
        return "exit" if ctx.params.get("exit") else None
"""


def bar_json(bar: Bar, *, stream: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "t": format_time(bar.ts),
        "o": bar.open,
        "h": bar.high,
        "l": bar.low,
        "c": bar.close,
        "v": int(bar.volume) if float(bar.volume).is_integer() else bar.volume,
        "n": 1,
        "vw": bar.close,
    }
    if stream:
        out = {"T": "b", "S": bar.symbol, **out}
    return out


@dataclass
class _Order:
    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    type: str
    time_in_force: str
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    order_class: str = "simple"
    status: str = "new"
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    legs: list[_Order] = field(default_factory=list)
    parent: str | None = None
    created_at: int = 0
    updated_at: int = 0
    extended_hours: bool = False

    def json(self) -> dict[str, Any]:
        def d(v: Decimal | None) -> str | None:
            return None if v is None else decimal_text(v)

        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": format_time(self.created_at),
            "updated_at": format_time(self.updated_at),
            "submitted_at": format_time(self.created_at),
            "filled_at": format_time(self.updated_at) if self.status == "filled" else None,
            "asset_class": "us_equity",
            "symbol": self.symbol,
            "notional": None,
            "qty": d(self.qty),
            "filled_qty": d(self.filled_qty),
            "filled_avg_price": d(self.filled_avg_price),
            "order_class": "" if self.order_class == "simple" else self.order_class,
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "time_in_force": self.time_in_force,
            "limit_price": d(self.limit_price),
            "stop_price": d(self.stop_price),
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": [leg.json() for leg in self.legs] if self.legs else None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
        }


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _order_not_found() -> web.Response:
    return web.json_response({"code": 40410000, "message": "order not found"}, status=404)


class FakeAlpaca(BackgroundServer):
    """The fake venue. Start with ``start()`` (or as a context manager)."""

    thread_name = "fake-alpaca"

    def __init__(self, *, key_id: str = KEY_ID, secret: str = SECRET, page_size: int = 10_000) -> None:
        super().__init__()
        self.key_id, self.secret = key_id, secret
        self.page_size = page_size  # most bars one REST page holds (whatever ``limit`` asks)
        self.history: dict[str, list[Bar]] = {}  # what REST bars serve
        self.calendar_days: list[SessionDay] = []
        self.clock_state: dict[str, Any] = {}
        self.account_state: dict[str, Any] = {
            "id": "fake-account",
            "account_number": "PA0000000",
            "status": "ACTIVE",
            "currency": "USD",
            "cash": "100000",
            "buying_power": "200000",
            "equity": "100000",
            "trading_blocked": False,
            "account_blocked": False,
            "shorting_enabled": True,
            "pattern_day_trader": False,
        }
        self.positions: dict[str, Decimal] = {}
        self.assets: dict[str, dict[str, Any]] = {}
        self.prices: dict[str, Decimal] = {}
        self.behaviour: dict[str, str] = {}
        self.orders: dict[str, _Order] = {}  # by id
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, query)
        self.order_posts: list[dict[str, Any]] = []  # every POST /v2/orders body, accepted or not
        self.fail_next: dict[str, list[int]] = {}  # path -> statuses to answer next (429, 500...)
        self.delay_next_order = 0.0  # seconds to hold the next POST /v2/orders answer (after placing it)
        self.spent_after_order: float | None = None  # see spend_rate_limit
        self.connection_limit = 1
        self.symbol_limit = 10_000
        self.stream_auth_ok = True
        self.trade_stream_enabled = True
        self._md_sockets: list[web.WebSocketResponse] = []
        self._md_subs: dict[web.WebSocketResponse, set[str]] = {}
        self._md_trades: dict[web.WebSocketResponse, set[str]] = {}
        self._tu_sockets: list[web.WebSocketResponse] = []
        self.md_connections = 0  # market data connections accepted so far
        self.tu_connections = 0
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    # ---------------------------------------------------------- lifecycle

    def routes(self, router: web.UrlDispatcher) -> None:
        for method, path, handler in (
            ("GET", "/v2/stocks/bars", self._bars),
            ("GET", "/v2/clock", self._clock),
            ("GET", "/v2/calendar", self._calendar),
            ("GET", "/v2/account", self._account),
            ("GET", "/v2/positions", self._positions),
            ("GET", "/v2/assets/{symbol}", self._asset),
            ("POST", "/v2/orders", self._post_order),
            ("GET", "/v2/orders", self._list_orders),
            ("GET", "/v2/orders:by_client_order_id", self._order_by_client_id),
            ("GET", "/v2/orders/{id}", self._get_order),
            ("DELETE", "/v2/orders/{id}", self._cancel_order),
        ):
            router.add_route(method, path, self._endpoint(handler, data=path.startswith("/v2/stocks")))
        router.add_get("/stream", self._trade_stream)
        router.add_get("/v2/{feed}", self._md_stream)

    async def close_connections(self) -> None:
        for ws in [*self._md_sockets, *self._tu_sockets]:
            await ws.close()

    # ------------------------------------------------------ test controls

    def add_history(self, bars: Iterable[Bar]) -> None:
        with self._lock:
            for bar in bars:
                rows = self.history.setdefault(bar.symbol, [])
                rows.append(bar)
            for rows in self.history.values():
                rows.sort(key=lambda b: b.ts)

    def set_calendar(self, days: list[SessionDay]) -> None:
        self.calendar_days = sorted(days)

    def set_clock(self, now: int, is_open: bool, next_open: int, next_close: int) -> None:
        self.clock_state = {
            "timestamp": format_time(now),
            "is_open": is_open,
            "next_open": format_time(next_open),
            "next_close": format_time(next_close),
        }

    def venue_time_ns(self) -> int:
        """The venue's clock: what ``set_clock`` set (held there), else this machine's."""
        stamp = self.clock_state.get("timestamp")
        return parse_time(stamp) if stamp else super().venue_time_ns()

    def open_bar(self, bar: Bar) -> None:
        """The minute in progress, as far as it has come: REST serves it (the stream
        sends a minute bar only once the minute has closed)."""
        self.add_history([bar])

    def close_bar(self, bar: Bar) -> None:
        """The minute that ``open_bar`` began closes with ``bar``'s values: REST
        serves them and the stream sends the bar."""
        with self._lock:
            rows = self.history[bar.symbol]
            rows[:] = [b for b in rows if b.ts != bar.ts]
        self.push_bars([bar])

    def set_asset(
        self, symbol: str, *, shortable: bool = True, fractionable: bool = True, tradable: bool = True
    ) -> None:
        self.assets[symbol] = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, symbol)),
            "class": "us_equity",
            "exchange": "NASDAQ",
            "symbol": symbol,
            "status": "active",
            "tradable": tradable,
            "marginable": True,
            "shortable": shortable,
            "easy_to_borrow": shortable,
            "fractionable": fractionable,
        }

    def push_bars(self, bars: Iterable[Bar], *, history: bool = True) -> None:
        """Send minute bars on the stream (one frame each) to every subscribed
        connection; with ``history`` also keep them for REST."""
        bars = list(bars)
        if history:
            self.add_history(bars)
        self.call(self._send_md, [[bar_json(b)] for b in bars], [b.symbol for b in bars])

    def push_frame(self, text: str, symbol: str | None = None) -> None:
        """Send raw text (malformed on purpose) to every authenticated market data connection."""
        self.call(self._send_md, [text], [symbol])

    def push_trade(self, symbol: str, ts: int, price: float, size: int) -> None:
        msg = {
            "T": "t",
            "S": symbol,
            "i": next(self._ids),
            "x": "V",
            "p": price,
            "s": size,
            "t": format_time(ts),
            "c": ["@"],
            "z": "C",
        }
        self.call(self._send_md, [[msg]], [symbol], trades=True)

    def drop_streams(self) -> None:
        """Drop every market data connection abruptly (no close frame)."""
        self.call(self._drop, self._md_sockets)

    def drop_trade_streams(self) -> None:
        self.call(self._drop, self._tu_sockets)

    def subscribed(self, *symbols: str) -> bool:
        """Some market data connection is subscribed to the bars of all ``symbols``."""
        return any(set(symbols) <= subs for subs in list(self._md_subs.values()))

    def md_clients(self) -> int:
        return len(self._md_sockets)

    def tu_clients(self) -> int:
        return len(self._tu_sockets)

    def order_by_client_id(self, cid: str) -> _Order | None:
        with self._lock:
            return next((o for o in self.orders.values() if o.client_order_id == cid), None)

    def fill_rest(self, client_order_id: str, price: Decimal | None = None) -> None:
        """Fill what remains of a partially filled order."""
        self.call(self._fill_rest, client_order_id, price)

    def fill_part(self, client_order_id: str, qty: Decimal, price: Decimal | None = None) -> None:
        """Fill ``qty`` of a working order, as the market would."""
        order = self.order_by_client_id(client_order_id)
        assert order is not None, client_order_id
        self.call(self._execute, order, qty, price or self.prices.get(order.symbol, Decimal(100)))

    def place(self, symbol: str, client_order_id: str, side: str, qty: Decimal, limit_price: Decimal) -> _Order:
        """A limit order working at the venue that no engine sent: placed by
        hand or by another program on the account (reported to no one)."""
        now = self._now()
        terms = (str(uuid.uuid4()), client_order_id, symbol, side, qty, "limit", "day", limit_price)
        order = _Order(*terms, created_at=now, updated_at=now)
        with self._lock:
            self.orders[order.id] = order
        return order

    def spend_rate_limit(self, seconds: float) -> None:
        """Fault plan: the next order's answer says the client's request budget
        is spent (``X-RateLimit-Remaining: 0``) until ``seconds`` from now: the
        broker's next request waits in its rate limiter that long."""
        self.spent_after_order = seconds

    def fill_leg(self, entry_client_id: str, leg: str, price: Decimal, qty: Decimal | None = None) -> None:
        """Trigger a bracket leg (``stop_loss`` or ``take_profit``) of a filled entry:
        the leg fills at ``price`` and its sibling is cancelled; with ``qty``,
        only that much fills, and both legs go on working."""
        self.call(self._fill_leg, entry_client_id, leg, price, qty)

    # -------------------------------------------------------- internals

    def _now(self) -> int:
        import time

        return time.time_ns()

    def _auth_ok(self, request: web.Request) -> bool:
        return (
            request.headers.get("APCA-API-KEY-ID") == self.key_id
            and request.headers.get("APCA-API-SECRET-KEY") == self.secret
        )

    def _endpoint(self, handler: _Handler, *, data: bool) -> _Handler:
        """A REST endpoint: the request recorded, a failure the test scripted
        answered first, the keys checked (as the data API or the trading API
        refuses them); then ``handler``."""

        async def endpoint(request: web.Request) -> web.StreamResponse:
            return self._gate(request, data) or await handler(request)

        return endpoint

    def _gate(self, request: web.Request, data: bool) -> web.Response | None:
        self.requests.append((request.method, request.path, dict(request.query)))
        fails = self.fail_next.get(request.path)
        if fails:
            status = fails.pop(0)
            headers = {"Retry-After": "0"} if status == 429 else {}
            return web.json_response(
                {"code": status * 100000, "message": "injected failure"}, status=status, headers=headers
            )
        if not self._auth_ok(request):
            if data:
                return web.json_response({"message": "forbidden"}, status=403)
            return web.json_response({"code": 40110000, "message": "request is not authorized"}, status=401)
        return None

    @staticmethod
    def _headers() -> dict[str, str]:
        return {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "199", "X-RateLimit-Reset": "0"}

    # REST: market data

    async def _bars(self, request: web.Request) -> web.Response:
        q = request.query
        if "symbols" not in q or "timeframe" not in q:
            return web.json_response({"message": "symbols and timeframe are required"}, status=400)
        if q["timeframe"] != "1Min":
            return web.json_response({"message": "the fake serves 1Min bars only"}, status=422)
        symbols = sorted(s for s in q["symbols"].split(",") if s)
        start = parse_time(q["start"]) if "start" in q else 0
        end = parse_time(q["end"]) if "end" in q else 2**62
        limit = min(int(q.get("limit", "1000")), 10_000, self.page_size)
        after: tuple[str, int] | None = None
        if "page_token" in q:
            sym, _, ts = base64.b64decode(q["page_token"]).decode().partition("|")
            after = (sym, int(ts))
        out: dict[str, list[dict[str, Any]]] = {}
        count = 0
        token = None
        prev = ("", 0)
        with self._lock:
            rows = [(s, b) for s in symbols for b in self.history.get(s, []) if start <= b.ts <= end]
        if q.get("sort") == "desc":
            rows = [
                (s, b) for s in symbols for b in reversed([b for b in self.history.get(s, []) if start <= b.ts <= end])
            ]
        desc = q.get("sort") == "desc"
        for sym, bar in rows:
            if after is not None and (
                sym < after[0] or sym == after[0] and (bar.ts >= after[1] if desc else bar.ts <= after[1])
            ):
                continue
            if count == limit:
                last_sym, last_ts = prev
                token = base64.b64encode(f"{last_sym}|{last_ts}".encode()).decode()
                break
            out.setdefault(sym, []).append(bar_json(bar, stream=False))
            prev = (sym, bar.ts)
            count += 1
        return web.json_response({"bars": out, "next_page_token": token}, headers=self._headers())

    # REST: trading

    async def _clock(self, request: web.Request) -> web.Response:
        return web.json_response(self.clock_state, headers=self._headers())

    async def _calendar(self, request: web.Request) -> web.Response:
        start, end = request.query.get("start"), request.query.get("end")
        rows = [
            calendar_row(d)
            for d in self.calendar_days
            if (start is None or d.day.isoformat() >= start) and (end is None or d.day.isoformat() <= end)
        ]
        return web.json_response(rows, headers=self._headers())

    async def _account(self, request: web.Request) -> web.Response:
        return web.json_response(self.account_state, headers=self._headers())

    async def _positions(self, request: web.Request) -> web.Response:
        rows = [
            {
                "symbol": s,
                "qty": decimal_text(abs(q)),
                "side": "long" if q > 0 else "short",
                "asset_class": "us_equity",
                "avg_entry_price": decimal_text(self.prices.get(s, Decimal(100))),
            }
            for s, q in sorted(self.positions.items())
            if q != 0
        ]
        return web.json_response(rows, headers=self._headers())

    async def _asset(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"]
        if symbol not in self.assets:
            return web.json_response({"code": 40410000, "message": "asset not found"}, status=404)
        return web.json_response(self.assets[symbol], headers=self._headers())

    def _new_order(self, body: dict[str, Any], cid: str) -> _Order:
        now = self._now()
        order = _Order(
            id=str(uuid.uuid4()),
            client_order_id=cid,
            symbol=body["symbol"],
            side=body["side"],
            qty=Decimal(body["qty"]),
            type=body["type"],
            time_in_force=body["time_in_force"],
            limit_price=Decimal(body["limit_price"]) if body.get("limit_price") else None,
            order_class=body.get("order_class") or "simple",
            status="new",
            created_at=now,
            updated_at=now,
            extended_hours=bool(body.get("extended_hours")),
        )
        exit_side = "sell" if order.side == "buy" else "buy"

        def leg(kind: str, *, limit_price: Decimal | None = None, stop_price: Decimal | None = None) -> _Order:
            """A bracket's protective leg, held until the entry fills."""
            return _Order(
                str(uuid.uuid4()),
                str(uuid.uuid4()),
                order.symbol,
                exit_side,
                order.qty,
                kind,
                order.time_in_force,
                limit_price=limit_price,
                stop_price=stop_price,
                order_class=order.order_class,
                status="held",
                parent=order.id,
                created_at=now,
                updated_at=now,
            )

        if "take_profit" in body:
            order.legs.append(leg("limit", limit_price=Decimal(body["take_profit"]["limit_price"])))
        if "stop_loss" in body:
            order.legs.append(leg("stop", stop_price=Decimal(body["stop_loss"]["stop_price"])))
        return order

    def _refusal(self, body: dict[str, Any]) -> web.Response | None:
        symbol = body.get("symbol")
        asset = self.assets.get(str(symbol))
        try:
            qty = Decimal(str(body.get("qty")))
        except Exception:
            return web.json_response({"code": 40010000, "message": "qty is invalid"}, status=422)
        if asset is None:
            return web.json_response({"code": 40010000, "message": f'asset "{symbol}" not found'}, status=422)
        if body.get("type") not in ("market", "limit") or body.get("side") not in ("buy", "sell"):
            return web.json_response({"code": 40010000, "message": "invalid order type or side"}, status=422)
        if qty != qty.to_integral_value():
            if not asset["fractionable"]:
                return web.json_response(
                    {"code": 42210000, "message": f'asset "{symbol}" is not fractionable'}, status=422
                )
            if body.get("time_in_force") != "day":
                return web.json_response(
                    {"code": 42210000, "message": "fractional orders must be DAY orders"}, status=422
                )
            if body.get("order_class") not in (None, "", "simple"):
                return web.json_response(
                    {"code": 42210000, "message": "fractional orders must be simple orders"}, status=422
                )
        price = self.prices.get(str(symbol), Decimal(100))
        if body["side"] == "buy" and qty * price > Decimal(self.account_state["buying_power"]):
            return web.json_response({"code": 40310000, "message": "insufficient buying power"}, status=403)
        held = self.positions.get(str(symbol), Decimal(0))
        if body["side"] == "sell" and qty > held and not asset["shortable"]:
            return web.json_response(
                {"code": 42210000, "message": f'asset "{symbol}" cannot be sold short'}, status=422
            )
        legs_held = sum(
            (
                leg.qty
                for o in self.orders.values()
                for leg in o.legs
                if o.symbol == symbol and leg.status in ("new", "held") and o.status == "filled"
            ),
            Decimal(0),
        )
        if body["side"] == "sell" and legs_held and qty > held - legs_held:
            return web.json_response(
                {
                    "code": 40310000,
                    "message": f"insufficient qty available for order (requested: {qty}, "
                    f"available: {held - legs_held})",
                },
                status=403,
            )
        return None

    async def _post_order(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"code": 40010000, "message": "request body format is invalid"}, status=400)
        self.order_posts.append(body)
        cid = body.get("client_order_id") or str(uuid.uuid4())
        with self._lock:
            if any(o.client_order_id == cid for o in self.orders.values()):
                return web.json_response({"code": 40010001, "message": "client_order_id must be unique"}, status=422)
            refusal = self._refusal(body)
            if refusal is not None:
                return refusal
            order = self._new_order(body, cid)
            self.orders[order.id] = order
            for leg in order.legs:
                self.orders[leg.id] = leg
        behaviour = self.behaviour.get(order.symbol, "fill")
        if behaviour == "reject":
            order.status = "rejected"
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._event("rejected", order)))
        else:
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._work(order, behaviour)))
        answer = order.json()
        headers = self._headers()
        if self.spent_after_order is not None:
            reset, self.spent_after_order = time.time() + self.spent_after_order, None
            headers.update({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(reset) + 1)})
        if self.delay_next_order:
            delay, self.delay_next_order = self.delay_next_order, 0.0
            await asyncio.sleep(delay)
        await self.order_answer_held()  # the answer tells the order as it was placed (``new``)
        return web.json_response(answer, headers=headers)

    async def _work(self, order: _Order, behaviour: str) -> None:
        await self._event("new", order)
        if behaviour == "hold" or order.type == "limit" and not self._limit_reached(order):
            return
        price = self.prices.get(order.symbol, Decimal(100))
        if behaviour == "partial":
            half = (order.qty / 2).to_integral_value(rounding="ROUND_DOWN") or order.qty
            await self._execute(order, half, price)
        else:
            await self._execute(order, order.qty - order.filled_qty, price)

    def _limit_reached(self, order: _Order) -> bool:
        price = self.prices.get(order.symbol, Decimal(100))
        assert order.limit_price is not None
        return price <= order.limit_price if order.side == "buy" else price >= order.limit_price

    async def _execute(self, order: _Order, qty: Decimal, price: Decimal) -> None:
        with self._lock:
            total = order.filled_qty + qty
            old = (order.filled_avg_price or Decimal(0)) * order.filled_qty
            order.filled_avg_price = (old + price * qty) / total
            order.filled_qty = total
            order.status = "filled" if total >= order.qty else "partially_filled"
            order.updated_at = self._now()
            sign = 1 if order.side == "buy" else -1
            self.positions[order.symbol] = self.positions.get(order.symbol, Decimal(0)) + sign * qty
            cash = Decimal(self.account_state["cash"]) - sign * qty * price
            self.account_state["cash"] = decimal_text(cash)
            if order.status == "filled":
                for leg in order.legs:
                    leg.status = "new"
                    leg.updated_at = order.updated_at
        event = "fill" if order.status == "filled" else "partial_fill"
        await self._event(event, order, qty=qty, price=price)

    async def _fill_rest(self, cid: str, price: Decimal | None) -> None:
        order = self.order_by_client_id(cid)
        assert order is not None, cid
        await self._execute(order, order.qty - order.filled_qty, price or self.prices.get(order.symbol, Decimal(100)))

    async def _fill_leg(self, entry_cid: str, leg_name: str, price: Decimal, qty: Decimal | None) -> None:
        entry = self.order_by_client_id(entry_cid)
        assert entry is not None and entry.legs, entry_cid
        kind = "stop" if leg_name == "stop_loss" else "limit"
        leg = next(leg for leg in entry.legs if leg.type == kind)
        assert leg.status == "new", leg.status
        await self._execute(leg, qty or leg.qty, price)
        if qty is not None and qty < leg.qty:
            return
        for other in entry.legs:
            if other is not leg and other.status in ("new", "held"):
                other.status = "canceled"
                other.updated_at = self._now()
                await self._event("canceled", other)

    async def _list_orders(self, request: web.Request) -> web.Response:
        status = request.query.get("status", "open")
        nested = request.query.get("nested") == "true"
        symbols = set(filter(None, request.query.get("symbols", "").split(",")))
        open_states = ("new", "accepted", "partially_filled", "held", "pending_new", "pending_cancel")
        with self._lock:
            rows = [
                o
                for o in self.orders.values()
                if (status == "all" or (o.status in open_states) == (status == "open"))
                and (not symbols or o.symbol in symbols)
                and not (nested and o.parent)
            ]
        return web.json_response([o.json() for o in rows], headers=self._headers())

    async def _order_by_client_id(self, request: web.Request) -> web.Response:
        order = self.order_by_client_id(request.query.get("client_order_id", ""))
        if order is None:
            return _order_not_found()
        return web.json_response(order.json(), headers=self._headers())

    async def _get_order(self, request: web.Request) -> web.Response:
        order = self.orders.get(request.match_info["id"])
        if order is None:
            return _order_not_found()
        return web.json_response(order.json(), headers=self._headers())

    async def _cancel_order(self, request: web.Request) -> web.Response:
        order = self.orders.get(request.match_info["id"])
        if order is None:
            return _order_not_found()
        if order.status not in ("new", "accepted", "partially_filled", "held", "pending_new"):
            return web.json_response({"code": 42210000, "message": f"order is {order.status}"}, status=422)
        order.status = "canceled"
        order.updated_at = self._now()
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._event("canceled", order)))
        return web.Response(status=204)

    # streams

    async def _event(self, event: str, order: _Order, qty: Decimal | None = None, price: Decimal | None = None) -> None:
        data: dict[str, Any] = {"event": event, "order": order.json(), "timestamp": format_time(order.updated_at)}
        if qty is not None and price is not None:
            data.update(
                execution_id=str(uuid.uuid4()),
                qty=decimal_text(qty),
                price=decimal_text(price),
                position_qty=decimal_text(self.positions.get(order.symbol, Decimal(0))),
            )
        frame = json.dumps({"stream": "trade_updates", "data": data}).encode()
        for ws in list(self._tu_sockets):
            try:
                await ws.send_bytes(frame)  # the paper endpoint sends binary frames
            except (ConnectionError, RuntimeError):
                pass

    async def _trade_stream(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        if not self.trade_stream_enabled:
            await ws.close()
            return ws
        self.tu_connections += 1
        authed = False
        try:
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                body = json.loads(msg.data)
                action = body.get("action")
                if action == "authenticate":
                    data = body.get("data", {})
                    authed = data.get("key_id") == self.key_id and data.get("secret_key") == self.secret
                    status = "authorized" if authed else "unauthorized"
                    await ws.send_bytes(
                        json.dumps(
                            {"stream": "authorization", "data": {"status": status, "action": "authenticate"}}
                        ).encode()
                    )
                elif action == "listen":
                    if not authed:
                        await ws.send_bytes(
                            json.dumps(
                                {"stream": "authorization", "data": {"status": "unauthorized", "action": "listen"}}
                            ).encode()
                        )
                        continue
                    streams = [s for s in body.get("data", {}).get("streams", []) if s == "trade_updates"]
                    if streams and ws not in self._tu_sockets:
                        self._tu_sockets.append(ws)
                    await ws.send_bytes(json.dumps({"stream": "listening", "data": {"streams": streams}}).encode())
        finally:
            if ws in self._tu_sockets:
                self._tu_sockets.remove(ws)
        return ws

    async def _md_stream(self, request: web.Request) -> web.StreamResponse:
        feed = request.match_info["feed"]
        if feed not in ("iex", "sip", "delayed_sip", "test"):
            return web.json_response({"message": "not found"}, status=404)
        ws = web.WebSocketResponse(autoping=True, compress=False)
        await ws.prepare(request)
        self.requests.append(("WS", request.path, {}))
        await ws.send_str(json.dumps([{"T": "success", "msg": "connected"}]))
        authed = False
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    body = json.loads(msg.data)
                except ValueError:
                    await ws.send_str(json.dumps([{"T": "error", "code": 400, "msg": "invalid syntax"}]))
                    continue
                action = body.get("action")
                if action == "auth":
                    if authed:
                        await ws.send_str(json.dumps([{"T": "error", "code": 403, "msg": "already authenticated"}]))
                    elif not self.stream_auth_ok or body.get("key") != self.key_id or body.get("secret") != self.secret:
                        await ws.send_str(json.dumps([{"T": "error", "code": 402, "msg": "auth failed"}]))
                        await ws.close()
                    elif len(self._md_sockets) >= self.connection_limit:
                        await ws.send_str(json.dumps([{"T": "error", "code": 406, "msg": "connection limit exceeded"}]))
                        await ws.close()
                    else:
                        authed = True
                        self.md_connections += 1
                        self._md_sockets.append(ws)
                        self._md_subs[ws] = set()
                        self._md_trades[ws] = set()
                        await ws.send_str(json.dumps([{"T": "success", "msg": "authenticated"}]))
                elif action in ("subscribe", "unsubscribe"):
                    if not authed:
                        await ws.send_str(json.dumps([{"T": "error", "code": 401, "msg": "not authenticated"}]))
                        continue
                    bars = set(body.get("bars", []))
                    trades = set(body.get("trades", []))
                    subs, tsubs = self._md_subs[ws], self._md_trades[ws]
                    new = subs | bars if action == "subscribe" else subs - bars
                    if len(new) > self.symbol_limit:
                        await ws.send_str(json.dumps([{"T": "error", "code": 405, "msg": "symbol limit exceeded"}]))
                        continue
                    self._md_subs[ws] = new
                    self._md_trades[ws] = tsubs | trades if action == "subscribe" else tsubs - trades
                    await ws.send_str(
                        json.dumps(
                            [
                                {
                                    "T": "subscription",
                                    "trades": sorted(self._md_trades[ws]),
                                    "quotes": [],
                                    "bars": sorted(new),
                                }
                            ]
                        )
                    )
                else:
                    await ws.send_str(json.dumps([{"T": "error", "code": 400, "msg": "invalid syntax"}]))
        finally:
            if ws in self._md_sockets:
                self._md_sockets.remove(ws)
            self._md_subs.pop(ws, None)
            self._md_trades.pop(ws, None)
        return ws

    async def _send_md(self, frames: list[Any], symbols: list[str | None], trades: bool = False) -> None:
        for frame, symbol in zip(frames, symbols):
            text = frame if isinstance(frame, str) else json.dumps(frame)
            for ws in list(self._md_sockets):
                subs = (self._md_trades if trades else self._md_subs).get(ws, set())
                if symbol is None or symbol in subs or "*" in subs:
                    try:
                        await ws.send_str(text)
                    except (ConnectionError, RuntimeError):
                        pass

    async def _drop(self, sockets: list[web.WebSocketResponse]) -> None:
        for ws in list(sockets):
            sockets.remove(ws)
            self._md_subs.pop(ws, None)
            transport = ws._req.transport if ws._req is not None else None  # type: ignore[attr-defined]
            if transport is not None:
                transport.abort()


def regular_day(day: Any, *, open_: str = "09:30", close: str = "16:00") -> SessionDay:
    """A calendar day with the usual hours (for tests)."""
    from engine_plugin_alpaca.wire import calendar

    return calendar(
        [{"date": day.isoformat(), "open": open_, "close": close, "session_open": "0400", "session_close": "2000"}]
    )[0]


def minute_bars(symbol: str, start: int, n: int, price: float = 100.0) -> list[Bar]:
    """``n`` one-minute bars from ``start``, prices drifting up a cent a bar."""
    out = []
    for i in range(n):
        p = round(price + i * 0.01, 2)
        out.append(
            Bar(symbol, start + i * MINUTE, p, round(p + 0.05, 2), round(p - 0.05, 2), round(p + 0.01, 2), 100 + i)
        )
    return out


class Reader:
    """Consumes a live source's ``live()`` on a task (an async generator only runs
    while someone iterates it); ``take(n)`` returns the next ``n`` bars, and an
    error the stream raised."""

    def __init__(self, stream: AsyncIterator[Bar]) -> None:
        self.stream = stream
        self.queue: asyncio.Queue[Bar | BaseException] = asyncio.Queue()
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            async for bar in self.stream:
                self.queue.put_nowait(bar)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.queue.put_nowait(exc)

    async def take(self, n: int, timeout: float = 20.0) -> list[Bar]:
        out = []
        for _ in range(n):
            item = await asyncio.wait_for(self.queue.get(), timeout)
            if isinstance(item, BaseException):
                raise item
            out.append(item)
        return out

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        aclose = getattr(self.stream, "aclose", None)
        if aclose is not None:
            await aclose()

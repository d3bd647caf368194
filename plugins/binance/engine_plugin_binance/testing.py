"""A local Binance for tests and benchmarks: REST, combined market streams
and the WebSocket API's user data stream on one port of 127.0.0.1, speaking
the spot wire format of Binance's documentation.

It keeps an account (balances, orders, trades), fills market orders at the
symbol's last price with a 0.1% commission in the asset received (Binance
without BNB), verifies HMAC signatures of the exact query string, counts
request weight into ``X-MBX-USED-WEIGHT-1M``, and lets a test script what a
real venue does now and then: a failing request (429, 418, 5xx), an order
placed but unanswered, an order answered only after its executionReports
(``hold_order_answer``), a rejected order, partial fills, a stream cut with
no close frame, a stream gone quiet, malformed frames, a kline in progress
(``open_bar``, ``close_bar``), and this machine's clock running ahead of the
venue's (``skew_clock``: the venue's server time, ``Date`` headers,
signature windows and which kline is in progress follow the venue's clock).

Runs on its own thread and loop; every method is safe to call from a test::

    with FakeBinance() as fake:
        fake.add_history("BTCUSDT", 100)
        cfg = {"rest_url": fake.http_url, "ws_url": fake.ws_url, "ws_api_url": fake.ws_api_url}
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from engine_core.testing import BackgroundServer
from engine_plugin_binance.wire import INTERVAL_MS

_Handler = Callable[[web.Request, dict[str, str]], Awaitable[web.StreamResponse]]

API_KEY = "fake-api-key"
API_SECRET = "fake-api-secret"

_MESSAGES = {-1021: "Timestamp for this request is outside of the recvWindow."}
_WEIGHTS = {
    ("GET", "/api/v3/time"): 1,
    ("GET", "/api/v3/exchangeInfo"): 20,
    ("GET", "/api/v3/klines"): 2,
    ("GET", "/api/v3/account"): 20,
    ("GET", "/api/v3/order"): 4,
    ("POST", "/api/v3/order"): 1,
    ("DELETE", "/api/v3/order"): 1,
    ("GET", "/api/v3/openOrders"): 6,
    ("GET", "/api/v3/myTrades"): 5,
    ("GET", "/api/v3/ticker/price"): 2,
}


@dataclass
class Rules:
    base: str
    quote: str
    step: str = "0.00001000"
    min_qty: str = "0.00001000"
    tick: str = "0.01000000"
    min_notional: str = "5.00000000"


@dataclass
class FakeOrder:
    symbol: str
    order_id: int
    client_id: str
    side: str
    type: str
    qty: Decimal
    price: Decimal
    tif: str
    time: int
    status: str = "NEW"
    executed: Decimal = Decimal(0)
    quote: Decimal = Decimal(0)

    def view(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_id,
            "price": f"{self.price:.8f}",
            "origQty": f"{self.qty:.8f}",
            "executedQty": f"{self.executed:.8f}",
            "cummulativeQuoteQty": f"{self.quote:.8f}",
            "status": self.status,
            "timeInForce": self.tif,
            "type": self.type,
            "side": self.side,
            "stopPrice": "0.00000000",
            "icebergQty": "0.00000000",
            "time": self.time,
            "updateTime": self.time,
            "isWorking": self.status in ("NEW", "PARTIALLY_FILLED"),
            "workingTime": self.time,
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "NONE",
        }


@dataclass
class _Failure:
    path: str
    status: int
    retry_after: int
    times: int
    method: str | None = None  # None: every method
    code: int | None = None  # a Binance error code in the body (-1021: a timestamp outside recvWindow)


@dataclass
class OrderScript:
    """What the fake does with the next orders (``FakeBinance.script``)."""

    mode: str = "fill"  # fill | rest (NEW, filled later by fill_order) | reject | no_answer | expire
    reason: str = "Account has insufficient balance for requested action."


@dataclass
class _Stream:
    ws: web.WebSocketResponse
    transport: Any
    streams: frozenset[str]


@dataclass
class _UserSession:
    ws: web.WebSocketResponse
    transport: Any
    subscriptions: dict[int, str] = field(default_factory=dict)


class FakeBinance(BackgroundServer):
    """A local Binance spot venue (see the module docstring)."""

    thread_name = "fake-binance"

    def __init__(self, *, api_key: str = API_KEY, api_secret: str = API_SECRET, interval: str = "1m") -> None:
        super().__init__()
        self.api_key = api_key
        self.api_secret = api_secret
        self.interval = interval
        self.interval_ms = INTERVAL_MS[interval]
        self.rules: dict[str, Rules] = {"BTCUSDT": Rules("BTC", "USDT"), "ETHUSDT": Rules("ETH", "USDT")}
        self.klines: dict[str, list[list[Any]]] = defaultdict(list)
        self.last_price: dict[str, Decimal] = {}
        self.balances: dict[str, Decimal] = defaultdict(Decimal, {"USDT": Decimal("10000"), "BNB": Decimal(0)})
        self.commission_rate = Decimal("0.001")
        self.orders: dict[int, FakeOrder] = {}
        self.trades: list[dict[str, Any]] = []
        self.placed: list[dict[str, str]] = []  # params of every order the venue placed
        self.order_arrivals: dict[str, float] = {}  # client id -> perf_counter() as the order handler got it
        self.requests: Counter[str] = Counter()  # "METHOD /path" -> count
        self.script: list[OrderScript] = []  # consumed one per order; empty: fill
        self.bad_signatures = 0
        self.user_streams_down = False  # True: the WebSocket API refuses connections (HTTP 503)
        self.weight = 0
        self._weight_minute = 0
        self._failures: list[_Failure] = []
        self._streams: list[_Stream] = []
        self._users: list[_UserSession] = []
        self._next_order = 1000
        self._next_trade = 5000
        self._next_sub = 0
        self.stream_connections = 0
        self.user_connections = 0
        self.clock_behind_ms = 0  # the venue's clock behind this machine's (a local clock ahead)
        self._held_ms: int | None = None
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- the venue's clock

    def now_ms(self) -> int:
        """The venue's clock (ms since the epoch)."""
        if self._held_ms is not None:
            return self._held_ms
        return int(time.time() * 1000) - self.clock_behind_ms

    def venue_time_ns(self) -> int:
        return self.now_ms() * 1_000_000

    def skew_clock(self, ahead_s: float, *, hold: bool = False) -> int:
        """Fault plan: this machine's clock runs ``ahead_s`` seconds ahead of the
        venue's from now on. A client that measured the offset before (a source
        syncs once) now has a local clock that is ahead of the venue's. ``hold``
        stops the venue's clock there, so that the kline in progress stays in
        progress until ``close_bar``. Returns the venue's time (ms)."""
        with self._lock:
            self.clock_behind_ms = int(ahead_s * 1000)
            self._held_ms = None
            now = self.now_ms()
            if hold:
                self._held_ms = now
            return now

    # ---------------------------------------------------------------- lifecycle

    @property
    def ws_api_url(self) -> str:
        return f"{self.ws_url}/ws-api/v3"

    def routes(self, router: web.UrlDispatcher) -> None:
        for method, path, handler, signed in (
            ("GET", "/api/v3/time", self._time, False),
            ("GET", "/api/v3/exchangeInfo", self._exchange_info, False),
            ("GET", "/api/v3/klines", self._klines, False),
            ("GET", "/api/v3/ticker/price", self._ticker, False),
            ("GET", "/api/v3/account", self._account, True),
            ("POST", "/api/v3/order", self._new_order, True),
            ("GET", "/api/v3/order", self._query_order, True),
            ("DELETE", "/api/v3/order", self._cancel_order, True),
            ("GET", "/api/v3/openOrders", self._open_orders, True),
            ("GET", "/api/v3/myTrades", self._my_trades, True),
        ):
            router.add_route(method, path, self._endpoint(handler, signed))
        router.add_route("GET", "/stream", self._stream)
        router.add_route("GET", "/ws-api/v3", self._ws_api)

    async def close_connections(self) -> None:
        for s in self._streams + self._users:  # type: ignore[operator]
            s.transport.abort()

    # ---------------------------------------------------------------- market data

    def add_history(
        self,
        symbol: str,
        count: int,
        *,
        end_ms: int | None = None,
        price: float = 100.0,
        closes: list[float] | None = None,
    ) -> None:
        """``count`` closed bars of ``symbol`` ending before ``end_ms`` (default:
        100,000 intervals ago, which leaves room for as many closed bars to
        follow), a deterministic zigzag around ``price``, or the ``closes``
        given (then ``count`` is ignored)."""
        if closes is None:
            closes = [price + (i % 7) - 3 for i in range(count)]
        with self._lock:
            if end_ms is None:
                now = self.now_ms()
                end_ms = now - now % self.interval_ms - 100_000 * self.interval_ms
            start = end_ms - len(closes) * self.interval_ms
            for i, close in enumerate(closes):
                self._store(symbol, start + i * self.interval_ms, close)

    def _store(self, symbol: str, open_ms: int, close: float) -> list[Any]:
        row = [
            open_ms,
            f"{close - 0.5:.2f}",
            f"{close + 1:.2f}",
            f"{close - 1:.2f}",
            f"{close:.2f}",
            "12.50000000",
            open_ms + self.interval_ms - 1,
            f"{12.5 * close:.8f}",
            42,
            "6.00000000",
            f"{6 * close:.8f}",
            "0",
        ]
        rows = self.klines[symbol]
        if rows and rows[-1][0] >= open_ms:
            raise ValueError(f"{symbol}: bar at {open_ms} is not after the last one")
        rows.append(row)
        self.last_price[symbol] = Decimal(str(row[4]))
        return row

    def next_bar(self, symbol: str, close: float | None = None) -> list[Any]:
        """Add the bar after ``symbol``'s last one to the venue's history and return its row."""
        with self._lock:
            rows = self.klines[symbol]
            open_ms = rows[-1][0] + self.interval_ms if rows else self.now_ms() // 60000 * 60000
            if close is None:
                close = float(rows[-1][4]) + 0.25 if rows else 100.0
            return self._store(symbol, open_ms, close)

    @staticmethod
    def kline_frame(symbol: str, row: list[Any], interval: str = "1m", closed: bool = True) -> str:
        """A combined-stream kline frame for a REST-format row."""
        k = {
            "t": row[0],
            "T": row[6],
            "s": symbol,
            "i": interval,
            "f": 100,
            "L": 200,
            "o": row[1],
            "c": row[4],
            "h": row[2],
            "l": row[3],
            "v": row[5],
            "n": row[8],
            "x": closed,
            "q": row[7],
            "V": row[9],
            "Q": row[10],
            "B": "0",
        }
        data = {"e": "kline", "E": row[6] + 1, "s": symbol, "k": k}
        return json.dumps({"stream": f"{symbol.lower()}@kline_{interval}", "data": data}, separators=(",", ":"))

    def stream_bar(self, symbol: str, close: float | None = None, *, closed_update: bool = True) -> list[Any]:
        """The next bar of ``symbol``: stored for REST and sent (preceded by an
        unclosed update of it, as Binance does) to the streams subscribed to it."""
        row = self.next_bar(symbol, close)
        name = f"{symbol.lower()}@kline_{self.interval}"
        frames = []
        if closed_update:
            frames.append(self.kline_frame(symbol, row, self.interval, closed=False))
        frames.append(self.kline_frame(symbol, row, self.interval))
        self.call(self._send_streams, name, frames)
        return row

    def open_bar(self, symbol: str, close: float) -> list[Any]:
        """The kline in progress: the venue's current interval, holding what it
        has so far. REST serves it as its last kline (as Binance does); the
        stream sends it with ``"x": false``."""
        with self._lock:
            now = self.now_ms()
            row = self._store(symbol, now - now % self.interval_ms, close)
        self.call(
            self._send_streams,
            f"{symbol.lower()}@kline_{self.interval}",
            [self.kline_frame(symbol, row, self.interval, closed=False)],
        )
        return row

    def close_bar(self, symbol: str, close: float) -> list[Any]:
        """The kline that ``open_bar`` began closes with its final values (its
        open kept, its range widened to ``close``, twice the volume); the stream
        sends it with ``"x": true``. A held clock moves to its close."""
        with self._lock:
            row = self.klines[symbol][-1]
            row[2] = f"{max(float(row[2]), close + 1):.2f}"
            row[3] = f"{min(float(row[3]), close - 1):.2f}"
            row[4] = f"{close:.2f}"
            row[5] = "25.00000000"
            row[7] = f"{25 * close:.8f}"
            self.last_price[symbol] = Decimal(row[4])
            if self._held_ms is not None:
                self._held_ms = max(self._held_ms, row[6] + 1)
        self.call(
            self._send_streams,
            f"{symbol.lower()}@kline_{self.interval}",
            [self.kline_frame(symbol, row, self.interval)],
        )
        return list(row)

    def send_raw(self, frame: str, stream: str | None = None) -> None:
        """Send a frame as it is to every market stream (or those subscribed to ``stream``)."""
        self.call(self._send_streams, stream, [frame])

    async def _send_streams(self, name: str | None, frames: list[str]) -> None:
        for s in list(self._streams):
            if name is None or name in s.streams:
                for frame in frames:
                    try:
                        await s.ws.send_str(frame)
                    except (ConnectionError, RuntimeError):
                        pass

    def cut_streams(self) -> None:
        """Drop every market-stream connection abruptly: no close frame."""
        self.call(self._cut, self._streams)

    def cut_user_streams(self) -> None:
        self.call(self._cut, self._users)

    @staticmethod
    def _cut(conns: list[Any]) -> None:
        for s in list(conns):
            s.transport.abort()
        conns.clear()

    def connected_streams(self) -> int:
        return len(self._streams)

    def connected_users(self) -> int:
        return sum(1 for u in self._users if u.subscriptions)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        streams = frozenset(request.query.get("streams", "").split("/"))
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        entry = _Stream(ws, request.transport, streams)
        self._streams.append(entry)
        self.stream_connections += 1
        try:
            async for _ in ws:
                pass
        finally:
            if entry in self._streams:
                self._streams.remove(entry)
        return ws

    # ---------------------------------------------------------------- failures

    def fail(
        self,
        path: str,
        status: int,
        *,
        retry_after: int = 1,
        times: int = 1,
        method: str | None = None,
        code: int | None = None,
    ) -> None:
        """Answer the next ``times`` requests to ``path`` (of ``method``, or
        any) with HTTP ``status``: 429 and 418 with ``Retry-After``; with
        ``code``, Binance's error payload of that code (``-1021``: timestamp
        outside the recvWindow); else no body (a 5xx, a 404 of a missing endpoint).

        A lost order answer whose lookup is refused::

            fake.script.append(OrderScript("no_answer"))
            fake.fail("/api/v3/order", 429, method="GET", retry_after=0, times=5)
        """
        with self._lock:
            self._failures.append(_Failure(path, status, retry_after, times, method, code))

    def _count(self, request: web.Request) -> tuple[int, dict[str, str]]:
        minute = self.now_ms() // 60_000
        if minute != self._weight_minute:
            self._weight_minute, self.weight = minute, 0
        self.weight += _WEIGHTS.get((request.method, request.path), 1)
        self.requests[f"{request.method} {request.path}"] += 1
        return self.weight, {"X-MBX-USED-WEIGHT-1M": str(self.weight)}

    def _injected(self, request: web.Request, headers: dict[str, str]) -> web.Response | None:
        with self._lock:
            for f in self._failures:
                if f.path == request.path and f.times > 0 and f.method in (None, request.method):
                    f.times -= 1
                    if f.status in (418, 429):
                        headers["Retry-After"] = str(f.retry_after)
                        msg = "Too many requests; current limit is 6000 request weight per 1 MINUTE."
                        if f.status == 418:
                            msg = "Way too many requests; IP banned until 1700000000000."
                        return _json({"code": -1003, "msg": msg}, f.status, headers)
                    if f.code is not None:
                        msg = _MESSAGES.get(f.code, "An unknown error occurred while processing the request.")
                        return _json({"code": f.code, "msg": msg}, f.status, headers)
                    return web.Response(status=f.status, text="", headers=headers)
        return None

    def _check_signature(self, request: web.Request) -> web.Response | None:
        raw = request.query_string
        payload, sep, signature = raw.rpartition("&signature=")
        expected = hmac.new(self.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            return _json({"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}, 401)
        if not sep or not hmac.compare_digest(expected, signature.lower()):
            self.bad_signatures += 1
            return _json({"code": -1022, "msg": "Signature for this request is not valid."}, 400)
        params = dict(parse_qsl(payload))
        now = self.now_ms()
        ts, window = int(params.get("timestamp", 0)), float(params.get("recvWindow", 5000))
        if not (ts < now + 1000 and now - ts <= window):
            return _json({"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}, 400)
        return None

    def _endpoint(self, handler: _Handler, signed: bool) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """A REST endpoint: the request counted into the weight, a failure the
        test scripted answered first, the signature checked when ``signed``;
        then ``handler(request, headers)``."""

        async def endpoint(request: web.Request) -> web.StreamResponse:
            _, headers = self._count(request)
            early = self._injected(request, headers)
            if early is None and signed:
                early = self._check_signature(request)
            return early or await handler(request, headers)

        return endpoint

    # ---------------------------------------------------------------- REST: public

    async def _time(self, request: web.Request, headers: dict[str, str]) -> web.Response:
        return _json({"serverTime": self.now_ms()}, 200, headers)

    async def _exchange_info(self, request: web.Request, headers: dict[str, str]) -> web.Response:
        wanted = list(self.rules)
        if "symbol" in request.query:
            wanted = [request.query["symbol"]]
        elif "symbols" in request.query:
            wanted = json.loads(request.query["symbols"])
        for s in wanted:
            if s not in self.rules:
                return _json({"code": -1121, "msg": "Invalid symbol."}, 400, headers)
        symbols = [self._symbol_info(s) for s in wanted]
        body = {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
            ],
            "exchangeFilters": [],
            "symbols": symbols,
        }
        return _json(body, 200, headers)

    def _symbol_info(self, symbol: str) -> dict[str, Any]:
        r = self.rules[symbol]
        return {
            "symbol": symbol,
            "status": "TRADING",
            "baseAsset": r.base,
            "baseAssetPrecision": 8,
            "quoteAsset": r.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
            "isSpotTradingAllowed": True,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": r.tick, "maxPrice": "1000000.00000000", "tickSize": r.tick},
                {"filterType": "LOT_SIZE", "minQty": r.min_qty, "maxQty": "9000.00000000", "stepSize": r.step},
                {
                    "filterType": "NOTIONAL",
                    "minNotional": r.min_notional,
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
        }

    async def _klines(self, request: web.Request, headers: dict[str, str]) -> web.Response:
        q = request.query
        rows = self.klines.get(q.get("symbol", ""))
        if rows is None:
            return _json({"code": -1121, "msg": "Invalid symbol."}, 400, headers)
        if q.get("interval") != self.interval:
            return _json({"code": -1120, "msg": "Invalid interval."}, 400, headers)
        limit = min(1000, int(q.get("limit", 500)))
        start, end = q.get("startTime"), q.get("endTime")
        sel = [r for r in rows if (end is None or r[0] <= int(end))]
        if start is not None:
            sel = [r for r in sel if r[0] >= int(start)][:limit]
        else:
            sel = sel[-limit:]
        return _json(sel, 200, headers)

    async def _ticker(self, request: web.Request, headers: dict[str, str]) -> web.Response:
        symbol = request.query.get("symbol", "")
        if symbol not in self.last_price:
            return _json({"code": -1121, "msg": "Invalid symbol."}, 400, headers)
        return _json({"symbol": symbol, "price": f"{self.last_price[symbol]:.8f}"}, 200, headers)

    # ---------------------------------------------------------------- REST: account and orders

    async def _account(self, request: web.Request, headers: dict[str, str]) -> web.Response:
        balances = [{"asset": a, "free": f"{v:.8f}", "locked": "0.00000000"} for a, v in sorted(self.balances.items())]
        body = {
            "makerCommission": 10,
            "takerCommission": 10,
            "canTrade": True,
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
        }
        return _json(body, 200, headers)

    def _find(self, symbol: str, params: dict[str, str]) -> FakeOrder | None:
        if "orderId" in params:
            order = self.orders.get(int(params["orderId"]))
            return order if order and order.symbol == symbol else None
        cid = params.get("origClientOrderId")
        found = [o for o in self.orders.values() if o.client_id == cid and o.symbol == symbol]
        return found[-1] if found else None

    async def _new_order(self, request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
        arrived = time.perf_counter()
        p = dict(parse_qsl(request.query_string.rpartition("&signature=")[0]))
        symbol = p.get("symbol", "")
        if symbol not in self.rules:
            return _json({"code": -1121, "msg": "Invalid symbol."}, 400, headers)
        cid = p.get("newClientOrderId", f"auto{self._next_order}")
        self.order_arrivals.setdefault(cid, arrived)
        if any(o.client_id == cid and o.status in ("NEW", "PARTIALLY_FILLED") for o in self.orders.values()):
            return _json({"code": -2010, "msg": "Duplicate order sent."}, 400, headers)
        script = self.script.pop(0) if self.script else OrderScript()
        if script.mode == "reject":
            return _json({"code": -2010, "msg": script.reason}, 400, headers)
        with self._lock:
            self._next_order += 1
            order = FakeOrder(
                symbol,
                self._next_order,
                cid,
                p["side"],
                p["type"],
                Decimal(p["quantity"]),
                Decimal(p.get("price", "0")),
                p.get("timeInForce", "GTC"),
                self.now_ms(),
            )
            self.orders[order.order_id] = order
            self.placed.append(p)
        await self._report(order, "NEW")
        fills: list[dict[str, Any]] = []
        if script.mode in ("fill", "no_answer") and order.type == "MARKET":
            fills.append(await self._execute(order, order.qty, self.last_price.get(symbol, Decimal(100))))
        elif script.mode == "expire":
            order.status = "EXPIRED"
            await self._report(order, "EXPIRED")
        if script.mode == "no_answer":
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=200)
        body = {**order.view(), "transactTime": order.time, "fills": fills}
        await self.order_answer_held()
        return _json(body, 200, headers)

    async def _execute(self, order: FakeOrder, qty: Decimal, price: Decimal) -> dict[str, Any]:
        """Fill ``qty`` of ``order`` at ``price``: balances, a trade, an executionReport."""
        rules = self.rules[order.symbol]
        with self._lock:
            order.executed += qty
            order.quote += qty * price
            order.status = "FILLED" if order.executed >= order.qty else "PARTIALLY_FILLED"
            if order.side == "BUY":
                fee, fee_asset = (qty * self.commission_rate).quantize(Decimal("0.00000001")), rules.base
                self.balances[rules.base] += qty - fee
                self.balances[rules.quote] -= qty * price
            else:
                fee, fee_asset = (qty * price * self.commission_rate).quantize(Decimal("0.00000001")), rules.quote
                self.balances[rules.base] -= qty
                self.balances[rules.quote] += qty * price - fee
            self._next_trade += 1
            trade = {
                "symbol": order.symbol,
                "id": self._next_trade,
                "orderId": order.order_id,
                "orderListId": -1,
                "price": f"{price:.8f}",
                "qty": f"{qty:.8f}",
                "quoteQty": f"{qty * price:.8f}",
                "commission": f"{fee:.8f}",
                "commissionAsset": fee_asset,
                "time": self.now_ms(),
                "isBuyer": order.side == "BUY",
                "isMaker": False,
                "isBestMatch": True,
            }
            self.trades.append(trade)
        await self._report(order, "TRADE", trade)
        return {
            "price": trade["price"],
            "qty": trade["qty"],
            "commission": trade["commission"],
            "commissionAsset": fee_asset,
            "tradeId": trade["id"],
        }

    def place(self, symbol: str, client_id: str, side: str, qty: str, price: str) -> FakeOrder:
        """A limit order resting on the book that no engine sent: placed by
        hand or by another program on the account (reported to no one)."""
        with self._lock:
            self._next_order += 1
            order = FakeOrder(
                symbol, self._next_order, client_id, side, "LIMIT", Decimal(qty), Decimal(price), "GTC", self.now_ms()
            )
            self.orders[order.order_id] = order
        return order

    def fill_order(self, client_id: str, qty: str | Decimal | None = None, price: str | Decimal | None = None) -> None:
        """Fill (part of) a resting order, as the market would."""
        order = next(o for o in reversed(list(self.orders.values())) if o.client_id == client_id)
        amount = Decimal(qty) if qty is not None else order.qty - order.executed
        at = Decimal(price) if price is not None else (order.price or self.last_price[order.symbol])
        self.call(self._execute, order, amount, at)

    def report_again(self, client_id: str) -> None:
        """Send the execution report of each of an order's trades again, as a
        venue's user stream may after a hiccup of its own."""
        order = next(o for o in reversed(list(self.orders.values())) if o.client_id == client_id)
        for trade in [t for t in self.trades if t["orderId"] == order.order_id]:
            self.call(self._report, order, "TRADE", trade)

    async def _query_order(self, request: web.Request, headers: dict[str, str]) -> web.Response:
        p = dict(request.query)
        order = self._find(p.get("symbol", ""), p)
        if order is None:
            return _json({"code": -2013, "msg": "Order does not exist."}, 400, headers)
        return _json(order.view(), 200, headers)

    async def _cancel_order(self, request: web.Request, headers: dict[str, str]) -> web.Response:
        p = dict(request.query)
        order = self._find(p.get("symbol", ""), p)
        if order is None or order.status not in ("NEW", "PARTIALLY_FILLED"):
            return _json({"code": -2011, "msg": "Unknown order sent."}, 400, headers)
        order.status = "CANCELED"
        await self._report(order, "CANCELED")
        body = {**order.view(), "origClientOrderId": order.client_id, "clientOrderId": "cancel" + str(order.order_id)}
        return _json(body, 200, headers)

    async def _open_orders(self, request: web.Request, headers: dict[str, str]) -> web.Response:
        symbol = request.query.get("symbol")
        rows = [
            o.view()
            for o in self.orders.values()
            if o.status in ("NEW", "PARTIALLY_FILLED") and (symbol is None or o.symbol == symbol)
        ]
        return _json(rows, 200, headers)

    async def _my_trades(self, request: web.Request, headers: dict[str, str]) -> web.Response:
        symbol = request.query.get("symbol", "")
        order_id = request.query.get("orderId")
        rows = [t for t in self.trades if t["symbol"] == symbol and (order_id is None or str(t["orderId"]) == order_id)]
        return _json(rows, 200, headers)

    # ---------------------------------------------------------------- WebSocket API: user data

    async def _report(self, order: FakeOrder, execution: str, trade: dict[str, Any] | None = None) -> None:
        now = self.now_ms()
        ev = {
            "e": "executionReport",
            "E": now,
            "s": order.symbol,
            "c": order.client_id,
            "S": order.side,
            "o": order.type,
            "f": order.tif,
            "q": f"{order.qty:.8f}",
            "p": f"{order.price:.8f}",
            "P": "0.00000000",
            "F": "0.00000000",
            "g": -1,
            "C": "",
            "x": execution,
            "X": order.status,
            "r": "NONE",
            "i": order.order_id,
            "l": trade["qty"] if trade else "0.00000000",
            "z": f"{order.executed:.8f}",
            "L": trade["price"] if trade else "0.00000000",
            "n": trade["commission"] if trade else "0",
            "N": trade["commissionAsset"] if trade else None,
            "T": now,
            "t": trade["id"] if trade else -1,
            "I": now,
            "w": order.status == "NEW",
            "m": False,
            "M": False,
            "O": order.time,
            "Z": f"{order.quote:.8f}",
            "Y": "0.00000000",
            "Q": "0.00000000",
            "W": order.time,
            "V": "NONE",
        }
        if execution == "CANCELED":
            ev["c"], ev["C"] = "cancel" + str(order.order_id), order.client_id
        for user in list(self._users):
            for sub in user.subscriptions:
                try:
                    await user.ws.send_str(json.dumps({"subscriptionId": sub, "event": ev}))
                except (ConnectionError, RuntimeError):
                    pass

    async def _ws_api(self, request: web.Request) -> web.StreamResponse:
        if self.user_streams_down:
            return web.Response(status=503, text="")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        session = _UserSession(ws, request.transport)
        self._users.append(session)
        self.user_connections += 1
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                await ws.send_str(json.dumps(self._ws_request(session, msg.data)))
        finally:
            if session in self._users:
                self._users.remove(session)
        return ws

    def _ws_request(self, session: _UserSession, text: str) -> dict[str, Any]:
        try:
            req = json.loads(text)
            rid, method, params = req.get("id"), req["method"], req.get("params", {})
        except (ValueError, KeyError, AttributeError):
            return {"id": None, "status": 400, "error": {"code": -1135, "msg": "Invalid JSON."}}
        if method == "userDataStream.subscribe.signature":
            signature = params.get("signature", "")
            payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "signature")
            expected = hmac.new(self.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if params.get("apiKey") != self.api_key or not hmac.compare_digest(expected, signature.lower()):
                self.bad_signatures += 1
                return {
                    "id": rid,
                    "status": 400,
                    "error": {"code": -1022, "msg": "Signature for this request is not valid."},
                }
            self._next_sub += 1
            session.subscriptions[self._next_sub] = params["apiKey"]
            return {"id": rid, "status": 200, "result": {"subscriptionId": self._next_sub}}
        if method == "session.status":
            return {"id": rid, "status": 200, "result": {"userDataStream": bool(session.subscriptions)}}
        return {"id": rid, "status": 400, "error": {"code": -1020, "msg": "Unsupported operation."}}


# ------------------------------------------------------------ test helpers


class LiveReader:
    """Pulls a source's ``live()`` bars into ``bars`` on the running loop, and
    its connection states into ``states``."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.bars: list[Any] = []
        self.states: list[str] = []
        source.bind_connection(lambda state, detail: self.states.append(state.value))
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveReader:
        async def pump() -> None:
            async for bar in self.source.live():
                self.bars.append(bar)

        self.task = asyncio.create_task(pump())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        try:
            await self.task
        except (asyncio.CancelledError, Exception):
            pass
        await self.source.aclose()


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(body, separators=(",", ":")), status=status, headers=headers, content_type="application/json"
    )

"""The ``binance`` broker: signed REST orders, fills from the user data
stream, every update reported once.

* ``submit`` rounds the quantity down to the lot step and a limit price to
  the tick, checks the symbol's filters (refusing with the filter's name),
  and sends ``POST /api/v3/order`` signed, with the engine's client id as
  ``newClientOrderId``. A send that gets no answer is resolved by querying
  that id, never by sending again; a client id is sent at most once per run
  (Binance would take a used id again once its order is filled).
* Updates come from three places, whichever is first: the order response
  (``FULL``: ack and fills), ``executionReport`` events of the user data
  stream (WebSocket API, ``userDataStream.subscribe.signature``), and REST
  polling of the orders in flight while that stream is down. Each ack,
  each trade (by trade id) and each end of an order is reported once
  (``engine_core.live.VenueOrders``, which also delivers the updates).
* An order whose answer is lost and that cannot be found at once (the
  lookup answered 429, 418, -1021, 404, or "no such order" yet) is never
  "not placed": ``submit`` raises ``BrokerTimeout`` (the engine journals it
  ``unknown``), and the tracker goes on asking for it by client id with
  backoff, paced by the shared rate limiter (which a 429's or a 418's
  ``Retry-After`` pauses), until its fills, its end or its absence are known.
* Commission: a fee in the asset bought is ``Fill.fee_qty`` (the position
  is what the account holds); a fee in the quote asset is cost; a fee in
  BNB is cost at BNB's price in the quote asset.
* Positions: a spot account holds assets the engine never bought (the
  testnet gives every account some). What the account held of each base
  asset when the engine first connected is kept in its journal; the
  engine's position is the balance above it.

The broker runs its own asyncio loop on a thread ("binance-broker"); the
engine's threads call in and wait for the answer.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import websockets

from engine_core import (
    Broker,
    BrokerError,
    BrokerTimeout,
    ConfigError,
    EngineError,
    OpenOrder,
    Order,
    OrderState,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    TimeInForce,
    UpdateCallback,
    UpdateKind,
    error_text,
    key_hint,
    make_client_id,
    parse_client_id,
)
from engine_core.live import Backoff, LoopThread, VenueOrder, VenueOrders, cancel_all
from engine_plugin_binance import wire
from engine_plugin_binance.config import BinanceBrokerConfig
from engine_plugin_binance.filters import SymbolRules
from engine_plugin_binance.rest import NO_SUCH_ORDER, BinanceError, BinanceRest, Unanswered, sign

if TYPE_CHECKING:
    from engine_core import Journal

log = logging.getLogger("engine_plugin_binance")

T = TypeVar("T")

_TIF = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK"}
_TERMINAL = {"CANCELED", "REJECTED", "EXPIRED", "EXPIRED_IN_MATCH"}
_KIND_OF = {
    "CANCELED": UpdateKind.CANCEL,
    "REJECTED": UpdateKind.REJECT,
    "EXPIRED": UpdateKind.EXPIRE,
    "EXPIRED_IN_MATCH": UpdateKind.EXPIRE,
}


class BinanceBroker(Broker):
    """Binance spot orders (``[broker] type = "binance"``)."""

    Config = BinanceBrokerConfig
    ORDER_TIMEOUT = 10.0
    """Seconds to wait for an order's answer before resolving it by client id."""
    POLL_INTERVAL = 2.0
    """Seconds between REST polls of the orders in flight while the user data stream is down."""

    def __init__(self, config: BinanceBrokerConfig, *, on_update: UpdateCallback, symbols: Sequence[str] = ()) -> None:
        super().__init__(config, on_update=on_update, symbols=[s.upper() for s in symbols])
        self._rest = BinanceRest(
            config.rest(),
            api_key=config.api_key.get_secret_value(),
            api_secret=config.api_secret.get_secret_value(),
            recv_window=config.recv_window,
            timeout=self.ORDER_TIMEOUT,
        )
        self._rules: dict[str, SymbolRules] = {}
        self._ref_price: dict[str, Decimal] = {}
        self._asset_prices: dict[str, Decimal] = {}  # a third commission asset's price in the quote asset
        # an order not found after recvWindow (and a margin) never reached the matching engine
        self.orders = VenueOrders("binance", self._deliver, lost_after=config.recv_window / 1000 + self.ORDER_TIMEOUT)
        self._sent: set[str] = set()
        self._cash = Decimal(0)
        self._journal: Journal | None = None
        self._held_before: dict[str, Decimal] = {}  # base asset -> balance not the engine's
        self._io = LoopThread("binance-broker")
        self._tasks: list[asyncio.Task[None]] = []
        self.stream_up = threading.Event()
        self._stopping = False
        self._counts = {"stream_reconnects": 0, "foreign_reports": 0}

    @property
    def counts(self) -> dict[str, int]:
        """Stream reconnects, reports of orders not the engine's, polls and lookups."""
        return {**self._counts, **self.orders.counts}

    def _deliver(self, update: OrderUpdate) -> None:
        self.on_update(update)

    # ---------------------------------------------------------------- loop thread

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        return self._io.call("binance broker", coro, timeout)

    def connect(self) -> None:
        if self._io.running:
            return
        self._io.start()
        self.orders.start()
        try:
            self._run(self._connect(), 60)
        except EngineError:
            self.close()
            raise
        self.stream_up.wait(5)  # orders sent before it is up are still reported by their responses

    async def _connect(self) -> None:
        await self._rest.sync_time()
        await self._load_rules(self.symbols)
        account = await self._rest.request("GET", "/api/v3/account", weight=20, signed=True)
        quotes = {r.quote for r in self._rules.values()}
        if len(quotes) > 1:
            raise ConfigError(
                f"[broker] binance: the symbols are quoted in several assets ({', '.join(sorted(quotes))})"
            )
        quote = quotes.pop() if quotes else "USDT"
        self._cash = sum(
            (Decimal(b["free"]) for b in account.get("balances", []) if b["asset"] == quote), start=Decimal(0)
        )
        self._note_held_before(_holdings(account))
        for symbol in self.symbols:
            await self._refresh_price(symbol)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._user_stream()),
            loop.create_task(self.orders.watch(self._lookup, self.stream_up.is_set, self.POLL_INTERVAL)),
        ]

    async def _load_rules(self, symbols: Sequence[str]) -> None:
        if not symbols:
            return  # read per symbol on first use
        params = {"symbols": "[" + ",".join(f'"{s}"' for s in symbols) + "]"}
        try:
            info = await self._rest.request("GET", "/api/v3/exchangeInfo", params, weight=20)
        except BinanceError as err:
            raise ConfigError(f"[broker] binance: symbols {', '.join(symbols)}: {err}") from err
        for sym in info.get("symbols", []):
            self._rules[sym["symbol"]] = SymbolRules.from_exchange_info(sym)

    async def _refresh_price(self, symbol: str) -> None:
        try:
            body = await self._rest.request("GET", "/api/v3/ticker/price", {"symbol": symbol}, weight=2)
            self._ref_price[symbol] = Decimal(body["price"])
        except BinanceError as err:
            log.warning("binance: no reference price for %s: %s", symbol, err)

    def close(self) -> None:
        if not self._io.running:
            return
        self._stopping = True

        async def shutdown() -> None:
            await cancel_all(self._tasks)
            await self._rest.close()

        try:
            self._io.run(shutdown(), 10)
        finally:
            self._io.stop()
            self.orders.close()

    # ---------------------------------------------------------------- the contract

    def describe_account(self) -> str:
        money = "the testnet (test money)" if self.config.testnet else "REAL MONEY"
        key = key_hint(self.config.api_key.get_secret_value())
        return f"binance spot, {money}: {self.config.rest()}, api key {key}"

    def bind_journal(self, journal: Journal) -> None:
        self._journal = journal

    def _note_held_before(self, held: dict[str, Decimal]) -> None:
        """Keep, once per journal, what the account held of each symbol's base
        asset before the engine traded it: that part is not the engine's."""
        for symbol in self.symbols:
            rules = self._rules.get(symbol)
            if rules is None or rules.base in self._held_before:
                continue
            key = f"binance:held_before:{rules.base}"
            stored = self._journal.get(key) if self._journal is not None else None
            if stored is None:
                stored = str(held.get(rules.base, Decimal(0)))
                if self._journal is not None:
                    self._journal.put(key, stored)
            self._held_before[rules.base] = Decimal(stored)

    def starting_cash(self) -> Decimal:
        return self._cash

    def rules(self, symbol: str) -> SymbolRules:
        rules = self._rules.get(symbol)
        if rules is None:
            self._run(self._load_rules([symbol]), 30)
            rules = self._rules.get(symbol)
            if rules is None:
                raise BrokerError(f"{symbol}: not a Binance spot symbol")
            if symbol not in self.symbols:
                self.symbols.append(symbol)
        return rules

    def round_qty(self, symbol: str, qty: Decimal) -> Decimal:
        return self.rules(symbol).round_qty(qty)

    def submit(self, order: Order) -> OrderStatus | None:
        if order.client_id in self._sent:
            log.warning("binance: %s was sent already; not sending it again", order.client_id)
            return None
        rules = self.rules(order.symbol)
        market = order.type is OrderType.MARKET
        qty = rules.round_qty(order.qty, market)
        price = None
        params: dict[str, Any] = {"symbol": order.symbol, "side": wire.SIDE[order.side], "type": "MARKET"}
        if not market:
            if order.price is None:
                raise BrokerError(f"{order.symbol}: limit order {order.client_id} without a price")
            if order.tif not in _TIF:
                raise BrokerError(f"{order.symbol}: Binance spot has no time in force {order.tif.value!r}")
            price = rules.round_price(order.price)
            params.update(type="LIMIT", timeInForce=_TIF[order.tif])
        try:
            rules.check(qty, price, self._ref_price.get(order.symbol), market)
        except BrokerError as err:
            raise BrokerError(f"{err}; order {order.client_id} not sent") from None
        params["quantity"] = f"{qty.normalize():f}"
        if price is not None:
            params["price"] = f"{price.normalize():f}"
        params["newClientOrderId"] = order.client_id
        params["newOrderRespType"] = "FULL"
        self._sent.add(order.client_id)
        tracked = self.orders.track(order.client_id, order.symbol, order.side, qty)
        if self._rest.limiter.delay(1) > 0 and self._io.loop is not None:
            # the weight budget is spent: sent when it allows, the engine's thread goes on
            delay = self._rest.limiter.delay
            self._io.loop.call_soon_threadsafe(
                self.orders.send_later, tracked, lambda: delay(1), lambda: self._place(tracked, params)
            )
            return OrderStatus.INTENT
        try:
            self._run(self._place(tracked, params), self.ORDER_TIMEOUT * 3 + 10)
        except BrokerTimeout:
            self.orders.unresolved(tracked)  # on the wire: its fate is asked for until known
            raise
        return None

    def stop_sending(self, timeout: float) -> None:
        if not self._io.running or self._io.on_thread():
            return
        try:
            self._io.run(self.orders.stop_sending(timeout), timeout + 10)
        except Exception as err:  # noqa: BLE001 - stopping anyway; what is not known stays open in the journal
            log.warning("binance: stopping the order sending: %s", error_text(err))

    async def _place(self, tracked: VenueOrder, params: dict[str, Any]) -> None:
        with self.orders.on_wire(tracked):
            await self._send(tracked, params)

    async def _send(self, tracked: VenueOrder, params: dict[str, Any]) -> None:
        cid, symbol = tracked.client_id, tracked.symbol
        try:
            resp = await self._rest.request("POST", "/api/v3/order", params, weight=1, signed=True)
        except Unanswered as err:
            log.warning("binance: order %s unanswered (%s); asking for it by client id", cid, err)
            if await self._resolve(tracked):
                return
            raise BrokerTimeout(
                f"{symbol}: order {cid} sent without answer ({err}) and not found yet: its state is unknown; "
                "asking Binance for it by client id"
            ) from err
        except BinanceError as err:  # Binance did not execute a request it answered with an error
            self.orders.forget(cid)
            raise BrokerError(f"{symbol}: Binance refused order {cid}: {err}") from err
        await self._apply(resp, resp.get("fills", []))

    async def _resolve(self, tracked: VenueOrder) -> bool:
        """Look an order up by client id, a few times within ORDER_TIMEOUT (it
        may still be on its way; a lookup may be refused); True once found."""
        deadline = time.monotonic() + self.ORDER_TIMEOUT
        for delay in (0.0, 0.5, 1.0, 2.0):
            await asyncio.sleep(delay)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                found = await asyncio.wait_for(self.orders.resolve(tracked, self._lookup), left)
            except asyncio.TimeoutError:
                break
            if found:
                return True
        return False

    async def _lookup(self, tracked: VenueOrder) -> bool:
        """Ask Binance for an order by client id and report what it shows;
        False when it has no such order."""
        found = await self._query(tracked.symbol, tracked.client_id)
        if found is None:
            return False
        await self._apply(*found)
        return True

    async def _query(self, symbol: str, cid: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        try:
            order = await self._rest.request(
                "GET", "/api/v3/order", {"symbol": symbol, "origClientOrderId": cid}, weight=4, signed=True
            )
        except BinanceError as err:
            if err.code == NO_SUCH_ORDER:
                return None
            raise
        trades: list[dict[str, Any]] = []
        if Decimal(order.get("executedQty") or 0) > 0:
            trades = await self._rest.request(
                "GET", "/api/v3/myTrades", {"symbol": symbol, "orderId": order["orderId"]}, weight=5, signed=True
            )
        return order, trades

    def cancel(self, client_id: str) -> None:
        if self._io.running and self._run(self.orders.cancel_held(client_id), 10):
            return  # held back for the rate limit: cancelled here, never sent
        self._run(self._cancel(client_id), self.ORDER_TIMEOUT * 2 + 10)

    async def _cancel(self, cid: str) -> None:
        symbol = self._symbol_of(cid)
        try:
            resp = await self._rest.request(
                "DELETE", "/api/v3/order", {"symbol": symbol, "origClientOrderId": cid}, weight=1, signed=True
            )
        except BinanceError as err:
            # already filled, cancelled or unknown: report whatever it came to
            log.info("binance: cancel of %s refused (%s); asking for its state", cid, err)
            tracked = self.orders.get(cid)
            if tracked is not None:
                await self._resolve(tracked)
            return
        resp = {**resp, "clientOrderId": resp.get("origClientOrderId", cid)}
        await self._apply(resp, [])

    def order_status(self, client_id: str) -> OrderState | None:
        return self._run(self._status(client_id), self.ORDER_TIMEOUT * 2 + 10)

    async def _status(self, cid: str) -> OrderState | None:
        symbol = self._symbol_of(cid)
        found = await self._query(symbol, cid)
        if found is None:
            return None
        order, trades = found
        rules = self._rules[symbol]
        fills = wire.trade_fills(trades, cid, symbol, rules.base, rules.quote, self._value_now)
        tracked = self.orders.track(cid, symbol, wire_side(order), Decimal(order["origQty"]))
        done = order["status"] in _TERMINAL or order["status"] == "FILLED"
        # the engine books these from the state: never reported again
        self.orders.known(tracked, venue_id=str(order["orderId"]), fills=fills, done=done, status=order["status"])
        return wire.order_state(order, fills)

    def open_orders(self) -> list[OpenOrder]:
        return self._run(self._open_orders(), 60)

    async def _open_orders(self) -> list[OpenOrder]:
        """Every open order of the engine's symbols, whoever placed it: the
        engine tells its own from the others by their client ids."""
        rows: list[dict[str, Any]] = []
        if self.symbols and len(self.symbols) <= 10:
            for s in self.symbols:
                rows += await self._rest.request("GET", "/api/v3/openOrders", {"symbol": s}, weight=6, signed=True)
        else:
            rows = await self._rest.request("GET", "/api/v3/openOrders", weight=80, signed=True)
        out = []
        for r in rows:
            if self.symbols and r["symbol"] not in self.symbols:
                continue
            price, stop = Decimal(r.get("price") or 0), Decimal(r.get("stopPrice") or 0)
            order = Order(
                r["clientOrderId"],
                r["symbol"],
                wire_side(r),
                Decimal(r["origQty"]),
                int(r.get("time", 0)) * wire.MS,
                type=OrderType.LIMIT if price else OrderType.MARKET,
                price=price or None,
                stop_price=stop or None,
            )
            out.append(OpenOrder(order, str(r["orderId"]), Decimal(r.get("executedQty") or 0)))
        return out

    def positions(self) -> dict[str, Decimal]:
        """The engine's position per symbol: the base asset's balance above
        what the account held before the engine traded it."""
        account = self._run(self._rest.request("GET", "/api/v3/account", weight=20, signed=True), 60)
        held = _holdings(account)
        for symbol in self.symbols:
            self.rules(symbol)
        self._note_held_before(held)
        out = {}
        for symbol in self.symbols:
            base = self.rules(symbol).base
            out[symbol] = held.get(base, Decimal(0)) - self._held_before[base]
        return out

    # ---------------------------------------------------------------- reporting, once

    async def _apply(self, order: dict[str, Any], trades: list[dict[str, Any]]) -> None:
        """Report what an order payload (response or query) shows that was not reported yet."""
        cid, symbol = order["clientOrderId"], order["symbol"]
        side = wire_side(order)
        tracked = self.orders.track(cid, symbol, side, Decimal(order["origQty"]))
        ts = int(order.get("transactTime") or order.get("updateTime") or time.time() * 1000) * wire.MS
        self.orders.ack(tracked, str(order.get("orderId", "")), ts)
        rules = self._rules[symbol]
        for t in trades:
            await self._price_commission(t.get("commissionAsset"), rules)
            rows = [{**t, "side": wire.SIDE[side], "time": t.get("time", ts // wire.MS)}]
            for fill in wire.trade_fills(rows, cid, symbol, rules.base, rules.quote, self._value_now):
                if self.orders.fill(tracked, fill):
                    self._ref_price[symbol] = fill.price
        status = order.get("status", "")
        if status in _TERMINAL:
            self.orders.end(tracked, _KIND_OF[status], ts)

    async def _on_report(self, ev: dict[str, Any]) -> None:
        cid = ev["C"] if ev.get("x") == "CANCELED" and ev.get("C") else ev["c"]
        symbol = ev["s"]
        if self.orders.get(cid) is None and not self._ours(cid, symbol):
            self._counts["foreign_reports"] += 1
            return
        tracked = self.orders.track(cid, symbol, Side.BUY if ev["S"] == "BUY" else Side.SELL, Decimal(ev["q"]))
        rules = self._rules.get(symbol) or self.rules(symbol)
        await self._price_commission(ev.get("N"), rules)
        for update in wire.report_updates(ev, rules.base, rules.quote, self._value_now):
            if update.kind is UpdateKind.ACK:
                self.orders.ack(tracked, update.venue_id, update.ts)
            elif update.fill is not None:
                if self.orders.fill(tracked, update.fill):
                    self._ref_price[symbol] = update.fill.price
            else:
                self.orders.end(tracked, update.kind, update.ts, update.reason)

    # ---------------------------------------------------------------- commission in a third asset

    async def _price_commission(self, asset: str | None, rules: SymbolRules) -> None:
        if not asset or asset in (rules.base, rules.quote):
            return
        prices = self._asset_prices
        if asset in prices:
            return
        try:
            body = await self._rest.request("GET", "/api/v3/ticker/price", {"symbol": asset + rules.quote}, weight=2)
            prices[asset] = Decimal(body["price"])
        except BinanceError as err:
            log.warning("binance: commission in %s booked at 0: no %s%s price (%s)", asset, asset, rules.quote, err)
            prices[asset] = Decimal(0)

    def _value_now(self, asset: str, amount: Decimal) -> Decimal:
        return amount * self._asset_prices.get(asset, Decimal(0))

    # ---------------------------------------------------------------- client ids

    def _symbol_of(self, cid: str) -> str:
        tracked = self.orders.get(cid)
        if tracked is not None:
            return tracked.symbol
        for symbol in self.symbols:
            if self._ours(cid, symbol):
                return symbol
        raise BrokerError(f"binance: client id {cid!r} names none of the symbols {', '.join(self.symbols)}")

    @staticmethod
    def _ours(cid: str, symbol: str) -> bool:
        """Whether ``cid`` is an engine client id for ``symbol`` (orders placed
        by hand on the same account are left alone)."""
        try:
            head, _ = parse_client_id(cid)
        except ValueError:
            return False
        part = make_client_id("p", symbol, 0)[2:-2]
        return head.endswith("-" + part)

    # ---------------------------------------------------------------- user data stream

    async def _user_stream(self) -> None:
        backoff = Backoff(0.5, 30.0)
        url = self.config.ws_api()
        key = self.config.api_key.get_secret_value()
        secret = self.config.api_secret.get_secret_value()
        while not self._stopping:
            try:
                async with websockets.connect(url, ping_interval=None, open_timeout=10, close_timeout=1) as ws:
                    params: dict[str, Any] = {"apiKey": key, "timestamp": self._rest.now_ms()}
                    payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
                    params["signature"] = sign(secret, payload)
                    request = {"id": "subscribe", "method": "userDataStream.subscribe.signature", "params": params}
                    await ws.send(wire.encode(request).decode())
                    async for frame in ws:
                        msg = wire.decode(frame)
                        event = msg.get("event") if isinstance(msg, dict) else None
                        if event is not None:
                            kind = event.get("e")
                            if kind == "executionReport":
                                await self._on_report(event)
                            elif kind in ("serverShutdown", "eventStreamTerminated"):
                                break
                        elif isinstance(msg, dict) and msg.get("id") == "subscribe":
                            if msg.get("status") != 200:
                                log.error("binance: user data stream refused: %s", msg.get("error"))
                                break
                            backoff.reset()
                            self.stream_up.set()
                            await self.orders.poll(self._lookup)  # what happened while it was down
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - any failure: reconnect, the polls cover the gap
                log.warning("binance: user data stream dropped: %s", error_text(err))
            self.stream_up.clear()
            if self._stopping:
                return
            self._counts["stream_reconnects"] += 1
            await asyncio.sleep(backoff.next())


def wire_side(order: dict[str, Any]) -> Side:
    return Side.BUY if order["side"] == "BUY" else Side.SELL


def _holdings(account: dict[str, Any]) -> dict[str, Decimal]:
    """Each asset's balance (free and locked) from ``GET /api/v3/account``."""
    return {b["asset"]: Decimal(b["free"]) + Decimal(b["locked"]) for b in account.get("balances", [])}

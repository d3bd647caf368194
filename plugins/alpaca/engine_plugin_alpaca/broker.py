"""The ``alpaca`` broker: orders through the trading API v2, updates from its
``trade_updates`` stream (REST polling while the stream is down).

Every order goes out with the engine's deterministic ``client_order_id``: a
retried send can never place a second order (Alpaca answers 422
``client_order_id must be unique``, and the broker then looks the order up by
that id). An entry carrying ``stop_price`` and ``take_profit_price`` goes as a
``bracket``, so the position is protected at the venue even while the engine
is down; a fill of one of its legs reaches the engine as an update with
``leg`` set, and an exit the engine sends first cancels the legs before it
goes.

Fills are worked out from the order's cumulative ``filled_qty`` and
``filled_avg_price``, so the stream, a poll and an order looked up after a
timeout all give the same fills, each once. Refusals (insufficient buying
power, a fractional quantity of an asset that is not fractionable, a short
sale of an asset that is not shortable, checked before sending) are
``BrokerError`` with one line naming the order and why.

What has been reported of each order and leg is kept by the shared
``engine_core.live.VenueOrders``, which delivers the updates on a thread of
its own. ``order_status`` (after a timeout, and after a restart) registers
the order and its legs there, and returns what its legs filled, so that a
leg that filled while the engine was down is booked, and one that fills
later is reported like any other.

The broker runs its own asyncio loop on a thread; the engine's calls
(``submit`` from a symbol's worker) wait on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Sequence
from decimal import ROUND_DOWN, Decimal
from typing import Any, TypeVar

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from engine_core import (
    Broker,
    BrokerError,
    BrokerTimeout,
    Fill,
    OpenOrder,
    Order,
    OrderState,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    UpdateCallback,
    UpdateKind,
    error_text,
    key_hint,
)
from engine_core.live import Backoff, LoopThread, VenueOrder, VenueOrders, cancel_all
from engine_plugin_alpaca import wire
from engine_plugin_alpaca.config import AlpacaBrokerConfig
from engine_plugin_alpaca.rest import AlpacaHttpError, AlpacaRest, AlpacaUnreachable

log = logging.getLogger("engine_plugin_alpaca.broker")

T = TypeVar("T")
QTY_STEP = Decimal("0.000000001")  # Alpaca takes quantities to 9 decimals
SYMBOLS_PER_QUERY = 50  # open orders asked for by symbol up to this many (a short URL), else all, then filtered
_TERMINAL = {"canceled": UpdateKind.CANCEL, "expired": UpdateKind.EXPIRE, "rejected": UpdateKind.REJECT}
_LEG_DONE = ("filled", "canceled", "expired", "rejected", "replaced")


def _open_order(vo: wire.VenueOrder, parent: str) -> OpenOrder:
    """An open order as ``Broker.open_orders`` lists it."""
    kind = OrderType.LIMIT if vo.limit_price is not None else OrderType.MARKET
    terms = (vo.client_order_id, vo.symbol, vo.side, vo.qty, vo.updated_at)
    order = Order(*terms, type=kind, price=vo.limit_price, stop_price=vo.stop_price)
    return OpenOrder(order, vo.id, vo.filled_qty, parent)


def _leg_name(leg: wire.VenueOrder) -> str:
    return "stop_loss" if leg.type in ("stop", "stop_limit") else "take_profit"


class AlpacaBroker(Broker):
    Config = AlpacaBrokerConfig
    supports_brackets = True

    def __init__(self, config: AlpacaBrokerConfig, *, on_update: UpdateCallback, symbols: Sequence[str] = ()) -> None:
        super().__init__(config, on_update=on_update, symbols=symbols)
        self._io = LoopThread("alpaca-broker")
        self._rest: AlpacaRest | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.orders = VenueOrders("alpaca", self._deliver, lost_after=self.config.timeout * 2)
        self._sent: dict[str, Order] = {}  # by client id: each is sent once
        self._assets: dict[str, wire.Asset] = {}
        self._positions: dict[str, Decimal] = {}
        self._updated: dict[str, int] = {}  # venue order id -> the newest updated_at applied
        self.account: wire.Account | None = None
        self.stream_up = False
        self._counts: dict[str, int] = {"stream_events": 0, "duplicates_resolved": 0}

    @property
    def counts(self) -> dict[str, int]:
        """Stream events, duplicate client ids resolved, polls and lookups."""
        return {**self._counts, **self.orders.counts}

    def _deliver(self, update: OrderUpdate) -> None:
        self.on_update(update)

    # ------------------------------------------------------------ plumbing

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self._io.call("alpaca broker", coro, timeout if timeout is not None else self.config.timeout * 4)

    def _keys(self) -> tuple[str, str]:
        return self.config.key_id.get_secret_value(), self.config.secret_key.get_secret_value()

    def _http(self) -> AlpacaRest:
        assert self._rest is not None
        return self._rest

    async def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            return await self._http().get(path, params)
        except AlpacaHttpError as err:
            if err.error.status in (401, 403) and path in ("/v2/account", "/v2/positions"):
                raise BrokerError(
                    f"alpaca broker: {self.config.base_url}{path}: {err.error}: check key_id and secret_key "
                    f"(paper = {str(self.config.paper).lower()}: paper and live keys differ)"
                ) from err
            raise

    # ---------------------------------------------------------- lifecycle

    def describe_account(self) -> str:
        money = "the paper account (test money)" if self.config.paper else "REAL MONEY"
        key = key_hint(self.config.key_id.get_secret_value())
        return f"alpaca, {money}: {self.config.base_url}, key id {key}"

    def connect(self) -> None:
        """Start the broker's loop, read the account and positions, open the
        ``trade_updates`` stream and the polling fallback."""
        if self._io.running:
            return
        self._io.start()
        self.orders.start()
        try:
            self._call(self._start())
        except BaseException:
            self.close()
            raise

    async def _start(self) -> None:
        self._rest = AlpacaRest(self.config.base_url, *self._keys(), timeout=self.config.timeout)
        try:
            self.account = wire.account(await self._get("/v2/account"))
            self._positions = wire.positions(await self._get("/v2/positions"))
        except (AlpacaHttpError, AlpacaUnreachable, wire.WireError) as err:
            raise BrokerError(f"alpaca broker: {self.config.base_url}: cannot read the account: {err}") from err
        if self.account.trading_blocked:
            raise BrokerError(f"alpaca broker: the account is blocked from trading (status {self.account.status})")
        watch = self.orders.watch(self._lookup_tracked, lambda: self.stream_up, self.config.poll_interval)
        self._tasks = [asyncio.ensure_future(self._stream_loop()), asyncio.ensure_future(watch)]

    def close(self) -> None:
        if not self._io.running:
            return

        async def stop() -> None:
            await cancel_all(self._tasks)
            if self._rest is not None:
                await self._rest.close()

        try:
            self._io.run(stop(), 15)
        except Exception as err:  # closing anyway
            log.warning("alpaca broker: close: %s", err)
        self._io.stop()
        self.orders.close()  # after every update made so far

    def starting_cash(self) -> Decimal:
        if self.account is None:
            raise BrokerError("alpaca broker: starting_cash() before connect()")
        return self.account.cash

    # --------------------------------------------------------- assets

    async def _asset(self, symbol: str) -> wire.Asset:
        asset = self._assets.get(symbol)
        if asset is None:
            try:
                asset = wire.asset(await self._http().get(f"/v2/assets/{symbol}"))
            except AlpacaHttpError as err:
                if err.error.status == 404:
                    raise BrokerError(f"alpaca broker: {symbol} is not an asset Alpaca trades") from err
                raise BrokerError(f"alpaca broker: asset {symbol}: {err.error}") from err
            except (AlpacaUnreachable, wire.WireError) as err:
                raise BrokerError(f"alpaca broker: asset {symbol}: {err}") from err
            self._assets[symbol] = asset
        return asset

    def round_qty(self, symbol: str, qty: Decimal) -> Decimal:
        """Whole shares for an asset that is not fractionable, else 9 decimals (down)."""
        asset = self._assets.get(symbol) or self._call(self._asset(symbol))
        step = Decimal(1) if not asset.fractionable else QTY_STEP
        return qty.quantize(step, rounding=ROUND_DOWN) if qty > 0 else Decimal(0)

    # --------------------------------------------------------- orders

    def submit(self, order: Order) -> OrderStatus | None:
        limiter = self._rest.limiter if self._rest is not None else None
        if (
            limiter is not None
            and limiter.delay() > 0
            and self._io.loop is not None
            and order.client_id not in self._sent
        ):
            # the rate limit would make the send wait: sent when it allows, the engine's thread goes on
            tracked = self.orders.track(order.client_id, order.symbol, order.side, order.qty)
            self._io.loop.call_soon_threadsafe(
                self.orders.send_later, tracked, limiter.delay, lambda: self._submit(order)
            )
            return OrderStatus.INTENT
        self._call(self._submit(order))
        return None

    def stop_sending(self, timeout: float) -> None:
        if not self._io.running or self._io.on_thread():
            return
        try:
            self._io.run(self.orders.stop_sending(timeout), timeout + 10)
        except Exception as err:  # stopping anyway; what is not known stays open in the journal
            log.warning("alpaca broker: stopping the order sending: %s", error_text(err))

    def _describe(self, order: Order) -> str:
        kind = "bracket " if order.stop_price is not None or order.take_profit_price is not None else ""
        return f"{order.client_id} ({order.side.value} {order.qty} {order.symbol} {kind}{order.type.value})"

    async def _check(self, order: Order) -> None:
        """Refuse before sending what Alpaca would refuse for a reason of the asset."""
        asset = await self._asset(order.symbol)
        what = self._describe(order)
        if not asset.tradable:
            raise BrokerError(f"alpaca broker: {what}: {order.symbol} is not tradable at Alpaca")
        whole = order.qty == order.qty.to_integral_value()
        if not whole and not asset.fractionable:
            raise BrokerError(
                f"alpaca broker: {what}: {order.symbol} is not fractionable: the quantity must be whole shares"
            )
        if not whole and (order.stop_price is not None or order.take_profit_price is not None):
            raise BrokerError(f"alpaca broker: {what}: a bracket order takes whole shares only")
        if order.side is Side.SELL:
            held = self._positions.get(order.symbol, Decimal(0))
            if order.qty > held and not (asset.shortable and (self.account is None or self.account.shorting_enabled)):
                raise BrokerError(
                    f"alpaca broker: {what}: would open a short (holding {held}) and {order.symbol} is not shortable"
                )

    async def _submit(self, order: Order) -> None:
        cid = order.client_id
        if cid in self._sent:
            return  # sent before: the same client id is never sent twice
        await self._check(order)
        left = await self._exits_held_by_legs(order)
        if left is not None:
            closed = "already closed" if not left else f"partly closed ({left} left)"
            raise BrokerError(f"alpaca broker: {self._describe(order)}: the position was {closed} by its bracket leg")
        body = wire.order_request(order, extended_hours=self.config.extended_hours)
        self._sent[cid] = order
        tracked = self.orders.track(cid, order.symbol, order.side, order.qty)
        with self.orders.on_wire(tracked):
            await self._post(order, tracked, body)

    async def _post(self, order: Order, tracked: VenueOrder, body: dict[str, Any]) -> None:
        cid = order.client_id
        try:
            answer = await self._http().request("POST", "/v2/orders", body=body)
        except AlpacaHttpError as err:
            if wire.is_duplicate_client_id(err.error):
                self._counts["duplicates_resolved"] += 1
                if await self.orders.resolve(tracked, self._lookup_tracked):
                    return
                self.orders.unresolved(tracked)
                raise BrokerTimeout(
                    f"alpaca broker: {self._describe(order)}: {err.error}, and it could not be looked up yet"
                ) from err
            self.orders.forget(cid)
            del self._sent[cid]
            raise BrokerError(
                f"alpaca broker: {self._describe(order)} refused: {err.error.message or err.error}"
            ) from err
        except AlpacaUnreachable as err:
            if await self.orders.resolve(tracked, self._lookup_tracked):
                return
            self.orders.unresolved(tracked)  # asked for until known
            raise BrokerTimeout(
                f"alpaca broker: {self._describe(order)}: no answer ({err}); its state is unknown"
            ) from err
        try:
            self._apply(wire.venue_order(answer), "")
        except wire.WireError as err:
            log.warning("alpaca broker: answer to %s: %s", cid, err)

    async def _lookup(self, cid: str) -> wire.VenueOrder | None:
        try:
            body = await self._http().get("/v2/orders:by_client_order_id", {"client_order_id": cid, "nested": "true"})
        except AlpacaHttpError as err:
            if err.error.status == 404:
                return None
            raise
        return wire.venue_order(body)

    async def _lookup_tracked(self, tracked: VenueOrder) -> bool:
        """Ask for an order (and its legs) by client id and report what it
        shows; False when Alpaca has no such order."""
        try:
            found = await self._lookup(tracked.client_id)
        except wire.WireError as err:
            raise BrokerError(f"alpaca broker: order {tracked.client_id}: {err}") from err
        if found is None:
            return False
        self._apply(found, "")
        return True

    async def _exits_held_by_legs(self, order: Order) -> Decimal | None:
        """Before an exit, cancel the symbol's working bracket legs (they hold its
        shares). When a leg has filled and what is left of the position is less
        than the exit (so that it would open a position nobody asked for): what
        is left; None when the exit may go.

        The brackets looked at are the symbol's on the other side with a leg
        still working, and the latest order on that side (the position the
        engine holds, if it is a bracket): an earlier bracket a leg closed is
        history the engine has acted on since. An order that carries its own
        protective prices is an entry, which no leg closes."""
        if order.stop_price is not None or order.take_profit_price is not None:
            return None
        other = [t for t in self.orders if t.symbol == order.symbol and t.side is not order.side]
        latest = other[-1] if other else None
        looked: list[VenueOrder] = []
        for tracked in other:
            legs = self.orders.legs(tracked)
            if tracked is not latest and all(leg.status in _LEG_DONE for leg in legs):
                continue
            looked += legs
            for leg in legs:
                if leg.status not in _LEG_DONE:
                    await self._cancel_leg(tracked, leg)
        if not any(leg.filled > 0 for leg in looked):  # (in part, too: a cancel may meet a partial fill)
            return None
        held = self._positions.get(order.symbol, Decimal(0))
        left = held if order.side is Side.SELL else -held  # what the exit would close
        return None if left >= order.qty else max(left, Decimal(0))

    async def _cancel_leg(self, tracked: VenueOrder, leg: VenueOrder) -> None:
        """Cancel a working leg and wait until the venue says it is done
        (cancelled, or filled first: its fill applied)."""
        try:
            await self._http().request("DELETE", f"/v2/orders/{leg.venue_id}")
        except AlpacaHttpError as err:
            if err.error.status not in (404, 422):
                raise BrokerError(
                    f"alpaca broker: cancelling the {leg.leg} leg of {tracked.client_id}: {err.error}"
                ) from err
        deadline = time.monotonic() + self.config.timeout
        while True:
            now = wire.venue_order(await self._http().get(f"/v2/orders/{leg.venue_id}"))
            parent = await self._lookup(tracked.client_id)
            if parent is not None:
                self._apply(parent, "")
            if not now.is_open or now.status == "held":
                leg.status = now.status
                return
            if time.monotonic() > deadline:
                raise BrokerError(f"alpaca broker: the {leg.leg} leg of {tracked.client_id} did not cancel in time")
            await asyncio.sleep(0.05)

    def cancel(self, client_id: str) -> None:
        if self._io.running and self._call(self.orders.cancel_held(client_id)):
            return  # held back for the rate limit: cancelled here, never sent
        self._call(self._cancel(client_id))

    async def _cancel(self, cid: str) -> None:
        tracked = self.orders.get(cid)
        venue_id = tracked.venue_id if tracked is not None else ""
        if not venue_id:
            found = await self._lookup(cid)
            if found is None:
                return
            venue_id = found.id
        try:
            await self._http().request("DELETE", f"/v2/orders/{venue_id}")
        except AlpacaHttpError as err:
            if err.error.status not in (404, 422):  # 422: no longer cancelable (filled first)
                raise BrokerError(f"alpaca broker: cancel {cid}: {err.error}") from err
        except AlpacaUnreachable as err:
            raise BrokerTimeout(f"alpaca broker: cancel {cid}: {err}") from err

    def order_status(self, client_id: str) -> OrderState | None:
        return self._call(self._order_status(client_id))

    async def _order_status(self, cid: str) -> OrderState | None:
        try:
            found = await self._lookup(cid)
        except (AlpacaHttpError, AlpacaUnreachable, wire.WireError) as err:
            raise BrokerError(f"alpaca broker: order {cid}: {err}") from err
        if found is None:
            return None
        fills: tuple[Fill, ...] = ()
        if found.filled_qty > 0 and found.filled_avg_price is not None:
            fills = (self._cumulative_fill(cid, found),)
        # registered with its legs: what they do from now on is reported; what
        # they filled so far goes with the state, for the engine to book
        tracked = self.orders.track(cid, found.symbol, found.side, found.qty)
        self.orders.known(tracked, venue_id=found.id, fills=fills, done=not found.is_open, status=found.status)
        leg_fills: list[tuple[str, Fill]] = []
        for leg in found.legs:
            name = _leg_name(leg)
            tracked_leg = self.orders.track_leg(tracked, leg.id, name, leg.side, leg.qty)
            filled = (self._cumulative_fill(cid, leg),) if leg.filled_qty > 0 and leg.filled_avg_price else ()
            self.orders.known(tracked_leg, venue_id=leg.id, fills=filled, done=not leg.is_open, status=leg.status)
            leg_fills += [(name, f) for f in filled]
        return OrderState(found.engine_status, found.filled_qty, fills, found.id, tuple(leg_fills))

    @staticmethod
    def _cumulative_fill(cid: str, vo: wire.VenueOrder) -> Fill:
        """What an order (or leg) has filled so far, as one fill (keyed as the stream's last one)."""
        assert vo.filled_avg_price is not None
        price = vo.filled_avg_price
        return Fill(
            cid, vo.symbol, vo.side, vo.filled_qty, price, Decimal(0), vo.updated_at, f"{vo.id}:{vo.filled_qty}"
        )

    def open_orders(self) -> list[OpenOrder]:
        return self._call(self._open_orders())

    async def _open_orders(self) -> list[OpenOrder]:
        """Every open order of the engine's symbols, whoever placed it (the
        engine tells its own from the others by their client ids), and the
        working legs of a bracket whose entry filled, named with their entry;
        a leg held for its entry goes with the entry."""
        query = {"status": "open", "nested": "true", "limit": "500"}
        if self.symbols and len(self.symbols) <= SYMBOLS_PER_QUERY:
            query["symbols"] = ",".join(self.symbols)
        try:
            rows = wire.venue_orders(await self._http().get("/v2/orders", query))
        except (AlpacaHttpError, AlpacaUnreachable, wire.WireError) as err:
            raise BrokerError(f"alpaca broker: open orders: {err}") from err
        out = []
        for o in rows:
            if self.symbols and o.symbol not in self.symbols:
                continue
            found = [(o, "")] + [(leg, o.client_order_id) for leg in o.legs]
            out += [_open_order(vo, parent) for vo, parent in found if vo.is_open and vo.status != "held"]
        return out

    def positions(self) -> dict[str, Decimal]:
        return self._call(self._read_positions())

    async def _read_positions(self) -> dict[str, Decimal]:
        try:
            self._positions = wire.positions(await self._get("/v2/positions"))
        except (AlpacaHttpError, AlpacaUnreachable, wire.WireError) as err:
            raise BrokerError(f"alpaca broker: positions: {err}") from err
        return dict(self._positions)

    # ------------------------------------------------------ updates

    def _apply(self, vo: wire.VenueOrder, event: str, ts: int = 0) -> None:
        """Turn what the venue says of an order (a stream event, a poll, an
        answer) into the updates not yet emitted."""
        ts = ts or vo.updated_at or time.time_ns()
        leg = self.orders.leg(vo.id)
        if leg is not None:
            if not self._older(vo):
                self._apply_leg(leg, vo, ts)
            return
        tracked = self.orders.get(vo.client_order_id)
        if tracked is None or self._older(vo):
            return  # not an order of this engine, or an older view of it than one applied
        for sub in vo.legs:
            self._apply_leg(self.orders.track_leg(tracked, sub.id, _leg_name(sub), sub.side, sub.qty), sub, ts)
        tracked.status = vo.status
        if vo.status not in ("pending_new", "rejected"):
            self.orders.ack(tracked, vo.id, ts)
        elif not tracked.venue_id:
            tracked.venue_id = vo.id
        self._fill(tracked, vo, ts)
        if vo.status == "filled" and tracked.filled >= tracked.qty:
            tracked.done = True
        elif vo.status in _TERMINAL:
            reason = f"alpaca: order {vo.status}" + (f" ({event})" if event and event != vo.status else "")
            self.orders.end(tracked, _TERMINAL[vo.status], ts, reason)

    def _older(self, vo: wire.VenueOrder) -> bool:
        """Whether ``vo`` is an older view of the order than one applied
        already (a POST's answer, ``new``, that came after trade_updates told
        the fill): it may not set the order's status back. Its quantities are
        cumulative, so skipping it loses no fill."""
        if not vo.updated_at:
            return False
        if vo.updated_at < self._updated.get(vo.id, 0):
            return True
        self._updated[vo.id] = vo.updated_at
        return False

    def _fill(self, tracked: VenueOrder, vo: wire.VenueOrder, ts: int) -> None:
        fill = self.orders.fill_to(tracked, vo.filled_qty, vo.filled_avg_price, ts)
        if fill is not None:
            sign = 1 if fill.side is Side.BUY else -1
            self._positions[fill.symbol] = self._positions.get(fill.symbol, Decimal(0)) + sign * fill.qty

    def _apply_leg(self, leg: VenueOrder, vo: wire.VenueOrder, ts: int) -> None:
        before = leg.status
        leg.status = vo.status
        self._fill(leg, vo, ts)
        if vo.status in _LEG_DONE:
            leg.done = True
        if before != vo.status and vo.status in ("expired", "rejected"):
            log.warning(
                "alpaca broker: the %s leg of %s is %s: the position is no longer protected at the venue",
                leg.leg,
                leg.client_id,
                vo.status,
            )

    # ---------------------------------------------- stream and polling

    async def _stream_loop(self) -> None:
        backoff = Backoff(0.5, 30.0)
        key, secret = self._keys()
        while True:
            try:
                async with connect(
                    self.config.stream_url, open_timeout=self.config.timeout, ping_interval=20, close_timeout=1
                ) as ws:
                    await ws.send(wire.stream_auth_message(key, secret))
                    stream, data = wire.trade_stream_message(await asyncio.wait_for(ws.recv(), self.config.timeout))
                    if stream != "authorization" or data.get("status") != "authorized":
                        log.error("alpaca broker: trade_updates stream: not authorized (check key_id and secret_key)")
                        raise ConnectionError("not authorized")
                    await ws.send(wire.LISTEN_MESSAGE)
                    stream, data = wire.trade_stream_message(await asyncio.wait_for(ws.recv(), self.config.timeout))
                    if stream != "listening" or "trade_updates" not in data.get("streams", []):
                        raise ConnectionError(f"listen answered {stream} {data}")
                    self.stream_up = True
                    backoff.reset()
                    await self.orders.poll(self._lookup_tracked)  # what happened while the stream was down
                    async for raw in ws:
                        self._on_stream(raw)
            except asyncio.CancelledError:
                raise
            except (
                ConnectionClosed,
                InvalidHandshake,
                OSError,
                asyncio.TimeoutError,
                ConnectionError,
                wire.WireError,
            ) as err:
                log.warning("alpaca broker: trade_updates stream: %s", error_text(err))
            finally:
                self.stream_up = False
            await backoff.wait()

    def _on_stream(self, raw: str | bytes) -> None:
        try:
            stream, data = wire.trade_stream_message(raw)
            if stream != "trade_updates":
                return
            update = wire.trade_update(data)
        except wire.WireError as err:
            log.warning("alpaca broker: dropped a trade update: %s", err)
            return
        self._counts["stream_events"] += 1
        self._apply(update.order, update.event, update.timestamp)

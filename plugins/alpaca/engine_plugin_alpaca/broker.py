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

The broker runs its own asyncio loop on a thread; the engine's calls
(``submit`` from a symbol's worker) wait on it, and updates are emitted from
it through ``on_update``.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any, TypeVar

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from engine_core import key_hint
from engine_core.brokers import Broker, UpdateCallback
from engine_core.errors import BrokerError, BrokerTimeout
from engine_core.live import Backoff
from engine_core.live.loop import LoopThread, cancel_all
from engine_core.model import Fill, Order, OrderType, Side, TimeInForce
from engine_core.orders import OrderState, OrderUpdate, UpdateKind
from engine_plugin_alpaca import wire
from engine_plugin_alpaca.config import AlpacaBrokerConfig
from engine_plugin_alpaca.rest import AlpacaHttpError, AlpacaRest, AlpacaUnreachable

log = logging.getLogger("engine_plugin_alpaca.broker")

T = TypeVar("T")
QTY_STEP = Decimal("0.000000001")  # Alpaca takes quantities to 9 decimals
PRICE_STEP = Decimal("0.000000001")
_TERMINAL = {"canceled": UpdateKind.CANCEL, "expired": UpdateKind.EXPIRE, "rejected": UpdateKind.REJECT}


def _plain(value: Decimal) -> Decimal:
    """Without trailing zeros, and never in exponent form (``100``, not ``1E+2``)."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


@dataclass
class _Tracked:
    """What the broker has told the engine about one of its orders."""

    order: Order
    venue_id: str = ""
    acked: bool = False
    filled: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)  # filled * average price, as reported so far
    done: bool = False
    legs: dict[str, str] = field(default_factory=dict)  # venue id of a leg -> "stop_loss" / "take_profit"
    leg_filled: dict[str, Decimal] = field(default_factory=dict)
    leg_cost: dict[str, Decimal] = field(default_factory=dict)
    leg_status: dict[str, str] = field(default_factory=dict)


class AlpacaBroker(Broker):
    Config = AlpacaBrokerConfig
    supports_brackets = True

    def __init__(self, config: AlpacaBrokerConfig, *, on_update: UpdateCallback, symbols: Sequence[str] = ()) -> None:
        super().__init__(config, on_update=on_update, symbols=symbols)
        self._io = LoopThread("alpaca-broker")
        self._dispatcher: threading.Thread | None = None
        self._outbox: queue.SimpleQueue[OrderUpdate | None] = queue.SimpleQueue()
        self._rest: AlpacaRest | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._tracked: dict[str, _Tracked] = {}  # by client id
        self._by_venue: dict[str, str] = {}  # venue id (entries and legs) -> client id
        self._assets: dict[str, wire.Asset] = {}
        self._positions: dict[str, Decimal] = {}
        self.account: wire.Account | None = None
        self.stream_up = False
        self.counts: dict[str, int] = {"stream_events": 0, "polls": 0, "duplicates_resolved": 0}

    # ------------------------------------------------------------ plumbing

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if not self._io.running:
            coro.close()
            raise BrokerError("alpaca broker: not connected")
        try:
            return self._io.run(coro, timeout if timeout is not None else self.config.timeout * 4, cancel=True)
        except TimeoutError as err:
            raise BrokerTimeout("alpaca broker: no answer in time") from err

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
        self._dispatcher = threading.Thread(target=self._dispatch, name="alpaca-broker-updates", daemon=True)
        self._dispatcher.start()
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
        self._tasks = [asyncio.ensure_future(self._stream_loop()), asyncio.ensure_future(self._poll_loop())]

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
        self._outbox.put(None)  # after every update emitted so far
        if self._dispatcher is not None:
            self._dispatcher.join(10)

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

    def submit(self, order: Order) -> None:
        self._call(self._submit(order))

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
        if cid in self._tracked:
            return  # sent before: the same client id is never sent twice
        await self._check(order)
        if await self._exits_held_by_legs(order):
            raise BrokerError(
                f"alpaca broker: {self._describe(order)}: the position was already closed by its bracket leg"
            )
        body = wire.order_request(order, extended_hours=self.config.extended_hours)
        tracked = _Tracked(order)
        try:
            answer = await self._http().request("POST", "/v2/orders", body=body)
        except AlpacaHttpError as err:
            if wire.is_duplicate_client_id(err.error):
                self.counts["duplicates_resolved"] += 1
                found = await self._lookup(cid)
                if found is None:
                    raise BrokerError(
                        f"alpaca broker: {self._describe(order)}: {err.error}, yet no such order"
                    ) from err
                self._tracked[cid] = tracked
                self._apply(found, "")
                return
            raise BrokerError(
                f"alpaca broker: {self._describe(order)} refused: {err.error.message or err.error}"
            ) from err
        except AlpacaUnreachable as err:
            found = await self._lookup_quietly(cid)
            if found is None:
                raise BrokerTimeout(f"alpaca broker: {self._describe(order)}: no answer ({err})") from err
            self._tracked[cid] = tracked
            self._apply(found, "")
            return
        self._tracked[cid] = tracked
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

    async def _lookup_quietly(self, cid: str) -> wire.VenueOrder | None:
        try:
            return await self._lookup(cid)
        except (AlpacaHttpError, AlpacaUnreachable, wire.WireError) as err:
            log.warning("alpaca broker: looking up %s: %s", cid, err)
            return None

    async def _exits_held_by_legs(self, order: Order) -> bool:
        """Before an exit, cancel the symbol's working bracket legs (they hold its
        shares). True when a leg had filled already: nothing is left to exit."""
        closed = False
        for tracked in list(self._tracked.values()):
            if tracked.order.symbol != order.symbol or not tracked.legs or tracked.order.side is order.side:
                continue
            for leg_id, name in tracked.legs.items():
                if tracked.leg_status.get(leg_id) in ("filled",):
                    closed = closed or tracked.leg_filled.get(leg_id, Decimal(0)) >= tracked.filled
                    continue
                if tracked.leg_status.get(leg_id) in ("canceled", "expired", "rejected", "replaced"):
                    continue
                try:
                    await self._http().request("DELETE", f"/v2/orders/{leg_id}")
                except AlpacaHttpError as err:
                    if err.error.status not in (404, 422):
                        raise BrokerError(
                            f"alpaca broker: cancelling the {name} leg of {tracked.order.client_id}: {err.error}"
                        ) from err
                # wait until the venue says the leg is done (cancelled, or filled first)
                deadline = time.monotonic() + self.config.timeout
                while True:
                    leg = wire.venue_order(await self._http().get(f"/v2/orders/{leg_id}"))
                    parent = await self._lookup(tracked.order.client_id)
                    if parent is not None:
                        self._apply(parent, "")
                    if not leg.is_open or leg.status == "held":
                        tracked.leg_status[leg_id] = leg.status
                        if leg.status == "filled":
                            closed = True
                        break
                    if time.monotonic() > deadline:
                        raise BrokerError(
                            f"alpaca broker: the {name} leg of {tracked.order.client_id} did not cancel in time"
                        )
                    await asyncio.sleep(0.05)
        return closed

    def cancel(self, client_id: str) -> None:
        self._call(self._cancel(client_id))

    async def _cancel(self, cid: str) -> None:
        tracked = self._tracked.get(cid)
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
            fills = (
                Fill(
                    cid,
                    found.symbol,
                    found.side,
                    found.filled_qty,
                    found.filled_avg_price,
                    Decimal(0),
                    found.updated_at,
                    f"{found.id}:{found.filled_qty}",
                ),
            )
        return OrderState(found.engine_status, found.filled_qty, fills, found.id)

    def open_orders(self) -> list[Order]:
        return self._call(self._open_orders())

    async def _open_orders(self) -> list[Order]:
        try:
            rows = wire.venue_orders(
                await self._http().get("/v2/orders", {"status": "open", "nested": "true", "limit": "500"})
            )
        except (AlpacaHttpError, AlpacaUnreachable, wire.WireError) as err:
            raise BrokerError(f"alpaca broker: open orders: {err}") from err
        out = []
        for o in rows:
            if o.status == "held":
                continue  # a leg waiting for its entry
            kind = OrderType.LIMIT if o.type == "limit" else OrderType.MARKET
            out.append(
                Order(
                    o.client_order_id, o.symbol, o.side, o.qty, o.updated_at, "", kind, o.limit_price, TimeInForce.GTC
                )
            )
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

    def _emit(self, update: OrderUpdate) -> None:
        """Hand an update to the dispatcher thread: the broker's loop never waits
        on the engine (a worker may be inside ``submit``, waiting on this loop)."""
        self._outbox.put(update)

    def _dispatch(self) -> None:
        while True:
            update = self._outbox.get()
            if update is None:
                return
            try:
                self.on_update(update)
            except Exception:  # the engine's callback must not stop the updates
                log.exception("alpaca broker: on_update failed for %s", update.client_id)

    def _apply(self, vo: wire.VenueOrder, event: str, ts: int = 0) -> None:
        """Turn what the venue says of an order (a stream event, a poll, an
        answer) into the updates not yet emitted."""
        cid = self._by_venue.get(vo.id, vo.client_order_id)
        tracked = self._tracked.get(cid)
        if tracked is None:
            return  # not an order of this engine
        ts = ts or vo.updated_at or time.time_ns()
        if vo.id != tracked.venue_id and vo.id in tracked.legs:
            self._apply_leg(tracked, vo, ts)
            return
        if not tracked.venue_id:
            tracked.venue_id = vo.id
            self._by_venue[vo.id] = cid
        for leg in vo.legs:
            name = "stop_loss" if leg.type in ("stop", "stop_limit") else "take_profit"
            if leg.id not in tracked.legs:
                tracked.legs[leg.id] = name
                self._by_venue[leg.id] = cid
            self._apply_leg(tracked, leg, ts)
        order = tracked.order
        if not tracked.acked and vo.status not in ("pending_new",) and not tracked.done:
            tracked.acked = True
            if vo.status not in ("rejected",):
                self._emit(OrderUpdate(UpdateKind.ACK, cid, order.symbol, ts, venue_id=vo.id))
        self._fill(tracked, vo.filled_qty, vo.filled_avg_price, ts, leg=None)
        if not tracked.done:
            if vo.status == "filled" and tracked.filled >= order.qty:
                tracked.done = True
            elif vo.status in _TERMINAL:
                tracked.done = True
                reason = f"alpaca: order {vo.status}" + (f" ({event})" if event and event != vo.status else "")
                self._emit(OrderUpdate(_TERMINAL[vo.status], cid, order.symbol, ts, venue_id=vo.id, reason=reason))

    def _fill(self, tracked: _Tracked, cum: Decimal, avg: Decimal | None, ts: int, leg: wire.VenueOrder | None) -> None:
        order = tracked.order
        if leg is None:
            done, cost = tracked.filled, tracked.cost
        else:
            done, cost = tracked.leg_filled.get(leg.id, Decimal(0)), tracked.leg_cost.get(leg.id, Decimal(0))
        delta = cum - done
        if delta <= 0 or avg is None:
            return
        new_cost = avg * cum
        price = _plain(((new_cost - cost) / delta).quantize(PRICE_STEP))
        if leg is None:
            tracked.filled, tracked.cost = cum, new_cost
            side, kind_total, name, venue = order.side, order.qty, "", tracked.venue_id
        else:
            tracked.leg_filled[leg.id], tracked.leg_cost[leg.id] = cum, new_cost
            side, kind_total, name, venue = leg.side, leg.qty, tracked.legs[leg.id], leg.id
        sign = 1 if side is Side.BUY else -1
        self._positions[order.symbol] = self._positions.get(order.symbol, Decimal(0)) + sign * delta
        fill = Fill(order.client_id, order.symbol, side, delta, price, Decimal(0), ts, f"{venue}:{cum}")
        kind = UpdateKind.FILL if cum >= kind_total else UpdateKind.PARTIAL_FILL
        self._emit(OrderUpdate(kind, order.client_id, order.symbol, ts, fill, venue_id=venue, leg=name))

    def _apply_leg(self, tracked: _Tracked, leg: wire.VenueOrder, ts: int) -> None:
        before = tracked.leg_status.get(leg.id)
        tracked.leg_status[leg.id] = leg.status
        self._fill(tracked, leg.filled_qty, leg.filled_avg_price, ts, leg)
        if before != leg.status and leg.status in ("expired", "rejected"):
            log.warning(
                "alpaca broker: the %s leg of %s is %s: the position is no longer protected at the venue",
                tracked.legs[leg.id],
                tracked.order.client_id,
                leg.status,
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
                    await self._poll_once()  # what happened while the stream was down
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
                log.warning("alpaca broker: trade_updates stream: %s: %s", type(err).__name__, err)
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
        self.counts["stream_events"] += 1
        self._apply(update.order, update.event, update.timestamp)

    async def _poll_once(self) -> None:
        for cid, tracked in list(self._tracked.items()):
            legs_open = any(
                s not in ("filled", "canceled", "expired", "rejected", "replaced") for s in tracked.leg_status.values()
            )
            if tracked.done and not legs_open:
                continue
            try:
                found = await self._lookup(cid)
            except (AlpacaHttpError, AlpacaUnreachable, wire.WireError) as err:
                log.warning("alpaca broker: polling %s: %s", cid, err)
                continue
            if found is not None:
                self._apply(found, "")
        self.counts["polls"] += 1

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_interval)
            if not self.stream_up:
                await self._poll_once()

"""A venue that takes its fee in the asset bought (Binance without BNB)
leaves, after an exit that sells what is held rounded down to the lot step,
a remainder no order can sell. The trade is over there: the symbol goes
back to Watch, the round trip closes, and the next exit takes the dust along."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import ROUND_DOWN, Decimal
from typing import Any

from engine_core.brokers import Broker
from engine_core.model import Bar, Fill, Order, Side
from engine_core.orders import OrderState, OrderUpdate, UpdateKind
from engine_core.testing import InlinePlugin, ReplaySource, replay_rows

STEP = Decimal("0.01")


class FeeInBaseBroker(Broker):
    """Fills market orders at 100, keeping 0.1% of what is bought as its
    fee; trades in lots of 0.01."""

    sent: list[Decimal] = []

    def starting_cash(self) -> Decimal:
        return Decimal(100_000)

    def round_qty(self, symbol: str, qty: Decimal) -> Decimal:
        return qty.quantize(STEP, rounding=ROUND_DOWN)

    def submit(self, order: Order) -> None:
        self.sent.append(order.qty)
        fee = order.qty * Decimal("0.001") if order.side is Side.BUY else Decimal(0)
        fill = Fill(order.client_id, order.symbol, order.side, order.qty, Decimal(100), Decimal(0), order.ts, "t", fee)
        update = OrderUpdate(UpdateKind.FILL, order.client_id, order.symbol, order.ts, fill, "v")
        self.on_update(update)

    def cancel(self, client_id: str) -> None:
        pass

    def order_status(self, client_id: str) -> OrderState | None:
        return None


class OneBarAtATime(ReplaySource):
    """Replays its bars live, each once the worker has taken the one before."""

    engine: Any = None

    async def live(self) -> AsyncIterator[Bar]:  # type: ignore[override]
        for bar in self._bars():
            yield bar
            while not self.engine.workers[bar.symbol].inbox.empty():
                await asyncio.sleep(0.001)


def test_dust_below_the_lot_step_ends_the_trade_and_goes_with_the_next_exit(live_engine):
    FeeInBaseBroker.sent = []
    engine = live_engine(
        {"type": "one-bar-at-a-time", "bars": replay_rows("A", [100.0] * 25)},
        {"type": "fee-in-base"},
        InlinePlugin(brokers={"fee-in-base": FeeInBaseBroker}, sources={"one-bar-at-a-time": OneBarAtATime}),
        watch="return {'action': 'enter', 'qty': 1} if ctx.index in (3, 13) else None",
        in_trade="return 'exit' if ctx.index in (8, 18) else None",
    )
    OneBarAtATime.engine = engine
    result = engine.run()
    a = result.symbols["A"]
    # buy 1, hold 0.999, sell 0.99, 0.009 left; buy 1, hold 1.008, sell 1.00, 0.008 left
    assert FeeInBaseBroker.sent == [Decimal(1), Decimal("0.99"), Decimal(1), Decimal("1.00")]
    assert a.position_qty == Decimal("0.008") and a.final_state == "watch"
    assert len(a.trades) == 2 and a.halted is None

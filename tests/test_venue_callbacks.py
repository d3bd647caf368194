"""A venue broker reports an order's ack and fill from its own thread, and may
do so before it answers the send (Binance's user data stream often beats the
order's HTTP response). The worker is waiting on that send: the update must be
queued without waiting for the worker, or broker and worker wait on each other."""

from __future__ import annotations

import threading
from decimal import Decimal

from engine_core.brokers import Broker
from engine_core.errors import BrokerError
from engine_core.model import Fill, Order
from engine_core.orders import OrderState, OrderUpdate, UpdateKind
from engine_core.testing import InlinePlugin, replay_rows


class ReportsBeforeAnswering(Broker):
    """Acks and fills each order from a thread of its own, and answers
    ``submit`` only once that thread has handed both updates over."""

    handed_over: list[bool] = []

    def starting_cash(self) -> Decimal:
        return Decimal(100_000)

    def submit(self, order: Order) -> None:
        def report() -> None:
            self.on_update(OrderUpdate(UpdateKind.ACK, order.client_id, order.symbol, order.ts, venue_id="v1"))
            fill = Fill(order.client_id, order.symbol, order.side, order.qty, Decimal(100), Decimal(0), order.ts, "t1")
            self.on_update(OrderUpdate(UpdateKind.FILL, order.client_id, order.symbol, order.ts, fill, "v1"))

        thread = threading.Thread(target=report)
        thread.start()
        thread.join(30)  # generous: a blocked thread (the defect) is what ends it
        self.handed_over.append(not thread.is_alive())

    def cancel(self, client_id: str) -> None:
        pass

    def order_status(self, client_id: str) -> OrderState | None:
        return None


def test_updates_sent_while_the_worker_waits_on_the_send_are_booked(live_engine):
    ReportsBeforeAnswering.handed_over = []
    result = live_engine(
        {"type": "replay", "bars": replay_rows("A", [100.0] * 10)},
        {"type": "reports-first"},
        InlinePlugin(brokers={"reports-first": ReportsBeforeAnswering}),
        watch="return {'action': 'enter', 'qty': 2} if ctx.index == 3 else None",
    ).run()
    assert ReportsBeforeAnswering.handed_over == [True]  # the broker's thread was never blocked by the worker
    assert result.symbols["A"].position_qty == 2
    assert result.symbols["A"].final_state == "in_trade"


class RefusesThenFills(Broker):
    """Says an order was refused, then reports its fill anyway (a venue that
    had it after all): the fill is the truth of the position."""

    def starting_cash(self) -> Decimal:
        return Decimal(100_000)

    def submit(self, order: Order) -> None:
        fill = Fill(order.client_id, order.symbol, order.side, order.qty, Decimal(100), Decimal(0), order.ts, "t1")
        update = OrderUpdate(UpdateKind.FILL, order.client_id, order.symbol, order.ts, fill, "v1")
        reporter = threading.Thread(target=self.on_update, args=(update,))  # the venue's stream, first
        reporter.start()
        reporter.join(30)
        raise BrokerError(f"{order.client_id}: refused (so the venue said)")

    def cancel(self, client_id: str) -> None:
        pass

    def order_status(self, client_id: str) -> OrderState | None:
        return None


def test_a_fill_of_an_order_the_engine_does_not_know_is_booked_and_the_state_follows(live_engine):
    result = live_engine(
        {"type": "replay", "bars": replay_rows("A", [100.0] * 10)},
        {"type": "refuses-then-fills"},
        InlinePlugin(brokers={"refuses-then-fills": RefusesThenFills}),
        watch="return {'action': 'enter', 'qty': 2} if ctx.index == 3 else None",
    ).run()
    a = result.symbols["A"]
    assert a.position_qty == 2 and a.final_state == "in_trade"  # not watch holding 2: its stops and exits act

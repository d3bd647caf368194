"""engine_core.live.VenueOrders: what a venue broker reports of its orders,
each thing once, and the orders whose fate is not known."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from engine_core import BrokerError, Fill, OrderUpdate, Side, UpdateKind
from engine_core.live import VenueOrder, VenueOrders

D = Decimal


def tracker(**kw: object) -> tuple[VenueOrders, list[OrderUpdate]]:
    got: list[OrderUpdate] = []
    return VenueOrders("venue", got.append, **kw), got  # type: ignore[arg-type]


def fill(qty: str, price: str, trade: str, cid: str = "e-X-1") -> Fill:
    return Fill(cid, "X", Side.BUY, D(qty), D(price), D(0), 1, trade)


def test_an_ack_each_trade_and_the_end_are_reported_once_whatever_reports_them():
    orders, got = tracker()
    o = orders.track("e-X-1", "X", Side.BUY, D(2))
    for _ in range(2):  # the answer, then the stream, say the same
        orders.ack(o, "v1", 1)
        orders.fill(o, fill("1", "10", "t1"))
    orders.fill(o, fill("1", "11", "t2"))
    orders.end(o, UpdateKind.CANCEL, 2)  # after the last fill: the order is done already
    assert [(u.kind, u.fill.trade_id if u.fill else None) for u in got] == [
        (UpdateKind.ACK, None),
        (UpdateKind.PARTIAL_FILL, "t1"),
        (UpdateKind.FILL, "t2"),
    ]
    assert got[0].venue_id == "v1" and o.done


def test_cumulative_reports_become_the_fills_between_them():
    orders, got = tracker()
    o = orders.track("e-X-1", "X", Side.BUY, D(3))
    orders.ack(o, "v1", 1)
    orders.fill_to(o, D(1), D("10"), 1)
    orders.fill_to(o, D(1), D("10"), 2)  # a poll saying the same again
    orders.fill_to(o, D(3), D("11"), 3)  # 1 at 10, then 2 more: average 11 means the 2 cost 11.5
    fills = [u.fill for u in got if u.fill is not None]
    assert [(f.qty, f.price) for f in fills] == [(D(1), D(10)), (D(2), D("11.5"))]
    assert got[-1].kind is UpdateKind.FILL


def test_a_legs_fill_is_reported_on_its_entry_with_the_legs_name():
    orders, got = tracker()
    entry = orders.track("e-X-1", "X", Side.BUY, D(1))
    leg = orders.track_leg(entry, "leg1", "take_profit", Side.SELL, D(1))
    orders.fill_to(leg, D(1), D("110"), 5)
    [update] = got
    assert (update.client_id, update.leg, update.kind, update.fill.side) == (
        "e-X-1",
        "take_profit",
        UpdateKind.FILL,
        Side.SELL,
    )
    assert orders.leg("leg1") is leg and orders.legs(entry) == [leg]


def test_what_a_lookup_the_engine_books_itself_showed_is_not_reported_again():
    orders, got = tracker()
    o = orders.track("e-X-1", "X", Side.BUY, D(1))
    orders.known(o, venue_id="v1", fills=[fill("1", "10", "t1")], done=True)
    orders.ack(o, "v1", 1)
    orders.fill(o, fill("1", "10", "t1"))
    assert got == []


def test_an_unresolved_order_is_asked_for_until_found_and_errors_do_not_end_it():
    async def main() -> list[OrderUpdate]:
        orders, got = tracker(retry=(0.01, 0.02))
        o = orders.track("e-X-1", "X", Side.BUY, D(1))
        answers: list[object] = [BrokerError("429"), BrokerError("418"), True]

        async def lookup(order: VenueOrder) -> bool:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            orders.ack(order, "v1", 1)
            orders.fill(order, fill("1", "10", "t1"))
            return True

        orders.unresolved(o)
        task = asyncio.ensure_future(orders.watch(lookup, lambda: True, 0.05))
        while o.unresolved:
            await asyncio.sleep(0.01)
        task.cancel()
        assert answers == [] and orders.counts["lookup_errors"] == 2
        return got

    got = asyncio.run(asyncio.wait_for(main(), 10))  # a broken tracker fails, never hangs
    assert [u.kind for u in got] == [UpdateKind.ACK, UpdateKind.FILL]


def test_an_unresolved_order_the_venue_never_had_is_lost_only_after_lost_after():
    async def main() -> tuple[list[OrderUpdate], int]:
        orders, got = tracker(retry=(0.01, 0.02), lost_after=0.2)
        o = orders.track("e-X-1", "X", Side.BUY, D(1))
        asked = 0

        async def lookup(order: VenueOrder) -> bool:
            nonlocal asked
            asked += 1
            return False

        orders.unresolved(o)
        task = asyncio.ensure_future(orders.watch(lookup, lambda: True, 0.05))
        while not o.done:
            await asyncio.sleep(0.01)
        task.cancel()
        return got, asked

    got, asked = asyncio.run(asyncio.wait_for(main(), 10))  # a broken tracker fails, never hangs
    assert [u.kind for u in got] == [UpdateKind.LOST] and asked > 1


def test_at_stop_a_held_order_is_never_sent_and_reported_lost():
    async def main() -> tuple[list[OrderUpdate], list[str]]:
        orders, got = tracker()
        o = orders.track("e-X-1", "X", Side.BUY, D(1))
        sent: list[str] = []

        async def send() -> None:
            sent.append(o.client_id)

        orders.send_later(o, lambda: 60.0, send)  # the rate limit: a minute to wait
        await asyncio.sleep(0.05)
        await orders.stop_sending(1.0)
        await asyncio.sleep(0.05)
        return got, sent

    got, sent = asyncio.run(asyncio.wait_for(main(), 10))  # a broken tracker fails, never hangs
    assert sent == [] and [u.kind for u in got] == [UpdateKind.LOST] and "never sent" in got[0].reason


def test_a_held_order_is_sent_when_the_limit_allows_and_a_refusal_is_a_reject():
    async def main() -> list[OrderUpdate]:
        orders, got = tracker()
        waits = [0.02, 0.0]
        o = orders.track("e-X-1", "X", Side.BUY, D(1))

        async def refuse() -> None:
            raise BrokerError("insufficient balance")

        orders.send_later(o, lambda: waits.pop(0) if waits else 0.0, refuse)
        while not o.done:
            await asyncio.sleep(0.01)
        return got

    got = asyncio.run(asyncio.wait_for(main(), 10))  # a broken tracker fails, never hangs
    assert [u.kind for u in got] == [UpdateKind.SENT, UpdateKind.REJECT] and got[1].reason == "insufficient balance"


def test_at_stop_an_order_on_the_wire_gets_the_timeout_then_is_unknown():
    async def main() -> list[OrderUpdate]:
        orders, got = tracker()
        o = orders.track("e-X-1", "X", Side.BUY, D(1))
        never = asyncio.Event()

        async def send() -> None:
            with orders.on_wire(o):
                await never.wait()  # sent; the answer never comes

        orders.send_later(o, lambda: 0.0, send)
        while not o.sending:
            await asyncio.sleep(0.01)
        await orders.stop_sending(0.1)
        assert not o.sending
        return got

    got = asyncio.run(asyncio.wait_for(main(), 10))  # a broken tracker fails, never hangs
    assert [u.kind for u in got] == [UpdateKind.SENT, UpdateKind.UNKNOWN] and "unknown at stop" in got[1].reason


def test_at_stop_an_order_the_stream_reported_is_not_in_doubt_though_its_answer_is_late():
    async def main() -> list[OrderUpdate]:
        orders, got = tracker()
        o = orders.track("e-X-1", "X", Side.BUY, D(1))
        never = asyncio.Event()

        async def send() -> None:
            with orders.on_wire(o):
                orders.ack(o, "v1", 1)  # the stream's ack and fill come first
                orders.fill(o, fill("1", "10", "t1"))
                await never.wait()  # the answer itself never comes

        orders.send_later(o, lambda: 0.0, send)
        while not o.done:
            await asyncio.sleep(0.01)
        await orders.stop_sending(5.0)  # returns at once: nothing is in doubt
        return got

    got = asyncio.run(asyncio.wait_for(main(), 3))  # a wait for the 5 s timeout fails here
    assert [u.kind for u in got] == [UpdateKind.SENT, UpdateKind.ACK, UpdateKind.FILL]


def test_a_settled_order_is_forgotten_at_the_second_sweep_that_finds_it_settled():
    """Memory of a months-long session: what is settled goes after one to two
    sweeps; what is working, unresolved, or has a leg working stays."""
    orders, got = tracker()
    done = orders.track("e-X-1", "X", Side.BUY, D(1))
    orders.fill(done, fill("1", "10", "t1"))
    working = orders.track("e-X-2", "X", Side.BUY, D(1))
    orders.ack(working, "v2", 1)
    unknown = orders.track("e-X-3", "X", Side.BUY, D(1))
    orders.unresolved(unknown)
    bracket = orders.track("e-X-4", "X", Side.BUY, D(1))
    orders.fill(bracket, fill("1", "10", "t4", cid="e-X-4"))
    leg = orders.track_leg(bracket, "v4-stop", "stop_loss", Side.SELL, D(1))
    assert orders.sweep() == 0  # settled now: kept until the next sweep
    orders.fill(leg, Fill("e-X-4", "X", Side.SELL, D(1), D(9), D(0), 2, "t5"))  # the leg closes it
    assert orders.sweep() == 1 and orders.get("e-X-1") is None
    assert all(orders.get(c) is not None for c in ("e-X-2", "e-X-3", "e-X-4"))
    assert orders.sweep() == 1 and orders.get("e-X-4") is None and orders.leg("v4-stop") is None
    assert orders.get("e-X-2") is not None and orders.get("e-X-3") is not None
    # a report about a forgotten order: known again, its fill emitted with the same trade id
    again = orders.track("e-X-1", "X", Side.BUY, D(1))
    orders.fill(again, fill("1", "10", "t1"))
    assert [u.fill.trade_id for u in got if u.client_id == "e-X-1" and u.fill] == ["t1", "t1"]
    assert orders.counts["forgotten"] == 2


def test_the_watch_loop_sweeps(monkeypatch):
    monkeypatch.setattr(VenueOrders, "keep_done", 0.05)
    orders, _ = tracker()
    o = orders.track("e-X-1", "X", Side.BUY, D(1))
    orders.fill(o, fill("1", "10", "t1"))

    async def lookup(order: VenueOrder) -> bool:
        return True

    async def run() -> None:
        task = asyncio.create_task(orders.watch(lookup, lambda: True, 0.05))
        for _ in range(100):
            await asyncio.sleep(0.02)
            if orders.get("e-X-1") is None:
                break
        task.cancel()

    asyncio.run(run())
    assert orders.get("e-X-1") is None

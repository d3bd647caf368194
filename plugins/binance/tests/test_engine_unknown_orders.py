"""The engine on the local Binance when an order's answer is lost and the
lookup by client id is refused: the order is ``unknown`` (never "not
placed"), the symbol waits, the fill is booked once, and nothing is sent
twice."""

from __future__ import annotations

from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest
from engine_plugin_binance.testing import OrderScript

from engine_core import Journal, State

D = Decimal

# what answers GET /api/v3/order (the lookup by client id) after the order's own answer is lost
FAULTS = {
    "429": {"status": 429, "retry_after": 0, "times": 5},  # every try of one lookup (a 429 is tried 5 times)
    "418": {"status": 418, "retry_after": 1},  # banned for a second
    "-1021 twice": {"status": 400, "code": -1021, "times": 2},  # still refused after the clock sync
    "404": {"status": 404},  # the endpoint missing (a proxy, a wrong path)
}


STATUSES = ("intent", "submitted", "unknown", "accepted", "filled", "rejected", "lost")


def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / ".engine" / "e2e.sqlite")


def statuses(j: Journal, client_id: str) -> list[str]:
    """The statuses an order was journaled with, in order."""
    events = [e for e in j.events(symbol="BTCUSDT") if e["kind"] in STATUSES and e.get("client_id") == client_id]
    return [e["kind"] for e in events]


def enter_with_a_lost_answer(fake, live_config, running, tmp_path):
    """Enter on one bar (placed and filled at the venue, answer lost), then
    give the strategy a second chance to enter: return the worker and the run."""
    fake.add_history("BTCUSDT", 30, price=20000.0)
    fake.script.append(OrderScript("no_answer"))
    with running(live_config(params={"enter_at": 20100.0, "qty": 0.01})) as eng:
        eng.wait(lambda: fake.connected_streams() == 1, "the market stream")
        w = eng.worker()
        eng.wait(lambda: w.bars_done == 20, "the warm-up")
        fake.stream_bar("BTCUSDT", 20100.0)  # the entry
        eng.wait(lambda: w.ledger.qty != 0, "the entry's fill booked")
        fake.stream_bar("BTCUSDT", 20100.0)  # the strategy would enter again, were the symbol back in watch
        eng.wait(lambda: w.bars_done == 22 and w.orders.current is None, "the second bar")
        result = eng.stop()
    return w, result


@pytest.mark.parametrize("fault", list(FAULTS.values()), ids=list(FAULTS))
def test_a_lost_answer_whose_lookup_is_refused_is_booked_once_and_never_sent_again(
    fault, fake, live_config, running, tmp_path
):
    fake.fail("/api/v3/order", method="GET", **fault)
    w, result = enter_with_a_lost_answer(fake, live_config, running, tmp_path)
    assert len(fake.placed) == 1 and fake.requests["POST /api/v3/order"] == 1  # no second order
    assert w.ledger.qty == fake.balances["BTC"] == D("0.00999")  # the engine's position is the venue's
    assert w.sm.state is State.IN_TRADE and result.symbols["BTCUSDT"].fills == 1
    with closing(journal(tmp_path)) as j:
        [order] = j.orders(symbol="BTCUSDT")
        steps = [(e["frm"], e["to"]) for e in j.events(symbol="BTCUSDT", kind="transition")]
        history = statuses(j, order["client_id"])
    assert order["status"] == "filled" and order["client_id"] == fake.placed[0]["newClientOrderId"]
    assert "rejected" not in history and "lost" not in history  # never "not placed"
    assert steps == [("watch", "close_watch"), ("close_watch", "in_trade")]  # never back to watch


def test_with_the_user_stream_down_an_unknown_order_is_asked_for_until_found(fake, live_config, running, tmp_path):
    fake.user_streams_down = True  # only lookups can tell what became of the order
    fake.fail("/api/v3/order", 429, method="GET", retry_after=0, times=40)  # lookups for seconds after the send
    w, result = enter_with_a_lost_answer(fake, live_config, running, tmp_path)
    assert len(fake.placed) == 1 and fake.requests["POST /api/v3/order"] == 1
    assert w.ledger.qty == fake.balances["BTC"] == D("0.00999")
    assert w.sm.state is State.IN_TRADE
    with closing(journal(tmp_path)) as j:
        [order] = j.orders(symbol="BTCUSDT")
        history = statuses(j, order["client_id"])
    assert order["status"] == "filled"
    assert history == ["intent", "unknown", "accepted"]  # unknown until found (then its fill): never lost or refused


def test_an_entry_held_by_a_ban_lets_bars_through_and_is_never_sent_after_stop(fake, live_config, running, tmp_path):
    fake.add_history("BTCUSDT", 30, price=20000.0)
    fake.fail("/api/v3/order", 418, method="POST", retry_after=300)  # the first entry: banned for 5 minutes
    with running(live_config(params={"enter_at": 20100.0, "qty": 0.01})) as eng:
        eng.wait(lambda: fake.connected_streams() == 1, "the market stream")
        w = eng.worker()
        eng.wait(lambda: w.bars_done == 20, "the warm-up")
        fake.stream_bar("BTCUSDT", 20100.0)  # entry 1: refused with the ban (Binance did not execute it)
        fake.stream_bar("BTCUSDT", 20100.0)  # entry 2: held back until the ban ends
        fake.stream_bar("BTCUSDT", 20000.0)
        eng.wait(lambda: w.bars_done == 23, "the bar after entry 2")  # the symbol is not held up
        assert w.orders.current is not None and w.orders.current.status.value == "intent"
        result = eng.stop()
    assert fake.placed == [] and fake.requests["POST /api/v3/order"] == 1  # entry 2 never sent, not even after stop
    assert result.symbols["BTCUSDT"].position_qty == 0 and w.sm.state is State.WATCH
    with closing(journal(tmp_path)) as j:
        first, second = j.orders(symbol="BTCUSDT")
        assert statuses(j, first["client_id"]) == ["intent", "rejected"]
        assert statuses(j, second["client_id"]) == ["intent", "lost"]  # never sent: not unknown

"""No empty errors: wherever an exception becomes a line a user reads (a
halt, an order's status, the CLI), it says what it is, what was being done
and, for a timeout, which call gave no answer within how long."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine_core.brokers import Broker
from engine_core.config import journal_path, read_engine_section
from engine_core.errors import BrokerError, EngineError, error_text
from engine_core.journal import Journal
from engine_core.live.loop import LoopThread
from engine_core.model import Order
from engine_core.orders import OrderState
from engine_core.runner import build_engine
from engine_core.testing import InlinePlugin, python_strategy, replay_rows, venue, write_config

ENTER = {"watch": 'return {"action": "enter", "qty": 2} if ctx.index == 1 else None'}


def scripted_config(tmp_path: Path, broker: dict[str, Any]) -> Path:
    return write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "symbols": ["A"], "window": 20, "journal_sync": "normal"},
            "source": {"type": "replay", "bars": replay_rows("A", [100.0] * 8), "pace": 0.02},
            "strategy": python_strategy(tmp_path, **ENTER),
            "broker": {"type": "scripted", **broker},
        },
    )


def test_a_send_that_times_out_is_asked_for_by_client_id_and_says_which_call(tmp_path):
    """The venue got the order, but the broker's call gave no answer and let
    its loop's TimeoutError through: the order's fate is unknown, so it is
    looked up (and booked), never a halt with an empty message."""
    venue("stall", reset=True)
    config = scripted_config(tmp_path, {"venue": "stall", "script": ["stall", "ack", "fill"]})
    result = build_engine(config).run()
    a = result.symbols["A"]
    assert (a.halted, a.position_qty, a.fills) == (None, Decimal(2), 1)
    journal = Journal(journal_path(tmp_path, read_engine_section(config)))
    try:
        [unknown] = journal.events("A", kind="unknown")
    finally:
        journal.close()
    assert unknown["detail"] == (
        "broker.submit: TimeoutError: scripted-venue-loop: ScriptedBroker._no_answer gave no answer within 0.2 s"
    )
    assert len(venue("stall").orders) == 1  # never sent twice


class SlowVenue(Broker):
    """A venue broker whose lot-step lookup (a venue call on its own loop) never answers."""

    def connect(self) -> None:
        self.io = LoopThread("slow-venue")
        self.io.start()

    def close(self) -> None:
        self.io.stop()

    def starting_cash(self) -> Decimal:
        return Decimal(100_000)

    def round_qty(self, symbol: str, qty: Decimal) -> Decimal:
        return self.io.run(asyncio.sleep(3600), 0.1, cancel=True)  # type: ignore[return-value]

    def submit(self, order: Order) -> None:
        raise AssertionError("nothing is sent without a quantity")

    def cancel(self, client_id: str) -> None:
        pass

    def order_status(self, client_id: str) -> OrderState | None:
        return None


def test_a_halt_says_what_was_being_done_and_which_call_timed_out(live_engine):
    result = live_engine(
        {"type": "replay", "bars": replay_rows("A", [100.0] * 5)},
        {"type": "slow"},
        InlinePlugin(brokers={"slow": SlowVenue}),
        **ENTER,
    ).run()
    halted = result.symbols["A"].halted
    assert re.fullmatch(
        r"internal error at the bar of \d{4}-\d\d-\d\dT[0-9:]+Z, in broker\.round_qty: "
        r"TimeoutError: slow-venue: sleep gave no answer within 0\.1 s",
        halted or "",
    ), halted


def _chained() -> BaseException:
    try:
        try:
            raise ConnectionResetError("reset by peer")
        except ConnectionResetError as err:
            raise TimeoutError() from err
    except TimeoutError as err:
        return err


@pytest.mark.parametrize(
    "err, line",
    [
        (TimeoutError(), "TimeoutError: (no message)"),
        (_chained(), "TimeoutError: (no message), from ConnectionResetError: reset by peer"),
        (BrokerError(""), "BrokerError: (no message)"),
        (EngineError("config.toml: broker.cash: expected a number"), "config.toml: broker.cash: expected a number"),
        (ValueError("two\nlines"), "ValueError: two lines"),
        (KeyError("qty"), "KeyError: 'qty'"),
    ],
)
def test_every_exception_is_one_line_that_is_never_empty(err, line):
    assert error_text(err) == line


class SilentVenue(SlowVenue):
    """A venue broker whose connect (a call on its own loop) never answers."""

    def connect(self) -> None:
        super().connect()
        self.io.run(asyncio.sleep(3600), 0.1, cancel=True)


def test_a_broker_that_cannot_connect_is_one_line_naming_the_broker_and_the_call(live_engine):
    engine = live_engine(
        {"type": "replay", "bars": replay_rows("A", [100.0] * 5)},
        {"type": "silent"},
        InlinePlugin(brokers={"silent": SilentVenue}),
        **ENTER,
    )
    with pytest.raises(BrokerError) as caught:
        engine.run()
    assert str(caught.value) == (
        "broker 'silent': connect failed: TimeoutError: slow-venue: sleep gave no answer within 0.1 s"
    )

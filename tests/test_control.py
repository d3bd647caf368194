"""Control commands reach a running engine's workers and are answered."""

from __future__ import annotations

import ast
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

import engine_core.control
from engine_core.control import ENGINE, Command, ControlError, deliver
from engine_core.model import FillEvent, OrderEvent, SignalEvent, State, TransitionEvent
from engine_core.runner import Engine, build_engine
from engine_core.testing import MemorySink, wait_until, write_config

ALWAYS_IN = """
class S:
    def watch(self, ctx):
        return "enter"
    def close_watch(self, ctx):
        return None
    def in_trade(self, ctx):
        return None
"""

TIMEOUT = 30


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Engine, MemorySink]]:
    (tmp_path / "s.py").write_text(ALWAYS_IN)
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "symbols": ["A", "B"], "journal": False},
            "source": {"type": "simulated", "bars": 0, "pace": 0.003},
            "strategy": {"host": "python", "class": "s.py:S"},
            "broker": {"type": "paper", "fill": "close"},
            "sinks": [{"type": "memory"}],
        },
    )
    engine = build_engine(cfg)
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    sink = engine.bus.sinks[0]
    assert isinstance(sink, MemorySink)
    wait_until(
        lambda: len(engine.workers) == 2 and all(w.thread and w.thread.is_alive() for w in engine.workers.values()),
        "workers",
    )
    yield engine, sink
    engine.stop_event.set()
    thread.join(TIMEOUT)
    assert not thread.is_alive()


def answer(engine: Engine, command: Command) -> dict[str, str]:
    return {symbol: future.result(TIMEOUT) for symbol, future in deliver(engine, command).items()}


def test_pause_then_flatten_closes_the_position_and_keeps_it_closed_until_resume(running):
    engine, sink = running
    a = engine.workers["A"]
    wait_until(lambda: a.ledger.qty != 0, "A to enter")
    assert "paused" in answer(engine, Command("pause", "A", "r1"))["A"]
    assert "sent" in answer(engine, Command("flatten", "A", "r2"))["A"] or a.ledger.qty == 0
    wait_until(lambda: a.ledger.qty == 0 and a.sm.state is State.WATCH, "A to be flat")
    bars_then = a.bars_done
    wait_until(lambda: a.bars_done >= bars_then + 20, "20 more bars of A")
    assert a.ledger.qty == 0  # paused: the strategy that always enters was not asked
    assert engine.workers["B"].ledger.qty != 0  # the other symbol was not touched
    fills = [e.fill for e in list(sink.events) if isinstance(e, FillEvent) and e.fill.symbol == "A"]
    orders = [e.order for e in list(sink.events) if isinstance(e, OrderEvent) and e.order.symbol == "A"]
    assert orders[-1].reason == "flatten" and orders[-1].client_id == fills[-1].client_id
    assert sum((f.qty if f.side.value == "buy" else -f.qty) for f in fills) == Decimal(0)
    assert answer(engine, Command("resume", "A"))["A"] == "resumed"
    wait_until(lambda: a.ledger.qty != 0, "A to enter again after resume")


def test_a_command_without_symbol_goes_to_every_symbol(running):
    engine, sink = running
    replies = answer(engine, Command("pause"))
    assert set(replies) == {"A", "B"}
    counts = {s: w.bars_done for s, w in engine.workers.items()}
    seen = len([e for e in list(sink.events) if isinstance(e, SignalEvent)])
    wait_until(lambda: all(w.bars_done >= counts[s] + 10 for s, w in engine.workers.items()), "more bars")
    assert len([e for e in list(sink.events) if isinstance(e, SignalEvent)]) == seen


def test_reload_answers_when_the_file_is_unchanged(running):
    engine, _ = running
    assert answer(engine, Command("reload", "B")) == {"B": "the strategy file is unchanged"}


def test_flatten_when_flat_is_answered_and_places_nothing(running):
    engine, sink = running
    a = engine.workers["A"]
    wait_until(lambda: a.ledger.qty != 0, "A to enter")
    answer(engine, Command("pause", "A"))
    answer(engine, Command("flatten", "A"))
    wait_until(lambda: a.ledger.qty == 0, "A flat")
    orders = a.orders
    assert answer(engine, Command("flatten", "A")) == {"A": "already flat"}
    assert a.orders == orders


def test_bad_commands_are_refused_before_anything_is_done(running):
    engine, sink = running
    with pytest.raises(ControlError, match="unknown command 'explode'"):
        Command("explode", "A")
    with pytest.raises(ControlError, match="stop is engine-wide"):
        Command("stop", "A")
    with pytest.raises(ControlError, match="'ZZZ' is not run by this engine"):
        deliver(engine, Command("pause", "ZZZ"))
    with pytest.raises(ControlError, match="resume only undoes a pause"):
        engine.workers["A"].halted = "test halt"
        answer(engine, Command("resume", "A"))
    assert not engine.workers["B"].paused


def test_stop_ends_the_run(running):
    engine, sink = running
    assert answer(engine, Command("stop")) == {ENGINE: "stopping"}
    wait_until(lambda: all(not w.thread.is_alive() for w in engine.workers.values()), "workers to end")
    transitions = [e for e in list(sink.events) if isinstance(e, TransitionEvent)]
    assert transitions  # it did run


def test_control_does_not_import_the_runner():
    """The arrow runs one way: the runner routes commands (engine_core.control);
    control names what it delivers to by its method alone, not the runner's class."""
    tree = ast.parse(Path(engine_core.control.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert "engine_core.runner" not in imported

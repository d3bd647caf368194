"""A worker's refusal reaches the control reply naming its symbol once."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from engine_plugin_mqtt.control import ControlChannel

from engine_core.runner import build_engine
from engine_core.testing import wait_until, write_config

STRATEGY = """
class S:
    def watch(self, ctx):
        return None
    def close_watch(self, ctx):
        return None
    def in_trade(self, ctx):
        return None
"""


def test_a_refusal_names_its_symbol_once(tmp_path: Path):
    (tmp_path / "s.py").write_text(STRATEGY)
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "id": "e1", "symbols": ["AAA"], "journal": False},
            "source": {"type": "simulated", "bars": 0, "pace": 0.003},
            "strategy": {"host": "python", "class": "s.py:S"},
            "broker": {"type": "paper", "fill": "close"},
        },
    )
    engine = build_engine(cfg)
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    try:
        worker_started = lambda: "AAA" in engine.workers and engine.workers["AAA"].thread is not None  # noqa: E731
        wait_until(lambda: worker_started() and engine.workers["AAA"].thread.is_alive(), "the worker")
        engine.workers["AAA"].halted = "a test halt"
        channel = ControlChannel("e1")
        channel.engine = engine
        reply = asyncio.run(channel.answer("resume", b'{"symbol": "AAA"}'))
    finally:
        engine.stop_event.set()
        thread.join(30)
    assert reply["ok"] is False
    assert reply["error"] == "AAA: halted (a test halt); resume only undoes a pause"
    assert reply["errors"] == {"AAA": "halted (a test halt); resume only undoes a pause"}

"""Every kind of engine event reaches the broker: a strategy's log lines and
a live source's connection states too (they used to stop the publishing
loop), and the ISO times match the ns timestamps for any instant."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from engine_plugin_mqtt import wire
from mqtt_engines import config, expected, received, sinks

from engine_core.model import ConnectionEvent, LogEvent
from engine_core.runner import build_engine
from engine_core.testing import wait_until

LOGGING = """
class S:
    def watch(self, ctx):
        if ctx.index % 50 == 0:
            ctx.log("looking at", ctx.index)
        return "enter" if ctx.index % 4 == 0 else None
    def close_watch(self, ctx):
        return None
    def in_trade(self, ctx):
        return "exit" if ctx.index % 4 == 2 else None
"""


@pytest.mark.parametrize("batch", [False, True])
def test_a_strategys_log_lines_are_published_in_order(tmp_path: Path, broker, subscriber, batch):
    path = config(tmp_path, broker.port, sink={"batch": batch})
    (tmp_path / "logging.py").write_text(LOGGING)
    path.write_text(path.read_text().replace("busy.py:S", "logging.py:S"))
    engine = build_engine(path)
    memory, mqtt = sinks(engine)
    engine.run()
    logs = [e for e in memory.events if isinstance(e, LogEvent)]
    assert logs  # the strategy logged
    want = expected(memory.events, bars=False)
    wait_until(lambda: len(subscriber.events()) >= len(want), f"{len(want)} events")
    got = subscriber.events()
    if batch:  # batches keep each symbol's order; the seqs give the engine's
        got = sorted(got, key=lambda p: p["seq"])
    assert received(got) == want
    line = next(p for p in got if p["event"] == "log")
    assert line["message"].startswith("looking at") and line["symbol"] in ("AAA", "BBB", "EUR/USD")
    if not batch:
        assert any(t == "t/e1/AAA/log" for t, _, _ in subscriber.snapshot())
    assert mqtt.lost == 0 and mqtt.dropped == 0


def test_a_connection_state_is_an_engine_wide_event():
    symbol, name, payload = wire.event_message(ConnectionEvent("binance", "reconnecting", 1_000_000, "eof"), "e1", 3)
    assert (symbol, name) == (None, "connection")
    assert json.loads(wire.dumps(payload)) == {
        "schema": 1,
        "seq": 3,
        "engine": "e1",
        "symbol": None,
        "event": "connection",
        "ts": 1_000_000,
        "time": "1970-01-01T00:00:00.001Z",
        "source": "binance",
        "state": "reconnecting",
        "detail": {"message": "eof"},
    }


@pytest.mark.parametrize(
    "ts",
    [0, 1, 999_999_999, 86_399_999_000_000, 1_764_482_400_123_456_789, 253_402_300_799_999_000_000, -1, -86_400_001],
)
def test_iso_times_match_the_timestamps(ts):
    seconds, ns = divmod(ts, 1_000_000_000)
    when = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=seconds, microseconds=ns // 1000)
    assert wire.iso_ms(ts) == when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns // 1_000_000:03d}Z"
    assert wire.iso_ms(ts) == wire.iso_ms(ts)  # cached: the same text

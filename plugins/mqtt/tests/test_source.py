"""The mqtt source: bars and trades from topics into a live engine; bad
messages counted and logged, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from mqtt_engines import Running

from engine_core.model import NS_PER_SECOND
from engine_core.testing import wait_until, write_config

T0 = 1_700_000_040  # seconds, a multiple of 60


def bar_json(symbol: str, minute: int, close: float = 100.0, **extra: object) -> str:
    body = {"schema": 1, "symbol": symbol, "ts": (T0 + 60 * minute) * NS_PER_SECOND}
    body.update(open=close, high=close + 1, low=close - 1, close=close, volume=5.0)
    body.update(extra)
    return json.dumps(body)


@pytest.fixture
def engine_run(tmp_path: Path, broker):
    (tmp_path / "s.py").write_text(
        "class S:\n"
        "    def watch(self, ctx):\n        return None\n"
        "    def close_watch(self, ctx):\n        return None\n"
        "    def in_trade(self, ctx):\n        return None\n"
    )
    path = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "symbols": ["AAA", "BBB", "CCC"], "journal": False},
            "source": {
                "type": "mqtt",
                "port": broker.port,
                "topic": "feeds/+/bars",
                "trades_topic": "feeds/+/trades",
                "bar_seconds": 60,
            },
            "strategy": {"host": "python", "class": "s.py:S"},
        },
    )
    run = Running(path)
    wait_until(lambda: getattr(run.engine.source, "subscribed", False), "the source to subscribe")
    yield run
    run.engine.stop_event.set()
    run.join()


def test_bars_and_trades_from_topics_feed_the_engine(engine_run, broker, caplog):
    pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="producer")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    messages = [
        ("feeds/AAA/bars", bar_json("AAA", 0)),
        ("feeds/AAA/bars", bar_json("AAA", 1, 101.0)),
        ("feeds/AAA/bars", bar_json("AAA", 1, 102.0)),  # not after the last: stale
        ("feeds/AAA/bars", "{not json"),  # malformed
        ("feeds/AAA/bars", bar_json("AAA", 2, high=50.0)),  # high below close: malformed
        ("feeds/AAA/bars", bar_json("AAA", 3, surprise=1)),  # unknown key: malformed
        ("feeds/ZZZ/bars", bar_json("ZZZ", 0)),  # another engine's symbol
        # ISO time instead of ts
        (
            "feeds/BBB/bars",
            json.dumps({"symbol": "BBB", "time": "2023-11-14T22:14:00Z", "open": 1, "high": 2, "low": 1, "close": 2}),
        ),
        # trades of CCC: two in minute 0, one in minute 1 (closes minute 0's bar)
        ("feeds/CCC/trades", json.dumps({"symbol": "CCC", "ts": T0 * NS_PER_SECOND, "price": 10.0, "qty": 1.0})),
        ("feeds/CCC/trades", json.dumps({"symbol": "CCC", "ts": (T0 + 30) * NS_PER_SECOND, "price": 12.0, "qty": 2.0})),
        ("feeds/CCC/trades", json.dumps({"symbol": "CCC", "ts": (T0 + 61) * NS_PER_SECOND, "price": 11.0, "qty": 1.0})),
    ]
    for topic, payload in messages:
        pub.publish(topic, payload, qos=1).wait_for_publish(30)
    pub.disconnect()
    pub.loop_stop()
    source = engine_run.engine.source
    wait_until(lambda: source.counts["messages"] == len(messages), "every message")
    workers = engine_run.engine.workers
    wait_until(
        lambda: (workers["AAA"].bars_done, workers["BBB"].bars_done, workers["CCC"].bars_done) == (2, 1, 1), "bars"
    )
    engine_run.engine.stop_event.set()
    result = engine_run.join()
    assert result.symbols["AAA"].ts.tolist() == [T0 * NS_PER_SECOND, (T0 + 60) * NS_PER_SECOND]
    assert result.symbols["BBB"].ts.tolist() == [1_700_000_040 * NS_PER_SECOND]
    c = workers["CCC"].view
    assert (c.open[-1], c.high[-1], c.low[-1], c.close[-1], c.volume[-1]) == (10.0, 12.0, 10.0, 12.0, 3.0)
    assert source.stats() == {
        "messages": 11,
        "bars": 4,
        "trades": 3,
        "malformed": 3,
        "stale": 1,
        "other_symbols": 1,
        "connects": 1,
    }
    logged = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert any("feeds/AAA/bars: not JSON" in m for m in logged)
    assert any("prices out of range" in m for m in logged)
    assert any("unknown key 'surprise'" in m for m in logged)

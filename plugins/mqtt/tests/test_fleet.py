"""A fleet on one broker: the shards of one config each publish under their
own engine id and list the symbols they hold; together they hold every one once."""

from __future__ import annotations

from pathlib import Path

from engine_core.runner import build_engine
from engine_core.testing import wait_until, write_config

SYMBOLS = [f"S{i:02d}" for i in range(12)]


def test_two_shards_on_one_broker_cover_every_symbol_once(tmp_path: Path, broker, subscriber):
    (tmp_path / "s.py").write_text(
        "class S:\n"
        "    def watch(self, ctx):\n        return 'enter' if ctx.index % 5 == 0 else None\n"
        "    def close_watch(self, ctx):\n        return None\n"
        "    def in_trade(self, ctx):\n        return 'exit' if ctx.index % 5 == 3 else None\n"
    )
    path = write_config(
        tmp_path / "fleet.toml",
        {
            "engine": {"symbols": SYMBOLS, "id": "fleet"},
            "source": {"type": "simulated", "bars": 30},
            "strategy": {"host": "python", "class": "s.py:S"},
            "sinks": [{"type": "mqtt", "port": broker.port, "prefix": "f"}],
        },
    )
    for k in (1, 2):
        build_engine(path, shard=f"{k}/2").run()
    topics = ("f/fleet-1of2/status", "f/fleet-2of2/status")
    wait_until(lambda: all(subscriber.on(t) and subscriber.on(t)[-1]["online"] is False for t in topics), "both")
    held = [subscriber.on(t)[-1]["symbols"] for t in topics]
    assert [subscriber.on(t)[-1]["shard"] for t in topics] == ["1/2", "2/2"]
    assert sorted(held[0] + held[1]) == SYMBOLS and held[0] and held[1]
    # each symbol's events come from the engine that holds it, and only from it
    for engine_id, symbols in zip(("fleet-1of2", "fleet-2of2"), held):
        publishers = {p["engine"] for p in subscriber.events() if p["symbol"] in symbols}
        assert publishers == {engine_id}

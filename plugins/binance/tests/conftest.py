from __future__ import annotations

from pathlib import Path

import pytest
from engine_plugin_binance.config import BinanceBrokerConfig, BinanceSourceConfig
from engine_plugin_binance.source import BinanceSource
from engine_plugin_binance.testing import API_KEY, API_SECRET, FakeBinance

from engine_core.testing import EngineThread


@pytest.fixture
def fake():
    with FakeBinance() as venue:
        yield venue


@pytest.fixture
def source_for(fake):
    """A factory of sources pointed at the fake venue."""

    def make(symbols=("BTCUSDT",), **kw):
        cfg = BinanceSourceConfig(rest_url=fake.http_url, ws_url=fake.ws_url, **kw)
        return BinanceSource(cfg, symbols=list(symbols), base_dir=Path("."))

    return make


@pytest.fixture
def broker_config(fake):
    """A factory of broker configs pointed at the fake venue."""

    def make(**kw):
        return BinanceBrokerConfig(
            api_key=API_KEY, api_secret=API_SECRET, rest_url=fake.http_url, ws_api_url=fake.ws_api_url, **kw
        )

    return make


# ------------------------------------------------------------ the real engine on the fake venue

STRATEGY = '''
"""Logs every bar it is asked about; enters and exits at prices named in its params."""

class S:
    def _log(self, ctx, fn):
        with open(ctx.params["log"], "a") as f:
            f.write(f"{ctx.time()} {ctx.close()} {fn}\\n")

    def watch(self, ctx):
        self._log(ctx, "watch")
        if ctx.close() == ctx.params.get("enter_at"):
            decision = {"action": "enter", "qty": ctx.params["qty"]}
            if "limit" in ctx.params:
                decision["limit_price"] = ctx.params["limit"]
            if "expires" in ctx.params:
                decision["expires"] = ctx.params["expires"]
            return decision
        return None

    def close_watch(self, ctx):
        self._log(ctx, "close_watch")
        return None

    def in_trade(self, ctx):
        self._log(ctx, "in_trade")
        return "exit" if ctx.close() == ctx.params.get("exit_at") else None
'''


class Seen:
    """What the logging strategy was asked about: (bar ts in ms, close, function)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self) -> list[tuple[int, float, str]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().split("\n")[:-1]:  # a line being written is not read yet
            ts, close, fn = line.split()
            out.append((int(ts) // 1_000_000, float(close), fn))
        return out

    def times(self) -> list[int]:
        return [ts for ts, _, _ in self.rows()]


class LiveEngine(EngineThread):
    """The engine on a thread, keeping the source's connection states as it gets them."""

    def __init__(self, config: Path, registry) -> None:
        from engine_core.runner import build_engine

        super().__init__(build_engine(config, registry))
        self.states: list[str] = []
        report = self.engine._on_connection

        def record(state, detail):
            self.states.append(state.value)
            report(state, detail)

        self.engine._on_connection = record  # type: ignore[method-assign]

    def streaming(self) -> None:
        """Wait for the stream and the first connection's backfill (what closed since the warm-up)."""
        self.wait(lambda: self.states.count("connected") >= 2, "the stream and its first backfill")

    def worker(self, symbol: str = "BTCUSDT"):
        """The symbol's worker (waiting for the engine to build it: after the broker connects)."""
        self.wait(lambda: symbol in self.engine.workers, f"the worker of {symbol}")
        return self.engine.workers[symbol]


@pytest.fixture
def registry():
    import engine_plugin_binance.plugin as binance_plugin
    import engine_plugin_indicators.plugin as indicators_plugin

    import engine_core.testing as core_testing

    return core_testing.builtin_registry(
        ("binance", binance_plugin), ("indicators", indicators_plugin), ("testing", core_testing)
    )


@pytest.fixture
def broker_table(fake):
    """A factory of ``[broker]`` tables of the binance broker on the fake venue (``kw``: more keys)."""

    def make(**kw):
        return {
            "type": "binance",
            "api_key": API_KEY,
            "api_secret": API_SECRET,
            "rest_url": fake.http_url,
            "ws_api_url": fake.ws_api_url,
            **kw,
        }

    return make


@pytest.fixture
def live_config(fake, tmp_path, broker_table):
    """A factory of live configs on the fake venue: the logging strategy by
    default, the binance broker unless ``broker`` says otherwise."""
    from engine_core.testing import write_config

    (tmp_path / "s.py").write_text(STRATEGY)
    binance = broker_table()

    def make(*, params=None, source=None, broker=None, strategy=None, engine=None, sinks=None, name="c.toml"):
        return write_config(
            tmp_path / name,
            {
                "engine": {"mode": "live", "symbols": ["BTCUSDT"], "window": 50, "id": "e2e", **(engine or {})},
                "source": {
                    "type": "binance",
                    "rest_url": fake.http_url,
                    "ws_url": fake.ws_url,
                    "warmup": 20,
                    **(source or {}),
                },
                "strategy": strategy
                or {
                    "host": "python",
                    "class": "s.py:S",
                    "params": {"log": str(tmp_path / "seen.log"), **(params or {})},
                },
                "broker": broker if broker is not None else binance,
                **({"sinks": sinks} if sinks else {}),
            },
        )

    return make


@pytest.fixture
def seen(tmp_path):
    return Seen(tmp_path / "seen.log")


@pytest.fixture
def running(registry):
    """``running(config)``: a LiveEngine context manager."""

    def make(config: Path) -> LiveEngine:
        return LiveEngine(config, registry)

    return make

"""Binance: kline frames decoded into bars per second, and frame arrival to
order sent against the local fake venue.

1. Decoding: the source's own frame path (msgspec into typed structs, then
   the bar sequencer) over 200,000 distinct closed-kline frames, against
   the same work with orjson into dicts and float() of each price.
   Target: at least 200,000 frames/s.
2. Latency, one symbol, the whole engine: the fake venue, in a process of
   its own (as Binance is), streams a closed kline; the engine (binance
   source, worker, a Python strategy deciding an order on every bar, risk
   checks, journal, binance broker) sends a market order. The next bar
   comes once the engine is idle again, as live bars a minute apart do.
   Measured from the frame's arrival at the source to the order request's
   arrival at the venue, step by step, with the journal's default
   ``journal_sync = "full"`` (an fsync per commit) and with ``"normal"``.
   Beside it, in turns (the machine's load drifts), a reference under the
   same load: one asyncio loop that reads the frame and sends the signed
   order at once (no engine, no thread hop); the engine is given as a
   ratio of it. Target: p99 under 2 ms.

    .venv/bin/python bench/binance_decode.py [--frames 200000] [--bars 150] [--rounds 2] [--pace 0.01]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import websockets
from engine_plugin_binance.broker import BinanceBroker
from engine_plugin_binance.config import BinanceSourceConfig
from engine_plugin_binance.rest import BinanceRest
from engine_plugin_binance.source import BinanceSource
from engine_plugin_binance.testing import API_KEY, API_SECRET, FakeBinance
from engine_plugin_binance.wire import decode_stream

from engine_core.model import Bar, Order
from engine_core.orders import make_client_id
from engine_core.worker import SymbolWorker

M = 60_000


def frames(n: int) -> list[bytes]:
    t0 = 1_704_067_200_000
    out = []
    for i in range(n):
        row = [
            t0 + i * M,
            f"{42000 + i % 97:.2f}",
            f"{42050 + i % 89:.2f}",
            f"{41950 - i % 83:.2f}",
            f"{42010 + i % 79:.2f}",
            f"{1.5 + i % 13:.8f}",
            t0 + i * M + M - 1,
            "1",
            42,
            "1",
            "1",
            "0",
        ]
        out.append(FakeBinance.kline_frame("BTCUSDT", row).encode())
    return out


def decode_rate(n: int, repeats: int = 3) -> None:
    """Best of ``repeats`` runs in CPU time (the machine is shared: wall time
    swings with other work), msgspec and orjson interleaved."""
    import orjson

    data = frames(n)

    def source_path() -> int:
        src = BinanceSource(BinanceSourceConfig(), symbols=["BTCUSDT"], base_dir=Path("."))
        return sum(len(src._on_frame(f)) for f in data)

    def decode_only() -> int:
        return sum(1 for f in data if decode_stream(f).data.k.x)  # type: ignore[union-attr]

    def orjson_bars() -> int:
        out = 0
        for f in data:
            k = orjson.loads(f)["data"]["k"]
            if k["x"]:
                Bar(
                    k["s"],
                    k["t"] * 1_000_000,
                    float(k["o"]),
                    float(k["h"]),
                    float(k["l"]),
                    float(k["c"]),
                    float(k["v"]),
                )
                out += 1
        return out

    def orjson_only() -> int:
        return sum(1 for f in data if orjson.loads(f)["data"]["k"]["x"])

    best: dict[str, float] = {}
    for _ in range(repeats):
        for name, fn in (
            ("msgspec", source_path),
            ("orjson", orjson_bars),
            ("msgspec decode", decode_only),
            ("orjson decode", orjson_only),
        ):
            start = time.process_time()
            assert fn() == n
            best[name] = min(best.get(name, 1e9), time.process_time() - start)
    print(
        f"decode: {n / best['msgspec']:,.0f} kline frames/s into bars (the source's path: msgspec + sequencer); "
        f"orjson dicts + float() + Bar: {n / best['orjson']:,.0f}/s"
    )
    print(
        f"decode only (frame -> typed values, no Bar): msgspec {n / best['msgspec decode']:,.0f}/s, "
        f"orjson {n / best['orjson decode']:,.0f}/s"
    )


# ------------------------------------------------------------ latency

STRATEGY = """
class S:
    def watch(self, ctx):
        return {"action": "enter", "qty": 0.001}
    def close_watch(self, ctx):
        return None
    def in_trade(self, ctx):
        return "exit"
"""


def _venue(conn: Connection) -> None:
    """The fake venue in a process of its own (as Binance is): it would
    otherwise share the engine's GIL. Streams a bar per "bar" command."""
    with FakeBinance() as fake:
        fake.add_history("BTCUSDT", 50, price=42000.0)
        fake.balances["USDT"] = Decimal(10**9)
        conn.send((fake.http_url, fake.ws_url, fake.ws_api_url))
        while True:
            cmd = conn.recv()
            if cmd == "bar":
                fake.stream_bar("BTCUSDT")
                conn.send(None)
            elif cmd == "arrivals":
                conn.send(dict(fake.order_arrivals))
            else:
                return


class Venue:
    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_venue, args=(child,), daemon=True)
        self.proc.start()
        self.http_url, self.ws_url, self.ws_api_url = self.conn.recv()

    def bar(self) -> None:
        self.conn.send("bar")
        self.conn.recv()

    def arrivals(self) -> dict[str, float]:
        self.conn.send("arrivals")
        return self.conn.recv()  # type: ignore[no-any-return]

    def close(self) -> None:
        self.conn.send("stop")
        self.proc.join(10)


STEPS = ("frame", "worker", "broker", "loop", "venue")
"""Where an order's time goes: the kline frame reaches the source; the bar
reaches its worker (a thread hop); the worker (strategy, risk checks,
journal) calls the broker; the broker's loop thread starts the signed
request (a thread hop); the request reaches the venue."""


class _Stamps:
    """perf_counter() at each step of each order (the same clock in every
    process), by patching the steps' entry points for the run."""

    def __init__(self) -> None:
        self.by_bar: dict[int, dict[str, float]] = {}
        self.bar_of: dict[str, int] = {}  # client id -> its decision bar's time
        self._undo: list[Callable[[], None]] = []

    def _patch(self, cls: Any, name: str, wrapper: Callable[[Any], Any]) -> None:
        orig = getattr(cls, name)
        setattr(cls, name, wrapper(orig))
        self._undo.append(lambda: setattr(cls, name, orig))

    def __enter__(self) -> _Stamps:
        by_bar, bar_of = self.by_bar, self.bar_of

        def on_frame(orig: Any) -> Any:
            def stamped(source: BinanceSource, frame: str | bytes) -> tuple[Bar, ...]:
                now = time.perf_counter()
                out = orig(source, frame)
                for bar in out:
                    by_bar[bar.ts] = {"frame": now}
                return out

            return stamped

        def take(orig: Any) -> Any:  # a worker's turn (the compiled worker calls its handle past a wrapper)
            def stamped(worker: SymbolWorker, msg: Any) -> bool:
                if type(msg) is Bar and msg.ts in by_bar:
                    by_bar[msg.ts]["worker"] = time.perf_counter()
                return orig(worker, msg)

            return stamped

        def submit(orig: Any) -> Any:
            def stamped(broker: BinanceBroker, order: Order) -> None:
                if order.ts in by_bar:
                    by_bar[order.ts]["broker"] = time.perf_counter()
                    bar_of[order.client_id] = order.ts
                orig(broker, order)

            return stamped

        def request(orig: Any) -> Any:
            async def stamped(rest: BinanceRest, method: str, path: str, params: Any = None, **kw: Any) -> Any:
                if path == "/api/v3/order" and method == "POST":
                    ts = bar_of.get(params.get("newClientOrderId"))
                    if ts is not None:
                        by_bar[ts]["loop"] = time.perf_counter()
                return await orig(rest, method, path, params, **kw)

            return stamped

        self._patch(BinanceSource, "_on_frame", on_frame)
        self._patch(SymbolWorker, "take", take)
        self._patch(BinanceBroker, "submit", submit)
        self._patch(BinanceRest, "request", request)
        return self

    def __exit__(self, *exc: object) -> None:
        for undo in reversed(self._undo):
            undo()

    def orders(self, at_venue: dict[str, float]) -> list[dict[str, float]]:
        out = []
        for cid, ts in self.bar_of.items():
            steps = self.by_bar[ts]
            if cid in at_venue and all(k in steps for k in STEPS[:-1]):
                out.append({**steps, "venue": at_venue[cid]})
        return out


def _idle(worker: SymbolWorker, timeout: float = 10.0) -> None:
    """Until the worker has nothing queued, no order working and no message in hand."""
    end = time.monotonic() + timeout
    while worker.orders.current is not None or not worker.inbox.empty() or worker.lock.locked():
        if time.monotonic() > end:
            return
        time.sleep(0.001)


def engine_latency(venue: Venue, bars: int, pace: float, sync: str, engine_id: str) -> list[dict[str, float]]:
    """The whole engine: source, worker, Python strategy, risk, journal, the
    binance broker. Every bar decides an order (enter, then exit), sent
    once the engine is idle again (bars come a minute apart); each order's steps (``STEPS``) from its kline
    frame's arrival to its arrival at the venue."""
    from engine_core.plugins import get_registry
    from engine_core.runner import build_engine
    from engine_core.testing import write_config

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "s.py").write_text(STRATEGY)
        config = write_config(
            Path(tmp) / "c.toml",
            {
                "engine": {
                    "mode": "live",
                    "symbols": ["BTCUSDT"],
                    "window": 50,
                    "journal_sync": sync,
                    "id": engine_id,  # client ids differ from run to run
                },
                "source": {"type": "binance", "rest_url": venue.http_url, "ws_url": venue.ws_url, "warmup": 10},
                "strategy": {"host": "python", "class": "s.py:S"},
                "broker": {
                    "type": "binance",
                    "api_key": API_KEY,
                    "api_secret": API_SECRET,
                    "rest_url": venue.http_url,
                    "ws_api_url": venue.ws_api_url,
                },
            },
        )
        with _Stamps() as stamps:
            engine = build_engine(config, get_registry())
            thread = threading.Thread(target=engine.run, daemon=True)
            try:
                thread.start()
                while not stamps.by_bar and thread.is_alive():  # the stream is up once a bar arrives
                    venue.bar()
                    time.sleep(0.05)
                worker = engine.workers["BTCUSDT"]
                for _ in range(bars):
                    venue.bar()
                    time.sleep(pace)
                    _idle(worker)  # live bars come a minute apart: each finds the engine idle
            finally:
                engine.stop_event.set()
                thread.join(30)
    return stamps.orders(venue.arrivals())


async def _reference(venue: Venue, bars: int, pace: float, seq: list[int]) -> list[float]:
    """The floor under the same load: one asyncio loop reads the kline frame
    (the source's decoding) and sends a signed order at once; no engine, no
    thread in between."""
    rest = BinanceRest(venue.http_url, api_key=API_KEY, api_secret=API_SECRET)
    await rest.sync_time()
    src = BinanceSource(BinanceSourceConfig(ws_url=venue.ws_url), symbols=["BTCUSDT"], base_dir=Path("."))
    out: list[float] = []
    loop = asyncio.get_running_loop()
    async with websockets.connect(src.stream_url(), compression=None) as ws:

        async def read() -> None:
            side = "BUY"
            async for frame in ws:
                now = time.perf_counter()
                for bar in src._on_frame(frame):
                    seq[0] += 1
                    cid = make_client_id("ref", bar.symbol, seq[0])
                    params = {"symbol": "BTCUSDT", "side": side, "type": "MARKET", "quantity": "0.001"}
                    side = "SELL" if side == "BUY" else "BUY"
                    params.update(newClientOrderId=cid, newOrderRespType="FULL")
                    stamps[cid] = now
                    await rest.request("POST", "/api/v3/order", params, signed=True)

        stamps: dict[str, float] = {}
        reader = asyncio.create_task(read())
        for _ in range(bars):
            await loop.run_in_executor(None, venue.bar)
            await asyncio.sleep(pace)
        await asyncio.sleep(0.2)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    await rest.close()
    at_venue = await loop.run_in_executor(None, venue.arrivals)
    out = [at_venue[cid] - t for cid, t in stamps.items() if cid in at_venue]
    return out


def _figures(ms: np.ndarray) -> str:
    return f"p50 {np.percentile(ms, 50):.3f} ms, p99 {np.percentile(ms, 99):.3f} ms, max {ms.max():.3f} ms"


def _total(orders: list[dict[str, float]]) -> np.ndarray:
    return np.array([o["venue"] - o["frame"] for o in orders]) * 1000


def _steps(orders: list[dict[str, float]]) -> str:
    names = {
        "worker": "to the worker",
        "broker": "worker: strategy, risk, journal",
        "loop": "to the broker loop",
        "venue": "signed, sent, on the wire",
    }
    out = []
    for a, b in zip(STEPS, STEPS[1:]):
        ms = np.array([o[b] - o[a] for o in orders]) * 1000
        out.append(f"{names[b]} {np.percentile(ms, 50):.2f}/{np.percentile(ms, 99):.2f}")
    return ", ".join(out)


def latency(bars: int, pace: float, rounds: int) -> None:
    """Reference and engine in turns (load on a shared machine drifts), each
    ``rounds`` times ``bars`` bars; the engine's figures as ratios of the
    reference's."""
    venue = Venue()
    try:
        seq = [0]
        ref: list[float] = []
        full: list[dict[str, float]] = []
        normal: list[dict[str, float]] = []
        for k in range(rounds):
            ref += asyncio.run(_reference(venue, bars, pace, seq))[5:]
            full += engine_latency(venue, bars, pace, "full", f"full{k}")[5:]
            normal += engine_latency(venue, bars, pace, "normal", f"normal{k}")[5:]
        ref += asyncio.run(_reference(venue, bars, pace, seq))[5:]
    finally:
        venue.close()
    r = np.array(ref) * 1000
    r50, r99 = np.percentile(r, 50), np.percentile(r, 99)
    print("latency, 1 symbol, kline frame arrival -> order at the venue (a process of its own):")
    print(f"  reference, frame read and order sent on one loop, no engine ({len(r)} orders): {_figures(r)}")
    for name, orders in (("journal_sync = full (default)", full), ("journal_sync = normal", normal)):
        e = _total(orders)
        e50, e99 = np.percentile(e, 50), np.percentile(e, 99)
        print(f"  engine, {name} ({len(e)} orders): {_figures(e)}; {e50 / r50:.2f}x / {e99 / r99:.2f}x the reference")
        print(f"    steps p50/p99 ms: {_steps(orders)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--bars", type=int, default=150, help="bars per round and path")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pace", type=float, default=0.01, help="seconds between bars (the engine idle again)")
    args = ap.parse_args()
    decode_rate(args.frames)
    latency(args.bars, args.pace, args.rounds)


if __name__ == "__main__":
    main()

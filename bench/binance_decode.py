"""Binance: kline frames decoded into bars per second, and frame arrival to
order sent against the local fake venue.

1. Decoding: the source's own frame path (msgspec into typed structs, then
   the bar sequencer) over 200,000 distinct closed-kline frames, against
   the same work with orjson into dicts and float() of each price.
   Target: at least 200,000 frames/s.
2. Latency, one symbol: the fake venue streams a closed kline every
   ``--pace`` seconds; the source decodes it on its loop and hands the bar
   to a worker thread (as the engine's I/O thread does), which sends a
   market order through the broker. Measured from the frame's arrival at
   the source to the order request's arrival at the venue. The engine's
   own hop (worker, strategy, journal) is measured by bench/live_latency.py.
   Target: p99 under 2 ms.

    .venv/bin/python bench/binance_decode.py [--frames 200000] [--orders 300] [--pace 0.005]
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import threading
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
from engine_plugin_binance.broker import BinanceBroker
from engine_plugin_binance.config import BinanceBrokerConfig, BinanceSourceConfig
from engine_plugin_binance.source import BinanceSource
from engine_plugin_binance.testing import API_KEY, API_SECRET, FakeBinance
from engine_plugin_binance.wire import decode_stream

from engine_core.model import Bar, Order, Side
from engine_core.orders import make_client_id

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


async def _stream(fake: FakeBinance, orders: int, pace: float) -> list[float]:
    src = BinanceSource(
        BinanceSourceConfig(rest_url=fake.http_url, ws_url=fake.ws_url), symbols=["BTCUSDT"], base_dir=Path(".")
    )
    broker = BinanceBroker(
        BinanceBrokerConfig(api_key=API_KEY, api_secret=API_SECRET, rest_url=fake.http_url, ws_api_url=fake.ws_api_url),
        on_update=lambda u: None,
        symbols=["BTCUSDT"],
    )
    broker.connect()
    arrived: dict[int, float] = {}
    on_frame = src._on_frame

    def stamped(frame: str | bytes) -> tuple[Bar, ...]:
        now = time.perf_counter()
        out = on_frame(frame)
        for bar in out:
            arrived[bar.ts] = now
        return out

    src._on_frame = stamped  # type: ignore[method-assign]
    inbox: queue.Queue[Bar | None] = queue.Queue()
    sent: list[tuple[int, int]] = []  # (bar ts, index of the order at the venue)

    def worker() -> None:
        side = Side.BUY
        seq = 0
        while (bar := inbox.get()) is not None:
            seq += 1
            broker.submit(Order(make_client_id("bench", "BTCUSDT", seq), "BTCUSDT", side, Decimal("0.001"), bar.ts))
            sent.append((bar.ts, seq - 1))
            side = Side.SELL if side is Side.BUY else Side.BUY

    thread = threading.Thread(target=worker)
    thread.start()
    await src.warmup("BTCUSDT", 10)

    async def pump() -> None:
        async for bar in src.live():
            inbox.put(bar)

    task = asyncio.create_task(pump())
    while fake.connected_streams() < 1:
        await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    for _ in range(orders):
        await loop.run_in_executor(None, fake.stream_bar, "BTCUSDT", None)
        await asyncio.sleep(pace)
    while len(sent) < orders:
        await asyncio.sleep(0.01)
    inbox.put(None)
    thread.join()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await src.aclose()
    broker.close()
    return [fake.order_arrivals[i] - arrived[ts] for ts, i in sent]


def latency(orders: int, pace: float) -> None:
    with FakeBinance() as fake:
        fake.add_history("BTCUSDT", 20, price=42000.0)
        fake.balances["USDT"] = Decimal(10**9)
        fake.balances["BTC"] = Decimal(1000)
        lat = np.array(asyncio.run(_stream(fake, orders, pace))) * 1000
    lat = lat[10:]  # connection set-up
    print(
        f"latency, 1 symbol, frame arrival -> order at the venue, {len(lat)} orders: "
        f"p50 {np.percentile(lat, 50):.3f} ms, p99 {np.percentile(lat, 99):.3f} ms, max {lat.max():.3f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--orders", type=int, default=300)
    ap.add_argument("--pace", type=float, default=0.005)
    args = ap.parse_args()
    decode_rate(args.frames)
    latency(args.orders, args.pace)


if __name__ == "__main__":
    main()

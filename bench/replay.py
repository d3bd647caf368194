"""Recording and replay: what recording costs a live engine, how fast a
session replays, and how many bytes a bar takes.

1. The live path with and without recording (``bench/live_latency.py``
   without and with ``--record``, fresh processes, alternating): arrival to
   order p99 and CPU per live bar in the steady state, 100 symbols.
2. A session of the simulated feed recorded live (``--symbols`` x
   ``--bars``), then replayed (``engine replay``'s path) and backtested (the
   same bars, the same script): bars per second of each.
3. The recording's bytes per bar (everything: bars, events, orders), and
   what that makes per symbol-day of one-minute bars (1,440 bars).

    .venv/bin/python bench/replay.py [--rounds 2] [--symbols 20] [--bars 3000] [--live-bars 200]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine_core.plugins import get_registry
from engine_core.recording.reader import segment_paths, session_dirs
from engine_core.recording.replay import replay_session
from engine_core.runner import build_engine

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def live_path(record: bool, bars: int) -> tuple[float, float]:
    """(p99 ms after warm-up, steady-state CPU us per bar) of one live_latency run."""
    args = [sys.executable, str(HERE / "live_latency.py"), "--symbols", "100", "--bars", str(bars), "--pace", "0.05"]
    out = subprocess.run(args + (["--record"] if record else []), capture_output=True, text=True, check=True).stdout
    p99 = re.findall(r"p99 ([\d.]+) ms", out)[-1]
    cpu = re.search(r"CPU per live bar, steady state: (\d+) us", out)
    assert cpu is not None, out
    return float(p99), float(cpu.group(1))


def config(folder: Path, symbols: int, bars: int, mode: str) -> Path:
    names = ", ".join(f'"S{k:02d}"' for k in range(symbols))
    path = folder / f"{mode}.toml"
    path.write_text(
        f'[engine]\nmode = "{mode}"\nid = "bench"\nsymbols = [{names}]\nwindow = 100\n'
        f'[source]\ntype = "simulated"\nbars = {bars}\n'
        f'[strategy]\nhost = "lua"\nscript = "{ROOT / "strategies" / "sma_cross.lua"}"\n'
        "[strategy.params]\nfast = 10\nslow = 30\nqty = 1\n"
        '[broker]\ntype = "paper"\n'
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--bars", type=int, default=3000, help="bars per symbol of the recorded session")
    parser.add_argument("--live-bars", type=int, default=200, help="bars per symbol of each live-path run")
    args = parser.parse_args()

    print("1. the live path, 100 symbols, a bar each every 0.05 s (fresh processes, alternating)")
    for k in range(args.rounds):
        (p0, c0), (p1, c1) = live_path(False, args.live_bars), live_path(True, args.live_bars)
        print(
            f"  round {k + 1}: p99 {p0:.1f} ms without recording, {p1:.1f} ms with (x{p1 / p0:.2f}); "
            f"CPU per bar {c0:.0f} us without, {c1:.0f} us with (x{c1 / c0:.2f})"
        )

    registry = get_registry()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        live = config(folder, args.symbols, args.bars, "live")
        t0 = time.perf_counter()
        build_engine(live, registry).run()
        live_s = time.perf_counter() - t0
        (day,) = session_dirs(folder / ".engine" / "recordings" / "bench")
        paths = segment_paths(day)
        size = sum(p.stat().st_size for p in paths)
        bars = args.symbols * args.bars
        print(f"2. a recorded session: {args.symbols} symbols x {args.bars:,} bars, live in {live_s:.1f} s")
        for k in range(args.rounds):
            t0 = time.perf_counter()
            outcome = replay_session(paths, registry)
            replay_s = time.perf_counter() - t0
            assert outcome.divergence is None
            t0 = time.perf_counter()
            build_engine(config(folder, args.symbols, args.bars, "backtest"), registry).run()
            backtest_s = time.perf_counter() - t0
            print(
                f"  round {k + 1}: replay {bars / replay_s:,.0f} bars/s ({outcome.events:,} events compared), "
                f"backtest of the same bars {bars / backtest_s:,.0f} bars/s (replay x{replay_s / backtest_s:.1f} "
                "the backtest's time)"
            )
        per_bar = size / bars
        print(
            f"3. recording: {size:,} bytes for {bars:,} bars = {per_bar:.1f} bytes per bar "
            f"(~{per_bar * 1440 / 1024:.0f} KB per symbol-day of one-minute bars)"
        )


if __name__ == "__main__":
    main()

"""What the README's sample ``[risk]`` table costs a backtest.

Runs the README's own sample config (its first TOML block: sma_cross.lua on
the shipped examples/data, BTCUSDT and ETHUSDT, 20,000 one-minute bars each)
as is, and without its ``[risk]`` table, each in a fresh ``engine run``
process, alternating their order round by round. Prints each run's wall
time, the median ratio of the run with ``[risk]`` to the one without, and
whether the run with ``[risk]`` stepped the symbols bar by bar in event-time
order (``Engine.lockstep``; it does only when a cross-symbol rule can refuse
an order). Also checks that the trades and PnL of the run with ``[risk]``
are those of the same run stepped in event-time order.

    .venv/bin/python bench/risk_checks.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import sys
from engine_core.risk import RiskManager
from engine_core.runner import build_engine

def outcome(forced):
    if forced:
        RiskManager.cross_symbol_binds = lambda self, symbols: True
    engine = build_engine(sys.argv[1])
    result = engine.run()
    return engine.lockstep, {s: (r.trades, list(r.pnl)) for s, r in result.symbols.items()}

lockstep, free = outcome(False)
_, stepped = outcome(True)
print(lockstep, free == stepped, sum(len(t) for t, _ in free.values()))
"""


def readme_config(work: Path) -> tuple[Path, Path]:
    """The README's sample config (paths made to reach the checkout), and the same without [risk]."""
    text = (ROOT / "README.md").read_text()
    sample = re.search(r"```toml\n(.*?)```", text, re.S)
    assert sample is not None, "README.md has no TOML sample"
    config = sample.group(1)
    config = config.replace('path = "data"', f'path = "{ROOT / "examples" / "data"}"')
    config = config.replace('"../strategies/sma_cross.lua"', f'"{ROOT / "strategies" / "sma_cross.lua"}"')
    with_risk = work / "readme.toml"
    with_risk.write_text(config)
    without = work / "no_risk.toml"
    without.write_text(config[: config.index("[risk]")])
    return with_risk, without


def wall(config: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "engine_core", "run", "-q", "--no-report", "-c", str(config)], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with_risk, without = readme_config(Path(tmp))
        ratios = []
        for k in range(args.rounds):
            pair = [("with [risk]", with_risk), ("without", without)]
            times = dict((name, wall(path)) for name, path in (pair if k % 2 == 0 else pair[::-1]))
            ratios.append(times["with [risk]"] / times["without"])
            print(f"round {k + 1}: with [risk] {times['with [risk]']:.2f} s, without {times['without']:.2f} s")
        print(f"with [risk] / without: median x{statistics.median(ratios):.2f} (x{min(ratios):.2f}-x{max(ratios):.2f})")
        check = subprocess.run(
            [sys.executable, "-c", CHECK, str(with_risk)], capture_output=True, text=True, check=True
        )
        lockstep, same, trades = check.stdout.split()
        print(f"stepped bar by bar in event-time order: {lockstep}; {trades} round trips, same as stepped: {same}")


if __name__ == "__main__":
    main()

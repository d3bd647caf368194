"""``examples/binance_paper.toml`` as shipped, pointed at the local fake
Binance by its URL keys: live klines into the paper broker, run as a user
runs it (``engine run``), stopped with Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_paper_example_runs_live_binance_data_into_the_paper_broker(fake, tmp_path):
    for symbol in ("BTCUSDT", "ETHUSDT"):
        fake.add_history(symbol, 250, price=20000.0)
    text = (ROOT / "examples" / "binance_paper.toml").read_text()
    assert 'dir = "../reports/binance_paper"' in text and 'script = "../strategies/sma_cross.lua"' in text
    text = text.replace("../strategies/", f"{ROOT}/strategies/").replace("../reports/binance_paper", "out")
    text = text.replace(
        'type = "binance"\n', f'type = "binance"\nrest_url = "{fake.http_url}"\nws_url = "{fake.ws_url}"\n'
    )
    config = tmp_path / "binance_paper.toml"
    config.write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_DISABLE_PLUGIN_AUTOLOAD"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine_core", "run", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        while fake.connected_streams() < 1:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the example never connected to the market stream"
            time.sleep(0.05)
        # each symbol: a drop (fast below slow), a jump (fast crosses above: enter), a bar to fill at its open
        for close in (19000.0, 21000.0, 21010.0):
            for symbol in ("BTCUSDT", "ETHUSDT"):
                fake.stream_bar(symbol, close)
        journal = tmp_path / ".engine" / "binance-paper.sqlite"
        deadline = time.monotonic() + 60
        while not _fills(journal) >= 2:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no paper fills"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Event loop is closed" not in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["mode"] == "live" and summary["total"]["bars"] == 6 and summary["total"]["fills"] == 2
    assert fake.placed == []  # paper: no order went to Binance


def _fills(journal: Path) -> int:
    if not journal.exists():
        return 0
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute("SELECT count(*) FROM events WHERE kind = 'fill'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()

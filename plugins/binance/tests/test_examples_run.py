"""The shipped Binance examples, as they are, pointed at the local fake
Binance by their URL keys and run as a user runs them (``engine run``,
stopped with Ctrl-C)."""

from __future__ import annotations

import json
import signal
import subprocess
from decimal import Decimal
from pathlib import Path

from engine_plugin_binance.testing import API_KEY, API_SECRET

from engine_core.testing import engine_env, exited, journal_value, start_engine, wait_until

ROOT = Path(__file__).resolve().parents[3]


def example(name: str, tmp_path: Path, source: dict[str, str], broker: dict[str, str] | None = None) -> Path:
    """The example's text with its relative paths made absolute, its report
    in ``tmp_path/out`` and the URL keys added to its tables."""
    text = (ROOT / "examples" / name).read_text()
    assert 'script = "../strategies/sma_cross.lua"' in text and 'dir = "../reports/' in text
    text = text.replace("../strategies/", f"{ROOT}/strategies/")
    text = text.replace(f'dir = "../reports/{name.removesuffix(".toml")}"', 'dir = "out"')
    for table, keys in (("source", source), ("broker", broker or {})):
        lines = "".join(f'{k} = "{v}"\n' for k, v in keys.items())
        head = f'[{table}]\ntype = "binance"\n'
        if keys:
            assert head in text
            text = text.replace(head, head + lines)
    config = tmp_path / name
    config.write_text(text)
    return config


def fills(journal: Path) -> int:
    """Fills in a running engine's journal."""
    return journal_value(journal, "SELECT count(*) FROM events WHERE kind = 'fill'", 0)


def run_until(config: Path, fake, symbols: list[str], journal: Path, want_fills: int, env: dict[str, str]):
    """``engine run`` the config; once it streams, make sma_cross enter on
    every symbol; Ctrl-C after ``want_fills`` fills. Returns (code, out, err)."""
    proc = start_engine(
        "run", "-c", str(config), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=config.parent
    )
    try:
        wait_until(lambda: fake.connected_streams() == 1, "the market stream", 60.0, stop_if=exited(proc))
        # a drop (fast below slow), a jump (fast crosses above: enter), one more bar (a paper fill at its open)
        for close in (19000.0, 21000.0, 21010.0):
            for symbol in symbols:
                fake.stream_bar(symbol, close)
        wait_until(lambda: fills(journal) >= want_fills, f"{want_fills} fills", 60.0, stop_if=exited(proc))
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_the_paper_example_runs_live_binance_data_into_the_paper_broker(fake, tmp_path):
    for symbol in ("BTCUSDT", "ETHUSDT"):
        fake.add_history(symbol, 250, price=20000.0)
    config = example("binance_paper.toml", tmp_path, {"rest_url": fake.http_url, "ws_url": fake.ws_url})
    journal = tmp_path / ".engine" / "binance-paper.sqlite"
    code, out, err = run_until(config, fake, ["BTCUSDT", "ETHUSDT"], journal, 2, engine_env())
    assert code == 0, err
    assert "Traceback" not in err and "Event loop is closed" not in err
    assert "warning" not in err  # a shipped example runs without warnings
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["mode"] == "live" and summary["total"]["bars"] == 6 and summary["total"]["fills"] == 2
    assert fake.placed == []  # paper fills: nothing went to Binance


def test_the_testnet_example_trades_through_the_binance_broker(fake, tmp_path):
    fake.add_history("BTCUSDT", 250, price=20000.0)
    fake.balances["BTC"] = Decimal(1)  # the testnet gives every account assets of its own
    config = example(
        "binance_testnet.toml",
        tmp_path,
        {"rest_url": fake.http_url, "ws_url": fake.ws_url},
        {"rest_url": fake.http_url, "ws_api_url": fake.ws_api_url},
    )
    journal = tmp_path / ".engine" / "binance-testnet.sqlite"
    env = engine_env(BINANCE_API_KEY=API_KEY, BINANCE_API_SECRET=API_SECRET)
    code, out, err = run_until(config, fake, ["BTCUSDT"], journal, 1, env)
    assert code == 0, err
    assert "Traceback" not in err and API_SECRET not in out + err
    assert "warning" not in err  # a shipped example runs without warnings
    assert err.startswith(f"trading on binance spot, the testnet (test money): {fake.http_url}, api key fak...\n")
    [order] = fake.placed
    assert (order["symbol"], order["side"], order["type"], order["quantity"]) == ("BTCUSDT", "BUY", "MARKET", "0.001")
    assert fake.bad_signatures == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    btc = summary["per_symbol"]["BTCUSDT"]
    assert btc["fills"] == 1 and btc["halted"] is None and btc["final_state"] == "in_trade"
    assert Decimal(btc["position_qty"]) == Decimal("0.000999")  # what the account got: 0.1% kept as fee

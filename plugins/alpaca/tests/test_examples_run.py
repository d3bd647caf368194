"""The shipped Alpaca example, as it is, pointed at the local fake Alpaca by
its URL keys and run as a user runs it (``engine run``, stopped with Ctrl-C)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from engine_plugin_alpaca.testing import KEY_ID, MINUTE, SECRET, minute_bars
from engine_plugin_alpaca.wire import parse_time

from engine_core import Bar
from engine_core.testing import engine_env, exited, journal_value, run_engine, start_engine, wait_until

ROOT = Path(__file__).resolve().parents[3]
OPEN = parse_time("2024-01-02T14:30:00Z")
CLOSE = parse_time("2024-01-02T21:00:00Z")
NEXT_OPEN = parse_time("2024-01-03T14:30:00Z")


def example(name: str, tmp_path: Path, source: dict[str, str], broker: dict[str, str]) -> Path:
    """The example's text with its relative paths made absolute, its report
    in ``tmp_path/out`` and the URL keys added to its tables."""
    text = (ROOT / "examples" / name).read_text()
    assert 'script = "../strategies/sma_cross.lua"' in text and 'dir = "../reports/' in text
    text = text.replace("../strategies/", f"{ROOT}/strategies/")
    text = text.replace(f'dir = "../reports/{name.removesuffix(".toml")}"', 'dir = "out"')
    for table, keys in (("source", source), ("broker", broker)):
        head = f'[{table}]\ntype = "alpaca"\n'
        assert head in text
        text = text.replace(head, head + "".join(f'{k} = "{v}"\n' for k, v in keys.items()))
    config = tmp_path / name
    config.write_text(text)
    return config


def fills(journal: Path) -> int:
    return journal_value(journal, "SELECT count(*) FROM events WHERE kind = 'fill'", 0)


def test_the_paper_example_trades_live_alpaca_bars_on_the_paper_account(server, tmp_path):
    symbols = ("AAPL", "MSFT")
    for symbol in symbols:
        server.add_history(minute_bars(symbol, OPEN, 240))
    server.set_clock(OPEN + 240 * MINUTE + 30 * 10**9, True, NEXT_OPEN, CLOSE)
    urls = {"data_url": server.http_url, "stream_url": server.ws_url, "trading_url": server.http_url}
    config = example("alpaca_paper.toml", tmp_path, urls, {"trading_url": server.http_url})
    journal = tmp_path / ".engine" / "alpaca-paper.sqlite"
    env = engine_env(APCA_API_KEY_ID=KEY_ID, APCA_API_SECRET_KEY=SECRET)
    proc = start_engine(
        "run", "-c", str(config), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    waited: AssertionError | None = None
    try:
        wait_until(lambda: server.subscribed(*symbols), "the market stream", 60.0, stop_if=exited(proc))
        # a drop (fast below slow), a jump (fast crosses above: a setup), one more bar (the entry)
        for i, close in enumerate((90.0, 130.0, 131.0)):
            server.push_bars(
                Bar(s, OPEN + (240 + i) * MINUTE, close, close + 0.05, close - 0.05, close, 100) for s in symbols
            )
        wait_until(lambda: fills(journal) >= 2, "an entry filled on each symbol", 60.0, stop_if=exited(proc))
    except AssertionError as exc:
        waited = exc
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    venue = [(o.client_order_id, o.status) for o in server.orders.values()]
    assert waited is None, f"{waited}; the venue's orders {venue}; the engine wrote:\n{err[-3000:]}"
    assert proc.returncode == 0, err
    assert "Traceback" not in err and SECRET not in out + err
    posts = sorted(server.order_posts, key=lambda body: body["symbol"])
    assert [(b["symbol"], b["side"], b["qty"], b["type"], b["order_class"]) for b in posts] == [
        ("AAPL", "buy", "1", "market", "oto"),  # the example's stop_loss goes with the entry
        ("MSFT", "buy", "1", "market", "oto"),
    ]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["mode"] == "live" and summary["total"]["bars"] == 6 and summary["total"]["fills"] == 2
    for symbol in symbols:
        row = summary["per_symbol"][symbol]
        assert row["halted"] is None and row["final_state"] == "in_trade"
        assert server.order_by_client_id(f"alpaca-paper-{symbol}-1").status == "filled"


def test_the_shipped_example_validates_as_it_is():
    env = engine_env(APCA_API_KEY_ID="PKEXAMPLE", APCA_API_SECRET_KEY="example-secret")
    result = run_engine("validate", str(ROOT / "examples" / "alpaca_paper.toml"), env=env)
    assert result.returncode == 0, result.stderr
    assert (
        "ok (live, 2 symbols, source alpaca, strategy sma_cross.lua on lua (time budget 100 ms per call"
        in result.stdout
    )
    recordings = ROOT / "examples" / ".engine" / "recordings" / "alpaca-paper"
    assert f"broker alpaca, recorded to {recordings})" in result.stdout
    assert "example-secret" not in result.stdout + result.stderr

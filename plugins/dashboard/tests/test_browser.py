"""The dashboard in a real browser (Playwright driving Debian's chromium):
mosquitto, a live engine on the simulated feed publishing with control on,
and ``engine dashboard`` opened with its token.

Screenshots of the main pages go to the test's tmp_path and, when
DASHBOARD_SCREENS names a folder, there too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import TOKEN, Dashboard, backtest, live_config
from mqtt_brokers import Subscriber

from engine_core.testing import run_engine, start_engine, wait_until, write_config
from engine_core.testing.processes import exited

playwright = pytest.importorskip("playwright.sync_api", reason="pip install 'engine-plugin-dashboard[test]'")

CHROMIUM = "/usr/bin/chromium"
WAIT = 30_000  # ms Playwright waits for the page to show something


@pytest.fixture
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no {CHROMIUM}: apt-get install chromium (.ci/run does)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def shot(page: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("DASHBOARD_SCREENS"):
        target = Path(os.environ["DASHBOARD_SCREENS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / f"dashboard-{path.name}")


def row(page: Any, symbol: str) -> Any:
    return page.locator(f'tr[data-key="e1/{symbol}"]')


def test_a_trader_watches_steers_and_browses_reports(tmp_path, broker, browser):
    first = backtest(tmp_path, "slow", seed=1, every=10)
    second = backtest(tmp_path, "fast", seed=2, every=4)
    engine = start_engine("run", "-c", str(live_config(tmp_path, broker.port)), cwd=tmp_path)
    statuses = Subscriber(broker.port, "t/e1/+/status", client_id="watcher")
    dash = Dashboard(
        "--mqtt", f"127.0.0.1:{broker.port}", "--prefix", "t", "--reports", str(tmp_path / "reports"), "--token", TOKEN
    )
    try:
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(dash.url)
        # the token moved into a cookie and out of the address bar
        assert "token" not in page.url

        # each symbol's row changes as bars arrive
        for symbol in ("AAA", "BBB", "CCC"):
            row(page, symbol).locator("td.last_bar").wait_for(timeout=WAIT)
        seen = {s: row(page, s).locator("td.last_bar").inner_text() for s in ("AAA", "BBB", "CCC")}
        for symbol, before in seen.items():
            page.wait_for_function(
                '([key, before]) => { const td = document.querySelector(`tr[data-key="${key}"] td.last_bar`);'
                " return td && td.textContent !== before; }",
                arg=[f"e1/{symbol}", before],
                timeout=WAIT,
            )
        assert page.locator("#link").get_attribute("data-state") == "connected"
        # engine-wide: the engine's cash and equity (its status carries them), its curve, the kill switches
        card = page.locator('.engine-card[data-engine="e1"]')
        page.wait_for_selector('.engine-card[data-engine="e1"][data-curve="equity"]', timeout=WAIT)
        assert card.locator(".equity").inner_text().startswith("equity ")
        assert card.locator(".cash").inner_text().startswith("cash ")
        for symbol in ("AAA", "BBB", "CCC"):
            assert "of 50.00%" in card.locator(f'.kill[data-symbol="{symbol}"]').inner_text()
        shot(page, tmp_path, "fleet")

        # AAA in a trade; pause it: paused on the page and in the engine's own status
        page.wait_for_selector('tr[data-key="e1/AAA"][data-state="in_trade"]', timeout=WAIT)
        page.once("dialog", lambda dialog: dialog.accept())
        row(page, "AAA").locator("button.pause").click()
        page.wait_for_selector('tr[data-key="e1/AAA"][data-paused="true"]', timeout=WAIT)
        page.locator(".reply.ok", has_text="pause on e1").wait_for(timeout=WAIT)
        wait_until(
            lambda: any(p.get("symbol") == "AAA" and p["paused"] for p in statuses.on("t/e1/AAA/status")),
            "the engine's status of AAA to say paused",
            stop_if=exited(engine),
        )
        assert row(page, "BBB").get_attribute("data-paused") == "false"

        # flatten it: the engine's reply, then the fill on the symbol's page
        page.goto(f"{dash.base}/#/symbol/e1/AAA")
        page.locator(".symbol-head .figures").wait_for(timeout=WAIT)
        position = page.locator(".symbol-head .position").inner_text()
        assert position.split()[-1] not in ("0", "–")
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator(".symbol-head button.flatten").click()
        page.locator(".reply.ok", has_text="flatten").wait_for(timeout=WAIT)
        page.locator('ul.events li[data-kind="fill"]', has_text="sell").first.wait_for(timeout=WAIT)
        page.wait_for_function(
            "() => document.querySelector('.symbol-head .position').textContent.trim().endsWith(' 0')", timeout=WAIT
        )
        # the indicators the strategy reads: the average over the candles, the RSI in a pane below
        page.wait_for_selector('.chart[data-indicators*="sma(5)"][data-indicators*="rsi(5)"]', timeout=WAIT)
        shot(page, tmp_path, "symbol")

        # the broker goes away: the page says so, then recovers by itself
        page.goto(f"{dash.base}/#/")
        row(page, "BBB").wait_for(timeout=WAIT)
        broker.kill()
        page.wait_for_selector('#link[data-state="reconnecting"]', timeout=WAIT)
        page.locator("#link-banner").wait_for(state="visible", timeout=WAIT)
        page.wait_for_selector('tr[data-key="e1/BBB"] button.pause[disabled]', timeout=WAIT)  # greyed out, with why
        assert "not reachable" in row(page, "BBB").locator("button.pause").get_attribute("title")
        shot(page, tmp_path, "reconnecting")
        broker.start()
        page.wait_for_selector('#link[data-state="connected"]', timeout=WAIT)
        page.wait_for_selector('tr[data-key="e1/BBB"] button.pause:not([disabled])', timeout=WAIT)
        before = row(page, "BBB").locator("td.last_bar").inner_text()
        page.wait_for_function(
            "(before) => document.querySelector('tr[data-key=\"e1/BBB\"] td.last_bar').textContent !== before",
            arg=before,
            timeout=WAIT,
        )
        assert any("reconnecting" in line for line in dash.lines)

        # the report browser: sort by Sharpe, open the best, see its trades
        page.goto(f"{dash.base}/#/reports")
        page.locator('th[data-key="sharpe"]').click()
        sharpe_cells = page.locator("table.sortable tbody tr td.sharpe").all_inner_texts()
        values = [float(v.replace(",", "")) for v in sharpe_cells]
        assert values == sorted(values, reverse=True) and len(values) == 2
        shot(page, tmp_path, "reports")
        best = page.locator("table.sortable tbody tr").first.get_attribute("data-id")
        assert best in (first.name, second.name)
        page.locator("table.sortable tbody tr").first.locator("td.id a").click()
        page.locator("table.trades tbody tr").first.wait_for(timeout=WAIT)
        trades = (tmp_path / "reports" / best / "trades.csv").read_text().splitlines()[1:]
        assert page.locator("table.trades tbody tr").count() == len(trades)
        assert page.locator("table.trades tbody tr").first.locator("td.pnl").inner_text() != ""
        # each symbol's candlesticks with its trades on them
        assert page.locator('.chart[data-kind="candles"]').count() == 2
        shot(page, tmp_path, "report")

        page.goto(f"{dash.base}/#/compare/{first.name}/{second.name}")
        page.locator(".side-by-side .column").nth(1).wait_for(timeout=WAIT)
        shot(page, tmp_path, "compare")
        assert errors == []
    finally:
        statuses.close()
        dash.stop()
        engine.terminate()
        engine.wait(30)


def test_without_the_token_the_page_is_refused(tmp_path, browser):
    dash = Dashboard("--reports", str(tmp_path / "reports"), "--token", TOKEN)
    try:
        page = browser.new_page()
        response = page.goto(f"{dash.base}/")
        assert response.status == 401
        assert "needs its token" in page.content()
        page.goto(dash.url)
        page.locator("#link[data-state='none']").wait_for(timeout=WAIT)
        page.goto(f"{dash.base}/#/reports")
        page.get_by_text("No reports yet").wait_for(timeout=WAIT)
        shot(page, tmp_path, "no-reports")
    finally:
        dash.stop()


def test_the_shards_of_a_fleet_and_of_a_run_are_shown_together(tmp_path, broker, browser, shard_reports):
    config = live_config(tmp_path, broker.port)
    config.write_text(config.read_text().replace('["AAA", "BBB", "CCC"]', '["AAA", "BBB", "CCC", "DDD"]'))
    engines = [start_engine("run", "-c", str(config), "--shard", k, cwd=tmp_path) for k in ("1/2", "2/2")]
    dash = Dashboard(
        "--mqtt", f"127.0.0.1:{broker.port}", "--prefix", "t", "--reports", str(shard_reports), "--token", TOKEN
    )
    try:
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(dash.url)
        # the fleet: both shards' engines as one line above their cards, each symbol once
        fleet = page.locator('.fleet-card[data-fleet="e1"]')
        page.wait_for_selector('.fleet-card[data-fleet="e1"][data-online="2"]', timeout=WAIT)
        assert "online 2 of 2" in fleet.inner_text() and "symbols 4" in fleet.inner_text()
        page.wait_for_selector('.fleet-card[data-fleet="e1"] .equity', timeout=WAIT)
        for key in ("e1-1of2/AAA", "e1-1of2/BBB", "e1-1of2/CCC", "e1-2of2/DDD"):
            page.locator(f'tr[data-key="{key}"]').wait_for(timeout=WAIT)
        shot(page, tmp_path, "fleet-shards")

        # the run's shard reports: listed together, and shown as one run
        page.goto(f"{dash.base}/#/reports")
        page.locator('tr[data-run="sh"] a.together').click()
        page.locator("section.shards tbody tr").nth(1).wait_for(timeout=WAIT)
        assert page.locator("section.shards tbody tr").all_inner_texts()[0].startswith("sh-1of2")
        trades = sum(len((shard_reports / f"sh-{k}of2" / "trades.csv").read_text().splitlines()) - 1 for k in (1, 2))
        page.locator("table.trades tbody tr").first.wait_for(timeout=WAIT)
        assert page.locator("table.trades tbody tr").count() == trades
        assert page.locator('.chart[data-kind="candles"]').count() == 4
        shot(page, tmp_path, "report-shards")
        assert errors == []
    finally:
        dash.stop()
        for engine in engines:
            engine.terminate()
        for engine in engines:
            engine.wait(30)


def test_a_report_with_many_trades_marks_every_trade_or_says_where_they_are(tmp_path, browser):
    """Over 200 trades: the equity curve must not carry only the first few
    hundred markers (read as no trades after them), and each symbol's candles
    carry every trade of that symbol."""
    (tmp_path / "busy.py").write_text(
        "class S:\n    def watch(self, ctx):\n        return 'enter'\n"
        "    def close_watch(self, ctx):\n        return None\n"
        "    def in_trade(self, ctx):\n        return 'exit'\n"
    )
    config = write_config(
        tmp_path / "busy.toml",
        {
            "engine": {"symbols": ["AAA", "BBB"], "id": "busy"},
            "source": {"type": "simulated", "bars": 1000, "seed": 3, "interval": 3600},
            "strategy": {"host": "python", "class": "busy.py:S"},
            "report": {"dir": "reports/busy"},
        },
    )
    done = run_engine("run", "-c", str(config), "-q")
    assert done.returncode == 0, done.stderr
    trades = [line.split(",")[0] for line in (tmp_path / "reports/busy/trades.csv").read_text().splitlines()[1:]]
    assert len(trades) > 200
    dash = Dashboard("--reports", str(tmp_path / "reports"), "--token", TOKEN)
    try:
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        page.goto(dash.url)
        page.goto(f"{dash.base}/#/report/busy")
        page.locator("table.trades tbody tr").first.wait_for(timeout=WAIT)
        equity = page.locator(".chart[data-markers]").first
        assert equity.get_attribute("data-markers") == "0"
        assert page.get_by_text("too many for this chart").count() == 1
        charts = page.locator('.chart[data-kind="candles"]')
        shown = [int(charts.nth(i).get_attribute("data-markers") or -1) for i in range(charts.count())]
        assert shown == [2 * trades.count("AAA"), 2 * trades.count("BBB")]
        shot(page, tmp_path, "report-busy")
    finally:
        dash.stop()

"""The dashboard in a real browser (Playwright driving Debian's chromium):
mosquitto, a live engine on the simulated feed publishing with control on,
and ``engine dashboard`` opened with its token.

Screenshots of the main pages go to the test's tmp_path and, when
DASHBOARD_SCREENS names a folder, there too.
"""

from __future__ import annotations

import contextlib
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
        assert page.locator("h1").inner_text() == "This dashboard needs its token"  # a page, not raw JSON
        shot(page, tmp_path, "fix-401")
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


def test_an_event_in_both_the_snapshot_and_the_next_push_is_listed_once(tmp_path, browser):
    """The page loads /api/fleet (or /api/symbol) while an event waits in the
    server's 0.1 s batch, and the next push brings it again: the fleet's
    "Orders, fills and errors" and a symbol's events list show it once (by its
    engine:seq id). Here the same push is replayed twice into the page."""
    dash = Dashboard("--reports", str(tmp_path / "reports"), "--token", TOKEN)
    fill = {"id": "e1:5", "engine": "e1", "symbol": "AAA", "time": "2026-01-02T03:04:05Z", "event": "fill"}
    fill["text"] = "fill buy 1 @ 10 (commission 0) c1"
    replay = "(push) => { for (let i = 0; i < 2; i++) for (const fn of live.listeners) fn(push); }"
    try:
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(dash.url)
        page.locator("#link[data-state='none']").wait_for(timeout=WAIT)
        page.evaluate(replay, {"rows": [], "engines": [], "recent": [fill, {**fill, "id": "e1:6"}]})
        assert (
            page.locator("ul.recent li").all_inner_texts()
            == ["2026-01-02 03:04:05 e1 AAA fill buy 1 @ 10 (commission 0) c1"] * 2
        )  # e1:6, then e1:5: each once
        assert [page.locator("ul.recent li").nth(i).get_attribute("data-id") for i in range(2)] == ["e1:6", "e1:5"]

        page.goto(f"{dash.base}/#/symbol/e1/AAA")
        page.locator(".symbol-head .error").wait_for(timeout=WAIT)  # no such symbol yet: its list still takes pushes
        page.evaluate(replay, {"rows": [], "events": [fill], "bars": []})
        assert page.locator("ul.events li").count() == 1
        shot(page, tmp_path, "fix-dedupe-symbol")
        page.goto(f"{dash.base}/#/")
        page.locator("#link[data-state='none']").wait_for(timeout=WAIT)
        page.evaluate(replay, {"rows": [], "engines": [], "recent": [fill]})
        assert page.locator("ul.recent li").count() == 1  # the list was loaded afresh
        shot(page, tmp_path, "fix-dedupe-fleet")
        assert errors == []
    finally:
        dash.stop()


def test_the_compare_view_fits_each_whole_run_in_its_half_width_charts(tmp_path, browser):
    """Two runs of 2,000 bars side by side: each equity chart shows the run
    from its first point to its last, not from about its sixth day on (the
    chart's default minimum bar spacing cannot fit 2,000 points in half a page)."""
    from engine_plugin_dashboard import reports

    (tmp_path / "often.py").write_text(
        "class S:\n    def watch(self, ctx):\n        return 'enter' if ctx.index % 50 == 0 else None\n"
        "    def close_watch(self, ctx):\n        return None\n"
        "    def in_trade(self, ctx):\n        return 'exit' if ctx.index % 50 == 25 else None\n"
    )
    for name, seed in (("long1", 1), ("long2", 2)):
        config = write_config(
            tmp_path / f"{name}.toml",
            {
                "engine": {"symbols": ["AAA"], "id": name},
                "source": {"type": "simulated", "bars": 2000, "seed": seed, "interval": 3600},
                "strategy": {"host": "python", "class": "often.py:S"},
                "report": {"dir": f"reports/{name}"},
            },
        )
        done = run_engine("run", "-c", str(config), "-q")
        assert done.returncode == 0, done.stderr
    spans = []
    for name in ("long1", "long2"):
        times = [int(t) for t, _ in reports.report(tmp_path / "reports", name)["equity"]]
        assert len(times) >= 1900
        spans.append([str(times[0]), str(times[-1])])
    dash = Dashboard("--reports", str(tmp_path / "reports"), "--token", TOKEN)
    try:
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        page.goto(dash.url)
        page.goto(f"{dash.base}/#/compare/long1/long2")
        charts = page.locator(".side-by-side .column .chart[data-markers]")  # the equity charts
        charts.nth(1).wait_for(timeout=WAIT)
        with contextlib.suppress(playwright.TimeoutError):  # the charts settle at their sizes; then read below
            page.wait_for_function(
                "(spans) => [...document.querySelectorAll('.side-by-side .chart[data-markers]')]"
                ".every((c, i) => c.dataset.from === spans[i][0] && c.dataset.to === spans[i][1])",
                arg=spans,
                timeout=10_000,
            )
        shown = [[charts.nth(i).get_attribute("data-from"), charts.nth(i).get_attribute("data-to")] for i in range(2)]
        assert shown == spans
        shot(page, tmp_path, "fix-compare")
    finally:
        dash.stop()


def test_money_prices_kill_switches_and_study_figures_read_as_a_trader_expects(tmp_path, browser):
    """PnL, cash and equity at 2 decimals (914.10, not 914.1), prices with at
    least 2, a kill switch with no loss today says 0.00 (not -0), and a
    study's figures are rounded (not raw floats)."""
    study = tmp_path / "reports" / "st"
    study.mkdir(parents=True)
    (study / "trials.csv").write_text(
        "number,state,value,fast,sharpe,pnl\n0,complete,0.123456789012345,3,1.98765432109876,914.1\n"
    )
    dash = Dashboard("--reports", str(tmp_path / "reports"), "--token", TOKEN)
    row = {"engine": "e1", "symbol": "AAA", "state": "in_trade", "position": "2", "avg_price": "215.9"}
    row |= {"close": 216.5, "unrealised": "1.2", "realised": "914.1", "pending": None, "stops": {"stop_loss": 200.5}}
    kills = {"AAA": {"daily_loss_limit": 0.05, "max_drawdown": None, "day_start": 10000.0, "last": 10000.0}}
    engine = {"engine": "e1", "online": True, "cash": "9000.5", "equity": "10050", "kill_switches": kills}
    try:
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(dash.url)
        page.locator("#link[data-state='none']").wait_for(timeout=WAIT)
        page.evaluate(
            "(push) => { for (const fn of live.listeners) fn(push); }",
            {"rows": [row], "engines": [engine], "recent": []},
        )
        tr = page.locator('tr[data-key="e1/AAA"]')
        cells = {
            c: tr.locator(f"td.{c}").inner_text() for c in ("avg_price", "close", "unrealised", "realised", "stops")
        }
        assert cells == {
            "avg_price": "215.90",
            "close": "216.50",
            "unrealised": "1.20",
            "realised": "914.10",
            "stops": "SL 200.50",
        }
        card = page.locator('.engine-card[data-engine="e1"]')
        assert card.locator(".cash").inner_text() == "cash 9,000.50"
        assert card.locator(".equity").inner_text() == "equity 10,050.00"
        assert card.locator('.kill[data-symbol="AAA"]').inner_text().startswith("AAA: today 0.00 (limit 5.00%")
        shot(page, tmp_path, "fix-cosmetics-fleet")

        page.goto(f"{dash.base}/#/study/st")
        page.locator("table.sortable tbody tr").first.wait_for(timeout=WAIT)
        trial = page.locator("table.sortable tbody tr").first
        shown = {c: trial.locator(f"td.{c}").inner_text() for c in ("number", "value", "fast", "sharpe", "pnl")}
        assert shown == {"number": "0", "value": "0.1235", "fast": "3", "sharpe": "1.9877", "pnl": "914.10"}
        shot(page, tmp_path, "fix-cosmetics-study")
        assert errors == []
    finally:
        dash.stop()


def test_while_the_dashboard_has_lost_the_broker_an_engines_state_is_unknown(tmp_path, browser):
    """The broker down, the engine card must not read "offline (connection
    lost)" from the sink's last will: the engine may still run; the page says
    the dashboard lost the broker and the engine's state is unknown."""
    dash = Dashboard("--reports", str(tmp_path / "reports"), "--token", TOKEN)
    will = {"engine": "e1", "online": False, "reason": "connection lost"}
    push = "(push) => live.source.onmessage({ data: JSON.stringify(push) })"  # as the stream delivers it
    try:
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        # The server's own link ("none") reaches the page's stream once, on its first push after the page
        # connects: the broker-lost state below is pushed after it, or that push would take it back.
        page.add_init_script(
            "window.linksPushed = 0; const Source = window.EventSource;"
            "window.EventSource = class extends Source { constructor(...args) { super(...args);"
            " this.addEventListener('message', (m) => { if (JSON.parse(m.data).link) window.linksPushed += 1; }); } };"
        )
        page.goto(dash.url)
        page.locator("#link[data-state='none']").wait_for(timeout=WAIT)
        page.wait_for_function("() => window.linksPushed > 0", timeout=WAIT)
        lost = {"state": "reconnecting", "detail": "127.0.0.1:1883: connection refused", "since": 0}
        page.evaluate(push, {"rows": [], "engines": [will], "recent": [], "link": lost})
        status = page.locator('.engine-card[data-engine="e1"] .online')
        status.wait_for(timeout=WAIT)
        assert status.inner_text() == "unknown: the dashboard lost the MQTT broker"
        assert "offline" not in page.locator('.engine-card[data-engine="e1"]').inner_text()
        shot(page, tmp_path, "fix-broker-lost")
        back = {"state": "connected", "detail": "127.0.0.1:1883", "since": 1}
        page.evaluate(push, {"rows": [], "engines": [{**will, "online": True, "reason": None}], "link": back})
        page.wait_for_function("() => document.querySelector('.engine-card .online').textContent === 'online'")
        assert errors == []
    finally:
        dash.stop()

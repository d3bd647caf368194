"""The dashboard's HTTP API and its state from messages, journals and report
folders, in-process (aiohttp's test client), and its command line's refusals."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from dashboard_helpers import TOKEN, backtest
from engine_plugin_dashboard import journal_view, reports, security
from engine_plugin_dashboard.fleet import Fleet
from engine_plugin_dashboard.server import Settings, make_app

from engine_core.journal import Journal
from engine_core.report.merge import default_output, merge_reports
from engine_core.testing import run_engine


async def client_for(tmp_path: Path, fleet: Fleet | None = None) -> TestClient:
    settings = Settings(token=TOKEN, reports=tmp_path / "reports", fleet=fleet or Fleet("none"))
    client = TestClient(TestServer(make_app(settings)))
    await client.start_server()
    return client


async def test_every_request_needs_the_token_and_the_first_visit_leaves_a_cookie(tmp_path):
    client = await client_for(tmp_path)
    try:
        for path in ("/", "/api/fleet", "/api/reports", "/api/stream", "/static/app.js"):
            response = await client.get(path)
            assert response.status == 401, path
            assert "needs its token" in (await response.json())["error"]
        wrong = await client.get("/api/fleet", headers={security.HEADER: "x" * 30})
        assert wrong.status == 401
        first = await client.get(f"/?token={TOKEN}", allow_redirects=False)
        assert first.status == 302 and first.headers["Location"] == "/"
        assert first.cookies[security.COOKIE].value == TOKEN
        assert first.cookies[security.COOKIE]["httponly"]
        page = await client.get("/")  # the cookie jar sends it now
        assert page.status == 200 and "engine dashboard" in await page.text()
    finally:
        await client.close()


async def test_control_needs_the_token_header_and_the_dashboards_own_origin(tmp_path):
    client = await client_for(tmp_path)
    body = {"engine": "e1", "command": "pause", "symbol": "AAA"}
    try:
        await client.get(f"/?token={TOKEN}", allow_redirects=False)  # the cookie alone is not enough
        assert (await client.post("/api/control", json=body)).status == 403
        other = await client.post(
            "/api/control", json=body, headers={security.HEADER: TOKEN, "Origin": "http://evil.example"}
        )
        assert other.status == 403
        assert "another origin" in (await other.json())["error"]
        assert (await client.get("/api/control")).status == 405
        own = f"http://{client.server.host}:{client.server.port}"
        allowed = await client.post("/api/control", json=body, headers={security.HEADER: TOKEN, "Origin": own})
        # past the guard: this dashboard has no broker, so the engine cannot be reached
        assert allowed.status == 409
        assert "read-only" in (await allowed.json())["error"]
    finally:
        await client.close()


def test_binding_another_address_without_a_token_is_refused_in_one_line(monkeypatch):
    monkeypatch.delenv(security.TOKEN_ENV, raising=False)
    done = run_engine("dashboard", "--host", "0.0.0.0", "--port", "0")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "--host 0.0.0.0" in lines[0] and "--token" in lines[0] and security.TOKEN_ENV in lines[0]
    assert "Traceback" not in done.stderr


def test_a_token_given_is_used_and_a_fresh_one_is_made_on_loopback(monkeypatch):
    monkeypatch.delenv(security.TOKEN_ENV, raising=False)
    assert security.resolve_token("0.0.0.0", TOKEN) == TOKEN
    monkeypatch.setenv(security.TOKEN_ENV, TOKEN)
    assert security.resolve_token("192.168.1.5", None) == TOKEN
    monkeypatch.delenv(security.TOKEN_ENV)
    made = security.resolve_token("127.0.0.1", None)
    assert len(made) >= 24 and made != security.resolve_token("127.0.0.1", None)


def status(symbol: str, **extra: object) -> bytes:
    body = {
        "schema": 1,
        "engine": "e1",
        "symbol": symbol,
        "state": "watch",
        "position": "0",
        "avg_price": None,
        "last_bar": None,
        "pending_order": None,
        "halted": None,
        "paused": False,
        "seq": 1,
        **extra,
    }
    return json.dumps(body).encode()


def test_a_malformed_message_is_counted_and_shown_never_applied():
    fleet = Fleet("mqtt")
    fleet.message("t", "t/e1/AAA/status", status("AAA"))
    fleet.message("t", "t/e1/AAA/status", b"{not json")
    fleet.message("t", "t/e1/AAA/status", json.dumps({"schema": 7}).encode())
    fleet.message(
        "t",
        "t/e1/AAA/fill",
        json.dumps(
            {"schema": 1, "event": "fill", "seq": 2, "symbol": "AAA", "ts": 1, "side": "buy", "qty": "x", "price": "1"}
        ).encode(),
    )
    fleet.message("t", "t/e1/AAA/status", status("AAA", state="in_trade", position="2", avg_price="10"))
    snap = fleet.snapshot()
    assert snap["malformed"] == 3
    assert [p["why"].split(":")[0] for p in snap["problems"]] == [
        "not JSON",
        "schema 7 is not supported (the dashboard reads schema 1)",
        "qty",
    ]
    [row] = snap["rows"]
    assert (row["state"], row["position"], row["realised"]) == ("in_trade", "2", "0")


def test_fills_give_the_realised_pnl_and_a_redelivered_event_counts_once():
    fleet = Fleet("mqtt")
    fleet.message("t", "t/e1/A%2FB/status", status("A/B"))

    def fill(seq: int, side: str, qty: str, price: str) -> None:
        body = {
            "schema": 1,
            "event": "fill",
            "seq": seq,
            "engine": "e1",
            "symbol": "A/B",
            "ts": seq * 10**9,
            "side": side,
            "qty": qty,
            "price": price,
            "commission": "0.5",
            "client_id": f"c{seq}",
        }
        fleet.message("t", "t/e1/A%2FB/fill", json.dumps(body).encode())

    fill(1, "buy", "2", "100")
    fill(2, "sell", "1", "110")
    fill(2, "sell", "1", "110")  # QoS 1 may deliver it again
    [row] = fleet.snapshot()["rows"]
    assert row["symbol"] == "A/B"
    assert row["realised"] == "9"  # +10 on the unit sold, two commissions of 0.5
    assert len(fleet.symbol_detail("e1", "A/B")["markers"]) == 2


def test_an_engine_that_restarts_numbers_its_events_again_and_none_is_dropped():
    fleet = Fleet("mqtt")

    def engine_status(since: str) -> None:
        body = {"schema": 1, "engine": "e1", "online": True, "mode": "live", "symbols": ["AAA"], "since": since}
        fleet.message("t", "t/e1/status", json.dumps(body).encode())

    def signal(seq: int) -> None:
        body = {"schema": 1, "event": "signal", "seq": seq, "engine": "e1", "symbol": "AAA", "ts": seq * 10**9}
        body |= {"action": "enter", "side": "buy", "detail": {}}
        fleet.message("t", "t/e1/AAA/signal", json.dumps(body).encode())

    engine_status("2024-01-01T00:00:00Z")
    signal(1)
    signal(2)
    engine_status("2024-01-01T00:00:00Z")  # the same start's status again: nothing changes
    signal(2)  # a redelivery of that start's second event
    engine_status("2024-01-02T00:00:00Z")  # the engine restarted: its events are numbered from 1 again
    signal(1)
    signal(2)
    events = fleet.symbol_detail("e1", "AAA")["events"]
    assert len(events) == 4
    assert len({e["id"] for e in events}) == 4


def test_the_journal_view_reads_a_journal_and_says_when_it_is_missing_or_locked(tmp_path):
    path = tmp_path / "e1.sqlite"
    with pytest.raises(journal_view.JournalUnreadable) as missing:
        journal_view.read(path)
    assert missing.value.state == "missing"
    journal = Journal(path)
    journal.save_symbol(
        "AAA",
        {
            "state": "in_trade",
            "qty": "3",
            "entry": {"price": "101.5"},
            "halted": None,
            "last_ts": 1_700_000_000_000_000_000,
        },
    )
    journal.close()
    fleet = Fleet("journal")
    journal_view.apply(fleet, "e1", journal_view.read(path))
    [row] = fleet.snapshot()["rows"]
    assert (row["state"], row["position"], row["avg_price"]) == ("in_trade", "3", "101.5")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE symbols SET data=data")
    try:
        with pytest.raises(journal_view.JournalUnreadable) as locked:
            journal_view.read(path)
        assert locked.value.state == "locked"
    finally:
        holder.execute("COMMIT")
        holder.close()


def test_the_report_listing_and_a_report_hold_the_figures_and_trades(tmp_path):
    assert reports.listing(tmp_path / "reports")["missing"]
    folder = backtest(tmp_path, "one", seed=3, every=6)
    listing = reports.listing(tmp_path / "reports")
    [entry] = listing["reports"]
    summary = json.loads((folder / "summary.json").read_text())
    assert entry["id"] == "one" and entry["sharpe"] == summary["total"]["sharpe"] is not None
    assert entry["trades"] == summary["total"]["trades"] > 0
    one = reports.report(tmp_path / "reports", "one")
    assert one["trade_count"] == entry["trades"] == len(one["trades"])
    assert len(one["markers"]) == 2 * entry["trades"]
    assert one["equity"][-1][1] == pytest.approx(summary["total"]["final_equity"])
    # the bars as candles (200 daily bars: one candle each), the trades drawn on them
    assert set(one["candles"]) == {"AAA", "BBB"} and one["bars_per_candle"] == {"AAA": 1, "BBB": 1}
    assert len(one["candles"]["AAA"]) == 200 and one["problems"] == []
    first_entry = min(m["time"] for m in one["markers"] if m["symbol"] == "AAA")
    assert one["candles"]["AAA"][0][0] <= first_entry <= one["candles"]["AAA"][-1][0]
    (folder / "candles.csv").unlink()  # a report written before the engine kept candles
    assert reports.report(tmp_path / "reports", "one")["candles"] == {}
    with pytest.raises(reports.ReportError):
        reports.report(tmp_path / "reports", "../..")
    with pytest.raises(reports.ReportError):
        reports.report(tmp_path / "reports", "nothing")


def test_a_bar_is_checked_as_it_is_decoded_and_fields_added_later_do_no_harm():
    fleet = Fleet("mqtt")

    def bar(seq: int, **extra: object) -> bytes:
        body = {"schema": 1, "seq": seq, "engine": "e1", "symbol": "AAA", "event": "bar", "ts": seq * 60 * 10**9}
        return json.dumps(
            {**body, "open": 10, "high": 11.5, "low": 9.5, "close": 11.0, "volume": 3.0, **extra}
        ).encode()

    fleet.message("t", "t/e1/AAA/bar", bar(1, later="a field a newer sink adds"))
    fleet.message("t", "t/e1/AAA/bar", bar(2, close="11"))
    fleet.message("t", "t/e1/AAA/bar", bar(3, ts="yesterday"))
    assert fleet.malformed == 2
    assert [p["why"] for p in fleet.problems] == [
        "unexpected content: Expected `float`, got `str` - at `$.close`",
        "unexpected content: Expected `int`, got `str` - at `$.ts`",
    ]
    assert fleet.symbol_detail("e1", "AAA")["bars"] == [[60.0, 10.0, 11.5, 9.5, 11.0]]


def test_the_engine_card_has_the_engines_equity_curve_when_its_status_carries_it():
    fleet = Fleet("mqtt")
    base = {"schema": 1, "engine": "e1", "online": True, "symbols": ["AAA"]}
    fleet.message("t", "t/e1/status", json.dumps(base).encode())
    fleet.tick()
    [engine] = fleet.snapshot()["engines"]
    assert (engine["curve"], engine["equity"], engine["kill_switches"]) == ("pnl", None, None)  # an older sink
    kills = {"AAA": {"max_drawdown": 0.2, "daily_loss_limit": None, "peak": 10100.0, "last": 10050.0, "tripped": None}}
    newer = {**base, "cash": "9000.5", "equity": "10050.25", "kill_switches": kills}
    fleet.message("t", "t/e1/status", json.dumps(newer).encode())
    fleet.message("t", "t/e1/status", json.dumps({**newer, "equity": "lots"}).encode())
    fleet.tick()
    snap = fleet.snapshot()
    [engine] = snap["engines"]
    assert (engine["curve"], engine["cash"], engine["equity"]) == ("equity", "9000.5", "10050.25")
    assert engine["kill_switches"] == kills
    assert [v for _, v in snap["pnl"]["e1"]] == [10050.25]  # the PnL-seen points made way for the equity
    assert snap["malformed"] == 1 and snap["problems"][0]["why"] == "equity: expected a decimal, got 'lots'"


def test_the_shards_of_a_run_are_listed_together_and_shown_as_one(tmp_path, shard_reports):
    shutil.copytree(shard_reports, tmp_path / "reports")
    first, second = tmp_path / "reports" / "sh-1of2", tmp_path / "reports" / "sh-2of2"
    listing = reports.listing(tmp_path / "reports")
    assert listing["runs"] == [{"run": "sh", "n": 2, "shards": ["sh-1of2", "sh-2of2"], "missing": [], "merged": None}]
    assert {r["id"]: r.get("shard") for r in listing["reports"]} == {"sh-1of2": "1/2", "sh-2of2": "2/2"}

    together = reports.shards(tmp_path / "reports", "sh")
    one, two = (json.loads((f / "summary.json").read_text())["total"] for f in (first, second))
    assert together["summary"]["total"]["trades"] == one["trades"] + two["trades"] == len(together["trades"])
    assert together["summary"]["total"]["pnl"] == pytest.approx(one["pnl"] + two["pnl"])
    assert sorted(together["candles"]) == sorted(together["summary"]["symbols"]) and len(together["candles"]) == 4
    assert [s["id"] for s in together["shards"]] == ["sh-1of2", "sh-2of2"] and together["problems"] == []

    # engine report merge's report of them is listed with them; a lost shard is named
    merge_reports([first, second], default_output([first, second]))  # what engine report merge runs
    assert reports.listing(tmp_path / "reports")["runs"][0]["merged"] == "sh"
    shutil.rmtree(second)
    assert reports.listing(tmp_path / "reports")["runs"][0]["missing"] == [2]
    with pytest.raises(reports.ReportError, match="no shard reports of 'other'"):
        reports.shards(tmp_path / "reports", "other")


def test_a_study_names_only_its_parameters_and_run_this_one_writes_only_those(tmp_path):
    """trials.csv as ``engine optimize`` writes it: the page's parameters are the
    searched ones, never a figure (orders, fills), and "run this one" puts
    only those into the trial's [strategy.params]."""
    backtest(tmp_path, "opt", seed=1, every=4)
    config = tmp_path / "opt.toml"
    config.write_text(
        config.read_text() + '\n[strategy.params]\nfast = 3\n\n[optimize]\nmetric = "pnl"\ntrials = 2\n'
        'sampler = "random"\n\n[optimize.params]\nfast = { low = 2, high = 9 }\n'
    )
    done = run_engine("optimize", "-c", str(config), "-q", "-j", "1")
    assert done.returncode == 0, done.stderr
    study = reports.study(tmp_path / "reports", "opt")
    assert {"orders", "fills"} <= set(study["columns"])
    assert study["params"] == ["fast"]
    number = study["trials"][0]["number"]
    written = reports.trial_config(tmp_path / "reports", "opt", number).read_text()
    params = written.split("[strategy.params]")[1].split("\n[")[0]
    assert "fast =" in params
    assert "orders" not in params and "fills" not in params


def test_the_equity_curve_outlives_a_broker_outage():
    """The broker gone, the engine's last will (no figures) stands for its
    status until it reconnects: its equity curve is kept, not swapped for
    "PnL seen" and cleared, then cleared again on the way back."""
    fleet = Fleet("mqtt")
    status = {"schema": 1, "engine": "e1", "online": True, "symbols": ["AAA"], "cash": "9000", "equity": "10000"}
    fleet.message("t", "t/e1/status", json.dumps(status).encode())
    fleet.tick()
    will = {"schema": 1, "engine": "e1", "online": False, "reason": "connection lost", "symbols": ["AAA"]}
    fleet.message("t", "t/e1/status", json.dumps(will).encode())
    fleet.tick()
    fleet.message("t", "t/e1/status", json.dumps({**status, "equity": "10100"}).encode())
    fleet.tick()
    [engine] = fleet.snapshot()["engines"]
    assert engine["curve"] == "equity"
    assert [v for _, v in fleet.snapshot()["pnl"]["e1"]] == [10000.0, 10100.0]


def test_an_event_batched_for_the_next_push_is_in_the_snapshot_and_the_push_once_by_its_id():
    """A page loads /api/fleet (or /api/symbol) while an event waits in the
    0.1 s change batch: the snapshot holds it, and so does the next push. Each
    listed item carries its engine and seq as its id, so the page lists it once."""
    fleet = Fleet("mqtt")
    fleet.message("t", "t/e1/AAA/status", status("AAA"))
    fleet.take_changes()

    def event(seq: int, name: str, **body: object) -> None:
        message = {"schema": 1, "event": name, "seq": seq, "engine": "e1", "ts": seq * 10**9, **body}
        fleet.message("t", f"t/e1/{'AAA/' if 'symbol' in body else ''}{name}", json.dumps(message).encode())

    event(5, "fill", symbol="AAA", side="buy", qty="1", price="10", commission="0", client_id="c1")
    event(6, "error", kind="feed", message="engine-wide: no symbol")
    snap, detail = fleet.snapshot(), fleet.symbol_detail("e1", "AAA")
    push = fleet.take_changes()
    assert push is not None
    assert [i["id"] for i in snap["recent"]] == ["e1:5", "e1:6"]
    assert [i["id"] for i in push["recent"]] == ["e1:5", "e1:6"]  # the engine-wide error is pushed too
    assert [i["id"] for i in detail["events"]] == ["e1:5"]
    assert [i["id"] for i in push["events"]] == ["e1:5"]
    # a page that lists by id: the snapshot, then the push, each event once
    listed: dict[str, dict[str, object]] = {}
    for item in [*snap["recent"], *push["recent"]]:
        listed.setdefault(str(item["id"]), item)
    assert [i["text"] for i in listed.values()] == [
        "fill buy 1 @ 10 (commission 0) c1",
        "error feed: engine-wide: no symbol",
    ]


async def test_a_browser_without_the_token_gets_a_page_saying_how_to_open_the_dashboard(tmp_path):
    client = await client_for(tmp_path)
    try:
        page = await client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        assert page.status == 401 and page.content_type == "text/html"
        text = await page.text()
        assert "<h1>This dashboard needs its token</h1>" in text
        assert "?token=" in text and "engine dashboard" in text and security.TOKEN_ENV in text
        assert TOKEN not in text
        api = await client.get("/api/fleet", headers={"Accept": "application/json"})  # an API client: JSON
        assert api.status == 401 and "needs its token" in (await api.json())["error"]
    finally:
        await client.close()


def test_the_fleet_row_holds_the_stop_levels_the_engine_armed_and_drops_them_after_the_exit():
    fleet = Fleet("mqtt")
    armed = {"stop_price": 98.0, "take_profit_price": None, "trailing_stop": 0.05, "trailing_price": 96.9}
    fleet.message("t", "t/e1/AAA/status", status("AAA", state="in_trade", position="2", avg_price="100", stops=armed))
    [row] = fleet.snapshot()["rows"]
    assert row["stops"] == {"stop_loss": 98.0, "trailing_stop": 96.9}
    fleet.message("t", "t/e1/AAA/status", status("AAA", stops=None))
    [row] = fleet.snapshot()["rows"]
    assert row["stops"] == {}


def test_an_entry_signals_own_levels_show_before_the_fill():
    fleet = Fleet("mqtt")
    fleet.message("t", "t/e1/AAA/status", status("AAA"))
    body = {"schema": 1, "event": "signal", "seq": 2, "engine": "e1", "symbol": "AAA", "ts": 10**9, "action": "enter"}
    body["detail"] = {"side": "buy", "stop_price": 95.5, "take_profit_price": 110.0, "trailing_stop": 0.05}
    fleet.message("t", "t/e1/AAA/signal", json.dumps(body).encode())
    [row] = fleet.snapshot()["rows"]
    assert row["stops"] == {"stop_loss": 95.5, "take_profit": 110.0}

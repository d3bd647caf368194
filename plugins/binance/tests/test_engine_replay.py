"""A live session on the fake Binance, with faults, recorded and replayed to
the same event log (issue 24): a dropped stream with backfill, a partial
fill, a pause and a flatten, a reject, then a kill -9 with an order working
and a restart that reconciles it. Then one recorded fill's price is changed
and the replay reports the difference at that fill."""

from __future__ import annotations

import json
import signal
import subprocess
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
from click.testing import CliRunner
from engine_plugin_binance.testing import API_KEY, API_SECRET, OrderScript

from engine_core.control import Command
from engine_core.model import State
from engine_core.plugins import set_registry
from engine_core.recording.compare import against_backtest
from engine_core.recording.format import SCHEMA
from engine_core.recording.reader import RecordingError, read_segment, segment_paths, session_dirs
from engine_core.recording.replay import WhatIf, replay_session
from engine_core.testing import engine_env, exited, journal_value, start_engine, wait_until

D = Decimal


def _command(eng, name: str) -> None:
    for reply in eng.engine.command(Command(name, "BTCUSDT")).values():
        reply.result(10)


def _recorded(path: Path, kind: str) -> list[tuple]:
    try:
        return [r for r in read_segment(path).rows if r[0] == kind]
    except RecordingError:  # nothing written yet
        return []


def test_a_faulty_session_with_a_kill_and_restart_replays_identical(
    fake, live_config, running, seen, tmp_path, monkeypatch, registry
):
    fake.add_history("BTCUSDT", 30, price=20000.0)
    broker = {
        "type": "binance",
        "api_key": "${BINANCE_API_KEY}",
        "api_secret": "${BINANCE_API_SECRET}",
        "rest_url": fake.http_url,
        "ws_api_url": fake.ws_api_url,
    }
    monkeypatch.setenv("BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", API_SECRET)
    config = live_config(params={"enter_at": 20100.0, "exit_at": 20300.0, "qty": 0.01, "limit": 20050.0}, broker=broker)
    journal = tmp_path / ".engine" / "e2e.sqlite"

    # run 1: a dropped stream, a partial fill, a pause, a flatten, a reject
    fake.script += [OrderScript("rest"), OrderScript("fill"), OrderScript("reject")]
    with running(config) as eng:
        eng.streaming()
        w = eng.worker()
        fake.stream_bar("BTCUSDT")
        for _ in range(2):
            fake.next_bar("BTCUSDT")  # bars the stream never sent: backfilled from REST
        fake.cut_streams()
        eng.wait(lambda: eng.states.count("connected") >= 3 and w.bars_done >= 3, "the backfill after the cut")
        fake.stream_bar("BTCUSDT", 20100.0)
        eng.wait(lambda: len(fake.placed) == 1, "the entry")
        cid = fake.placed[0]["newClientOrderId"]
        eng.wait(lambda: w.orders.current is not None and w.orders.current.status.value == "accepted", "the ack")
        fake.fill_order(cid, "0.004")
        eng.wait(lambda: w.ledger.qty == D("0.003996"), "the partial fill")
        fake.fill_order(cid)
        eng.wait(lambda: w.sm.state is State.IN_TRADE, "the rest of the fill")
        _command(eng, "pause")
        fake.stream_bar("BTCUSDT", 20200.0)  # paused: the strategy is not asked
        eng.wait(lambda: w.bars_done >= 5, "a bar while paused")
        _command(eng, "resume")
        _command(eng, "flatten")
        eng.wait(lambda: w.sm.state is State.WATCH, "the flatten")
        fake.stream_bar("BTCUSDT", 20100.0)
        rejected = "SELECT count(*) FROM orders WHERE status = 'rejected'"
        eng.wait(lambda: journal_value(journal, rejected, 0) == 1 and w.sm.state is State.WATCH, "the reject")
        eng.stop()

    # run 2: killed with an order working; its fill comes while the engine is down
    fake.script.append(OrderScript("rest"))
    proc = start_engine(
        "run",
        "-q",
        "--no-report",
        "-c",
        str(config),
        env=engine_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    days = lambda: session_dirs(tmp_path / ".engine" / "recordings" / "e2e")  # noqa: E731
    try:
        wait_until(
            lambda: fake.connected_streams() == 1 and fake.connected_users() == 1,
            "the streams",
            60.0,
            stop_if=exited(proc),
        )
        fake.stream_bar("BTCUSDT", 20100.0)
        wait_until(
            lambda: journal_value(journal, "SELECT count(*) FROM orders WHERE status = 'accepted'", 0) == 1,
            "the order working",
            60.0,
            stop_if=exited(proc),
        )
        # the ack is on disk within a second (the recorder's flush), before the kill
        second = lambda: segment_paths(days()[0])[1]  # noqa: E731
        wait_until(lambda: any(json.loads(r[9])["kind"] == "ack" for r in _recorded(second(), "update")), "ack", 10.0)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    cid = fake.placed[-1]["newClientOrderId"]
    fake.fill_order(cid, "0.004")

    # run 3: the restart reconciles the order through the venue, and the rest fills
    with running(config) as eng:
        w = eng.worker()
        eng.wait(lambda: w.orders.current is not None and w.ledger.qty == D("0.003996"), "the reconciliation")
        fake.fill_order(cid)
        eng.wait(lambda: w.sm.state is State.IN_TRADE, "the rest of the fill")
        eng.streaming()  # a bar streamed before the stream subscribes would never reach the engine
        fake.stream_bar("BTCUSDT", 20300.0)
        eng.wait(lambda: w.sm.state is State.WATCH, "the exit")
        eng.stop()

    [day] = days()
    paths = segment_paths(day)
    assert [read_segment(p).kind for p in paths] == ["start", "start", "start"]
    assert [read_segment(p).ended for p in paths] == [True, False, True]  # the second ended in a crash
    updates = [json.loads(r[9])["kind"] for p in paths for r in _recorded(p, "update")]
    assert {"ack", "partial_fill", "fill"} <= set(updates)
    calls = [json.loads(r[9]) for p in paths for r in _recorded(p, "call")]
    assert any(c["m"] == "submit" and "e" in c for c in calls)  # the reject: the venue's answer to the send
    assert [json.loads(r[9])["name"] for r in _recorded(paths[0], "command")] == ["pause", "resume", "flatten"]
    outcome = replay_session(paths, registry)
    assert outcome.divergence is None, outcome.divergence.lines() if outcome.divergence else None
    events = [r[9] for p in paths for r in _recorded(p, "event")]
    assert outcome.events == len(events)
    assert sum(" fill " in e for e in events) >= 6
    assert any("rejected" in e for e in events)

    # what if: the same parameters take every fill as recorded; another quantity makes orders the
    # venue never saw (filled by the paper broker's rules), but the restart still recovers the live order
    same = replay_session(paths, registry, WhatIf(params={"exit_at": 20300.0}))
    recorded_fills = sum(1 for p in paths for r in _recorded(p, "update") if json.loads(r[9])["fill"])
    assert (same.recorded_fills, same.simulated_fills) == (recorded_fills, 0)
    other = replay_session(paths, registry, WhatIf(params={"qty": 0.02, "limit": 20200.0}))
    rows = [r for p in paths for r in read_segment(p).rows if r[0] in ("bar", "command", "update", "call")]
    trail = [(r[0], r[3], (r[9] or "")[:60]) for r in rows]
    assert other.simulated_fills >= 2 and 0 < other.recorded_fills < recorded_fills, (other, trail)

    # against the backtest of the recorded bars: the paper broker never fills the limit the market
    # filled in two parts live, and the differences after it each have their recorded cause
    comparison = against_backtest(paths, registry)
    first = comparison.differences[0]
    assert first.reason == "partial fill"
    assert first.live is not None and first.live.endswith(": 0.00400000 @ 20050.00000000, 0.00600000 @ 20050.00000000")
    assert first.backtest is not None and first.backtest.endswith("order buy: no fill")
    reasons = [d.reason for d in comparison.differences]
    assert reasons[1:4] == ["flatten command", "after an earlier difference", "reject"]
    assert 0 < comparison.same == comparison.decisions - len(comparison.differences)

    # one recorded fill's price changed: the replay books it at that price and says so there
    first = paths[0]
    table = pa.ipc.open_stream(first.read_bytes()).read_all()
    rows = table.to_pylist()
    partial = next(r for r in rows if r["kind"] == "update" and json.loads(r["data"])["kind"] == "partial_fill")
    update = json.loads(partial["data"])
    update["fill"][4] = "19999.00000000"
    partial["data"] = json.dumps(update)
    with pa.OSFile(str(first), "wb") as f, pa.ipc.new_stream(f, SCHEMA) as writer:
        writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=SCHEMA))
    live_events = [r[9] for r in _recorded(first, "event") if r[1] == "BTCUSDT"]
    at = next(k for k, e in enumerate(live_events) if " fill buy " in e)
    set_registry(registry)
    try:
        result = CliRunner().invoke(_main(), ["replay", str(day)])
    finally:
        set_registry(None)
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"replay: differs at BTCUSDT event {at + 1} (run recorded in {first})"
    assert lines[1] == f"  live:   {live_events[at]}"
    assert lines[2] == "  replay: " + live_events[at].replace("@ 20050.00000000", "@ 19999.00000000")


def _main():
    from engine_core.cli import main

    return main

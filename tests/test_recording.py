"""Recording live runs and replaying them (engine_core/recording, issue 24)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner

from engine_core.cli import main
from engine_core.plugins import Registry
from engine_core.recording import writer
from engine_core.recording.compare import against_backtest
from engine_core.recording.format import SCHEMA, VERSION_KEY
from engine_core.recording.reader import RecordingError, read_segment, segment_paths, session_dirs
from engine_core.recording.replay import replay_session
from engine_core.runner import build_engine
from engine_core.testing import wait_until, write_config

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp: Path, symbols: list[str], bars: int, **engine: Any) -> Path:
    return write_config(
        tmp / "live.toml",
        {
            "engine": {"mode": "live", "id": "rec", "symbols": symbols, "window": 60, **engine},
            "source": {"type": "simulated", "bars": bars, "interval": 60},
            "strategy": {
                "host": "lua",
                "script": str(ROOT / "strategies" / "sma_cross.lua"),
                "stop_loss": 0.02,
                "params": {"fast": 5, "slow": 20, "qty": 1},
            },
            "broker": {"type": "paper", "cash": 100000, "commission": 0.001},
        },
    )


def _session(config: Path) -> Path:
    days = session_dirs(config.parent / ".engine" / "recordings" / "rec")
    assert len(days) == 1
    return days[0]


def _events(segment: Path) -> list[tuple[str, str]]:
    return [(r[1], r[9]) for r in read_segment(segment).rows if r[0] == "event"]


def test_simulated_live_run_of_20_symbols_replays_identical(tmp_path: Path, registry: Registry) -> None:
    """The simulated feed live, 20 symbols x 10,000 bars: recorded, then
    replayed to the same event log (every transition, order and fill)."""
    symbols = [f"S{k:02d}" for k in range(20)]
    config = _config(tmp_path, symbols, 10_000)
    build_engine(config, registry).run()
    session = _session(config)
    segment = read_segment(segment_paths(session)[0])
    assert segment.ended and segment.stopped is None
    assert sum(1 for r in segment.rows if r[0] == "bar") == 200_000
    recorded = _events(segment_paths(session)[0])
    assert any(" fill " in line for _, line in recorded)
    outcome = replay_session(segment_paths(session), registry)
    assert outcome.divergence is None
    assert outcome.events == len(recorded)


def test_cli_replay_says_identical_and_sessions_lists_the_recording(tmp_path: Path, registry: Registry) -> None:
    config = _config(tmp_path, ["A", "B"], 600)
    build_engine(config, registry).run()
    recorded = _events(segment_paths(_session(config))[0])
    result = CliRunner().invoke(main, ["replay", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"replay: identical ({len(recorded)} events)"
    listed = CliRunner().invoke(main, ["sessions", "-c", str(config), "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.output)
    assert row["engine"] == "rec" and row["symbols"] == ["A", "B"] and row["bars"] == 1200
    assert row["orders"] == sum(1 for _, line in recorded if " order intent " in line) > 0
    assert row["bytes"] > 0 and row["start"] <= row["end"]


def test_a_restart_inside_the_session_replays_as_such(tmp_path: Path, registry: Registry) -> None:
    """A second run of the engine resumes from its journal (a new segment with
    the journal as it was); the replay restarts there too and matches."""
    config = _config(tmp_path, ["A", "B"], 500)
    build_engine(config, registry).run()
    config.write_text(config.read_text().replace("bars = 500", "bars = 900"))
    build_engine(config, registry).run()
    paths = segment_paths(_session(config))
    assert len(paths) == 2
    second = read_segment(paths[1])
    assert second.kind == "start" and second.image is not None
    second_first = 500 * 60 * 1_000_000_000 + _first_bar(paths[0])  # the first bar the restarted run took
    assert sum(1 for r in second.rows if r[0] == "bar") == 2 * 900  # the source starts over; 500 are skipped
    outcome = replay_session(paths, registry)
    assert outcome.divergence is None
    assert outcome.events == len(_events(paths[0])) + len(_events(paths[1])) > 0

    # --from a time after the restart: only the second run, from the journal it recovered from
    later = replay_session(paths, registry, from_=second.start)
    assert later.divergence is None and later.events == len(_events(paths[1]))

    # against the backtest of the same bars: the same but where the restart rebuilt the indicators
    comparison = against_backtest(paths, registry)
    assert comparison.same > 0
    for symbol in ("A", "B"):
        reasons = [d.reason for d in comparison.differences if d.symbol == symbol]
        if reasons:
            restart = "warm-up differed (a restart at 1970-01-01T08:20:00Z rebuilt the indicators)"
            assert reasons[0] == restart.replace("1970-01-01T08:20:00Z", _iso(second_first))
            assert set(reasons[1:]) <= {"after an earlier difference"}
    assert comparison.differences, "the restart without warm-up history should part live from the backtest"
    out = tmp_path / "vs"
    result = CliRunner().invoke(main, ["replay", str(paths[0].parent), "--against-backtest", "--report", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"live against backtest: {comparison.same} of {comparison.decisions} ")
    assert "<h2>Live against backtest</h2>" in (out / "report.html").read_text()


def _rewrite(path: Path, change: Any) -> None:
    """Rewrite a segment with ``change(rows)`` applied (rows as lists)."""
    table = pa.ipc.open_stream(path.read_bytes()).read_all()
    cols = table.to_pydict()
    rows = [list(r) for r in zip(*(cols[c] for c in SCHEMA.names))]
    change(rows)
    with pa.OSFile(str(path), "wb") as f, pa.ipc.new_stream(f, SCHEMA) as w:
        w.write_batch(pa.RecordBatch.from_pylist([dict(zip(SCHEMA.names, r)) for r in rows], schema=SCHEMA))


def test_a_changed_recorded_bar_is_reported_at_the_first_event_it_changes(tmp_path: Path, registry: Registry) -> None:
    config = _config(tmp_path, ["A"], 400)
    build_engine(config, registry).run()
    (path,) = segment_paths(_session(config))
    first_fill = next(k for k, (_, line) in enumerate(_events(path)) if " fill " in line)
    fill_line = _events(path)[first_fill][1]

    def lower_the_open_of_the_fill_bar(rows: list[list[Any]]) -> None:
        # the paper broker fills a market order at the next bar's open: change that bar's open
        bar = next(r for r in rows if r[0] == "bar" and fill_line.startswith(f"{_iso(r[3])} A fill "))
        bar[4] = bar[4] * 0.5

    _rewrite(path, lower_the_open_of_the_fill_bar)
    result = CliRunner().invoke(main, ["replay", str(path)])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"replay: differs at A event {first_fill + 1} (run recorded in {path})"
    assert lines[1] == f"  live:   {fill_line}"
    assert lines[2].startswith("  replay: ") and " fill " in lines[2] and lines[2] != f"  replay: {fill_line}"


def _first_bar(path: Path) -> int:
    return int(next(r[3] for r in read_segment(path).rows if r[0] == "bar"))


def _iso(ts: int) -> str:
    from engine_core.model import iso_utc

    return iso_utc(ts)


def test_a_truncated_recording_replays_up_to_its_last_whole_record(tmp_path: Path, registry: Registry) -> None:
    """A file cut in the middle of a write (a crash): read up to the last whole
    batch, one line saying where it stopped, and the replay matches up to there."""
    config = _config(tmp_path, ["A", "B"], 300)
    build_engine(config, registry).run()
    (path,) = segment_paths(_session(config))
    table = pa.ipc.open_stream(path.read_bytes()).read_all()
    half = table.num_rows // 2
    with pa.OSFile(str(path), "wb") as f, pa.ipc.new_stream(f, SCHEMA) as w:
        w.write_table(table.slice(0, half))
        first_end = f.tell()
        w.write_table(table.slice(half))
    data = path.read_bytes()
    path.write_bytes(data[: first_end + (len(data) - first_end) // 2])
    segment = read_segment(path)
    assert len(segment.rows) == half - 1  # every record of the first batch but the header
    assert segment.stopped is not None
    assert segment.stopped.startswith(f"{path}: read {half} records up to byte {first_end}; the rest is truncated")
    assert "\n" not in segment.stopped and not segment.ended
    result = CliRunner().invoke(main, ["replay", str(path)])
    assert result.exit_code == 0, result.output
    assert f"note: {segment.stopped}" in result.output
    assert "replay: identical" in result.output


def test_a_recording_of_version_1_still_replays(tmp_path: Path, registry: Registry) -> None:
    """Version 2 only adds rejected reloads: a session written as version 1
    (before them) reads and replays as it did."""
    config = _config(tmp_path, ["A"], 300)
    build_engine(config, registry).run()
    (path,) = segment_paths(_session(config))
    with pa.OSFile(str(path), "rb") as f:
        table = pa.ipc.open_stream(f).read_all()
    old = tmp_path / "001-1.arrow"
    with pa.OSFile(str(old), "wb") as f, pa.ipc.new_stream(f, SCHEMA.with_metadata({VERSION_KEY: b"1"})) as w:
        w.write_table(table.replace_schema_metadata({VERSION_KEY: b"1"}))
    assert read_segment(old).rows == read_segment(path).rows
    outcome = replay_session([old], registry)
    assert outcome.divergence is None and outcome.events == len(_events(path))


def test_a_recording_of_another_version_is_refused_with_its_version(tmp_path: Path) -> None:
    path = tmp_path / "001-1.arrow"
    schema = SCHEMA.with_metadata({VERSION_KEY: b"99"})
    with pa.OSFile(str(path), "wb") as f, pa.ipc.new_stream(f, schema):
        pass
    with pytest.raises(RecordingError, match=r"recording format version 99; this engine reads version\(s\) 1"):
        read_segment(path)
    result = CliRunner().invoke(main, ["replay", str(path)])
    assert result.exit_code == 2
    assert result.output.strip().endswith("recording format version 99; this engine reads version(s) 1, 2")


def test_record_false_and_backtests_record_nothing(tmp_path: Path, registry: Registry) -> None:
    config = _config(tmp_path, ["A"], 100, record=False)
    build_engine(config, registry).run()
    assert not (tmp_path / ".engine" / "recordings").exists()
    backtest = _config(tmp_path, ["A"], 100)
    backtest.write_text(backtest.read_text().replace('mode = "live"', 'mode = "backtest"'))
    build_engine(backtest, registry).run()
    assert not (tmp_path / ".engine" / "recordings").exists()


def _endless_with_own_script(tmp: Path) -> tuple[Path, str, Path]:
    """A live config of A and B, endless and paced, running its own copy of
    sma_cross.lua: (the copy, its text, the config)."""
    script = tmp / "sma.lua"
    text = (ROOT / "strategies" / "sma_cross.lua").read_text()
    script.write_text(text)
    config = _config(tmp, ["A", "B"], 0)
    config.write_text(
        config.read_text()
        .replace(str(ROOT / "strategies" / "sma_cross.lua"), str(script))
        .replace("interval = 60", "interval = 60\npace = 0.002")
    )
    return script, text, config


def test_hot_reloads_and_control_commands_replay_where_they_happened(tmp_path: Path, registry: Registry) -> None:
    """The script changed on disk mid-run (seen on the wall clock's time), a
    pause, a resume and a flatten: each replays after the bar it came after."""
    from engine_core.control import Command, ControlError
    from engine_core.testing import EngineThread

    script, text, config = _endless_with_own_script(tmp_path)
    engine = build_engine(config, registry)
    with EngineThread(engine) as run:
        run.wait(lambda: engine.workers and engine.workers["A"].bars_done > 200, "bars")
        _replace(script, text.replace("local TIE = 2^-40", "local TIE = 2^-30").encode())
        run.wait(lambda: engine.workers["A"].strategy.watcher.current.digest != engine.host.version.digest, "reload")
        run.wait(lambda: engine.workers["B"].strategy.watcher.current.digest != engine.host.version.digest, "reload")
        for name in ("pause", "resume", "flatten"):
            for reply in engine.command(Command(name, "A")).values():
                try:
                    reply.result(10)
                except ControlError:  # a flatten meeting an exit order already working is refused
                    assert name == "flatten"
        run.wait(lambda: engine.workers["A"].bars_done > 600, "more bars")
    (path,) = segment_paths(_session(config))
    lines = [line for _, line in _events(path)]
    assert sum(" log: " in line and "reloaded for" in line for line in lines) == 2  # a log line, never an error
    commands = [json.loads(r[9])["name"] for r in read_segment(path).rows if r[0] == "command"]
    assert commands == ["pause", "resume", "flatten"]
    outcome = replay_session([path], registry)
    assert outcome.divergence is None, outcome.divergence.lines() if outcome.divergence else None
    assert outcome.events == len(lines)


def _replace(path: Path, data: bytes) -> None:
    """Write a file whole at once, as an editor that saves by renaming does."""
    part = path.with_suffix(".part")
    part.write_bytes(data)
    os.replace(part, path)


def test_rejected_reloads_replay_rejected_where_they_happened(tmp_path: Path, registry: Registry) -> None:
    """A version that does not compile, then a file that is not text, then a
    good one: live, the first two are error events and the running version
    stays; the replay rejects them at the same bars, for the same reasons."""
    from engine_core.testing import EngineThread

    script, text, config = _endless_with_own_script(tmp_path)
    engine = build_engine(config, registry)

    def seen(stamp: tuple[int, int]) -> bool:
        return all(w.strategy.watcher.current.stamp == stamp for w in engine.workers.values())

    def stamp() -> tuple[int, int]:
        st = script.stat()
        return st.st_mtime_ns, st.st_size

    with EngineThread(engine) as run:
        run.wait(lambda: engine.workers and engine.workers["A"].bars_done > 100, "bars")
        _replace(script, text.replace("function watch(", "function watch_not(").encode())
        broken = stamp()
        run.wait(lambda: seen(broken), "the broken version read")
        _replace(script, b"\xff\xfe not text")
        unreadable = stamp()
        run.wait(lambda: seen(unreadable), "the unreadable file looked at")
        _replace(script, text.replace("local TIE = 2^-40", "local TIE = 2^-30").encode())
        good = stamp()
        run.wait(lambda: seen(good), "the good version read")
        bars = engine.workers["A"].bars_done
        run.wait(lambda: engine.workers["A"].bars_done > bars + 100, "more bars")
    (path,) = segment_paths(_session(config))
    lines = [line for _, line in _events(path)]
    rejected = [line for line in lines if "reload rejected" in line]
    assert len(rejected) == 4, rejected
    for symbol in ("A", "B"):
        mine = [line for line in rejected if f" {symbol} reload: " in line]
        assert len(mine) == 2
        assert mine[0].endswith("does not define function watch(ctx)"), mine[0]
        assert "not UTF-8 text" in mine[1], mine[1]
    assert sum(" log: " in line and "reloaded for" in line for line in lines) == 2
    outcome = replay_session([path], registry)
    assert outcome.divergence is None, outcome.divergence.lines() if outcome.divergence else None
    assert outcome.events == len(lines)


STOPS_AT_40 = """
class S:
    stop = None  # the live engine's stop event, set by the test (a replay's strategy has none)
    def __init__(self):
        self.bars = 0
    def watch(self, ctx):
        self.bars = ctx.index
        if self.bars >= 40 and S.stop is not None:
            S.stop.set()  # the trader stops the engine as this bar is decided
        return {"action": "enter", "qty": 1} if self.bars == 10 or self.bars >= 40 else None
    def close_watch(self, ctx):
        return None
    def in_trade(self, ctx):
        return "exit" if ctx.index >= 20 else None
"""


def test_an_order_refused_because_the_engine_was_stopping_is_refused_again_in_the_replay(
    tmp_path: Path, registry: Registry
) -> None:
    """A live run stopped while a symbol decides: its order is refused (the
    engine is stopping), on the bar the wall clock put the stop at. The
    replay refuses it at the same bar, and trades the bars before as live."""
    (tmp_path / "s.py").write_text(STOPS_AT_40)
    config = write_config(
        tmp_path / "live.toml",
        {
            "engine": {"mode": "live", "id": "rec", "symbols": ["A"], "window": 60},
            "source": {"type": "simulated", "bars": 0, "interval": 60, "pace": 0.002},
            "strategy": {"host": "python", "class": "s.py:S"},
            "broker": {"type": "paper", "cash": 100000},
        },
    )
    from engine_core.builtin.python_host import PythonHost

    engine = build_engine(config, registry)
    load = PythonHost.load

    def load_and_hand_over_the_stop(host: PythonHost) -> None:
        load(host)
        host.cls.stop = engine.stop_event

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PythonHost, "load", load_and_hand_over_the_stop)
        result = engine.run()
    assert result.symbols["A"].fills == 2  # the entry at bar 10 and its exit; none from bar 40 on
    (path,) = segment_paths(_session(config))
    lines = [line for _, line in _events(path)]
    refused = [line for line in lines if " order refused " in line]
    assert refused and all(line.endswith("not sent: the engine is stopping") for line in refused)
    outcome = replay_session([path], registry)
    assert outcome.divergence is None, outcome.divergence.lines() if outcome.divergence else None
    assert outcome.events == len(lines)


def test_what_if_other_parameters_fill_by_the_paper_rules_and_say_so(tmp_path: Path, registry: Registry) -> None:
    config = _config(tmp_path, ["A"], 400)
    build_engine(config, registry).run()
    (path,) = segment_paths(_session(config))
    result = CliRunner().invoke(main, ["replay", str(path), "--params", "fast=8", "--params", "slow=30"])
    assert result.exit_code == 0, result.output
    first, run = result.output.splitlines()[:2]
    assert first.startswith("replay (what if fast=8, slow=30): 0 fills as recorded, ")
    simulated = int(first.split(", ")[2].split()[0])
    assert simulated > 0 and first.endswith(
        "simulated by the paper broker's rules (orders the recording has no answer for)"
    )
    assert run.startswith("  run 1: ") and f"{simulated} fills" in run
    bad = CliRunner().invoke(main, ["replay", str(path), "--params", "fast"])
    assert bad.exit_code == 2 and "--params: expected NAME=VALUE, got 'fast'" in bad.output


def test_validate_says_where_a_live_run_records(tmp_path: Path) -> None:
    config = _config(tmp_path, ["A"], 100)
    result = CliRunner().invoke(main, ["validate", str(config)])
    assert result.exit_code == 0, result.output
    assert f"broker paper, recorded to {tmp_path / '.engine' / 'recordings' / 'rec'})" in result.output
    off = _config(tmp_path, ["A"], 100, record=False)
    result = CliRunner().invoke(main, ["validate", str(off)])
    assert "broker paper, not recorded)" in result.output
    bad = _config(tmp_path, ["A"], 100, record=3)
    result = CliRunner().invoke(main, ["validate", str(bad)])
    assert result.exit_code == 2 and "engine.record" in result.output


def test_replay_to_a_time_compares_what_it_fed(tmp_path: Path, registry: Registry) -> None:
    """``--to T`` feeds what arrived until T: the events it made are the first
    live ones, and the rest is not compared."""
    config = _config(tmp_path, ["A"], 600)
    build_engine(config, registry).run()
    (path,) = segment_paths(_session(config))
    bars = [r for r in read_segment(path).rows if r[0] == "bar"]
    cut = bars[300][2]  # the 301st bar's arrival
    whole = replay_session([path], registry)
    part = replay_session([path], registry, to=cut)
    assert whole.divergence is None and part.divergence is None
    assert 0 < part.events < whole.events
    result = CliRunner().invoke(main, ["replay", str(path), "--to", str(cut)])
    assert result.exit_code == 0 and result.output.strip() == f"replay: identical ({part.events} events)"
    bad = CliRunner().invoke(main, ["replay", str(path), "--to", "yesterday"])
    assert bad.exit_code == 2 and "--to: expected a time like" in bad.output


def test_once_the_engine_says_when_it_is_idle_a_write_waits_for_the_end_of_the_burst(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record batch's work would hold a burst of bars back: the writer's
    write, due every FLUSH_EVERY, waits for the engine to say the burst is
    over (at most another FLUSH_EVERY)."""
    monkeypatch.setattr(writer, "FLUSH_EVERY", 0.5)
    engine = build_engine(_config(tmp_path, ["AAA"], 10), registry)
    recorder = engine.recorder
    assert recorder is not None
    flushes: list[bool] = []  # at each write: whether the engine had said it was idle
    monkeypatch.setattr(recorder, "flush", lambda: flushes.append(recorder._quiet.is_set()))
    recorder.idle()  # the engine says when it is idle
    thread = threading.Thread(target=recorder._run, daemon=True)
    start = time.monotonic()
    thread.start()
    time.sleep(0.75 - (time.monotonic() - start))  # the write is due (0.5 s) and waits (until 1.0 s at most)
    assert flushes == []
    recorder.idle()  # the burst is over
    wait_until(lambda: flushes == [True], "the write, once the burst is over")
    recorder._stop.set()
    recorder._quiet.set()
    thread.join(5)

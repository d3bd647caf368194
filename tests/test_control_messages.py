"""What a control command leaves behind: a success is the command's answer,
never an error event; a live run journals it; a stop says what stopped the run."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from click.testing import CliRunner

import engine_core.testing as testing
from engine_core import hookimpl
from engine_core.cli import main
from engine_core.control import Command, deliver
from engine_core.journal import Journal
from engine_core.model import ErrorEvent
from engine_core.plugins import set_registry
from engine_core.runner import build_engine
from engine_core.testing import MemorySink, wait_until, write_config
from tests.test_control import ALWAYS_IN, TIMEOUT


def live_config(tmp_path: Path, **engine: Any) -> Path:
    (tmp_path / "s.py").write_text(ALWAYS_IN)
    return write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "symbols": ["A", "B"], "id": "e1", **engine},
            "source": {"type": "simulated", "bars": 0, "pace": 0.003},
            "strategy": {"host": "python", "class": "s.py:S"},
            "broker": {"type": "paper", "fill": "close"},
            "sinks": [{"type": "memory"}],
            "report": {"dir": "out"},
        },
    )


def test_a_successful_command_is_no_error_event_and_is_journaled(tmp_path: Path):
    engine = build_engine(live_config(tmp_path))
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(engine.workers) == 2 and all(w.bars_done > 2 for w in engine.workers.values()), "bars")
        command = Command("pause", "A", "r1", origin="a test")
        assert deliver(engine, command)["A"].result(TIMEOUT).startswith("paused")
        assert deliver(engine, Command("resume", "A", "r2"))["A"].result(TIMEOUT) == "resumed"
    finally:
        engine.stop_event.set()
        thread.join(TIMEOUT)
    sink = engine.bus.sinks[0]
    assert isinstance(sink, MemorySink)
    assert [e for e in sink.events if isinstance(e, ErrorEvent)] == []
    journal = Journal(tmp_path / ".engine" / "e1.sqlite")
    try:
        control = [(e["symbol"], e["command"], e["origin"]) for e in journal.events(kind="control")]
    finally:
        journal.close()
    assert control == [("A", "pause", "a test"), ("A", "resume", "")]


class _StopAtStart:
    """Sends ``stop`` through the control path as soon as the engine starts."""

    @hookimpl
    def engine_started(self, config: Any, engine: Any) -> None:
        deliver(engine, Command("stop", request_id="r9", origin="MQTT topic t/e1/control/stop on mqtt://x:1883"))


def test_a_run_stopped_by_the_stop_command_says_so(tmp_path: Path):
    set_registry(testing.builtin_registry(("testing", testing), ("stopper", _StopAtStart())))
    result = CliRunner().invoke(main, ["run", "-q", "-c", str(live_config(tmp_path, journal=False))])
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "stopped by the stop command (request r9, from MQTT topic t/e1/control/stop on mqtt://x:1883): "
        "the summary and report cover the bars processed until then\n"
    )

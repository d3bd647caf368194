"""``engine status`` after a run that failed to start says why there is no
symbol instead of a table of headers alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import engine_core.testing as testing
from engine_core.cli import main
from engine_core.errors import BrokerError
from engine_core.journal import Journal
from engine_core.testing import write_config


class _Unreachable(testing.RecordingBroker):
    def connect(self) -> None:
        raise BrokerError("venue: GET /api/v3/account: no answer (connection refused)")


def test_a_failed_start_is_journaled_and_status_says_why(tmp_path: Path, live_engine):
    engine = live_engine(
        {"type": "simulated", "bars": 0}, {"type": "down"}, testing.InlinePlugin(brokers={"down": _Unreachable})
    )
    with pytest.raises(BrokerError):
        engine.run()
    out = CliRunner().invoke(main, ["status", "-c", str(engine.loaded.path)])
    assert out.exit_code == 0, out.output
    journal = tmp_path / ".engine" / f"{engine.loaded.config.engine.id}.sqlite"
    assert out.output.startswith(f"journal {journal}: no symbols yet: the last run failed at ")
    first, *rest = out.output.splitlines()
    assert first.endswith(": venue: GET /api/v3/account: no answer (connection refused)")
    assert rest == [] or all(line.startswith("source ") and " stopped since " in line for line in rest)
    assert "symbol" not in out.output.split(": no symbols yet:")[1]  # no table of headers


def test_status_of_a_journal_without_symbols_says_so(tmp_path: Path):
    config = write_config(tmp_path / "c.toml", {"engine": {"mode": "live", "symbols": ["A"], "id": "s1"}})
    Journal(tmp_path / ".engine" / "s1.sqlite").close()
    out = CliRunner().invoke(main, ["status", "-c", str(config)])
    assert out.exit_code == 0, out.output
    assert out.output == (
        f"journal {tmp_path / '.engine' / 's1.sqlite'}: no symbols yet: the engine stopped before it recorded any symbol\n"
    )

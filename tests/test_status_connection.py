"""``engine status`` shows the live source's last connection state (journaled
as ``connection`` events by the runner)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from engine_core.cli import main
from engine_core.journal import Journal
from engine_core.testing import write_config

SNAPSHOT = {"state": "watch", "qty": "0", "entry": None, "halted": None, "last_ts": 60_000_000_000}


def test_status_shows_the_sources_last_connection_state(tmp_path: Path):
    config = write_config(tmp_path / "c.toml", {"engine": {"mode": "live", "symbols": ["A"], "id": "s1"}})
    journal = Journal(tmp_path / ".engine" / "s1.sqlite")
    journal.save_symbol("A", SNAPSHOT)
    journal.event("connection", None, 1_700_000_000 * 10**9, source="venue", state="connected", detail="")
    journal.event("connection", None, 1_700_000_060 * 10**9, source="venue", state="reconnecting", detail="wss://x")
    journal.close()
    out = CliRunner().invoke(main, ["status", "--json", "-c", str(config)])
    assert out.exit_code == 0, out.output
    [row] = json.loads(out.output)
    assert row["connection"] == {
        "source": "venue",
        "state": "reconnecting",
        "ts": 1_700_000_060 * 10**9,
        "detail": "wss://x",
    }
    table = CliRunner().invoke(main, ["status", "-c", str(config)])
    assert "source venue: reconnecting since 2023-11-14T22:14:20Z" in table.output

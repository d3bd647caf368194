"""A fleet: N engines started with the same config and --shard K/N cover every symbol once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine_core.cli import main
from engine_core.config import load_config, shard_of
from engine_core.errors import ConfigError
from engine_core.plugins import get_registry
from engine_core.runner import build_engine
from engine_core.testing import write_config

SYMBOLS = [f"SYM{i}" for i in range(40)] + ["BTCUSDT", "ETHUSDT", "AAPL", "EUR/USD"]


def config(tmp_path: Path, **engine: object) -> Path:
    (tmp_path / "s.py").write_text(
        "class S:\n"
        "    def watch(self, ctx):\n        return 'enter' if ctx.index % 7 == 0 else None\n"
        "    def close_watch(self, ctx):\n        return None\n"
        "    def in_trade(self, ctx):\n        return 'exit' if ctx.index % 7 == 3 else None\n"
    )
    return write_config(
        tmp_path / "c.toml",
        {
            "engine": {"symbols": SYMBOLS, **engine},
            "source": {"type": "simulated", "bars": 50},
            "strategy": {"host": "python", "class": "s.py:S"},
        },
    )


@pytest.mark.parametrize("n", [2, 3])
def test_the_shards_of_one_config_run_every_symbol_exactly_once(tmp_path: Path, n: int):
    path = config(tmp_path)
    ran: list[str] = []
    for k in range(1, n + 1):
        result = build_engine(path, shard=f"{k}/{n}").run()
        assert all(r.bars == 50 for r in result.symbols.values())
        ran += list(result.symbols)
    assert sorted(ran) == sorted(SYMBOLS)
    assert len(ran) == len(set(ran))


def test_a_shard_from_the_config_file_and_its_engine_id(tmp_path: Path):
    loaded = load_config(config(tmp_path, shard="2/2", id="fleet"), get_registry())
    assert loaded.config.engine.shard == "2/2"
    assert loaded.config.engine.id == "fleet-2of2"  # own journal, client ids and MQTT topics
    assert 0 < len(loaded.config.engine.symbols) < len(SYMBOLS)
    assert all(shard_of(s, 2) == 2 for s in loaded.config.engine.symbols)
    # --shard overrides the file
    other = load_config(tmp_path / "c.toml", get_registry(), shard="1/2").config.engine
    assert set(other.symbols).isdisjoint(loaded.config.engine.symbols)


def test_the_shard_of_a_symbol_does_not_depend_on_the_process(tmp_path: Path):
    code = "from engine_core.config import shard_of; print([shard_of(f'S{i}', 7) for i in range(50)])"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outs) == 1
    assert outs.pop().strip() == str([shard_of(f"S{i}", 7) for i in range(50)])
    counts = [sum(shard_of(f"S{i}", 4) == k for i in range(400)) for k in range(1, 5)]
    assert min(counts) > 60  # a spread, not everything in one shard


@pytest.mark.parametrize("bad", ["5/4", "0/3", "2", "a/b", "1/0", "-1/2"])
def test_a_bad_shard_on_the_command_line_is_one_line(tmp_path: Path, bad: str):
    result = CliRunner().invoke(main, ["run", "-c", str(config(tmp_path)), "--shard", bad, "--no-report"])
    assert result.exit_code == 2
    assert result.output.strip() == f'error: --shard: expected "K/N" with 1 <= K <= N (e.g. "2/4"), got {bad!r}'


def test_a_bad_shard_in_the_config_names_the_file_and_key(tmp_path: Path):
    path = config(tmp_path, shard="3/2")
    with pytest.raises(ConfigError) as err:
        load_config(path, get_registry())
    assert str(err.value) == f'{path}: engine.shard: expected "K/N" with 1 <= K <= N (e.g. "2/4"), got \'3/2\''


def test_a_shard_holding_no_symbol_is_an_error(tmp_path: Path):
    path = write_config(
        tmp_path / "one.toml",
        {
            "engine": {"symbols": ["ONLY"]},
            "source": {"type": "simulated", "bars": 5},
            "strategy": {"host": "python", "class": "s.py:S"},
        },
    )
    empty = next(k for k in (1, 2) if shard_of("ONLY", 2) != k)
    with pytest.raises(ConfigError, match=rf"engine.shard: shard {empty}/2 holds none of the 1 symbols"):
        load_config(path, get_registry(), shard=f"{empty}/2")


def test_the_cli_runs_only_its_shard(tmp_path: Path):
    path = config(tmp_path)
    result = CliRunner().invoke(main, ["run", "-c", str(path), "--shard", "1/2", "-q"])
    assert result.exit_code == 0, result.output
    # each shard its own report folder: <report.dir>-KofN
    summary = json.loads((tmp_path / "reports-1of2" / "summary.json").read_text())
    assert summary["symbols"] == [s for s in SYMBOLS if shard_of(s, 2) == 1]


def test_status_reads_the_journal_of_a_shard(tmp_path: Path):
    path = config(tmp_path, mode="live", id="fleet")
    path.write_text(path.read_text().replace("bars = 50", "bars = 5"))
    build_engine(path, shard="1/2").run()
    result = CliRunner().invoke(main, ["status", "-c", str(path), "--shard", "1/2", "--json"])
    assert result.exit_code == 0, result.output
    assert sorted(row["symbol"] for row in json.loads(result.output)) == sorted(
        s for s in SYMBOLS if shard_of(s, 2) == 1
    )
    assert (tmp_path / ".engine" / "fleet-1of2.sqlite").exists()
    missing = CliRunner().invoke(main, ["status", "-c", str(path), "--shard", "2/2"])
    assert missing.exit_code == 2 and "fleet-2of2.sqlite: no journal" in missing.output


def test_status_reads_the_engine_table_as_a_run_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The journal's folder from the environment, a shard from the config: status
    finds the file the run wrote; a bad engine key is one line naming it."""
    monkeypatch.setenv("STATE", "journals")
    path = config(tmp_path, mode="live", id="fleet", shard="2/2", state_dir="${STATE}")
    path.write_text(path.read_text().replace("bars = 50", "bars = 5"))
    build_engine(path).run()
    assert (tmp_path / "journals" / "fleet-2of2.sqlite").exists()
    result = CliRunner().invoke(main, ["status", "-c", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert sorted(row["symbol"] for row in json.loads(result.output)) == sorted(
        s for s in SYMBOLS if shard_of(s, 2) == 2
    )
    path.write_text(path.read_text().replace('id = "fleet"', 'id = "no spaces allowed"'))
    bad = CliRunner().invoke(main, ["status", "-c", str(path)])
    assert bad.exit_code == 2 and f"{path}: engine.id:" in bad.output and "Traceback" not in bad.output

"""Config validation, plugin registration, and the sample data generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from engine_plugin_csv import CsvConfig, CsvSource, plugin
from engine_plugin_csv.sample import main, write_gbm_csv
from pydantic import ValidationError

from engine_core.plugins import build_registry


def test_defaults() -> None:
    config = CsvConfig(path="data")
    assert (config.delimiter, config.on_bad_row, config.timezone, config.time_unit) == (
        ",",
        "error",
        "UTC",
        "auto",
    )
    assert (config.header, config.columns, config.chunk_rows) == (None, {}, 16_384)


@pytest.mark.parametrize(
    "keys, message",
    [
        ({"path": "x", "colums": {}}, "Extra inputs are not permitted"),
        ({}, "Field required"),
        ({"path": "x", "timezone": "Mars/Olympus"}, "unknown IANA time zone"),
        ({"path": "x", "symbol_pattern": "("}, "not a regular expression"),
        (
            {"path": "x", "symbol": "A", "symbol_column": "s"},
            "set at most one of symbol, symbol_column",
        ),
        ({"path": "x", "start": "2024-02-01", "end": "2024-01-01"}, "start must be before end"),
        ({"path": "x", "columns": {"price": "p"}}, "columns.price"),
        ({"path": "x", "on_bad_row": "ignore"}, "'error' or 'skip'"),
        ({"path": "x", "delimiter": ";;"}, "one character"),
        ({"path": "x", "chunk_rows": 0}, "greater than or equal to 1"),
    ],
)
def test_invalid_config_is_rejected(keys: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        CsvConfig(**keys)


def test_plugin_registers_the_csv_source() -> None:
    registry = build_registry([("csv", plugin)], autoload=False)
    assert registry.get("source", "csv") is CsvSource
    assert CsvSource.Config is CsvConfig


def test_sample_is_seeded_valid_and_readable(tmp_path: Path) -> None:
    write_gbm_csv(tmp_path / "a.csv", "BTCUSDT", 5_000, seed=3)
    write_gbm_csv(tmp_path / "b.csv", "BTCUSDT", 5_000, seed=3)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    source = CsvSource(CsvConfig(path="a.csv", symbol="BTCUSDT"), symbols=["BTCUSDT"], base_dir=tmp_path)
    chunks = list(source.history())
    assert sum(map(len, chunks)) == 5_000 and source.stats()["csv"]["skipped_rows"] == 0
    assert np.all(np.diff(chunks[0].ts) == 60 * 10**9)


def test_sample_cli_writes_one_file_per_symbol(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main([str(tmp_path), "--symbols", "BTCUSDT,ETHUSDT", "--bars", "100", "--seed", "7"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BTCUSDT.csv", "ETHUSDT.csv"]
    assert (tmp_path / "ETHUSDT.csv").read_text().count("\n") == 101
    assert "wrote" in capsys.readouterr().out


def test_shipped_sample_data_matches_the_generator(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[3] / "examples" / "data"
    main([str(tmp_path), "--symbols", "BTCUSDT,ETHUSDT", "--bars", "20000", "--seed", "7"])
    for name in ("BTCUSDT.csv", "ETHUSDT.csv"):
        assert (shipped / name).read_bytes() == (tmp_path / name).read_bytes()


@pytest.mark.parametrize(
    "keys, message",
    [
        ({"timezone": "Mars/Olympus"}, "source.timezone: unknown IANA time zone 'Mars/Olympus' (csv source)"),
        ({"start": "2024-02-01", "end": "2024-01-01"}, "source: start must be before end (csv source)"),
        ({"chunk_rows": 0}, "source.chunk_rows: expected a number >= 1, got 0 (csv source)"),
        # a union's members are one problem, not one line each under a path naming the member
        ({"symbol_column": 2.5}, "source.symbol_column: expected a string or a whole number, got 2.5 (csv source)"),
        (
            {"start": "2024-13-01"},
            "source.start: expected a date (2024-01-31) or a date and time (2024-01-31T09:30:00): "
            "month value is outside expected range of 1-12, got '2024-13-01' (csv source)",
        ),
        (
            {"columns": {"price": "p"}},
            "source.columns.price: unknown key; expected 'time', 'open', 'high', 'low', 'close' or 'volume' "
            "(csv source)",
        ),
    ],
)
def test_a_config_error_says_what_is_wrong_once_and_never_prints_the_table(
    tmp_path: Path, keys: dict, message: str
) -> None:
    from engine_core import testing
    from engine_core.config import load_config
    from engine_core.errors import ConfigError

    registry = testing.builtin_registry(("csv", plugin))
    config = testing.write_config(
        tmp_path / "c.toml",
        {"engine": {"symbols": ["A"]}, "source": {"type": "csv", "path": "x", **keys}, "strategy": {"script": "s.lua"}},
    )
    with pytest.raises(ConfigError) as info:
        load_config(config, registry)
    assert str(info.value) == f"{config}: {message}"

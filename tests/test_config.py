from __future__ import annotations

from pathlib import Path

import pytest

import engine_core.testing as testing
from engine_core.config import load_config
from engine_core.errors import ConfigError, PluginError
from engine_core.sources import PluginConfig
from engine_core.testing import write_config


def base(**over: dict) -> dict:
    sections = {
        "engine": {"symbols": ["AAA"]},
        "source": {"type": "simulated", "bars": 10},
        "strategy": {"host": "python", "class": "mod:Cls"},
        "broker": {"type": "paper", "cash": 1000},
    }
    for key, value in over.items():
        sections[key] = value
    return sections


def load(tmp_path: Path, registry, sections: dict):
    return load_config(write_config(tmp_path / "config.toml", sections), registry)


def test_valid_config_is_typed(tmp_path, registry):
    loaded = load(tmp_path, registry, base())
    assert loaded.config.engine.symbols == ["AAA"]
    assert loaded.broker_config.cash == 1000
    assert loaded.source_config.bars == 10
    assert loaded.base_dir == tmp_path


def test_an_optimize_table_is_left_to_engine_optimize(tmp_path, registry):
    # one file serves `engine run` and `engine optimize` (engine-plugin-optimize checks the table)
    loaded = load(tmp_path, registry, base(optimize={"metric": "sharpe", "params": {"fast": {"low": 5, "high": 9}}}))
    assert loaded.config.optimize == {"metric": "sharpe", "params": {"fast": {"low": 5, "high": 9}}}
    assert load(tmp_path, registry, base()).config.optimize is None


def test_broken_toml_names_the_line(tmp_path, registry):
    path = tmp_path / "config.toml"
    path.write_text('[engine]\nsymbols = ["A"]\nmode = \n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"config.toml: invalid TOML: .*line 3"):
        load_config(path, registry)


def test_missing_file(tmp_path, registry):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml", registry)


def test_wrong_type_names_key_and_value(tmp_path, registry):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, registry, base(broker={"type": "paper", "cash": "abc"}))
    assert str(info.value) == f"{tmp_path / 'config.toml'}: broker.cash: expected a number, got 'abc' (paper broker)"


def test_negative_cash(tmp_path, registry):
    with pytest.raises(ConfigError, match=r"broker.cash: expected a positive number, got -5"):
        load(tmp_path, registry, base(broker={"type": "paper", "cash": -5}))


def test_unknown_key_in_core_section(tmp_path, registry):
    with pytest.raises(ConfigError, match=r"engine.symbolz: unknown key"):
        load(tmp_path, registry, base(engine={"symbols": ["A"], "symbolz": ["B"]}))


def test_unknown_key_in_plugin_section(tmp_path, registry):
    with pytest.raises(ConfigError, match=r"source.seeed: unknown key"):
        load(tmp_path, registry, base(source={"type": "simulated", "seeed": 3}))


def test_bad_literal(tmp_path, registry):
    with pytest.raises(ConfigError, match=r"broker.fill: expected 'next_open' or 'close', got 'later'"):
        load(tmp_path, registry, base(broker={"type": "paper", "fill": "later"}))


def test_missing_required_section(tmp_path, registry):
    sections = base()
    del sections["source"]
    with pytest.raises(ConfigError, match=r": source: required key is missing"):
        load(tmp_path, registry, sections)


def test_duplicate_symbol(tmp_path, registry):
    with pytest.raises(ConfigError, match=r"engine.symbols: symbol 'A' is listed twice"):
        load(tmp_path, registry, base(engine={"symbols": ["A", "A"]}))


def test_unknown_plugin_lists_installed_and_provider(tmp_path, registry):
    with pytest.raises(PluginError) as info:
        load(tmp_path, registry, base(source={"type": "binance"}))
    msg = str(info.value)
    assert "source.type: unknown source 'binance'" in msg
    assert "installed: " in msg and "replay, simulated" in msg
    assert "engine-plugin-binance" in msg


def test_env_substitution(tmp_path, registry, monkeypatch):
    monkeypatch.setenv("SEED_FROM_ENV", "77")
    loaded = load(tmp_path, registry, base(source={"type": "simulated", "seed": "${SEED_FROM_ENV}"}))
    assert loaded.source_config.seed == 77


def test_missing_env_var(tmp_path, registry, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ConfigError, match=r"source.seed: environment variable NOT_SET_ANYWHERE is not set"):
        load(tmp_path, registry, base(source={"type": "simulated", "seed": "${NOT_SET_ANYWHERE}"}))


def test_secret_from_env_is_never_printed(tmp_path, registry, monkeypatch):
    monkeypatch.setenv("API_SECRET", "s3cr3t-value")
    with pytest.raises(ConfigError) as info:
        load(tmp_path, registry, base(broker={"type": "paper", "cash": "${API_SECRET}"}))
    assert "s3cr3t" not in str(info.value)
    assert "broker.cash: expected a number" in str(info.value)


def test_strategy_needs_script_or_class(tmp_path, registry):
    with pytest.raises(ConfigError, match=r"strategy: expected script"):
        load(tmp_path, registry, base(strategy={"host": "python"}))
    with pytest.raises(ConfigError, match=r"strategy: give either script or class"):
        load(tmp_path, registry, base(strategy={"host": "python", "class": "a:B", "script": "x.lua"}))


def test_sinks_validated_by_their_plugin(tmp_path, registry):
    with pytest.raises(ConfigError, match=r"sinks\[0\].colour: unknown key"):
        load(tmp_path, registry, base(sinks=[{"type": "log", "colour": "red"}]))


def test_params_from_the_environment_never_reach_the_report(tmp_path, registry, monkeypatch):
    monkeypatch.setenv("WEBHOOK_TOKEN", "tok-123-secret")
    loaded = load(
        tmp_path,
        registry,
        base(strategy={"host": "python", "class": "m:C", "params": {"token": "${WEBHOOK_TOKEN}", "fast": 3}}),
    )
    assert loaded.config.strategy.params["token"] == "tok-123-secret"  # the strategy gets it
    assert loaded.public_params() == {"token": "<from environment>", "fast": 3}


def test_file_that_is_not_utf8_names_line_and_byte(tmp_path, registry):
    path = tmp_path / "config.toml"
    path.write_bytes(b'[engine]\nsymbols = ["AAA"]\n# caf\xe9\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, registry)
    assert str(info.value) == f"{path}: not UTF-8 text: line 3, byte 6 (0xe9); save the file as UTF-8"


def test_utf8_byte_order_mark_is_read(tmp_path, registry):
    path = write_config(tmp_path / "config.toml", base())
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_config(path, registry).config.engine.symbols == ["AAA"]


@pytest.mark.parametrize(
    "sections, message",
    [
        (
            {"sink": {"type": "log"}},
            "sink: sinks are a list of tables: write [[sinks]] (once per sink) instead of [sink]",
        ),
        (
            {"sinks": {"type": "log"}},
            "sinks: sinks are a list of tables: write [[sinks]] (once per sink) instead of [sinks]",
        ),
        ({"reprot": {"dir": "x"}}, "reprot: unknown key; did you mean 'report'?"),
        ({"engine": {"symbol": ["AAA"], "symbols": ["AAA"]}}, "engine.symbol: unknown key; did you mean 'symbols'?"),
        ({"strategy": {"class": "m:C", "stop_los": 0.1}}, "strategy.stop_los: unknown key; did you mean 'stop_loss'?"),
        (
            {"broker": {"type": "paper", "comission": 0.1}},
            "broker.comission: unknown key (paper broker); did you mean 'commission'?",
        ),
    ],
)
def test_misnamed_keys_get_a_suggestion(tmp_path, registry, sections, message):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, registry, base(**sections))
    assert str(info.value) == f"{tmp_path / 'config.toml'}: {message}"


def test_log_sink_path_is_relative_to_the_config_and_its_folder_must_exist(tmp_path, registry):
    (tmp_path / "logs").mkdir()
    loaded = load(tmp_path, registry, base(sinks=[{"type": "log", "path": "logs/run.log"}]))
    assert loaded.sinks[0][1].path == str(tmp_path / "logs" / "run.log")
    with pytest.raises(ConfigError) as info:
        load(tmp_path, registry, base(sinks=[{"type": "log"}, {"type": "log", "path": "nope/run.log"}]))
    assert str(info.value) == (
        f"{tmp_path / 'config.toml'}: sinks[1].path: folder {tmp_path / 'nope'} does not exist, got 'nope/run.log' (log sink)"
    )


def test_every_problem_is_listed_one_per_line_across_tables(tmp_path, registry):
    sections = base(
        engine={"symbols": [], "window": 2.5},
        source={"type": "simulated", "bars": -1, "seeed": 3},
        broker={"type": "paper", "cash": "abc", "fill": "later"},
        sinks=[{"type": "log", "levle": "all"}],
    )
    with pytest.raises(ConfigError) as info:
        load(tmp_path, registry, sections)
    where = tmp_path / "config.toml"
    lines = str(info.value).splitlines()
    assert "more)" not in str(info.value)
    assert lines == [
        f"{where}: engine.symbols: expected at least 1 item, got []",
        f"{where}: engine.window: expected a whole number, got 2.5",
        f"{where}: source.bars: expected 0 or more, got -1 (simulated source)",
        f"{where}: source.seeed: unknown key (simulated source); did you mean 'seed'?",
        f"{where}: broker.cash: expected a number, got 'abc' (paper broker)",
        f"{where}: broker.fill: expected 'next_open' or 'close', got 'later' (paper broker)",
        f"{where}: sinks[0].levle: unknown key (log sink); did you mean 'level'?",
    ]


def test_a_long_list_of_problems_stops_at_fifty_and_says_how_many_more(tmp_path, registry):
    keys = {f"unknown{i}": i for i in range(60)}
    with pytest.raises(ConfigError) as info:
        load(tmp_path, registry, base(broker={"type": "paper", **keys}))
    lines = str(info.value).splitlines()
    assert len(lines) == 51
    assert lines[49].endswith("broker.unknown49: unknown key (paper broker)")
    assert lines[50] == "... and 10 more problems"


class _KeyedBroker(testing.RecordingBroker):
    class Config(PluginConfig):
        api_key: str
        api_secret: str


def test_a_plugin_table_problem_names_the_plugin(tmp_path):
    plugin = testing.InlinePlugin(brokers={"venue": _KeyedBroker})
    registry = testing.builtin_registry(("testing", testing), ("keyed", plugin))
    with pytest.raises(ConfigError) as info:
        load(tmp_path, registry, base(broker={"type": "venue", "api_secret": "s"}))
    assert str(info.value) == f"{tmp_path / 'config.toml'}: broker.api_key: required key is missing (venue broker)"


@pytest.mark.parametrize(
    "sections, message",
    [
        ({"engine": {"symbols": ["A"], "window": 2.5}}, "engine.window: expected a whole number, got 2.5"),
        ({"engine": {"symbols": []}}, "engine.symbols: expected at least 1 item, got []"),
        ({"engine": {"symbols": "A"}}, "engine.symbols: expected a list, got 'A'"),
        ({"engine": {"symbols": ["A"], "journal": "maybe"}}, "engine.journal: expected true or false, got 'maybe'"),
        ({"strategy": {"class": "m:C", "params": [1]}}, "strategy.params: expected a table, got [1]"),
        ({"report": {"dir": 3}}, "report.dir: expected a string, got 3"),
        (
            {"engine": {"symbols": ["A"], "id": "desk 1"}},
            "engine.id: expected 1 to 32 letters, digits, '-' or '_' (it names the journal and MQTT topics), "
            "got 'desk 1'",
        ),
    ],
)
def test_messages_are_in_the_engines_words(tmp_path, registry, sections, message):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, registry, base(**sections))
    assert str(info.value) == f"{tmp_path / 'config.toml'}: {message}"


def test_the_default_engine_id_is_the_config_files_name(tmp_path, registry):
    def engine_id(name: str, **engine) -> str:
        path = write_config(tmp_path / name, base(engine={"symbols": ["AAA", "BBB"], **engine}))
        return load_config(path, registry).config.engine.id

    assert engine_id("binance_paper.toml") == "binance_paper"  # topics: engine/binance_paper/BTCUSDT/...
    assert engine_id("my config.v2.toml") == "my-config-v2"
    assert engine_id("binance_paper.toml", shard="1/2") == "binance_paper-1of2"
    assert engine_id("binance_paper.toml", id="desk1") == "desk1"


def test_a_journal_of_the_former_default_id_is_kept_and_said(tmp_path, registry):
    from engine_core.config import journal_path, read_engine_section
    from engine_core.validate import load_warnings

    (tmp_path / ".engine").mkdir()
    (tmp_path / ".engine" / "engine.sqlite").write_bytes(b"")  # written by an engine before ids came from file names
    path = write_config(tmp_path / "live.toml", base(engine={"symbols": ["AAA"], "mode": "live"}))
    loaded = load_config(path, registry)
    assert loaded.config.engine.id == "engine"
    assert journal_path(tmp_path, read_engine_section(path)) == tmp_path / ".engine" / "engine.sqlite"  # engine status
    assert load_warnings(loaded) == [
        f"{path}: engine.id: not set, so the engine keeps the id 'engine' of the journal in {tmp_path / '.engine'} "
        '(a config without an id is now named after its file); set id = "engine" to keep it'
    ]
    named = write_config(tmp_path / "live.toml", base(engine={"symbols": ["AAA"], "mode": "live", "id": "engine"}))
    assert load_warnings(load_config(named, registry)) == []

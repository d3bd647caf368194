"""A backtest (and an optimisation, a replay) runs only simulated brokers.
The contract says which a broker is (``Broker.simulated``); the check reads
the class the registry resolved, never building or connecting it, so a venue
broker from any plugin is refused: by ``engine validate``, by ``engine run``
and by ``Engine`` itself, in one line naming the mode, the broker and the key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import engine_core.testing as testing
from engine_core.brokers import Broker
from engine_core.builtin.paper import PaperBroker
from engine_core.cli import main
from engine_core.config import load_config
from engine_core.errors import ConfigError
from engine_core.orders import OrderState
from engine_core.plugins import set_registry
from engine_core.runner import Engine
from engine_core.testing import InlinePlugin, write_config
from engine_core.validate import validate, venue_refusal


class ThirdPartyVenue(Broker):
    """A venue from someone else's plugin: building it is already too far."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the venue broker was built")

    def starting_cash(self) -> Decimal:
        raise AssertionError("the venue was asked for its account")

    def submit(self, order: Any) -> None:
        raise AssertionError("an order reached the venue")

    def cancel(self, client_id: str) -> None:
        raise AssertionError("a cancel reached the venue")

    def order_status(self, client_id: str) -> OrderState | None:
        raise AssertionError("the venue was asked about an order")


class ThirdPartySimulator(PaperBroker):
    """Someone else's simulated broker: backtests may use it."""


@pytest.fixture
def registry(registry):
    reg = testing.builtin_registry(
        ("testing", testing), ("third", InlinePlugin(brokers={"venue": ThirdPartyVenue, "sim": ThirdPartySimulator}))
    )
    set_registry(reg)
    return reg


def config(tmp_path: Path, mode: str, broker: str) -> Path:
    (tmp_path / "s.lua").write_text(
        'function watch(ctx) return "enter" end\nfunction close_watch(ctx) end\nfunction in_trade(ctx) end\n'
    )
    return write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": mode, "symbols": ["AAA"]},
            "source": {"type": "simulated", "bars": 50},
            "strategy": {"script": "s.lua"},
            "broker": {"type": broker},
            "report": {"dir": "out"},
        },
    )


def refusal(path: Path, runs: str = 'mode "backtest"') -> str:
    return (
        f'{path}: [broker] type = "venue" is a venue broker; {runs} runs only simulated brokers (paper, recording, sim)'
    )


def test_validate_refuses_a_third_party_venue_broker_in_a_backtest(tmp_path, registry):
    path = config(tmp_path, "backtest", "venue")
    result = validate(path, registry)
    assert result.problems == [refusal(path)]


def test_the_engine_refuses_it_before_building_the_broker(tmp_path, registry):
    path = config(tmp_path, "backtest", "venue")
    with pytest.raises(ConfigError) as caught:
        Engine(load_config(path, registry), registry)
    assert str(caught.value) == refusal(path)


def test_engine_run_refuses_it_in_one_line_and_writes_nothing(tmp_path, registry):
    path = config(tmp_path, "backtest", "venue")
    result = CliRunner().invoke(main, ["run", "-c", str(path)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {refusal(path)}\n"
    assert not (tmp_path / "out").exists()


def test_what_only_simulated_brokers_run_is_named(tmp_path, registry):
    live = load_config(config(tmp_path, "live", "venue"), registry)
    assert venue_refusal(live, registry) is None  # live trading is what venue brokers are for
    assert venue_refusal(live, registry, "engine replay") == refusal(live.path, "engine replay")


def test_simulated_brokers_of_any_plugin_run_backtests(tmp_path, registry):
    path = config(tmp_path, "backtest", "sim")
    assert validate(path, registry).ok
    result = Engine(load_config(path, registry), registry).run()
    assert result.symbols["AAA"].fills == 1


def test_validate_checks_an_optimize_file_for_what_engine_optimize_runs(tmp_path, registry):
    """A live config with a venue broker is fine to run, not to optimise."""
    live = config(tmp_path, "live", "venue")
    assert validate(live, registry).ok
    search = tmp_path / "optimize.toml"
    search.write_text('[optimize]\nconfig = "c.toml"\n[optimize.params]\nfast = { low = 2, high = 5 }\n')
    result = validate(search, registry)
    assert result.problems == [
        f"{search}: optimize.config: {live} has a problem",
        refusal(live, "engine optimize"),
    ]

"""The strategy contract: what a decision carries onto the bus, which functions a strategy must define."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine_core.builtin.python_host import PythonHost
from engine_core.config import StrategySection
from engine_core.errors import StrategyError
from engine_core.model import State
from engine_core.strategy import parse_decision


def test_a_signal_carries_the_side_of_an_entry_the_fields_given_and_the_reason():
    enter = parse_decision(State.WATCH, {"action": "enter", "qty": 2, "limit_price": 90, "reason": "dip"}, "t")
    assert enter is not None
    assert enter.detail() == {"side": "buy", "qty": "2", "limit_price": 90.0, "reason": "dip"}
    exit_ = parse_decision(State.IN_TRADE, "exit", "t")
    assert exit_ is not None and exit_.detail() == {}


def test_a_python_strategy_must_define_every_state_function(tmp_path: Path):
    (tmp_path / "s.py").write_text("class S:\n    def watch(self, ctx):\n        return None\n")
    host = PythonHost(StrategySection(host="python", **{"class": "s.py:S"}), tmp_path)
    with pytest.raises(StrategyError, match=r"s\.py:S does not define close_watch, in_trade$"):
        host.load()

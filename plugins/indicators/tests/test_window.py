"""The bounded-window streaming of every TA-Lib function equals its batch."""

from __future__ import annotations

import pytest
import talib
from engine_plugin_indicators.testing import (
    assert_same,
    expected,
    make_path,
    streamed,
    streamed_many,
)
from engine_plugin_indicators.window import MAX_WINDOW, WindowIndicator, plan

from engine_core import indicators

CHUNK = make_path(31, 2500, "gaps")


@pytest.mark.parametrize("name", [f.lower() for f in talib.get_functions()])
def test_streaming_equals_batch(name: str) -> None:
    want = expected(name, CHUNK, {})
    assert_same(streamed(name, CHUNK, {}), want, f"{name} update")
    assert_same(streamed_many(name, CHUNK, {}, [1, 7, 900, 901, 2000]), want, f"{name} update_many")


def test_plans() -> None:
    def of(name: str, **params: object) -> object:
        kind = indicators.kind(name)
        return plan(kind, tuple(indicators.resolve_params(kind.spec, params).items()))

    assert of("max", timeperiod=30).window == 30  # finite memory: lookback + 1
    assert of("obv").mode == "add" and of("nvi").mode == "mul"
    assert of("sar").window == MAX_WINDOW
    assert 30 < of("kama").window < MAX_WINDOW


def test_window_used_for_non_o1() -> None:
    assert isinstance(indicators.create("kama"), WindowIndicator)

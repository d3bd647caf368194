"""O(1) streaming indicators equal TA-Lib, bar by bar and chunk by chunk."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from engine_plugin_indicators.streaming import O1Indicator
from engine_plugin_indicators.testing import (
    PATHS,
    assert_same,
    expected,
    make_path,
    path,
    streamed,
    streamed_many,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_core import indicators
from engine_core.model import Bar

CASES: list[tuple[str, dict[str, Any]]] = [
    ("sma", {"period": 20}),
    ("ema", {"period": 12}),
    ("wma", {"timeperiod": 10}),
    ("rsi", {"period": 14}),
    ("macd", {"fast": 12, "slow": 26, "signal": 9}),
    ("bbands", {"period": 20, "nbdevup": 2.0, "nbdevdn": 1.5}),
    ("atr", {"timeperiod": 14}),
    ("stoch", {}),
    ("vwap", {}),
]
CUTS = [1, 2, 40, 41, 333, 1000]


@pytest.mark.parametrize("path_name", sorted(PATHS))
@pytest.mark.parametrize(("name", "params"), CASES, ids=[c[0] for c in CASES])
def test_streaming_equals_talib(name: str, params: dict[str, Any], path_name: str) -> None:
    chunk = path(path_name)
    want = expected(name, chunk, params)
    assert_same(streamed(name, chunk, params), want, f"{name} update on {path_name}")
    assert_same(streamed_many(name, chunk, params, CUTS), want, f"{name} update_many on {path_name}")


@pytest.mark.parametrize(("name", "params"), CASES, ids=[c[0] for c in CASES])
def test_is_o1_and_ready_where_talib_starts(name: str, params: dict[str, Any]) -> None:
    stream = indicators.create(name, **params)
    assert isinstance(stream, O1Indicator) and stream.spec.o1
    chunk = make_path(9, 200)
    first = np.flatnonzero(~np.isnan(expected(name, chunk, params)[0]))[0]
    for i in range(len(chunk)):
        stream.update(chunk.bar(i))
        assert stream.ready == (i >= first)


def test_update_after_update_many_continues() -> None:
    chunk = make_path(11, 600)
    for name, params in CASES:
        stream = indicators.create(name, **params)
        stream.update_many(chunk.slice(0, 300))
        for i in range(300, 600):
            stream.update(chunk.bar(i))
        value = stream.value
        want = [w[-1] for w in expected(name, chunk, params)]
        assert np.allclose(value, want, rtol=1e-9), name


def test_other_matypes_fall_back_to_the_window() -> None:
    assert not isinstance(indicators.create("bbands", matype=1), O1Indicator)
    assert not isinstance(indicators.create("stoch", slowk_matype=1), O1Indicator)


PERIOD = st.integers(min_value=2, max_value=60)


def _check(name: str, params: dict[str, Any], seed: int, cuts: list[int]) -> None:
    chunk = make_path(seed, 400, "gaps")
    want = expected(name, chunk, params)
    assert_same(streamed_many(name, chunk, params, cuts), want, f"{name}{params} update_many")
    stream = indicators.create(name, **params)
    for i in range(len(chunk)):
        stream.update(chunk.bar(i))
    value = stream.value if isinstance(stream.value, tuple) else (stream.value,)
    assert np.allclose(value, [w[-1] for w in want], rtol=1e-9, equal_nan=True)


SEED = st.integers(0, 10_000)
SPLITS = st.lists(st.integers(0, 400), max_size=5)
FAST = settings(max_examples=15, deadline=None)


@FAST
@given(name=st.sampled_from(["sma", "ema", "rsi"]), period=PERIOD, seed=SEED, cuts=SPLITS)
def test_period_indicators_any_params(name: str, period: int, seed: int, cuts: list[int]) -> None:
    _check(name, {"period": period}, seed, cuts)


@FAST
@given(name=st.sampled_from(["wma", "atr"]), period=st.integers(1, 60), seed=SEED, cuts=SPLITS)
def test_timeperiod_indicators_any_params(name: str, period: int, seed: int, cuts: list[int]) -> None:
    _check(name, {"timeperiod": period}, seed, cuts)


@FAST
@given(fast=PERIOD, slow=PERIOD, signal=st.integers(1, 30), seed=SEED, cuts=SPLITS)
def test_macd_any_params(fast: int, slow: int, signal: int, seed: int, cuts: list[int]) -> None:
    _check("macd", {"fast": fast, "slow": slow, "signal": signal}, seed, cuts)


@FAST
@given(
    period=PERIOD,
    up=st.floats(0.0, 4.0),
    dn=st.floats(0.0, 4.0),
    seed=SEED,
    cuts=SPLITS,
)
def test_bbands_any_params(period: int, up: float, dn: float, seed: int, cuts: list[int]) -> None:
    _check("bbands", {"period": period, "nbdevup": up, "nbdevdn": dn}, seed, cuts)


@FAST
@given(k=st.integers(1, 30), sk=st.integers(1, 10), sd=st.integers(1, 10), seed=SEED, cuts=SPLITS)
def test_stoch_any_params(k: int, sk: int, sd: int, seed: int, cuts: list[int]) -> None:
    _check("stoch", {"fastk_period": k, "slowk_period": sk, "slowd_period": sd}, seed, cuts)


def test_value_shapes() -> None:
    bar = Bar("T", 0, 1.0, 2.0, 0.5, 1.5, 10.0)
    sma, macd = indicators.create("sma", period=2), indicators.create("macd")
    sma.update(bar)
    macd.update(bar)
    assert np.isnan(sma.value) and not sma.ready
    assert isinstance(macd.value, tuple) and len(macd.value) == 3
    sma.update(bar)
    assert sma.value == 1.5 and sma.ready

"""O(1) streaming indicators equal TA-Lib, bar by bar and chunk by chunk.

``update`` and ``update_many`` over any chunking are bitwise identical for
every O(1) indicator; those in ``EXACT`` are also bitwise identical to
TA-Lib's batch over the whole series. WMA and BBANDS follow TA-Lib's
published C operation order, which the installed (FMA, reassociating) build
does not keep exactly, and RSI smooths in the build's ATR form (so chunks can
continue in ``talib.ATR``); they are checked against TA-Lib within ``RTOL``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from engine_plugin_indicators.streaming import O1Indicator
from engine_plugin_indicators.testing import (
    PATHS,
    assert_exact,
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
EXACT = {"sma", "ema", "macd", "atr", "stoch", "vwap"}
SIZE = 20_000


def _chunkings(size: int) -> dict[str, list[int]]:
    return {
        "1": list(range(1, size)),
        "7": list(range(7, size, 7)),
        "1000": list(range(1000, size, 1000)),
        "16384": list(range(16384, size, 16384)),
        "uneven": [1, 2, 40, 41, 333, 1000, 4097, 12000],
        "whole": [],
    }


@pytest.mark.parametrize("path_name", sorted(PATHS))
@pytest.mark.parametrize(("name", "params"), CASES, ids=[c[0] for c in CASES])
def test_streaming_equals_talib(name: str, params: dict[str, Any], path_name: str) -> None:
    chunk = path(path_name, SIZE)
    want = expected(name, chunk, params)
    one_by_one = streamed(name, chunk, params)
    if name in EXACT:
        assert_exact(one_by_one, want, f"{name} update on {path_name}")
    else:
        assert_same(one_by_one, want, f"{name} update on {path_name}")
    for label, cuts in _chunkings(SIZE).items():
        many = streamed_many(name, chunk, params, cuts)
        assert_exact(many, one_by_one, f"{name} update_many by {label} on {path_name}")


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
        if name in EXACT:
            assert value == (want[0] if len(want) == 1 else tuple(want)), name
        else:
            assert np.allclose(value, want, rtol=1e-9), name


def test_other_matypes_fall_back_to_the_window() -> None:
    assert not isinstance(indicators.create("bbands", matype=1), O1Indicator)
    assert not isinstance(indicators.create("stoch", slowk_matype=1), O1Indicator)


PERIOD = st.integers(min_value=2, max_value=60)


def _check(name: str, params: dict[str, Any], seed: int, cuts: list[int], kind: str = "gaps") -> None:
    chunk = make_path(seed, 400, kind)
    want = expected(name, chunk, params)
    one_by_one = streamed(name, chunk, params)
    many = streamed_many(name, chunk, params, cuts)
    assert_exact(many, one_by_one, f"{name}{params} update_many vs update")
    if name in EXACT:
        assert_exact(one_by_one, want, f"{name}{params} update")
    else:
        assert_same(one_by_one, want, f"{name}{params} update")


SEED = st.integers(0, 10_000)
KIND = st.sampled_from(["gaps", "cents", "flat"])
SPLITS = st.lists(st.integers(0, 400), max_size=8)
FAST = settings(max_examples=15, deadline=None)


@FAST
@given(name=st.sampled_from(["sma", "ema", "rsi"]), period=PERIOD, seed=SEED, cuts=SPLITS, kind=KIND)
def test_period_indicators_any_params(name: str, period: int, seed: int, cuts: list[int], kind: str) -> None:
    _check(name, {"period": period}, seed, cuts, kind)


@FAST
@given(name=st.sampled_from(["wma", "atr"]), period=st.integers(1, 60), seed=SEED, cuts=SPLITS, kind=KIND)
def test_timeperiod_indicators_any_params(name: str, period: int, seed: int, cuts: list[int], kind: str) -> None:
    _check(name, {"timeperiod": period}, seed, cuts, kind)


@FAST
@given(fast=PERIOD, slow=PERIOD, signal=st.integers(1, 30), seed=SEED, cuts=SPLITS, kind=KIND)
def test_macd_any_params(fast: int, slow: int, signal: int, seed: int, cuts: list[int], kind: str) -> None:
    _check("macd", {"fast": fast, "slow": slow, "signal": signal}, seed, cuts, kind)


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
@given(seed=SEED, cuts=SPLITS, kind=KIND)
def test_vwap_any_chunking(seed: int, cuts: list[int], kind: str) -> None:
    _check("vwap", {}, seed, cuts, kind)


@FAST
@given(k=st.integers(1, 30), sk=st.integers(1, 10), sd=st.integers(1, 10), seed=SEED, cuts=SPLITS)
def test_stoch_any_params(k: int, sk: int, sd: int, seed: int, cuts: list[int]) -> None:
    _check("stoch", {"fastk_period": k, "slowk_period": sk, "slowd_period": sd}, seed, cuts, "cents")


def test_value_shapes() -> None:
    bar = Bar("T", 0, 1.0, 2.0, 0.5, 1.5, 10.0)
    sma, macd = indicators.create("sma", period=2), indicators.create("macd")
    sma.update(bar)
    macd.update(bar)
    assert np.isnan(sma.value) and not sma.ready
    assert isinstance(macd.value, tuple) and len(macd.value) == 3
    sma.update(bar)
    assert sma.value == 1.5 and sma.ready


def test_step_is_update_then_value_as_a_tuple() -> None:
    """``step`` (the engine's call on a live bar) feeds the bar as ``update``
    does and returns ``value`` as a tuple, for one- and many-input indicators."""
    chunk = make_path(13, 120)
    for name, params in [*CASES, ("bbands", {"matype": 1})]:
        stepped, updated = indicators.create(name, **params), indicators.create(name, **params)
        for i in range(len(chunk)):
            row = stepped.step(chunk.bar(i))
            updated.update(chunk.bar(i))
            value = updated.value
            want = value if isinstance(value, tuple) else (value,)
            assert np.array_equal(row, want, equal_nan=True), name
            assert np.array_equal(np.atleast_1d(stepped.value), np.atleast_1d(value), equal_nan=True), name

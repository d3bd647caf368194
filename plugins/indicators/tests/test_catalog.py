"""Every TA-Lib function is registered, described, and its batch is TA-Lib's."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import talib
from engine_plugin_indicators.testing import make_path
from talib import abstract

from engine_core import indicators
from engine_core.errors import IndicatorError
from engine_core.indicators import PRICE_INPUTS
from engine_core.model import Bar

FUNCTIONS = talib.get_functions()
CHUNK = make_path(21, 500, "gaps")


def test_every_talib_function_is_registered_with_a_complete_spec() -> None:
    specs = {s.name: s for s in indicators.available()}
    assert set(specs) == {f.lower() for f in FUNCTIONS}
    for name in FUNCTIONS:
        spec, info = specs[name.lower()], abstract.Function(name).info
        assert spec.group == info["group"] and spec.description == info["display_name"]
        assert spec.outputs == tuple(info["output_names"])
        assert list(spec.params.values()) == list(info["parameters"].values())
        assert set(spec.inputs) <= set(PRICE_INPUTS)
    assert {s.name for s in specs.values() if s.o1} == {
        "sma",
        "ema",
        "wma",
        "rsi",
        "macd",
        "bbands",
        "atr",
        "stoch",
        "vwap",
    }


def test_the_five_use_the_usual_parameter_names() -> None:
    assert list(indicators.kind("sma").spec.params) == ["period"]
    assert dict(indicators.kind("macd").spec.params) == {"fast": 12, "slow": 26, "signal": 9}
    assert indicators.kind("bbands").spec.outputs == ("upperband", "middleband", "lowerband")
    assert indicators.positional_params("macd", (5, 10, 3)) == {"fast": 5, "slow": 10, "signal": 3}
    assert isinstance(indicators.kind("bbands").spec.params["matype"], int)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_batch_is_talib(name: str) -> None:
    kind = indicators.kind(name)
    args = [getattr(CHUNK, c) for c in kind.columns]  # type: ignore[attr-defined]
    want = getattr(talib, name)(*args)
    want = want if isinstance(want, tuple) else (want,)
    got = indicators.compute(name.lower(), **{c: getattr(CHUNK, c) for c in kind.spec.inputs})
    got = got if isinstance(got, tuple) else (got,)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and np.array_equal(g, w, equal_nan=True)


def test_two_series_and_periods_inputs() -> None:
    assert indicators.kind("beta").spec.inputs == ("high", "low")
    assert indicators.kind("correl").spec.inputs == ("high", "low")
    assert indicators.kind("mavp").spec.inputs == ("close", "volume")


def test_unknown_indicator_and_parameter_are_named() -> None:
    with pytest.raises(IndicatorError, match="'nope'; available: ac, accbands, .*201 in all"):
        indicators.create("nope")
    with pytest.raises(IndicatorError, match="no parameter 'length'; accepted: period=30"):
        indicators.create("sma", length=3)
    with pytest.raises(IndicatorError, match="whole number"):
        indicators.compute("sma", close=CHUNK.close, period="x")


@pytest.mark.parametrize("period", [0, -5, 1_000_000])
def test_bad_period_names_indicator_and_parameter(period: int) -> None:
    for call in (
        lambda: indicators.create("rsi", period=period),
        lambda: indicators.compute("rsi", close=CHUNK.close, period=period),
        lambda: indicators.create("adx", timeperiod=period),
    ):
        with pytest.raises(IndicatorError, match=r"'(rsi|adx)'.*period=-?\d+ is outside"):
            call()


def test_period_longer_than_data_is_all_nan() -> None:
    out = indicators.compute("sma", close=CHUNK.close[:10], period=50)
    assert out.shape == (10,) and np.isnan(out).all()


def test_nan_input() -> None:
    close = CHUNK.close.copy()
    close[100] = np.nan
    batch = indicators.compute("sma", close=close, period=5)
    assert np.array_equal(batch, talib.SMA(close, 5), equal_nan=True)  # TA-Lib's behaviour
    for name in ("sma", "adx"):
        stream = indicators.create(name)
        with pytest.raises(IndicatorError, match="NaN in close"):
            stream.update(Bar("T", 0, 1.0, 1.0, 1.0, float("nan"), 1.0))
        with pytest.raises(IndicatorError, match="NaN in close at row 100"):
            stream.update_many(replace(CHUNK, close=close))


def test_mismatched_inputs_are_an_indicator_error() -> None:
    with pytest.raises(IndicatorError, match="'atr'"):
        indicators.compute("atr", high=CHUNK.high, low=CHUNK.low[:-1], close=CHUNK.close)
    with pytest.raises(IndicatorError, match="needs input arrays high, low, close; missing low"):
        indicators.compute("atr", high=CHUNK.high, close=CHUNK.close)


def test_one_naming_for_periods_with_talib_names_as_aliases() -> None:
    specs = {s.name: s for s in indicators.available()}
    talib_names = {"timeperiod", "fastperiod", "slowperiod", "signalperiod"}
    assert not any(talib_names & set(s.params) for s in specs.values())
    assert list(specs["adx"].params) == ["period"] and specs["adx"].aliases == {"timeperiod": "period"}
    assert list(specs["apo"].params) == ["fast", "slow", "matype"]
    assert list(specs["macdext"].params)[:2] == ["fast", "fastmatype"]
    assert specs["stoch"].aliases == {}  # fastk_period and the others keep TA-Lib's names
    for spec in specs.values():
        assert all(name in spec.params for name in spec.aliases.values()), spec.name


def test_talib_names_still_work_and_give_the_same_values() -> None:
    by_alias = indicators.compute("adx", high=CHUNK.high, low=CHUNK.low, close=CHUNK.close, timeperiod=9)
    by_name = indicators.compute("adx", high=CHUNK.high, low=CHUNK.low, close=CHUNK.close, period=9)
    assert np.array_equal(by_alias, by_name, equal_nan=True)
    macd = indicators.compute("macd", close=CHUNK.close, fastperiod=5, slowperiod=10, signalperiod=3)
    assert np.array_equal(macd[2], talib.MACD(CHUNK.close, 5, 10, 3)[2], equal_nan=True)
    assert indicators.create("sma", timeperiod=5).spec.name == "sma"
    with pytest.raises(IndicatorError, match="'sma': period given twice"):
        indicators.create("sma", period=5, timeperiod=6)

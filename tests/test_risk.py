"""Risk controls: each rule refuses exactly the order that breaks it; sizing is exact;
the vectorised kill switches agree with a plain loop."""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_core.config import load_config
from engine_core.errors import ConfigError, RiskError
from engine_core.model import NS_PER_DAY, NS_PER_SECOND, Side
from engine_core.risk import Account, KillState, KillSwitch, RiskManager, RiskSection
from engine_core.testing import write_config

D = Decimal
BUY, SELL = Side.BUY, Side.SELL
MIN = 60 * NS_PER_SECOND


def manager(cash: int = 10_000, **risk: Any) -> RiskManager:
    return RiskManager(RiskSection.model_validate(risk), Account(D(cash)))


def refused(rm: RiskManager, *args: Any, **kw: Any) -> RiskError:
    with pytest.raises(RiskError) as info:
        rm.check(*args, **kw)
    return info.value


# ------------------------------------------------------------ pre-trade checks


def test_max_position_refuses_exactly_the_breaking_order() -> None:
    rm = manager(max_position=4)
    rm.check("BTCUSDT", BUY, D(2), 100.0, D(2), ts=0, reducing=False)  # to 4: at the limit
    err = refused(rm, "BTCUSDT", BUY, D(3), 100.0, D(2), ts=0, reducing=False)
    assert err.rule == "max_position"
    assert str(err) == "BTCUSDT: order buy 3 refused by max_position: position would be 5, limit 4"
    rm.check("BTCUSDT", SELL, D(8), 100.0, D(4), ts=0, reducing=False)  # flip to -4
    assert refused(rm, "BTCUSDT", SELL, D("8.5"), 100.0, D(4), ts=0, reducing=False).rule == "max_position"


def test_max_notional() -> None:
    rm = manager(max_notional=1000)
    rm.check("A", BUY, D(10), 100.0, D(0), ts=0, reducing=False)  # 1000: at the limit
    err = refused(rm, "A", BUY, D("10.01"), 100.0, D(0), ts=0, reducing=False)
    assert err.rule == "max_notional"
    assert str(err) == "A: order buy 10.01 refused by max_notional: notional would be 1001, limit 1000"


def test_max_total_notional_counts_other_symbols_but_not_this_ones_old_mark() -> None:
    rm = manager(max_total_notional=1000)
    rm.account.update("A", 0.0, 600.0)
    rm.account.update("B", 0.0, -300.0)  # a short counts by its absolute value
    rm.check("B", BUY, D(1), 100.0, D(-3), ts=0, reducing=False)  # B to -2: 600 + 200 = 800
    rm.check("B", SELL, D(1), 100.0, D(-3), ts=0, reducing=False)  # B to -4: 600 + 400 = 1000
    err = refused(rm, "B", SELL, D(2), 100.0, D(-3), ts=0, reducing=False)
    assert err.rule == "max_total_notional"
    assert "total notional would be 1100, limit 1000" in str(err)
    assert rm.account.total_notional() == 900.0


def test_an_entry_on_its_way_counts_towards_max_total_notional_until_it_leaves_the_book() -> None:
    rm = manager(max_total_notional=1000)
    rm.check("A", BUY, D(6), 100.0, D(0), ts=0, reducing=False)  # A's entry, not filled yet: 600
    err = refused(rm, "B", BUY, D(6), 100.0, D(0), ts=0, reducing=False)
    assert err.rule == "max_total_notional"
    assert "total notional would be 1200, limit 1000" in str(err)
    rm.order_closed("A")  # cancelled: A holds nothing
    rm.check("B", BUY, D(6), 100.0, D(0), ts=0, reducing=False)
    rm.account.update("B", 0.0, 600.0)  # filled: its exposure from now on
    rm.order_closed("B")
    assert refused(rm, "A", BUY, D(6), 100.0, D(0), ts=0, reducing=False).rule == "max_total_notional"
    rm.check("A", BUY, D(4), 100.0, D(0), ts=0, reducing=False)  # 600 + 400


def test_max_open_orders_across_symbols() -> None:
    """An order passed is one of the account's open orders at once, before it
    is sent: the next symbol's order checked meanwhile sees it."""
    rm = manager(max_open_orders=2)
    rm.check("A", BUY, D(1), 1.0, D(0), ts=0, reducing=False)
    rm.check("B", BUY, D(1), 1.0, D(0), ts=0, reducing=False)
    assert rm.account.open_orders == 2
    err = refused(rm, "C", BUY, D(1), 1.0, D(0), ts=0, reducing=False)
    assert err.rule == "max_open_orders"
    assert str(err) == "C: order buy 1 refused by max_open_orders: open orders 2, limit 2"
    assert rm.account.open_orders == 2  # a refused order takes no place
    rm.account.order_closed()  # A's order has ended
    rm.check("C", BUY, D(1), 1.0, D(0), ts=0, reducing=False)
    assert rm.account.open_orders == 2


def test_rate_limit_slides_over_event_time_per_symbol() -> None:
    rm = manager(max_orders_per_minute=2)
    rm.check("A", BUY, D(1), 1.0, D(0), ts=0, reducing=False)
    rm.check("A", BUY, D(1), 1.0, D(0), ts=30 * NS_PER_SECOND, reducing=False)
    err = refused(rm, "A", BUY, D(1), 1.0, D(0), ts=MIN - 1, reducing=False)
    assert err.rule == "max_orders_per_minute"
    assert "orders in the last minute 2, limit 2" in str(err)
    rm.check("B", BUY, D(1), 1.0, D(0), ts=MIN - 1, reducing=False)  # another symbol's budget
    rm.check("A", BUY, D(1), 1.0, D(0), ts=MIN, reducing=False)  # the order at 0 has left the window
    assert refused(rm, "A", BUY, D(1), 1.0, D(0), ts=MIN + 1, reducing=False).rule == "max_orders_per_minute"
    rm.check("A", BUY, D(1), 1.0, D(0), ts=MIN + 30 * NS_PER_SECOND, reducing=False)


def test_refused_orders_are_not_counted_by_the_rate_limit() -> None:
    rm = manager(max_orders_per_minute=1, max_position=1)
    refused(rm, "A", BUY, D(2), 1.0, D(0), ts=0, reducing=False)
    rm.check("A", BUY, D(1), 1.0, D(0), ts=0, reducing=False)


def test_reducing_orders_are_never_refused_but_are_counted() -> None:
    rm = manager(max_position=1, max_notional=1, max_total_notional=1, max_open_orders=1, max_orders_per_minute=1)
    rm.account.update("A", 0.0, 500.0)
    rm.account.order_opened()  # the limit of open orders is reached
    for k in range(3):
        rm.check("A", SELL, D(5), 100.0, D(5), ts=k, reducing=True)
    assert rm.account.open_orders == 4  # never refused, each one open
    for _ in range(4):
        rm.account.order_closed()
    # they count towards the rate limit, and the order it refuses gives back the place it had taken
    assert refused(rm, "A", BUY, D("0.001"), 1.0, D(0), ts=3, reducing=False).rule == "max_orders_per_minute"
    assert rm.account.open_orders == 0


# ------------------------------------------------------------ config merging and validation


def test_override_replaces_only_the_keys_it_sets() -> None:
    section = RiskSection.model_validate(
        {
            "max_position": 5,
            "max_drawdown": 0.2,
            "sizing": "fixed_notional",
            "notional": 1000,
            "symbols": {"BTCUSDT": {"max_position": 2, "notional": 500}},
        }
    )
    btc, eth = section.for_symbol("BTCUSDT"), section.for_symbol("ETHUSDT")
    assert (btc.max_position, btc.notional, btc.max_drawdown, btc.sizing) == (D(2), D(500), 0.2, "fixed_notional")
    assert (eth.max_position, eth.notional, eth.max_drawdown) == (D(5), D(1000), 0.2)


def test_override_may_complete_or_change_the_sizing_rule() -> None:
    section = RiskSection.model_validate({"risk": 0.01, "symbols": {"A": {"sizing": "risk_per_trade"}}})
    assert section.for_symbol("A").sizing == "risk_per_trade"
    assert section.for_symbol("B").sizing == "fixed_qty"


def sections(risk: dict[str, Any]) -> dict[str, Any]:
    return {
        "engine": {"symbols": ["BTC"]},
        "source": {"type": "simulated"},
        "strategy": {"host": "python", "class": "x:Y"},
        "risk": risk,
    }


def load_risk(tmp_path: Path, registry: Any, risk: dict[str, Any]) -> RiskSection:
    path = write_config(tmp_path / "config.toml", sections(risk))
    return load_config(path, registry).config.risk


def config_error(tmp_path: Path, registry: Any, risk: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        load_risk(tmp_path, registry, risk)
    return str(info.value).removeprefix(f"{tmp_path / 'config.toml'}: ")


def test_config_loads_the_risk_table(tmp_path: Path, registry: Any) -> None:
    risk = load_risk(
        tmp_path, registry, {"max_open_orders": 3, "qty_step": D("0.001"), "symbols": {"BTC": {"max_position": 2}}}
    )
    assert risk.max_open_orders == 3
    assert risk.for_symbol("BTC").max_position == D(2)
    assert risk.for_symbol("BTC").qty_step == D("0.001")


def test_config_without_risk_table_has_every_rule_off(tmp_path: Path, registry: Any) -> None:
    path = write_config(tmp_path / "config.toml", {k: v for k, v in sections({}).items() if k != "risk"})
    assert load_config(path, registry).config.risk == RiskSection()


@pytest.mark.parametrize(
    ("risk", "message"),
    [
        (
            {"symbols": {"BTC": {"max_position": -1}}},
            "risk.symbols.BTC.max_position: expected a positive number, got -1",
        ),
        ({"max_notional": 0}, "risk.max_notional: expected a positive number, got 0"),
        ({"max_orders_per_minute": 0}, "risk.max_orders_per_minute: expected a number >= 1, got 0"),
        ({"max_drawdown": 1.5}, "risk.max_drawdown: expected a number < 1.0, got 1.5"),
        ({"percent": 2}, "risk.percent: expected a number <= 1, got 2"),
        (
            {"sizing": "martingale"},
            (
                "risk.sizing: expected 'fixed_qty', 'fixed_notional', 'percent_equity' "
                "or 'risk_per_trade', got 'martingale'"
            ),
        ),
        ({"kill_action": "panic"}, "risk.kill_action: expected 'flatten' or 'halt', got 'panic'"),
        ({"max_positon": 1}, "risk.max_positon: unknown key; did you mean 'max_position'?"),
        ({"symbols": {"BTC": {"max_open_orders": 1}}}, "risk.symbols.BTC.max_open_orders: unknown key"),
        ({"sizing": "fixed_notional"}, "risk.sizing: needs notional to be set, got 'fixed_notional'"),
        (
            {"sizing": "percent_equity", "symbols": {"BTC": {"percent": 1}}},
            "risk.sizing: needs percent to be set, got 'percent_equity'",
        ),
        (
            {"symbols": {"BTC": {"sizing": "risk_per_trade"}}},
            "risk.symbols.BTC.sizing: needs risk to be set, got 'risk_per_trade'",
        ),
        (
            {"sizing": "risk_per_trade", "risk": 0.01, "symbols": {"BTC": {"sizing": "fixed_notional"}}},
            "risk.symbols.BTC.sizing: needs notional to be set, got 'fixed_notional'",
        ),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, registry: Any, risk: dict[str, Any], message: str) -> None:
    assert config_error(tmp_path, registry, risk) == message


# ------------------------------------------------------------ sizing


@pytest.mark.parametrize(
    ("risk", "price", "stop", "equity", "expected"),
    [
        ({}, 100.0, None, 1e4, D("0.5")),  # the strategy's qty
        ({"qty": D("0.25")}, 100.0, None, 1e4, D("0.25")),
        ({"qty": D("0.25"), "qty_step": D("0.1")}, 100.0, None, 1e4, D("0.2")),
        ({"sizing": "fixed_notional", "notional": 1000}, 400.0, None, 1e4, D("2.5")),
        ({"sizing": "fixed_notional", "notional": 1000, "qty_step": D("0.01")}, 300.0, None, 1e4, D("3.33")),
        ({"sizing": "fixed_notional", "notional": 1000}, 0.1, None, 1e4, D(10_000)),
        ({"sizing": "percent_equity", "percent": D("0.1")}, 100.1, None, 12_012.0, D(12)),
        ({"sizing": "percent_equity", "percent": 1, "qty_step": 5}, 100.0, None, 1999.0, D(15)),
        ({"sizing": "risk_per_trade", "risk": D("0.01")}, 100.0, 98.0, 10_000.0, D(50)),
        ({"sizing": "risk_per_trade", "risk": D("0.01")}, 100.0, 102.0, 10_000.0, D(50)),  # a short
        (
            {"sizing": "risk_per_trade", "risk": D("0.02"), "qty_step": D("0.001")},
            50_000.0,
            49_300.0,
            9_000.0,
            D("0.257"),
        ),
    ],
)
def test_sizing_rules_are_exact(
    risk: dict[str, Any], price: float, stop: float | None, equity: float, expected: Decimal
) -> None:
    qty = manager(**risk).size("A", price, stop, equity, D("0.5"))
    assert qty == expected
    if "qty_step" in risk:  # a whole number of lots, in the step's precision
        assert qty.as_tuple().exponent == D(risk["qty_step"]).as_tuple().exponent


def test_sizing_per_symbol_override() -> None:
    rm = manager(sizing="fixed_notional", notional=1000, symbols={"B": {"notional": 200}})
    assert rm.size("A", 100.0, None, 0.0, D(1)) == D(10)
    assert rm.size("B", 100.0, None, 0.0, D(1)) == D(2)


@pytest.mark.parametrize(
    ("risk", "price", "stop", "equity", "message"),
    [
        (
            {"sizing": "risk_per_trade", "risk": D("0.01")},
            100.0,
            None,
            1e4,
            "A: sizing risk_per_trade refused the entry: the entry has no stop-loss",
        ),
        (
            {"sizing": "risk_per_trade", "risk": D("0.01")},
            100.0,
            100.0,
            1e4,
            "A: sizing risk_per_trade refused the entry: stop-loss 100 equals the price",
        ),
        (
            {"sizing": "fixed_notional", "notional": 50, "qty_step": 1},
            100.0,
            None,
            1e4,
            "A: sizing fixed_notional refused the entry: quantity 0 (equity 10000, price 100, qty_step 1)",
        ),
        (
            {"sizing": "percent_equity", "percent": D("0.5")},
            100.0,
            None,
            -5.0,
            "A: sizing percent_equity refused the entry: quantity -0.025 (equity -5, price 100)",
        ),
        ({}, 0.0, None, 1e4, "A: sizing fixed_qty refused the entry: price 0 is not positive"),
    ],
)
def test_impossible_sizing_is_refused(
    risk: dict[str, Any], price: float, stop: float | None, equity: float, message: str
) -> None:
    with pytest.raises(RiskError) as info:
        manager(**risk).size("A", price, stop, equity, D(1))
    assert info.value.rule == "sizing"
    assert str(info.value) == message


# ------------------------------------------------------------ kill switches


def loop_reference(
    ts: list[int], equity: list[float], state: KillState, daily: float | None, dd: float | None, cash: float
) -> tuple[int, str] | None:
    """The kill-switch rules bar by bar, the obvious way."""
    for i, (t, e) in enumerate(zip(ts, equity)):
        day = t // NS_PER_DAY
        if state.day != day:
            state.day_start = e if state.last is None else state.last
            state.day = day
        state.peak = e if state.peak is None else max(state.peak, e)
        state.last = e
        assert state.day_start is not None
        if daily is not None and state.day_start - e >= daily * cash:
            return i, "daily_loss_limit"
        if dd is not None and state.peak - e >= dd * state.peak:
            return i, "max_drawdown"
    return None


def kill(rm: RiskManager, ts: list[int], equity: list[float], state: KillState) -> tuple[int, str] | None:
    return rm.first_kill("A", np.array(ts, dtype=np.int64), np.array(equity), state)


HOUR = 3600 * NS_PER_SECOND


def test_drawdown_trips_at_the_first_bar_at_the_limit() -> None:
    rm = manager(max_drawdown=0.25)
    state = KillState()
    assert kill(rm, [0, 1, 2, 3], [1000.0, 1200.0, 901.0, 1100.0], state) is None
    assert state == KillState(peak=1200.0, day=0, day_start=1000.0, last=1100.0)
    assert kill(rm, [4, 5, 6, 7], [1100.0, 950.0, 900.0, 800.0], state) == (2, "max_drawdown")
    assert state == KillState(peak=1200.0, day=0, day_start=1000.0, last=900.0)


def test_daily_loss_resets_at_the_utc_day_from_the_previous_close() -> None:
    rm = manager(cash=10_000, daily_loss_limit=0.05)  # 500 a day
    day = NS_PER_DAY
    state = KillState()
    ts = [day - 2 * HOUR, day - HOUR, day, day + HOUR, day + 2 * HOUR]
    # day 0 starts at 10_000, loses 400; day 1 starts from day 0's last close (9_600)
    assert kill(rm, ts, [10_000.0, 9_600.0, 9_400.0, 9_200.0, 9_101.0], state) is None
    assert (state.day, state.day_start, state.last) == (1, 9_600.0, 9_101.0)
    # the next span continues day 1, then day 2 starts from 9_300
    ts2 = [day + 3 * HOUR, 2 * day - 1, 2 * day, 2 * day + 1]
    assert kill(rm, ts2, [9_200.0, 9_300.0, 8_900.0, 8_800.0], state) == (3, "daily_loss_limit")
    assert (state.day, state.day_start, state.last) == (2, 9_300.0, 8_800.0)


def test_daily_loss_trips_within_the_first_span() -> None:
    rm = manager(cash=10_000, daily_loss_limit=0.05)
    assert kill(rm, [0, 1, 2], [10_000.0, 9_501.0, 9_500.0], KillState()) == (2, "daily_loss_limit")


def test_daily_loss_wins_a_tie_and_the_state_is_json() -> None:
    rm = manager(cash=1000, daily_loss_limit=0.5, max_drawdown=0.5)
    state = KillState()
    assert kill(rm, [0, 1], [1000.0, 500.0], state) == (1, "daily_loss_limit")
    assert KillState(**json.loads(json.dumps(asdict(state)))) == state


def test_a_symbols_kill_switch_probes_without_consuming_and_survives_a_restart() -> None:
    """What the worker relies on: ``first`` looks ahead without moving the switch's
    memory, ``consume`` moves it over finished bars, and a snapshot restores it."""
    rm = manager(max_drawdown=0.25, kill_action="halt")
    switch = KillSwitch("A", rm)
    assert (switch.enabled, switch.action) == (True, "halt")
    ts, equity = np.arange(4, dtype=np.int64), np.array([1000.0, 1200.0, 901.0, 1100.0])
    assert switch.first(ts, equity) is None
    assert switch.state == KillState()
    switch.consume(ts, equity)
    assert switch.state == KillState(peak=1200.0, day=0, day_start=1000.0, last=1100.0)
    restored = KillSwitch("A", rm)
    restored.restore(json.loads(json.dumps(switch.snapshot())))
    assert restored.first(ts + 4, np.array([1100.0, 950.0, 900.0, 800.0])) == (2, "max_drawdown")
    assert not KillSwitch("A", manager()).enabled


def test_no_kill_rules_no_work() -> None:
    rm = manager()
    state = KillState()
    assert kill(rm, [0, 1], [1000.0, 1.0], state) is None
    assert kill(rm, [], [], state) is None


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(0, 8 * HOUR), st.floats(-300, 300, allow_nan=False)), min_size=1, max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=3),
    daily=st.one_of(st.none(), st.floats(0.01, 0.5)),
    dd=st.one_of(st.none(), st.floats(0.01, 0.5)),
    start=st.integers(-3 * NS_PER_DAY, 3 * NS_PER_DAY),
    scale=st.sampled_from([1.0, 0.1, 0.003]),  # small moves: spans the bounds clear without a scan
)
def test_vectorised_kill_switch_equals_the_loop(
    steps: list[tuple[int, float]], cuts: list[int], daily: float | None, dd: float | None, start: int, scale: float
) -> None:
    cash = 1000.0
    rm = manager(cash=1000, daily_loss_limit=daily, max_drawdown=dd)
    ts = list(np.cumsum([start + 1] + [gap + 1 for gap, _ in steps[1:]]))
    equity = list(cash + np.cumsum([move * scale for _, move in steps]))
    bounds = sorted({0, len(ts), *(min(c, len(ts)) for c in cuts)})
    ref_state, state = KillState(), KillState()
    expected = loop_reference(ts, equity, ref_state, daily, dd, cash)
    got = None
    for lo, hi in itertools.pairwise(bounds):  # the same path fed in spans, state carried
        hit = kill(rm, ts[lo:hi], equity[lo:hi], state)
        if hit is not None:
            got = (lo + hit[0], hit[1])
            break
    assert got == expected
    if daily is not None or dd is not None:
        assert state == ref_state


@settings(max_examples=300, deadline=None)
@given(
    moves=st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=40),
    gaps=st.lists(st.integers(1, 12 * HOUR), min_size=40, max_size=40),
    prior=st.one_of(st.none(), st.tuples(st.floats(990, 1010), st.integers(-2, 2), st.floats(990, 1010))),
    daily=st.one_of(st.none(), st.floats(0.001, 0.05)),
    dd=st.one_of(st.none(), st.floats(0.001, 0.05)),
)
def test_a_span_cleared_by_its_bounds_ends_in_the_state_the_scan_gives(
    moves: list[float], gaps: list[int], prior: tuple[float, int, float] | None, daily: float | None, dd: float | None
) -> None:
    """Spans that cannot trip skip the bar-by-bar scan (the common case: a kill switch costs
    only when it can trigger); the answer and the state after are the scan's, exactly."""
    rm = manager(cash=1000, daily_loss_limit=daily, max_drawdown=dd)
    if daily is None and dd is None:
        return
    ts = np.cumsum([NS_PER_DAY // 2] + gaps[: len(moves) - 1]).astype(np.int64)
    equity = 1000.0 + np.cumsum(moves)
    state = KillState() if prior is None else KillState(max(prior[0], prior[2]), prior[1], prior[0], prior[2])
    scanned = KillState(**asdict(state))
    limits = rm.limits("A")
    assert rm.first_kill("A", ts, equity, state) == rm._first_kill_scan(limits, ts, equity, scanned)
    assert state == scanned

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from engine_core.model import fraction_digits, iso_utc
from engine_core.report.fastcsv import decimal_places, fixed_columns, join_rows, time_columns
from engine_core.report.files import equity_lines


def iso_times(ts: np.ndarray) -> list[str]:
    """Each time as the report writes it, with the coarsest fraction exact for all."""
    digits = fraction_digits(ts)
    return [iso_utc(int(t), digits) for t in ts]


def test_iso_times_picks_the_coarsest_exact_fraction():
    assert iso_times(np.array([0, 951_782_400 * 10**9])) == [
        "1970-01-01T00:00:00Z",
        "2000-02-29T00:00:00Z",
    ]
    assert iso_times(np.array([1_500_000_000, -1_000_000])) == [
        "1970-01-01T00:00:01.500Z",
        "1969-12-31T23:59:59.999Z",
    ]
    assert iso_times(np.array([1])) == ["1970-01-01T00:00:00.000000001Z"]
    assert iso_times(np.array([], dtype=np.int64)) == []
    assert iso_utc(None) == "-"


@given(st.lists(st.integers(-(10**18), 4 * 10**18), min_size=1, max_size=20))
def test_time_columns_write_what_iso_utc_writes(ts):
    ts = np.array(ts, dtype=np.int64)
    digits = fraction_digits(ts)
    assert join_rows([time_columns(ts, digits)]).tobytes().decode().splitlines() == iso_times(ts)


@given(st.lists(st.integers(-(10**9), 4 * 10**9), min_size=1, max_size=20))
def test_time_columns_match_datetime(seconds):
    ts = np.array(seconds, dtype=np.int64) * 1_000_000_000
    expected = [datetime.fromtimestamp(s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") for s in seconds]
    assert join_rows([time_columns(ts)]).tobytes().decode().splitlines() == expected


@given(st.lists(st.integers(-(10**12), 10**12), min_size=1, max_size=20), st.integers(0, 6))
def test_fixed_columns_match_python_formatting(units, decimals):
    values = np.array(units, dtype=np.float64) / 10**decimals
    text = join_rows([fixed_columns(values, decimals)]).tobytes().decode().splitlines()
    assert text == [f"{v:.{decimals}f}" for v in values]


def test_fixed_columns_leave_non_finite_values_empty():
    text = join_rows([fixed_columns(np.array([np.nan, -0.0004, 1.5]), 3)]).tobytes()
    assert text == b"\n0.000\n1.500\n"


def test_equity_lines_in_chunks(monkeypatch):
    monkeypatch.setattr("engine_core.report.files.CHUNK_ROWS", 3)
    ts = np.arange(7, dtype=np.int64) * 1_000_000_000
    text = b"".join(equity_lines(ts, np.arange(7) * 10.0, np.zeros(7), fraction_digits(ts), 1))
    lines = text.decode().splitlines()
    assert len(lines) == 7
    assert lines[6] == "1970-01-01T00:00:06Z,60.0,0.0000000000"


def test_decimal_places_are_the_fewest_that_show_every_value_exactly():
    def places(*texts):
        return decimal_places(Decimal(t) for t in texts)

    assert places() == 0
    assert places("100", "1E+2", "-0.000", "NaN", "Infinity") == 0
    assert places("1.10", "2.5", "2.50") == 1  # trailing zeros do not count
    assert places("3", "0.25", "-1.125000") == 3
    assert places("1.5E-7", "0E-9") == 8  # scientific notation

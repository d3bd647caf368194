"""The chart's SVG pieces: time ticks as ConciseDateFormatter labels them, round value
ticks, and lines written to a tenth of a pixel."""

from __future__ import annotations

import numpy as np
import pytest

from engine_core.report.svg import line_path, num, tenths, time_ticks, value_ticks

T0 = 1_704_067_200 * 1_000_000_000  # 2024-01-01T00:00:00Z
HOUR = 3600 * 1_000_000_000
DAY = 24 * HOUR


@pytest.mark.parametrize(
    ("start", "span", "labels", "offset"),
    [
        (T0 - 2 * HOUR, DAY, ["Jan-01", "03:00", "06:00", "09:00", "12:00", "15:00", "18:00", "21:00"], "2024-Jan-01"),
        (T0 + HOUR, 14 * DAY, ["03", "05", "07", "09", "11", "13", "15"], "2024-Jan"),
        (T0 - 40 * DAY, 300 * DAY, ["Dec", "2024", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep"], ""),
        (T0, 3650 * DAY, ["2024", "2025", "2026", "2027", "2028", "2029", "2030", "2031", "2032", "2033"], ""),
    ],
)  # fmt: skip
def test_time_ticks_fit_the_span_and_name_the_unit_that_changes(start, span, labels, offset):
    ticks, shown, shown_offset = time_ticks(start, start + span)
    assert (shown, shown_offset) == (labels, offset)
    assert all(start <= t <= start + span for t in ticks) and ticks == sorted(ticks)


def test_value_ticks_are_round_and_show_the_decimals_of_their_step():
    assert value_ticks(96.5, 130.2, 7) == ([100.0, 105.0, 110.0, 115.0, 120.0, 125.0, 130.0], 0)
    assert value_ticks(-8.4, 0.0, 4) == ([-7.5, -5.0, -2.5, 0.0], 1)
    assert value_ticks(0.012, 0.019, 7) == ([0.012, 0.013, 0.014, 0.015, 0.016, 0.017, 0.018, 0.019], 3)


def test_lines_are_written_short_to_a_tenth_of_a_pixel():
    assert [tenths(v) for v in (0, 5, -3, 120, -125)] == ["0", ".5", "-.3", "12", "-12.5"]
    assert num(-0.04) == "0" and num(12.26) == "12.3"
    xs = np.array([10.0, 10.5, 11.0, 12.0, 13.0, 13.0, 14.04])
    ys = np.array([20.0, 17.0, 17.0, 17.0, 17.0, 17.0, 19.0])
    # the repeated point and the inside of the flat run are left out
    assert line_path(xs, ys) == "M10 20l.5-3 2.5 0 1 2"
    assert line_path(np.array([]), np.array([])) == ""

"""The event lines text sinks write (``events.describe``)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine_core.events import describe
from engine_core.model import Fill, FillEvent, Side


@pytest.mark.parametrize(
    ("commission", "shown"),
    [
        (Decimal("29989.48071") * 1 * Decimal("0.0010000"), "29.98948071"),  # what a paper fill computes
        (Decimal("0.123456789123"), "0.12345679"),
        (Decimal("0E-10"), "0"),
        (Decimal("1.5000"), "1.5"),
        (Decimal("3E+1"), "30"),
        (Decimal("0.00000001"), "0.00000001"),
    ],
)
def test_a_fill_line_shows_its_fee_in_sensible_digits(commission: Decimal, shown: str):
    fill = Fill("c-1", "BTCUSDT", Side.BUY, Decimal("0.5"), Decimal("29989.48"), commission, 0)
    line = describe(FillEvent(fill))
    assert line == f"1970-01-01T00:00:00Z BTCUSDT fill buy 0.5 @ 29989.48 fee {shown} [c-1]"

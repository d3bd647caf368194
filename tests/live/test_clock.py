"""VenueClock: the venue's time from its answers, never the local wall clock."""

from __future__ import annotations

from engine_core.live import VenueClock, http_date_ns

S = 1_000_000_000
T0 = 1_704_207_000 * S  # 2024-01-02T14:50:00Z


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.ns = 5 * S

    def __call__(self) -> int:
        return self.ns


def test_http_date_headers_are_read_to_the_second_and_bad_ones_ignored():
    assert http_date_ns("Tue, 02 Jan 2024 14:50:00 GMT") == T0
    for bad in (None, "", "yesterday", "Tue, 02 Jan 2024 14:50:00"):
        assert http_date_ns(bad) is None


def test_the_venues_time_advances_with_the_monotonic_clock_whatever_the_wall_clock_says():
    mono = Ticks()
    clock = VenueClock(monotonic=mono, wall=lambda: T0 + 90 * S)  # a wall clock 90 s ahead
    assert not clock.known and clock.now() == T0 + 90 * S  # nothing said yet: the wall clock
    clock.observe(T0 + S // 2)
    mono.ns += 2 * S
    assert clock.known and clock.now() == T0 + 2 * S + S // 2


def test_a_date_header_keeps_a_finer_estimate_within_its_second_and_corrects_one_outside():
    mono = Ticks()
    clock = VenueClock(monotonic=mono)
    clock.observe(T0 + 300_000_000)
    clock.observe_date("Tue, 02 Jan 2024 14:50:00 GMT")
    assert clock.now() == T0 + 300_000_000  # within the header's second: kept
    mono.ns += 90 * S  # the estimate ran ahead of what the venue says
    clock.observe_date("Tue, 02 Jan 2024 14:50:01 GMT")
    assert clock.now() == T0 + S
    clock.observe_date("Tue, 02 Jan 2024 14:50:05 GMT")  # behind: moved up to the header
    assert clock.now() == T0 + 5 * S


def test_a_bar_is_closed_once_the_venues_time_reaches_its_end():
    clock = VenueClock(monotonic=Ticks())
    clock.observe_date("Tue, 02 Jan 2024 14:50:59 GMT")
    assert clock.closed(T0) and not clock.closed(T0 + 60 * S)
    clock.observe_date("Tue, 02 Jan 2024 14:51:00 GMT")
    assert clock.closed(T0 + 60 * S)

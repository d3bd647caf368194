from hypothesis import given
from hypothesis import strategies as st

from engine_core.live import BarSequencer
from engine_core.model import Bar

M = 60_000_000_000


def bar(symbol, i, close=1.0):
    return Bar(symbol, i * M, close, close, close, close, 1.0)


def test_in_order_bars_pass_straight_through():
    seq = BarSequencer(M)
    seq.mark("A", 9 * M)
    assert seq.push(bar("A", 10)) == (bar("A", 10),)
    assert seq.push(bar("A", 11)) == (bar("A", 11),)
    assert seq.last("A") == 11 * M


def test_duplicates_and_late_bars_are_dropped_and_counted():
    seq = BarSequencer(M)
    seq.push(bar("A", 1))
    seq.push(bar("A", 2))
    assert seq.push(bar("A", 2)) == ()
    assert seq.push(bar("A", 1)) == ()
    assert seq.problems.counts == {"duplicate bar": 1, "out-of-order bar": 1}


def test_a_bar_skipping_ahead_holds_the_symbol_until_the_gap_is_backfilled():
    seq = BarSequencer(M)
    seq.mark("A", 1 * M)
    assert seq.push(bar("A", 4)) == ()
    assert seq.gaps() == [("A", 2 * M, 4 * M)]
    assert seq.push(bar("A", 5)) == ()  # held while the backfill runs
    other = seq.push(bar("B", 4))  # other symbols are not held
    assert other == (bar("B", 4),)
    out = seq.backfill("A", [bar("A", 2), bar("A", 3), bar("A", 4)])  # the fetch overlaps a held bar
    assert [b.ts // M for b in out] == [2, 3, 4, 5]
    assert seq.gaps() == []
    assert seq.push(bar("A", 6)) == (bar("A", 6),)


def test_after_a_reconnect_the_backfill_covers_up_to_now():
    seq = BarSequencer(M)
    seq.mark("A", 1 * M)
    seq.hold("A")
    assert seq.gaps() == [("A", 2 * M, None)]
    seq.push(bar("A", 3))
    out = seq.backfill("A", [bar("A", 0), bar("A", 1), bar("A", 2)])
    assert [b.ts // M for b in out] == [2, 3]


def test_a_backfill_that_leaves_a_hole_is_reported_and_delivers_what_it_has():
    seq = BarSequencer(M)
    seq.mark("A", 1 * M)
    seq.push(bar("A", 5))
    out = seq.backfill("A", [bar("A", 2)])
    assert [b.ts // M for b in out] == [2, 5]
    assert seq.problems.counts["unfilled gap"] == 1


def test_without_contiguity_a_skip_is_not_a_gap():
    seq = BarSequencer(M, contiguous=False)
    seq.mark("A", 1 * M)
    assert seq.push(bar("A", 7)) == (bar("A", 7),)


@given(
    st.lists(st.integers(min_value=0, max_value=40), max_size=80),
    st.lists(st.integers(min_value=0, max_value=60), max_size=20),
)
def test_every_bar_is_delivered_once_in_time_order(stream, cuts):
    """Whatever the stream does (repeats, reorders, skips) and wherever
    reconnects fall, what is delivered is strictly increasing, and after a
    final backfill of everything it is every bar up to the newest one seen."""
    seq = BarSequencer(M)
    seq.mark("A", 0)
    delivered = []
    cuts = set(cuts)
    newest = 0  # the venue has every bar up to the newest one streamed
    for n, i in enumerate(stream):
        if n in cuts:
            seq.hold("A")
        newest = max(newest, i + 1)
        delivered += seq.push(bar("A", i + 1))
        if n % 7 == 3 and seq.held("A"):
            delivered += seq.backfill("A", [bar("A", j) for j in range(1, newest + 1)])
    delivered += seq.backfill("A", [bar("A", j) for j in range(1, newest + 1)])
    times = [b.ts // M for b in delivered]
    assert times == sorted(set(times))
    assert times == list(range(1, newest + 1))

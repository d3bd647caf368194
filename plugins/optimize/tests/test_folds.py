"""Walk-forward windows: out-of-sample windows follow each other without overlap,
each fold's in-sample window ends where its out-of-sample one starts, and the
first in-sample window with the out-of-sample windows covers the range."""

from __future__ import annotations

from engine_plugin_optimize.folds import walk_forward_folds
from hypothesis import given, settings
from hypothesis import strategies as st


@settings(deadline=None)  # no timing in tests: a loaded machine must not fail them
@given(
    first=st.integers(0, 2**60),
    span=st.integers(10_000, 2**50),
    folds=st.integers(1, 20),
    fraction=st.floats(0.05, 0.9),
    anchored=st.booleans(),
)
def test_folds_tile_the_range(first: int, span: int, folds: int, fraction: float, anchored: bool) -> None:
    last = first + span
    out = walk_forward_folds(first, last, folds, fraction, anchored)
    assert [f.index for f in out] == list(range(1, folds + 1))
    assert out[0].train[0] == first
    assert out[-1].test[1] == last + 1  # the last bar is inside the last window
    for fold, following in zip(out, out[1:]):
        assert fold.test[1] == following.test[0]  # no gap, no overlap
    lengths = [f.test[1] - f.test[0] for f in out]
    assert max(lengths) - min(lengths) <= 2
    for fold in out:
        start, end = fold.train
        assert first <= start < end == fold.test[0] < fold.test[1]
        if anchored:
            assert start == first
        else:
            assert end - start == out[0].train[1] - out[0].train[0]
    rolling = out[0]
    share = (rolling.test[1] - rolling.test[0]) / (rolling.test[1] - rolling.train[0])
    assert abs(share - fraction) <= 2 / (rolling.test[1] - rolling.train[0])  # ns rounding


def test_four_rolling_folds_of_a_quarter() -> None:
    # 7 units: 3 in sample, then 4 out-of-sample units of 1
    out = walk_forward_folds(0, 699, 4, 0.25, anchored=False)
    assert [(f.train, f.test) for f in out] == [
        ((0, 300), (300, 400)),
        ((100, 400), (400, 500)),
        ((200, 500), (500, 600)),
        ((300, 600), (600, 700)),
    ]
    anchored = walk_forward_folds(0, 699, 4, 0.25, anchored=True)
    assert [f.train for f in anchored] == [(0, 300), (0, 400), (0, 500), (0, 600)]

"""Walk-forward folds over the data's time range.

With ``folds`` = k and ``test_fraction`` = f, the range [first bar, last bar]
is cut at k + 1 times: the first in-sample window, then k out-of-sample
windows of equal length one after the other up to the end, each f of its
fold's length. Fold i optimises on its in-sample window, which ends where
its out-of-sample window starts; rolling windows all have the first fold's
in-sample length, anchored ones all start at the first bar. So the
out-of-sample windows never overlap, nothing of a fold's out-of-sample
window is in its in-sample window, and the first in-sample window with the
out-of-sample windows covers the whole range. Windows are half-open
``[start, end)`` in nanoseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

Window = tuple[int, int]


@dataclass(frozen=True)
class Fold:
    index: int  # from 1
    train: Window  # in-sample
    test: Window  # out-of-sample


def walk_forward_folds(first_ns: int, last_ns: int, folds: int, test_fraction: float, anchored: bool) -> list[Fold]:
    """The folds over the bars from ``first_ns`` to ``last_ns`` (both included)."""
    end = last_ns + 1
    span = end - first_ns
    test_length = span / (folds + (1 - test_fraction) / test_fraction)
    train_length = span - folds * test_length
    cuts = [first_ns + round(train_length + k * test_length) for k in range(folds)] + [end]
    first_train = cuts[0] - first_ns
    return [
        Fold(k + 1, (first_ns if anchored else cuts[k] - first_train, cuts[k]), (cuts[k], cuts[k + 1]))
        for k in range(folds)
    ]


__all__ = ["Fold", "Window", "walk_forward_folds"]

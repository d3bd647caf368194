import pytest

from engine_core.live import Backoff


def test_delays_double_up_to_the_cap_and_reset_after_success():
    b = Backoff(0.5, 4.0, jitter=0.0)
    assert [b.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next() == 0.5


def test_jitter_stays_within_its_fraction_of_the_ceiling():
    draws = iter([0.0, 1.0, 0.5])
    b = Backoff(1.0, 10.0, jitter=0.5, rng=lambda: next(draws))
    assert b.next() == 1.0  # no jitter drawn
    assert b.next() == 1.0  # ceiling 2, full jitter halves it
    assert b.next() == 3.0  # ceiling 4 * (1 - 0.25)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        Backoff(0, 1)
    with pytest.raises(ValueError):
        Backoff(2, 1)

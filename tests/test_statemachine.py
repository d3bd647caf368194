from __future__ import annotations

import itertools

import pytest

from engine_core.errors import StateError
from engine_core.model import State
from engine_core.statemachine import TRANSITIONS, StateMachine


def test_round_trip_emits_events():
    sm = StateMachine("BTC")
    events = [
        sm.transition(State.CLOSE_WATCH, 1, "setup"),
        sm.transition(State.IN_TRADE, 2, "entry filled"),
        sm.transition(State.WATCH, 3, "stop_loss"),
    ]
    assert [(e.from_state, e.to_state) for e in events] == [
        (State.WATCH, State.CLOSE_WATCH),
        (State.CLOSE_WATCH, State.IN_TRADE),
        (State.IN_TRADE, State.WATCH),
    ]
    assert events[2].symbol == "BTC" and events[2].ts == 3 and events[2].reason == "stop_loss"
    assert sm.transitions == 3


def test_cancel_returns_to_watch():
    sm = StateMachine("X")
    sm.transition(State.CLOSE_WATCH, 1, "setup")
    assert sm.transition(State.WATCH, 2, "setup expired").to_state is State.WATCH


@pytest.mark.parametrize("frm,to", [p for p in itertools.product(State, State) if p not in TRANSITIONS])
def test_every_illegal_transition_is_an_error(frm, to):
    sm = StateMachine("X", frm)
    with pytest.raises(StateError, match=f"X: illegal transition {frm.value} -> {to.value}"):
        sm.transition(to, 0, "test")
    assert sm.state is frm

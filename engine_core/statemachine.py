"""The per-symbol state machine: Watch -> CloseWatch -> InTrade -> Watch.

An explicit transition table; anything else is a StateError. Every
transition returns the event that records it.
"""

from __future__ import annotations

from engine_core.errors import StateError
from engine_core.model import State, TransitionEvent

TRANSITIONS: frozenset[tuple[State, State]] = frozenset(
    {
        (State.WATCH, State.CLOSE_WATCH),  # the strategy sees a setup
        (State.CLOSE_WATCH, State.IN_TRADE),  # the entry order filled
        (State.CLOSE_WATCH, State.WATCH),  # setup cancelled or expired
        (State.IN_TRADE, State.WATCH),  # the exit filled (strategy, stop, target, trail)
    }
)


_ALLOWED: dict[State, frozenset[State]] = {
    state: frozenset(to for frm, to in TRANSITIONS if frm is state) for state in State
}


class StateMachine:
    __slots__ = ("symbol", "state", "transitions")

    def __init__(self, symbol: str, state: State = State.WATCH) -> None:
        self.symbol = symbol
        self.state = state
        self.transitions = 0

    def move(self, to: State, reason: str) -> State:
        """Go to ``to`` and return the state left (no event built: the
        worker builds one only when something listens)."""
        frm = self.state
        if to not in _ALLOWED[frm]:
            raise StateError(f"{self.symbol}: illegal transition {frm.value} -> {to.value} ({reason})")
        self.state = to
        self.transitions += 1
        return frm

    def transition(self, to: State, ts: int, reason: str) -> TransitionEvent:
        return TransitionEvent(self.symbol, ts, self.move(to, reason), to, reason)

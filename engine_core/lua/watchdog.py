"""The time budget's watchdog: one thread for every sandbox of the process.

A strategy call runs with no Lua hook at all (a count hook, once set, traps
every VM instruction of Lua 5.4). Each sandbox on the time budget has a
:class:`Slot`; the host counts its calls into Lua in it (:class:`Stamp`) and
puts it in the watchdog's list as a call begins, and the watchdog polls the
slots whose call began since its last poll or still runs. When a call has run its budget since the
watchdog first saw it, the watchdog sets a count hook on the runtime's main thread and
on every coroutine the call resumed (each coroutine is a thread of its own),
from its own thread: ``lua_sethook`` is safe to call asynchronously (the
standalone ``lua`` stops a script on Ctrl-C with it). At its next instruction
the script runs the sandbox's hook (``sandbox.lua``), which decides on the
worker's thread, from what it sees: the hook notes when it first saw the
running call (for a scan: the bar), and raises when it sees the same one
still running a budget later. A look that comes as a call ends, or between
calls, does nothing; so the watchdog never stops a call that finished, nor
one that ran less than its budget; a runaway call stops two to three
budgets after it began: the watchdog first sees it within half a budget,
looks at it a budget later (within a quarter), and the hook raises a budget
of the thread's CPU time after that look (within a quarter).

Memory safety: threads are hooked only while the slot's lock is held. The
main thread lives as long as the slot (which holds the runtime); the
coroutines the calls resumed are kept alive by the sandbox until a call
begins and has the slot forget them (:meth:`Slot.forget`, under the lock).
"""

from __future__ import annotations

import ctypes
import threading
import time
import weakref
from collections import deque
from typing import Any

from lupa import lua54

_MASKCOUNT = 1 << 3  # LUA_MASKCOUNT
_MIN_POLL, _MAX_POLL = 0.002, 0.05  # seconds between two polls of the slots
_KEEPS_NOTHING: deque[Any] = deque(maxlen=0)  # appending to it drops what is appended

_lua = ctypes.CDLL(lua54.__file__)
_lua.lua_sethook.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
_lua.lua_sethook.restype = None
_lua.lua_gethook.argtypes = [ctypes.c_void_p]
_lua.lua_gethook.restype = ctypes.c_void_p


def address(text: str) -> int:
    """A Lua thread's address from its ``tostring`` (``"thread: 0x55d5..."``)."""
    return int(text.rpartition(" ")[2], 16)


class Stamp:
    """Which call a sandbox runs: the host adds one to ``call`` as a call into
    Lua begins and one as it ends (odd: a call runs), and as it begins puts
    the stamp in ``begun``, the watchdog's list of the calls begun since its
    last poll. Two increments and an append are all a call pays; a sandbox on
    the instruction budget has a stamp nobody reads, whose ``begun`` keeps
    nothing."""

    __slots__ = ("call", "begun")

    def __init__(self) -> None:
        self.call = 0
        self.begun: list[Any] | deque[Any] = _KEEPS_NOTHING


class Slot(Stamp):
    """One sandbox's calls as the watchdog sees them."""

    __slots__ = ("runtime", "main", "hook", "limit", "seen", "seen_at", "looked", "threads", "lock", "__weakref__")

    def __init__(self, runtime: Any, main: str, limit_ms: int) -> None:
        super().__init__()
        self.runtime = runtime  # keeps the main thread alive while the watchdog may hook it
        self.main = address(main)
        # The hook's C entry point: the sandbox set its hook once for this read.
        self.hook = _lua.lua_gethook(self.main)
        _lua.lua_sethook(self.main, None, 0, 0)  # the Lua hook stays registered, unset
        self.limit = limit_ms / 1000
        self.seen = 0  # the running call as the watchdog first saw it, and when
        self.seen_at = 0.0
        self.looked = 0.0  # when the watchdog last hooked this slot's threads
        self.threads: list[int] = []  # coroutines the running call resumed
        self.lock = threading.Lock()

    def enter(self, thread: str) -> None:
        """From Lua: the call resumes this coroutine (the first time in this call)."""
        with self.lock:
            self.threads.append(address(thread))

    def forget(self) -> None:
        """From Lua, as a call begins: the earlier calls' coroutines may go."""
        with self.lock:
            self.threads.clear()

    def poll(self, now: float) -> None:
        """The watchdog's thread: look at a call that has run its budget
        (from when the watchdog first saw it), then four times a budget."""
        call = self.call
        if not call & 1:
            return
        if call != self.seen:
            self.seen, self.seen_at = call, now
        elif now - self.seen_at >= self.limit and now - self.looked >= self.limit / 4:
            self.looked = now
            self.look()

    def look(self) -> None:
        """Set the count hook on the call's threads."""
        with self.lock:
            _lua.lua_sethook(self.main, self.hook, _MASKCOUNT, 1)
            for thread in self.threads:
                _lua.lua_sethook(thread, self.hook, _MASKCOUNT, 1)


class Watchdog:
    """The thread polling every slot; started with the first, ended with the last."""

    def __init__(self) -> None:
        # every slot watched, weakly: the thread ends once none is left; a slot
        # that has gone (its engine went) is dropped at the next poll
        self.slots: list[weakref.ReferenceType[Slot]] = []
        # A poll looks only at the slots whose call began since the last poll
        # (each call puts its slot in ``begun``: a list append is atomic under
        # the interpreter's lock) and those it found running then (``watching``,
        # the watchdog's thread's own): not at every slot. With 1,000 symbols,
        # walking them all took 13-15 us of every live bar's CPU.
        self.begun: list[Slot] = []
        self.watching: dict[Slot, None] = {}
        self.gone = False  # a slot has gone since the last poll
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        # seconds between two polls: half the shortest budget watched so far (one
        # that has gone only makes the polls more frequent than needed); a
        # quarter after a poll that found a call running, so that a runaway,
        # once seen, is looked at within a quarter budget of running its budget.
        # Nearly every poll finds no call running, and a poll woken from its
        # sleep costs about 100 us of CPU (100 symbols): polling at a quarter
        # budget throughout took 2.2 us a live bar, this 1.0
        self.pause = _MAX_POLL

    def watch(self, slot: Slot) -> None:
        with self.lock:
            self.slots = [*self.slots, weakref.ref(slot, self._gone)]
            slot.begun = self.begun
            self.pause = min(self.pause, max(_MIN_POLL, slot.limit / 2))
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="lua-watchdog", daemon=True)
                self.thread.start()

    def _run(self) -> None:
        while True:
            pause = self._poll()
            if pause is None:
                return
            time.sleep(pause)

    def _poll(self) -> float | None:
        """Look at the calls past their budget; the pause until the next poll
        (None: no slot is left, the thread ends). Holds no slot after it returns."""
        with self.lock:
            if self.gone:
                self.gone = False
                self.slots = [ref for ref in self.slots if ref() is not None]
            refs = self.slots
            if not refs:
                self.thread = None
                self.pause = _MAX_POLL  # the next engine's budgets set it again
                return None
        now = time.monotonic()
        begun, watching = self.begun, self.watching
        n = len(begun)
        if n:  # (appends made meanwhile land past n and stay for the next poll)
            watching.update(dict.fromkeys(begun[:n]))
            del begun[:n]
        for slot in list(watching):
            if slot.call & 1:
                slot.poll(now)
            else:
                del watching[slot]  # its call ended: its next call puts it in begun again
        return self.pause / 2 if watching else self.pause

    def _gone(self, _: weakref.ReferenceType[Slot]) -> None:
        self.gone = True  # (a weakref callback: no lock taken, it may run inside a poll's collection)


WATCHDOG = Watchdog()

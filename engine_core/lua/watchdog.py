"""The time budget's watchdog: one thread for every sandbox of the process.

A strategy call runs with no Lua hook at all (a count hook, once set, traps
every VM instruction of Lua 5.4). Each sandbox on the time budget has a
:class:`Slot`; the host stamps the slot's ``started`` when it calls into Lua
and clears it after, and the watchdog polls the slots. When a call has run
its budget, the watchdog sets a count hook on the runtime's main thread and
on every coroutine the call resumed (each coroutine is a thread of its own),
from its own thread: ``lua_sethook`` is safe to call asynchronously (the
standalone ``lua`` stops a script on Ctrl-C with it). At its next instruction
the script runs the sandbox's hook (``sandbox.lua``), which decides on the
worker's thread, from what it sees: the hook notes when it first saw the
running call (for a scan: the bar), and raises when it sees the same one
still running a budget later. A look that comes as a call ends, or between
calls, does nothing; so the watchdog never stops a call that finished, nor
one that ran less than its budget; a runaway call stops between one and
about two budgets after it began.

Memory safety: a thread is hooked only while the slot's lock is held and the
call runs; its main thread lives as long as the slot (which holds the
runtime), and the coroutines the call resumed are kept alive by the sandbox
until the next call, after the host has forgotten their addresses
(:meth:`Slot.forget`, under the lock).
"""

from __future__ import annotations

import ctypes
import threading
import time
import weakref
from typing import Any

from lupa import lua54

_MASKCOUNT = 1 << 3  # LUA_MASKCOUNT
_MIN_POLL, _MAX_POLL = 0.002, 0.05  # seconds between two polls of the slots

_lua = ctypes.CDLL(lua54.__file__)
_lua.lua_sethook.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
_lua.lua_sethook.restype = None
_lua.lua_gethook.argtypes = [ctypes.c_void_p]
_lua.lua_gethook.restype = ctypes.c_void_p


def address(text: str) -> int:
    """A Lua thread's address from its ``tostring`` (``"thread: 0x55d5..."``)."""
    return int(text.rpartition(" ")[2], 16)


class Stamp:
    """When a sandbox's running call began: what the host stamps around each
    call into Lua (a sandbox on the instruction budget has one no watchdog reads)."""

    __slots__ = ("started", "threads")

    def __init__(self) -> None:
        self.started = 0.0  # time.monotonic() when the running call began; 0.0 between calls
        self.threads: list[int] = []  # coroutines the running call resumed

    def forget(self) -> None:
        """Before a call: the previous call's coroutines may go."""
        self.threads.clear()


class Slot(Stamp):
    """One sandbox's calls as the watchdog sees them."""

    __slots__ = ("runtime", "main", "hook", "limit", "looked", "lock", "__weakref__")

    def __init__(self, runtime: Any, main: str, limit_ms: int) -> None:
        super().__init__()
        self.runtime = runtime  # keeps the main thread alive while the watchdog may hook it
        self.main = address(main)
        # The hook's C entry point: the sandbox set its hook once for this read.
        self.hook = _lua.lua_gethook(self.main)
        _lua.lua_sethook(self.main, None, 0, 0)  # the Lua hook stays registered, unset
        self.limit = limit_ms / 1000
        self.looked = 0.0  # when the watchdog last hooked this slot's threads
        self.lock = threading.Lock()

    def enter(self, thread: str) -> None:
        """From Lua: the call resumes this coroutine (the first time in this call)."""
        with self.lock:
            self.threads.append(address(thread))

    def forget(self) -> None:
        with self.lock:
            self.threads.clear()

    def look(self) -> None:
        """Set the count hook on the call's threads (the watchdog's thread)."""
        with self.lock:
            if not self.started:
                return
            _lua.lua_sethook(self.main, self.hook, _MASKCOUNT, 1)
            for thread in self.threads:
                _lua.lua_sethook(thread, self.hook, _MASKCOUNT, 1)


class Watchdog:
    """The thread polling every slot; started with the first, ended with the last."""

    def __init__(self) -> None:
        self.slots: weakref.WeakSet[Slot] = weakref.WeakSet()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def watch(self, slot: Slot) -> None:
        with self.lock:
            self.slots.add(slot)
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
            slots = list(self.slots)
            if not slots:
                self.thread = None
                return None
        now = time.monotonic()
        for slot in slots:
            started = slot.started
            # The first look a budget after the call began, then four a budget.
            if started and now - started >= slot.limit and now - slot.looked >= slot.limit / 4:
                slot.looked = now
                slot.look()
        shortest = min(slot.limit for slot in slots)
        return min(_MAX_POLL, max(_MIN_POLL, shortest / 4))


WATCHDOG = Watchdog()

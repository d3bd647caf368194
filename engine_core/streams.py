"""The process's stdout and stderr, written so that a reader who does not
read never stops the engine.

A pipe holds 4-64 KB; once it is full, a plain write waits until someone
reads, however long that is: a log sink, a strategy's ``ctx.log``, a venue
plugin's logging (on its loop thread) or the summary at the end would stop
there. :class:`GuardedStream` waits at most ``patience`` for room; a write
that finds none is left out and counted, and while the reader stays behind,
the next ones are left out at once (a write that goes through again ends
that). ``engine run`` and ``engine optimize``'s trial processes put one
in place of ``sys.stdout`` and ``sys.stderr`` (:func:`guard_std_streams`), so
everything a run prints goes through it; the other commands, whose output a pager may read at the
user's pace, write as usual.
"""

from __future__ import annotations

import io
import os
import select
import sys
import threading
from typing import TextIO

PATIENCE = 0.5
"""Seconds a write waits for the reader to make room before it is left out."""
_CHUNK = 4096  # PIPE_BUF on Linux: a pipe with any room takes this much without waiting


class GuardedStream(io.TextIOBase):
    """A text stream writing straight to ``stream``'s file descriptor (a pipe,
    a terminal, a file) without ever waiting long; thread-safe. ``write``
    returns how many characters went out (0: the write was left out), and
    ``dropped`` counts the writes that did not go out whole."""

    def __init__(self, stream: TextIO, patience: float = PATIENCE) -> None:
        super().__init__()
        stream.flush()
        self.wrapped = stream
        self.fd = stream.fileno()
        self.patience = patience
        self.dropped = 0
        self._encoding = stream.encoding or "utf-8"
        self._errors = stream.errors or "strict"
        self._behind = False  # the last write found no room
        self._lock = threading.Lock()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding

    @property
    def errors(self) -> str:  # type: ignore[override]
        return self._errors

    @property
    def name(self) -> str:
        return str(getattr(self.wrapped, "name", self.fd))

    def fileno(self) -> int:
        return self.fd

    def isatty(self) -> bool:
        return os.isatty(self.fd)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        """Nothing is buffered."""

    def write(self, text: str) -> int:
        data = memoryview(text.encode(self._encoding, self._errors))
        if not data:
            return 0
        written = 0
        with self._lock:
            while written < len(data):
                if not self._room():
                    break
                try:
                    written += os.write(self.fd, data[written : written + _CHUNK])
                except (BlockingIOError, BrokenPipeError):  # a reader that went away reads no more
                    self._behind = True
                    break
            if written < len(data):
                self.dropped += 1
                return len(bytes(data[:written]).decode(self._encoding, "ignore"))
        return len(text)

    def _room(self) -> bool:
        try:
            _, ready, _ = select.select([], [self.fd], [], 0.0 if self._behind else self.patience)
        except (OSError, ValueError):  # cannot tell (a descriptor select does not take): write as usual
            return True
        self._behind = not ready
        return bool(ready)


def guard_std_streams(patience: float = PATIENCE) -> None:
    """Put a :class:`GuardedStream` in place of ``sys.stdout`` and
    ``sys.stderr`` when they are the process's own (not a test's capture) and
    the platform can tell when a descriptor has room (POSIX). For good: a
    thread left writing after a command ends writes through it too."""
    if os.name != "posix":
        return
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None or stream is not getattr(sys, f"__{name}__"):
            continue
        try:
            setattr(sys, name, GuardedStream(stream, patience))
        except (OSError, ValueError, io.UnsupportedOperation):  # no descriptor: leave it
            continue


__all__ = ["PATIENCE", "GuardedStream", "guard_std_streams"]

"""A strategy file on disk: its text, and noticing when it changes."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from engine_core.errors import StrategyError

CHECK_EVERY = 0.5  # seconds of wall time between two looks at the file


@dataclass(frozen=True)
class ScriptVersion:
    code: str
    stamp: tuple[int, int]  # (mtime_ns, size)
    digest: str  # sha256 of the text


def read_script(path: Path, label: str) -> ScriptVersion:
    """The script's current version; StrategyError when it cannot be read."""
    try:
        stat = path.stat()
        data = path.read_bytes()
        code = data.decode("utf-8")
    except FileNotFoundError:
        raise StrategyError(f"strategy.script: {label}: no such strategy file ({path})") from None
    except UnicodeDecodeError as err:
        raise StrategyError(f"{label}: not UTF-8 text: {err}") from err
    except OSError as err:
        raise StrategyError(f"{label}: cannot read: {err.strerror}") from err
    return ScriptVersion(code, (stat.st_mtime_ns, stat.st_size), hashlib.sha256(data).hexdigest())


class FileLook:
    """A file's ``(mtime_ns, size)``, looked at once per ``interval`` seconds
    however many watchers ask: every symbol runs the same script, and their
    bars come at the same instant (a look is a system call on the hot path)."""

    def __init__(self, path: Path, interval: float = CHECK_EVERY) -> None:
        self.path = str(path)
        self.interval = interval
        self.at = float("-inf")  # when the stamp below was read
        self.stamp: tuple[int, int] | None = None  # None: the file could not be looked at

    def __call__(self, now: float, force: bool = False) -> tuple[int, int] | None:
        if force or now - self.at >= self.interval:
            try:
                stat = os.stat(self.path)
            except OSError:
                stamp = None  # being replaced: look again next time
            else:
                stamp = (stat.st_mtime_ns, stat.st_size)
            self.stamp, self.at = stamp, now
        return self.stamp


class ScriptWatcher:
    """Reports a new version of a file, looking at most every ``interval``
    seconds: a changed mtime or size, then a changed hash. Watchers of one
    file share its ``look``."""

    def __init__(
        self,
        path: Path,
        label: str,
        current: ScriptVersion,
        interval: float = CHECK_EVERY,
        look: FileLook | None = None,
    ) -> None:
        self.path = path
        self.label = label
        self.current = current
        self.interval = interval
        self.look = look or FileLook(path, interval)
        self.next_check = time.monotonic() + interval

    def due(self) -> None:
        """Make the next poll look at the file itself (it was just written)."""
        self.next_check = 0.0
        self.look.at = float("-inf")

    def poll(self, force: bool = False) -> ScriptVersion | None:
        """The new version when the file changed since the last one seen;
        StrategyError (once per change) when it cannot be read. ``force``:
        look now, even within the interval."""
        now = time.monotonic()
        if now < self.next_check and not force:
            return None
        self.next_check = now + self.interval
        stamp = self.look(now, force)
        if stamp is None or stamp == self.current.stamp:
            return None
        try:
            version = read_script(self.path, self.label)
        except StrategyError:
            self.current = replace(self.current, stamp=stamp)
            raise
        changed = version.digest != self.current.digest
        self.current = version
        return version if changed else None

"""Paged history into a CSV file that the ``csv`` source reads as it is.

A venue plugin gives :func:`download_bars` one function, ``fetch_page(start,
end)``, returning the next page of bars from ``start`` (ns, included) before
``end`` (ns, excluded), oldest first, empty when there are no more. The
downloader pages until ``end``, appending each page to the file as it comes
(``datetime,open,high,low,close,volume``, ISO UTC times, prices exactly as
the venue wrote them), and shows a progress bar on stderr.

A new file is written under a temporary name next to it and moved into
place once it holds a row, so a download that fails, or finds no bars,
leaves no file behind (a header-only file would read as an empty history).
An interrupted download resumes: a file that exists is read for its last
complete row (a half-written last line is cut off) and paging starts after
it, so no row is ever written twice.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from engine_core.errors import DataError
from engine_core.model import NS_PER_SECOND, epoch_ns, iso_utc

CSV_HEADER = "datetime,open,high,low,close,volume"

Row = tuple[int, object, object, object, object, object]
"""One bar: open time (ns) then open, high, low, close, volume (str or number; written with ``str``)."""

FetchPage = Callable[[int, int], Awaitable[Sequence[Row]]]


class DownloadResult(NamedTuple):
    path: Path
    written: int  # rows appended by this call
    resumed_after: int | None  # the last row's time found in an existing file (ns)
    last_ts: int | None  # the file's last row's time (ns) after the download
    start: int = 0  # the range asked for (ns)
    end: int = 0

    def line(self, label: str) -> str:
        """What ``engine download`` prints for this file."""
        if self.last_ts is None:
            return f"{label}: no bars from {format_ts(self.start)} to {format_ts(self.end)} (no file written)"
        resumed = f", resumed after {format_ts(self.resumed_after)}" if self.resumed_after is not None else ""
        return f"{self.path}: {self.written} rows written{resumed}"


def format_ts(ts: int) -> str:
    """A downloaded row's time: ISO 8601 UTC, with milliseconds only when they are not zero."""
    return iso_utc(ts, 3 if ts % NS_PER_SECOND else 0)


def parse_ts(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return epoch_ns(moment)


def last_csv_ts(path: Path) -> int | None:
    """The time of the last complete row of a file this module wrote (None:
    no rows). A half-written last line is cut off the file."""
    with open(path, "rb+") as f:
        first = f.readline().decode("utf-8", "replace").strip()
        if first != CSV_HEADER:
            raise DataError(f"{path}: not a bar file this command writes (its first line is not {CSV_HEADER!r})")
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - 4096))
        tail = f.read()
        if not tail.endswith(b"\n"):
            cut = tail.rfind(b"\n")
            f.truncate(size - len(tail) + cut + 1)
            tail = tail[: cut + 1]
        lines = tail.decode("utf-8", "replace").splitlines()
    for line in reversed(lines):
        line = line.strip()
        if line and line != CSV_HEADER:
            try:
                return parse_ts(line.split(",", 1)[0])
            except ValueError as err:
                raise DataError(f"{path}: last row does not start with a time: {line[:60]!r}") from err
    return None


async def download_bars(
    fetch_page: FetchPage,
    path: Path,
    start: int,
    end: int,
    *,
    interval_ns: int = 0,
    label: str = "",
    progress: bool = True,
) -> DownloadResult:
    """Page bars from ``start`` to ``end`` (ns) into ``path``, resuming after
    the rows it already holds. ``interval_ns`` (if known) sizes the progress bar."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = not path.exists() or path.stat().st_size == 0
    resumed = None if fresh else last_csv_ts(path)
    target = path.with_name(f".{path.name}.part") if fresh else path
    cursor = start if resumed is None else max(start, resumed + 1)
    last = resumed
    written = 0
    bar = _Progress(label or path.name, start, end, interval_ns, progress)
    try:
        bar.advance(cursor)
        with open(target, "w" if fresh else "a", encoding="utf-8", newline="") as out:
            if fresh:
                out.write(CSV_HEADER + "\n")
            while cursor < end:
                rows = await fetch_page(cursor, end)
                lines = []
                for row in rows:
                    ts = row[0]
                    if ts >= end:
                        break
                    if last is not None and ts <= last:
                        continue  # a page overlapping the previous one
                    lines.append(f"{format_ts(ts)},{row[1]},{row[2]},{row[3]},{row[4]},{row[5]}\n")
                    last = ts
                if lines:
                    out.write("".join(lines))
                    out.flush()
                    written += len(lines)
                if not rows or last is None or last + 1 <= cursor:
                    break
                if interval_ns and last + interval_ns >= end:
                    break  # no bar can start before the end
                cursor = last + 1
                bar.advance(cursor)
        bar.advance(end)
    finally:
        bar.stop()
        if fresh and written:
            os.replace(target, path)  # what came before a failure is kept, and resumed next time
        elif fresh:
            target.unlink(missing_ok=True)
    return DownloadResult(path, written, resumed, last, start, end)


class _Progress:
    """A rich progress bar over the time range (on stderr; silent when off)."""

    def __init__(self, label: str, start: int, end: int, interval_ns: int, show: bool) -> None:
        self._start = start
        self._span = max(1, end - start)
        self._interval = interval_ns
        self._prog = None
        if not show:
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        total = (end - start) // interval_ns if interval_ns > 0 else 100
        self._prog = Progress(
            TextColumn(label),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[at]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task = self._prog.add_task(label, total=total, at="")
        self._total = total
        self._prog.start()

    def advance(self, cursor: int) -> None:
        if self._prog is None:
            return
        done = min(1.0, max(0.0, (cursor - self._start) / self._span))
        self._prog.update(self._task, completed=done * self._total, at=format_ts(min(cursor, self._start + self._span)))

    def stop(self) -> None:
        if self._prog is not None:
            self._prog.stop()

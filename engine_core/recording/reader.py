"""Reading recordings: segments, sessions, and what ``engine sessions`` lists.

A segment is read batch by batch up to its last whole batch: a file cut by
a crash, or damaged, is read up to there, and ``Segment.stopped`` says in
one line where it stopped. A segment written by a version this engine does
not read is refused with the version named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from engine_core.errors import EngineError
from engine_core.recording.format import COLUMNS, READABLE, VERSION_KEY, Row


class RecordingError(EngineError):
    """A recording cannot be read (missing, not a recording, a version this engine does not read)."""


class EmptySegment(RecordingError):
    """A segment with no whole record: a run that ended before its first write."""


@dataclass
class Segment:
    path: Path
    kind: str  # "start" (a process start) or "roll" (a new day in the same process)
    header: dict[str, Any]
    image: bytes | None  # the journal before recovery (a start)
    rows: list[Row] = field(default_factory=list)  # every record after the first
    ended: bool = False  # the run ended cleanly in this segment
    stopped: str | None = None  # where a truncated or damaged file stopped being read

    @property
    def start(self) -> int:
        return int(self.rows[0][2]) if self.rows else 0


def read_segment(path: Path) -> Segment:
    """Every whole record of one segment file."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as err:
        raise RecordingError(f"{path}: cannot read: {err.strerror}") from err
    with f:
        try:
            reader = pa.ipc.open_stream(f)
        except (pa.ArrowInvalid, OSError) as err:
            if path.stat().st_size == 0:
                raise EmptySegment(f"{path}: empty (its run ended within a second of its start)") from err
            raise RecordingError(f"{path}: not a recording (no Arrow stream header: {err})") from err
        meta = reader.schema.metadata or {}
        version = meta.get(VERSION_KEY)
        if version is None:
            raise RecordingError(f"{path}: not an engine recording (no format version)")
        if int(version) not in READABLE:
            raise RecordingError(
                f"{path}: recording format version {int(version)}; this engine reads version(s) "
                f"{', '.join(map(str, READABLE))}"
            )
        rows: list[Row] = []
        stopped = None
        good = f.tell()
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except (pa.ArrowInvalid, pa.ArrowIOError, OSError, ValueError) as err:
                stopped = (
                    f"{path}: read {len(rows)} records up to byte {good}; the rest is truncated or damaged "
                    f"({str(err).splitlines()[0] if str(err) else type(err).__name__})"
                )
                break
            cols = batch.to_pydict()
            rows.extend(zip(*(cols[c] for c in COLUMNS)))
            good = f.tell()
    if not rows:
        raise EmptySegment(f"{path}: no whole record (its run ended within a second of its start)")
    if rows[0][0] not in ("start", "roll"):
        raise RecordingError(f"{path}: no segment header")
    first = rows[0]
    ended = rows[-1][0] == "end"
    return Segment(path, first[0], json.loads(first[9]), first[10], rows[1:], ended, stopped)


def read_segments(paths: list[Path], notes: list[str]) -> list[Segment]:
    """The segments at ``paths``; an empty one (a run killed within its first
    second) is left out with a note: the next start has its own journal."""
    out = []
    for p in paths:
        try:
            out.append(read_segment(p))
        except EmptySegment as err:
            notes.append(str(err))
    return out


def segment_paths(path: Path) -> list[Path]:
    """The segments of a session: a day's folder (its files in order), or one file."""
    if path.is_dir():
        files = sorted(path.glob("*.arrow"), key=lambda p: p.name)
        if not files:
            raise RecordingError(f"{path}: no recording segments (*.arrow) in this folder")
        return files
    if not path.exists():
        raise RecordingError(f"{path}: no such recording")
    return [path]


def session_dirs(root: Path) -> list[Path]:
    """Every session (day folder) under an engine's recordings folder, oldest first."""
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and any(p.glob("*.arrow"))), key=lambda p: p.name)


@dataclass
class SessionInfo:
    path: Path
    engine_id: str
    symbols: list[str]
    start: int
    end: int
    bars: int
    orders: int
    size: int
    segments: int
    note: str = ""


def describe_session(path: Path) -> SessionInfo:
    """What ``engine sessions`` shows of one session."""
    notes: list[str] = []
    segments = read_segments(segment_paths(path), notes)
    if not segments:
        raise RecordingError(f"{path}: no segment with a whole record")
    header = segments[0].header
    bars = orders = 0
    start = end = 0
    for seg in segments:
        for row in seg.rows:
            kind = row[0]
            if kind == "bar":
                bars += 1
            elif kind == "event" and " order intent " in (row[9] or ""):
                orders += 1
            if row[2]:
                start = row[2] if not start else min(start, row[2])
                end = max(end, row[2])
        if seg.stopped:
            notes.append("truncated")
    size = sum(p.stat().st_size for p in segment_paths(path))
    return SessionInfo(
        path, header["engine_id"], header["symbols"], start, end, bars, orders, size, len(segments), ", ".join(notes)
    )

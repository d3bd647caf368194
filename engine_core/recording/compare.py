"""``engine replay --against-backtest``: the backtest of the same script over
the recorded bars, held against what happened live, decision by decision.

The backtest runs the recorded config in backtest mode over each symbol's
recorded bars (warm-up history, then the live bars, each once, in time
order) with the paper broker (the live run's own config when it was
simulated; else the paper broker's defaults with the venue's starting cash).
Its decisions (signals) and fills are compared with the live event log per
symbol from the first live bar on, and each difference is given the reason
the recording shows for it:

* ``warm-up differed``: live, warm-up decisions are dropped; the backtest
  acted on them, so the two started the live bars in different states;
* ``late bar`` / ``backfilled bar``: live got the bar late (after its next
  bar was due) or from a backfill after a dropped stream;
* ``paused``: the symbol was paused live (a control command);
* ``flatten command``: live closed the position on command;
* ``reject``: the venue refused the order live;
* ``partial fill``: live filled the order in parts;
* ``fill price`` / ``fill time``: live filled at another price or bar;
* ``after an earlier difference``: the states had already parted.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine_core.model import NS_PER_SECOND, BarChunk, iso_utc
from engine_core.plugins import Registry
from engine_core.recording.format import blob_chunk
from engine_core.recording.reader import read_segments
from engine_core.recording.replay import EventLog, Run, WhatIf, _loaded, runs_of
from engine_core.sources import DataSource


@dataclasses.dataclass
class Difference:
    symbol: str
    ts: int
    live: str | None
    backtest: str | None
    reason: str

    def line(self) -> str:
        return (
            f"{iso_utc(self.ts)} {self.symbol}: live {self.live or '(nothing)'} | "
            f"backtest {self.backtest or '(nothing)'}: {self.reason}"
        )


@dataclasses.dataclass
class Comparison:
    decisions: int = 0  # live decisions and fills compared
    same: int = 0
    differences: list[Difference] = dataclasses.field(default_factory=list)
    backtest: Any = None  # the backtest's RunResult
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)

    def reasons(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for d in self.differences:
            out[d.reason.split(" (")[0]] += 1
        return dict(out)

    def section(self) -> dict[str, Any]:
        """What the report page shows of it (``summary["live_vs_backtest"]``)."""
        return {
            "decisions": self.decisions,
            "same": self.same,
            "reasons": self.reasons(),
            "differences": [dataclasses.asdict(d) | {"time": iso_utc(d.ts)} for d in self.differences[:200]],
        }


class RecordedHistory(DataSource):
    """Each symbol's recorded bars as one chunk (``config``: symbol -> BarChunk)."""

    def history(self) -> Iterator[BarChunk]:
        for symbol in self.symbols:
            chunk = self.config.get(symbol)
            if chunk is not None and len(chunk):
                yield chunk


def _bars(runs: Sequence[Run]) -> dict[str, BarChunk]:
    """Each symbol's bars as recorded (warm-up, then live), each once, in time order."""
    rows: dict[str, dict[int, tuple[float, ...]]] = defaultdict(dict)
    for run in runs:
        for row in run.rows:
            if row[0] == "warmup":
                c = blob_chunk(row[1], bytes(row[10]))
                for k in range(len(c)):
                    rows[row[1]].setdefault(int(c.ts[k]), (c.open[k], c.high[k], c.low[k], c.close[k], c.volume[k]))
            elif row[0] == "bar":
                rows[row[1]][row[3]] = tuple(row[4:9])
    out = {}
    for symbol, bars in rows.items():
        ts = np.array(sorted(bars), dtype=np.int64)
        cols = np.array([bars[t] for t in ts.tolist()], dtype=np.float64).reshape(len(ts), 5).T
        out[symbol] = BarChunk(symbol, ts, *cols)
    return out


def _live_facts(runs: Sequence[Run]) -> dict[str, Any]:
    """Per symbol: first live bar, late and backfilled bars, paused spans, commands, rejects, partial fills."""
    first: dict[str, int] = {}
    late: dict[str, dict[int, str]] = defaultdict(dict)
    paused: dict[str, list[list[int | None]]] = defaultdict(list)
    flattened: dict[str, set[int]] = defaultdict(set)
    rejected: dict[str, set[str]] = defaultdict(set)
    parts: dict[str, int] = defaultdict(int)
    last_ts: dict[str, int] = {}
    interval: dict[str, int] = {}
    backfilling = False
    restarts: dict[str, list[int]] = defaultdict(list)  # the first live bar of each later run
    delays: dict[str, list[int]] = defaultdict(list)
    for run in runs:
        for row in run.rows:
            if row[0] == "bar":
                delays[row[1]].append(row[2] - row[3])
    median = {s: int(np.median(d)) for s, d in delays.items()}
    newest: dict[str, int] = {}
    for n, run in enumerate(runs):
        seen: set[str] = set()
        before = dict(newest)  # the last bar each symbol's worker had taken when this run began
        for row in run.rows:
            kind, symbol = row[0], row[1]
            if kind == "connection":
                backfilling = json.loads(row[9])["state"] == "backfilling"
            elif kind == "bar":
                ts = row[3]
                first.setdefault(symbol, ts)
                newest[symbol] = max(ts, newest.get(symbol, ts))
                if n and symbol not in seen and ts > before.get(symbol, ts - 1):
                    restarts[symbol].append(ts)  # the first bar the restarted worker took
                    seen.add(symbol)
                prev = last_ts.get(symbol)
                if prev is not None and symbol not in interval:
                    interval[symbol] = ts - prev
                step = interval.get(symbol)
                if backfilling:
                    late[symbol][ts] = "backfilled bar"
                elif step and row[2] - ts > median[symbol] + 2 * step:
                    delay = (row[2] - ts - median[symbol]) / NS_PER_SECOND
                    late[symbol][ts] = f"late bar ({delay:.0f} s later than usual)"
                last_ts[symbol] = ts
            elif kind == "command":
                name = json.loads(row[9])["name"]
                at = last_ts.get(symbol)
                if name == "pause":
                    paused[symbol].append([at, None])
                elif name == "resume" and paused[symbol] and paused[symbol][-1][1] is None:
                    paused[symbol][-1][1] = at
                elif name == "flatten" and at is not None:
                    flattened[symbol].add(at)
            elif kind == "call":
                d = json.loads(row[9])
                if d["m"] == "submit" and "e" in d:
                    rejected[symbol].add(d["k"])
            elif kind == "update":
                d = json.loads(row[9])
                if d["kind"] == "reject":
                    rejected[symbol].add(d["client_id"])
                elif d["kind"] == "partial_fill":
                    parts[d["client_id"]] += 1
    return {
        "restarts": restarts,
        "interval": interval,
        "first": first,
        "late": late,
        "paused": paused,
        "flattened": flattened,
        "rejected": rejected,
        "parts": parts,
    }


def _ts_of(line: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(line.split(" ", 1)[0].replace("Z", "+00:00")).timestamp() * NS_PER_SECOND)


def against_backtest(paths: list[Path], registry: Registry) -> Comparison:
    from engine_core.builtin.paper import PaperBroker
    from engine_core.runner import Engine

    notes: list[str] = []
    runs = runs_of(read_segments(paths, notes))
    bars = _bars(runs)
    facts = _live_facts(runs)
    log = EventLog()
    with tempfile.TemporaryDirectory(prefix="engine-vs-backtest-") as tmp:
        loaded, _ = _loaded(runs[0], registry, Path(tmp), WhatIf())
        header = runs[0].header
        cfg = loaded.config
        facts["window"] = cfg.engine.window
        cfg = cfg.model_copy(update={"engine": cfg.engine.model_copy(update={"mode": "backtest", "journal": False})})
        broker_cls, broker_config = loaded.broker_cls, loaded.broker_config
        if not header["broker_simulated"]:
            cash = next(
                (json.loads(r[9]).get("r") for r in runs[0].rows if r[0] == "call" and '"starting_cash"' in r[9]),
                None,
            )
            broker_cls = PaperBroker
            broker_config = PaperBroker.Config(**({"cash": cash} if cash else {}))
        loaded = dataclasses.replace(
            loaded,
            config=cfg,
            source_cls=RecordedHistory,
            source_config=bars,
            broker_cls=broker_cls,
            broker_config=broker_config,
            sinks=[(lambda _config: log, None)],
        )
        engine = Engine(loaded, registry)
        result = engine.run()
    live: dict[str, list[str]] = defaultdict(list)
    for run in runs:
        for row in run.rows:
            if row[0] == "event":
                live[row[1]].append(row[9])
    out = Comparison(backtest=result, summary=engine.summary or {})
    for symbol in header["symbols"]:
        start = facts["first"].get(symbol)
        if start is None:
            continue
        ours = log.lines.get(symbol, [])
        warm_acted = any(" signal " in e and _ts_of(e) < start for e in ours)
        _compare_symbol(symbol, _decisions(live[symbol], start), _decisions(ours, start), warm_acted, facts, out)
    return out


def _decisions(lines: list[str], start: int) -> list[str]:
    """A symbol's decisions from ``start`` on, in order: each signal, and each
    order as one line (its decision bar, side, fills or end) in its place."""
    orders: dict[str, dict[str, Any]] = {}
    out: list[Any] = []
    for line in lines:
        ts = _ts_of(line)
        words = line.split(" ")
        if words[2] == "signal":
            if ts >= start:
                out.append(line)
        elif words[2] == "order":
            cid = line.rsplit("[", 1)[1].split("]")[0]
            status, side = words[3], words[4]
            if cid not in orders and ts >= start:
                orders[cid] = {"ts": ts, "side": side, "fills": [], "end": ""}
                out.append(orders[cid])
            if cid in orders and status in ("rejected", "cancelled", "expired", "lost", "refused"):
                orders[cid]["end"] = status
        elif words[2] == "fill":
            cid = line.rsplit("[", 1)[1].split("]")[0]
            if cid in orders:
                orders[cid]["fills"].append((words[4], line.split(" @ ")[1].split()[0]))
    return [
        item
        if isinstance(item, str)
        else (
            f"{iso_utc(item['ts'])} order {item['side']}: "
            + (", ".join(f"{q} @ {p}" for q, p in item["fills"]) or "no fill")
            + (f", {item['end']}" if item["end"] else "")
        )
        for item in out
    ]


def _decision(line: str) -> str:
    """A decision without its symbol and time (what must be the same)."""
    parts = line.split(" ", 2)
    return parts[2] if len(parts) > 2 and parts[1] != "order" else line.split(" ", 1)[1]


def _compare_symbol(
    symbol: str, live: list[str], backtest: list[str], warm_acted: bool, facts: dict[str, Any], out: Comparison
) -> None:
    parted = False
    k = j = 0
    while k < len(live) or j < len(backtest):
        a = live[k] if k < len(live) else None
        b = backtest[j] if j < len(backtest) else None
        ta = _ts_of(a) if a else None
        tb = _ts_of(b) if b else None
        if a is not None and b is not None and ta == tb and _decision(a) == _decision(b):
            out.decisions += 1
            out.same += 1
            k += 1
            j += 1
            continue
        ts = min(t for t in (ta, tb) if t is not None)
        one_a = a if ta == ts else None
        one_b = b if tb == ts else None
        reason = _reason(symbol, ts, one_a, one_b, warm_acted, parted, facts)
        out.differences.append(Difference(symbol, ts, one_a, one_b, reason))
        out.decisions += 1
        parted = True
        if one_a is not None:
            k += 1
        if one_b is not None:
            j += 1


def _reason(
    symbol: str, ts: int, live: str | None, backtest: str | None, warm: bool, parted: bool, facts: dict[str, Any]
) -> str:
    if ts in facts["late"][symbol]:
        return str(facts["late"][symbol][ts])
    live_order = live is not None and " order " in live
    if live_order and ts in facts["flattened"][symbol]:
        return "flatten command"
    for begin, end in facts["paused"][symbol]:
        if begin is not None and begin < ts and (end is None or ts <= end):
            return "paused"
    if live_order and live is not None and live.endswith("rejected"):
        return "reject"
    if live_order and live is not None and backtest is not None and " order " in backtest:
        if live.count(" @ ") > 1:
            return "partial fill"
        if live.count(" @ ") == backtest.count(" @ ") == 1:
            pa, pb = live.split(" @ ")[1].split(",")[0], backtest.split(" @ ")[1].split(",")[0]
            return f"fill price (live {pa}, backtest {pb})"
        return "fill time"
    if parted:
        return "after an earlier difference"
    step = facts["interval"].get(symbol, 0)
    for begin in facts["restarts"][symbol]:
        if begin <= ts <= begin + facts["window"] * step:
            return f"warm-up differed (a restart at {iso_utc(begin)} rebuilt the indicators)"
    if warm:
        return "warm-up differed"
    return "no recorded cause (the strategy or the engine decided differently)"

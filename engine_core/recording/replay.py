"""``engine replay``: the same engine over a recording, compared event by event.

A session is replayed run by run: each process start recorded in it
(``start`` segment, with the day rolls that follow) becomes one run of a
fresh :class:`~engine_core.runner.Engine` built from the recorded config,
over a scratch copy of the journal as it was at that start (so a kill -9
and restart replays as such: the restart recovers from the same journal
and asks the broker the same questions). Its inputs are the recording's,
fed on one thread in the recorded order:

* a source that gives nothing (:class:`ReplayedSource`): bars, warm-up and
  commands are put straight into each symbol's worker in recorded order;
* a simulated broker: the live run's own when it was simulated (paper: it
  fills the same way again), else :class:`ReplayedBroker`, which answers each
  call as the venue did and delivers each recorded venue update at its
  recorded place, matched by client id.

The engine's event log (``describe`` of every event but connection events,
per symbol) is compared with the recorded one: the first difference is
reported with both versions. A segment that ended in a crash recorded
fewer events than its inputs caused; the events after its end are not
compared.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
import threading
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Future
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from engine_core import errors
from engine_core.brokers import Broker
from engine_core.builtin.paper import PaperBroker, PaperConfig
from engine_core.config import journal_path, load_config
from engine_core.control import Command, Request
from engine_core.events import EventSink, describe
from engine_core.model import Bar, BarChunk, ConnectionEvent, Order, iso_utc
from engine_core.orders import OpenOrder, OrderState, OrderStatus, OrderUpdate
from engine_core.plugins import Registry
from engine_core.recording.format import blob_chunk, json_fill, json_open_order, json_update, row_bar
from engine_core.recording.reader import RecordingError, Segment, read_segments
from engine_core.recording.writer import event_symbol, order_terms
from engine_core.sources import DataSource
from engine_core.worker import Warmup

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


# ------------------------------------------------------------ the venue's answers


class Answers:
    """A venue's recorded answers to the engine, in the order given, keyed
    by method and client id (or symbol)."""

    def __init__(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self.calls: dict[tuple[str, Any], deque[dict[str, Any]]] = defaultdict(deque)
        self.entries: dict[str, deque[bool]] = defaultdict(deque)
        for row in rows:
            if row[0] != "call":
                continue
            d = json.loads(row[9])
            if d["m"] == "entries_allowed":
                self.entries[row[1]].append(bool(d["r"]))
                continue
            key = row[1] if d["m"] == "round_qty" else d["k"]
            self.calls[(d["m"], key)].append(d)
        self.submitted = {key for (m, key) in self.calls if m == "submit"}

    def take(self, method: str, key: Any = None) -> dict[str, Any] | None:
        q = self.calls.get((method, key))
        return q.popleft() if q else None


def _raise(d: dict[str, Any]) -> None:
    if "e" in d:
        name, message = d["e"]
        cls = getattr(errors, name, None)
        if not (isinstance(cls, type) and issubclass(cls, errors.EngineError)):
            cls = errors.BrokerError
        raise cls(message)


def _state(data: Any) -> OrderState | None:
    if data is None:
        return None
    status, filled, fills, venue_id = data
    return OrderState(OrderStatus(status), Decimal(filled), tuple(json_fill(f) for f in fills), venue_id)


class ReplayedBroker(Broker):
    """Answers as the venue did (``Answers``); its updates come from the
    feeder at their recorded places. Simulated: nothing leaves the machine."""

    simulated: ClassVar[bool] = True

    def __init__(self, config: Any, *, on_update: Any, symbols: Sequence[str] = ()) -> None:
        super().__init__(config, on_update=on_update, symbols=symbols)
        self.answers: Answers = config
        self.placed: set[str] = set()  # client ids submitted in this replay that the venue had answered
        # a what-if's own orders (no answer recorded): filled by the paper broker's rules, at the next bar
        self.paper = PaperBroker(PaperConfig(), on_update=self._paper_reports, symbols=symbols)
        self.simulated_ids: set[str] = set()
        self._matched: list[OrderUpdate] | None = None  # what the paper broker reports inside ``match``

    def _paper_reports(self, update: OrderUpdate) -> None:
        if self._matched is not None:
            self._matched.append(update)
        else:
            self.on_update(update)

    def match(self, bar: Bar) -> list[OrderUpdate]:
        """The paper broker's fills of the what-if's own orders at ``bar``,
        returned for the feeder to apply before the bar."""
        if not self.simulated_ids:
            return []
        self._matched = []
        try:
            self.paper.match(bar.symbol, bar.ts, bar.open, bar.high, bar.low)
        finally:
            matched, self._matched = self._matched, None
        return matched

    def starting_cash(self) -> Decimal:
        d = self.answers.take("starting_cash")
        if d is None:
            raise RecordingError("the recording has no starting cash (its first second was lost)")
        _raise(d)
        return Decimal(d["r"])

    def positions(self) -> dict[str, Decimal]:
        d = self.answers.take("positions")
        if d is None:
            return {}
        _raise(d)
        return {s: Decimal(q) for s, q in d["r"].items()}

    def open_orders(self) -> list[OpenOrder]:
        d = self.answers.take("open_orders")
        if d is None:
            return []
        _raise(d)
        return [json_open_order(found) for found in d["r"]]

    def submit(self, order: Order) -> None:
        recorded = self.answers.calls.get(("submit", order.client_id))
        same = recorded is not None and len(recorded) > 0 and recorded[0].get("o") == order_terms(order)
        d = self.answers.take("submit", order.client_id) if same else None
        if d is None:
            self.simulated_ids.add(order.client_id)
            self.paper.submit(order)
            return
        self.placed.add(order.client_id)
        _raise(d)

    def cancel(self, client_id: str) -> None:
        if client_id in self.simulated_ids:
            self.paper.cancel(client_id)
            return
        d = self.answers.take("cancel", client_id)
        if d is not None:
            _raise(d)

    def order_status(self, client_id: str) -> OrderState | None:
        if client_id in self.simulated_ids:
            return self.paper.order_status(client_id)
        d = self.answers.take("order_status", client_id)
        if d is None:
            return None
        _raise(d)
        return _state(d["r"])


class LotReplayedBroker(ReplayedBroker):
    """A replay of a venue with a lot step: ``round_qty`` as the venue answered."""

    def round_qty(self, symbol: str, qty: Decimal) -> Decimal:
        d = self.answers.take("round_qty", symbol)
        if d is None or d["k"] != str(qty):
            return qty
        return Decimal(d["r"])


class ReplayedSource(DataSource):
    """No bars of its own (the feeder puts the recorded ones in each inbox);
    a source with market sessions answers ``entries_allowed`` as it did live."""

    def __init__(self, config: Any, *, symbols: Sequence[str], base_dir: Path) -> None:
        super().__init__(config, symbols=symbols, base_dir=base_dir)
        self.answers: Answers = config

    async def live(self) -> AsyncIterator[Bar]:  # type: ignore[override]
        return
        yield  # pragma: no cover

    def entries_allowed(self, symbol: str, ts: int) -> bool:
        q = self.answers.entries.get(symbol)
        return q.popleft() if q else True


class EventLog(EventSink):
    """The replay's event log, per symbol (the engine's one thread emits in order)."""

    inline = True

    def __init__(self) -> None:
        super().__init__(None)
        self.lines: dict[str, list[str]] = defaultdict(list)

    def handle(self, event: Any) -> None:
        if type(event) is not ConnectionEvent:
            self.lines[event_symbol(event)].append(describe(event))


# ------------------------------------------------------------ runs


@dataclasses.dataclass
class Run:
    """One process start and the day rolls that follow it."""

    segments: list[Segment]

    @property
    def header(self) -> dict[str, Any]:
        return self.segments[0].header

    @property
    def rows(self) -> list[tuple[Any, ...]]:
        return [row for seg in self.segments for row in seg.rows]

    @property
    def crashed(self) -> bool:
        return not self.segments[-1].ended


def runs_of(segments: list[Segment]) -> list[Run]:
    runs: list[Run] = []
    for seg in segments:
        if seg.kind == "start" or not runs:
            runs.append(Run([seg]))
        else:
            runs[-1].segments.append(seg)
    return runs


@dataclasses.dataclass
class Divergence:
    symbol: str
    index: int  # 1-based event number within the symbol's log of this run
    live: str | None
    replay: str | None
    segment: Path

    def lines(self) -> list[str]:
        return [
            f"replay: differs at {self.symbol} event {self.index} (run recorded in {self.segment})",
            f"  live:   {self.live if self.live is not None else '(no such event)'}",
            f"  replay: {self.replay if self.replay is not None else '(no such event)'}",
        ]


@dataclasses.dataclass
class ReplayOutcome:
    events: int = 0  # events compared
    divergence: Divergence | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    recorded_fills: int = 0  # venue fills delivered as recorded
    simulated_fills: int = 0  # fills of orders the recording had no answer for (paper rules)
    summaries: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # each run's summary


@dataclasses.dataclass
class WhatIf:
    strategy: Path | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.strategy is not None or bool(self.params)


def replay_session(
    paths: list[Path],
    registry: Registry,
    what_if: WhatIf | None = None,
    from_: int | None = None,
    to: int | None = None,
) -> ReplayOutcome:
    """Replay the segments at ``paths`` (in order) and compare their event logs:
    from the last process start at or before ``from_``, feeding what arrived
    until ``to`` (wall-clock ns)."""
    what_if = what_if or WhatIf()
    outcome = ReplayOutcome()
    segments = read_segments(paths, outcome.notes)
    if from_ is not None:
        starts = [k for k, seg in enumerate(segments) if seg.kind == "start" and seg.start <= from_]
        segments = segments[starts[-1] if starts else 0 :]
    if segments and segments[0].kind != "start":
        raise RecordingError(
            f"{segments[0].path}: this segment continues a run started on an earlier day; "
            "replay that day's folder first (its start has the journal the run began from)"
        )
    for seg in segments:
        if seg.stopped:
            outcome.notes.append(seg.stopped)
    with tempfile.TemporaryDirectory(prefix="engine-replay-") as tmp:
        for n, run in enumerate(runs_of(segments)):
            log = _replay_run(run, registry, Path(tmp) / f"run{n}", what_if, to, outcome)
            if not what_if.active:
                _compare(run, log, outcome, cut=to is not None)
                if outcome.divergence is not None:
                    break
    return outcome


def _replay_run(
    run: Run, registry: Registry, tmp: Path, what_if: WhatIf, to: int | None, outcome: ReplayOutcome
) -> EventLog:
    from engine_core.runner import Engine

    tmp.mkdir(parents=True)
    header = run.header
    rows = run.rows
    loaded, label = _loaded(run, registry, tmp, what_if)
    cfg = loaded.config
    image = run.segments[0].image
    if image is not None:
        path = journal_path(loaded.base_dir, cfg.engine)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image)
    answers = Answers(rows)
    log = EventLog()
    if header["broker_simulated"]:
        broker_cls, broker_config = loaded.broker_cls, loaded.broker_config
    else:
        base = LotReplayedBroker if header["lot_step"] else ReplayedBroker
        broker_cls = type(base.__name__, (base,), {"supports_brackets": header["brackets"]})
        broker_config = answers
    loaded = dataclasses.replace(
        loaded,
        source_cls=ReplayedSource,
        source_config=answers,
        broker_cls=broker_cls,
        broker_config=broker_config,
        sinks=[(lambda _config: log, None)],
    )
    engine = Engine(loaded, registry)
    simulated = bool(header["broker_simulated"])

    def feed(engine: Engine) -> None:
        if not what_if.active and label is not None:
            # the script runs from a scratch file; its messages name it as the live run did
            engine.host.label = label
            for worker in engine.workers.values():
                watcher = getattr(worker.strategy, "watcher", None)
                if watcher is not None:
                    watcher.label = label
        _feed(engine, rows, simulated, what_if.active, to, outcome)

    engine.feed = feed
    engine.run()
    if simulated:  # the live run's own simulated broker filled every order again
        outcome.simulated_fills += sum(" fill " in line for lines in log.lines.values() for line in lines)
    outcome.summaries.append(engine.summary or {})
    return log


def _loaded(run: Run, registry: Registry, tmp: Path, what_if: WhatIf) -> tuple[Any, str | None]:
    """The recorded config, loaded as live, journaling into ``tmp``, with the
    recorded script (or the what-if's); and the script's name in the config."""
    header = run.header
    config = tmp / "config.toml"
    config.write_text(header["config"], encoding="utf-8")
    missing = {m for m in _ENV.findall(header["config"]) if m not in os.environ}
    try:  # secrets are not needed (nothing is contacted); placeholders let the config load
        for name in missing:
            os.environ[name] = "replay-placeholder"
        loaded = load_config(config, registry)
    finally:
        for name in missing:
            os.environ.pop(name, None)
    cfg = loaded.config
    engine = cfg.engine.model_copy(
        update={
            "symbols": list(header["symbols"]),
            "id": header["engine_id"],
            "shard": None,
            "state_dir": str(tmp / "state"),
            "journal": True,
            "journal_sync": "normal",
            "record": False,
            "mode": "live",
        }
    )
    strategy = cfg.strategy
    cfg_script = strategy.script
    update: dict[str, Any] = {}
    if what_if.strategy is not None:
        update["script"] = str(what_if.strategy.resolve())
    elif header.get("script_hash"):
        text = _script_text(run, header["script_hash"])
        script = tmp / "strategy.lua"
        script.write_text(text, encoding="utf-8")
        update["script"] = str(script)
    if what_if.params:
        update["params"] = {**strategy.params, **what_if.params}
    strategy = strategy.model_copy(update=update)
    cfg = cfg.model_copy(update={"engine": engine, "strategy": strategy, "sinks": []})
    # relative paths (a Python strategy's module) from where the config was
    return dataclasses.replace(loaded, config=cfg, path=Path(header["config_path"])), cfg_script


def _script_text(run: Run, digest: str) -> str:
    for row in run.rows:
        if row[0] == "script" and json.loads(row[9]).get("hash") == digest:
            return bytes(row[10]).decode("utf-8")
    raise RecordingError(f"{run.segments[0].path}: the script version {digest[:12]} is not in the recording")


def _feed(
    engine: Any, rows: list[tuple[Any, ...]], simulated: bool, what_if: bool, to: int | None, outcome: ReplayOutcome
) -> None:
    """The recorded inputs, each to its symbol's worker, in recorded order, on this thread."""
    workers = engine.workers
    broker = engine.broker
    stopped: set[str] = set()
    matching = what_if and isinstance(broker, ReplayedBroker)
    reload_after: set[tuple[str, int]] = set()
    stopping: _StoppingAsLive | None = None
    if not what_if:
        reload_after = _replay_reloads(workers, rows)
        stopping = _StoppingAsLive.install(workers, rows)
    # A symbol's bars in a row (nothing else of its own between them) go to its
    # worker as one chunk: the worker decides the same on a chunk as bar by bar
    # (a backtest's premise), and a chunk costs one step instead of many. Not
    # when symbols share account limits (the order across symbols matters) or
    # a what-if fills its own orders bar by bar.
    batching = not matching and not any(w.risk.tracks_account for w in workers.values())
    pending: dict[str, list[tuple[Any, ...]]] = defaultdict(list)

    def drain(worker: Any) -> None:
        while True:
            try:
                msg = worker.inbox.get_nowait()
            except Exception:  # noqa: BLE001 - queue.Empty
                return
            worker.handle(msg)

    def flush(symbol: str) -> None:
        bars = pending.pop(symbol, None)
        if not bars:
            return
        if stopping is not None:
            stopping.fed = symbol
        worker = workers[symbol]
        if len(bars) == 1:
            worker.handle(row_bar(bars[0]))
        else:
            cols = np.array([b[3:9] for b in bars], dtype=np.float64).T
            ts = np.array([b[3] for b in bars], dtype=np.int64)
            worker.handle(BarChunk(symbol, ts, cols[1], cols[2], cols[3], cols[4], cols[5]))
        drain(worker)

    for row in rows:
        kind, symbol = row[0], row[1]
        if to is not None and row[2] > to:
            break
        worker = workers.get(symbol) if symbol is not None else None
        if worker is None:
            continue
        if stopping is not None:
            stopping.fed = symbol
        if kind == "bar":
            if symbol in stopped:
                continue
            if stopping is not None and stopping.meets(symbol, row[3]):
                flush(symbol)  # the bars before it, as they were: not stopping yet
                stopping.symbols.add(symbol)
            if batching:
                pending[symbol].append(row)
                if (symbol, row[3]) in reload_after:
                    flush(symbol)
                continue
            bar = row_bar(row)
            if matching:
                for update in broker.match(bar):
                    outcome.simulated_fills += update.fill is not None
                    worker.handle(update)
            worker.handle(bar)
            drain(worker)
            continue
        flush(symbol)
        if kind == "warmup":
            if symbol not in stopped:
                worker.handle(Warmup(blob_chunk(symbol, bytes(row[10]))))
        elif kind == "command":
            if symbol not in stopped:
                d = json.loads(row[9])
                worker.handle(Request(Command(**d), Future()))
        elif kind == "update":
            if simulated:
                continue  # a simulated broker's own updates: made again by the replay
            update = json_update(symbol, row[9])
            if what_if and update.client_id in broker.answers.submitted and update.client_id not in broker.placed:
                continue  # an order the what-if did not send
            outcome.recorded_fills += update.fill is not None
            worker.handle(update)
        elif kind == "stop":
            stopped.add(symbol)
        drain(worker)
    for symbol in list(pending):
        flush(symbol)


class _StoppingAsLive(threading.Event):
    """The engine's "stopping" as each symbol met it live. A live run stopped
    while its symbols traded refuses the orders decided after the stop began
    (rule ``stop``), on whichever bar each worker was at: the wall clock's
    time, not the bars'. The replay sets it for a symbol from the bar of its
    first such refusal (read from the recorded event log), so that those
    orders are refused again, and for no other symbol."""

    def __init__(self, first: dict[str, str], engine_stopping: threading.Event | None) -> None:
        super().__init__()
        self.engine_stopping = engine_stopping  # the replay's own stop, at its end: for every symbol
        self.first = first  # symbol -> the time (its event log's text) of its first refusal for stop
        self.symbols: set[str] = set()  # the symbols past the bar of their first refusal
        self.fed: str | None = None  # the symbol whose worker is being fed

    @classmethod
    def install(cls, workers: dict[str, Any], rows: list[tuple[Any, ...]]) -> _StoppingAsLive | None:
        first: dict[str, str] = {}
        for row in rows:
            if row[0] == "event" and row[1] not in first and _REFUSED_AT_STOP.search(row[9]):
                first[row[1]] = row[9].split(" ", 1)[0]
        if not first or not workers:
            return None
        execution = next(iter(workers.values())).execution  # (one, shared by the workers)
        stopping = execution.stopping = cls(first, execution.stopping)
        return stopping

    def meets(self, symbol: str, ts: int) -> bool:
        """Whether the bar ``ts`` of ``symbol`` is the first at which it met
        the stop live (the caller adds it to ``symbols`` once the bars
        before it are fed)."""
        at = self.first.get(symbol)
        return at is not None and symbol not in self.symbols and iso_utc(ts) >= at

    def is_set(self) -> bool:
        real = self.engine_stopping
        return (real is not None and real.is_set()) or self.fed in self.symbols


_REFUSED_AT_STOP = re.compile(r" order refused .*: the engine is stopping$")


def _replay_reloads(workers: dict[str, Any], rows: list[tuple[Any, ...]]) -> set[tuple[str, int]]:
    """Each symbol's strategy reloads the recorded version after the bar it
    reloaded after live (the file's changes are seen on the wall clock's time),
    and rejects the ones rejected live: a version that did not compile is
    compiled again and fails again; a file that could not be read fails
    with the recorded reason."""
    texts: dict[str, bytes] = {}
    reloads: dict[str, deque[tuple[int | None, dict[str, Any]]]] = defaultdict(deque)
    for row in rows:
        if row[0] == "script":
            d = json.loads(row[9])
            if row[10] is not None:
                texts[d["hash"]] = bytes(row[10])
            if d.get("reload"):
                reloads[row[1]].append((row[3], d))
    for symbol, worker in workers.items():
        strategy = worker.strategy
        watcher = getattr(strategy, "watcher", None)
        if watcher is None:
            continue
        original = strategy.reload_if_changed

        def reload_if_changed(
            force: bool = False,
            worker: Any = worker,
            watcher: Any = watcher,
            original: Any = original,
            queue: Any = reloads[symbol],
        ) -> str | None:
            if not queue or queue[0][0] != worker.last_ts:
                return None
            _, d = queue.popleft()
            if "unread" in d:
                raise errors.StrategyError(d["unread"])
            watcher.path.write_bytes(texts[d["hash"]])
            watcher.current = dataclasses.replace(watcher.current, stamp=(-1, -1))
            watcher.due()
            message: str | None = original()
            return message

        strategy.reload_if_changed = reload_if_changed
    return {(symbol, ts) for symbol, queue in reloads.items() for ts, _ in queue if ts is not None}


def _compare(run: Run, log: EventLog, outcome: ReplayOutcome, cut: bool) -> None:
    live: dict[str, list[str]] = defaultdict(list)
    for row in run.rows:
        if row[0] == "event":
            live[row[1]].append(row[9])
    for symbol in sorted(set(live) | set(log.lines)):
        a, b = live.get(symbol, []), log.lines.get(symbol, [])
        n = min(len(a), len(b))
        for k in range(n):
            if a[k] != b[k]:
                outcome.divergence = Divergence(symbol, k + 1, a[k], b[k], run.segments[0].path)
                return
        outcome.events += n
        if len(a) > n and not cut:
            outcome.divergence = Divergence(symbol, n + 1, a[n], None, run.segments[0].path)
            return
        if len(b) > n and not run.crashed:
            outcome.divergence = Divergence(symbol, n + 1, None, b[n], run.segments[0].path)
            return
        if len(b) > n:
            outcome.notes.append(
                f"{symbol}: {len(b) - n} replayed events after the recording of {run.segments[-1].path.name} "
                "ended (a crash) are not compared"
            )

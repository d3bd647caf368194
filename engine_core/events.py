"""Event sinks and the bus that hands every engine event to them and to the
observation hooks."""

from __future__ import annotations

import abc
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, ClassVar

import pluggy

from engine_core import model
from engine_core.errors import error_text
from engine_core.model import Bar, iso_utc
from engine_core.plugins import caller_of
from engine_core.sources import PluginConfig

# The engine's events: this union, the observation hook each goes to (one spec
# each in hookspecs.py) and the one line a text sink writes for each (describe).
Event = (
    Bar
    | model.SignalEvent
    | model.TransitionEvent
    | model.OrderEvent
    | model.FillEvent
    | model.ErrorEvent
    | model.ConnectionEvent
    | model.LogEvent
)

_HOOK_OF = {
    Bar: "engine_bar",
    model.SignalEvent: "engine_signal",
    model.TransitionEvent: "engine_transition",
    model.OrderEvent: "engine_order",
    model.FillEvent: "engine_fill",
    model.ErrorEvent: "engine_error",
    model.ConnectionEvent: "engine_connection",
    model.LogEvent: "engine_log",
}
_ARG_OF = {"engine_bar": "bar"}
SINK_QUEUE = 100_000  # events buffered per sink before its drops are counted

log = logging.getLogger("engine_core.events")


class EventSink(abc.ABC):
    """Where events go. Every method runs on the sink's own thread (the bus
    gives each sink a bounded queue), so ``handle`` may take its time without
    slowing a symbol; an exception disables the sink and is reported.

    A sink that queues events itself (bounded) and publishes them from a
    thread of its own sets ``inline``: the bus then calls its ``handle`` on
    the emitting thread (a worker's), so ``handle`` must be quick and
    thread-safe, and its ``close`` must bound its own wait (``close_grace``).
    Waking a sink's thread for each event costs the workers a thread switch
    per event, more than a sink that batches spends on the event itself."""

    Config: ClassVar[type[PluginConfig]] = PluginConfig
    wants_bars: ClassVar[bool] = False  # bars are many; only sinks that ask get them
    inline: ClassVar[bool] = False  # handle() is called on the emitting thread (see above)
    close_grace: float = 0.0  # seconds its flush and close may take at most; the bus waits at least that long

    def __init__(self, config: Any) -> None:
        self.config = config

    def bind(self, engine_id: str, symbols: Sequence[str], mode: str) -> None:
        """Called once before the bus is built: the engine's id, the symbols it
        runs (its shard's) and its mode. A sink may set ``wants_bars`` here."""

    def start(self) -> None:
        """Open connections or files."""

    @abc.abstractmethod
    def handle(self, event: Event) -> None:
        """Take one event."""

    def flush(self) -> None:
        """Write out anything buffered: called whenever the sink's queue runs
        empty (so what a live run does shows at once; a backtest's events
        come in batches) and at the end."""

    def idle(self) -> None:
        """Live: the engine's burst of bars is over (every symbol's bar of
        the same instant has been worked through; ``baton.py``), or it has
        been busy throughout for 50 ms. A sink that publishes from a thread
        of its own does it now, not while the workers need the interpreter.
        Called on the engine's watcher thread, beside ``handle``: it must
        return at once. Not called in backtests."""

    def close(self) -> None:
        """Release resources (after a final flush)."""

    def stats(self) -> dict[str, Any]:
        """Figures the run summary reports for this sink (e.g. events dropped); {} for none."""
        return {}


FEE_PLACES = 8  # decimals a fee shows in an event line (a satoshi; cents have fewer)


def fee_text(fee: Decimal) -> str:
    """A fee as an event line shows it: at most ``FEE_PLACES`` decimals, no
    trailing zeros (a fraction of a notional carries every digit of both:
    ``29.9894807100``). The fill itself keeps the exact amount."""
    if fee.is_finite() and int(fee.as_tuple().exponent) < -FEE_PLACES:
        fee = fee.quantize(Decimal(1).scaleb(-FEE_PLACES))
    text = format(fee, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def describe(event: Event) -> str:
    """One line for an event (shared by every text sink). Enum members are
    read as ``_value_``: on Python 3.11 ``value`` is a property, a Python
    call per read, and a line is made for every event."""
    if isinstance(event, model.TransitionEvent):
        move = f"{event.from_state._value_} -> {event.to_state._value_}"
        return f"{iso_utc(event.ts)} {event.symbol} {move} ({event.reason})"
    if isinstance(event, model.OrderEvent):
        o = event.order
        extra = f": {event.detail}" if event.detail else ""
        what = f"order {event.status._value_} {o.side._value_} {o.qty} [{o.client_id}]"
        return f"{iso_utc(o.ts)} {o.symbol} {what} {o.reason}{extra}"
    if isinstance(event, model.FillEvent):
        f = event.fill
        fee = fee_text(f.commission)
        return f"{iso_utc(f.ts)} {f.symbol} fill {f.side._value_} {f.qty} @ {f.price} fee {fee} [{f.client_id}]"
    if isinstance(event, model.SignalEvent):
        return f"{iso_utc(event.ts)} {event.symbol} signal {event.action} {event.detail or ''}".rstrip()
    if isinstance(event, model.ErrorEvent):
        return f"{iso_utc(event.ts)} {event.symbol or '-'} {event.kind}: {event.message}"
    if isinstance(event, model.ConnectionEvent):
        detail = f" ({event.detail})" if event.detail else ""
        return f"{iso_utc(event.ts)} - source {event.source} {event.state}{detail}"
    if isinstance(event, model.LogEvent):
        return f"{iso_utc(event.ts)} {event.symbol} log: {event.message}"
    if isinstance(event, Bar):
        prices = f"o={event.open} h={event.high} l={event.low} c={event.close} v={event.volume}"
        return f"{iso_utc(event.ts)} {event.symbol} bar {prices}"
    return repr(event)


class _Slot:
    """What the bus keeps of one sink: its failure, once it failed (it is
    then disabled and reported), and ``idle`` passed on."""

    sink: EventSink
    name: str
    failed: str | None

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def idle(self) -> None:
        if self.failed is None and self.running:
            try:
                self.sink.idle()
            except Exception as err:  # noqa: BLE001 - a sink's failure is its own
                self._fail("idle", err)

    def _fail(self, what: str, err: Exception) -> None:
        if self.failed is None:
            self.failed = f"event sink {self.name} failed in {what}: {error_text(err)}; disabled"
            log.error("%s", self.failed)


class _InlineSink(_Slot):
    """An ``inline`` sink: ``handle`` on the emitting thread, failures
    reported and the sink disabled as for a sink on its own thread."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self.name = type(sink).__name__
        self.dropped = 0  # the sink counts its own
        self.failed: str | None = None
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        self._running = True

    def put(self, event: Event) -> None:
        if self.failed is None and self._running:
            try:
                self.sink.handle(event)
            except Exception as err:  # noqa: BLE001 - a sink's failure is its own
                self._fail("handle", err)

    def stop(self, timeout: float) -> None:
        self._running = False  # events emitted from here on are not handed over
        for what, step in (("flush", self.sink.flush), ("close", self.sink.close)):
            if what == "close" or self.failed is None:
                try:
                    step()
                except Exception as err:  # noqa: BLE001
                    self._fail(what, err)


class _SinkThread(_Slot):
    """One sink's own bounded queue and thread: a slow or blocked sink fills
    only its own queue (what does not fit is dropped and counted), and one
    that raises is reported and disabled, never touching a worker."""

    _END = object()

    def __init__(self, sink: EventSink, size: int) -> None:
        self.sink = sink
        self.name = type(sink).__name__
        self.queue: queue.Queue[Any] = queue.Queue(size)
        self.dropped = 0
        self.handled = 0  # events taken off the queue (read at close: is the sink making progress?)
        self.failed: str | None = None
        self.thread = threading.Thread(target=self._run, name=f"sink-{self.name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def put(self, event: Event) -> None:
        if self.failed is not None:
            return
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        unflushed = False  # events handled since the sink last flushed
        while True:
            try:
                event = self.queue.get_nowait()
            except queue.Empty:  # idle: what the sink buffered goes out now (a live run's lines at once)
                if unflushed and self.failed is None:
                    try:
                        self.sink.flush()
                    except Exception as err:  # noqa: BLE001
                        self._fail("flush", err)
                unflushed = False
                event = self.queue.get()
            self.handled += 1
            if event is self._END:
                break
            if self.failed is None:
                unflushed = True
                try:
                    self.sink.handle(event)
                except Exception as err:  # noqa: BLE001 - a sink's failure is its own
                    self._fail("handle", err)
        if self.failed is None:
            try:
                self.sink.flush()
            except Exception as err:  # noqa: BLE001
                self._fail("flush", err)
        try:
            self.sink.close()
        except Exception as err:  # noqa: BLE001
            self._fail("close", err)

    def stop(self, timeout: float) -> None:
        """Hand the end over and wait while the sink works through its queue;
        a sink that takes no event for ``timeout`` seconds is left behind
        (its thread is a daemon), what it did not take counted as dropped."""
        ended = False
        handled, since = self.handled, time.monotonic()
        while self.thread.is_alive():
            if not ended:
                try:
                    self.queue.put_nowait(self._END)
                    ended = True
                except queue.Full:
                    pass
            self.thread.join(0.05)
            if self.handled != handled:
                handled, since = self.handled, time.monotonic()
            elif time.monotonic() - since >= timeout and self.thread.is_alive():
                left = self.queue.qsize() - (1 if ended else 0)
                self.dropped += max(left, 0)
                self.failed = self.failed or (
                    f"event sink {self.name} took no event for {timeout:g} s (blocked); left behind, "
                    f"{max(left, 0):,} events not delivered"
                )
                log.error("%s", self.failed)
                return


class EventBus:
    """Hands every event to the observation hooks (on the emitting thread,
    each implementation isolated) and to each sink (through its own queue
    and thread)."""

    def __init__(
        self,
        pm: pluggy.PluginManager | None,
        sinks: Iterable[EventSink] = (),
        queue_size: int = SINK_QUEUE,
        taps: Iterable[EventSink] = (),
    ) -> None:
        """``sinks`` are the config's; ``taps`` the engine's own (the session
        recorder), handled the same way but not among ``sinks``."""
        self.pm = pm
        self.sinks = list(sinks)
        self._lock = threading.Lock()
        self.close_timeout = 10.0  # seconds a sink may take no event at close before it is left behind
        self._threads: list[_SinkThread | _InlineSink] = [
            _InlineSink(s) if s.inline else _SinkThread(s, queue_size) for s in [*self.sinks, *taps]
        ]
        self._bar_threads = [t for t in self._threads if t.sink.wants_bars]
        self._idlers = [t for t in self._threads if type(t.sink).idle is not EventSink.idle]
        self._hooks: dict[type, list[tuple[Callable[[Any], Any], str]]] = {}  # (call with the event, plugin)
        self.hook_failures: list[str] = []
        if pm is not None:
            for cls, name in _HOOK_OF.items():
                impls = getattr(pm.hook, name).get_hookimpls()
                if impls:
                    arg = _ARG_OF.get(name, "event")
                    self._hooks[cls] = [(caller_of(impl, arg), impl.plugin_name) for impl in impls]
        self.wants_bars = Bar in self._hooks or bool(self._bar_threads)
        # False when nothing listens: the hot paths then skip building events.
        self.listening = bool(self._threads) or bool(self._hooks)

    def emit(self, event: Event) -> None:
        hooks = self._hooks.get(type(event))
        if hooks:
            self._call_hooks(type(event), hooks, event)
        targets = self._bar_threads if type(event) is Bar else self._threads
        if len(targets) == 1:  # one sink: its own queue keeps the order (workers never queue on the lock)
            targets[0].put(event)
        elif targets:
            with self._lock:  # never blocks long (puts do not wait); every sink sees one order
                for t in targets:
                    t.put(event)

    @property
    def idlers(self) -> bool:
        """Whether a sink wants to be told when the engine is idle (``idle``)."""
        return bool(self._idlers)

    def idle(self) -> None:
        """Live: the engine's burst is over (the baton's watcher says so):
        each sink that asks is told (``EventSink.idle``)."""
        for t in self._idlers:
            t.idle()

    def _call_hooks(self, cls: type, hooks: list[tuple[Callable[[Any], Any], str]], event: Event) -> None:
        for entry in list(hooks):
            call, plugin = entry
            try:
                call(event)
            except Exception as err:  # noqa: BLE001 - an observer never halts a symbol
                hooks.remove(entry)
                message = f"plugin {plugin!r} failed in {_HOOK_OF[cls]}: {error_text(err)}; hook disabled"
                self.hook_failures.append(message)
                log.error("%s", message)

    def start(self) -> None:
        for t in self._threads:
            t.sink.start()
            t.start()

    def close(self) -> None:
        """Deliver what is queued, flush and close every sink (a sink that
        takes no event for ``close_timeout`` seconds is left behind and
        reported; one that works through its queue is waited for)."""
        for t in self._threads:
            if t.running:
                t.stop(max(self.close_timeout, t.sink.close_grace))

    def report(self) -> dict[str, Any]:
        """Sinks' drops and failures, and failed hooks (for the run summary)."""
        out: dict[str, Any] = {}
        for t in self._threads:
            if t.dropped or t.failed:
                out[t.name] = {"dropped": t.dropped, "failed": t.failed}
        if self.hook_failures:
            out["hooks"] = list(self.hook_failures)
        return out

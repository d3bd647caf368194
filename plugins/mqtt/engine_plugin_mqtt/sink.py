"""The ``mqtt`` event sink: every engine event on a broker, per-symbol and
engine status retained, and the control channel.

Workers never wait for the network: ``handle``, called on the worker's own
thread (an ``inline`` sink), appends the event to a bounded queue (``queue``
events; when full, ``on_full`` drops the oldest or makes the worker wait,
counted either way) and returns. The plugin's own thread runs an
asyncio loop that turns queued events into messages and publishes them in
order with up to ``WINDOW`` unacknowledged at once; live, once the engine's
burst of bars is over (``idle``), so that it never takes the interpreter
from the workers in the middle of one. A message leaves memory
only when the broker has acknowledged it (QoS 1 and 2): when the connection
drops, the unacknowledged ones are sent again first, in their order, after a
reconnect with backoff. So at QoS 1 nothing is lost while the broker is away,
and a subscriber may see a duplicate, which the events' ``seq`` numbers let it
drop. Its QoS 1 messages are written and acknowledged by ``lean.Publisher`` on
the connection paho (under aiomqtt) keeps: with paho's own publish path this
thread spent about three times the CPU per message.

Batched (``batch``; by default in backtests only), each message carries the
JSON array of up to ``batch_size`` events of one symbol, on
``<prefix>/<engine id>/<symbol>/events``: a Python MQTT client spends tens of
microseconds of CPU per message, which at a backtest's event rates would cost
the backtest most of its speed. The loop then lets a batch fill for up to
``LINGER`` seconds before it publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, NamedTuple

import aiomqtt
from paho.mqtt.client import MQTT_ERR_SUCCESS
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from engine_core import Bar, EngineError, Event, EventSink
from engine_plugin_mqtt import connection, lean, wire
from engine_plugin_mqtt.config import MqttSinkConfig
from engine_plugin_mqtt.control import ControlChannel
from engine_plugin_mqtt.status import UPDATES, EngineFigures, SymbolStatus

log = logging.getLogger(__name__)

WINDOW = 50  # messages published and not yet acknowledged, at most
BATCH = 1000  # events taken from the queue at a time (one message each)
LINGER = 0.2  # seconds a batch may wait to fill (batched only)
# Live, the loop publishes when the engine says a burst of bars is over
# (``idle``), not in the middle of one, where it would take the interpreter
# from the workers; from an engine that never says so, every LIVE_EVERY
# seconds. Half the queue wakes it at once.
LIVE_EVERY = 0.05
_NEVER = 1 << 62  # a queue length handle() never reaches: the loop does not want waking
_NO_SYMBOL = object()  # no symbol seen yet (None is the engine-wide events')
FIRST_CONNECT_WAIT = 5.0  # seconds the engine waits at start to learn whether the broker takes us


class _Message(NamedTuple):
    topic: str
    payload: bytes
    retain: bool = False
    properties: Properties | None = None


class _Abandoned(Exception):
    """close_timeout ran out with messages undelivered."""


def _with_indicators(views: dict[str, Any]) -> Any:
    """A bar's payload with the values of the indicators its strategy reads at that bar."""

    def make(bar: Bar, engine_id: str, seq: int) -> wire.EventPayload:
        payload = wire.PAYLOADS[Bar](bar, engine_id, seq)
        view = views.get(bar.symbol)
        if view is not None:
            payload.indicators = view.latest_indicators(bar.ts)  # type: ignore[attr-defined]
        return payload

    return make


class MqttSink(EventSink):
    Config = MqttSinkConfig
    inline = True  # handle() only queues (bounded) and wakes the loop when it wants: no bus thread between

    def __init__(self, config: MqttSinkConfig) -> None:
        super().__init__(config)
        self.cfg = config
        self.wants_bars = config.bars  # type: ignore[misc]
        self.engine_id = "engine"
        self.symbols: list[str] = []
        self.mode = "backtest"
        self.shard: str | None = None
        self._tls: ssl.SSLContext | None = None
        # handed over between the workers and the loop, under _lock (a plain lock is
        # cheaper to take than the condition's ``with``; _cond waits on the same lock)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._limit = config.queue
        self._buf: deque[Event] = deque()
        self._wake_at = _NEVER  # queued events at which handle() wakes the loop
        self._stopped = False
        self.dropped = 0  # dropped by on_full = "drop_oldest"
        self.blocked = 0  # times handle() waited for room (on_full = "block")
        # the loop's own
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._attached: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._first: Future[BaseException | None] = Future()  # outcome of the first connection attempt
        self._unacked: dict[int, _Message] = {}  # number -> message, in send order
        self._local: deque[_Message] = deque()  # built on the loop: statuses, replies
        self._number = 0
        self._seq = 0  # events published so far (their "seq")
        self._statuses: dict[str, SymbolStatus] = {}
        self._seeded_after = 0  # events received before the statuses were seeded
        self._taken = 0  # events taken from the queue by the loop
        self._closing = False
        self._deadline = 0.0
        self._since = ""
        self._status_figures: tuple[int, ...] = ()
        self._status_at = 0.0  # time.monotonic() of the last engine status made
        self._symbol_status_at: dict[str, float] = {}  # time.monotonic() of each symbol's last status
        self._bars_only: dict[str, None] = {}  # symbols whose bars changed their status since it was last sent
        self._bars_due = float("inf")  # time.monotonic() at which the first of them may be sent
        self._told = False  # the engine says when it is idle (idle()): live events wait for it
        self.control: ControlChannel | None = None
        self._figures: EngineFigures | None = None  # cash, equity, kill switches (set by attach)
        self._stop_event: threading.Event | None = None  # the engine's
        self._was_attached = False
        self._was_connected = False
        self._commands: set[asyncio.Task[None]] = set()
        self.published = 0  # messages the broker acknowledged
        self.close_grace = config.close_timeout + 15  # close() waits up to close_timeout + 10 s
        self.lost = 0  # still undelivered when close_timeout ran out
        self.connects = 0
        self.batched = False  # set by bind(): events go as JSON arrays on <symbol>/events
        self._topics: dict[tuple[str | None, str], str] = {}  # (symbol, event name) -> topic
        # event class -> (what makes its payload, None when not published; what it changes in a status)
        self._steps: dict[type, tuple[Any, Any]] = {
            cls: (None if cls is Bar and not config.bars else make, UPDATES.get(cls))
            for cls, make in wire.PAYLOADS.items()
        }

    # ------------------------------------------------------------ engine side

    def bind(self, engine_id: str, symbols: Sequence[str], mode: str) -> None:
        self.engine_id, self.symbols, self.mode = engine_id, list(symbols), mode
        self.batched = self.cfg.batch is True or (self.cfg.batch == "auto" and mode != "live")
        # live: bars keep each symbol's last bar in its status (published only with bars = true)
        self.wants_bars = self.cfg.bars or mode == "live"  # type: ignore[misc]
        self._statuses = {s: SymbolStatus(s) for s in self.symbols}
        if self.cfg.control:
            self.control = ControlChannel(engine_id)

    def start(self) -> None:
        self._since = wire.iso_ms(time.time_ns()) or ""
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="mqtt-sink", daemon=True)
        self._thread.start()
        ready.wait()

    def attach(
        self, engine: Any = None, base_dir: Path | None = None, shard: str | None = None, where: str = "sinks.mqtt"
    ) -> None:
        """The engine is about to start its workers: connect, take the symbols'
        state as restored, accept commands. Raises EngineError when the broker
        refuses the login or the CA file is not there (``where`` names the
        config file and key path); a broker that cannot be reached is retried
        in the background while events queue."""
        self.shard = shard
        self._tls = connection.tls_context(self.cfg, base_dir, where)
        seeds: dict[str, tuple[dict[str, Any], Any]] = {}
        for symbol, worker in (getattr(engine, "workers", None) or {}).items():
            seeds[symbol] = (worker.snapshot(), worker.stops)
        seeded_after = self.received
        if self.control is not None:
            self.control.engine = engine
        self._stop_event = getattr(engine, "stop_event", None)
        self._figures = EngineFigures(engine)
        if self.cfg.bars and self.mode == "live" and getattr(engine, "workers", None):
            self._steps[Bar] = (_with_indicators({s: w.view for s, w in engine.workers.items()}), UPDATES.get(Bar))
        assert self._loop is not None and self._attached is not None
        self._loop.call_soon_threadsafe(self._seed, seeds, seeded_after)
        self._was_attached = True
        self._loop.call_soon_threadsafe(self._attached.set)
        try:
            err = self._first.result(FIRST_CONNECT_WAIT)
        except FutureTimeout:
            err = TimeoutError(f"no answer within {FIRST_CONNECT_WAIT:g} s")
        if err is not None and connection.refused(err):
            raise EngineError(f"mqtt sink: {connection.describe(self.cfg)} refused the connection: {err}")
        if err is not None:
            log.warning(
                "mqtt sink: cannot reach %s (%s); events are queued (at most %d) and sent once it answers",
                connection.describe(self.cfg),
                err,
                self.cfg.queue,
            )

    def handle(self, event: Event) -> None:
        # No lock on the common path: deque appends are atomic, and a worker
        # waiting for a lock the loop thread holds (itself waiting for the GIL)
        # cost more than everything else handle() does. A full queue takes the lock.
        buf = self._buf
        if len(buf) >= self._limit:
            self._full(event)
            return
        buf.append(event)
        if len(buf) >= self._wake_at:
            self._wake_loop()

    def _full(self, event: Event) -> None:
        """A full queue: wait for room (``block``) or drop the oldest."""
        with self._lock:
            buf = self._buf
            if len(buf) >= self._limit and self.cfg.on_full == "block":
                self.blocked += 1
                while len(buf) >= self._limit and not self._stopped and not self._engine_stopping():
                    self._cond.wait(0.2)
            if len(buf) >= self._limit:  # drop_oldest, or an engine stopping while blocked
                buf.popleft()
                self.dropped += 1
            buf.append(event)
        if len(buf) >= self._wake_at:
            self._wake_loop()

    def idle(self) -> None:
        """The engine's burst of bars is over: publish what it made now."""
        self._told = True
        if self._buf:
            self._wake_loop()

    def _wake_loop(self) -> None:
        self._wake_at = _NEVER
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def _wake_to_close(self) -> None:
        """On the loop: stop waiting for the engine or for events (``close``)."""
        assert self._wake is not None and self._attached is not None
        self._wake.set()
        self._attached.set()

    @property
    def received(self) -> int:
        """Events handed to handle(): taken by the loop, queued, or dropped."""
        return self._taken + len(self._buf) + self.dropped

    def _engine_stopping(self) -> bool:
        """A stopping engine (Ctrl-C, a stop command) must not wait on the broker."""
        return self._stop_event is not None and self._stop_event.is_set()

    def close(self) -> None:
        """Deliver what is queued (up to close_timeout seconds), publish the
        engine's status as offline, disconnect."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        self._deadline = time.monotonic() + self.cfg.close_timeout
        self._closing = True
        try:  # one call: the loop may end as soon as it is woken
            loop.call_soon_threadsafe(self._wake_to_close)
        except RuntimeError:  # the loop has ended already (it failed): nothing to wake
            pass
        thread.join(self.cfg.close_timeout + 10)
        with self._lock:
            self._stopped = True
            self._cond.notify_all()
            if thread.is_alive():  # the loop is stuck on the network: count what it still holds
                self.lost = max(self.lost, len(self._buf) + len(self._unacked) + len(self._local))
        self._thread = None
        if self.lost:
            log.warning(
                "mqtt sink: %d messages not delivered to %s within close_timeout (%g s)",
                self.lost,
                connection.describe(self.cfg),
                self.cfg.close_timeout,
            )

    def stats(self) -> dict[str, Any]:
        return {
            "broker": connection.describe(self.cfg),
            "events": self.received,
            "published": self.published,
            "dropped": self.dropped,
            "blocked": self.blocked,
            "lost": self.lost,
            "connects": self.connects,
            **({"commands": self.control.commands, "refused": self.control.refused} if self.control else {}),
        }

    # ------------------------------------------------------------ topics and payloads

    def topic(self, *levels: str) -> str:
        return "/".join((self.cfg.prefix, self.engine_id, *levels))

    def _engine_status(self, online: bool, reason: str | None = None) -> _Message:
        queued = len(self._buf)  # (workers append without the lock: it would not make this any more exact)
        body = {
            "schema": wire.SCHEMA,
            "engine": self.engine_id,
            "online": online,
            "reason": reason,
            "mode": self.mode,
            "symbols": self.symbols,
            "shard": self.shard,
            "control": self.control is not None,
            "batch": self.batched,
            "since": self._since,
            "events": self.received,
            "published": self.published,
            "dropped": self.dropped,
            "queued": queued,
            "connects": self.connects,
        }
        if self._figures is not None and reason != "connection lost":  # (the will's figures would be stale)
            body.update(self._figures.payload(self._statuses))
        self._status_figures = (self.received, self.dropped, self.connects)
        self._status_at = time.monotonic()
        return _Message(self.topic("status"), wire.dumps(body), True)

    def _symbol_status(self, symbol: str) -> _Message:
        status = self._statuses[symbol]
        return _Message(self._event_topic(symbol, "status"), wire.dumps(status.payload(self.engine_id)), True)

    def _event_topic(self, symbol: str | None, name: str) -> str:
        """``<prefix>/<engine id>/<symbol>/<name>`` (``<prefix>/<engine id>/<name>``
        for an engine-wide event; a symbol's ``status`` too), made once per symbol and name."""
        topic = self._topics.get((symbol, name))
        if topic is None:
            topic = self.topic(wire.topic_level(symbol), name) if symbol is not None else self.topic(name)
            self._topics[symbol, name] = topic
        return topic

    def _messages(self, events: list[Event]) -> list[_Message]:
        """The messages for ``events`` (taken from the queue in order): one per
        event, or batched one per symbol and ``batch_size`` events; then each
        touched symbol's status."""
        out: list[_Message] = []
        touched: dict[str, bool] = {}  # symbol -> whether an event (not only its bars) changed its status
        statuses, engine_id = self._statuses, self.engine_id
        steps, seq = self._steps, self._seq
        batches: dict[str | None, list[wire.EventPayload]] = {}
        batched = self.batched
        # a backtest's events come in runs of one symbol: its batch and status are looked up once a run
        last_symbol: Any = _NO_SYMBOL
        batch: list[wire.EventPayload] = []
        status_symbol: Any = _NO_SYMBOL
        status: SymbolStatus | None = None
        # the first ``skip`` were received before the statuses were seeded from the workers
        skip = max(0, self._seeded_after - (self._taken - len(events)))
        for event in events:
            step = steps.get(event.__class__)
            if step is None:  # not an engine event: a bug elsewhere, never a reason to stop publishing
                log.error("mqtt sink: cannot publish %r", event)
                continue
            make, update = step
            if make is not None:
                seq += 1
                payload = make(event, engine_id, seq)
                symbol = payload.symbol
                if batched:
                    if symbol == last_symbol:
                        batch.append(payload)
                    else:
                        last_symbol = symbol
                        found = batches.get(symbol)
                        if found is None:
                            found = batches[symbol] = []
                        batch = found
                        batch.append(payload)
                else:
                    out.append(_Message(self._event_topic(symbol, payload.event), wire.dumps(payload)))
            else:  # a bar not published (bars = false) still updates its symbol's last bar
                symbol = event.symbol  # type: ignore[union-attr]
            if skip:
                skip -= 1
            elif symbol is not None:
                if symbol != status_symbol:
                    status_symbol = symbol
                    status = statuses.get(symbol)
                if status is not None:
                    touched[symbol] = touched.get(symbol, False) or event.__class__ is not Bar
                    status.seq = seq
                    if update is not None:
                        update(status, event)
        self._seq = seq
        size = self.cfg.batch_size
        for symbol, group in batches.items():
            topic = self._event_topic(symbol, "events")
            for i in range(0, len(group), size):
                out.append(_Message(topic, wire.dumps(group[i : i + size])))
        out.extend(self._statuses_due(touched))
        return out

    def _statuses_due(self, touched: dict[str, bool]) -> list[_Message]:
        """The statuses to send now: each one an event changed, at once; one
        that only bars changed, once ``bar_status_every`` has passed since the
        symbol's last (else it waits: ``_bar_statuses_due``)."""
        now = time.monotonic()
        every, sent_at, waiting = self.cfg.bar_status_every, self._symbol_status_at, self._bars_only
        out = []
        for symbol, by_event in touched.items():
            if by_event or now - sent_at.get(symbol, -every) >= every:
                out.append(self._symbol_status(symbol))
                sent_at[symbol] = now
                waiting.pop(symbol, None)
            elif symbol not in waiting:
                waiting[symbol] = None
                self._bars_due = min(self._bars_due, sent_at[symbol] + every)
        return out

    def _bar_statuses_due(self) -> tuple[list[_Message], float]:
        """The statuses only bars changed whose time has come, and the seconds
        until the next one waiting is due (``status_every`` if none waits)."""
        now = time.monotonic()
        if now < self._bars_due:  # (inf when none waits)
            return [], min(self._bars_due - now, self.cfg.status_every)
        every, sent_at = self.cfg.bar_status_every, self._symbol_status_at
        due = [s for s in self._bars_only if now - sent_at[s] >= every]
        out = self._statuses_due(dict.fromkeys(due, True))
        self._bars_due = min((sent_at[s] + every for s in self._bars_only), default=float("inf"))
        return out, max(0.001, min(self._bars_due - now, self.cfg.status_every))

    # ------------------------------------------------------------ the loop

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._wake = asyncio.Event()
        self._attached = asyncio.Event()
        ready.set()
        try:
            loop.run_until_complete(self._main())
        except Exception:  # noqa: BLE001 - a bug here must not take the engine down; say so
            log.exception("mqtt sink: the publishing loop failed; events are no longer published")
        finally:
            if not self._first.done():
                self._first.set_result(None)
            loop.close()

    def _seed(self, seeds: dict[str, tuple[dict[str, Any], Any]], seeded_after: int) -> None:
        for symbol, (snap, stops) in seeds.items():
            if symbol in self._statuses:
                self._statuses[symbol].seed(snap, stops)
        self._seeded_after = seeded_after
        self._local.extend(self._symbol_status(s) for s in self._statuses)

    async def _main(self) -> None:
        assert self._attached is not None
        await self._attached.wait()
        if not self._was_attached:  # closed before the engine started: nothing was ever connected
            self.lost = len(self._buf)
            return
        delays = connection.backoff()
        while True:
            try:
                if self._closing:  # a reconnect while stopping: no longer than close_timeout allows
                    await asyncio.wait_for(self._session(), max(0.1, self._deadline - time.monotonic()))
                else:
                    await self._session()
                return
            except _Abandoned:
                break
            except Exception as err:  # noqa: BLE001 - any failure: reconnect
                if isinstance(err.__context__, _Abandoned):
                    break  # the goodbye after giving up failed too: the broker hangs
                if not self._first.done():
                    self._first.set_result(err)
                if connection.refused(err):
                    log.error("mqtt sink: %s refused the connection: %s", connection.describe(self.cfg), err)
                    break
                if self.connects:
                    log.warning("mqtt sink: connection to %s lost: %s", connection.describe(self.cfg), err)
                if self._was_connected:
                    delays = connection.backoff()
            if self._closing and time.monotonic() >= self._deadline:
                break
            delay = next(delays)
            if self._closing:
                delay = min(delay, max(0.0, self._deadline - time.monotonic()))
            await asyncio.sleep(delay)
        queued = len(self._buf)  # (workers append without the lock: it would not make this any more exact)
        self.lost = queued + len(self._unacked) + len(self._local)

    async def _session(self) -> None:
        self._was_connected = False
        offline = self._engine_status(False, "connection lost").payload
        will = aiomqtt.Will(self.topic("status"), offline, qos=1, retain=True)
        client = connection.client(
            self.cfg,
            identifier=f"{self.cfg.prefix}-{self.engine_id}".replace("/", "-")[:64],
            tls=self._tls,
            will=will,
            inflight=WINDOW,
        )
        async with client:
            self.connects += 1
            self._was_connected = True
            if not self._first.done():
                self._first.set_result(None)
            if self.connects > 1:
                log.warning("mqtt sink: reconnected to %s", connection.describe(self.cfg))
            client.pending_calls_threshold = WINDOW * 2
            if self.control is not None:
                await client.subscribe(self.topic("control", "+"), qos=1)
            writer = asyncio.create_task(self._write(client))
            reader = asyncio.create_task(self._read(client))
            try:
                await asyncio.wait((writer, reader), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (writer, reader):
                    task.cancel()
                await asyncio.gather(writer, reader, return_exceptions=True)
            for task in (writer, reader):
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if not writer.done() or writer.cancelled():
                raise ConnectionError("the connection ended")

    async def _read(self, client: aiomqtt.Client) -> None:
        """Control commands in; returns (raises) when the connection drops."""
        prefix = self.topic("control", "")
        async for message in client.messages:
            topic = message.topic.value
            if self.control is not None and topic.startswith(prefix):
                task = asyncio.create_task(self._command(topic[len(prefix) :], message))
                self._commands.add(task)  # keep it referenced until done
                task.add_done_callback(self._commands.discard)

    async def _command(self, name: str, message: aiomqtt.Message) -> None:
        assert self.control is not None
        payload = message.payload if isinstance(message.payload, bytes) else str(message.payload or "").encode()
        origin = f"MQTT topic {message.topic.value} on {connection.describe(self.cfg)}"
        reply = await self.control.answer(name, payload, origin)
        if reply["ok"] and name in ("pause", "resume"):
            for symbol in reply["results"]:
                if symbol in self._statuses:
                    self._statuses[symbol].paused = name == "pause"
                    self._local.append(self._symbol_status(symbol))
        if not reply["ok"]:
            log.warning("mqtt control: %s refused: %s", name, reply["error"])
        topic, props = self.topic("reply"), None
        response_topic = getattr(message.properties, "ResponseTopic", None)
        if response_topic:  # MQTT 5 request/response
            topic = response_topic
            props = Properties(PacketTypes.PUBLISH)
            correlation = getattr(message.properties, "CorrelationData", None)
            if correlation is not None:
                props.CorrelationData = correlation  # type: ignore[attr-defined]
        self._local.append(_Message(topic, wire.dumps(reply), False, props))
        assert self._wake is not None
        self._wake.set()

    async def _write(self, client: aiomqtt.Client) -> None:
        qos = self.cfg.qos
        unacked = self._unacked
        # The event stream goes through the paho client that aiomqtt wraps:
        # aiomqtt's publish() costs about three times paho's per message (an
        # asyncio Event and a wait_for task each), and a backtest publishes
        # thousands a second. A QoS 1 message without properties goes through
        # lean.Publisher, on paho's connection at a fraction of paho's CPU; the
        # others through paho's publish(). Acknowledgements come on this loop's
        # thread like everything aiomqtt does (the Publisher's, paho's on_publish).
        paho_client = client._client
        inflight: dict[int, int] = {}  # packet id -> our number
        room = asyncio.Event()
        room.set()
        acked = asyncio.Event()  # set by every acknowledgement (closing waits on it)
        chained: Any = paho_client.on_publish

        def on_ack(mid: int) -> None:
            number = inflight.pop(mid, None)
            if number is not None:
                del unacked[number]
                self.published += 1
                acked.set()
                if len(inflight) < WINDOW:
                    room.set()

        def on_publish(c: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
            chained(c, userdata, mid, reason, properties)
            on_ack(mid)

        paho_client.on_publish = on_publish
        publisher = lean.Publisher(paho_client, on_ack)
        quick = publisher.lean and qos == 1

        def give_up() -> None:
            """close_timeout ran out: say offline (without waiting), then stop."""
            if time.monotonic() >= self._deadline:
                final = self._engine_status(False, "stopped")
                paho_client.publish(final.topic, final.payload, qos, True)
                client.timeout = 0.5  # nor wait long for the goodbye on the way out
                raise _Abandoned()

        async def put(number: int, msg: _Message) -> None:
            while len(inflight) >= WINDOW:
                room.clear()
                if not self._closing:
                    await room.wait()
                    continue
                give_up()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(room.wait(), 0.05)
            if quick and msg.properties is None:
                inflight[publisher.publish(msg.topic, msg.payload, msg.retain)] = number
                return
            info = paho_client.publish(msg.topic, msg.payload, qos, msg.retain, msg.properties)
            if info.rc != MQTT_ERR_SUCCESS:
                raise aiomqtt.MqttCodeError(info.rc, "could not publish")
            if info.is_published():  # QoS 0: written
                del unacked[number]
                self.published += 1
            else:
                inflight[info.mid] = number

        # A message is in ``unacked`` from the moment it is made until the broker
        # acknowledges it; ``outbox`` is what this connection has still to send:
        # first what the last one left unacknowledged, in order.
        outbox: deque[tuple[int, _Message]] = deque(unacked.items())
        self._local.appendleft(self._engine_status(True))
        wake = self._wake
        assert wake is not None

        async def an_ack() -> None:
            """Wait for the next acknowledgement, at most 50 ms (then give_up
            looks at the deadline again)."""
            acked.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(acked.wait(), 0.05)

        def stage(messages: Any) -> None:
            for msg in messages:
                self._number += 1
                unacked[self._number] = msg
                outbox.append((self._number, msg))

        while True:
            if self._closing:
                give_up()
            stage(self._local)
            self._local.clear()
            while outbox:
                number, msg = outbox.popleft()
                if number in unacked:
                    await put(number, msg)
                if self._local:
                    stage(self._local)
                    self._local.clear()
            if self.batched and not self._closing:
                await self._linger()
            events = self._take()
            if events:
                stage(self._messages(events))
                # events coming faster than status_every never let the wait below time out
                if time.monotonic() - self._status_at >= self.cfg.status_every:
                    stage([self._engine_status(True)])
                continue
            if self._closing:
                if self._bars_only:  # the last bars' statuses go before the engine's last
                    stage(self._statuses_due(dict.fromkeys(self._bars_only, True)))
                    continue
                if not unacked and not self._local:
                    stage([self._engine_status(False, "stopped")])
                    number, final = outbox.popleft()
                    await put(number, final)
                    while unacked:
                        await an_ack()
                        give_up()
                    return
                if unacked:  # (else a command's reply came meanwhile: staged above, next round)
                    await an_ack()
                give_up()
                continue
            due, wait = self._bar_statuses_due()
            if due:
                stage(due)
                continue
            if self.mode == "live" and not self._told:
                wait = min(wait, LIVE_EVERY)  # the engine does not say when a burst is over
            try:
                await asyncio.wait_for(wake.wait(), wait)
            except asyncio.TimeoutError:
                if time.monotonic() - self._status_at < self.cfg.status_every:
                    continue  # woken for a symbol's status waiting on its bars
                if (self.received, self.dropped, self.connects) != self._status_figures:
                    self._local.append(self._engine_status(True))

    async def _linger(self) -> None:
        """Batched: let the queue fill up to a batch for each symbol (or half the
        queue, so that nothing is dropped meanwhile) for up to LINGER seconds."""
        assert self._wake is not None
        full = max(1, min(self.cfg.batch_size * max(1, len(self.symbols)), self.cfg.queue // 2))
        if not self._buf or len(self._buf) >= full:
            return
        self._wake_at = full
        self._wake.clear()  # set again by handle() at ``full``, by close(), or by a command's reply
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), LINGER)
        self._wake_at = _NEVER

    def _take(self) -> list[Event]:
        """Queued events (up to BATCH, or 10 batches a symbol when batched);
        when there are none, ask to be woken by the next (live: by the
        engine's ``idle``, or by half the queue)."""
        assert self._wake is not None
        self._wake.clear()
        limit = self.cfg.batch_size * max(1, len(self.symbols)) * 10 if self.batched else BATCH
        buf = self._buf
        if not buf:
            # live, the next events are published when the engine is idle (or
            # every LIVE_EVERY), and at once only when they fill half the queue
            self._wake_at = 1 if self.mode != "live" or self.batched else max(1, self.cfg.queue // 2)
            if not buf:  # (an event queued before the line above has not woken us)
                return []
            self._wake_at = _NEVER
        # Under the lock only against a drop (handle's full path); workers
        # append meanwhile, so the events are popped one by one, never cleared.
        with self._lock:
            popleft = buf.popleft
            events = [popleft() for _ in range(min(len(buf), limit))]
            if self.cfg.on_full == "block":
                self._cond.notify_all()
        self._taken += len(events)
        return events

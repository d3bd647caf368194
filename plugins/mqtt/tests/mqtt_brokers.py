"""Brokers and clients for the tests: Debian's mosquitto on a free local port
(amqtt in-process when mosquitto is not installed), a subscriber that records
everything, and a TCP proxy that can cut a connection and hold it cut."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from engine_core.testing import wait_until

TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Mosquitto:
    """mosquitto on 127.0.0.1:port with a temporary config; restartable on the same port."""

    kind = "mosquitto"

    def __init__(self, workdir: Path, settings: str = "allow_anonymous true\n") -> None:
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        # as root mosquitto would switch to its own user, who cannot read the test's files
        user = "user root\n" if os.geteuid() == 0 else ""
        # max_queued_messages 0: a subscriber that falls behind (the tests' own, on a busy
        # machine) gets every message instead of mosquitto dropping past 1000 queued
        self.conf.write_text(
            f"{user}persistence false\nmax_queued_messages 0\nlistener {self.port} 127.0.0.1\n{settings}"
        )
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=out, stderr=out)
        wait_until(lambda: _accepts(self.port) or self.proc.poll() is not None, "mosquitto to listen")  # type: ignore[union-attr]
        if self.proc.poll() is not None:
            raise RuntimeError(f"mosquitto did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """Kill -9: no goodbye to anyone."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


class Amqtt:
    """amqtt's broker in-process, on its own thread and loop."""

    kind = "amqtt"

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from amqtt.broker import Broker

        ready = threading.Event()
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

        failed: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                self._broker = Broker(config, loop=loop)
                loop.run_until_complete(self._broker.start())
            except BaseException as err:  # noqa: BLE001 - reported by start()
                failed.append(err)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(TIMEOUT)
        if failed:
            raise RuntimeError(f"amqtt did not start: {failed[0]!r}")
        wait_until(lambda: _accepts(self.port), "amqtt to listen")

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
        with contextlib.suppress(Exception):
            fut.result(TIMEOUT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(TIMEOUT)
        self._loop = self._thread = None

    kill = stop


def broker_kind() -> str | None:
    if shutil.which("mosquitto"):
        return "mosquitto"
    try:
        import amqtt  # noqa: F401
    except ImportError:
        return None
    return "amqtt"


class Subscriber:
    """A separate MQTT client (plain paho, on its own thread) keeping every message."""

    def __init__(self, port: int, topic: str = "#", client_id: str = "test-subscriber") -> None:
        self.messages: list[tuple[str, Any, bool]] = []  # (topic, decoded JSON, retained)
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        wait_until(self._subscribed.is_set, "the subscriber to subscribe")

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            payload = json.loads(msg.payload) if msg.payload else None
        except ValueError:
            payload = msg.payload
        with self._lock:
            self.messages.append((msg.topic, payload, bool(msg.retain)))

    def resubscribed(self) -> threading.Event:
        """An event set at the next SUBACK (after a reconnect)."""
        self._subscribed.clear()
        return self._subscribed

    def snapshot(self) -> list[tuple[str, Any, bool]]:
        with self._lock:
            return list(self.messages)

    def events(self) -> list[dict[str, Any]]:
        """Event payloads in arrival order (a batch's in its order), duplicates
        (same engine and seq) dropped."""
        seen: set[tuple[str, int]] = set()
        out = []
        for _topic, message, _retained in self.snapshot():
            for payload in message if isinstance(message, list) else [message]:
                if isinstance(payload, dict) and "event" in payload:
                    key = (payload["engine"], payload["seq"])
                    if key not in seen:
                        seen.add(key)
                        out.append(payload)
        return out

    def on(self, topic: str) -> list[Any]:
        return [p for t, p, _ in self.snapshot() if t == topic]

    def final_status(self, topic: str = "t/e1/status") -> dict[str, Any]:
        """The engine's last status once it says offline: the engine publishes
        it at close, and it reaches this subscriber a moment after the run ends."""
        wait_until(lambda: bool(self.on(topic)) and self.on(topic)[-1]["online"] is False, "the engine offline")
        return self.on(topic)[-1]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Proxy:
    """A TCP forwarder to the broker. ``cut()`` aborts every connection through
    it and refuses new ones until ``open()``."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.open()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        writer.close()

    def hold(self) -> None:
        """Keep every connection open but pass nothing on (a broker that hangs)."""
        self.loop.call_soon_threadsafe(self._flowing.clear)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._transports.update((writer.transport, up_writer.transport))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    def open(self) -> None:
        async def start() -> None:
            self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

        self._call(start())

    def cut(self) -> None:
        async def cut() -> None:
            if self._server is not None:
                self._server.close()
                self._server = None
            for transport in self._transports:
                transport.abort()
            self._transports.clear()

        self._call(cut())

    def close(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)


@contextlib.contextmanager
def stuck_subscriber(port: int, topic: str = "t/#") -> Iterator[None]:
    """A QoS 1 subscriber to ``topic`` that never reads its socket once subscribed."""
    stuck = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="stuck")
    subscribed: list[int] = []
    stuck.on_subscribe = lambda *a: subscribed.append(1)
    stuck.connect("127.0.0.1", port)
    stuck.subscribe(topic, qos=1)
    stuck.loop_start()
    wait_until(lambda: subscribed, "the stuck subscriber to subscribe")
    stuck.loop_stop()  # from here on it never reads its socket
    try:
        yield
    finally:
        sock = stuck.socket()
        if sock is not None:
            sock.close()

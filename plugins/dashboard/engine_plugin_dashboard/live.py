"""The dashboard's MQTT link: every topic under the prefix into the
:class:`~engine_plugin_dashboard.fleet.Fleet`, and control commands out on the
engines' control channel, each waiting for its reply.

The connection is the mqtt plugin's (``engine_plugin_mqtt.connection``: the
same client settings, TLS, login and reconnect delays as the engines' sink).
While the broker is away the link says ``reconnecting`` on the page and
tries again with backoff; the retained statuses bring the page back up to
date when it returns.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
from engine_plugin_mqtt import connection
from engine_plugin_mqtt.config import MqttConnection

from engine_core.control import COMMANDS
from engine_plugin_dashboard.fleet import Fleet

log = logging.getLogger("engine_plugin_dashboard")

GATHER = 0.04  # seconds messages gather between two reads (rows still change within 0.2 s)
REPLY_TIMEOUT = 15.0  # seconds an engine has to answer a command (it acts between two bars)


class ControlRefused(Exception):
    """A command the dashboard did not send; the text says why (shown on the page)."""


class MqttLink:
    def __init__(self, cfg: MqttConnection, prefix: str, fleet: Fleet, base_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.base_dir = base_dir  # where a relative ca_file is (the engine's config folder)
        self.prefix = prefix
        self.fleet = fleet
        self._client: aiomqtt.Client | None = None
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def run(self) -> None:
        """Subscribe and keep the fleet up to date, reconnecting until cancelled."""
        tls = connection.tls_context(self.cfg, self.base_dir, "--mqtt")
        delays = connection.backoff()
        where = connection.describe(self.cfg)
        while True:
            try:
                inbox: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
                async with connection.client(self.cfg, identifier=None, tls=tls, inbox=inbox) as client:
                    self._client = client
                    delays = connection.backoff()
                    # QoS 0: a viewer; the retained statuses bring it up to date after a reconnect,
                    # and each message costs the broker and this process no acknowledgement
                    await client.subscribe(f"{self.prefix}/#", qos=0)
                    self.fleet.set_link("connected", where)
                    log.warning("dashboard: connected to %s (prefix %s)", where, self.prefix)
                    await self._read(client, inbox)
            except aiomqtt.MqttError as err:
                self._client = None
                if connection.refused(err):
                    self.fleet.set_link("refused", f"{where}: {err}")
                    log.warning("dashboard: %s refused the login: %s (not retrying)", where, err)
                    return
                if self.fleet.link["state"] != "reconnecting":
                    log.warning("dashboard: %s: %s; reconnecting", where, err)
                self.fleet.set_link("reconnecting", f"{where}: {err}")
            await asyncio.sleep(next(delays))

    async def _read(self, client: aiomqtt.Client, inbox: asyncio.Queue[aiomqtt.Message]) -> None:
        """Take the messages in gulps: wait for one (or the disconnect), take
        every other one that has arrived, then let the next ones gather for
        ``GATHER`` seconds. A fleet's messages come spread over the second, so
        waking for each would cost more than handling it."""
        messages = client.messages
        prefix, fleet = self.prefix, self.fleet
        while True:
            message: aiomqtt.Message | None = await anext(messages)  # raises MqttError on a disconnect
            while message is not None:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                fleet.message(prefix, message.topic.value, payload)
                message = inbox.get_nowait() if inbox.qsize() else None
            self._answer_waiters()
            await asyncio.sleep(GATHER)

    def _answer_waiters(self) -> None:
        if not self._waiters or not self.fleet.replies:
            return
        for rid in list(self._waiters):
            reply = self.fleet.replies.pop(rid, None)
            if reply is not None:
                future = self._waiters.pop(rid)
                if not future.done():
                    future.set_result(reply)

    def refusal(self, engine: str) -> str | None:
        """Why ``engine`` cannot be sent a command now (None: it can)."""
        if self._client is None:
            return "the MQTT broker is not reachable"
        view = self.fleet.engines.get(engine)
        if view is None or not view.status:
            return f"no engine {engine!r} under prefix {self.prefix!r}"
        if not view.status.get("online"):
            return f"engine {engine} is offline ({view.status.get('reason') or 'no status'})"
        if not view.status.get("control"):
            return f"engine {engine} does not accept control (its mqtt sink has control = false)"
        return None

    async def command(self, engine: str, name: str, symbol: str | None) -> dict[str, Any]:
        """Send one command and wait for the engine's reply."""
        if name not in COMMANDS or name == "stop":
            raise ControlRefused(f"unknown command {name!r}; the dashboard sends pause, resume, flatten, reload")
        why = self.refusal(engine)
        if why is not None:
            raise ControlRefused(why)
        view = self.fleet.engines[engine]
        if symbol is not None and symbol not in view.symbols:
            raise ControlRefused(f"engine {engine} does not run {symbol!r}")
        assert self._client is not None
        rid = f"dashboard-{uuid.uuid4().hex[:12]}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[rid] = future
        body: dict[str, Any] = {"schema": 1, "request_id": rid}
        if symbol is not None:
            body["symbol"] = symbol
        try:
            await self._client.publish(f"{self.prefix}/{engine}/control/{name}", json.dumps(body), qos=1)
            return await asyncio.wait_for(future, REPLY_TIMEOUT)
        except asyncio.TimeoutError:
            raise ControlRefused(f"engine {engine} did not answer {name} within {REPLY_TIMEOUT:g} s") from None
        except aiomqtt.MqttError as err:
            raise ControlRefused(f"could not send {name}: {err}") from None
        finally:
            self._waiters.pop(rid, None)

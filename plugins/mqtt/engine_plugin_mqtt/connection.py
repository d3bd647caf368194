"""One way to open a broker connection (sink and source alike): TLS, login,
TCP_NODELAY, and the reconnect delays."""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from engine_core import ConfigError
from engine_plugin_mqtt.config import MqttConnection

BACKOFF_FIRST = 0.2  # seconds before the first retry
BACKOFF_MAX = 10.0


def tls_context(cfg: MqttConnection, base_dir: Path | None, where: str) -> ssl.SSLContext | None:
    """The TLS context ``cfg`` asks for (None without tls); ConfigError naming
    ``where`` (file and key path) for a CA file that is missing or not one."""
    if not cfg.tls:
        return None
    ca = None
    if cfg.ca_file is not None:
        path = Path(cfg.ca_file)
        ca = path if path.is_absolute() or base_dir is None else base_dir / path
        if not ca.is_file():
            raise ConfigError(f"{where}.ca_file: no such file: {ca}")
    try:
        return ssl.create_default_context(cafile=str(ca) if ca else None)
    except ssl.SSLError as err:
        raise ConfigError(f"{where}.ca_file: not a CA bundle: {ca}: {err}") from err


def client(
    cfg: MqttConnection,
    *,
    identifier: str | None,
    tls: ssl.SSLContext | None,
    will: aiomqtt.Will | None = None,
    inflight: int | None = None,
    inbox: asyncio.Queue[aiomqtt.Message] | None = None,
) -> aiomqtt.Client:
    """An aiomqtt client for ``cfg`` (not yet connected; use ``async with``).
    ``inbox``: the queue incoming messages go to, for a reader that takes
    what has arrived at once (``get_nowait``) instead of one ``client.messages``
    step (a task and a wait) per message."""
    kwargs: dict[str, Any] = {}
    if inflight is not None:
        kwargs["max_inflight_messages"] = inflight
    if inbox is not None:
        kwargs["queue_type"] = lambda maxsize: inbox
    return aiomqtt.Client(
        cfg.host,
        cfg.port,
        username=cfg.username,
        password=cfg.password,
        identifier=cfg.client_id or identifier,
        protocol=aiomqtt.ProtocolVersion.V5 if cfg.mqtt_version == "5" else aiomqtt.ProtocolVersion.V311,
        will=will,
        keepalive=cfg.keepalive,
        tls_context=tls,
        timeout=10,
        # Without it a QoS 1 round trip can wait for delayed ACKs (~40 ms).
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        **kwargs,
    )


def backoff() -> Iterator[float]:
    """Delays between reconnect attempts: doubling up to BACKOFF_MAX, with jitter
    so that a fleet of engines does not reconnect in lockstep."""
    delay = BACKOFF_FIRST
    while True:
        yield delay * random.uniform(0.8, 1.2)
        delay = min(delay * 2, BACKOFF_MAX)


def refused(err: BaseException) -> bool:
    """True when the broker answered and said no (bad login, not authorised):
    retrying will not help."""
    return isinstance(err, MqttConnectError)


def describe(cfg: MqttConnection) -> str:
    return f"{'mqtts' if cfg.tls else 'mqtt'}://{cfg.host}:{cfg.port}"

"""The sink's QoS 1 messages on paho's connection, at a fraction of paho's
CPU per message.

Live, the sink publishes a message per event from a thread that competes
with the workers for the interpreter, and paho's own path cost most of it:
``publish`` makes a message object with its own lock and condition, logs,
and builds the packet a field at a time; each PUBACK is read with three
``recv`` calls and decoded into a new ``ReasonCode`` and ``Properties``
(each copies paho's tables of names) before the callbacks; each packet is
written with a ``send`` of its own, one TCP segment the broker wakes for.

:class:`Publisher` keeps paho for everything else (connecting, TLS, login,
the will, keepalive pings, subscribing, the control messages in, and any
message that is not QoS 1 or has MQTT 5 properties) and, on that one paho
client (its instance, never the class):

- builds a QoS 1 PUBLISH packet itself (the topic's bytes made once) with a
  packet id from paho's own counter, and queues it where paho queues its
  packets, so that the connection's order is one;
- takes the PUBACK of each of its packets (its id, two bytes, then the
  reason code and properties of MQTT 5, which the sink does not use, as
  paho's callbacks did not) and tells ``on_ack``; any other goes to paho;
- reads the socket in large pieces and serves paho's reads from them;
- writes the packets waiting in one ``send`` (up to ``JOIN`` bytes; a larger
  one alone, never copied) when every one of them is of a kind paho only
  sends (not a QoS 0 PUBLISH, whose publish callback paho calls once
  written, nor a DISCONNECT).

The replaced methods and the fields used are paho-mqtt 2's (aiomqtt 2.5
requires it); a paho without them is left as it is and the sink publishes
through ``publish`` (:attr:`Publisher.lean` is False), only slower.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from paho.mqtt.client import DISCONNECT, MQTT_LOG_ERR, PUBLISH, MQTTErrorCode, MQTTv5, time_func

log = logging.getLogger(__name__)

READ = 65536  # bytes asked of the socket at a time
JOIN = 65536  # bytes of packets joined into one write, at most
_TOPICS = 10_000  # topics whose bytes are kept, at most
# what of paho's client the publisher replaces or uses
_USED = (
    "_sock_recv",
    "loop_read",
    "_handle_pubackcomp",
    "_packet_write",
    "_packet_queue",
    "_mid_generate",
    "_sock_send",
    "_easy_log",
    "_sock",
    "_in_packet",
    "_out_packet",
    "_msgtime_mutex",
    "_protocol",
    "_packet_read",
    "_loop_rc_handle",
    "_last_bytes_received",
)
_PUBACK = 0x40  # a PUBACK's first byte


class Publisher:
    def __init__(self, client: Any, on_ack: Callable[[int], None]) -> None:
        """``client``: a paho ``Client``; ``on_ack(mid)``: called on paho's
        loop thread when the broker acknowledges a message :meth:`publish` sent."""
        self.client = client
        self.on_ack = on_ack
        self.lean = all(hasattr(client, name) for name in _USED)
        if not self.lean:
            log.warning("mqtt sink: this paho-mqtt differs from the one the sink was tuned on; it costs more CPU")
            return
        self._mids: set[int] = set()  # sent by publish(), not yet acknowledged
        self._topics: dict[tuple[str, bool], bytes] = {}  # (topic, retain) -> fixed header byte, topic as str16
        self._properties = b"\x00" if client._protocol == MQTTv5 else b""  # MQTT 5: no properties
        self._sock: Any = None  # the socket self._data came from (a new connection drops what an old one left)
        self._data = bytearray()  # read from the socket, not yet taken by paho
        self._recv = client._sock_recv
        self._handle = client._handle_pubackcomp
        self._write = client._packet_write
        client._sock_recv = self._sock_recv
        client.loop_read = self._read
        client._handle_pubackcomp = self._handle_pubackcomp
        client._packet_write = self._packet_write

    def publish(self, topic: str, payload: bytes, retain: bool) -> int:
        """Queue ``payload`` on ``topic`` at QoS 1; its packet id. Raises
        ConnectionError when paho has no connection."""
        client = self.client
        head = self._topics.get((topic, retain))
        if head is None:
            if len(self._topics) >= _TOPICS:
                self._topics.clear()
            encoded = topic.encode()
            if not encoded or b"+" in encoded or b"#" in encoded or len(encoded) > 65535:
                raise ValueError(f"not a topic to publish to: {topic!r}")
            head = self._topics[topic, retain] = bytes((0x32 | retain,)) + len(encoded).to_bytes(2, "big") + encoded
        mid = client._mid_generate()
        size = len(head) - 1 + 2 + len(self._properties) + len(payload)
        if size > 268_435_455:
            raise ValueError("payload too large")  # (as paho says it)
        length = bytearray()
        while True:  # the remaining length, 7 bits a byte
            size, byte = size >> 7, size & 0x7F
            length.append(byte | 0x80 if size else byte)
            if not size:
                break
        packet = b"".join((head[:1], length, head[1:], mid.to_bytes(2, "big"), self._properties, payload))
        if client._sock is None:
            raise ConnectionError("not connected")
        self._mids.add(mid)
        client._packet_queue(PUBLISH, packet, mid, 1)
        return mid  # type: ignore[no-any-return]

    # ------------------------------------------------------------ paho's methods, replaced

    def _handle_pubackcomp(self, cmd: str) -> MQTTErrorCode:
        packet = self.client._in_packet["packet"]
        if cmd == "PUBACK" and len(packet) >= 2:
            mid = (packet[0] << 8) | packet[1]
            if mid in self._mids:
                self._mids.discard(mid)
                self.on_ack(mid)
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        return self._handle(cmd)

    def _sock_recv(self, size: int) -> bytes:
        data = self._piece()
        if not data:
            got = self._recv(READ)  # raises BlockingIOError when nothing came, as paho's
            if len(got) <= size:
                return got  # (b"": the connection closed)
            data += got
        out = bytes(data[:size])
        del data[:size]
        return out

    def _piece(self) -> bytearray:
        """What is left of the last piece read from this connection's socket."""
        if self._sock is not self.client._sock:
            self._sock = self.client._sock
            self._data.clear()
        return self._data

    def _read(self, max_packets: int = 1) -> MQTTErrorCode:
        """paho's loop_read, on until the socket has nothing more (paho reads
        as many packets as it has messages in flight, and this publisher's are
        not among them: what is left of a piece would wait for the socket's
        next data)."""
        client = self.client
        while True:
            if client._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            if client._in_packet["command"] == 0:  # (paho is not in the middle of a packet)
                self._acks()
            rc = client._packet_read()
            if rc > 0:
                return client._loop_rc_handle(rc)  # type: ignore[no-any-return]
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _acks(self) -> None:
        """Take the PUBACKs of this publisher's messages (4 bytes each: MQTT
        3.1.1's, and MQTT 5's that succeeded) at the head of what was read;
        anything else is left to paho's reading."""
        data = self._piece()
        if not data:
            try:
                data += self._recv(READ)
            except OSError:  # (BlockingIOError: nothing came) paho's own read says what it is
                return
        mids, taken = self._mids, 0
        while len(data) - taken >= 4 and data[taken] == _PUBACK and data[taken + 1] == 2:
            mid = (data[taken + 2] << 8) | data[taken + 3]
            if mid not in mids:
                break
            mids.discard(mid)
            taken += 4
            self.on_ack(mid)
        if taken:
            del data[:taken]
            with self.client._msgtime_mutex:
                self.client._last_bytes_received = time_func()

    def _packet_write(self) -> MQTTErrorCode:
        client = self.client
        out = client._out_packet
        if len(out) < 2 or not all(_plain(p) for p in out):
            return self._write()  # type: ignore[no-any-return]
        while out:
            data = _head(out)
            try:
                sent = client._sock_send(data)
            except (AttributeError, ValueError):
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            except BlockingIOError:
                return MQTTErrorCode.MQTT_ERR_AGAIN
            except OSError as err:
                client._easy_log(MQTT_LOG_ERR, "failed to send on socket: %s", err)
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
            if sent <= 0:
                break
            while sent and out:  # the packets written whole leave; one written in part keeps its place
                p = out[0]
                step = min(sent, p["to_process"])
                p["pos"] += step
                p["to_process"] -= step
                sent -= step
                if p["to_process"] == 0:
                    out.popleft()
        with client._msgtime_mutex:
            client._last_msg_out = time_func()
        return MQTTErrorCode.MQTT_ERR_SUCCESS


def _head(out: Any) -> Any:
    """The next bytes to write: the packets at the head of ``out`` joined, up
    to JOIN bytes (a larger packet alone, as paho writes it, never copied)."""
    parts: list[memoryview] = []
    size = 0
    for p in out:
        if parts and size + p["to_process"] > JOIN:
            break
        parts.append(memoryview(p["packet"])[p["pos"] :])
        size += p["to_process"]
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _plain(packet: dict[str, Any]) -> bool:
    """A packet paho only sends (no callback, no socket closed once written)."""
    command = packet["command"] & 0xF0
    return command != DISCONNECT and not (command == PUBLISH and packet["qos"] == 0)

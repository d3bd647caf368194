"""What paho spends per QoS 1 message on the sink's connection, cut.

Live, the sink publishes a message per event from a thread that competes
with the workers for the interpreter. paho's own path costs most of it:
each PUBACK is read with three ``recv`` calls and decoded into a new
``ReasonCode`` and ``Properties`` (each copies paho's tables of names), and
each PUBLISH is written with a ``send`` of its own, one TCP segment that the
broker wakes for. :func:`trim` replaces three methods of one paho client
(its instance, never the class) so that:

- the socket is read in large pieces and the packets served from them
  (``_sock_recv``; ``loop_read`` goes on while a served piece holds more);
- a PUBACK of two bytes (or three: MQTT 5 with a reason code, no
  properties) is decoded into its message id, with the reason as paho
  decodes it once per code, and handed to paho's own ``_do_on_publish``:
  the callbacks, the message's release and paho's in-flight count are
  paho's;
- the packets waiting to be written go in one ``send`` when all of them
  are of kinds whose writing paho only sends (not a QoS 0 PUBLISH, whose
  publish callback paho calls once written, nor a DISCONNECT).

Anything else goes through paho's methods as before. The replaced methods
are paho-mqtt 2's (aiomqtt 2.5 requires it); a paho without them is left
as it is (:func:`trim` returns False), only slower.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from paho.mqtt import _packet
from paho.mqtt.client import DISCONNECT, MQTT_LOG_ERR, PUBLISH, MQTTErrorCode, MQTTv5, time_func
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)

READ = 65536  # bytes asked of the socket at a time
# what of paho's client the replacements use
_USED = (
    "_sock_recv",
    "loop_read",
    "_handle_pubackcomp",
    "_packet_write",
    "_do_on_publish",
    "_sock_send",
    "_easy_log",
    "_sock",
    "_in_packet",
    "_out_packet",
    "_out_messages",
    "_out_message_mutex",
    "_msgtime_mutex",
    "_protocol",
)
_NO_PROPERTIES = Properties(PacketTypes.PUBACK)  # shared by every PUBACK without properties: no callback here keeps it


def trim(client: Any) -> bool:
    """Make ``client`` (a paho ``Client`` not yet connected) read, decode
    acknowledgements and write as above. False when this paho does not have
    the methods replaced (nothing is changed then)."""
    if not all(hasattr(client, name) for name in _USED):
        log.warning("mqtt sink: this paho-mqtt differs from the one the sink was tuned on; publishing costs more CPU")
        return False
    client._sock_recv = _buffered_recv(client, client._sock_recv)
    client.loop_read = _draining_read(client, client.loop_read)
    client._handle_pubackcomp = _quick_puback(client, client._handle_pubackcomp)
    client._packet_write = _joined_write(client, client._packet_write)
    return True


class _Pieces:
    """What was read from the socket and not yet taken by paho."""

    def __init__(self) -> None:
        self.sock: Any = None  # the socket it came from (a new connection drops what an old one left)
        self.data = bytearray()


def _buffered_recv(client: Any, recv: Callable[[int], bytes]) -> Callable[[int], bytes]:
    pieces = _Pieces()
    client._lean_pieces = pieces

    def sock_recv(size: int) -> bytes:
        data = pieces.data
        if pieces.sock is not client._sock:
            pieces.sock = client._sock
            data.clear()
        if not data:
            got = recv(READ)  # raises BlockingIOError when nothing came, as paho's
            if len(got) <= size:
                return got  # (b"": the connection closed)
            data += got
        out = bytes(data[:size])
        del data[:size]
        return out

    return sock_recv


def _draining_read(client: Any, loop_read: Callable[..., MQTTErrorCode]) -> Callable[..., MQTTErrorCode]:
    pieces: _Pieces = client._lean_pieces

    def read(max_packets: int = 1) -> MQTTErrorCode:
        rc = loop_read(max_packets)
        # paho reads as many packets as it has messages in flight: what is left
        # of the piece read would wait for the socket's next data
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and pieces.data and client._sock is pieces.sock:
            rc = loop_read(max_packets)
        return rc

    return read


def _quick_puback(client: Any, handle: Callable[[str], MQTTErrorCode]) -> Callable[[str], MQTTErrorCode]:
    reasons: dict[bytes, ReasonCode] = {}  # a reason code's byte (b"" for none) -> paho's decoding of it
    success = ReasonCode(PacketTypes.PUBACK)

    def handle_pubackcomp(cmd: str) -> MQTTErrorCode:
        packet = client._in_packet["packet"]
        size = len(packet)
        if cmd != "PUBACK" or not (size == 2 or (size == 3 and client._protocol == MQTTv5)):
            return handle(cmd)
        tail = bytes(packet[2:])
        reason = reasons.get(tail) if tail else success
        if reason is None:  # decoded by paho once per code (it raises on a malformed one)
            reason = reasons[tail] = _packet.decode_puback(
                client._in_packet["command"], packet, client._protocol
            ).reason
        mid = (packet[0] << 8) | packet[1]
        with client._out_message_mutex:
            if mid in client._out_messages:
                return client._do_on_publish(mid, reason, _NO_PROPERTIES)  # type: ignore[no-any-return]
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    return handle_pubackcomp


def _plain(packet: dict[str, Any]) -> bool:
    """A packet paho only sends (no callback, no socket closed once written)."""
    command = packet["command"] & 0xF0
    return command != DISCONNECT and not (command == PUBLISH and packet["qos"] == 0)


def _joined_write(client: Any, write: Callable[[], MQTTErrorCode]) -> Callable[[], MQTTErrorCode]:
    def packet_write() -> MQTTErrorCode:
        out = client._out_packet
        if len(out) < 2 or not all(_plain(p) for p in out):
            return write()
        while out:
            data = b"".join(memoryview(p["packet"])[p["pos"] :] for p in out)
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
            while sent and out:  # the packets written whole leave; a part written is remembered
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

    return packet_write

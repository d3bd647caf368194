"""The sink's QoS 1 publisher on paho's connection: the bytes paho would
write, written together and in order; acknowledgements taken whole from what
was read, the rest left to paho. (On a real broker: test_sink, test_delivery,
test_control's MQTT 5 and test_config's TLS run through it.)"""

from __future__ import annotations

import types
from collections import deque
from typing import Any

import paho.mqtt.client as paho
import pytest
from engine_plugin_mqtt.lean import Publisher

MESSAGES = [
    ("t/e1/AAA/fill", b'{"schema":1,"seq":1}', False),
    ("t/e1/EUR%2FUSD/status", b'{"schema":1,"state":"watch"}', True),
    ("t/e1/status", b"", True),
    ("t/e1/AAA/events", b"x" * 200_000, False),  # a remaining length of three bytes
    ("t/e1/AAA/fill", b"y" * 127, False),
]


class FakeSocket:
    """Records what is sent (at most ``limit`` bytes a call, and every other
    call would block when ``stutter``); hands out ``incoming`` pieces, then
    would block."""

    def __init__(self, limit: int | None = None, stutter: bool = False) -> None:
        self.sent = bytearray()
        self.sends = 0
        self.limit, self.stutter = limit, stutter
        self.incoming: deque[bytes] = deque()
        self.closed = False  # by the other side: recv gives b"" once incoming is read

    def send(self, data: Any) -> int:
        self.sends += 1
        if self.stutter and self.sends % 2 == 0:
            raise BlockingIOError()
        n = len(data) if self.limit is None else min(self.limit, len(data))
        self.sent += bytes(data[:n])
        return n

    def recv(self, size: int) -> bytes:
        if not self.incoming:
            if self.closed:
                return b""
            raise BlockingIOError()
        piece = self.incoming.popleft()
        if len(piece) > size:
            self.incoming.appendleft(piece[size:])
        return piece[:size]

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        pass


def connected(protocol: int, sock: FakeSocket, queued: bool = False) -> paho.Client:
    """A paho client on ``sock``; ``queued``: its packets wait for loop_write
    (as on aiomqtt's loop) instead of being written at once."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=protocol)
    client._sock = sock  # type: ignore[assignment]
    if queued:
        client.on_socket_register_write = lambda *args: None
    return client


def puback(mid: int) -> bytes:
    return bytes((0x40, 2)) + mid.to_bytes(2, "big")


@pytest.mark.parametrize("protocol", [paho.MQTTv311, paho.MQTTv5])
def test_its_packets_are_the_bytes_paho_writes(protocol):
    theirs, ours = FakeSocket(), FakeSocket()
    client, lean = connected(protocol, theirs), connected(protocol, ours)
    publisher = Publisher(lean, lambda mid: None)
    assert publisher.lean
    for topic, payload, retain in MESSAGES:
        info = client.publish(topic, payload, 1, retain)
        assert publisher.publish(topic, payload, retain) == info.mid
    assert ours.sent == theirs.sent


def test_the_waiting_packets_go_in_one_send_a_large_one_alone():
    sock = FakeSocket()
    client = connected(paho.MQTTv311, sock, queued=True)
    publisher = Publisher(client, lambda mid: None)
    for topic, payload, retain in MESSAGES:
        publisher.publish(topic, payload, retain)
    client.loop_write()
    assert sock.sends == 3 and not client.want_write()  # the first three; the one of 200 KB; the last
    assert sock.sent == expected(paho.MQTTv311)


def test_a_send_that_takes_part_or_would_block_keeps_the_packets_whole_and_in_order():
    sock = FakeSocket(limit=1000, stutter=True)
    client = connected(paho.MQTTv311, sock, queued=True)
    publisher = Publisher(client, lambda mid: None)
    for topic, payload, retain in MESSAGES:
        publisher.publish(topic, payload, retain)
    rounds = 0
    while client.want_write():
        client.loop_write()
        rounds += 1
    assert rounds > 1 and sock.sent == expected(paho.MQTTv311)


def expected(protocol: int) -> bytes:
    """What paho writes for MESSAGES, at QoS 1."""
    sock = FakeSocket()
    client = connected(protocol, sock)
    for topic, payload, retain in MESSAGES:
        client.publish(topic, payload, 1, retain)
    return bytes(sock.sent)


def publishing(protocol: int) -> tuple[FakeSocket, paho.Client, Publisher, list[int]]:
    """A connected client with a publisher, and the message ids it is told were acknowledged."""
    sock = FakeSocket()
    client = connected(protocol, sock)
    acks: list[int] = []
    return sock, client, Publisher(client, acks.append), acks


def test_acknowledgements_are_taken_whole_and_the_rest_left_to_paho():
    sock, client, publisher, acks = publishing(paho.MQTTv311)
    mids = [publisher.publish("t/e1/AAA/fill", b"{}", False) for _ in range(5)]
    paho_acks: list[int] = []
    client.on_publish = lambda c, u, mid, reason, props: paho_acks.append(mid)
    theirs = client.publish("t/e1/reply", b"{}", 1).mid  # paho's own message, acknowledged through paho
    client._ping_t = 123.0  # a ping waiting for its answer
    pingresp = bytes((0xD0, 0))
    # one piece: three acks, a ping's answer, paho's ack, an ack nobody waits for, the last acks
    # split across the next two pieces (a packet cut in the middle)
    first = puback(mids[0]) + puback(mids[1]) + puback(mids[2]) + pingresp + puback(theirs) + puback(999)
    sock.incoming.extend([first + puback(mids[3])[:3], puback(mids[3])[3:] + puback(mids[4])])
    read_by_paho = counted(client, "_packet_read")
    assert client.loop_read() == paho.MQTT_ERR_SUCCESS
    assert acks == mids and paho_acks == [theirs] and client._ping_t == 0
    # paho read the ping's answer, its own ack, the stray one, the cut one, and found nothing more
    assert read_by_paho == [5]
    assert not sock.incoming and not publisher._data and client._in_packet["command"] == 0


def counted(client: paho.Client, name: str) -> list[int]:
    """Count the calls of one of ``client``'s methods."""
    calls = [0]
    method = getattr(client, name)

    def count(*args: Any) -> Any:
        calls[0] += 1
        return method(*args)

    setattr(client, name, count)
    return calls


def test_a_second_acknowledgement_of_a_message_is_left_to_paho_which_ignores_it():
    sock, client, publisher, acks = publishing(paho.MQTTv311)
    mid = publisher.publish("t/e1/AAA/fill", b"{}", False)
    sock.incoming.append(puback(mid) + puback(mid))
    assert client.loop_read() == paho.MQTT_ERR_SUCCESS
    assert acks == [mid]


def test_mqtt5_acknowledgements_with_a_reason_code_are_taken_too():
    sock, client, publisher, acks = publishing(paho.MQTTv5)
    mids = [publisher.publish("t/e1/AAA/fill", b"{}", False) for _ in range(2)]
    no_subscribers = bytes((0x40, 3)) + mids[0].to_bytes(2, "big") + b"\x10"
    sock.incoming.append(no_subscribers + puback(mids[1]))
    assert client.loop_read() == paho.MQTT_ERR_SUCCESS
    assert acks == mids


def test_a_closed_connection_is_paho_s_to_report():
    sock = FakeSocket()
    client = connected(paho.MQTTv311, sock)
    Publisher(client, lambda mid: None)
    sock.closed = True
    assert client.loop_read() == paho.MQTT_ERR_CONN_LOST


def test_a_paho_without_what_it_replaces_is_left_as_it_is():
    client = types.SimpleNamespace(publish=lambda *args: None)
    assert not Publisher(client, lambda mid: None).lean
    assert vars(client).keys() == {"publish"}

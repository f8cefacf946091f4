"""tidemq's limits (shared CONFIG.md "tidemq's own limits", DESIGN.md "Limits everywhere") and the
Mosquitto limits it implements: each is enforced on the offending client only, everyone else
keeps working, and each has a counter published as $SYS/broker/limits/<name>.

Normative ids: "3.1.1 [MQTT-x]" for MQTT 3.1.1, "v5 [MQTT-x]" for MQTT 5.0.
"""
import socket
import time

import pytest

from conftest import _report
from helpers import (
    CONNACK, DISCONNECT, PUBACK, PUBCOMP, PUBREC, PUBREL, SUBACK, MQTTv311, MQTTv5,
    P_MAXIMUM_QOS, P_SERVER_KEEP_ALIVE, P_USER_PROPERTY, Client, ConnectRefused, RawClient,
    connect_packet, props, subscribe_packet, unique_id, unique_topic, varint,
)
from helpers_limits import ConfigFirstBroker, SysWatcher, Witness, wait_closed
from paho.mqtt.packettypes import PacketTypes


@pytest.fixture
def config_first(request):
    """config_first(text) starts a broker whose config text precedes the fixture's listener."""
    started = []

    def make(text):
        b = ConfigFirstBroker(text, name=request.node.name[:40])
        started.append(b)
        b.start()
        return b

    yield make
    problems = _report(started)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def closing():
    """A list of things with close() closed after the test."""
    things = []
    yield things
    for t in reversed(things):
        try:
            t.close()
        except Exception:  # noqa: BLE001
            pass


def refused_at_accept(broker_like, port=None, timeout=5.0):
    """Opens a TCP connection, sends a valid CONNECT and asserts the broker closes it without any
    CONNACK (a connection-limit refusal happens at accept)."""
    s = socket.create_connection((broker_like.host, port or broker_like.port), timeout=timeout)
    try:
        try:
            s.sendall(connect_packet(4, unique_id("over")))
        except OSError:
            pass
        s.settimeout(timeout)
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
        assert data == b"", f"expected the connection to be closed without a CONNACK, got {data!r}"
    finally:
        s.close()


class _At:
    """host/port pair for RawClient/Client on another listener."""

    def __init__(self, host, port):
        self.host, self.port = host, port


# --------------------------------------------------------------------------------------------
# before CONNECT: max_connect_packet_size, connect_timeout
# --------------------------------------------------------------------------------------------

def test_connect_bigger_than_max_connect_packet_size_is_refused(broker_factory, closing):
    """CONFIG.md max_connect_packet_size: everything before CONNECT completes is bounded (an
    unauthenticated socket cannot make the broker buffer 256 MB). A 2 KB CONNECT against a 1K cap
    is closed without CONNACK; a fixed header announcing 100000 bytes is closed at once, before any
    body; a CONNECT under the cap is accepted and may then send packets far over it (the cap is for
    the CONNECT phase only). refused_connect_too_big counts the refusals."""
    b = broker_factory("max_connect_packet_size 1K")
    sysw = SysWatcher(b)
    closing.append(sysw)
    w = Witness(b)
    closing.append(w)
    before = sysw.counter("refused_connect_too_big")

    with RawClient(b, 4) as raw:
        raw.send(connect_packet(4, unique_id("big"), username="u", password=b"p" * 2000))
        assert raw.expect_closed() == [], "a CONNECT over max_connect_packet_size got an answer"
    with RawClient(b, 5) as raw:
        raw.send(b"\x10" + varint(100_000) + b"\x00\x04MQTT\x05")  # no body follows
        assert raw.expect_closed(3) == []
    with RawClient(b, 4) as raw:
        raw.send(b"\x30" + varint(50_000) + b"\x00\x03a/b")  # not even a CONNECT
        assert raw.expect_closed(3) == []

    with RawClient(b, 4) as ok:
        ok.connect(username="u", password=b"p" * 800)  # ~850 bytes: under 1K
        ok.publish(w.topic, b"z" * 10_000, qos=1, packet_id=1)
        assert ok.expect(PUBACK).packet_id == 1
    assert w.client.expect_one().payload == b"z" * 10_000
    w.check()
    sysw.wait_counter("refused_connect_too_big", before + 3)


def test_connect_timeout_closes_silent_and_half_connect_sockets(broker_factory, closing):
    """CONFIG.md connect_timeout (1s here): a socket that sends nothing, and one that sent half a
    CONNECT, are closed after about a second; a client that completed CONNECT is not affected.
    closed_connect_timeout counts both."""
    b = broker_factory("connect_timeout 1s")
    sysw = SysWatcher(b)
    closing.append(sysw)
    w = Witness(b)
    closing.append(w)
    before = sysw.counter("closed_connect_timeout")

    silent = socket.create_connection((b.host, b.port), timeout=5)
    half = socket.create_connection((b.host, b.port), timeout=5)
    closing += [silent, half]
    t0 = time.monotonic()
    full = connect_packet(4, unique_id("half"))
    half.sendall(full[: len(full) // 2])
    waited_silent = wait_closed(silent, 5)
    wait_closed(half, 5)
    total = time.monotonic() - t0
    assert 0.7 <= waited_silent <= 3.0, f"silent socket closed after {waited_silent:.2f}s, want ~1s"
    assert total <= 3.5, f"half-CONNECT socket closed after {total:.2f}s, want ~1s"
    time.sleep(0.5)
    w.check()  # connected well over 1 s ago and still served
    sysw.wait_counter("closed_connect_timeout", before + 2)


def test_connect_timeout_does_not_close_a_slow_but_complete_connect(broker_factory):
    """A CONNECT delivered in pieces, complete within connect_timeout, is accepted."""
    b = broker_factory("connect_timeout 2s")
    full = connect_packet(4, unique_id("slow"))
    with RawClient(b, 4) as raw:
        for i in range(0, len(full), 4):
            raw.send(full[i:i + 4])
            time.sleep(0.05)
        p = raw.expect(CONNACK)
        assert p.reason == 0
        time.sleep(2.5)
        assert raw.is_open(), "a client that completed CONNECT was closed by connect_timeout"


# --------------------------------------------------------------------------------------------
# max_connections
# --------------------------------------------------------------------------------------------

def test_max_connections_per_listener_refuses_the_third(broker_factory, closing):
    """Mosquitto's listener-scoped max_connections (2, after the listener line): the third
    connection on that listener is closed at once without CONNACK while the two connected clients
    keep working; another listener without a limit still accepts; once a client leaves, a new one
    gets in. refused_connections counts the refusal."""
    b = broker_factory("max_connections 2\nlistener 0 127.0.0.1")
    assert len(b.ports) == 2, b.ports
    other = _At("127.0.0.1", b.ports[1][1])
    limited = _At("127.0.0.1", b.ports[0][1])
    assert limited.port == b.port
    sysw = SysWatcher(b)  # connection 1 on the limited listener
    closing.append(sysw)
    w = Witness(limited)  # connection 2
    closing.append(w)
    before = sysw.counter("refused_connections")

    refused_at_accept(limited)
    refused_at_accept(limited)
    w.check()
    # the other listener has no limit
    extra = [Client(other) for _ in range(3)]
    closing.extend(extra)
    sysw.wait_counter("refused_connections", before + 2)
    # a slot frees when a client leaves
    w.close()
    deadline = time.monotonic() + 5
    while True:
        try:
            c = Client(limited, timeout=2)
            closing.append(c)
            break
        except AssertionError:
            assert time.monotonic() < deadline, "no slot freed after a client disconnected"
            time.sleep(0.2)
    assert c.connected.is_set()


def test_max_connections_global_counts_every_listener(config_first, closing):
    """max_connections before any listener is tidemq's global limit (CONFIG.md): 2 connections
    across two listeners fill it; a third on either listener is refused; the two keep working."""
    b = config_first("max_connections 2\nlistener 0 127.0.0.1")
    assert len(b.ports) == 2, b.ports
    first = _At("127.0.0.1", b.ports[0][1])
    second = _At("127.0.0.1", b.ports[1][1])
    sysw = SysWatcher(first)
    closing.append(sysw)
    w = Witness(second)
    closing.append(w)
    before = sysw.counter("refused_connections")
    refused_at_accept(first)
    refused_at_accept(second)
    w.check()
    sysw.wait_counter("refused_connections", before + 2)


# --------------------------------------------------------------------------------------------
# per-client limits
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("proto", [MQTTv311, MQTTv5], ids=["v311", "v5"])
def test_max_subscriptions_per_client(broker_factory, closing, proto):
    """max_subscriptions_per_client 3: the 4th distinct filter is refused (3.1.1 0x80
    [MQTT-3.9.3-1], v5 0x97 Quota exceeded) while re-subscribing an existing filter still works;
    the limit is per client; unsubscribing frees a slot; refused_subscriptions counts."""
    b = broker_factory("max_subscriptions_per_client 3")
    sysw = SysWatcher(b)
    closing.append(sysw)
    before = sysw.counter("refused_subscriptions")
    fail = 0x97 if proto == MQTTv5 else 0x80
    base = unique_topic("subs")
    c = Client(b, protocol=proto)
    closing.append(c)
    assert c.subscribe([(f"{base}/1", 1), (f"{base}/2", 1), (f"{base}/3", 1)]) == [1, 1, 1]
    assert c.subscribe(f"{base}/4", 1) == [fail]
    assert c.subscribe(f"{base}/2", 0) == [0], "re-subscribing an existing filter is not a new one"
    assert c.subscribe([(f"{base}/5", 1), (f"{base}/1", 1)]) == [fail, 1]
    # the refused filter really is not subscribed; the accepted ones are
    c.publish(f"{base}/4", b"no", qos=1)
    c.publish(f"{base}/3", b"yes", qos=1)
    assert c.expect_one().payload == b"yes"
    c.expect_none(0.3)
    # another client has its own allowance
    d = Client(b, protocol=proto)
    closing.append(d)
    assert d.subscribe([(f"{base}/a", 0), (f"{base}/b", 0), (f"{base}/c", 0)]) == [0, 0, 0]
    # unsubscribe frees a slot
    c.unsubscribe(f"{base}/1")
    assert c.subscribe(f"{base}/6", 1) == [1]
    sysw.wait_counter("refused_subscriptions", before + 2)


def _user_props(n, size=2):
    return [(P_USER_PROPERTY, (f"k{i}", "v" * size)) for i in range(n)]


def test_max_user_properties_count(broker_factory, closing):
    """max_user_properties 2 (count per packet): a v5 PUBLISH with 3 user properties is refused
    (PUBACK 0x97, not delivered), one with 2 is delivered with them; CONNECT with 3 -> CONNACK 0x97;
    SUBSCRIBE with 3 -> SUBACK 0x97. refused_user_properties counts each."""
    b = broker_factory("max_user_properties 2")
    sysw = SysWatcher(b)
    closing.append(sysw)
    before = sysw.counter("refused_user_properties")
    topic = unique_topic("uprops")
    sub = Client(b, protocol=MQTTv5)
    closing.append(sub)
    sub.subscribe(topic, 1)
    with RawClient(b, 5) as raw:
        raw.connect()
        raw.publish(topic, b"three", qos=1, packet_id=1, props=_user_props(3))
        p = raw.expect(PUBACK)
        assert (p.packet_id, p.reason) == (1, 0x97), p
        raw.publish(topic, b"two", qos=1, packet_id=2, props=_user_props(2))
        p = raw.expect(PUBACK)
        assert p.packet_id == 2 and p.reason < 0x80, p
        raw.send(subscribe_packet(3, [(topic + "/x", 0)], 5, props=_user_props(3)))
        p = raw.expect(SUBACK)
        assert p.codes == [0x97], p
        assert raw.is_open()
    m = sub.expect_one()
    assert m.payload == b"two"
    assert sorted(m.prop("UserProperty", [])) == [("k0", "vv"), ("k1", "vv")]
    sub.expect_none(0.3)
    with RawClient(b, 5) as raw:
        raw.send(connect_packet(5, unique_id("up"), props=_user_props(3)))
        got = raw.expect_closed()
        assert got and got[0].type == CONNACK and got[0].reason == 0x97, got
    sysw.wait_counter("refused_user_properties", before + 3)


def test_max_user_properties_bytes(broker_factory, closing):
    """max_user_properties COUNT BYTES: user properties totalling more than BYTES in one packet are
    refused (PUBACK 0x97, not delivered) even under the count."""
    b = broker_factory("max_user_properties 10 100")
    topic = unique_topic("ubytes")
    sub = Client(b, protocol=MQTTv5)
    closing.append(sub)
    sub.subscribe(topic, 1)
    with RawClient(b, 5) as raw:
        raw.connect()
        raw.publish(topic, b"fat", qos=1, packet_id=1, props=_user_props(1, size=200))
        p = raw.expect(PUBACK)
        assert p.reason == 0x97, p
        raw.publish(topic, b"thin", qos=1, packet_id=2, props=_user_props(2, size=20))
        assert raw.expect(PUBACK).reason < 0x80
    assert sub.expect_one().payload == b"thin"
    sub.expect_none(0.3)


def test_max_retained_messages(broker_factory, closing):
    """max_retained_messages 3: clients can store 3 retained messages; a 4th topic is not stored
    (live subscribers still get it), replacing a stored topic at the limit works, clearing one
    (empty payload) makes room. The broker's own $SYS figures must not use up the clients' quota or
    inflate the counter: refused_retained is exactly the clients' one refusal."""
    b = broker_factory("max_retained_messages 3")
    sysw = SysWatcher(b)
    closing.append(sysw)
    base = unique_topic("ret")
    live = Client(b)
    closing.append(live)
    live.subscribe(f"{base}/#", 0)
    pub = Client(b)
    closing.append(pub)
    for i in range(1, 5):
        pub.publish(f"{base}/{i}", f"r{i}".encode(), qos=1, retain=True)
    assert sorted(m.payload for m in live.expect(4)) == [b"r1", b"r2", b"r3", b"r4"]

    def stored():
        c = Client(b)
        try:
            c.subscribe(f"{base}/#", 0)
            got = []
            while True:
                try:
                    got.append(c.expect_one(0.7))
                except AssertionError:
                    return sorted((m.topic.rsplit("/", 1)[1], m.payload) for m in got)
        finally:
            c.close()

    assert stored() == [("1", b"r1"), ("2", b"r2"), ("3", b"r3")]
    pub.publish(f"{base}/2", b"r2-new", qos=1, retain=True)  # replace at the limit
    pub.publish(f"{base}/3", b"", qos=1, retain=True)  # clear
    pub.publish(f"{base}/5", b"r5", qos=1, retain=True)  # fits again
    assert stored() == [("1", b"r1"), ("2", b"r2-new"), ("5", b"r5")]
    time.sleep(2.2)  # two $SYS intervals
    assert sysw.counter("refused_retained") == 1, (
        f"refused_retained {sysw.counter('refused_retained')}: only one client message was refused")


def test_max_retained_bytes(broker_factory, closing):
    """max_retained_bytes 10K: two 4 KB retained messages fit, a third is not stored."""
    b = broker_factory("max_retained_bytes 10K")
    base = unique_topic("retb")
    pub = Client(b)
    closing.append(pub)
    for i in range(3):
        pub.publish(f"{base}/{i}", bytes([65 + i]) * 4096, qos=1, retain=True)
    c = Client(b)
    closing.append(c)
    c.subscribe(f"{base}/#", 0)
    got = c.expect(2)
    assert sorted(m.topic for m in got) == [f"{base}/0", f"{base}/1"]
    c.expect_none(0.7)


@pytest.mark.parametrize("proto", [MQTTv311, MQTTv5], ids=["v311", "v5"])
def test_max_sessions(broker_factory, closing, proto):
    """max_sessions 2: with two sessions (one of them persistent and offline) a new client id is
    refused (3.1.1 CONNACK 0x03 Server unavailable, v5 0x97 Quota exceeded); an existing id may
    still come back; refused_sessions counts."""
    b = broker_factory("max_sessions 2")
    sysw = SysWatcher(b)  # session 1
    closing.append(sysw)
    before = sysw.counter("refused_sessions")
    kw = {}
    if proto == MQTTv5:
        kw = {"properties": props(PacketTypes.CONNECT, SessionExpiryInterval=300)}
    pid = unique_id("persist")
    p = Client(b, pid, proto, clean=False, **kw)  # session 2
    p.disconnect()
    with pytest.raises(ConnectRefused) as e:
        Client(b, protocol=proto)
    assert e.value.rc == (0x97 if proto == MQTTv5 else 3)
    back = Client(b, pid, proto, clean=False, **kw)  # its own session: allowed
    closing.append(back)
    assert back.session_present
    # a second connection with the same id takes the session over, also allowed
    again = Client(b, pid, proto, clean=False, **kw)
    closing.append(again)
    sysw.wait_counter("refused_sessions", before + 1)


# --------------------------------------------------------------------------------------------
# Mosquitto limits: max_keepalive, max_qos, message_size_limit, max_queued_messages, memory
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("keepalive", [60, 0])
def test_max_keepalive_refuses_mqtt311_over_the_limit(broker_factory, keepalive):
    """Mosquitto max_keepalive: a 3.1.1 client asking more (or 0 = none) is refused with CONNACK
    0x02 Identifier rejected (3.1.1 has no Server Keep Alive); within the limit it is accepted."""
    b = broker_factory("max_keepalive 30")
    with pytest.raises(ConnectRefused) as e:
        Client(b, keepalive=keepalive)
    assert e.value.rc == 2
    ok = Client(b, keepalive=20)
    ok.close()


@pytest.mark.parametrize("keepalive", [60, 0])
def test_max_keepalive_tells_v5_clients_the_server_keep_alive(broker_factory, keepalive):
    """v5 [MQTT-3.2.2-21]: the server tells a v5 client asking more than max_keepalive (or 0) its
    Server Keep Alive (30) in CONNACK; within the limit no Server Keep Alive (or the same value)."""
    b = broker_factory("max_keepalive 30")
    with RawClient(b, 5) as raw:
        p = raw.connect(keepalive=keepalive)
        assert p.props.get(P_SERVER_KEEP_ALIVE) == 30, p
    with RawClient(b, 5) as raw:
        p = raw.connect(keepalive=20)
        assert p.props.get(P_SERVER_KEEP_ALIVE, 20) == 20, p


def test_server_keep_alive_is_enforced(broker_factory, closing):
    """v5 [MQTT-3.2.2-22] [MQTT-3.1.2-22..24]: a client told Server Keep Alive 10 that then sends
    nothing is disconnected after 1.5 x 10 s (v5 DISCONNECT 0x8D Keep Alive timeout);
    closed_keepalive counts it."""
    b = broker_factory("max_keepalive 10")
    sysw = SysWatcher(b, keepalive=10)
    closing.append(sysw)
    before = sysw.counter("closed_keepalive")
    raw = RawClient(b, 5)
    closing.append(raw)
    p = raw.connect(keepalive=0)
    assert p.props.get(P_SERVER_KEEP_ALIVE) == 10
    t0 = time.monotonic()
    got = raw.expect_closed(timeout=18)
    waited = time.monotonic() - t0
    assert 13.5 <= waited <= 17.5, f"closed after {waited:.1f}s, expected ~15s"
    assert got and got[0].type == DISCONNECT and got[0].reason == 0x8D, got
    sysw.wait_counter("closed_keepalive", before + 1)


def test_max_qos_listener_limit(broker_factory, closing):
    """Listener max_qos 1: v5 CONNACK says Maximum QoS 1 [MQTT-3.2.2-9]; a QoS 2 subscription is
    granted QoS 1; a v5 QoS 2 PUBLISH -> DISCONNECT 0x9B QoS not supported [MQTT-3.2.2-11]; a QoS 2
    will -> CONNACK 0x9B [MQTT-3.2.2-12]; QoS 1 works; a 3.1.1 QoS 2 PUBLISH closes the
    connection."""
    b = broker_factory("max_qos 1")
    w = Witness(b)
    closing.append(w)
    topic = unique_topic("maxqos")
    c = Client(b, protocol=MQTTv5)
    closing.append(c)
    assert c.subscribe(topic, 2) == [1]
    with RawClient(b, 5) as raw:
        p = raw.connect()
        assert p.props.get(P_MAXIMUM_QOS) == 1, p
        raw.publish(topic, b"q1", qos=1, packet_id=1)
        assert raw.expect(PUBACK).reason == 0
        raw.publish(topic, b"q2", qos=2, packet_id=2)
        got = raw.expect_closed()
        assert got and got[-1].type == DISCONNECT and got[-1].reason == 0x9B, got
    m = c.expect_one()
    assert (m.payload, m.qos) == (b"q1", 1)
    c.expect_none(0.3)
    with RawClient(b, 5) as raw:
        will = {"topic": "w/t", "payload": b"x", "qos": 2}
        raw.send(connect_packet(5, unique_id("will2"), will=will))
        got = raw.expect_closed()
        assert got and got[0].type == CONNACK and got[0].reason == 0x9B, got
    with RawClient(b, 4) as raw:
        raw.connect()
        raw.publish(topic, b"q2", qos=2, packet_id=3)
        assert raw.expect_closed() == []
    c.expect_none(0.3)
    w.check()


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_message_size_limit(broker_factory, closing, version):
    """Mosquitto message_size_limit 100: a larger payload is not forwarded but its QoS flow
    completes (v5: PUBACK/PUBREC with an error reason code - Mosquitto says 0x83, 0x97 fits too;
    3.1.1: a plain PUBACK); the connection stays open; 100 bytes pass."""
    b = broker_factory("message_size_limit 100")
    sysw = SysWatcher(b)
    closing.append(sysw)
    before = sysw.counter("refused_message_size")
    topic = unique_topic("msl")
    sub = Client(b)
    closing.append(sub)
    sub.subscribe(topic, 2)
    with RawClient(b, version) as raw:
        raw.connect()
        raw.publish(topic, b"a" * 101, qos=1, packet_id=1)
        p = raw.expect(PUBACK)
        assert p.packet_id == 1
        if version == 5:
            assert p.reason in (0x83, 0x97), p
        else:
            assert p.raw == b"\x40\x02\x00\x01"
        raw.publish(topic, b"b" * 500, qos=0)
        raw.publish(topic, b"c" * 101, qos=2, packet_id=2)
        p = raw.expect(PUBREC)
        if version == 5:
            assert p.reason in (0x83, 0x97), p
        else:
            raw.ack(PUBREL, 2)
            assert raw.expect(PUBCOMP).packet_id == 2
        raw.publish(topic, b"d" * 100, qos=1, packet_id=3)
        p = raw.expect(PUBACK)
        assert p.reason == 0
        assert raw.is_open()
    m = sub.expect_one()
    assert m.payload == b"d" * 100
    sub.expect_none(0.3)
    # three payloads over the limit (QoS 1, 0 and 2), each counted
    assert sysw.wait_counter("refused_message_size", before + 3) == before + 3


def test_max_queued_messages_bounds_an_offline_session(broker_factory, closing):
    """Mosquitto max_queued_messages 5: an offline persistent session keeps at most 5 QoS 1
    messages (the first ones, in order); the rest are dropped and counted in dropped_queue_full."""
    b = broker_factory("max_queued_messages 5")
    sysw = SysWatcher(b)
    closing.append(sysw)
    before = sysw.counter("dropped_queue_full")
    topic = unique_topic("queue")
    cid = unique_id("offline")
    s = Client(b, cid, clean=False)
    s.subscribe(topic, 1)
    s.disconnect()
    pub = Client(b)
    closing.append(pub)
    for i in range(10):
        pub.publish(topic, str(i).encode(), qos=1)
    s = Client(b, cid, clean=False)
    closing.append(s)
    got = [m.payload for m in s.expect(5)]
    assert got == [str(i).encode() for i in range(5)]
    s.expect_none(0.5)
    sysw.wait_counter("dropped_queue_full", before + 5)


def test_memory_limit_refuses_new_messages(broker_factory, closing):
    """Mosquitto memory_limit 1M: once the broker holds more than that in messages, new PUBLISHes
    are refused (v5 PUBACK 0x97, not delivered) while the connection and other clients stay up;
    refused_memory counts."""
    b = broker_factory("memory_limit 1M")
    sysw = SysWatcher(b)
    closing.append(sysw)
    before = sysw.counter("refused_memory")
    base = unique_topic("mem")
    sub = Client(b)
    closing.append(sub)
    sub.subscribe(f"{base}/live", 1)
    with RawClient(b, 5) as raw:
        raw.connect()
        for i in range(3):
            raw.publish(f"{base}/{i}", bytes(500_000), qos=1, packet_id=10 + i, retain=True)
            assert raw.expect(PUBACK, 10).reason == 0
        raw.publish(f"{base}/live", b"refused", qos=1, packet_id=20)
        p = raw.expect(PUBACK, 10)
        assert p.reason == 0x97, p
        raw.send(b"\xc0\x00")
        assert raw.expect(13).type == 13  # PINGRESP: still served
    sub.expect_none(0.5)
    sysw.wait_counter("refused_memory", before + 1)


def test_memory_limit_lets_clients_clear_retained_messages(broker_factory, closing):
    """Over memory_limit, a PUBLISH that frees memory - an empty retained message clearing a stored
    one [MQTT-3.3.1-6] - must still be accepted, or retained messages would wedge the broker in
    refusal for good: after clearing, publishing works again."""
    b = broker_factory("memory_limit 1M")
    base = unique_topic("memclr")
    sub = Client(b)
    closing.append(sub)
    sub.subscribe(f"{base}/live", 1)
    with RawClient(b, 5) as raw:
        raw.connect()
        for i in range(3):
            raw.publish(f"{base}/{i}", bytes(500_000), qos=1, packet_id=10 + i, retain=True)
            assert raw.expect(PUBACK, 10).reason == 0
        raw.publish(f"{base}/live", b"refused", qos=1, packet_id=20)
        assert raw.expect(PUBACK, 10).reason == 0x97
        codes = []
        for i in range(3):
            raw.publish(f"{base}/{i}", b"", qos=1, packet_id=30 + i, retain=True)
            codes.append(raw.expect(PUBACK).reason)
        assert codes == [0, 0, 0], f"clearing retained messages was refused: PUBACK reasons {codes}"
        raw.publish(f"{base}/live", b"fine", qos=1, packet_id=40)
        assert raw.expect(PUBACK).reason == 0
    assert sub.expect_one().payload == b"fine"
    c = Client(b)
    closing.append(c)
    c.subscribe(f"{base}/#", 0)
    c.expect_none(0.7)


# --------------------------------------------------------------------------------------------
# counters of the protocol-level limits
# --------------------------------------------------------------------------------------------

def test_packet_too_big_and_protocol_error_counters(broker_factory, closing):
    """refused_packet_too_big counts packets over max_packet_size; closed_protocol_error counts
    connections closed for malformed input."""
    b = broker_factory("max_packet_size 1K")
    sysw = SysWatcher(b)
    closing.append(sysw)
    big0 = sysw.counter("refused_packet_too_big")
    err0 = sysw.counter("closed_protocol_error")
    with RawClient(b, 5) as raw:
        raw.connect()
        raw.publish("a/b", b"x" * 3000)
        got = raw.expect_closed()
        assert got and got[0].reason == 0x95, got
    with RawClient(b, 5) as raw:
        raw.connect()
        raw.send(b"\x32\x05\x00\x01a\x00\x00")  # packet id 0 [MQTT-2.2.1-3]
        raw.expect_closed()
    with RawClient(b, 4) as raw:
        raw.connect()
        raw.send(b"\x00\x00")
        raw.expect_closed()
    sysw.wait_counter("refused_packet_too_big", big0 + 1)
    sysw.wait_counter("closed_protocol_error", err0 + 2)


def test_every_limit_counter_is_published(broker, closing):
    """DESIGN.md: every limit has a counter and a $SYS figure: each of the documented counters is
    published under $SYS/broker/limits/ as a non-negative integer."""
    names = ["refused_connect_too_big", "refused_packet_too_big", "closed_connect_timeout",
             "closed_keepalive", "closed_slow_consumer", "closed_protocol_error",
             "refused_connections", "refused_sessions", "refused_subscriptions",
             "refused_user_properties", "refused_retained", "refused_memory", "accept_paused",
             "dropped_qos0_congested", "dropped_queue_full", "dropped_expired", "dropped_too_big",
             "acks_held"]
    sysw = SysWatcher(broker, "$SYS/broker/limits/+")
    closing.append(sysw)
    for n in names:
        v = sysw.counter(n)
        assert isinstance(v, int) and v >= 0, (n, v)

"""PUBLISH and the QoS 0/1/2 flows in both directions, redelivery, downgrade, and refused topics.

Normative ids: "3.1.1 [MQTT-x]" for MQTT 3.1.1, "v5 [MQTT-x]" for MQTT 5.0.
"""
import struct
import time

import pytest

from paho.mqtt.packettypes import PacketTypes

from helpers import (
    DISCONNECT, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, MQTTv311, MQTTv5,
    P_MAXIMUM_QOS, P_SESSION_EXPIRY, P_TOPIC_ALIAS, P_TOPIC_ALIAS_MAXIMUM, P_USER_PROPERTY,
    Client, MosquittoSub, RawClient, packet, props, run_pub, unique_id,
    unique_topic,
)

BOTH = pytest.mark.parametrize("proto", [MQTTv311, MQTTv5], ids=["v311", "v5"])
VERSIONS = pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])


def _expiry_props():
    return props(PacketTypes.CONNECT, SessionExpiryInterval=300)


def pid_bytes(pid):
    return struct.pack("!H", pid)


def raw_persistent(broker, version, cid):
    """A raw connection whose session outlives it (clean session 0 / v5 expiry 300 s)."""
    raw = RawClient(broker, version)
    kw = {"props": [(P_SESSION_EXPIRY, 300)]} if version == 5 else {}
    p = raw.connect(client_id=cid, clean=False, **kw)
    return raw, p


def subscriber(broker, clients, topic, qos=2, proto=MQTTv5):
    c = Client(broker, protocol=proto)
    clients.append(c)
    assert c.subscribe(topic, qos) == [qos]
    return c


def assert_ack_ok(p, ptype, pid, version):
    """An acknowledgement with success: 3.1.1 exactly 4 bytes; v5 reason 0x00 (the reason byte may
    be omitted when 0 and there are no properties, v5 section 3.4.2.1)."""
    assert p.type == ptype, p
    if version == 4:
        assert p.raw == bytes([(ptype << 4) | (2 if ptype == PUBREL else 0), 2]) + pid_bytes(pid), p
    else:
        assert p.packet_id == pid and p.reason == 0x00, p


# --------------------------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------------------------

@BOTH
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_message_is_delivered_at_the_published_qos(broker, clients, proto, qos):
    """3.1.1 [MQTT-3.8.4-6] / v5 [MQTT-3.8.4-8]: delivered QoS = min(published QoS, granted QoS);
    with a QoS 2 subscription that is the published QoS. The payload arrives unchanged (binary)."""
    topic = unique_topic("rt")
    sub = subscriber(broker, clients, topic, 2, proto)
    pub = Client(broker, protocol=proto)
    clients.append(pub)
    payload = bytes(range(256)) * 4
    pub.publish(topic, payload, qos=qos)
    m = sub.expect_one()
    assert (m.topic, m.payload, m.qos, m.retain, m.dup) == (topic, payload, qos, False, False)
    sub.expect_none(0.3)


@BOTH
def test_many_messages_keep_their_order(broker, clients, proto):
    """3.1.1 [MQTT-4.6.0-5] / v5 [MQTT-4.6.0-6]: messages from one publisher on one topic are
    delivered in the order published (per QoS level; here all QoS 1)."""
    topic = unique_topic("order")
    sub = subscriber(broker, clients, topic, 1, proto)
    pub = Client(broker, protocol=proto)
    clients.append(pub)
    for i in range(50):
        pub.publish(topic, str(i).encode(), qos=1, wait=False)
    got = sub.expect(50, timeout=10)
    assert [m.payload for m in got] == [str(i).encode() for i in range(50)]


# --------------------------------------------------------------------------------------------
# client -> server flows, byte by byte
# --------------------------------------------------------------------------------------------

@VERSIONS
def test_qos1_publish_is_acknowledged_with_puback_carrying_the_packet_id(broker, clients, version):
    """3.1.1 [MQTT-4.3.2-2] / v5 [MQTT-4.3.2-4]: the receiver of a QoS 1 PUBLISH answers PUBACK
    with the same Packet Identifier (3.1.1: exactly 40 02 00 0a)."""
    topic = unique_topic("q1in")
    sub = subscriber(broker, clients, topic, 1)
    with RawClient(broker, version) as raw:
        raw.connect()
        raw.publish(topic, b"one", qos=1, packet_id=10)
        assert_ack_ok(raw.read_packet(), PUBACK, 10, version)
    m = sub.expect_one()
    assert (m.payload, m.qos) == (b"one", 1)


@VERSIONS
def test_qos2_publish_flow_is_pubrec_pubrel_pubcomp(broker, clients, version):
    """3.1.1 [MQTT-4.3.3-2] / v5 [MQTT-4.3.3-9], [MQTT-4.3.3-11]: QoS 2 PUBLISH -> PUBREC with its
    id; PUBREL -> PUBCOMP with the same id (3.1.1: 50 02 00 0b and 70 02 00 0b); the message is
    delivered exactly once."""
    topic = unique_topic("q2in")
    sub = subscriber(broker, clients, topic, 2)
    with RawClient(broker, version) as raw:
        raw.connect()
        raw.publish(topic, b"two", qos=2, packet_id=11)
        assert_ack_ok(raw.read_packet(), PUBREC, 11, version)
        raw.ack(PUBREL, 11)
        assert_ack_ok(raw.read_packet(), PUBCOMP, 11, version)
    m = sub.expect_one()
    assert (m.payload, m.qos) == (b"two", 2)
    sub.expect_none(0.3)


@VERSIONS
def test_qos0_publish_gets_no_acknowledgement(broker, clients, version):
    """3.1.1 section 4.3.1 / v5 section 4.3.1: QoS 0 has no response packet."""
    topic = unique_topic("q0in")
    sub = subscriber(broker, clients, topic, 0)
    with RawClient(broker, version) as raw:
        raw.connect()
        raw.publish(topic, b"zero")
        raw.expect_nothing(0.3)
    assert sub.expect_one().payload == b"zero"


@VERSIONS
def test_qos2_duplicate_publish_before_pubrel_is_delivered_once(broker, clients, version):
    """3.1.1 [MQTT-4.3.3-2] / v5 [MQTT-4.3.3-10]: until PUBREL, a PUBLISH with the same Packet
    Identifier is answered with PUBREC again and MUST NOT cause a duplicate onward delivery."""
    topic = unique_topic("q2dup")
    sub = subscriber(broker, clients, topic, 2)
    with RawClient(broker, version) as raw:
        raw.connect()
        raw.publish(topic, b"once", qos=2, packet_id=5)
        assert_ack_ok(raw.read_packet(), PUBREC, 5, version)
        raw.publish(topic, b"once", qos=2, packet_id=5, dup=True)
        assert_ack_ok(raw.read_packet(), PUBREC, 5, version)
        raw.ack(PUBREL, 5)
        assert_ack_ok(raw.read_packet(), PUBCOMP, 5, version)
    assert sub.expect_one().payload == b"once"
    sub.expect_none(0.7)


@VERSIONS
@pytest.mark.parametrize("qos", [1, 2])
def test_packet_id_is_reusable_after_the_flow_completes(broker, clients, version, qos):
    """3.1.1 [MQTT-2.3.1-2] / v5 [MQTT-2.2.1-3]: a Packet Identifier becomes available again once
    its acknowledgement flow completes; a new PUBLISH with it is a new message, delivered."""
    topic = unique_topic("reuse")
    sub = subscriber(broker, clients, topic, 2)
    with RawClient(broker, version) as raw:
        raw.connect()
        for payload in (b"first", b"second", b"third"):
            raw.publish(topic, payload, qos=qos, packet_id=7)
            if qos == 1:
                assert_ack_ok(raw.read_packet(), PUBACK, 7, version)
            else:
                assert_ack_ok(raw.read_packet(), PUBREC, 7, version)
                raw.ack(PUBREL, 7)
                assert_ack_ok(raw.read_packet(), PUBCOMP, 7, version)
    assert [m.payload for m in sub.expect(3)] == [b"first", b"second", b"third"]


@VERSIONS
def test_pubrel_for_an_unknown_packet_id_is_answered_with_pubcomp(broker, version):
    """3.1.1 section 4.3.3 (the receiver answers every PUBREL with PUBCOMP, as a PUBREL may be a
    retransmission) / v5 [MQTT-4.3.3-11]: PUBCOMP with the same id; v5 may say 0x92 Packet
    Identifier not found."""
    with RawClient(broker, version) as raw:
        raw.connect()
        raw.ack(PUBREL, 4242)
        p = raw.expect(PUBCOMP)
        assert p.packet_id == 4242
        if version == 4:
            assert p.raw == b"\x70\x02" + pid_bytes(4242)
        else:
            assert p.reason in (0x00, 0x92), p


# --------------------------------------------------------------------------------------------
# server -> client flows, byte by byte
# --------------------------------------------------------------------------------------------

@VERSIONS
def test_qos0_delivery_has_no_packet_identifier(broker, clients, version):
    """3.1.1 [MQTT-2.3.1-5] / v5 [MQTT-2.2.1-2]: a QoS 0 PUBLISH carries no Packet Identifier;
    the exact 3.1.1 encoding is 30 len topic payload."""
    topic = unique_topic("q0out")
    with RawClient(broker, version) as raw:
        raw.connect()
        assert raw.subscribe([(topic, 0)]).codes == [0]
        pub = Client(broker, protocol=MQTTv311)
        clients.append(pub)
        pub.publish(topic, b"abc", qos=0)
        p = raw.expect(PUBLISH)
        assert (p.qos, p.dup, p.retain, p.packet_id, p.topic, p.payload) == (0, False, False, None, topic, b"abc")
        if version == 4:
            body = struct.pack("!H", len(topic)) + topic.encode() + b"abc"
            assert p.raw == bytes([0x30, len(body)]) + body


@VERSIONS
def test_qos1_delivery_is_completed_by_the_subscribers_puback(broker, clients, version):
    """3.1.1 [MQTT-4.3.2-1] / v5 [MQTT-4.3.2-1]: the server's QoS 1 PUBLISH has a non-zero unused
    Packet Identifier ([MQTT-2.3.1-1] / [MQTT-2.2.1-3]) and DUP 0 on first delivery; after the
    PUBACK nothing is resent while connected (v5 [MQTT-4.4.0-1] forbids it)."""
    topic = unique_topic("q1out")
    with RawClient(broker, version) as raw:
        raw.connect()
        assert raw.subscribe([(topic, 1)]).codes == [1]
        pub = Client(broker, protocol=MQTTv311)
        clients.append(pub)
        pub.publish(topic, b"m1", qos=1)
        pub.publish(topic, b"m2", qos=1)
        p1, p2 = raw.expect(PUBLISH), raw.expect(PUBLISH)
        assert (p1.qos, p1.dup, p1.payload) == (1, False, b"m1")
        assert (p2.qos, p2.dup, p2.payload) == (1, False, b"m2")
        assert p1.packet_id != 0 and p2.packet_id != 0 and p1.packet_id != p2.packet_id
        raw.ack(PUBACK, p1.packet_id)
        raw.ack(PUBACK, p2.packet_id)
        raw.expect_nothing(0.5)


@VERSIONS
def test_qos2_delivery_sends_pubrel_with_flags_0010(broker, clients, version):
    """3.1.1 [MQTT-4.3.3-1] / v5 [MQTT-4.3.3-1]: the sender of a QoS 2 PUBLISH answers PUBREC with
    PUBREL carrying the same id, and PUBREL's fixed header flags MUST be 0010 ([MQTT-3.6.1-1]):
    3.1.1 exactly 62 02 id."""
    topic = unique_topic("q2out")
    with RawClient(broker, version) as raw:
        raw.connect()
        assert raw.subscribe([(topic, 2)]).codes == [2]
        pub = Client(broker, protocol=MQTTv311)
        clients.append(pub)
        pub.publish(topic, b"exactly once", qos=2)
        p = raw.expect(PUBLISH)
        assert (p.qos, p.dup, p.payload) == (2, False, b"exactly once") and p.packet_id
        raw.ack(PUBREC, p.packet_id)
        rel = raw.expect(PUBREL)
        assert rel.flags == 0x2 and rel.packet_id == p.packet_id, rel
        if version == 4:
            assert rel.raw == b"\x62\x02" + pid_bytes(p.packet_id)
        raw.ack(PUBCOMP, p.packet_id)
        raw.expect_nothing(0.5)


# --------------------------------------------------------------------------------------------
# redelivery after reconnect
# --------------------------------------------------------------------------------------------

def _check_redelivery(broker, clients, version, qos):
    topic = unique_topic("redeliver")
    cid = unique_id("redeliver")
    raw, _ = raw_persistent(broker, version, cid)
    with raw:
        assert raw.subscribe([(topic, qos)]).codes == [qos]
        pub = Client(broker, protocol=MQTTv311)
        clients.append(pub)
        pub.publish(topic, b"ack me", qos=qos)
        first = raw.expect(PUBLISH)
        assert (first.qos, first.dup) == (qos, False)
    # closed without acknowledging
    raw2, connack = raw_persistent(broker, version, cid)
    with raw2:
        assert connack.session_present
        again = raw2.expect(PUBLISH)
        assert (again.packet_id, again.dup, again.qos, again.payload) == (first.packet_id, True, qos, b"ack me")
        if qos == 1:
            raw2.ack(PUBACK, again.packet_id)
        else:
            raw2.ack(PUBREC, again.packet_id)
            assert raw2.expect(PUBREL).packet_id == again.packet_id
            raw2.ack(PUBCOMP, again.packet_id)
        raw2.expect_nothing(0.5)
    with RawClient(broker, version) as cleanup:
        cleanup.connect(client_id=cid, clean=True)


@VERSIONS
def test_qos1_is_redelivered_with_dup_after_reconnect(broker, clients, version):
    """3.1.1 [MQTT-4.4.0-1] / v5 [MQTT-4.4.0-1]: on reconnect with a persistent session (clean
    session 0 / Clean Start 0 + Session Expiry > 0) the server MUST resend unacknowledged PUBLISH
    packets with their original Packet Identifiers, with DUP 1 ([MQTT-3.3.1-1])."""
    _check_redelivery(broker, clients, version, 1)


@VERSIONS
def test_qos2_is_redelivered_with_dup_after_reconnect(broker, clients, version):
    """As the QoS 1 case, for a QoS 2 PUBLISH that got no PUBREC: [MQTT-4.4.0-1], [MQTT-3.3.1-1];
    the flow then completes with PUBREC/PUBREL/PUBCOMP."""
    _check_redelivery(broker, clients, version, 2)


@VERSIONS
def test_pubrel_is_resent_after_reconnect_when_pubcomp_is_missing(broker, clients, version):
    """3.1.1 [MQTT-4.4.0-1] / v5 [MQTT-4.4.0-1]: unacknowledged PUBREL packets are resent on
    reconnect with their original id; the PUBLISH itself is not (it was acknowledged by PUBREC)."""
    topic = unique_topic("pubrel")
    cid = unique_id("pubrel")
    raw, _ = raw_persistent(broker, version, cid)
    with raw:
        raw.subscribe([(topic, 2)])
        pub = Client(broker, protocol=MQTTv311)
        clients.append(pub)
        pub.publish(topic, b"q2", qos=2)
        p = raw.expect(PUBLISH)
        raw.ack(PUBREC, p.packet_id)
        assert raw.expect(PUBREL).packet_id == p.packet_id
    raw2, connack = raw_persistent(broker, version, cid)
    with raw2:
        assert connack.session_present
        rel = raw2.expect(PUBREL)
        assert rel.packet_id == p.packet_id and rel.flags == 0x2, rel
        raw2.ack(PUBCOMP, p.packet_id)
        raw2.expect_nothing(0.5)
    with RawClient(broker, version) as cleanup:
        cleanup.connect(client_id=cid, clean=True)


@BOTH
def test_messages_published_while_offline_are_delivered_on_reconnect(broker, clients, proto):
    """3.1.1 [MQTT-3.1.2-5] / v5 section 4.1: a persistent session stores QoS 1 and 2 messages that
    arrive while the client is disconnected, and delivers them when it comes back."""
    topic = unique_topic("offline")
    cid = unique_id("offline")
    kw = {"properties": _expiry_props()} if proto == MQTTv5 else {}
    c = Client(broker, cid, proto, clean=False, **kw)
    c.subscribe(topic, 2)
    c.disconnect()
    pub = Client(broker, protocol=proto)
    clients.append(pub)
    pub.publish(topic, b"q1 while away", qos=1)
    pub.publish(topic, b"q2 while away", qos=2)
    c2 = Client(broker, cid, proto, clean=False, **kw)
    clients.append(c2)
    assert c2.session_present
    got = c2.expect(2)
    assert sorted((m.payload, m.qos) for m in got) == [(b"q1 while away", 1), (b"q2 while away", 2)]


# --------------------------------------------------------------------------------------------
# QoS downgrade and max_qos
# --------------------------------------------------------------------------------------------

@BOTH
@pytest.mark.parametrize("pub_qos,sub_qos", [(2, 0), (2, 1), (1, 0), (0, 2), (1, 2)])
def test_delivery_qos_is_the_minimum_of_published_and_granted(broker, clients, proto, pub_qos, sub_qos):
    """3.1.1 [MQTT-3.8.4-6] / v5 [MQTT-3.8.4-8]: delivered QoS = min(published, granted)."""
    topic = unique_topic("downgrade")
    sub = subscriber(broker, clients, topic, sub_qos, proto)
    pub = Client(broker, protocol=proto)
    clients.append(pub)
    pub.publish(topic, b"x", qos=pub_qos)
    assert sub.expect_one().qos == min(pub_qos, sub_qos)


@BOTH
def test_max_qos_1_listener_grants_at_most_qos1(broker_factory, clients, proto):
    """CONFIG.md `max_qos` (listener): a QoS 2 subscription is granted QoS 1 (3.1.1 section 3.9.3 and v5
    section 3.9.3: the server may grant a lower QoS than requested; v5 [MQTT-3.2.2-9]: CONNACK carries Maximum
    QoS 1), and a QoS 2 message is delivered at QoS 1."""
    b = broker_factory("max_qos 1\n")
    sub = Client(b, protocol=proto)
    clients.append(sub)
    if proto == MQTTv5:
        assert getattr(sub.connack_props, "MaximumQoS", None) == 1
    topic = unique_topic("maxqos")
    assert sub.subscribe(topic, 2) == [1]
    pub = Client(b, protocol=MQTTv311)
    clients.append(pub)
    pub.publish(topic, b"capped", qos=1)
    assert sub.expect_one().qos == 1


def test_v5_connack_of_max_qos_1_listener_has_maximum_qos_property(broker_factory):
    """v5 [MQTT-3.2.2-9]: a server that does not support QoS 2 MUST send Maximum QoS in CONNACK."""
    b = broker_factory("max_qos 1\n")
    with RawClient(b, 5) as raw:
        assert raw.connect().props.get(P_MAXIMUM_QOS) == 1


def test_v5_qos2_publish_on_max_qos_1_listener_is_disconnected_0x9b(broker_factory, clients):
    """v5 section 3.2.2.3.4: a PUBLISH above the Maximum QoS the server announced is answered
    with DISCONNECT 0x9B (QoS not supported); the message is not delivered."""
    b = broker_factory("max_qos 1\n")
    topic = unique_topic("maxqos2")
    sub = subscriber(b, clients, topic, 1)
    with RawClient(b, 5) as raw:
        raw.connect()
        raw.publish(topic, b"too high", qos=2, packet_id=3)
        got = raw.expect_closed()
        assert [(p.type, p.reason) for p in got] == [(DISCONNECT, 0x9B)], got
    sub.expect_none(0.5)


# --------------------------------------------------------------------------------------------
# refused topics and malformed PUBLISH
# --------------------------------------------------------------------------------------------

def _assert_refused_publish(raw, version, pid):
    """The refusal of a QoS 1 PUBLISH, per version (see the callers' docstrings)."""
    try:
        p = raw.read_packet(3)
    except Exception as e:  # closed: allowed for both versions
        assert raw.closed, f"neither an acknowledgement nor a close: {e!r}"
        return "closed"
    if p.type == DISCONNECT:
        assert version == 5 and p.reason >= 0x80, p
        raw.expect_closed()
        return "disconnect"
    assert p.type == PUBACK and p.packet_id == pid, p
    if version == 5:
        assert p.reason >= 0x80, f"v5 must not acknowledge this publish as a success: {p!r}"
    return "puback"


@VERSIONS
@pytest.mark.parametrize("prefix", ["$SYS/tidemq-test", "$share/grp/tidemq-test"])
def test_publish_to_sys_or_share_topic_is_refused(broker, clients, version, prefix):
    """DESIGN "Identity is protected": clients cannot publish to $SYS/... or $share/....
    3.1.1 [MQTT-3.3.5-2]: an unauthorized PUBLISH gets a normal positive acknowledgement or the
    connection is closed (3.1.1 has no negative ack). v5 section 3.4.2.1: PUBACK 0x87 (Not
    authorized), or a DISCONNECT with a failure reason; never a success. In every case no
    subscriber receives it (the $SYS watcher subscribes to the exact $SYS name; $share names are
    also checked against a plain subscriber of the topic after the group, in case the prefix
    were stripped)."""
    leaf = unique_id("leaf")
    topic = f"{prefix}/{leaf}"
    watch = Client(broker, protocol=MQTTv5)
    clients.append(watch)
    watch.subscribe(f"$SYS/tidemq-test/{leaf}" if prefix.startswith("$SYS") else f"tidemq-test/{leaf}", 0)
    with RawClient(broker, version) as raw:
        raw.connect()
        raw.publish(topic, b"forged", qos=1, packet_id=21)
        _assert_refused_publish(raw, version, 21)
    watch.expect_none(0.7)


@VERSIONS
@pytest.mark.parametrize("topic", ["a/+/b", "a/#", "+", "#"])
def test_wildcard_in_publish_topic_closes_the_connection(broker, clients, version, topic):
    """3.1.1 [MQTT-3.3.2-2] / v5 [MQTT-3.3.2-2]: a Topic Name MUST NOT contain wildcards; the
    server closes the connection. v5: with a DISCONNECT first, reason 0x90 (Topic Name invalid,
    what tidemq means to send) or 0x82 (Protocol Error, what Mosquitto 2.0 sends): the spec names
    no single code for this violation."""
    with RawClient(broker, version) as raw:
        raw.connect()
        raw.publish(topic, b"bad", qos=1, packet_id=1)
        got = raw.expect_closed()
        if version == 5:
            assert [p.type for p in got] == [DISCONNECT] and got[0].reason in (0x90, 0x82), got
        else:
            assert got == [], got


def test_v5_empty_topic_without_alias_is_disconnected_0x82(broker):
    """v5 section 3.3.2.3.4: a zero-length Topic Name without a Topic Alias is a Protocol Error:
    DISCONNECT 0x82, then close."""
    with RawClient(broker, 5) as raw:
        raw.connect()
        raw.publish("", b"nowhere", qos=0)
        got = raw.expect_closed()
        assert [(p.type, p.reason) for p in got] == [(DISCONNECT, 0x82)], got


def test_v311_empty_topic_closes_the_connection(broker):
    """3.1.1 [MQTT-4.7.3-1]: Topic Names MUST be at least one character long; a violation closes."""
    with RawClient(broker, 4) as raw:
        raw.connect()
        raw.publish("", b"nowhere", qos=0)
        assert raw.expect_closed() == []


@VERSIONS
def test_publish_with_qos_3_closes_the_connection(broker, version):
    """3.1.1 [MQTT-3.3.1-4] / v5 [MQTT-3.3.1-4]: a PUBLISH MUST NOT have both QoS bits set; the
    receiver closes the connection (v5 may send DISCONNECT 0x81 Malformed Packet first)."""
    with RawClient(broker, version) as raw:
        raw.connect()
        body = struct.pack("!H", 3) + b"a/b" + b"\x00\x01" + (b"\x00" if version == 5 else b"") + b"x"
        raw.send(packet(PUBLISH, 0x06, body))
        got = raw.expect_closed()
        for p in got:
            assert p.type == DISCONNECT and p.reason in (0x81, 0x82), got


def test_v5_topic_alias_sets_and_then_replaces_the_topic(broker, clients):
    """v5 section 3.3.2.3.4: a PUBLISH with a Topic Name and a Topic Alias sets
    the alias; a later PUBLISH with an empty Topic Name and that alias is for the same topic."""
    topic = unique_topic("alias")
    sub = subscriber(broker, clients, topic, 0)
    with RawClient(broker, 5) as raw:
        connack = raw.connect()
        assert (connack.props.get(P_TOPIC_ALIAS_MAXIMUM) or 0) >= 1, connack
        raw.publish(topic, b"named", props=[(P_TOPIC_ALIAS, 1)])
        raw.publish("", b"aliased", props=[(P_TOPIC_ALIAS, 1)])
        raw.expect_nothing(0.2)
    got = sub.expect(2)
    assert [(m.topic, m.payload) for m in got] == [(topic, b"named"), (topic, b"aliased")]


def test_v5_topic_alias_zero_is_disconnected(broker):
    """v5 [MQTT-3.3.2-8]: a Topic Alias of 0 is not permitted: DISCONNECT 0x94 (Topic Alias
    invalid) or 0x82 (Protocol Error), then close."""
    with RawClient(broker, 5) as raw:
        raw.connect()
        raw.publish(unique_topic("alias0"), b"x", props=[(P_TOPIC_ALIAS, 0)])
        got = raw.expect_closed()
        assert [p.type for p in got] == [DISCONNECT] and got[0].reason in (0x94, 0x82), got


def test_v5_user_properties_are_forwarded_in_order(broker, clients):
    """v5 [MQTT-3.3.2-18]: the server MUST maintain the order of User Properties when forwarding."""
    topic = unique_topic("userprop")
    with RawClient(broker, 5) as sub, RawClient(broker, 5) as pub:
        sub.connect()
        sub.subscribe([(topic, 0)])
        pub.connect()
        ups = [(P_USER_PROPERTY, ("k", "1")), (P_USER_PROPERTY, ("a", "2")), (P_USER_PROPERTY, ("k", "3"))]
        pub.publish(topic, b"x", props=ups)
        p = sub.expect(PUBLISH)
        assert p.props.all(P_USER_PROPERTY) == [("k", "1"), ("a", "2"), ("k", "3")]


@pytest.mark.parametrize("version", [MQTTv311, MQTTv5], ids=["v311", "v5"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mosquitto_pub_to_mosquitto_sub_at_each_qos(broker, version, qos):
    """3.1.1 [MQTT-3.8.4-6] / v5 [MQTT-3.8.4-8] with Mosquitto's clients: mosquitto_pub -q N to a
    mosquitto_sub -q 2 arrives exactly once, at every QoS."""
    topic = unique_topic("mosqqos")
    with MosquittoSub(broker, topic, qos=2, version=version) as ms:
        run_pub(broker, topic, f"qos{qos}", qos=qos, version=version)
        assert ms.wait_lines(1) == [f"{topic} qos{qos}"]
        time.sleep(0.3)
        assert ms.lines() == [f"{topic} qos{qos}"]

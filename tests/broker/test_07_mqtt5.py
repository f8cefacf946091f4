"""MQTT 5 features: message expiry, topic aliases both ways, Receive Maximum both ways, Maximum
Packet Size both ways, subscription identifiers, No Local, request/response and other properties
passed through, assigned client ids, AUTH, reason codes on acks, CONNACK properties, DISCONNECT
reason codes both ways and Server Keep Alive.

Normative ids are MQTT 5.0 ([MQTT-x.y.z-n]); where the rule is stated without an id the section
is cited. Raw sockets (helpers.RawClient) are used wherever exact bytes or properties matter.
"""
import time

import pytest
from paho.mqtt.packettypes import PacketTypes

from helpers import (
    DISCONNECT, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, UNSUBACK,
    MQTTv5, P_ASSIGNED_CLIENT_ID, P_AUTH_DATA, P_AUTH_METHOD, P_CONTENT_TYPE,
    P_CORRELATION_DATA, P_MAXIMUM_PACKET_SIZE, P_MAXIMUM_QOS, P_MESSAGE_EXPIRY,
    P_PAYLOAD_FORMAT, P_RECEIVE_MAXIMUM, P_RESPONSE_TOPIC, P_RETAIN_AVAILABLE,
    P_SERVER_KEEP_ALIVE, P_SESSION_EXPIRY, P_SHARED_SUB_AVAILABLE, P_SUB_ID_AVAILABLE,
    P_SUBSCRIPTION_ID, P_TOPIC_ALIAS, P_TOPIC_ALIAS_MAXIMUM, P_USER_PROPERTY,
    P_WILDCARD_SUB_AVAILABLE, Client, RawClient, auth_packet, props,
    sub_opts, subscribe_packet, unique_id, unique_topic, unsubscribe_packet,
)


# --------------------------------------------------------------------------------------------
# local helpers (this file only)
# --------------------------------------------------------------------------------------------

def raw5(broker, clients, client_id=None, connect_props=None, **kw):
    """A raw MQTT 5 connection, connected (CONNACK 0 asserted). Returns (raw, connack)."""
    raw = RawClient(broker, 5)
    clients.append(raw)
    ack = raw.connect(client_id=client_id, props=connect_props, **kw)
    return raw, ack


def paho5(broker, clients, **kw):
    c = Client(broker, protocol=MQTTv5, **kw)
    clients.append(c)
    return c


def expect_disconnect(raw, reasons, timeout=5.0):
    """The broker sends a v5 DISCONNECT whose reason is in `reasons` and closes the connection.
    Returns the DISCONNECT packet."""
    if isinstance(reasons, int):
        reasons = {reasons}
    got = raw.expect_closed(timeout)
    discs = [p for p in got if p.type == DISCONNECT]
    assert discs, f"connection closed without a DISCONNECT; received before the close: {got}"
    assert discs[-1] is got[-1], f"packets after the DISCONNECT: {got}"
    assert discs[-1].reason in reasons, (
        f"DISCONNECT reason 0x{discs[-1].reason:02x}, expected one of "
        f"{', '.join(f'0x{r:02x}' for r in sorted(reasons))}: {got}")
    return discs[-1]


def read_publishes(raw, n, timeout=5.0, ack=False):
    """Reads n PUBLISH packets (fails on anything else); with ack, QoS 1 ones are PUBACKed."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        try:
            p = raw.read_packet(max(deadline - time.monotonic(), 0.001))
        except TimeoutError:
            raise AssertionError(f"expected {n} PUBLISH packets within {timeout}s, got {out}")
        assert p.type == PUBLISH, f"expected PUBLISH, got {p!r} (after {out})"
        out.append(p)
        if ack and p.qos == 1:
            raw.ack(PUBACK, p.packet_id)
    return out


def raw_sub(raw, filt, qos=0, packet_id=1, sub_props=None):
    """SUBSCRIBE one filter; asserts the granted QoS."""
    p = raw.subscribe([(filt, qos)], packet_id=packet_id, props=sub_props)
    assert p.codes == [qos], f"SUBACK {p!r}"
    return p


# --------------------------------------------------------------------------------------------
# message expiry
# --------------------------------------------------------------------------------------------

def test_retained_message_is_not_delivered_after_its_expiry(broker, clients):
    """[MQTT-3.3.2-5]: once the Message Expiry Interval has passed, a message the Server has not
    started to deliver to a subscriber is deleted for it: a retained message with expiry 1 s is
    not sent to a subscriber arriving 2 s later, while one with a longer expiry still is."""
    base = unique_topic("expiry-ret")
    pub = paho5(broker, clients)
    pub.publish(f"{base}/short", b"short", qos=1, retain=True,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    pub.publish(f"{base}/long", b"long", qos=1, retain=True,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=60))
    time.sleep(2.2)
    sub = paho5(broker, clients)
    assert sub.subscribe(f"{base}/#", 1) == [1]
    m = sub.expect_one()
    assert (m.topic, m.payload, m.retain) == (f"{base}/long", b"long", True)
    sub.expect_none(0.7)


def test_forwarded_expiry_interval_is_reduced_by_the_time_waited(broker, clients):
    """[MQTT-3.3.2-6]: the PUBLISH sent to a client carries the received Message Expiry Interval
    minus the time the message waited in the Server (retained 10 s, fetched 2 s later: at most
    8 and, allowing for rounding, at least 6)."""
    topic = unique_topic("expiry-left")
    pub = paho5(broker, clients)
    pub.publish(topic, b"ten", qos=1, retain=True,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=10))
    time.sleep(2.1)
    raw, _ = raw5(broker, clients)
    raw_sub(raw, topic, 1)
    (p,) = read_publishes(raw, 1, ack=True)
    assert p.payload == b"ten" and p.retain
    left = p.props.get(P_MESSAGE_EXPIRY)
    assert left is not None, f"forwarded without its Message Expiry Interval: {p!r}"
    assert 6 <= left <= 8, f"expiry {left} s after waiting 2 s of 10 s: {p!r}"


def test_live_delivery_keeps_the_expiry_interval_and_no_expiry_stays_absent(broker, clients):
    """[MQTT-3.3.2-6]: a message forwarded at once carries its interval (minus ~0 s); a message
    published without one is forwarded without one (section 3.3.2.3.3: absent = no expiry)."""
    topic = unique_topic("expiry-live")
    raw, _ = raw5(broker, clients)
    raw_sub(raw, topic, 1)
    pub = paho5(broker, clients)
    pub.publish(topic, b"with", qos=1,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=30))
    pub.publish(topic, b"without", qos=1)
    p1, p2 = read_publishes(raw, 2, ack=True)
    assert p1.payload == b"with" and p1.props.get(P_MESSAGE_EXPIRY) in (29, 30), p1
    assert p2.payload == b"without" and P_MESSAGE_EXPIRY not in p2.props, p2


def test_queued_message_expires_for_an_offline_session(broker, clients):
    """[MQTT-3.3.2-5] / [MQTT-3.3.2-6]: messages queued for a disconnected persistent session:
    the one whose 1 s expiry passed while it was offline is never delivered; the other one is,
    with its interval reduced by the time it waited."""
    topic = unique_topic("expiry-queue")
    cid = unique_id("exq")
    raw, _ = raw5(broker, clients, client_id=cid, clean=True,
                  connect_props=[(P_SESSION_EXPIRY, 60)])
    raw_sub(raw, topic, 1)
    raw.disconnect()
    raw.expect_closed()
    pub = paho5(broker, clients)
    pub.publish(topic, b"short", qos=1,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    pub.publish(topic, b"long", qos=1,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=30))
    time.sleep(2.2)
    raw2, ack = raw5(broker, clients, client_id=cid, clean=False,
                     connect_props=[(P_SESSION_EXPIRY, 0)])
    assert ack.session_present
    (p,) = read_publishes(raw2, 1, ack=True)
    assert p.payload == b"long", f"the expired message was delivered: {p!r}"
    assert 26 <= p.props.get(P_MESSAGE_EXPIRY, -1) <= 28, p
    raw2.expect_nothing(0.7)


def test_message_held_back_by_receive_maximum_expires_before_it_is_sent(broker, clients):
    """[MQTT-3.3.2-5]: a message waiting for a Receive Maximum slot whose expiry passes before the
    broker starts sending it is never delivered: with Receive Maximum 1 and the first message
    unacknowledged for 2 s, the second (expiry 1 s) is skipped and the third follows."""
    topic = unique_topic("expiry-rmax")
    raw, _ = raw5(broker, clients, connect_props=[(P_RECEIVE_MAXIMUM, 1)])
    raw_sub(raw, topic, 1)
    pub = paho5(broker, clients)
    pub.publish(topic, b"first", qos=1)
    pub.publish(topic, b"expires", qos=1,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    pub.publish(topic, b"third", qos=1)
    (p0,) = read_publishes(raw, 1)
    assert p0.payload == b"first"
    time.sleep(2.2)
    raw.ack(PUBACK, p0.packet_id)
    (p1,) = read_publishes(raw, 1, ack=True)
    assert p1.payload == b"third", f"the expired message was sent: {p1!r}"
    raw.expect_nothing(0.5)


def test_retained_message_keeps_its_properties(broker, clients):
    """[MQTT-3.3.2-4] / [MQTT-3.3.2-15] / [MQTT-3.3.2-16] / [MQTT-3.3.2-17] / [MQTT-3.3.2-18] /
    [MQTT-3.3.2-20]: a retained message sent to a later subscriber carries the properties it was
    published with, unaltered and (User Properties) in order."""
    topic = unique_topic("ret-props")
    pub, _ = raw5(broker, clients)
    sent = [(P_PAYLOAD_FORMAT, 1), (P_CONTENT_TYPE, "text/plain"),
            (P_RESPONSE_TOPIC, topic + "/r"), (P_CORRELATION_DATA, b"\x00c"),
            (P_USER_PROPERTY, ("z", "1")), (P_USER_PROPERTY, ("a", "2"))]
    pub.publish(topic, b"kept", qos=1, packet_id=1, retain=True, props=sent)
    assert pub.expect(PUBACK).reason == 0
    raw, _ = raw5(broker, clients)
    raw_sub(raw, topic, 1)
    (p,) = read_publishes(raw, 1, ack=True)
    assert p.retain and p.payload == b"kept", p
    for pid in (P_PAYLOAD_FORMAT, P_CONTENT_TYPE, P_RESPONSE_TOPIC, P_CORRELATION_DATA):
        assert p.props.get(pid) == dict((k, v) for k, v in sent if k != P_USER_PROPERTY)[pid], p
    assert p.props.all(P_USER_PROPERTY) == [("z", "1"), ("a", "2")], p
    pub.publish(topic, b"", qos=1, packet_id=2, retain=True)
    pub.expect(PUBACK)


def test_will_message_is_published_with_its_properties(broker, clients):
    """[MQTT-3.1.3-10] (section 3.1.3.2): the Will is published with its Will Properties (Content
    Type, Response Topic, Correlation Data, Payload Format Indicator) unaltered and its User
    Properties in order, when the connection drops."""
    topic = unique_topic("will-props")
    watch, _ = raw5(broker, clients)
    raw_sub(watch, topic, 0)
    wprops = [(P_CONTENT_TYPE, "application/x-w"), (P_RESPONSE_TOPIC, topic + "/r"),
              (P_CORRELATION_DATA, b"\xff\x01"), (P_PAYLOAD_FORMAT, 1),
              (P_USER_PROPERTY, ("b", "1")), (P_USER_PROPERTY, ("a", "2")),
              (P_USER_PROPERTY, ("b", "3"))]
    w, _ = raw5(broker, clients, will={"topic": topic, "payload": b"gone", "props": wprops})
    w.close()
    (p,) = read_publishes(watch, 1)
    assert p.payload == b"gone", p
    for pid in (P_CONTENT_TYPE, P_RESPONSE_TOPIC, P_CORRELATION_DATA, P_PAYLOAD_FORMAT):
        assert p.props.get(pid) == dict((k, v) for k, v in wprops if k != P_USER_PROPERTY)[pid], p
    assert p.props.all(P_USER_PROPERTY) == [("b", "1"), ("a", "2"), ("b", "3")], p


# --------------------------------------------------------------------------------------------
# topic aliases, client -> server
# --------------------------------------------------------------------------------------------

def test_client_topic_alias_is_set_then_used_with_an_empty_topic(broker, clients):
    """[MQTT-3.3.2-12]: the Server accepts every Topic Alias from 1 to the Topic Alias Maximum of
    its CONNACK; a PUBLISH with topic + alias sets the mapping, later ones with an empty topic
    and the alias are routed to that topic (section 3.3.2.3.4)."""
    topic = unique_topic("alias-in")
    sub = paho5(broker, clients)
    assert sub.subscribe(topic, 1) == [1]
    raw, ack = raw5(broker, clients)
    amax = ack.props.get(P_TOPIC_ALIAS_MAXIMUM)
    assert amax and amax >= 1, f"CONNACK has no Topic Alias Maximum: {ack!r}"
    raw.publish(topic, b"set", qos=1, packet_id=1, props=[(P_TOPIC_ALIAS, amax)])
    assert raw.expect(PUBACK).reason == 0
    raw.publish("", b"use1", qos=1, packet_id=2, props=[(P_TOPIC_ALIAS, amax)])
    assert raw.expect(PUBACK).reason == 0
    raw.publish("", b"use2", qos=0, props=[(P_TOPIC_ALIAS, amax)])
    got = sub.expect(3)
    assert [(m.topic, m.payload) for m in got] == [(topic, b"set"), (topic, b"use1"), (topic, b"use2")]
    # the subscriber (no Topic Alias Maximum of its own) never sees the alias
    assert all(m.prop("TopicAlias") is None for m in got)


def test_every_client_alias_up_to_the_maximum_is_accepted_and_can_be_remapped(broker, clients):
    """[MQTT-3.3.2-12]: the Server accepts every Topic Alias from 1 to its Topic Alias Maximum
    (10 by default); a PUBLISH with a topic and an alias already in use replaces the mapping
    (section 3.3.2.3.4)."""
    base = unique_topic("alias-all")
    sub = paho5(broker, clients)
    assert sub.subscribe(f"{base}/#", 0) == [0]
    raw, ack = raw5(broker, clients)
    amax = ack.props.get(P_TOPIC_ALIAS_MAXIMUM)
    assert amax == 10, ack
    for a in range(1, amax + 1):
        raw.publish(f"{base}/{a}", b"set%d" % a, props=[(P_TOPIC_ALIAS, a)])
    for a in range(1, amax + 1):
        raw.publish("", b"use%d" % a, props=[(P_TOPIC_ALIAS, a)])
    raw.publish(f"{base}/new", b"remap", props=[(P_TOPIC_ALIAS, 1)])
    raw.publish("", b"after", props=[(P_TOPIC_ALIAS, 1)])
    got = [(m.topic, m.payload) for m in sub.expect(2 * amax + 2)]
    want = ([(f"{base}/{a}", b"set%d" % a) for a in range(1, amax + 1)]
            + [(f"{base}/{a}", b"use%d" % a) for a in range(1, amax + 1)]
            + [(f"{base}/new", b"remap"), (f"{base}/new", b"after")])
    assert got == want


def test_client_topic_alias_above_the_connack_maximum_is_disconnected_0x94(broker_factory, clients):
    """[MQTT-3.3.2-9] / [MQTT-3.2.2-17]: a client must not use a Topic Alias above the CONNACK's
    Topic Alias Maximum; the Server treats it as Topic Alias invalid: DISCONNECT 0x94 and close
    (section 3.3.2.3.4). Nothing is forwarded."""
    b = broker_factory("max_topic_alias 3\n")
    topic = unique_topic("alias-max")
    sub = paho5(b, clients)
    assert sub.subscribe(topic, 0) == [0]
    raw, ack = raw5(b, clients)
    assert ack.props.get(P_TOPIC_ALIAS_MAXIMUM) == 3, ack
    raw.publish(topic, b"ok", props=[(P_TOPIC_ALIAS, 3)])
    assert sub.expect_one().payload == b"ok"
    raw.publish(topic, b"bad", props=[(P_TOPIC_ALIAS, 4)])
    expect_disconnect(raw, 0x94)
    sub.expect_none(0.5)


def test_topic_alias_not_allowed_when_maximum_is_zero(broker_factory, clients):
    """[MQTT-3.2.2-17]: with `max_topic_alias 0` the CONNACK carries no Topic Alias Maximum (or 0)
    and any alias the client sends is above it: DISCONNECT 0x94."""
    b = broker_factory("max_topic_alias 0\n")
    raw, ack = raw5(b, clients)
    assert ack.props.get(P_TOPIC_ALIAS_MAXIMUM, 0) == 0, ack
    raw.publish(unique_topic("alias-none"), b"x", props=[(P_TOPIC_ALIAS, 1)])
    expect_disconnect(raw, 0x94)


def test_empty_topic_with_an_unknown_alias_is_a_protocol_error(broker, clients):
    """Section 3.3.2.3.4: an empty Topic Name needs a Topic Alias the receiver has a mapping for;
    an alias never set on this connection is a Protocol Error: DISCONNECT 0x82 (0x94 Topic Alias
    invalid is accepted too: the specification names no code for an unmapped alias)."""
    raw, _ = raw5(broker, clients)
    raw.publish("", b"x", props=[(P_TOPIC_ALIAS, 1)])
    expect_disconnect(raw, {0x82, 0x94})


def test_topic_alias_mapping_does_not_survive_the_connection(broker, clients):
    """[MQTT-3.3.2-7]: aliases are not carried from one Network Connection to the next, even for
    a resumed session: the alias set before the reconnect is unknown after it."""
    topic = unique_topic("alias-conn")
    cid = unique_id("alias")
    sub = paho5(broker, clients)
    assert sub.subscribe(topic, 0) == [0]
    raw, _ = raw5(broker, clients, client_id=cid, connect_props=[(P_SESSION_EXPIRY, 60)])
    raw.publish(topic, b"set", qos=1, packet_id=1, props=[(P_TOPIC_ALIAS, 1)])
    raw.expect(PUBACK)
    assert sub.expect_one().payload == b"set"
    raw.close()
    raw2, ack = raw5(broker, clients, client_id=cid, clean=False,
                     connect_props=[(P_SESSION_EXPIRY, 0)])
    assert ack.session_present
    raw2.publish("", b"stale", qos=1, packet_id=2, props=[(P_TOPIC_ALIAS, 1)])
    expect_disconnect(raw2, {0x82, 0x94})
    sub.expect_none(0.5)


# --------------------------------------------------------------------------------------------
# topic aliases, server -> client
# --------------------------------------------------------------------------------------------

def test_broker_uses_a_topic_alias_for_repeated_publishes_to_a_client(broker, clients):
    """Section 3.3.2.3.4 / [MQTT-3.3.2-11]: to a client that sent Topic Alias Maximum 5, the
    broker's repeated PUBLISHes on one topic use a Topic Alias (1..5): the first with the topic
    and the alias, the later ones with an empty topic and the same alias."""
    topic = unique_topic("alias-out")
    raw, _ = raw5(broker, clients, connect_props=[(P_TOPIC_ALIAS_MAXIMUM, 5)])
    raw_sub(raw, topic, 0)
    pub = paho5(broker, clients)
    for i in range(4):
        pub.publish(topic, f"m{i}".encode(), qos=1)
    ps = read_publishes(raw, 4)
    assert [p.payload for p in ps] == [b"m0", b"m1", b"m2", b"m3"]
    first = ps[0]
    alias = first.props.get(P_TOPIC_ALIAS)
    assert first.topic == topic, first
    assert alias is not None and 1 <= alias <= 5, f"first PUBLISH sets no alias: {first!r}"
    for p in ps[1:]:
        assert p.topic == "" and p.props.get(P_TOPIC_ALIAS) == alias, (
            f"repeated PUBLISH does not use alias {alias} with an empty topic: {p!r}")


def test_broker_topic_aliases_never_exceed_the_client_maximum(broker, clients):
    """[MQTT-3.3.2-11] / [MQTT-3.3.2-8]: the broker never sends a Topic Alias of 0 or above the
    client's Topic Alias Maximum (2 here, with 5 topics in turn), and every empty topic it sends
    resolves, through the aliases it set on this connection, to the message's real topic."""
    base = unique_topic("alias-cap")
    raw, _ = raw5(broker, clients, connect_props=[(P_TOPIC_ALIAS_MAXIMUM, 2)])
    raw_sub(raw, f"{base}/+", 0)
    pub = paho5(broker, clients)
    sent = []
    for rnd in range(3):
        for t in range(5):
            payload = f"{t}:{rnd}".encode()
            pub.publish(f"{base}/t{t}", payload, qos=1)
            sent.append((f"{base}/t{t}", payload))
    ps = read_publishes(raw, len(sent))
    mapping = {}
    used = 0
    for p, (topic, payload) in zip(ps, sent):
        assert p.payload == payload, (p, payload)
        alias = p.props.get(P_TOPIC_ALIAS)
        if alias is not None:
            used += 1
            assert 1 <= alias <= 2, f"alias {alias} outside 1..2: {p!r}"
            if p.topic:
                mapping[alias] = p.topic
        if p.topic == "":
            assert alias in mapping, f"empty topic with an alias never set: {p!r}"
            resolved = mapping[alias]
        else:
            resolved = p.topic
        assert resolved == topic, f"{p!r} resolves to {resolved!r}, published to {topic!r}"
    assert used, "no Topic Alias was used at all"


def test_redelivery_after_reconnect_does_not_use_the_old_connections_aliases(broker, clients):
    """[MQTT-3.3.2-7]: Topic Alias mappings end with the Network Connection; QoS 1 messages
    redelivered to a resumed session on a new connection must not rely on an alias set on the
    old one: each empty topic resolves through an alias set on the new connection."""
    topic = unique_topic("alias-redo")
    cid = unique_id("alias-redo")
    amax = [(P_TOPIC_ALIAS_MAXIMUM, 5)]
    raw, _ = raw5(broker, clients, client_id=cid, connect_props=amax + [(P_SESSION_EXPIRY, 60)])
    raw_sub(raw, topic, 1)
    pub = paho5(broker, clients)
    for i in range(3):
        pub.publish(topic, b"m%d" % i, qos=1)
    first = read_publishes(raw, 3)  # not acknowledged
    assert [p.payload for p in first] == [b"m0", b"m1", b"m2"]
    raw.close()
    raw2, ack = raw5(broker, clients, client_id=cid, clean=False, connect_props=amax)
    assert ack.session_present
    again = read_publishes(raw2, 3, ack=True)
    mapping = {}
    for p in again:
        alias = p.props.get(P_TOPIC_ALIAS)
        if p.topic:
            if alias is not None:
                mapping[alias] = p.topic
            resolved = p.topic
        else:
            assert alias in mapping, f"empty topic with an alias not set on this connection: {p!r}"
            resolved = mapping[alias]
        assert resolved == topic and p.dup, p
    assert [p.payload for p in again] == [b"m0", b"m1", b"m2"]


@pytest.mark.parametrize("connect_props", [None, [(P_TOPIC_ALIAS_MAXIMUM, 0)]],
                         ids=["absent", "zero"])
def test_broker_sends_no_topic_alias_when_client_maximum_is_zero(broker, clients, connect_props):
    """[MQTT-3.3.2-11] (section 3.1.2.11.5): a client that sends no Topic Alias Maximum, or 0,
    accepts no aliases: every PUBLISH carries the full topic and no Topic Alias."""
    topic = unique_topic("alias-off")
    raw, _ = raw5(broker, clients, connect_props=connect_props)
    raw_sub(raw, topic, 0)
    pub = paho5(broker, clients)
    for i in range(3):
        pub.publish(topic, b"x%d" % i, qos=1)
    for p in read_publishes(raw, 3):
        assert p.topic == topic and P_TOPIC_ALIAS not in p.props, p


# --------------------------------------------------------------------------------------------
# Receive Maximum
# --------------------------------------------------------------------------------------------

def test_client_receive_maximum_limits_qos1_publishes_in_flight(broker, clients):
    """[MQTT-3.3.4-9]: the broker sends at most Receive Maximum (2) QoS 1 PUBLISHes that the
    client has not acknowledged; the rest follow, in order, as PUBACKs free the slots."""
    topic = unique_topic("rmax1")
    raw, _ = raw5(broker, clients, connect_props=[(P_RECEIVE_MAXIMUM, 2)])
    raw_sub(raw, topic, 1)
    pub = paho5(broker, clients)
    for i in range(5):
        pub.publish(topic, b"m%d" % i, qos=1)
    p0, p1 = read_publishes(raw, 2)
    raw.expect_nothing(0.7)
    raw.ack(PUBACK, p0.packet_id)
    (p2,) = read_publishes(raw, 1)
    raw.expect_nothing(0.5)
    raw.ack(PUBACK, p1.packet_id)
    raw.ack(PUBACK, p2.packet_id)
    p3, p4 = read_publishes(raw, 2)
    assert [p.payload for p in (p0, p1, p2, p3, p4)] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    raw.ack(PUBACK, p3.packet_id)
    raw.ack(PUBACK, p4.packet_id)
    raw.expect_nothing(0.3)


def test_client_receive_maximum_counts_qos2_until_pubcomp(broker, clients):
    """[MQTT-3.3.4-9]: a QoS 2 PUBLISH occupies a Receive Maximum slot until PUBCOMP (a PUBREC
    with a success code does not free it): with Receive Maximum 1 the second message waits for
    the PUBCOMP of the first."""
    topic = unique_topic("rmax2")
    raw, _ = raw5(broker, clients, connect_props=[(P_RECEIVE_MAXIMUM, 1)])
    raw_sub(raw, topic, 2)
    pub = paho5(broker, clients)
    pub.publish(topic, b"a", qos=2)
    pub.publish(topic, b"b", qos=2)
    (p,) = read_publishes(raw, 1)
    assert p.payload == b"a" and p.qos == 2
    raw.ack(PUBREC, p.packet_id)
    rel = raw.expect(PUBREL)
    assert rel.packet_id == p.packet_id
    raw.expect_nothing(0.7)
    raw.ack(PUBCOMP, p.packet_id)
    (q,) = read_publishes(raw, 1)
    assert q.payload == b"b"


def test_connack_advertises_the_configured_receive_maximum(broker_factory, clients):
    """Section 3.2.2.3.3: the Server's Receive Maximum in CONNACK is its limit on concurrent QoS
    1/2 PUBLISHes from the client: `max_inflight_messages 5` -> Receive Maximum 5."""
    b = broker_factory("max_inflight_messages 5\n")
    _, ack = raw5(b, clients)
    assert ack.props.get(P_RECEIVE_MAXIMUM) == 5, ack


def test_client_exceeding_the_broker_receive_maximum_is_disconnected_0x93(broker_factory, clients):
    """[MQTT-3.3.4-7]: a client must not have more than the Server's Receive Maximum (5) QoS 2
    PUBLISHes without PUBCOMP; releasing one frees a slot, but a sixth unreleased one is Receive
    Maximum exceeded: DISCONNECT 0x93 and close (section 3.3.4)."""
    b = broker_factory("max_inflight_messages 5\n")
    topic = unique_topic("rmax-in")
    raw, ack = raw5(b, clients)
    assert ack.props.get(P_RECEIVE_MAXIMUM) == 5, ack
    for pid in range(1, 6):
        raw.publish(topic, b"x", qos=2, packet_id=pid)
    for pid in range(1, 6):
        rec = raw.expect(PUBREC)
        assert (rec.packet_id, rec.reason) == (pid, 0), rec
    raw.ack(PUBREL, 1)
    assert raw.expect(PUBCOMP).packet_id == 1
    raw.publish(topic, b"x", qos=2, packet_id=6)  # 5 in flight again: allowed
    assert raw.expect(PUBREC).packet_id == 6
    raw.publish(topic, b"x", qos=2, packet_id=7)  # the sixth unreleased
    expect_disconnect(raw, 0x93)


# --------------------------------------------------------------------------------------------
# Maximum Packet Size
# --------------------------------------------------------------------------------------------

def test_message_larger_than_client_maximum_packet_size_is_skipped(broker, clients):
    """[MQTT-3.1.2-24] / [MQTT-3.1.2-25]: the Server never sends a packet larger than the client's
    Maximum Packet Size (100): a larger message is discarded for that client as if sent (it does
    not block the ones after it), a smaller one arrives; another subscriber gets both."""
    topic = unique_topic("mps")
    raw, _ = raw5(broker, clients, connect_props=[(P_MAXIMUM_PACKET_SIZE, 100)])
    raw_sub(raw, topic, 1)
    other = paho5(broker, clients)
    assert other.subscribe(topic, 1) == [1]
    pub = paho5(broker, clients)
    big = b"B" * 200
    pub.publish(topic, big, qos=1)
    pub.publish(topic, b"small", qos=1)
    pub.publish(topic, b"small2", qos=0)
    got = read_publishes(raw, 2, ack=True)
    assert [p.payload for p in got] == [b"small", b"small2"], got
    for p in got:
        assert len(p.raw) <= 100, p
    raw.expect_nothing(0.7)
    assert [m.payload for m in other.expect(3)] == [big, b"small", b"small2"]


def test_retained_message_larger_than_client_maximum_packet_size_is_skipped(broker, clients):
    """[MQTT-3.1.2-24] / [MQTT-3.1.2-25]: retained messages sent on SUBSCRIBE obey the client's
    Maximum Packet Size (100) too: the 300-byte one is skipped, the small one arrives."""
    base = unique_topic("mps-ret")
    pub = paho5(broker, clients)
    pub.publish(f"{base}/big", b"B" * 300, qos=1, retain=True)
    pub.publish(f"{base}/small", b"s", qos=1, retain=True)
    raw, _ = raw5(broker, clients, connect_props=[(P_MAXIMUM_PACKET_SIZE, 100)])
    raw_sub(raw, f"{base}/#", 1)
    (p,) = read_publishes(raw, 1, ack=True)
    assert (p.topic, p.payload, p.retain) == (f"{base}/small", b"s", True), p
    raw.expect_nothing(0.7)
    pub.publish(f"{base}/big", b"", qos=1, retain=True)
    pub.publish(f"{base}/small", b"", qos=1, retain=True)


def test_broker_maximum_packet_size_is_advertised_and_enforced_0x95(broker_factory, clients):
    """Section 3.2.2.3.6 / [MQTT-3.2.2-15]: `max_packet_size 1000` is sent as Maximum Packet Size
    1000 in CONNACK; a client sending a 2000-byte PUBLISH gets DISCONNECT 0x95 (Packet too
    large) and the message is not forwarded; a 500-byte one before it was."""
    b = broker_factory("max_packet_size 1000\n")
    topic = unique_topic("mps-in")
    sub = paho5(b, clients)
    assert sub.subscribe(topic, 0) == [0]
    raw, ack = raw5(b, clients)
    assert ack.props.get(P_MAXIMUM_PACKET_SIZE) == 1000, ack
    raw.publish(topic, b"o" * 500)
    assert sub.expect_one().payload == b"o" * 500
    raw.publish(topic, b"x" * 2000)
    expect_disconnect(raw, 0x95)
    sub.expect_none(0.5)


# --------------------------------------------------------------------------------------------
# subscription identifiers
# --------------------------------------------------------------------------------------------

def test_message_carries_the_subscription_identifier(broker, clients):
    """[MQTT-3.3.4-3]: a message delivered through a subscription made with Subscription
    Identifier 7 carries 7; another client's subscription without one gets none."""
    topic = unique_topic("subid")
    sub = paho5(broker, clients)
    assert sub.subscribe(topic, 1, properties=props(PacketTypes.SUBSCRIBE,
                                                    SubscriptionIdentifier=7)) == [1]
    plain = paho5(broker, clients)
    assert plain.subscribe(topic, 1) == [1]
    pub = paho5(broker, clients)
    pub.publish(topic, b"x", qos=1)
    assert sub.expect_one().subscription_ids == [7]
    assert plain.expect_one().subscription_ids == []


def test_overlapping_subscriptions_deliver_one_message_with_both_identifiers(broker, clients):
    """[MQTT-3.3.4-2] / [MQTT-3.3.4-4]: with overlapping subscriptions (ids 1 and 2) the broker
    sends one copy (the design's choice, section 3.3.4 allows either) at the highest granted QoS,
    carrying both Subscription Identifiers."""
    base = unique_topic("subid2")
    raw, _ = raw5(broker, clients)
    raw_sub(raw, f"{base}/#", 0, packet_id=1, sub_props=[(P_SUBSCRIPTION_ID, 1)])
    raw_sub(raw, f"{base}/+", 1, packet_id=2, sub_props=[(P_SUBSCRIPTION_ID, 2)])
    pub = paho5(broker, clients)
    pub.publish(f"{base}/x", b"x", qos=1)
    (p,) = read_publishes(raw, 1, ack=True)
    assert p.qos == 1, p
    assert sorted(p.props.all(P_SUBSCRIPTION_ID)) == [1, 2], p
    raw.expect_nothing(0.7)


def test_resubscribe_replaces_the_subscription_identifier(broker, clients):
    """[MQTT-3.8.4-3] / [MQTT-3.3.4-3]: subscribing again to the same filter replaces the
    subscription, its Subscription Identifier included: only the new id (6) is sent."""
    topic = unique_topic("subid-re")
    raw, _ = raw5(broker, clients)
    raw_sub(raw, topic, 0, packet_id=1, sub_props=[(P_SUBSCRIPTION_ID, 5)])
    raw_sub(raw, topic, 0, packet_id=2, sub_props=[(P_SUBSCRIPTION_ID, 6)])
    pub = paho5(broker, clients)
    pub.publish(topic, b"x", qos=1)
    (p,) = read_publishes(raw, 1)
    assert p.props.all(P_SUBSCRIPTION_ID) == [6], p
    raw.expect_nothing(0.5)


def test_retained_message_carries_the_subscription_identifier(broker, clients):
    """[MQTT-3.3.4-3]: a retained message sent because of a new subscription carries that
    subscription's identifier."""
    topic = unique_topic("subid-ret")
    pub = paho5(broker, clients)
    pub.publish(topic, b"ret", qos=1, retain=True)
    raw, _ = raw5(broker, clients)
    raw_sub(raw, topic, 1, sub_props=[(P_SUBSCRIPTION_ID, 268435455)])
    (p,) = read_publishes(raw, 1, ack=True)
    assert p.retain and p.props.all(P_SUBSCRIPTION_ID) == [268435455], p
    pub.publish(topic, b"", qos=1, retain=True)


def test_subscription_identifier_zero_is_a_protocol_error(broker, clients):
    """Section 3.8.2.1.2: a Subscription Identifier of 0 is a Protocol Error: DISCONNECT 0x82."""
    raw, _ = raw5(broker, clients)
    raw.send(subscribe_packet(1, [(unique_topic("subid0"), 0)], 5, [(P_SUBSCRIPTION_ID, 0)]))
    expect_disconnect(raw, 0x82)


def test_publish_from_client_with_subscription_identifier_is_a_protocol_error(broker, clients):
    """[MQTT-3.3.4-6]: a PUBLISH from a client must not contain a Subscription Identifier; the
    broker treats it as a Protocol Error: DISCONNECT 0x82, nothing forwarded."""
    topic = unique_topic("subid-pub")
    sub = paho5(broker, clients)
    assert sub.subscribe(topic, 0) == [0]
    raw, _ = raw5(broker, clients)
    raw.publish(topic, b"x", props=[(P_SUBSCRIPTION_ID, 3)])
    expect_disconnect(raw, 0x82)
    sub.expect_none(0.5)


# --------------------------------------------------------------------------------------------
# No Local
# --------------------------------------------------------------------------------------------

def test_no_local_subscription_does_not_receive_its_own_messages(broker, clients):
    """[MQTT-3.8.3-3]: with No Local set, messages published by the same client id are not
    forwarded to it; other clients' messages are."""
    topic = unique_topic("nolocal")
    me = paho5(broker, clients)
    assert me.subscribe(topic, options=sub_opts(qos=1, no_local=True)) == [1]
    me.publish(topic, b"mine", qos=1)
    me.expect_none(0.7)
    other = paho5(broker, clients)
    other.publish(topic, b"theirs", qos=1)
    m = me.expect_one()
    assert m.payload == b"theirs"
    me.expect_none(0.3)


# --------------------------------------------------------------------------------------------
# properties passed through
# --------------------------------------------------------------------------------------------

def test_response_topic_and_correlation_data_are_forwarded_unaltered(broker, clients):
    """[MQTT-3.3.2-15] / [MQTT-3.3.2-16]: the Server sends the Response Topic and the Correlation
    Data (binary, here with NUL and 0xFF bytes) unaltered to every subscriber."""
    topic = unique_topic("req")
    resp = unique_topic("resp") + "/reply"
    corr = bytes([0, 1, 2, 0xFF, 0x80, 0x7F]) + b"id-42"
    raw, _ = raw5(broker, clients)
    raw_sub(raw, topic, 1)
    sub = paho5(broker, clients)
    assert sub.subscribe(topic, 1) == [1]
    pub, _ = raw5(broker, clients)
    pub.publish(topic, b"request", qos=1, packet_id=9,
                props=[(P_RESPONSE_TOPIC, resp), (P_CORRELATION_DATA, corr)])
    assert pub.expect(PUBACK).packet_id == 9
    (p,) = read_publishes(raw, 1, ack=True)
    assert p.props.get(P_RESPONSE_TOPIC) == resp and p.props.get(P_CORRELATION_DATA) == corr, p
    m = sub.expect_one()
    assert m.prop("ResponseTopic") == resp and m.prop("CorrelationData") == corr


def test_user_properties_are_forwarded_unaltered_and_in_order(broker, clients):
    """[MQTT-3.3.2-17] / [MQTT-3.3.2-18]: every User Property is forwarded unaltered, in the order
    received, repeated names and empty strings included."""
    topic = unique_topic("userprops")
    ups = [("k", "1"), ("a", "x"), ("k", "2"), ("", ""), ("\u00fcn\u00efc\u00f6de", "\u2713 ok"),
           ("k", "1")]
    raw, _ = raw5(broker, clients)
    raw_sub(raw, topic, 0)
    pub, _ = raw5(broker, clients)
    pub.publish(topic, b"x", props=[(P_USER_PROPERTY, u) for u in ups])
    (p,) = read_publishes(raw, 1)
    assert p.props.all(P_USER_PROPERTY) == ups, p


def test_content_type_and_payload_format_indicator_are_forwarded_unaltered(broker, clients):
    """[MQTT-3.3.2-4] / [MQTT-3.3.2-20]: the Payload Format Indicator and the Content Type are
    forwarded unaltered (and not invented for a message that had none)."""
    topic = unique_topic("ctype")
    raw, _ = raw5(broker, clients)
    raw_sub(raw, topic, 0)
    pub, _ = raw5(broker, clients)
    ctype = "application/json; charset=utf-8"
    pub.publish(topic, '{"t": "\u00e9"}'.encode(),
                props=[(P_PAYLOAD_FORMAT, 1), (P_CONTENT_TYPE, ctype)])
    pub.publish(topic, b"\xff\x00binary", props=[(P_PAYLOAD_FORMAT, 0)])
    pub.publish(topic, b"plain")
    p1, p2, p3 = read_publishes(raw, 3)
    assert p1.props.get(P_PAYLOAD_FORMAT) == 1 and p1.props.get(P_CONTENT_TYPE) == ctype, p1
    assert p1.payload == '{"t": "\u00e9"}'.encode()
    assert p2.props.get(P_PAYLOAD_FORMAT, 0) == 0 and P_CONTENT_TYPE not in p2.props, p2
    assert p2.payload == b"\xff\x00binary"
    assert P_PAYLOAD_FORMAT not in p3.props and P_CONTENT_TYPE not in p3.props, p3


# --------------------------------------------------------------------------------------------
# CONNECT / CONNACK / AUTH
# --------------------------------------------------------------------------------------------

def test_empty_client_id_gets_a_fresh_assigned_client_identifier(broker, clients):
    """[MQTT-3.2.2-16]: a zero-length Client Identifier is answered with an Assigned Client
    Identifier that no other session uses: two such clients get different ids and both stay
    connected (neither takes the other over)."""
    a, ack_a = raw5(broker, clients, client_id="")
    b, ack_b = raw5(broker, clients, client_id="")
    id_a, id_b = ack_a.props.get(P_ASSIGNED_CLIENT_ID), ack_b.props.get(P_ASSIGNED_CLIENT_ID)
    assert id_a and id_b and id_a != id_b, (ack_a, ack_b)
    assert a.is_open(0.3) and b.is_open(0.1)
    # a client that names its id gets none assigned
    _, ack_c = raw5(broker, clients, client_id=unique_id("named"))
    assert P_ASSIGNED_CLIENT_ID not in ack_c.props, ack_c


def test_connect_with_an_unsupported_authentication_method_is_refused(broker, clients):
    """[MQTT-4.12.0-1]: a Server that does not support the Authentication Method refuses with
    CONNACK 0x8C (Bad authentication method) or 0x87 (Not authorized) and closes."""
    raw = RawClient(broker, 5)
    clients.append(raw)
    ack = raw.connect(expect_rc=None,
                      props=[(P_AUTH_METHOD, "SCRAM-SHA-1"), (P_AUTH_DATA, b"client-first")])
    assert ack.reason in (0x8C, 0x87), ack
    assert P_AUTH_METHOD not in ack.props, ack
    raw.expect_closed()


def test_auth_packet_without_an_authentication_method_is_disconnected(broker, clients):
    """[MQTT-4.12.0-7]: a client that sent no Authentication Method in CONNECT must not send
    AUTH; the broker disconnects it: DISCONNECT 0x8C (Bad authentication method) or 0x82
    (Protocol Error), and close."""
    raw, _ = raw5(broker, clients)
    raw.send(auth_packet(0x19, [(P_AUTH_METHOD, "SCRAM-SHA-1")]))
    expect_disconnect(raw, {0x8C, 0x82})


def test_request_problem_information_0_suppresses_reason_strings_on_acks(broker, clients):
    """[MQTT-3.1.2-29]: with Request Problem Information 0 the Server sends no Reason String or
    User Property on packets other than PUBLISH, CONNACK and DISCONNECT: checked on a SUBACK
    with a failure code and an UNSUBACK with 0x11."""
    P_REQUEST_PROBLEM_INFO = 0x17
    P_REASON_STRING = 0x1F
    base = unique_topic("rpi")
    raw, _ = raw5(broker, clients, connect_props=[(P_REQUEST_PROBLEM_INFO, 0)])
    p = raw.subscribe([(f"{base}/#/bad", 1)], packet_id=2)
    assert p.codes and p.codes[0] >= 0x80, p
    assert P_REASON_STRING not in p.props and P_USER_PROPERTY not in p.props, p
    raw.send(unsubscribe_packet(3, [f"{base}/none"], 5))
    u = raw.expect(UNSUBACK)
    assert u.codes == [0x11], u
    assert P_REASON_STRING not in u.props and P_USER_PROPERTY not in u.props, u


def test_connack_properties_of_the_default_listener(broker, clients):
    """Section 3.2.2.3: CONNACK properties are consistent: Topic Alias Maximum present (default
    10); no Maximum QoS when QoS 2 is supported (only 0 or 1 are valid values); Retain, Wildcard,
    Subscription Identifier and Shared Subscription Available absent or 1; no Authentication
    Method for a client that sent none ([MQTT-4.12.0-6]); no property twice (other than User
    Property)."""
    _, ack = raw5(broker, clients)
    ids = [k for k, _ in ack.props if k != P_USER_PROPERTY]
    assert len(ids) == len(set(ids)), f"a property twice: {ack!r}"
    assert ack.props.get(P_TOPIC_ALIAS_MAXIMUM) == 10, ack
    assert P_MAXIMUM_QOS not in ack.props, ack
    for pid in (P_RETAIN_AVAILABLE, P_WILDCARD_SUB_AVAILABLE, P_SUB_ID_AVAILABLE,
                P_SHARED_SUB_AVAILABLE):
        assert ack.props.get(pid, 1) == 1, ack
    assert P_AUTH_METHOD not in ack.props, ack
    assert ack.props.get(P_RECEIVE_MAXIMUM, 65535) >= 1, ack


def test_max_qos_1_listener_advertises_it_and_caps_granted_qos(broker_factory, clients):
    """[MQTT-3.2.2-9] / [MQTT-3.2.2-10] / [MQTT-3.8.4-7]: on a `max_qos 1` listener CONNACK has
    Maximum QoS 1, a SUBSCRIBE asking QoS 2 is accepted and granted 1, and a QoS 2 message is
    delivered at QoS 1."""
    b = broker_factory("max_qos 1\n")
    topic = unique_topic("maxqos")
    raw, ack = raw5(b, clients)
    assert ack.props.get(P_MAXIMUM_QOS) == 1, ack
    p = raw.subscribe([(topic, 2), (topic + "/0", 0)], packet_id=3)
    assert p.codes == [1, 0], p
    pub = paho5(b, clients)
    pub.publish(topic, b"x", qos=1)
    (m,) = read_publishes(raw, 1, ack=True)
    assert m.qos == 1


def test_max_qos_1_listener_refuses_a_qos2_will_0x9b(broker_factory, clients):
    """[MQTT-3.2.2-12]: a CONNECT whose Will QoS exceeds the Server's Maximum QoS is refused:
    CONNACK 0x9B (QoS not supported), then close."""
    b = broker_factory("max_qos 1\n")
    raw = RawClient(b, 5)
    clients.append(raw)
    ack = raw.connect(expect_rc=None, will={"topic": unique_topic("will2"), "payload": b"w",
                                            "qos": 2})
    assert ack.reason == 0x9B, ack
    raw.expect_closed()


def test_suback_reason_codes_for_invalid_filters(broker, clients):
    """Section 3.9.3 / [MQTT-3.8.4-6]: SUBACK has one reason code per filter, in order; filters that
    misuse wildcards ([MQTT-4.7.1-1], [MQTT-4.7.1-2]) get 0x8F (Topic Filter invalid) while the
    valid filter beside them is granted; the connection stays usable."""
    base = unique_topic("suback")
    raw, _ = raw5(broker, clients)
    p = raw.subscribe([(f"{base}/#/x", 1), (f"{base}/ok", 1), (f"{base}/a+", 2),
                       (f"{base}/#", 2)], packet_id=4)
    assert p.codes == [0x8F, 1, 0x8F, 2], p
    pub = paho5(broker, clients)
    pub.publish(f"{base}/ok", b"x", qos=1)
    got = read_publishes(raw, 1, ack=True)
    assert got[0].payload == b"x"


def test_unsuback_reason_codes(broker, clients):
    """Section 3.11.3 / [MQTT-3.11.3-1]: UNSUBACK has one reason code per filter: 0x00 for a
    subscription that was removed, 0x11 (No subscription existed) for one that was not there."""
    base = unique_topic("unsuback")
    raw, _ = raw5(broker, clients)
    raw_sub(raw, f"{base}/a", 1)
    raw.send(unsubscribe_packet(5, [f"{base}/a", f"{base}/never", f"{base}/a"], 5))
    p = raw.expect(UNSUBACK)
    assert p.packet_id == 5 and p.codes == [0x00, 0x11, 0x11], p


def test_retain_unavailable_is_advertised_and_retained_publish_disconnects_0x9a(
        broker_factory, clients):
    """[MQTT-3.2.2-14]: with `retain_available false` CONNACK has Retain Available 0; a retained
    PUBLISH is then a Protocol Error: DISCONNECT 0x9A (Retain not supported), not forwarded.
    A non-retained PUBLISH is fine."""
    b = broker_factory("retain_available false\n")
    topic = unique_topic("noretain")
    sub = paho5(b, clients)
    assert sub.subscribe(topic, 0) == [0]
    raw, ack = raw5(b, clients)
    assert ack.props.get(P_RETAIN_AVAILABLE) == 0, ack
    raw.publish(topic, b"plain", qos=1, packet_id=1)
    assert raw.expect(PUBACK).reason == 0
    assert sub.expect_one().payload == b"plain"
    raw.publish(topic, b"kept", qos=1, packet_id=2, retain=True)
    expect_disconnect(raw, 0x9A)
    sub.expect_none(0.5)


def test_retain_unavailable_refuses_a_retained_will_0x9a(broker_factory, clients):
    """[MQTT-3.2.2-13]: when retained messages are not supported, a CONNECT whose Will has Will
    Retain 1 is refused (CONNACK 0x9A) and the connection closed."""
    b = broker_factory("retain_available false\n")
    raw = RawClient(b, 5)
    clients.append(raw)
    ack = raw.connect(expect_rc=None,
                      will={"topic": unique_topic("will"), "payload": b"w", "retain": True})
    assert ack.reason == 0x9A, ack
    raw.expect_closed()


def test_server_keep_alive_when_client_asks_more_than_max_keepalive(broker_factory, clients):
    """[MQTT-3.2.2-21] (section 3.2.2.3.14): with `max_keepalive 10` a client asking 60 s gets
    Server Keep Alive 10 in CONNACK; one asking 5 s keeps its own (no Server Keep Alive, or 5)."""
    b = broker_factory("max_keepalive 10\n")
    _, ack = raw5(b, clients, keepalive=60)
    assert ack.props.get(P_SERVER_KEEP_ALIVE) == 10, ack
    _, ack5 = raw5(b, clients, keepalive=5)
    assert ack5.props.get(P_SERVER_KEEP_ALIVE, 5) == 5, ack5


# --------------------------------------------------------------------------------------------
# DISCONNECT with reason codes, both ways
# --------------------------------------------------------------------------------------------

def test_server_disconnects_a_silent_client_with_0x8d(broker, clients):
    """[MQTT-3.1.2-22] / section 3.14.2.1: a client silent for 1.5 x its Keep Alive (1 s) is
    disconnected with DISCONNECT 0x8D (Keep Alive timeout)."""
    raw, _ = raw5(broker, clients, keepalive=1)
    start = time.monotonic()
    expect_disconnect(raw, 0x8D, timeout=5)
    assert time.monotonic() - start >= 1.2


def test_client_disconnect_0x04_publishes_the_will_and_0x00_does_not(broker, clients):
    """[MQTT-3.14.4-3]: DISCONNECT 0x00 discards the Will; section 3.14.2.1: DISCONNECT 0x04
    (Disconnect with Will Message) has the Server publish it."""
    topic = unique_topic("will")
    watch = paho5(broker, clients)
    assert watch.subscribe(f"{topic}/#", 0) == [0]
    a, _ = raw5(broker, clients, will={"topic": f"{topic}/a", "payload": b"will-a"})
    a.disconnect(0x00)
    a.expect_closed()
    watch.expect_none(0.7)
    b, _ = raw5(broker, clients, will={"topic": f"{topic}/b", "payload": b"will-b"})
    b.disconnect(0x04)
    b.expect_closed()
    m = watch.expect_one()
    assert (m.topic, m.payload) == (f"{topic}/b", b"will-b")


def test_client_disconnect_can_end_the_session_with_session_expiry_zero(broker, clients):
    """Section 3.14.2.2.2: the Session Expiry Interval in the client's DISCONNECT replaces the one
    from CONNECT: CONNECT with 60 s then DISCONNECT with 0 ends the session (no session present
    on the next connect)."""
    cid = unique_id("disc-exp")
    raw, _ = raw5(broker, clients, client_id=cid, connect_props=[(P_SESSION_EXPIRY, 60)])
    raw_sub(raw, unique_topic("disc-exp"), 1)
    raw.disconnect(0x00, [(P_SESSION_EXPIRY, 0)])
    raw.expect_closed()
    _, ack = raw5(broker, clients, client_id=cid, clean=False)
    assert ack.session_present is False, ack


def test_client_disconnect_setting_expiry_after_zero_is_a_protocol_error(broker, clients):
    """Section 3.14.2.2.2: if CONNECT had Session Expiry 0, a non-zero Session Expiry in the
    client's DISCONNECT is a Protocol Error: the broker may answer DISCONNECT 0x82, closes, and
    the session is not kept."""
    cid = unique_id("disc-bad")
    raw, _ = raw5(broker, clients, client_id=cid)
    raw_sub(raw, unique_topic("disc-bad"), 1)
    raw.disconnect(0x00, [(P_SESSION_EXPIRY, 60)])
    got = raw.expect_closed()
    assert all(p.type == DISCONNECT and p.reason == 0x82 for p in got), got
    _, ack = raw5(broker, clients, client_id=cid, clean=False)
    assert ack.session_present is False, ack

"""Sessions: persistence across connections (3.1.1 Clean Session 0, v5 Session Expiry Interval),
clean start, identity, redelivery of unacknowledged QoS 1/2 with DUP and of PUBREL, the bounded
offline queue (max_queued_messages / max_queued_bytes and their $SYS drop counters), takeover, and
Message Expiry of queued messages.

Normative ids: "3.1.1 [MQTT-x]" for MQTT 3.1.1, "v5 [MQTT-x]" for MQTT 5.0.
"""
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from paho.mqtt.packettypes import PacketTypes

from conftest import TIDEMQ_BIN
from helpers import (
    DISCONNECT, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, MQTTv311, MQTTv5,
    P_MESSAGE_EXPIRY, P_SESSION_EXPIRY, Client, RawClient, props, run_pub, run_sub, unique_id,
    unique_topic,
)

BOTH = pytest.mark.parametrize("proto", [MQTTv311, MQTTv5], ids=["v311", "v5"])
VERSIONS = pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])


# --------------------------------------------------------------------------------------------
# helpers (local to this file)
# --------------------------------------------------------------------------------------------

def persistent(broker, proto, cid, expiry=300, username=None, clean=False):
    """A paho client whose session outlives the connection: 3.1.1 Clean Session 0, v5 Clean
    Start 0 with Session Expiry `expiry`."""
    p = props(PacketTypes.CONNECT, SessionExpiryInterval=expiry) if proto == MQTTv5 else None
    return Client(broker, cid, proto, clean=clean, username=username, properties=p)


def raw_persistent(broker, version, cid, expiry=300, clean=False):
    """A raw connection whose session outlives it; returns (client, CONNACK)."""
    raw = RawClient(broker, version)
    kw = {"props": [(P_SESSION_EXPIRY, expiry)]} if version == 5 else {}
    ack = raw.connect(client_id=cid, clean=clean, **kw)
    return raw, ack


def publisher(broker, clients, proto=MQTTv5):
    c = Client(broker, protocol=proto)
    clients.append(c)
    return c


def read_publishes(raw, n, timeout=5.0):
    """Reads packets until n PUBLISH arrived (fails on anything else)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        p = raw.read_packet(max(deadline - time.monotonic(), 0.001))
        assert p.type == PUBLISH, f"expected PUBLISH, got {p!r} (after {got})"
        got.append(p)
    return got


def ack_all(raw, pubs):
    """Completes the QoS flows of received PUBLISH packets (PUBACK, or PUBREC/PUBREL/PUBCOMP)."""
    for p in pubs:
        if p.qos == 1:
            raw.ack(PUBACK, p.packet_id)
        elif p.qos == 2:
            raw.ack(PUBREC, p.packet_id)
            rel = raw.expect(PUBREL)
            assert rel.packet_id == p.packet_id, rel
            raw.ack(PUBCOMP, p.packet_id)


class SysLimits:
    """A paho client on $SYS/broker/limits/# keeping the latest value of each counter."""

    def __init__(self, broker, clients):
        self.values = {}
        self.cond = threading.Condition()
        self.client = Client(broker, protocol=MQTTv311, connect=False)
        self.client.paho.on_message = self._on_message
        clients.append(self.client)
        self.client.connect()
        assert self.client.subscribe("$SYS/broker/limits/#", 0) == [0]

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.values[msg.topic.rsplit("/", 1)[-1]] = msg.payload.decode()
            self.cond.notify_all()

    def wait(self, name, pred, timeout=5.0):
        """Waits until counter `name` satisfies pred; returns its value."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                v = self.values.get(name)
                if v is not None and pred(int(v)):
                    return int(v)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"$SYS/broker/limits/{name} = {v!r}, condition not met "
                                         f"within {timeout}s; all: {self.values}")
                self.cond.wait(left)


# --------------------------------------------------------------------------------------------
# 3.1.1 Clean Session 0
# --------------------------------------------------------------------------------------------

def test_v311_clean_session_0_keeps_subscriptions_and_queues_qos1_qos2(broker, clients):
    """3.1.1 [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-3.2.2-2]: with Clean Session 0 the session
    (subscriptions) survives the disconnection, QoS 1 and 2 messages matching its subscriptions
    are stored while it is offline and delivered on reconnect, with Session Present 1. QoS 0
    messages are not queued for an offline client (Mosquitto's default; 3.1.1 section 3.1.2.4
    makes it optional)."""
    cid = unique_id("cs0")
    topic = unique_topic("cs0")
    c = persistent(broker, MQTTv311, cid)
    assert c.session_present is False  # [MQTT-3.2.2-3] no session yet
    assert c.subscribe(topic, 2) == [2]
    c.disconnect()

    pub = publisher(broker, clients, MQTTv311)
    pub.publish(topic, b"q0", qos=0)
    pub.publish(topic, b"q1", qos=1)
    pub.publish(topic, b"q2", qos=2)

    c2 = persistent(broker, MQTTv311, cid)
    clients.append(c2)
    assert c2.session_present is True
    got = c2.expect(2)
    assert [(m.payload, m.qos) for m in got] == [(b"q1", 1), (b"q2", 2)], got
    c2.expect_none(0.5)
    # the subscription is still there for live messages
    pub.publish(topic, b"live", qos=1)
    assert c2.expect_one().payload == b"live"


def test_v311_queued_messages_delivered_to_mosquitto_sub_session(broker, clients):
    """3.1.1 [MQTT-3.1.2-5]: mosquitto_sub -c (Clean Session 0) reconnecting with a fixed id gets
    the QoS 1 messages mosquitto_pub published while it was away, in order."""
    cid = unique_id("msub")
    topic = unique_topic("msub")
    c = persistent(broker, MQTTv311, cid)  # the session and its subscription
    assert c.subscribe(topic, 1) == [1]
    c.disconnect()
    run_pub(broker, topic, "away-1", qos=1)
    run_pub(broker, topic, "away-2", qos=1)
    lines = run_sub(broker, topic, count=2, qos=1, timeout=5, extra=["-c", "-i", cid])
    assert lines == [f"{topic} away-1", f"{topic} away-2"], lines


# --------------------------------------------------------------------------------------------
# v5 Session Expiry Interval
# --------------------------------------------------------------------------------------------

def test_v5_session_kept_within_expiry_and_gone_after_it(broker, clients):
    """v5 [MQTT-3.1.2-23] [MQTT-3.2.2-3]: a session with Session Expiry Interval 2 s is kept
    after the close (reconnect after 0.5 s: Session Present 1, queued message delivered) and
    discarded once the interval has passed (reconnect after 3 s: Session Present 0, no
    subscription left)."""
    cid = unique_id("se")
    topic = unique_topic("se")
    c = persistent(broker, MQTTv5, cid, expiry=2)
    assert c.subscribe(topic, 1) == [1]
    c.disconnect()
    pub = publisher(broker, clients)
    pub.publish(topic, b"kept", qos=1)
    time.sleep(0.5)
    c2 = persistent(broker, MQTTv5, cid, expiry=2)
    assert c2.session_present is True
    assert c2.expect_one().payload == b"kept"
    c2.disconnect()
    time.sleep(3.0)
    c3 = Client(broker, cid, MQTTv5, clean=False)
    clients.append(c3)
    assert c3.session_present is False
    pub.publish(topic, b"after-expiry", qos=1)
    c3.expect_none(0.5)


def test_v5_session_expiry_counts_from_the_close_and_restarts_on_resume(broker, clients):
    """v5 [MQTT-3.1.2-23] / section 3.1.2.11.2: the Session Expiry Interval runs from the close of
    the network connection - not while connected (connected 2.5 s with expiry 2 s, then a
    reconnect right after the close finds the session) - and a resumed session's clock starts
    again at its next close (two absences of 1.2 s each, 2.4 s in all, with expiry 2 s)."""
    cid = unique_id("seclock")
    topic = unique_topic("seclock")
    c = persistent(broker, MQTTv5, cid, expiry=2)
    assert c.subscribe(topic, 1) == [1]
    time.sleep(2.5)
    c.disconnect()
    c2 = persistent(broker, MQTTv5, cid, expiry=2)
    assert c2.session_present is True
    c2.disconnect()
    time.sleep(1.2)
    c3 = persistent(broker, MQTTv5, cid, expiry=2)
    assert c3.session_present is True
    c3.disconnect()
    time.sleep(1.2)
    c4 = persistent(broker, MQTTv5, cid, expiry=2)
    clients.append(c4)
    assert c4.session_present is True
    pub = publisher(broker, clients)
    pub.publish(topic, b"still-subscribed", qos=1)
    assert c4.expect_one().payload == b"still-subscribed"


@BOTH
def test_session_expiry_zero_ends_session_at_disconnect(broker, clients, proto):
    """v5 section 3.1.2.11.2 / [MQTT-3.2.2-3]: Session Expiry 0 (absent) ends the session at the
    close: a Clean Start 0 reconnect gets Session Present 0 and no subscription. 3.1.1
    [MQTT-3.1.2-6]: a Clean Session 1 session lasts as long as the connection likewise."""
    cid = unique_id("se0")
    topic = unique_topic("se0")
    c = Client(broker, cid, proto, clean=(proto == MQTTv311))
    assert c.subscribe(topic, 1) == [1]
    c.disconnect()
    pub = publisher(broker, clients)
    pub.publish(topic, b"nobody", qos=1)
    c2 = persistent(broker, proto, cid)
    clients.append(c2)
    assert c2.session_present is False
    c2.expect_none(0.5)


def test_v5_disconnect_can_lower_session_expiry(broker, clients):
    """v5 section 3.14.2.2.2: the Session Expiry Interval sent in DISCONNECT replaces the one from
    CONNECT; lowering 300 s to 0 ends the session at the close (reconnect: Session Present 0)."""
    cid = unique_id("lower")
    raw, ack = raw_persistent(broker, 5, cid, expiry=300)
    assert not ack.session_present
    raw.subscribe([(unique_topic("lower"), 1)])
    raw.disconnect(reason=0, props=[(P_SESSION_EXPIRY, 0)])
    assert raw.expect_closed(3.0) == []
    again, ack = raw_persistent(broker, 5, cid)
    assert not ack.session_present, ack
    again.disconnect()
    again.close()


def test_v5_disconnect_lowering_session_expiry_to_one_second(broker, clients):
    """v5 section 3.14.2.2.2: lowering 300 s to 1 s in DISCONNECT: the session is there at once
    and gone after 2 s."""
    cid = unique_id("lower1")
    raw, _ = raw_persistent(broker, 5, cid, expiry=300)
    raw.disconnect(reason=0, props=[(P_SESSION_EXPIRY, 1)])
    raw.expect_closed(3.0)
    time.sleep(2.2)
    again, ack = raw_persistent(broker, 5, cid)
    assert not ack.session_present, ack
    again.disconnect()
    again.close()


def test_v5_disconnect_raising_session_expiry_from_zero_is_protocol_error(broker, clients):
    """v5 [MQTT-3.14.2-2]: if the CONNECT Session Expiry was 0, a non-zero Session Expiry in
    DISCONNECT is a Protocol Error. The broker treats it as one: the session is not extended
    (reconnect: Session Present 0), the will is published (not a normal disconnection,
    [MQTT-3.1.2-8]), and a DISCONNECT the broker sends, if any, has reason 0x82."""
    cid = unique_id("raise")
    topic = unique_topic("raise")
    sub = Client(broker, protocol=MQTTv5)
    clients.append(sub)
    sub.subscribe(topic + "/#", 1)
    raw = RawClient(broker, 5)
    raw.connect(client_id=cid, clean=False, will=dict(topic=topic + "/will", payload=b"err"))
    raw.subscribe([(topic + "/data", 1)])
    raw.disconnect(reason=0, props=[(P_SESSION_EXPIRY, 60)])
    got = raw.expect_closed(3.0)
    assert all(p.type == DISCONNECT and p.reason == 0x82 for p in got), got
    m = sub.expect_one(3.0)
    assert (m.topic, m.payload) == (topic + "/will", b"err"), m
    again, ack = raw_persistent(broker, 5, cid)
    assert not ack.session_present, ack
    again.disconnect()
    again.close()


# --------------------------------------------------------------------------------------------
# Clean Start and identity
# --------------------------------------------------------------------------------------------

@BOTH
def test_clean_start_discards_the_old_session(broker, clients, proto):
    """3.1.1 [MQTT-3.1.2-6] [MQTT-3.2.2-1] / v5 [MQTT-3.1.2-4] [MQTT-3.2.2-2]: Clean Session /
    Clean Start 1 discards the existing session: Session Present 0, its subscriptions and queued
    messages are gone - also for a later Clean Start 0 connection."""
    cid = unique_id("clean")
    topic = unique_topic("clean")
    c = persistent(broker, proto, cid)
    assert c.subscribe(topic, 1) == [1]
    c.disconnect()
    pub = publisher(broker, clients, proto)
    pub.publish(topic, b"queued-for-old", qos=1)
    fresh = Client(broker, cid, proto, clean=True)
    assert fresh.session_present is False
    fresh.expect_none(0.5)
    pub.publish(topic, b"live", qos=1)
    fresh.expect_none(0.5)  # no subscription
    fresh.disconnect()
    c3 = persistent(broker, proto, cid)
    clients.append(c3)
    assert c3.session_present is False
    c3.expect_none(0.3)


@BOTH
@pytest.mark.parametrize("first,second", [("alice", "bob"), (None, "alice"), ("alice", None)],
                         ids=["alice-bob", "anon-alice", "alice-anon"])
def test_session_resumed_under_different_username_starts_clean(broker, clients, proto, first,
                                                                second):
    """DESIGN.md "Identity is protected" (v5 section 5.4.2 lets the Server bind a session to the
    authenticated user): a persistent session resumed with the same client id under a different
    username (or none) starts clean - Session Present 0 ([MQTT-3.2.2-3]), no queued message and
    no subscription inherited. The same username resumes it (Session Present 1)."""
    cid = unique_id("ident")
    topic = unique_topic("ident")
    c = persistent(broker, proto, cid, username=first)
    assert c.subscribe(topic, 1) == [1]
    c.disconnect()
    same = persistent(broker, proto, cid, username=first)
    assert same.session_present is True
    same.disconnect()
    pub = publisher(broker, clients, proto)
    pub.publish(topic, b"private", qos=1)
    other = persistent(broker, proto, cid, username=second)
    clients.append(other)
    assert other.session_present is False
    other.expect_none(0.5)
    pub.publish(topic, b"private-2", qos=1)
    other.expect_none(0.5)


# --------------------------------------------------------------------------------------------
# redelivery of unacknowledged messages
# --------------------------------------------------------------------------------------------

@VERSIONS
def test_unacknowledged_qos1_qos2_resent_with_dup_on_reconnect(broker, clients, version):
    """3.1.1 / v5 [MQTT-4.4.0-1]: on reconnect with Clean Session/Start 0 the Server re-sends
    unacknowledged PUBLISH packets (QoS > 0) with their original packet identifiers; 3.1.1 / v5
    [MQTT-3.3.1-1]: with DUP 1 as a re-delivery. Once acknowledged nothing is sent again."""
    cid = unique_id("dup")
    topic = unique_topic("dup")
    raw, _ = raw_persistent(broker, version, cid)
    assert raw.subscribe([(topic, 2)]).codes == [2]
    pub = publisher(broker, clients)
    pub.publish(topic, b"one", qos=1)
    pub.publish(topic, b"two", qos=2)
    first = read_publishes(raw, 2)
    assert [(p.payload, p.qos, p.dup) for p in first] == [(b"one", 1, False), (b"two", 2, False)]
    raw.close()  # no PUBACK / PUBREC

    again, ack = raw_persistent(broker, version, cid)
    assert ack.session_present
    resent = read_publishes(again, 2)
    assert [(p.payload, p.qos, p.dup, p.packet_id) for p in resent] == \
        [(p.payload, p.qos, True, p.packet_id) for p in first], (first, resent)
    assert all(p.topic == topic for p in resent)
    ack_all(again, resent)
    again.expect_nothing(0.5)
    again.close()

    third, ack = raw_persistent(broker, version, cid)
    assert ack.session_present
    third.expect_nothing(0.7)
    third.disconnect()
    third.close()


@VERSIONS
def test_pubrel_resent_for_qos2_awaiting_pubcomp(broker, clients, version):
    """3.1.1 / v5 [MQTT-4.4.0-1]: a QoS 2 delivery the client has PUBREC'd but not PUBCOMP'd is
    resumed on reconnect by re-sending the PUBREL with the original packet identifier - not the
    PUBLISH again (3.1.1 [MQTT-4.3.3-1] / v5 [MQTT-4.3.3-6])."""
    cid = unique_id("rel")
    topic = unique_topic("rel")
    raw, _ = raw_persistent(broker, version, cid)
    raw.subscribe([(topic, 2)])
    pub = publisher(broker, clients)
    pub.publish(topic, b"exactly-once", qos=2)
    (p,) = read_publishes(raw, 1)
    assert p.qos == 2
    raw.ack(PUBREC, p.packet_id)
    rel = raw.expect(PUBREL)
    assert rel.packet_id == p.packet_id and rel.flags == 0x02, rel
    raw.close()  # no PUBCOMP

    again, ack = raw_persistent(broker, version, cid)
    assert ack.session_present
    rel2 = again.read_packet(5.0)
    assert rel2.type == PUBREL and rel2.packet_id == p.packet_id and rel2.flags == 0x02, rel2
    again.ack(PUBCOMP, p.packet_id)
    again.expect_nothing(0.7)
    again.disconnect()
    again.close()


@VERSIONS
def test_unacknowledged_messages_resent_in_original_order(broker, clients, version):
    """3.1.1 [MQTT-4.6.0-1] / v5 [MQTT-4.6.0-1]: re-sent PUBLISH packets go out in the order the
    originals were sent (QoS 1 and 2 mixed), each with DUP 1 ([MQTT-3.3.1-1]) and its original
    packet identifier ([MQTT-4.4.0-1])."""
    cid = unique_id("order")
    topic = unique_topic("order")
    raw, _ = raw_persistent(broker, version, cid)
    raw.subscribe([(topic, 2)])
    pub = publisher(broker, clients)
    for i, q in enumerate([1, 2, 1, 2, 1]):
        pub.publish(topic, f"m{i}".encode(), qos=q)
    first = read_publishes(raw, 5)
    assert [p.payload for p in first] == [f"m{i}".encode() for i in range(5)]
    raw.close()
    again, ack = raw_persistent(broker, version, cid)
    assert ack.session_present
    resent = read_publishes(again, 5)
    assert [(p.payload, p.packet_id, p.qos, p.dup) for p in resent] == \
        [(p.payload, p.packet_id, p.qos, True) for p in first], resent
    ack_all(again, resent)
    again.disconnect()
    again.close()


@VERSIONS
def test_unacknowledged_delivery_resent_to_taking_over_connection(broker, clients, version):
    """3.1.1 [MQTT-3.1.4-2] + [MQTT-4.4.0-1] / v5 [MQTT-3.1.4-3] + [MQTT-4.4.0-1]: when a new
    connection (Clean Session/Start 0) takes over a connected session, the deliveries the old
    connection left unacknowledged are re-sent to the new one with DUP 1 and their packet ids."""
    cid = unique_id("takeresend")
    topic = unique_topic("takeresend")
    old, _ = raw_persistent(broker, version, cid)
    old.subscribe([(topic, 1)])
    pub = publisher(broker, clients)
    pub.publish(topic, b"unacked", qos=1)
    (p,) = read_publishes(old, 1)
    new, ack = raw_persistent(broker, version, cid)
    assert ack.session_present
    old.expect_closed(3.0)
    (r,) = read_publishes(new, 1)
    assert (r.payload, r.packet_id, r.dup) == (b"unacked", p.packet_id, True), r
    new.ack(PUBACK, r.packet_id)
    new.disconnect()
    new.close()


@VERSIONS
def test_queued_messages_delivered_before_later_ones(broker, clients, version):
    """3.1.1 [MQTT-4.6.0-5] / v5 [MQTT-4.6.0-6] (Ordered Topic): messages queued while offline
    are delivered before a message published after the reconnect, all in publishing order."""
    cid = unique_id("qorder")
    topic = unique_topic("qorder")
    raw, _ = raw_persistent(broker, version, cid)
    raw.subscribe([(topic, 1)])
    raw.disconnect()
    raw.close()
    pub = publisher(broker, clients)
    for i in range(5):
        pub.publish(topic, f"q{i}".encode(), qos=1)
    again, ack = raw_persistent(broker, version, cid)
    assert ack.session_present
    pub.publish(topic, b"live", qos=1)
    got = read_publishes(again, 6)
    assert [p.payload for p in got] == [f"q{i}".encode() for i in range(5)] + [b"live"], got
    assert not any(p.dup for p in got), "first deliveries must not have DUP set"
    ack_all(again, got)
    again.disconnect()
    again.close()


@VERSIONS
def test_inbound_qos2_state_survives_reconnect_no_duplicate(broker, clients, version):
    """3.1.1 [MQTT-4.3.3-2] / v5 [MQTT-4.3.3-10]: until it has received the PUBREL, the Server
    answers a re-sent QoS 2 PUBLISH (same packet id, DUP 1 - here after a reconnect to the
    session, [MQTT-4.4.0-1]) with PUBREC and MUST NOT deliver the message twice; the PUBREL then
    gets PUBCOMP ([MQTT-4.3.3-11] v5)."""
    cid = unique_id("in2")
    topic = unique_topic("in2")
    sub = Client(broker, protocol=MQTTv5)
    clients.append(sub)
    sub.subscribe(topic, 2)
    raw, _ = raw_persistent(broker, version, cid)
    raw.publish(topic, b"once", qos=2, packet_id=7)
    rec = raw.expect(PUBREC)
    assert rec.packet_id == 7
    raw.close()  # no PUBREL
    again, ack = raw_persistent(broker, version, cid)
    assert ack.session_present
    again.publish(topic, b"once", qos=2, packet_id=7, dup=True)
    rec = again.expect(PUBREC)
    assert rec.packet_id == 7 and rec.reason == 0, rec
    again.ack(PUBREL, 7)
    comp = again.expect(PUBCOMP)
    assert comp.packet_id == 7 and comp.reason == 0, comp
    got = sub.expect(1)
    assert got[0].payload == b"once"
    sub.expect_none(0.7)
    again.disconnect()
    again.close()


def test_v5_resumed_subscription_keeps_its_options(broker, clients):
    """v5 section 4.1 (the session state holds the client's subscriptions, with their
    Subscription Identifiers, 3.8.2.1.2) and [MQTT-3.8.4-8]: after a resume the
    stored subscription still downgrades to its granted QoS 1 and still tags deliveries with
    Subscription Identifier 42 ([MQTT-3.3.4-3]) - for a queued and for a live message."""
    cid = unique_id("subopts")
    topic = unique_topic("subopts")
    c = persistent(broker, MQTTv5, cid)
    assert c.subscribe(topic, 1, properties=props(PacketTypes.SUBSCRIBE,
                                                  SubscriptionIdentifier=42)) == [1]
    c.disconnect()
    pub = publisher(broker, clients)
    pub.publish(topic, b"queued", qos=2)
    c2 = persistent(broker, MQTTv5, cid)
    clients.append(c2)
    assert c2.session_present
    m = c2.expect_one()
    assert (m.payload, m.qos, m.subscription_ids) == (b"queued", 1, [42]), m
    pub.publish(topic, b"live", qos=2)
    m = c2.expect_one()
    assert (m.payload, m.qos, m.subscription_ids) == (b"live", 1, [42]), m


@VERSIONS
def test_queued_retained_message_delivered_with_retain_0(broker, clients, version):
    """3.1.1 [MQTT-3.3.1-9] / v5 [MQTT-3.3.1-12]: a message published with RETAIN 1 that matches
    an established subscription is sent with RETAIN 0 (v5: Retain As Published 0) - also when it
    waited in the offline queue of that subscription's session."""
    cid = unique_id("qret")
    topic = unique_topic("qret")
    raw, _ = raw_persistent(broker, version, cid)
    raw.subscribe([(topic, 1)])
    raw.disconnect()
    raw.close()
    pub = publisher(broker, clients)
    pub.publish(topic, b"retained-while-away", qos=1, retain=True)
    again, ack = raw_persistent(broker, version, cid)
    assert ack.session_present
    (p,) = read_publishes(again, 1)
    assert p.payload == b"retained-while-away" and not p.retain, p
    ack_all(again, [p])
    again.expect_nothing(0.5)  # no second copy from the retained store
    again.disconnect()
    again.close()
    pub.publish(topic, b"", qos=1, retain=True)


def test_v5_queued_message_keeps_retain_with_retain_as_published(broker, clients):
    """v5 [MQTT-3.3.1-13]: with Retain As Published 1 the RETAIN flag is forwarded as published -
    also for a message that waited in the offline queue."""
    cid = unique_id("qrap")
    topic = unique_topic("qrap")
    raw, _ = raw_persistent(broker, 5, cid)
    raw.subscribe([(topic, 1 | 0x08)])
    raw.disconnect()
    raw.close()
    pub = publisher(broker, clients)
    pub.publish(topic, b"rap", qos=1, retain=True)
    again, ack = raw_persistent(broker, 5, cid)
    assert ack.session_present
    (p,) = read_publishes(again, 1)
    assert p.payload == b"rap" and p.retain, p
    ack_all(again, [p])
    again.disconnect()
    again.close()
    pub.publish(topic, b"", qos=1, retain=True)


@VERSIONS
def test_resumed_session_does_not_resend_retained_messages(broker, clients, version):
    """3.1.1 [MQTT-3.8.4-3] / v5 3.3.1.3: retained messages are sent when a subscription is made,
    not when a session with an existing subscription is resumed (that is no new SUBSCRIBE)."""
    cid = unique_id("noret")
    topic = unique_topic("noret")
    pub = publisher(broker, clients)
    pub.publish(topic, b"kept-value", qos=1, retain=True)
    raw, _ = raw_persistent(broker, version, cid)
    raw.subscribe([(topic, 1)])
    (p,) = read_publishes(raw, 1)
    assert p.retain and p.payload == b"kept-value"
    ack_all(raw, [p])
    raw.disconnect()
    raw.close()
    again, ack = raw_persistent(broker, version, cid)
    assert ack.session_present
    again.expect_nothing(0.7)
    again.disconnect()
    again.close()
    pub.publish(topic, b"", qos=1, retain=True)


def test_v5_sent_but_unacknowledged_message_resent_after_its_expiry(broker, clients):
    """v5 [MQTT-4.4.0-1]: unacknowledged PUBLISH packets are re-sent on resume; [MQTT-3.3.2-5]
    lets the Server delete an expired message only if it "has not managed to start onward
    delivery" - this one was already sent (Message Expiry 1 s, resume after 2 s), so the QoS 1
    flow must be completed by re-sending it with DUP 1."""
    cid = unique_id("expinfl")
    topic = unique_topic("expinfl")
    raw, _ = raw_persistent(broker, 5, cid)
    raw.subscribe([(topic, 1)])
    pub = publisher(broker, clients)
    pub.publish(topic, b"started", qos=1, properties=props(PacketTypes.PUBLISH,
                                                            MessageExpiryInterval=1))
    (p,) = read_publishes(raw, 1)
    raw.close()
    time.sleep(2.0)
    again, ack = raw_persistent(broker, 5, cid)
    assert ack.session_present
    (r,) = read_publishes(again, 1)
    assert (r.payload, r.packet_id, r.dup) == (b"started", p.packet_id, True), r
    again.ack(PUBACK, r.packet_id)
    again.disconnect()
    again.close()


# --------------------------------------------------------------------------------------------
# bounded offline queue
# --------------------------------------------------------------------------------------------

@BOTH
def test_offline_queue_bounded_by_max_queued_messages(broker_factory, clients, proto):
    """DESIGN.md (limits: a bounded queue per session, drops counted) / Mosquitto's
    max_queued_messages: an offline session holds at most 3 messages; the 3 others of 6 published
    are dropped and counted in $SYS/broker/limits/dropped_queue_full. (v5 section 4.8 / 3.1.1
    section 4.4: the Server may bound stored messages.)"""
    b = broker_factory("max_queued_messages 3\n")
    sysw = SysLimits(b, clients)
    sysw.wait("dropped_queue_full", lambda v: v == 0)
    cid = unique_id("qmax")
    topic = unique_topic("qmax")
    c = persistent(b, proto, cid)
    c.subscribe(topic, 1)
    c.disconnect()
    pub = publisher(b, clients, proto)
    for i in range(6):
        pub.publish(topic, f"m{i}".encode(), qos=1)
    sysw.wait("dropped_queue_full", lambda v: v == 3)
    c2 = persistent(b, proto, cid)
    clients.append(c2)
    assert c2.session_present
    got = [m.payload for m in c2.expect(3)]
    c2.expect_none(0.5)
    # in publishing order; which three survive is the broker's choice
    assert got == sorted(got) and set(got) <= {f"m{i}".encode() for i in range(6)}, got


def test_offline_queue_bounded_by_max_queued_bytes(broker_factory, clients):
    """DESIGN.md (queued bytes per session, drops counted) / Mosquitto's max_queued_bytes ("once
    this limit has been reached, subsequent messages will be silently dropped"): with
    max_queued_bytes 1000 an offline session stops queuing once it holds 1000 bytes; of 10 x 300
    bytes it keeps 3 (strict bound) or 4 (Mosquitto: accepted while under the limit), the rest
    are dropped and counted in dropped_queue_full."""
    b = broker_factory("max_queued_bytes 1000\n")
    sysw = SysLimits(b, clients)
    cid = unique_id("qbytes")
    topic = unique_topic("qbytes")
    c = persistent(b, MQTTv5, cid)
    c.subscribe(topic, 1)
    c.disconnect()
    pub = publisher(b, clients)
    for i in range(10):
        pub.publish(topic, bytes([65 + i]) * 300, qos=1)
    dropped = sysw.wait("dropped_queue_full", lambda v: v >= 6)
    c2 = persistent(b, MQTTv5, cid)
    clients.append(c2)
    assert c2.session_present
    got = []
    try:
        while True:
            got.append(c2.expect_one(1.0))
    except AssertionError:
        pass
    sizes = [len(m.payload) for m in got]
    assert len(got) in (3, 4) and sum(sizes[:-1]) < 1000, sizes
    firsts = [m.payload[:1] for m in got]
    assert firsts == sorted(firsts), f"kept messages out of publishing order: {firsts}"
    assert len(got) + sysw.wait("dropped_queue_full", lambda v: v >= dropped) == 10, \
        (len(got), dropped)


# --------------------------------------------------------------------------------------------
# persistent_client_expiration
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["1h", "2d", "1w", "1m", "1y"])
def test_persistent_client_expiration_accepted_in_mosquitto_units(broker_factory, clients, value):
    """CONFIG.md: persistent_client_expiration takes Mosquitto's units h d w m y (m = month);
    the broker starts with it and persistent sessions work as before (3.1.1 [MQTT-3.2.2-2],
    v5 [MQTT-3.2.2-3])."""
    b = broker_factory(f"persistent_client_expiration {value}\n")
    for proto in (MQTTv311, MQTTv5):
        cid = unique_id("pce")
        c = persistent(b, proto, cid)
        c.disconnect()
        c2 = persistent(b, proto, cid)
        clients.append(c2)
        assert c2.session_present is True


@pytest.mark.parametrize("value", ["10s", "30", "1min", "h"])
def test_persistent_client_expiration_rejects_other_units(value):
    """CONFIG.md: Mosquitto's directives take Mosquitto's units exactly - in
    persistent_client_expiration there is no `s` (nor tidemq's `min`, nor a bare number): the
    broker refuses to start and names the directive."""
    d = Path(tempfile.mkdtemp(prefix="tidemq-pce-"))
    conf = d / "tidemq.conf"
    conf.write_text(f"listener 0 127.0.0.1\nallow_anonymous true\n"
                    f"persistent_client_expiration {value}\n")
    try:
        cp = subprocess.run([TIDEMQ_BIN, "-c", str(conf)], capture_output=True, timeout=5,
                            cwd=str(d), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"broker started with persistent_client_expiration {value}")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    err = (cp.stderr + cp.stdout).decode(errors="replace")
    assert cp.returncode != 0, err
    assert "persistent_client_expiration" in err, err
    assert "listening" not in err, err


# --------------------------------------------------------------------------------------------
# takeover
# --------------------------------------------------------------------------------------------

def test_v5_takeover_sends_disconnect_0x8e_and_keeps_session(broker, clients):
    """v5 [MQTT-3.1.4-3]: a second connection with the client id of a connected client makes the
    Server send the existing one DISCONNECT 0x8E (Session taken over) and close it; with Clean
    Start 0 the new connection continues the session (Session Present 1, its subscription)."""
    cid = unique_id("take")
    topic = unique_topic("take")
    old, _ = raw_persistent(broker, 5, cid)
    old.subscribe([(topic, 1)])
    new, ack = raw_persistent(broker, 5, cid)
    assert ack.session_present
    got = old.expect_closed(3.0)
    assert [(p.type, p.reason) for p in got] == [(DISCONNECT, 0x8E)], got
    assert got[0].raw[:3] == b"\xe0\x02\x8e" or got[0].raw[:3] == b"\xe0\x01\x8e", got[0].raw
    pub = publisher(broker, clients)
    pub.publish(topic, b"to-new", qos=1)
    (p,) = read_publishes(new, 1)
    assert p.payload == b"to-new"
    new.ack(PUBACK, p.packet_id)
    new.disconnect()
    new.close()


def test_v311_takeover_closes_old_connection(broker, clients):
    """3.1.1 [MQTT-3.1.4-2]: the Server disconnects the existing client with the same id (3.1.1
    has no server DISCONNECT: the socket is just closed); the new one works."""
    cid = unique_id("take311")
    old, _ = raw_persistent(broker, 4, cid)
    new, ack = raw_persistent(broker, 4, cid)
    assert ack.session_present
    assert old.expect_closed(3.0) == []
    new.send(b"\xc0\x00")
    assert new.read_packet().raw == b"\xd0\x00"
    new.disconnect()
    new.close()


def test_paho_v5_taken_over_client_sees_disconnect(broker, clients):
    """v5 [MQTT-3.1.4-3]: a paho v5 client whose id is taken over is disconnected."""
    cid = unique_id("ptake")
    old = persistent(broker, MQTTv5, cid)
    clients.append(old)
    new = persistent(broker, MQTTv5, cid)
    clients.append(new)
    assert new.session_present is True
    old.wait_disconnected(3.0)
    assert new.connected.is_set() and not new.disconnected.wait(0.5)


# --------------------------------------------------------------------------------------------
# Message Expiry of queued messages
# --------------------------------------------------------------------------------------------

def test_v5_queued_message_expiry(broker, clients):
    """v5 [MQTT-3.3.2-5]: a QoS 1 message with Message Expiry Interval 1 s queued for an offline
    client whose expiry passes before delivery starts is not delivered; v5 [MQTT-3.3.2-6]: one
    with 10 s is delivered after ~2 s of waiting with the interval reduced by the time waited."""
    cid = unique_id("mexp")
    topic = unique_topic("mexp")
    c = persistent(broker, MQTTv5, cid)
    c.subscribe(topic, 1)
    c.disconnect()
    pub = publisher(broker, clients)
    pub.publish(topic, b"short", qos=1, properties=props(PacketTypes.PUBLISH,
                                                          MessageExpiryInterval=1))
    pub.publish(topic, b"long", qos=1, properties=props(PacketTypes.PUBLISH,
                                                         MessageExpiryInterval=10))
    time.sleep(2.2)
    c2 = persistent(broker, MQTTv5, cid)
    clients.append(c2)
    assert c2.session_present
    m = c2.expect_one()
    assert m.payload == b"long", m
    left = m.prop("MessageExpiryInterval")
    assert left is not None and 7 <= left <= 8, f"expiry {left} after waiting 2.2 s of 10 s"
    c2.expect_none(0.5)


def test_v5_queued_message_expiry_seen_raw(broker, clients):
    """v5 [MQTT-3.3.2-6] at the wire: the re-sent (queued) PUBLISH carries property 0x02 with the
    reduced value; a message without Message Expiry carries none."""
    cid = unique_id("mexpr")
    topic = unique_topic("mexpr")
    raw, _ = raw_persistent(broker, 5, cid)
    raw.subscribe([(topic, 1)])
    raw.disconnect()
    raw.close()
    pub = publisher(broker, clients)
    pub.publish(topic, b"plain", qos=1)
    pub.publish(topic, b"exp", qos=1, properties=props(PacketTypes.PUBLISH,
                                                        MessageExpiryInterval=5))
    time.sleep(1.2)
    again, ack = raw_persistent(broker, 5, cid)
    assert ack.session_present
    plain, exp = read_publishes(again, 2)
    assert plain.payload == b"plain" and P_MESSAGE_EXPIRY not in plain.props, plain
    assert exp.payload == b"exp" and 3 <= exp.props.get(P_MESSAGE_EXPIRY, -1) <= 4, exp
    ack_all(again, [plain, exp])
    again.disconnect()
    again.close()

"""Shared subscriptions ($share/GROUP/FILTER), MQTT 5.0 section 4.8.2.

Normative ids are MQTT 5.0 ([MQTT-x.y.z-n]); where the rule is stated without an id the section
is cited. Members are paho clients, raw sockets where acknowledgements must be withheld or exact
codes read, and mosquitto_sub.
"""
import queue
import time

import pytest
from paho.mqtt.packettypes import PacketTypes

from helpers import (
    DISCONNECT, PUBACK, PUBLISH, MQTTv311, MQTTv5, P_SESSION_EXPIRY, Client, MosquittoSub,
    RawClient, props, run_pub, subscribe_packet, unique_id, unique_topic,
)


# --------------------------------------------------------------------------------------------
# local helpers (this file only)
# --------------------------------------------------------------------------------------------

def member(broker, clients, filt, qos=1, proto=MQTTv5, **kw):
    """A paho client subscribed to `filt` at `qos` (granted code asserted)."""
    c = Client(broker, protocol=proto, **kw)
    clients.append(c)
    assert c.subscribe(filt, qos) == [qos], f"SUBACK for {filt!r}"
    return c


def publisher(broker, clients):
    c = Client(broker, protocol=MQTTv5)
    clients.append(c)
    return c


def raw5(broker, clients, client_id=None, connect_props=None, **kw):
    raw = RawClient(broker, 5)
    clients.append(raw)
    ack = raw.connect(client_id=client_id, props=connect_props, **kw)
    return raw, ack


def drain(client, duration):
    """Every message `client` receives within `duration` seconds."""
    out = []
    deadline = time.monotonic() + duration
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out
        try:
            out.append(client.messages.get(timeout=left))
        except queue.Empty:
            return out


def collect(members, total, timeout=5.0, settle=0.5):
    """Reads from all members until `total` messages arrived in all (or timeout), then `settle`
    more seconds for extra copies. Returns one list of messages per member."""
    got = [[] for _ in members]
    deadline = time.monotonic() + timeout
    while sum(map(len, got)) < total and time.monotonic() < deadline:
        for i, m in enumerate(members):
            got[i] += drain(m, 0.05)
    for i, m in enumerate(members):
        got[i] += drain(m, settle if i == 0 else 0.05)
    return got


def expect_disconnect(raw, reason, timeout=5.0):
    got = raw.expect_closed(timeout)
    assert got and got[-1].type == DISCONNECT and got[-1].reason == reason, (
        f"expected DISCONNECT 0x{reason:02x} then close, got {got}")


# --------------------------------------------------------------------------------------------
# distribution
# --------------------------------------------------------------------------------------------

def test_each_message_goes_to_exactly_one_member_of_the_group(broker, clients):
    """Section 4.8.2: each message matching a shared subscription is sent to only one member of
    the group: 20 messages over 2 members are each delivered once in total, both members get
    some, and they arrive with the real topic (not the $share filter)."""
    topic = unique_topic("share-one")
    group = unique_id("g")
    a = member(broker, clients, f"$share/{group}/{topic}")
    b = member(broker, clients, f"$share/{group}/{topic}")
    pub = publisher(broker, clients)
    n = 20
    for i in range(n):
        pub.publish(topic, b"m%d" % i, qos=1)
    got_a, got_b = collect([a, b], n)
    payloads = sorted(m.payload for m in got_a + got_b)
    assert payloads == sorted(b"m%d" % i for i in range(n)), (
        f"a got {[m.payload for m in got_a]}, b got {[m.payload for m in got_b]}")
    assert got_a and got_b, f"one member got all: a {len(got_a)}, b {len(got_b)}"
    assert all(m.topic == topic for m in got_a + got_b)


def test_shared_filter_with_wildcard_distributes_over_matching_topics(broker, clients):
    """Section 4.8.2: the part after $share/GROUP/ is an ordinary Topic Filter, wildcards
    included: messages to several topics matching it are each delivered once in the group."""
    base = unique_topic("share-wild")
    group = unique_id("g")
    a = member(broker, clients, f"$share/{group}/{base}/+/x")
    b = member(broker, clients, f"$share/{group}/{base}/+/x")
    pub = publisher(broker, clients)
    for i in range(10):
        pub.publish(f"{base}/t{i}/x", b"%d" % i, qos=1)
    pub.publish(f"{base}/t0/y", b"nomatch", qos=1)
    got_a, got_b = collect([a, b], 10)
    seen = sorted((m.topic, m.payload) for m in got_a + got_b)
    assert seen == sorted((f"{base}/t{i}/x", b"%d" % i) for i in range(10)), seen


def test_two_groups_on_the_same_filter_each_get_every_message(broker, clients):
    """Section 4.8.2: every shared subscription (group) receives each message once: group g1
    (two members) gets all N between them, group g2 (one member) gets all N."""
    topic = unique_topic("share-groups")
    g1, g2 = unique_id("g1"), unique_id("g2")
    a = member(broker, clients, f"$share/{g1}/{topic}")
    b = member(broker, clients, f"$share/{g1}/{topic}")
    c = member(broker, clients, f"$share/{g2}/{topic}")
    pub = publisher(broker, clients)
    n = 10
    for i in range(n):
        pub.publish(topic, b"m%d" % i, qos=1)
    got_a, got_b, got_c = collect([a, b, c], 2 * n)
    want = sorted(b"m%d" % i for i in range(n))
    assert sorted(m.payload for m in got_a + got_b) == want
    assert sorted(m.payload for m in got_c) == want


def test_non_shared_subscriber_alongside_a_group_gets_every_message(broker, clients):
    """Section 4.8.2: a shared subscription does not change ordinary subscriptions: a non-shared
    subscriber on the same filter gets every message, the group gets each once."""
    topic = unique_topic("share-plain")
    group = unique_id("g")
    a = member(broker, clients, f"$share/{group}/{topic}")
    b = member(broker, clients, f"$share/{group}/{topic}")
    plain = member(broker, clients, topic)
    pub = publisher(broker, clients)
    n = 10
    for i in range(n):
        pub.publish(topic, b"m%d" % i, qos=1)
    got_a, got_b, got_p = collect([a, b, plain], 2 * n)
    want = [b"m%d" % i for i in range(n)]
    assert [m.payload for m in got_p] == want
    assert sorted(m.payload for m in got_a + got_b) == sorted(want)


def test_same_client_in_a_group_and_a_plain_subscription_gets_both(broker, clients):
    """Section 4.8.2 / 4.7: a client with a non-shared subscription and a membership of a group on
    the same topic, alone in the group, gets the message through each subscription."""
    topic = unique_topic("share-both")
    c = member(broker, clients, topic)
    assert c.subscribe(f"$share/{unique_id('g')}/{topic}", 1) == [1]
    pub = publisher(broker, clients)
    pub.publish(topic, b"x", qos=1)
    got = drain(c, 1.0)
    assert [m.payload for m in got] == [b"x", b"x"], got


def test_subscribing_twice_to_the_same_shared_filter_does_not_double_the_membership(
        broker, clients):
    """[MQTT-3.8.4-3]: a second SUBSCRIBE to the same $share filter replaces the client's
    subscription: messages are still delivered exactly once within the group."""
    topic = unique_topic("share-twice")
    filt = f"$share/{unique_id('g')}/{topic}"
    a = member(broker, clients, filt)
    assert a.subscribe(filt, 1) == [1]
    b = member(broker, clients, filt)
    pub = publisher(broker, clients)
    n = 12
    for i in range(n):
        pub.publish(topic, b"m%d" % i, qos=1)
    got_a, got_b = collect([a, b], n)
    assert sorted(m.payload for m in got_a + got_b) == sorted(b"m%d" % i for i in range(n))


# --------------------------------------------------------------------------------------------
# subscribe rules
# --------------------------------------------------------------------------------------------

def test_shared_subscribe_does_not_send_retained_messages(broker, clients):
    """Section 4.8.2 / 3.3.1.3: retained messages are not sent to a session when it establishes
    a Shared Subscription; a plain subscriber to the same topic still gets it, and new messages
    reach the shared member."""
    topic = unique_topic("share-ret")
    pub = publisher(broker, clients)
    pub.publish(topic, b"retained", qos=1, retain=True)
    shared = member(broker, clients, f"$share/{unique_id('g')}/{topic}")
    shared.expect_none(0.7)
    plain = member(broker, clients, topic)
    m = plain.expect_one()
    assert (m.payload, m.retain) == (b"retained", True)
    pub.publish(topic, b"live", qos=1)
    assert shared.expect_one().payload == b"live"
    pub.publish(topic, b"", qos=1, retain=True)  # clear the retained message


def test_no_local_on_a_shared_subscription_is_a_protocol_error(broker, clients):
    """[MQTT-3.8.3-4]: it is a Protocol Error to set No Local on a Shared Subscription: the broker
    sends DISCONNECT 0x82 and closes."""
    raw, _ = raw5(broker, clients)
    raw.send(subscribe_packet(1, [(f"$share/g/{unique_topic('share-nl')}", 0x04 | 1)], 5))
    expect_disconnect(raw, 0x82)


@pytest.mark.parametrize("filt", ["$share/", "$share/g", "$share//x", "$share/g+/x",
                                  "$share/g#/x", "$share/+/x", "$share/g/"])
def test_invalid_shared_filter_gets_suback_0x8f(broker, clients, filt):
    """[MQTT-4.8.2-1] / [MQTT-4.8.2-2]: a shared filter needs a ShareName of at least one
    character without '/', '+' or '#', followed by '/' and a Topic Filter; otherwise SUBACK 0x8F
    (Topic Filter invalid). The connection stays usable."""
    raw, _ = raw5(broker, clients)
    p = raw.subscribe([(filt, 1)], packet_id=7)
    assert p.codes == [0x8F], f"{filt!r}: {p!r}"
    ok = raw.subscribe([(unique_topic("share-ok"), 1)], packet_id=8)
    assert ok.codes == [1]


def test_invalid_shared_filter_gets_0x80_for_mqtt311(broker, clients):
    """3.1.1 [MQTT-3.9.3-2]: the only failure code in a 3.1.1 SUBACK is 0x80: an invalid shared
    filter ($share/g with no topic filter) gets it."""
    raw = RawClient(broker, 4)
    clients.append(raw)
    raw.connect()
    p = raw.subscribe([("$share/g", 1)], packet_id=3)
    assert p.codes == [0x80], p


def test_shared_subscription_respects_the_granted_qos(broker, clients):
    """[MQTT-4.8.2-3]: the Server respects the granted QoS of the member's subscription: a QoS 2
    message to a QoS 0 member arrives at QoS 0; the subscription identifier is sent too."""
    topic = unique_topic("share-qos")
    c = Client(broker, protocol=MQTTv5)
    clients.append(c)
    assert c.subscribe(f"$share/{unique_id('g')}/{topic}", 0,
                       properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=42)) == [0]
    pub = publisher(broker, clients)
    pub.publish(topic, b"x", qos=2)
    m = c.expect_one()
    assert (m.payload, m.qos, m.subscription_ids) == (b"x", 0, [42])


# --------------------------------------------------------------------------------------------
# members that go away
# --------------------------------------------------------------------------------------------

def test_disconnected_member_gets_nothing_while_a_connected_member_exists(broker, clients):
    """Section 4.8.2: messages go to a member that can take them: a member whose connection ended
    (persistent session, expiry 60 s) is passed over while another member is connected, so the
    connected one gets all 10 and the returning one has nothing queued."""
    topic = unique_topic("share-pref")
    group = unique_id("g")
    cid = unique_id("away")
    away, _ = raw5(broker, clients, client_id=cid, connect_props=[(P_SESSION_EXPIRY, 60)])
    assert away.subscribe([(f"$share/{group}/{topic}", 1)]).codes == [1]
    away.disconnect()
    away.expect_closed()
    here = member(broker, clients, f"$share/{group}/{topic}")
    pub = publisher(broker, clients)
    for i in range(10):
        pub.publish(topic, b"m%d" % i, qos=1)
    got = here.expect(10)
    assert [m.payload for m in got] == [b"m%d" % i for i in range(10)]
    back, ack = raw5(broker, clients, client_id=cid, clean=False,
                     connect_props=[(P_SESSION_EXPIRY, 0)])
    assert ack.session_present
    back.expect_nothing(0.7)


def test_unacknowledged_qos1_is_resent_to_another_member_when_the_session_ends(broker, clients):
    """Section 4.8.2: if the connection to the chosen member breaks before its PUBACK and its
    session ends (expiry 0), the Server sends the QoS 1 message to another member of the group."""
    topic = unique_topic("share-redo")
    group = unique_id("g")
    a, _ = raw5(broker, clients)
    assert a.subscribe([(f"$share/{group}/{topic}", 1)]).codes == [1]
    pub = publisher(broker, clients)
    pub.publish(topic, b"orphan", qos=1)
    p = a.expect(PUBLISH)
    assert p.payload == b"orphan" and p.qos == 1
    b = member(broker, clients, f"$share/{group}/{topic}")
    b.expect_none(0.3)
    a.close()  # no PUBACK, no DISCONNECT; session expiry 0: the session ends with the connection
    m = b.expect_one(timeout=5)
    assert (m.topic, m.payload, m.qos) == (topic, b"orphan", 1)
    b.expect_none(0.5)


def test_qos2_in_progress_is_not_sent_to_another_member_when_the_session_ends(broker, clients):
    """[MQTT-4.8.2-5]: a QoS 2 message whose delivery to the chosen member did not complete (no
    PUBREC) is not sent to any other member when that member's session ends."""
    topic = unique_topic("share-q2-end")
    group = unique_id("g")
    a, _ = raw5(broker, clients)
    assert a.subscribe([(f"$share/{group}/{topic}", 2)]).codes == [2]
    pub = publisher(broker, clients)
    pub.publish(topic, b"exactly-once", qos=2)
    p = a.expect(PUBLISH)
    assert p.qos == 2
    b = member(broker, clients, f"$share/{group}/{topic}", qos=2)
    a.close()
    b.expect_none(1.5)


def test_qos2_in_progress_is_completed_with_the_same_member_when_it_reconnects(broker, clients):
    """[MQTT-4.8.2-4]: if the connection to the chosen member breaks before a QoS 2 delivery is
    complete, the Server completes it with that member when it reconnects (resent with DUP);
    the other member does not get it."""
    topic = unique_topic("share-q2-back")
    group = unique_id("g")
    cid = unique_id("q2")
    a, _ = raw5(broker, clients, client_id=cid, connect_props=[(P_SESSION_EXPIRY, 60)])
    assert a.subscribe([(f"$share/{group}/{topic}", 2)]).codes == [2]
    pub = publisher(broker, clients)
    pub.publish(topic, b"exactly-once", qos=2)
    p = a.expect(PUBLISH)
    b = member(broker, clients, f"$share/{group}/{topic}", qos=2)
    a.close()
    time.sleep(0.3)
    a2, ack = raw5(broker, clients, client_id=cid, clean=False,
                   connect_props=[(P_SESSION_EXPIRY, 0)])
    assert ack.session_present
    again = a2.expect(PUBLISH)
    assert (again.payload, again.qos, again.dup, again.packet_id) == (
        b"exactly-once", 2, True, p.packet_id), again
    b.expect_none(1.0)


def test_message_refused_with_puback_error_is_not_sent_to_another_member(broker, clients):
    """[MQTT-4.8.2-6]: if a member answers with a PUBACK reason code of 0x80 or more, the Server
    discards the message and does not send it to any other member (not even when the refusing
    member's session then ends)."""
    topic = unique_topic("share-refuse")
    group = unique_id("g")
    a, _ = raw5(broker, clients)
    assert a.subscribe([(f"$share/{group}/{topic}", 1)]).codes == [1]
    pub = publisher(broker, clients)
    pub.publish(topic, b"refused", qos=1)
    p = a.expect(PUBLISH)
    b = member(broker, clients, f"$share/{group}/{topic}")
    a.ack(PUBACK, p.packet_id, reason=0x80)
    time.sleep(0.2)
    a.close()
    b.expect_none(1.5)


def test_unsubscribe_from_a_shared_subscription(broker, clients):
    """Section 3.10.4 / 4.8.2: UNSUBSCRIBE with the full $share/GROUP/FILTER removes the membership
    (UNSUBACK 0x00); the remaining member then gets every message; an unknown group's filter
    gets 0x11 (No subscription existed)."""
    topic = unique_topic("share-unsub")
    group = unique_id("g")
    filt = f"$share/{group}/{topic}"
    a = member(broker, clients, filt)
    b = member(broker, clients, filt)
    assert a.unsubscribe(filt) == [0x00]
    assert a.unsubscribe(f"$share/{unique_id('other')}/{topic}") == [0x11]
    pub = publisher(broker, clients)
    for i in range(6):
        pub.publish(topic, b"m%d" % i, qos=1)
    assert [m.payload for m in b.expect(6)] == [b"m%d" % i for i in range(6)]
    a.expect_none(0.5)


# --------------------------------------------------------------------------------------------
# other clients
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("proto", [MQTTv311, MQTTv5], ids=["v311", "v5"])
def test_mosquitto_sub_on_a_shared_subscription(broker, clients, proto):
    """Section 4.8.2: mosquitto_sub subscribed to $share/GROUP/FILTER (over 3.1.1, where the
    broker supports shared subscriptions too, and over 5) receives the group's messages, with
    the real topic; a paho member of a different group also gets them all."""
    topic = unique_topic("share-mosq")
    sub = MosquittoSub(broker, f"$share/{unique_id('g')}/{topic}", qos=1, version=proto)
    clients.append(sub)
    other = member(broker, clients, f"$share/{unique_id('g')}/{topic}", proto=proto)
    for i in range(3):
        run_pub(broker, topic, f"m{i}", qos=1)
    lines = sub.wait_lines(3)
    assert lines == [f"{topic} m{i}" for i in range(3)], sub.output()
    assert [m.payload for m in other.expect(3)] == [b"m0", b"m1", b"m2"]

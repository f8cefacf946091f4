"""SUBSCRIBE / UNSUBSCRIBE: topic matching, $-topics, overlapping subscriptions, SUBACK codes,
subscription options (no local, retain as published), malformed SUBSCRIBE.

Normative ids: "3.1.1 [MQTT-x]" for MQTT 3.1.1, "v5 [MQTT-x]" for MQTT 5.0.
"""
import struct
import time

import pytest
from paho.mqtt.packettypes import PacketTypes

from helpers import (
    DISCONNECT, PUBLISH, SUBSCRIBE, UNSUBACK, MQTTv311, MQTTv5, P_SUBSCRIPTION_ID, Client,
    MosquittoSub, RawClient, mqtt_str, packet, props, run_pub, sub_opts, subscribe_packet,
    unique_id, unique_topic, unsubscribe_packet,
)

BOTH = pytest.mark.parametrize("proto", [MQTTv311, MQTTv5], ids=["v311", "v5"])
VERSIONS = pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])


def sub_id_props(n):
    return props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=n)


# Each filter with the topics it must match; every other topic of TOPICS must not match.
# "P" is replaced by a unique prefix per test. 3.1.1 and v5 section 4.7.1.
MATCHING = {
    "P/a/+": ["P/a/b", "P/a/"],                        # + matches one level, even empty [MQTT-4.7.1-3]
    "P/+/c": ["P/b/c", "P//c"],
    "P/#": ["P", "P/", "P/a", "P/a/b", "P/a/", "P/b/c", "P//c", "P/a/b/c", "P/A/b", "P/ab"],
    "P/a/#": ["P/a", "P/a/", "P/a/b", "P/a/b/c"],  # a/# matches a (the parent level)
    "P/+/+": ["P/a/b", "P/a/", "P/b/c", "P//c", "P/A/b"],
    "P/+/#": ["P/", "P/a", "P/a/b", "P/a/", "P/b/c", "P//c", "P/a/b/c", "P/A/b", "P/ab"],
    "P/a/b": ["P/a/b"],                                # exact, case sensitive (4.7.3)
    "P/+": ["P/", "P/a", "P/ab"],
}
TOPICS = ["P", "P/", "P/a", "P/a/", "P/a/b", "P/a/b/c", "P/b/c", "P//c", "P/A/b", "P/ab"]


@BOTH
def test_wildcard_filters_match_topics_per_spec(broker, clients, proto):
    """3.1.1 / v5 section 4.7.1: '+' matches exactly one level (possibly empty) [MQTT-4.7.1-3 in
    3.1.1 / MQTT-4.7.1-2 in v5], '#' matches the parent and any number of child levels
    [MQTT-4.7.1-2 / MQTT-4.7.1-1]; matching is by level, case sensitive (section 4.7.3)."""
    prefix = unique_id("match")
    subs = {}
    for f in MATCHING:
        c = Client(broker, protocol=proto)
        clients.append(c)
        assert c.subscribe(f.replace("P", prefix, 1), 1) == [1]
        subs[f] = c
    pub = Client(broker, protocol=proto)
    clients.append(pub)
    for t in TOPICS:
        pub.publish(t.replace("P", prefix, 1), t.encode(), qos=1)
    for f, c in subs.items():
        want = sorted(MATCHING[f])
        got = sorted(m.payload.decode() for m in c.expect(len(want)))
        assert got == want, f"filter {f}: got {got}, want {want}"
    time.sleep(0.3)
    for f, c in subs.items():
        assert c.messages.empty(), f"filter {f} got extra: {c.messages.get()}"


def test_leading_wildcard_does_not_match_sys_topics(broker_factory, clients):
    """3.1.1 / v5 [MQTT-4.7.2-1]: filters starting with a wildcard MUST NOT match topic names
    starting with '$'. With sys_interval 1, '$SYS/#' sees $SYS messages while '#' and '+/#'
    see none of them."""
    b = broker_factory()
    everything = Client(b, protocol=MQTTv5)
    clients.append(everything)
    everything.subscribe([("#", 0), ("+/#", 0), ("+/+/+", 0)])
    sys_sub = Client(b, protocol=MQTTv5)
    clients.append(sys_sub)
    sys_sub.subscribe("$SYS/#", 0)
    got = sys_sub.expect(1, timeout=4)
    assert got[0].topic.startswith("$SYS/")
    time.sleep(1.5)  # at least one more $SYS interval
    leaked = []
    while not everything.messages.empty():
        leaked.append(everything.messages.get().topic)
    assert not [t for t in leaked if t.startswith("$")], leaked


@BOTH
def test_leading_wildcard_does_not_match_client_dollar_topics(broker_factory, clients, proto):
    """[MQTT-4.7.2-1] for a $-topic a client publishes (not $SYS): '#' and '+/x' do not match
    '$app/x', while '$app/#' and '$app/+' do."""
    b = broker_factory()
    wild = Client(b, protocol=proto)
    clients.append(wild)
    wild.subscribe([("#", 0), ("+/x", 0)])
    exact = Client(b, protocol=proto)
    clients.append(exact)
    exact.subscribe([("$app/#", 0)])
    pub = Client(b, protocol=proto)
    clients.append(pub)
    pub.publish("$app/x", b"dollar", qos=1)
    m = exact.expect_one()
    assert (m.topic, m.payload) == ("$app/x", b"dollar")
    wild.expect_none(0.5)


@BOTH
def test_overlapping_subscriptions_deliver_one_copy_at_the_highest_qos(broker, clients, proto):
    """3.1.1 [MQTT-3.3.5-1] / v5 [MQTT-3.3.4-2]: with overlapping subscriptions the message is
    delivered respecting the maximum QoS of all matching subscriptions. The spec allows extra
    copies; tidemq sends exactly one (DESIGN: unlike Mosquitto 2.0.11, which uses the first
    match's QoS)."""
    prefix = unique_id("overlap")
    c = Client(broker, protocol=proto)
    clients.append(c)
    assert c.subscribe([(f"{prefix}/+/x", 0), (f"{prefix}/#", 2), (f"{prefix}/a/x", 1)]) == [0, 2, 1]
    pub = Client(broker, protocol=proto)
    clients.append(pub)
    pub.publish(f"{prefix}/a/x", b"q2", qos=2)
    m = c.expect_one()
    assert (m.payload, m.qos) == (b"q2", 2)
    c.expect_none(0.5)
    pub.publish(f"{prefix}/a/x", b"q1", qos=1)
    m = c.expect_one()
    assert (m.payload, m.qos) == (b"q1", 1)
    c.expect_none(0.5)


def test_v5_overlapping_subscriptions_carry_every_subscription_identifier(broker, clients):
    """v5 [MQTT-3.3.4-3], [MQTT-3.3.4-4]: a single copy carries the Subscription Identifiers of
    all matching subscriptions that have one (order not significant), at the highest QoS
    [MQTT-3.3.4-2]."""
    prefix = unique_id("subid")
    c = Client(broker, protocol=MQTTv5)
    clients.append(c)
    assert c.subscribe(f"{prefix}/+/x", 0, properties=sub_id_props(1)) == [0]
    assert c.subscribe(f"{prefix}/#", 2, properties=sub_id_props(2)) == [2]
    assert c.subscribe(f"{prefix}/a/x", 1) == [1]  # no identifier
    assert c.subscribe(f"{prefix}/b/#", 1, properties=sub_id_props(268435455)) == [1]  # max varint
    pub = Client(broker, protocol=MQTTv5)
    clients.append(pub)
    cases = [(f"{prefix}/a/x", [1, 2], 2), (f"{prefix}/z", [2], 2),
             (f"{prefix}/b/x", [1, 2, 268435455], 2)]
    for topic, ids, qos in cases:
        pub.publish(topic, b"x", qos=2)
        m = c.expect_one()
        assert (m.topic, m.qos, m.subscription_ids) == (topic, qos, ids)
        c.expect_none(0.3)


def test_v5_subscription_identifiers_are_separate_properties_on_the_wire(broker, clients):
    """v5 section 3.3.2.3.8: each Subscription Identifier is its own property (a Variable Byte
    Integer), repeated once per matching subscription; none for subscriptions without one."""
    prefix = unique_id("subidraw")
    with RawClient(broker, 5) as raw:
        raw.connect()
        raw.subscribe([(f"{prefix}/#", 1)], packet_id=1, props=[(P_SUBSCRIPTION_ID, 300)])
        raw.subscribe([(f"{prefix}/+", 1)], packet_id=2, props=[(P_SUBSCRIPTION_ID, 7)])
        raw.subscribe([(f"{prefix}/a", 1)], packet_id=3)
        pub = Client(broker, protocol=MQTTv311)
        clients.append(pub)
        pub.publish(f"{prefix}/a", b"x", qos=1)
        p = raw.expect(PUBLISH)
        assert sorted(p.props.all(P_SUBSCRIPTION_ID)) == [7, 300]
        raw.expect_nothing(0.3)


def test_v311_overlapping_subscriptions_with_mosquitto_clients(broker):
    """3.1.1 [MQTT-3.3.5-1] with mosquitto_sub subscribed to two overlapping filters (-t twice) at
    QoS 1 and mosquitto_pub at QoS 1: exactly one line arrives."""
    prefix = unique_id("mosqov")
    with MosquittoSub(broker, f"{prefix}/#", qos=1, extra=["-t", f"{prefix}/+"]) as ms:
        run_pub(broker, f"{prefix}/a", "once", qos=1)
        assert ms.wait_lines(1) == [f"{prefix}/a once"]
        time.sleep(0.5)
        assert ms.lines() == [f"{prefix}/a once"]


@BOTH
def test_subscribing_again_replaces_the_subscription(broker, clients, proto):
    """3.1.1 [MQTT-3.8.4-3] / v5 [MQTT-3.8.4-3]: a SUBSCRIBE with a filter identical to an
    existing one replaces it (new QoS); messages are not duplicated."""
    topic = unique_topic("replace")
    c = Client(broker, protocol=proto)
    clients.append(c)
    assert c.subscribe(topic, 0) == [0]
    assert c.subscribe(topic, 2) == [2]
    pub = Client(broker, protocol=proto)
    clients.append(pub)
    pub.publish(topic, b"r", qos=2)
    assert c.expect_one().qos == 2
    c.expect_none(0.4)


@BOTH
def test_unsubscribe_stops_delivery(broker, clients, proto):
    """3.1.1 [MQTT-3.10.4-1], [MQTT-3.10.4-2] / v5 [MQTT-3.10.4-1], [MQTT-3.10.4-2]: a filter that
    matches an existing subscription character by character deletes it and the server stops
    adding messages for it; the server answers UNSUBACK (v5: reason 0x00 Success)."""
    topic = unique_topic("unsub")
    c = Client(broker, protocol=proto)
    clients.append(c)
    c.subscribe(topic, 1)
    pub = Client(broker, protocol=proto)
    clients.append(pub)
    pub.publish(topic, b"before", qos=1)
    assert c.expect_one().payload == b"before"
    codes = c.unsubscribe(topic)
    if proto == MQTTv5:
        assert codes == [0x00]
    pub.publish(topic, b"after", qos=1)
    c.expect_none(0.5)


@BOTH
def test_unsubscribe_removes_only_the_identical_filter(broker, clients, proto):
    """3.1.1 [MQTT-3.10.4-1] / v5 [MQTT-3.10.4-1]: filters are compared character by character,
    without wildcard interpretation: unsubscribing 'p/a' leaves 'p/#' in place."""
    prefix = unique_id("unsubexact")
    c = Client(broker, protocol=proto)
    clients.append(c)
    c.subscribe([(f"{prefix}/#", 1), (f"{prefix}/a", 1)])
    c.unsubscribe(f"{prefix}/a")
    pub = Client(broker, protocol=proto)
    clients.append(pub)
    pub.publish(f"{prefix}/a", b"still", qos=1)
    assert c.expect_one().payload == b"still"
    c.expect_none(0.3)


@VERSIONS
def test_unsuback_for_a_filter_that_was_never_subscribed(broker, version):
    """3.1.1 [MQTT-3.10.4-5] / v5 [MQTT-3.10.4-5]: UNSUBACK is sent even if no filter matched;
    v5 section 3.11.3: its reason code is 0x11 (No subscription existed). 3.1.1 UNSUBACK is
    exactly b0 02 id [MQTT-3.10.4-4]."""
    with RawClient(broker, version) as raw:
        raw.connect()
        raw.send(unsubscribe_packet(9, [unique_topic("never")], version))
        p = raw.expect(UNSUBACK)
        assert p.packet_id == 9
        if version == 4:
            assert p.raw == b"\xb0\x02\x00\x09"
        else:
            assert p.codes == [0x11], p


INVALID_FILTERS = ["{p}/#/x", "{p}/a+", "{p}/+b", "#/x", "{p}/a#"]


@VERSIONS
def test_suback_has_one_code_per_filter_and_refuses_invalid_filters(broker, clients, version):
    """3.1.1 [MQTT-3.8.4-5], [MQTT-3.9.3-1] / v5 [MQTT-3.8.4-6], [MQTT-3.9.3-1]: one code per
    filter, in order: the granted QoS, or for an invalid filter ([MQTT-4.7.1-2], [MQTT-4.7.1-3]
    3.1.1; [MQTT-4.7.1-1], [MQTT-4.7.1-2] v5) 0x80 Failure (3.1.1) / 0x8F Topic Filter invalid
    (v5). The valid filters of the same SUBSCRIBE still work."""
    p = unique_id("suback")
    filters = [(f"{p}/a", 0), (f"{p}/+", 1)]
    filters += [(f.format(p=p), 2) for f in INVALID_FILTERS]
    filters += [(f"{p}/#", 2)]
    fail = 0x80 if version == 4 else 0x8F
    with RawClient(broker, version) as raw:
        raw.connect()
        ack = raw.subscribe(filters, packet_id=77)
        assert ack.codes == [0, 1] + [fail] * len(INVALID_FILTERS) + [2], ack
        if version == 4:
            assert ack.raw == bytes([0x90, 2 + len(filters), 0, 77] + ack.codes)
        pub = Client(broker, protocol=MQTTv311)
        clients.append(pub)
        pub.publish(f"{p}/a", b"ok", qos=2)
        got = raw.expect(PUBLISH)
        assert (got.topic, got.qos) == (f"{p}/a", 2)  # overlapping: one copy, highest QoS


@VERSIONS
def test_subscribe_with_invalid_options_closes_the_connection(broker, version):
    """3.1.1 [MQTT-3.8.3-4] / v5 [MQTT-3-8.3-5]: QoS 3 (or non-zero reserved bits) in the options
    byte makes the SUBSCRIBE malformed: the server closes the connection."""
    with RawClient(broker, version) as raw:
        raw.connect()
        raw.send(subscribe_packet(1, [(unique_topic("badopts"), 3)], version))
        got = raw.expect_closed()
        for p in got:
            assert p.type == DISCONNECT and p.reason in (0x81, 0x82), got


@VERSIONS
def test_subscribe_with_wrong_fixed_header_flags_closes_the_connection(broker, version):
    """3.1.1 [MQTT-3.8.1-1] / v5 [MQTT-3.8.1-1]: SUBSCRIBE's fixed header flags MUST be 0010;
    anything else is malformed and the connection is closed."""
    with RawClient(broker, version) as raw:
        raw.connect()
        body = struct.pack("!H", 1) + (b"\x00" if version == 5 else b"") + mqtt_str("a/b") + b"\x00"
        raw.send(packet(SUBSCRIBE, 0x00, body))
        got = raw.expect_closed()
        for p in got:
            assert p.type == DISCONNECT and p.reason in (0x81, 0x82), got


@VERSIONS
def test_subscribe_without_filters_closes_the_connection(broker, version):
    """3.1.1 [MQTT-3.8.3-3] / v5 [MQTT-3.8.3-2]: a SUBSCRIBE with no Topic Filter is a protocol
    violation; the connection is closed."""
    with RawClient(broker, version) as raw:
        raw.connect()
        raw.send(subscribe_packet(1, [], version))
        got = raw.expect_closed()
        for p in got:
            assert p.type == DISCONNECT and p.reason in (0x81, 0x82), got


def test_v5_subscription_identifier_zero_is_a_protocol_error(broker):
    """v5 section 3.8.2.1.2: a Subscription Identifier of 0 is a Protocol Error: DISCONNECT
    0x82 (or 0x81), then close."""
    with RawClient(broker, 5) as raw:
        raw.connect()
        raw.send(subscribe_packet(1, [(unique_topic("subid0"), 0)], 5, props=[(P_SUBSCRIPTION_ID, 0)]))
        got = raw.expect_closed()
        assert [p.type for p in got] == [DISCONNECT] and got[0].reason in (0x81, 0x82), got


def test_v5_no_local_does_not_send_a_client_its_own_messages(broker, clients):
    """v5 [MQTT-3.8.3-3]: with No Local 1, messages MUST NOT be forwarded to a connection with the
    publisher's ClientID; other publishers' messages still arrive."""
    topic = unique_topic("nolocal")
    me = Client(broker, protocol=MQTTv5)
    clients.append(me)
    assert me.subscribe(topic, options=sub_opts(1, no_local=True)) == [1]
    me.publish(topic, b"mine", qos=1)
    me.expect_none(0.5)
    other = Client(broker, protocol=MQTTv5)
    clients.append(other)
    other.publish(topic, b"theirs", qos=1)
    assert me.expect_one().payload == b"theirs"


def test_v5_without_no_local_a_client_gets_its_own_messages(broker, clients):
    """v5 section 3.8.3.1: No Local 0 (default) forwards a client's own messages back to it."""
    topic = unique_topic("local")
    me = Client(broker, protocol=MQTTv5)
    clients.append(me)
    me.subscribe(topic, options=sub_opts(1, no_local=False))
    me.publish(topic, b"mine", qos=1)
    assert me.expect_one().payload == b"mine"


def test_v5_retain_as_published_keeps_the_retain_flag_on_live_messages(broker, clients):
    """v5 [MQTT-3.3.1-12]: Retain As Published 0 -> forwarded with RETAIN 0; [MQTT-3.3.1-13]:
    Retain As Published 1 -> RETAIN as in the received PUBLISH."""
    topic = unique_topic("rap")
    rap = Client(broker, protocol=MQTTv5)
    plain = Client(broker, protocol=MQTTv5)
    clients += [rap, plain]
    rap.subscribe(topic, options=sub_opts(1, retain_as_published=True))
    plain.subscribe(topic, options=sub_opts(1, retain_as_published=False))
    pub = Client(broker, protocol=MQTTv5)
    clients.append(pub)
    pub.publish(topic, b"retained live", qos=1, retain=True)
    pub.publish(topic, b"not retained", qos=1, retain=False)
    assert [(m.payload, m.retain) for m in rap.expect(2)] == [(b"retained live", True), (b"not retained", False)]
    assert [(m.payload, m.retain) for m in plain.expect(2)] == [(b"retained live", False), (b"not retained", False)]
    pub.publish(topic, b"", qos=1, retain=True)  # clear the retained message


@BOTH
def test_subscriber_with_persistent_session_keeps_its_subscriptions(broker, clients, proto):
    """3.1.1 [MQTT-3.1.2-4] / v5 [MQTT-3.1.2-5]: a resumed session keeps its subscriptions; a
    message published while the client is away is delivered on reconnect."""
    topic = unique_topic("keepsub")
    cid = unique_id("keepsub")
    kw = {"properties": props(PacketTypes.CONNECT, SessionExpiryInterval=300)} if proto == MQTTv5 else {}
    c = Client(broker, cid, proto, clean=False, **kw)
    c.subscribe(topic, 1)
    c.disconnect()
    pub = Client(broker, protocol=proto)
    clients.append(pub)
    pub.publish(topic, b"while away", qos=1)
    c2 = Client(broker, cid, proto, clean=False, **kw)
    clients.append(c2)
    assert c2.session_present
    assert c2.expect_one().payload == b"while away"
    pub.publish(topic, b"live", qos=1)
    assert c2.expect_one().payload == b"live"

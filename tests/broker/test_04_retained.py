"""Retained messages: store, replace, clear, delivery on subscribe, the RETAIN flag on live and
stored deliveries, v5 Retain Handling, and a mosquitto_pub / mosquitto_sub round trip.

Normative ids: "3.1.1 [MQTT-x]" for MQTT 3.1.1, "v5 [MQTT-x]" for MQTT 5.0.
"""
import time

import pytest
from paho.mqtt.packettypes import PacketTypes

from helpers import (
    PUBLISH, MQTTv311, MQTTv5, P_MESSAGE_EXPIRY, Client, MosquittoSub, RawClient, props,
    run_pub, run_sub, sub_opts, unique_id, unique_topic,
)

BOTH = pytest.mark.parametrize("proto", [MQTTv311, MQTTv5], ids=["v311", "v5"])


def new_client(broker, clients, proto):
    c = Client(broker, protocol=proto)
    clients.append(c)
    return c


def clear(pub, topic):
    """Deletes the retained message of topic (zero-length retained payload)."""
    pub.publish(topic, b"", qos=1, retain=True)


@BOTH
def test_retained_message_is_delivered_on_subscribe_with_retain_flag(broker, clients, proto):
    """3.1.1 [MQTT-3.3.1-5], [MQTT-3.3.1-6], [MQTT-3.3.1-8] / v5 [MQTT-3.3.1-5], [MQTT-3.3.1-9]:
    a RETAIN 1 message is stored and sent to a later subscriber, with RETAIN 1 (v5 section
    3.3.1.3)."""
    topic = unique_topic("retain")
    pub = new_client(broker, clients, proto)
    pub.publish(topic, b"kept", qos=1, retain=True)
    sub = new_client(broker, clients, proto)
    sub.subscribe(topic, 1)
    m = sub.expect_one()
    assert (m.topic, m.payload, m.retain, m.qos) == (topic, b"kept", True, 1)
    sub.expect_none(0.3)
    clear(pub, topic)


@pytest.mark.parametrize("pub_proto,sub_proto", [(MQTTv311, MQTTv5), (MQTTv5, MQTTv311)],
                         ids=["v311-to-v5", "v5-to-v311"])
def test_retained_message_crosses_protocol_versions(broker, clients, pub_proto, sub_proto):
    """A retained message stored by a 3.1.1 client is delivered to a v5 subscriber and vice versa
    (both specs' [MQTT-3.3.1-5] store / deliver rules; one store serves both)."""
    topic = unique_topic("cross")
    pub = new_client(broker, clients, pub_proto)
    pub.publish(topic, b"across", qos=1, retain=True)
    sub = new_client(broker, clients, sub_proto)
    sub.subscribe(topic, 1)
    m = sub.expect_one()
    assert (m.payload, m.retain) == (b"across", True)
    clear(pub, topic)


@BOTH
def test_retained_message_is_replaced_by_a_newer_one(broker, clients, proto):
    """3.1.1 [MQTT-3.3.1-5] / v5 [MQTT-3.3.1-5]: a new RETAIN 1 message replaces the stored one;
    a new subscriber gets only the latest."""
    topic = unique_topic("replace")
    pub = new_client(broker, clients, proto)
    for payload in (b"v1", b"v2", b"v3"):
        pub.publish(topic, payload, qos=1, retain=True)
    sub = new_client(broker, clients, proto)
    sub.subscribe(topic, 1)
    assert sub.expect_one().payload == b"v3"
    sub.expect_none(0.4)
    clear(pub, topic)


@BOTH
def test_empty_retained_payload_clears_the_retained_message(broker, clients, proto):
    """3.1.1 [MQTT-3.3.1-10], [MQTT-3.3.1-11] / v5 [MQTT-3.3.1-6], [MQTT-3.3.1-7]: a RETAIN 1
    PUBLISH with a zero-byte payload removes the retained message and is not itself stored; it is
    still forwarded as normal to current subscribers."""
    topic = unique_topic("clear")
    pub = new_client(broker, clients, proto)
    pub.publish(topic, b"soon gone", qos=1, retain=True)
    live = new_client(broker, clients, proto)
    live.subscribe(topic, 1)
    assert live.expect_one().payload == b"soon gone"
    clear(pub, topic)
    m = live.expect_one()
    assert m.payload == b""
    late = new_client(broker, clients, proto)
    late.subscribe(topic, 1)
    late.expect_none(0.5)


@BOTH
def test_non_retained_publish_leaves_the_retained_message(broker, clients, proto):
    """3.1.1 [MQTT-3.3.1-12] / v5 [MQTT-3.3.1-8]: a RETAIN 0 PUBLISH MUST NOT store or replace the
    retained message of its topic."""
    topic = unique_topic("keep")
    pub = new_client(broker, clients, proto)
    pub.publish(topic, b"retained", qos=1, retain=True)
    pub.publish(topic, b"passing", qos=1, retain=False)
    pub.publish(topic, b"", qos=1, retain=False)  # an empty non-retained payload does not clear
    sub = new_client(broker, clients, proto)
    sub.subscribe(topic, 1)
    m = sub.expect_one()
    assert (m.payload, m.retain) == (b"retained", True)
    sub.expect_none(0.3)
    clear(pub, topic)


@BOTH
def test_live_forwarded_message_has_retain_0(broker, clients, proto):
    """3.1.1 [MQTT-3.3.1-9]: RETAIN 0 when a message is sent to an established subscription, even
    if published with RETAIN 1. v5 [MQTT-3.3.1-12]: the same with Retain As Published 0 (the
    default); with Retain As Published 1 the flag is kept [MQTT-3.3.1-13]."""
    topic = unique_topic("live")
    sub = new_client(broker, clients, proto)
    sub.subscribe(topic, 1)
    pub = new_client(broker, clients, proto)
    pub.publish(topic, b"live retained", qos=1, retain=True)
    m = sub.expect_one()
    assert (m.payload, m.retain) == (b"live retained", False)
    if proto == MQTTv5:
        rap = new_client(broker, clients, proto)
        rap.subscribe(topic, options=sub_opts(1, retain_as_published=True))
        stored = rap.expect_one()  # the retained copy, sent because of the new subscription
        assert stored.retain
        pub.publish(topic, b"again", qos=1, retain=True)
        m = rap.expect_one()
        assert (m.payload, m.retain) == (b"again", True)
        m = sub.expect_one()
        assert (m.payload, m.retain) == (b"again", False)
    clear(pub, topic)


def test_live_forwarded_message_retain_flag_on_the_wire(broker, clients):
    """3.1.1 [MQTT-3.3.1-9], checked on the wire: the live copy's fixed header has RETAIN 0 and
    the copy sent on subscribe has RETAIN 1 ([MQTT-3.3.1-8])."""
    topic = unique_topic("wire")
    pub = new_client(broker, clients, MQTTv311)
    with RawClient(broker, 4) as raw:
        raw.connect()
        raw.subscribe([(topic, 0)])
        pub.publish(topic, b"x", qos=1, retain=True)
        live = raw.expect(PUBLISH)
        assert not live.retain, live
    with RawClient(broker, 4) as raw2:
        raw2.connect()
        raw2.subscribe([(topic, 0)])
        stored = raw2.expect(PUBLISH)
        assert stored.retain and stored.payload == b"x", stored
    clear(pub, topic)


@BOTH
def test_wildcard_subscription_receives_every_matching_retained_message(broker, clients, proto):
    """3.1.1 [MQTT-3.3.1-6] / v5 [MQTT-3.3.1-9]: all retained messages matching the filter are
    sent on subscribe, and no others."""
    prefix = unique_id("rwild")
    pub = new_client(broker, clients, proto)
    topics = [f"{prefix}/a", f"{prefix}/a/b", f"{prefix}/c/d/e", f"{prefix}"]
    for t in topics:
        pub.publish(t, t.encode(), qos=1, retain=True)
    pub.publish(f"{prefix}x/a", b"other prefix", qos=1, retain=True)
    sub = new_client(broker, clients, proto)
    sub.subscribe(f"{prefix}/#", 0)
    got = sorted(m.topic for m in sub.expect(len(topics)))
    assert got == sorted(topics)
    sub.expect_none(0.4)
    sub2 = new_client(broker, clients, proto)
    sub2.subscribe(f"{prefix}/+", 0)
    assert [m.topic for m in sub2.expect(1)] == [f"{prefix}/a"]
    sub2.expect_none(0.3)
    for t in topics + [f"{prefix}x/a"]:
        clear(pub, t)


@BOTH
@pytest.mark.parametrize("stored_qos,sub_qos", [(2, 1), (2, 0), (0, 2), (1, 2)])
def test_retained_message_qos_is_the_minimum_of_stored_and_granted(broker, clients, proto, stored_qos, sub_qos):
    """3.1.1 [MQTT-3.8.4-6] / v5 [MQTT-3.8.4-8] apply to retained copies as to live ones:
    delivered QoS = min(QoS the message was published with, granted QoS)."""
    topic = unique_topic("rqos")
    pub = new_client(broker, clients, proto)
    pub.publish(topic, b"q", qos=stored_qos, retain=True)
    sub = new_client(broker, clients, proto)
    sub.subscribe(topic, sub_qos)
    assert sub.expect_one().qos == min(stored_qos, sub_qos)
    clear(pub, topic)


@pytest.mark.parametrize("handling", [0, 1, 2])
def test_v5_retain_handling(broker, clients, handling):
    """v5 [MQTT-3.3.1-9]: Retain Handling 0 sends retained messages on every SUBSCRIBE, also when
    the subscription already exists; [MQTT-3.3.1-10]: 1 sends them only if the subscription did
    not exist; [MQTT-3.3.1-11]: 2 never sends them."""
    topic = unique_topic(f"rh{handling}")
    pub = new_client(broker, clients, MQTTv5)
    pub.publish(topic, b"stored", qos=1, retain=True)
    sub = new_client(broker, clients, MQTTv5)
    opts = sub_opts(1, retain_handling=handling)
    sub.subscribe(topic, options=opts)
    if handling in (0, 1):
        assert sub.expect_one().payload == b"stored"
    sub.expect_none(0.4)
    sub.subscribe(topic, options=opts)  # the subscription exists now
    if handling == 0:
        assert sub.expect_one().payload == b"stored"
    sub.expect_none(0.4)
    # live messages flow whatever the retain handling
    pub.publish(topic, b"live", qos=1)
    assert sub.expect_one().payload == b"live"
    clear(pub, topic)


def test_v5_retained_message_expires(broker, clients):
    """v5 [MQTT-3.3.2-5]: a message whose Message Expiry Interval has passed is not delivered to
    a new subscriber: an expired retained message is gone."""
    topic = unique_topic("rexpire")
    pub = new_client(broker, clients, MQTTv5)
    pub.publish(topic, b"short-lived", qos=1, retain=True,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    time.sleep(2.2)
    sub = new_client(broker, clients, MQTTv5)
    sub.subscribe(topic, 1)
    sub.expect_none(0.5)


def test_v5_retained_message_carries_the_remaining_expiry(broker, clients):
    """v5 [MQTT-3.3.2-6]: the Message Expiry Interval sent to a subscriber is the received value
    minus the time the message waited in the server."""
    topic = unique_topic("rremain")
    pub = new_client(broker, clients, MQTTv5)
    pub.publish(topic, b"x", qos=1, retain=True,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=60))
    time.sleep(1.2)
    with RawClient(broker, 5) as raw:
        raw.connect()
        raw.subscribe([(topic, 1)])
        p = raw.expect(PUBLISH)
        left = p.props.get(P_MESSAGE_EXPIRY)
        assert left is not None and 55 <= left <= 59, p
    clear(pub, topic)


def test_mosquitto_pub_retained_round_trip_to_mosquitto_sub(broker):
    """mosquitto_pub -r stores a retained message ([MQTT-3.3.1-5]); mosquitto_sub receives it on
    subscribe ([MQTT-3.3.1-6]); mosquitto_pub -r -n clears it ([MQTT-3.3.1-10])."""
    topic = unique_topic("mosq")
    run_pub(broker, topic, "from mosquitto_pub", qos=1, retain=True)
    assert run_sub(broker, topic, count=1, timeout=5) == [f"{topic} from mosquitto_pub"]
    run_pub(broker, topic, None, qos=1, retain=True)  # -n: zero-length retained payload
    assert run_sub(broker, topic, count=1, timeout=1) == []


def test_mosquitto_v5_retained_round_trip(broker):
    """The same round trip over MQTT 5 (-V mqttv5) at QoS 2, with mosquitto_sub's -R (skip
    retained) proving the copy it gets is flagged RETAIN 1 (v5 section 3.3.1.3)."""
    topic = unique_topic("mosq5")
    run_pub(broker, topic, "v5 retained", qos=2, retain=True, version=MQTTv5)
    assert run_sub(broker, topic, count=1, qos=2, version=MQTTv5, timeout=5) == [f"{topic} v5 retained"]
    assert run_sub(broker, topic, count=1, version=MQTTv5, extra=["-R"], timeout=1) == []
    run_pub(broker, topic, None, qos=1, retain=True, version=MQTTv5)


def test_mosquitto_sub_receives_live_retained_publish_as_live(broker):
    """3.1.1 [MQTT-3.3.1-9]: a running mosquitto_sub -R (which drops messages flagged RETAIN)
    still prints a retained message published while it is subscribed, because live copies are
    forwarded with RETAIN 0."""
    topic = unique_topic("mosqlive")
    with MosquittoSub(broker, topic, qos=1, extra=["-R"]) as ms:
        run_pub(broker, topic, "live one", qos=1, retain=True)
        assert ms.wait_lines(1) == [f"{topic} live one"]
    run_pub(broker, topic, None, qos=1, retain=True)

"""Will messages: when they are published (abnormal loss of the connection), when they are not
(normal DISCONNECT, reconnect within the Will Delay), what they carry (QoS, retain, v5 properties),
session takeover, broker shutdown, and the wills a CONNECT is refused for.

Normative ids: "3.1.1 [MQTT-x]" for MQTT 3.1.1, "v5 [MQTT-x]" for MQTT 5.0.
"""
import signal
import time

import pytest

from paho.mqtt.packettypes import PacketTypes

from helpers import (
    CONNACK, DISCONNECT, PUBLISH, MQTTv311, MQTTv5,
    P_CONTENT_TYPE, P_CORRELATION_DATA, P_MAXIMUM_QOS, P_MESSAGE_EXPIRY, P_PAYLOAD_FORMAT,
    P_RESPONSE_TOPIC, P_SESSION_EXPIRY, P_USER_PROPERTY, P_WILL_DELAY,
    Client, ConnectionClosed, MosquittoSub, RawClient, connect_packet, packet, props, unique_id,
    unique_topic,
)

BOTH = pytest.mark.parametrize("proto", [MQTTv311, MQTTv5], ids=["v311", "v5"])
VERSIONS = pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])


# --------------------------------------------------------------------------------------------
# helpers (local to this file)
# --------------------------------------------------------------------------------------------

def subscriber(broker, clients, topic, qos=2, proto=MQTTv5):
    """A paho client subscribed to topic (the will's receiver)."""
    c = Client(broker, protocol=proto)
    clients.append(c)
    assert c.subscribe(topic, qos) == [qos]
    return c


def raw_subscriber(broker, topic, qos=2):
    """A raw v5 client subscribed to topic, for exact wire-level checks of the will it receives."""
    r = RawClient(broker, 5)
    r.connect()
    p = r.subscribe([(topic, qos)])
    assert p.codes == [qos], p
    return r


def will_client(broker, version, topic, payload=b"will", qos=0, retain=False, keepalive=60,
                will_props=None, connect_props=None, client_id=None, clean=True):
    """A raw client whose CONNECT carries a will; returns (client, CONNACK)."""
    r = RawClient(broker, version)
    will = dict(topic=topic, payload=payload, qos=qos, retain=retain)
    if version == 5 and will_props:
        will["props"] = will_props
    kw = {"props": connect_props} if version == 5 and connect_props else {}
    ack = r.connect(client_id=client_id, clean=clean, keepalive=keepalive, will=will, **kw)
    return r, ack


def expect_will(sub, topic, payload=b"will", timeout=5.0):
    m = sub.expect_one(timeout)
    assert (m.topic, m.payload) == (topic, payload), m
    return m


def refused_or_closed(raw, timeout=5.0):
    """Reads what the broker answers to a refused CONNECT: returns the CONNACK reason code, or None
    if the broker closed the connection without a CONNACK. Asserts the connection is closed."""
    try:
        p = raw.read_packet(timeout)
    except ConnectionClosed:
        return None
    assert p.type == CONNACK, f"expected CONNACK or close, got {p!r}"
    assert p.reason != 0, f"CONNECT was accepted: {p!r}"
    rest = raw.expect_closed(timeout)
    assert not rest, f"packets after a refusing CONNACK: {rest}"
    return p.reason


# --------------------------------------------------------------------------------------------
# published on abnormal loss of the connection
# --------------------------------------------------------------------------------------------

@VERSIONS
def test_will_published_when_socket_closed_without_disconnect(broker, clients, version):
    """3.1.1 [MQTT-3.1.2-8] / v5 [MQTT-3.1.2-8]: the will is published when the network
    connection is closed without a DISCONNECT (here: the client closes its socket)."""
    topic = unique_topic("will/close")
    sub = subscriber(broker, clients, topic)
    raw, _ = will_client(broker, version, topic, b"gone")
    sub.expect_none(0.3)  # nothing while the will's owner is connected
    raw.close()
    m = expect_will(sub, topic, b"gone")
    assert m.qos == 0 and not m.retain
    sub.expect_none(0.5)  # exactly once [MQTT-3.1.2-10]: removed once published


@VERSIONS
def test_will_published_on_keepalive_timeout(broker, clients, version):
    """3.1.1 [MQTT-3.1.2-24] / v5 [MQTT-3.1.2-22]: a client silent for 1.5 x Keep Alive is
    disconnected, and as that is not a normal DISCONNECT its will is published ([MQTT-3.1.2-8])."""
    topic = unique_topic("will/ka")
    sub = subscriber(broker, clients, topic)
    raw, _ = will_client(broker, version, topic, b"silent", keepalive=1)
    t0 = time.monotonic()
    expect_will(sub, topic, b"silent", timeout=6.0)
    elapsed = time.monotonic() - t0
    # 1.5 x 1 s; a broker must not give up before the keepalive itself has passed
    assert 0.9 <= elapsed <= 4.0, f"will published {elapsed:.2f}s after the client fell silent"
    got = raw.expect_closed(3.0)
    if version == 5:
        assert all(p.type == DISCONNECT for p in got), got
        if got:
            assert got[0].reason == 0x8D, got  # Keep Alive timeout
    else:
        assert got == [], f"3.1.1 server sent {got} before closing"
    raw.close()


def test_will_published_for_silent_client_with_mosquitto_sub(broker, clients):
    """3.1.1 [MQTT-3.1.2-8]: mosquitto_sub with --will-* killed with SIGKILL (no DISCONNECT)
    has its will published; mosquitto_sub receives a will of another client, too."""
    topic = unique_topic("will/mosq")
    with MosquittoSub(broker, topic, qos=1) as watcher:
        victim = MosquittoSub(broker, unique_topic("will/mosq-idle"),
                              extra=["--will-topic", topic, "--will-payload", "mosq-died",
                                     "--will-qos", "1"])
        try:
            victim.proc.kill()
            victim.proc.wait(5)
        finally:
            victim.stop()
        lines = watcher.wait_lines(1, timeout=5.0)
        assert lines == [f"{topic} mosq-died"], lines


@VERSIONS
@pytest.mark.parametrize("bad", ["qos3_publish", "second_connect"])
def test_will_published_on_protocol_error(broker, clients, version, bad):
    """3.1.1 [MQTT-3.1.2-8] (section 3.1.2.5: "the Server closes the Network Connection because
    of a protocol error") / v5 [MQTT-3.1.2-8]: a malformed packet - PUBLISH with QoS 3
    ([MQTT-3.3.1-4]) or a second CONNECT ([MQTT-3.1.0-2]) - makes the broker close the connection,
    and the will is published."""
    topic = unique_topic("will/proto")
    sub = subscriber(broker, clients, topic)
    raw, _ = will_client(broker, version, topic, b"broken")
    if bad == "qos3_publish":
        body = b"\x00\x03a/b\x00\x01" + (b"\x00" if version == 5 else b"") + b"x"
        raw.send(packet(PUBLISH, 0x06, body))
    else:
        raw.send(connect_packet(version, unique_id("again")))
    got = raw.expect_closed(5.0)
    assert all(p.type == DISCONNECT for p in got), f"expected only a DISCONNECT before close: {got}"
    if version == 5 and got:
        assert got[0].reason in (0x81, 0x82), got  # Malformed Packet / Protocol Error
    expect_will(sub, topic, b"broken")


# --------------------------------------------------------------------------------------------
# not published on a normal DISCONNECT; v5 reason 0x04 publishes it
# --------------------------------------------------------------------------------------------

@BOTH
def test_will_not_published_after_normal_disconnect(broker, clients, proto):
    """3.1.1 [MQTT-3.1.2-10] / v5 [MQTT-3.1.2-10] [MQTT-3.14.4-3]: on a DISCONNECT (v5 reason
    0x00 Normal disconnection) the will is removed without being published."""
    topic = unique_topic("will/normal")
    sub = subscriber(broker, clients, topic)
    c = Client(broker, protocol=proto, will=dict(topic=topic, payload=b"must-not", qos=1))
    clients.append(c)
    if proto == MQTTv5:
        c.disconnect(reasoncode=0)
    else:
        c.disconnect()
    sub.expect_none(1.0)


def test_will_not_published_after_raw_v5_disconnect_with_success(broker, clients):
    """v5 [MQTT-3.14.4-3]: DISCONNECT with reason 0x00 sent explicitly (1 byte reason, empty
    properties) discards the will."""
    topic = unique_topic("will/raw0")
    sub = subscriber(broker, clients, topic)
    raw, _ = will_client(broker, 5, topic, b"must-not")
    raw.send(packet(DISCONNECT, 0, b"\x00\x00"))
    assert raw.expect_closed(3.0) == []
    sub.expect_none(1.0)


def test_v5_disconnect_with_will_message_publishes_will(broker, clients):
    """v5 section 3.14.2.1 reason 0x04 "Disconnect with Will Message": the client wishes to
    disconnect but requires that the Server also publishes its Will Message ([MQTT-3.1.2-8]
    names only reason 0x00 as deleting it)."""
    topic = unique_topic("will/x04")
    sub = subscriber(broker, clients, topic)
    c = Client(broker, protocol=MQTTv5, will=dict(topic=topic, payload=b"please", qos=1))
    clients.append(c)
    c.disconnect(reasoncode=0x04)
    m = expect_will(sub, topic, b"please")
    assert m.qos == 1


# --------------------------------------------------------------------------------------------
# what the will carries
# --------------------------------------------------------------------------------------------

@VERSIONS
def test_retained_will_is_delivered_to_later_subscriber(broker, clients, version):
    """3.1.1 [MQTT-3.1.2-17] / v5 [MQTT-3.1.2-15]: Will Retain 1 - the will is published as a
    retained message, so a client subscribing after it was published receives it with RETAIN 1."""
    topic = unique_topic("will/retained")
    raw, _ = will_client(broker, version, topic, b"last-words", qos=1, retain=True)
    live = subscriber(broker, clients, topic)
    raw.close()
    m = expect_will(live, topic, b"last-words")
    assert not m.retain  # live delivery: retain flag cleared (3.1.1 [MQTT-3.3.1-9])
    later = Client(broker, protocol=MQTTv5 if version == 5 else MQTTv311)
    clients.append(later)
    later.subscribe(topic, 1)
    m = expect_will(later, topic, b"last-words")
    assert m.retain and m.qos == 1, m
    # clean up the retained message
    later.publish(topic, b"", qos=1, retain=True)


@VERSIONS
def test_non_retained_will_is_not_kept(broker, clients, version):
    """3.1.1 [MQTT-3.1.2-16] / v5 [MQTT-3.1.2-14]: Will Retain 0 - the will is published as a
    non-retained message: a later subscriber receives nothing."""
    topic = unique_topic("will/nonret")
    raw, _ = will_client(broker, version, topic, b"fleeting", retain=False)
    live = subscriber(broker, clients, topic)
    raw.close()
    expect_will(live, topic, b"fleeting")
    later = subscriber(broker, clients, topic)
    later.expect_none(0.7)


@VERSIONS
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_will_is_published_at_its_qos(broker, clients, version, qos):
    """3.1.1 [MQTT-3.1.2-14] / v5 [MQTT-3.1.2-12]: the Will QoS is the QoS the will is published
    with; a QoS 2 subscriber receives it at that QoS ([MQTT-3.8.4-6] / v5 [MQTT-3.8.4-8])."""
    topic = unique_topic("will/qos")
    sub = subscriber(broker, clients, topic, qos=2)
    raw, _ = will_client(broker, version, topic, f"q{qos}".encode(), qos=qos)
    raw.close()
    m = expect_will(sub, topic, f"q{qos}".encode())
    assert m.qos == qos, m


def test_will_qos_downgraded_to_subscription_qos(broker, clients):
    """v5 [MQTT-3.8.4-8]: a QoS 2 will delivered to a QoS 0 subscription arrives at QoS 0."""
    topic = unique_topic("will/down")
    sub = subscriber(broker, clients, topic, qos=0)
    raw, _ = will_client(broker, 5, topic, b"down", qos=2)
    raw.close()
    m = expect_will(sub, topic, b"down")
    assert m.qos == 0


def test_v5_will_properties_are_carried(broker, clients):
    """v5 section 3.1.3.2: the will's Payload Format Indicator, Content Type, Response Topic,
    Correlation Data and User Properties are sent with the published will, the User Properties
    in their order ([MQTT-3.1.3-10]); the Message Expiry Interval is sent as the Publication Expiry
    Interval (at most the value given, [MQTT-3.3.2-6])."""
    topic = unique_topic("will/props")
    sub = raw_subscriber(broker, topic, qos=1)
    wprops = [
        (P_PAYLOAD_FORMAT, 1),
        (P_MESSAGE_EXPIRY, 120),
        (P_CONTENT_TYPE, "application/json"),
        (P_RESPONSE_TOPIC, "reply/to/me"),
        (P_CORRELATION_DATA, b"\x00\x01\xfe\xff"),
        (P_USER_PROPERTY, ("k", "1")),
        (P_USER_PROPERTY, ("a", "2")),
        (P_USER_PROPERTY, ("k", "3")),
    ]
    raw, _ = will_client(broker, 5, topic, b'{"state":"offline"}', qos=1, will_props=wprops)
    raw.close()
    p = sub.expect(PUBLISH, 5.0)
    assert (p.topic, p.payload, p.qos) == (topic, b'{"state":"offline"}', 1), p
    pr = p.props
    assert pr.get(P_PAYLOAD_FORMAT) == 1, pr
    assert pr.get(P_CONTENT_TYPE) == "application/json", pr
    assert pr.get(P_RESPONSE_TOPIC) == "reply/to/me", pr
    assert pr.get(P_CORRELATION_DATA) == b"\x00\x01\xfe\xff", pr
    assert pr.all(P_USER_PROPERTY) == [("k", "1"), ("a", "2"), ("k", "3")], pr
    exp = pr.get(P_MESSAGE_EXPIRY)
    assert exp is not None and 118 <= exp <= 120, pr
    assert P_WILL_DELAY not in pr, f"Will Delay Interval is not a PUBLISH property: {pr}"
    sub.close()


def test_v5_will_properties_with_paho(broker, clients):
    """v5 section 3.1.3.2 (as test above, through paho): content type, user properties, response
    topic and correlation data set with will_set() arrive on a paho v5 subscriber."""
    topic = unique_topic("will/pprops")
    sub = subscriber(broker, clients, topic, qos=1)
    wp = props(PacketTypes.WILLMESSAGE, ContentType="text/plain", ResponseTopic="r/t",
               CorrelationData=b"corr-1", UserProperty=[("who", "paho")], MessageExpiryInterval=30)
    c = Client(broker, protocol=MQTTv5, will=dict(topic=topic, payload=b"bye", qos=1,
                                                   properties=wp))
    clients.append(c)
    c.drop()
    m = expect_will(sub, topic, b"bye")
    assert m.prop("ContentType") == "text/plain"
    assert m.prop("ResponseTopic") == "r/t"
    assert m.prop("CorrelationData") == b"corr-1"
    assert m.prop("UserProperty") == [("who", "paho")]
    assert 28 <= m.prop("MessageExpiryInterval", -1) <= 30, m.properties


def test_v5_will_message_expiry_counts_from_publication(broker, clients):
    """v5 section 3.1.3.2.4: the will's Message Expiry Interval "is the lifetime of the Will
    Message" and "is sent as the Publication Expiry Interval when the Server publishes the Will
    Message" - it starts when the will is published, not at CONNECT. A client connected for 3.5 s
    with a 3 s will expiry dies: its will is still delivered, with an interval of about 3 s
    ([MQTT-3.3.2-5] applies only to time spent waiting after publication)."""
    topic = unique_topic("will/exp-conn")
    sub = raw_subscriber(broker, topic, qos=1)
    raw, _ = will_client(broker, 5, topic, b"lifetime", qos=1,
                         will_props=[(P_MESSAGE_EXPIRY, 3)])
    time.sleep(3.5)
    raw.close()
    p = sub.expect(PUBLISH, 3.0)
    assert p.payload == b"lifetime", p
    exp = p.props.get(P_MESSAGE_EXPIRY)
    assert exp is not None and 2 <= exp <= 3, f"Message Expiry {exp}, set to 3 at CONNECT: {p!r}"
    sub.close()


def test_v5_delayed_will_message_expiry_starts_when_published(broker, clients):
    """v5 section 3.1.3.2.4 with a Will Delay (3.1.3.2.2): a will with Message Expiry 10 s and Will
    Delay 2 s is published 2 s after the close carrying an expiry of about 10 s, not 10 s minus
    the delay (the delay is not time the published message has waited, [MQTT-3.3.2-6])."""
    topic = unique_topic("will/exp-delay")
    sub = raw_subscriber(broker, topic, qos=1)
    raw, _ = will_client(broker, 5, topic, b"late-lifetime", qos=1,
                         will_props=[(P_MESSAGE_EXPIRY, 10), (P_WILL_DELAY, 2)],
                         connect_props=[(P_SESSION_EXPIRY, 30)])
    raw.close()
    p = sub.expect(PUBLISH, 5.0)
    assert p.payload == b"late-lifetime", p
    exp = p.props.get(P_MESSAGE_EXPIRY)
    assert exp is not None and 9 <= exp <= 10, f"Message Expiry {exp}, expected ~10: {p!r}"
    sub.close()


@VERSIONS
def test_will_queued_for_offline_persistent_subscriber(broker, clients, version):
    """3.1.1 [MQTT-3.1.2-5] / v5 [MQTT-3.1.2-23]: a QoS 1 will published while a persistent
    subscriber is offline is stored in its session and delivered when it reconnects."""
    topic = unique_topic("will/offline")
    cid = unique_id("wsub")
    proto = MQTTv5 if version == 5 else MQTTv311
    p = props(PacketTypes.CONNECT, SessionExpiryInterval=60) if version == 5 else None
    s1 = Client(broker, cid, proto, clean=False, properties=p)
    assert s1.subscribe(topic, 1) == [1]
    s1.disconnect()
    raw, _ = will_client(broker, version, topic, b"while-away", qos=1)
    raw.close()
    time.sleep(0.3)
    s2 = Client(broker, cid, proto, clean=False, properties=p)
    clients.append(s2)
    assert s2.session_present
    m = expect_will(s2, topic, b"while-away")
    assert m.qos == 1


# --------------------------------------------------------------------------------------------
# v5 Will Delay Interval
# --------------------------------------------------------------------------------------------

def test_v5_will_delay_interval_delays_the_will(broker, clients):
    """v5 section 3.1.3.2.2 [MQTT-3.1.3-9]: the Server delays publishing the will until the Will
    Delay Interval (2 s) has passed (session expiry 30 s, so the session outlives it)."""
    topic = unique_topic("will/delay")
    sub = subscriber(broker, clients, topic)
    raw, _ = will_client(broker, 5, topic, b"late", will_props=[(P_WILL_DELAY, 2)],
                         connect_props=[(P_SESSION_EXPIRY, 30)], clean=True)
    raw.close()
    t0 = time.monotonic()
    sub.expect_none(1.4)
    expect_will(sub, topic, b"late", timeout=4.0)
    elapsed = time.monotonic() - t0
    assert 1.8 <= elapsed <= 4.0, f"will published {elapsed:.2f}s after the close (delay 2 s)"


def test_v5_will_not_sent_if_client_reconnects_within_delay(broker, clients):
    """v5 [MQTT-3.1.3-9]: if a new network connection to this session is made (Clean Start 0)
    before the Will Delay Interval has passed, the Server MUST NOT send the will."""
    topic = unique_topic("will/resume")
    cid = unique_id("wd")
    sub = subscriber(broker, clients, topic)
    raw, _ = will_client(broker, 5, topic, b"must-not", will_props=[(P_WILL_DELAY, 2)],
                         connect_props=[(P_SESSION_EXPIRY, 30)], client_id=cid)
    raw.close()
    time.sleep(0.5)
    back = RawClient(broker, 5)
    ack = back.connect(client_id=cid, clean=False, props=[(P_SESSION_EXPIRY, 30)])
    assert ack.session_present, ack
    sub.expect_none(3.0)  # past the original delay
    back.disconnect()
    back.close()
    sub.expect_none(0.5)


def test_v5_will_sent_when_clean_start_reconnect_ends_session_within_delay(broker, clients):
    """v5 section 3.1.3.2.2: the will is published when the Will Delay Interval passes "or the
    Session ends, whichever happens first"; a reconnect with Clean Start 1 ends the old session
    ([MQTT-3.1.2-4]), so the will is sent then, not after the 10 s delay."""
    topic = unique_topic("will/cleanre")
    cid = unique_id("wd")
    sub = subscriber(broker, clients, topic)
    raw, _ = will_client(broker, 5, topic, b"ended", will_props=[(P_WILL_DELAY, 10)],
                         connect_props=[(P_SESSION_EXPIRY, 60)], client_id=cid)
    raw.close()
    sub.expect_none(0.5)
    back = RawClient(broker, 5)
    ack = back.connect(client_id=cid, clean=True)
    assert not ack.session_present
    expect_will(sub, topic, b"ended", timeout=2.0)
    back.disconnect()
    back.close()


def test_v5_will_sent_at_session_end_when_earlier_than_delay(broker, clients):
    """v5 section 3.1.3.2.2 / 3.1.2.11.2: the will is sent at the earlier of Will Delay Interval
    and session end: session expiry 2 s, will delay 10 s -> the will is published at ~2 s."""
    topic = unique_topic("will/expiry")
    sub = subscriber(broker, clients, topic)
    raw, _ = will_client(broker, 5, topic, b"expired", will_props=[(P_WILL_DELAY, 10)],
                         connect_props=[(P_SESSION_EXPIRY, 2)])
    raw.close()
    t0 = time.monotonic()
    sub.expect_none(1.4)
    expect_will(sub, topic, b"expired", timeout=4.0)
    elapsed = time.monotonic() - t0
    assert 1.8 <= elapsed <= 4.0, f"will published {elapsed:.2f}s after close (expiry 2 s)"


def test_v5_will_with_delay_and_session_expiry_zero_is_sent_at_close(broker, clients):
    """v5 section 3.1.3.2.2: with Session Expiry 0 the session ends at the close, which comes
    before any Will Delay, so the will is published at once."""
    topic = unique_topic("will/exp0")
    sub = subscriber(broker, clients, topic)
    raw, _ = will_client(broker, 5, topic, b"now", will_props=[(P_WILL_DELAY, 10)])
    raw.close()
    expect_will(sub, topic, b"now", timeout=1.5)


# --------------------------------------------------------------------------------------------
# session takeover
# --------------------------------------------------------------------------------------------

def test_v311_takeover_publishes_old_connections_will(broker, clients):
    """3.1.1 [MQTT-3.1.4-2] [MQTT-3.1.2-8]: a second CONNECT with the same client id disconnects
    the existing client without a DISCONNECT from it, so its will is published."""
    topic = unique_topic("will/take311")
    cid = unique_id("take")
    sub = subscriber(broker, clients, topic)
    old, _ = will_client(broker, 4, topic, b"replaced", client_id=cid)
    new = RawClient(broker, 4)
    new.connect(client_id=cid)
    assert old.expect_closed(3.0) == []
    expect_will(sub, topic, b"replaced", timeout=3.0)
    new.disconnect()
    new.close()


def test_v5_takeover_publishes_will_without_delay(broker, clients):
    """v5 [MQTT-3.1.4-3] and section 3.1.3.2.2: on takeover the existing connection gets
    DISCONNECT 0x8E and its will is sent at the close when the Will Delay is 0 - even though the
    new connection resumes the session (Clean Start 0)."""
    topic = unique_topic("will/take5")
    cid = unique_id("take")
    sub = subscriber(broker, clients, topic)
    old, _ = will_client(broker, 5, topic, b"replaced", client_id=cid,
                         connect_props=[(P_SESSION_EXPIRY, 60)])
    new = RawClient(broker, 5)
    ack = new.connect(client_id=cid, clean=False, props=[(P_SESSION_EXPIRY, 60)])
    assert ack.session_present
    got = old.expect_closed(3.0)
    assert [(p.type, p.reason) for p in got] == [(DISCONNECT, 0x8E)], got
    expect_will(sub, topic, b"replaced", timeout=3.0)
    new.disconnect()
    new.close()


def test_v5_takeover_with_clean_start_0_cancels_delayed_will(broker, clients):
    """v5 section 3.1.3.2.2 / [MQTT-3.1.3-9]: on takeover the existing connection's will is sent
    "unless the new connection specifies Clean Start of 0 and the Will Delay is greater than
    zero": the session continues, so the delayed will is never sent."""
    topic = unique_topic("will/take5d")
    cid = unique_id("take")
    sub = subscriber(broker, clients, topic)
    old, _ = will_client(broker, 5, topic, b"must-not", client_id=cid,
                         will_props=[(P_WILL_DELAY, 2)], connect_props=[(P_SESSION_EXPIRY, 60)])
    new = RawClient(broker, 5)
    ack = new.connect(client_id=cid, clean=False, props=[(P_SESSION_EXPIRY, 60)])
    assert ack.session_present
    old.expect_closed(3.0)
    sub.expect_none(3.0)  # past the 2 s delay
    new.disconnect()
    new.close()
    sub.expect_none(0.3)


def test_v5_takeover_with_clean_start_1_sends_delayed_will(broker, clients):
    """v5 section 3.1.3.2.2: the new connection has Clean Start 1, so the old session ends and its
    will (delay 10 s) is sent at once rather than after the delay."""
    topic = unique_topic("will/take5c")
    cid = unique_id("take")
    sub = subscriber(broker, clients, topic)
    old, _ = will_client(broker, 5, topic, b"superseded", client_id=cid,
                         will_props=[(P_WILL_DELAY, 10)], connect_props=[(P_SESSION_EXPIRY, 60)])
    new = RawClient(broker, 5)
    ack = new.connect(client_id=cid, clean=True)
    assert not ack.session_present
    got = old.expect_closed(3.0)
    assert [(p.type, p.reason) for p in got] == [(DISCONNECT, 0x8E)], got
    expect_will(sub, topic, b"superseded", timeout=2.0)
    new.disconnect()
    new.close()


# --------------------------------------------------------------------------------------------
# broker shutdown
# --------------------------------------------------------------------------------------------

def test_shutdown_publishes_wills_and_sends_v5_disconnect_0x8b(broker_factory, clients):
    """CONFIG.md (SIGTERM): wills without a delay are published - to subscribers still connected
    - and v5 clients get DISCONNECT 0x8B Server shutting down (v5 section 4.13, 3.14.2.1) before
    the connection closes; the broker exits 0 (checked by the fixture)."""
    b = broker_factory()
    topic = unique_topic("will/shutdown")
    sub = raw_subscriber(b, topic + "/#", qos=1)
    sub311 = subscriber(b, clients, topic + "/#", qos=1, proto=MQTTv311)
    w5, _ = will_client(b, 5, topic + "/v5", b"v5-down", qos=1)
    w4, _ = will_client(b, 4, topic + "/v4", b"v4-down", qos=0)
    # a connected v5 client with a delayed will: published too, persistence being off (CONFIG.md)
    wd, _ = will_client(b, 5, topic + "/delayed", b"delayed-down",
                        will_props=[(P_WILL_DELAY, 30)], connect_props=[(P_SESSION_EXPIRY, 60)])
    # a disconnected session whose delayed will is pending: also published at shutdown
    gone, _ = will_client(b, 5, topic + "/pending", b"pending-down",
                          will_props=[(P_WILL_DELAY, 30)], connect_props=[(P_SESSION_EXPIRY, 60)])
    gone.close()
    time.sleep(0.3)
    b.proc.send_signal(signal.SIGTERM)

    got = sub.expect_closed(8.0)
    wills = sorted((p.topic, p.payload) for p in got if p.type == PUBLISH)
    assert wills == sorted([(topic + "/v5", b"v5-down"), (topic + "/v4", b"v4-down"),
                            (topic + "/delayed", b"delayed-down"),
                            (topic + "/pending", b"pending-down")]), got
    last = got[-1]
    assert last.type == DISCONNECT and last.reason == 0x8B, f"last packet before close: {got}"
    for c in (w5, wd):
        seen = c.expect_closed(5.0)
        assert [(p.type, p.reason) for p in seen] == [(DISCONNECT, 0x8B)], seen
    assert w4.expect_closed(5.0) == []  # 3.1.1 has no server DISCONNECT
    payloads311 = sorted(m.payload for m in sub311.expect(4, timeout=3.0))
    assert payloads311 == sorted([b"v5-down", b"v4-down", b"delayed-down", b"pending-down"])
    b.proc.wait(10)
    assert b.proc.returncode == 0


# --------------------------------------------------------------------------------------------
# wills refused at CONNECT
# --------------------------------------------------------------------------------------------

def test_v5_will_qos_above_listener_max_qos_refused(broker_factory, clients):
    """v5 [MQTT-3.2.2-12]: a CONNECT whose Will QoS exceeds the Server's Maximum QoS (listener
    `max_qos 1`) is refused, CONNACK 0x9B (QoS not supported), and the connection closed; a will
    at QoS 1 is accepted and the CONNACK tells Maximum QoS 1 ([MQTT-3.2.2-9])."""
    b = broker_factory("max_qos 1\n")
    topic = unique_topic("will/maxqos")
    watcher = subscriber(b, clients, topic, qos=1)
    raw = RawClient(b, 5)
    raw.send(connect_packet(
        5, unique_id("mq"), will=dict(topic=topic, payload=b"x", qos=2)))
    p = raw.expect(CONNACK)
    assert p.reason == 0x9B, p
    assert raw.expect_closed(3.0) == []
    watcher.expect_none(0.5)  # a refused CONNECT never had a will
    ok, ack = will_client(b, 5, topic, b"x", qos=1)
    assert ack.props.get(P_MAXIMUM_QOS) == 1, ack
    ok.disconnect()
    ok.close()


def test_v5_retained_will_refused_when_retain_unavailable(broker_factory, clients):
    """v5 [MQTT-3.2.2-13]: with retain_available false, a CONNECT with Will Retain 1 is refused
    (CONNACK 0x9A Retain not supported) and the connection closed."""
    b = broker_factory("retain_available false\n")
    raw = RawClient(b, 5)
    raw.send(connect_packet(
        5, unique_id("ra"), will=dict(topic=unique_topic("will/ra"), payload=b"x", retain=True)))
    p = raw.expect(CONNACK)
    assert p.reason == 0x9A, p
    assert raw.expect_closed(3.0) == []


@VERSIONS
@pytest.mark.parametrize("wtopic", ["will/+/x", "will/#", ""])
def test_will_with_invalid_topic_refused(broker, clients, version, wtopic):
    """3.1.1 / v5 [MQTT-4.7.1-1] (wildcards must not be used in a Topic Name) and [MQTT-4.7.3-1]
    (a Topic Name is at least one character): a will topic with `+` or `#`, or an empty one, is
    not a valid topic name; the CONNECT is refused (v5: a CONNACK >= 0x80, 3.1.1: CONNACK with
    a non-zero code or the connection is closed) and no will can ever be published."""
    raw = RawClient(broker, version)
    raw.send(connect_packet(version, unique_id("wt"), will=dict(topic=wtopic, payload=b"x")))
    rc = refused_or_closed(raw)
    if version == 5 and rc is not None:
        assert rc >= 0x80, rc


def _connect_with_flags(version, flags, will_fields=False):
    """A CONNECT with the given Connect Flags byte (and will properties/topic/payload when
    will_fields), built by hand because the builder derives the flags from its arguments."""
    import struct
    from helpers import encode_props, mqtt_bin, mqtt_str
    vh = mqtt_str("MQTT") + bytes([version, flags]) + struct.pack("!H", 30)
    if version == 5:
        vh += encode_props(None)
    pl = mqtt_str(unique_id("wf"))
    if will_fields:
        if version == 5:
            pl += encode_props(None)
        pl += mqtt_str(unique_topic("will/flags")) + mqtt_bin(b"x")
    return packet(1, 0, vh + pl)


@VERSIONS
@pytest.mark.parametrize("flags", [0x02 | 0x08, 0x02 | 0x10, 0x02 | 0x20],
                         ids=["qos1_without_will", "qos2_without_will", "retain_without_will"])
def test_will_qos_or_retain_without_will_flag_refused(broker, version, flags):
    """3.1.1 [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15] / v5 [MQTT-3.1.2-11]
    [MQTT-3.1.2-13]: with Will Flag 0, Will QoS and Will Retain MUST be 0; a CONNECT breaking that
    is malformed and the connection is closed (v5: CONNACK >= 0x80 allowed first)."""
    raw = RawClient(broker, version)
    raw.send(_connect_with_flags(version, flags))
    rc = refused_or_closed(raw)
    if version == 5 and rc is not None:
        assert rc >= 0x80, rc


@VERSIONS
def test_will_qos_3_refused(broker, version):
    """3.1.1 [MQTT-3.1.2-14] / v5 [MQTT-3.1.2-12]: Will QoS MUST NOT be 3; such a CONNECT is
    malformed and the connection is closed."""
    raw = RawClient(broker, version)
    raw.send(_connect_with_flags(version, 0x02 | 0x04 | 0x18, will_fields=True))
    rc = refused_or_closed(raw)
    if version == 5 and rc is not None:
        assert rc >= 0x80, rc

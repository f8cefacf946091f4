"""CONNECT / CONNACK / DISCONNECT / keepalive / takeover / will, from MQTT 3.1.1 and 5.0.

Normative ids are cited per test: "3.1.1 [MQTT-x]" for MQTT 3.1.1, "v5 [MQTT-x]" for MQTT 5.0.
"""
import time

import pytest

from helpers import (
    AUTH, CONNACK, DISCONNECT, PINGREQ_BYTES, PINGRESP_BYTES, MQTTv31, MQTTv311, MQTTv5,
    P_ASSIGNED_CLIENT_ID, P_AUTH_DATA, P_AUTH_METHOD, P_SERVER_KEEP_ALIVE, P_SESSION_EXPIRY,
    Client, ConnectRefused, MosquittoSub, RawClient, auth_packet, connect_packet, packet, props,
    publish_packet, run_pub, unique_id, unique_topic,
)
from paho.mqtt.packettypes import PacketTypes

BOTH = pytest.mark.parametrize("proto", [MQTTv311, MQTTv5], ids=["v311", "v5"])


def session_props(expiry=300):
    """v5 CONNECT properties that keep the session after the connection closes."""
    return props(PacketTypes.CONNECT, SessionExpiryInterval=expiry)


def persistent_client(broker, proto, client_id, **kw):
    """A client whose session outlives the connection: clean session 0 (3.1.1) or clean start 0
    with a session expiry (v5)."""
    if proto == MQTTv5:
        return Client(broker, client_id, MQTTv5, clean=False, properties=session_props(), **kw)
    return Client(broker, client_id, proto, clean=False, **kw)


# --------------------------------------------------------------------------------------------
# accepted CONNECTs
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("proto", [MQTTv31, MQTTv311, MQTTv5], ids=["v31", "v311", "v5"])
def test_connect_is_accepted_for_each_protocol_version(broker, clients, proto):
    """3.1.1 [MQTT-3.1.4-4] / v5 [MQTT-3.1.4-5]: a valid CONNECT is acknowledged with CONNACK 0;
    3.1 (MQIsdp, level 3) is accepted too, as Mosquitto does."""
    c = Client(broker, protocol=proto)
    clients.append(c)
    assert c.connack_rc == 0
    # and the connection is usable: a QoS 1 round trip to itself
    topic = unique_topic("connect")
    assert c.subscribe(topic, 1) == [1]
    c.publish(topic, b"hello", qos=1)
    m = c.expect_one()
    assert (m.topic, m.payload) == (topic, b"hello")


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_connack_bytes_for_a_clean_connect(broker, version):
    """3.1.1 section 3.2: CONNACK is exactly 20 02 00 00 for a clean session;
    v5 [MQTT-3.2.2-2]: session present 0 with Clean Start 1, reason code 0x00."""
    with RawClient(broker, version) as raw:
        p = raw.connect(clean=True)
        if version == 4:
            assert p.raw == b"\x20\x02\x00\x00"
        else:
            assert p.raw[0] == 0x20 and p.body[:2] == b"\x00\x00"


# --------------------------------------------------------------------------------------------
# refused CONNECTs
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("level", [2, 6, 0x7F], ids=["level2", "level6", "level127"])
def test_unsupported_protocol_level_is_refused_and_closed(broker, level):
    """3.1.1 [MQTT-3.1.2-2]: unsupported level -> CONNACK return code 0x01 then close.
    v5 [MQTT-3.1.2-2]: CONNACK 0x84 (Unsupported Protocol Version) then close.
    A server speaking both cannot know which CONNACK format an unknown level expects, so either
    form is accepted: a 3.1.1 CONNACK (2 bytes, code 0x01) or a v5 CONNACK with 0x84."""
    with RawClient(broker, 4) as raw:
        raw.send(connect_packet(version=level, client_id=unique_id()))
        got = raw.expect_closed()
        assert got, "connection closed without a CONNACK"
        p = got[0]
        assert p.type == CONNACK, got
        assert (len(p.body) == 2 and p.body[1] == 0x01) or p.body[1] == 0x84, p
        assert len(got) == 1, f"nothing may follow the refusing CONNACK: {got}"


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_connect_with_reserved_flag_set_is_closed(broker, version):
    """3.1.1 [MQTT-3.1.2-3] / v5 [MQTT-3.1.2-3]: the reserved CONNECT flag must be 0, otherwise
    the server MUST disconnect (v5: Malformed Packet, CONNACK 0x81 allowed before the close)."""
    with RawClient(broker, version) as raw:
        raw.send(connect_packet(version=version, client_id=unique_id(), reserved_flag=True))
        got = raw.expect_closed()
        for p in got:
            assert p.type == CONNACK and p.reason != 0, f"a bad CONNECT must not be accepted: {got}"


@pytest.mark.parametrize("name,version", [("MQIsdp", 4), ("MQTX", 4), ("MQTT", 3)],
                         ids=["MQIsdp-level4", "MQTX", "MQTT-level3"])
def test_connect_with_wrong_protocol_name_is_refused(broker, name, version):
    """3.1.1 [MQTT-3.1.2-1] / v5 [MQTT-3.1.2-1]: a protocol name that is not the one for the
    level is refused: the server MAY send a refusing CONNACK, then MUST close."""
    with RawClient(broker, 4) as raw:
        raw.send(connect_packet(version=version, client_id=unique_id(), proto_name=name))
        got = raw.expect_closed()
        for p in got:
            assert p.type == CONNACK and p.body[1] != 0, f"must not be accepted: {got}"


# --------------------------------------------------------------------------------------------
# client identifiers
# --------------------------------------------------------------------------------------------

def test_v311_empty_client_id_with_clean_session_is_accepted(broker):
    """3.1.1 [MQTT-3.1.3-6]: a zero-byte ClientId with CleanSession 1 is accepted and the server
    treats it as a unique id."""
    with RawClient(broker, 4) as a, RawClient(broker, 4) as b:
        a.connect(client_id="", clean=True)
        b.connect(client_id="", clean=True)
        # two anonymous-id clients coexist: the second does not take over the first
        assert a.is_open(0.3)
        a.send(PINGREQ_BYTES)
        assert a.read_packet().raw == PINGRESP_BYTES


def test_v311_empty_client_id_without_clean_session_is_refused_rc2(broker):
    """3.1.1 [MQTT-3.1.3-8]: zero-byte ClientId with CleanSession 0 -> CONNACK return code 0x02
    (Identifier rejected) and the connection is closed [MQTT-3.2.2-5]."""
    with RawClient(broker, 4) as raw:
        raw.send(connect_packet(4, "", clean=False))
        got = raw.expect_closed()
        assert [p.raw for p in got] == [b"\x20\x02\x00\x02"], got


def test_v5_empty_client_id_gets_an_assigned_client_identifier(broker):
    """v5 [MQTT-3.1.3-6], [MQTT-3.2.2-16]: a zero-length ClientID is given a unique id, returned
    in the CONNACK's Assigned Client Identifier property."""
    ids = []
    for _ in range(2):
        with RawClient(broker, 5) as raw:
            p = raw.connect(client_id="")
            assigned = p.props.get(P_ASSIGNED_CLIENT_ID)
            assert assigned, f"no Assigned Client Identifier in {p!r}"
            ids.append(assigned)
    assert ids[0] != ids[1], "assigned identifiers must be unique"


def test_v5_paho_empty_client_id_sees_assigned_identifier(broker, clients):
    """v5 [MQTT-3.2.2-16] with a real client library."""
    c = Client(broker, "", MQTTv5)
    clients.append(c)
    assert getattr(c.connack_props, "AssignedClientIdentifier", None)


# --------------------------------------------------------------------------------------------
# takeover and sessions
# --------------------------------------------------------------------------------------------

def test_v311_duplicate_client_id_takes_over_and_closes_the_old_connection(broker, clients):
    """3.1.1 [MQTT-3.1.4-2]: if the ClientId is already connected, the server MUST disconnect the
    existing client; the new one is accepted."""
    cid = unique_id("dup")
    with RawClient(broker, 4) as old:
        old.connect(client_id=cid)
        new = Client(broker, cid, MQTTv311)
        clients.append(new)
        assert new.connack_rc == 0
        got = old.expect_closed()
        assert got == [], f"3.1.1 has no server DISCONNECT; got {got}"
        # the new connection stays up
        assert not new.disconnected.wait(0.5)


def test_v5_duplicate_client_id_sends_disconnect_0x8e_to_the_old_connection(broker, clients):
    """v5 [MQTT-3.1.4-3]: the existing client gets DISCONNECT with Reason Code 0x8E (Session taken
    over) and its connection is closed."""
    cid = unique_id("dup5")
    with RawClient(broker, 5) as old:
        old.connect(client_id=cid)
        new = Client(broker, cid, MQTTv5)
        clients.append(new)
        got = old.expect_closed()
        assert [(p.type, p.reason) for p in got] == [(DISCONNECT, 0x8E)], got
        assert not new.disconnected.wait(0.5)


@BOTH
def test_takeover_by_paho_client_disconnects_the_old_paho_client(broker, clients, proto):
    """3.1.1 [MQTT-3.1.4-2] / v5 [MQTT-3.1.4-3], with a real client library on both ends.
    (The v5 reason 0x8E is checked byte by byte above: paho 1.6.1 ignores the reason code of a
    DISCONNECT whose remaining length is 1, so it reports a lost connection instead.)"""
    cid = unique_id("dupp")
    old = Client(broker, cid, proto)
    clients.append(old)
    new = Client(broker, cid, proto)
    clients.append(new)
    old.wait_disconnected()
    assert new.connected.is_set()
    assert not new.disconnected.wait(0.5)


@BOTH
def test_session_present_reflects_a_resumed_session(broker, clients, proto):
    """3.1.1 [MQTT-3.2.2-2] / v5 [MQTT-3.2.2-3]: resuming a stored session sets Session Present 1;
    3.1.1 [MQTT-3.2.2-1] / v5 [MQTT-3.2.2-2]: a clean session/clean start gets 0."""
    cid = unique_id("sp")
    c = persistent_client(broker, proto, cid)
    assert c.session_present is False
    c.subscribe(unique_topic("sp"), 1)
    c.disconnect()
    c2 = persistent_client(broker, proto, cid)
    clients.append(c2)
    assert c2.session_present is True
    c2.disconnect()
    c3 = Client(broker, cid, proto, clean=True)
    clients.append(c3)
    assert c3.session_present is False


@BOTH
def test_resumed_session_under_a_different_username_starts_clean(broker, clients, proto):
    """DESIGN "Identity is protected": a session stored for one username is not handed to another
    (v5 section 5.4.2 lets the server bind sessions to the authenticated user); the new connection
    gets Session Present 0 [MQTT-3.2.2-2/3] and none of the old subscriptions."""
    cid = unique_id("user")
    topic = unique_topic("user")
    alice = persistent_client(broker, proto, cid, username="alice")
    assert alice.subscribe(topic, 1) == [1]
    alice.disconnect()

    bob = persistent_client(broker, proto, cid, username="bob")
    clients.append(bob)
    assert bob.session_present is False
    pub = Client(broker, protocol=proto)
    clients.append(pub)
    pub.publish(topic, b"for alice only", qos=1)
    bob.expect_none(0.7)


# --------------------------------------------------------------------------------------------
# keepalive
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_silent_client_is_closed_after_one_and_a_half_keepalives(broker, version):
    """3.1.1 [MQTT-3.1.2-24] / v5 [MQTT-3.1.2-22]: no packet within 1.5 x Keep Alive -> the
    server closes the connection (v5 may say DISCONNECT 0x8D first). Keep Alive 2 s: the close
    must come after 2 s (the client may legitimately ping at 2 s) and about 3 s."""
    with RawClient(broker, version) as raw:
        raw.connect(keepalive=2)
        t0 = time.monotonic()
        got = raw.expect_closed(timeout=6)
        elapsed = time.monotonic() - t0
        assert 2.0 <= elapsed <= 4.5, f"closed after {elapsed:.2f}s, expected ~3s"
        for p in got:
            assert p.type == DISCONNECT and p.reason == 0x8D, got


def test_pinging_client_stays_connected_and_gets_pingresp(broker):
    """3.1.1 [MQTT-3.12.4-1]: the server MUST answer PINGREQ with PINGRESP (d0 00); a client that
    sends within its Keep Alive is never closed [MQTT-3.1.2-24]."""
    with RawClient(broker, 4) as raw:
        raw.connect(keepalive=2)
        for _ in range(4):
            time.sleep(1.0)
            raw.send(PINGREQ_BYTES)
            assert raw.read_packet(2).raw == PINGRESP_BYTES
        assert raw.is_open(0.2)


@pytest.mark.parametrize("asked", [60, 0], ids=["asked60", "asked0"])
def test_v5_keepalive_above_max_keepalive_gets_server_keep_alive(broker_factory, asked):
    """v5 [MQTT-3.2.2-21] / section 3.2.2.3.14: with max_keepalive 10 the server accepts the client
    and tells it to use 10 with the Server Keep Alive property (0, "no keepalive", exceeds it too)."""
    b = broker_factory("max_keepalive 10\n")
    with RawClient(b, 5) as raw:
        p = raw.connect(keepalive=asked)
        assert p.props.get(P_SERVER_KEEP_ALIVE) == 10, p


@pytest.mark.parametrize("asked", [60, 0], ids=["asked60", "asked0"])
def test_v311_keepalive_above_max_keepalive_is_refused_rc2(broker_factory, asked):
    """3.1.1 cannot be told another keepalive, so with max_keepalive 10 a client asking 60 (or 0,
    unlimited) is refused with CONNACK 0x02, as Mosquitto 2.0 does, and closed [MQTT-3.2.2-5]."""
    b = broker_factory("max_keepalive 10\n")
    with RawClient(b, 4) as raw:
        raw.send(connect_packet(4, unique_id(), keepalive=asked))
        got = raw.expect_closed()
        assert [p.raw for p in got] == [b"\x20\x02\x00\x02"], got
    with RawClient(b, 4) as ok:
        ok.connect(keepalive=10)


# --------------------------------------------------------------------------------------------
# packet order and timeouts
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("first", ["pingreq", "publish", "subscribe", "auth"])
def test_packet_before_connect_closes_the_connection(broker, clients, first):
    """3.1.1 [MQTT-3.1.0-1] / v5 [MQTT-3.1.0-1]: the first packet from the client MUST be
    CONNECT; anything else closes the connection without an answer, and is not acted on."""
    topic = unique_topic("early")
    watcher = Client(broker, protocol=MQTTv311)
    clients.append(watcher)
    watcher.subscribe(topic, 0)
    data = {
        "pingreq": PINGREQ_BYTES,
        "publish": publish_packet(topic, b"too early"),
        "subscribe": packet(8, 2, b"\x00\x01" + b"\x00\x01#" + b"\x00"),
        "auth": auth_packet(0x18, [(P_AUTH_METHOD, "SCRAM-SHA-1")]),
    }[first]
    with RawClient(broker, 4) as raw:
        raw.send(data)
        got = raw.expect_closed()
        assert all(p.type == DISCONNECT for p in got), f"no answer expected, got {got}"
    watcher.expect_none(0.3)


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_second_connect_closes_the_connection(broker, version):
    """3.1.1 [MQTT-3.1.0-2] / v5 [MQTT-3.1.0-2]: a second CONNECT is a protocol violation and the
    connection is closed (v5: a DISCONNECT, if sent, carries 0x82 Protocol Error)."""
    with RawClient(broker, version) as raw:
        raw.connect()
        raw.send(connect_packet(version, unique_id()))
        got = raw.expect_closed()
        for p in got:
            assert p.type == DISCONNECT and p.reason == 0x82, got


def test_socket_that_sends_nothing_is_closed_after_connect_timeout(broker_factory):
    """tidemq's connect_timeout (CONFIG.md): a socket that never completes CONNECT is closed;
    3.1.1 section 3.1 / v5 section 4.8 allow the server to close a connection that does not send
    CONNECT within a reasonable time."""
    b = broker_factory("connect_timeout 1s\n")
    with RawClient(b, 4) as silent, RawClient(b, 4) as partial:
        t0 = time.monotonic()
        partial.send(connect_packet(4, unique_id())[:5])  # a CONNECT that never completes
        silent.expect_closed(timeout=5)
        partial.expect_closed(timeout=5)
        elapsed = time.monotonic() - t0
        assert 0.7 <= elapsed <= 4.0, f"closed after {elapsed:.2f}s, expected ~1s"
    with RawClient(b, 4) as ok:  # the broker still serves
        ok.connect()


# --------------------------------------------------------------------------------------------
# AUTH (no enhanced authentication methods are supported)
# --------------------------------------------------------------------------------------------

def test_v5_connect_with_unknown_authentication_method_is_refused(broker):
    """v5 [MQTT-4.12.0-1]: an Authentication Method the server does not support -> CONNACK 0x8C
    (Bad authentication method) or 0x87 (Not authorized), then the connection is closed."""
    with RawClient(broker, 5) as raw:
        raw.send(connect_packet(5, unique_id(),
                                props=[(P_AUTH_METHOD, "SCRAM-SHA-1"), (P_AUTH_DATA, b"x")]))
        got = raw.expect_closed()
        assert got and got[0].type == CONNACK, got
        assert got[0].reason in (0x8C, 0x87), got
        assert all(p.type != AUTH for p in got), "no AUTH exchange for an unsupported method"


def test_v5_auth_packet_after_plain_connect_is_refused(broker):
    """v5 [MQTT-4.12.0-7]: without an Authentication Method in CONNECT the client MUST NOT send
    AUTH; the server closes, after DISCONNECT 0x8C (Bad authentication method) or 0x82 (Protocol
    Error, the generic answer to a protocol violation, section 4.13)."""
    with RawClient(broker, 5) as raw:
        raw.connect()
        raw.send(auth_packet(0x19, [(P_AUTH_METHOD, "SCRAM-SHA-1")]))
        got = raw.expect_closed()
        assert [p.type for p in got] == [DISCONNECT], got
        assert got[0].reason in (0x8C, 0x82), got


def test_v311_reserved_packet_type_15_closes_the_connection(broker):
    """3.1.1 section 2.2.1: packet type 15 is Reserved (forbidden) in 3.1.1; receiving it is a
    protocol violation [MQTT-4.8.0-1] and the connection is closed."""
    with RawClient(broker, 4) as raw:
        raw.connect()
        raw.send(b"\xf0\x00")
        assert raw.expect_closed() == []


# --------------------------------------------------------------------------------------------
# will messages
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_will_is_published_when_the_connection_drops(broker, clients, version):
    """3.1.1 [MQTT-3.1.2-8] / v5 [MQTT-3.1.2-8]: the Will Message MUST be published when the
    network connection closes without a DISCONNECT."""
    topic = unique_topic("will")
    watcher = Client(broker, protocol=MQTTv5)
    clients.append(watcher)
    watcher.subscribe(topic, 1)
    raw = RawClient(broker, version)
    raw.connect(will={"topic": topic, "payload": b"gone", "qos": 1})
    raw.close()
    m = watcher.expect_one()
    assert (m.topic, m.payload, m.qos) == (topic, b"gone", 1)


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_will_is_not_published_after_normal_disconnect(broker, clients, version):
    """3.1.1 [MQTT-3.1.2-10] / v5 [MQTT-3.14.4-3]: on DISCONNECT (v5 reason 0x00) the server
    MUST discard the Will Message without publishing it."""
    topic = unique_topic("nowill")
    watcher = Client(broker, protocol=MQTTv5)
    clients.append(watcher)
    watcher.subscribe(topic, 1)
    with RawClient(broker, version) as raw:
        raw.connect(will={"topic": topic, "payload": b"should not be sent", "qos": 1})
        raw.disconnect(reason=0x00 if version == 5 else None)
        raw.expect_closed()
    watcher.expect_none(0.8)


def test_v5_disconnect_with_reason_0x04_publishes_the_will(broker, clients):
    """v5 section 3.14.2.1, reason 0x04 "Disconnect with Will Message": the client wants the server
    to publish its Will; [MQTT-3.1.2-8] the Will is published unless deleted by a DISCONNECT with
    0x00."""
    topic = unique_topic("will04")
    watcher = Client(broker, protocol=MQTTv5)
    clients.append(watcher)
    watcher.subscribe(topic, 1)
    with RawClient(broker, 5) as raw:
        raw.connect(will={"topic": topic, "payload": b"asked for", "qos": 1})
        raw.disconnect(reason=0x04)
        raw.expect_closed()
    m = watcher.expect_one()
    assert (m.topic, m.payload) == (topic, b"asked for")


def test_takeover_publishes_the_old_connections_will(broker, clients):
    """v5 section 3.1.4 / [MQTT-3.1.2-8]: a taken-over connection is closed by the server, which
    is not a DISCONNECT from the client, so its Will (with no Will Delay) is published."""
    topic = unique_topic("willtake")
    watcher = Client(broker, protocol=MQTTv5)
    clients.append(watcher)
    watcher.subscribe(topic, 1)
    cid = unique_id("wt")
    with RawClient(broker, 5) as old:
        old.connect(client_id=cid, will={"topic": topic, "payload": b"taken", "qos": 1})
        new = Client(broker, cid, MQTTv5)
        clients.append(new)
        old.expect_closed()
    m = watcher.expect_one()
    assert m.payload == b"taken"


def test_paho_v5_disconnect_with_will_reason(broker, clients):
    """v5 section 3.14.2.1 reason 0x04, through paho's disconnect(reasoncode=...)."""
    topic = unique_topic("willp")
    watcher = Client(broker, protocol=MQTTv5)
    clients.append(watcher)
    watcher.subscribe(topic, 0)
    c = Client(broker, protocol=MQTTv5, will={"topic": topic, "payload": b"paho will"})
    c.disconnect(reasoncode=0x04)
    assert watcher.expect_one().payload == b"paho will"


def test_session_expiry_zero_v5_reconnect_has_no_session(broker, clients):
    """v5 [MQTT-3.1.2-23]: with Session Expiry Interval 0 (absent) the session ends when the
    connection closes, so a later Clean Start 0 connection gets Session Present 0."""
    cid = unique_id("se0")
    c = Client(broker, cid, MQTTv5, clean=False)
    c.subscribe(unique_topic("se0"), 1)
    c.disconnect()
    c2 = Client(broker, cid, MQTTv5, clean=False)
    clients.append(c2)
    assert c2.session_present is False


def test_session_expiry_property_is_honoured_on_resume(broker):
    """v5 [MQTT-3.1.2-5]: Clean Start 0 with an existing session resumes it (Session Present 1)."""
    cid = unique_id("se")
    with RawClient(broker, 5) as a:
        a.connect(client_id=cid, clean=False, props=[(P_SESSION_EXPIRY, 60)])
        a.disconnect(reason=0)
        a.expect_closed()
    with RawClient(broker, 5) as b:
        p = b.connect(client_id=cid, clean=False, props=[(P_SESSION_EXPIRY, 60)])
        assert p.session_present, p
        b.disconnect(reason=0)
    with RawClient(broker, 5) as c:  # and a Clean Start 1 reconnect discards it
        p = c.connect(client_id=cid, clean=True)
        assert not p.session_present, p


def test_v311_paho_client_is_refused_rc2_when_keepalive_exceeds_max_keepalive(broker_factory):
    """As test_v311_keepalive_above_max_keepalive_is_refused_rc2, seen through paho: CONNACK 0x02."""
    b = broker_factory("max_keepalive 10\n")
    with pytest.raises(ConnectRefused) as e:
        Client(b, protocol=MQTTv311, keepalive=60).close()
    assert e.value.rc == 2


@pytest.mark.parametrize("version", [MQTTv31, MQTTv311, MQTTv5], ids=["v31", "v311", "v5"])
def test_mosquitto_clients_connect_with_each_protocol_version(broker, version):
    """3.1.1 [MQTT-3.1.4-4] / v5 [MQTT-3.1.4-5] with Mosquitto's own clients: mosquitto_sub
    connects, subscribes and receives what mosquitto_pub sends (-V mqttv31 / mqttv311 / mqttv5)."""
    topic = unique_topic("mosqconn")
    with MosquittoSub(broker, topic, qos=1, version=version) as ms:
        run_pub(broker, topic, "hi", qos=1, version=version)
        assert ms.wait_lines(1) == [f"{topic} hi"]

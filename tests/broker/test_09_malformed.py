"""Malformed and forbidden input, byte by byte: each bad packet closes THAT connection (MQTT 5,
after CONNACK: a DISCONNECT with the reason code first - 0x81 Malformed Packet, 0x82 Protocol
Error, 0x90 Topic Name invalid, 0x95 Packet too large) and the broker keeps serving everyone
else: a witness client connected throughout still publishes and receives afterwards.

Normative ids: "3.1.1 [MQTT-x]" for MQTT 3.1.1, "v5 [MQTT-x]" for MQTT 5.0. In 3.1.1 a server
never sends DISCONNECT, so a 3.1.1 connection must simply be closed.
"""
import random
import socket
import struct
import time

import pytest

from helpers import (
    CONNACK, DISCONNECT, PINGREQ_BYTES, PUBLISH, SUBSCRIBE, UNSUBSCRIBE, P_MAXIMUM_PACKET_SIZE,
    P_MESSAGE_EXPIRY, P_TOPIC_ALIAS,
    RawClient, connect_packet, encode_props, mqtt_str, packet, publish_packet, subscribe_packet,
    unique_id, unique_topic, varint,
)
from helpers_limits import Witness

VERSIONS = pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])

MALFORMED, PROTOCOL_ERROR, TOPIC_INVALID, TOO_LARGE = 0x81, 0x82, 0x90, 0x95


@pytest.fixture
def witness(broker):
    w = Witness(broker)
    yield w
    w.close()


def connected(broker, version):
    raw = RawClient(broker, version)
    raw.connect()
    return raw


def assert_closed_with(raw, version, reason, what):
    """The broker closed raw; v5 saw exactly one DISCONNECT(reason) first, 3.1.1 saw nothing."""
    got = raw.expect_closed()
    if version == 5:
        assert got, f"{what}: v5 connection closed without a DISCONNECT (expected 0x{reason:02x})"
        assert len(got) == 1 and got[0].type == DISCONNECT, f"{what}: got {got}"
        assert got[0].reason == reason, (
            f"{what}: DISCONNECT reason 0x{got[0].reason:02x}, expected 0x{reason:02x}")
    else:
        assert got == [], f"{what}: a 3.1.1 server sends nothing before closing, got {got}"


def assert_closed_before_connack(raw, what, allowed_v5_codes=(), v3_codes=()):
    """A refused CONNECT: closed; any CONNACK sent first must refuse (never reason 0)."""
    got = raw.expect_closed()
    for p in got:
        assert p.type == CONNACK, f"{what}: only a CONNACK may precede the close, got {got}"
        assert p.reason != 0, f"{what}: CONNACK accepted the connection: {p}"
        if len(p.body) > 2 or raw.version == 5:
            if allowed_v5_codes:
                assert p.reason in allowed_v5_codes, f"{what}: CONNACK {p}"
        elif v3_codes:
            assert p.reason in v3_codes, f"{what}: CONNACK {p}"
    return got


# --------------------------------------------------------------------------------------------
# bad packets after a successful CONNECT
# --------------------------------------------------------------------------------------------

def _pub_body(version, topic=b"a/b", props=b"\x00"):
    body = struct.pack("!H", len(topic)) + topic
    if version == 5:
        body += props
    return body + b"payload"


def _sub_body(version, filt="a/b", opts=0):
    body = struct.pack("!H", 1)
    if version == 5:
        body += b"\x00"
    return body + mqtt_str(filt) + bytes([opts])


AFTER_CONNECT_CASES = {
    # name: (builder(version) -> bytes, v5 reason, normative reference)
    "remaining_length_over_4_bytes": (
        lambda v: b"\x30\xff\xff\xff\xff\x01", MALFORMED,
        "3.1.1 section 2.2.3 / v5 section 1.5.5: at most 4 bytes of Remaining Length"),
    "publish_qos_3": (
        lambda v: packet(PUBLISH, 0x06, struct.pack("!H", 3) + b"a/b" + b"\x00\x01"
                         + (b"\x00" if v == 5 else b"") + b"x"), MALFORMED,
        "3.1.1 / v5 [MQTT-3.3.1-4]: both QoS bits set -> close"),
    "publish_qos0_with_dup": (
        lambda v: packet(PUBLISH, 0x08, _pub_body(v)), MALFORMED,
        "3.1.1 / v5 [MQTT-3.3.1-2]: DUP must be 0 for QoS 0"),
    "subscribe_flags_0": (
        lambda v: packet(SUBSCRIBE, 0x00, _sub_body(v)), MALFORMED,
        "3.1.1 [MQTT-3.8.1-1] [MQTT-2.2.2-2] / v5 [MQTT-3.8.1-1]: SUBSCRIBE flags must be 0010"),
    "unsubscribe_flags_0": (
        lambda v: packet(UNSUBSCRIBE, 0x00, struct.pack("!H", 1) + (b"\x00" if v == 5 else b"")
                         + mqtt_str("a/b")), MALFORMED,
        "3.1.1 [MQTT-3.10.1-1] / v5 [MQTT-3.10.1-1]: UNSUBSCRIBE flags must be 0010"),
    "pubrel_flags_0": (
        lambda v: b"\x60\x02\x00\x01", MALFORMED,
        "3.1.1 [MQTT-3.6.1-1] / v5 [MQTT-3.6.1-1]: PUBREL flags must be 0010"),
    "pingreq_flags_set": (
        lambda v: b"\xc1\x00", MALFORMED,
        "3.1.1 [MQTT-2.2.2-2] / v5 section 2.1.3: reserved flags must be 0"),
    "reserved_packet_type_0": (
        lambda v: b"\x00\x00", MALFORMED, "3.1.1 / v5 section 2.1.2: type 0 is reserved"),
    "second_connect": (
        lambda v: connect_packet(v, unique_id("again")), PROTOCOL_ERROR,
        "3.1.1 / v5 [MQTT-3.1.0-2]: a second CONNECT is a protocol violation"),
    "client_sends_connack": (
        lambda v: b"\x20\x02\x00\x00" if v == 4 else b"\x20\x03\x00\x00\x00", PROTOCOL_ERROR,
        "v5 section 4.13: a server-to-client packet from a client is a Protocol Error"),
    "client_sends_suback": (
        lambda v: b"\x90\x03\x00\x01\x00" if v == 4 else b"\x90\x04\x00\x01\x00\x00",
        PROTOCOL_ERROR, "v5 section 4.13: a server-to-client packet from a client"),
    "topic_overlong_utf8": (
        lambda v: packet(PUBLISH, 0, _pub_body(v, b"a/\xc0\xaf")), MALFORMED,
        "3.1.1 [MQTT-1.5.3-1] / v5 [MQTT-1.5.4-1]: ill-formed UTF-8 (overlong '/')"),
    "topic_utf16_surrogate": (
        lambda v: packet(PUBLISH, 0, _pub_body(v, b"a/\xed\xa0\x80")), MALFORMED,
        "3.1.1 [MQTT-1.5.3-1] / v5 [MQTT-1.5.4-1]: UTF-8 encoded surrogate U+D800"),
    "topic_with_u0000": (
        lambda v: packet(PUBLISH, 0, _pub_body(v, b"a/\x00b")), MALFORMED,
        "3.1.1 [MQTT-1.5.3-2] / v5 [MQTT-1.5.4-2]: U+0000 in a UTF-8 string"),
    "topic_with_plus": (
        lambda v: packet(PUBLISH, 0, _pub_body(v, b"a/+/b")), TOPIC_INVALID,
        "3.1.1 / v5 [MQTT-3.3.2-2]: no wildcard in a PUBLISH Topic Name"),
    "topic_with_hash": (
        lambda v: packet(PUBLISH, 0x02, struct.pack("!H", 3) + b"a/#" + b"\x00\x07"
                         + (b"\x00" if v == 5 else b"") + b"x"), TOPIC_INVALID,
        "3.1.1 / v5 [MQTT-3.3.2-2]: no wildcard in a PUBLISH Topic Name (QoS 1)"),
    "subscribe_without_filters": (
        lambda v: packet(SUBSCRIBE, 0x02, struct.pack("!H", 1) + (b"\x00" if v == 5 else b"")),
        None,  # 3.1.1: malformed; v5 says Protocol Error
        "3.1.1 [MQTT-3.8.3-3] / v5 [MQTT-3.8.3-2]: SUBSCRIBE carries at least one filter"),
    "subscribe_options_qos_3": (
        lambda v: packet(SUBSCRIBE, 0x02, _sub_body(v, opts=3)), MALFORMED,
        "3.1.1 [MQTT-3.8.3-4] / v5 section 3.8.3.1: requested QoS 3 is malformed"),
}


@VERSIONS
@pytest.mark.parametrize("case", sorted(AFTER_CONNECT_CASES))
def test_bad_packet_after_connect_closes_only_that_connection(broker, witness, version, case):
    """Each entry of AFTER_CONNECT_CASES: the connection that sent it is closed (v5: DISCONNECT with
    the reason code first); the witness connected throughout still publishes and receives."""
    build, reason, ref = AFTER_CONNECT_CASES[case]
    if reason is None:
        reason = PROTOCOL_ERROR
    raw = connected(broker, version)
    try:
        raw.send(build(version))
        assert_closed_with(raw, version, reason, f"{case} ({ref})")
    finally:
        raw.close()
    witness.check()


def test_empty_topic_without_alias_is_a_protocol_error_v5(broker, witness):
    """v5 section 3.3.2.3.4: a zero-length Topic Name without a Topic Alias is a Protocol Error
    -> DISCONNECT 0x82."""
    raw = connected(broker, 5)
    try:
        raw.send(packet(PUBLISH, 0, _pub_body(5, b"")))
        assert_closed_with(raw, 5, PROTOCOL_ERROR, "empty topic, no alias")
    finally:
        raw.close()
    witness.check()


def test_empty_topic_is_refused_v311(broker, witness):
    """3.1.1 [MQTT-4.7.3-1]: a Topic Name is at least one character long: the connection closes."""
    raw = connected(broker, 4)
    try:
        raw.send(packet(PUBLISH, 0, _pub_body(4, b"")))
        assert_closed_with(raw, 4, None, "empty topic")
    finally:
        raw.close()
    witness.check()


def test_auth_packet_in_mqtt311_closes(broker, witness):
    """3.1.1 section 2.2.1: packet type 15 is reserved (forbidden) in 3.1.1 -> close."""
    raw = connected(broker, 4)
    try:
        raw.send(b"\xf0\x00")
        assert_closed_with(raw, 4, None, "AUTH in 3.1.1")
    finally:
        raw.close()
    witness.check()


PROPERTY_CASES = {
    # name: (raw property block incl. its length, v5 reason)
    "unknown_property_id": (b"\x02\x7f\x00", MALFORMED),
    "duplicate_message_expiry": (encode_props([(P_MESSAGE_EXPIRY, 10), (P_MESSAGE_EXPIRY, 20)]),
                                 PROTOCOL_ERROR),
    "truncated_u32_value": (b"\x03\x02\x00\x00", MALFORMED),  # Message Expiry with 2 of 4 bytes
    "property_length_past_packet": (b"\x40\x01\x01", MALFORMED),
    "topic_alias_zero": (encode_props([(P_TOPIC_ALIAS, 0)]), PROTOCOL_ERROR),
    "payload_format_2": (b"\x02\x01\x02", PROTOCOL_ERROR),
}


@pytest.mark.parametrize("case", sorted(PROPERTY_CASES))
def test_malformed_publish_property_closes_with_reason(broker, witness, case):
    """v5 section 2.2.2.2: an unknown property identifier or a value running past its block is a
    Malformed Packet (0x81); a property twice is a Protocol Error (0x82); Topic Alias 0
    [MQTT-3.3.2-8] and Payload Format Indicator other than 0/1 are Protocol Errors."""
    block, reason = PROPERTY_CASES[case]
    raw = connected(broker, 5)
    try:
        raw.send(packet(PUBLISH, 0, struct.pack("!H", 3) + b"a/b" + block))
        assert_closed_with(raw, 5, reason, case)
    finally:
        raw.close()
    witness.check()


def test_malformed_subscribe_property_closes_with_reason(broker, witness):
    """v5 section 2.2.2.2: an unknown property id in SUBSCRIBE -> DISCONNECT 0x81."""
    raw = connected(broker, 5)
    try:
        body = struct.pack("!H", 1) + b"\x02\x7f\x00" + mqtt_str("a/b") + b"\x00"
        raw.send(packet(SUBSCRIBE, 0x02, body))
        assert_closed_with(raw, 5, MALFORMED, "SUBSCRIBE with an unknown property")
    finally:
        raw.close()
    witness.check()


# --------------------------------------------------------------------------------------------
# max_packet_size
# --------------------------------------------------------------------------------------------

@VERSIONS
def test_packet_over_max_packet_size_is_refused_with_0x95(broker_factory, version):
    """v5 section 3.2.2.3.6 / 4.13: the server's Maximum Packet Size (told in CONNACK) bounds what
    it accepts; a larger PUBLISH -> DISCONNECT 0x95 Packet too large; 3.1.1: closed. The broker
    keeps serving the witness."""
    b = broker_factory("max_packet_size 1K")
    w = Witness(b)
    try:
        raw = RawClient(b, version)
        ack = raw.connect()
        if version == 5:
            assert ack.props.get(P_MAXIMUM_PACKET_SIZE) == 1024, ack
        raw.publish(unique_topic("big"), b"x" * 2000)
        assert_closed_with(raw, version, TOO_LARGE, "PUBLISH of 2000 bytes over 1K")
        raw.close()
        # a packet just under the limit is fine
        with RawClient(b, version) as ok:
            ok.connect()
            ok.publish(w.topic, b"y" * 900, qos=1, packet_id=3)
            assert ok.expect(4).packet_id == 3  # PUBACK
        assert w.client.expect_one().payload == b"y" * 900
        w.check()
    finally:
        w.close()


@VERSIONS
def test_remaining_length_past_max_packet_size_closes_before_the_body(broker_factory, version):
    """A fixed header announcing more than max_packet_size is refused at once (the broker does not
    wait for, or buffer, the body): v5 DISCONNECT 0x95, 3.1.1 close."""
    b = broker_factory("max_packet_size 1K")
    w = Witness(b)
    try:
        raw = RawClient(b, version)
        raw.connect()
        raw.send(b"\x30" + varint(200_000) + b"\x00\x03a/b")  # header only, no body follows
        assert_closed_with(raw, version, TOO_LARGE, "header announcing 200000 bytes")
        raw.close()
        w.check()
    finally:
        w.close()


# --------------------------------------------------------------------------------------------
# before / in CONNECT
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("first", ["publish", "pingreq", "subscribe", "disconnect"])
def test_packet_before_connect_closes_without_answer(broker, witness, first):
    """3.1.1 / v5 [MQTT-3.1.0-1]: the first packet from a client MUST be CONNECT; anything else
    closes the connection without an answer."""
    data = {
        "publish": publish_packet("a/b", b"x"),
        "pingreq": PINGREQ_BYTES,
        "subscribe": subscribe_packet(1, [("a/#", 0)]),
        "disconnect": b"\xe0\x00",
    }[first]
    with RawClient(broker, 4) as raw:
        raw.send(data)
        assert raw.expect_closed() == []
    witness.check()


def test_remaining_length_over_4_bytes_before_connect_closes(broker, witness):
    """3.1.1 section 2.2.3 / v5 section 1.5.5: a 5-byte Remaining Length is malformed: close."""
    with RawClient(broker, 4) as raw:
        raw.send(b"\x10\xff\xff\xff\xff\x01")
        assert raw.expect_closed() == []
    witness.check()


@VERSIONS
def test_truncated_connect_is_refused(broker, witness, version):
    """A CONNECT whose client id length runs past the end of the packet is malformed: the
    connection is closed without being accepted (v5 may send CONNACK 0x81 first [MQTT-4.13.1-1])."""
    good = connect_packet(version, "truncated-id")
    body = good[2:]  # remaining length < 128: one byte
    cut = body[:-5]  # lose the end of the client id, keep the header consistent with the body
    with RawClient(broker, version) as raw:
        raw.send(bytes([good[0]]) + varint(len(cut)) + cut)
        assert_closed_before_connack(raw, "truncated CONNECT", allowed_v5_codes=(MALFORMED,))
    witness.check()


@VERSIONS
def test_connect_with_trailing_garbage_is_refused(broker, witness, version):
    """A CONNECT with bytes after its last field is malformed (every field is accounted for by the
    flags): closed, never accepted."""
    good = connect_packet(version, unique_id("trail"))
    body = good[2:] + b"\x00\x01z"
    with RawClient(broker, version) as raw:
        raw.send(bytes([good[0]]) + varint(len(body)) + body)
        assert_closed_before_connack(raw, "CONNECT + garbage", allowed_v5_codes=(MALFORMED,))
    witness.check()


@pytest.mark.parametrize("name", ["MQTX", "MQTT5", "mqtt", ""])
def test_bad_protocol_name_is_refused(broker, witness, name):
    """3.1.1 / v5 [MQTT-3.1.2-1]: a wrong protocol name: the server MUST NOT go on with the
    CONNECT in line with this specification - it is not accepted, the connection closes."""
    with RawClient(broker, 4) as raw:
        raw.send(connect_packet(4, unique_id("badname"), proto_name=name))
        assert_closed_before_connack(raw, f"protocol name {name!r}")
    witness.check()


@VERSIONS
def test_protocol_level_6_gets_unacceptable_version(broker, witness, version):
    """3.1.1 [MQTT-3.1.2-2]: an unsupported level -> CONNACK 0x01 then close; v5 [MQTT-3.1.2-2]:
    CONNACK 0x84 then close. The body is laid out as 3.1.1 or 5 (with properties); either CONNACK
    form is right for an unknown level."""
    data = bytearray(connect_packet(version, unique_id("level6")))
    name_at = 2 + 2 + 4  # fixed header (2) + protocol name (2 + 4)
    assert data[name_at] == version
    data[name_at] = 6
    with RawClient(broker, 4) as raw:
        raw.send(bytes(data))
        got = raw.expect_closed()
        assert got and got[0].type == CONNACK, f"expected a CONNACK before the close: {got}"
        p = got[0]
        assert (len(p.body) == 2 and p.reason == 0x01) or p.reason == 0x84, p
    witness.check()


CLIENT_ID_CASES = {
    "overlong": b"id\xc0\xaf",
    "surrogate": b"id\xed\xb0\x80",
    "u0000": b"id\x00x",
    "truncated_sequence": b"id\xe2\x82",
    "five_byte_form": b"id\xf8\x88\x80\x80\x80",
}


@VERSIONS
@pytest.mark.parametrize("case", sorted(CLIENT_ID_CASES))
def test_invalid_utf8_client_id_is_refused(broker, witness, version, case):
    """3.1.1 [MQTT-1.5.3-1] [MQTT-1.5.3-2] / v5 [MQTT-1.5.4-1] [MQTT-1.5.4-2]: ill-formed UTF-8
    or U+0000 in the client id: the connection is closed and never accepted (v5 may say CONNACK
    0x81 Malformed Packet first; 3.1.1 may at most refuse with a non-zero code)."""
    cid = CLIENT_ID_CASES[case]
    with RawClient(broker, version) as raw:
        raw.send(connect_packet(version, cid))
        assert_closed_before_connack(raw, f"client id {cid!r}", allowed_v5_codes=(MALFORMED,),
                                     v3_codes=(0x02,))
    witness.check()


@VERSIONS
def test_invalid_utf8_will_topic_and_username_are_refused(broker, witness, version):
    """3.1.1 [MQTT-1.5.3-1] / v5 [MQTT-1.5.4-1]: ill-formed UTF-8 in the will topic or the user
    name makes the CONNECT malformed: closed, not accepted."""
    for kw in ({"will": {"topic": b"w/\xc0\xaf", "payload": b"x"}},
               {"username": b"user\xed\xa0\x80", "password": b"pw"}):
        with RawClient(broker, version) as raw:
            raw.send(connect_packet(version, unique_id("utf8"), **kw))
            assert_closed_before_connack(raw, f"CONNECT {kw}", allowed_v5_codes=(MALFORMED,),
                                         v3_codes=(0x02, 0x04, 0x05))
    witness.check()


def test_connect_with_unknown_property_is_refused_v5(broker, witness):
    """v5 section 2.2.2.2: an unknown property identifier in CONNECT is malformed: not accepted
    (CONNACK 0x81 allowed first)."""
    good = connect_packet(5, unique_id("props"))
    # replace the empty property block (a single 0x00 after keepalive) by an unknown id
    idx = 2 + 6 + 1 + 1 + 2
    assert good[idx] == 0
    body = good[2:idx] + b"\x02\x7f\x00" + good[idx + 1:]
    with RawClient(broker, 5) as raw:
        raw.send(bytes([good[0]]) + varint(len(body)) + body)
        assert_closed_before_connack(raw, "CONNECT with property 0x7f",
                                     allowed_v5_codes=(MALFORMED,))
    witness.check()


def test_many_bad_connections_at_once_leave_good_clients_untouched(broker, witness):
    """Twenty connections misbehaving at the same time (each in a different way) are each closed;
    the witness never notices."""
    bad = [b"\x30\xff\xff\xff\xff\x01", b"\x00\x00", b"\xc1\x00", b"\x60\x02\x00\x01",
           packet(PUBLISH, 0x06, b"\x00\x01a\x00\x01")]
    raws = []
    try:
        for i in range(20):
            r = RawClient(broker, 4 + (i % 2))
            r.connect()
            raws.append(r)
        for i, r in enumerate(raws):
            r.send(bad[i % len(bad)])
        for i, r in enumerate(raws):
            r.expect_closed()
    finally:
        for r in raws:
            r.close()
    witness.check()


# --------------------------------------------------------------------------------------------
# fuzz-ish
# --------------------------------------------------------------------------------------------

def _valid_packets(version, topic):
    return [
        publish_packet(topic, b"fuzz", 0, version=version),
        publish_packet(topic, b"fuzz", 1, packet_id=7, version=version),
        publish_packet(topic, b"fuzz", 2, packet_id=8, version=version),
        subscribe_packet(3, [(topic + "/+", 1)], version),
        packet(UNSUBSCRIBE, 0x02, struct.pack("!H", 4) + (b"\x00" if version == 5 else b"")
               + mqtt_str(topic)),
        b"\x62\x02\x00\x08", b"\x40\x02\x00\x01", PINGREQ_BYTES,
        publish_packet(topic, b"p", 1, packet_id=9, version=version,
                       props=[(P_MESSAGE_EXPIRY, 5)]) if version == 5 else
        publish_packet(topic, b"p", 1, packet_id=9, version=version),
    ]


def _mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if op < 0.5 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op < 0.7 and len(data) > 1:
            del data[rng.randrange(1, len(data)):]
        elif op < 0.85:
            at = rng.randrange(len(data) + 1)
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return bytes(data)


def test_random_bytes_after_connect_never_hurt_the_broker(broker_factory):
    """300 connections, each a valid CONNECT (3.1.1 or 5) followed by random or mutated bytes; the
    broker survives every one (no crash, no sanitizer report at shutdown) and still serves a
    client connected throughout."""
    b = broker_factory("")
    w = Witness(b)
    rng = random.Random(0x7D3)
    topic = unique_topic("fuzz")
    try:
        deadline = time.monotonic() + 60
        for i in range(300):
            assert time.monotonic() < deadline, f"fuzz loop too slow: {i} cases in 60 s"
            version = 4 if i % 2 == 0 else 5
            kind = rng.random()
            if kind < 0.3:
                data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
            elif kind < 0.5:
                # a plausible fixed header and a random body
                first = rng.choice([0x30, 0x32, 0x34, 0x3b, 0x40, 0x50, 0x62, 0x70, 0x82, 0xa2,
                                    0xc0, 0xe0, 0xf0])
                body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
                data = bytes([first]) + varint(len(body)) + body
            else:
                base = b"".join(rng.sample(_valid_packets(version, topic), rng.randint(1, 3)))
                data = _mutate(rng, base)
            s = socket.create_connection((b.host, b.port), timeout=5)
            try:
                s.sendall(connect_packet(version, unique_id("fz")))
                s.settimeout(5)
                head = s.recv(2)
                assert head[:1] == b"\x20", f"case {i}: no CONNACK ({head!r})"
                try:
                    s.sendall(data)
                    s.settimeout(0.02)
                    while s.recv(65536):
                        pass
                except (socket.timeout, OSError):
                    pass
            finally:
                s.close()
            if i % 50 == 49:
                assert b.alive(), f"broker died during fuzz case {i} (data {data!r})"
                w.check()
        assert b.alive()
        w.check()
    finally:
        w.close()

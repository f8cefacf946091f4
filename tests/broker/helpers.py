"""Shared helpers for the black-box suite.

- Client: a paho-mqtt 1.6 wrapper (MQTT 3.1, 3.1.1 and 5) whose every wait has a timeout:
  connect() waits for CONNACK and raises ConnectRefused with the reason code, subscribe() waits for
  SUBACK and returns the granted codes as ints, received messages go to a thread-safe queue read
  with expect(n, timeout) / expect_none(duration).
- RawClient + packet builders/parsers: MQTT byte by byte, for exact-byte and malformed-packet tests.
- mosquitto_pub / mosquitto_sub as subprocesses with timeouts (run_pub, run_sub, MosquittoSub).
Nothing here knows tidemq's internals: it speaks MQTT to whatever listens on host:port.
"""
import os
import queue
import select
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCodes
from paho.mqtt.subscribeoptions import SubscribeOptions

WAIT = 5.0  # default timeout for one wait, seconds

MQTTv31 = mqtt.MQTTv31
MQTTv311 = mqtt.MQTTv311
MQTTv5 = mqtt.MQTTv5

_id_lock = threading.Lock()
_id_counter = 0


# Every client and subprocess the helpers start, so that conftest can close whatever a test left
# open (a failed assertion skips the test's own cleanup).
_open = []
_open_lock = threading.Lock()


def _track(obj):
    with _open_lock:
        _open.append(obj)
    return obj


def close_all():
    """Closes every Client, RawClient and MosquittoSub started since the last call."""
    with _open_lock:
        objs = list(reversed(_open))
        _open.clear()
    for o in objs:
        try:
            o.close()
        except Exception:  # noqa: BLE001 - cleanup must not mask the test's result
            pass


def unique_id(prefix="t"):
    """A client id unique within this test process (and across parallel runs: pid + counter)."""
    global _id_counter
    with _id_lock:
        _id_counter += 1
        return f"{prefix}-{os.getpid()}-{_id_counter}"


def unique_topic(prefix="test"):
    return f"{prefix}/{unique_id('topic')}"


# ======================================================================================
# paho wrapper
# ======================================================================================


class ConnectRefused(Exception):
    def __init__(self, rc, props=None):
        super().__init__(f"CONNACK refused the connection: reason code {rc} (0x{rc:02x})")
        self.rc = rc
        self.props = props


@dataclass
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    mid: int
    properties: object = None  # paho Properties (v5) or None

    def prop(self, name, default=None):
        if self.properties is None:
            return default
        return getattr(self.properties, name, default)

    @property
    def subscription_ids(self):
        ids = self.prop("SubscriptionIdentifier", [])
        return sorted(ids if isinstance(ids, list) else [ids])


def _rc_int(rc):
    """paho gives ints (v3) or ReasonCodes objects (v5); tests compare ints."""
    if rc is None:
        return None
    if hasattr(rc, "value"):
        return rc.value
    return int(rc)


def props(packet_type=PacketTypes.CONNECT, **kw):
    """props(PacketTypes.PUBLISH, MessageExpiryInterval=5, UserProperty=[("a", "b")])."""
    p = Properties(packet_type)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def sub_opts(qos=0, no_local=False, retain_as_published=False, retain_handling=0):
    return SubscribeOptions(qos=qos, noLocal=no_local, retainAsPublished=retain_as_published,
                            retainHandling=retain_handling)


class Client:
    """A paho client on its own network thread. Use as a context manager or call close()."""

    def __init__(self, broker, client_id=None, protocol=MQTTv311, clean=True, keepalive=60,
                 username=None, password=None, will=None, properties=None, connect=True,
                 timeout=WAIT, transport="tcp", ws_path="/mqtt"):
        """broker: anything with .host and .port. client_id None: a unique id; "" sends an empty
        one. clean: clean session (3.x) / clean start (5). will: dict(topic, payload, qos, retain,
        properties). properties: CONNECT properties (v5). transport: "tcp" or "websockets" (MQTT
        over WebSockets to ws_path)."""
        self.host, self.port = broker.host, broker.port
        self.protocol = protocol
        self.client_id = unique_id("c") if client_id is None else client_id
        self.clean = clean
        self.keepalive = keepalive
        self.connect_properties = properties
        self.messages = queue.Queue()
        self.connected = threading.Event()
        self.connack_event = threading.Event()
        self.disconnected = threading.Event()
        self.connack_rc = None
        self.connack_props = None
        self.session_present = None
        self.disconnect_rc = None
        self.disconnect_props = None
        self._acks = {}
        self._cond = threading.Condition()
        if protocol == MQTTv5:
            self.paho = mqtt.Client(client_id=self.client_id, protocol=protocol,
                                    reconnect_on_failure=False, transport=transport)
        else:
            self.paho = mqtt.Client(client_id=self.client_id, clean_session=clean,
                                    protocol=protocol, reconnect_on_failure=False,
                                    transport=transport)
        if transport == "websockets":
            self.paho.ws_set_options(path=ws_path)
        if username is not None:
            self.paho.username_pw_set(username, password)
        if will:
            self.paho.will_set(will["topic"], will.get("payload"), will.get("qos", 0),
                               will.get("retain", False), will.get("properties"))
        self.paho.on_connect = self._on_connect
        self.paho.on_disconnect = self._on_disconnect
        self.paho.on_message = self._on_message
        self.paho.on_subscribe = self._on_subscribe
        self.paho.on_unsubscribe = self._on_unsubscribe
        self._loop_started = False
        _track(self)
        if connect:
            self.connect(timeout=timeout)

    # -- callbacks (network thread) ---------------------------------------------------------
    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.connack_rc = _rc_int(rc)
        self.connack_props = properties
        self.session_present = bool(flags.get("session present"))
        if self.connack_rc == 0:
            self.connected.set()
        self.connack_event.set()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        if not self.disconnected.is_set():  # keep the first reason (a server DISCONNECT)
            self.disconnect_rc = _rc_int(rc)
            self.disconnect_props = properties
        self.connected.clear()
        self.disconnected.set()

    def _on_message(self, client, userdata, msg):
        self.messages.put(Message(msg.topic, msg.payload, msg.qos, bool(msg.retain), bool(msg.dup),
                                  msg.mid, getattr(msg, "properties", None)))

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        codes = [_rc_int(g) for g in (granted if isinstance(granted, (list, tuple)) else [granted])]
        with self._cond:
            self._acks[("sub", mid)] = codes
            self._cond.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, properties=None, reasoncodes=None):
        if reasoncodes is None:
            codes = []
        elif isinstance(reasoncodes, (list, tuple)):
            codes = [_rc_int(r) for r in reasoncodes]
        else:
            codes = [_rc_int(reasoncodes)]
        with self._cond:
            self._acks[("unsub", mid)] = codes
            self._cond.notify_all()

    def _wait_ack(self, key, timeout, what):
        deadline = time.monotonic() + timeout
        with self._cond:
            while key not in self._acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} within {timeout}s")
                self._cond.wait(left)
            return self._acks.pop(key)

    # -- actions ----------------------------------------------------------------------------
    def connect(self, timeout=WAIT):
        """Connects and waits for CONNACK; raises ConnectRefused(rc) if refused, AssertionError
        on timeout or if the broker closes the connection without a CONNACK."""
        try:
            return self._connect(timeout)
        except BaseException:
            self.close()
            raise

    def _connect(self, timeout):
        self.connack_event.clear()
        self.disconnected.clear()
        self.disconnect_rc = self.disconnect_props = None
        if self.protocol == MQTTv5:
            self.paho.connect(self.host, self.port, self.keepalive, clean_start=self.clean,
                              properties=self.connect_properties)
        else:
            self.paho.connect(self.host, self.port, self.keepalive)
        if not self._loop_started:
            self.paho.loop_start()
            self._loop_started = True
        deadline = time.monotonic() + timeout
        while not self.connack_event.wait(0.05):
            if self.disconnected.is_set():
                raise AssertionError("connection closed before CONNACK "
                                     f"(disconnect rc {self.disconnect_rc})")
            if time.monotonic() > deadline:
                raise AssertionError(f"no CONNACK within {timeout}s")
        if self.connack_rc != 0:
            raise ConnectRefused(self.connack_rc, self.connack_props)
        return self

    def subscribe(self, topic, qos=0, options=None, properties=None, timeout=WAIT):
        """topic: a filter, or a list of (filter, qos | SubscribeOptions). Returns the SUBACK
        codes as a list of ints (granted QoS or failure codes)."""
        if isinstance(topic, list):
            rc, mid = self.paho.subscribe(topic, properties=properties)
        elif options is not None:
            rc, mid = self.paho.subscribe(topic, options=options, properties=properties)
        else:
            rc, mid = self.paho.subscribe(topic, qos, properties=properties)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe not sent: {mqtt.error_string(rc)}"
        return self._wait_ack(("sub", mid), timeout, f"SUBACK for {topic!r}")

    def unsubscribe(self, topic, properties=None, timeout=WAIT):
        """Returns the UNSUBACK reason codes (v5) or [] (3.x)."""
        rc, mid = self.paho.unsubscribe(topic, properties=properties)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"unsubscribe not sent: {mqtt.error_string(rc)}"
        return self._wait_ack(("unsub", mid), timeout, f"UNSUBACK for {topic!r}")

    def publish(self, topic, payload=b"", qos=0, retain=False, properties=None, wait=True,
                timeout=WAIT):
        """Publishes; with wait, returns once the QoS flow completed (PUBACK / PUBCOMP)."""
        info = self.paho.publish(topic, payload, qos, retain, properties)
        if wait:
            info.wait_for_publish(timeout)
            assert info.is_published(), f"publish to {topic!r} (qos {qos}) not acknowledged in {timeout}s"
        return info

    def expect(self, n=1, timeout=WAIT):
        """Returns the next n received messages; fails listing what came if fewer arrive."""
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            left = deadline - time.monotonic()
            try:
                got.append(self.messages.get(timeout=max(left, 0.001)))
            except queue.Empty:
                raise AssertionError(f"expected {n} message(s) within {timeout}s, got {len(got)}: {got}")
        return got

    def expect_one(self, timeout=WAIT):
        return self.expect(1, timeout)[0]

    def expect_none(self, duration=0.5):
        """Asserts that nothing arrives for `duration` seconds."""
        try:
            m = self.messages.get(timeout=duration)
        except queue.Empty:
            return
        raise AssertionError(f"expected no message, got {m}")

    def wait_disconnected(self, timeout=WAIT):
        """Waits for the close; returns disconnect_rc. Note: paho 1.6.1 drops the reason code of
        a server DISCONNECT whose remaining length is 1 (reason only, no properties) and reports
        7 (connection lost) instead; check server DISCONNECT reasons with RawClient."""
        assert self.disconnected.wait(timeout), f"connection still open after {timeout}s"
        return self.disconnect_rc

    def disconnect(self, reasoncode=None, properties=None, timeout=WAIT):
        """Sends DISCONNECT (v5: with the reason code given as int) and waits for the close."""
        rc = None
        if reasoncode is not None:
            rc = ReasonCodes(PacketTypes.DISCONNECT, identifier=reasoncode)
        self.paho.disconnect(rc, properties)
        self.disconnected.wait(timeout)
        self._stop_loop()

    def drop(self):
        """Closes the TCP connection without DISCONNECT (an abnormal close: the will fires)."""
        sock = self.paho.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.disconnected.wait(WAIT)
        self._stop_loop()

    def _stop_loop(self):
        if self._loop_started:
            self.paho.loop_stop()
            self._loop_started = False

    def close(self):
        if self.connected.is_set():
            try:
                self.paho.disconnect()
                self.disconnected.wait(2)
            except Exception:  # noqa: BLE001
                pass
        self._stop_loop()
        try:
            sock = self.paho.socket()
            if sock:
                sock.close()
        except Exception:  # noqa: BLE001
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ======================================================================================
# raw MQTT: encoders, decoders and a socket client
# ======================================================================================

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)
PACKET_NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
                7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
                12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}

# MQTT 5 property identifiers (MQTT 5.0 section 2.2.2.2) and their wire types
P_PAYLOAD_FORMAT = 0x01
P_MESSAGE_EXPIRY = 0x02
P_CONTENT_TYPE = 0x03
P_RESPONSE_TOPIC = 0x08
P_CORRELATION_DATA = 0x09
P_SUBSCRIPTION_ID = 0x0B
P_SESSION_EXPIRY = 0x11
P_ASSIGNED_CLIENT_ID = 0x12
P_SERVER_KEEP_ALIVE = 0x13
P_AUTH_METHOD = 0x15
P_AUTH_DATA = 0x16
P_REQUEST_PROBLEM_INFO = 0x17
P_WILL_DELAY = 0x18
P_REQUEST_RESPONSE_INFO = 0x19
P_RESPONSE_INFO = 0x1A
P_SERVER_REFERENCE = 0x1C
P_REASON_STRING = 0x1F
P_RECEIVE_MAXIMUM = 0x21
P_TOPIC_ALIAS_MAXIMUM = 0x22
P_TOPIC_ALIAS = 0x23
P_MAXIMUM_QOS = 0x24
P_RETAIN_AVAILABLE = 0x25
P_USER_PROPERTY = 0x26
P_MAXIMUM_PACKET_SIZE = 0x27
P_WILDCARD_SUB_AVAILABLE = 0x28
P_SUB_ID_AVAILABLE = 0x29
P_SHARED_SUB_AVAILABLE = 0x2A

_PROP_TYPES = {
    0x01: "byte", 0x02: "u32", 0x03: "str", 0x08: "str", 0x09: "bin", 0x0B: "varint",
    0x11: "u32", 0x12: "str", 0x13: "u16", 0x15: "str", 0x16: "bin", 0x17: "byte", 0x18: "u32",
    0x19: "byte", 0x1A: "str", 0x1C: "str", 0x1F: "str", 0x21: "u16", 0x22: "u16", 0x23: "u16",
    0x24: "byte", 0x25: "byte", 0x26: "pair", 0x27: "u32", 0x28: "byte", 0x29: "byte",
    0x2A: "byte",
}


class MalformedPacket(Exception):
    pass


class ConnectionClosed(Exception):
    pass


def varint(n):
    """Variable Byte Integer (MQTT 5 section 1.5.5, 3.1.1 section 2.2.3)."""
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 0x80
        out.append(b)
        if not n:
            return bytes(out)


def read_varint(buf, pos):
    mult, val = 1, 0
    for i in range(4):
        if pos >= len(buf):
            raise MalformedPacket("truncated variable byte integer")
        b = buf[pos]
        pos += 1
        val += (b & 0x7F) * mult
        if not b & 0x80:
            return val, pos
        mult *= 128
    raise MalformedPacket("variable byte integer longer than 4 bytes")


def mqtt_str(s):
    b = s.encode() if isinstance(s, str) else bytes(s)
    return struct.pack("!H", len(b)) + b


def mqtt_bin(b):
    b = b.encode() if isinstance(b, str) else bytes(b)
    return struct.pack("!H", len(b)) + b


def encode_props(plist):
    """plist: iterable of (id, value); user properties are (0x26, (name, value)).
    Returns the property block with its length prefix (empty block = b'\\x00')."""
    body = bytearray()
    for pid, val in plist or ():
        body += varint(pid)
        t = _PROP_TYPES[pid]
        if t == "byte":
            body += bytes([val])
        elif t == "u16":
            body += struct.pack("!H", val)
        elif t == "u32":
            body += struct.pack("!I", val)
        elif t == "varint":
            body += varint(val)
        elif t == "str":
            body += mqtt_str(val)
        elif t == "bin":
            body += mqtt_bin(val)
        elif t == "pair":
            body += mqtt_str(val[0]) + mqtt_str(val[1])
    return varint(len(body)) + bytes(body)


class Props(list):
    """Decoded properties: a list of (id, value) in wire order, with lookups."""

    def get(self, pid, default=None):
        for k, v in self:
            if k == pid:
                return v
        return default

    def all(self, pid):
        return [v for k, v in self if k == pid]

    def __contains__(self, pid):
        return any(k == pid for k, _ in self)


def decode_props(buf, pos):
    """Decodes a property block at pos; returns (Props, new pos)."""
    length, pos = read_varint(buf, pos)
    end = pos + length
    if end > len(buf):
        raise MalformedPacket("property length past end of packet")
    out = Props()
    while pos < end:
        pid, pos = read_varint(buf, pos)
        t = _PROP_TYPES.get(pid)
        if t is None:
            raise MalformedPacket(f"unknown property 0x{pid:02x}")
        if t == "byte":
            val = buf[pos]
            pos += 1
        elif t == "u16":
            (val,) = struct.unpack_from("!H", buf, pos)
            pos += 2
        elif t == "u32":
            (val,) = struct.unpack_from("!I", buf, pos)
            pos += 4
        elif t == "varint":
            val, pos = read_varint(buf, pos)
        elif t in ("str", "bin"):
            (n,) = struct.unpack_from("!H", buf, pos)
            val = bytes(buf[pos + 2:pos + 2 + n])
            pos += 2 + n
            if t == "str":
                val = val.decode("utf-8")
        else:  # pair
            (n,) = struct.unpack_from("!H", buf, pos)
            name = bytes(buf[pos + 2:pos + 2 + n]).decode()
            pos += 2 + n
            (m,) = struct.unpack_from("!H", buf, pos)
            value = bytes(buf[pos + 2:pos + 2 + m]).decode()
            pos += 2 + m
            val = (name, value)
        out.append((pid, val))
    if pos != end:
        raise MalformedPacket("property overran its block")
    return out, pos


def packet(ptype, flags, body):
    """Fixed header + body."""
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + bytes(body)


def connect_packet(version=4, client_id="", clean=True, keepalive=60, username=None,
                   password=None, will=None, props=None, proto_name=None, reserved_flag=False):
    """CONNECT for protocol level 3 (MQIsdp), 4 (3.1.1) or 5. will: dict(topic, payload, qos,
    retain, props). props: v5 CONNECT properties as (id, value) pairs."""
    if proto_name is None:
        proto_name = "MQIsdp" if version == 3 else "MQTT"
    flags = 0
    if clean:
        flags |= 0x02
    if will:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
    if password is not None:
        flags |= 0x40
    if username is not None:
        flags |= 0x80
    if reserved_flag:
        flags |= 0x01
    vh = mqtt_str(proto_name) + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        vh += encode_props(props)
    pl = mqtt_str(client_id)
    if will:
        if version == 5:
            pl += encode_props(will.get("props"))
        pl += mqtt_str(will["topic"]) + mqtt_bin(will.get("payload", b""))
    if username is not None:
        pl += mqtt_str(username)
    if password is not None:
        pl += mqtt_bin(password)
    return packet(CONNECT, 0, vh + pl)


def publish_packet(topic, payload=b"", qos=0, retain=False, dup=False, packet_id=None,
                   version=4, props=None):
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = mqtt_str(topic)
    if qos > 0:
        body += struct.pack("!H", packet_id if packet_id is not None else 1)
    if version == 5:
        body += encode_props(props)
    body += payload.encode() if isinstance(payload, str) else bytes(payload)
    return packet(PUBLISH, flags, body)


def ack_packet(ptype, packet_id, version=4, reason=None, props=None):
    """PUBACK / PUBREC / PUBREL / PUBCOMP (PUBREL carries the mandatory flags 0b0010)."""
    body = struct.pack("!H", packet_id)
    if version == 5 and (reason is not None or props):
        body += bytes([reason or 0])
        if props:
            body += encode_props(props)
    return packet(ptype, 0x02 if ptype == PUBREL else 0, body)


def subscribe_packet(packet_id, filters, version=4, props=None):
    """filters: list of (filter, options byte) - the byte is the QoS for 3.1.1, or QoS | no-local
    0x04 | retain-as-published 0x08 | retain handling << 4 for v5."""
    body = struct.pack("!H", packet_id)
    if version == 5:
        body += encode_props(props)
    for f, opts in filters:
        body += mqtt_str(f) + bytes([opts])
    return packet(SUBSCRIBE, 0x02, body)


def unsubscribe_packet(packet_id, filters, version=4, props=None):
    body = struct.pack("!H", packet_id)
    if version == 5:
        body += encode_props(props)
    for f in filters:
        body += mqtt_str(f)
    return packet(UNSUBSCRIBE, 0x02, body)


def disconnect_packet(version=4, reason=None, props=None):
    if version == 5 and (reason is not None or props):
        return packet(DISCONNECT, 0, bytes([reason or 0]) + (encode_props(props) if props else b""))
    return packet(DISCONNECT, 0, b"")


def auth_packet(reason=0x18, props=None):
    return packet(AUTH, 0, bytes([reason]) + encode_props(props))


PINGREQ_BYTES = b"\xc0\x00"
PINGRESP_BYTES = b"\xd0\x00"


@dataclass
class Packet:
    type: int
    flags: int
    body: bytes
    raw: bytes = b""
    version: int = 4
    # filled by parse() for the packet types the tests look into
    reason: int = None  # CONNACK return/reason code, ack reason, DISCONNECT reason
    session_present: bool = None
    packet_id: int = None
    topic: str = None
    payload: bytes = None
    props: Props = field(default_factory=Props)
    codes: list = None  # SUBACK / UNSUBACK codes

    @property
    def name(self):
        return PACKET_NAMES.get(self.type, f"type{self.type}")

    @property
    def qos(self):
        return (self.flags >> 1) & 3

    @property
    def dup(self):
        return bool(self.flags & 0x08)

    @property
    def retain(self):
        return bool(self.flags & 0x01)

    def __repr__(self):
        extra = []
        for k in ("reason", "session_present", "packet_id", "topic", "payload", "codes"):
            v = getattr(self, k)
            if v is not None:
                extra.append(f"{k}={v!r}")
        if self.props:
            extra.append(f"props={list(self.props)!r}")
        return f"<{self.name} flags=0x{self.flags:x} {' '.join(extra)}>"


def parse(p, version=4):
    """Fills the decoded fields of a Packet read from the wire."""
    b = p.body
    p.version = version
    t = p.type
    if t == CONNACK:
        p.session_present = bool(b[0] & 1)
        p.reason = b[1]
        if version == 5 and len(b) > 2:
            p.props, _ = decode_props(b, 2)
    elif t == PUBLISH:
        (n,) = struct.unpack_from("!H", b, 0)
        p.topic = bytes(b[2:2 + n]).decode("utf-8")
        pos = 2 + n
        if p.qos:
            (p.packet_id,) = struct.unpack_from("!H", b, pos)
            pos += 2
        if version == 5:
            p.props, pos = decode_props(b, pos)
        p.payload = bytes(b[pos:])
    elif t in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        (p.packet_id,) = struct.unpack_from("!H", b, 0)
        p.reason = b[2] if len(b) > 2 else 0
        if version == 5 and len(b) > 3:
            p.props, _ = decode_props(b, 3)
    elif t in (SUBACK, UNSUBACK):
        (p.packet_id,) = struct.unpack_from("!H", b, 0)
        pos = 2
        if version == 5:
            p.props, pos = decode_props(b, pos)
        p.codes = list(b[pos:])
    elif t == DISCONNECT or t == AUTH:
        p.reason = b[0] if len(b) > 0 else 0
        if len(b) > 1:
            p.props, _ = decode_props(b, 1)
    return p


class RawClient:
    """A TCP socket speaking MQTT byte by byte. Every read has a timeout."""

    def __init__(self, broker, version=4, timeout=WAIT, source=None):
        """source: a local address to connect from (e.g. "127.0.0.2": all of 127/8 is loopback)."""
        self.version = version
        self.sock = socket.create_connection((broker.host, broker.port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        _track(self)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        self.closed = False

    # -- bytes ------------------------------------------------------------------------------
    def send(self, data):
        self.sock.sendall(bytes(data))

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data")
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            raise TimeoutError("no data")
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            raise ConnectionClosed("connection closed by the broker")
        self._buf += chunk

    def read_packet(self, timeout=WAIT):
        """Reads one packet; raises TimeoutError, or ConnectionClosed on EOF."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self._buf) >= 2:
                try:
                    length, pos = read_varint(self._buf, 1)
                except MalformedPacket:
                    if len(self._buf) < 5:
                        length = None
                    else:
                        raise
                if length is not None and len(self._buf) >= pos + length:
                    raw = bytes(self._buf[:pos + length])
                    p = Packet(raw[0] >> 4, raw[0] & 0x0F, raw[pos:], raw)
                    del self._buf[:pos + length]
                    return parse(p, self.version)
            self._fill(deadline)

    def expect(self, ptype, timeout=WAIT):
        """Reads the next packet and asserts its type."""
        p = self.read_packet(timeout)
        assert p.type == ptype, f"expected {PACKET_NAMES[ptype]}, got {p!r}"
        return p

    def expect_nothing(self, duration=0.5):
        """Asserts that no packet arrives (and the connection stays open) for `duration`."""
        try:
            p = self.read_packet(duration)
        except TimeoutError:
            return
        raise AssertionError(f"expected nothing, got {p!r}")

    def expect_closed(self, timeout=WAIT):
        """Waits until the broker closes the connection. Returns the packets received before
        the close (e.g. a v5 DISCONNECT). Fails if still open after `timeout`."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                got.append(self.read_packet(max(deadline - time.monotonic(), 0.001)))
            except ConnectionClosed:
                return got
            except TimeoutError:
                raise AssertionError(f"connection still open after {timeout}s; received {got}")

    def is_open(self, duration=0.2):
        """True if the connection is still open after `duration` (packets read are kept)."""
        try:
            p = self.read_packet(duration)
            self._buf[:0] = p.raw
            return True
        except TimeoutError:
            return True
        except ConnectionClosed:
            return False

    # -- packets ----------------------------------------------------------------------------
    def connect(self, client_id=None, expect_rc=0, timeout=WAIT, **kw):
        """Sends CONNECT and reads CONNACK. With expect_rc (default 0) asserts the code."""
        if client_id is None:
            client_id = unique_id("raw")
        self.client_id = client_id
        self.send(connect_packet(self.version, client_id, **kw))
        p = self.expect(CONNACK, timeout)
        if expect_rc is not None:
            assert p.reason == expect_rc, f"CONNACK reason {p.reason:#x}, expected {expect_rc:#x}: {p!r}"
        return p

    def publish(self, topic, payload=b"", qos=0, retain=False, dup=False, packet_id=None, props=None):
        self.send(publish_packet(topic, payload, qos, retain, dup, packet_id, self.version, props))

    def subscribe(self, filters, packet_id=1, props=None, timeout=WAIT):
        """filters: list of (filter, options byte), or a single filter string (QoS 0).
        Returns the SUBACK packet (codes in .codes)."""
        if isinstance(filters, str):
            filters = [(filters, 0)]
        self.send(subscribe_packet(packet_id, filters, self.version, props))
        p = self.expect(SUBACK, timeout)
        assert p.packet_id == packet_id, f"SUBACK for packet id {p.packet_id}, sent {packet_id}"
        return p

    def ack(self, ptype, packet_id, reason=None, props=None):
        self.send(ack_packet(ptype, packet_id, self.version, reason, props))

    def disconnect(self, reason=None, props=None):
        self.send(disconnect_packet(self.version, reason, props))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ======================================================================================
# mosquitto_pub / mosquitto_sub
# ======================================================================================

def _version_args(version):
    return {MQTTv31: ["-V", "mqttv31"], MQTTv311: ["-V", "mqttv311"], MQTTv5: ["-V", "mqttv5"]}[version]


def run_pub(broker, topic, message, qos=0, retain=False, version=MQTTv311, extra=(), timeout=WAIT):
    """Runs mosquitto_pub once; returns the CompletedProcess (asserts exit code 0)."""
    cmd = ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-t", topic, "-q", str(qos),
           *_version_args(version), *extra]
    if message is None:
        cmd += ["-n"]
    else:
        cmd += ["-m", message]
    if retain:
        cmd.append("-r")
    cp = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert cp.returncode == 0, f"{' '.join(cmd)} exited {cp.returncode}: {cp.stderr.decode()}"
    return cp


def run_sub(broker, topic, count=1, qos=0, version=MQTTv311, extra=(), timeout=WAIT):
    """Runs mosquitto_sub -v -C count -W timeout; returns the list of "topic payload" lines."""
    cmd = ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t", topic, "-q", str(qos),
           "-v", "-C", str(count), "-W", str(max(1, int(timeout))), *_version_args(version), *extra]
    cp = subprocess.run(cmd, capture_output=True, timeout=timeout + 5, stdin=subprocess.DEVNULL)
    return cp.stdout.decode().splitlines()


class MosquittoSub:
    """A background mosquitto_sub (-v -d) that is ready once its SUBACK arrived.
    lines() returns the received "topic payload" lines; stop() ends it."""

    def __init__(self, broker, topic, qos=0, version=MQTTv311, extra=(), timeout=WAIT):
        # stdbuf: mosquitto_sub writes through stdio, fully buffered into a pipe
        self.cmd = ["stdbuf", "-oL", "mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t", topic,
                    "-q", str(qos), "-v", "-d", *_version_args(version), *extra]
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        _track(self)
        self._lines = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            out = self.output()
            self.stop()
            raise AssertionError(f"mosquitto_sub got no SUBACK within {timeout}s: {out}")

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                self._lines.append(line)
            if "received SUBACK" in line:
                self._ready.set()

    def output(self):
        with self._lock:
            return list(self._lines)

    def lines(self):
        """Message lines only (mosquitto's -d debug lines start with "Client ")."""
        return [l for l in self.output() if not l.startswith("Client ") and not l.startswith("Subscribed")]

    def wait_lines(self, n, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.lines()
            if len(got) >= n:
                return got
            time.sleep(0.05)
        raise AssertionError(f"mosquitto_sub: expected {n} line(s) in {timeout}s, got {self.output()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._thread.join(5)

    def close(self):
        self.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

"""MQTT over WebSockets (RFC 6455; MQTT 5.0 section 6): `protocol websockets` listeners.

Real clients (paho-mqtt with transport="websockets", MQTT.js under node from tests/js) and a raw
WebSocket client written here for what clients never send on purpose: fragmented and split
frames, control frames, bad upgrade requests, unmasked and text frames, garbage. The broker under
test has a plain MQTT listener first (broker.port) and a WebSocket listener second (ws_port)."""
import base64
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import LISTENING_RE, Broker
from helpers import (
    CONNACK, PINGRESP, PUBLISH, SUBACK, WAIT, Client, ConnectionClosed, MQTTv311, MQTTv5, Packet,
    connect_packet, disconnect_packet, parse, publish_packet, read_varint, subscribe_packet,
    unique_topic,
)
from helpers_examples import start_example, started  # noqa: F401 - `started` is a fixture
from helpers_tls import certs  # noqa: F401 - a fixture
from helpers_ws import frame, request_bytes

REPO = Path(__file__).resolve().parents[2]
JS_DIR = REPO / "tests" / "js"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WS_CONF = "listener 0 127.0.0.1\nprotocol websockets\n"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def ws_port(b):
    """The WebSocket listener's port: the broker's second listener (Broker.start returns at the
    first "listening" line, so wait for the second one)."""
    if len(b.ports) < 2:
        b.wait_log(r"listening address=\S+ port=\d+[\s\S]*listening address=\S+ port=\d+")
        b.ports = [(a, int(p)) for a, p in LISTENING_RE.findall(b.log_text())]
    return b.ports[1][1]


class WsAddr:
    """host/port of a broker's WebSocket listener, in the shape helpers.Client takes."""

    def __init__(self, b):
        self.host, self.port = b.host, ws_port(b)


@pytest.fixture(scope="module")
def wsb():
    b = Broker(WS_CONF, name="test_41_websockets")
    b.start()
    yield b
    problems = b.stop()
    assert not problems, problems


# ---------------------------------------------------------------------------------------------
# a raw WebSocket client
# ---------------------------------------------------------------------------------------------

class WsRaw:
    """A socket that speaks the WebSocket protocol byte by byte. Every read has a timeout."""

    def __init__(self, b, upgrade=True, request=None, timeout=WAIT):
        self.sock = socket.create_connection((b.host, ws_port(b)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.stream = bytearray()  # MQTT bytes from binary frames
        self.key = base64.b64encode(os.urandom(16)).decode()
        self.status = None
        self.headers = {}
        self.body = b""
        if upgrade:
            self.sock.sendall(request if request is not None else request_bytes(self.key))
            self.read_response()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no data") from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise ConnectionClosed("closed by the broker")
        self.buf += chunk

    def read_response(self, timeout=WAIT):
        """Reads the HTTP response head (and the body its Content-Length announces)."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.buf = bytearray(rest)
        n = int(self.headers.get("content-length", "0"))
        while len(self.buf) < n:
            self._fill(deadline)
        self.body = bytes(self.buf[:n])
        del self.buf[:n]
        return self.status

    def send(self, data):
        self.sock.sendall(bytes(data))

    def send_mqtt(self, data):
        self.send(frame(OP_BINARY, data))

    def read_frame(self, timeout=WAIT):
        """Returns (fin, opcode, payload) of the next frame; server frames must be unmasked."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                assert not b1 & 0x80, "a server frame is masked (RFC 6455 5.1)"
                n, pos = b1 & 0x7F, 2
                if n == 126 and len(self.buf) >= 4:
                    (n,), pos = struct.unpack_from("!H", self.buf, 2), 4
                elif n == 127 and len(self.buf) >= 10:
                    (n,), pos = struct.unpack_from("!Q", self.buf, 2), 10
                if (b1 & 0x7F) < 126 or pos > 2:
                    if len(self.buf) >= pos + n:
                        payload = bytes(self.buf[pos:pos + n])
                        del self.buf[:pos + n]
                        return bool(b0 & 0x80), b0 & 0x0F, payload
            self._fill(deadline)

    def read_mqtt(self, timeout=WAIT):
        """Reads the next MQTT packet from the binary frames (which need not line up with it)."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.stream) >= 2:
                try:
                    length, pos = read_varint(self.stream, 1)
                except Exception:  # noqa: BLE001 - the length is not complete yet
                    length = None
                if length is not None and len(self.stream) >= pos + length:
                    raw = bytes(self.stream[:pos + length])
                    del self.stream[:pos + length]
                    return parse(Packet(raw[0] >> 4, raw[0] & 0x0F, raw[pos:], raw))
            fin, op, payload = self.read_frame(max(deadline - time.monotonic(), 0.001))
            assert op in (OP_BINARY, OP_CONT), f"expected a binary frame, got opcode {op}"
            self.stream += payload

    def expect_mqtt(self, ptype, timeout=WAIT):
        p = self.read_mqtt(timeout)
        assert p.type == ptype, f"expected type {ptype}, got {p!r}"
        return p

    def expect_eof(self, timeout=WAIT):
        """Waits for the broker to close the TCP connection; returns the bytes read before."""
        deadline = time.monotonic() + timeout
        got = bytearray()
        while True:
            try:
                self._fill(deadline)
            except ConnectionClosed:
                got += self.buf
                return bytes(got)
            got += self.buf
            self.buf.clear()

    def connect_mqtt(self, client_id, version=4, **kw):
        self.send_mqtt(connect_packet(version=version, client_id=client_id, **kw))
        p = self.expect_mqtt(CONNACK)
        assert p.reason == 0, p
        return p


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


# ---------------------------------------------------------------------------------------------
# real clients
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [MQTTv311, MQTTv5], ids=["v311", "v5"])
def test_paho_websockets_pub_sub_round_trip(wsb, protocol):
    """paho over ws:// (its handshake checks Sec-WebSocket-Accept), QoS 0/1/2 both ways."""
    addr = WsAddr(wsb)
    topic = unique_topic("ws")
    with Client(addr, protocol=protocol, transport="websockets") as sub, \
            Client(addr, protocol=protocol, transport="websockets") as pub:
        sub.subscribe(topic, 2)
        for qos in (0, 1, 2):
            pub.publish(topic, f"over websockets q{qos}".encode() * 50, qos=qos)
        got = sub.expect(3)
        assert sorted(m.payload for m in got) == sorted(
            f"over websockets q{q}".encode() * 50 for q in (0, 1, 2))


def test_paho_websockets_large_message_round_trip(wsb):
    """A 1 MB payload: many TCP segments, a 64-bit frame length on the way out."""
    addr = WsAddr(wsb)
    topic = unique_topic("wsbig")
    payload = os.urandom(1024 * 1024)
    with Client(addr, transport="websockets") as sub, Client(addr, transport="websockets") as pub:
        sub.subscribe(topic, 1)
        pub.publish(topic, payload, qos=1)
        assert sub.expect_one(timeout=10).payload == payload


def test_any_request_path_is_accepted(wsb):
    """Like Mosquitto, the path is not checked (no websockets_path directive)."""
    with Client(WsAddr(wsb), transport="websockets", ws_path="/anything/else?x=1") as c:
        topic = unique_topic("wspath")
        c.subscribe(topic, 0)
        c.publish(topic, b"p", qos=1)
        assert c.expect_one().payload == b"p"


def node_bin():
    return shutil.which("node") or shutil.which("nodejs")


def run_js(spec, timeout=20, ok=True):
    """Runs tests/js/mqtt_client.js with spec; returns its last JSON line (asserts its "ok" is
    the expected one)."""
    if not node_bin() or not (JS_DIR / "node_modules" / "mqtt").is_dir():
        pytest.skip("node or tests/js/node_modules missing (run scripts/deps)")
    cp = subprocess.run([node_bin(), str(JS_DIR / "mqtt_client.js"), json.dumps(spec)],
                        capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    lines = cp.stdout.decode().strip().splitlines()
    assert lines, f"no output from node; stderr: {cp.stderr.decode()[-2000:]}"
    result = json.loads(lines[-1])
    assert result["ok"] == ok and (cp.returncode == 0) == ok, (result, cp.stderr.decode()[-2000:])
    return result


@pytest.mark.parametrize("version,subprotocol", [(3, "mqttv3.1"), (4, "mqtt"), (5, "mqtt")],
                         ids=["v31", "v311", "v5"])
def test_mqttjs_round_trip_over_ws(wsb, version, subprotocol):
    """MQTT.js offers "mqttv3.1" for MQTT 3.1 and "mqtt" otherwise; the broker picks it."""
    topic = unique_topic("js")
    res = run_js({"url": f"ws://127.0.0.1:{ws_port(wsb)}/mqtt", "mode": "roundtrip",
                  "topic": topic, "count": 5, "qos": 1, "protocolVersion": version})
    assert sorted(m["payload"] for m in res["received"]) == [f"js-{i}" for i in range(5)]
    assert res["subprotocol"] == subprotocol


def test_ws_and_tcp_clients_exchange_messages(wsb):
    """One broker, two listeners: MQTT.js over WebSocket <-> paho over plain TCP, both ways."""
    if not node_bin() or not (JS_DIR / "node_modules" / "mqtt").is_dir():
        pytest.skip("node or tests/js/node_modules missing (run scripts/deps)")
    to_js, to_tcp = unique_topic("to_js"), unique_topic("to_tcp")
    spec = {"url": f"ws://127.0.0.1:{ws_port(wsb)}/", "mode": "sub", "topic": to_js, "count": 3,
            "qos": 1}
    js = subprocess.Popen([node_bin(), str(JS_DIR / "mqtt_client.js"), json.dumps(spec)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert json.loads(js.stdout.readline()) == {"ready": True}
        with Client(wsb) as tcp:  # wsb.port: the plain listener
            tcp.subscribe(to_tcp, 1)
            for i in range(3):
                tcp.publish(to_js, f"tcp-{i}".encode(), qos=1)
            out, err = js.communicate(timeout=15)
            res = json.loads(out.decode().strip().splitlines()[-1])
            assert res["ok"], (res, err.decode()[-2000:])
            assert sorted(m["payload"] for m in res["received"]) == ["tcp-0", "tcp-1", "tcp-2"]
            run_js({"url": f"ws://127.0.0.1:{ws_port(wsb)}/mqtt", "mode": "pub",
                    "topic": to_tcp, "count": 2, "qos": 1})
            assert sorted(m.payload for m in tcp.expect(2)) == [b"js-0", b"js-1"]
    finally:
        if js.poll() is None:
            js.kill()
            js.wait(5)


def test_mqttjs_round_trip_over_wss(broker_factory, certs):
    """wss://: WebSocket framing over TLS, the certificate checked against the test CA."""
    b = broker_factory(f"listener 0 127.0.0.1\nprotocol websockets\ncertfile {certs.server}\n"
                       f"keyfile {certs.server_key}\n")
    topic = unique_topic("wss")
    res = run_js({"url": f"wss://127.0.0.1:{ws_port(b)}/mqtt", "mode": "roundtrip",
                  "topic": topic, "count": 3, "qos": 1, "ca": certs.ca})
    assert sorted(m["payload"] for m in res["received"]) == ["js-0", "js-1", "js-2"]
    with Client(b) as tcp:  # and the plain listener of the same broker still works
        tcp.subscribe(topic, 0)
        run_js({"url": f"wss://127.0.0.1:{ws_port(b)}/mqtt", "mode": "pub", "topic": topic,
                "count": 1, "qos": 1, "ca": certs.ca})
        assert tcp.expect_one().payload == b"js-0"


def test_wss_with_client_certificates(broker_factory, certs):
    """require_certificate on a wss:// listener: the TLS layer under the WebSocket one checks the
    client's certificate before any HTTP is read."""
    b = broker_factory(f"listener 0 127.0.0.1\nprotocol websockets\ncertfile {certs.server}\n"
                       f"keyfile {certs.server_key}\ncafile {certs.ca}\nrequire_certificate true\n")
    url = f"wss://127.0.0.1:{ws_port(b)}/mqtt"
    res = run_js({"url": url, "mode": "roundtrip", "topic": unique_topic("mtls"), "count": 1,
                  "ca": certs.ca, "cert": certs.alice, "key": certs.alice_key})
    assert [m["payload"] for m in res["received"]] == ["js-0"]
    res = run_js({"url": url, "mode": "roundtrip", "topic": unique_topic("mtls"), "count": 1,
                  "ca": certs.ca, "timeoutMs": 4000}, ok=False)
    assert res["received"] == []


# ---------------------------------------------------------------------------------------------
# the handshake
# ---------------------------------------------------------------------------------------------

def test_upgrade_answer_is_rfc6455(wsb):
    with WsRaw(wsb) as ws:
        assert ws.status == 101
        assert ws.headers["upgrade"].lower() == "websocket"
        assert ws.headers["connection"].lower() == "upgrade"
        assert ws.headers["sec-websocket-accept"] == accept_for(ws.key)
        assert ws.headers["sec-websocket-protocol"] == "mqtt"  # [MQTT-6.0.0-4]


@pytest.mark.parametrize("name,request_,status", [
    ("missing key", request_bytes(None), 400),
    ("bad key", request_bytes("c2hvcnQ="), 400),
    ("wrong version", request_bytes("dGhlIHNhbXBsZSBub25jZQ==", version="8"), 426),
    ("no subprotocol", request_bytes("dGhlIHNhbXBsZSBub25jZQ==", protocol=None), 400),
    ("other subprotocol", request_bytes("dGhlIHNhbXBsZSBub25jZQ==", protocol="chat"), 400),
    ("POST", request_bytes("dGhlIHNhbXBsZSBub25jZQ==", method="POST"), 405),
    ("plain HTTP GET", b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 426),
    ("HTTP/1.0", b"GET / HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
     400),
    ("raw MQTT CONNECT", connect_packet(client_id="raw"), 400),
])
def test_bad_upgrade_request_gets_http_error_then_close(wsb, name, request_, status):
    with WsRaw(wsb, request=request_) as ws:
        assert ws.status == status, (name, ws.body)
        assert ws.headers.get("connection") == "close"
        if status == 426:
            assert ws.headers["sec-websocket-version"] == "13"
        ws.expect_eof()
    assert wsb.alive()


def test_oversized_upgrade_request_gets_431(wsb):
    with WsRaw(wsb, upgrade=False) as ws:
        ws.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 9000)
        assert ws.read_response() == 431
        ws.expect_eof()


def test_request_may_arrive_byte_by_byte_with_a_frame_behind_it(wsb):
    """The parser waits for the end of the headers; a CONNECT frame sent right behind the request
    (in the same segment as its last byte) is not lost."""
    with WsRaw(wsb, upgrade=False) as ws:
        req = request_bytes(ws.key)
        for i in range(len(req) - 1):
            ws.send(req[i:i + 1])
        ws.send(req[-1:] + frame(OP_BINARY, connect_packet(client_id="bytewise")))
        assert ws.read_response() == 101
        assert ws.expect_mqtt(CONNACK).reason == 0


def test_stalled_handshake_is_closed_by_connect_timeout(broker_factory):
    b = broker_factory(WS_CONF + "connect_timeout 1s\n")
    with WsRaw(b, upgrade=False) as ws:
        ws.send(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n")  # ... and nothing more
        t0 = time.monotonic()
        ws.expect_eof(timeout=5)
        assert 0.7 < time.monotonic() - t0 < 4
    with WsRaw(b) as ws:  # an upgraded socket that never sends CONNECT: the same deadline
        t0 = time.monotonic()
        ws.expect_eof(timeout=5)
        assert 0.7 < time.monotonic() - t0 < 4


# ---------------------------------------------------------------------------------------------
# frames
# ---------------------------------------------------------------------------------------------

def test_connect_fragmented_across_frames(wsb):
    """[MQTT-6.0.0-2] an MQTT packet may span frames: CONNECT in a binary frame and two
    continuation frames, with a ping between the fragments (RFC 6455 5.4 allows that)."""
    pkt = connect_packet(client_id="frag")
    with WsRaw(wsb) as ws:
        ws.send(frame(OP_BINARY, pkt[:3], fin=False))
        ws.send(frame(OP_CONT, pkt[3:9], fin=False))
        ws.send(frame(OP_PING, b"between"))
        ws.send(frame(OP_CONT, pkt[9:], fin=True))
        assert ws.read_frame() == (True, OP_PONG, b"between")
        assert ws.expect_mqtt(CONNACK).reason == 0


def test_packet_split_across_frames_and_packets_sharing_a_frame(wsb):
    topic = unique_topic("split")
    with WsRaw(wsb) as ws:
        ws.connect_mqtt("split")
        sub = subscribe_packet(1, [(topic, 1)])
        ws.send_mqtt(sub[:4])  # two whole frames, one packet
        ws.send_mqtt(sub[4:])
        assert ws.expect_mqtt(SUBACK).codes == [1]
        # three packets in one frame: PUBLISH, PINGREQ, PUBLISH
        ws.send_mqtt(publish_packet(topic, b"one") + b"\xc0\x00" + publish_packet(topic, b"two"))
        got = [ws.read_mqtt() for _ in range(3)]
        assert [p.type for p in got].count(PINGRESP) == 1
        assert [p.payload for p in got if p.type == PUBLISH] == [b"one", b"two"]
        # a zero-length binary frame is harmless
        ws.send_mqtt(b"")
        ws.send_mqtt(b"\xc0\x00")
        assert ws.expect_mqtt(PINGRESP)


def test_large_packet_in_many_small_fragments(wsb):
    """A 200 KB PUBLISH in 2000 continuation frames of odd sizes, sent in bursts: the broker
    carries the partial packet across reads while frames come and go."""
    topic = unique_topic("frags")
    payload = os.urandom(200 * 1024)
    with WsRaw(wsb) as ws, Client(WsAddr(wsb), transport="websockets") as sub:
        sub.subscribe(topic, 1)
        ws.connect_mqtt("fragger")
        pkt = publish_packet(topic, payload, qos=1, packet_id=7)
        frames, pos, i = [], 0, 0
        while pos < len(pkt):
            n = 1 + (i * 37) % 211
            chunk = pkt[pos:pos + n]
            pos += n
            last = pos >= len(pkt)
            frames.append(frame(OP_BINARY if i == 0 else OP_CONT, chunk, fin=last))
            i += 1
        for k in range(0, len(frames), 97):
            ws.send(b"".join(frames[k:k + 97]))
        assert ws.read_mqtt().packet_id == 7  # PUBACK
        assert sub.expect_one(timeout=10).payload == payload


def test_idle_pauses_inside_and_between_frames(wsb):
    """An idle connection gives its frame decoder's memory back between messages (the broker's
    tick, every 250 ms); pauses longer than that in the middle of a frame header, of a frame, and
    of a fragmented message must not lose a byte, and the connection keeps working after."""
    topic = unique_topic("idle")
    with WsRaw(wsb) as ws:
        ws.connect_mqtt("idler")
        ws.send_mqtt(subscribe_packet(1, [(topic, 0)]))
        assert ws.expect_mqtt(SUBACK).codes == [0]
        pub = frame(OP_BINARY, publish_packet(topic, b"a" * 300))
        for cut in (1, 3, 9, 100):  # inside the header (2 + 2 + 4 bytes), then the payload
            ws.send(pub[:cut])
            time.sleep(0.6)
            ws.send(pub[cut:])
            assert ws.expect_mqtt(PUBLISH).payload == b"a" * 300
        pkt = publish_packet(topic, b"fragmented")
        ws.send(frame(OP_BINARY, pkt[:5], fin=False))
        time.sleep(0.6)
        ws.send(frame(OP_PING, b"mid"))
        assert ws.read_frame() == (True, OP_PONG, b"mid")
        time.sleep(0.6)
        ws.send(frame(OP_CONT, pkt[5:]))
        assert ws.expect_mqtt(PUBLISH).payload == b"fragmented"
        time.sleep(0.6)
        ws.send(frame(OP_TEXT, b"still checked after a pause"))
        fin, op, payload = ws.read_frame()
        assert (op, payload[:2]) == (OP_CLOSE, struct.pack("!H", 1003))


def test_ping_is_answered_with_pong_carrying_its_payload(wsb):
    with WsRaw(wsb) as ws:
        ws.connect_mqtt("pinger")
        for payload in (b"", b"x", b"p" * 125):
            ws.send(frame(OP_PING, payload))
            assert ws.read_frame() == (True, OP_PONG, payload)
        ws.send(frame(OP_PONG, b"unsolicited"))  # ignored (RFC 6455 5.5.3)
        ws.send_mqtt(b"\xc0\x00")
        assert ws.expect_mqtt(PINGRESP)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def flood(sock, data, seconds):
    """Sends data over and over for at most `seconds` or until the socket stops taking it (the
    broker stopped reading); returns the bytes sent."""
    sent, deadline = 0, time.monotonic() + seconds
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            sent += sock.send(data)
        except socket.timeout:
            break
    return sent


def test_pings_from_a_client_that_never_reads_cannot_grow_memory(wsb):
    """Each ping queues a pong; a client that pings and never reads must be stopped (the broker
    stops reading it once 64 KiB of answers wait), not buffered without bound."""
    topic = unique_topic("pingflood")
    with Client(WsAddr(wsb), transport="websockets") as other:
        other.subscribe(topic, 1)
        with WsRaw(wsb) as ws:
            ws.connect_mqtt("pingflood")
            ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            before = rss_kib(wsb.pid)
            pings = frame(OP_PING, b"p" * 125) * 512  # 64 KiB of pings per send
            sent = flood(ws.sock, pings, 5.0)
            grown = rss_kib(wsb.pid) - before
            # unbounded, this grew by about what was sent (hundreds of MB in 5 s)
            assert grown < 48 * 1024, (sent, grown)
            other.publish(topic, b"still served", qos=1)
            assert other.expect_one().payload == b"still served"
    assert wsb.alive()


def test_a_flooding_websocket_client_does_not_starve_the_others(wsb):
    """A client that keeps its socket full is read a few buffers at a time, then everyone else
    gets a turn: a new client's CONNECT is answered while the flood goes on."""
    with WsRaw(wsb) as ws:
        ws.connect_mqtt("flooder")
        publishes = b"".join(
            frame(OP_BINARY, publish_packet(f"flood/{i % 8}", b"x" * 200)) for i in range(256))
        flood_ended = []
        t = threading.Thread(
            target=lambda: (flood(ws.sock, publishes, 4.0), flood_ended.append(time.monotonic())),
            daemon=True)
        t.start()
        time.sleep(0.5)
        with Client(wsb) as c:  # plain TCP, connects while the flood runs
            c.publish(unique_topic("starve"), b"x", qos=1)
        served = time.monotonic()
        t.join(6)
        # the flood really went on (the broker kept reading it) until after the other was served
        assert flood_ended and served < flood_ended[0], (served, flood_ended)
    assert wsb.alive()


def test_close_handshake_client_first(wsb):
    """The client's close frame is answered with a close frame, then the broker closes TCP; a
    WebSocket close without DISCONNECT is an abnormal end, so the will is published."""
    will_topic = unique_topic("wswill")
    with Client(wsb) as watcher:
        watcher.subscribe(will_topic, 1)
        with WsRaw(wsb) as ws:
            ws.connect_mqtt("closer", will={"topic": will_topic, "payload": b"gone", "qos": 1})
            ws.send(frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye"))
            fin, op, payload = ws.read_frame()
            assert (op, payload[:2]) == (OP_CLOSE, struct.pack("!H", 1000))
            ws.expect_eof()
        assert watcher.expect_one().payload == b"gone"


def test_disconnect_then_close_publishes_no_will(wsb):
    will_topic = unique_topic("wswill")
    with Client(wsb) as watcher:
        watcher.subscribe(will_topic, 1)
        with WsRaw(wsb) as ws:
            ws.connect_mqtt("polite", will={"topic": will_topic, "payload": b"gone", "qos": 1})
            ws.send(frame(OP_BINARY, disconnect_packet()) + frame(OP_CLOSE, struct.pack("!H", 1000)))
            ws.expect_eof()
        watcher.expect_none(0.5)


def test_broker_sends_close_frame_when_it_ends_the_connection(wsb):
    """A protocol error at the MQTT level (a second CONNECT) ends the connection: the broker says
    so with a close frame before closing TCP (RFC 6455 7.1.2)."""
    with WsRaw(wsb) as ws:
        ws.connect_mqtt("twice")
        ws.send_mqtt(connect_packet(client_id="twice"))
        rest = ws.expect_eof()
        assert rest[:1] == bytes([0x80 | OP_CLOSE]), rest


def test_unmasked_client_frame_is_a_protocol_error(wsb):
    """RFC 6455 5.1: a server closes the connection on an unmasked client frame (1002)."""
    with WsRaw(wsb) as ws:
        ws.connect_mqtt("unmasked")
        ws.send(frame(OP_BINARY, b"\xc0\x00", mask=False))
        fin, op, payload = ws.read_frame()
        assert (op, payload[:2]) == (OP_CLOSE, struct.pack("!H", 1002))
        ws.expect_eof()


def test_text_frame_closes_with_1003(wsb):
    """[MQTT-6.0.0-1] MQTT is sent in binary frames; a text frame closes with 1003."""
    with WsRaw(wsb) as ws:
        ws.connect_mqtt("texter")
        ws.send(frame(OP_TEXT, b"\xc0\x00"))
        fin, op, payload = ws.read_frame()
        assert (op, payload[:2]) == (OP_CLOSE, struct.pack("!H", 1003))
        ws.expect_eof()


@pytest.mark.parametrize("garbage", [
    frame(0x3, b"reserved opcode"),
    frame(OP_BINARY, b"\xc0\x00", rsv=4),  # RSV1 without a negotiated extension
    frame(OP_PING, b"p" * 126),            # control frame over 125 bytes
    frame(OP_PING, b"p", fin=False),       # fragmented control frame
    frame(OP_CONT, b"\xc0\x00"),           # continuation with nothing to continue
    bytes(range(256)) * 4,
], ids=["reserved-opcode", "rsv1", "long-control", "fragmented-control", "lone-continuation",
        "noise"])
def test_garbage_closes_that_client_only(wsb, garbage):
    topic = unique_topic("survivor")
    with Client(WsAddr(wsb), transport="websockets") as other:
        other.subscribe(topic, 1)
        with WsRaw(wsb) as ws:
            ws.connect_mqtt("garbage")
            ws.send(garbage)
            ws.expect_eof()
        other.publish(topic, b"still here", qos=1)
        assert other.expect_one().payload == b"still here"
    assert wsb.alive()


def test_mqtt_limits_apply_inside_frames(broker_factory):
    """max_connect_packet_size bounds what is buffered before CONNECT, frames or not."""
    b = broker_factory(WS_CONF + "max_connect_packet_size 1024\n")
    with WsRaw(b) as ws:
        big = connect_packet(client_id="x" * 2000)
        ws.send_mqtt(big[:600])
        ws.send_mqtt(big[600:])
        ws.expect_eof()


def test_example_config_serves_websockets_and_tcp(started):
    b = start_example("websockets.conf", started)
    topic = unique_topic("example")
    with Client(WsAddr(b), transport="websockets") as ws, Client(b) as tcp:
        ws.subscribe(topic, 1)
        tcp.publish(topic, b"tcp to ws", qos=1)
        assert ws.expect_one().payload == b"tcp to ws"

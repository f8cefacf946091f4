"""PROXY protocol v1/v2 on `proxy_protocol true` listeners, and connect_rate_per_address.

A raw socket plays the load balancer: it sends a PROXY header, then an MQTT CONNECT. The broker's
"client connected client=ID addr=A port=P" log line proves which address the connection got
(the real client's, not the balancer's). Refusals are checked from the client side (closed, no
CONNACK) and by their one log line. The whole 127/8 is loopback on Linux: a client socket bound
to 127.0.0.2 is "another address" for the trust list and the rate limiter.
"""
import re
import socket
import ssl
import struct
import time
from types import SimpleNamespace

import pytest

from conftest import LISTENING_RE, Broker, _report
from helpers import CONNACK, PINGREQ_BYTES, PINGRESP, RawClient, connect_packet, unique_id
from helpers_limits import SysWatcher
from helpers_examples import start_example, started  # noqa: F401 - `started` is a fixture
from helpers_rules import write_rules
from helpers_tls import certs  # noqa: F401 - a fixture
from helpers_ws import frame, request_bytes

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"

# the fixture's own `listener 0 127.0.0.1` comes first and gets these listener directives; the
# second listener is a plain one on the same broker
# 127.0.0.0/31 holds 127.0.0.1 but not 127.0.0.2 (a prefix that ends inside a byte)
PROXY_CONFIG = """proxy_protocol true
proxy_trusted 127.0.0.0/31 10.0.0.0/8
connect_timeout 1s
listener 0 127.0.0.1
"""


def v1(proto="TCP4", src="192.0.2.7", dst="127.0.0.1", sport=51234, dport=1883):
    if proto == "UNKNOWN":
        return b"PROXY UNKNOWN\r\n"
    return f"PROXY {proto} {src} {dst} {sport} {dport}\r\n".encode()


def v2(command=1, family=0x11, src="192.0.2.7", dst=None, sport=51234, dport=1883, tlvs=b""):
    """A v2 header: command 0 LOCAL / 1 PROXY; family 0x11 TCP over IPv4, 0x21 over IPv6."""
    dst = dst or ("::1" if family == 0x21 else "127.0.0.1")
    if family == 0x11:
        body = socket.inet_pton(socket.AF_INET, src) + socket.inet_pton(socket.AF_INET, dst)
    elif family == 0x21:
        body = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
    else:
        body = b""
    if body:
        body += struct.pack("!HH", sport, dport)
    body += tlvs
    return V2_SIG + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body


def listener_ports(broker, n=2):
    """The ports of the broker's first n listeners (Broker.start may return after the first
    "listening" line, before the others are logged)."""
    broker.wait_log(r"(listening address=\S+ port=\d+[\s\S]*){%d}" % n)
    broker.ports = [(a, int(p)) for a, p in LISTENING_RE.findall(broker.log_text())]
    return [p for _, p in broker.ports[:n]]


def raw_to(broker, port=None, source=None):
    """A RawClient to one of the broker's listeners (default: its first), from source."""
    return RawClient(SimpleNamespace(host=broker.host, port=port or broker.port), source=source)


def connected_as(broker, client_id, addr, port=None, start=0):
    """Waits for the log line of client_id's CONNACK and checks the address (and port) it shows."""
    m = broker.wait_log(rf"client connected client={re.escape(client_id)} addr=(\S+) port=(\d+)",
                        start=start)
    assert m.group(1) == addr, m.group(0)
    if port is not None:
        assert int(m.group(2)) == port, m.group(0)


@pytest.fixture(scope="module")
def pbroker():
    """A broker whose first listener takes PROXY headers from 127.0.0.1 and whose second is
    plain."""
    b = Broker(PROXY_CONFIG, name="test_42_proxy")
    b.start()
    listener_ports(b)
    yield b
    problems = _report([b])
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# --- the client's real address ---------------------------------------------------------------

@pytest.mark.parametrize("header, addr, port", [
    (v1("TCP4", "192.0.2.7", sport=51234), "192.0.2.7", 51234),
    (v1("TCP6", "2001:db8::7", "2001:db8::1", 40000), "2001:db8::7", 40000),
    (v2(1, 0x11, "198.51.100.20", sport=61000), "198.51.100.20", 61000),
    (v2(1, 0x21, "2001:db8:5::20", "2001:db8::1", 443), "2001:db8:5::20", 443),
    # TLVs (here an AWS-style VPC endpoint id, type 0xEA, and a NOOP) are skipped
    (v2(1, 0x11, "203.0.113.9", sport=1, tlvs=b"\xea\x00\x09\x01vpce-123" + b"\x04\x00\x02ab"),
     "203.0.113.9", 1),
], ids=["v1-tcp4", "v1-tcp6", "v2-tcp4", "v2-tcp6", "v2-tlvs"])
def test_header_gives_the_client_address(pbroker, header, addr, port):
    start = pbroker.mark()
    c = raw_to(pbroker)
    c.send(header)
    c.connect()
    connected_as(pbroker, c.client_id, addr, port, start)


def test_header_and_mqtt_in_one_write_are_split_exactly(pbroker):
    """INTERFACES.md #7: only the header's bytes are consumed; the CONNECT and a PINGREQ sent in
    the same segment reach the MQTT side whole."""
    for header in (v1("TCP4", "192.0.2.30"), v2(1, 0x11, "192.0.2.31")):
        start = pbroker.mark()
        cid = unique_id("one")
        c = raw_to(pbroker)
        c.send(header + connect_packet(4, cid) + PINGREQ_BYTES)
        assert c.expect(CONNACK).reason == 0
        c.expect(PINGRESP)
        connected_as(pbroker, cid, "192.0.2.30" if header.startswith(b"PROXY") else "192.0.2.31",
                     start=start)


@pytest.mark.parametrize("header, addr", [
    (v1("TCP4", "192.0.2.40", sport=7), "192.0.2.40"),
    (v2(1, 0x21, "2001:db8::40"), "2001:db8::40"),
], ids=["v1", "v2"])
def test_header_split_across_writes(pbroker, header, addr):
    start = pbroker.mark()
    c = raw_to(pbroker)
    for i in range(len(header)):  # one byte per segment (TCP_NODELAY is on in RawClient)
        c.send(header[i:i + 1])
        time.sleep(0.003)
    c.connect()
    connected_as(pbroker, c.client_id, addr, start=start)


@pytest.mark.parametrize("header", [v2(0, 0x00), v2(0, 0x11, "192.0.2.99"), v1("UNKNOWN")],
                         ids=["v2-local", "v2-local-with-addresses", "v1-unknown"])
def test_local_and_unknown_keep_the_balancer_address(pbroker, header):
    """LOCAL is the balancer's own health check: the TCP peer's address stands."""
    start = pbroker.mark()
    c = raw_to(pbroker)
    c.send(header)
    c.connect()
    connected_as(pbroker, c.client_id, "127.0.0.1", start=start)


def recv_until(sock, pred, timeout=5.0):
    """Reads from sock until pred(bytes so far) holds; returns the bytes."""
    data = b""
    deadline = time.monotonic() + timeout
    while not pred(data):
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        chunk = sock.recv(65536)
        assert chunk, f"closed by the broker after {data!r}"
        data += chunk
    return data


def test_header_then_tls_handshake_in_the_same_write(broker_factory, certs):
    """The ClientHello sent in the same segment as the header reaches TLS untouched; the
    certificate checks out against the test CA and the client gets the header's address."""
    b = broker_factory(f"listener 0 127.0.0.1\nproxy_protocol true\nproxy_trusted 127.0.0.1\n"
                       f"certfile {certs.server}\nkeyfile {certs.server_key}\n")
    port = listener_ports(b)[1]
    start = b.mark()
    ctx = ssl.create_default_context(cafile=certs.ca)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        first = True
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            out = outgoing.read()
            sock.sendall((v2(1, 0x11, "192.0.2.90", sport=4242) if first else b"") + out)
            first = False
            incoming.write(recv_until(sock, lambda d: len(d) > 0))
        sock.sendall(outgoing.read())  # the client's Finished
        cid = unique_id("tls")
        tls.write(connect_packet(4, cid))
        sock.sendall(outgoing.read())
        got = b""
        while len(got) < 4:
            try:
                got += tls.read(4 - len(got))
            except ssl.SSLWantReadError:
                incoming.write(recv_until(sock, lambda d: len(d) > 0))
        assert got == b"\x20\x02\x00\x00", got  # CONNACK accepted
    connected_as(b, cid, "192.0.2.90", 4242, start)


def test_header_then_websocket_upgrade_in_the_same_write(broker_factory):
    b = broker_factory("listener 0 127.0.0.1\nprotocol websockets\nproxy_protocol true\n"
                       "proxy_trusted 127.0.0.1\n")
    port = listener_ports(b)[1]
    start = b.mark()
    cid = unique_id("ws")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(v1("TCP6", "2001:db8:99::1", "2001:db8::1", 8443, 443)
                     + request_bytes("dGhlIHNhbXBsZSBub25jZQ==")
                     + frame(2, connect_packet(4, cid)))
        data = recv_until(sock, lambda d: b"\r\n\r\n" in d and len(d.split(b"\r\n\r\n", 1)[1]) >= 6)
        assert data.startswith(b"HTTP/1.1 101"), data
        assert data.split(b"\r\n\r\n", 1)[1][:6] == b"\x82\x04\x20\x02\x00\x00"  # CONNACK
    connected_as(b, cid, "2001:db8:99::1", 8443, start)


def test_rules_see_the_client_address(broker_factory, tmp_path):
    """RULES-API conn.address / conn.port are the header's, not the balancer's."""
    d = tmp_path / "rules"
    write_rules(d, {"10-net.lua": """
        return {
          on_connect = function(conn)
            if conn.address == "192.0.2.44" and conn.port == 4444 then return true end
            return false, "not_authorized"
          end,
        }
    """})
    b = broker_factory(PROXY_CONFIG, ["--rules", str(d)])
    ok = raw_to(b)
    ok.send(v2(1, 0x11, "192.0.2.44", sport=4444))
    ok.connect()
    other = raw_to(b)
    other.send(v2(1, 0x11, "192.0.2.44", sport=4445))
    other.connect(expect_rc=5)  # 3.1.1: not authorized


# --- refusals ------------------------------------------------------------------------------------

def test_untrusted_source_is_refused(pbroker):
    """127.0.0.2 is outside proxy_trusted 127.0.0.0/31: even a valid header is refused, before it
    is read."""
    start = pbroker.mark()
    c = raw_to(pbroker, source="127.0.0.2")
    try:
        c.send(v1("TCP4", "192.0.2.50"))
    except OSError:
        pass  # already closed: fine
    assert c.expect_closed() == []
    m = pbroker.wait_log(r"refused connection addr=(\S+) port=\d+ listener=\d+ "
                         r"reason=source not in proxy_trusted", start=start)
    assert m.group(1) == "127.0.0.2"
    assert "192.0.2.50" not in pbroker.log_text()[start:]


MALFORMED = {
    "v1-bad-address": (v1("TCP4", "192.0.2.300"), "v1 address does not match its protocol"),
    "v1-family-mismatch": (v1("TCP4", "2001:db8::1", "::1"), "v1 address does not match"),
    "v1-no-crlf-in-107": (b"PROXY TCP4 " + b"1" * 120, "v1 header longer than 107 bytes"),
    "v1-bare-lf": (b"PROXY TCP4 192.0.2.1 127.0.0.1 1 2\n", "v1 line not ended by CRLF"),
    "v1-bad-port": (v1("TCP4", "192.0.2.1", sport=70000), "v1 port is not a number"),
    "v2-bad-command": (v2(1)[:12] + b"\x2f" + v2(1)[13:], "v2 command is neither LOCAL nor PROXY"),
    "v2-bad-version": (v2(1)[:12] + b"\x31" + v2(1)[13:], "v2 header of an unknown version"),
    "v2-too-long": (V2_SIG + b"\x21\x11\xff\xff", "v2 header longer than the bound"),
    "v2-short-addresses": (V2_SIG + b"\x21\x11\x00\x04\x01\x02\x03\x04",
                           "v2 header too short for its addresses"),
    "plain-mqtt": (connect_packet(4, "no-header"), "not a PROXY header"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_header_closes_only_that_connection(pbroker, name):
    header, reason = MALFORMED[name]
    bystander = raw_to(pbroker)
    bystander.send(v1("TCP4", "192.0.2.60"))
    bystander.connect()
    start = pbroker.mark()
    c = raw_to(pbroker)
    try:
        c.send(header + connect_packet(4, unique_id("bad")))
    except OSError:
        pass
    assert c.expect_closed() == []  # never a CONNACK
    m = pbroker.wait_log(r"\[proxy\] refused connection addr=127\.0\.0\.1 port=\d+ listener=\d+ "
                         r"reason=(.*)", start=start)
    assert reason in m.group(1)
    # logged once, and nobody else disturbed
    assert len(re.findall(r"\[proxy\] refused connection", pbroker.log_text()[start:])) == 1
    bystander.send(PINGREQ_BYTES)
    bystander.expect(PINGRESP)


@pytest.mark.parametrize("partial", [b"", b"PROXY TCP4 192.0.2.", V2_SIG[:7]],
                         ids=["nothing", "v1-partial", "v2-partial"])
def test_header_that_does_not_arrive_in_time_is_closed(pbroker, partial):
    """connect_timeout (1s here) bounds the wait for the header too."""
    start = pbroker.mark()
    c = raw_to(pbroker)
    t0 = time.monotonic()
    if partial:
        c.send(partial)
    assert c.expect_closed(timeout=4) == []
    took = time.monotonic() - t0
    assert 0.8 <= took <= 3.0, took
    pbroker.wait_log(r"refused connection addr=127\.0\.0\.1 .*reason=PROXY header did not arrive "
                     r"within connect_timeout", start=start)


def test_connect_timeout_counts_from_the_accept_not_from_the_header(pbroker):
    """A header that takes most of connect_timeout (1s here) leaves the rest for CONNECT: the
    connection is closed about 1 s after the accept, not 1 s after its header."""
    c = raw_to(pbroker)
    t0 = time.monotonic()
    time.sleep(0.7)
    c.send(v1())
    assert c.expect_closed(timeout=4) == []
    took = time.monotonic() - t0
    assert took < 1.6, took  # with a fresh timeout after the header: 1.7 s and more


def test_shutdown_while_a_header_is_pending_is_clean(broker_factory):
    """SIGTERM with sockets still waiting for their header: they are closed, the broker exits 0
    and the sanitizers find no leak (checked by stop())."""
    b = broker_factory(PROXY_CONFIG)
    waiting = [raw_to(b) for _ in range(3)]
    waiting[0].send(b"PROXY TCP4 192.0.2.")
    waiting[1].send(V2_SIG[:5])
    time.sleep(0.3)  # accepted and waiting
    assert b.stop() == []
    for c in waiting:
        assert c.expect_closed() == []


def test_plain_listener_is_unaffected(pbroker):
    """The second listener has no proxy_protocol: plain MQTT works, the peer address is used, and
    a PROXY header there is just bad MQTT."""
    plain_port = pbroker.ports[1][1]
    start = pbroker.mark()
    c = raw_to(pbroker, plain_port)
    c.connect()
    connected_as(pbroker, c.client_id, "127.0.0.1", start=start)
    d = raw_to(pbroker, plain_port)
    try:
        d.send(v1("TCP4", "192.0.2.70"))
    except OSError:
        pass
    assert not any(p.type == CONNACK for p in d.expect_closed())
    assert "192.0.2.70" not in pbroker.log_text()[start:]


def test_a_flood_of_refusals_is_counted_but_not_logged_line_by_line(pbroker):
    """Each refusal names its peer in the log, at most 20 lines a second; $SYS counts them all."""
    watch = SysWatcher(SimpleNamespace(host=pbroker.host, port=pbroker.ports[1][1]),
                       "$SYS/broker/limits/+")
    try:
        before = watch.counter("refused_proxy")
        start = pbroker.mark()
        flood = [raw_to(pbroker, source="127.0.0.2") for _ in range(60)]
        for c in flood:
            c.expect_closed()
        watch.wait_counter("refused_proxy", before + 60)
        lines = re.findall(r"\[proxy\] refused connection", pbroker.log_text()[start:])
        assert 20 <= len(lines) <= 40, len(lines)  # the flood may straddle two seconds
    finally:
        watch.close()


def test_refusals_are_counted_in_sys(pbroker):
    before_watch = SysWatcher(SimpleNamespace(host=pbroker.host, port=pbroker.ports[1][1]),
                              "$SYS/broker/limits/+")
    try:
        before = before_watch.counter("refused_proxy")
        c = raw_to(pbroker)
        c.send(b"NOT A HEADER\r\n")
        c.expect_closed()
        before_watch.wait_counter("refused_proxy", before + 1)
    finally:
        before_watch.close()


# --- connect_rate_per_address --------------------------------------------------------------------

def test_connect_rate_refuses_a_burst_from_one_address_only(broker_factory):
    """2 a second in bursts of 2: the third and later connections from 127.0.0.1 in the same
    instant are closed before anything is read, 127.0.0.2 still gets in, and once the bucket has
    refilled 127.0.0.1 gets in again. One log line per refusing episode; a $SYS counter."""
    b = broker_factory("connect_rate_per_address 2\n")
    start = b.mark()
    socks = [raw_to(b) for _ in range(5)]  # accepted in this order (the listen queue is FIFO)
    for c in socks[:2]:
        c.connect()
    for c in socks[2:]:
        assert c.expect_closed(timeout=3) == []
    other = raw_to(b, source="127.0.0.2")
    other.connect()
    connected_as(b, other.client_id, "127.0.0.2", start=start)
    b.wait_log(r"refused connection addr=127\.0\.0\.1 listener=\d+ reason=over "
               r"connect_rate_per_address", start=start)
    assert len(re.findall(r"reason=over connect_rate_per_address", b.log_text()[start:])) == 1

    time.sleep(1.2)  # the bucket refills at 2 a second
    for _ in range(2):
        raw_to(b).connect()
    time.sleep(1.2)
    watch = SysWatcher(b, "$SYS/broker/limits/+")
    try:
        assert watch.wait_counter("refused_connect_rate", 3) == 3
    finally:
        watch.close()


def test_connect_rate_counts_the_proxied_address(broker_factory):
    """Behind a balancer the real address is what is limited: the balancer (127.0.0.1) carries
    many clients; 192.0.2.80's third connection is refused, 192.0.2.81 still gets in; IPv6
    clients count per /64."""
    b = broker_factory(PROXY_CONFIG + "connect_rate_per_address 2\n")
    listener_ports(b)
    start = b.mark()

    def via_balancer(src, family=0x11):
        c = raw_to(b)
        c.send(v2(1, family, src))
        return c

    first = [via_balancer("192.0.2.80") for _ in range(3)]
    for c in first[:2]:
        c.connect()
    try:
        first[2].send(connect_packet(4, unique_id("over")))
    except OSError:
        pass
    assert first[2].expect_closed() == []
    b.wait_log(r"refused connection addr=192\.0\.2\.80 .*reason=over connect_rate_per_address",
               start=start)
    for _ in range(2):
        via_balancer("192.0.2.81").connect()

    same64 = [via_balancer(f"2001:db8:1:2::{i}", 0x21) for i in (1, 2, 3)]
    for c in same64[:2]:
        c.connect()
    try:
        same64[2].send(connect_packet(4, unique_id("over6")))
    except OSError:
        pass
    assert same64[2].expect_closed() == []
    via_balancer("2001:db8:1:3::1", 0x21).connect()  # another /64
    assert "addr=127.0.0.1 listener" not in b.log_text()[start:]  # the balancer never limited


# --- the example -----------------------------------------------------------------------------

def test_proxy_example_config(started):  # noqa: F811 - the fixture imported above
    b = start_example("proxy.conf", started)
    listener_ports(b)
    start = b.mark()
    direct = raw_to(b, b.ports[0][1])
    direct.connect()
    connected_as(b, direct.client_id, "127.0.0.1", start=start)
    proxied = raw_to(b, b.ports[1][1])
    proxied.send(v1("TCP6", "2001:db8:77::1", "2001:db8::1", 5555, 1884))
    proxied.connect()
    connected_as(b, proxied.client_id, "2001:db8:77::1", 5555, start=start)
    plain = raw_to(b, b.ports[1][1])
    plain.send(connect_packet(4, "no-header"))
    assert plain.expect_closed() == []

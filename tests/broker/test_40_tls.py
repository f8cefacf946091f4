"""MQTT over TLS, end to end: TLS and mutual-TLS listeners, client certificates (required,
expired, unknown CA, revoked), use_identity_as_username through the ACL, tls_version, start-up
errors, SIGHUP certificate reload, handshakes that fail or stall, and payloads over TLS.

Certificates are made once per session with the `openssl` command (an EC P-256 CA managed with
`openssl ca`, so that certificates can be revoked and a CRL generated) in a temp dir: see
make_certs(). Every broker runs the fixture's plain listener first (`listener 0 127.0.0.1`,
which the conftest reads the port of) and the TLS listener under test second; tls_endpoint()
reads the second port from the broker's log.

Clients are real: mosquitto_pub/mosquitto_sub with --cafile/--cert/--key, paho-mqtt with
tls_set_context (v3.1.1 and v5), Python's ssl module for handshakes that must fail, and raw
sockets for garbage and stalls. A refused client certificate is told apart from any other
failure by the broker's log line `TLS handshake failed ... certificate=<OpenSSL's reason>`.
"""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import LISTENING_RE, TIDEMQ_BIN
from helpers import (
    CONNACK, DISCONNECT, PUBLISH, SUBACK, Client, ConnectRefused, MalformedPacket, MosquittoSub, MQTTv311,
    MQTTv5, connect_packet, publish_packet, read_varint, run_pub, subscribe_packet, unique_id,
    unique_topic,
)
from helpers_examples import EXAMPLES, start_example, started  # noqa: F401 - `started` is a fixture
from helpers_limits import run_broker_once
from helpers_tls import certs, make_leaf, openssl  # noqa: F401 - `certs` is a fixture

VERSIONS = pytest.mark.parametrize("version", [MQTTv311, MQTTv5], ids=["v311", "v5"])


# ==================================================================================================
# brokers and clients
# ==================================================================================================

def tls_config(certs, extra="", server="server"):
    """A second listener (TLS) after the fixture's plain one."""
    return (f"listener 0 127.0.0.1\ncertfile {certs.dir}/{server}.crt\n"
            f"keyfile {certs.dir}/{server}.key\n{extra}")


def mtls_config(certs, extra=""):
    return tls_config(certs, f"cafile {certs.ca}\nrequire_certificate true\n{extra}")


def tls_endpoint(b, index=1):
    """host/port of the broker's listener number `index` (0 is the fixture's plain one), from its
    `listening address=... port=...` lines (the fixture returns once it has seen the first)."""
    deadline = time.monotonic() + 5
    while True:
        found = LISTENING_RE.findall(b.log_text())
        if len(found) > index or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert len(found) > index, f"broker listens on {found}"
    return SimpleNamespace(host="127.0.0.1", port=int(found[index][1]))


def client_context(certs, cert=None, max_version=None, ca=None):
    """An ssl context that verifies the server against our CA (and hostname 127.0.0.1)."""
    ctx = ssl.create_default_context(cafile=ca or certs.ca)
    if cert:
        ctx.load_cert_chain(getattr(certs, cert), getattr(certs, cert + "_key"))
    if max_version:
        ctx.maximum_version = max_version
    return ctx


def tls_client(ep, certs, cert=None, version=MQTTv311, **kw):
    """A helpers.Client over TLS (paho's tls_set_context)."""
    c = Client(ep, protocol=version, connect=False, **kw)
    c.paho.tls_set_context(client_context(certs, cert))
    return c.connect()


def mosq_tls(certs, cert=None):
    args = ["--cafile", certs.ca]
    if cert:
        args += ["--cert", getattr(certs, cert), "--key", getattr(certs, cert + "_key")]
    return args


def ssl_connect(ep, ctx, timeout=5.0):
    """A raw TLS socket to ep (handshake done, from the client's side)."""
    raw = socket.create_connection((ep.host, ep.port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=ep.host)
    except BaseException:
        raw.close()
        raise


def mqtt_over_tls(ep, ctx, timeout=5.0):
    """Handshake, CONNECT, and the first bytes the broker answers (b"" on a clean close).
    Raises ssl.SSLError / OSError when the broker refuses the TLS session."""
    s = ssl_connect(ep, ctx, timeout)
    try:
        s.sendall(connect_packet(4, unique_id("raw")))
        return s.recv(4)
    finally:
        s.close()


def refused(ep, ctx):
    """True when the broker answers a CONNECT over a TLS session made with ctx with nothing:
    the handshake fails, or (TLS 1.3: the client's side finishes before the server has checked
    the client's certificate) the refusal comes as an alert or a close on the first read."""
    try:
        return mqtt_over_tls(ep, ctx) == b""
    except (ssl.SSLError, OSError):
        return True


def served_certificate(ep, certs):
    """The DER bytes of the certificate the listener presents now."""
    s = ssl_connect(ep, client_context(certs))
    try:
        return s.getpeercert(binary_form=True)
    finally:
        s.close()


def der(path):
    return ssl.PEM_cert_to_DER_cert(Path(path).read_text())


def round_trip(pub, sub, topic, payload, qos=1):
    sub.subscribe(topic, qos)
    pub.publish(topic, payload, qos=qos)
    m = sub.expect_one(timeout=10)
    assert (m.topic, m.payload) == (topic, payload)


def read_until_closed(sock, seconds):
    """Reads until the peer closes sock (EOF or reset) or seconds pass; returns (closed, the
    bytes read). sock may be a TLS socket."""
    deadline = time.monotonic() + seconds
    sock.settimeout(0.2)
    data = b""
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            return True, data
        if chunk == b"":
            return True, data
        data += chunk
    return False, data


def closed_within(sock, seconds):
    return read_until_closed(sock, seconds)[0]


# ==================================================================================================
# TLS and mTLS with real clients
# ==================================================================================================

def test_mosquitto_clients_over_tls_and_plain_still_served(broker_factory, certs):
    b = broker_factory(tls_config(certs))
    ep = tls_endpoint(b)
    topic = unique_topic("tls")
    with MosquittoSub(ep, topic, qos=1, extra=mosq_tls(certs)) as sub:
        run_pub(ep, topic, "over tls", qos=1, extra=mosq_tls(certs))
        assert sub.wait_lines(1) == [f"{topic} over tls"]
    # the plain listener of the same broker is untouched
    with Client(b) as plain:
        round_trip(plain, plain, unique_topic("plain"), b"clear")
    # a plain MQTT client on the TLS port gets no MQTT answer
    raw = socket.create_connection((ep.host, ep.port), timeout=5)
    raw.sendall(connect_packet(4, unique_id("clear")))
    closed, data = read_until_closed(raw, 3.0)
    raw.close()
    assert closed and not data.startswith(bytes([CONNACK << 4])), data


def test_mosquitto_clients_over_mtls(broker_factory, certs):
    b = broker_factory(mtls_config(certs))
    ep = tls_endpoint(b)
    topic = unique_topic("mtls")
    with MosquittoSub(ep, topic, qos=1, extra=mosq_tls(certs, "bob")) as sub:
        run_pub(ep, topic, "with a certificate", qos=1, extra=mosq_tls(certs, "alice"))
        assert sub.wait_lines(1) == [f"{topic} with a certificate"]


@VERSIONS
def test_paho_over_tls(broker_factory, certs, version):
    b = broker_factory(tls_config(certs))
    ep = tls_endpoint(b)
    with tls_client(ep, certs, version=version) as sub, tls_client(ep, certs, version=version) as pub:
        round_trip(pub, sub, unique_topic("paho"), b"hello over tls", qos=1)
        round_trip(pub, sub, unique_topic("paho2"), b"qos 2 too", qos=2)


@VERSIONS
def test_paho_over_mtls(broker_factory, certs, version):
    b = broker_factory(mtls_config(certs))
    ep = tls_endpoint(b)
    with tls_client(ep, certs, "alice", version) as sub, tls_client(ep, certs, "bob", version) as pub:
        round_trip(pub, sub, unique_topic("pahom"), b"mutual", qos=1)


@pytest.mark.parametrize("cert,why", [
    (None, "peer did not return a certificate"),
    ("expired", "certificate=certificate has expired"),
    ("stranger", "certificate=unable to get local issuer certificate"),
    ("revoked", "certificate=certificate revoked"),
], ids=["no-cert", "expired", "unknown-ca", "revoked"])
def test_require_certificate_refuses(broker_factory, certs, cert, why):
    b = broker_factory(mtls_config(certs, f"crlfile {certs.crl}\n"))
    ep = tls_endpoint(b)
    mark = b.mark()
    assert refused(ep, client_context(certs, cert))
    b.wait_log(r"TLS handshake failed addr=127\.0\.0\.1 reason=.*" + why, start=mark)
    # a real client with the same certificate gets nowhere either
    cp = subprocess.run(["mosquitto_pub", "-h", ep.host, "-p", str(ep.port), "-t", "x", "-m", "y",
                         *mosq_tls(certs, cert)], capture_output=True, timeout=10,
                        stdin=subprocess.DEVNULL)
    assert cp.returncode != 0
    # and a good one is still served
    with tls_client(ep, certs, "alice") as ok:
        round_trip(ok, ok, unique_topic("ok"), b"fine")


def test_crlfile_does_not_refuse_unrevoked_certificates(broker_factory, certs):
    b = broker_factory(mtls_config(certs, f"crlfile {certs.crl}\n"))
    ep = tls_endpoint(b)
    assert mqtt_over_tls(ep, client_context(certs, "bob"))[:1] == bytes([CONNACK << 4])


def session_after_connack(ep, ctx):
    """The client's TLS session once CONNACK arrived (TLS 1.3 tickets come after the handshake)."""
    s = ssl_connect(ep, ctx)
    try:
        s.sendall(connect_packet(4, unique_id("ticket")))
        assert s.recv(4)[:1] == bytes([CONNACK << 4])
        return s.session
    finally:
        s.close()


def test_mtls_listeners_issue_no_session_tickets(broker_factory, certs):
    """A resumed session skips certificate verification: with require_certificate the broker
    issues no tickets, so an expired or revoked certificate cannot come back by resumption.
    A listener without client certificates still resumes."""
    b = broker_factory(mtls_config(certs) + tls_config(certs))
    mtls, tls = tls_endpoint(b, 1), tls_endpoint(b, 2)
    assert not session_after_connack(mtls, client_context(certs, "bob")).has_ticket
    assert session_after_connack(tls, client_context(certs)).has_ticket


def test_without_require_certificate_no_client_certificate_is_needed(broker_factory, certs):
    b = broker_factory(tls_config(certs, f"cafile {certs.ca}\n"))
    ep = tls_endpoint(b)
    assert mqtt_over_tls(ep, client_context(certs))[:1] == bytes([CONNACK << 4])


# ==================================================================================================
# use_identity_as_username
# ==================================================================================================

@VERSIONS
def test_use_identity_as_username_reaches_the_acl(broker_factory, certs, tmp_path, version):
    acl = tmp_path / "acl"
    acl.write_text("user alice\ntopic readwrite alice/#\n\nuser bob\ntopic readwrite bob/#\n"
                   "topic read alice/#\n")
    b = broker_factory("allow_anonymous false\n" + f"acl_file {acl}\n" + mtls_config(
        certs, "use_identity_as_username true\n"))
    ep = tls_endpoint(b)
    mark = b.mark()
    # the username in CONNECT is ignored: the certificate's CN is the user
    alice = tls_client(ep, certs, "alice", version, username="bob", password="ignored")
    bob = tls_client(ep, certs, "bob", version)
    b.wait_log(rf"client connected client={alice.client_id} .*user=alice\b", start=mark)
    b.wait_log(rf"client connected client={bob.client_id} .*user=bob\b", start=mark)
    assert bob.subscribe("alice/#", 1) == [1]              # bob may read alice/#
    assert alice.subscribe("bob/#", 1)[0] >= 0x80          # alice may not read bob/#
    assert alice.subscribe("alice/#", 1) == [1]
    alice.publish("alice/t", b"from alice", qos=1)
    assert {m.payload for m in alice.expect(1) + bob.expect(1)} == {b"from alice"}
    alice.close()
    bob.close()


def test_use_identity_as_username_without_password_file_entry(broker_factory, certs, tmp_path):
    """The password file is not consulted for the certificate's user (Mosquitto's rule)."""
    pw = tmp_path / "passwd"
    cp = subprocess.run([TIDEMQ_BIN, "passwd", "-c", "-b", "-I", "1000", str(pw), "carol", "pw"],
                        capture_output=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    b = broker_factory(f"allow_anonymous false\npassword_file {pw}\n" + mtls_config(
        certs, "use_identity_as_username true\n"))
    ep = tls_endpoint(b)
    with tls_client(ep, certs, "alice", MQTTv5) as alice:
        round_trip(alice, alice, unique_topic("idu"), b"no password needed")
    # while on the plain listener the password file still decides
    with pytest.raises(ConnectRefused):
        Client(b, username="alice", password="whatever")


def test_rules_see_the_client_certificate(broker_factory, certs, tmp_path):
    """on_connect's conn.tls (RULES-API): nil over plain TCP, {subject, issuer, verified} over TLS;
    the rule reports what it saw by publishing it."""
    rules = tmp_path / "rules"
    rules.mkdir(mode=0o755)
    (rules / "10-tls.lua").write_text("""
return {
  on_connect = function(conn)
    local t = conn.tls
    local seen = t and (t.subject .. "|" .. t.issuer .. "|" .. tostring(t.verified)) or "plain"
    tide.publish("seen/" .. conn.client_id, seen)
  end,
}
""")
    (rules / "10-tls.lua").chmod(0o644)
    b = broker_factory(mtls_config(certs), args=["--rules", str(rules)])
    ep = tls_endpoint(b)
    with Client(b) as watcher:
        watcher.subscribe("seen/#", 0)
        with tls_client(ep, certs, "alice", client_id="by-cert"):
            pass
        with Client(b, client_id="by-tcp"):
            pass
        got = {m.topic: m.payload.decode() for m in watcher.expect(2)}
    assert got == {"seen/by-cert": "CN=alice|CN=tidemq test CA|true", "seen/by-tcp": "plain"}


# ==================================================================================================
# tls_version, ciphers, start-up errors
# ==================================================================================================

def test_tls_version_tlsv13_refuses_a_tls12_client(broker_factory, certs):
    b = broker_factory(tls_config(certs, "tls_version tlsv1.3\n"))
    ep = tls_endpoint(b)
    mark = b.mark()
    with pytest.raises((ssl.SSLError, OSError)):
        mqtt_over_tls(ep, client_context(certs, max_version=ssl.TLSVersion.TLSv1_2))
    b.wait_log(r"TLS handshake failed addr=127\.0\.0\.1 reason=unsupported protocol", start=mark)
    s = ssl_connect(ep, client_context(certs))
    assert s.version() == "TLSv1.3"
    s.close()


def test_default_tls_version_serves_tls12_and_tls13(broker_factory, certs):
    b = broker_factory(tls_config(certs))
    ep = tls_endpoint(b)
    s = ssl_connect(ep, client_context(certs, max_version=ssl.TLSVersion.TLSv1_2))
    assert s.version() == "TLSv1.2"
    s.sendall(connect_packet(4, unique_id("t12")))
    assert s.recv(4)[:1] == bytes([CONNACK << 4])
    s.close()


def test_ciphers_restrict_tls12(broker_factory, certs):
    b = broker_factory(tls_config(certs, "ciphers ECDHE-ECDSA-AES128-GCM-SHA256\n"))
    ep = tls_endpoint(b)
    ctx = client_context(certs, max_version=ssl.TLSVersion.TLSv1_2)
    s = ssl_connect(ep, ctx)
    assert s.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"
    s.close()
    ctx.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384")
    with pytest.raises((ssl.SSLError, OSError)):
        ssl_connect(ep, ctx)


def test_ciphers_tls13_choose_the_tls13_suite(broker_factory, certs):
    b = broker_factory(tls_config(certs, "ciphers_tls1.3 TLS_CHACHA20_POLY1305_SHA256\n"))
    s = ssl_connect(tls_endpoint(b), client_context(certs))
    assert (s.version(), s.cipher()[0]) == ("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256")
    s.close()


def test_capath_instead_of_cafile(broker_factory, certs, tmp_path):
    cas = tmp_path / "cas"
    cas.mkdir()
    shutil.copy(certs.ca, cas / "ca.pem")
    cp = subprocess.run(["openssl", "rehash", str(cas)], capture_output=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    b = broker_factory(tls_config(certs, f"capath {cas}\nrequire_certificate true\n"))
    ep = tls_endpoint(b)
    assert mqtt_over_tls(ep, client_context(certs, "alice"))[:1] == bytes([CONNACK << 4])
    assert refused(ep, client_context(certs, "stranger"))


def _start_error(config_text):
    rc, text, path = run_broker_once(config_text)
    return rc, text, str(path)


@pytest.mark.parametrize("case", ["tlsv1.1", "missing-cert", "garbage-cert", "key-mismatch",
                                  "bad-ciphers", "missing-cafile"])
def test_bad_tls_settings_refused_at_start_with_file_and_line(certs, tmp_path, case):
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    good = f"certfile {certs.server}\nkeyfile {certs.server_key}\n"
    body, expect = {
        "tlsv1.1": (good + "tls_version tlsv1.1\n", r"tls_version tlsv1\.1: OpenSSL 3 does not allow"),
        "missing-cert": (f"certfile {tmp_path}/nope.crt\nkeyfile {certs.server_key}\n",
                         r"certfile \S+nope\.crt: cannot read: No such file"),
        "garbage-cert": (f"certfile {garbage}\nkeyfile {certs.server_key}\n",
                         r"certfile \S+garbage\.crt: "),
        "key-mismatch": (f"certfile {certs.server}\nkeyfile {certs.alice_key}\n",
                         r"keyfile \S+alice\.key does not match certfile"),
        "bad-ciphers": (good + "ciphers NO-SUCH-CIPHER\n", r"ciphers NO-SUCH-CIPHER: "),
        "missing-cafile": (good + f"cafile {tmp_path}/nope-ca.crt\n",
                           r"cafile \S+nope-ca\.crt: cannot read"),
    }[case]
    rc, text, path = _start_error("allow_anonymous true\nlistener 0 127.0.0.1\n" + body)
    assert rc == 1, text
    assert re.search(re.escape(path) + r":2: listener 0: " + expect, text), text
    assert "listening" not in text


# ==================================================================================================
# SIGHUP: certificates reloaded, the old ones kept when the new ones fail
# ==================================================================================================

def test_sighup_reloads_certificates_and_keeps_the_old_ones_when_broken(broker_factory, certs,
                                                                         tmp_path):
    crt, key = tmp_path / "served.crt", tmp_path / "served.key"
    shutil.copy(certs.server, crt)
    shutil.copy(certs.server_key, key)
    b = broker_factory(f"listener 0 127.0.0.1\ncertfile {crt}\nkeyfile {key}\n")
    ep = tls_endpoint(b)
    assert served_certificate(ep, certs) == der(certs.server)
    before = tls_client(ep, certs)  # a connection from before the reloads

    # a broken certificate file: logged, the old certificate is still served
    crt.write_text("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    mark = b.mark()
    os.kill(b.pid, signal.SIGHUP)
    b.wait_log(r"certificates not reloaded, still serving the old ones: certfile \S*served\.crt",
               start=mark)
    assert served_certificate(ep, certs) == der(certs.server)
    with tls_client(ep, certs) as c:
        round_trip(c, c, unique_topic("old"), b"old cert")

    # a key that does not match: the same
    shutil.copy(certs.server2, crt)
    mark = b.mark()
    os.kill(b.pid, signal.SIGHUP)
    b.wait_log(r"certificates not reloaded.*does not match", start=mark)
    assert served_certificate(ep, certs) == der(certs.server)

    # a good new pair: served from now on
    shutil.copy(certs.server2_key, key)
    mark = b.mark()
    os.kill(b.pid, signal.SIGHUP)
    b.wait_log(r"certificates reloaded certfile=", start=mark)
    assert served_certificate(ep, certs) == der(certs.server2)
    with tls_client(ep, certs) as c:
        round_trip(c, c, unique_topic("new"), b"new cert")
    # the connection made before every reload still works
    round_trip(before, before, unique_topic("before"), b"still here")
    before.close()


def test_sighup_reloads_the_crl(broker_factory, certs, tmp_path):
    """Revoking a certificate takes effect for new connections at the next SIGHUP."""
    ca = certs.dir / "ca"
    make_leaf(tmp_path, ca, "carol", "carol")
    crl = tmp_path / "crl.pem"
    shutil.copy(certs.crl, crl)
    b = broker_factory(mtls_config(certs, f"crlfile {crl}\n"))
    ep = tls_endpoint(b)
    carol = SimpleNamespace(ca=certs.ca, carol=str(tmp_path / "carol.crt"),
                            carol_key=str(tmp_path / "carol.key"))
    assert not refused(ep, client_context(carol, "carol"))
    openssl("ca", "-batch", "-config", str(ca / "ca.cnf"), "-revoke", "carol.crt", cwd=tmp_path)
    openssl("ca", "-batch", "-config", str(ca / "ca.cnf"), "-gencrl", "-out", str(crl),
             cwd=tmp_path)
    mark = b.mark()
    os.kill(b.pid, signal.SIGHUP)
    b.wait_log(r"certificates reloaded", start=mark)
    assert refused(ep, client_context(carol, "carol"))
    b.wait_log(r"TLS handshake failed .*certificate=certificate revoked", start=mark)
    assert not refused(ep, client_context(certs, "alice"))


# ==================================================================================================
# handshakes that fail or stall cost one connection
# ==================================================================================================

@pytest.mark.parametrize("garbage", [
    b"\x16\x03\x01\x00\x05hello",                # a TLS record header, then nonsense
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",        # the wrong protocol
    os.urandom(4096),                            # noise
], ids=["bad-record", "http", "random"])
def test_garbage_on_the_tls_port_closes_only_that_connection(broker_factory, certs, garbage):
    b = broker_factory(tls_config(certs))
    ep = tls_endpoint(b)
    plain = Client(b)
    secure = tls_client(ep, certs)
    s = socket.create_connection((ep.host, ep.port), timeout=5)
    try:
        s.sendall(garbage)
    except OSError:
        pass  # already reset: fine
    assert closed_within(s, 3.0), "the broker kept a connection that sent garbage"
    s.close()
    round_trip(plain, plain, unique_topic("p"), b"plain fine")
    round_trip(secure, secure, unique_topic("s"), b"tls fine")
    plain.close()
    secure.close()


def test_stalled_handshakes_are_closed_by_connect_timeout(broker_factory, certs):
    b = broker_factory("connect_timeout 1s\n" + tls_config(certs))
    ep = tls_endpoint(b)
    secure = tls_client(ep, certs)  # connected before: connect_timeout no longer applies to it
    silent = socket.create_connection((ep.host, ep.port), timeout=5)
    # half a ClientHello, then nothing
    partial = socket.create_connection((ep.host, ep.port), timeout=5)
    partial.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    # a finished handshake that never sends CONNECT
    quiet_tls = ssl_connect(ep, client_context(certs))
    start = time.monotonic()
    for s in (silent, partial, quiet_tls):
        assert closed_within(s, 4.0), "a stalled connection was not closed"
        s.close()
    assert time.monotonic() - start < 4.0
    time.sleep(0.5)
    round_trip(secure, secure, unique_topic("s"), b"still connected")
    secure.close()


class BioClient:
    """TLS through memory BIOs, so that a test decides exactly which records leave together."""

    def __init__(self, ep, ctx):
        self.sock = socket.create_connection((ep.host, ep.port), timeout=5)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=ep.host)
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                chunk = self.sock.recv(65536)
                assert chunk, "closed during the handshake"
                self.inc.write(chunk)
        self.flush()

    def flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def read(self, n):
        """Up to n bytes; b"" at the end (close_notify, or EOF)."""
        while True:
            try:
                return self.obj.read(n)
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            except ssl.SSLWantReadError:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return b""
                self.inc.write(chunk)

    def close(self):
        self.sock.close()


def test_close_notify_right_behind_a_packet_ends_the_connection(broker_factory, certs):
    """A PUBLISH and the client's TLS close_notify in one TCP segment, the TCP connection kept
    open: the broker routes the message and sees the end at once (no DISCONNECT: the will is
    published), without waiting for the socket to say anything more."""
    b = broker_factory(tls_config(certs))
    ep = tls_endpoint(b)
    topic = unique_topic("cn")
    with Client(b) as watcher:
        watcher.subscribe(topic + "/#", 1)
        c = BioClient(ep, client_context(certs))
        c.obj.write(connect_packet(4, unique_id("bio"), will=dict(topic=topic + "/will", payload=b"gone", qos=1)))
        c.flush()
        assert c.read(4)[:1] == bytes([CONNACK << 4])
        c.obj.write(publish_packet(topic + "/msg", b"last words"))
        try:
            c.obj.unwrap()  # writes close_notify, then wants the broker's
        except ssl.SSLWantReadError:
            pass
        c.flush()  # both records in one send
        got = sorted((m.topic, m.payload) for m in watcher.expect(2, timeout=3))
        assert got == [(topic + "/msg", b"last words"), (topic + "/will", b"gone")]
        c.close()


def read_packets(c, count, timeout=30.0):
    """Reads `count` MQTT packets through a BioClient: [(type, body)]."""
    buf = b""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        assert time.monotonic() < deadline, f"only {len(out)} of {count} packets"
        while len(buf) >= 2:
            try:
                length, pos = read_varint(buf, 1)
            except MalformedPacket:
                break
            if len(buf) < pos + length:
                break
            out.append((buf[0] >> 4, buf[pos:pos + length]))
            buf = buf[pos + length:]
        if len(out) < count:
            chunk = c.read(1 << 20)
            assert chunk, f"closed after {len(out)} packets"
            buf += chunk
    return out


def test_tls_output_resumes_after_the_socket_fills(broker_factory, certs):
    """A TLS subscriber that reads nothing while 12 MiB wait for it: the broker's SSL_write meets
    a full socket (WANT_WRITE), retries later from wherever the output buffer holds the bytes
    then, and every payload arrives intact and in order once the subscriber reads."""
    b = broker_factory("max_inflight_messages 100\nslow_consumer_timeout 60s\n" + tls_config(certs))
    ep = tls_endpoint(b)
    topic = unique_topic("full")
    c = BioClient(ep, client_context(certs))
    c.obj.write(connect_packet(4, unique_id("slow")))
    c.flush()
    assert read_packets(c, 1)[0][0] == CONNACK
    c.obj.write(subscribe_packet(1, [(topic, 1)]))
    c.flush()
    assert read_packets(c, 1)[0][0] == SUBACK
    payloads = [os.urandom(128 * 1024) for _ in range(100)]
    with Client(b) as pub:
        for p in payloads:
            pub.publish(topic, p, qos=1, wait=False)
        time.sleep(1.0)  # the broker writes until the socket is full
        got = read_packets(c, len(payloads), timeout=60)
    assert [t for t, _ in got] == [PUBLISH] * len(payloads)
    # QoS 1 PUBLISH body: topic (2 + len), packet id (2), payload
    assert [body[2 + len(topic) + 2:] for _, body in got] == payloads
    c.close()


def test_shutdown_says_goodbye_over_tls(broker_factory, certs):
    """SIGTERM: a v5 client over TLS gets DISCONNECT 0x8B (Server shutting down) before the
    connection ends, and the broker exits cleanly."""
    b = broker_factory(tls_config(certs))
    c = BioClient(tls_endpoint(b), client_context(certs))
    c.obj.write(connect_packet(5, unique_id("bye")))
    c.flush()
    assert read_packets(c, 1)[0][0] == CONNACK
    assert b.stop() == []
    assert read_packets(c, 1) == [(DISCONNECT, bytes([0x8B]))]
    assert c.read(1) == b""  # then the end (close_notify or EOF)
    c.close()


# ==================================================================================================
# payloads
# ==================================================================================================

@VERSIONS
def test_one_mebibyte_round_trip_over_tls(broker_factory, certs, version):
    b = broker_factory(tls_config(certs))
    ep = tls_endpoint(b)
    payload = os.urandom(1024 * 1024)
    with tls_client(ep, certs, version=version) as sub, tls_client(ep, certs, version=version) as pub:
        topic = unique_topic("big")
        sub.subscribe(topic, 1)
        pub.publish(topic, payload, qos=1, timeout=20)
        m = sub.expect_one(timeout=20)
        assert len(m.payload) == len(payload) and m.payload == payload


def test_many_messages_round_trip_over_tls(broker_factory, certs):
    """2,000 QoS 1 messages of mixed sizes, published without waiting, arrive complete and in
    order: records split across reads and writes, shared payloads, back-pressure."""
    b = broker_factory(tls_config(certs))
    ep = tls_endpoint(b)
    n = 2000
    with tls_client(ep, certs, version=MQTTv5) as sub, tls_client(ep, certs) as pub:
        topic = unique_topic("many")
        sub.subscribe(topic, 1)
        sizes = [(i * 7919) % 5000 for i in range(n)]
        infos = [pub.publish(topic, bytes([i % 256]) * sizes[i] + str(i).encode(), qos=1,
                             wait=False) for i in range(n)]
        got = sub.expect(n, timeout=60)
        for inf in infos:
            inf.wait_for_publish(10)
        assert [m.payload for m in got] == [bytes([i % 256]) * sizes[i] + str(i).encode()
                                            for i in range(n)]


# ==================================================================================================
# the shipped examples
# ==================================================================================================

def test_example_tls_conf(certs, tmp_path, started):
    pw = tmp_path / "passwd"
    cp = subprocess.run([TIDEMQ_BIN, "passwd", "-c", "-b", "-I", "1000", str(pw), "sensor", "s3cret"],
                        capture_output=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    b = start_example("tls.conf", started, {"/etc/tidemq/certs/": f"{certs.dir}/",
                                            "/etc/tidemq/passwd": pw})
    ep = tls_endpoint(b)  # local plain MQTT first, then TLS
    topic = unique_topic("ex")
    auth = ["-u", "sensor", "-P", "s3cret"]
    with MosquittoSub(ep, topic, qos=1, extra=mosq_tls(certs) + auth) as sub:
        run_pub(ep, topic, "hello", qos=1, extra=mosq_tls(certs) + auth)
        assert sub.wait_lines(1) == [f"{topic} hello"]
    with pytest.raises(ConnectRefused):  # TLS alone does not let anyone in
        tls_client(ep, certs)


def test_example_mtls_conf(certs, started):
    b = start_example("mtls.conf", started, {"/etc/tidemq/certs/": f"{certs.dir}/",
                                             "/etc/tidemq/acl": EXAMPLES / "mtls.acl"})
    ep = tls_endpoint(b, 0)
    with tls_client(ep, certs, "alice", MQTTv5) as alice, tls_client(ep, certs, "bob") as bob:
        # each device has its own subtree, named by its certificate
        assert alice.subscribe("devices/alice/#", 1) == [1]
        assert alice.subscribe("devices/bob/#", 1)[0] >= 0x80
        bob.publish("devices/bob/temp", b"21.5", qos=1)
        bob.publish("devices/alice/temp", b"spoofed", qos=1)  # not bob's: dropped
        alice.publish("devices/alice/temp", b"19.0", qos=1)
        assert [m.payload for m in alice.expect(1)] == [b"19.0"]
        alice.expect_none(0.3)
    assert refused(ep, client_context(certs, "revoked"))
    assert refused(ep, client_context(certs))

"""Extra helpers for test_09_malformed, test_10_limits, test_11_flow and test_12_sys_config (owned
with those files; conftest.py and helpers.py are not changed).

- SysWatcher: a paho client subscribed to $SYS that keeps the latest value of every figure and
  waits for one to satisfy a predicate (figures are published every sys_interval).
- Witness: a client connected throughout a test that proves, when asked, that the broker still
  routes (a QoS 1 round trip through its own subscription).
- RawSub: a raw MQTT subscriber on a socket with an optionally small receive buffer, with a
  reader thread that can be paused (stops calling recv) and that acknowledges QoS 1/2.
- FastReader: a packet reader over a plain socket that parses with offsets (fast enough for tens
  of thousands of packets).
- run_broker_once / DirectBroker: the broker binary run directly (exit-status and command-line
  tests), with the same sanitizer check as the fixtures.
- ConfigFirstBroker: a conftest Broker whose test config comes BEFORE the fixture's listener line
  (for global directives that Mosquitto reads differently after a listener, e.g. max_connections).
"""
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from conftest import LISTENING_RE, SANITIZER_RE, TIDEMQ_BIN, Broker
from helpers import (
    CONNACK, PUBACK, PUBLISH, PUBREC, PUBREL, SUBACK, Client, MQTTv311,
    ack_packet, connect_packet, parse, Packet, read_varint, MalformedPacket, subscribe_packet,
    unique_id, unique_topic,
)

WAIT = 5.0


# ======================================================================================
# $SYS
# ======================================================================================

class SysWatcher:
    """Latest value of every $SYS figure. value('limits/refused_sessions') -> int or str."""

    def __init__(self, broker, filt="$SYS/broker/#", protocol=MQTTv311, keepalive=60):
        self._cond = threading.Condition()
        self.values = {}
        self.history = []  # (monotonic time, topic, payload bytes, retain)
        self.client = Client(broker, protocol=protocol, keepalive=keepalive, connect=False)
        self.client.paho.on_message = self._on_message
        self.client.connect()
        codes = self.client.subscribe(filt, 0)
        assert codes == [0], f"$SYS subscription refused: {codes}"

    def _on_message(self, client, userdata, msg):
        with self._cond:
            self.values[msg.topic] = msg.payload
            self.history.append((time.monotonic(), msg.topic, msg.payload, bool(msg.retain)))
            self._cond.notify_all()

    @staticmethod
    def topic(name):
        return name if name.startswith("$SYS/") else "$SYS/broker/" + name

    def raw(self, name):
        with self._cond:
            return self.values.get(self.topic(name))

    def value(self, name):
        v = self.raw(name)
        if v is None:
            return None
        try:
            return int(v)
        except ValueError:
            return v.decode("utf-8", "replace")

    def wait(self, name, pred=lambda v: v is not None, timeout=6.0):
        """Waits until pred(value) holds; returns the value. Fails with the last value seen."""
        t = self.topic(name)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                raw = self.values.get(t)
                v = None
                if raw is not None:
                    try:
                        v = int(raw)
                    except ValueError:
                        v = raw.decode("utf-8", "replace")
                if v is not None and pred(v):
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{t}: condition not met within {timeout}s; last value {v!r}")
                self._cond.wait(left)

    def counter(self, name, timeout=6.0):
        """The current value of $SYS/broker/limits/<name> (waits for the first publication)."""
        return self.wait("limits/" + name, lambda v: isinstance(v, int), timeout)

    def wait_counter(self, name, at_least, timeout=6.0):
        return self.wait("limits/" + name, lambda v: isinstance(v, int) and v >= at_least, timeout)

    def close(self):
        self.client.close()


# ======================================================================================
# witness
# ======================================================================================

class Witness:
    """A client connected for the whole test; check() proves the broker still routes for it."""

    def __init__(self, broker, protocol=MQTTv311):
        self.client = Client(broker, protocol=protocol)
        self.topic = unique_topic("witness")
        assert self.client.subscribe(self.topic, 1) == [1]
        self.n = 0

    def check(self, timeout=WAIT):
        assert self.client.connected.is_set(), "the witness client was disconnected"
        self.n += 1
        payload = f"alive-{self.n}".encode()
        self.client.publish(self.topic, payload, qos=1, timeout=timeout)
        m = self.client.expect_one(timeout)
        assert m.payload == payload, f"witness got {m}"

    def close(self):
        self.client.close()


# ======================================================================================
# raw sockets
# ======================================================================================

def small_socket(broker, rcvbuf=None, timeout=WAIT):
    """A connected TCP socket; rcvbuf (bytes) is set before connect so the window stays small."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect((broker.host, broker.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class FastReader:
    """Reads MQTT packets from a socket: buffer with a read offset, compacted now and then."""

    def __init__(self, sock, version=4):
        self.sock = sock
        self.version = version
        self.buf = bytearray()
        self.pos = 0
        self.closed = False

    def _try_parse(self):
        buf, pos = self.buf, self.pos
        if len(buf) - pos < 2:
            return None
        try:
            length, hend = read_varint(buf, pos + 1)
        except MalformedPacket:
            if len(buf) - pos < 5:
                return None
            raise
        end = hend + length
        if end > len(buf):
            return None
        raw = bytes(buf[pos:end])
        self.pos = end
        if self.pos > 1 << 20:
            del self.buf[:self.pos]
            self.pos = 0
        return parse(Packet(raw[0] >> 4, raw[0] & 0x0F, raw[hend - pos:], raw), self.version)

    def read(self, timeout=WAIT):
        """The next packet, or None on timeout; raises EOFError when the broker closed."""
        deadline = time.monotonic() + timeout
        while True:
            p = self._try_parse()
            if p is not None:
                return p
            if self.closed:
                raise EOFError("connection closed")
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], min(left, 0.2))
            if not r:
                continue
            try:
                chunk = self.sock.recv(1 << 18)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            except socket.timeout:
                continue
            if not chunk:
                self.closed = True
                continue
            self.buf += chunk


def raw_connect(sock, version=4, client_id=None, timeout=WAIT, **kw):
    """Sends CONNECT on sock and returns the CONNACK (asserting reason 0)."""
    sock.sendall(connect_packet(version, client_id or unique_id("raw"), **kw))
    rd = FastReader(sock, version)
    p = rd.read(timeout)
    assert p is not None and p.type == CONNACK and p.reason == 0, f"CONNACK expected, got {p!r}"
    return rd


class RawSub:
    """A raw subscriber. start() runs a reader thread that records every PUBLISH and acknowledges
    QoS 1 (PUBACK) and QoS 2 (PUBREC, then PUBCOMP on PUBREL); pause() makes it stop calling recv
    (the socket's receive buffer fills and the broker must cope), resume() continues."""

    def __init__(self, broker, filt, qos=1, version=4, rcvbuf=None, client_id=None, ack=True,
                 delay=0.0, **connect_kw):
        self.version = version
        self.sock = small_socket(broker, rcvbuf)
        self.client_id = client_id or unique_id("rawsub")
        self.rd = raw_connect(self.sock, version, self.client_id, **connect_kw)
        self.sock.sendall(subscribe_packet(1, [(filt, qos)], version))
        p = self.rd.read(WAIT)
        assert p is not None and p.type == SUBACK and p.codes == [qos], f"SUBACK expected: {p!r}"
        self.ack = ack
        self.delay = delay  # seconds to sleep after each PUBLISH (a slow but steady reader)
        self.messages = []  # (payload, qos, dup, monotonic time)
        self.others = []    # non-PUBLISH packets received
        self.lock = threading.Lock()
        self._run = threading.Event()
        self._run.set()
        self._stop = threading.Event()
        self.eof = threading.Event()
        self.error = None
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def pause(self):
        self._run.clear()

    def resume(self):
        self._run.set()

    def _loop(self):
        try:
            while not self._stop.is_set():
                if not self._run.wait(0.1):
                    continue
                try:
                    p = self.rd.read(0.2)
                except EOFError:
                    self.eof.set()
                    return
                if p is None:
                    continue
                if p.type == PUBLISH:
                    with self.lock:
                        self.messages.append((p.payload, p.qos, p.dup, time.monotonic()))
                    if self.ack and p.qos == 1:
                        self.sock.sendall(ack_packet(PUBACK, p.packet_id, self.version))
                    elif self.ack and p.qos == 2:
                        self.sock.sendall(ack_packet(PUBREC, p.packet_id, self.version))
                    if self.delay:
                        time.sleep(self.delay)
                elif p.type == PUBREL:
                    self.sock.sendall(ack_packet(7, p.packet_id, self.version))
                else:
                    with self.lock:
                        self.others.append(p)
        except OSError as e:  # socket closed under us
            self.error = e
            self.eof.set()

    def count(self):
        with self.lock:
            return len(self.messages)

    def payloads(self):
        with self.lock:
            return [m[0] for m in self.messages]

    def wait_count(self, n, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count() >= n:
                return self.count()
            time.sleep(0.02)
        raise AssertionError(f"raw subscriber: {self.count()} of {n} messages within {timeout}s")

    def close(self):
        self._stop.set()
        self._run.set()
        if self.thread:
            self.thread.join(5)
        try:
            self.sock.close()
        except OSError:
            pass


def wait_closed(sock, timeout=WAIT):
    """Waits until the peer closes sock (EOF or reset), discarding data; returns the seconds waited
    or raises AssertionError."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"socket still open after {timeout}s")
        r, _, _ = select.select([sock], [], [], left)
        if not r:
            continue
        try:
            chunk = sock.recv(1 << 16)
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
        if not chunk:
            return time.monotonic() - start


# ======================================================================================
# running the binary directly
# ======================================================================================

def run_broker_once(config_text=None, args=(), timeout=10.0, tmpdir=None):
    """Runs `tidemq [-c FILE] ARGS` expecting it to exit by itself (a config error); returns
    (returncode, stderr+stdout text, config path). Fails if it is still running after timeout."""
    tmp = Path(tmpdir or tempfile.mkdtemp(prefix="tidemq-direct-"))
    cmd = [TIDEMQ_BIN]
    path = None
    if config_text is not None:
        path = tmp / "tidemq.conf"
        path.write_text(config_text)
        cmd += ["-c", str(path)]
    cmd += list(args)
    try:
        cp = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=str(tmp),
                            stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{' '.join(cmd)} still running after {timeout}s (expected an exit); "
                             f"output: {(e.stderr or b'').decode(errors='replace')[-2000:]}")
    text = cp.stderr.decode("utf-8", "replace") + cp.stdout.decode("utf-8", "replace")
    assert not SANITIZER_RE.search(text), f"sanitizer report:\n{text}"
    return cp.returncode, text, path


class DirectBroker:
    """The broker started with an exact command line (no fixture config). .port/.ports come from
    its `listening address=... port=...` log lines (so pass -v or keep notices on)."""

    def __init__(self, args, config_text=None, cwd=None):
        self.tmpdir = Path(tempfile.mkdtemp(prefix="tidemq-direct-"))
        self.cmd = [TIDEMQ_BIN]
        if config_text is not None:
            self.config_path = self.tmpdir / "tidemq.conf"
            self.config_path.write_text(config_text)
            self.cmd += ["-c", str(self.config_path)]
        self.cmd += list(args)
        self.log_path = self.tmpdir / "out.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=str(cwd or self.tmpdir))
        self.host = "127.0.0.1"
        self.port = None
        self.ports = []

    def log_text(self):
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def wait_listening(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = LISTENING_RE.findall(self.log_text())
            if found:
                time.sleep(0.1)  # every listener logs at once; take them all
                self.ports = [(a, int(p)) for a, p in LISTENING_RE.findall(self.log_text())]
                self.port = self.ports[0][1]
                return self.ports
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"{' '.join(self.cmd)} did not report listening within {timeout}s "
                             f"(exit {self.proc.poll()}):\n{self.log_text()[-3000:]}")

    def stop(self):
        """SIGTERM; returns the problems (non-zero exit, timeout, sanitizer report)."""
        problems = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                problems.append("did not exit within 10s of SIGTERM")
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        if self.proc.returncode != 0 and not problems:
            problems.append(f"exited with code {self.proc.returncode}")
        if SANITIZER_RE.search(self.log_text()):
            problems.append("sanitizer report")
        return problems


class ConfigFirstBroker(Broker):
    """A conftest Broker whose test config is written before the fixture's listener line."""

    def write_config(self):
        present = {
            line.split()[0]
            for line in self.config_text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        }
        lines = ["# written by tests/broker/helpers_limits.py (config before the listener)"]
        if "allow_anonymous" not in present:
            lines.append("allow_anonymous true")
        if "sys_interval" not in present:
            lines.append("sys_interval 1")
        lines.append(self.config_text)
        lines.append("listener 0 127.0.0.1")
        self.config_path.write_text("\n".join(lines) + "\n")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port

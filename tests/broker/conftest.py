"""Fixtures for the black-box suite: real tidemq processes on OS-chosen loopback ports.

Each broker gets its own temp dir and config file whose first listener is `listener 0 127.0.0.1`;
the port the OS picked is read from the broker's startup log line
`listening address=127.0.0.1 port=NNNNN`. At teardown the broker gets SIGTERM and the test fails
if it exits non-zero, does not exit within 10 s, or printed a sanitizer report.

The binary is $TIDEMQ_BIN (ctest sets it), default <repo>/build/tidemq.

Fixtures: `broker` (one per test module, default config), `broker_factory(config_text="",
args=[])` (brokers for one test; config_text is appended after the first listener, so listener
directives like `max_qos 1` apply to it), `clients` (a list closed after the test). Every
helpers.Client / RawClient / MosquittoSub is closed after each test anyway, and a test that hangs
past TIDEMQ_TEST_TIMEOUT (90 s) is stopped. Broker: .host .port .pid .log_text() .mark()
.wait_log(regex, timeout, start) .restart() .stop().
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers  # noqa: E402 - after the sys.path insert

REPO = Path(__file__).resolve().parents[2]
# absolute: the broker runs with its temp dir as working directory
TIDEMQ_BIN = os.path.abspath(os.environ.get("TIDEMQ_BIN") or str(REPO / "build" / "tidemq"))

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
# A single test that runs longer than this is stopped (every wait inside has its own, smaller
# timeout; this only guards against a hang nobody thought of).
TEST_HARD_TIMEOUT = int(os.environ.get("TIDEMQ_TEST_TIMEOUT", "90"))

LISTENING_RE = re.compile(r"listening address=(\S+) port=(\d+)")
SANITIZER_RE = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|SUMMARY: AddressSanitizer|"
    r"SUMMARY: UndefinedBehaviorSanitizer|runtime error:"
)

# Directives the fixture adds unless the test's own config sets them.
DEFAULT_DIRECTIVES = (("allow_anonymous", "true"), ("sys_interval", "1"))


class BrokerError(Exception):
    pass


class Broker:
    """One tidemq process. Start with start(); stop() returns the problems found (empty if clean)."""

    def __init__(self, config_text="", args=(), name="broker"):
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"tidemq-{name}-"))
        self.config_text = config_text
        self.args = list(args)
        self.config_path = self.tmpdir / "tidemq.conf"
        self.stderr_path = self.tmpdir / "stderr.log"
        self.stdout_path = self.tmpdir / "stdout.log"
        self.host = "127.0.0.1"
        self.port = None
        self.ports = []  # every (address, port) the broker said it listens on, in order
        self.proc = None
        self.returncode = None
        self.allowed_returncodes = {0}  # a test that kills the broker on purpose may widen this
        self.problems = []  # found by earlier stops (restart); reported at teardown
        self._stderr = None
        self._stdout = None

    # -- lifecycle -------------------------------------------------------------------------
    def write_config(self):
        present = {
            line.split()[0]
            for line in self.config_text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        }
        lines = ["# written by tests/broker/conftest.py"]
        lines += [f"{k} {v}" for k, v in DEFAULT_DIRECTIVES if k not in present]
        lines.append("listener 0 127.0.0.1")
        lines.append(self.config_text)
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self):
        if not os.access(TIDEMQ_BIN, os.X_OK):
            raise BrokerError(f"broker binary {TIDEMQ_BIN} not found (build it, or set TIDEMQ_BIN)")
        self.write_config()
        self._stderr = open(self.stderr_path, "ab")
        self._stdout = open(self.stdout_path, "ab")
        self.port = None
        cmd = [TIDEMQ_BIN, "-c", str(self.config_path), "-v", *self.args]
        start = len(self.log_text())  # before the process can write: a restart appends
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self._stdout, stderr=self._stderr,
            cwd=str(self.tmpdir),
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            found = LISTENING_RE.findall(self.log_text()[start:])
            if found:
                self.ports = [(a, int(p)) for a, p in found]
                for addr, port in self.ports:
                    if addr == "127.0.0.1":
                        self.port = port
                        break
                if self.port:
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        rc = self.proc.poll()
        self._kill()
        self.proc = None  # the error below says it all; teardown has nothing more to report
        raise BrokerError(
            f"broker did not report 'listening address=127.0.0.1 port=N' within {START_TIMEOUT}s "
            f"(exit code {rc}); command: {' '.join(cmd)}\nconfig:\n{self.config_path.read_text()}"
            f"\nstderr:\n{self.log_text()}"
        )

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._close_files()

    def _close_files(self):
        for f in (self._stderr, self._stdout):
            if f:
                f.close()
        self._stderr = self._stdout = None

    def stop(self, sig=signal.SIGTERM):
        """Stops the broker; returns a list of problems (non-zero exit, timeout, sanitizer report)."""
        problems = []
        if self.proc is None:
            return problems
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append(f"broker did not exit within {STOP_TIMEOUT}s of {sig.name}; killed")
                self.proc.kill()
                self.proc.wait(5)
        self.returncode = self.proc.returncode
        self._close_files()
        if self.returncode not in self.allowed_returncodes and not problems:
            problems.append(f"broker exited with code {self.returncode}")
        text = self.log_text()
        if SANITIZER_RE.search(text) and not any("sanitizer" in p for p in self.problems):
            problems.append("sanitizer report in broker stderr")
        self.problems += problems
        self.proc = None
        return problems

    def restart(self, sig=signal.SIGTERM):
        """Stops the broker (problems are kept for teardown) and starts it again with the same
        config and temp dir (so persistence survives). The port may change: read .port again."""
        self.stop(sig)
        return self.start()

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- logs ------------------------------------------------------------------------------
    def log_text(self):
        """Everything the broker wrote to stderr (and stdout) so far."""
        out = []
        for p in (self.stderr_path, self.stdout_path):
            try:
                out.append(p.read_bytes().decode("utf-8", "replace"))
            except FileNotFoundError:
                pass
        return "".join(out)

    def mark(self):
        """The current end of the log: pass it as wait_log(start=...) to match only new lines."""
        return len(self.log_text())

    def wait_log(self, regex, timeout=5.0, start=0):
        """Waits until the log (from character `start`) matches regex; returns the match."""
        rx = re.compile(regex)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log_text(), start)
            if m:
                return m
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"broker log did not match {regex!r} within {timeout}s; log tail:\n"
                    + self.log_text()[-4000:]
                )
            time.sleep(0.05)

    def __repr__(self):
        return f"<Broker {self.host}:{self.port} pid={self.pid}>"


def _report(brokers):
    problems = []
    for b in brokers:
        b.stop()
        p = b.problems
        if p:
            problems.append(f"{b!r}: " + "; ".join(p) + f" (logs kept in {b.tmpdir})"
                            + "\n--- stderr tail ---\n" + b.log_text()[-6000:])
        else:
            shutil.rmtree(b.tmpdir, ignore_errors=True)
    return problems


@pytest.fixture(scope="module")
def broker(request):
    """A broker with the default test config, shared by a test module."""
    b = Broker(name=Path(request.module.__file__).stem)
    b.start()
    yield b
    problems = _report([b])
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def broker_factory(request):
    """broker_factory(config_text="", args=[]) starts a broker for this test only."""
    started = []

    def make(config_text="", args=()):
        b = Broker(config_text, args, name=request.node.name[:40].replace("/", "_"))
        started.append(b)
        b.start()
        return b

    yield make
    problems = _report(started)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(autouse=True)
def _hard_timeout():
    """Fails a test that hangs past TEST_HARD_TIMEOUT seconds (main thread only)."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"test exceeded {TEST_HARD_TIMEOUT}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_HARD_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(autouse=True)
def _close_helpers_clients():
    """Closes every helpers.Client / RawClient / MosquittoSub a test left open."""
    yield
    helpers.close_all()


@pytest.fixture
def clients():
    """A list to append clients to; each is closed after the test (helpers' own clients are
    closed anyway; this also takes anything else with a close())."""
    started = []
    yield started
    for c in reversed(started):
        try:
            c.close()
        except Exception:  # noqa: BLE001 - closing must not hide the test's own result
            pass

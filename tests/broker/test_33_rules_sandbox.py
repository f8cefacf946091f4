"""The rule sandbox inside a real broker (RULES-API "The sandbox"): every escape attempt of
tests/rules/fixtures/escape_* (os.execute, io.open, require "ffi", debug.*, load/loadstring of
source or bytecode, string.dump and ("").dump, getfenv/setfenv, package.loadlib,
collectgarbage("stop"), endless loops, memory bombs, deep recursion incl. through string.gsub
callbacks, error objects whose __tostring errors or loops, yields across the hook, pathological Lua
patterns and regexes, the msgpack length bomb, ...) runs as a rule in one broker; a client triggers
it, the publisher gets 0x80 (on_error "drop"), nothing escapes, the broker keeps serving another
client, and `$SYS/broker/rules/<name>/errors|timeouts` counts the abort. Then the limits: fan-out
and tide.publish caps, timer rate, per-rule memory, timers that never return, the rule_cpu_share
circuit breaker, rule_max_payload, the connecting client's password scrubbed from logs and
errors, and rules that others could write refused.

The escape fixtures match "#"; here each is copied as <name>.lua matching only esc/<name>."""
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SANITIZER_RE, TIDEMQ_BIN, Broker, BrokerError, _report
from helpers import (
    P_REASON_STRING, PUBACK, PUBREC, Client, MQTTv5, RawClient, unique_topic,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "rules" / "fixtures"
ESCAPES = sorted(p.name[len("escape_"):] for p in FIXTURES.glob("escape_*"))
# the escapes that can only end by running out of time (the others raise or run out of memory)
TIMEOUTS = {"infinite_loop", "pcall_loop", "lua_pattern", "lua_pattern_gmatch",
            "lua_pattern_method"}


def private_rules(dst, files):
    """Writes {name: text} as a rules directory the engine accepts (dir 0755, files 0644)."""
    dst.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(dst, 0o755)
    for name, text in files.items():
        (dst / name).write_text(text)
        os.chmod(dst / name, 0o644)
    return dst


def fixture_files(name):
    return {f.name: f.read_text() for f in sorted((FIXTURES / name).iterdir()) if f.is_file()}


class SysRules:
    """A v5 client subscribed to $SYS/broker/rules/#, keeping the latest value of each topic."""

    def __init__(self, broker):
        self.values = {}
        self.c = Client(broker, protocol=MQTTv5)
        self.c.subscribe("$SYS/broker/rules/#")

    def _drain(self):
        while not self.c.messages.empty():
            m = self.c.messages.get()
            self.values[m.topic] = m.payload.decode(errors="replace")

    def counter(self, rule, name):
        self._drain()
        try:
            return int(float(self.values.get(f"$SYS/broker/rules/{rule}/{name}", "0")))
        except ValueError:
            return 0

    def wait(self, pred, what, timeout=6.0):
        deadline = time.monotonic() + timeout
        while True:
            self._drain()
            if pred(self):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"$SYS never showed {what} within {timeout}s: "
                                     f"{len(self.values)} values")
            time.sleep(0.1)


def round_trip(broker):
    """Another client's publish/subscribe round trip still works."""
    t = unique_topic("alive")
    with Client(broker, protocol=MQTTv5) as sub, Client(broker) as pub:
        sub.subscribe(t, qos=1)
        pub.publish(t, b"still here", qos=1)
        assert sub.expect_one(timeout=5).payload == b"still here"


def puback(broker, topic, payload=b"x", qos=1):
    """Publishes from a v5 raw client; returns (reason code, reason string) of PUBACK/PUBREC."""
    r = RawClient(broker, 5)
    r.connect()
    r.publish(topic, payload, qos=qos, packet_id=7)
    ack = r.expect(PUBACK if qos == 1 else PUBREC, timeout=10)
    r.close()
    return ack.reason, ack.props.get(P_REASON_STRING)


def start_with_rules(tmp_path, files, config="", name="sandbox"):
    d = private_rules(tmp_path / "rules", files)
    b = Broker(config, args=["--rules", str(d)], name=name)
    b.start()
    settle(b)
    return b, d


def settle(b):
    """Waits until the broker is past its start-up (signal handlers in place after 'running')."""
    b.wait_log(r"tidemq \S+ running")
    time.sleep(0.1)


@pytest.fixture
def rules_broker(tmp_path):
    """rules_broker(files, config="") starts a broker serving those rules for this test."""
    started = []

    def make(files, config=""):
        b, d = start_with_rules(tmp_path / f"b{len(started)}", files, config)
        started.append(b)
        return b, d

    yield make
    problems = _report(started)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def escape_broker(tmp_path_factory):
    files = {}
    for name in ESCAPES:
        text = (FIXTURES / f"escape_{name}" / "10-escape.lua").read_text()
        assert 'match = "#"' in text, name
        files[f"{name}.lua"] = text.replace('match = "#"', f'match = "esc/{name}"')
    b, _ = start_with_rules(tmp_path_factory.mktemp("escapes"), files, name="test_33_escapes")
    yield b
    problems = _report([b])
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.mark.parametrize("name", ESCAPES)
def test_escape_is_aborted_counted_and_the_broker_keeps_serving(escape_broker, name):
    b = escape_broker
    with Client(b, protocol=MQTTv5) as watcher:
        watcher.subscribe(f"esc/{name}", qos=1)
        t0 = time.monotonic()
        reason, _ = puback(b, f"esc/{name}")
        assert time.monotonic() - t0 < 5
        assert reason == 0x80  # aborted, on_error "drop": unspecified_error
        watcher.expect_none(0.3)  # nothing ESCAPED, the message itself dropped
    round_trip(b)
    sys = SysRules(b)  # each rule is triggered by its own test only: its counters start at 0
    sys.wait(lambda s: s.counter(name, "errors") + s.counter(name, "timeouts") >= 1,
             f"{name}: errors or timeouts counted")
    if name in TIMEOUTS:
        assert sys.counter(name, "timeouts") >= 1
    assert not os.path.exists("/tmp/tidemq-escaped")
    assert b.alive()


def test_every_escape_rule_logged_its_abort(escape_broker):
    # runs after the parametrized tests: each rule's abort is in the log as "<hook> aborted"
    text = escape_broker.log_text()
    missing = [n for n in ESCAPES
               if not any(n in line and "aborted" in line for line in text.splitlines())]
    assert not missing, missing


def test_fanout_publish_cap_timer_rate_and_memory_limits(rules_broker):
    b, _ = rules_broker(fixture_files("sandbox_limits"))
    s = SysRules(b)
    assert puback(b, "lim/fanout")[0] == 0x80
    assert puback(b, "lim/timer")[0] == 0x80
    assert puback(b, "lim/memory")[0] == 0x80
    with Client(b, protocol=MQTTv5) as sub:
        sub.subscribe("lim/pub/#", qos=0)
        sub.subscribe("lim/pub", qos=0)
        Client(b).publish("lim/pub", b"go", qos=1)
        got = sub.expect(101, timeout=10)
        sub.expect_none(0.3)
    mine = [m for m in got if m.topic == "lim/pub"]
    assert [m.payload for m in mine] == [b"100 publish_limit"]
    outs = sorted(int(m.payload) for m in got if m.topic == "lim/pub/out")
    assert outs == list(range(1, 101))
    s.wait(lambda s: s.counter("fanout", "errors") >= 1 and s.counter("timer_rate", "errors") >= 1
           and s.counter("memory", "errors") >= 1 and s.counter("publish_cap", "drops") >= 50,
           "fanout/timer_rate/memory errors and publish_cap drops")
    round_trip(b)


def test_timer_that_never_returns_is_aborted_and_trips_the_breaker(rules_broker):
    b, _ = rules_broker(fixture_files("sandbox_timer"))
    s = SysRules(b)
    b.wait_log(r"timer aborted: timeout", timeout=5)
    b.wait_log(r"circuit breaker", timeout=5)
    s.wait(lambda s: s.counter("10-spin-timer", "timeouts") >= 1, "timer timeouts")
    # with the breaker open the loop is free again: round trips stay fast
    t0 = time.monotonic()
    for _ in range(5):
        round_trip(b)
    assert time.monotonic() - t0 < 10


def test_cpu_share_breaker_trips_then_rearms(rules_broker):
    b, _ = rules_broker(fixture_files("sandbox_breaker"))
    s = SysRules(b)
    with Client(b, protocol=MQTTv5) as sub, Client(b, protocol=MQTTv5) as pub:
        sub.subscribe("hog/#", qos=1)
        mark = b.mark()
        for i in range(150):  # 150 x 3 ms of CPU in one burst: well past 20 % of a second
            pub.publish("hog/x", b"%d" % i, qos=1, wait=(i == 149))
        b.wait_log(r"circuit breaker: over rule_cpu_share", start=mark, timeout=5)
        time.sleep(1)
        got = []
        while not sub.messages.empty():
            got.append(sub.messages.get())
        # the first ~65 ran (200 ms of 3 ms calls), the rest were dropped by the open breaker
        assert 0 < len(got) < 150, len(got)
        assert all(m.payload == b"hogged" for m in got)
        s.wait(lambda s: s.counter("10-hog", "errors") >= 1, "breaker errors")
        # cool-down (5 s): then the rule runs again
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            while not sub.messages.empty():
                sub.messages.get()
            pub.publish("hog/x", b"again", qos=1)
            try:
                if sub.expect_one(timeout=0.5).payload == b"hogged":
                    break
            except AssertionError:
                time.sleep(0.5)
        else:
            raise AssertionError("the breaker did not re-arm within 12 s")
    round_trip(b)


def test_rule_max_payload_skips_the_rules_and_refuses(rules_broker):
    b, _ = rules_broker({"big.lua": (FIXTURES / "sandbox_limits" / "big.lua").read_text()},
                        config="rule_max_payload 1K")
    with Client(b, protocol=MQTTv5) as sub:
        sub.subscribe("big/#", qos=1)
        reason, text = puback(b, "big/a", b"y" * 2000)
        assert reason == 0x97 and text == "payload exceeds rule_max_payload"
        reason, _ = puback(b, "big/b", b"y" * 10)
        assert reason == 0
        assert sub.expect_one().payload == b"seen 10"
        Client(b).publish("big/c", b"z" * 2000, qos=1)  # 3.1.1: acknowledged, dropped
        Client(b, protocol=MQTTv5).publish("big/d", b"z" * 2000, qos=0)  # QoS 0: dropped
        sub.expect_none(0.5)
    round_trip(b)


def test_password_is_scrubbed_from_logs_and_errors(rules_broker):
    secret = "Sup3r-S3cret-pw!"
    b, _ = rules_broker(fixture_files("sandbox_password"))
    s = SysRules(b)
    mark = b.mark()
    with Client(b, protocol=MQTTv5, username="alice", password=secret):
        pass
    b.wait_log(r"login alice with \*\*\*", start=mark)
    b.wait_log(r"bad password \*\*\*", start=mark)
    b.wait_log(r"print sees\s+\*\*\*", start=mark)
    s.wait(lambda s: s.counter("20-raise", "errors") >= 1, "20-raise errors")
    assert secret not in b.log_text()
    assert all(secret not in v for v in s.values.values())
    assert "***" in s.values.get("$SYS/broker/rules/20-raise/last_error", "***")


@pytest.mark.parametrize("what", ["dir", "file"])
def test_rules_others_can_write_are_refused_at_start(tmp_path, what):
    d = private_rules(tmp_path / "rules", {"10-a.lua": "return {}\n"})
    os.chmod(d if what == "dir" else d / "10-a.lua", 0o777 if what == "dir" else 0o666)
    b = Broker("", args=["--rules", str(d)], name="unsafe")
    with pytest.raises(BrokerError):
        b.start()
    assert "writable by group or others" in b.log_text()
    shutil.rmtree(b.tmpdir, ignore_errors=True)


def test_reload_of_a_file_others_can_write_is_refused_and_old_rules_stay(rules_broker):
    b, d = rules_broker({"10-tag.lua": "return { match = 'u/#', on_publish = function(m) "
                                       "return {payload = m.payload .. '|safe'} end }\n"})
    f = d / "10-tag.lua"
    mark = b.mark()
    f.write_text("return { match = 'u/#', on_publish = function(m) "
                 "return {payload = m.payload .. '|unsafe'} end }\n")
    os.chmod(f, 0o666)
    b.proc.send_signal(signal.SIGHUP)
    b.wait_log(r"10-tag\.lua: refusing a rule file writable by group or others", start=mark)
    with Client(b, protocol=MQTTv5) as sub:
        sub.subscribe("u/#", qos=1)
        Client(b).publish("u/x", b"m", qos=1)
        assert sub.expect_one().payload == b"m|safe"
    os.chmod(f, 0o644)


def rules_test_offline(tmp_path, fixture, lines, timeout=60):
    d = private_rules(tmp_path / fixture, fixture_files(fixture))
    p = subprocess.run([TIDEMQ_BIN, "rules", "test", str(d)], capture_output=True, timeout=timeout,
                       input="".join(json.dumps(x) + "\n" for x in lines).encode())
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0 and not SANITIZER_RE.search(err), err
    return [json.loads(x) for x in p.stdout.decode().splitlines()]


def test_table_sort_is_lua_51_sort_and_budgeted(tmp_path):
    t0 = time.monotonic()
    ok, big = rules_test_offline(tmp_path, "sandbox_sort", [{"topic": "sort/ok", "payload": "x"},
                                                            {"topic": "sort/big", "payload": "x"}])
    assert ok["messages"][0]["payload"] == "ok", ok
    assert big["result"] == "refused" and "timeout" in big["errors"][0]["error"], big
    assert time.monotonic() - t0 < 10


def test_a_loop_of_slow_c_calls_is_stopped_by_the_wall_backstop(tmp_path):
    # each call upper-cases 8 MiB (~10 ms): a thousand of them would pass between two count-hook
    # checks; the watchdog stops each call at the wall backstop (10 x 5 ms) plus one C call
    t0 = time.monotonic()
    res = rules_test_offline(tmp_path, "sandbox_cloop", [{"topic": "cloop", "payload": "x"}] * 3)
    elapsed = time.monotonic() - t0
    assert "timeout" in res[0]["errors"][0]["error"], res
    # later calls time out too, or find the rule_cpu_share breaker already open
    assert all(r["result"] == "refused" and r["errors"] for r in res), res
    assert elapsed < 2, elapsed  # without the watchdog: about 3 s for the first call alone


def test_client_attrs_are_bounded(rules_broker):
    b, _ = rules_broker(fixture_files("sandbox_attrs"))
    t0 = time.monotonic()
    with Client(b, protocol=MQTTv5) as c:
        assert time.monotonic() - t0 < 3  # 20000 attrs written; copying them stays cheap
        c.subscribe("attrs/#", qos=1)
        c.publish("attrs/x", b"x", qos=1)
        assert c.expect_one().payload == b"64 nil"
    round_trip(b)


def test_rules_publishing_to_each_other_are_bounded_per_event(rules_broker):
    b, _ = rules_broker(fixture_files("sandbox_amplify"))
    s = SysRules(b)
    mark = b.mark()
    t0 = time.monotonic()
    with Client(b, protocol=MQTTv5) as sub:
        sub.subscribe("amp", qos=0)
        Client(b).publish("amp", b"go", qos=1)
        b.wait_log(r"tide\.publish: over 1000 queued in one event, dropped", start=mark)
        round_trip(b)
        assert time.monotonic() - t0 < 5
        # every message a rule saw was answered with false: nothing reaches the subscriber
        sub.expect_none(0.3)
    s.wait(lambda s: s.counter("10-a", "drops") + s.counter("20-b", "drops") >= 1, "drops")

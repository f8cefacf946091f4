"""The example rule sets in examples/rules/ and the default set in rules/ do what their comments
say: offline (`tidemq rules check`, and `tidemq rules test DIR --input input.jsonl` gives
expected.jsonl) and in a real broker started with `--rules DIR`, with real clients (paho 5 and
3.1.1, raw sockets where a reason code must be read, mosquitto_pub/sub).

Each example is copied to a private temp dir (dir 0755, files 0644: the engine refuses rules that
group or others can write). `rules test` output is compared as parsed JSON, and a payload that is
itself JSON is compared parsed too: Lua tables have no stable key order."""
import json
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SANITIZER_RE, TIDEMQ_BIN
from helpers import (
    P_REASON_STRING, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, Client, ConnectRefused,
    MosquittoSub, MQTTv311, MQTTv5, RawClient, run_pub, unique_id,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "rules"
NAMES = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir())
REQUIRED = ["content-router", "json-validation", "msgpack-to-json", "pcre-acl", "rate-limit",
            "tenant-isolation", "unit-conversion"]


def private_copy(src, dst):
    """Copies a rules directory (only its files) with the permissions the engine accepts."""
    dst.mkdir(mode=0o755)
    os.chmod(dst, 0o755)
    for f in sorted(src.iterdir()):
        if f.is_file():
            shutil.copyfile(f, dst / f.name)
            os.chmod(dst / f.name, 0o644)
    return dst


def example(tmp_path, name):
    return private_copy(EXAMPLES / name, tmp_path / name)


def rules_cli(*args, timeout=60):
    p = subprocess.run([TIDEMQ_BIN, "rules", *map(str, args)], capture_output=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    err = p.stderr.decode(errors="replace")
    assert not SANITIZER_RE.search(err), err
    return p.returncode, p.stdout.decode(), err


def normalized(line):
    """A `rules test` output line, parsed, with JSON payloads parsed as well."""
    rec = json.loads(line)
    for key in ("messages", "published"):
        for m in rec.get(key, []):
            try:
                m["payload"] = ("json", json.loads(m["payload"]))
            except (KeyError, ValueError):
                pass
    return rec


def start(broker_factory, rules_dir):
    """A broker serving rules_dir (the rules load before it listens)."""
    return broker_factory("", args=["--rules", str(rules_dir)])


def puback(r, topic, payload, qos=1, packet_id=1):
    """Publishes on a v5 RawClient, completes the flow; returns (reason code, reason string)."""
    r.publish(topic, payload, qos=qos, packet_id=packet_id)
    ack = r.expect(PUBACK if qos == 1 else PUBREC)
    assert ack.packet_id == packet_id
    if qos == 2 and ack.reason < 0x80:
        r.ack(PUBREL, packet_id)
        r.expect(PUBCOMP)
    return ack.reason, ack.props.get(P_REASON_STRING)


def v5_raw(b, client_id=None, username=None):
    r = RawClient(b, 5)
    r.connect(client_id=client_id, username=username)
    return r


def payloads(msgs):
    return [m.payload for m in msgs]


# ==============================================================================================
# offline: every example checks, and its fixture gives what expected.jsonl says
# ==============================================================================================

def test_the_required_examples_exist():
    assert set(REQUIRED) <= set(NAMES), NAMES


@pytest.mark.parametrize("name", NAMES)
def test_example_passes_rules_check(tmp_path, name):
    d = example(tmp_path, name)
    assert list(d.glob("*.lua")), f"{name} has no rule"
    rc, out, err = rules_cli("check", d)
    assert rc == 0, err
    assert f"{len(list(d.glob('*.lua')))} rules ok" in out


@pytest.mark.parametrize("name", NAMES)
def test_example_fixture_gives_expected_output(tmp_path, name):
    d = example(tmp_path, name)
    rc, out, err = rules_cli("test", d, "--input", d / "input.jsonl")
    assert rc == 0, err
    got = [normalized(x) for x in out.splitlines()]
    want = [normalized(x) for x in (d / "expected.jsonl").read_text().splitlines()]
    assert len(want) == len((d / "input.jsonl").read_text().splitlines()) > 0
    for g, w in zip(got, want):
        assert g == w, f"{name} line {w.get('line')}"
    assert len(got) == len(want)
    # a fixture that only shows pass-through would prove nothing about the rule
    assert any(w["result"] != "routed" or w.get("logs") for w in want) or any(
        len(w["messages"]) > 1 for w in want), name


def test_default_rules_welcome_line_offline(tmp_path):
    d = private_copy(REPO / "rules", tmp_path / "rules")
    rc, out, err = rules_cli("check", d)
    assert rc == 0 and "2 rules ok" in out, err
    rc, out, err = rules_cli("test", d)  # no input lines: just the load, which runs init
    assert rc == 0 and out == "", err
    assert "rules are running" in err


# ==============================================================================================
# in the broker
# ==============================================================================================

def test_default_rules_log_a_welcome_and_transform_the_demo_topic(broker_factory, tmp_path):
    """What `scripts/run` shows at once: the welcome line in the log, and 10-demo's seen_at."""
    d = private_copy(REPO / "rules", tmp_path / "rules")
    b = start(broker_factory, d)
    b.wait_log(r"rules are running; try: mosquitto_sub -t 'tidemq/demo/#'")
    with MosquittoSub(b, "tidemq/demo/#") as sub:
        before = int(time.time())
        run_pub(b, "tidemq/demo/hello", '{"v":1}')
        topic, payload = sub.wait_lines(1)[0].split(" ", 1)
    assert topic == "tidemq/demo/hello"
    v = json.loads(payload)
    assert v["v"] == 1 and before - 1 <= v["seen_at"] <= time.time() + 1


def test_unit_conversion(broker_factory, tmp_path):
    b = start(broker_factory, example(tmp_path, "unit-conversion"))
    f = Client(b, protocol=MQTTv5)
    c = Client(b, protocol=MQTTv311)
    assert f.subscribe("sensors/+/fahrenheit", 1) == [1]
    assert c.subscribe("sensors/+/celsius", 1) == [1]
    run_pub(b, "sensors/kitchen/celsius", "21.5")
    m = f.expect_one()
    assert (m.topic, m.payload) == ("sensors/kitchen/fahrenheit", b"70.7")
    r = v5_raw(b)
    # garbage is dropped by the rule: acknowledged with success, delivered to nobody
    assert puback(r, "sensors/kitchen/celsius", b"warm", 1, 1) == (0, None)
    assert puback(r, "sensors/oven/celsius", b"100", 2, 2) == (0, None)
    m = f.expect_one()
    assert (m.topic, m.payload, m.qos) == ("sensors/oven/fahrenheit", b"212", 1)
    f.expect_none(0.3)
    c.expect_none(0.3)  # the Celsius topic itself carries nothing: every reading was rewritten


def test_json_validation_refuses_bad_payloads_with_a_reason(broker_factory, tmp_path):
    b = start(broker_factory, example(tmp_path, "json-validation"))
    sub = Client(b, protocol=MQTTv5)
    sub.subscribe("telemetry/#", 1)
    r = v5_raw(b)
    good = b'{"temp":21.5,"unit":"C"}'
    assert puback(r, "telemetry/pump1", good, 1, 1) == (0, None)
    assert puback(r, "telemetry/pump1", b'{"temp":"hot","unit":"C"}', 1, 2) == (
        0x99, "field 'temp' must be a number")
    assert puback(r, "telemetry/pump1", b'{"unit":"C"}', 2, 3) == (0x99, "missing field 'temp'")
    code, text = puback(r, "telemetry/pump1", b"21.5 C", 1, 4)
    assert code == 0x99 and text.startswith("payload is not JSON")
    assert sub.expect_one().payload == good
    # 3.1.1: acknowledged (wait_for_publish succeeds) and dropped
    old = Client(b, protocol=MQTTv311)
    old.publish("telemetry/pump2", b'{"temp":900,"unit":"C"}', qos=1)
    old.publish("telemetry/pump2", b'{"temp":20,"unit":"F"}', qos=1)
    assert sub.expect_one().payload == b'{"temp":20,"unit":"F"}'
    sub.expect_none(0.3)
    assert r.is_open()


def test_json_validation_with_mosquitto_pub(broker_factory, tmp_path):
    """The command in the rule's header comment: mosquitto_pub reports the refusal."""
    b = start(broker_factory, example(tmp_path, "json-validation"))
    cmd = ["mosquitto_pub", "-h", b.host, "-p", str(b.port), "-V", "5", "-q", "1", "-d",
           "-t", "telemetry/pump1", "-m", '{"temp":"hot","unit":"C"}']
    p = subprocess.run(cmd, capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
    out = (p.stdout + p.stderr).decode()
    assert "RC:153" in out and "Payload format invalid" in out, out
    assert "field 'temp' must be a number" in out, out  # the v5 reason string


TENANT_USERS = ("alice@acme", "carol@acme", "bob@globex")


def test_tenant_isolation_keeps_tenants_apart(broker_factory, tmp_path):
    b = start(broker_factory, example(tmp_path, "tenant-isolation"))
    carol = Client(b, protocol=MQTTv5, username="carol@acme")
    bob = Client(b, protocol=MQTTv311, username="bob@globex")
    assert carol.subscribe("sensors/#", 1) == [1]
    assert bob.subscribe("#", 1) == [1]
    alice = Client(b, protocol=MQTTv5, username="alice@acme")
    alice.publish("sensors/1", b"21", qos=1)
    m = carol.expect_one()
    assert (m.topic, m.payload) == ("sensors/1", b"21")  # the prefix is invisible to clients
    bob.expect_none(0.3)
    # globex cannot reach acme, not even by naming acme's real topic
    bob.publish("sensors/1", b"99", qos=1)
    bob.publish("tenants/acme/sensors/1", b"sneaky", qos=1)
    got = sorted((m.topic, m.payload) for m in bob.expect(2))
    assert got == [("sensors/1", b"99"), ("tenants/acme/sensors/1", b"sneaky")]
    carol.expect_none(0.3)
    # retained messages are delivered through on_deliver too, stripped, to the same tenant only
    alice.publish("sensors/r", b"kept", qos=1, retain=True)
    assert carol.expect_one().topic == "sensors/r"
    bob.expect_none(0.2)
    late = Client(b, protocol=MQTTv311, username="dave@acme")
    late.subscribe("sensors/+", 1)
    m = late.expect_one()
    assert (m.topic, m.payload, m.retain) == ("sensors/r", b"kept", True)
    other = Client(b, protocol=MQTTv5, username="erin@globex")
    other.subscribe("sensors/+", 1)
    other.expect_none(0.5)


def test_tenant_isolation_with_mosquitto_clients(broker_factory, tmp_path):
    """The commands in the rule's header comment."""
    b = start(broker_factory, example(tmp_path, "tenant-isolation"))
    with MosquittoSub(b, "sensors/#", extra=["-u", "carol@acme"]) as sub:
        run_pub(b, "sensors/1", "21", extra=["-u", "alice@acme"])
        run_pub(b, "sensors/1", "99", extra=["-u", "bob@globex"])
        run_pub(b, "sensors/2", "22", extra=["-u", "alice@acme"])
        assert sub.wait_lines(2) == ["sensors/1 21", "sensors/2 22"]


@pytest.mark.parametrize("version,code", [(5, 0x86), (4, 4)], ids=["v5", "v311"])
def test_tenant_isolation_refuses_a_username_without_tenant(broker_factory, tmp_path, version,
                                                            code):
    b = start(broker_factory, example(tmp_path, "tenant-isolation"))
    for user in ("nobody", None, "x@a/b"):
        r = RawClient(b, version)
        assert r.connect(username=user, expect_rc=None).reason == code, user
        r.expect_closed()


def test_tenant_will_stays_in_its_tenant(broker_factory, tmp_path):
    """Wills pass through on_publish as their client's message: prefixed like any publish."""
    b = start(broker_factory, example(tmp_path, "tenant-isolation"))
    carol = Client(b, protocol=MQTTv5, username="carol@acme")
    bob = Client(b, protocol=MQTTv311, username="bob@globex")
    carol.subscribe("status/+", 1)
    bob.subscribe("status/+", 1)
    alice = Client(b, protocol=MQTTv311, username="alice@acme",
                   will={"topic": "status/alice", "payload": b"gone", "qos": 1})
    alice.drop()
    m = carol.expect_one()
    assert (m.topic, m.payload) == ("status/alice", b"gone")
    bob.expect_none(0.5)


def test_tenant_subscriptions_rewrite_unsubscribe_share_and_sys(broker_factory, tmp_path):
    b = start(broker_factory, example(tmp_path, "tenant-isolation"))
    carol = Client(b, protocol=MQTTv5, username="carol@acme")
    assert carol.subscribe("$SYS/#", 0) == [0x87]
    assert carol.subscribe("$share/g/jobs/+", 1) == [1]
    alice = Client(b, protocol=MQTTv311, username="alice@acme")
    alice.publish("jobs/1", b"j", qos=1)
    assert carol.expect_one().topic == "jobs/1"
    # the rewritten subscription is remembered under the filter the client sent
    carol.subscribe("alerts/#", 1)
    alice.publish("alerts/x", b"a", qos=1)
    assert carol.expect_one().topic == "alerts/x"
    carol.unsubscribe("alerts/#")
    alice.publish("alerts/x", b"b", qos=1)
    carol.expect_none(0.5)


def test_rate_limit_refuses_past_the_limit_then_recovers(broker_factory, tmp_path):
    b = start(broker_factory, example(tmp_path, "rate-limit"))
    sub = Client(b, protocol=MQTTv5)
    sub.subscribe("meters/#", 1)
    r = RawClient(b, 5)
    r.connect(client_id=unique_id("meter"))
    t0 = time.monotonic()
    for i in range(1, 9):  # all at once: well inside the 2 s window
        r.publish("meters/1", str(i).encode(), qos=1, packet_id=i)
    acks = [r.expect(PUBACK) for _ in range(8)]
    assert time.monotonic() - t0 < 1.5, "too slow to test a 2 s window"
    assert [a.packet_id for a in acks] == list(range(1, 9))
    assert [a.reason for a in acks] == [0] * 5 + [0x97] * 3
    assert acks[5].props.get(P_REASON_STRING) == "at most 5 messages per 2 s"
    assert payloads(sub.expect(5)) == [b"1", b"2", b"3", b"4", b"5"]
    sub.expect_none(0.3)
    b.wait_log(r"over 5 messages per 2 s")
    # another client has its own budget
    other = v5_raw(b)
    assert puback(other, "meters/2", b"x", 1, 1) == (0, None)
    assert sub.expect_one().payload == b"x"
    # the window ends with the key's TTL
    time.sleep(max(0.0, t0 + 2.3 - time.monotonic()))
    assert puback(r, "meters/1", b"again", 1, 20) == (0, None)
    assert sub.expect_one().payload == b"again"


def test_rate_limit_drops_silently_for_311(broker_factory, tmp_path):
    b = start(broker_factory, example(tmp_path, "rate-limit"))
    sub = Client(b, protocol=MQTTv311)
    sub.subscribe("meters/#", 1)
    pub = Client(b, protocol=MQTTv311)
    infos = [pub.publish("meters/1", str(i).encode(), qos=1, wait=False) for i in range(7)]
    for info in infos:  # every one is acknowledged
        info.wait_for_publish(5)
        assert info.is_published()
    assert payloads(sub.expect(5)) == [b"0", b"1", b"2", b"3", b"4"]
    sub.expect_none(0.5)


def test_content_router_fans_out_by_severity(broker_factory, tmp_path):
    b = start(broker_factory, example(tmp_path, "content-router"))
    alerts = Client(b, protocol=MQTTv5)
    events = Client(b, protocol=MQTTv311)
    alerts.subscribe("alerts/#", 2)
    events.subscribe("events/#", 2)
    critical = b'{"severity":"critical","msg":"pressure"}'
    run_pub(b, "events/boiler", critical)
    m = alerts.expect_one()
    assert (m.topic, m.payload, m.qos) == ("alerts/critical", critical, 1)
    assert m.prop("UserProperty") == [("routed_from", "events/boiler")]
    m = events.expect_one()
    assert (m.topic, m.payload, m.qos) == ("events/boiler", critical, 0)
    info = b'{"severity":"info","msg":"closed"}'
    run_pub(b, "events/door", info, qos=1)
    assert events.expect_one().payload == info
    alerts.expect_none(0.3)
    run_pub(b, "events/door", "not json")
    assert events.expect_one().payload == b"not json"
    alerts.expect_none(0.3)


def msgpack_reading(device, temp):
    """{"id": device, "temp": temp} in MessagePack (fixmap, fixstr, float 64)."""
    d = device.encode()
    return (b"\x82\xa2id" + bytes([0xa0 | len(d)]) + d + b"\xa4temp\xcb" + struct.pack(">d", temp))


def test_msgpack_becomes_json(broker_factory, tmp_path):
    b = start(broker_factory, example(tmp_path, "msgpack-to-json"))
    sub = Client(b, protocol=MQTTv5)
    sub.subscribe("devices/#", 1)
    dev = Client(b, protocol=MQTTv311)
    dev.publish("devices/k1/msgpack", msgpack_reading("k1", 21.5), qos=1)
    m = sub.expect_one()
    assert m.topic == "devices/k1/json"
    assert json.loads(m.payload) == {"id": "k1", "temp": 21.5}
    assert m.prop("ContentType") == "application/json"
    assert m.prop("PayloadFormatIndicator") == 1
    # bytes that are not msgpack: refused with a reason (v5), never passed on
    r = v5_raw(b)
    code, text = puback(r, "devices/k2/msgpack", b"\x82\xa2id", 1, 1)
    assert code == 0x99 and text.startswith("not msgpack"), text
    sub.expect_none(0.3)


def test_msgpack_with_mosquitto_pub_stdin(broker_factory, tmp_path):
    """The shell pipeline in the rule's header comment."""
    b = start(broker_factory, example(tmp_path, "msgpack-to-json"))
    with MosquittoSub(b, "devices/+/json") as sub:
        cmd = (r"printf '\x82\xa2id\xa2k1\xa4temp\xcb\x40\x35\x80\x00\x00\x00\x00\x00' | "
               f"mosquitto_pub -h {b.host} -p {b.port} -t devices/k1/msgpack -s")
        subprocess.run(["bash", "-c", cmd], check=True, timeout=10)
        topic, payload = sub.wait_lines(1)[0].split(" ", 1)
    assert topic == "devices/k1/json" and json.loads(payload) == {"id": "k1", "temp": 21.5}


SENSOR, OTHER_SENSOR, DASHBOARD = "sensor-00beef", "sensor-c0ffee", "dashboard-ops"


@pytest.mark.parametrize("version,code", [(5, 0x85), (4, 2)], ids=["v5", "v311"])
def test_pcre_acl_refuses_unknown_client_ids(broker_factory, tmp_path, version, code):
    b = start(broker_factory, example(tmp_path, "pcre-acl"))
    for cid in ("laptop", "sensor-00BEEF", "sensor-00beef0", "dashboard-"):
        r = RawClient(b, version)
        ack = r.connect(client_id=cid, expect_rc=None)
        assert ack.reason == code, cid
        if version == 5:
            assert "client id must be" in ack.props.get(P_REASON_STRING, "")
        r.expect_closed()
    with pytest.raises(ConnectRefused):
        Client(b, client_id="laptop", protocol=MQTTv5)
    Client(b, client_id=SENSOR, protocol=MQTTv311).close()


def test_pcre_acl_publish_and_subscribe(broker_factory, tmp_path):
    b = start(broker_factory, example(tmp_path, "pcre-acl"))
    dash = Client(b, client_id=DASHBOARD, protocol=MQTTv5)
    assert dash.subscribe([("sensors/+/temperature", 1), ("#", 1), ("sensors/#", 1)]) == [
        1, 0x87, 1]
    sensor = RawClient(b, 5)
    sensor.connect(client_id=SENSOR)
    assert sensor.subscribe([("commands/00beef", 1), ("commands/c0ffee", 1),
                             ("sensors/#", 1)]).codes == [1, 0x87, 0x87]
    assert puback(sensor, "sensors/00beef/temperature", b"21", 1, 1) == (0, None)
    assert puback(sensor, "sensors/c0ffee/temperature", b"21", 1, 2) == (
        0x87, "may not publish to sensors/c0ffee/temperature")
    assert puback(sensor, "sensors/00beef/pressure", b"1013", 1, 3)[0] == 0x87
    m = dash.expect_one()
    assert (m.topic, m.payload) == ("sensors/00beef/temperature", b"21")
    dash.expect_none(0.3)
    # the dashboard may command a sensor; the sensor receives only its own commands
    dash.publish("commands/00beef", b"reboot", qos=1)
    dash.publish("commands/c0ffee", b"reboot", qos=1)
    p = sensor.expect(PUBLISH)
    assert (p.topic, p.payload) == ("commands/00beef", b"reboot")
    sensor.ack(PUBACK, p.packet_id)
    sensor.expect_nothing(0.3)
    # 3.1.1: SUBACK 0x80 for a refused filter; a refused publish is acknowledged and dropped
    old = Client(b, client_id=OTHER_SENSOR, protocol=MQTTv311)
    assert old.subscribe([("commands/c0ffee", 1), ("commands/00beef", 1)]) == [1, 0x80]
    old.publish("sensors/00beef/temperature", b"spoof", qos=1)
    old.publish("sensors/c0ffee/humidity", b"40", qos=1)
    m = dash.expect_one()
    assert (m.topic, m.payload) == ("sensors/c0ffee/humidity", b"40")


def test_pcre_acl_with_mosquitto_pub(broker_factory, tmp_path):
    """The commands in the rule's header comment."""
    b = start(broker_factory, example(tmp_path, "pcre-acl"))
    with MosquittoSub(b, "sensors/#", extra=["-i", DASHBOARD]) as sub:
        run_pub(b, "sensors/00beef/temperature", "21", extra=["-i", SENSOR])
        run_pub(b, "sensors/c0ffee/temperature", "22", extra=["-i", SENSOR])
        assert sub.wait_lines(1) == ["sensors/00beef/temperature 21"]
        cmd = ["mosquitto_pub", "-h", b.host, "-p", str(b.port), "-i", "laptop", "-t", "x",
               "-m", "1"]
        p = subprocess.run(cmd, capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
        assert p.returncode != 0
        assert "identifier rejected" in p.stderr.decode(), p.stderr
        time.sleep(0.3)
        assert sub.lines() == ["sensors/00beef/temperature 21"]


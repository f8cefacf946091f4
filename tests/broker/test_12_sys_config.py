"""$SYS figures (Mosquitto's names, published every sys_interval as retained messages of the
broker's own) and the config file / command line (shared CONFIG.md): unknown directives and bad
values are errors naming FILE:LINE, Mosquitto's unsupported directives are refused by name,
Debian's default mosquitto.conf loads, -p replaces the default listener's port, Mosquitto's and
tidemq's duration units.

Normative ids: "3.1.1 [MQTT-x]" for MQTT 3.1.1, "v5 [MQTT-x]" for MQTT 5.0.
"""
import re
import time
from pathlib import Path

import pytest

from helpers import (
    P_SESSION_EXPIRY, MQTTv311, MQTTv5, Client, ConnectRefused, RawClient, unique_id, unique_topic,
)
from helpers_limits import DirectBroker, SysWatcher, free_port, run_broker_once


@pytest.fixture
def closing():
    things = []
    yield things
    for t in reversed(things):
        try:
            t.close()
        except Exception:  # noqa: BLE001
            pass


def drain(client, duration):
    """Every message client receives within duration seconds."""
    got = []
    deadline = time.monotonic() + duration
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return got
        try:
            got.append(client.expect_one(left))
        except AssertionError:
            return got


# --------------------------------------------------------------------------------------------
# $SYS figures
# --------------------------------------------------------------------------------------------

def test_sys_version_and_uptime(broker, closing):
    """$SYS/broker/version names tidemq; $SYS/broker/uptime is "N seconds" and grows."""
    sysw = SysWatcher(broker)
    closing.append(sysw)
    v = sysw.wait("version")
    assert isinstance(v, str) and v.startswith("tidemq version "), v
    first = sysw.wait("uptime", lambda u: isinstance(u, str) and re.fullmatch(r"\d+ seconds", u))
    n0 = int(first.split()[0])
    later = sysw.wait("uptime", lambda u: int(u.split()[0]) >= n0 + 2, timeout=5)
    assert re.fullmatch(r"\d+ seconds", later)


def test_sys_figures_are_retained_and_republished_every_interval(broker, closing):
    """$SYS figures are retained: a new subscriber gets the current value at once with the retain
    flag [MQTT-3.3.1-9]; then a fresh value every sys_interval (1 s here), as live messages."""
    c = Client(broker)
    closing.append(c)
    t0 = time.monotonic()
    c.subscribe("$SYS/broker/uptime", 0)
    first = c.expect_one(2)
    assert first.retain, "the stored $SYS value is not sent as a retained message"
    assert time.monotonic() - t0 < 1.0, "the retained $SYS value did not come at once"
    times = []
    for _ in range(3):
        m = c.expect_one(3)
        assert not m.retain, "a live $SYS update must not carry the retain flag [MQTT-3.3.1-12]"
        times.append(time.monotonic())
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(0.5 <= g <= 1.7 for g in gaps), f"$SYS updates {gaps} apart, sys_interval is 1 s"


def test_sys_clients_connected_and_total_follow_clients(broker_factory, closing):
    """clients/connected counts connected clients and changes when one connects or leaves;
    clients/total also counts persistent sessions offline (clients/disconnected)."""
    b = broker_factory("")
    sysw = SysWatcher(b)
    closing.append(sysw)
    base = sysw.wait("clients/connected", lambda v: v >= 1)
    c = Client(b)
    sysw.wait("clients/connected", lambda v: v == base + 1, timeout=4)
    p = Client(b, unique_id("persist"), clean=False)
    sysw.wait("clients/connected", lambda v: v == base + 2, timeout=4)
    c.disconnect()
    p.disconnect()
    sysw.wait("clients/connected", lambda v: v == base, timeout=4)
    sysw.wait("clients/disconnected", lambda v: v == 1, timeout=4)
    total = sysw.wait("clients/total", lambda v: v == base + 1, timeout=4)
    assert total >= sysw.value("clients/connected")


def test_sys_publish_and_byte_counters(broker_factory, closing):
    """publish/messages/received counts PUBLISH packets received (exactly the 5 sent here);
    messages/received and messages/sent, bytes/received and bytes/sent grow with the traffic
    (bytes at least by the payloads)."""
    b = broker_factory("")
    sysw = SysWatcher(b)
    closing.append(sysw)
    time.sleep(1.2)
    r0 = sysw.wait("publish/messages/received")
    m0 = sysw.value("messages/received")
    s0 = sysw.value("messages/sent")
    br0 = sysw.value("bytes/received")
    bs0 = sysw.value("bytes/sent")
    topic = unique_topic("count")
    sub = Client(b)
    closing.append(sub)
    sub.subscribe(topic, 1)
    pub = Client(b)
    closing.append(pub)
    for i in range(5):
        pub.publish(topic, bytes(1000), qos=1)
    sub.expect(5)
    sysw.wait("publish/messages/received", lambda v: v >= r0 + 5, timeout=4)
    time.sleep(1.2)
    assert sysw.value("publish/messages/received") == r0 + 5
    assert sysw.value("messages/received") >= m0 + 5
    assert sysw.value("messages/sent") >= s0 + 5
    assert sysw.value("bytes/received") >= br0 + 5000
    assert sysw.value("bytes/sent") >= bs0 + 5000


def test_sys_messages_received_counts_packets_of_any_type(broker_factory, closing):
    """Mosquitto's meaning of $SYS/broker/messages/received and messages/sent (mosquitto(8)):
    "the total number of messages of any type" - PINGREQ/PINGRESP count, unlike
    publish/messages/received which counts PUBLISH only."""
    b = broker_factory("")
    sysw = SysWatcher(b)
    closing.append(sysw)
    time.sleep(1.2)
    r0 = sysw.wait("messages/received")
    p0 = sysw.value("publish/messages/received")
    with RawClient(b, 4) as raw:
        raw.connect()
        for _ in range(20):
            raw.send(b"\xc0\x00")
            raw.expect(13)
    time.sleep(2.2)
    assert sysw.value("publish/messages/received") == p0
    assert sysw.value("messages/received") >= r0 + 21, (
        f"messages/received went {r0} -> {sysw.value('messages/received')} after CONNECT + 20 "
        "PINGREQ: it counts PUBLISH only, Mosquitto's figure counts every packet type")


def test_sys_subscription_and_retained_counts(broker_factory, closing):
    """subscriptions/count and retained messages/count follow subscribes/unsubscribes and
    retained publishes/clears."""
    b = broker_factory("")
    sysw = SysWatcher(b)
    closing.append(sysw)
    time.sleep(1.2)
    s0 = sysw.wait("subscriptions/count")
    r0 = sysw.wait("retained messages/count")
    base = unique_topic("counts")
    c = Client(b)
    closing.append(c)
    c.subscribe([(f"{base}/a", 0), (f"{base}/b/#", 1)])
    sysw.wait("subscriptions/count", lambda v: v == s0 + 2, timeout=4)
    c.unsubscribe(f"{base}/a")
    sysw.wait("subscriptions/count", lambda v: v == s0 + 1, timeout=4)
    c.publish(f"{base}/r1", b"x", qos=1, retain=True)
    c.publish(f"{base}/r2", b"y", qos=1, retain=True)
    sysw.wait("retained messages/count", lambda v: v == r0 + 2, timeout=4)
    c.publish(f"{base}/r1", b"", qos=1, retain=True)
    sysw.wait("retained messages/count", lambda v: v == r0 + 1, timeout=4)


def test_sys_topics_are_not_matched_by_leading_wildcards(broker, closing):
    """3.1.1 / v5 [MQTT-4.7.2-1]: a filter starting with a wildcard does not match topics starting
    with '$': '#' and '+/broker/#' never deliver $SYS figures (over two sys intervals), while an
    explicit '$SYS/#' does; '#' still gets ordinary messages."""
    hash_all = Client(broker)
    plus = Client(broker)
    explicit = Client(broker)
    closing += [hash_all, plus, explicit]
    hash_all.subscribe("#", 0)
    plus.subscribe("+/broker/#", 0)
    explicit.subscribe("$SYS/#", 0)
    topic = unique_topic("plain")
    explicit.publish(topic, b"ordinary")
    got_hash = drain(hash_all, 2.5)
    got_plus = drain(plus, 0.1)
    got_explicit = drain(explicit, 0.1)
    assert [m for m in got_hash if m.topic.startswith("$")] == []
    assert [m for m in got_plus if m.topic.startswith("$")] == []
    assert any(m.topic == topic for m in got_hash), "'#' did not get an ordinary message"
    assert any(m.topic == "$SYS/broker/version" for m in got_explicit), "'$SYS/#' got no figures"


@pytest.mark.parametrize("proto", [MQTTv311, MQTTv5], ids=["v311", "v5"])
def test_clients_cannot_publish_to_sys(broker, closing, proto):
    """DESIGN.md "Identity is protected": clients cannot publish to $SYS/... - neither the live
    subscriber of $SYS/broker/version nor a later one (retained) ever sees the client's payload,
    and a made-up $SYS topic is not created; the client's connection keeps working."""
    watcher = Client(broker)
    closing.append(watcher)
    watcher.subscribe("$SYS/broker/version", 0)
    fake_topic = f"$SYS/fake/{unique_id('x')}"
    watcher.subscribe(fake_topic, 0)
    evil = Client(broker, protocol=proto)
    closing.append(evil)
    for qos in (0, 1):
        evil.publish("$SYS/broker/version", b"fake-version", qos=qos, retain=True)
        evil.publish(fake_topic, b"fake", qos=qos, retain=True)
    seen = drain(watcher, 2.3)
    assert not [m for m in seen if m.payload.startswith(b"fake")], seen
    later = Client(broker)
    closing.append(later)
    later.subscribe([("$SYS/broker/version", 0), (fake_topic, 0)])
    got = drain(later, 1.0)
    assert got and all(m.payload.startswith(b"tidemq version") for m in got), got
    # the client is still served
    t = unique_topic("after-sys")
    evil.subscribe(t, 1)
    evil.publish(t, b"ok", qos=1)
    assert evil.expect_one().payload == b"ok"


# --------------------------------------------------------------------------------------------
# config errors (the binary run directly)
# --------------------------------------------------------------------------------------------

def test_unknown_directive_exits_nonzero_naming_file_and_line():
    """CONFIG.md: a directive nobody knows is an error naming file, line and directive; the
    broker exits non-zero without serving."""
    rc, text, path = run_broker_once("allow_anonymous true\n# a comment\nlistener 0 127.0.0.1\n"
                                     "frobnicate_level 3\n")
    assert rc != 0, text
    assert f"{path}:4:" in text, text
    assert "frobnicate_level" in text, text
    assert "listening" not in text


def test_unknown_directive_in_an_included_file_names_that_file(tmp_path):
    """include_dir: an error in an included file names that file and its own line."""
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "a.conf").write_text("max_keepalive 100\n\nwhat_is_this 1\n")
    rc, text, _ = run_broker_once(f"listener 0 127.0.0.1\ninclude_dir {conf_d}\n",
                                  tmpdir=tmp_path)
    assert rc != 0, text
    assert f"{conf_d / 'a.conf'}:3:" in text, text
    assert "what_is_this" in text


BAD_VALUES = [
    ("max_keepalive abc", "max_keepalive", "integer"),
    ("max_keepalive 5", "max_keepalive", "integer"),
    ("max_packet_size 10Q", "max_packet_size", "size"),
    ("message_size_limit -1", "message_size_limit", "size"),
    ("connect_timeout 5x", "connect_timeout", "duration"),
    ("slow_consumer_timeout soon", "slow_consumer_timeout", "duration"),
    ("persistence maybe", "persistence", "true or false"),
    ("max_qos 3", "max_qos", "0, 1 or 2"),
    ("persistent_client_expiration 10s", "persistent_client_expiration", "h, d, w, m"),
    ("listener eighty", "listener", "port"),
    ("max_connections lots", "max_connections", "integer"),
    ("log_dest carrier_pigeon", "log_dest", "stdout"),
]


@pytest.mark.parametrize("line,directive,form", BAD_VALUES,
                         ids=["-".join(b[0].split()[:2]) for b in BAD_VALUES])
def test_bad_value_names_file_line_and_expected_form(line, directive, form):
    """CONFIG.md: a bad value names file:line, the directive and the expected form."""
    rc, text, path = run_broker_once(f"allow_anonymous true\nlistener 0 127.0.0.1\n{line}\n")
    assert rc != 0, text
    assert f"{path}:3:" in text, text
    assert directive in text, text
    assert "expected" in text and form in text, text


@pytest.mark.parametrize("line,name", [
    ("auth_plugin /usr/lib/mosquitto_auth.so", "auth_plugin"),
    ("connection my-bridge", "connection"),
    ("bridge_protocol_version mqttv311", "bridge_protocol_version"),
    ("psk_file /etc/mosquitto/psk", "psk_file"),
    ("use_username_as_clientid true", "use_username_as_clientid"),
])
def test_unsupported_mosquitto_directive_is_refused_by_name(line, name):
    """CONFIG.md: a Mosquitto directive tidemq does not implement is refused with "Mosquitto
    directive X is not supported by tidemq" and its file:line."""
    rc, text, path = run_broker_once(f"listener 0 127.0.0.1\n{line}\n")
    assert rc != 0, text
    assert f"{path}:2:" in text, text
    rx = rf"Mosquitto directive '?{re.escape(name)}'? is not supported by tidemq"
    assert re.search(rx, text), text


@pytest.mark.parametrize("line", ["slow_consumer_timeout 5m", "connect_timeout 1m"])
def test_tidemq_duration_refuses_bare_m(line):
    """CONFIG.md: tidemq's own durations take ms, s, min, h, d, w and refuse a bare 'm' (which is
    a month in Mosquitto's persistent_client_expiration); the message points at 'min'."""
    rc, text, path = run_broker_once(f"listener 0 127.0.0.1\n{line}\n")
    assert rc != 0, text
    assert f"{path}:2:" in text, text
    assert "min" in text, text


def test_tidemq_durations_accept_their_units(broker_factory):
    """500ms, 10s, 5min, 1h, 1d, 1w are accepted."""
    b = broker_factory("connect_timeout 500ms\nconnect_timeout 10s\nslow_consumer_timeout 5min\n"
                       "slow_consumer_timeout 1h\nslow_consumer_timeout 1d\n"
                       "slow_consumer_timeout 1w\n")
    Client(b).close()


def test_persistent_client_expiration_m_is_a_month(broker_factory):
    """CONFIG.md / Mosquitto: in persistent_client_expiration 'm' is a month (30 days). Accepted,
    and it caps a v5 client's session expiry: asking for ~3 years gets 2 x 30 days = 5184000 s in
    CONNACK's Session Expiry Interval (not 120 s)."""
    b = broker_factory("persistent_client_expiration 2m")
    with RawClient(b, 5) as raw:
        p = raw.connect(props=[(P_SESSION_EXPIRY, 100_000_000)])
        assert p.props.get(P_SESSION_EXPIRY) == 2 * 30 * 86400, p


@pytest.mark.parametrize("value,seconds", [("3h", 3 * 3600), ("2d", 2 * 86400), ("1w", 7 * 86400),
                                           ("1y", 365 * 86400)])
def test_persistent_client_expiration_units(broker_factory, value, seconds):
    """Mosquitto's h, d, w, y units of persistent_client_expiration."""
    b = broker_factory(f"persistent_client_expiration {value}")
    with RawClient(b, 5) as raw:
        p = raw.connect(props=[(P_SESSION_EXPIRY, 0xFFFFFFFE)])
        assert p.props.get(P_SESSION_EXPIRY) == seconds, p


def test_ignored_mosquitto_directives_start_with_a_warning(broker_factory):
    """CONFIG.md: Mosquitto directives with no meaning here (pid_file, user, autosave_interval)
    are accepted with a warning naming them."""
    b = broker_factory("pid_file /nonexistent/mosquitto.pid\nuser mosquitto\n"
                       "autosave_interval 1800\n")
    Client(b).close()
    log = b.log_text()
    for name in ("pid_file", "user", "autosave_interval"):
        assert re.search(rf"{name}'? has no meaning|{name}.*ignored", log), f"no warning for {name}"


DEBIAN_CONF = """\
# Place your local configuration in /etc/mosquitto/conf.d/
#
# A full description of the configuration file is at
# /usr/share/doc/mosquitto/examples/mosquitto.conf.example

pid_file /run/mosquitto/mosquitto.pid

persistence true
persistence_location /var/lib/mosquitto/

log_dest file /var/log/mosquitto/mosquitto.log

include_dir /etc/mosquitto/conf.d
"""


def test_debian_default_mosquitto_conf_loads(broker_factory, tmp_path, closing):
    """CONFIG.md: Debian's own default /etc/mosquitto/mosquitto.conf must load (its paths pointed
    into a temp dir; the fixture supplies the listener). The broker serves, logs to the file, and
    reads include_dir."""
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "README").write_text("Any files placed in this directory that have a .conf ending "
                                   "will be loaded as config files by the broker.\n")
    (conf_d / "local.conf").write_text("max_keepalive 120\n")
    persist = tmp_path / "lib"
    persist.mkdir()
    logfile = tmp_path / "mosquitto.log"
    text = (DEBIAN_CONF
            .replace("/run/mosquitto/mosquitto.pid", str(tmp_path / "mosquitto.pid"))
            .replace("/var/lib/mosquitto/", str(persist) + "/")
            .replace("/var/log/mosquitto/mosquitto.log", str(logfile))
            .replace("/etc/mosquitto/conf.d", str(conf_d)))
    shipped = Path("/etc/mosquitto/mosquitto.conf")
    if shipped.exists():  # the text above is Debian's, line for line
        assert [l for l in shipped.read_text().splitlines() if l.strip()] == \
            [l for l in DEBIAN_CONF.splitlines() if l.strip()], "Debian's default conf changed"
    b = broker_factory(text)
    c = Client(b)
    closing.append(c)
    t = unique_topic("debian")
    c.subscribe(t, 1)
    c.publish(t, b"hi", qos=1)
    assert c.expect_one().payload == b"hi"
    assert logfile.exists() and "listening" in logfile.read_text(), "log_dest file not written"
    # conf.d/local.conf was read: max_keepalive 120 refuses a 3.1.1 keepalive of 200
    with pytest.raises(ConnectRefused):
        Client(b, keepalive=200)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------

def test_dash_p_sets_the_port_without_a_config():
    """CONFIG.md: with no config file tidemq listens on 127.0.0.1 (anonymous, local only) and -p
    replaces the default listener's port."""
    port = free_port()
    d = DirectBroker(["-p", str(port), "-v"])
    try:
        ports = d.wait_listening()
        assert ports == [("127.0.0.1", port)], ports
        c = Client(d)
        t = unique_topic("dashp")
        c.subscribe(t, 0)
        c.publish(t, b"x")
        assert c.expect_one().payload == b"x"
        c.close()
    finally:
        problems = d.stop()
    assert not problems, f"{problems}\n{d.log_text()[-3000:]}"


def test_dash_p_replaces_the_port_directive():
    """CONFIG.md: -p replaces the port of the default listener made by Mosquitto's `port N`."""
    configured, wanted = free_port(), free_port()
    d = DirectBroker(["-p", str(wanted), "-v"],
                     config_text=f"port {configured}\nbind_address 127.0.0.1\n"
                                 "allow_anonymous true\n")
    try:
        ports = d.wait_listening()
        assert {p for _, p in ports} == {wanted}, f"listening on {ports}, -p said {wanted}"
        Client(d).close()
    finally:
        problems = d.stop()
    assert not problems, f"{problems}\n{d.log_text()[-3000:]}"


def test_dash_p_with_a_bad_port_exits_nonzero():
    """-p outside 1..65535 is an error."""
    for bad in ("0", "70000", "http"):
        rc, text, _ = run_broker_once(None, ["-p", bad])
        assert rc != 0, (bad, text)
        assert "-p" in text or "port" in text, text

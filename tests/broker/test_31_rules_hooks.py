"""The rule engine inside the broker (shared RULES-API.md, INTERFACES.md #1, #2, #4): every hook
through a real broker with real clients — on_connect (first opinion wins, else the password file;
attrs; 3.1.1 mapping), on_subscribe (refuse one filter, cap the QoS, rewrite remembered under the
client's filter, `true` exempt from the read ACL, several filters rewritten onto one),
on_publish (transform, reroute, fan-out, drop, refuse, abort, rule_max_payload, the ACL on what
comes out, QoS 2 duplicates, wills, retained),
on_deliver (per subscriber, retained and queued messages when they go out, frozen into the
inflight entry across a reload, QoS only lowered, topic kept inside the filter, shared groups),
on_disconnect reasons, tide.publish from hooks, init and timers, start-up and reload, and the
$SYS/broker/rules/... counters.

Rules are written by each test into its own directory (mode 0700, files 0600: the engine refuses
rule files others can write) and given with --rules. Events the rules see are reported back with
tide.publish to topics under ev/ that a test client subscribes to.
"""
import os
import re
import signal
import subprocess
import textwrap
import time

import pytest

from conftest import TIDEMQ_BIN
from helpers import (
    PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, MQTTv311, MQTTv5, P_REASON_STRING, Client,
    ConnectRefused, RawClient, sub_opts, unique_id,
)
from helpers_limits import DirectBroker, run_broker_once
from helpers_rules import start_with_rules as start, write_rules


ONE_LISTENER = "listener 0 127.0.0.1\n"


def events(b, topic="ev/#", protocol=MQTTv311):
    c = Client(b, protocol=protocol)
    c.subscribe(topic, 1)
    return c


def payloads(msgs):
    return [m.payload.decode() for m in msgs]


# ------------------------------------------------------------------------------------------
# start-up
# ------------------------------------------------------------------------------------------

def test_rules_load_before_the_listener_opens(broker_factory, tmp_path):
    """The bundle is loaded (and logged with its hash) before any `listening` line; the old
    'rules are not run by the broker yet' notice is gone."""
    b = start(broker_factory, tmp_path, {"10-a.lua": "return { on_publish = function() end }"})
    log = b.log_text()
    loaded = log.index("loaded from")
    assert loaded < log.index("listening address="), log
    assert "not run by the broker yet" not in log
    assert "rule=10-a calls=0" in log


def test_a_bundle_that_fails_at_start_stops_the_broker_with_file_and_line(tmp_path):
    d = tmp_path / "rules"
    write_rules(d, {"10-ok.lua": "return {}", "20-bad.lua": "return {\n  on_publish = function(\n}\n"})
    rc, text, _ = run_broker_once(ONE_LISTENER, ["-v", "--rules", str(d)], tmpdir=tmp_path)
    assert rc == 1, text
    # (Lua shortens a long chunk name, so look for the file's own name and line)
    assert "20-bad.lua:3:" in text, text
    assert "listening" not in text, text


def test_an_init_that_fails_at_start_stops_the_broker(tmp_path):
    d = tmp_path / "rules"
    write_rules(d, {"10-init.lua": "return { init = function() error('no database') end }"})
    rc, text, _ = run_broker_once(ONE_LISTENER, ["-v", "--rules", str(d)], tmpdir=tmp_path)
    assert rc == 1 and "no database" in text and "listening" not in text, text


def test_a_missing_configured_rules_dir_is_an_error(tmp_path):
    rc, text, _ = run_broker_once(ONE_LISTENER, ["--rules", str(tmp_path / "nope")],
                                  tmpdir=tmp_path)
    assert rc == 1 and "nope" in text, text


def test_a_missing_default_rules_dir_means_no_rules(broker_factory):
    b = broker_factory()  # runs in its own temp dir: no rules/ beside its config there
    assert re.search(r"rules directory \S*rules does not exist: no rules", b.log_text())
    with Client(b) as c:
        t = f"x/{unique_id()}"
        c.subscribe(t, 1)
        c.publish(t, b"plain", 1)
        assert c.expect_one().payload == b"plain"


def test_the_default_rules_dir_is_beside_the_config_file(tmp_path):
    conf_dir, elsewhere = tmp_path / "etc", tmp_path / "cwd"
    conf_dir.mkdir()
    elsewhere.mkdir()
    write_rules(conf_dir / "rules", {"10-mark.lua": """
        return { match = "mark/#", on_publish = function() return { payload = "marked" } end }
    """})
    (conf_dir / "tidemq.conf").write_text(ONE_LISTENER + "allow_anonymous true\n")
    b = DirectBroker(["-c", str(conf_dir / "tidemq.conf"), "-v"], cwd=elsewhere)
    try:
        b.wait_listening()
        with Client(b) as c:
            c.subscribe("mark/#", 0)
            c.publish("mark/x", b"plain", 0)
            assert c.expect_one().payload == b"marked"
    finally:
        assert b.stop() == []


# ------------------------------------------------------------------------------------------
# on_connect
# ------------------------------------------------------------------------------------------

CONNECT_RULES = {
    "10-gate.lua": """
        return {
          on_connect = function(conn)
            conn.attrs.tenant = "t-" .. conn.client_id
            conn.attrs.pw = conn.password or "-"
            if conn.client_id:find("^ban") then return false, "banned", "go away" end
            if conn.client_id:find("^busy") then return false, "server_busy" end
            if conn.client_id:find("^badpw") then return false, "bad_username_or_password" end
            if conn.client_id:find("^bare") then return false end
            if conn.username == "ruleuser" then return true end
          end,
        }
    """,
    "20-second.lua": """
        return {
          on_connect = function(conn)
            -- runs only when the first rule had no opinion
            if conn.client_id:find("^second") then return false, "not_authorized" end
          end,
          match = "whoami/#",
          on_publish = function(msg, client)
            return { payload = client.attrs.tenant .. "|" .. tostring(client.attrs.pw) .. "|" ..
                               tostring(client.password) }
          end,
        }
    """,
}


def test_on_connect_refusal_v5_carries_reason_code_and_text(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, CONNECT_RULES)
    r = RawClient(b, version=5)
    p = r.connect("ban-1", expect_rc=0x8A)
    assert p.props.get(P_REASON_STRING) == "go away"
    assert r.expect_closed() == []
    r = RawClient(b, version=5)
    r.connect("bare-1", expect_rc=0x87)  # false alone: not_authorized
    r = RawClient(b, version=5)
    r.connect("second-1", expect_rc=0x87)


@pytest.mark.parametrize("cid,rc", [("badpw-1", 4), ("busy-1", 3), ("ban-1", 5), ("bare-1", 5)])
def test_on_connect_refusal_311_return_codes(broker_factory, tmp_path, cid, rc):
    b = start(broker_factory, tmp_path, CONNECT_RULES)
    r = RawClient(b, version=4)
    r.connect(cid, expect_rc=rc)
    r.expect_closed()


def test_on_connect_attrs_reach_later_hooks_and_the_password_only_on_connect(broker_factory,
                                                                             tmp_path):
    b = start(broker_factory, tmp_path, CONNECT_RULES)
    with Client(b, client_id="me-1", username="u", password="s3cret") as c:
        c.subscribe("whoami/#", 0)
        c.publish("whoami/x", b"?", 0)
        assert c.expect_one().payload == b"t-me-1|s3cret|nil"


def test_on_connect_not_called_on_disconnect_for_refused(broker_factory, tmp_path):
    rules = dict(CONNECT_RULES)
    rules["30-bye.lua"] = """
        return { on_disconnect = function(client, reason)
          tide.publish("ev/bye", client.client_id .. ":" .. reason) end }
    """
    b = start(broker_factory, tmp_path, rules)
    ev = events(b)
    r = RawClient(b, version=4)
    r.connect("ban-2", expect_rc=5)
    r.expect_closed()
    ev.expect_none(0.5)


@pytest.fixture
def pwfile(tmp_path):
    path = tmp_path / "passwd"
    cp = subprocess.run([TIDEMQ_BIN, "passwd", "-c", "-b", "-I", "1000", str(path), "alice",
                         "right"], capture_output=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    return path


def test_rule_true_skips_the_password_file_and_nil_leaves_it_to_the_file(broker_factory,
                                                                        tmp_path, pwfile):
    b = start(broker_factory, tmp_path, CONNECT_RULES,
              f"allow_anonymous false\npassword_file {pwfile}")
    # a rule's `true`: in, whatever the password
    Client(b, username="ruleuser", password="anything").close()
    # nil from every rule: the password file (checked off the loop) decides
    Client(b, username="alice", password="right").close()
    with pytest.raises(ConnectRefused) as e:
        Client(b, username="alice", password="wrong")
    assert e.value.rc == 4  # 3.1.1 bad user name or password
    with pytest.raises(ConnectRefused) as e:
        Client(b, protocol=MQTTv5, username="alice", password="wrong")
    assert e.value.rc == 0x86
    with pytest.raises(ConnectRefused):
        Client(b)  # anonymous: not allowed, no rule said true


# ------------------------------------------------------------------------------------------
# on_subscribe
# ------------------------------------------------------------------------------------------

SUB_RULES = {
    "10-subs.lua": """
        return {
          on_subscribe = function(sub, client)
            if sub.filter == "secret/#" then return false, "not_authorized", "no secrets" end
            if sub.filter == "weird/#" then return false, "quota_exceeded" end
            if sub.filter == "capped/#" then return 0 end
            if sub.filter == "alias/#" then return { filter = "real/" .. client.client_id .. "/#" } end
            if sub.filter == "grouped/#" then return { share = "g1" } end
            if sub.filter == "granted/#" then return true end
          end,
        }
    """,
}


def test_on_subscribe_refuses_one_filter_with_its_reason(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, SUB_RULES)
    r = RawClient(b, version=5)
    r.connect()
    p = r.subscribe([("secret/#", 1), ("open/#", 1), ("weird/#", 1)])
    assert p.codes == [0x87, 1, 0x97]
    assert p.props.get(P_REASON_STRING) == "no secrets"
    with Client(b, protocol=MQTTv311) as c:
        assert c.subscribe([("secret/#", 1), ("open/#", 1)]) == [0x80, 1]


def test_on_subscribe_number_grants_at_most_that_qos(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, SUB_RULES)
    with Client(b) as c:
        assert c.subscribe("capped/#", 2) == [0]
        c.publish("capped/a", b"x", 1)
        assert c.expect_one().qos == 0


def test_on_subscribe_rewrite_is_subscribed_and_unsubscribed_under_the_clients_filter(
        broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, SUB_RULES)
    with Client(b, client_id="rw1", protocol=MQTTv5) as c, Client(b) as pub:
        assert c.subscribe("alias/#", 1) == [1]
        pub.publish("alias/x", b"not-this", 1)
        pub.publish("real/rw1/x", b"this", 1)
        got = c.expect_one()
        assert (got.topic, got.payload) == ("real/rw1/x", b"this")
        c.expect_none(0.3)
        assert c.unsubscribe("alias/#") == [0]
        pub.publish("real/rw1/x", b"after", 1)
        c.expect_none(0.5)


def test_on_subscribe_rewrite_into_a_shared_group(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, SUB_RULES)
    with Client(b) as a, Client(b) as c2, Client(b) as pub:
        a.subscribe("grouped/#", 1)
        c2.subscribe("grouped/#", 1)
        for i in range(4):
            pub.publish("grouped/t", str(i).encode(), 1)
        total = []
        deadline = time.monotonic() + 5
        while len(total) < 4 and time.monotonic() < deadline:
            for c in (a, c2):
                try:
                    total.append(c.messages.get(timeout=0.05))
                except Exception:  # noqa: BLE001 - queue.Empty
                    pass
        # a group: each message once, not once per subscriber
        assert sorted(payloads(total)) == ["0", "1", "2", "3"]
        a.expect_none(0.3)
        c2.expect_none(0.1)


def test_on_subscribe_true_grants_without_the_acl_and_delivers_past_the_read_acl(
        broker_factory, tmp_path):
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite open/#\ntopic write granted/#\n")
    b = start(broker_factory, tmp_path, SUB_RULES, f"acl_file {acl}")
    with Client(b) as c, Client(b) as pub:
        # the ACL file alone refuses a filter nobody may read
        assert c.subscribe("denied/#", 1) == [0x80]
        assert c.subscribe("granted/#", 1) == [1]
        pub.publish("granted/a", b"through", 1)
        assert c.expect_one().payload == b"through"
        # the exemption is the subscription's: an ACL-checked one still is checked
        assert c.subscribe("open/#", 1) == [1]
        pub.publish("open/a", b"open", 1)
        assert c.expect_one().payload == b"open"


# Several of one client's filters a rule rewrites onto one filter share one routing entry: it
# lives while any of them does and carries what all of them ask (delivered once, highest QoS, No
# Local only if all ask, the `true` exemption only through a granted one).
MERGE_RULES = {
    "10-merge.lua": """
        return {
          on_subscribe = function(sub, client)
            local f = sub.filter
            if f == "one/#" or f == "two/#" then return { filter = "merged/#" } end
            if sub.filter == "onto/#" then return { filter = "direct/#" } end
            if sub.filter == "via/#" then return { filter = "gift/#" } end
            if sub.filter == "gift/#" then return true end
          end,
        }
    """,
}


def test_two_filters_rewritten_onto_one_both_keep_it_and_get_each_message_once(
        broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, MERGE_RULES)
    with Client(b, client_id="mrg", protocol=MQTTv5) as c, Client(b) as pub:
        assert c.subscribe("two/#", 1) == [1]
        assert c.subscribe("one/#", 0) == [0]
        pub.publish("merged/a", b"both", 1)
        got = c.expect_one()
        assert (got.payload, got.qos) == (b"both", 1)  # once, at the higher QoS
        c.expect_none(0.3)
        assert c.unsubscribe("two/#") == [0]
        pub.publish("merged/b", b"one-left", 1)
        got = c.expect_one()
        assert (got.payload, got.qos) == (b"one-left", 0)  # what is left asks for QoS 0
        c.expect_none(0.3)
        assert c.unsubscribe("one/#") == [0]
        pub.publish("merged/c", b"none-left", 1)
        c.expect_none(0.5)
        # No Local is kept only while every mapping asks for it
        c.subscribe("one/#", options=sub_opts(1, no_local=True))
        c.subscribe("two/#", options=sub_opts(1))
        c.publish("merged/own", b"own", 1)
        assert c.expect_one().payload == b"own"
        assert c.unsubscribe("two/#") == [0]
        c.publish("merged/own", b"own-again", 1)
        pub.publish("merged/other", b"other", 1)
        assert c.expect_one().payload == b"other"
        c.expect_none(0.3)


def test_unsubscribing_a_filter_rewritten_onto_a_direct_one_keeps_the_direct_one(
        broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, MERGE_RULES)
    with Client(b, client_id="drc", protocol=MQTTv5) as c, Client(b) as pub:
        assert c.subscribe("direct/#", 1) == [1]
        assert c.subscribe("onto/#", 1) == [1]
        pub.publish("direct/a", b"a", 1)
        assert c.expect_one().payload == b"a"
        c.expect_none(0.3)
        assert c.unsubscribe("onto/#") == [0]
        pub.publish("direct/b", b"b", 1)
        assert c.expect_one().payload == b"b"
        c.expect_none(0.3)
        # and the other way round: the rewritten one outlives the direct one
        assert c.subscribe("onto/#", 1) == [1]
        assert c.unsubscribe("direct/#") == [0]
        pub.publish("direct/c", b"c", 1)
        assert c.expect_one().payload == b"c"
        assert c.unsubscribe("onto/#") == [0]
        pub.publish("direct/d", b"d", 1)
        c.expect_none(0.5)


def test_the_rule_grant_does_not_outlive_its_subscription_on_a_shared_filter(
        broker_factory, tmp_path):
    # gift/# is granted by `true`; via/# is rewritten onto gift/# and checked by the ACL file,
    # which lets it read gift/ok/ only
    acl = tmp_path / "acl"
    acl.write_text("topic read gift/ok/#\ntopic write gift/#\n")
    b = start(broker_factory, tmp_path, MERGE_RULES, f"acl_file {acl}")
    with Client(b, client_id="gft", protocol=MQTTv5) as c, Client(b) as pub:
        assert c.subscribe("via/#", 1) == [1]
        pub.publish("gift/no/a", b"denied-alone", 1)
        pub.publish("gift/ok/a", b"ok-alone", 1)
        assert c.expect_one().payload == b"ok-alone"
        c.expect_none(0.3)
        # the granted subscription delivers past the read ACL, once, while it exists ...
        assert c.subscribe("gift/#", 1) == [1]
        pub.publish("gift/no/b", b"granted", 1)
        assert c.expect_one().payload == b"granted"
        c.expect_none(0.3)
        # ... and its exemption leaves with it: via/# is ACL-checked again
        assert c.unsubscribe("gift/#") == [0]
        pub.publish("gift/no/c", b"denied-again", 1)
        pub.publish("gift/ok/c", b"ok-again", 1)
        assert c.expect_one().payload == b"ok-again"
        c.expect_none(0.3)
        # a granted subscription keeps its exemption when an ACL-checked one joins it
        assert c.subscribe("gift/#", 1) == [1]
        assert c.subscribe("via/#", 1) == [1]
        assert c.unsubscribe("via/#") == [0]
        pub.publish("gift/no/d", b"still-granted", 1)
        assert c.expect_one().payload == b"still-granted"
        c.expect_none(0.3)


# ------------------------------------------------------------------------------------------
# on_publish
# ------------------------------------------------------------------------------------------

PUB_RULES = {
    "10-pub.lua": """
        return {
          match = { "in/#", "ask/#", "big/#", "boom/#", "fan/#", "void/#", "move/#", "ret/#",
                    "dup/#", "will/#", "forbid/#" },
          on_publish = function(msg, client)
            local t = msg.topic
            if t == "in/c" then
              local c = tonumber(msg.payload)
              if not c then return false end
              return { topic = "out/f", payload = tostring(c * 9 / 5 + 32) }
            end
            if t:find("^ask/") then return false, "quota_exceeded", "ask later" end
            if t:find("^void/") then return false end
            if t:find("^boom/") then error("kaput") end
            if t:find("^fan/") then
              return { { topic = "out/1" }, { topic = "out/2", payload = "two" }, { topic = "forbid/x" } }
            end
            if t:find("^move/") then return { topic = "forbid/" .. t } end
            if t:find("^ret/") then return { payload = "R:" .. msg.payload } end
            if t:find("^dup/") then
              tide.publish("ev/dup", tostring(tide.store.incr("dups")))
            end
            if t:find("^will/") then return { topic = "out/will", payload = "W:" .. msg.payload } end
          end,
        }
    """,
}

PUB_ACL = "topic readwrite in/#\ntopic readwrite out/#\ntopic readwrite ask/#\n" \
          "topic readwrite void/#\ntopic readwrite boom/#\ntopic readwrite fan/#\n" \
          "topic readwrite move/#\ntopic readwrite ret/#\ntopic readwrite dup/#\n" \
          "topic readwrite will/#\ntopic read forbid/#\ntopic readwrite ev/#\ntopic read big/#\n" \
          "topic readwrite plain/#\n"


@pytest.fixture
def pubb(broker_factory, tmp_path):
    acl = tmp_path / "acl"
    acl.write_text(PUB_ACL)
    return start(broker_factory, tmp_path, PUB_RULES, f"acl_file {acl}\nrule_max_payload 1000")


def acked(r, topic, payload, qos, pid, version=5):
    """Publishes with a raw client and returns the PUBACK / PUBREC."""
    r.publish(topic, payload, qos, packet_id=pid)
    p = r.expect(PUBACK if qos == 1 else PUBREC)
    assert p.packet_id == pid
    return p


def test_on_publish_transform_drop_and_reroute(pubb):
    with Client(pubb) as sub, Client(pubb) as pub:
        sub.subscribe([("out/#", 1), ("in/#", 1)])
        pub.publish("in/c", b"100", 1)
        got = sub.expect_one()
        assert (got.topic, got.payload) == ("out/f", b"212")
        pub.publish("in/c", b"garbage", 1)  # dropped: acknowledged, routed nowhere
        sub.expect_none(0.5)


def test_on_publish_answers_v5_reason_codes(pubb):
    r = RawClient(pubb, version=5)
    r.connect()
    p = acked(r, "ask/x", b"?", 1, 1)
    assert p.reason == 0x97 and p.props.get(P_REASON_STRING) == "ask later"
    assert acked(r, "void/x", b"?", 1, 2).reason == 0          # a drop: success
    assert acked(r, "boom/x", b"?", 1, 3).reason == 0x80       # aborted, on_error drop
    assert acked(r, "boom/x", b"?", 2, 4).reason == 0x80
    p = acked(r, "big/x", b"x" * 1001, 1, 5)                   # rule_max_payload
    assert p.reason == 0x97 and "rule_max_payload" in p.props.get(P_REASON_STRING, "")
    assert acked(r, "move/x", b"?", 1, 6).reason == 0x87       # the only output is not writable
    # a topic no rule matches: the plain path, unchanged
    assert acked(r, "plain/x", b"?", 1, 7).reason == 0


def test_on_publish_refusal_311_is_acknowledged_and_dropped(pubb):
    with Client(pubb) as sub:
        sub.subscribe("ask/#", 1)
        r = RawClient(pubb, version=4)
        r.connect()
        assert acked(r, "ask/x", b"?", 1, 1, version=4).reason == 0
        sub.expect_none(0.5)


def test_on_publish_fan_out_each_output_needs_write_permission(pubb):
    with Client(pubb) as sub, Client(pubb) as pub:
        sub.subscribe([("out/#", 1), ("forbid/#", 1)])
        pub.publish("fan/a", b"one", 1)
        got = sorted((m.topic, m.payload) for m in sub.expect(2))
        assert got == [("out/1", b"one"), ("out/2", b"two")]
        sub.expect_none(0.5)  # forbid/x: the publisher may not write there


def test_on_publish_retained_output_is_what_is_stored(pubb):
    with Client(pubb) as pub:
        pub.publish("ret/a", b"x", 1, retain=True)
    with Client(pubb) as late:
        late.subscribe("ret/#", 1)
        got = late.expect_one()
        assert (got.payload, got.retain) == (b"R:x", True)


def test_on_publish_runs_once_per_qos2_message_despite_duplicates(pubb):
    ev = events(pubb)
    r = RawClient(pubb, version=5)
    r.connect()
    for dup in (False, True, True):
        r.publish("dup/x", b"d", 2, dup=dup, packet_id=9)
        assert r.expect(PUBREC).packet_id == 9
    r.ack(PUBREL, 9)
    assert r.expect(PUBCOMP).packet_id == 9
    assert payloads(ev.expect(1)) == ["1"]
    ev.expect_none(0.5)
    # the packet id is free again: a new message runs the rules again
    r.publish("dup/x", b"d", 2, packet_id=9)
    r.expect(PUBREC)
    assert payloads(ev.expect(1)) == ["2"]


def test_wills_pass_through_on_publish(pubb):
    with Client(pubb) as sub:
        sub.subscribe("out/#", 1)
        c = Client(pubb, will={"topic": "will/me", "payload": b"gone", "qos": 1})
        c.drop()
        got = sub.expect_one()
        assert (got.topic, got.payload) == ("out/will", b"W:gone")


# ------------------------------------------------------------------------------------------
# on_deliver
# ------------------------------------------------------------------------------------------

DELIVER_RULES = {
    "10-deliver.lua": """
        return {
          match = { "d/#", "tenant/#", "sh/#" },
          on_subscribe = function(sub, client)
            -- a mount point made of rules: the tenant's prefix goes in on the way in ...
            if client.client_id:find("^ten") then return { filter = "tenant/acme/" .. sub.filter } end
          end,
          on_deliver = function(msg, client)
            local t = msg.topic
            tide.publish("ev/deliver", client.client_id .. ":" .. t)
            if t:find("^tenant/") then
              -- ... and comes off on the way out: the result must match the client's own filter
              return { topic = (t:gsub("^tenant/[^/]+/", "")) }
            end
            if t:find("^sh/") then
              if client.client_id:find("^no") then return false end
              return
            end
            if client.client_id:find("^skip") then return false end
            if t == "d/low" then return { qos = 0 } end
            if t == "d/high" then return { qos = 2 } end
            return { payload = msg.payload .. "@" .. client.client_id .. ":" .. VERSION }
          end,
        }
    """,
}


def deliver_rules(version):
    return {"10-deliver.lua": "VERSION = '" + version + "'\n"
            + textwrap.dedent(DELIVER_RULES["10-deliver.lua"])}


def test_on_deliver_changes_each_subscribers_copy(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, deliver_rules("v1"))
    with Client(b, client_id="s1") as s1, Client(b, client_id="skip1") as s2, \
            Client(b) as pub:
        s1.subscribe("d/#", 1)
        s2.subscribe("d/#", 1)
        pub.publish("d/x", b"m", 1)
        assert s1.expect_one().payload == b"m@s1:v1"
        s2.expect_none(0.5)


def test_on_deliver_qos_may_be_lowered_never_raised(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, deliver_rules("v1"))
    with Client(b, client_id="q1") as s, Client(b) as pub:
        s.subscribe("d/#", 1)
        pub.publish("d/low", b"m", 1)
        assert s.expect_one().qos == 0
        pub.publish("d/high", b"m", 1)  # raising is a rule error: on_error "drop"
        s.expect_none(0.5)
        assert "may only be lowered" in b.log_text()


def test_on_deliver_topic_change_must_match_the_filter(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, deliver_rules("v1"))
    with Client(b, client_id="ten1") as inside, Client(b, client_id="out1") as outside, \
            Client(b) as pub:
        inside.subscribe("a/#", 1)              # in the tree as tenant/acme/a/#
        outside.subscribe("tenant/acme/#", 1)   # "a/b" does not match it: a rule error, not sent
        pub.publish("tenant/acme/a/b", b"m", 1)
        got = inside.expect_one()
        assert (got.topic, got.payload) == ("a/b", b"m")
        outside.expect_none(0.5)
        assert "must match" in b.log_text() or "filter" in b.log_text()


def test_on_deliver_sees_retained_messages_on_subscribe(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, deliver_rules("v1"))
    with Client(b) as pub:
        pub.publish("d/r", b"kept", 1, retain=True)
    with Client(b, client_id="late") as s:
        s.subscribe("d/#", 1)
        got = s.expect_one()
        assert (got.payload, got.retain) == (b"kept@late:v1", True)


def test_on_deliver_runs_for_queued_messages_when_they_go_out(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, deliver_rules("v1"))
    ev = events(b)
    s = Client(b, client_id="off1", clean=False)
    s.subscribe("d/#", 1)
    s.disconnect()
    with Client(b) as pub:
        pub.publish("d/q", b"waiting", 1)
    ev.expect_none(0.5)  # queued for an offline client: not delivered, no on_deliver yet
    s = Client(b, client_id="off1", clean=False)
    assert s.expect_one().payload == b"waiting@off1:v1"
    assert payloads(ev.expect(1)) == ["off1:d/q"]
    s.close()


def test_on_deliver_result_is_frozen_into_the_inflight_entry_across_a_reload(broker_factory,
                                                                             tmp_path):
    b = start(broker_factory, tmp_path, deliver_rules("v1"))
    r = RawClient(b, version=4)
    r.connect("frozen1", clean=False)
    r.subscribe([("d/#", 1)])
    with Client(b) as pub:
        pub.publish("d/f", b"m", 1)
    p = r.expect(PUBLISH)
    assert p.payload == b"m@frozen1:v1"
    r.close()  # not acknowledged
    mark = b.mark()
    write_rules(b.rules_dir, deliver_rules("v2"))
    os.kill(b.pid, signal.SIGHUP)
    b.wait_log(r"bundle \w+ loaded", start=mark)
    r = RawClient(b, version=4)
    r.connect("frozen1", clean=False, expect_rc=0)
    p = r.expect(PUBLISH)
    assert p.dup and p.payload == b"m@frozen1:v1"
    r.ack(PUBACK, p.packet_id)
    with Client(b) as pub:  # a new message gets the new rule
        pub.publish("d/f", b"n", 1)
    assert r.expect(PUBLISH).payload == b"n@frozen1:v2"


def test_on_deliver_false_in_a_shared_group_passes_to_the_next_member(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, deliver_rules("v1"))
    with Client(b, client_id="no1") as refuser, Client(b, client_id="yes1") as taker, \
            Client(b) as pub:
        refuser.subscribe("$share/g/sh/#", 1)
        taker.subscribe("$share/g/sh/#", 1)
        for i in range(6):
            pub.publish("sh/t", str(i).encode(), 1)
        assert sorted(payloads(taker.expect(6))) == [str(i) for i in range(6)]
        refuser.expect_none(0.3)


# ------------------------------------------------------------------------------------------
# on_disconnect, tide.publish, timers
# ------------------------------------------------------------------------------------------

BYE_RULES = {
    "10-bye.lua": """
        return {
          on_connect = function(conn) conn.attrs.n = 7 end,
          on_disconnect = function(client, reason)
            tide.publish("ev/bye", client.client_id .. ":" .. reason .. ":" .. tostring(client.attrs.n))
          end,
        }
    """,
}


def test_on_disconnect_reasons(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, BYE_RULES)
    ev = events(b, "ev/bye")
    Client(b, client_id="n1").disconnect()
    assert payloads(ev.expect(1)) == ["n1:normal:7"]
    Client(b, client_id="w1", protocol=MQTTv5).disconnect(reasoncode=4)
    assert payloads(ev.expect(1)) == ["w1:will_requested:7"]
    Client(b, client_id="s1").drop()
    assert payloads(ev.expect(1)) == ["s1:socket_error:7"]
    first = Client(b, client_id="tk1")
    second = Client(b, client_id="tk1")
    assert payloads(ev.expect(1)) == ["tk1:session_taken_over:7"]
    second.close()
    first.close()
    assert payloads(ev.expect(1)) == ["tk1:normal:7"]
    r = RawClient(b, version=4)
    r.connect("ka1", keepalive=1)
    assert payloads(ev.expect(1, timeout=5)) == ["ka1:keepalive_timeout:7"]
    r = RawClient(b, version=4)
    r.connect("pe1")
    r.send(bytes([0x30, 0x02, 0x00, 0x05]))  # a topic length past the packet: malformed
    assert payloads(ev.expect(1)) == ["pe1:protocol_error:7"]


def test_on_disconnect_at_shutdown_says_server_shutdown(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, {"10-bye.lua": """
        return { on_disconnect = function(client, reason)
          tide.log.info("bye %s %s", client.client_id, reason) end }
    """})
    c = Client(b, client_id="last1")
    assert b.stop() == []
    c.wait_disconnected()
    assert "bye last1 server_shutdown" in b.log_text()


def test_tide_publish_from_init_hooks_and_timers(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, {
        "10-boot.lua": """
            return {
              init = function()
                tide.publish("boot/hello", "from init", { retain = true, qos = 1 })
              end,
              match = "hook/#",
              on_publish = function(msg)
                if msg.topic == "hook/later" then
                  tide.after(0.1, function() tide.publish("boot/later", "after") end)
                else
                  tide.publish("boot/echo", "saw " .. msg.topic)
                end
              end,
            }
        """,
        "20-later.lua": """
            return {
              match = "boot/echo",
              on_publish = function(msg) return { payload = msg.payload .. " (via 20-later)" } end,
            }
        """,
    })
    with Client(b) as c:
        c.subscribe("boot/#", 1)
        got = c.expect_one()  # published by init before the broker listened: retained
        assert (got.topic, got.payload, got.retain) == ("boot/hello", b"from init", True)
        c.publish("hook/x", b"", 0)
        got = c.expect_one()  # a hook's tide.publish goes through the other rules' on_publish
        assert (got.topic, got.payload) == ("boot/echo", b"saw hook/x (via 20-later)")
        c.publish("hook/later", b"", 0)
        got = c.expect_one()  # a timer's
        assert (got.topic, got.payload) == ("boot/later", b"after")


def test_timers_fire_in_the_broker(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, {
        "10-tick.lua": """
            return { init = function()
              local n = 0
              tide.every(0.05, function() n = n + 1; tide.publish("tick/n", tostring(n)) end)
            end }
        """,
    })
    with Client(b) as c:
        c.subscribe("tick/n", 0)
        got = [int(p) for p in payloads(c.expect(5, timeout=3))]
        assert got == sorted(got) and len(set(got)) == 5


def test_sink_send_says_no_such_sink(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, {
        "10-sink.lua": """
            return { match = "s/#", on_publish = function(msg)
              local ok, err = tide.sink("nowhere"):send(msg.payload)
              return { payload = tostring(ok) .. "," .. tostring(err) }
            end }
        """,
    })
    with Client(b) as c:
        c.subscribe("s/#", 0)
        c.publish("s/x", b"data", 0)
        assert c.expect_one().payload == b"nil,no_such_sink"


# ------------------------------------------------------------------------------------------
# reload
# ------------------------------------------------------------------------------------------

def relabel(label):
    return {"10-label.lua": f"""
        return {{ match = "lab/#", on_publish = function(msg)
          return {{ payload = "{label}" }} end }}
    """}


def probe(c, topic="lab/x"):
    c.publish(topic, b"?", 1)
    return c.expect_one().payload.decode()


def test_reload_on_rename_into_the_directory_within_a_second(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, relabel("one"))
    with Client(b) as c:
        c.subscribe("lab/#", 1)
        assert probe(c) == "one"
        tmp = b.rules_dir / ".10-label.lua.swp"
        tmp.write_text(textwrap.dedent(relabel("two")["10-label.lua"]))
        os.chmod(tmp, 0o600)
        t0 = time.monotonic()
        os.rename(tmp, b.rules_dir / "10-label.lua")  # the editor's way: write, then rename
        while probe(c) != "two":
            assert time.monotonic() - t0 < 1.5, "the change was not live within a second"
            time.sleep(0.05)
        # a broken edit keeps the running bundle and names file and line
        mark = b.mark()
        (b.rules_dir / "10-label.lua").write_text("return {\n  oops(\n")
        b.wait_log(r"10-label\.lua:\d+:", start=mark)
        b.wait_log(r"reload failed", start=mark)
        assert probe(c) == "two"
        # deleting the file unloads the rule (no client is disconnected)
        os.unlink(b.rules_dir / "10-label.lua")
        t0 = time.monotonic()
        while probe(c) != "?":
            assert time.monotonic() - t0 < 1.5
            time.sleep(0.05)
        assert c.connected.is_set()


def test_sighup_reloads_the_rules_and_logs_the_bundle(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, relabel("one"))
    with Client(b) as c:
        c.subscribe("lab/#", 1)
        assert probe(c) == "one"
        mark = b.mark()
        os.kill(b.pid, signal.SIGHUP)
        b.wait_log(r"SIGHUP: reloading", start=mark)
        b.wait_log(r"bundle [0-9a-f]{64} loaded from .*: 1 rule", start=mark)
        b.wait_log(r"rule=10-label calls=1 ", start=mark)
        assert probe(c) == "one"


# ------------------------------------------------------------------------------------------
# $SYS
# ------------------------------------------------------------------------------------------

def sys_values(c, wanted, timeout=5.0):
    """Collects retained/live $SYS/broker/rules values until every topic in wanted matches."""
    seen = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            m = c.messages.get(timeout=0.1)
        except Exception:  # noqa: BLE001 - queue.Empty
            continue
        seen[m.topic] = m.payload.decode()
        if all(seen.get(t) == v for t, v in wanted.items()):
            return seen
    raise AssertionError(f"wanted {wanted}, last seen {seen}")


def test_sys_rule_counters(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, {
        "10-count.lua": """
            return { match = "cnt/#", on_publish = function(msg)
              if msg.payload == "drop" then return false end
              if msg.payload == "no" then return false, "not_authorized" end
              if msg.payload == "err" then error("counted failure") end
            end }
        """,
        "20-quiet.lua": "return { on_subscribe = function() end }",
    })
    bundle = b.wait_log(r"bundle ([0-9a-f]{64}) loaded").group(1)
    with Client(b) as pub:
        for p in (b"ok", b"ok", b"drop", b"no", b"err"):
            pub.publish("cnt/x", p, 1)
    with Client(b) as c:
        c.subscribe("$SYS/broker/rules/#", 0)
        seen = sys_values(c, {
            "$SYS/broker/rules/count": "2",
            "$SYS/broker/rules/bundle": bundle,
            "$SYS/broker/rules/10-count/calls": "5",
            "$SYS/broker/rules/10-count/errors": "1",
            "$SYS/broker/rules/10-count/drops": "2",     # the drop and the aborted call
            "$SYS/broker/rules/10-count/refusals": "1",
            "$SYS/broker/rules/10-count/timeouts": "0",
            "$SYS/broker/rules/20-quiet/calls": "1",     # this client's own SUBSCRIBE
        })
        assert "counted failure" in seen["$SYS/broker/rules/10-count/last_error"]
        assert float(seen["$SYS/broker/rules/10-count/mean_us"]) > 0
        assert float(seen["$SYS/broker/rules/10-count/max_us"]) >= \
            float(seen["$SYS/broker/rules/10-count/mean_us"])
        # a rule that goes away takes its figures with it
        os.unlink(b.rules_dir / "20-quiet.lua")
        sys_values(c, {"$SYS/broker/rules/count": "1", "$SYS/broker/rules/20-quiet/calls": ""})
    with Client(b) as late:
        late.subscribe("$SYS/broker/rules/20-quiet/#", 0)
        late.expect_none(0.5)  # nothing retained any more

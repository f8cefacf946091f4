"""tide.every / tide.after / tide.cancel through a real broker, where timers are libevent events
(RULES-API.md "The API", "Reload"): a callback that cancels its own timer, or another timer due in
the same loop turn, or is cancelled from the tide.publish chain its own callback started; a stale
id that must not cancel a newer timer; callbacks that raise or run out of time; and reloads and
unloads while many short timers are firing. The broker runs under ASan in the suite: the fixture
fails a test whose broker printed a sanitizer report or did not exit cleanly, so a use after free
on any of these paths fails here even when the messages look right.
"""
import os
import signal
import time

import pytest

from helpers import Client
from helpers_rules import start_with_rules as start, write_rules


def reload(b, rules=None, remove=()):
    """Rewrites/removes rule files, sends SIGHUP and waits for the new bundle."""
    mark = b.mark()
    if rules:
        write_rules(b.rules_dir, rules)
    for name in remove:
        os.unlink(b.rules_dir / name)
    os.kill(b.pid, signal.SIGHUP)
    b.wait_log(r"bundle \S+ loaded from", start=mark)


def payloads(msgs):
    return [m.payload.decode() for m in msgs]


def drain(c, settle=0.3):
    """Drops what c received so far, after settle seconds for what is still on the way."""
    time.sleep(settle)
    while not c.messages.empty():
        c.messages.get_nowait()


def events(b, topic="ev/#"):
    c = Client(b)
    c.subscribe(topic, 1)
    return c


def test_a_one_shot_cancelling_itself_and_a_stale_id(broker_factory, tmp_path):
    """Inside its callback a one-shot is already done: tide.cancel(its id) is false. A timer the
    callback makes gets a new id, and the old id cancels nothing, then or later."""
    b = start(broker_factory, tmp_path, {"10-t.lua": """
        local first, second
        return { match = "go/#", on_publish = function(msg)
          first = tide.after(0.02, function()
            tide.publish("ev/self", tostring(tide.cancel(first)))
            second = tide.after(0.2, function() tide.publish("ev/second", "fired") end)
            tide.publish("ev/same", tostring(second == first))
          end)
          return false
        end }
    """})
    ev = events(b)
    with Client(b) as c:
        c.publish("go/1", b"", 0)
        got = {m.topic: m.payload.decode() for m in ev.expect(2)}
        assert got == {"ev/self": "false", "ev/same": "false"}
        assert [(m.topic, m.payload) for m in ev.expect(1)] == [("ev/second", b"fired")]
        ev.expect_none(0.3)


def test_a_per_client_timer_id_kept_after_it_fired_cancels_nothing(broker_factory, tmp_path):
    """A common pattern: a timer per client, cancelled on disconnect without being forgotten when
    it fired. The fired timer's id must not have been handed to another client's timer."""
    b = start(broker_factory, tmp_path, {"10-t.lua": """
        local timers = {}
        return {
          on_connect = function(conn)
            local id = conn.client_id
            if id:sub(1, 2) ~= "t-" then return end
            local delay = id == "t-a" and 0.02 or 0.5
            timers[id] = tide.after(delay, function() tide.publish("ev/fired", id) end)
          end,
          on_disconnect = function(client)
            local t = timers[client.client_id]
            if t then tide.publish("ev/cancel", client.client_id .. ":" .. tostring(tide.cancel(t))) end
          end,
        }
    """})
    ev = events(b)
    a = Client(b, client_id="t-a")
    assert payloads(ev.expect(1)) == ["t-a"]
    c = Client(b, client_id="t-b")
    a.disconnect()
    assert payloads(ev.expect(1)) == ["t-a:false"]
    assert payloads(ev.expect(1, timeout=3)) == ["t-b"]  # not cancelled by t-a's stale id
    c.disconnect()
    assert payloads(ev.expect(1)) == ["t-b:false"]


def test_a_repeating_timer_cancelling_itself(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, {"10-t.lua": """
        local id, n = nil, 0
        return { match = "go/#", on_publish = function()
          id = tide.every(0.02, function()
            n = n + 1
            tide.publish("ev/tick", tostring(n))
            if n == 3 then
              tide.publish("ev/cancel", tostring(tide.cancel(id)))
              tide.publish("ev/again", tostring(tide.cancel(id)))
            end
          end)
          return false
        end }
    """})
    ev = events(b)
    ev.publish("go/1", b"", 0)
    got = [(m.topic, m.payload.decode()) for m in ev.expect(5, timeout=5)]
    assert got == [("ev/tick", "1"), ("ev/tick", "2"), ("ev/tick", "3"), ("ev/cancel", "true"),
                   ("ev/again", "false")]
    ev.expect_none(0.3)


PAIRS = 20


def pair_rules(first, second):
    """PAIRS pairs of timers armed back to back with the same delay, so each pair is due in the
    same loop turn; whichever fires first cancels its partner."""
    return {"10-pairs.lua": f"""
        return {{ match = "go/#", on_publish = function()
          for i = 1, {PAIRS} do
            local a, b
            a = tide.{first}(0.05, function()
              tide.publish("ev/pair", tostring(i))
              if b then tide.cancel(b); b = nil end
              if a then tide.cancel(a); a = nil end
            end)
            b = tide.{second}(0.05, function()
              tide.publish("ev/pair", tostring(i))
              if a then tide.cancel(a); a = nil end
              if b then tide.cancel(b); b = nil end
            end)
          end
          return false
        end }}
    """}


@pytest.mark.parametrize("first,second", [("after", "after"), ("every", "every"),
                                          ("after", "every")])
def test_a_callback_cancelling_a_timer_due_in_the_same_turn(broker_factory, tmp_path, first,
                                                            second):
    b = start(broker_factory, tmp_path, pair_rules(first, second))
    ev = events(b)
    ev.publish("go/1", b"", 0)
    got = sorted(int(p) for p in payloads(ev.expect(PAIRS, timeout=5)))
    assert got == list(range(1, PAIRS + 1)), got
    ev.expect_none(0.3)


def test_a_timer_cancelled_by_the_publish_chain_its_callback_started(broker_factory, tmp_path):
    """The callback's tide.publish runs through 20-echo, whose tide.publish comes back to
    10-t's on_publish, which cancels the repeating timer still firing."""
    b = start(broker_factory, tmp_path, {
        "10-t.lua": """
            local id
            return { match = {"back/#", "go/#"},
              on_publish = function(msg)
                if msg.topic == "go/1" then
                  id = tide.every(0.02, function() tide.publish("ping/x", "p") end)
                else
                  tide.publish("ev/cancel", tostring(tide.cancel(id)))
                end
                return false
              end }
        """,
        "20-echo.lua": """
            return { match = "ping/#", on_publish = function()
              tide.publish("back/x", "p"); tide.publish("ev/ping", "p"); return false end }
        """,
    })
    ev = events(b)
    ev.publish("go/1", b"", 0)
    got = sorted((m.topic, m.payload.decode()) for m in ev.expect(2, timeout=5))
    assert got == [("ev/cancel", "true"), ("ev/ping", "p")]
    ev.expect_none(0.3)


FAULTY = {"10-faulty.lua": """
    return { init = function()
      tide.every(0.01, function() error("boom") end)
      tide.after(0.01, function() error("once") end)
      tide.every(0.05, function() while true do end end)
      tide.after(0.02, function() while true do end end)
      tide.every(0.01, function() tide.publish("ev/alive", "1") end)
    end }
"""}


def test_timers_that_raise_or_time_out_then_reload_and_unload(broker_factory, tmp_path):
    """Aborted callbacks are logged and counted; the repeating ones keep their schedule; the
    rule is then replaced and removed while its timers keep firing."""
    b = start(broker_factory, tmp_path, FAULTY)
    b.wait_log(r"10-faulty: timer aborted: .*boom")
    b.wait_log(r"10-faulty: timer aborted: timeout")
    ev = events(b)
    assert ev.expect(3, timeout=5)  # still firing
    for i in range(5):
        changed = dict(FAULTY)
        changed["10-faulty.lua"] = FAULTY["10-faulty.lua"] + f"\n-- version {i}\n"
        reload(b, changed)
    reload(b, remove=["10-faulty.lua"])
    drain(ev)  # what was routed before the unload
    ev.expect_none(0.5)  # unloaded: its timers are gone
    with Client(b) as c:  # the broker is alive and routes
        c.subscribe("x/#", 0)
        c.publish("x/1", b"ok", 0)
        assert c.expect_one().payload == b"ok"


def test_reloads_while_many_short_timers_fire(broker_factory, tmp_path):
    """50 timers every 10 ms, one-shots re-arming themselves, and a reload every few turns:
    reload events and timer events share loop turns, so a stopped timer that was already due
    must not fire into a freed rule."""
    def rules(v):
        return {"10-busy.lua": f"""
            local function again() tide.after(0.01, again) end
            return {{ init = function()
              for i = 1, 50 do tide.every(0.01, function() end) end
              for i = 1, 20 do tide.after(0.01, again) end
              tide.every(0.01, function() tide.publish("ev/v", "{v}") end)
            end }}
        """}
    b = start(broker_factory, tmp_path, rules(0))
    ev = events(b)
    assert payloads(ev.expect(1, timeout=5)) == ["0"]
    for v in range(1, 11):
        reload(b, rules(v))
    seen = []
    for _ in range(2000):  # what the older versions published may still be queued
        seen.append(ev.expect_one(timeout=5).payload.decode())
        if seen[-1] == "10":
            break
    assert seen[-1] == "10", seen[-20:]
    assert payloads(ev.expect(3, timeout=5)) == ["10"] * 3
    reload(b, remove=["10-busy.lua"])

"""`tidemq rules check|test` offline (RULES-API "Offline", "The sandbox"): fixture rule directories
under tests/rules/fixtures are copied to a private temp dir (the engine refuses group- or
world-writable rules) and run. One test per sandbox escape: each proves the call is refused or
aborted, counted (the output line's `errors` come from the rule's error/timeout counters) and
that `rules test` goes on with the next input line."""
import base64
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SANITIZER_RE, TIDEMQ_BIN

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "rules" / "fixtures"
ESCAPES = sorted(p.name[len("escape_"):] for p in FIXTURES.glob("escape_*"))


def rules_dir(tmp_path, name):
    """A private copy of fixture `name` (dir 0755, files 0644)."""
    dst = tmp_path / name
    shutil.copytree(FIXTURES / name, dst, symlinks=True)
    for root, dirs, files in os.walk(dst):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    return dst


def run(args, stdin="", timeout=60):
    p = subprocess.run([TIDEMQ_BIN, "rules", *map(str, args)], input=stdin.encode(),
                       capture_output=True, timeout=timeout)
    err = p.stderr.decode(errors="replace")
    assert not SANITIZER_RE.search(err), err
    return p.returncode, p.stdout.decode(), err


def rules_test(d, lines, timeout=60):
    rc, out, err = run(["test", d], "".join(json.dumps(x) + "\n" for x in lines), timeout)
    assert rc == 0, err
    res = [json.loads(x) for x in out.splitlines()]
    assert len(res) == len(lines), out
    return res


def test_check_default_rules_directory_passes():
    rc, out, err = run(["check", REPO / "rules"])
    assert rc == 0, err
    assert "rules ok" in out


def test_check_empty_directory_is_fine(tmp_path):
    d = tmp_path / "empty"
    d.mkdir(mode=0o755)
    assert run(["check", d])[0] == 0


def test_usage_errors_exit_2(tmp_path):
    assert run([])[0] == 2
    assert run(["frob", tmp_path])[0] == 2
    assert run(["test", tmp_path, "--bogus"])[0] == 2


@pytest.mark.parametrize("name,pattern", [
    ("bad_unknown_field", r"10-x\.lua: field 'on_publsh': unknown field"),
    ("bad_hook_type", r"10-x\.lua: field 'on_publish': a hook must be a function"),
    ("bad_filter", r"10-x\.lua: field 'match': invalid filter \"a/#/b\""),
    ("bad_syntax", r"10-x\.lua:4: "),
    ("bytecode", r"10-bytecode\.lua: attempt to load chunk with wrong mode"),
])
def test_check_names_file_and_field(tmp_path, name, pattern):
    d = rules_dir(tmp_path, name)
    rc, out, err = run(["check", d])
    assert rc == 1
    assert re.search(pattern, err), err
    rc, out, err = run(["test", d], '{"topic":"a","payload":"x"}\n')
    assert rc == 1 and out == ""


def test_group_writable_directory_or_file_is_refused(tmp_path):
    d = rules_dir(tmp_path, "ignored_files")
    os.chmod(d, 0o775)
    rc, _, err = run(["check", d])
    assert rc == 1 and "writable by group or others" in err
    os.chmod(d, 0o755)
    os.chmod(d / "10-ok.lua", 0o666)
    rc, _, err = run(["check", d])
    assert rc == 1 and "10-ok.lua" in err


def test_only_lua_files_not_starting_with_dot_are_rules(tmp_path):
    d = rules_dir(tmp_path, "ignored_files")
    os.symlink("10-ok.lua", d / "20-link.lua")
    rc, out, err = run(["check", d])
    assert rc == 0, err
    assert "2 rules ok" in out


def test_pipeline_transform_fanout_drop_refuse(tmp_path):
    d = rules_dir(tmp_path, "pipeline")
    res = rules_test(d, [
        {"topic": "sensors/k/celsius", "payload": "100", "client": {"client_id": "c1"}},
        {"topic": "sensors/k/celsius", "payload": "garbage"},
        {"topic": "fan/out", "payload": "x"},
        {"topic": "fan/none", "payload": "x"},
        {"topic": "deny/x", "payload": "x"},
        {"topic": "json/in", "payload": '{"n":1}'},
        {"topic": "bin/in", "payload_b64": base64.b64encode(b"\x00\x01").decode()},
        {"topic": "nobody/matches", "payload": "same", "qos": 2, "retain": True},
    ])
    m = res[0]["messages"][0]
    assert m["topic"] == "sensors/k/fahrenheit" and m["payload"] == "212"
    assert m["properties"] == {"content_type": "text/plain", "user": [["unit", "F"]]}
    assert res[0]["logs"][0]["text"] == "saw sensors/k/fahrenheit from c1"
    assert res[1]["result"] == "dropped"
    assert [x["topic"] for x in res[2]["messages"]] == ["fan/a", "fan/b"]
    assert res[2]["messages"][0]["payload"] == "x" and res[2]["messages"][1]["qos"] == 1
    assert res[3]["result"] == "dropped"
    assert res[4]["result"] == "refused" and res[4]["reason"] == "quota_exceeded"
    assert res[4]["code"] == 0x97 and res[4]["reason_string"] == "no more"
    assert json.loads(res[5]["messages"][0]["payload"]) == {"n": 2}
    assert base64.b64decode(res[6]["messages"][0]["payload_b64"]) == b"\x00\x01\xff"
    assert res[7]["messages"] == [{"topic": "nobody/matches", "payload": "same", "qos": 2,
                                   "retain": True}]


def test_invalid_input_lines_are_reported_and_skipped(tmp_path):
    d = rules_dir(tmp_path, "pipeline")
    rc, out, err = run(["test", d], 'garbage\n{"payload":"no topic"}\n{"topic":"a/b"}\n')
    assert rc == 0
    lines = [json.loads(x) for x in out.splitlines()]
    assert "invalid_input" in lines[0]["error"] and "invalid_input" in lines[1]["error"]
    assert lines[2]["result"] == "routed"


def test_input_file_option(tmp_path):
    d = rules_dir(tmp_path, "pipeline")
    f = tmp_path / "in.jsonl"
    f.write_text('{"topic":"fan/none","payload":"x"}\n')
    rc, out, _ = run(["test", d, "--input", f])
    assert rc == 0 and json.loads(out)["result"] == "dropped"


def test_tide_publish_runs_through_the_other_rules(tmp_path):
    d = rules_dir(tmp_path, "init_publish")
    res = rules_test(d, [{"topic": "in/pub", "payload": "x"}])
    assert res[0]["result"] == "dropped"
    assert res[0]["published"] == [{"topic": "out/x", "payload": "hello (tagged)", "qos": 1,
                                    "retain": False, "rule": "10-pub"}]


@pytest.mark.parametrize("name", ESCAPES)
def test_sandbox_escape_is_aborted_counted_and_next_line_runs(tmp_path, name):
    d = rules_dir(tmp_path, "escape_" + name)
    t0 = time.monotonic()
    res = rules_test(d, [{"topic": "t/1", "payload": "a"}, {"topic": "t/2", "payload": "b"}])
    assert time.monotonic() - t0 < 30
    for line, r in zip((1, 2), res):
        assert r["line"] == line
        # the hook was aborted (on_error "drop": refused with unspecified_error), never ESCAPED
        assert r["result"] == "refused" and r["code"] == 0x80, r
        assert "messages" not in r
        assert r["errors"][0]["rule"] == "10-escape", r
    assert not os.path.exists("/tmp/tidemq-escaped")


def test_msgpack_length_bomb_is_refused_before_allocating(tmp_path):
    d = rules_dir(tmp_path, "escape_msgpack_bomb")
    res = rules_test(d, [{"topic": "t", "payload": "a"}])
    assert "msgpack: array length exceeds the input" in res[0]["errors"][0]["error"]


def test_msgpack_arrays_stay_arrays_through_json_and_back(tmp_path):
    """A decoded msgpack array carries tide.json.array_mt, like a decoded JSON one: an empty
    array becomes JSON [] (not {}) and msgpack 0x90 again (not an empty map, 0x80)."""
    d = tmp_path / "mp"
    d.mkdir(mode=0o755)
    rule = d / "10-mp.lua"
    rule.write_text(
        "return { on_publish = function(msg)\n"
        "  local v = tide.msgpack.decode(msg.payload)\n"
        "  return { payload = tide.json.encode(v) .. ' ' ..\n"
        "           tide.crypto.hex(tide.msgpack.encode(v)) .. ' ' ..\n"
        "           tide.crypto.hex(tide.msgpack.encode(tide.json.decode('[[],{}]'))) }\n"
        "end }\n")
    rule.chmod(0o644)
    res = rules_test(d, [{"topic": "t", "payload_b64": base64.b64encode(b"\x92\x90\x80").decode()}])
    assert res[0]["messages"][0]["payload"] == "[[],{}] 929080 929080", res


def test_pathological_lua_pattern_is_stopped_by_the_budget(tmp_path):
    d = rules_dir(tmp_path, "escape_lua_pattern")
    t0 = time.monotonic()
    res = rules_test(d, [{"topic": "t", "payload": "a"}])
    assert time.monotonic() - t0 < 5
    assert "timeout" in res[0]["errors"][0]["error"]


def test_default_rules_demo_transform(tmp_path):
    d = tmp_path / "rules"
    shutil.copytree(REPO / "rules", d, ignore=shutil.ignore_patterns("engine"))
    os.chmod(d, 0o755)
    for f in d.iterdir():
        os.chmod(f, 0o644)
    res = rules_test(d, [{"topic": "tidemq/demo/x", "payload": '{"v":1}'},
                         {"topic": "tidemq/demo/y", "payload": "not json"},
                         {"topic": "elsewhere", "payload": '{"v":1}'}])
    v = json.loads(res[0]["messages"][0]["payload"])
    assert v["v"] == 1 and isinstance(v["seen_at"], int)
    assert res[1]["messages"][0]["payload"] == "not json"
    assert res[2]["messages"][0]["payload"] == '{"v":1}'

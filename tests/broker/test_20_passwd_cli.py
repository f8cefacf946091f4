"""`tidemq passwd`: mosquitto_passwd's flags, messages and exit codes, and files that Mosquitto and
tidemq both read.

Cross-compatibility is tested against the real programs: a file written by `tidemq passwd` (with
entries added by Debian's `mosquitto_passwd` in between) is handed to a real /usr/sbin/mosquitto
broker, and `mosquitto_pub -u USER -P PASS` must connect for every user, right password only. The
other direction (files written by mosquitto_passwd, read by tidemq's parser) is covered by
tests/unit/test_passwd.c, which generates such a file at run time.

No test needs a tidemq broker. Every command's output is checked never to contain a password.
"""
import os
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TIDEMQ_BIN = os.environ.get("TIDEMQ_BIN") or str(REPO / "build" / "tidemq")
MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
MOSQUITTO_PUB = "/usr/bin/mosquitto_pub"
DEFAULT_ITERATIONS = 210000

need_mosquitto = pytest.mark.skipif(
    not all(os.access(p, os.X_OK) for p in (MOSQUITTO, MOSQUITTO_PASSWD, MOSQUITTO_PUB)),
    reason="needs Debian's mosquitto and mosquitto-clients",
)

SECRETS = set()  # every password a test used; no command may print one


def run(args, stdin=None, secret=None):
    """Runs `tidemq passwd ARGS`; returns (rc, stdout, stderr) and checks no password leaked."""
    if secret:
        SECRETS.add(secret)
    p = subprocess.run([TIDEMQ_BIN, "passwd", *args], input=stdin, capture_output=True,
                       text=True, timeout=60)
    for s in SECRETS:
        assert s not in p.stdout and s not in p.stderr, "a password was printed"
    return p.returncode, p.stdout, p.stderr


def mosq_passwd(*args):
    subprocess.run([MOSQUITTO_PASSWD, *args], check=True, capture_output=True, timeout=60)


def entries(path):
    """{user: hash} of a password file."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if line and not line.startswith("#"):
            user, h = line.split(":", 1)
            out[user] = h
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """A real mosquitto broker with allow_anonymous false and the given password file."""

    def __init__(self, tmp_path, password_file):
        self.port = free_port()
        conf = tmp_path / f"mosquitto-{self.port}.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous false",
                 f"password_file {password_file}"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to 'mosquitto', who cannot read tmp_path
        conf.write_text("\n".join(lines) + "\n")
        self.log = tmp_path / f"mosquitto-{self.port}.log"
        self._log = open(self.log, "w")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("mosquitto exited: " + self.log.read_text())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("mosquitto did not listen: " + self.log.read_text())
                time.sleep(0.05)

    def can_login(self, user, password):
        SECRETS.add(password)
        p = subprocess.run([MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(self.port), "-u", user,
                            "-P", password, "-t", "tidemq/test", "-m", "x", "-q", "1"],
                           capture_output=True, text=True, timeout=20)
        return p.returncode == 0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture
def mosquitto(tmp_path):
    started = []

    def start(password_file):
        m = Mosquitto(tmp_path, password_file)
        started.append(m)
        return m

    yield start
    for m in started:
        m.stop()


# --------------------------------------------------------------------------------------------
# what the files look like
# --------------------------------------------------------------------------------------------

def test_create_writes_one_pbkdf2_entry_at_default_iterations_mode_0600(tmp_path):
    pw = tmp_path / "pw"
    assert run(["-c", "-b", str(pw), "alice", "s3cret"], secret="s3cret")[0] == 0
    text = pw.read_text()
    assert text.count("\n") == 1
    user, h = text.strip().split(":")
    _, kind, iterations, salt, digest = h.split("$")
    assert (user, kind, int(iterations)) == ("alice", "7", DEFAULT_ITERATIONS)
    assert len(salt) == 16 and len(digest) == 88  # 12-byte salt, 64-byte hash, base64
    assert stat.S_IMODE(pw.stat().st_mode) == 0o600


def test_create_overwrites_an_existing_file(tmp_path):
    pw = tmp_path / "pw"
    run(["-c", "-b", str(pw), "alice", "a"], secret=None)
    run(["-b", str(pw), "bob", "b"])
    assert run(["-c", "-b", str(pw), "carol", "c"])[0] == 0
    assert list(entries(pw)) == ["carol"]


def test_I_sets_the_iteration_count(tmp_path):
    pw = tmp_path / "pw"
    assert run(["-I", "5000", "-c", "-b", str(pw), "alice", "x"])[0] == 0
    assert entries(pw)["alice"].startswith("$7$5000$")
    assert run(["-b", "-I", "7", str(pw), "bob", "y"])[0] == 0
    assert entries(pw)["bob"].startswith("$7$7$")


def test_H_sha512_pbkdf2_is_accepted_as_the_default(tmp_path):
    pw = tmp_path / "pw"
    assert run(["-H", "sha512-pbkdf2", "-c", "-b", str(pw), "alice", "x"])[0] == 0
    assert entries(pw)["alice"].startswith("$7$")


# --------------------------------------------------------------------------------------------
# cross-compatibility with the real Mosquitto
# --------------------------------------------------------------------------------------------

@need_mosquitto
def test_mosquitto_accepts_a_file_written_by_tidemq_and_mosquitto_passwd(tmp_path, mosquitto):
    pw = tmp_path / "pw"
    assert run(["-c", "-b", str(pw), "alice", "alice pw!"], secret="alice pw!")[0] == 0
    mosq_passwd("-b", str(pw), "bob", "bob-pw")          # $7$ at Mosquitto's 101 iterations
    mosq_passwd("-H", "sha512", "-b", str(pw), "sixer", "six-pw")  # old $6$
    assert run(["-b", str(pw), "carol", "carol-pw"])[0] == 0
    assert run(["-b", "-I", "1000", str(pw), "dave", "dave-pw"])[0] == 0
    assert set(entries(pw)) == {"alice", "bob", "sixer", "carol", "dave"}

    m = mosquitto(pw)
    for user, password in [("alice", "alice pw!"), ("bob", "bob-pw"), ("sixer", "six-pw"),
                           ("carol", "carol-pw"), ("dave", "dave-pw")]:
        assert m.can_login(user, password), user
        assert not m.can_login(user, password + "x"), user
    assert not m.can_login("nobody", "alice pw!")


@need_mosquitto
def test_changing_a_password_is_seen_by_mosquitto(tmp_path, mosquitto):
    pw = tmp_path / "pw"
    mosq_passwd("-c", "-b", str(pw), "alice", "old-pw")
    mosq_passwd("-b", str(pw), "bob", "bob-pw")
    bob_before = entries(pw)["bob"]
    assert run(["-b", str(pw), "alice", "new-pw"], secret="new-pw")[0] == 0
    assert entries(pw)["alice"].startswith(f"$7${DEFAULT_ITERATIONS}$")
    assert entries(pw)["bob"] == bob_before
    m = mosquitto(pw)
    assert m.can_login("alice", "new-pw")
    assert not m.can_login("alice", "old-pw")
    assert m.can_login("bob", "bob-pw")


@need_mosquitto
def test_U_hashes_plain_text_entries_and_keeps_hashed_ones(tmp_path, mosquitto):
    pw = tmp_path / "pw"
    mosq_passwd("-c", "-b", str(pw), "bob", "bob-pw")
    bob = entries(pw)["bob"]
    with open(pw, "a") as f:
        f.write("# plain text, to be converted\ndave:dave-plain\n  erin : erin-plain  \n")
    SECRETS.update({"dave-plain", "erin-plain"})
    assert run(["-U", str(pw)])[0] == 0
    e = entries(pw)
    assert e["bob"] == bob  # mosquitto_passwd -U would have hashed the hash
    assert e["dave"].startswith(f"$7${DEFAULT_ITERATIONS}$")
    assert e["erin"].startswith(f"$7${DEFAULT_ITERATIONS}$")
    assert "# plain text, to be converted" in pw.read_text()
    m = mosquitto(pw)
    assert m.can_login("dave", "dave-plain")
    assert m.can_login("erin", "erin-plain")
    assert m.can_login("bob", "bob-pw")


# --------------------------------------------------------------------------------------------
# updating files
# --------------------------------------------------------------------------------------------

@need_mosquitto
def test_update_keeps_every_other_line_byte_for_byte(tmp_path):
    pw = tmp_path / "pw"
    mosq_passwd("-c", "-b", str(pw), "bob", "bob-pw")
    original = pw.read_text()
    pw.write_text("# users of the plant\n\n" + original + "# end\n")
    before = pw.read_text()
    assert run(["-b", str(pw), "alice", "a"])[0] == 0
    after = pw.read_text()
    assert after.startswith(before)
    assert after[len(before):].startswith("alice:$7$")
    assert run(["-D", str(pw), "alice"])[0] == 0
    assert pw.read_text() == before


def test_a_file_without_final_newline_gets_one_before_the_new_entry(tmp_path):
    pw = tmp_path / "pw"
    run(["-c", "-b", str(pw), "alice", "a"])
    pw.write_text(pw.read_text().rstrip("\n"))
    assert run(["-b", str(pw), "bob", "b"])[0] == 0
    assert list(entries(pw)) == ["alice", "bob"]


def test_D_deletes_a_user(tmp_path):
    pw = tmp_path / "pw"
    run(["-c", "-b", str(pw), "alice", "a"])
    run(["-b", str(pw), "bob", "b"])
    assert run(["-D", str(pw), "alice"])[0] == 0
    assert list(entries(pw)) == ["bob"]


def test_D_of_an_unknown_user_warns_and_leaves_the_file(tmp_path):
    pw = tmp_path / "pw"
    run(["-c", "-b", str(pw), "alice", "a"])
    before = pw.read_bytes()
    rc, _, err = run(["-D", str(pw), "zed"])
    assert rc == 1
    assert err == "Warning: User zed not found in password file.\n"
    assert pw.read_bytes() == before


def test_update_keeps_the_file_mode_and_owner(tmp_path):
    pw = tmp_path / "pw"
    run(["-c", "-b", str(pw), "alice", "a"])
    os.chmod(pw, 0o640)
    owner = (12345, 12346) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    if os.geteuid() == 0:
        os.chown(pw, *owner)
    assert run(["-b", str(pw), "bob", "b"])[0] == 0
    st = pw.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert (st.st_uid, st.st_gid) == owner


def test_update_is_atomic_and_leaves_no_temporary_file(tmp_path):
    pw = tmp_path / "pw"
    run(["-c", "-b", str(pw), "alice", "a"])
    inode = pw.stat().st_ino
    run(["-b", str(pw), "bob", "b"])
    assert pw.stat().st_ino != inode  # replaced by rename, never rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pw"]


def test_a_symlink_is_followed_to_its_target(tmp_path):
    real = tmp_path / "real"
    run(["-c", "-b", str(real), "alice", "a"])
    link = tmp_path / "link"
    link.symlink_to(real)
    assert run(["-b", str(link), "bob", "b"])[0] == 0
    assert link.is_symlink()
    assert list(entries(real)) == ["alice", "bob"]


def test_a_corrupt_file_is_refused_with_its_line_number(tmp_path):
    pw = tmp_path / "pw"
    run(["-c", "-b", str(pw), "alice", "a"])
    with open(pw, "a") as f:
        f.write("garbage\n")
    before = pw.read_bytes()
    rc, _, err = run(["-b", str(pw), "bob", "b"])
    assert (rc, err) == (1, "Error: Corrupt password file at line 2.\n")
    assert pw.read_bytes() == before


def test_updating_a_missing_file_fails(tmp_path):
    pw = tmp_path / "missing"
    rc, _, err = run(["-b", str(pw), "bob", "b"])
    assert rc == 1
    assert err == f"Error: Unable to open password file {pw}. No such file or directory.\n"
    assert not pw.exists()


# --------------------------------------------------------------------------------------------
# prompting
# --------------------------------------------------------------------------------------------

def test_without_b_the_password_is_read_twice_from_stdin(tmp_path):
    pw = tmp_path / "pw"
    rc, out, err = run(["-c", str(pw), "alice"], stdin="typed-pw\ntyped-pw\n", secret="typed-pw")
    assert (rc, err) == (0, "")
    assert out == "Password: \nReenter password: \n"
    rc, out, err = run([str(pw), "bob"], stdin="b2\nb2\n", secret="b2")
    assert rc == 0 and list(entries(pw)) == ["alice", "bob"]


def test_mismatched_passwords_exit_2_and_write_nothing(tmp_path):
    pw = tmp_path / "pw"
    rc, _, err = run(["-c", str(pw), "alice"], stdin="one-pw\ntwo-pw\n", secret="one-pw")
    SECRETS.add("two-pw")
    assert (rc, err) == (2, "Error: Passwords do not match.\n")
    assert not pw.exists()


@pytest.mark.parametrize("stdin", ["", "\n", "pw\n\n"], ids=["eof", "empty", "empty-second"])
def test_an_empty_password_is_refused(tmp_path, stdin):
    pw = tmp_path / "pw"
    rc, _, err = run(["-c", str(pw), "alice"], stdin=stdin)
    assert (rc, err) == (1, "Error: Empty password.\n")
    assert not pw.exists()


# --------------------------------------------------------------------------------------------
# arguments (mosquitto_passwd's messages)
# --------------------------------------------------------------------------------------------

ARG_ERRORS = [
    (["-c", "-D", "f", "u"], "Error: -c and -D cannot be used together.\n"),
    (["-c", "-U", "f"], "Error: -c and -U cannot be used together.\n"),
    (["-D", "-U", "f"], "Error: -D and -U cannot be used together.\n"),
    (["-b", "-D", "f", "u"], "Error: -b and -D cannot be used together.\n"),
    (["-c", "-b", "f", "u"],
     "Error: -c argument given but password file, username, or password missing.\n"),
    (["-c", "f"], "Error: -c argument given but password file or username missing.\n"),
    (["-D", "f"], "Error: -D argument given but password file or username missing.\n"),
    (["-U"], "Error: -U argument given but password file missing.\n"),
    (["-I"], "Error: -I argument given but not enough other arguments.\n"),
    (["-I", "0", "-c", "-b", "f", "u", "p"], "Error: Number of iterations must be > 0.\n"),
    (["-I", "x", "-c", "-b", "f", "u", "p"], "Error: Number of iterations must be > 0.\n"),
    (["-I", "-5", "-c", "-b", "f", "u", "p"], "Error: Number of iterations must be > 0.\n"),
    (["-I", "10000001", "-c", "-b", "f", "u", "p"],
     "Error: Number of iterations must be <= 10000000.\n"),
    (["-H"], "Error: -H argument given but not enough other arguments.\n"),
    (["-H", "md5", "f", "u"], "Error: Unknown hash type 'md5'\n"),
    (["-H", "sha512", "-c", "-b", "f", "u", "p"],
     "Error: tidemq passwd writes only sha512-pbkdf2 hashes; -H sha512 is not supported.\n"),
    (["-c", "-b", "f", "a:b", "p"], "Error: Username must not contain the ':' character.\n"),
    (["-c", "-b", "f", "a\tb", "p"], "Error: Username must not contain control characters.\n"),
    (["-c", "-b", "f", "u" * 65536, "p"],
     "Error: Username must be less than 65536 characters long.\n"),
    (["-c", "-b", "f", "u", "p" * 65536],
     "Error: Password must be less than 65536 characters long.\n"),
]


@pytest.mark.parametrize("args,message", ARG_ERRORS, ids=[" ".join(a)[:40] for a, _ in ARG_ERRORS])
def test_argument_errors_match_mosquitto_passwd(tmp_path, args, message):
    args = [str(tmp_path / "f") if a == "f" else a for a in args]
    rc, _, err = run(args)
    assert (rc, err) == (1, message)
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize("args", [[], ["f"], ["-b", "f", "u"], ["f", "u", "extra"]],
                         ids=["none", "file only", "b without password", "extra argument"])
def test_wrong_argument_counts_print_the_usage_and_exit_1(tmp_path, args):
    rc, out, _ = run([str(tmp_path / "f") if a == "f" else a for a in args])
    assert rc == 1
    assert out.startswith("tidemq passwd is a tool for managing password files")
    assert "Usage: tidemq passwd" in out

"""Test certificates made with the `openssl` command, shared by test_40 (TLS), test_41 (wss://)
and test_42 (PROXY header before TLS): one session-wide set (the `certs` fixture) with a CA, server
certificates, good and bad client certificates and a CRL."""
import shutil
import subprocess
from types import SimpleNamespace

import pytest


def openssl(*args, cwd):
    cp = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=30,
                        stdin=subprocess.DEVNULL)
    assert cp.returncode == 0, f"openssl {' '.join(args)}: {cp.stderr.decode()}"


def make_ca(d, name, cn):
    """A CA directory for `openssl ca` (database, serial, CRL number) with a self-signed cert."""
    ca = d / name
    ca.mkdir()
    (ca / "index.txt").write_text("")
    (ca / "serial").write_text("1000\n")
    (ca / "crlnumber").write_text("1000\n")
    (ca / "ca.cnf").write_text(f"""[ca]
default_ca = CA_default
[CA_default]
dir = {ca}
database = $dir/index.txt
serial = $dir/serial
crlnumber = $dir/crlnumber
new_certs_dir = $dir
certificate = $dir/ca.crt
private_key = $dir/ca.key
default_md = sha256
default_days = 30
default_crl_days = 30
policy = policy_any
unique_subject = no
copy_extensions = copy
[policy_any]
commonName = supplied
""")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.crt", "-days", "30", "-subj", f"/CN={cn}", cwd=ca)
    return ca


def make_leaf(d, ca, name, cn, san=None, dates=None):
    """name.key + name.crt signed by ca; dates=(start, end) as YYYYMMDDHHMMSSZ."""
    args = ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}"]
    if san:
        args += ["-addext", f"subjectAltName={san}"]
    openssl(*args, cwd=d)
    args = ["ca", "-batch", "-notext", "-config", str(ca / "ca.cnf"), "-in", f"{name}.csr",
            "-out", f"{name}.crt"]
    if dates:
        args += ["-startdate", dates[0], "-enddate", dates[1]]
    openssl(*args, cwd=d)


def make_certs(d):
    """Everything the tests need, in d:
    ca.crt                      the trusted CA (ca/ holds its key and database)
    server.crt/.key             CN=localhost, SAN IP:127.0.0.1 + DNS:localhost
    server2.crt/.key            the same names, another key (for the SIGHUP reload)
    alice.crt/.key              a good client certificate, CN=alice
    bob.crt/.key                a good client certificate, CN=bob
    expired.crt/.key            CN=alice, valid 1-2 January 2020 only
    revoked.crt/.key            CN=mallory, revoked in crl.pem
    crl.pem                     the CA's CRL
    stranger.crt/.key           CN=alice, signed by another CA nobody trusts
    """
    ca = make_ca(d, "ca", "tidemq test CA")
    shutil.copy(ca / "ca.crt", d / "ca.crt")
    server_san = "IP:127.0.0.1,DNS:localhost"
    make_leaf(d, ca, "server", "localhost", san=server_san)
    make_leaf(d, ca, "server2", "localhost", san=server_san)
    make_leaf(d, ca, "alice", "alice")
    make_leaf(d, ca, "bob", "bob")
    make_leaf(d, ca, "expired", "alice", dates=("20200101000000Z", "20200102000000Z"))
    make_leaf(d, ca, "revoked", "mallory")
    openssl("ca", "-batch", "-config", str(ca / "ca.cnf"), "-revoke", "revoked.crt", cwd=d)
    openssl("ca", "-batch", "-config", str(ca / "ca.cnf"), "-gencrl", "-out", "crl.pem", cwd=d)
    other = make_ca(d, "other", "nobody trusts this CA")
    make_leaf(d, other, "stranger", "alice")
    return d


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    d = make_certs(tmp_path_factory.mktemp("tls-certs"))
    return SimpleNamespace(dir=d, **{p.stem + ("_key" if p.suffix == ".key" else ""): str(p)
                                     for p in d.iterdir() if p.suffix in (".crt", ".key", ".pem")})

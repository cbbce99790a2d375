#!/usr/bin/env python3
"""Hostile peers at the TLS layer: a node refuses every peer it did not authenticate, says why
in its log, and makes no link for it.

Usage: peer_auth_test.py BIN_DIR REPO_ROOT

Node A runs alone (trusting node B, which is not running; B has the smaller UUID, so B is the one
that dials). `openssl s_client` (OpenSSL 3.5)
connects to A's peer port as B would, with: a certificate from another CA; a certificate of A's
CA whose UUID is not a trusted peer; B's UUID in a certificate that has expired; B's valid
certificate over TLS 1.2 only; no client certificate. Each must be refused with its log line, and
A's status must show no link to B made. A positive control (B's valid certificate, TLS 1.3)
shows the harness sees a link when there is one. Ends with "N passed, M failed, K skipped" (the
runner: hxtest.Runner).
"""
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hxtest import Runner, Skip, check, free_port  # noqa: E402  (one runner, safe ports)

BIN, ROOT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
R = Runner("hykex-peerauth-")
WORK = R.work
A, B = "cccccccc-0000-4000-8000-00000000000c", "bbbbbbbb-0000-4000-8000-00000000000b"  # B < A: B dials A
STRANGER = "eeeeeeee-0000-4000-8000-00000000000e"
OPENSSL = subprocess.run(["bash", "-c", f". {ROOT}/scripts/lib.sh && hx_openssl"],
                         capture_output=True, text=True, check=True).stdout.strip()


P = {"api": free_port(), "peer": free_port(), "peerB": free_port()}


def run(*a):
    subprocess.run(list(a), check=True, capture_output=True, cwd=WORK)


def log():
    return open(f"{WORK}/A.log").read()


def status():
    r = subprocess.run([f"{BIN}/hykex", "status", "--json", "--address", f"127.0.0.1:{P['api']}"],
                       capture_output=True, text=True, timeout=10)
    return json.loads(r.stdout)


def links_to_b():
    return [p for p in status()["peers"] if p["uuid"] == B][0]["links_made"]


def connect(cert_dir, *extra):
    """s_client to A's peer port as a would-be peer; returns when the session ends."""
    args = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{P['peer']}", "-CAfile", "ca/ca.crt",
            "-groups", "X25519MLKEM768", *extra]
    if cert_dir is not None:
        args += ["-cert", f"{cert_dir}/node.crt", "-key", f"{cert_dir}/node.key"]
    p = subprocess.Popen(args, cwd=WORK, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(0.8)  # the handshake, and A's verdict on it
    p.stdin.close()
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()


def case(name, cert_dir, extra, expect_line, expect_reason, link_expected=False):
    """Registers a case: a would-be peer connects; A logs expect_line with every expect_reason
    in it and makes a link to B only when link_expected."""
    def run():
        before_log, before_links = len(log()), links_to_b()
        connect(cert_dir, *extra)
        time.sleep(0.3)
        new = log()[before_log:]
        lines = [x for x in new.splitlines() if expect_line in x]
        ok = bool(lines) and all(r in lines[0] for r in expect_reason)
        made = links_to_b() - before_links
        ok = ok and (made >= 1 if link_expected else made == 0)
        check(ok, f"links made {made}; log: {new.strip()[-400:]}")
    R.test(run, name)


def setup():
    run(f"{ROOT}/certificates/create_ca.sh", "--out", "ca")
    run(f"{ROOT}/certificates/create_ca.sh", "--out", "ca2", "--name", "another CA")
    run(f"{ROOT}/certificates/generate_cert.sh", "--uuid", A, "--name", "A", "--out", "A")
    run(f"{ROOT}/certificates/generate_cert.sh", "--uuid", B, "--name", "B", "--out", "B")
    run(f"{ROOT}/certificates/generate_cert.sh", "--uuid", B, "--name", "B", "--ca", "ca2",
        "--out", "B_other_ca")
    run(f"{ROOT}/certificates/generate_cert.sh", "--uuid", STRANGER, "--name", "E",
        "--out", "stranger")
    # B's UUID in a certificate that expired in 2021: B's key re-certified with old dates.
    os.makedirs(f"{WORK}/B_expired", exist_ok=True)
    run(OPENSSL, "x509", "-x509toreq", "-in", "B/node.crt", "-signkey", "B/node.key",
        "-copy_extensions", "copyall", "-out", "B_expired/req.csr")
    run(OPENSSL, "x509", "-req", "-in", "B_expired/req.csr", "-CA", "ca/ca.crt",
        "-CAkey", "ca/ca.key", "-copy_extensions", "copyall", "-not_before", "20200101000000Z",
        "-not_after", "20210101000000Z", "-out", "B_expired/node.crt")
    run("cp", "B/node.key", "B_expired/node.key")
    cfg = {"uuid": A, "logging_config": {"console_log_type": "info"},
           "certificate_config": {"cert_authority_path": "A/ca.crt", "cert_path": "A/node.crt",
                                  "key_path": "A/node.key"},
           "hybridization_server_address": {"host": "127.0.0.1", "port": P["api"]},
           "peer_local_address": {"host": "127.0.0.1", "port": P["peer"]},
           "qkd": {"protocol": "none"},
           "state_dir": "A-state",
           "trusted_peers": {B: {"address": {"host": "127.0.0.1", "port": P["peerB"]}}}}
    if os.getuid() == 0:
        cfg["user"] = "nobody"  # privileges dropped after binding (checked below)
        os.chmod(WORK, 0o711)
    json.dump(cfg, open(f"{WORK}/A.json", "w"))
    R.start("A", [f"{BIN}/hykexd", "-c", "A.json"], f"{WORK}/A.log", exit_ok=None, cwd=WORK)


@R.test
def runs_as_user_nobody_after_binding_owns_its_state_dir():
    if os.getuid() != 0:
        raise Skip("needs root (the privilege drop)")
    pid = R.procs["A"].pid
    uids = [x for x in open(f"/proc/{pid}/status") if x.startswith(("Uid:", "Gid:", "Groups:"))]
    ok = (uids[0].split()[1:] == ["65534"] * 4 and uids[1].split()[1:] == ["65534"] * 4
          and uids[2].split()[1:] == []
          and os.stat(f"{WORK}/A-state").st_uid == 65534
          and os.stat(f"{WORK}/A-state/hykexd.db").st_uid == 65534
          and "privileges dropped" in log())
    check(ok, f"{uids}")


case("certificate from another CA", "B_other_ca", [], "peer TLS handshake failed",
     ["certificate:", "issuer"])
case("valid certificate with a UUID that is not a trusted peer", "stranger", [],
     "peer is not a trusted peer", [STRANGER])
case("expired certificate with a trusted UUID", "B_expired", [],
     "peer TLS handshake failed", ["expired"])
case("TLS 1.2 only", "B", ["-tls1_2"], "peer TLS handshake failed", ["protocol"])
case("no client certificate", None, [], "peer TLS handshake failed", ["certificate"])
case("positive control: B's valid certificate over TLS 1.3", "B", [], "peer link up",
     [B, "X25519MLKEM768"], link_expected=True)
R.run(setup)

#!/usr/bin/env python3
"""Classic McEliece and sntrup beside ML-KEM between two real nodes (issue 20).

Usage: kem_families_test.py BIN_DIR REPO_ROOT

Four nodes with ML-DSA certificates and one simulator (ETSI 004 JSON KMEs, one QKD link per
pair): P and Q run kem.key_pairs = "per-batch" (the mode that makes Classic McEliece practical:
one 261 KB public key per batch), R and S the default "per-position" (a key pair per position:
a McEliece batch is then capped at 15 positions, so that its BATCH_REQ stays under 4 MiB).
Applications at both ends open the same stream and take keys by index; the keys must be equal
at both ends and differ between positions, for ML-KEM-768 + Classic-McEliece-348864 + QKD and
sntrup761 + X25519 + QKD, under several combiners. A stream whose one batch of public keys
cannot fit a frame is refused at OPEN_CONNECT with a message naming the limit; HQC and BIKE stay
refused by name. The OPEN_CONNECT and first-key times are printed (bench/network.py measures
them properly; nothing here asserts a duration). Ends with "N passed, M failed, K skipped".
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hxtest import Runner, check, free_port, next_json  # noqa: E402  (one runner, safe ports)

BIN, ROOT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
R = Runner("hykex-kems-")
WORK = R.work
U = {"P": "10000000-0000-4000-8000-000000000001", "Q": "20000000-0000-4000-8000-000000000002",
     "R": "30000000-0000-4000-8000-000000000003", "S": "40000000-0000-4000-8000-000000000004"}
PEER = {"P": "Q", "Q": "P", "R": "S", "S": "R"}
PORT = {f"{k}{n}": free_port() for n in U for k in ("api", "peer", "kme")}
MCELIECE = "ML-KEM-768,Classic-McEliece-348864,QKD"
SNTRUP = "sntrup761,X25519,QKD"


class App:
    """An application on one node: the reference wire format over TCP."""

    def __init__(self, node):
        self.s = socket.create_connection(("127.0.0.1", PORT["api" + node]), timeout=60)
        self.buf = b""

    def call(self, command, **data):
        self.s.sendall(json.dumps({"command": command, "data": data}).encode())
        obj, _, self.buf = next_json(self.s, self.buf, "daemon closed the connection")
        return obj

    def open(self, src, dst, timeout_ms=30000, **extra):
        q = {"key_chunk_size": 32, "max_bps": 32, "min_bps": 32, "jitter": 0, "priority": 0,
             "timeout": timeout_ms, "ttl": 0, "metadata_mimetype": "application/json"}
        return self.call("OPEN_CONNECT", source=src, destination=dst, qos=q, **extra)


def uri(node, method, sources, app):
    return f"hybrid://{app}@{U[node]}?hybridization={method}&key_sources={sources}"


def pair(a, method, sources, n):
    """Applications at a and its peer open one stream and take keys 0..n-1 at both ends;
    returns (keys at a, seconds to OPEN_CONNECT at a, seconds to the first key at a)."""
    b, ksid, app, out = PEER[a], str(uuid.uuid4()), f"app{uuid.uuid4().hex[:8]}", {}

    def side(node):
        c, t0 = App(node), time.monotonic()
        r = c.open(uri(a, method, sources, app), uri(b, method, sources, app), key_stream_id=ksid)
        t_open = time.monotonic() - t0
        keys, t_first = [], None
        for i in range(n if r["status"] == 0 else 0):
            g = c.call("GET_KEY", key_stream_id=ksid, index=i)
            if t_first is None:
                t_first = time.monotonic() - t0
            keys.append(bytes(g["key_buffer"]).hex() if g["status"] == 0 else g)
            if g["status"] != 0:
                break  # a failed stream fails every later key too: say so at once
        out[node] = (r, keys, t_open, t_first)
        out[node + "_done"] = True
        barrier.wait()
        if r["status"] == 0:
            c.call("CLOSE", key_stream_id=ksid)

    barrier = threading.Barrier(2, timeout=120)
    ts = [threading.Thread(target=side, args=(x,)) for x in (a, b)]
    [t.start() for t in ts]
    [t.join(180) for t in ts]
    ra, ka, t_open, t_first = out[a]
    rb, kb, _, _ = out[b]
    check(ra["status"] == 0 and rb["status"] == 0, f"{sources}: open {ra} / {rb}")
    check(all(isinstance(k, str) for k in ka + kb), f"{sources}: keys {ka} / {kb}")
    check(len(ka) == n and len(kb) == n, f"{sources}: {len(ka)} / {len(kb)} of {n} keys")
    check(ka == kb, f"{method} {sources}: keys differ between the nodes")
    check(len(set(ka)) == n, f"{method} {sources}: keys repeat")
    check(all(len(k) == 64 for k in ka), "key length")
    return ka, t_open, t_first


def timings(what, t_open, t_first):
    print(f"     {what}: OPEN_CONNECT {t_open * 1000:.0f} ms, first key {t_first * 1000:.0f} ms",
          flush=True)


def setup():
    def run(*a):
        subprocess.run(list(a), check=True, capture_output=True, cwd=WORK)
    run(f"{ROOT}/certificates/create_ca.sh", "--out", "ca")
    for n in U:
        run(f"{ROOT}/certificates/generate_cert.sh", "--uuid", U[n], "--name", n, "--ip",
            "127.0.0.1", "--out", n)
    net = {"kmes": [{"id": f"KME_{n}", "node": U[n], "etsi004_json": {"port": PORT["kme" + n]}}
                    for n in U],
           "links": [{"id": "pq", "kmes": ["KME_P", "KME_Q"], "rate_bps": 0},
                     {"id": "rs", "kmes": ["KME_R", "KME_S"], "rate_bps": 0}]}
    json.dump(net, open(f"{WORK}/net.json", "w"))
    R.start("sim", [f"{BIN}/hykex-qkdsim", "-c", f"{WORK}/net.json", "--log-level", "warn"],
            f"{WORK}/sim.log", exit_ok=None)
    for n in U:
        m = PEER[n]
        cfg = {"uuid": U[n], "logging_config": {"console_log_type": "info"},
               "certificate_config": {"cert_authority_path": f"{n}/ca.crt",
                                      "cert_path": f"{n}/node.crt", "key_path": f"{n}/node.key"},
               "hybridization_server_address": {"host": "127.0.0.1", "port": PORT["api" + n]},
               "qkd_address": {"host": "127.0.0.1", "port": PORT["kme" + n]},
               "peer_local_address": {"host": "127.0.0.1", "port": PORT["peer" + n]},
               "trusted_peers": {U[m]: {"address": {"host": "127.0.0.1", "port": PORT["peer" + m]}}}}
        if n in "PQ":
            cfg["kem"] = {"key_pairs": "per-batch"}
        json.dump(cfg, open(f"{WORK}/{n}.json", "w"), indent=1)
    for n in U:
        R.start(n, [f"{BIN}/hykexd", "-c", f"{WORK}/{n}.json"], f"{WORK}/{n}.log", cwd=WORK)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 15:
        if all("peer link up" in open(f"{WORK}/{n}.log").read() for n in "PR"):
            return
        time.sleep(0.1)


@R.test
def mceliece_mlkem_qkd_per_batch():
    """ML-KEM-768 + Classic-McEliece-348864 + QKD, one key pair per batch: 40 keys (two
    batches: 24 and 16), equal at both ends, under hkdf; then two more combiners."""
    _, t_open, t_first = pair("P", "hkdf", MCELIECE, 40)
    timings("per-batch, hkdf", t_open, t_first)
    for method in ("catkdf-kmac256", "xoring"):
        pair("P", method, MCELIECE, 3)


@R.test
def mceliece_mlkem_qkd_per_position():
    """The same with a key pair per position: batches capped at 15 positions (a 16th public
    key would take the BATCH_REQ over 4 MiB); 17 keys need two batches."""
    _, t_open, t_first = pair("R", "hkdf", MCELIECE, 17)
    timings("per-position, hkdf", t_open, t_first)


@R.test
def sntrup761_x25519_qkd():
    """sntrup761 + X25519 + QKD (OpenSSH's 9.0 pairing, plus QKD) in both key-pair modes and
    under several combiners; and sntrup761 beside ML-KEM-768 without QKD."""
    _, t_open, t_first = pair("R", "hkdf", SNTRUP, 40)
    timings("sntrup761 per-position, hkdf", t_open, t_first)
    _, t_open, t_first = pair("P", "hkdf", SNTRUP, 40)
    timings("sntrup761 per-batch, hkdf", t_open, t_first)
    for method in ("caskdf-hmac-sha384", "kmac128", "xorhmac"):
        pair("R", method, SNTRUP, 3)
    pair("P", "hkdf", "sntrup761,ML-KEM-768", 3)


@R.test
def every_offered_variant_between_nodes():
    """One key with each other Classic McEliece parameter set and sntrup size (per batch),
    beside QKD: the larger McEliece keys (up to 1.3 MB) cross the link in one BATCH_REQ."""
    for sources in ("Classic-McEliece-348864f", "Classic-McEliece-460896",
                    "Classic-McEliece-6960119f", "Classic-McEliece-8192128f",
                    "sntrup653", "sntrup857", "sntrup953", "sntrup1013", "sntrup1277"):
        pair("P", "hkdf", f"QKD,{sources}", 1)


@R.test
def too_large_and_foreign_sources_refused():
    """Four Classic-McEliece-8192128 keys (5.4 MB) cannot fit one BATCH_REQ: refused at
    OPEN_CONNECT with a message naming the limit. HQC and BIKE are refused by name."""
    big = ",".join(["Classic-McEliece-8192128", "Classic-McEliece-8192128f"] * 2)
    r = App("P").open(uri("P", "hkdf", big, "big"), uri("Q", "hkdf", big, "big"))
    check(r["status"] == 4 and "4 MiB BATCH_REQ limit" in r.get("message", ""), f"{r}")
    for name in ("HQC-256", "BIKE-L5", "FrodoKEM-976-AES"):
        s = f"QKD,{name}"
        r = App("R").open(uri("R", "hkdf", s, "x"), uri("S", "hkdf", s, "x"))
        check(r["status"] == 4 and "HQC, BIKE, FrodoKEM refused" in r.get("message", ""), f"{r}")
    # the nodes still serve others
    pair("R", "hkdf", SNTRUP, 2)


R.run(setup)

#!/usr/bin/env python3
"""Integration tests of hykex-qkdsim, driven from outside with Python's standard library and curl.

Usage: qkdsim_test.py HYKEX_QKDSIM REPO_ROOT
Starts the simulator on loopback with four KMEs (ETSI 004 JSON, JSON in reference_compat mode,
004 binary 1.0.1 plain and 2.1.1 over TLS with client certificates, 014 over HTTPS with client
certificates), drives each protocol from both ends of a link, and checks keys and status codes.
Ends with a line "N passed, M failed, K skipped" (the runner: hxtest.Runner).
"""
import http.client
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hxtest import Runner, check, free_port, next_json  # noqa: E402  (one runner, safe ports)

SIM, ROOT = sys.argv[1], sys.argv[2]
NODES = {k: f"{k * 8}-{k * 4}-{k * 4}-{k * 4}-{k * 12}" for k in "abcde"}
QOS = {"key_chunk_size": 32, "max_bps": 0, "min_bps": 0, "jitter": 0, "priority": 0,
       "timeout": 0, "ttl": 0, "metadata_mimetype": "application/json"}
R = Runner("hykex-qkdsim-test-")
test = R.test


def uri(node, app="app"):
    return f"qkd://{app}@{NODES[node]}"


# ---- clients ----

class Json:
    """One connection speaking the JSON dialect; parses replies as a stream."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send_raw(self, data):
        self.s.sendall(data)

    def reply(self):
        obj, _, self.buf = next_json(self.s, self.buf, "closed by the simulator")
        return obj

    def call(self, command, **data):
        self.send_raw(json.dumps({"command": command, "data": data}).encode())
        return self.reply()

    def close(self):
        self.s.close()


VERS = {"1.0.1": b"\x01\x00\x01", "2.1.1": b"\x02\x01\x01"}


class Binary:
    """The binary dialect in either framing; 2.1.1 opens a connection per request."""

    def __init__(self, port, framing, tls=None):
        self.port, self.framing, self.tls, self.s = port, framing, tls, None

    def _conn(self):
        if self.s is None or self.framing == "2.1.1":
            raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            self.s = self.tls.wrap_socket(raw, server_hostname="127.0.0.1") if self.tls else raw
        return self.s

    def _recv(self, n):
        out = b""
        while len(out) < n:
            c = self.s.recv(n - len(out))
            if not c:
                raise ConnectionError("closed")
            out += c
        return out

    def rpc(self, typ, payload):
        s = self._conn()
        s.sendall(VERS[self.framing] + bytes([typ]) + struct.pack(">I", len(payload)) + payload)
        hdr = self._recv(8)
        check(hdr[:3] == VERS[self.framing] and hdr[3] == typ + 1, f"reply header {hdr.hex()}")
        body = self._recv(struct.unpack(">I", hdr[4:])[0])
        if self.framing == "2.1.1":
            self.s.close()
            self.s = None
        return body

    def mimetype(self, m=b"application/json"):
        return m.ljust(256, b"\0") if self.framing == "1.0.1" else m + b"\0"

    def open(self, src, dst, chunk=32, timeout=0, ksid=None):
        p = src.encode() + b"\0" + dst.encode() + b"\0"
        p += struct.pack(">7I", chunk, 0, 0, 0, 0, timeout, 0) + self.mimetype()
        p += (ksid or uuid.UUID(int=0)).bytes
        b = self.rpc(0x02, p)
        status = struct.unpack(">I", b[:4])[0]
        if len(b) == 4:
            return status, None
        return status, uuid.UUID(bytes=b[-16:])

    def get(self, ksid, index, metasize=256):
        p = ksid.bytes + struct.pack(">I", index)
        p += struct.pack(">I", metasize) if self.framing == "1.0.1" else struct.pack(">I", 2) + b"\0\0"
        b = self.rpc(0x04, p)
        status = struct.unpack(">I", b[:4])[0]
        if status != 0 and self.framing == "1.0.1":
            return status, None, b[4:]
        idx, klen = struct.unpack(">II", b[4:12])
        key = b[12:12 + klen]
        mlen = struct.unpack(">I", b[12 + klen:16 + klen])[0]
        return status, key, json.loads(b[16 + klen:16 + klen + mlen] or b"null")

    def close_stream(self, ksid):
        return struct.unpack(">I", self.rpc(0x08, ksid.bytes)[:4])[0]


def ctl(*args):
    r = subprocess.run([SIM, "ctl", CTL] + list(args), capture_output=True, text=True, timeout=10)
    return r.returncode, json.loads(r.stdout)


def curl(port, path, cert=None, data=None):
    cmd = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--cacert", f"{PKI}/ca/ca.crt",
           f"https://127.0.0.1:{port}{path}"]
    if cert:
        cmd += ["--cert", f"{PKI}/{cert}/node.crt", "--key", f"{PKI}/{cert}/node.key"]
    if data is not None:
        cmd += ["-H", "Content-Type: application/json", "--data", json.dumps(data)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout
    body, _, code = out.rpartition("\n")
    return int(code), (json.loads(body) if body.strip() else None)


# ---- set-up ----

WORK = R.work
PKI = f"{WORK}/pki"
CTL = f"{WORK}/ctl.sock"
P = {name: free_port() for name in
     ["a_json", "a_bin", "a_014", "b_json", "b_bin", "b_014", "c_json", "d_json", "c_bin",
      "e_json"]}
SEED = "00" * 31 + "01"


def setup():
    def run(*a):
        subprocess.run(list(a), check=True, capture_output=True)
    run(f"{ROOT}/certificates/create_ca.sh", "--classic", "--out", f"{PKI}/ca")
    for name, extra in [("KME_A", ["--ip", "127.0.0.1"]), ("KME_B", ["--ip", "127.0.0.1"]),
                        ("SAE_A", []), ("SAE_B", []), ("SAE_X", []), ("app", [])]:
        run(f"{ROOT}/certificates/generate_cert.sh", "--classic", "--name", name,
            "--ca", f"{PKI}/ca", "--out", f"{PKI}/{name}", *extra)
    tls = lambda n: {"cert": f"{PKI}/{n}/node.crt", "key": f"{PKI}/{n}/node.key",  # noqa: E731
                     "ca": f"{PKI}/ca/ca.crt"}
    net = {
        "kmes": [
            {"id": "KME_A", "node": NODES["a"], "saes": ["SAE_A"],
             "etsi004_json": {"port": P["a_json"]},
             "etsi004_binary": {"port": P["a_bin"], "framing": "1.0.1"},
             "etsi014": dict(port=P["a_014"], **tls("KME_A"))},
            {"id": "KME_B", "node": NODES["b"], "saes": ["SAE_B"],
             "etsi004_json": {"port": P["b_json"]},
             "etsi004_binary": {"port": P["b_bin"], "framing": "2.1.1", "tls": tls("KME_B")},
             "etsi014": dict(port=P["b_014"], **tls("KME_B"))},
            {"id": "KME_C", "node": NODES["c"],
             "etsi004_json": {"port": P["c_json"], "reference_compat": True},
             "etsi004_binary": {"port": P["c_bin"], "framing": "1.0.1"}},
            {"id": "KME_D", "node": NODES["d"],
             "etsi004_json": {"port": P["d_json"], "reference_compat": True}},
            {"id": "KME_E", "node": NODES["e"], "etsi004_json": {"port": P["e_json"]}},
        ],
        "links": [
            {"id": "ab", "kmes": ["KME_A", "KME_B"], "rate_bps": 0, "capacity_bits": 1 << 30,
             "seed": SEED},
            {"id": "cd", "kmes": ["KME_C", "KME_D"], "rate_bps": 0, "capacity_bits": 1 << 30},
            {"id": "ae", "kmes": ["KME_A", "KME_E"], "rate_bps": 1000, "capacity_bits": 4096},
        ],
    }
    with open(f"{WORK}/network.json", "w") as f:
        json.dump(net, f)
    R.start("sim", [SIM, "-c", f"{WORK}/network.json", "--ctl", CTL, "--log-level", "warn"],
            f"{WORK}/sim.log")


def pair_json(chunk=32, a="a", b="b"):
    """A stream between two KMEs over the JSON dialect: (ksid, conn at a, conn at b)."""
    ca, cb = Json(P[f"{a}_json"]), Json(P[f"{b}_json"])
    r = ca.call("OPEN_CONNECT", source=uri(a), destination=uri(b), qos=dict(QOS, key_chunk_size=chunk))
    check(r["status"] == 1 and "key_stream_id" in r, f"first open: {r}")
    ks = r["key_stream_id"]
    r = cb.call("OPEN_CONNECT", source=uri(a), destination=uri(b), key_stream_id=ks,
                qos=dict(QOS, key_chunk_size=chunk))
    check(r["status"] == 0 and r["key_stream_id"] == ks, f"peer open: {r}")
    return ks, ca, cb


# ---- tests ----

@test
def json_both_ends_get_the_same_keys():
    ks, ca, cb = pair_json(64)
    for i in range(5):
        ra = ca.call("GET_KEY", key_stream_id=ks)
        rb = cb.call("GET_KEY", key_stream_id=ks, index=i)
        check(ra["status"] == 0 and rb["status"] == 0, f"{ra} {rb}")
        check(ra["index"] == i and rb["index"] == i, "index")
        check(len(ra["key_buffer"]) == 64 and ra["key_buffer"] == rb["key_buffer"], "keys differ")
        check(ra["metadata"]["hops"] == 0 and ra["metadata"]["age"] >= 0, "metadata")
    check(ca.call("CLOSE", key_stream_id=ks)["status"] == 0, "close a")
    check(cb.call("CLOSE", key_stream_id=ks)["status"] == 0, "close b")
    r = ca.call("GET_KEY", key_stream_id=ks)
    check(r["status"] == 4 and "not open" in r["message"], f"after close: {r}")


@test
def index_selects_the_position():
    ks, ca, cb = pair_json()
    r7 = ca.call("GET_KEY", key_stream_id=ks, index=7)
    r0 = ca.call("GET_KEY", key_stream_id=ks)  # next = 8 (above the highest taken)
    check(r7["index"] == 7 and r0["index"] == 8, f"{r7['index']} {r0['index']}")
    b7 = cb.call("GET_KEY", key_stream_id=ks, index=7)
    b0 = cb.call("GET_KEY", key_stream_id=ks)  # b has taken 7 only: next is 8
    check(b7["key_buffer"] == r7["key_buffer"] and b0["key_buffer"] == r0["key_buffer"], "keys")
    again = ca.call("GET_KEY", key_stream_id=ks, index=7)
    check(again["status"] == 2 and "already delivered" in again["message"], f"{again}")


@test
def open_blocks_until_the_peer_with_a_predefined_id():
    ks = str(uuid.uuid4())
    out = {}
    def first():
        out["a"] = Json(P["a_json"]).call("OPEN_CONNECT", source=uri("a"), destination=uri("b"),
                                          key_stream_id=ks, qos=dict(QOS, timeout=5000))
    t = threading.Thread(target=first)
    t0 = time.time()
    t.start()
    time.sleep(0.3)
    check(t.is_alive(), "OPEN_CONNECT returned before the peer came")
    rb = Json(P["b_json"]).call("OPEN_CONNECT", source=uri("a"), destination=uri("b"),
                                key_stream_id=ks, qos=dict(QOS, timeout=5000))
    t.join(5)
    check(out["a"]["status"] == 0 and rb["status"] == 0, f"{out} {rb}")
    check(0.3 <= time.time() - t0 < 3, "blocked for the wrong time")


@test
def status_6_timeout_and_status_5_in_use():
    ks = str(uuid.uuid4())
    t0 = time.time()
    r = Json(P["a_json"]).call("OPEN_CONNECT", source=uri("a"), destination=uri("b"),
                               key_stream_id=ks, qos=dict(QOS, timeout=300))
    check(r["status"] == 6 and 0.28 < time.time() - t0 < 2, f"{r}")
    ks2, ca, cb = pair_json()
    r = Json(P["a_json"]).call("OPEN_CONNECT", source=uri("a"), destination=uri("b"),
                               key_stream_id=ks2, qos=QOS)
    check(r["status"] == 5 and "already open" in r["message"], f"{r}")


@test
def status_4_no_link_or_bad_request():
    c = Json(P["b_json"])
    r = c.call("OPEN_CONNECT", source=uri("b"), destination=uri("c"), qos=QOS)
    check(r["status"] == 4 and "no QKD link" in r["message"], f"{r}")
    r = c.call("OPEN_CONNECT", source="qkd://x@not-a-uuid", destination=uri("a"), qos=QOS)
    check(r["status"] == 4, f"{r}")
    c.send_raw(b'{"command": "GET_KEY", "data": {"key_stream_id": 5}}')
    r = c.reply()
    check(r["status"] == 4 and "expected a UUID string" in r["message"], f"{r}")
    c.send_raw(b'{"command": "FETCH", "data": {}}')
    check("unknown command" in c.reply()["message"], "unknown command")
    c.send_raw(b'garbage{"command": ')  # then the rest arrives later, split
    r = c.reply()
    check(r["status"] == 4 and "malformed" in r["message"], f"{r}")
    c.send_raw(b'"CLOSE", "data": {"key_stream_id": "' + str(uuid.uuid4()).encode() + b'"}}')
    r = c.reply()
    check(r["status"] == 4 and "not open" in r["message"], f"split request: {r}")
    # the connection still works
    r = c.call("OPEN_CONNECT", source=uri("a"), destination=uri("b"), qos=QOS)
    check(r["status"] == 1, f"{r}")


@test
def status_7_counter_proposal():
    c = Json(P["a_json"])
    r = c.call("OPEN_CONNECT", source=uri("a"), destination=uri("e"), qos=dict(QOS, min_bps=5000))
    check(r["status"] == 7 and r["qos"]["min_bps"] == 1000, f"{r}")
    r = c.call("OPEN_CONNECT", source=uri("a"), destination=uri("b"), qos=dict(QOS, key_chunk_size=0))
    check(r["status"] == 7 and r["qos"]["key_chunk_size"] > 0, f"{r}")
    r = c.call("OPEN_CONNECT", source=uri("a"), destination=uri("b"),
               qos=dict(QOS, key_chunk_size=1 << 20))
    check(r["status"] == 7 and r["qos"]["key_chunk_size"] == 4096, f"{r}")


@test
def status_2_empty_pool_and_3_peer_absent():
    ca = Json(P["a_json"])
    r = ca.call("OPEN_CONNECT", source=uri("a"), destination=uri("b"), qos=QOS)
    r = ca.call("GET_KEY", key_stream_id=r["key_stream_id"])
    check(r["status"] == 3 and "peer application" in r["message"], f"peer absent: {r}")
    # link ae: 4096 bits, refilled at 1000 bit/s. Two 2048-bit keys, then the pool is empty.
    ks, ca, ce = pair_json(256, "a", "e")
    for i in range(2):
        r = ca.call("GET_KEY", key_stream_id=ks)
        check(r["status"] == 0, f"key {i}: {r}")
    r = ca.call("GET_KEY", key_stream_id=ks)
    check(r["status"] == 2 and "pool" in r["message"], f"empty pool: {r}")
    # the other end still gets the keys this end took (charged once)
    check(ce.call("GET_KEY", key_stream_id=ks, index=1)["status"] == 0, "peer's copy")
    check(ctl("drain", "ae")[0] == 0, "drain")
    r = ce.call("GET_KEY", key_stream_id=ks, index=5)
    check(r["status"] == 2, f"after drain: {r}")


@test
def status_8_metadata_too_small_consumes_nothing():
    ks, ca, cb = pair_json()
    r = ca.call("GET_KEY", key_stream_id=ks, index=0, metadata={"size": 5, "buffer": ""})
    check(r["status"] == 8 and r["metadata_size"] > 5, f"{r}")
    r = ca.call("GET_KEY", key_stream_id=ks, index=0, metadata={"size": 46, "buffer": "x" * 46})
    check(r["status"] == 0 and r["index"] == 0, f"{r}")


@test
def reference_compat_same_id_and_next_key():
    src, dst = uri("c", "SPI_1"), uri("d", "SPI_1")
    cc, cd = Json(P["c_json"]), Json(P["d_json"])
    rc = cc.call("OPEN_CONNECT", source=src, destination=dst, qos=QOS)
    rd = cd.call("OPEN_CONNECT", source=src, destination=dst, qos=QOS)
    check(rc["status"] == 0 and rd["status"] == 0, f"{rc} {rd}")
    check(rc["key_stream_id"] == rd["key_stream_id"], "compat ids differ")
    check(set(rc) == {"status", "key_stream_id"}, f"compat reply has extra fields: {rc}")
    ks = rc["key_stream_id"]
    kc = [cc.call("GET_KEY", key_stream_id=ks, index=0)["key_buffer"] for _ in range(3)]
    kd = [cd.call("GET_KEY", key_stream_id=ks, index=0)["key_buffer"] for _ in range(3)]
    check(kc == kd and len({bytes(k) for k in kc}) == 3, "compat keys")


@test
def binary_101_and_json_share_a_stream():
    ks, ca, cb = pair_json()
    b = Binary(P["a_bin"], "1.0.1")
    st, key, meta = b.get(uuid.UUID(ks), 0)
    rb = cb.call("GET_KEY", key_stream_id=ks, index=0)
    check(st == 0 and list(key) == rb["key_buffer"] and meta["hops"] == 0, f"{st} {meta}")
    st, key, extra = b.get(uuid.UUID(ks), 1, metasize=4)
    check(st == 8 and struct.unpack(">I", extra)[0] > 4, f"status 8 in 1.0.1: {st} {extra!r}")
    # a binary OPEN_CONNECT, status 1, then joined over JSON
    st, ksid = b.open(uri("a", "bin"), uri("b", "bin"))
    check(st == 1 and ksid is not None, f"binary open {st}")
    r = cb.call("OPEN_CONNECT", source=uri("a", "bin"), destination=uri("b", "bin"),
                key_stream_id=str(ksid), qos=QOS)
    check(r["status"] == 0, f"{r}")
    st, key, _ = b.get(ksid, 0)
    check(st == 0 and list(key) == cb.call("GET_KEY", key_stream_id=str(ksid), index=0)["key_buffer"], "keys")
    check(b.close_stream(ksid) == 0, "close")


@test
def binary_211_over_tls_with_client_certificates():
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls.load_verify_locations(f"{PKI}/ca/ca.crt")
    tls.load_cert_chain(f"{PKI}/app/node.crt", f"{PKI}/app/node.key")
    b = Binary(P["b_bin"], "2.1.1", tls)
    ks, ca, cb = pair_json()
    st, key, meta = b.get(uuid.UUID(ks), 3)
    ra = ca.call("GET_KEY", key_stream_id=ks, index=3)
    check(st == 0 and list(key) == ra["key_buffer"], "2.1.1 key")
    st, _, _ = b.get(uuid.UUID(ks), 3)
    check(st == 2, f"second delivery of a position: {st}")
    check(b.close_stream(uuid.UUID(ks)) == 0, "close over 2.1.1")
    # no client certificate: the handshake is refused
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bare.load_verify_locations(f"{PKI}/ca/ca.crt")
    try:
        Binary(P["b_bin"], "2.1.1", bare).open(uri("a"), uri("b"))
        raise AssertionError("TLS without a client certificate was served")
    except (ssl.SSLError, ConnectionError, OSError):
        pass


@test
def etsi_014_with_curl_and_client_certificates():
    code, st = curl(P["a_014"], "/api/v1/keys/SAE_B/status", "SAE_A")
    check(code == 200 and st["source_KME_ID"] == "KME_A" and st["target_KME_ID"] == "KME_B"
          and st["master_SAE_ID"] == "SAE_A", f"status {code} {st}")
    code, enc = curl(P["a_014"], "/api/v1/keys/SAE_B/enc_keys?number=2&size=256", "SAE_A")
    check(code == 200 and len(enc["keys"]) == 2, f"enc_keys {code} {enc}")
    code, enc2 = curl(P["a_014"], "/api/v1/keys/SAE_B/enc_keys", "SAE_A", {"number": 1, "size": 512})
    check(code == 200 and len(enc2["keys"]) == 1, f"enc_keys POST {code}")
    ids = [{"key_ID": k["key_ID"]} for k in enc["keys"]]
    # the master cannot fetch the slave's keys
    code, _ = curl(P["b_014"], "/api/v1/keys/SAE_A/dec_keys", "SAE_X", {"key_IDs": ids})
    check(code == 401, f"unknown SAE: {code}")
    code, dec = curl(P["b_014"], "/api/v1/keys/SAE_A/dec_keys", "SAE_B", {"key_IDs": ids})
    check(code == 200 and dec["keys"] == enc["keys"], f"dec_keys {code}")
    code, dec = curl(P["b_014"], f"/api/v1/keys/SAE_A/dec_keys?key_ID={enc2['keys'][0]['key_ID']}", "SAE_B")
    check(code == 200 and dec["keys"] == enc2["keys"], f"dec_keys GET {code}")
    code, err = curl(P["b_014"], "/api/v1/keys/SAE_A/dec_keys", "SAE_B", {"key_IDs": ids})
    check(code == 400 and "not found" in err["message"], f"keys are removed once delivered: {code}")
    code, err = curl(P["a_014"], "/api/v1/keys/SAE_B/enc_keys?size=100", "SAE_A")
    check(code == 400 and "size" in err["message"], f"size not a multiple of 8: {code}")
    code, err = curl(P["a_014"], "/api/v1/keys/SAE_B/enc_keys?size=16384", "SAE_A")
    check(code == 400, f"size above the maximum: {code}")
    code, _ = curl(P["a_014"], "/api/v1/keys/SAE_B/status")
    check(code == 401, f"no client certificate: {code}")
    code, err = curl(P["a_014"], "/api/v1/keys/SAE_Q/status", "SAE_A")
    check(code == 400, f"unknown slave: {code}")


@test
def control_pause_corrupt_drop_pools():
    ks, ca, cb = pair_json()
    check(ctl("pause", "ab")[0] == 0, "pause")
    r = ca.call("GET_KEY", key_stream_id=ks)
    check(r["status"] == 4 and "paused" in r["message"], f"{r}")
    check(ctl("resume", "ab")[0] == 0, "resume")
    check(ctl("corrupt", "KME_B")[0] == 0, "corrupt")
    ra, rb = ca.call("GET_KEY", key_stream_id=ks, index=0), cb.call("GET_KEY", key_stream_id=ks, index=0)
    check(ra["status"] == 0 and rb["status"] == 0 and ra["key_buffer"] != rb["key_buffer"],
          "corrupted key should differ")
    ra, rb = ca.call("GET_KEY", key_stream_id=ks, index=1), cb.call("GET_KEY", key_stream_id=ks, index=1)
    check(ra["key_buffer"] == rb["key_buffer"], "only the next key is corrupted")
    check(ctl("drop", "KME_A")[0] == 0, "drop")
    try:
        r = ca.call("GET_KEY", key_stream_id=ks)
        raise AssertionError(f"connection survived a drop: {r}")
    except (ConnectionError, OSError):
        pass
    rc, pools = ctl("pools")
    check(rc == 0 and {l["id"] for l in pools["links"]} == {"ab", "cd", "ae"}, f"{pools}")
    rc, err = ctl("pause", "nope")
    check(rc != 0 and "no link" in err["error"], "unknown link")


@test
def hostile_input_never_crashes():
    for payload in [b"\xff" * 5000, b"{" * 10000, b'{"command": "' + b"A" * 70000 + b'"}',
                    b'{"command": "OPEN_CONNECT", "data": {"source": "\x00"}}']:
        c = Json(P["a_json"])
        c.send_raw(payload)
        try:
            r = c.reply()
            check(r["status"] == 4, f"{r}")
        except (ConnectionError, socket.timeout):
            pass
        c.close()
    b = socket.create_connection(("127.0.0.1", P["a_bin"]))
    b.sendall(b"\x09\x09\x09\x02" + struct.pack(">I", 1 << 30))  # wrong version, huge length
    b.settimeout(5)
    check(b.recv(100) == b"", "binary: a wrong header closes the connection")
    b = Binary(P["a_bin"], "1.0.1")
    body = b.rpc(0x04, b"\x00" * 7)  # truncated GET_KEY
    check(struct.unpack(">I", body[:4])[0] == 4, "truncated GET_KEY answered with status 4")
    # still serving
    pair_json()


@test
def concurrent_streams():
    errors = []
    def worker():
        try:
            ks, ca, cb = pair_json(32)
            for i in range(20):
                check(ca.call("GET_KEY", key_stream_id=ks, index=i)["key_buffer"] ==
                      cb.call("GET_KEY", key_stream_id=ks, index=i)["key_buffer"], "keys")
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    ts = [threading.Thread(target=worker) for _ in range(16)]
    [t.start() for t in ts]
    [t.join(60) for t in ts]
    check(not errors, f"{len(errors)} workers failed: {errors[:2]}")


def bench():
    """Keys/s served per protocol on loopback (one client, 32-byte keys); printed, not gated."""
    ks, ca, _ = pair_json()
    n, t0 = 0, time.time()
    while time.time() - t0 < 1:
        ca.call("GET_KEY", key_stream_id=ks)
        n += 1
    rate_json = n / (time.time() - t0)
    b = Binary(P["a_bin"], "1.0.1")
    n, t0 = 0, time.time()
    while time.time() - t0 < 1:
        b.get(uuid.UUID(ks), 100000 + n)
        n += 1
    rate_bin = n / (time.time() - t0)
    ctx = ssl.create_default_context(cafile=f"{PKI}/ca/ca.crt")
    ctx.load_cert_chain(f"{PKI}/SAE_A/node.crt", f"{PKI}/SAE_A/node.key")
    h = http.client.HTTPSConnection("127.0.0.1", P["a_014"], context=ctx)
    n, t0 = 0, time.time()
    while time.time() - t0 < 1:
        h.request("GET", "/api/v1/keys/SAE_B/enc_keys?number=1&size=256")
        r = h.getresponse()
        r.read()
        n += 1
    rate_014 = n / (time.time() - t0)
    print(f"bench: keys/s on loopback, one client: 004-json {rate_json:.0f}, "
          f"004-binary-1.0.1 {rate_bin:.0f}, 014 enc_keys {rate_014:.0f}")


def the_simulator_survived():
    bench()
    check(R.procs["sim"].poll() is None, "the simulator died")


R.run(setup, finish=the_simulator_survived)

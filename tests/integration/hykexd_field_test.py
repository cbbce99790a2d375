#!/usr/bin/env python3
"""hykexd meets the field (issue 12): the original's own node files, and KMEs that behave like
third-party ones (the simulator's quirk profiles, docs/qkdsim.md "Profiles").

Usage: hykexd_field_test.py BIN_DIR REPO_ROOT
- Alice and Bob: nodes/Alice and nodes/Bob as shipped (addresses and ports changed only), with
  a trusted_peers_info.json that lists all three nodes, each node itself included, and
  certificates as the original's scripts make them (IP SAN only, no UUID), on two loopback
  addresses of one host; Alice listens on the wildcard address.
- P and Q: KMEs in the "qubip" profile (strict QoS with status 6/7, all-zero keys for keys not
  made yet) on a slow link (768 bit/s: three 32-byte keys a second).
- R and S: KMEs in the "own-ids" profile (each KME its own stream id), qkd.join same-uris.
- W and X: KMEs in the "own-ids" and "opaque-ids" profiles (each KME its own stream id, and
  no UUID), qkd.join same-uris; W keeps a store (state_dir).
- T and V: ETSI 014 KMEs in the "try-later-014" profile (HTTP 400 "try again later" on an empty
  pool, as next-door-key-simulator) on a slow link.
Ends with "N passed, M failed, K skipped" (the runner: hxtest.Runner).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hxtest import Runner, check, free_loopback, free_port, next_json  # noqa: E402

BIN, ROOT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
U = {"Alice": "a" * 8 + "-aaaa-aaaa-aaaa-" + "a" * 12, "Bob": "b" * 8 + "-bbbb-bbbb-bbbb-" + "b" * 12,
     "Charlie": "c" * 8 + "-cccc-cccc-cccc-" + "c" * 12,
     "P": "11111111-1111-4111-8111-111111111111", "Q": "22222222-2222-4222-8222-222222222222",
     "R": "33333333-3333-4333-8333-333333333333", "S": "44444444-4444-4444-8444-444444444444",
     "T": "55555555-5555-4555-8555-555555555555", "V": "66666666-6666-4666-8666-666666666666",
     "W": "77777777-7777-4777-8777-777777777777", "X": "88888888-8888-4888-8888-888888888888"}
R = Runner("hykexd-field-")
test = R.test
WORK = R.work
PORTS = {k: free_port() for k in ["kA", "kB", "kP", "kQ", "kR", "kS", "kT", "kV", "apiP", "apiQ",
                                   "apiR", "apiS", "apiT", "apiV", "peerP", "peerQ", "peerR",
                                   "peerS", "peerT", "peerV", "kW", "kX", "apiW", "apiX",
                                   "peerW", "peerX"]}
# Alice, Bob and Charlie on their own loopback addresses (prefix + 0, 1, 2); Alice's peer port
# on the wildcard address.
ORIG_PORTS = {"api": free_port(), "peer": free_port(), "peerA": free_port("0.0.0.0")}
LO = free_loopback("127.0.0.2", list(ORIG_PORTS.values()))
ADDR = {"Alice": LO + "0", "Bob": LO + "1", "Charlie": LO + "2"}
CTL = f"{WORK}/sim.ctl"
delivered = []


class App:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=60)
        self.buf = b""

    def call(self, command, **data):
        self.s.sendall(json.dumps({"command": command, "data": data}).encode())
        obj, _, self.buf = next_json(self.s, self.buf, "daemon closed the connection")
        return obj

    def open(self, src, dst, **qos):
        q = {"key_chunk_size": 32, "max_bps": 32, "min_bps": 32, "jitter": 0, "priority": 0,
             "timeout": 20000, "ttl": 0, "metadata_mimetype": "application/json"}
        q.update(qos)
        return self.call("OPEN_CONNECT", source=src, destination=dst, qos=q)


def api_of(node):
    if node in ADDR:
        return ADDR[node], ORIG_PORTS["api"]
    return "127.0.0.1", PORTS["api" + node]


def huri(node, sources="ML-KEM-768,QKD", app="field"):
    return f"hybrid://{app}@{U[node]}?hybridization=hkdf&key_sources={sources}"


def both(a, b, body, sources="ML-KEM-768,QKD", app="field", **qos):
    """Both applications open a stream a -> b (a a little first) and run body(app, ksid)."""
    out = {}

    def side(node):
        c = App(*api_of(node))
        r = c.open(huri(a, sources, app), huri(b, sources, app), **qos)
        out[node + "_open"] = r
        if r.get("status") == 0:
            out[node] = body(c, r["key_stream_id"])
            c.call("CLOSE", key_stream_id=r["key_stream_id"])
    ts = [threading.Thread(target=side, args=(n,)) for n in (a, b)]
    ts[0].start()
    time.sleep(0.1)
    ts[1].start()
    [t.join(120) for t in ts]
    return out


def take(n):
    def body(c, ks):
        keys = []
        for i in range(n):
            g = c.call("GET_KEY", key_stream_id=ks, index=i)
            keys.append(bytes(g["key_buffer"]).hex() if g.get("status") == 0 else g)
        delivered.extend(k for k in keys if isinstance(k, str))
        return keys
    return body


def agree(out, a, b, n):
    check(out.get(a + "_open", {}).get("status") == 0, f"open at {a}: {out.get(a + '_open')}")
    check(out.get(b + "_open", {}).get("status") == 0, f"open at {b}: {out.get(b + '_open')}")
    check(all(isinstance(k, str) for k in out.get(a, [None])) and len(out[a]) >= n,
          f"keys at {a}: {out.get(a)} / at {b}: {out.get(b)}")
    check(out[a] == out[b], f"keys differ: {out[a]} / {out[b]}")


def log_of(node):
    return open(f"{WORK}/{node}.log").read()


def wait_for(what, fn, timeout=20):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if fn():
            return
        time.sleep(0.2)
    check(False, f"not within {timeout} s: {what}")


def start(node, cwd=None, args=None):
    argv = [f"{BIN}/hykexd"] + (args or ["-c", f"{WORK}/{node}.json", "-p",
                                         f"{WORK}/{node}-peers.json"])
    return R.start(node, argv, f"{WORK}/{node}.log", exit_ok=(0,), cwd=cwd or WORK)


def setup():
    def run(*a, cwd=WORK):
        subprocess.run(list(a), check=True, capture_output=True, cwd=cwd)
    # The original's certificates: classic keys, an IP SAN only, no node UUID.
    run(f"{ROOT}/certificates/create_ca.sh", "--classic", "--out", "ca_orig")
    run(f"{ROOT}/certificates/create_ca.sh", "--out", "ca")
    for n in "PQRSTVWX":
        run(f"{ROOT}/certificates/generate_cert.sh", "--uuid", U[n], "--name", n, "--ip",
            "127.0.0.1", "--out", n)
    # ETSI 014 runs over GnuTLS (libmicrohttpd, libcurl): a classic PKI for KMEs and SAEs.
    run(f"{ROOT}/certificates/create_ca.sh", "--classic", "--out", "ca014")
    for n, extra in (("KME_T", ["--ip", "127.0.0.1"]), ("KME_V", ["--ip", "127.0.0.1"]),
                     ("SAE_T", []), ("SAE_V", [])):
        run(f"{ROOT}/certificates/generate_cert.sh", "--classic", "--name", n, "--ca", "ca014",
            "--out", n, *extra)
    net = {"kmes": [], "links": [
        {"id": "ab", "kmes": ["KME_Alice", "KME_Bob"], "rate_bps": 0},
        # 768 bit/s = three 32-byte keys a second; a pool of four keys
        {"id": "pq", "kmes": ["KME_P", "KME_Q"], "rate_bps": 768, "capacity_bits": 1024},
        {"id": "rs", "kmes": ["KME_R", "KME_S"], "rate_bps": 0},
        # 768 bit/s again, a pool of eight keys: enc_keys for 4 keys often finds it empty
        {"id": "tv", "kmes": ["KME_T", "KME_V"], "rate_bps": 768, "capacity_bits": 2048},
        {"id": "wx", "kmes": ["KME_W", "KME_X"], "rate_bps": 0}]}
    for n, k, profile in (("Alice", "kA", "standard"), ("Bob", "kB", "standard"),
                          ("P", "kP", "qubip"), ("Q", "kQ", "qubip"), ("R", "kR", "own-ids"),
                          ("S", "kS", "own-ids"), ("W", "kW", ["own-ids", "opaque-ids"]),
                          ("X", "kX", ["own-ids", "opaque-ids"])):
        net["kmes"].append({"id": "KME_" + n, "node": U[n], "profile": profile,
                            "etsi004_json": {"port": PORTS[k]}})
    # ETSI 014 KMEs that also give at most 3 keys a request (their status says so; T's
    # batches are of 4)
    for n in "TV":
        net["kmes"].append({"id": "KME_" + n, "node": U[n], "saes": ["SAE_" + n],
                            "profile": "try-later-014",
                            "etsi014": {"port": PORTS["k" + n], "max_key_per_request": 3,
                                        "cert": f"{WORK}/KME_{n}/node.crt",
                                        "key": f"{WORK}/KME_{n}/node.key",
                                        "ca": f"{WORK}/ca014/ca.crt"}})
    json.dump(net, open(f"{WORK}/net.json", "w"))
    R.start("sim", [f"{BIN}/hykex-qkdsim", "-c", f"{WORK}/net.json", "--ctl", CTL,
                    "--log-level", "warn"], f"{WORK}/sim.log", exit_ok=None)
    # The original's node folders, addresses and ports changed only.
    for n in ("Alice", "Bob", "Charlie"):
        d = f"{WORK}/{n}"
        os.makedirs(f"{d}/certs")
        run(f"{ROOT}/certificates/generate_cert.sh", "--classic", "--name", n, "--ca",
            f"{WORK}/ca_orig", "--ip", ADDR[n], "--out", f"{d}/certs")
        cfg = json.load(open(f"{ROOT}/nodes/{n}/config.json"))
        cfg["certificate_config"]["certificate_ip"] = ADDR[n]
        cfg["hybridization_server_address"]["host"] = ADDR[n]
        cfg["hybridization_server_address"]["port"] = ORIG_PORTS["api"]
        cfg["qkd_address"] = {"host": "127.0.0.1", "port": PORTS.get("k" + n[0], 1)}
        cfg["peer_local_address"] = {"host": ADDR[n], "port": ORIG_PORTS["peer"]}
        if n == "Alice":  # listens on every address: dials from certificate_ip
            cfg["peer_local_address"] = {"host": "0.0.0.0", "port": ORIG_PORTS["peerA"]}
        json.dump(cfg, open(f"{d}/config.json", "w"), indent=2)
    # trusted_peers_info.json as the original ships it: every node, this one included.
    peers = {U[n]: {"address": {"host": ADDR[n], "port": ORIG_PORTS["peer"]}}
             for n in ("Alice", "Bob", "Charlie")}
    peers[U["Alice"]]["address"]["port"] = ORIG_PORTS["peerA"]
    for n in ("Alice", "Bob", "Charlie"):
        json.dump(peers, open(f"{WORK}/{n}/trusted_peers_info.json", "w"), indent=2)
    for n in ("Alice", "Bob"):
        start(n, cwd=f"{WORK}/{n}", args=["-c", "config.json", "-p", "trusted_peers_info.json"])
    for n, m in (("P", "Q"), ("Q", "P"), ("R", "S"), ("S", "R"), ("T", "V"), ("V", "T"),
                 ("W", "X"), ("X", "W")):
        cfg = {"uuid": U[n],
               "certificate_config": {"cert_authority_path": f"{n}/ca.crt",
                                      "cert_path": f"{n}/node.crt", "key_path": f"{n}/node.key"},
               "hybridization_server_address": {"host": "127.0.0.1", "port": PORTS["api" + n]},
               "qkd_address": {"host": "127.0.0.1", "port": PORTS["k" + n]},
               "peer_local_address": {"host": "127.0.0.1", "port": PORTS["peer" + n]},
               # T and V at debug, for the kept logs of the 'try again later' case: it got no
               # key at all twice under load, while T's batches raced for the KME's few keys
               # (now one batch at a time once the KME is short: initiator.c qkd_not_yet)
               "log_level": "debug" if n in "TV" else "info"}
        if n == "P":  # min_bps 0: the strict KME counter-proposes, P retries with it
            cfg["qkd"] = {"qos": {"min_bps": 0}}
        if n in "RSWX":
            cfg["qkd"] = {"join": "same-uris"}
        if n == "W":
            cfg["state_dir"] = f"{WORK}/W-state"
        if n in "TV":
            cfg["qkd"] = {"protocol": "etsi014", "sae_id": f"SAE_{n}",
                          "tls": {"cert": f"SAE_{n}/node.crt", "key": f"SAE_{n}/node.key",
                                  "ca": "ca014/ca.crt"}}
            cfg["limits"] = {"batch_size": 4}
        json.dump(cfg, open(f"{WORK}/{n}.json", "w"), indent=1)
        json.dump({U[m]: {"address": {"host": "127.0.0.1", "port": PORTS["peer" + m]}}},
                  open(f"{WORK}/{n}-peers.json", "w"))
        start(n)


# ---- cases ----

@test
def original_files_on_one_host():
    """The original's node files, its self-listing trusted_peers_info.json and IP-SAN
    certificates: Alice (wildcard listen address) dials Bob from her certificate_ip and Bob
    identifies her by it; keys agree; the log file is written at its own level, mode 0600."""
    wait_for("Alice and Bob link", lambda: "peer link up" in log_of("Alice"))
    out = both("Alice", "Bob", take(5))
    agree(out, "Alice", "Bob", 5)
    for n in ("Alice", "Bob"):
        lines = [ln for ln in log_of(n).splitlines() if "own entry in the trusted peers" in ln]
        check(len(lines) == 1 and "level=info" in lines[0], f"{n}: self-listed line {lines}")
        path = f"{WORK}/{n}/hybrid.log"
        check(os.path.exists(path), f"{n}: no log file (logging_config.filename)")
        check(os.stat(path).st_mode & 0o777 == 0o600, f"{n}: log file mode")
        text = open(path).read()
        check("hykexd ready" in text, f"{n}: the log file has not the console's lines")
        check("level=debug" not in log_of(n), f"{n}: the console is not at console_log_type")
        for k in delivered:
            check(k[:16] not in text.lower(), "a key is in the log file")
    # file_log_type debug: debug lines in the file only
    check("level=debug" in open(f"{WORK}/Alice/hybrid.log").read(),
          "the log file is not at file_log_type debug")


@test
def log_file_reopened_on_sighup():
    """logrotate moves hybrid.log away and sends SIGHUP: hykexd writes a new one."""
    path = f"{WORK}/Bob/hybrid.log"
    os.rename(path, path + ".1")
    os.kill(R.procs["Bob"].pid, 1)
    wait_for("a new log file", lambda: os.path.exists(path) and
             "log file reopened" in open(path).read())
    check(os.stat(path).st_mode & 0o777 == 0o600, "new log file mode")


def for_seconds(secs):
    """GET_KEY at index 0, 1, ... for secs seconds: status 2 (not yet) is asked again; 3 (the
    other application, which started first, has finished and closed) ends it."""
    def body(c, ks):
        keys, t0, i = [], time.time(), 0
        while time.time() - t0 < secs:
            g = c.call("GET_KEY", key_stream_id=ks, index=i)
            if g.get("status") == 0:
                keys.append(bytes(g["key_buffer"]).hex())
                i += 1
            elif g.get("status") == 3:
                break
            elif g.get("status") != 2:
                keys.append(g)
                break
        delivered.extend(k for k in keys if isinstance(k, str))
        return keys
    return body


@test
def strict_qos_kme_and_keys_not_made_yet():
    """QUBIP-like KMEs (status 6 for timeout 0, 7 for zero rates; all-zero keys for keys not
    made yet) on a 3 keys/s link: the QoS from config is accepted (P retries once with the
    counter-proposal), keys not there yet are asked again at the same index, and keys arrive
    at the link's rate, the same at both ends."""
    out = both("P", "Q", for_seconds(10), timeout=5000)
    check(out.get("P_open", {}).get("status") == 0, f"open at P: {out.get('P_open')}")
    check(out.get("Q_open", {}).get("status") == 0, f"open at Q: {out.get('Q_open')}")
    p, q = out.get("P", []), out.get("Q", [])
    n = min(len(p), len(q))
    check(all(isinstance(k, str) for k in p + q), f"an error: {p[-1:]} {q[-1:]}")
    check(n >= 10, f"only {len(p)} / {len(q)} keys in 10 s from a 3 keys/s link")
    check(p[:n] == q[:n], "keys differ between P and Q")
    check(all(int(k, 16) != 0 for k in p), "an all-zero key was delivered")
    check("counter-proposed" in log_of("P"), "P did not retry with the counter-proposal")
    pools = json.loads(subprocess.run([f"{BIN}/hykex-qkdsim", "ctl", CTL, "pools"],
                                      capture_output=True, text=True, timeout=10).stdout)
    made = [ln["keys_delivered"] for ln in pools["links"] if ln["id"] == "pq"]
    print(f"    P/Q: {len(p)} and {len(q)} keys in 10 s; the link's KMEs delivered {made} keys")


@test
def etsi014_try_again_later():
    """An ETSI 014 KME whose empty pool answers HTTP 400 "try again later": that is no key
    yet (status 2 while waiting, asked again after the back-off), never status 4; keys agree.
    Its status gives max_key_per_request 3, below T's batches of 4: T asks for no more (else
    every enc_keys is refused with 400 and the application gets status 4)."""
    # GET_KEY waits at most 1 s (the QoS timeout): shorter than the pool takes to refill, so
    # the applications see what hykexd makes of "try again later"
    out = both("T", "V", for_seconds(10), timeout=1000)
    check(out.get("T_open", {}).get("status") == 0, f"open at T: {out.get('T_open')}")
    check(out.get("V_open", {}).get("status") == 0, f"open at V: {out.get('V_open')}")
    t, v = out.get("T", []), out.get("V", [])
    check(all(isinstance(k, str) for k in t + v), f"an error: {t[-1:]} {v[-1:]}")
    n = min(len(t), len(v))
    # Keys go on arriving through the KME's "try again later" (asserted below: it said so, and
    # nothing failed). How many arrive is a rate, printed, not asserted: 20-32 in 10 s alone,
    # 4 once in CI's parallel ASan run.
    check(n >= 2, f"only {len(t)} / {len(v)} keys in 10 s")
    check(t[:n] == v[:n], "keys differ between T and V")
    check("try again later" in log_of("T"), "the KME never said 'try again later'")
    check("key production failed" not in log_of("T"), "'try again later' logged as a failure")
    check(any("KME's max_key_per_request" in ln and "max_key_per_request=3" in ln
              for ln in log_of("T").splitlines()), "T did not take the KME's limit of 3")
    print(f"    T/V: {len(t)} and {len(v)} keys in 10 s")


@test
def kme_refusal_reaches_both_applications():
    """P asks its strict KME for timeout 0 (qkd.qos.timeout 0): the KME answers 6 "timeout 0 is
    not a wait". P's application gets status 4 with the KME's answer, logged at warn, and Q's
    application the same reason from the peer node, not "did not open in time"."""
    cfg = json.load(open(f"{WORK}/P.json"))
    cfg["qkd"] = {"qos": {"timeout": 0}}
    json.dump(cfg, open(f"{WORK}/P-t0.json", "w"))
    R.stop("P")
    start("P", args=["-c", f"{WORK}/P-t0.json", "-p", f"{WORK}/P-peers.json"])
    wait_for("P and Q link again", lambda: log_of("P").split("hykexd ready")[-1].count(
        "peer link up") > 0)
    out = both("P", "Q", take(1), app="refused")
    p, q = out.get("P_open", {}), out.get("Q_open", {})
    check(p.get("status") == 4 and "timeout 0 is not a wait" in p.get("message", "") and
          "refused OPEN_CONNECT with status 6" in p.get("message", ""), f"at P: {p}")
    check(q.get("status") == 4 and "timeout 0 is not a wait" in q.get("message", "") and
          q.get("message", "").startswith("peer node: "), f"at Q: {q}")
    check(any("level=warn" in ln and "KME refused OPEN_CONNECT" in ln
              for ln in log_of("P").splitlines()), "P did not log the refusal at warn")
    R.stop("P")
    start("P")


@test
def own_stream_id_at_each_kme():
    """KMEs that give each end its own stream id (qkd.join same-uris): each node uses its own
    KME's id and the batch transcript binds what both ends share: keys agree."""
    out = both("R", "S", take(20))
    agree(out, "R", "S", 20)
    check("does not verify" not in log_of("R") + log_of("S"), "a batch signature failed")


@test
def opaque_kme_stream_ids():
    """KMEs whose key_stream_ids are no UUIDs ("ks-" and hex, as a JSON-dialect KME is free to
    give): each node keeps its own KME's id as given, uses it for GET_KEY and CLOSE and keeps
    it in its store row; keys agree at both ends."""
    import sqlite3
    rows = []

    def body(c, ks):
        keys = take(20)(c, ks)
        # W's writer thread rewrites the row with the KME's id once W's KME has answered (the
        # JOIN may have written it first): read it until it has one, both ends still open
        t0 = time.time()
        while time.time() - t0 < 10 and not (rows and rows[0][0]):
            db = sqlite3.connect(f"file:{WORK}/W-state/hykexd.db?mode=ro", uri=True)
            rows[:] = db.execute("SELECT qkd_ksid, typeof(qkd_ksid) FROM streams").fetchall()
            db.close()
            time.sleep(0.1)
        return keys
    out = both("W", "X", body)
    agree(out, "W", "X", 20)
    print(f"    W's store row: {rows}")
    check(len(rows) == 1 and rows[0][0].startswith("ks-") and rows[0][1] == "text",
          f"W's store row holds {rows}")
    check("not a UUID" not in log_of("W") + log_of("X"), "an opaque id was refused")


@test
def refused_link_backs_off():
    """S stops trusting R (its trusted peers file lists nobody): R, which dials, backs off
    exponentially with jitter up to peer.reconnect_max_s (10 s) instead of redialling in a
    loop, and logs each refusal once, naming the wait (no "link up" / "link down" pair per
    attempt). Counted over 30 s: the dials S refused, and R's log lines about them."""
    R.stop("S")
    json.dump({}, open(f"{WORK}/S-none.json", "w"))
    start("S", args=["-c", f"{WORK}/S.json", "-p", f"{WORK}/S-none.json"])
    s0, r0 = len(log_of("S").splitlines()), len(log_of("R").splitlines())
    time.sleep(30)
    s_lines = log_of("S").splitlines()[s0:]
    r_lines = log_of("R").splitlines()[r0:]
    refused = [ln for ln in s_lines if "not a trusted peer" in ln]
    about = [ln for ln in r_lines if "peer" in ln and "level=debug" not in ln]
    said = [ln for ln in about if "does not accept this node" in ln and "retry_in_ms=" in ln]
    print(f"    30 s: S refused {len(refused)} dials from R; R logged {len(about)} lines about it")
    check(1 <= len(refused) <= 12, f"{len(refused)} dials in 30 s")
    # one line per refused dial (the last dial's line may fall either side of the count)
    check(len(about) <= len(refused) + 1, f"R logged {len(about)} lines: {about[:6]}")
    check(len(said) >= len(refused) - 1, f"R logged the refusals as {about[:4]}")
    check(not any("peer link up" in ln for ln in about), f"R logged refused links as up")
    R.stop("S")
    start("S")
    linked("R", "S", 30)  # R redials after its back-off (up to peer.reconnect_max_s)


def linked(a, b, timeout):
    """Waits until a's link to b is up (a's STATUS)."""
    def up():
        st = App(*api_of(a)).call("STATUS")
        return any(p.get("uuid") == U[b] and p.get("up") for p in st.get("peers", []))
    wait_for(f"{a} and {b} link", up, timeout)


@test
def kme_restart_streams_resume():
    """The simulator (every KME) restarts under two producing streams, Alice-Bob (qkd.join
    stream-id: the same key_stream_id reopened) and R-S (same-uris, own-ids KMEs: each node
    gets a new id of its own KME's): while the KMEs are away GET_KEY answers status 4 naming
    the KME, the nodes reopen their QKD streams by themselves with back-off (counted in
    STATUS, one log line per attempt), and keys resume, the same at both ends, without the
    applications reopening. Keys delivered before stay as they were."""
    down, back = threading.Event(), threading.Event()
    linked("R", "S", 30)
    linked("Alice", "Bob", 30)

    def body(c, ks):
        keys, i, seen = [], 0, None
        for i in range(5):
            g = c.call("GET_KEY", key_stream_id=ks, index=i)
            keys.append(bytes(g["key_buffer"]).hex() if g.get("status") == 0 else g)
        i = 5
        down.wait(60)
        while i < 5 + 2000 and seen is None:  # drains what was made before the KMEs went
            g = c.call("GET_KEY", key_stream_id=ks, index=i)
            if g.get("status") == 0:
                keys.append(bytes(g["key_buffer"]).hex())
                i += 1
            else:
                seen = g
        back.wait(60)
        t0, end = time.time(), i + 5
        while time.time() - t0 < 60 and i < end:
            g = c.call("GET_KEY", key_stream_id=ks, index=i)
            if g.get("status") == 0:
                keys.append(bytes(g["key_buffer"]).hex())
                i += 1
            elif g.get("status") in (2, 4):
                time.sleep(0.3)
            else:
                keys.append(g)
                break
        delivered.extend(k for k in keys if isinstance(k, str))
        st = c.call("STATUS")
        rec = [x.get("qkd_reconnects") for x in st.get("streams", []) if x.get("key_stream_id") == ks]
        return {"keys": keys, "down": seen, "reconnects": rec}

    outs = {}
    runs = [threading.Thread(target=lambda a=a, b=b: outs.__setitem__(
        a, both(a, b, body, app="restart", timeout=3000))) for a, b in (("Alice", "Bob"),
                                                                        ("R", "S"))]
    [t.start() for t in runs]
    time.sleep(3)
    sim_argv = [f"{BIN}/hykex-qkdsim", "-c", f"{WORK}/net.json", "--ctl", CTL, "--log-level",
                "warn"]
    marks = {n: len(log_of(n).splitlines()) for n in ("Alice", "Bob", "R", "S")}
    R.stop("sim")
    down.set()
    time.sleep(6)  # a few back-off steps with the KMEs away
    R.start("sim", sim_argv, f"{WORK}/sim.log", exit_ok=None)
    back.set()
    [t.join(150) for t in runs]
    for a, b in (("Alice", "Bob"), ("R", "S")):
        out = outs.get(a, {})
        check(out.get(a + "_open", {}).get("status") == 0, f"open at {a}: {out.get(a + '_open')}")
        ka, kb = out.get(a, {}).get("keys", []), out.get(b, {}).get("keys", [])
        check(all(isinstance(k, str) for k in ka + kb), f"{a}/{b}: an error: {ka[-1:]} {kb[-1:]}")
        check(len(ka) >= 10 and ka == kb, f"{a}/{b}: {len(ka)} / {len(kb)} keys, equal: {ka == kb}")
        for n in (a, b):
            d = out.get(n, {}).get("down") or {}
            msg = d.get("message", "")
            check(d.get("status") == 4 and "KME 127.0.0.1:" in msg,
                  f"{n}: GET_KEY while the KMEs were away: {d}")
            lines = log_of(n).splitlines()[marks[n]:]
            steps = [ln for ln in lines if "did not reopen the QKD stream" in ln]
            check(any("QKD stream reopened at the KME" in ln for ln in lines),
                  f"{n}: no 'reopened' line")
            check(len(steps) <= 8, f"{n}: {len(steps)} reopen attempts logged in ~6 s")
            rec = out.get(n, {}).get("reconnects")
            check(rec is not None and len(rec) == 1 and rec[0] >= 1,
                  f"{n}: qkd_reconnects in STATUS: {rec}")
        print(f"    {a}/{b}: {len(ka)} keys agree; reopen attempts {out[a]['reconnects']} / "
              f"{out[b]['reconnects']}; while away: {out[a]['down'].get('message')}")


@test
def responder_window_bounds_production():
    """Issue 19: Bob's application (the responder end) opens a stream and takes no key while
    Alice's (the initiator end) takes keys as fast as it can. Bob announces his window and
    Alice makes nothing beyond it: Bob never holds more than limits.buffer_depth (128) keys
    (STATUS ready), Alice's GET_KEY past the window answers status 2 naming Bob's limit, another
    stream between the two keeps producing meanwhile, and once Bob takes his keys they equal
    Alice's and production goes on."""
    ready, stop, opened = [], threading.Event(), {}
    src, dst = huri("Alice", app="lazy"), huri("Bob", app="lazy")

    def lazy_bob():
        c = App(*api_of("Bob"))
        opened["Bob"] = (c, c.open(src, dst, timeout=2000))

    def watch():
        w = App(*api_of("Bob"))
        while not stop.is_set():
            st = w.call("STATUS")
            ready.extend(x.get("ready", 0) for x in st.get("streams", [])
                         if x.get("key_stream_id") == opened.get("ks"))
            time.sleep(0.05)

    tb = threading.Thread(target=lazy_bob)
    tb.start()
    a = App(*api_of("Alice"))
    r = a.open(src, dst, timeout=2000)
    tb.join(30)
    check(r.get("status") == 0 and opened.get("Bob", (0, {}))[1].get("status") == 0,
          f"open: {r} / {opened.get('Bob')}")
    ks = opened["ks"] = r["key_stream_id"]
    tw = threading.Thread(target=watch)
    tw.start()
    keys, last = [], None
    for i in range(400):
        g = a.call("GET_KEY", key_stream_id=ks, index=i)
        if g.get("status") != 0:
            last = g
            break
        keys.append(bytes(g["key_buffer"]).hex())
    # the other stream, while this one waits for Bob's application
    out = both("Alice", "Bob", take(30), app="busy")
    agree(out, "Alice", "Bob", 30)
    stop.set()
    tw.join(10)
    print(f"    Alice took {len(keys)} keys, then: {last}; Bob held at most {max(ready or [0])}")
    check(128 <= len(keys) < 400, f"Alice took {len(keys)} keys")
    check(last is not None and last.get("status") == 2 and "takes positions below" in
          last.get("message", ""), f"past the window: {last}")
    check(ready and max(ready) <= 128, f"Bob held up to {max(ready or [0])} keys (depth 128)")
    c = opened["Bob"][0]
    mine = []
    for i in range(len(keys)):
        g = c.call("GET_KEY", key_stream_id=ks, index=i)
        mine.append(bytes(g["key_buffer"]).hex() if g.get("status") == 0 else g)
    check(mine == keys, f"Bob's keys differ from Alice's: {mine[:2]} / {keys[:2]}")
    g = a.call("GET_KEY", key_stream_id=ks, index=len(keys))
    check(g.get("status") == 0, f"Alice after Bob took his keys: {g}")
    delivered.extend(keys)
    a.call("CLOSE", key_stream_id=ks)
    c.call("CLOSE", key_stream_id=ks)


R.run(setup=setup)

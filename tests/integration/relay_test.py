#!/usr/bin/env python3
"""The relay across trusted nodes (docs/relay.md): real daemons on loopback addresses.

Usage: relay_test.py BIN_DIR REPO_ROOT
Five nodes with ML-DSA certificates, A-D each on its own loopback address (127.0.N.x), each with
relay.enabled and a trusted-peers file listing only its neighbours; one QKD simulator whose
links join only neighbours (E has no KME). First the line A-B-C-D (E not started): the topology
converges; the ends A and D get equal keys over the relays B and C, end-to-end ML-KEM + X25519,
and ML-KEM + QKD with the QKD part relayed hop by hop; metadata.hops counts the relays; the
middle nodes' logs and stores never hold a delivered key. Then E joins (A-E-C: a ring A-B-C-E)
and B is killed while A and D take keys: later batches go through E and every key still agrees;
a QKD stream is then refused, naming the hop without QKD; E restarted with relay.transit false
is no relay any more. Then B comes back and F joins (ring A-B-C-F, QKD on every link): a stream
with QKD from A to D over B is rerouted through F when B is killed mid-stream (its QKD links
opened again along the new path), and answers status 2 naming the lost hop while F is killed
too; per-stream relay policies in the source URI are refused or honoured. Ends with "N passed,
M failed, K skipped".
"""
import datetime
import json
import os
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hxtest import Runner, check, free_loopback, free_port, next_json  # noqa: E402

BIN, ROOT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
NODES = "ABCDEF"
U = {n: f"{c * 8}-{c * 4}-{c * 4}-{c * 4}-{c * 12}" for n, c in zip(NODES, "abcdef")}
LINKS = [("A", "B"), ("B", "C"), ("C", "D"), ("A", "E"), ("E", "C"), ("A", "F"), ("F", "C")]
R = Runner("hykex-relay-test-")
test = R.test
WORK = R.work
P = {f"{k}{n}": free_port() for n in NODES for k in ("api", "kme")}
PEER_PORT = free_port()
# A-D each on its own loopback address (prefix + 0..3, all with one port); E on 127.0.0.1
PREFIX = free_loopback("127.0.0.6", [PEER_PORT])
ADDR = {n: f"{PREFIX}{i}" for i, n in enumerate("ABCD")}
ADDR["E"] = ADDR["F"] = "127.0.0.1"
PORT = {n: PEER_PORT for n in "ABCD"}
PORT["E"], PORT["F"] = free_port(), free_port()
SUITE = "ML-KEM-768,X25519"
delivered = {}  # node -> [key hex]


def neighbours(n):
    return [b if a == n else a for a, b in LINKS if n in (a, b)]


class App:
    def __init__(self, node):
        self.s = __import__("socket").create_connection(("127.0.0.1", P["api" + node]), timeout=60)
        self.buf = b""
        self.node = node

    def call(self, command, **data):
        self.s.sendall(json.dumps({"command": command, "data": data}).encode())
        obj, _, self.buf = next_json(self.s, self.buf, "daemon closed the connection")
        return obj

    def open(self, src, dst, ksid, sources=SUITE, policy="", timeout=20000):
        q = {"key_chunk_size": 32, "max_bps": 32, "min_bps": 32, "jitter": 0, "priority": 0,
             "timeout": timeout, "ttl": 0, "metadata_mimetype": "application/json"}
        return self.call("OPEN_CONNECT", source=uri(src, sources) + policy,
                         destination=uri(dst, sources) + policy, qos=q, key_stream_id=ksid)

    def get(self, ksid, index):
        r = self.call("GET_KEY", key_stream_id=ksid, index=index)
        if r.get("status") == 0:
            delivered.setdefault(self.node, []).append(bytes(r["key_buffer"]).hex())
        return r


def uri(node, sources=SUITE):
    return f"hybrid://SPI_1@{U[node]}?hybridization=hkdf&key_sources={sources}"


def status(node):
    return App(node).call("STATUS")


def route(node, to):
    for e in status(node).get("relay", {}).get("nodes", []):
        if e["uuid"] == U[to]:
            return e
    return None


def sim_streams():
    """QKD streams open at the simulator's KMEs (either end)."""
    out = subprocess.run([f"{BIN}/hykex-qkdsim", "ctl", f"{WORK}/sim.ctl", "pools"],
                         capture_output=True, text=True, timeout=30)
    return json.loads(out.stdout)["streams"]


def wait_until(what, fn, timeout=30):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def start_daemon(n):
    return R.start(n, [f"{BIN}/hykexd", "-c", f"{WORK}/{n}.json", "-p", f"{WORK}/{n}-peers.json"],
                   f"{WORK}/{n}.log", exit_ok=(0, -9), cwd=WORK)


def setup():
    def run(*a):
        subprocess.run(list(a), check=True, capture_output=True, cwd=WORK)
    run(f"{ROOT}/certificates/create_ca.sh", "--out", "ca")
    for n in NODES:
        run(f"{ROOT}/certificates/generate_cert.sh", "--uuid", U[n], "--name", n, "--ip", ADDR[n],
            "--out", n)
    # E has no KME: its links cannot carry the QKD part
    net = {"kmes": [{"id": f"KME_{n}", "node": U[n], "etsi004_json": {"port": P["kme" + n]}}
                    for n in "ABCDF"],
           "links": [{"id": a + b, "kmes": [f"KME_{a}", f"KME_{b}"], "rate_bps": 0}
                     for a, b in LINKS if "E" not in (a, b)]}
    json.dump(net, open(f"{WORK}/net.json", "w"))
    R.start("sim", [f"{BIN}/hykex-qkdsim", "-c", f"{WORK}/net.json", "--ctl", f"{WORK}/sim.ctl",
                    "--log-level", "warn"], f"{WORK}/sim.log", exit_ok=None)
    for n in NODES:
        cfg = {"uuid": U[n],
               "logging_config": {"console_log_type": "debug", "file_log_type": "debug",
                                  "filename": f"{n}.file.log"},
               "certificate_config": {"cert_authority_path": f"{n}/ca.crt",
                                      "cert_path": f"{n}/node.crt", "key_path": f"{n}/node.key"},
               "hybridization_server_address": {"host": "127.0.0.1", "port": P["api" + n]},
               "qkd_address": {"host": "127.0.0.1", "port": P["kme" + n] if n != "E" else 0},
               "peer_local_address": {"host": ADDR[n], "port": PORT[n]},
               "peer": {"keepalive_s": 1, "reconnect_max_s": 1},
               "state_dir": f"{n}/state",
               "relay": {"enabled": True, "announce_s": 1},
               # small batches, few ready keys: production goes on while keys are taken
               "limits": {"batch_size": 4, "buffer_depth": 8}}
        json.dump(cfg, open(f"{WORK}/{n}.json", "w"), indent=1)
        peers = {U[m]: {"address": {"host": ADDR[m], "port": PORT[m]}} for m in neighbours(n)}
        json.dump(peers, open(f"{WORK}/{n}-peers.json", "w"), indent=1)
    for n in "ABCD":
        start_daemon(n)


def take_keys(a, b, n, ksid=None, during=None, sources=SUITE, policy=""):
    """Applications at a and b open one stream and each take keys 0..n-1 by index; during(i) runs
    at a after key i. Returns (keys at a, keys at b, the replies at a)."""
    ksid = ksid or str(uuid.uuid4())
    out = {}

    def app(node):
        c = App(node)
        r = c.open(a, b, ksid, sources, policy)
        out[node + "open"] = r
        if r["status"] != 0:
            return
        keys, replies = [], []
        for i in range(n):
            g = c.get(ksid, i)
            replies.append(g)
            keys.append(bytes(g["key_buffer"]).hex() if g["status"] == 0 else g)
            if during is not None and node == a:
                during(i)
        out[node] = keys
        out[node + "replies"] = replies
        c.call("CLOSE", key_stream_id=ksid)

    ts = [threading.Thread(target=app, args=(x,)) for x in (a, b)]
    [t.start() for t in ts]
    [t.join(180) for t in ts]
    check(out.get(a + "open", {}).get("status") == 0,
          f"open at {a}: {out.get(a + 'open')} (at {b}: {out.get(b + 'open')})")
    check(out.get(b + "open", {}).get("status") == 0, f"open at {b}: {out.get(b + 'open')}")
    return out[a], out[b], out[a + "replies"]


# ---- tests ----

@test
def topology_converges_on_the_line():
    """A learns every node of the line A-B-C-D from flooded, signed announcements; its path to
    D is A-B-C-D, 3 hops, and `hykex route` prints it."""
    e = wait_until("A's path to D", lambda: (lambda x: x if x and x["path"] else None)(route("A", "D")))
    check(e["hops"] == 3 and e["path"] == [U["A"], U["B"], U["C"], U["D"]], f"path: {e}")
    st = status("A")["relay"]
    check(st["nodes_total"] == 4 and st["announcements_refused"] == 0, f"map: {st}")
    d = wait_until("D's path to A", lambda: (lambda x: x if x and x["path"] else None)(route("D", "A")))
    check(d["path"] == [U["D"], U["C"], U["B"], U["A"]], f"D's path: {d}")
    out = subprocess.run([f"{BIN}/hykex", "route", U["D"], "--address",
                          f"127.0.0.1:{P['apiA']}"], capture_output=True, text=True, timeout=30)
    check(out.returncode == 0 and "hops 3" in out.stdout and U["C"] in out.stdout,
          f"hykex route: {out.returncode} {out.stdout} {out.stderr}")


@test
def keys_between_the_ends_agree():
    """A and D share no link: their 40 keys (10 batches) agree, each is distinct, and
    metadata.hops is 2 (the relays B and C)."""
    ka, kd, replies = take_keys("A", "D", 40)
    check(ka == kd, f"keys differ: {ka[:2]} {kd[:2]}")
    check(all(isinstance(k, str) and len(k) == 64 for k in ka) and len(set(ka)) == 40, "keys")
    check(all(r["metadata"]["hops"] == 2 for r in replies), f"hops: {replies[0]['metadata']}")
    for n in "BC":
        st = status(n)
        check(st["relay"]["messages_forwarded"] > 0 and st["streams"] == [],
              f"{n} forwarded nothing, or holds a stream: {st['relay']}")


@test
def qkd_part_relayed_hop_by_hop():
    """ML-KEM-768 + QKD between A and D: A's QKD key of the link A-B reaches D through B and C
    (each XORs its two links' keys into the accumulator, D removes its own link's): 24 keys
    agree (the combiner over the relayed QKD part and the end-to-end ML-KEM part, key-confirmed),
    metadata.hops is 2, and both relays took part. When the stream closes, the relays close their
    links' QKD streams at their KMEs too (the simulator holds none of the stream's any more)."""
    before = {n: status(n)["relay"]["messages_forwarded"] for n in "BC"}
    streams_before = sim_streams()
    ka, kd, replies = take_keys("A", "D", 24, sources="ML-KEM-768,QKD")
    check(ka == kd, f"keys differ: {ka[:2]} {kd[:2]}")
    check(all(isinstance(k, str) and len(k) == 64 for k in ka) and len(set(ka)) == 24, "keys")
    check(all(r["metadata"]["hops"] == 2 and "QKD" in r["metadata"]["sources"] for r in replies),
          f"metadata: {replies[0]['metadata']}")
    for n in "BC":
        check(status(n)["relay"]["messages_forwarded"] > before[n], f"{n} relayed nothing")
        check("QKD links of a relayed stream opened" in open(f"{WORK}/{n}.log").read(),
              f"{n} opened no QKD link")
    for n in "AD":
        check(status(n)["errors"]["confirmation_mismatches"] == 0, f"{n}: mismatches")
    wait_until("every QKD stream of the closed stream closed at the KMEs",
               lambda: sim_streams() == streams_before, timeout=10)


@test
def unknown_nodes_refused():
    """A node not on the map is refused as before, with the relay's reason."""
    other = str(uuid.uuid4())
    r = App("A").call("OPEN_CONNECT", source=uri("A"),
                      destination=f"hybrid://SPI_1@{other}?hybridization=hkdf&key_sources={SUITE}",
                      qos={"key_chunk_size": 32, "timeout": 1000})
    check(r["status"] != 0 and "not on the relay's map" in r.get("message", ""), f"{r}")


@test
def middle_nodes_never_hold_a_delivered_key():
    """No key delivered at A or D appears in B's or C's log files or store (as hex, or as the
    raw bytes)."""
    keys = delivered.get("A", []) + delivered.get("D", [])
    check(len(keys) >= 40, f"{len(keys)} keys delivered")
    for n in "BC":
        blobs = []
        for root, _, files in os.walk(f"{WORK}/{n}"):
            blobs += [open(os.path.join(root, f), "rb").read() for f in files]
        for f in (f"{WORK}/{n}.log", f"{WORK}/{n}.file.log"):
            if os.path.exists(f):
                blobs.append(open(f, "rb").read())
        check(len(blobs) > 0, f"nothing of {n} to look at")
        for k in keys:
            raw = bytes.fromhex(k)
            check(not any(k.encode() in b or raw in b for b in blobs), f"{n} holds a key")


@test
def relay_killed_mid_stream_reroutes():
    """E joins (ring A-B-C-E): A's path to D stays via B (fewer hops tie, smaller UUID). B is
    killed while the applications take keys: later batches go via E, and every key agrees."""
    start_daemon("E")
    wait_until("E on A's map", lambda: route("A", "E") and route("A", "E")["path"])
    e = route("A", "D")
    check(e["path"][1] == U["B"], f"path before: {e}")

    def kill_b(i):
        if i == 10:
            os.kill(R.procs["B"].pid, 9)
            R.procs["B"].wait()

    ka, kd, replies = take_keys("A", "D", 60, during=kill_b)
    check(ka == kd, "keys differ after the relay was killed")
    check(all(isinstance(k, str) for k in ka) and len(set(ka)) == 60, f"keys: {ka}")
    e = route("A", "D")
    check(e is not None and e["path"] == [U["A"], U["E"], U["C"], U["D"]], f"path after: {e}")
    fw, failed = status("E")["relay"]["messages_forwarded"], status("A")["errors"]["batches_failed"]
    print(f"     E forwarded {fw} messages; A's failed (and remade) batches: {failed}")
    check(fw > 0, "E forwarded nothing")
    for n in "AD":
        st = status(n)
        check(st["errors"]["confirmation_mismatches"] == 0, f"{n}: {st['errors']}")


@test
def qkd_refused_over_a_hop_without_qkd():
    """With B gone the only path from A to D goes through E, which has no KME: a stream with QKD
    is refused with a message naming the hop."""
    r = App("A").open("A", "D", str(uuid.uuid4()), "ML-KEM-768,QKD")
    check(r["status"] != 0 and "has none" in r.get("message", "") and U["E"] in r["message"],
          f"{r}")


@test
def no_transit_node_is_never_a_relay():
    """E restarted with relay.transit false (B is dead, so E is the only way from A to D): it
    announces itself as no relay, A's map has no path to D any more, and an OPEN_CONNECT from A
    to D is refused saying so."""
    seq = route("A", "E")["seq"]
    R.stop("E")
    cfg = json.load(open(f"{WORK}/E.json"))
    cfg["relay"]["transit"] = False
    json.dump(cfg, open(f"{WORK}/E.json", "w"))
    start_daemon("E")
    # E back on A's map, linked to A and C again (its restarted announcement)
    e = wait_until("E linked again", lambda: (lambda x: x if x and x["seq"] > seq and x["path"]
                                              and len(x["neighbours"]) == 2 else None)(
        route("A", "E")))
    check(e["path"] == [U["A"], U["E"]], f"E itself stays reachable: {e}")
    # The announcement that ended the wait may be the old E's last one, flooded late through
    # C (newer than what A had, still a relay): the restarted E's own follows within an
    # announcement interval, and then A has no path to D.
    last = {}

    def no_path_to_d():
        last["d"] = route("A", "D")
        return last["d"] is not None and last["d"]["path"] is None

    try:
        wait_until("A's path to D gone", no_path_to_d, timeout=15)
    except AssertionError:
        check(False, f"A's path to D over E: {last.get('d')}")
    r = App("A").open("A", "D", str(uuid.uuid4()))
    check(r["status"] != 0 and "no path" in r.get("message", ""), f"{r}")


@test
def dead_node_ages_out():
    """B (killed) leaves everyone's map once its last announcement expires (4 x announce_s)."""
    wait_until("B gone from A's map", lambda: route("A", "B") is None, timeout=20)
    check(status("A")["relay"]["nodes_forgotten"] >= 1, "nothing forgotten")


def kill(n):
    os.kill(R.procs[n].pid, 9)
    R.procs[n].wait()


def running(n):
    """Starts n unless it runs (cases may run alone: HYKEX_TEST_ONLY)."""
    if n not in R.procs or R.procs[n].poll() is not None:
        start_daemon(n)


@test
def qkd_stream_rerouted_when_its_relay_dies():
    """B comes back and F joins: a ring A-B-C-F with QKD on every link (E is no relay). A stream
    with ML-KEM-768 + QKD from A to D takes A-B-C-D (the UUID tie-break). B is killed with
    SIGKILL mid-stream: A notices that the link A-B left its map, pins A-F-C-D, and the QKD links
    along it are opened again (F and C open theirs, D switches to its link from C); later batches
    take it. All 60 keys agree at both ends, metadata.hops is 2 throughout, and no confirmation
    failed."""
    running("B")
    running("F")
    want = [U["A"], U["B"], U["C"], U["D"]]
    wait_until("A's QKD path to D over B", lambda: (route("A", "D") or {}).get("qkd_path") == want)
    wait_until("D's QKD path to A over B",
               lambda: (route("D", "A") or {}).get("qkd_path") == list(reversed(want)))
    wait_until("F on A's map with QKD", lambda: (route("A", "F") or {}).get("qkd_path"))
    t_kill, ksid = {}, str(uuid.uuid4())

    def kill_b(i):
        if i == 12:
            kill("B")
            t_kill["t"] = time.time()
        if i == 50:
            t_kill["st"] = [s for s in status("A")["streams"] if s["key_stream_id"] == ksid]

    ka, kd, replies = take_keys("A", "D", 60, ksid, during=kill_b, sources="ML-KEM-768,QKD")
    check(ka == kd, f"keys differ after the relay was killed: {ka[:2]} {kd[:2]}")
    check(all(isinstance(k, str) and len(k) == 64 for k in ka) and len(set(ka)) == 60,
          f"keys: {[k for k in ka if not isinstance(k, str)][:2]}")
    check(all(r["metadata"]["hops"] == 2 for r in replies), "hops")
    alog, flog = open(f"{WORK}/A.log").read(), open(f"{WORK}/F.log").read()
    check("relayed stream rerouted" in alog, "A did not reroute")
    check([s["reroutes"] for s in t_kill["st"]] == [1], f"STATUS: {t_kill['st']}")
    done = [ln for ln in alog.splitlines() if "relayed stream rerouted" in ln][-1]
    ts = datetime.datetime.strptime(done.split()[0][3:], "%Y-%m-%dT%H:%M:%S.%fZ")
    took = ts.replace(tzinfo=datetime.timezone.utc).timestamp() - t_kill["t"]
    print(f"     QKD links open along A-F-C-D {took:.2f} s after B was killed")
    check("QKD links of a re-pathed stream opened" in flog, "F opened no QKD link")
    check(status("F")["relay"]["messages_forwarded"] > 0, "F carried no batch")
    check("signature does not verify" not in alog, "a batch signature failed at A")
    check("relayed stream moved to a new path" in open(f"{WORK}/D.log").read(), "D did not move")
    for n in "AD":
        st = status(n)
        check(st["errors"]["confirmation_mismatches"] == 0, f"{n}: {st['errors']}")


@test
def no_qkd_path_answers_status_2_naming_the_hop():
    """A stream with QKD over A-F-C-D (B is dead); F is killed too: no path with QKD remains (E
    has no KME and is no relay), so GET_KEY at A answers status 2 with a message naming the hop
    that left the map, and the keys taken before stay equal."""
    want = [U["A"], U["F"], U["C"], U["D"]]
    wait_until("A's QKD path over F", lambda: (route("A", "D") or {}).get("qkd_path") == want)
    # D answers the JOIN only with a path back to A in its own map, which may lag A's (it had
    # none, between B's going and F's news reaching it, in a run under ThreadSanitizer)
    wait_until("D's path back to A, not over the dead B",
               lambda: (lambda p: p and U["B"] not in p)((route("D", "A") or {}).get("path")))
    ksid, out, lost = str(uuid.uuid4()), {}, threading.Barrier(2, timeout=60)

    def app(node):
        c = App(node)
        r = c.open("A", "D", ksid, "ML-KEM-768,QKD")  # within 20 s, on a loaded machine too
        if r["status"] != 0:
            out[node + "open"] = r
            return
        got = [c.get(ksid, i) for i in range(8)]
        lost.wait()
        if node == "A":
            kill("F")
            time.sleep(1)
        lost.wait()
        for i in range(8, 40):  # on until the first key that cannot come
            got.append(c.get(ksid, i))
            if got[-1]["status"] != 0:
                break
        out[node] = got
    ts = [threading.Thread(target=app, args=(x,)) for x in "AD"]
    [t.start() for t in ts]
    [t.join(180) for t in ts]
    a, d = out.get("A", []), out.get("D", [])
    both = min(len([g for g in a if g["status"] == 0]), len([g for g in d if g["status"] == 0]))
    check(both >= 8 and [g["key_buffer"] for g in a[:both]] == [g["key_buffer"] for g in d[:both]],
          f"keys before the loss differ ({both} at both; open: {out.get('Aopen')} {out.get('Dopen')})")
    r = a[-1] if a else {}
    check(r.get("status") == 2 and "rerouting" in r.get("message", "") and
          U["F"] in r.get("message", ""), f"GET_KEY without a QKD path: {r}")
    print(f"     A's answer without a QKD path: {r}")


@test
def per_stream_policy_in_the_source_uri():
    """The source URI's relay keys: relay=no refuses a stream to D (no direct link), naming the
    rule; relay_max_hops=2 refuses (D is 3 hops away); relay_avoid naming C leaves no path; a bad
    value is refused naming the key; relay_max_hops=3 is accepted and its keys agree. With F back,
    relay_avoid naming B takes the stream through F (B, the map's choice, forwards nothing of
    it). The nodes' relay.* options still apply underneath."""
    # F is dead, B is dead: bring B back for a path A-B-C-D
    running("B")
    wait_until("A's path to D over B",
               lambda: (route("A", "D") or {}).get("path") == [U["A"], U["B"], U["C"], U["D"]])
    wait_until("D's path to A over B",
               lambda: (route("D", "A") or {}).get("path") == [U["D"], U["C"], U["B"], U["A"]])
    cases = [("&relay=no", "relay=no"), ("&relay_max_hops=2", "relay_max_hops 2"),
             (f"&relay_avoid={U['C']}", "relay_avoid"), ("&relay=maybe", "relay: 'maybe'"),
             ("&relay_max_hops=0", "relay_max_hops")]
    for pol, says in cases:
        r = App("A").open("A", "D", str(uuid.uuid4()), policy=pol, timeout=2000)
        check(r["status"] != 0 and says in r.get("message", ""), f"{pol}: {r}")
    ka, kd, replies = take_keys("A", "D", 8, policy="&relay_max_hops=3")
    check(ka == kd and all(isinstance(k, str) for k in ka), f"keys with a policy: {ka[:2]}")
    check(all(r["metadata"]["hops"] == 2 for r in replies), "hops")
    # F back: two paths of three hops; relay_avoid naming B steers the stream (both ends'
    # messages) through F, though the map's own choice is B
    running("F")

    def linked(at, x, y):  # at's map holds the link x-y, announced by both
        nx = {n["uuid"] for n in (route(at, x) or {}).get("neighbours") or []}
        ny = {n["uuid"] for n in (route(at, y) or {}).get("neighbours") or []}
        return U[y] in nx and U[x] in ny
    wait_until("A-F and F-C on both ends' maps",
               lambda: all(linked(at, x, y) for at in "AD" for x, y in (("A", "F"), ("F", "C"))))
    wait_until("the ring whole at D", lambda: (route("D", "A") or {}).get("path") ==
               [U["D"], U["C"], U["B"], U["A"]])
    fw = {n: status(n)["relay"]["messages_forwarded"] for n in "BF"}
    ka, kd, _ = take_keys("A", "D", 8, policy=f"&relay_avoid={U['B']}")
    check(ka == kd and all(isinstance(k, str) for k in ka), f"keys avoiding B: {ka[:2]}")
    after = {n: status(n)["relay"]["messages_forwarded"] for n in "BF"}
    check(after["B"] == fw["B"] and after["F"] > fw["F"], f"forwarded before {fw}, after {after}")


R.run(setup=setup)

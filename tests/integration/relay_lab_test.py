#!/usr/bin/env python3
"""The relay across trusted nodes in the namespace lab (docs/relay.md, "Setting up a relay
network"): every node and the QKD simulator in a network namespace of its own, with its own
address on a bridge of this run (scripts/netlab.sh), set up by the steps of that section and
nothing else: certificates with the node's UUID from the network CA, a config with relay.enabled,
a trusted-peers file listing only the neighbours, the node's KME, the map checked with
`hykex route`, then applications at two nodes that share no link open a stream.

Usage: relay_lab_test.py BIN_DIR REPO_ROOT
Root only (network namespaces); prints the reason and "0 passed, 0 failed, 1 skipped" otherwise.

Cases, each on a network of its own (simulator and nodes started for it, stopped after it):
- line of four A-B-C-D: keys between A and D agree, ML-KEM-768 + X25519 and ML-KEM-768 + QKD
  (the QKD part relayed hop by hop), metadata.hops is 2; B and C never hold a delivered key:
  not in their log files, not in their state directories, and not in their process memory
  (every readable region of /proc/PID/mem, raw bytes and hex; the same scan must find the
  node's own UUID there, so it cannot pass by reading nothing);
- a node joining a running network is used at once: D joins A-B-C and A-D stream as soon as
  `hykex route` shows each end the other (also with `hykex open` / `hykex get`); then E joins
  and opens a stream to A the moment its own route shows A (its STREAM_OPEN may overtake its
  announcement, and A holds it until E is on its map);
- ring of six, a relay on the path SIGKILLed while A and D take keys (end-to-end ML-KEM-768 +
  X25519): keys keep coming over the other side of the ring, every key agrees, no confirmation
  mismatch. The same with the QKD part relayed: the stream is moved to the other side of the
  ring and its QKD links there are opened (docs/relay.md "Rerouting a stream with QKD");
- mesh of six: every map converges (the time is printed), and two pairs of far-apart nodes
  stream at once (one with the QKD part relayed): their keys agree;
- figures only, with HYKEX_RELAY_LAB_FIGURES=1: keys/s over 0 to 3 relays on a line of five.

The lab (namespaces, veths, the bridge) is this run's own (netlab.sh picks the id) and is
removed at exit, also on a failure or SIGTERM; every program is stopped by its PID.
Ends with "N passed, M failed, K skipped" (hxtest.Runner).
"""
import atexit
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hxtest import JsonApp, Runner, Skip, check  # noqa: E402

BIN, ROOT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
if os.geteuid() != 0:
    print("relay_lab_test.py: skipped: network namespaces need root")
    print("0 passed, 0 failed, 1 skipped")
    sys.exit(0)

NETLAB = f"{ROOT}/scripts/netlab.sh"
NODES = "ABCDEF"
U = {n: str(uuid.uuid4()) for n in NODES}
API, PEER, KME = 5100, 5200, 5300  # every program has an address of its own: fixed ports
R = Runner("hykex-relay-lab-")
test = R.test
WORK = R.work
ADDR = {}
LAB = None  # this run's id (hxNNNN)
delivered = []  # every key delivered in the line's case, hex


# ---- the lab: made here, removed at exit whatever happens ----

def lab_down():
    global LAB
    if LAB is not None:
        for p in R.procs.values():  # by PID before the namespaces go
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        subprocess.run([NETLAB, "down", LAB], capture_output=True)
        LAB = None


def lab_up():
    global LAB
    LAB = subprocess.run([NETLAB, "up", "sim", *NODES], check=True, capture_output=True,
                         text=True).stdout.strip()
    os.environ["HYKEX_LAB"] = LAB
    for n in ("sim", *NODES):
        ADDR[n] = subprocess.run([NETLAB, "addr", n], check=True, capture_output=True,
                                 text=True).stdout.strip()


atexit.register(lab_down)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # atexit runs: the lab goes


def in_ns(node, argv):
    return [NETLAB, "exec", node, *argv]


# ---- the steps of docs/relay.md "Setting up a relay network" ----

def certificates():
    """Step 1: the network CA, and a certificate per node naming its UUID."""
    def run(*a):
        subprocess.run(list(a), check=True, capture_output=True, cwd=WORK)
    run(f"{ROOT}/certificates/create_ca.sh", "--out", "ca")
    for n in NODES:
        run(f"{ROOT}/certificates/generate_cert.sh", "--ca", "ca", "--uuid", U[n], "--name",
            f"node-{n}", "--ip", ADDR[n], "--out", f"{n}/cert")
        san = subprocess.run(["openssl", "x509", "-in", f"{WORK}/{n}/cert/node.crt", "-noout",
                              "-ext", "subjectAltName"], capture_output=True, text=True).stdout
        check(f"URI:urn:uuid:{U[n]}" in san, f"{n}'s certificate names no UUID: {san}")


class Net:
    """One network of the lab: its QKD links (the simulator) and peer links (the nodes)."""

    def __init__(self, name, links, qkd_links=None, tuning=None):
        """tuning: options beyond the section's config, for a case that needs them."""
        self.name, self.links, self.tuning = name, links, tuning or {}
        self.qkd_links = links if qkd_links is None else qkd_links
        self.nodes = sorted({n for link in links for n in link})
        self.dir = f"{WORK}/{name}"
        os.makedirs(self.dir)

    def neighbours(self, n):
        return [b if a == n else a for a, b in self.links if n in (a, b)]

    def kme_port(self, n):
        return KME + NODES.index(n)

    def start(self, only=None):
        """Steps 2-4: the KMEs, each node's config and trusted peers, started (only: these
        nodes now, the others later with start_node)."""
        net = {"kmes": [{"id": f"KME_{n}", "node": U[n],
                         "etsi004_json": {"host": ADDR["sim"], "port": self.kme_port(n)}}
                        for n in self.nodes],
               "links": [{"id": a + b, "kmes": [f"KME_{a}", f"KME_{b}"], "rate_bps": 0}
                         for a, b in self.qkd_links]}
        json.dump(net, open(f"{self.dir}/net.json", "w"), indent=1)
        R.start(f"{self.name}-sim", in_ns("sim", [f"{BIN}/hykex-qkdsim", "-c",
                                                  f"{self.dir}/net.json", "--log-level", "warn"]),
                f"{self.dir}/sim.log", exit_ok=None)
        for n in self.nodes:
            self.write(n)
        self.started = {}
        for n in self.nodes:
            if only is None or n in only:
                self.start_node(n)

    def write(self, n):
        """Step 4 and 5: the config as the section shows it (absolute paths, this lab's
        addresses; the log file at debug, so that the search for keys in it reads everything
        hykexd can log), then this network's tuning; the neighbours as trusted peers."""
        d = f"{self.dir}/{n}"
        os.makedirs(d, exist_ok=True)
        cfg = {"uuid": U[n],
               "logging_config": {"filename": f"{d}/hykexd.log", "file_log_type": "debug"},
               "certificate_config": {"cert_authority_path": f"{WORK}/{n}/cert/ca.crt",
                                      "cert_path": f"{WORK}/{n}/cert/node.crt",
                                      "key_path": f"{WORK}/{n}/cert/node.key"},
               "hybridization_server_address": {"host": ADDR[n], "port": API},
               "api": {"allow_remote": True},
               "peer_local_address": {"host": ADDR[n], "port": PEER},
               "qkd_address": {"host": ADDR["sim"], "port": self.kme_port(n)},
               "state_dir": f"{d}/state",
               "relay": {"enabled": True},
               **self.tuning}
        json.dump(cfg, open(f"{d}/config.json", "w"), indent=1)
        peers = {U[m]: {"address": {"host": ADDR[m], "port": PEER}} for m in self.neighbours(n)}
        json.dump(peers, open(f"{d}/trusted_peers.json", "w"), indent=1)

    def start_node(self, n):
        d = f"{self.dir}/{n}"
        self.started[n] = time.time()
        return R.start(f"{self.name}-{n}", in_ns(n, [f"{BIN}/hykexd", "-c", f"{d}/config.json",
                                                    "-p", f"{d}/trusted_peers.json"]),
                       f"{d}/console.log", exit_ok=(0, -9), cwd=d)

    def pid(self, n):
        return R.procs[f"{self.name}-{n}"].pid

    def kill(self, n):
        p = R.procs[f"{self.name}-{n}"]
        os.kill(p.pid, signal.SIGKILL)
        p.wait()

    def stop(self):
        for name in [k for k in R.procs if k.startswith(self.name + "-")]:
            R.stop(name)

    def route(self, at, to):
        """Step 5: `hykex route NODE` at a node: (exit status, output)."""
        r = subprocess.run([f"{BIN}/hykex", "route", U[to], "--address", f"{ADDR[at]}:{API}"],
                           capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout + r.stderr

    def wait_route(self, at, to, hops, timeout=30):
        t0, out = time.time(), ""
        while time.time() - t0 < timeout:
            code, out = self.route(at, to)
            if code == 0 and f"hops {hops}" in out:
                return out
            time.sleep(0.2)
        raise AssertionError(f"{at} has no {hops}-hop path to {to} within {timeout} s: {out}")

    def converged(self):
        """Every node's map holds every node with a path."""
        for n in self.nodes:
            nodes = status(n).get("relay", {}).get("nodes", [])
            if len([e for e in nodes if e.get("path")]) != len(self.nodes):
                return False
        return True


class App(JsonApp):
    def __init__(self, node):
        super().__init__(ADDR[node], API, timeout=60)


def status(node):
    a = App(node)
    try:
        return a.call("STATUS")
    finally:
        a.close()


def uri(node, sources, app="app1"):
    return f"hybrid://{app}@{U[node]}?hybridization=hkdf&key_sources={sources}"


def take_keys(a, b, n, sources, during=None, app="app1", timeout=20000):
    """Step 6: applications at a and b open one stream (the same key_stream_id) and each take
    keys 0..n-1 by index; during(i) runs at a after key i. Returns (keys at a, keys at b,
    GET_KEY replies at a); a failed GET_KEY stands as its reply in the key list."""
    ksid, out = str(uuid.uuid4()), {}

    def side(node):
        c = App(node)
        r = c.call("OPEN_CONNECT", source=uri(a, sources, app), destination=uri(b, sources, app),
                   key_stream_id=ksid, qos={"key_chunk_size": 32, "timeout": timeout, "ttl": 0})
        out[node + "open"] = r
        if r["status"] != 0:
            return
        keys, replies = [], []
        for i in range(n):
            g = c.call("GET_KEY", key_stream_id=ksid, index=i)
            replies.append(g)
            keys.append(bytes(g["key_buffer"]).hex() if g["status"] == 0 else g)
            if during is not None and node == a:
                during(i)
        out[node], out[node + "replies"] = keys, replies
        c.call("CLOSE", key_stream_id=ksid)
        c.close()

    ts = [threading.Thread(target=side, args=(x,)) for x in (a, b)]
    [t.start() for t in ts]
    [t.join(240) for t in ts]
    check(out.get(a + "open", {}).get("status") == 0, f"OPEN_CONNECT at {a}: {out.get(a + 'open')}")
    check(out.get(b + "open", {}).get("status") == 0, f"OPEN_CONNECT at {b}: {out.get(b + 'open')}")
    check(a in out and b in out, f"an application of {a}-{b} did not finish")
    return out[a], out[b], out[a + "replies"]


def cli_stream(a, b, sources):
    """Step 8 with the CLI, as the section shows it: `hykex open` at both ends with one key
    stream id, then `hykex get --index 0` at each; returns the two GET_KEY replies."""
    ksid = str(uuid.uuid4())
    argv = ["--ksid", ksid, "--timeout", "20000", uri(a, sources), uri(b, sources)]
    opens = [subprocess.Popen([f"{BIN}/hykex", "open", "--address", f"{ADDR[n]}:{API}", *argv],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for n in (a, b)]
    for n, p in zip((a, b), opens):
        out = p.communicate(timeout=60)[0]
        check(p.returncode == 0, f"hykex open at {n}: {out}")
    got = []
    for n in (a, b):
        r = subprocess.run([f"{BIN}/hykex", "get", "--address", f"{ADDR[n]}:{API}", "--index",
                            "0", ksid], capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, f"hykex get at {n}: {r.stdout} {r.stderr}")
        got.append(json.loads(r.stdout))
    for n in (a, b):
        subprocess.run([f"{BIN}/hykex", "close", "--address", f"{ADDR[n]}:{API}", ksid],
                       capture_output=True, timeout=60)
    check(got[0]["key_buffer"] == got[1]["key_buffer"] and len(got[0]["key_buffer"]) == 32,
          f"hykex get: the keys differ: {got}")
    return got


def agree(ka, kb, n, what):
    bad = [k for k in ka + kb if not isinstance(k, str)]
    check(not bad, f"{what}: GET_KEY failed: {bad[:2]}")
    check(ka == kb, f"{what}: keys differ at {[i for i in range(n) if ka[i] != kb[i]][:5]}")
    check(len(set(ka)) == n and all(len(k) == 64 for k in ka), f"{what}: keys not distinct")


# ---- a node's memory ----

def scan_memory(pid, needles):
    """Every readable region of process pid (as /proc/PID/maps lists it) searched for each
    needle; returns (the needles found, bytes read, bytes of regions skipped). Regions over
    4 GiB are skipped: AddressSanitizer's shadow (mapped without reserve, tens of TiB) holds
    only addressability bytes; every other region is read whole."""
    found, read, skipped = set(), 0, 0
    with open(f"/proc/{pid}/maps") as f:
        regions = [line.split() for line in f]
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        for reg in regions:
            lo, hi = (int(x, 16) for x in reg[0].split("-"))
            name = reg[5] if len(reg) > 5 else ""
            if reg[1][0] != "r" or name in ("[vvar]", "[vsyscall]", "[vvar_vclock]"):
                continue
            if hi - lo > (4 << 30):
                skipped += hi - lo
                continue
            for off in range(lo, hi, 64 << 20):  # 64 MiB at a time, overlapping by 64 bytes
                try:
                    data = os.pread(fd, min(hi - off, (64 << 20) + 64), off)
                except OSError:
                    break
                read += len(data)
                for k in needles:
                    if k not in found and data.find(k) >= 0:
                        found.add(k)
    finally:
        os.close(fd)
    return found, read, skipped


def files_of(top):
    blobs = []
    for root, _, files in os.walk(top):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                blobs.append((os.path.join(root, f), fh.read()))
    return blobs


# ---- cases ----

def setup():
    lab_up()
    certificates()


@test
def line_of_four_keys_agree_and_relays_hold_none():
    """A-B-C-D (QKD links and peer links only between neighbours): A and D get equal keys with
    ML-KEM-768 + X25519 end to end and with ML-KEM-768 + QKD (the QKD part relayed through B
    and C), metadata.hops 2;
    B's and C's logs, state directories and process memory hold none of them."""
    net = Net("line", [("A", "B"), ("B", "C"), ("C", "D")])
    net.start()
    try:
        out = net.wait_route("A", "D", 3)
        check(all(U[x] in out for x in "ABCD"), f"A's path to D: {out}")
        for sources, n in (("ML-KEM-768,X25519", 40), ("ML-KEM-768,QKD", 24)):
            ka, kd, replies = take_keys("A", "D", n, sources)
            agree(ka, kd, n, sources)
            hops = {r["metadata"]["hops"] for r in replies}
            check(hops == {2}, f"{sources}: metadata.hops {hops}")
            delivered.extend(ka)
        for n in "AD":
            check(status(n)["errors"]["confirmation_mismatches"] == 0, f"{n}: mismatches")
        for n in "BC":
            st = status(n)
            check(st["streams"] == [] and st["relay"]["messages_forwarded"] > 0,
                  f"{n} holds a stream or forwarded nothing: {st['relay']}")
            check("QKD links of a relayed stream opened" in open(f"{net.dir}/{n}/hykexd.log").read(),
                  f"{n} did not relay the QKD part")
        raw = [bytes.fromhex(k) for k in delivered]
        hexes = [k.encode() for k in delivered]  # hykexd writes hex in lower case
        for n in "BC":
            blobs = files_of(f"{net.dir}/{n}")  # its log file, console log, state directory
            check(any("state" in p for p, _ in blobs) and any(p.endswith("hykexd.log")
                                                              for p, _ in blobs),
                  f"{n}: no state or log file to look at: {[p for p, _ in blobs]}")
            for p, b in blobs:
                for k in raw + hexes:
                    check(k not in b, f"{n} holds a delivered key in {p}")
            own = uuid.UUID(U[n]).bytes
            t0 = time.time()
            found, read, skipped = scan_memory(net.pid(n), raw + hexes + [own, U[n].encode()])
            print(f"     {n}: {read / 1e6:.0f} MB of memory read in {time.time() - t0:.1f} s "
                  f"({skipped / 2**40:.1f} TiB of sanitizer shadow skipped)", flush=True)
            check(own in found and U[n].encode() in found,
                  f"{n}: the memory scan did not find the node's own UUID: it reads nothing")
            check(not (found & set(raw + hexes)), f"{n} holds a delivered key in its memory")
    finally:
        net.stop()


@test
def node_joining_a_running_network_is_used_at_once():
    """A-B-C runs with its maps converged; D starts (linked to C) and is used at once, at both
    ends: as soon as `hykex route` shows each end the other, the applications open A-D. D must
    learn the nodes announced before its link came up (its neighbour hands it the map) within
    a tick, not at their next announcement (relay.announce_s, 10 s by default). Then E joins
    (linked to D) and opens a stream to A the moment E's own route shows A: E's STREAM_OPEN can
    reach A before E's announcement does, and A must hold it until E is on its map, not drop
    it (the application at A opens once A's route shows E)."""
    net = Net("join", [("A", "B"), ("B", "C"), ("C", "D"), ("D", "E")])
    net.start(only="ABC")
    try:
        net.wait_route("A", "C", 2)
        net.wait_route("C", "A", 2)
        t0 = time.time()
        net.start_node("D")
        net.wait_route("A", "D", 3, timeout=5)
        net.wait_route("D", "A", 3, timeout=5)
        print(f"     D and A see each other {time.time() - t0:.2f} s after D's start "
              f"(announce_s 10)", flush=True)
        ka, kd, _ = take_keys("A", "D", 8, "ML-KEM-768,X25519", timeout=5000)
        agree(ka, kd, 8, "A-D at once")
        got = cli_stream("A", "D", "ML-KEM-768,X25519")
        check(got[0]["metadata"]["hops"] == 2, f"hykex get: {got[0]['metadata']}")
        # E joins and initiates at once
        net.start_node("E")
        net.wait_route("E", "A", 4, timeout=5)
        ksid, sources, out = str(uuid.uuid4()), "ML-KEM-768,X25519", {}

        def side(node):
            c = App(node)
            r = c.call("OPEN_CONNECT", source=uri("E", sources), destination=uri("A", sources),
                       key_stream_id=ksid, qos={"key_chunk_size": 32, "timeout": 8000})
            out[node] = [r] + [c.call("GET_KEY", key_stream_id=ksid, index=i)
                               for i in range(4 if r["status"] == 0 else 0)]
            c.close()
        te = threading.Thread(target=side, args=("E",))
        te.start()
        net.wait_route("A", "E", 4, timeout=5)
        side("A")
        te.join(60)
        for n in "EA":
            check(out.get(n) and all(r["status"] == 0 for r in out[n]), f"{n}: {out.get(n)}")
        check([r["key_buffer"] for r in out["E"][1:]] == [r["key_buffer"] for r in out["A"][1:]],
              "E-A: keys differ")
        held = "held for its announcement" in open(f"{net.dir}/A/hykexd.log").read()
        how = "was held at A until E was on its map" if held else "arrived after E was on A's map"
        print(f"     E's STREAM_OPEN {how}", flush=True)
    finally:
        net.stop()


RING = [("A", "B"), ("B", "C"), ("C", "D"), ("D", "E"), ("E", "F"), ("F", "A")]


def ring_kill(sources, what):
    """Ring A-B-C-D-E-F: A's path to D (3 hops either way) is the one over the smaller UUIDs;
    that path's first relay is SIGKILLed after the 10th key. Returns nothing; checks."""
    # small batches and few ready keys: production still runs when the relay is killed (with
    # the defaults the 60 keys would be made before it)
    net = Net(what, RING, tuning={"limits": {"batch_size": 4, "buffer_depth": 8}})
    net.start()
    try:
        out = net.wait_route("A", "D", 3)
        net.wait_route("D", "A", 3)
        first = next(x for x in "BF" if f"{U['A']} > {U[x]}" in out)
        other = "F" if first == "B" else "B"

        def kill(i):
            if i == 10:
                net.kill(first)
        ka, kd, replies = take_keys("A", "D", 60, sources, during=kill)
        agree(ka, kd, 60, f"{sources}, {first} killed")
        out = net.wait_route("A", "D", 3)
        check(U[other] in out and U[first] not in out, f"A's path after the kill: {out}")
        for n in "AD":
            check(status(n)["errors"]["confirmation_mismatches"] == 0, f"{n}: mismatches")
        print(f"     {first} killed after key 10; A's failed (remade) batches: "
              f"{status('A')['errors']['batches_failed']}", flush=True)
    finally:
        net.stop()


@test
def ring_relay_killed_keys_keep_coming():
    """Ring of six, ML-KEM-768 + X25519 end to end: the first relay of A's path to D is killed
    mid-stream; later batches go round the other side, all 60 keys agree, no mismatch."""
    ring_kill("ML-KEM-768,X25519", "ring")


@test
def ring_relay_killed_qkd_relayed():
    """The same with ML-KEM-768 + QKD (the QKD part relayed): the initiator moves the stream to
    the other side of the ring and the QKD links along it are opened; all keys agree."""
    ring_kill("ML-KEM-768,QKD", "ringqkd")


MESH = [("A", "B"), ("A", "C"), ("B", "D"), ("C", "D"), ("C", "E"), ("D", "F"), ("E", "F")]


@test
def mesh_of_six_converges_and_far_pairs_agree():
    """Six nodes, seven links (A-F and B-E are three hops apart): every map holds every node
    with a path (the time from the last start is printed); A-F (ML-KEM-768 + QKD relayed) and
    E-B (ML-KEM-768 + X25519) stream at the same time and their keys agree."""
    net = Net("mesh", MESH)
    net.start()
    try:
        last = max(net.started.values())
        t0 = time.time()
        while time.time() - t0 < 30 and not net.converged():
            time.sleep(0.1)
        check(net.converged(), "the maps did not converge within 30 s")
        print(f"     maps converged {time.time() - last:.2f} s after the last node started "
              f"(6 nodes, relay.announce_s 10)", flush=True)
        for a, b in (("A", "F"), ("E", "B")):
            net.wait_route(a, b, 3)
        res = {}

        def pair(a, b, sources):
            try:
                res[a + b] = take_keys(a, b, 24, sources, app=f"app{a}{b}")
            except AssertionError as e:
                res[a + b] = e
        ts = [threading.Thread(target=pair, args=x) for x in
              (("A", "F", "ML-KEM-768,QKD"), ("E", "B", "ML-KEM-768,X25519"))]
        [t.start() for t in ts]
        [t.join(300) for t in ts]
        for p in ("AF", "EB"):
            check(isinstance(res.get(p), tuple), f"{p}: {res.get(p)}")
            ka, kb, replies = res[p]
            agree(ka, kb, 24, p)
            check({r["metadata"]["hops"] for r in replies} == {2}, f"{p}: hops")
        for n in NODES:
            check(status(n)["errors"]["confirmation_mismatches"] == 0, f"{n}: mismatches")
    finally:
        net.stop()


@test
def figures_keys_per_second_by_relays():
    """Figures, not a check (HYKEX_RELAY_LAB_FIGURES=1 runs it; use a release build): a line
    A-B-C-D-E, from A to B (direct), C, D and E (1, 2, 3 relays), 400 keys taken by index at
    both ends; prints keys/s at A for end-to-end ML-KEM-768 + X25519 and for ML-KEM-768 + QKD
    (relayed). Every pair of key lists must still agree."""
    if os.environ.get("HYKEX_RELAY_LAB_FIGURES") != "1":
        raise Skip("figures only: HYKEX_RELAY_LAB_FIGURES=1 runs it")
    net = Net("figures", [("A", "B"), ("B", "C"), ("C", "D"), ("D", "E")],
              tuning={"limits": {"batch_size": 4, "buffer_depth": 8}})
    net.start()
    try:
        for dst, hops in (("B", 1), ("C", 2), ("D", 3), ("E", 4)):
            net.wait_route("A", dst, hops)
            net.wait_route(dst, "A", hops)
        for sources in ("ML-KEM-768,X25519", "ML-KEM-768,QKD"):
            for dst, relays in (("B", 0), ("C", 1), ("D", 2), ("E", 3)):
                t0 = time.time()
                ka, kb, _ = take_keys("A", dst, 400, sources, app=f"fig{dst}")
                rate = 400 / (time.time() - t0)
                agree(ka, kb, 400, f"A-{dst} {sources}")
                print(f"     {sources:18} A-{dst} {relays} relays: {rate:7.0f} keys/s "
                      f"(400 keys, OPEN_CONNECT included)", flush=True)
    finally:
        net.stop()


def finish():
    # the lab goes at exit (atexit); the folder too when every case passed
    pass


if __name__ == "__main__":
    R.run(setup=setup, finish=finish)

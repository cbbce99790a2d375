#!/usr/bin/env python3
"""bench/relay.py: the relay across trusted nodes measured on loopback (docs/relay.md).

Two parts, one run:
- hops: a line of five nodes A-B-C-D-E (each on its own loopback address, QKD links only
  between neighbours in the simulator, relay.enabled). From A to B (direct), C (1 relay),
  D (2 relays) and E (3 relays, 4 hops): OPEN_CONNECT to the first key at A, and production
  (keys/s while an application takes 400 keys by index), for ML-KEM-768 + X25519 (end to end)
  and ML-KEM-768 + QKD (the QKD part relayed hop by hop).
- scale: N nodes (--nodes, default 50) on a random connected mesh (a ring plus N/2 random
  chords), no KMEs: the time from the last node's start until every node's map holds all N
  nodes with a path to each; then one node killed: the time until no map has a path to it, and
  until it has left every map (4 x relay.announce_s); and each node's RSS.

Every figure is from one run on a shared machine: read them as orders of magnitude.
Writes bench/results/relay.json.

Usage: bench/relay.py BIN_DIR [--nodes N] [--keys K]
"""
import argparse
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from hxtest import Runner, free_loopback, free_port, next_json  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("bin")
ap.add_argument("--nodes", type=int, default=50)
ap.add_argument("--keys", type=int, default=400)
args = ap.parse_args()
BIN = os.path.abspath(args.bin)
R = Runner("hykex-bench-relay-")
WORK = R.work
results = {}


class App:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.buf = b""

    def call(self, command, **data):
        self.s.sendall(json.dumps({"command": command, "data": data}).encode())
        obj, _, self.buf = next_json(self.s, self.buf)
        return obj


def node_uuid(i):
    return str(uuid.UUID(int=(0x10000000 + i) << 96 | 0x4000 << 64 | 0x8000 << 48 | i))


def make_certs(ids):
    def run(*a):
        subprocess.run(list(a), check=True, capture_output=True, cwd=WORK)
    if not os.path.exists(f"{WORK}/ca"):
        run(f"{ROOT}/certificates/create_ca.sh", "--out", "ca")
    for name, u, ip in ids:
        run(f"{ROOT}/certificates/generate_cert.sh", "--uuid", u, "--name", name, "--ip", ip,
            "--out", name)


def write_node(name, u, addr, port, api, peers, kme=0):
    cfg = {"uuid": u, "logging_config": {"console_log_type": "warning"},
           "certificate_config": {"cert_authority_path": f"{name}/ca.crt",
                                  "cert_path": f"{name}/node.crt", "key_path": f"{name}/node.key"},
           "hybridization_server_address": {"host": "127.0.0.1", "port": api},
           "qkd_address": {"host": "127.0.0.1", "port": kme},
           "peer_local_address": {"host": addr, "port": port},
           "peer": {"keepalive_s": 1, "reconnect_max_s": 1},
           "relay": {"enabled": True, "announce_s": 1},
           "limits": {"max_streams": 16, "max_key_chunk": 64}}
    json.dump(cfg, open(f"{WORK}/{name}.json", "w"))
    json.dump(peers, open(f"{WORK}/{name}-peers.json", "w"))


def start(name):
    return R.start(name, [f"{BIN}/hykexd", "-c", f"{WORK}/{name}.json", "-p",
                          f"{WORK}/{name}-peers.json"], f"{WORK}/{name}.log", exit_ok=None,
                   cwd=WORK)


def relay_status(api):
    return App(api).call("STATUS").get("relay", {})


# ---- hops ----

def hops():
    names = "ABCDE"
    port = free_port()
    prefix = free_loopback("127.0.0.7", [port])
    addr = {n: f"{prefix}{i}" for i, n in enumerate(names[:4])}
    addr["E"] = "127.0.0.1"
    pport = {n: port for n in names[:4]}
    pport["E"] = free_port()
    api = {n: free_port() for n in names}
    kme = {n: free_port() for n in names}
    u = {n: node_uuid(0x100 + i) for i, n in enumerate(names)}
    make_certs([(n, u[n], addr[n]) for n in names])
    net = {"kmes": [{"id": f"K{n}", "node": u[n], "etsi004_json": {"port": kme[n]}} for n in names],
           "links": [{"id": a + b, "kmes": [f"K{a}", f"K{b}"], "rate_bps": 0}
                     for a, b in zip(names, names[1:])]}
    json.dump(net, open(f"{WORK}/net.json", "w"))
    R.start("sim", [f"{BIN}/hykex-qkdsim", "-c", f"{WORK}/net.json", "--ctl", f"{WORK}/sim.ctl",
                    "--log-level", "warn"], f"{WORK}/sim.log", exit_ok=None)
    for i, n in enumerate(names):
        nb = [m for m in (names[i - 1] if i else None, names[i + 1] if i < 4 else None) if m]
        write_node(n, u[n], addr[n], pport[n], api[n],
                   {u[m]: {"address": {"host": addr[m], "port": pport[m]}} for m in nb}, kme[n])
        start(n)
    t0 = time.time()
    while time.time() - t0 < 60:
        ends = [e for e in relay_status(api["A"]).get("nodes", []) + relay_status(api["E"]).get(
            "nodes", []) if e.get("path")]
        if len(ends) == 10:
            break
        time.sleep(0.2)
    out = {}
    for sources in ("ML-KEM-768,X25519", "ML-KEM-768,QKD"):
        for dst, relays in (("B", 0), ("C", 1), ("D", 2), ("E", 3)):
            ksid = str(uuid.uuid4())
            uri = lambda n: f"hybrid://b@{u[n]}?hybridization=hkdf&key_sources={sources}"  # noqa
            qos = {"key_chunk_size": 32, "timeout": 30000}
            res = {}

            def side(n, take):
                c = App(api[n])
                t = time.time()
                r = c.call("OPEN_CONNECT", source=uri("A"), destination=uri(dst), qos=qos,
                           key_stream_id=ksid)
                if r["status"] != 0:
                    res[n] = r
                    return
                g = c.call("GET_KEY", key_stream_id=ksid, index=0)
                res[n + "first"] = time.time() - t
                t1 = time.time()
                got, lat = [bytes(g.get("key_buffer", [])).hex()], []
                for i in range(1, take):
                    tc = time.perf_counter()
                    r = c.call("GET_KEY", key_stream_id=ksid, index=i)
                    lat.append(time.perf_counter() - tc)
                    got.append(bytes(r.get("key_buffer", [])).hex())
                res[n + "rate"] = (take - 1) / (time.time() - t1)
                lat.sort()
                res[n + "lat"] = {q: round(1e6 * lat[min(len(lat) - 1, int(f * len(lat)))])
                                  for q, f in (("p50", 0.5), ("p99", 0.99))} if lat else {}
                res[n] = got
                res[n + "hops"] = g.get("metadata", {}).get("hops")
                c.call("CLOSE", key_stream_id=ksid)
            ts = [threading.Thread(target=side, args=(n, args.keys)) for n in ("A", dst)]
            [t.start() for t in ts]
            [t.join(300) for t in ts]
            ok = isinstance(res.get("A"), list) and res.get("A") == res.get(dst)
            key = f"{sources} {relays} relays"
            out[key] = {"agree": ok, "hops_metadata": res.get("Ahops"),
                        "open_to_first_key_ms": round(1000 * res.get("Afirst", -1), 1),
                        "keys_per_s": round(res.get("Arate", 0), 1),
                        "get_key_us_at_A": res.get("Alat", {})}
            print(f"  {key:32} {json.dumps(out[key])}", flush=True)
    for n in names:
        R.stop(n)
    R.stop("sim")
    return out


# ---- scale ----

def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def scale(n):
    rng = random.Random(17)
    edges = {(i, (i + 1) % n) for i in range(n)}
    while len(edges) < n + n // 2:
        a, b = rng.sample(range(n), 2)
        if (a, b) not in edges and (b, a) not in edges:
            edges.add((a, b))
    names = [f"N{i}" for i in range(n)]
    u = {i: node_uuid(i) for i in range(n)}
    port = {i: free_port() for i in range(n)}
    api = {i: free_port() for i in range(n)}
    make_certs([(names[i], u[i], "127.0.0.1") for i in range(n)])
    for i in range(n):
        nb = [b if a == i else a for a, b in edges if i in (a, b)]
        write_node(names[i], u[i], "127.0.0.1", port[i], api[i],
                   {u[m]: {"address": {"host": "127.0.0.1", "port": port[m]}} for m in nb})
    t_first = time.time()
    for i in range(n):
        start(names[i])
    t_started = time.time()

    def converged(count, gone=None):
        for i in range(n):
            if gone is not None and i == gone:
                continue
            nodes = relay_status(api[i]).get("nodes", [])
            with_path = {e["uuid"] for e in nodes if e.get("path")}
            if gone is None and len(with_path) < count:
                return False
            if gone is not None and (u[gone] in with_path if count == "path" else
                                     any(e["uuid"] == u[gone] for e in nodes)):
                return False
        return True
    while not converged(n) and time.time() - t_started < 300:
        time.sleep(0.2)
    out = {"nodes": n, "links": len(edges), "starts_took_s": round(t_started - t_first, 2),
           "converge_after_last_start_s": round(time.time() - t_started, 2)}
    rss = sorted(rss_kb(R.procs[names[i]].pid) for i in range(n))
    out["rss_kb_median"] = rss[n // 2]
    out["rss_kb_max"] = rss[-1]
    victim = max(range(n), key=lambda i: sum(i in e for e in edges))
    os.kill(R.procs[names[victim]].pid, 9)
    R.procs[names[victim]].wait()
    t_kill = time.time()
    while not converged("path", victim) and time.time() - t_kill < 120:
        time.sleep(0.2)
    out["no_path_to_dead_node_s"] = round(time.time() - t_kill, 2)
    while not converged("map", victim) and time.time() - t_kill < 120:
        time.sleep(0.2)
    out["dead_node_off_every_map_s"] = round(time.time() - t_kill, 2)
    out["dead_node_links"] = sum(victim in e for e in edges)
    print(f"  scale: {json.dumps(out)}", flush=True)
    for i in range(n):
        R.stop(names[i])
    return out


def main():
    print("hops (line A-B-C-D-E):", flush=True)
    results["hops"] = hops()
    print(f"scale ({args.nodes} nodes):", flush=True)
    results["scale"] = scale(args.nodes)
    os.makedirs(f"{ROOT}/bench/results", exist_ok=True)
    json.dump(results, open(f"{ROOT}/bench/results/relay.json", "w"), indent=1)
    print(f"wrote {ROOT}/bench/results/relay.json")


R.run(finish=main)

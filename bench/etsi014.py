#!/usr/bin/env python3
"""bench/etsi014.py: hykexd's ETSI 014 server from SAEs on loopback, beside the simulator's own
014 KMEs and hykexd's ETSI 004 GET_KEY.

Starts the QKD simulator (unbounded key rate; its KMEs also serve 014) and two nodes with their
014 servers (tests/integration/etsi014_net.py), waits for the SAE pair's stream, then measures
round trips: an enc_keys (one 256-bit key) at the master's server and a dec_keys of its key_ID at
the slave's, as an SAE makes them with Python `requests`:
  - hykexd 014, one keep-alive connection per SAE; a new TLS connection per call (as the widely
    used C client does); 8 SAE pairs of threads at once on keep-alive connections; 64 at once
    (64 master and 64 slave connections open together, all on the one SAE pair's stream);
  - the simulator's 014 KMEs (libmicrohttpd, GnuTLS), keep-alive and new connections;
  - hykexd 004: GET_KEY of the same index at both nodes over the reference JSON format (one TCP
    connection each), the 004 analogue of a round trip.
Latency p50/p99/p99.9 per round trip and round trips per second (p99.9 means something only in
the rows of a thousand round trips or more: the 64-connection row). Prints a table and writes
bench/results/etsi014.json. Timing figures, not assertions: run it on a quiet machine.

Usage: bench/etsi014.py [BIN_DIR] [--quick]   (BIN_DIR default build/release/bin)
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import etsi014_net as net  # noqa: E402  (the PKI and configs of the 014 integration test)
from hxtest import free_port, next_json  # noqa: E402  (ports safe beside other suites)

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
BIN = os.path.abspath(ARGS[0] if ARGS else os.path.join(ROOT, "build", "release", "bin"))
QUICK = "--quick" in sys.argv
N = 60 if QUICK else 400
THREADS = 8
MANY = 64  # SAE client connections at once (each thread: a master and a slave connection)
N_MANY = 640 if QUICK else 2560  # p99.9 needs a thousand round trips or more


def progress(msg):
    print(f"bench/etsi014: {msg}", file=sys.stderr, flush=True)


def stats(lat_s, wall_s):
    lat = sorted(x * 1000.0 for x in lat_s)
    return {"round_trips": len(lat), "per_s": len(lat) / wall_s,
            "p50_ms": statistics.median(lat), "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "p999_ms": lat[min(len(lat) - 1, int(len(lat) * 0.999))]}


def round_trips(master, slave, mport, sport, mid, sid, n):
    """n enc_keys at mport + dec_keys at sport; the latency of each pair of calls."""
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        code, reply = master.call(mport, sid, "enc_keys", params={"number": 1, "size": 256})
        if code != 200:
            raise RuntimeError(f"enc_keys: {code} {reply}")
        kid = reply["keys"][0]["key_ID"]
        code, back = slave.call(sport, mid, "dec_keys", "POST", {"key_IDs": [{"key_ID": kid}]})
        if code != 200 or back["keys"][0]["key"] != reply["keys"][0]["key"]:
            raise RuntimeError(f"dec_keys: {code} {back}")
        lat.append(time.perf_counter() - t0)
    return lat


def measure(work, mport, sport, fresh=False, threads=1, n=N):
    lat, errors = [], []

    def run(k):
        try:
            m = net.Client(work, "SAE_A", fresh)
            s = net.Client(work, "SAE_B", fresh)
            lat.extend(round_trips(m, s, mport, sport, "SAE_A", "SAE_B", n // threads))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    t0 = time.perf_counter()
    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    if errors:
        raise errors[0]
    return stats(lat, time.perf_counter() - t0)


class App004:
    """An ETSI 004 application: the reference JSON wire format over TCP."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""

    def call(self, command, **data):
        self.s.sendall(json.dumps({"command": command, "data": data}).encode())
        obj, _, self.buf = next_json(self.s, self.buf, "hykexd closed the connection")
        return obj


def measure_004(ports, n=N):
    ksid = str(uuid.uuid4())
    apps = {k: App004(ports["api" + k]) for k in "AB"}

    def uri(k):
        return f"hybrid://bench@{net.U[k]}?hybridization=hkdf&key_sources=QKD,ML-KEM-768"
    qos = {"key_chunk_size": 32, "max_bps": 0, "min_bps": 0, "jitter": 0, "priority": 0,
           "timeout": 10000, "ttl": 0, "metadata_mimetype": "application/json"}
    out = {}
    ts = [threading.Thread(target=lambda k=k: out.__setitem__(k, apps[k].call(
        "OPEN_CONNECT", source=uri("A"), destination=uri("B"), qos=qos, key_stream_id=ksid)))
        for k in "AB"]
    [t.start() for t in ts]
    [t.join() for t in ts]
    if any(out[k]["status"] != 0 for k in "AB"):
        raise RuntimeError(f"OPEN_CONNECT: {out}")
    lat = []
    t0 = time.perf_counter()
    for i in range(n):
        t1 = time.perf_counter()
        a = apps["A"].call("GET_KEY", key_stream_id=ksid, index=i)
        b = apps["B"].call("GET_KEY", key_stream_id=ksid, index=i)
        if a["status"] != 0 or a["key_buffer"] != b["key_buffer"]:
            raise RuntimeError(f"GET_KEY {i}: {a['status']} {b['status']}")
        lat.append(time.perf_counter() - t1)
    res = stats(lat, time.perf_counter() - t0)
    for k in "AB":
        apps[k].call("CLOSE", key_stream_id=ksid)
    return res


def main():
    work = tempfile.mkdtemp(prefix="hykex-bench014-")
    ports = {k: free_port() for k in ["kA", "kB", "apiA", "apiB", "peerA", "peerB", "eA", "eB",
                                      "s14A", "s14B"]}
    procs = []
    try:
        progress(f"programs from {BIN}, work in {work}")
        net.make_pki(work, ROOT, ["SAE_A", "SAE_B"])
        net.write(f"{work}/net.json",
                  net.sim_net(work, ports, {"A": ["SAE_A"], "B": ["SAE_B"]}))
        procs.append(subprocess.Popen([f"{BIN}/hykex-qkdsim", "-c", f"{work}/net.json",
                                       "--log-level", "warn"], stdout=subprocess.PIPE,
                                      stderr=open(f"{work}/sim.log", "w"), text=True))
        procs[-1].stdout.readline()
        for k, local, remote in (("A", ["SAE_A"], {"SAE_B": net.U["B"]}), ("B", ["SAE_B"], {})):
            cfg = net.node_config(k, ports, local, remote, max_keys_per_request=16)
            # a deep buffer of 32-byte keys: the calls measure the API, not production
            cfg["limits"] = {"buffer_depth": 1024, "batch_size": 64, "max_streams": 32,
                             "max_key_chunk": 64}
            net.write(f"{work}/{k}.json", cfg)
            procs.append(subprocess.Popen([f"{BIN}/hykexd", "-c", f"{work}/{k}.json"], cwd=work,
                                          stdout=subprocess.PIPE,
                                          stderr=open(f"{work}/{k}.log", "w"), text=True))
            if procs[-1].stdout.readline().strip() != "ready":
                raise RuntimeError(f"hykexd {k} did not start: " +
                                   open(f"{work}/{k}.log").read()[-500:])
        master = net.Client(work, "SAE_A")
        deadline = time.time() + 60
        while time.time() < deadline:
            code, st = master.call(ports["eA"], "SAE_B", "status")
            if code == 200 and st["stored_key_count"] >= 64:
                break
            time.sleep(0.3)
        else:
            raise RuntimeError("the SAE pair's stream did not fill")
        res = {}
        progress("hykexd 014, keep-alive")
        res["hykexd_014_keepalive"] = measure(work, ports["eA"], ports["eB"])
        progress("hykexd 014, a new connection per call")
        res["hykexd_014_new_connection"] = measure(work, ports["eA"], ports["eB"], fresh=True,
                                                   n=N // 4)
        progress(f"hykexd 014, {THREADS} SAE pairs of threads")
        res[f"hykexd_014_{THREADS}_threads"] = measure(work, ports["eA"], ports["eB"],
                                                       threads=THREADS)
        progress(f"hykexd 014, {MANY} SAE connections of each end at once")
        res[f"hykexd_014_{MANY}_connections"] = measure(work, ports["eA"], ports["eB"],
                                                         threads=MANY, n=N_MANY)
        progress("simulator 014, keep-alive")
        res["qkdsim_014_keepalive"] = measure(work, ports["s14A"], ports["s14B"])
        progress("simulator 014, a new connection per call")
        res["qkdsim_014_new_connection"] = measure(work, ports["s14A"], ports["s14B"],
                                                   fresh=True, n=N // 4)
        progress("hykexd 004 GET_KEY at both nodes")
        res["hykexd_004_get_key_both"] = measure_004(ports)
        print(f"{'':34} {'round trips/s':>14} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} "
              f"{'n':>5}")
        for k, v in res.items():
            print(f"{k:34} {v['per_s']:14.1f} {v['p50_ms']:8.2f} {v['p99_ms']:8.2f} "
                  f"{v['p999_ms']:9.2f} {v['round_trips']:5d}")
        os.makedirs(f"{ROOT}/bench/results", exist_ok=True)
        out = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "quick": QUICK,
               "bin": BIN, "results": res}
        with open(f"{ROOT}/bench/results/etsi014.json", "w") as f:
            json.dump(out, f, indent=1)
        print("wrote bench/results/etsi014.json")
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

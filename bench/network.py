#!/usr/bin/env python3
"""bench/network.py: hykexd measured from applications on loopback (bench/run.sh runs it).

Starts the QKD simulator (unbounded key rate) and two nodes (release build), then through
bench_api (libhykex): key production rate per method and source set, GET_KEY latency from a
filled buffer beside a bare TCP echo of the same sizes, GET_KEY throughput over 1/8/64
connections, OPEN_CONNECT latency on a warm link, and scaling: 1 to 1,024 streams open at once
(aggregate production from STATUS, node A's RSS growth per stream), and production at batch
sizes 1, 16, 64 and 256 (one ML-DSA signature per node per batch), the durability cost
(production and GET_KEY latency without a store, with the store, with the store and fsync), and
OPEN_CONNECT on a cold link (issued as the connecting node starts, so that it waits for the peer
TLS handshake) beside bare TLS 1.3 handshakes (openssl s_server / s_time) with the same
certificates and group; production with a KEM key pair per position and per batch, and each
rate over the crypto limit L of the same run (bench/results/crypto.json). As root, also a pass
in the namespace lab (scripts/netlab.sh: the simulator and the nodes on their own hosts):
production, GET_KEY latency and OPEN_CONNECT over veth links. Every figure is the median of
repeated runs with min and max. Writes bench/results/network.json (network_lab.json for the
lab), and with gnuplot latency.png (latency distribution) and scaling.png (throughput against
concurrent streams and connections). KEM families: production and OPEN_CONNECT (to the first
key at both ends) for ML-KEM-768 + Classic-McEliece-348864 + QKD and sntrup761 + X25519 + QKD
beside ML-KEM-768 + QKD, with KEM key pairs per batch and per position, over L as well
(--kem-families-only: that section alone, into bench/results/kem_families.json).

The draining application (issue 18): with the default limits (buffer_depth 128, batch_size 16),
an application at each end of 1 and of 64 streams takes keys back to back for 10 s: GET_KEY
latency p50/p99/p99.9/max at both ends and keys/s, beside the filled-buffer latency and the
echo; drain.png plots every call's latency over time (--drain-only: that section alone, into
bench/results/drain.json).

Production against L (issue 18, --production-only [--reps N]): L measured in the same run
(bench_crypto --only ML-KEM-768 before and after the rows), then keys taken by applications at
both ends and keys ready with none taken, batch 64: per-position and per-batch key pairs, 1 and
2 worker threads per pool, the store without and with fsync (with GET_KEY latency from a
filled buffer); the load average with every row. Into bench/results/production.json.

Usage: bench/network.py BIN_DIR [--quick] [--lab-only | --kem-families-only | --drain-only
       [--reps N] [--extra] [--no-pace] [--streams K,...] | --production-only [--reps N]
       | --no-lab]
(--extra: the draining cases on one stream with limits.pace off, with the store, with 1 and 2
worker threads per pool, and with batch sizes 8 and 32; --no-pace: every draining case with
limits.pace off, keys handed out a batch at a time as before it; --streams: only these
stream counts, default 1,64.)
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from hxtest import free_port  # noqa: E402  (ports safe beside other suites)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.abspath(sys.argv[1])
QUICK = "--quick" in sys.argv
REPS = 1 if QUICK else 3
DEPTH = 16384  # keys buffered per stream: a stream must not fill up within a scaling window
# The nodes' limits for that: up to 1 024 streams at once, each buffering DEPTH keys of 32 bytes
# (every key here is 32 bytes: limits.max_key_chunk), all in the secure heap (hykexd sizes it
# from these limits and refuses a config it cannot hold: 1 100 x (16 384 + 192) x 32 bytes
# needs 1 GiB, mlocked, per node).
MAX_STREAMS = 1100
SECURE_HEAP_MB = 1024
QKD_PIPELINE = 32  # our simulator parses request streams (the reference KME would need 1)
U = {"A": "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa", "B": "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb"}


def progress(msg):
    print(f"bench/network: {msg}", file=sys.stderr, flush=True)


def summary(vals):
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "runs": vals}


def bench(*args):
    r = subprocess.run([f"{BIN}/bench_api"] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=600)
    if r.returncode != 0 or not r.stdout.strip():
        raise RuntimeError(f"bench_api {' '.join(map(str, args))}: {r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def plot(out):
    """bench/results/latency.png and scaling.png with gnuplot (installed by bootstrap.sh)."""
    res = f"{ROOT}/bench/results"
    if shutil.which("gnuplot") is None:
        progress("gnuplot not found (scripts/bootstrap.sh installs it): no plots")
        return
    pct = [p for p in range(1, 100)] + [99.9]
    with open(f"{res}/latency.dat", "w") as f:
        f.write("# percentile get_key_us tcp_echo_us\n")
        for p, a, b in zip(pct, out["get_key_latency_us"]["cdf"], out["tcp_echo_latency_us"]["cdf"]):
            f.write(f"{p} {a} {b}\n")
    with open(f"{res}/scaling.dat", "w") as f:
        f.write("# streams keys_per_s_median min max\n")
        for k, v in out["scaling"].items():
            s = v["keys_per_s"]
            f.write(f"{k} {s['median']} {s['min']} {s['max']}\n")
    with open(f"{res}/throughput.dat", "w") as f:
        f.write("# connections requests_per_s_median min max\n")
        for c, s in out["get_key_throughput_rps"].items():
            f.write(f"{c} {s['median']} {s['min']} {s['max']}\n")
    script = f"""
set terminal pngcairo size 900,560 noenhanced
set grid
set key left top
set output '{res}/latency.png'
set title 'GET_KEY latency from a filled buffer beside a bare TCP echo (loopback)'
set logscale x
set xlabel 'latency (us)'
set ylabel 'percentile'
plot '{res}/latency.dat' using 2:1 with lines lw 2 title 'GET_KEY (hykexd)', \
     '{res}/latency.dat' using 3:1 with lines lw 2 title 'TCP echo, same sizes'
set output '{res}/scaling.png'
set title 'Throughput against concurrency (median, min-max bars)'
set logscale x 2
set xlabel 'concurrent streams / client connections'
set ylabel 'per second'
set yrange [0:*]
plot '{res}/scaling.dat' using 1:2:3:4 with yerrorlines lw 2 title 'keys produced, all streams', \
     '{res}/throughput.dat' using 1:2:3:4 with yerrorlines lw 2 title 'GET_KEY requests'
"""
    r = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True)
    if r.returncode != 0:
        progress(f"gnuplot failed: {r.stderr.strip()}")
    else:
        progress("wrote bench/results/latency.png and scaling.png")


def tls_handshakes(work):
    """Bare TLS 1.3 handshakes as openssl s_time makes them (a new session each), against
    openssl s_server with B's certificate, client certificate required (A's), group
    X25519MLKEM768: the handshake cost a peer link pays, without hykex. Median [min-max] of
    per-handshake times over REPS runs of 3 s (1 s with --quick)."""
    openssl = subprocess.run(["bash", "-c", f". {ROOT}/scripts/lib.sh && hx_openssl"],
                             capture_output=True, text=True, check=True).stdout.strip()
    port = free_port()
    srv = subprocess.Popen([openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-tls1_3",
                            "-groups", "X25519MLKEM768", "-cert", "B/node.crt", "-key", "B/node.key",
                            "-CAfile", "ca/ca.crt", "-Verify", "1", "-quiet", "-naccept", "1000000"],
                           cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        per = []
        for _ in range(REPS):
            progress("bare TLS 1.3 handshakes (openssl s_time)")
            r = subprocess.run([openssl, "s_time", "-connect", f"127.0.0.1:{port}", "-new",
                                "-time", "1" if QUICK else "3", "-cert", "A/node.crt",
                                "-key", "A/node.key", "-CAfile", "ca/ca.crt"],
                               cwd=work, capture_output=True, text=True, timeout=60)
            # "N connections in T.TTs; X connections/user sec" / "N connections in T real seconds"
            for line in r.stdout.splitlines():
                f = line.split()
                if "connections in" in line and "real seconds" in line:
                    per.append(float(f[3]) / int(f[0]) * 1e6)
                    break
        if not per:
            raise RuntimeError("openssl s_time gave no handshake count")
        return summary(per)
    finally:
        srv.terminate()
        srv.wait(5)


class Network:
    """The simulator and nodes A and B: on loopback (free ports), or in the namespace lab
    (scripts/netlab.sh: hosts sim, A, B of the lab run HYKEX_LAB with their own addresses on a
    bridge, which this host reaches; fixed ports). procs[0] is the simulator, procs[1] and [2]
    A and B."""

    @staticmethod
    def lab_addresses():
        """The hosts' addresses in the lab run HYKEX_LAB names."""
        return {n: subprocess.run([f"{ROOT}/scripts/netlab.sh", "addr", n], check=True,
                                  capture_output=True, text=True).stdout.strip()
                for n in ("sim", "A", "B")}

    def __init__(self, work, lab=False):
        self.work, self.lab, self.procs = work, lab, []
        keys = ["kA", "kB", "apiA", "apiB", "peerA", "peerB"]
        if lab:
            self.addr = self.lab_addresses()
            self.port = {"kA": 5300, "kB": 5301, "apiA": 5100, "apiB": 5100, "peerA": 5200, "peerB": 5200}
        else:
            self.addr = {k: "127.0.0.1" for k in ("sim", "A", "B")}
            self.port = {k: free_port() for k in keys}
        run = lambda *a: subprocess.run(list(a), check=True, capture_output=True, cwd=work)  # noqa
        if not os.path.exists(f"{work}/ca"):
            run(f"{ROOT}/certificates/create_ca.sh", "--out", "ca")
        for n in "AB":
            run(f"{ROOT}/certificates/generate_cert.sh", "--uuid", U[n], "--ip", self.addr[n], "--out", n)
        net = {"kmes": [{"id": f"KME_{n}", "node": U[n],
                         "etsi004_json": {"host": self.addr["sim"], "port": self.port["k" + n]}}
                        for n in "AB"],
               "links": [{"id": "ab", "kmes": ["KME_A", "KME_B"], "rate_bps": 0}]}
        json.dump(net, open(f"{work}/net.json", "w"))
        sim = subprocess.Popen(self.wrap("sim", [f"{BIN}/hykex-qkdsim", "-c", f"{work}/net.json",
                                                 "--log-level", "warn"]),
                               stdout=subprocess.PIPE, stderr=open(f"{work}/sim.log", "w"), text=True)
        self.procs.append(sim)
        sim.stdout.readline()

    def wrap(self, node, argv):
        """argv run at node's host: its namespace in the lab, this one on loopback."""
        return [f"{ROOT}/scripts/netlab.sh", "exec", node, *argv] if self.lab else argv

    def api(self, n):
        return f"{self.addr[n]}:{self.port['api' + n]}"

    def node_config(self, n, m, batch, store, key_pairs, depth=DEPTH, workers=None, pace=None):
        work, a, p = self.work, self.addr, self.port
        cfg = {"uuid": U[n],
               "logging_config": {"console_log_type": "warning"},
               "certificate_config": {"cert_authority_path": f"{n}/ca.crt",
                                      "cert_path": f"{n}/node.crt", "key_path": f"{n}/node.key"},
               "hybridization_server_address": {"host": a[n], "port": p["api" + n]},
               "qkd_address": {"host": a["sim"], "port": p["k" + n]},
               "peer_local_address": {"host": a[n], "port": p["peer" + n]},
               # a deeper buffer than DEPTH is for one stream's production (the secure heap
               # holds max_streams x depth keys)
               "limits": {**({"batch_size": batch} if batch is not None else {}),
                          "max_streams": MAX_STREAMS if depth is None or depth <= DEPTH else 8,
                          "max_key_chunk": 32, "secure_heap_mb": SECURE_HEAP_MB},
               "qkd": {"pipeline": QKD_PIPELINE}, "kem": {"key_pairs": key_pairs},
               "api": {"allow_remote": self.lab},  # the lab's applications run on this host
               "trusted_peers": {U[m]: {"address": {"host": a[m], "port": p["peer" + m]}}}}
        if depth is not None:  # limits.buffer_depth (None: the default)
            cfg["limits"]["buffer_depth"] = depth
        if BATCH_MACS is not None:
            cfg["peer"] = {"batch_macs": BATCH_MACS}
        if pace is not None:  # limits.pace (None: the default, on)
            cfg["limits"]["pace"] = pace
        if workers is not None:  # (initiator, responder) worker threads
            cfg["limits"]["initiator_workers"], cfg["limits"]["responder_workers"] = workers
        if store is not None:
            shutil.rmtree(f"{work}/{n}-state", ignore_errors=True)
            cfg["state_dir"] = f"{work}/{n}-state"
            cfg["store"] = {"fsync": store == "fsync"}
        json.dump(cfg, open(f"{work}/{n}.json", "w"))

    def effective(self, n, *path):
        """A setting of node n's running configuration (hykexd --check-config), e.g. a
        default the benchmark left to the daemon."""
        out = subprocess.run([f"{BIN}/hykexd", "-c", f"{n}.json", "--check-config"], cwd=self.work,
                             capture_output=True, text=True, check=True).stdout
        v = json.loads(out)
        for key in path:
            v = v[key]
        return v

    def start_node(self, n):
        p = subprocess.Popen(self.wrap(n, [f"{BIN}/hykexd", "-c", f"{n}.json"]), cwd=self.work,
                             stdout=subprocess.PIPE, stderr=open(f"{self.work}/{n}.log", "a"), text=True)
        p.stdout.readline()
        return p

    def start_nodes(self, batch, store=None, key_pairs="per-position", depth=DEPTH, workers=None,
                    pace=None):
        """(Re)starts nodes A and B with limits.batch_size = batch (None: the default), the durable store off
        (None), on ("normal") or on with fsync ("fsync"), kem.key_pairs = key_pairs,
        limits.buffer_depth = depth and workers = (limits.initiator_workers,
        limits.responder_workers) (None: the defaults), limits.pace = pace (None: the
        default)."""
        for p in self.procs[1:]:
            p.terminate()
            p.wait(10)
        del self.procs[1:]
        for n, m in (("A", "B"), ("B", "A")):
            self.node_config(n, m, batch, store, key_pairs, depth, workers, pace)
            self.procs.append(self.start_node(n))
        time.sleep(1.0)

    def stop(self):
        for p in self.procs:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs = []


DRAIN_SECONDS = 3 if QUICK else 10  # --quick: a smoke test of the section
NO_PACE = "--no-pace" in sys.argv  # every draining case with limits.pace off (the comparison)
DRAIN_STREAMS = (1, 64)
if "--streams" in sys.argv:  # e.g. --streams 64: only these cases (drain.png plots what ran)
    DRAIN_STREAMS = tuple(int(x) for x in sys.argv[sys.argv.index("--streams") + 1].split(","))


def cpu_seconds(pids):
    """User + system CPU seconds the processes have used (Linux /proc)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


# The draining cases beyond the default one (--drain-only --extra): one stream each, keys
# handed out a batch at a time (limits.pace off), the store on (fsync off / on), the worker pools at 1 and 2 threads (initiators = responders), and
# the batch size below and above the default (the trade-off between a batch's cadence and the
# ML-DSA signatures per key).
# The draining rows' limits.batch_size: the daemon's default unless HYKEX_BENCH_DRAIN_BATCH names
# one (to compare defaults); the results record the size the nodes ran with.
DRAIN_BATCH = int(os.environ["HYKEX_BENCH_DRAIN_BATCH"]) if os.environ.get("HYKEX_BENCH_DRAIN_BATCH") else None
# peer.batch_macs for every node (HYKEX_BENCH_BATCH_MACS=0: every batch signed, the way before
# batches were MACed; unset: the daemon's default); the results record what the nodes ran with.
BATCH_MACS = os.environ["HYKEX_BENCH_BATCH_MACS"] != "0" if os.environ.get("HYKEX_BENCH_BATCH_MACS") else None
DRAIN_EXTRA = [("pace off", {"pace": False}), ("store", {"store": "normal"}), ("store + fsync", {"store": "fsync"}),
               ("1 worker per pool", {"workers": (1, 1)}), ("2 workers per pool", {"workers": (2, 2)}),
               ("batch_size 8", {"batch": 8}), ("batch_size 32", {"batch": 32}),
               ("buffer_depth 64 (the default before)", {"depth": 64})]


def drain_case(net, A, B, reps, k, samples=None, batch=DRAIN_BATCH, **node):
    """K streams drained with the default limits.buffer_depth (128) unless node has depth, and
    limits.batch_size = batch (None: the default);
    node: start_nodes' store / workers. Median [min-max] over reps of each end's p50/p99/p99.9/
    max and of keys/s (taken at A, i.e. pairs of keys). Fresh nodes for each run."""
    runs = []
    if NO_PACE and "pace" not in node:
        node = dict(node, pace=False)
    for i in range(reps):
        net.start_nodes(batch, **dict({"depth": None}, **node))
        pids = [p.pid for p in net.procs[1:]]
        cpu0 = cpu_seconds(pids)
        runs.append(bench("drain", A, B, k, DRAIN_SECONDS, *([samples] if samples and i == 0 else [])))
        # both nodes' CPU per key taken (pairs of keys): what production and delivery cost
        runs[-1]["cpu_us_per_key"] = (cpu_seconds(pids) - cpu0) * 1e6 / max(runs[-1]["keys_per_s"] * DRAIN_SECONDS, 1)
    v = {"streams": k, "batch_size": batch if batch is not None else net.effective("A", "limits", "batch_size"),
         "batch_macs": net.effective("A", "peer", "batch_macs"), "keys_per_s": summary([r["keys_per_s"] for r in runs]),
         "cpu_us_per_key": summary([r["cpu_us_per_key"] for r in runs]),
         "mismatched_keys": sum(r["mismatched_keys"] for r in runs), **{k2: str(v2) for k2, v2 in node.items()}}
    for end in "AB":
        v[end] = {q: summary([r[end][q] for r in runs]) for q in ("p50_us", "p99_us", "p999_us", "max_us")}
    return v


def drain_pass(net, A, B, reps, extra=False):
    """The draining application: the default limits (buffer_depth 128, batch_size 16), an
    application at each end of K streams taking keys back to back for DRAIN_SECONDS (the first
    run's samples feed drain.png); with extra, the DRAIN_EXTRA cases on one stream."""
    out, res = {}, f"{ROOT}/bench/results"
    os.makedirs(res, exist_ok=True)
    for k in DRAIN_STREAMS:
        progress(f"draining application: {k} stream(s), {reps} run(s)")
        out[f"{k} stream(s)"] = drain_case(net, A, B, reps, k, f"{res}/drain_{k}.dat")
    for name, node in DRAIN_EXTRA if extra else []:
        progress(f"draining application: 1 stream, {name}, {reps} run(s)")
        out[f"1 stream, {name}"] = drain_case(net, A, B, reps, 1, **node)
    return out


def plot_drain():
    """bench/results/drain.png: every GET_KEY's latency against the time it was asked, both
    ends, 1 stream and 64 streams (the first run of each)."""
    res = f"{ROOT}/bench/results"
    if shutil.which("gnuplot") is None:
        progress("gnuplot not found (scripts/bootstrap.sh installs it): no plot")
        return
    panels = []
    for k in DRAIN_STREAMS:
        for end in "AB":
            panels.append(f"'{res}/drain_{k}.dat' using 1:(strcol(3) eq '{end}' ? $2/1000 : 1/0) "
                          f"with points pt 7 ps 0.25 title '{k} stream(s), node {end}'")
    script = f"""
set terminal pngcairo size 1100,640 noenhanced
set output '{res}/drain.png'
set title 'GET_KEY latency over time, applications taking keys back to back (default limits: buffer_depth 128, batch_size 16)'
set grid
set logscale y
set xlabel 'seconds'
set ylabel 'GET_KEY latency (ms)'
set key outside right
plot {", ".join(panels)}
"""
    r = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True)
    progress(f"gnuplot failed: {r.stderr.strip()}" if r.returncode != 0 else "wrote bench/results/drain.png")


def print_drain(dr, lat=None, echo=None):
    m = lambda s: f"{s['median']:.0f} [{s['min']:.0f}-{s['max']:.0f}]"  # noqa: E731
    print(f"\nGET_KEY while draining (buffer_depth 128, batch_size {DRAIN_BATCH or 'default'}, {DRAIN_SECONDS} s, "
          f"ML-KEM-768 + QKD, 32-byte keys), us; median [min-max]")
    print(f"{'case':30} {'end':>3} {'p50':>16} {'p99':>18} {'p99.9':>18} {'max':>20} {'keys/s':>20}"
          f" {'CPU us/key':>16}")
    for k, v in dr.items():
        for end in "AB":
            e = v[end]
            print(f"{k:30} {end:>3} {m(e['p50_us']):>16} {m(e['p99_us']):>18} "
                  f"{m(e['p999_us']):>18} {m(e['max_us']):>20} {m(v['keys_per_s']) if end == 'A' else '':>20}"
                  f" {m(v['cpu_us_per_key']) if end == 'A' else '':>16}")
        if v["mismatched_keys"]:
            print(f"  !! {v['mismatched_keys']} keys differed between the ends")
    if lat is not None:
        print(f"{'filled buffer':30} {'A':>3} {m(lat['p50']):>16} {m(lat['p99']):>18}")
    if echo is not None:
        print(f"{'bare TCP echo':30} {'':>3} {m(echo['p50']):>16} {m(echo['p99']):>18}")


def drain_only():
    """The draining section alone, with the filled-buffer latency and the echo beside it."""
    work = tempfile.mkdtemp(prefix="hykex-bench-drain-")
    net = None
    reps = REPS if "--reps" not in sys.argv else int(sys.argv[sys.argv.index("--reps") + 1])
    try:
        net = Network(work)
        A, B = net.api("A"), net.api("B")
        net.start_nodes(64)
        n_lat = 2000 if QUICK else 10000
        progress("GET_KEY latency from a filled buffer, and a bare TCP echo")
        lat = [bench("latency", A, B, n_lat) for _ in range(reps)]
        echo = [bench("echo", n_lat, 170, 260) for _ in range(reps)]
        out = {"benchmark": "drain", "reps": reps, "seconds": DRAIN_SECONDS, "pace": not NO_PACE,
               "loadavg_start": os.getloadavg(),
               "get_key_latency_filled_us": {"p50": summary([x["p50_us"] for x in lat]),
                                             "p99": summary([x["p99_us"] for x in lat])},
               "tcp_echo_latency_us": {"p50": summary([x["p50_us"] for x in echo]),
                                       "p99": summary([x["p99_us"] for x in echo])},
               "drain": drain_pass(net, A, B, reps, "--extra" in sys.argv)}
        out["loadavg_end"] = os.getloadavg()
        json.dump(out, open(f"{ROOT}/bench/results/drain.json", "w"), indent=1)
        plot_drain()
        print(f"limits.pace {'off' if NO_PACE else 'on'}; load average at start / end: "
              f"{out['loadavg_start'][0]:.1f} / {out['loadavg_end'][0]:.1f}")
        print_drain(out["drain"], out["get_key_latency_filled_us"], out["tcp_echo_latency_us"])
        print("wrote bench/results/drain.json")
    finally:
        if net is not None:
            net.stop()
        shutil.rmtree(work, ignore_errors=True)


def crypto_L(reps=3, seconds=0.5):
    """{op: [ops/s]} of ML-KEM-768 keygen / encaps / decaps from bench_crypto (this build)."""
    r = subprocess.run([f"{BIN}/bench_crypto", "--only", "ML-KEM-768", "--reps", str(reps),
                        "--seconds", str(seconds)], check=True, capture_output=True, text=True)
    return {x["op"]: x["ops_per_s"] for x in json.loads(r.stdout)["results"]
            if x.get("op") in ("keygen", "encaps", "decaps")}


# One stream's buffer for the "ready" rows: DEPTH keys fill within a 3 s window above
# DEPTH / 3 = 5 461 keys/s, which capped those rows.
READY_DEPTH = 65536

# The production rows against L: (name, start_nodes' keyword arguments).
PRODUCTION_CASES = [
    ("per-position", {}),
    ("per-batch", {"key_pairs": "per-batch"}),
    ("per-position, 1 worker per pool", {"workers": (1, 1)}),
    ("per-position, 2 workers per pool", {"workers": (2, 2)}),
    ("per-position, store", {"store": "normal"}),
    ("per-position, store + fsync", {"store": "fsync"}),
]


def production_only():
    """Keys taken (applications at both ends) and ready (none taken) per PRODUCTION_CASES, batch
    64, over L measured in the same run (before and after the rows, median of both)."""
    work = tempfile.mkdtemp(prefix="hykex-bench-prod-")
    net = None
    reps = REPS if "--reps" not in sys.argv else int(sys.argv[sys.argv.index("--reps") + 1])
    n_rate = 2000 if QUICK else 10000
    try:
        net = Network(work)
        A, B = net.api("A"), net.api("B")
        progress("crypto limit L (ML-KEM-768 keygen + encaps + decaps), before")
        ops = crypto_L()
        out = {"benchmark": "production", "reps": reps, "quick": QUICK, "batch_size": 64,
               "load_before": os.getloadavg()[0], "cases": {}}
        for name, node in PRODUCTION_CASES:
            progress(f"production: {name}")
            net.start_nodes(64, depth=READY_DEPTH, **node)
            slow = node.get("store") == "fsync"
            n = (500 if QUICK else 2000) if slow else n_rate
            v = {"load": os.getloadavg()[0], "batch_macs": net.effective("A", "peer", "batch_macs"),
                 "keys_per_s": summary([bench("rate", A, B, n, "hkdf", "ML-KEM-768,QKD")["keys_per_s"]
                                        for _ in range(reps)]),
                 "ready_keys_per_s": summary([bench("streams", A, B, 1, 2.0 if QUICK else 3.0,
                                                    net.procs[1].pid)["keys_per_s"]
                                              for _ in range(reps)])}
            if "store" in node or name == "per-position":
                lat = [bench("latency", A, B, 1000 if QUICK else 5000) for _ in range(reps)]
                v["get_key_p50_us"] = summary([x["p50_us"] for x in lat])
                v["get_key_p99_us"] = summary([x["p99_us"] for x in lat])
            out["cases"][name] = v
        progress("crypto limit L, after")
        for op, vals in crypto_L().items():
            ops[op] += vals
        out["load_after"] = os.getloadavg()[0]
        out["crypto_ops_per_s"] = {op: summary(v) for op, v in ops.items()}
        L = 1.0 / sum(1.0 / statistics.median(ops[o]) for o in ("keygen", "encaps", "decaps"))
        out["crypto_limit_L_keys_per_s"] = L
        for v in out["cases"].values():
            v["taken_over_L"] = v["keys_per_s"]["median"] / L
            v["ready_over_L"] = v["ready_keys_per_s"]["median"] / L
        os.makedirs(f"{ROOT}/bench/results", exist_ok=True)
        json.dump(out, open(f"{ROOT}/bench/results/production.json", "w"), indent=1)
        m = lambda s: f"{s['median']:.0f} [{s['min']:.0f}-{s['max']:.0f}]"  # noqa: E731
        print(f"\nproduction, ML-KEM-768 + QKD, hkdf, batch 64 (median [min-max] of {reps}); "
              f"L = {L:.0f} keys/s; load {out['load_before']:.1f} -> {out['load_after']:.1f}")
        print(f"{'case':34} {'taken keys/s':>22} {'/L':>5} {'ready keys/s':>22} {'/L':>5} "
              f"{'GET_KEY p50/p99 us':>20} {'load':>5}")
        for name, v in out["cases"].items():
            lat = (f"{v['get_key_p50_us']['median']:.0f}/{v['get_key_p99_us']['median']:.0f}"
                   if "get_key_p50_us" in v else "")
            print(f"{name:34} {m(v['keys_per_s']):>22} {v['taken_over_L']:5.2f} "
                  f"{m(v['ready_keys_per_s']):>22} {v['ready_over_L']:5.2f} {lat:>20} {v['load']:5.1f}")
        print("wrote bench/results/production.json")
    finally:
        if net is not None:
            net.stop()
        shutil.rmtree(work, ignore_errors=True)


FAMILIES = ["ML-KEM-768,QKD", "ML-KEM-768,Classic-McEliece-348864,QKD", "sntrup761,X25519,QKD"]


def kem_families(net, A, B):
    """Production (keys taken at both ends) and OPEN_CONNECT to the first key at both ends, per
    source set and kem.key_pairs mode. Classic McEliece key generation (~0.1-0.2 s a pair) bounds
    its per-position rate: fewer keys are asked of it there."""
    out = {}
    for pairs in ("per-batch", "per-position"):
        net.start_nodes(64, key_pairs=pairs)
        for sources in FAMILIES:
            slow = "McEliece" in sources and pairs == "per-position"
            n = (15 if QUICK else 45) if slow else (500 if QUICK else 3000)
            n_open = (2 if QUICK else 5) if slow else (10 if QUICK else 50)
            progress(f"KEM families: {sources}, key pairs {pairs}")
            rate = [bench("rate", A, B, n, "hkdf", sources)["keys_per_s"] for _ in range(REPS)]
            op = [bench("open", A, B, n_open, sources) for _ in range(REPS)]
            out[f"{sources} {pairs}"] = {
                "keys_per_s": summary(rate),
                "open_connect_p50_us": summary([x["p50_us"] for x in op]),
                "first_key_p50_us": summary([x["first_key_p50_us"] for x in op]),
                "first_key_p99_us": summary([x["first_key_p99_us"] for x in op])}
    return out


def print_kem_families(fam, L):
    m = lambda s: f"{s['median']:.0f} [{s['min']:.0f}-{s['max']:.0f}]"  # noqa: E731
    for k, v in fam.items():
        print(f"{k}: {m(v['keys_per_s'])} keys/s" + (f" ({v['keys_per_s']['median'] / L:.2f} L)" if L else "")
              + f"; OPEN_CONNECT p50 {m(v['open_connect_p50_us'])} us; first key p50 "
              f"{m(v['first_key_p50_us'])} us, p99 {v['first_key_p99_us']['median']:.0f} us")


def crypto_limit():
    """L = 1 / (ML-KEM-768 keygen + encaps + decaps) from bench/results/crypto.json, or None."""
    try:
        cr = json.load(open(f"{ROOT}/bench/results/crypto.json"))["results"]
        ops = {r["op"]: r["hykex"]["median"] for r in cr
               if r.get("alg") == "ML-KEM-768" and r["op"] in ("keygen", "encaps", "decaps")}
        return 1.0 / sum(1.0 / ops[o] for o in ("keygen", "encaps", "decaps"))
    except (OSError, KeyError, ValueError, ZeroDivisionError):
        return None


def kem_families_only():
    work = tempfile.mkdtemp(prefix="hykex-bench-kem-")
    net = None
    try:
        net = Network(work)
        fam = kem_families(net, net.api("A"), net.api("B"))
        L = crypto_limit()
        out = {"benchmark": "kem-families", "reps": REPS, "quick": QUICK, "batch_size": 64,
               "crypto_limit_L_keys_per_s": L, "families": fam}
        os.makedirs(f"{ROOT}/bench/results", exist_ok=True)
        json.dump(out, open(f"{ROOT}/bench/results/kem_families.json", "w"), indent=1)
        print_kem_families(fam, L)
        print("wrote bench/results/kem_families.json")
    finally:
        if net is not None:
            net.stop()
        shutil.rmtree(work, ignore_errors=True)


def lab_pass():
    """Production (both key-pair modes), GET_KEY latency and OPEN_CONNECT with each program on
    its own host of the namespace lab, the applications on this host across the bridge: what
    real veth links, with their own addresses, cost beside loopback. Root only."""
    if os.geteuid() != 0:
        progress("namespace lab: skipped (needs root for network namespaces)")
        return None
    if "--no-lab" in sys.argv:
        progress("namespace lab: skipped (--no-lab)")
        return None
    work = tempfile.mkdtemp(prefix="hykex-bench-lab-")
    lab = f"{ROOT}/scripts/netlab.sh"
    # A lab run of our own: its id in HYKEX_LAB for every netlab.sh call, removed at the end.
    os.environ["HYKEX_LAB"] = subprocess.run([lab, "up", "sim", "A", "B"], check=True,
                                             capture_output=True, text=True).stdout.strip()
    net = None
    try:
        net = Network(work, lab=True)
        A, B = net.api("A"), net.api("B")
        out = {"benchmark": "network-lab", "reps": REPS, "quick": QUICK,
               "hosts": net.addr, "production": {}}
        for pairs in ("per-position", "per-batch"):
            progress(f"namespace lab: key production, KEM key pairs {pairs}")
            net.start_nodes(64, key_pairs=pairs, depth=READY_DEPTH)
            out["production"][pairs] = {
                "keys_per_s": summary([bench("rate", A, B, 2000 if QUICK else 10000, "hkdf",
                                             "ML-KEM-768,QKD")["keys_per_s"] for _ in range(REPS)]),
                "ready_keys_per_s": summary([bench("streams", A, B, 1, 2.0 if QUICK else 3.0,
                                                   net.procs[1].pid)["keys_per_s"]
                                             for _ in range(REPS)])}
        progress("namespace lab: GET_KEY latency, OPEN_CONNECT")
        lat = [bench("latency", A, B, 2000 if QUICK else 10000) for _ in range(REPS)]
        out["get_key_latency_us"] = {"p50": summary([x["p50_us"] for x in lat]),
                                     "p99": summary([x["p99_us"] for x in lat])}
        op = [bench("open", A, B, 50 if QUICK else 200) for _ in range(REPS)]
        out["open_connect_us"] = {"p50": summary([x["p50_us"] for x in op]),
                                  "p99": summary([x["p99_us"] for x in op])}
        os.makedirs(f"{ROOT}/bench/results", exist_ok=True)
        json.dump(out, open(f"{ROOT}/bench/results/network_lab.json", "w"), indent=1)
        return out
    finally:
        if net is not None:
            net.stop()
        subprocess.run([lab, "down", os.environ.pop("HYKEX_LAB")], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def main():
    work = tempfile.mkdtemp(prefix="hykex-bench-")
    net = None
    try:
        net = Network(work)
        procs = net.procs
        start_nodes, start_node = net.start_nodes, net.start_node
        start_nodes(64)
        A, B = net.api("A"), net.api("B")
        out = {"benchmark": "network", "reps": REPS, "quick": QUICK, "qkd_pipeline": QKD_PIPELINE}

        n_rate = 2000 if QUICK else 10000
        rates = {}
        for method, sources in [("hkdf", "ML-KEM-768,QKD"), ("hkdf", "ML-KEM-768"),
                                ("hkdf", "ML-KEM-768,QKD,X25519"), ("xoring", "ML-KEM-1024,QKD")]:
            if sources == "ML-KEM-768":
                sources = "ML-KEM-768,ML-KEM-768"
            progress(f"key production rate {method} {sources}")
            vals = [bench("rate", A, B, n_rate, method, sources)["keys_per_s"] for _ in range(REPS)]
            rates[f"{method} {sources}"] = summary(vals)
        out["production_keys_per_s"] = rates

        n_lat = 2000 if QUICK else 10000
        progress("GET_KEY latency from a filled buffer, and a bare TCP echo")
        lat = [bench("latency", A, B, n_lat) for _ in range(REPS)]
        echo = [bench("echo", n_lat, 170, 260) for _ in range(REPS)]
        out["get_key_latency_us"] = {"p50": summary([x["p50_us"] for x in lat]),
                                     "p99": summary([x["p99_us"] for x in lat])}
        out["tcp_echo_latency_us"] = {"p50": summary([x["p50_us"] for x in echo]),
                                      "p99": summary([x["p99_us"] for x in echo])}
        # Distribution: per percentile, the median over the runs.
        out["get_key_latency_us"]["cdf"] = [statistics.median(v) for v in zip(*[x["cdf_us"] for x in lat])]
        out["tcp_echo_latency_us"]["cdf"] = [statistics.median(v) for v in zip(*[x["cdf_us"] for x in echo])]
        out["latency_ratio_p50"] = (out["get_key_latency_us"]["p50"]["median"] /
                                    out["tcp_echo_latency_us"]["p50"]["median"])

        tp = {}
        for conns in (1, 8, 64):
            progress(f"GET_KEY throughput, {conns} connections")
            tp[str(conns)] = summary([bench("throughput", A, B, conns, 1 if QUICK else 3)["requests_per_s"]
                                      for _ in range(REPS)])
        out["get_key_throughput_rps"] = tp

        progress("OPEN_CONNECT on a warm peer link")
        op = [bench("open", A, B, 50 if QUICK else 200) for _ in range(REPS)]
        out["open_connect_us"] = {"p50": summary([x["p50_us"] for x in op]),
                                  "p99": summary([x["p99_us"] for x in op])}

        sc = {}
        for k in (1, 16, 256) if QUICK else (1, 16, 256, 1024):
            progress(f"scaling: {k} streams open at once")
            runs = [bench("streams", A, B, k, 2.0 if QUICK else 3.0, procs[1].pid) for _ in range(REPS)]
            sc[str(k)] = {"keys_per_s": summary([r["keys_per_s"] for r in runs]),
                          "rss_kib_per_stream": summary([r["rss_kib_per_stream"] for r in runs]),
                          "ready_keys": summary([r["ready_keys"] for r in runs]),
                          # a full buffer stops production: the rate is then only a lower bound
                          "buffers_full": any(r["ready_keys"] >= k * (DEPTH - 3 * 64) for r in runs)}
        out["scaling"] = sc
        one = sc["1"]["keys_per_s"]["median"]
        out["scaling_ratio_min"] = min(v["keys_per_s"]["median"] / one for v in sc.values())

        # One ML-DSA signature at each node per batch: its cost against the batch size.
        bs = {}
        for batch in (1, 16, 64, 256):
            progress(f"key production rate, batch size {batch}")
            start_nodes(batch)  # fresh nodes for each size, the 64 ones too
            n = (200 if QUICK else 1000) if batch == 1 else n_rate
            bs[str(batch)] = summary([bench("rate", A, B, n, "hkdf", "ML-KEM-768,QKD")["keys_per_s"]
                                      for _ in range(REPS)])
        out["production_by_batch_size_keys_per_s"] = bs

        # kem.key_pairs: a fresh KEM key pair per position (default) or one per batch. Keys
        # taken by applications at both ends, and keys ready at the initiator with none taken.
        kp = {}
        for pairs in ("per-position", "per-batch"):
            progress(f"key production, KEM key pairs {pairs}")
            start_nodes(64, key_pairs=pairs, depth=READY_DEPTH)
            kp[pairs] = {
                "keys_per_s": summary([bench("rate", A, B, n_rate, "hkdf", "ML-KEM-768,QKD")["keys_per_s"]
                                       for _ in range(REPS)]),
                "ready_keys_per_s": summary([bench("streams", A, B, 1, 2.0 if QUICK else 3.0,
                                                   procs[1].pid)["keys_per_s"] for _ in range(REPS)])}
        out["production_by_key_pairs"] = kp
        out["kem_families"] = kem_families(net, A, B)
        out["drain"] = drain_pass(net, A, B, REPS)
        plot_drain()

        # Durability: the same production (applications taking keys at both ends, so every
        # delivery is recorded too) and GET_KEY latency, store off / on / on with fsync.
        dur = {}
        for store in (None, "normal", "fsync"):
            name = {None: "memory only", "normal": "store", "fsync": "store + fsync"}[store]
            progress(f"durability: {name}")
            start_nodes(64, store)
            n = (500 if store == "fsync" else 2000) if QUICK else (2000 if store == "fsync" else n_rate)
            rate = [bench("rate", A, B, n, "hkdf", "ML-KEM-768,QKD")["keys_per_s"] for _ in range(REPS)]
            lat = [bench("latency", A, B, 1000 if QUICK else 5000)["p50_us"] for _ in range(REPS)]
            dur[name] = {"keys_per_s": summary(rate), "get_key_p50_us": summary(lat)}
        out["durability"] = dur

        # Cold OPEN_CONNECT: A (the connecting node: its UUID is the smaller) restarted, and the
        # pair opened as soon as it is ready, so it waits for the link's TLS handshake.
        start_nodes(64)
        cold = []
        for i in range(3 if QUICK else 10):
            progress(f"OPEN_CONNECT on a cold link ({i + 1})")
            procs[1].terminate()
            procs[1].wait(10)
            procs[1] = start_node("A")
            cold.append(bench("open", A, B, 1)["p50_us"])
            time.sleep(0.2)
        out["open_connect_cold_us"] = summary(cold)
        out["tls13_handshake_us"] = tls_handshakes(work)

        # The same on real veth links between namespaces (root only; else None).
        out["lab"] = lab_pass()

        # The crypto limit L = 1 / (ML-KEM-768 keygen + encaps + decaps), from bench/crypto's
        # results of the same bench/run.sh invocation, and each production rate over it.
        try:
            cr = json.load(open(f"{ROOT}/bench/results/crypto.json"))["results"]
            ops = {r["op"]: r["hykex"]["median"] for r in cr
                   if r.get("alg") == "ML-KEM-768" and r["op"] in ("keygen", "encaps", "decaps")}
            L = 1.0 / sum(1.0 / ops[o] for o in ("keygen", "encaps", "decaps"))
        except (OSError, KeyError, ValueError, ZeroDivisionError):
            L = None
        if L is not None:
            out["crypto_limit_L_keys_per_s"] = L
            for k, v in out["kem_families"].items():
                v["keys_per_s_over_L"] = v["keys_per_s"]["median"] / L
            out["production_over_L"] = {
                "hkdf ML-KEM-768,QKD, applications at both ends": rates["hkdf ML-KEM-768,QKD"]["median"] / L,
                "one stream, keys ready, no application": sc["1"]["keys_per_s"]["median"] / L}
            for pairs, v in kp.items():
                out["production_over_L"][f"key pairs {pairs}, applications at both ends"] = \
                    v["keys_per_s"]["median"] / L
                out["production_over_L"][f"key pairs {pairs}, keys ready, no application"] = \
                    v["ready_keys_per_s"]["median"] / L

        os.makedirs(f"{ROOT}/bench/results", exist_ok=True)
        json.dump(out, open(f"{ROOT}/bench/results/network.json", "w"), indent=1)

        plot(out)

        m = lambda s: f"{s['median']:.0f} [{s['min']:.0f}-{s['max']:.0f}]"  # noqa: E731
        print(f"\nhykexd on loopback (2 nodes, simulator unbounded, 32-byte keys; median [min-max] of {REPS})")
        print(f"{'measurement':52} {'value':>28}")
        for k, v in rates.items():
            print(f"{'key production, ' + k + ' (keys/s)':52} {m(v):>28}")
        print(f"{'GET_KEY latency p50 / p99 (us)':52} {m(out['get_key_latency_us']['p50']):>18} / "
              f"{out['get_key_latency_us']['p99']['median']:.0f}")
        print(f"{'bare TCP echo p50 / p99 (us)':52} {m(out['tcp_echo_latency_us']['p50']):>18} / "
              f"{out['tcp_echo_latency_us']['p99']['median']:.0f}")
        print(f"{'GET_KEY p50 / echo p50':52} {out['latency_ratio_p50']:>28.2f}")
        for c, v in tp.items():
            print(f"{'GET_KEY throughput, ' + c + ' connection(s) (req/s)':52} {m(v):>28}")
        print(f"{'OPEN_CONNECT pair, warm link, p50 / p99 (us)':52} {m(out['open_connect_us']['p50']):>18} / "
              f"{out['open_connect_us']['p99']['median']:.0f}")
        for k, v in sc.items():
            print(f"{'scaling, ' + k + ' streams: keys/s; RSS KiB/stream':52} {m(v['keys_per_s']):>18} ; "
                  f"{v['rss_kib_per_stream']['median']:.1f}" + (" (buffers full)" if v["buffers_full"] else ""))
        for b, v in bs.items():
            print(f"{'key production, batch size ' + b + ', hkdf ML-KEM-768,QKD (keys/s)':52} {m(v):>28}")
        print(f"{'scaling, worst aggregate rate / one-stream rate':52} {out['scaling_ratio_min']:>28.2f}")
        for pairs, v in kp.items():
            print(f"{'KEM key pairs ' + pairs + ': keys/s taken; ready':52} {m(v['keys_per_s']):>18} ; "
                  f"{m(v['ready_keys_per_s'])}")
        print_kem_families(out["kem_families"], L)
        print_drain(out["drain"], out["get_key_latency_us"], out["tcp_echo_latency_us"])
        if L is not None:
            print(f"{'crypto limit L, ML-KEM-768 (keys/s)':52} {L:>28.0f}")
            for k, v in out["production_over_L"].items():
                print(f"{'  / L: ' + k:52} {v:>28.2f}")
        for name, v in dur.items():
            print(f"{'durability, ' + name + ': keys/s; GET_KEY p50 us':52} {m(v['keys_per_s']):>18} ; "
                  f"{v['get_key_p50_us']['median']:.0f}")
        print(f"{'OPEN_CONNECT pair, cold link (us)':52} {m(out['open_connect_cold_us']):>28}")
        print(f"{'bare TLS 1.3 handshake, openssl s_time (us)':52} {m(out['tls13_handshake_us']):>28}")
        lb = out["lab"]
        if lb is not None:
            print(f"\nthe same in the namespace lab (sim, A, B on their own hosts {lb['hosts']['A']}...; "
                  f"applications on this host across the bridge)")
            for pairs, v in lb["production"].items():
                print(f"{'KEM key pairs ' + pairs + ': keys/s taken; ready':52} {m(v['keys_per_s']):>18} ; "
                      f"{m(v['ready_keys_per_s'])}")
            print(f"{'GET_KEY latency p50 / p99 (us)':52} {m(lb['get_key_latency_us']['p50']):>18} / "
                  f"{lb['get_key_latency_us']['p99']['median']:.0f}")
            print(f"{'OPEN_CONNECT pair, warm link, p50 / p99 (us)':52} {m(lb['open_connect_us']['p50']):>18} / "
                  f"{lb['open_connect_us']['p99']['median']:.0f}")
            print("wrote bench/results/network_lab.json")
        print("wrote bench/results/network.json")
    finally:
        if net is not None:
            net.stop()
        shutil.rmtree(work, ignore_errors=True)


if "--lab-only" in sys.argv:  # the namespace-lab pass alone (root)
    print(json.dumps(lab_pass(), indent=1))
elif "--drain-only" in sys.argv:
    drain_only()
elif "--production-only" in sys.argv:
    production_only()
elif "--kem-families-only" in sys.argv:
    kem_families_only()
else:
    main()

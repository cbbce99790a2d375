#!/usr/bin/env python3
"""bench/profile.py: where two nodes' time goes while one stream fills its buffer (issue 18).

Starts the simulator and nodes A and B (bench/network.py's loopback setup: batch 64, per-position
key pairs unless --per-batch, a 65 536-key buffer, the store with --store or --fsync), lets one
stream fill for 6 s (bench_api streams), and meanwhile records for 4 s with perf:

  perf record -e cpu-clock --call-graph dwarf -p SIM,A,B   (timer samples: no hardware counters)
  perf sched record                                        (with --sched instead)

then prints the share of the nodes' samples per operation (each sample is put in the first
category its call chain names, in the order of CATS), or from the scheduler trace the share of
time with 0, 1, 2 or 3+ of the two nodes' threads runnable (running or waiting for a CPU) and each
thread kind's time running, waiting for a CPU and asleep. Also the CPU time per key of each
process (utime + stime over the keys made). Needs perf and permission to trace (root).

Usage: bench/profile.py BIN_DIR [--sched] [--store | --fsync] [--per-batch]
"""
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.abspath(sys.argv[1])
SCHED = "--sched" in sys.argv
STORE = "fsync" if "--fsync" in sys.argv else "normal" if "--store" in sys.argv else None
PAIRS = "per-batch" if "--per-batch" in sys.argv else "per-position"

# bench/network.py's setup without running it (its last lines pick what to run).
nw = type(sys)("network")
nw.__file__ = os.path.join(HERE, "network.py")
sys.argv = [sys.argv[0], BIN]
exec(compile(open(nw.__file__).read().split('\nif "--lab-only" in sys.argv:')[0], nw.__file__,
             "exec"), nw.__dict__)

CATS = [
    ("ML-KEM keygen", ["hx_kem_keygen"]),
    ("ML-KEM import (FIPS 203 7.2 check, H(ek), matrix A)", ["hx_kem_peer_import",
                                                             "ossl_ml_kem_parse_public_key"]),
    ("ML-KEM encaps", ["hx_kem_encaps_peer"]),
    ("ML-KEM decaps", ["hx_kem_decaps"]),
    ("ML-DSA sign", ["hx_sig_sign"]),
    ("ML-DSA verify", ["hx_sig_verify"]),
    ("hashing: transcript, combine, tag", ["hxd_batch_transcript", "hxd_batch_combine",
                                           "hxd_batch_tag", "hx_combine"]),
    ("store (SQLite)", ["sqlite3", "hx_store_"]),
    ("KME client (QKD fetch: JSON, socket)", ["hx_qkd_get_many", "hxd_source_fetch_qkd"]),
    ("peer link I/O (TLS, poll, frames)", ["serve_link", "hx_conn_", "link_"]),
    ("locks, wake-ups (futex)", ["futex", "__lll_lock", "pthread_cond", "pthread_mutex"]),
    ("allocation (malloc/free)", ["malloc", "_int_free", "cfree", "realloc", "calloc"]),
]


def cpu_seconds(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def categories(data):
    out = subprocess.run(["perf", "script", "-i", data, "-F", "comm,tid,ip,sym"],
                         capture_output=True, text=True).stdout
    counts, total = collections.Counter(), 0
    for block in out.split("\n\n"):
        lines = [x for x in block.split("\n") if x.strip()]
        if not lines:
            continue
        comm = lines[0].split()[0]
        syms = [x.strip().split(" ", 1)[-1] for x in lines[1:]]
        if comm.startswith("hykex-qkdsim"):
            cat = "the KME simulator (another process)"
        else:
            cat = next((name for name, keys in CATS if any(k in s for s in syms for k in keys)),
                       "other hykexd")
        counts[cat] += 1
        total += 1
    for k, v in counts.most_common():
        print(f"{100.0 * v / total:5.1f} %  {k}")
    print(f"({total} samples)")


def runnable(data, tids):
    out = subprocess.run(["perf", "script", "-i", data], capture_output=True, text=True).stdout
    ev = re.compile(r"^\s*\S.*?\s+\d+\s+\[\d+\]\s+([\d.]+):\s+sched:(\w+):\s+(.*)$")
    state, kind, hist = {}, {}, collections.Counter()
    per = collections.defaultdict(collections.Counter)
    last = None
    for line in out.splitlines():
        m = ev.match(line)
        if not m:
            continue
        t, name, rest = float(m.group(1)), m.group(2), m.group(3)
        if last is not None and t > last:
            n = sum(1 for s in state.values() if s != "sleep")
            hist[min(n, 3)] += t - last
            for tid, s in state.items():
                per[kind[tid]][s] += t - last
        last = t
        if name == "sched_switch":
            a = re.search(r"prev_comm=(.*?) prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) ==> "
                          r"next_comm=(.*?) next_pid=(\d+)", rest)
            if a is None:
                continue
            if a.group(2) in tids:
                kind[a.group(2)] = a.group(1)
                state[a.group(2)] = "wait" if a.group(3).startswith("R") else "sleep"
            if a.group(5) in tids:
                kind[a.group(5)] = a.group(4)
                state[a.group(5)] = "run"
        elif name in ("sched_wakeup", "sched_waking"):
            a = re.search(r"comm=(.*?) pid=(\d+)", rest)
            if a is not None and a.group(2) in tids and state.get(a.group(2)) != "run":
                kind[a.group(2)] = a.group(1)
                state[a.group(2)] = "wait"
    total = sum(hist.values()) or 1
    print("hykexd threads runnable (running or waiting for a CPU) at once: " +
          ", ".join(f"{k}{'+' if k == 3 else ''}: {100 * v / total:.1f} %"
                    for k, v in sorted(hist.items())))
    for k, c in sorted(per.items()):
        print(f"{k:14} running {c['run']:.2f} s, waiting for a CPU {c['wait']:.2f} s, "
              f"asleep {c['sleep']:.2f} s (all its threads)")


def main():
    work = tempfile.mkdtemp(prefix="hykex-profile-")
    data = f"{work}/perf.data"
    net = nw.Network(work)
    try:
        net.start_nodes(64, depth=65536, key_pairs=PAIRS, store=STORE)
        pids = [p.pid for p in net.procs]
        before = [cpu_seconds(p) for p in pids]
        fill = subprocess.Popen([f"{BIN}/bench_api", "streams", net.api("A"), net.api("B"), "1",
                                 "6.0", str(pids[1])], stdout=subprocess.PIPE, text=True)
        time.sleep(1.5)
        tids = {t for p in pids[1:] for t in os.listdir(f"/proc/{p}/task")}  # A's and B's threads
        rec = (["perf", "sched", "record", "-o", data, "--", "sleep", "4"] if SCHED else
               ["perf", "record", "-e", "cpu-clock", "-F", "1000", "--call-graph", "dwarf,16384",
                "-o", data, "-p", ",".join(map(str, pids)), "--", "sleep", "4"])
        subprocess.run(rec, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        res = nw.json.loads(fill.communicate()[0].strip().splitlines()[-1])
        after = [cpu_seconds(p) for p in pids]
        print(f"one stream filling, {PAIRS} key pairs, batch 64, store {STORE}: "
              f"{res['keys_per_s']:.0f} keys/s ready; load average {os.getloadavg()[0]:.1f}")
        print("CPU us per key: " + ", ".join(
            f"{n} {(b - a) * 1e6 / max(1, res['ready_keys']):.1f}"
            for n, a, b in zip(("simulator", "A", "B"), before, after)))
        if SCHED:
            runnable(data, tids)
        else:
            categories(data)
    finally:
        net.stop()
        shutil.rmtree(work, ignore_errors=True)


main()

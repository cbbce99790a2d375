#!/usr/bin/env python3
"""The metrics endpoint (docs/metrics.md) against real daemons, promtool and Prometheus.

Usage: metrics_test.py BIN_DIR REPO_ROOT
Two nodes (A, B) with ETSI 004 JSON KMEs from the simulator and metrics.port set; applications
are Python clients of the reference wire format. Debian's prometheus package provides promtool
and prometheus (scripts/bootstrap.sh installs it). Ends with "N passed, M failed, K skipped"
(the runner: hxtest.Runner).
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hxtest import Runner, check, free_port, next_json  # noqa: E402  (one runner, safe ports)

BIN, ROOT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
U = {"A": "a" * 8 + "-aaaa-aaaa-aaaa-" + "a" * 12, "B": "b" * 8 + "-bbbb-bbbb-bbbb-" + "b" * 12}
R = Runner("hykex-metrics-")
test = R.test
WORK = R.work
P = {k: free_port() for k in ["kA", "kB", "apiA", "apiB", "peerA", "peerB", "mA", "mB", "prom"]}
CTL = f"{WORK}/sim.ctl"
PROMTOOL, PROMETHEUS = shutil.which("promtool"), shutil.which("prometheus")


class App:
    """An application on one node: the reference wire format over TCP."""

    def __init__(self, node):
        self.s = socket.create_connection(("127.0.0.1", P["api" + node]), timeout=30)
        self.buf = b""

    def call(self, command, **data):
        self.s.sendall(json.dumps({"command": command, "data": data}).encode())
        obj, _, self.buf = next_json(self.s, self.buf, "daemon closed the connection")
        return obj

    def open(self, app, ksid, timeout=0):
        def u(n):
            return f"hybrid://{app}@{U[n]}?hybridization=hkdf&key_sources=ML-KEM-768,QKD"
        q = {"key_chunk_size": 32, "max_bps": 32, "min_bps": 32, "jitter": 0, "priority": 0,
             "timeout": timeout, "ttl": 0, "metadata_mimetype": "application/json"}
        return self.call("OPEN_CONNECT", source=u("A"), destination=u("B"), qos=q,
                         key_stream_id=ksid)


def both(fn):
    """fn(node) at A and B at once; their results by node (an exception in either is raised)."""
    out, errors = {}, []

    def run(n):
        try:
            out[n] = fn(n)
        except Exception as e:  # noqa: BLE001 - handed to the caller
            errors.append(e)
    ts = [threading.Thread(target=run, args=(n,)) for n in "AB"]
    [t.start() for t in ts]
    [t.join(60) for t in ts]
    if errors:
        raise errors[0]
    return out


def take_keys(app, n):
    """Both applications open one stream and take n keys, then close it; the keys must agree."""
    ksid = str(uuid.uuid4())

    def side(node):
        c = App(node)
        r = c.open(app, ksid)
        if r["status"] != 0:
            return r
        keys = [c.call("GET_KEY", key_stream_id=ksid, index=i) for i in range(n)]
        c.call("CLOSE", key_stream_id=ksid)
        return [bytes(k["key_buffer"]).hex() if k["status"] == 0 else k for k in keys]
    out = both(side)
    check(out["A"] == out["B"] and all(isinstance(k, str) for k in out["A"]), f"keys: {out}")


def http(port, path, method="GET"):
    """(status, body text) of a request to 127.0.0.1:port."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers.get("Content-Type", "")


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def scrape(node):
    """The node's metrics as {'name{labels}': value}, after promtool has checked the text."""
    code, text, ctype = http(P["m" + node], "/metrics")
    check(code == 200 and ctype.startswith("text/plain; version=0.0.4"), f"{node}: {code} {ctype}")
    lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=30)
    check(lint.returncode == 0 and lint.stdout.strip() == "" and lint.stderr.strip() == "",
          f"promtool check metrics at {node}: {lint.stdout} {lint.stderr}")
    values = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        check(m is not None, f"{node}: not a sample line: {line!r}")
        values[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return values


def start_daemon(node):
    return R.start(node, [f"{BIN}/hykexd", "-c", f"{WORK}/{node}.json"], f"{WORK}/{node}.log",
                   cwd=WORK)


def config(node, **extra):
    other = "B" if node == "A" else "A"
    cfg = {"uuid": U[node],
           "certificate_config": {"cert_authority_path": f"{node}/ca.crt",
                                  "cert_path": f"{node}/node.crt", "key_path": f"{node}/node.key"},
           "hybridization_server_address": {"host": "127.0.0.1", "port": P["api" + node]},
           "qkd_address": {"host": "127.0.0.1", "port": P["k" + node]},
           "peer_local_address": {"host": "127.0.0.1", "port": P["peer" + node]},
           "trusted_peers": {U[other]: {"address": {"host": "127.0.0.1",
                                                    "port": P["peer" + other]}}}}
    cfg.update(extra)
    return cfg


def setup():
    if PROMTOOL is None or PROMETHEUS is None:
        raise RuntimeError("promtool or prometheus missing: run scripts/bootstrap.sh "
                           "(Debian package prometheus)")

    def run(*a):
        subprocess.run(list(a), check=True, capture_output=True, cwd=WORK)
    run(f"{ROOT}/certificates/create_ca.sh", "--out", "ca")
    for n in "AB":
        run(f"{ROOT}/certificates/generate_cert.sh", "--uuid", U[n], "--name", n, "--ip",
            "127.0.0.1", "--out", n)
    net = {"kmes": [{"id": "KME_A", "node": U["A"], "etsi004_json": {"port": P["kA"]}},
                    {"id": "KME_B", "node": U["B"], "etsi004_json": {"port": P["kB"]}}],
           "links": [{"id": "ab", "kmes": ["KME_A", "KME_B"], "rate_bps": 0}]}
    json.dump(net, open(f"{WORK}/net.json", "w"))
    R.start("sim", [f"{BIN}/hykex-qkdsim", "-c", f"{WORK}/net.json", "--ctl", CTL,
                    "--log-level", "warn"], f"{WORK}/sim.log", exit_ok=None)
    for n in "AB":
        cfg = config(n, metrics={"port": P["m" + n]})
        json.dump(cfg, open(f"{WORK}/{n}.json", "w"), indent=1)
        start_daemon(n)
    deadline = time.time() + 15
    while time.time() < deadline:
        if all(f"hykex_peer_link_up{{peer=\"{U[o]}\"}} 1" in http(P["m" + n], "/metrics")[1]
               for n, o in (("A", "B"), ("B", "A"))):
            return
        time.sleep(0.2)
    raise RuntimeError("the peer link did not come up")


def ctl(*args):
    r = subprocess.run([f"{BIN}/hykex-qkdsim", "ctl", CTL] + list(args), capture_output=True,
                       text=True, timeout=30)
    check(r.returncode == 0, f"ctl {args}: {r.stdout} {r.stderr}")


# ---- cases ----

@test
def off_by_default_and_loopback_only():
    """No metrics.port: no endpoint; a non-loopback metrics.host is refused at start unless
    metrics.allow_remote says so."""
    json.dump(config("A"), open(f"{WORK}/plain.json", "w"))
    r = subprocess.run([f"{BIN}/hykexd", "--check-config", "-c", f"{WORK}/plain.json"],
                       capture_output=True, text=True, cwd=WORK, timeout=30)
    eff = json.loads(r.stdout)
    check(r.returncode == 0 and eff["metrics"] == {"host": "127.0.0.1", "port": 0,
                                                   "allow_remote": False}, f"defaults: {r.stdout}")
    bad = config("A", metrics={"host": "0.0.0.0", "port": free_port()})
    bad["hybridization_server_address"]["port"] = free_port()
    bad["peer_local_address"]["port"] = free_port()
    bad["trusted_peers"] = {}  # no link to B: the running network is left alone
    json.dump(bad, open(f"{WORK}/remote.json", "w"))
    r = subprocess.run([f"{BIN}/hykexd", "-c", f"{WORK}/remote.json"], capture_output=True,
                       text=True, cwd=WORK, timeout=30)
    check(r.returncode == 1 and "metrics.host 0.0.0.0 is not loopback" in r.stderr
          and "metrics.allow_remote" in r.stderr, f"non-loopback: {r.returncode} {r.stderr}")


@test
def exposition_passes_promtool_and_counts_keys():
    """The text passes `promtool check metrics`; keys, batches, KME calls, links and
    certificates are counted as they happened (nothing else ran on these nodes yet)."""
    take_keys("count", 5)
    time.sleep(0.3)  # the responder's commit of the last batch may trail the reads
    now = time.time()
    for n, o in (("A", "B"), ("B", "A")):
        v = scrape(n)
        peer = f'{{peer="{U[o]}"}}'
        check(v["hykex_keys_delivered_total" + peer] == 5, f"{n}: delivered {v['hykex_keys_delivered_total' + peer]}")
        check(v["hykex_keys_produced_total" + peer] >= 5, f"{n}: produced")
        check(v["hykex_batches_committed_total"] >= 1, f"{n}: batches")
        check(v["hykex_peer_link_up" + peer] == 1
              and v["hykex_peer_links_established_total" + peer] >= 1, f"{n}: link")
        check(v["hykex_certificate_expiry_timestamp_seconds"] > now + 86400
              and v["hykex_peer_certificate_expiry_timestamp_seconds" + peer] > now + 86400,
              f"{n}: certificate expiry")
        check(v['hykex_kme_request_duration_seconds_count{op="get_key"}'] >= 1
              and v['hykex_kme_request_duration_seconds_count{op="open_connect"}'] == 1
              and v['hykex_kme_request_duration_seconds_bucket{op="get_key",le="+Inf"}']
              == v['hykex_kme_request_duration_seconds_count{op="get_key"}'], f"{n}: KME calls")
        # (no KME errors asserted: a GET_KEY running when its stream closes is refused by the KME)
        check(v["hykex_key_confirmation_mismatches_total"] == 0
              and v["hykex_store_errors_total"] == 0
              and sum(x for k, x in v.items() if k.startswith("hykex_batches_failed_total")) == 0,
              f"{n}: errors where none happened: "
              f"{ {k: x for k, x in v.items() if ('error' in k or 'fail' in k or 'mismatch' in k) and x} }")
        check(any(k.startswith("hykex_build_info{version=") for k in v), f"{n}: build info")
        # day-2 figures: CA expiry, start time, reloads, dials, the KME's last call
        check(v["hykex_ca_certificate_expiry_timestamp_seconds"] > now + 86400
              and 0 < v["hykex_start_time_seconds"] <= now
              and v['hykex_reloads_total{result="applied"}'] == 0
              and v['hykex_reloads_total{result="refused"}'] == 0
              and v["hykex_kme_last_request_ok"] in (0, 1)
              and v["hykex_kme_last_request_timestamp_seconds"] <= now + 1
              and "hykex_peer_dial_attempts_total" + peer in v
              and v["hykex_peer_dial_failures_total" + peer]
              <= v["hykex_peer_dial_attempts_total" + peer], f"{n}: day-2 figures")
    code, body, _ = http(P["mA"], "/")
    check(code == 404 and "/metrics" in body, f"other path: {code} {body}")
    code, _, _ = http(P["mA"], "/metrics", method="POST")
    check(code == 405, f"POST: {code}")


@test
def open_streams_by_state():
    """A stream open at both ends counts as producing at each node, and no more after CLOSE."""
    ksid = str(uuid.uuid4())
    apps = {n: App(n) for n in "AB"}
    out = both(lambda n: apps[n].open("streams", ksid))
    check(all(r["status"] == 0 for r in out.values()), f"open: {out}")
    check(all(scrape(n)['hykex_streams{state="producing"}'] == 1 for n in "AB"), "producing")
    both(lambda n: apps[n].call("CLOSE", key_stream_id=ksid))
    time.sleep(0.3)
    check(all(sum(x for k, x in scrape(n).items() if k.startswith("hykex_streams{")) == 0
              for n in "AB"), "streams left after CLOSE")


@test
def failures_counted_by_cause():
    """A corrupted QKD key: a key-confirmation mismatch and a batch failed in check_resp at the
    initiator; a KME link that delivers nothing: KME errors and a batch failed in request."""
    before = scrape("A")
    ctl("corrupt", "KME_B")
    # 48 keys: the corrupted QKD key goes to one of the first three batches (in flight at once),
    # and the applications wait for its positions, so its failure is counted before they close
    # (a batch failing after both closed is a close, not a failure)
    take_keys("corrupt", 48)
    v = scrape("A")
    check(v["hykex_key_confirmation_mismatches_total"]
          > before["hykex_key_confirmation_mismatches_total"], "no mismatch counted")
    check(v['hykex_batches_failed_total{phase="check_resp"}']
          > before['hykex_batches_failed_total{phase="check_resp"}'], "no check_resp failure")
    # The KME link paused under an open stream: keys from the buffer, then batches that fail to
    # get their QKD keys as the application takes more.
    ksid = str(uuid.uuid4())
    apps = {n: App(n) for n in "AB"}
    out = both(lambda n: apps[n].open("paused", ksid))
    check(all(r["status"] == 0 for r in out.values()), f"open: {out}")
    deadline = time.time() + 30  # keys ready at both ends first: the 16 taken below come at once
    while time.time() < deadline and not all(scrape(n)["hykex_keys_ready"] >= 32 for n in "AB"):
        time.sleep(0.2)
    ctl("pause", "ab")
    try:
        both(lambda n: [apps[n].call("GET_KEY", key_stream_id=ksid, index=i) for i in range(16)])
        deadline = time.time() + 20
        while time.time() < deadline:
            w = scrape("A")
            if w['hykex_batches_failed_total{phase="request"}'] > 0:
                break
            time.sleep(0.2)
    finally:
        ctl("resume", "ab")
        both(lambda n: apps[n].call("CLOSE", key_stream_id=ksid))
    check(sum(w[f'hykex_kme_request_errors_total{{op="{op}"}}'] for op in ("get_key", "open_connect"))
          > sum(v[f'hykex_kme_request_errors_total{{op="{op}"}}'] for op in ("get_key", "open_connect")),
          "no KME error counted")
    check(w['hykex_batches_failed_total{phase="request"}']
          > v['hykex_batches_failed_total{phase="request"}'], "no batch failed in request")


@test
def link_state_and_reconnects():
    """B stopped: A shows the link down; B back: up again, and one more link made."""
    peer = f'{{peer="{U["B"]}"}}'

    def wait_for(cond, what):
        deadline = time.time() + 20
        while time.time() < deadline:
            v = scrape("A")
            if cond(v):
                return v
            time.sleep(0.2)
        raise AssertionError(f"{what}: {v['hykex_peer_link_up' + peer]} "
                             f"{v['hykex_peer_links_established_total' + peer]}")
    before = scrape("A")["hykex_peer_links_established_total" + peer]
    check(R.stop("B") == 0, "B did not stop cleanly")
    wait_for(lambda v: v["hykex_peer_link_up" + peer] == 0, "link still up")
    start_daemon("B")
    wait_for(lambda v: v["hykex_peer_link_up" + peer] == 1
             and v["hykex_peer_links_established_total" + peer] >= before + 1, "no reconnect")


@test
def prometheus_reads_the_key_rate():
    """Debian's prometheus scrapes both nodes every second while an application takes keys; the
    key rate read back through its HTTP API is above zero at both nodes."""
    work = f"{WORK}/prometheus"
    os.makedirs(work, exist_ok=True)
    with open(f"{work}/prometheus.yml", "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: hykex\n    static_configs:\n"
                f"      - targets: ['127.0.0.1:{P['mA']}', '127.0.0.1:{P['mB']}']\n")
    p = subprocess.Popen([PROMETHEUS, f"--config.file={work}/prometheus.yml",
                          f"--storage.tsdb.path={work}/data",
                          f"--web.listen-address=127.0.0.1:{P['prom']}"],
                         stdout=subprocess.DEVNULL, stderr=open(f"{work}/prometheus.log", "w"),
                         cwd=work)
    R.procs["prometheus"], R.exit_ok["prometheus"] = p, None  # stopped by PID with the rest
    stop = threading.Event()

    def consumer():
        ksid = str(uuid.uuid4())
        apps = {n: App(n) for n in "AB"}
        both(lambda n: apps[n].open("rate", ksid))
        i = 0
        while not stop.is_set():
            both(lambda n: apps[n].call("GET_KEY", key_stream_id=ksid, index=i))
            i += 1
            time.sleep(0.05)
        both(lambda n: apps[n].call("CLOSE", key_stream_id=ksid))
    t = threading.Thread(target=consumer)
    t.start()
    query = 'sum by (instance) (rate(hykex_keys_delivered_total{job="hykex"}[10s]))'
    got, deadline = {}, time.time() + 90
    try:
        while time.time() < deadline and not (len(got) == 2 and all(x > 0 for x in got.values())):
            time.sleep(1)
            check(p.poll() is None, f"prometheus exited; see {work}/prometheus.log")
            try:
                code, body, _ = http(P["prom"], "/api/v1/query?" + urllib.parse.urlencode(
                    {"query": query}))
            except OSError:
                continue  # not listening yet
            if code != 200:
                continue
            res = json.loads(body)["data"]["result"]
            got = {r["metric"]["instance"]: float(r["value"][1]) for r in res}
    finally:
        stop.set()
        t.join(30)
    check(set(got) == {f"127.0.0.1:{P['mA']}", f"127.0.0.1:{P['mB']}"}
          and all(x > 0 for x in got.values()), f"key rate per node from Prometheus: {got}")


@test
def batches_grow_while_keys_are_stocked():
    """limits.batch_size 4, limits.batch_max 64, a buffer of 512: while a stream's keys are
    stocked with nobody taking them, its batches grow: keys committed per batch committed, on
    average at both nodes, are above twice limits.batch_size (without growth: at most 4); the
    keys of the grown batches agree at both ends. (The bound at limits.batch_max is checked in
    tests/unit/test_schedule.c.)"""
    limits = {"batch_size": 4, "batch_max": 64, "buffer_depth": 512, "max_streams": 8}
    for n in "AB":
        check(R.stop(n) == 0, f"{n} did not stop cleanly")
        json.dump(config(n, metrics={"port": P["m" + n]}, limits=limits),
                  open(f"{WORK}/{n}.json", "w"), indent=1)
        start_daemon(n)
    peer = {n: f'{{peer="{U[o]}"}}' for n, o in (("A", "B"), ("B", "A"))}
    deadline = time.time() + 20
    while time.time() < deadline and not all(
            scrape(n).get("hykex_peer_link_up" + peer[n]) == 1 for n in "AB"):
        time.sleep(0.2)
    ksid = str(uuid.uuid4())
    apps = {n: App(n) for n in "AB"}
    out = both(lambda n: apps[n].open("stock", ksid))
    check(all(r["status"] == 0 for r in out.values()), f"open: {out}")
    deadline = time.time() + 60
    while time.time() < deadline and not all(scrape(n)["hykex_keys_ready"] >= 400 for n in "AB"):
        time.sleep(0.2)
    keys = both(lambda n: [apps[n].call("GET_KEY", key_stream_id=ksid, index=i)
                           for i in range(512)])
    both(lambda n: apps[n].call("CLOSE", key_stream_id=ksid))
    got = {n: [bytes(k["key_buffer"]).hex() if k["status"] == 0 else k for k in keys[n]]
           for n in "AB"}
    check(got["A"] == got["B"] and all(isinstance(k, str) for k in got["A"]),
          f"keys differ or missing: {[k for k in got['A'] if not isinstance(k, str)][:3]}")
    check(len(set(got["A"])) == 512, "two positions got the same key")
    for n in "AB":
        v = scrape(n)
        made, batches = v["hykex_keys_produced_total" + peer[n]], v["hykex_batches_committed_total"]
        check(batches > 0 and 2 * 4 < made / batches <= 64,
              f"{n}: {made} keys in {batches} batches: the batches did not grow")


@test
def alert_rules_in_the_docs():
    """docs/metrics.md's example alert rules pass `promtool check rules`, and `promtool test
    rules` shows them firing: a certificate 10 days from expiry, a key rate at zero for 5 min."""
    doc = open(f"{ROOT}/docs/metrics.md").read()
    m = re.search(r"<!-- rules -->\s*```yaml\n(.*?)```", doc, re.S)
    check(m is not None, "no rules block in docs/metrics.md")
    with open(f"{WORK}/hykex-rules.yml", "w") as f:
        f.write(m.group(1))
    r = subprocess.run([PROMTOOL, "check", "rules", f"{WORK}/hykex-rules.yml"],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and "SUCCESS: 2 rules found" in r.stdout, f"{r.stdout} {r.stderr}")
    shutil.copy(f"{ROOT}/tests/integration/metrics_rules_test.yml", f"{WORK}/rules_test.yml")
    r = subprocess.run([PROMTOOL, "test", "rules", f"{WORK}/rules_test.yml"],
                       capture_output=True, text=True, timeout=60, cwd=WORK)
    check(r.returncode == 0 and "SUCCESS" in r.stdout, f"{r.stdout} {r.stderr}")


R.run(setup, order=[off_by_default_and_loopback_only, exposition_passes_promtool_and_counts_keys,
                    open_streams_by_state, failures_counted_by_cause, link_state_and_reconnects,
                    prometheus_reads_the_key_rate, alert_rules_in_the_docs,
                    batches_grow_while_keys_are_stocked])

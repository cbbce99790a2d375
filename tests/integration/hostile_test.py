#!/usr/bin/env python3
"""Bad-input battery: a running node answers every malformed or hostile request with an ETSI
status and a message naming the problem, keeps the connection where it can, and keeps serving
everyone else without losing or changing a key.

Usage: hostile_test.py BIN_DIR REPO_ROOT

Nodes A, B, C and the simulator as in fault_test.py (loopback). While the battery runs, a
stream A-B is consumed at both ends; at the end its keys must agree and must have kept coming.
Each case sends bytes to A's API and asserts the reply's status and a part of its message; where
the connection should survive, the same connection must then answer a valid request. Ends with
"N passed, M failed, K skipped" (the runner: hxtest.Runner, shared with fault_test.py).
"""
import json
import os
import socket
import selectors
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("HYKEX_TEST_LOOPBACK", "127.0.0.3")  # fault_test.py may run at once
import fault_test as net  # noqa: E402  (same network, same helpers)
from hxtest import next_json, timing  # noqa: E402

# The bounds under test, small enough to reach (issue 19; docs/security.md "Resource model").
net.EXTRA_LIMITS.update({"max_timeout_ms": 8000, "max_unjoined_per_peer": 8, "status_streams": 2})

check, App, uri = net.check, net.App, net.uri
R = net.R  # one runner: fault_test.py's network, its folder and programs
test = R.test


class Raw:
    """A raw connection to a node's API: bytes in, JSON objects out."""

    def __init__(self, node="A", timeout=10):
        self.s = socket.create_connection((net.ADDR[node], net.API), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def reply(self):
        obj, _, self.buf = next_json(self.s, self.buf, "node closed the connection")
        return obj

    def call(self, data):
        self.send(data)
        return self.reply()

    def alive(self):
        """The connection still serves: CLOSE of an unknown stream answers 4 "not open"."""
        r = self.call(json.dumps({"command": "CLOSE", "data": {"key_stream_id": str(uuid.uuid4())}}))
        return r.get("status") == 4 and "not open" in r.get("message", "")

    def close(self):
        self.s.close()


def req(command, **data):
    return json.dumps({"command": command, "data": data})


def open_req(src=None, dst=None, qos=None, **extra):
    q = {"key_chunk_size": 32, "timeout": 300, "ttl": 0}
    q.update(qos or {})
    d = {"source": src if src is not None else uri("A", "bad"),
         "destination": dst if dst is not None else uri("B", "bad"), "qos": q}
    d.update(extra)
    return json.dumps({"command": "OPEN_CONNECT", "data": d})


U_C = net.U["C"]
GOOD_SRC, GOOD_DST = uri("A", "bad"), uri("B", "bad")
BASE = "hybrid://bad@" + net.U["A"]
KSID_LIVE = None  # the A-B stream consumed in the background (set in setup)

# (name, bytes, expected statuses, part of the message (case-insensitive), connection survives
#  [, further error replies the input causes before the connection serves again])
CASES = [
    # framing and JSON
    ("not JSON at all", "hello there", {4}, "malformed request", True),
    ("unbalanced braces (two stray ones: one more error reply)", '{"command": "GET_KEY"}}}', {4},
     "data", True, 1),
    ("deep nesting", '{"a":' * 200 + "1" + "}" * 200, {4}, "deep", True),
    ("oversize message (100 kB string)", '{"command": "GET_KEY", "data": {"key_stream_id": "'
     + "x" * 100000 + '"}}', {4}, "exceeds", False),
    ("invalid UTF-8 in a string", b'{"command": "GET_KEY", "data": {"key_stream_id": "\xff\xfe"}}',
     {4}, "", True),
    ("NUL byte in a string", '{"command": "GET_KEY", "data": {"key_stream_id": "ab\\u0000cd"}}',
     {4}, "NUL", True),
    ("empty object", "{}", {4}, "command", True),
    ("command of the wrong type", '{"command": 5, "data": {}}', {4}, "command", True),
    ("unknown command", req("DELETE_ALL_KEYS"), {4}, "command", True),
    ("data of the wrong type", '{"command": "GET_KEY", "data": [1, 2]}', {4}, "data", True),
    ("unknown top-level field", '{"command": "CLOSE", "data": {}, "sudo": true}', {4}, "sudo", True),
    ("unknown field in data", req("CLOSE", key_stream_id=str(uuid.uuid4()), evil=1), {4}, "evil", True),
    # OPEN_CONNECT: URIs
    ("source missing", json.dumps({"command": "OPEN_CONNECT", "data": {"destination": GOOD_DST}}),
     {4}, "source", True),
    ("source of the wrong type", open_req(src=17), {4}, "source", True),
    ("source not a hybrid:// URI", open_req(src="http://example.org/"), {4}, "hybrid", True),
    ("URI without its node UUID", open_req(src="hybrid://bad@?hybridization=hkdf&key_sources=QKD"),
     {4}, "uuid", True),
    ("URI with a duplicated part", open_req(src=BASE + "?hybridization=hkdf&hybridization=xoring"
                                            "&key_sources=QKD"), {4}, "hybridization", True),
    ("unsupported hybridization", open_req(src=BASE + "?hybridization=rot13&key_sources=QKD"),
     {4}, "rot13", True),
    ("unknown key source", open_req(src=BASE + "?hybridization=hkdf&key_sources=PIGEON"),
     {4}, "PIGEON", True),
    ("destination not a trusted peer", open_req(
        dst="hybrid://bad@12345678-1234-4234-8234-123456789abc?hybridization=hkdf"
            "&key_sources=QKD,ML-KEM-768"),
     {4}, "trusted", True),
    ("neither URI names this node", open_req(src=uri("B", "bad"), dst=uri("C", "bad")),
     {4}, "node", True),
    # OPEN_CONNECT: QoS
    ("qos of the wrong type", json.dumps({"command": "OPEN_CONNECT", "data": {
        "source": GOOD_SRC, "destination": GOOD_DST, "qos": "fast"}}), {4}, "qos", True),
    ("key_chunk_size 0", open_req(qos={"key_chunk_size": 0}), {7}, "key_chunk_size", True),
    ("key_chunk_size beyond the limit", open_req(qos={"key_chunk_size": 1000000}), {7},
     "key_chunk_size", True),
    ("key_chunk_size huge", open_req(qos={"key_chunk_size": 10 ** 12}), {4}, "key_chunk_size", True),
    ("key_chunk_size negative", open_req(qos={"key_chunk_size": -32}), {4}, "key_chunk_size", True),
    ("key_chunk_size a float", open_req(qos={"key_chunk_size": 32.5}), {4}, "key_chunk_size", True),
    ("timeout negative", open_req(qos={"timeout": -1}), {4}, "timeout", True),
    ("timeout above 32 bits", open_req(qos={"timeout": 2 ** 32}), {4}, "timeout", True),
    ("ttl a string", open_req(qos={"ttl": "forever"}), {4}, "ttl", True),
    ("min_bps above max_bps", open_req(qos={"min_bps": 64, "max_bps": 32}), {7}, "min_bps", True),
    ("key_stream_id not a UUID", open_req(key_stream_id="not-a-uuid"), {4}, "key_stream_id", True),
    # GET_KEY
    ("GET_KEY before OPEN_CONNECT", req("GET_KEY", key_stream_id=str(uuid.uuid4())), {4},
     "OPEN_CONNECT first", True),
    ("GET_KEY without key_stream_id", req("GET_KEY"), {4}, "key_stream_id", True),
    ("GET_KEY key_stream_id of the wrong type", req("GET_KEY", key_stream_id=[1]), {4},
     "key_stream_id", True),
    ("GET_KEY index negative", "LIVE:" + req("GET_KEY", key_stream_id="{ks}", index=-1), {4},
     "index", True),
    ("GET_KEY index above 32 bits", "LIVE:" + req("GET_KEY", key_stream_id="{ks}", index=2 ** 40),
     {4}, "index", True),
    ("GET_KEY index far ahead of production", "LIVE:" + req("GET_KEY", key_stream_id="{ks}",
                                                            index=4000000000), {2}, "ahead", True),
    ("GET_KEY metadata buffer too small", "LIVE:" + req("GET_KEY", key_stream_id="{ks}",
                                                        metadata={"size": 3}), {8}, "metadata", True),
    ("GET_KEY metadata of the wrong type", "LIVE:" + req("GET_KEY", key_stream_id="{ks}",
                                                         metadata=7), {4}, "metadata", True),
    # CLOSE
    ("CLOSE of an unknown stream", req("CLOSE", key_stream_id=str(uuid.uuid4())), {4}, "not open", True),
    ("CLOSE with key_stream_id of the wrong type", req("CLOSE", key_stream_id=False), {4},
     "key_stream_id", True),
    ("CLOSE without key_stream_id", req("CLOSE"), {4}, "key_stream_id", True),
]


@test
def battery_of_malformed_requests():
    """Every case answered with its status and a message naming the problem; the connection
    kept where the stream can resynchronise."""
    bad = []
    for name, data, statuses, part, survives, *extra in CASES:
        if isinstance(data, str) and data.startswith("LIVE:"):
            data = data[5:].replace("{ks}", KSID_LIVE)
        c = Raw()
        try:
            r = c.call(data)
            replies_ok = (r.get("status") in statuses and
                          part.lower() in r.get("message", "").lower())
            if not replies_ok:
                bad.append(f"{name}: {str(r)[:200]}")
            for _ in range(extra[0] if extra else 0):
                r2 = c.reply()
                if r2.get("status") != 4:
                    replies_ok = False
                    bad.append(f"{name}: extra reply {r2}")
            if replies_ok and survives and not c.alive():
                bad.append(f"{name}: connection no longer serves")
        except (OSError, ConnectionError) as e:
            bad.append(f"{name}: {e}")
        c.close()
    check(not bad, f"{len(bad)} of {len(CASES)} cases: " + " | ".join(bad))
    print(f"     {len(CASES)} cases", flush=True)


@test
def double_close_and_another_clients_stream():
    """CLOSE twice: the second answers "not open"; a stream closed by one application is gone
    for every connection."""
    ks = net.open_pair("A", "C", "dbl")
    a1, a2 = Raw(), Raw()
    check(a1.call(req("GET_KEY", key_stream_id=ks)).get("status") == 0, "GET_KEY")
    r = a1.call(req("CLOSE", key_stream_id=ks))
    check(r["status"] == 0, f"first CLOSE: {r}")
    r = a1.call(req("CLOSE", key_stream_id=ks))
    check(r["status"] == 4 and "not open" in r["message"], f"second CLOSE: {r}")
    r = a2.call(req("GET_KEY", key_stream_id=ks))
    check(r["status"] == 4 and "not open" in r["message"], f"GET_KEY after CLOSE: {r}")
    a1.close()
    a2.close()


@test
def half_a_message_then_stall():
    """A client sends half a request and stalls: others are served meanwhile; when the rest
    arrives, the request is answered."""
    stall = Raw()
    whole = req("CLOSE", key_stream_id=str(uuid.uuid4()))
    stall.send(whole[:17])
    t0 = time.time()
    other = Raw()
    check(other.alive(), "another client is not served while one stalls")
    check(time.time() - t0 < 1.0, "another client waited")
    time.sleep(1.0)
    r = stall.call(whole[17:])
    check(r["status"] == 4 and "not open" in r["message"], f"completed request: {r}")
    stall.close()
    other.close()


@test
@timing
def a_request_every_millisecond_for_ten_seconds():
    """10 s of GET_KEY every 1 ms on one connection (a stream of its own): every request gets its
    reply, in order, and the daemon keeps up."""
    ks = net.open_pair("A", "B", "rate1ms")
    # B's application takes its keys too: production never runs more than limits.buffer_depth
    # ahead of the slower end (issue 19).
    other = net.Consumer("B", ks, uri("A", "rate1ms"), uri("B", "rate1ms"))
    other.start()
    c, answered, ok, t0, i = Raw(), 0, 0, time.time(), 0
    while time.time() - t0 < 10.0:
        r = c.call(req("GET_KEY", key_stream_id=ks, index=i))
        answered += 1
        if r["status"] == 0:
            check(r["index"] == i, f"reply out of order: {r}")
            ok += 1
            i += 1
        time.sleep(0.001)
    # Every call above returned its own reply in order (Raw.call reads exactly one). The count
    # is a floor far below the 10 000 asked for, not a speed claim (bench/ measures speed): on a
    # loaded machine under ASan each turn of this loop takes several times its 1 ms sleep, and a
    # fixed 3 000 failed there once while every reply was right.
    check(answered >= 1000 and ok >= 0.9 * answered, f"{answered} answered, {ok} keys in 10 s")
    print(f"     {answered} requests answered, {ok} keys", flush=True)
    c.close()
    other.stop.set()
    other.join(20)


@test
def a_thousand_idle_connections():
    """1,000 connections that never send anything: a new client is still served at once, and the
    idle ones are still open (nobody was dropped to make room)."""
    idle = []
    try:
        for _ in range(1000):
            idle.append(socket.create_connection((net.ADDR["A"], net.API), timeout=10))
        t0 = time.time()
        c = Raw()
        check(c.alive(), "a new client is not served")
        took = time.time() - t0
        # the bound is asserted in the ASan build; under ThreadSanitizer the accept thread's
        # thread creations for the 1,000 idle clients alone take longer than a second
        if os.environ.get("HYKEX_TSAN") != "1":
            check(took < 1.0, f"a new client waited {took:.2f} s")
        c.close()
        alive = sum(1 for s in idle[:50] if _still_open(s))
        check(alive == 50, f"only {alive} of 50 sampled idle connections still open")
    finally:
        for s in idle:
            s.close()


def _still_open(s):
    s.setblocking(False)
    try:
        return s.recv(1) != b""
    except BlockingIOError:
        return True
    finally:
        s.setblocking(True)


# ---- bounds (issue 19): nothing a client or a peer sends makes a node hold unbounded work ----

def status(node):
    c = Raw(node)
    try:
        r = c.call(req("STATUS"))
    finally:
        c.close()
    check(r.get("status") == 0, f"STATUS at {node}: {str(r)[:200]}")
    return r


def waiting(node):
    """Streams at node whose peer application has not opened them (all of them, listed or not)."""
    return status(node)["streams_by_state"]["waiting for the peer"]


def eventually(cond, within=10.0):
    t0 = time.time()
    while time.time() - t0 < within:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


@test
def get_key_beyond_the_buffer_makes_nothing():
    """GET_KEY for a position beyond limits.buffer_depth answers status 2 naming the limit, and
    nothing is made for it; skipping ahead within the window, leaving keys unclaimed, does not
    move the window."""
    ks = net.open_pair("A", "B", "ahead")
    c = Raw()
    r = c.call(req("GET_KEY", key_stream_id=ks, index=65535))
    check(r["status"] == 2 and "buffer_depth" in r["message"], f"index 65535: {r}")
    r = c.call(req("GET_KEY", key_stream_id=ks, index=63))
    check(r["status"] == 0, f"index 63 (inside the window): {r}")
    r = c.call(req("GET_KEY", key_stream_id=ks, index=127))
    check(r["status"] == 2 and "buffer_depth" in r["message"],
          f"index 127 with 0..62 unclaimed: {r}")
    produced = [x["produced"] for x in status("A")["streams"] if x["key_stream_id"] == ks]
    c.call(req("CLOSE", key_stream_id=ks))
    c.close()
    b = Raw("B")
    b.call(req("CLOSE", key_stream_id=ks))
    b.close()
    # 64 + the pipeline's 3 batches of 16 at most (only when STATUS lists it: 2 are listed)
    check(not produced or produced[0] <= 64 + 48, f"A produced {produced} positions")


@test
def qos_timeout_is_capped():
    """OPEN_CONNECT with timeout 4294967295 ms and no peer application: answered after
    limits.max_timeout_ms (8 s here), not after 49.7 days."""
    c = Raw(timeout=40)
    try:
        r = c.call(open_req(src=uri("A", "capped"), dst=uri("B", "capped"),
                            qos={"timeout": 4294967295}, key_stream_id=str(uuid.uuid4())))
    except OSError as e:
        check(False, f"no reply within 40 s: {e}")
    check(r["status"] == 6 and "in time" in r["message"], f"OPEN_CONNECT: {r}")
    c.close()


@test
def abandoned_open_connect_is_released_at_both_nodes():
    """Clients that send OPEN_CONNECT with the longest timeout and hang up: their streams go at
    both nodes (the wait notices the closed client, as GET_KEY's does)."""
    base = (waiting("A"), waiting("B"))
    gone = []
    for i in range(6):
        c = Raw()
        c.send(open_req(src=uri("A", f"gone{i}"), dst=uri("B", f"gone{i}"),
                        qos={"timeout": 4294967295}, key_stream_id=str(uuid.uuid4())))
        gone.append(c)
    check(eventually(lambda: waiting("A") >= base[0] + 6 and waiting("B") >= base[1] + 6, 5),
          f"the 6 opens never showed: A {waiting('A')}, B {waiting('B')} (before: {base})")
    for c in gone:
        c.close()
    check(eventually(lambda: (waiting("A"), waiting("B")) == base, 5),
          f"after the clients hung up: A {waiting('A')}, B {waiting('B')} waiting (before: {base})")


@test
def status_stays_valid_past_its_bound():
    """STATUS with more streams than limits.status_streams (2 here): valid JSON listing 2, the
    total and every stream counted by state."""
    extra = [net.open_pair("A", "B", f"st{i}") for i in range(2)]
    r = status("A")
    total = r.get("streams_total", 0)
    check(total >= 3 and len(r["streams"]) == 2 and r.get("streams_listed") == 2,
          f"{total} streams, {len(r['streams'])} listed")
    check(sum(r["streams_by_state"].values()) == total, f"by state: {r['streams_by_state']}")
    for ks in extra:
        for n in "AB":
            x = Raw(n)
            x.call(req("CLOSE", key_stream_id=ks))
            x.close()


@test
def limits_the_secure_heap_cannot_hold_are_refused():
    """A config whose streams x depth x chunk do not fit limits.secure_heap_mb is refused at
    start-up with the arithmetic (key material never spills onto the normal heap)."""
    cfg = json.load(open(f"{net.WORK}/A.json"))
    cfg["limits"].update({"max_streams": 100000, "max_key_chunk": 4096})
    path = f"{net.WORK}/A-huge.json"
    json.dump(cfg, open(path, "w"))
    r = subprocess.run([f"{net.BIN}/hykexd", "-c", path, "--check-config"], capture_output=True,
                       text=True, cwd=net.WORK)
    check(r.returncode != 0 and "100000 streams (limits.max_streams)" in r.stderr and
          "limits.secure_heap_mb 512" in r.stderr, f"exit {r.returncode}: {r.stderr[:300]}")


@test
def a_peer_cannot_fill_the_stream_table():
    """Node C announces 12 streams that nobody at A joins: A holds 8 of them
    (limits.max_unjoined_per_peer), B's and A's own applications still open streams, and C's
    go when C's link goes (C killed, then restarted)."""
    base = waiting("A")
    opens = []
    for i in range(12):
        c = Raw("C", timeout=30)
        c.send(open_req(src=uri("C", f"q{i}"), dst=uri("A", f"q{i}"), qos={"timeout": 7000},
                        key_stream_id=str(uuid.uuid4())))
        opens.append(c)
    try:
        check(eventually(lambda: waiting("A") >= base + 8, 5), "C's streams never reached A")
        time.sleep(0.5)
        held = waiting("A") - base
        check(held <= 8, f"A holds {held} streams announced by C and not joined (limit 8)")
        ks = net.open_pair("B", "A", "quota-other")
        for n in "AB":
            x = Raw(n)
            x.call(req("CLOSE", key_stream_id=ks))
            x.close()
        net.kill9("C")
        check(eventually(lambda: waiting("A") == base, 5),
              f"C's link is gone, A still holds {waiting('A') - base} of its streams")
    finally:
        for c in opens:
            c.close()
        if net.procs["C"].poll() is not None:
            net.start("C")
        eventually(lambda: any(p["up"] for p in status("A")["peers"]
                               if p["uuid"] == net.U["C"]), 15)


class Flood(threading.Thread):
    """n hostile TCP connections to addr that never speak, from 100 source addresses
    (127.1.0.1 ...), each reopened as soon as the node closes it."""

    def __init__(self, addr, n=1000):
        super().__init__(daemon=True)
        self.addr, self.n, self.opened = addr, n, 0
        self.stop = threading.Event()

    def _open(self, i):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((f"127.1.0.{i % 100 + 1}", 0))
            s.connect_ex(self.addr)
        except OSError:
            s.close()
            return None
        self.opened += 1
        return s

    def run(self):
        sel = selectors.DefaultSelector()
        for i in range(self.n):
            s = self._open(i)
            if s is not None:
                sel.register(s, selectors.EVENT_READ, i)
        while not self.stop.is_set():
            for key, _ in sel.select(0.05):
                sel.unregister(key.fileobj)
                key.fileobj.close()  # closed by the node (or refused): reopen at once
                s = self._open(key.data)
                if s is not None:
                    sel.register(s, selectors.EVENT_READ, key.data)
            missing = self.n - len(sel.get_map())
            for i in range(missing):  # the node was down: try again
                s = self._open(i)
                if s is not None:
                    sel.register(s, selectors.EVENT_READ, i)
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()


def links_up(node, peers):
    return all(p["up"] for p in status(node)["peers"] if p["uuid"] in peers)


@test
def trusted_peers_link_despite_a_flood():
    """1,000 silent connections from 100 addresses churn against C's peer port while C starts:
    A and B (trusted peers with valid certificates) still link to it (reserved accept slots,
    4 per source address, a 5 s handshake deadline for other addresses). The time it took is
    printed, not asserted."""
    net.kill9("C")
    flood = Flood((net.ADDR["C"], net.PEER))
    flood.start()
    try:
        time.sleep(0.5)
        t0 = time.time()
        net.start("C")
        ok = eventually(lambda: links_up("C", (net.U["A"], net.U["B"])), 30)
        took = time.time() - t0
        opened = flood.opened
    finally:
        flood.stop.set()
        flood.join(10)
    check(opened > 1000, f"the flood made only {opened} connections")
    check(ok, f"A and B not both linked to C within 30 s of a flood of {opened} connections")
    print(f"     linked in {took:.1f} s while {opened} hostile connections churned", flush=True)


LIVE = []  # the two consumers of the A-B stream (set in setup)


def setup():
    global KSID_LIVE
    net.setup()
    KSID_LIVE = net.open_pair("A", "B", "live")
    src, dst = uri("A", "live"), uri("B", "live")
    LIVE[:] = [net.Consumer("A", KSID_LIVE, src, dst, pace=0.002),
               net.Consumer("B", KSID_LIVE, src, dst, pace=0.002)]
    for x in LIVE:
        x.start()


def still_producing(case):
    """After each case: the live A-B stream still delivers at both ends."""
    n = (len(LIVE[0].keys), len(LIVE[1].keys))
    time.sleep(0.3)
    if len(LIVE[0].keys) == n[0] or len(LIVE[1].keys) == n[1]:
        R.fail("other streams keep producing", f"the live A-B stream stalled after {case.__name__}")


def other_streams_unharmed():
    """The A-B stream consumed throughout: keys kept coming and agree at both ends."""
    for x in LIVE:
        x.stop.set()
    for x in LIVE:
        x.join(20)
    check(len(LIVE[0].keys) > 500 and len(LIVE[1].keys) > 500,
          f"only {len(LIVE[0].keys)} / {len(LIVE[1].keys)} keys")
    net.cross_check(LIVE[0], LIVE[1], 0, 0)


if __name__ == "__main__":
    R.run(setup, order=[battery_of_malformed_requests, double_close_and_another_clients_stream,
                        half_a_message_then_stall, a_request_every_millisecond_for_ten_seconds,
                        a_thousand_idle_connections, get_key_beyond_the_buffer_makes_nothing,
                        qos_timeout_is_capped, abandoned_open_connect_is_released_at_both_nodes,
                        status_stays_valid_past_its_bound,
                        limits_the_secure_heap_cannot_hold_are_refused,
                        a_peer_cannot_fill_the_stream_table, trusted_peers_link_despite_a_flood],
          after_each=still_producing, finish=test(other_streams_unharmed))

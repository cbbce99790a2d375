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
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("HYKEX_TEST_LOOPBACK", "127.0.0.3")  # fault_test.py may run at once
import fault_test as net  # noqa: E402  (same network, same helpers)
from hxtest import timing  # noqa: E402

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
        obj, _, self.buf = net.next_json(self.s, self.buf, "node closed the connection")
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
    c, answered, ok, t0, i = Raw(), 0, 0, time.time(), 0
    while time.time() - t0 < 10.0:
        r = c.call(req("GET_KEY", key_stream_id=ks, index=i))
        answered += 1
        if r["status"] == 0:
            check(r["index"] == i, f"reply out of order: {r}")
            ok += 1
            i += 1
        time.sleep(0.001)
    check(answered >= 3000 and ok >= 0.9 * answered, f"{answered} answered, {ok} keys in 10 s")
    print(f"     {answered} requests answered, {ok} keys", flush=True)
    c.close()


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
                        a_thousand_idle_connections],
          after_each=still_producing, finish=test(other_streams_unharmed))

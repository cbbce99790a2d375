#!/usr/bin/env python3
"""hykexd's ETSI GS QKD 014 server (docs/etsi014.md) with real 014 clients.

Usage: etsi014_server_test.py BIN_DIR REPO_ROOT
Two nodes (A, B) with ETSI 004 JSON KMEs from the simulator. SAE_A is attached to node A,
SAE_B and SAE_C to node B; SAE_X has a certificate from the SAEs' CA but belongs to no node.
The clients are curl (command line) and Python `requests` (urllib3 over the ssl module); every
call and error of the standard is made by both. A C program on libcurl (hykexd's own 014
client, tests/integration/etsi014_c_client.c) takes and fetches keys too. Ends with "N passed, M failed, K skipped" (the
runner: hxtest.Runner).
"""
import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import uuid

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import etsi014_net as net  # noqa: E402  (the PKI and configs, shared with bench/etsi014.py)
from hxtest import Runner, Skip, check, free_port  # noqa: E402  (one runner, safe ports)

BIN, ROOT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
U = net.U
R = Runner("hykex-etsi014-")
test = R.test
WORK = R.work
P = {k: free_port() for k in ["kA", "kB", "apiA", "apiB", "peerA", "peerB", "eA", "eB"]}
NODE_OF = {"SAE_A": "A", "SAE_B": "B", "SAE_C": "B", "SAE_X": "B"}
FIELDS = ["source_KME_ID", "target_KME_ID", "master_SAE_ID", "slave_SAE_ID", "key_size",
          "stored_key_count", "max_key_count", "max_key_per_request", "max_key_size",
          "min_key_size", "max_SAE_ID_count"]
# OpenSSL 3.5 (for the hybrid group check): the one hykex is built with, if it has a binary.
OPENSSL35 = next((p for p in [os.path.expanduser("~/.cache/hykex/openssl-3.5.7/bin/openssl"),
                              shutil.which("openssl")] if p and os.access(p, os.X_OK)), None)


def url(node, sae, call):
    return f"https://127.0.0.1:{P['e' + node]}/api/v1/keys/{sae}/{call}"


def py(sae, call, other, method="GET", body=None, params=None, node=None):
    """(status, JSON body or None) of a call by SAE sae with requests."""
    node = node or NODE_OF[sae]
    r = requests.request(method, url(node, other, call), params=params,
                         data=None if body is None else json.dumps(body),
                         headers={"Content-Type": "application/json"},
                         cert=(f"{WORK}/{sae}.crt", f"{WORK}/{sae}.key"),
                         verify=f"{WORK}/saeca.crt", timeout=30)
    return r.status_code, (r.json() if r.content else None)


def curl(sae, call, other, query="", body=None, node=None, extra=()):
    """(status, JSON body or None) of a call by SAE sae with the curl command."""
    node = node or NODE_OF[sae]
    argv = ["curl", "-sS", "--max-time", "30", "--cacert", f"{WORK}/saeca.crt",
            "--cert", f"{WORK}/{sae}.crt", "--key", f"{WORK}/{sae}.key",
            "-H", "Content-Type: application/json", "-o", "-", "-w", "\n%{http_code}",
            *extra]
    if body is not None:
        argv += ["-X", "POST", "--data-binary", json.dumps(body)]
    r = subprocess.run(argv + [url(node, other, call) + query], capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 0, f"curl {call}: {r.returncode} {r.stderr}")
    text, _, code = r.stdout.rpartition("\n")
    return int(code), (json.loads(text) if text.strip() else None)


def keys_of(reply):
    check(isinstance(reply, dict) and isinstance(reply.get("keys"), list), f"container: {reply}")
    out = {}
    for k in reply["keys"]:
        check(len(k["key_ID"]) == 36 and str(uuid.UUID(k["key_ID"])) == k["key_ID"] and
              uuid.UUID(k["key_ID"]).version == 4, f"key_ID {k['key_ID']}")
        out[k["key_ID"]] = base64.b64decode(k["key"], validate=True)
    return out


def error(code, body, want_code, want_text):
    check(code == want_code, f"HTTP {code}, wanted {want_code}: {body}")
    check(isinstance(body, dict) and want_text in body.get("message", ""),
          f"message should name '{want_text}': {body}")


def config(node):
    local = ["SAE_A"] if node == "A" else ["SAE_B", "SAE_C"]
    # A knows SAE_B from its configuration and learns SAE_C from B; B learns SAE_A from A.
    # SAE_GHOST is configured at A as attached to B, but B does not have it: its pair's stream
    # never opens.
    remote = {"SAE_B": U["B"], "SAE_GHOST": U["B"]} if node == "A" else {}
    return net.node_config(node, P, local, remote, max_keys_per_request=16)


def setup():
    net.make_pki(WORK, ROOT, ["SAE_A", "SAE_B", "SAE_C", "SAE_X"])
    net.write(f"{WORK}/net.json", net.sim_net(WORK, P))
    R.start("sim", [f"{BIN}/hykex-qkdsim", "-c", f"{WORK}/net.json", "--log-level", "warn"],
            f"{WORK}/sim.log", exit_ok=None)
    for n in "AB":
        json.dump(config(n), open(f"{WORK}/{n}.json", "w"), indent=1)
        R.start(n, [f"{BIN}/hykexd", "-c", f"{WORK}/{n}.json"], f"{WORK}/{n}.log", cwd=WORK)
    # Every pair's stream is open when each master sees stored keys for its slave.
    if not pairs_ready():
        raise RuntimeError("the SAE pairs' streams did not open")


# ---- cases ----

@test
def check_config_shows_etsi014():
    """--check-config prints api.etsi014 with its SAEs; every inconsistent option is refused at
    start with the key named: a remote SAE on a node that is not a trusted peer, a port without
    certificates, no local SAE, bad or repeated SAE ids, an SAE both local and remote, sources
    the stream service would refuse, a key size that is not whole bytes, an unknown key."""
    r = subprocess.run([f"{BIN}/hykexd", "--check-config", "-c", f"{WORK}/A.json"],
                       capture_output=True, text=True, cwd=WORK, timeout=30)
    eff = json.loads(r.stdout)["api"]["etsi014"]
    check(eff["local_saes"] == ["SAE_A"] and
          eff["remote_saes"] == {"SAE_B": U["B"], "SAE_GHOST": U["B"]}
          and eff["key_size"] == 256, f"effective: {eff}")
    bad = config("A")
    bad["api"]["etsi014"]["remote_saes"] = {"SAE_B": str(uuid.uuid4())}
    json.dump(bad, open(f"{WORK}/bad1.json", "w"))
    r = subprocess.run([f"{BIN}/hykexd", "--check-config", "-c", f"{WORK}/bad1.json"],
                       capture_output=True, text=True, cwd=WORK, timeout=30)
    check(r.returncode == 1 and "api.etsi014.remote_saes" in r.stderr and
          "not a trusted peer" in r.stderr, f"unknown peer: {r.stderr}")
    refusals = [
        ({"cert": None}, "needs cert, key and ca"),
        ({"local_saes": []}, "api.etsi014.local_saes"),
        ({"local_saes": ["SAE A"]}, "is not an SAE id"),
        ({"local_saes": ["SAE_A", "SAE_A"]}, "listed twice"),
        ({"local_saes": ["SAE_A", "SAE_B"]}, "both local and remote"),
        ({"remote_saes": {"SAE_B": "not-a-uuid"}}, "expected the UUID"),
        ({"key_sources": "QKD,Kyber512"}, "key_sources"),
        ({"key_size": 260}, "multiple of 8"),
        ({"colour": "blue"}, "colour"),
    ]
    for i, (change, text) in enumerate(refusals):
        bad = config("A")
        for k, v in change.items():
            if v is None:
                del bad["api"]["etsi014"][k]
            else:
                bad["api"]["etsi014"][k] = v
        json.dump(bad, open(f"{WORK}/bad{i + 2}.json", "w"))
        r = subprocess.run([f"{BIN}/hykexd", "--check-config", "-c", f"{WORK}/bad{i + 2}.json"],
                           capture_output=True, text=True, cwd=WORK, timeout=30)
        check(r.returncode == 1 and text in r.stderr, f"{change}: {r.returncode} {r.stderr}")


@test
def status_all_fields():
    """GET status by both clients: all eleven fields, 32-bit integers where they are numbers,
    min_key_size <= key_size <= max_key_size, stored_key_count <= max_key_count."""
    for code, st in (py("SAE_A", "status", "SAE_B"), curl("SAE_A", "status", "SAE_B")):
        check(code == 200 and sorted(st) == sorted(FIELDS), f"status: {code} {st}")
        check(st["source_KME_ID"] == U["A"] and st["target_KME_ID"] == U["B"] and
              st["master_SAE_ID"] == "SAE_A" and st["slave_SAE_ID"] == "SAE_B", f"ids: {st}")
        nums = [st[f] for f in FIELDS[4:]]
        check(all(isinstance(v, int) and 0 <= v < 2 ** 31 for v in nums), f"numbers: {st}")
        check(st["min_key_size"] <= st["key_size"] <= st["max_key_size"] and
              st["stored_key_count"] <= st["max_key_count"] and st["max_key_per_request"] == 16,
              f"ranges: {st}")


@test
def enc_get_curl_dec_post_requests():
    """enc_keys by GET (curl, number and size in the query) at A; dec_keys by POST (requests,
    with the non-standard master_SAE_ID some clients add) at B: the same bytes."""
    code, reply = curl("SAE_A", "enc_keys", "SAE_B", "?number=2&size=256")
    check(code == 200, f"enc_keys: {code} {reply}")
    master = keys_of(reply)
    check(len(master) == 2 and all(len(k) == 32 for k in master.values()), f"keys: {reply}")
    body = {"key_IDs": [{"key_ID": i, "master_SAE_ID": "SAE_A"} for i in master]}
    code, reply = py("SAE_B", "dec_keys", "SAE_A", "POST", body)
    check(code == 200 and keys_of(reply) == master, f"dec_keys: {code}")


@test
def enc_post_requests_dec_get_curl():
    """enc_keys by POST (requests: number, size 128, an ignored extension_optional) at A;
    dec_keys by GET (curl, key_ID in the query, one key at a time) at B: the same bytes."""
    body = {"number": 3, "size": 128, "extension_optional": [{"abc": 1}]}
    code, reply = py("SAE_A", "enc_keys", "SAE_B", "POST", body)
    check(code == 200, f"enc_keys: {code} {reply}")
    master = keys_of(reply)
    check(len(master) == 3 and all(len(k) == 16 for k in master.values()), f"keys: {reply}")
    for kid, key in master.items():
        code, reply = curl("SAE_B", "dec_keys", "SAE_A", f"?key_ID={kid}")
        check(code == 200 and keys_of(reply) == {kid: key}, f"dec_keys {kid}: {code} {reply}")


@test
def saes_learned_over_peer_links():
    """Node B has no remote_saes in its configuration: it learned SAE_A from node A's SAE_LIST,
    and node A learned SAE_C (not configured there) from B's. Both log it."""
    for node, sae in (("B", "SAE_A"), ("A", "SAE_C")):
        log = open(f"{WORK}/{node}.log").read()
        check("SAE learned from a peer" in log and f"sae={sae}" in log,
              f"{node} should log that it learned {sae}")


@test
def other_direction_and_second_slave():
    """B's SAEs are masters too (streams initiated by node B), and SAE_C at B is a slave of
    SAE_A on its own stream (a pair both nodes learned over the peer link): every pair gets its
    own identical keys."""
    code, reply = py("SAE_B", "enc_keys", "SAE_A", params={"number": 1})
    master = keys_of(reply)
    code2, reply2 = py("SAE_A", "dec_keys", "SAE_B", "POST",
                       {"key_IDs": [{"key_ID": i} for i in master]})
    check(code == 200 and code2 == 200 and keys_of(reply2) == master, f"B->A: {reply2}")
    code, reply = curl("SAE_A", "enc_keys", "SAE_C")
    master_c = keys_of(reply)
    code2, reply2 = curl("SAE_C", "dec_keys", "SAE_A", body={"key_IDs": [{"key_ID": i}
                                                                          for i in master_c]})
    check(code == 200 and code2 == 200 and keys_of(reply2) == master_c, f"A->C: {reply2}")
    check(not set(master_c.values()) & set(master.values()), "pairs share keys")


def c_client(sae, op, other, *args):
    """hykexd's 014 client in C (libcurl): {key_ID: key bytes}, or the exception's message."""
    node = NODE_OF[sae]
    r = subprocess.run([f"{BIN}/etsi014_c_client", f"https://127.0.0.1:{P['e' + node]}",
                        f"{WORK}/{sae}.crt", f"{WORK}/{sae}.key", f"{WORK}/saeca.crt", op, other,
                        *map(str, args)], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"C client {op}: {r.returncode} {r.stderr}")
    return {line.split()[0]: bytes.fromhex(line.split()[1]) for line in r.stdout.splitlines()}


@test
def c_client_libcurl():
    """C SAEs on libcurl: a C master at A and a C slave at B get the same 4 keys; a Python
    master's keys (128 bits) fetched by a C slave are the same bytes too."""
    master = c_client("SAE_A", "enc", "SAE_B", 4, 32)
    check(len(master) == 4 and all(len(k) == 32 for k in master.values()), f"enc: {master}")
    check(c_client("SAE_B", "dec", "SAE_A", 32, *master) == master, "C slave")
    code, reply = py("SAE_A", "enc_keys", "SAE_B", params={"number": 2, "size": 128})
    py_keys = keys_of(reply)
    check(c_client("SAE_B", "dec", "SAE_A", 16, *py_keys) == py_keys, "Python master, C slave")


@test
def key_handed_out_once():
    """A key fetched by its slave is gone: a second dec_keys answers 400 with a message, by
    either client; a request naming the same key_ID twice is refused before anything moves."""
    code, reply = py("SAE_A", "enc_keys", "SAE_B", params={"number": 2})
    ids = list(keys_of(reply))
    body = {"key_IDs": [{"key_ID": ids[1]}, {"key_ID": ids[1]}]}
    error(*py("SAE_B", "dec_keys", "SAE_A", "POST", body), 400, "requested twice")
    code, reply = py("SAE_B", "dec_keys", "SAE_A", params={"key_ID": ids[0]})
    check(code == 200, f"first: {code} {reply}")
    error(*py("SAE_B", "dec_keys", "SAE_A", params={"key_ID": ids[0]}), 400, "already delivered")
    error(*curl("SAE_B", "dec_keys", "SAE_A", f"?key_ID={ids[0]}"), 400, "already delivered")
    code, reply = curl("SAE_B", "dec_keys", "SAE_A", f"?key_ID={ids[1]}")
    check(code == 200, f"the other key is still there: {code} {reply}")


@test
def third_sae_refused():
    """SAE_C (attached to node B, a real slave of SAE_A for its own keys) asks for SAE_B's keys:
    401, by both clients, and SAE_B still gets them. SAE_X, from the SAEs' CA but attached to no
    node, gets 401 on every call. A made-up key_ID is unknown (400)."""
    code, reply = curl("SAE_A", "enc_keys", "SAE_B", "?number=1")
    ids = list(keys_of(reply))
    body = {"key_IDs": [{"key_ID": ids[0]}]}
    code, reply = py("SAE_C", "dec_keys", "SAE_A", "POST", body)
    check(code == 401 and reply is None, f"requests SAE_C: {code} {reply}")
    code, reply = curl("SAE_C", "dec_keys", "SAE_A", f"?key_ID={ids[0]}")
    check(code == 401, f"curl SAE_C: {code} {reply}")
    for call, q in (("status", ""), ("enc_keys", ""), ("dec_keys", f"?key_ID={ids[0]}")):
        code, reply = curl("SAE_X", call, "SAE_A", q)
        check(code == 401, f"SAE_X {call}: {code} {reply}")
    code, reply = py("SAE_B", "dec_keys", "SAE_A", "POST", body)
    check(code == 200 and list(keys_of(reply)) == ids, f"SAE_B after the refusals: {code}")
    error(*py("SAE_B", "dec_keys", "SAE_A", params={"key_ID": str(uuid.uuid4())}), 400,
          "key_ID unknown")


@test
def bad_requests_400():
    """Every malformed or unsupported request: 400 with {"message", "details"}, by both
    clients; nothing is consumed."""
    cases = [
        ({"number": 1, "extension_mandatory": [{"x": 1}]}, "extension_mandatory"),
        ({"additional_slave_SAE_IDs": ["SAE_C"]}, "additional_slave_SAE_IDs"),
        ({"size": 100}, "size is not valid"),
        ({"size": 512}, "size is not valid"),
        ({"number": 17}, "number is not in the allowed range"),
        ({"number": "2"}, "number and size must be integers"),
        ({"colour": "blue"}, "unknown field"),
    ]
    for body, text in cases:
        for client in (py, curl):
            code, reply = (py("SAE_A", "enc_keys", "SAE_B", "POST", body) if client is py
                           else curl("SAE_A", "enc_keys", "SAE_B", body=body))
            error(code, reply, 400, text)
            check(isinstance(reply.get("details"), list), f"details: {reply}")
    error(*curl("SAE_A", "enc_keys", "SAE_B", "?number=x"), 400, "integers")
    error(*curl("SAE_A", "enc_keys", "SAE_B", "?colour=1"), 400, "only number and size")
    error(*py("SAE_A", "enc_keys", "SAE_Q"), 400, "unknown SAE ID")
    error(*py("SAE_A", "status", "SAE_A"), 400, "attached to this node")
    error(*py("SAE_B", "dec_keys", "SAE_A", "POST", {"key_IDs": [{"key_ID": "nope"}]}), 400,
          "key_ID UUID")
    error(*py("SAE_B", "dec_keys", "SAE_A", "POST", {"key_IDs": []}), 400, "non-empty")
    error(*py("SAE_B", "dec_keys", "SAE_A"), 400, "needs a key_ID")
    kw = {"cert": (f"{WORK}/SAE_A.crt", f"{WORK}/SAE_A.key"), "verify": f"{WORK}/saeca.crt",
          "timeout": 30}
    check(requests.get(url("A", "SAE_B", "keys"), **kw).status_code == 404, "unknown call: 404")
    check(requests.get(f"https://127.0.0.1:{P['eA']}/api/v2/keys/SAE_B/status",
                       **kw).status_code == 404, "another path: 404")
    check(requests.post(url("A", "SAE_B", "status"), data="{}", **kw).status_code == 405,
          "status by POST: 405")
    check(requests.put(url("A", "SAE_B", "enc_keys"), data="{}", **kw).status_code in (405, 501),
          "PUT: refused")
    error(*py("SAE_A", "enc_keys", "SAE_B", "POST", None), 400, "not a JSON object")
    r = requests.post(url("A", "SAE_B", "enc_keys"), data="{}", **kw)
    error(r.status_code, r.json(), 400, "Content-Type: application/json")
    r = requests.post(url("A", "SAE_B", "enc_keys"), data="{not json",
                      headers={"Content-Type": "application/json"},
                      cert=(f"{WORK}/SAE_A.crt", f"{WORK}/SAE_A.key"),
                      verify=f"{WORK}/saeca.crt", timeout=30)
    error(r.status_code, r.json(), 400, "not a JSON object")


@test
def no_key_503():
    """A pair whose stream cannot open (SAE_GHOST is configured at A as B's, but B does not
    announce it): A does not even try to open it; enc_keys answers 503 with a message saying
    why, by both clients, and status still answers."""
    for code, reply in (py("SAE_A", "enc_keys", "SAE_GHOST"),
                        curl("SAE_A", "enc_keys", "SAE_GHOST")):
        error(code, reply, 503, "not open yet")
        # A never announced a stream for it: B has not announced SAE_GHOST
        check("has not announced" in reply["details"][0]["message"], f"details: {reply}")
    code, st = py("SAE_A", "status", "SAE_GHOST")
    check(code == 200 and st["stored_key_count"] == 0, f"status: {code} {st}")


def pairs_ready(deadline_s=60):
    pairs = [("SAE_A", "SAE_B"), ("SAE_A", "SAE_C"), ("SAE_B", "SAE_A"), ("SAE_C", "SAE_A")]
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        try:
            if all(py(m, "status", s)[1].get("stored_key_count", 0) > 0 for m, s in pairs):
                return True
        except requests.RequestException:
            pass
        time.sleep(0.3)
    return False


@test
def peer_restart():
    """Node B restarts (memory store): it holds none of its pairs' streams, so it tells A to
    close its ends (once A is heard); A sees them closed by the peer and both open them anew:
    keys agree again. A key handed to SAE_A before the restart and not fetched by SAE_B is gone
    with B's memory: dec_keys answers 400."""
    code, reply = py("SAE_A", "enc_keys", "SAE_B")
    old = list(keys_of(reply))
    check(R.stop("B") == 0, "B stopped cleanly")
    R.start("B", [f"{BIN}/hykexd", "-c", f"{WORK}/B.json"], f"{WORK}/B.log", cwd=WORK)
    check(pairs_ready(), "the pairs did not open again after B's restart")
    for m, s in (("SAE_A", "SAE_B"), ("SAE_C", "SAE_A")):
        code, reply = py(m, "enc_keys", s, params={"number": 2})
        master = keys_of(reply)
        code2, reply2 = curl(s, "dec_keys", m, body={"key_IDs": [{"key_ID": i} for i in master]})
        check(code == 200 and code2 == 200 and keys_of(reply2) == master, f"{m}->{s}: {reply2}")
    error(*py("SAE_B", "dec_keys", "SAE_A", params={"key_ID": old[0]}), 400, "key_ID unknown")
    check("closed (by the peer)" in open(f"{WORK}/A.log").read(), "A reopens the pairs B lost")


def tls_client(version_max=None, cert=True):
    ctx = ssl.create_default_context(cafile=f"{WORK}/saeca.crt")
    if version_max is not None:
        ctx.maximum_version = version_max
    if cert:
        ctx.load_cert_chain(f"{WORK}/SAE_A.crt", f"{WORK}/SAE_A.key")
    return ctx


def raw_status(ctx):
    """A status request over ctx; the HTTP status line, or the exception that ended it."""
    try:
        with socket.create_connection(("127.0.0.1", P["eA"]), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                t.sendall(b"GET /api/v1/keys/SAE_B/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Connection: close\r\n\r\n")
                data = t.recv(4096)
                if not data:
                    return ConnectionError("closed without a reply")
                return data.split(b"\r\n")[0].decode()
    except (ssl.SSLError, OSError) as e:
        return e


@test
def tls_policy():
    """TLS 1.2 is refused (Python and curl), a client without a certificate is refused, TLS
    1.3 with a certificate works; the server prefers X25519MLKEM768 (OpenSSL 3.5 s_client)."""
    check(raw_status(tls_client()) == "HTTP/1.1 200 OK", "TLS 1.3 with a certificate")
    r12 = raw_status(tls_client(ssl.TLSVersion.TLSv1_2))
    check(isinstance(r12, ssl.SSLError), f"TLS 1.2 should be refused: {r12}")
    none = raw_status(tls_client(cert=False))
    check(isinstance(none, Exception), f"no client certificate should be refused: {none}")
    r = subprocess.run(["curl", "-sS", "--tls-max", "1.2", "--cacert", f"{WORK}/saeca.crt",
                        "--cert", f"{WORK}/SAE_A.crt", "--key", f"{WORK}/SAE_A.key",
                        url("A", "SAE_B", "status")], capture_output=True, text=True, timeout=30)
    check(r.returncode != 0, f"curl TLS 1.2: {r.returncode} {r.stdout}")
    r = subprocess.run(["curl", "-sS", "--cacert", f"{WORK}/saeca.crt",
                        url("A", "SAE_B", "status")], capture_output=True, text=True, timeout=30)
    check(r.returncode != 0, f"curl without a certificate: {r.returncode} {r.stdout}")
    if OPENSSL35 is None:
        raise Skip("no openssl command for the group check")
    v = subprocess.run([OPENSSL35, "version"], capture_output=True, text=True).stdout
    if not v.startswith("OpenSSL 3.5") and not v.startswith("OpenSSL 3.6"):
        raise Skip(f"openssl command is {v.strip()}: no X25519MLKEM768")
    r = subprocess.run([OPENSSL35, "s_client", "-connect", f"127.0.0.1:{P['eA']}", "-groups",
                        "X25519MLKEM768:X25519", "-cert", f"{WORK}/SAE_A.crt", "-key",
                        f"{WORK}/SAE_A.key", "-CAfile", f"{WORK}/saeca.crt", "-brief"],
                       input="", capture_output=True, text=True, timeout=30)
    check("X25519MLKEM768" in r.stderr + r.stdout, f"group: {r.stderr}")


R.run(setup=setup)

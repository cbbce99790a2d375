#!/usr/bin/env python3
"""hykexd's ETSI 014 keys across restarts (docs/etsi014.md "Restarts").

Usage: etsi014_restart_test.py BIN_DIR REPO_ROOT
Two nodes (A with SAE_A, B with SAE_B), both with a durable store (state_dir), and the
simulator's ETSI 004 KMEs. SAE_A takes keys at A; one node restarts (cleanly, or killed with
SIGKILL); SAE_B fetches the keys it had not fetched yet at B and gets the same bytes, while a key
it fetched before the restart is still refused. Ends with "N passed, M failed, K skipped".
"""
import base64
import json
import os
import signal
import subprocess
import sys
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import etsi014_net as net  # noqa: E402
from hxtest import Runner, check, free_port  # noqa: E402

BIN, ROOT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
R = Runner("hykex-etsi014r-")
test = R.test
WORK = R.work
P = {k: free_port() for k in ["kA", "kB", "apiA", "apiB", "peerA", "peerB", "eA", "eB"]}
NODE_OF = {"SAE_A": "A", "SAE_B": "B", "SAE_D": "B"}
# api.etsi014.pairs: SAE_B -> SAE_A has its own method and sources at both nodes; SAE_A ->
# SAE_D has them at A only (B keeps the defaults), so B refuses to join that pair's stream.
OWN = {"hybridization": "kmac", "key_sources": "ML-KEM-768,X25519"}
PAIRS = {"A": [dict(master="SAE_B", slave="SAE_A", **OWN), dict(master="SAE_A", slave="SAE_D",
                                                                  **OWN)],
         "B": [dict(master="SAE_B", slave="SAE_A", **OWN)]}


def streams(node):
    """The node's streams as hykex status --json shows them."""
    r = subprocess.run([f"{BIN}/hykex", "status", "--json", "--address",
                        f"127.0.0.1:{P['api' + node]}"], capture_output=True, text=True,
                       timeout=30)
    check(r.returncode == 0, f"hykex status: {r.stderr}")
    return json.loads(r.stdout)["streams"]


def py(sae, call, other, params=None, body=None):
    """(status, JSON body or None) of a call by SAE sae at its node."""
    r = requests.request("POST" if body is not None else "GET",
                         f"https://127.0.0.1:{P['e' + NODE_OF[sae]]}/api/v1/keys/{other}/{call}",
                         params=params, data=None if body is None else json.dumps(body),
                         headers={"Content-Type": "application/json"},
                         cert=(f"{WORK}/{sae}.crt", f"{WORK}/{sae}.key"),
                         verify=f"{WORK}/saeca.crt", timeout=30)
    return r.status_code, (r.json() if r.content else None)


def keys_of(reply):
    check(isinstance(reply, dict) and isinstance(reply.get("keys"), list), f"container: {reply}")
    return {k["key_ID"]: base64.b64decode(k["key"]) for k in reply["keys"]}


def start(n):
    R.start(n, [f"{BIN}/hykexd", "-c", f"{WORK}/{n}.json"], f"{WORK}/{n}.log", cwd=WORK)


def pairs_ready(deadline_s=60):
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        try:
            if all(py(m, "status", s)[1].get("stored_key_count", 0) > 0
                   for m, s in (("SAE_A", "SAE_B"), ("SAE_B", "SAE_A"))):
                return True
        except (requests.RequestException, AttributeError):
            pass
        time.sleep(0.3)
    return False


def dec(ids, deadline_s=30):
    """dec_keys at B for ids, retried while the pair is not open again (503)."""
    deadline = time.time() + deadline_s
    while True:
        code, reply = py("SAE_B", "dec_keys", "SAE_A", body={"key_IDs": [{"key_ID": i}
                                                                          for i in ids]})
        if code != 503 or time.time() > deadline:
            return code, reply
        time.sleep(0.3)


def setup():
    net.make_pki(WORK, ROOT, ["SAE_A", "SAE_B", "SAE_D"])
    net.write(f"{WORK}/net.json", net.sim_net(WORK, P))
    R.start("sim", [f"{BIN}/hykex-qkdsim", "-c", f"{WORK}/net.json", "--log-level", "warn"],
            f"{WORK}/sim.log", exit_ok=None)
    for n in "AB":
        c = net.node_config(n, P, ["SAE_A"] if n == "A" else ["SAE_B", "SAE_D"], {},
                            pairs=PAIRS[n])
        c["state_dir"] = f"{WORK}/state{n}"
        net.write(f"{WORK}/{n}.json", c)
        start(n)
    if not pairs_ready():
        raise RuntimeError("the SAE pairs' streams did not open")


def restart_case(node, sig):
    """SAE_A takes 3 keys, SAE_B fetches the first; node restarts (sig: SIGTERM or SIGKILL);
    SAE_B gets the other two, the same bytes, and the first is still refused."""
    code, reply = py("SAE_A", "enc_keys", "SAE_B", params={"number": 3})
    check(code == 200, f"enc_keys: {code} {reply}")
    master = keys_of(reply)
    ids = list(master)
    code, reply = py("SAE_B", "dec_keys", "SAE_A", params={"key_ID": ids[0]})
    check(code == 200 and keys_of(reply) == {ids[0]: master[ids[0]]}, f"before: {reply}")
    if sig == signal.SIGTERM:
        # a keep-alive SAE connection open at the stop: freed, not leaked (LeakSanitizer)
        held = requests.Session()
        sae = "SAE_A" if node == "A" else "SAE_B"
        r = held.get(f"https://127.0.0.1:{P['e' + node]}/api/v1/keys/"
                     f"{'SAE_B' if node == 'A' else 'SAE_A'}/status",
                     cert=(f"{WORK}/{sae}.crt", f"{WORK}/{sae}.key"),
                     verify=f"{WORK}/saeca.crt", timeout=30)
        check(r.status_code == 200, f"status on a kept connection: {r.status_code}")
        check(R.stop(node) == 0, f"{node} stopped cleanly")
        held.close()
    else:
        R.procs[node].send_signal(sig)
        R.procs[node].wait()
    start(node)
    check(pairs_ready(), f"the pairs did not open again after {node}'s restart")
    code, reply = dec(ids[1:])
    check(code == 200, f"dec_keys after {node}'s restart: {code} {reply}")
    check(keys_of(reply) == {i: master[i] for i in ids[1:]}, "the same keys after the restart")
    code, reply = py("SAE_B", "dec_keys", "SAE_A", params={"key_ID": ids[0]})
    check(code == 400 and "already delivered" in reply.get("message", ""),
          f"a key fetched before the restart is refused: {code} {reply}")
    code, reply = py("SAE_B", "dec_keys", "SAE_A", params={"key_ID": ids[1]})
    check(code == 400 and "already delivered" in reply.get("message", ""),
          f"and one fetched after it: {code} {reply}")
    # the pair goes on with new keys in both directions
    for m, s in (("SAE_A", "SAE_B"), ("SAE_B", "SAE_A")):
        code, reply = py(m, "enc_keys", s, params={"number": 2})
        check(code == 200, f"{m}->{s} enc_keys after the restart: {code} {reply}")
        got = keys_of(reply)
        check(not set(got) & set(ids) and not set(got.values()) & set(master.values()),
              f"{m}->{s}: a key or key_ID of before the restart handed out again")
        code, reply = py(s, "dec_keys", m, body={"key_IDs": [{"key_ID": i} for i in got]})
        check(code == 200 and keys_of(reply) == got, f"{m}->{s} after the restart: {reply}")


@test
def slave_node_restarts():
    """The slave's node B stops cleanly and starts again: its restored pair stream and key-ID
    key (from the store) serve the key_IDs SAE_A received before."""
    restart_case("B", signal.SIGTERM)


@test
def master_node_killed():
    """The master's node A is killed (SIGKILL) and started again: B's pair goes on (A kept its
    stream and key-ID key), and SAE_B gets the keys SAE_A received before the crash."""
    restart_case("A", signal.SIGKILL)
    check("a pair's stream was closed" not in open(f"{WORK}/B.log").read(),
          "B kept its ends of the pairs (A restarted with its store)")


@test
def slave_node_killed():
    """The slave's node B is killed (SIGKILL) and started again."""
    restart_case("B", signal.SIGKILL)


@test
def pair_method_override():
    """api.etsi014.pairs: SAE_B -> SAE_A runs with its own method and sources at both nodes (the
    other pairs with the defaults), and its keys agree; SAE_A -> SAE_D, whose method only A
    changed, never opens: B refuses to join and says why (503 at both ends); --check-config
    shows the entries and refuses bad ones."""
    for n in "AB":
        got = sorted((s["role"], s["method"].lower(), tuple(s["sources"])) for s in streams(n)
                     if s["state"] == "producing")
        own = [g for g in got if tuple(g[2]) == ("ML-KEM-768", "X25519")]
        check(len(own) == 1 and "kmac" in own[0][1] and
              own[0][0] == ("initiator" if n == "B" else "responder"), f"{n}: {got}")
        check(any("QKD" in g[2] and "hkdf" in g[1] for g in got), f"{n} defaults: {got}")
    code, reply = py("SAE_B", "enc_keys", "SAE_A", params={"number": 2})
    got = keys_of(reply)
    code2, reply2 = py("SAE_A", "dec_keys", "SAE_B", body={"key_IDs": [{"key_ID": i}
                                                                        for i in got]})
    check(code == 200 and code2 == 200 and keys_of(reply2) == got, f"B->A: {reply2}")
    deadline, reply = time.time() + 30, None
    while time.time() < deadline:
        code, reply = py("SAE_D", "dec_keys", "SAE_A",
                         params={"key_ID": "3b7f2b4e-0f0e-4c55-9a43-6f4c0f2d8e11"})
        check(code == 503, f"SAE_A -> SAE_D must not open: {code} {reply}")
        if "must agree at both nodes" in json.dumps(reply):
            break
        time.sleep(0.5)
    check("must agree at both nodes" in json.dumps(reply), f"B says why: {reply}")
    code, reply = py("SAE_A", "enc_keys", "SAE_D")
    check(code == 503, f"A has no key for SAE_D: {code} {reply}")
    r = subprocess.run([f"{BIN}/hykexd", "--check-config", "-c", f"{WORK}/A.json"],
                       capture_output=True, text=True, cwd=WORK, timeout=30)
    check(json.loads(r.stdout)["api"]["etsi014"]["pairs"] == PAIRS["A"], f"shown: {r.stdout}")
    refusals = [
        ([{"master": "SAE_A", "slave": "SAE_B", "key_sources": "QKD,Kyber512"}], "Kyber512"),
        ([{"master": "SAE_A", "slave": "SAE_B", "key_sources": "QKD"}], "pairs[0]"),
        ([{"master": "SAE_A", "slave": "SAE_B"}], "give hybridization, key_sources or both"),
        ([{"master": "SAE_X", "slave": "SAE_B", "hybridization": "kmac"}], "one SAE of the pair"),
        ([{"master": "SAE_A", "slave": "SAE_A", "hybridization": "kmac"}], "two SAE ids"),
        ([{"master": "SAE_A", "hybridization": "kmac"}], "'slave' missing"),
        ([{"master": "SAE_A", "slave": "SAE_B", "method": "kmac"}], "unknown key 'method'"),
        ([dict(master="SAE_A", slave="SAE_B", **OWN)] * 2, "listed twice"),
        ({"SAE_A": "SAE_B"}, "expected a list"),
    ]
    for i, (pairs, text) in enumerate(refusals):
        c = json.load(open(f"{WORK}/A.json"))
        c["api"]["etsi014"]["pairs"] = pairs
        net.write(f"{WORK}/badpairs{i}.json", c)
        r = subprocess.run([f"{BIN}/hykexd", "--check-config", "-c", f"{WORK}/badpairs{i}.json"],
                           capture_output=True, text=True, cwd=WORK, timeout=30)
        check(r.returncode == 1 and text in r.stderr and "api.etsi014.pairs" in r.stderr,
              f"{pairs}: {r.returncode} {r.stderr}")


R.run(setup=setup)

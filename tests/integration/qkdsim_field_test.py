#!/usr/bin/env python3
"""The simulator meets the field: quirk profiles of other KMEs, and third-party clients.

Usage: qkdsim_field_test.py HYKEX_QKDSIM REPO_ROOT
Starts hykex-qkdsim with KMEs in each quirk profile (docs/qkdsim.md "Profiles") and checks that
each reproduces the behaviour it names, plus the ETSI 014 fixes found with third-party clients
(error details naming the field, several key_ID in one GET dec_keys, JSON content type) and
QUBIP's URIs without a node UUID. Ends with a line "N passed, M failed, K skipped" (the runner:
hxtest.Runner).
"""
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hxtest import Runner, check, free_port, next_json  # noqa: E402

SIM, ROOT = sys.argv[1], sys.argv[2]
NODES = {k: f"{k * 8}-{k * 4}-{k * 4}-{k * 4}-{k * 12}" for k in "abcdef"}
NODES.update({"g": "77777777-7777-4777-8777-777777777777", "h": "88888888-8888-4888-8888-888888888888"})
QOS = {"key_chunk_size": 32, "max_bps": 0, "min_bps": 0, "jitter": 0, "priority": 0,
       "timeout": 0, "ttl": 0, "metadata_mimetype": "application/json"}
R = Runner("hykex-qkdsim-field-")
test = R.test
WORK = R.work
PKI, CTL = f"{WORK}/pki", f"{WORK}/ctl.sock"
P = {n: free_port() for n in ["a", "b", "c", "d", "e_014", "f_014", "g", "h"]}


def uri(node, app="app"):
    return f"qkd://{app}@{NODES[node]}"


def call(port, command, **data):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(json.dumps({"command": command, "data": data}).encode())
        obj, _, _ = next_json(s, b"")
        return obj


def ctl(*args):
    r = subprocess.run([SIM, "ctl", CTL] + list(args), capture_output=True, text=True, timeout=10)
    return json.loads(r.stdout)


def curl(port, path, cert, data=None, content_type="application/json", get_args=None):
    cmd = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--cacert", f"{PKI}/ca/ca.crt",
           "--cert", f"{PKI}/{cert}/node.crt", "--key", f"{PKI}/{cert}/node.key",
           f"https://127.0.0.1:{port}{path}"]
    if data is not None:
        cmd += ["-H", f"Content-Type: {content_type}", "--data", data if isinstance(data, str)
                else json.dumps(data)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout
    body, _, code = out.rpartition("\n")
    return int(code), (json.loads(body) if body.strip() else None)


def setup():
    def run(*a):
        subprocess.run(list(a), check=True, capture_output=True)
    run(f"{ROOT}/certificates/create_ca.sh", "--classic", "--out", f"{PKI}/ca")
    for name, extra in [("KME_E", ["--ip", "127.0.0.1"]), ("KME_F", ["--ip", "127.0.0.1"]),
                        ("SAE_E", []), ("SAE_F", [])]:
        run(f"{ROOT}/certificates/generate_cert.sh", "--classic", "--name", name,
            "--ca", f"{PKI}/ca", "--out", f"{PKI}/{name}", *extra)
    tls = lambda n: {"cert": f"{PKI}/{n}/node.crt", "key": f"{PKI}/{n}/node.key",  # noqa: E731
                     "ca": f"{PKI}/ca/ca.crt"}
    net = {
        "kmes": [
            {"id": "KME_A", "node": NODES["a"], "profile": "qubip",
             "etsi004_json": {"port": P["a"]}},
            {"id": "KME_B", "node": NODES["b"], "etsi004_json": {"port": P["b"]}},
            {"id": "KME_C", "node": NODES["c"], "profile": ["own-ids"],
             "etsi004_json": {"port": P["c"]}},
            {"id": "KME_D", "node": NODES["d"], "profile": "own-ids",
             "etsi004_json": {"port": P["d"]}},
            {"id": "KME_E", "node": NODES["e"], "saes": ["SAE_E"],
             "profile": ["try-later-014", "last-batch-014"],
             "etsi014": dict(port=P["e_014"], **tls("KME_E"))},
            {"id": "KME_F", "node": NODES["f"], "saes": ["SAE_F"],
             "etsi014": dict(port=P["f_014"], **tls("KME_F"))},
            {"id": "KME_G", "node": NODES["g"], "profile": "opaque-ids",
             "etsi004_json": {"port": P["g"]}},
            {"id": "KME_H", "node": NODES["h"], "profile": "opaque-ids",
             "etsi004_json": {"port": P["h"]}},
        ],
        "links": [
            # 256 bits a second, a pool of two 32-byte keys: "not made yet" is easy to reach
            {"id": "ab", "kmes": ["KME_A", "KME_B"], "rate_bps": 256, "capacity_bits": 512},
            {"id": "cd", "kmes": ["KME_C", "KME_D"], "rate_bps": 0, "capacity_bits": 1 << 20},
            {"id": "ef", "kmes": ["KME_E", "KME_F"], "rate_bps": 256, "capacity_bits": 1024},
            {"id": "gh", "kmes": ["KME_G", "KME_H"], "rate_bps": 0},
        ],
    }
    with open(f"{WORK}/network.json", "w") as f:
        json.dump(net, f)
    R.start("sim", [SIM, "-c", f"{WORK}/network.json", "--ctl", CTL, "--log-level", "warn"],
            f"{WORK}/sim.log")


# ---- cases ----

@test
def strict_qos_status_6_then_7_with_a_counter_proposal_that_is_accepted():
    r = call(P["a"], "OPEN_CONNECT", source=uri("a"), destination=uri("b"), qos=QOS)
    check(r["status"] == 6 and "timeout 0" in r["message"], f"timeout 0: {r}")
    q = dict(QOS, timeout=2000)
    r = call(P["a"], "OPEN_CONNECT", source=uri("a"), destination=uri("b"), qos=q)
    check(r["status"] == 7 and r["qos"]["min_bps"] > 0 and r["qos"]["max_bps"] > 0
          and r["qos"]["jitter"] > 0, f"zero min_bps/max_bps/jitter: {r}")
    counter = r["qos"]
    # the same KME's own counter-proposal is accepted; B (standard) opens the other end
    b = call(P["b"], "OPEN_CONNECT", source=uri("a"), destination=uri("b"), qos=QOS)
    check(b["status"] == 1, f"B opens first: {b}")
    r = call(P["a"], "OPEN_CONNECT", source=uri("a"), destination=uri("b"), qos=counter,
             key_stream_id=b["key_stream_id"])
    check(r["status"] == 0 and r["key_stream_id"] == b["key_stream_id"], f"counter-proposal: {r}")


@test
def zero_keys_for_keys_not_made_yet_then_the_real_key_at_the_same_index():
    b = call(P["b"], "OPEN_CONNECT", source=uri("a"), destination=uri("b"), qos=QOS)
    ks = b["key_stream_id"]
    r = call(P["a"], "OPEN_CONNECT", source=uri("a"), destination=uri("b"),
             qos=dict(QOS, timeout=2000, min_bps=1, max_bps=256, jitter=10), key_stream_id=ks)
    check(r["status"] == 0, f"open: {r}")
    ctl("drain", "ab")
    r = call(P["a"], "GET_KEY", key_stream_id=ks, index=0)
    check(r["status"] == 0 and r["key_buffer"] == [0] * 32, f"not made yet: {r}")
    time.sleep(1.3)  # 256 bits/s: one 32-byte key made again
    r = call(P["a"], "GET_KEY", key_stream_id=ks, index=0)
    check(r["status"] == 0 and any(r["key_buffer"]), f"the same index, made: {r}")
    peer = call(P["b"], "GET_KEY", key_stream_id=ks, index=0)
    check(peer["status"] == 0 and peer["key_buffer"] == r["key_buffer"], "both ends agree")


@test
def own_ids_each_kme_knows_only_its_own_id():
    c = call(P["c"], "OPEN_CONNECT", source=uri("c"), destination=uri("d"), qos=QOS)
    check(c["status"] == 1, f"C opens: {c}")
    d = call(P["d"], "OPEN_CONNECT", source=uri("c"), destination=uri("d"), qos=QOS)
    check(d["status"] == 0 and d["key_stream_id"] != c["key_stream_id"], f"D's own id: {d}")
    kc = call(P["c"], "GET_KEY", key_stream_id=c["key_stream_id"], index=5)
    kd = call(P["d"], "GET_KEY", key_stream_id=d["key_stream_id"], index=5)
    check(kc["status"] == 0 and kd["status"] == 0 and kc["key_buffer"] == kd["key_buffer"],
          f"same key under two ids: {kc} {kd}")
    wrong = call(P["d"], "GET_KEY", key_stream_id=c["key_stream_id"], index=6)
    check(wrong["status"] == 4, f"D does not know C's id: {wrong}")


@test
def opaque_ids_are_no_uuids_and_come_back():
    """A KME in the opaque-ids profile makes stream ids that are no UUIDs ("ks-" and 32 hex
    digits), takes them back in OPEN_CONNECT, GET_KEY and CLOSE, and knows no other; a standard
    KME still refuses a key_stream_id that is not a UUID."""
    g = call(P["g"], "OPEN_CONNECT", source=uri("g"), destination=uri("h"), qos=QOS)
    ks = g.get("key_stream_id", "")
    check(g["status"] == 1 and ks.startswith("ks-") and len(ks) == 35 and "-" not in ks[3:],
          f"G's id: {g}")
    h = call(P["h"], "OPEN_CONNECT", source=uri("g"), destination=uri("h"), qos=QOS,
             key_stream_id=ks)
    check(h["status"] == 0 and h["key_stream_id"] == ks, f"H joins by it: {h}")
    kg = call(P["g"], "GET_KEY", key_stream_id=ks, index=3)
    kh = call(P["h"], "GET_KEY", key_stream_id=ks, index=3)
    check(kg["status"] == 0 and kg["key_buffer"] == kh.get("key_buffer"), f"keys: {kg} {kh}")
    made_up = call(P["g"], "GET_KEY", key_stream_id="ks-" + "0" * 31 + "z", index=0)
    check(made_up["status"] == 4 and "not given out" in made_up["message"], f"made up: {made_up}")
    spaced = call(P["g"], "GET_KEY", key_stream_id="ks 1", index=0)
    check(spaced["status"] == 4 and "printable" in spaced["message"], f"a space: {spaced}")
    std = call(P["b"], "GET_KEY", key_stream_id=ks, index=0)
    check(std["status"] == 4 and "not a UUID" in std["message"], f"standard KME: {std}")
    for port in (P["g"], P["h"]):
        c = call(port, "CLOSE", key_stream_id=ks)
        check(c["status"] == 0, f"CLOSE: {c}")


@test
def uris_without_a_node_on_a_kme_with_one_link():
    q = dict(QOS)
    c = call(P["c"], "OPEN_CONNECT", source="client://localhost", destination="server://localhost",
             qos=q)
    check(c["status"] == 1, f"client://localhost at C: {c}")
    d = call(P["d"], "OPEN_CONNECT", source="client://localhost",
             destination="server://localhost", qos=q)
    check(d["status"] == 0, f"the other end (own ids, found by URIs): {d}")
    kc = call(P["c"], "GET_KEY", key_stream_id=c["key_stream_id"], index=0)
    kd = call(P["d"], "GET_KEY", key_stream_id=d["key_stream_id"], index=0)
    check(kc["key_buffer"] == kd["key_buffer"], "keys agree")
    r = call(P["c"], "OPEN_CONNECT", source="localhost", destination="server://localhost", qos=q)
    check(r["status"] == 4, f"no scheme is still refused: {r}")


@test
def etsi014_error_details_name_the_field():
    for body, field in [({"number": "2"}, "number"), ({"size": -8}, "size"),
                        ({"extension_mandatory": [{"x": 1}]}, "extension_mandatory"),
                        ({"additional_slave_SAE_IDs": "SAE_Q"}, "additional_slave_SAE_IDs")]:
        for _ in range(3):  # a freed field name read back would differ from run to run
            code, err = curl(P["e_014"], "/api/v1/keys/SAE_F/enc_keys", "SAE_E", body)
            check(code == 400 and err["details"] == [{"message": field}],
                  f"{body}: {code} {err}")


@test
def etsi014_post_must_be_json():
    code, err = curl(P["f_014"], "/api/v1/keys/SAE_E/enc_keys", "SAE_F", '{"number": 1}',
                     content_type="text/plain")
    check(code == 400 and "application/json" in err["message"], f"text/plain: {code} {err}")


@test
def etsi014_get_dec_keys_with_several_key_ids():
    code, enc = curl(P["f_014"], "/api/v1/keys/SAE_E/enc_keys?number=2&size=128", "SAE_F")
    check(code == 200 and len(enc["keys"]) == 2, f"enc_keys: {code} {enc}")
    ids = "&".join(f"key_ID={k['key_ID']}" for k in enc["keys"])
    code, dec = curl(P["e_014"], f"/api/v1/keys/SAE_F/dec_keys?{ids}", "SAE_E")
    check(code == 200 and dec["keys"] == enc["keys"], f"both keys: {code} {dec}")
    code, err = curl(P["e_014"], "/api/v1/keys/SAE_F/dec_keys?key_ID=nope", "SAE_E")
    check(code == 400, f"a bad key_ID: {code} {err}")


@test
def etsi014_try_later_and_last_batch_only():
    code, first = curl(P["e_014"], "/api/v1/keys/SAE_F/enc_keys?number=1&size=256", "SAE_E")
    check(code == 200, f"first batch: {code} {first}")
    time.sleep(1.1)
    code, second = curl(P["e_014"], "/api/v1/keys/SAE_F/enc_keys?number=1&size=256", "SAE_E")
    check(code == 200, f"second batch: {code} {second}")
    code, err = curl(P["f_014"], "/api/v1/keys/SAE_E/dec_keys", "SAE_F",
                     {"key_IDs": [{"key_ID": first["keys"][0]["key_ID"]}]})
    check(code == 400 and "not found" in err["message"], f"earlier batch forgotten: {code} {err}")
    code, dec = curl(P["f_014"], "/api/v1/keys/SAE_E/dec_keys", "SAE_F",
                     {"key_IDs": [{"key_ID": second["keys"][0]["key_ID"]}]})
    check(code == 200 and dec["keys"] == second["keys"], f"last batch: {code}")
    ctl("drain", "ef")
    code, err = curl(P["e_014"], "/api/v1/keys/SAE_F/enc_keys?number=4&size=256", "SAE_E")
    check(code == 400 and "try again later" in err["message"], f"empty pool: {code} {err}")
    code, err = curl(P["f_014"], "/api/v1/keys/SAE_E/enc_keys?number=4&size=256", "SAE_F")
    check(code == 503, f"a standard KME answers 503: {code} {err}")


@test
def check_config_prints_the_profiles():
    out = subprocess.run([SIM, "--check-config", "-c", f"{WORK}/network.json"],
                         capture_output=True, text=True, timeout=10).stdout
    check("kme KME_A " in out and " profile strict-qos,zero-keys\n" in out
          and " profile own-ids\n" in out and " profile try-later-014,last-batch-014" in out
          and " profile opaque-ids\n" in out,
          out[:600])
    bad = dict(json.load(open(f"{WORK}/network.json")))
    bad["kmes"][0]["profile"] = "quirky"
    with open(f"{WORK}/bad.json", "w") as f:
        json.dump(bad, f)
    r = subprocess.run([SIM, "--check-config", "-c", f"{WORK}/bad.json"], capture_output=True,
                       text=True, timeout=10)
    check(r.returncode != 0 and "profile" in r.stderr and "qubip" in r.stderr, r.stderr)


def the_simulator_survived():
    check(R.procs["sim"].poll() is None, "the simulator died")


R.run(setup, finish=the_simulator_survived)

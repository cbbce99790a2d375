#!/usr/bin/env bash
# Usage: crypto_cli.sh HYKEX VECTORS_DIR
# Every vector file through `hykex kdf` and `hykex combine`, byte for byte, and the command
# line's refusals: bad arguments exit 2 with a message on stderr.
set -euo pipefail
hykex=$1
vec=$2
export HYKEX=$hykex VEC=$vec
python3 - <<'PY'
import json, os, subprocess, sys
hykex, vec = os.environ["HYKEX"], os.environ["VEC"]
fails = total = 0

def run(args, expected, what):
    global fails, total
    total += 1
    r = subprocess.run([hykex] + args, capture_output=True, text=True)
    if r.returncode != 0 or r.stdout.strip() != expected:
        fails += 1
        print(f"FAIL {what}: exit {r.returncode}, got {r.stdout.strip()[:64]} {r.stderr.strip()}")

names = {"CatKDF-HKDF-SHA256": "hkdf-sha256", "CatKDF-HKDF-SHA384": "hkdf-sha384",
         "CatKDF-HMAC-SHA256": "sskdf-hmac-sha256", "CatKDF-HMAC-SHA384": "sskdf-hmac-sha384",
         "CatKDF-KMAC128": "sskdf-kmac128", "CatKDF-KMAC256": "sskdf-kmac256"}
for f in ("ts103744-catkdf.json", "rfc5869-hkdf.json"):
    for v in json.load(open(f"{vec}/{f}"))["vectors"]:
        run(["kdf", names.get(v["kdf"], v["kdf"]), "--ikm", v["ikm"], "--salt", v["salt"],
             "--info", v["info"], "--length", str(v["L"])], v["expected"], f"{f} {v.get('cid', '')}")
for v in json.load(open(f"{vec}/ts103744-catkdf-full.json"))["vectors"]:
    run(["combine", v["method"], "--key", v["k1"], "--key", v["k2"], "--label", v["label"],
         "--context", v["context"], "--ma", v["ma"], "--mb", v["mb"], "--length", str(v["L"])],
        v["expected"], f"catkdf full {v['cid']}")
for f in ("reference-combiners.json", "hykex-combiners.json"):
    for v in json.load(open(f"{vec}/{f}"))["vectors"]:
        args = ["combine", v["method"]]
        for k in v["keys"]:
            args += ["--key", k]
        for n in v.get("names", []):
            args += ["--name", n]
        if "stream_id" in v:
            args += ["--stream-id", v["stream_id"], "--position", str(v["position"])]
        if v.get("transcript"):
            args += ["--transcript", v["transcript"]]
        run(args + ["--length", str(v["L"])], v["expected"], f"{f} {v['method']} L={v['L']}")
print(f"vectors through the CLI: {total - fails} of {total} match")
sys.exit(1 if fails else 0)
PY

fail() { echo "FAIL: $*"; exit 1; }
# expect_usage MESSAGE-PATTERN ARGS...: exit status 2 and the pattern on stderr, nothing on stdout.
expect_usage() {
    local pattern=$1 out err rc
    shift
    set +e
    out=$("$hykex" "$@" 2>/tmp/hx-cli-err.$$)
    rc=$?
    set -e
    err=$(cat /tmp/hx-cli-err.$$)
    rm -f /tmp/hx-cli-err.$$
    [ $rc -eq 2 ] || fail "hykex $* exited $rc, not 2 ($err)"
    [ -z "$out" ] || fail "hykex $* printed '$out' on stdout"
    grep -qi -- "$pattern" <<<"$err" || fail "hykex $*: stderr '$err' lacks '$pattern'"
}
K=000102030405060708090a0b0c0d0e0f
expect_usage "odd number of hex digits" kdf hkdf-sha256 --ikm abc --length 16
expect_usage "not hex" kdf hkdf-sha256 --ikm zz --length 16
expect_usage "unknown KDF 'hkdf-md5'" kdf hkdf-md5 --ikm $K --length 16
expect_usage "length must be" kdf hkdf-sha256 --ikm $K --length 0
expect_usage "length must be" kdf hkdf-sha256 --ikm $K --length 65536
expect_usage "length must be" kdf hkdf-sha256 --ikm $K --length 8161
expect_usage "length must be" kdf sskdf-kmac256 --ikm $K --length -1
expect_usage "length must be" kdf sskdf-kmac256 --ikm $K --length 12abc
expect_usage "required" kdf hkdf-sha256 --ikm $K
expect_usage "must not be empty" kdf hkdf-sha256 --ikm "" --length 16
expect_usage "unknown option '--bogus'" kdf hkdf-sha256 --ikm $K --length 16 --bogus 1
expect_usage "needs a value" kdf hkdf-sha256 --ikm $K --length
expect_usage "unknown method 'sha3'" combine sha3 --key $K --key $K --length 16
expect_usage "at least 2 keys" combine hkdf --key $K --length 16
expect_usage "at least 2 keys" combine xoring --length 16
expect_usage "length must be" combine hkdf --key $K --key $K --length 0
expect_usage "length must be" combine xoring --key $K --key $K --length 65536
expect_usage "odd number of hex digits" combine hkdf --key $K --key 123 --length 16
expect_usage "is empty" combine hkdf --key $K --key "" --length 16
expect_usage "not a UUID" combine hkdf --key $K --key $K --length 16 --stream-id nope
expect_usage "position must be" combine hkdf --key $K --key $K --length 16 --position -3
expect_usage "give one per key" combine hkdf --key $K --key $K --name QKD --length 16
expect_usage "catkdf-\* and caskdf-\* only" combine hkdf --key $K --key $K --psk $K --length 16
expect_usage "give one set" combine catkdf --key $K --key $K --label $K --position 1 --length 16
expect_usage "once per --key" combine caskdf --key $K --key $K --label $K --label $K --label $K --length 16
expect_usage "unknown KEM" kem Kyber768 selftest
expect_usage "usage" kem ML-KEM-768
expect_usage "runs must be" kem ML-KEM-768 selftest --runs 0
expect_usage "unknown signature" sig Dilithium3 selftest
echo "refusals: all exit 2 with a message"

# Round trips and sizes, through the command line.
"$hykex" kem ML-KEM-768 selftest --runs 20 | grep -q 'round trips: 20 of 20 agree' || fail "kem selftest"
"$hykex" sig ML-DSA-65 selftest --runs 3 | grep -q 'sign/verify: 3 of 3 valid' || fail "sig selftest"
# Classic McEliece (libmceliece) and sntrup (libntruprime) through the same command.
out=$("$hykex" kem Classic-McEliece-348864 selftest --runs 2) || fail "McEliece selftest: $out"
echo "$out" | grep -q 'public key 261120 bytes, ciphertext 96 bytes' || fail "McEliece sizes: $out"
echo "$out" | grep -q 'round trips: 2 of 2 agree; tampered ciphertexts: all gave a different' \
    || fail "McEliece round trips: $out"
out=$("$hykex" kem sntrup761 selftest --runs 20) || fail "sntrup761 selftest: $out"
echo "$out" | grep -q 'public key 1158 bytes, ciphertext 1039 bytes' || fail "sntrup761 sizes: $out"
echo "$out" | grep -q 'round trips: 20 of 20 agree' || fail "sntrup761 round trips: $out"
expect_usage "Classic-McEliece-348864 Classic-McEliece-348864f" kem HQC-256 selftest
echo "crypto_cli: all checks passed"

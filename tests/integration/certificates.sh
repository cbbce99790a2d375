#!/usr/bin/env bash
# certificates/create_ca.sh and generate_cert.sh: ML-DSA keys, UUID identity, 0600 keys,
# refusal of bad arguments, and a certificate chain OpenSSL verifies.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/scripts/lib.sh"
openssl=$(hx_openssl)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*"; exit 1; }

"$root/certificates/create_ca.sh" --out ca >/dev/null
[ "$(stat -c %a ca/ca.key)" = 600 ] || fail "CA key mode $(stat -c %a ca/ca.key)"
"$openssl" x509 -in ca/ca.crt -noout -text | grep -q 'Signature Algorithm: ML-DSA-65' \
    || fail "CA is not ML-DSA-65"
"$openssl" x509 -in ca/ca.crt -noout -text | grep -q 'CA:TRUE' || fail "CA lacks CA:TRUE"

# A second CA is refused without --force (it would orphan every node certificate).
if "$root/certificates/create_ca.sh" --out ca 2>err.txt; then fail "CA overwritten"; fi
grep -q -- '--force' err.txt || fail "no hint about --force"

u=12345678-9ABC-4def-8123-456789abcdef
"$root/certificates/generate_cert.sh" --uuid "$u" --name Alice --ip 127.0.0.1 --dns alice \
    --out alice >/dev/null
[ "$(stat -c %a alice/node.key)" = 600 ] || fail "node key mode"
[ ! -e alice/ca.key ] || fail "CA key copied to the node"
text=$("$openssl" x509 -in alice/node.crt -noout -text)
grep -q 'URI:urn:uuid:12345678-9abc-4def-8123-456789abcdef' <<<"$text" || fail "UUID SAN missing"
grep -q 'IP Address:127.0.0.1' <<<"$text" || fail "IP SAN missing"
grep -q 'TLS Web Server Authentication, TLS Web Client Authentication' <<<"$text" \
    || fail "extended key usage"
"$openssl" verify -CAfile alice/ca.crt alice/node.crt | grep -q ': OK' || fail "chain"
# One year by default, not ten.
end=$(date -d "$("$openssl" x509 -in alice/node.crt -noout -enddate | cut -d= -f2)" +%s)
[ $((end - $(date +%s))) -le $((366 * 86400)) ] || fail "node certificate longer than a year"

# A live node key is not overwritten without --force (exit 1, the key untouched); with it, it is.
before=$(sha256sum alice/node.key)
if "$root/certificates/generate_cert.sh" --uuid "$u" --out alice >/dev/null 2>err.txt; then
    fail "node key overwritten without --force"
fi
grep -q -- 'alice/node.key exists.*--force' err.txt || fail "refusal does not name the key and --force: $(cat err.txt)"
[ "$(sha256sum alice/node.key)" = "$before" ] || fail "refused run changed the key"
"$root/certificates/generate_cert.sh" --uuid "$u" --out alice --force >/dev/null
[ "$(sha256sum alice/node.key)" != "$before" ] || fail "--force did not replace the key"
[ "$(stat -c %a alice/node.key)" = 600 ] || fail "replaced key mode"

# Other algorithms, and refusals with exit status 2.
"$root/certificates/generate_cert.sh" --uuid "$u" --alg ML-DSA-87 --out bob >/dev/null
"$openssl" x509 -in bob/node.crt -noout -text | grep -q 'Public Key Algorithm: ML-DSA-87' \
    || fail "ML-DSA-87 key"
for args in "--uuid nope --out x" "--uuid $u" "--uuid $u --out x --alg RSA" \
            "--uuid $u --out x --days 5000" "--bogus" "--out x" "--name a/b --out x"; do
    set +e
    # shellcheck disable=SC2086
    "$root/certificates/generate_cert.sh" $args >/dev/null 2>&1
    rc=$?
    set -e
    [ $rc -eq 2 ] || fail "generate_cert.sh $args exited $rc, not 2"
done
set +e
"$root/certificates/generate_cert.sh" --uuid "$u" --out x --ca nowhere >/dev/null 2>&1
rc=$?
set -e
[ $rc -eq 1 ] || fail "missing CA exited $rc"
# --classic: ECDSA P-256 for GnuTLS peers; --name without --uuid: an SAE identity.
"$root/certificates/create_ca.sh" --out ca-ec --classic >/dev/null
"$root/certificates/generate_cert.sh" --name SAE_Alice --classic --ca ca-ec --out sae >/dev/null
text=$("$openssl" x509 -in sae/node.crt -noout -text)
grep -q 'Public Key Algorithm: id-ecPublicKey' <<<"$text" || fail "--classic is not ECDSA"
grep -q 'Subject: CN *= *SAE_Alice' <<<"$text" || fail "SAE common name"
! grep -q 'urn:uuid' <<<"$text" || fail "SAE certificate with a UUID SAN"
"$openssl" verify -CAfile ca-ec/ca.crt sae/node.crt | grep -q ': OK' || fail "classic chain"
echo "certificates: all checks passed"

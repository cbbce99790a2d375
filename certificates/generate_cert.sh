#!/usr/bin/env bash
# Issues a node certificate whose identity is the node's UUID.
#
# Usage: certificates/generate_cert.sh --uuid UUID --out DIR [--ca DIR] [--name CN]
#            [--ip ADDR]... [--dns NAME]... [--alg ML-DSA-65 | --classic] [--days 365] [--force]
#        certificates/generate_cert.sh --name CN --out DIR ...      (no UUID: SAE or KME)
# Writes DIR/node.key (0600), DIR/node.crt and DIR/ca.crt (the CA certificate, not its key).
# An existing DIR/node.key (a live node's key) is replaced only with --force.
#
# The certificate carries SAN URI:urn:uuid:<uuid>, which hykexd checks against its trusted
# peers; --ip / --dns add the addresses the node is reached at. Usable for TLS server and
# client authentication (the peer link is mutual TLS 1.3). --classic makes ECDSA P-256 keys,
# for peers that cannot use ML-DSA yet (GnuTLS-based ETSI 014 servers and clients). Without
# --uuid the identity is the common name (an ETSI 014 SAE id, a KME's server name).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../scripts/lib.sh"

uuid="" out="" ca=ca name="" alg=ML-DSA-65 days=365 force=0
sans=()
while [ $# -gt 0 ]; do
    case "$1" in
        --uuid) uuid=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --ca) ca=$2; shift 2 ;;
        --name) name=$2; shift 2 ;;
        --ip) sans+=("IP:$2"); shift 2 ;;
        --dns) sans+=("DNS:$2"); shift 2 ;;
        --alg) alg=$2; shift 2 ;;
        --classic) alg=EC-P256; shift ;;
        --days) days=$2; shift 2 ;;
        --force) force=1; shift ;;
        -h | --help) sed -n '2,12s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "generate_cert.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
if [ -n "$uuid" ]; then
    [[ $uuid =~ ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$ ]] \
        || { echo "generate_cert.sh: --uuid must be a UUID (8-4-4-4-12 hex digits)" >&2; exit 2; }
    uuid=${uuid,,}
elif [ -z "$name" ]; then
    echo "generate_cert.sh: give --uuid (a node) or --name (an SAE or KME)" >&2
    exit 2
fi
[[ $name =~ ^[A-Za-z0-9_.@:-]*$ ]] \
    || { echo "generate_cert.sh: --name may hold letters, digits and _ . @ : - only" >&2; exit 2; }
[ -n "$out" ] || { echo "generate_cert.sh: --out DIR is required" >&2; exit 2; }
case "$alg" in ML-DSA-44 | ML-DSA-65 | ML-DSA-87 | ED25519 | EC-P256) ;;
    *) echo "generate_cert.sh: --alg must be ML-DSA-44, ML-DSA-65, ML-DSA-87, ED25519 or EC-P256" >&2; exit 2 ;;
esac
[[ $days =~ ^[0-9]+$ ]] && [ "$days" -ge 1 ] && [ "$days" -le 825 ] \
    || { echo "generate_cert.sh: --days must be 1..825" >&2; exit 2; }
[ -f "$ca/ca.key" ] && [ -f "$ca/ca.crt" ] \
    || { echo "generate_cert.sh: no CA in '$ca' (run certificates/create_ca.sh)" >&2; exit 1; }
[ -n "$name" ] || name=$uuid
if [ -e "$out/node.key" ] && [ "$force" != 1 ]; then
    echo "generate_cert.sh: $out/node.key exists (a node's key); use --force to replace it" >&2
    exit 1
fi

openssl=$(hx_openssl)
# genkey OPENSSL ALG FILE: a private key (EC-P256 = ECDSA on P-256, for --classic).
genkey() {
    if [ "$2" = EC-P256 ]; then
        "$1" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$3"
    else
        "$1" genpkey -algorithm "$2" -out "$3"
    fi
}
san=""
[ -z "$uuid" ] || san="URI:urn:uuid:$uuid"
for s in "${sans[@]}"; do san="${san:+$san,}$s"; done

mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077
genkey "$openssl" "$alg" "$work/node.key"
"$openssl" req -new -key "$work/node.key" -out "$work/node.csr" -subj "/CN=$name"
cat >"$work/ext.cnf" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
${san:+subjectAltName=$san}
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
"$openssl" x509 -req -in "$work/node.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" \
    -CAcreateserial -CAserial "$work/ca.srl" -days "$days" -extfile "$work/ext.cnf" \
    -out "$work/node.crt" 2>/dev/null
"$openssl" verify -CAfile "$ca/ca.crt" "$work/node.crt" >/dev/null
mv -f "$work/node.key" "$out/node.key"
chmod 0600 "$out/node.key"
umask 022
install -m 0644 "$work/node.crt" "$out/node.crt"
install -m 0644 "$ca/ca.crt" "$out/ca.crt"
if [ -n "$uuid" ]; then who="urn:uuid:$uuid"; else who="CN=$name"; fi
echo "generate_cert.sh: $alg certificate for $who in $out (key mode 0600), valid $days days"

#!/usr/bin/env python3
"""Known answers for hykex's combiners, computed independently of the C code.

Everything hykex defines itself (the FixedInfo layout, the TS 103 744 mapping, the expansion of
the reference methods beyond 32 bytes) is rebuilt here in Python from docs/combiners.md. HMAC,
SHA-2 and HKDF come from Python's hashlib/hmac; KMAC and SSKDF-KMAC from the openssl command
(Python has no KMAC). Usage: gen_hykex_combiners.py OPENSSL > hykex-combiners.json
"""
import hashlib
import hmac
import json
import subprocess
import sys

OPENSSL = sys.argv[1]
MD = {"sha256": hashlib.sha256, "sha384": hashlib.sha384}


def u32(n): return n.to_bytes(4, "big")
def lp(b): return u32(len(b)) + b


def hkdf(md, ikm, salt, info, n):
    h = MD[md]
    prk = hmac.new(salt or bytes(h().digest_size), ikm, h).digest()
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), h).digest()
        out += t
        i += 1
    return out[:n]


def sskdf_hmac(md, z, salt, info, n):
    h = MD[md]
    out, i = b"", 1
    while len(out) < n:
        out += hmac.new(salt, u32(i) + z + info, h).digest()
        i += 1
    return out[:n]


def openssl_bin(args):
    return subprocess.run([OPENSSL] + args, check=True, capture_output=True).stdout


def sskdf_kmac(bits, z, salt, info, n):
    return openssl_bin(["kdf", "-binary", "-keylen", str(n), "-kdfopt", f"mac:KMAC{bits}",
                        "-kdfopt", f"hexkey:{z.hex()}", "-kdfopt", f"hexsalt:{salt.hex()}",
                        "-kdfopt", f"hexinfo:{info.hex()}", "SSKDF"])


def kmac(bits, key, data, n):
    r = subprocess.run([OPENSSL, "mac", "-binary", "-macopt", f"hexkey:{key.hex()}",
                        "-macopt", f"size:{n}", f"KMAC{bits}"],
                       input=data, check=True, capture_output=True)
    return r.stdout


def kdf(variant, ikm, salt, info, n):
    kind, arg = variant
    if kind == "hkdf":
        return hkdf(arg, ikm, salt, info, n)
    if kind == "hmac":
        return sskdf_hmac(arg, ikm, salt, info, n)
    return sskdf_kmac(arg, ikm, salt, info, n)


def f_cat(a, b, c): return lp(a) + lp(b) + lp(c)
def f_hash(md, a, b, c): return MD[md](f_cat(a, b, c)).digest()


def block_len(variant):
    kind, arg = variant
    if kind == "kmac":
        return 32 if arg == 128 else 64
    return MD[arg]().digest_size


def catkdf(variant, keys, label, info, ma, mb, n):
    ctx = f_cat(info, ma, mb) if variant[0] == "kmac" else f_hash(variant[1], info, ma, mb)
    return kdf(variant, b"".join(keys), label, ctx, n)


def caskdf(variant, keys, label, info, ma, mb, n):
    blk = block_len(variant)
    chain = bytes(blk) if variant[0] == "kmac" else b""
    for k in keys:
        if variant[0] == "kmac":
            r = kmac(variant[1], chain, f_cat(k, ma, mb), blk)
        else:
            r = hmac.new(chain, f_hash(variant[1], k, ma, mb), MD[variant[1]]).digest()
        out = kdf(variant, r, label, info, blk + n)
        chain, km = out[:blk], out[blk:]
    return km


def fixed_info(method, sid, pos, n, names, keys, t):
    fi = lp(b"hykex/1 " + method.encode()) + sid + pos.to_bytes(8, "big") + u32(n) + u32(len(keys))
    for name, k in zip(names, keys):
        fi += lp(name.encode()) + u32(len(k))
    return fi + lp(t)


def xor_part(k, n):
    if n <= 32 or len(k) >= n:
        return k[:n] + bytes(max(0, n - len(k)))
    return hkdf("sha256", k, b"", b"hykex/1 xoring expand" + u32(n), n)


def hmac_ext(keys, n):
    msg = b"".join(keys[1:])
    t = hmac.new(keys[0], msg, hashlib.sha256).digest()
    out, i = t, 2
    while len(out) < n:
        t = hmac.new(keys[0], t + u32(i) + msg, hashlib.sha256).digest()
        out += t
        i += 1
    return out[:n]


VARIANTS = {"hkdf-sha256": ("hkdf", "sha256"), "hkdf-sha384": ("hkdf", "sha384"),
            "hmac-sha256": ("hmac", "sha256"), "hmac-sha384": ("hmac", "sha384"),
            "kmac128": ("kmac", 128), "kmac256": ("kmac", 256)}


def combine(method, keys, names, sid, pos, t, n):
    if method in ("xoring", "hmac", "xorhmac"):
        ks = sorted(keys)  # Python bytes order: memcmp, shorter prefix first
        if method == "xoring":
            out = bytes(n)
            for k in ks:
                out = bytes(a ^ b for a, b in zip(out, xor_part(k, n)))
            return out
        if method == "hmac":
            return hmac_ext(ks, n)
        return bytes(a ^ b for a, b in zip(hmac_ext(ks, n), hmac_ext(ks[::-1], n)))
    fi = fixed_info(method, sid, pos, n, names, keys, t)
    if method.startswith("catkdf-"):
        return catkdf(VARIANTS[method[7:]], keys, sid, fi, t, b"", n)
    if method.startswith("caskdf-"):
        return caskdf(VARIANTS[method[7:]], keys, sid, fi, t, b"", n)
    variant = {"hkdf-sha256": ("hkdf", "sha256"), "hkdf-sha384": ("hkdf", "sha384"),
               "kmac128": ("kmac", 128), "kmac256": ("kmac", 256)}[method]
    return kdf(variant, b"".join(keys), sid, fi, n)


def main():
    qkd = bytes(range(0x10, 0x30))
    mlkem = hashlib.sha256(b"ml-kem shared secret").digest()
    x25519 = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    long_qkd = hashlib.sha512(b"qkd 64").digest() + hashlib.sha256(b"more").digest()[:16]
    sid = bytes.fromhex("6ba7b8109dad11d180b400c04fd430c8")
    transcript = hashlib.sha256(b"batch transcript").digest()
    cases = [
        (["QKD", "ML-KEM-768"], [qkd, mlkem], 0, transcript, 32),
        (["QKD", "ML-KEM-768"], [qkd, mlkem], 7, transcript, 64),
        (["QKD", "ML-KEM-768", "X25519"], [qkd, mlkem, x25519], 1 << 40, b"", 48),
        (["QKD", "ML-KEM-1024"], [long_qkd, mlkem[:16]], 3, transcript[:16], 100),
    ]
    methods = ["xoring", "hmac", "xorhmac", "hkdf-sha256", "hkdf-sha384", "kmac128",
               "kmac256"] + [f"{p}-{v}" for p in ("catkdf", "caskdf") for v in VARIANTS]
    vectors = []
    for m in methods:
        for names, keys, pos, t, n in cases:
            vectors.append({"method": m, "names": names, "keys": [k.hex() for k in keys],
                            "stream_id": "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
                            "position": pos, "transcript": t.hex(), "L": n,
                            "expected": combine(m, keys, names, sid, pos, t, n).hex()})
    json.dump({"source": "tests/vectors/gen_hykex_combiners.py (independent Python + openssl)",
               "vectors": vectors}, sys.stdout, indent=1)
    print()


main()

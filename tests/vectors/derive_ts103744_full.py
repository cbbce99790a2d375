#!/usr/bin/env python3
"""Derives full-input CatKDF vectors from ts103744-catkdf.json (the ETSI TS 103 744 reference
implementation's expected outputs), so the whole construction is checked, not just its KDF call.

The KMAC vectors carry info = f_cat(context, MA, MB) in the clear: that gives the context string
and both messages. The HKDF and HMAC vectors of the same row use the same keys, label, context
and messages except for the first two bytes of MA and MB, which are the row's cid (the ETSI
harness writes cid || len(L) || L || ...). ikm = k1 || k2 with k2 the 32-byte ML-KEM secret.
Writes ts103744-catkdf-full.json; run from this folder.
"""
import json

src = json.load(open("ts103744-catkdf.json"))
by_cid = {v["cid"]: v for v in src["vectors"]}
method = {"1": "catkdf-hkdf-sha256", "4": "catkdf-hmac-sha256", "7": "catkdf-kmac128",
          "2": "catkdf-hkdf-sha384", "5": "catkdf-hmac-sha384", "8": "catkdf-kmac256"}
family = {"7": "147", "8": "258"}


def f_cat_split(hexstr):
    b, out, o = bytes.fromhex(hexstr), [], 0
    while o < len(b):
        n = int.from_bytes(b[o:o + 4], "big")
        out.append(b[o + 4:o + 4 + n])
        o += 4 + n
    assert len(out) == 3 and o == len(b)
    return out


vectors = []
for cid, v in sorted(by_cid.items()):
    if cid[0] not in family:
        continue
    context, ma, mb = f_cat_split(v["info"])
    for first in family[cid[0]]:
        c = first + cid[1:]
        w = by_cid[c]
        ikm = bytes.fromhex(w["ikm"])
        cb = bytes.fromhex(c)
        vectors.append({
            "cid": c, "method": method[first],
            "psk": "", "k1": ikm[:-32].hex(), "k2": ikm[-32:].hex(),
            "label": w["salt"], "context": context.hex(),
            "ma": (cb + ma[2:]).hex(), "mb": (cb + mb[2:]).hex(),
            "L": w["L"], "expected": w["expected"],
        })

json.dump({"source": "derived from ts103744-catkdf.json by derive_ts103744_full.py",
           "vectors": vectors}, open("ts103744-catkdf-full.json", "w"), indent=1)
print(f"{len(vectors)} vectors")

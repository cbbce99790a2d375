#include "proto/uri.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

_Static_assert(HX_SRC_KEM(HX_KEM_X25519) == HX_SRC_X25519, "source kinds follow crypto/kem.h");
_Static_assert(HX_SRC_KEM(HX_KEM_MCELIECE_348864) == HX_SRC_MCELIECE_348864, "source kinds");

/* liboqs names the reference accepted that no library of hykex offers (and variants of the
 * offered families that the libraries do not have, such as Classic McEliece's "pc"). */
static const char *const foreign[] = {"Kyber",  "HQC",  "BIKE",     "FrodoKEM",        "eFrodoKEM",
                                      "sntrup", "NTRU", "mceliece", "Classic-McEliece"};

#define SUPPORTED                                        \
    "QKD, ML-KEM-512, ML-KEM-768, ML-KEM-1024, X25519, " \
    "Classic-McEliece-348864/460896/6688128/6960119/8192128[f], sntrup653/761/857/953/1013/1277"

const char *hx_source_name(enum hx_source_kind k)
{
    if (k == HX_SRC_QKD) {
        return "QKD";
    }
    return (unsigned)k < HX_SRC_COUNT ? hx_kem_name(hx_source_kem(k)) : "?";
}

enum hx_kem_alg hx_source_kem(enum hx_source_kind k)
{
    return (enum hx_kem_alg)((int)k - 1);
}

/* name -> source kind; HX_ERR_UNSUPPORTED when no library here offers it. */
static hx_err source_parse(const char *name, enum hx_source_kind *out)
{
    enum hx_kem_alg alg;

    if (strcasecmp(name, "QKD") == 0) {
        *out = HX_SRC_QKD;
        return HX_OK;
    }
    if (hx_kem_parse(name, &alg) != HX_OK) {
        return HX_ERR_UNSUPPORTED;
    }
    *out = HX_SRC_KEM(alg);
    return HX_OK;
}

static hx_err parse_sources(const char *v, size_t len, struct hx_uri *u, char *why, size_t why_len)
{
    size_t i = 0;

    u->n_sources = 0;
    while (i <= len) {
        size_t j = i;
        char name[48];
        enum hx_source_kind k;

        while (j < len && v[j] != ',') {
            j++;
        }
        if (j == i || j - i >= sizeof(name)) {
            snprintf(why, why_len, "key_sources: empty or over-long entry");
            return HX_ERR_BAD_VALUE;
        }
        memcpy(name, v + i, j - i);
        name[j - i] = '\0';
        if (source_parse(name, &k) != HX_OK) {
            const char *kind = "unknown";
            for (size_t f = 0; f < sizeof(foreign) / sizeof(foreign[0]); f++) {
                if (strncasecmp(name, foreign[f], strlen(foreign[f])) == 0) {
                    kind =
                        "not offered by OpenSSL, libmceliece or libntruprime (HQC, BIKE, "
                        "FrodoKEM refused)";
                }
            }
            snprintf(why, why_len, "key_sources: '%s' is %s; supported: " SUPPORTED, name, kind);
            return HX_ERR_UNSUPPORTED;
        }
        if (u->n_sources >= HX_URI_MAX_SOURCES) {
            snprintf(why, why_len, "key_sources: at most %d sources", HX_URI_MAX_SOURCES);
            return HX_ERR_BAD_VALUE;
        }
        u->sources[u->n_sources++] = k;
        i = j + 1;
    }
    if (u->n_sources < HX_COMBINE_MIN_SOURCES) {
        snprintf(why, why_len,
                 "key_sources: a hybrid key needs at least %d sources (one was given)",
                 HX_COMBINE_MIN_SOURCES);
        return HX_ERR_BAD_VALUE;
    }
    return HX_OK;
}

/* relay, relay_max_hops, relay_avoid (value v of vlen bytes); HX_ERR_NOT_FOUND: not a relay
 * key. *seen counts each key once (bits 0..2). */
static hx_err parse_relay(const char *k, size_t klen, const char *v, size_t vlen, int *seen,
                          struct hx_uri *u, char *why, size_t why_len)
{
    static const char *const keys[] = {"relay", "relay_max_hops", "relay_avoid"};
    size_t which = 3;

    for (size_t i = 0; i < 3; i++) {
        which = klen == strlen(keys[i]) && strncmp(k, keys[i], klen) == 0 ? i : which;
    }
    if (which == 3) {
        return HX_ERR_NOT_FOUND;
    }
    if (*seen & (1 << which)) {
        snprintf(why, why_len, "%s given twice", keys[which]);
        return HX_ERR_BAD_VALUE;
    }
    *seen |= 1 << which;
    if (which == 0) {
        if ((vlen == 3 && strncasecmp(v, "yes", 3) == 0) ||
            (vlen == 2 && strncasecmp(v, "no", 2) == 0)) {
            u->relay_forbidden = vlen == 2;
            return HX_OK;
        }
        snprintf(why, why_len, "relay: '%.*s' is not yes or no", (int)(vlen > 20 ? 20 : vlen), v);
        return HX_ERR_BAD_VALUE;
    }
    if (which == 1) {
        unsigned n = 0;
        for (size_t i = 0; i < vlen && n <= HX_URI_MAX_HOPS; i++) {
            n = v[i] >= '0' && v[i] <= '9' ? n * 10 + (unsigned)(v[i] - '0') : 1000;
        }
        if (vlen == 0 || vlen > 2 || n == 0 || n > HX_URI_MAX_HOPS) {
            snprintf(why, why_len, "relay_max_hops: '%.*s' is not a number of hops 1..%d",
                     (int)(vlen > 20 ? 20 : vlen), v, HX_URI_MAX_HOPS);
            return HX_ERR_BAD_VALUE;
        }
        u->relay_max_hops = n;
        return HX_OK;
    }
    if (vlen == 0) {
        snprintf(why, why_len, "relay_avoid: empty");
        return HX_ERR_BAD_VALUE;
    }
    for (const char *p = v, *end = v + vlen;;) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        size_t n = c != NULL ? (size_t)(c - p) : (size_t)(end - p);
        if (u->n_avoid == HX_URI_MAX_AVOID) {
            snprintf(why, why_len, "relay_avoid: at most %d nodes", HX_URI_MAX_AVOID);
            return HX_ERR_BAD_VALUE;
        }
        if (hx_uuid_parse(p, n, &u->avoid[u->n_avoid]) != HX_OK) {
            snprintf(why, why_len, "relay_avoid: '%.*s' is not a node UUID", (int)(n > 40 ? 40 : n),
                     p);
            return HX_ERR_BAD_UUID;
        }
        u->n_avoid++;
        if (c == NULL) {
            break;
        }
        p = c + 1;
    }
    return HX_OK;
}

hx_err hx_uri_parse(const char *s, struct hx_uri *u, char *why, size_t why_len)
{
    int seen_relay = 0;
    static const char scheme[] = "hybrid://";
    const char *at, *q, *p;
    size_t n;
    int have_method = 0, have_sources = 0;

    memset(u, 0, sizeof(*u));
    u->method = HX_COMBINE_DEFAULT;
    if (strncmp(s, scheme, sizeof(scheme) - 1) != 0) {
        snprintf(why, why_len, "expected hybrid://<application>@<node uuid>?...");
        return HX_ERR_BAD_VALUE;
    }
    s += sizeof(scheme) - 1;
    q = strchr(s, '?');
    at = strchr(s, '@');
    if (at == NULL || (q != NULL && at > q)) {
        snprintf(why, why_len, "missing '@<node uuid>' after the application name");
        return HX_ERR_BAD_VALUE;
    }
    n = (size_t)(at - s);
    if (n == 0 || n > HX_URI_MAX_APP) {
        snprintf(why, why_len, "application name must be 1..%d characters", HX_URI_MAX_APP);
        return HX_ERR_BAD_VALUE;
    }
    memcpy(u->app, s, n);
    u->app[n] = '\0';
    at++;
    n = q != NULL ? (size_t)(q - at) : strlen(at);
    if (hx_uuid_parse(at, n, &u->node) != HX_OK) {
        snprintf(why, why_len, "'%.*s' is not a node UUID", (int)(n > 40 ? 40 : n), at);
        return HX_ERR_BAD_UUID;
    }
    if (q == NULL) {
        return HX_OK;
    }
    u->has_query = 1;
    for (p = q + 1; *p != '\0';) {
        const char *amp = strchr(p, '&'), *eq;
        size_t len = amp != NULL ? (size_t)(amp - p) : strlen(p);
        eq = memchr(p, '=', len);
        if (eq == NULL) {
            snprintf(why, why_len, "query part '%.*s' is not key=value", (int)(len > 40 ? 40 : len),
                     p);
            return HX_ERR_BAD_VALUE;
        }
        size_t klen = (size_t)(eq - p), vlen = len - klen - 1;
        if (klen == 13 && strncmp(p, "hybridization", 13) == 0) {
            char m[48];
            if (have_method++) {
                snprintf(why, why_len, "hybridization given twice");
                return HX_ERR_BAD_VALUE;
            }
            if (vlen == 0 || vlen >= sizeof(m)) {
                snprintf(why, why_len, "hybridization: empty or over-long");
                return HX_ERR_BAD_VALUE;
            }
            memcpy(m, eq + 1, vlen);
            m[vlen] = '\0';
            if (hx_combine_parse(m, &u->method) != HX_OK) {
                snprintf(why, why_len, "hybridization: '%s' is not one of: %s", m,
                         hx_combine_names());
                return HX_ERR_UNSUPPORTED;
            }
        } else if (klen == 11 && strncmp(p, "key_sources", 11) == 0) {
            hx_err e;
            if (have_sources++) {
                snprintf(why, why_len, "key_sources given twice");
                return HX_ERR_BAD_VALUE;
            }
            if ((e = parse_sources(eq + 1, vlen, u, why, why_len)) != HX_OK) {
                return e;
            }
        } else {
            hx_err e = parse_relay(p, klen, eq + 1, vlen, &seen_relay, u, why, why_len);
            if (e == HX_ERR_NOT_FOUND) {
                snprintf(why, why_len,
                         "unknown query key '%.*s' (hybridization, key_sources, relay, "
                         "relay_max_hops, relay_avoid)",
                         (int)(klen > 40 ? 40 : klen), p);
                return HX_ERR_BAD_VALUE;
            }
            if (e != HX_OK) {
                return e;
            }
        }
        p += len + (amp != NULL ? 1 : 0);
        if (amp != NULL && *p == '\0') {
            break;
        }
    }
    if (!have_sources) {
        snprintf(why, why_len, "key_sources missing from the query");
        return HX_ERR_BAD_VALUE;
    }
    return HX_OK;
}

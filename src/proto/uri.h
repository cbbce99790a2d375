/*
 * The reference's application URIs:
 *   hybrid://<application>@<node uuid>?hybridization=<method>&key_sources=<source>,<source>...
 * Only the source URI's query selects method and sources (as in the reference); a destination
 * without a query is fine, one with a different query is refused (the two nodes would not agree).
 * The query may also carry the stream's relay policy (docs/relay.md "Per-stream policy"):
 *   relay=yes|no  relay_max_hops=1..16  relay_avoid=<node uuid>,<node uuid>...  (at most 8)
 * A codec like the others in proto/: the daemon (stored streams, STREAM_OPEN) and the API parse
 * with it; it names the combiners through crypto/combine.h, which is on the same floor.
 */
#ifndef HX_PROTO_URI_H
#define HX_PROTO_URI_H

#include <stddef.h>

#include "common/err.h"
#include "common/uuid.h"
#include "crypto/combine.h"
#include "crypto/kem.h"

#define HX_URI_MAX_SOURCES 8
#define HX_URI_MAX_APP 128
#define HX_URI_MAX_AVOID 8
#define HX_URI_MAX_HOPS 16

/* QKD, then every KEM of crypto/kem.h in its order: source kind k > 0 is KEM k - 1. */
enum hx_source_kind {
    HX_SRC_QKD = 0,
    HX_SRC_ML_KEM_512,
    HX_SRC_ML_KEM_768,
    HX_SRC_ML_KEM_1024,
    HX_SRC_X25519,
    HX_SRC_MCELIECE_348864, /* ... through sntrup1277: HX_SRC_KEM(HX_KEM_...) */
    HX_SRC_COUNT = 1 + HX_KEM_ALG_COUNT,
};
#define HX_SRC_KEM(alg) ((enum hx_source_kind)(1 + (int)(alg)))

struct hx_uri {
    char app[HX_URI_MAX_APP + 1];
    struct hx_uuid node;
    int has_query;
    enum hx_combine_method method;
    enum hx_source_kind sources[HX_URI_MAX_SOURCES];
    size_t n_sources;
    /* the relay policy of the stream; absent keys leave the node's relay.* options in force */
    int relay_forbidden;     /* relay=no: direct link only */
    unsigned relay_max_hops; /* 0: relay.max_hops */
    size_t n_avoid;
    struct hx_uuid avoid[HX_URI_MAX_AVOID];
};

const char *hx_source_name(enum hx_source_kind k);
/* The KEM of a source kind other than QKD. */
enum hx_kem_alg hx_source_kem(enum hx_source_kind k);

/* Parses s; why names the problem ("key_sources: 'Kyber512' is not supported (...)"). */
HX_MUST_CHECK hx_err hx_uri_parse(const char *s, struct hx_uri *out, char *why, size_t why_len);

#endif

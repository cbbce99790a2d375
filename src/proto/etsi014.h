/*
 * ETSI GS QKD 014 V1.1.1's messages, for hykexd's 014 server (api/etsi014_server.c): the key
 * request (6.2: enc_keys POST body, or GET's query), the key IDs request (6.4: dec_keys POST
 * body, or GET's key_ID), and the replies: error (6.5), key container (6.3). Decoded into
 * checked structs first, acted on second; every limit is checked before anything is kept.
 */
#ifndef HX_PROTO_ETSI014_H
#define HX_PROTO_ETSI014_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/uuid.h"

/* Request bodies larger than this are refused before they are parsed. */
#define HX_014_MAX_BODY (64 * 1024)
/* Most keys (and key IDs) in one request; max_key_per_request is at most this. */
#define HX_014_MAX_KEYS 1024
/* An SAE id (a certificate's common name is at most 64 bytes). */
#define HX_014_MAX_SAE_ID 64

/* An SAE id as it may appear in a 014 URL path and a certificate's common name: 1..64
 * printable ASCII bytes, none of / ? # % or space. */
bool hx_014_sae_id_ok(const char *id, size_t len);

/* A checked key request. number and size are 0 when not given (the server's defaults). */
struct hx_014_key_req {
    uint32_t number;
    uint32_t size_bits;
    size_t n_additional_slaves; /* additional_slave_SAE_IDs given (not kept) */
    bool extension_mandatory;   /* a non-empty extension_mandatory */
};

/*
 * A problem with a request: msg for the reply's "message", detail (may be "") for its
 * "details". Both are plain text; the reply builder escapes them.
 */
struct hx_014_problem {
    char msg[160];
    char detail[160];
};

/* The enc_keys POST body (a JSON object). HX_ERR_* with prob filled on any problem. */
HX_MUST_CHECK hx_err hx_014_parse_key_req(const char *body, size_t len, struct hx_014_key_req *out,
                                          struct hx_014_problem *prob);
/* One decoded query parameter (the HTTP library splits and decodes the query). */
struct hx_014_param {
    const char *key, *value;
};

/*
 * The enc_keys GET query: number and size only, each at most once; any other parameter is
 * refused. Decimal numbers, at most 2^30.
 */
HX_MUST_CHECK hx_err hx_014_parse_key_query(const struct hx_014_param *params, size_t n_params,
                                            struct hx_014_key_req *out,
                                            struct hx_014_problem *prob);
/*
 * The dec_keys POST body {"key_IDs": [{"key_ID": "<uuid>"}, ...]} into ids (1..cap); entries
 * may carry a "master_SAE_ID" string (some clients send it) and nothing else.
 */
HX_MUST_CHECK hx_err hx_014_parse_key_ids(const char *body, size_t len, struct hx_uuid *ids,
                                          size_t cap, size_t *n, struct hx_014_problem *prob);
/* The dec_keys GET query: key_ID=<uuid>, one or more times (014 6.4), into ids (1..cap). */
HX_MUST_CHECK hx_err hx_014_parse_key_id_query(const struct hx_014_param *params, size_t n_params,
                                               struct hx_uuid *ids, size_t cap, size_t *n,
                                               struct hx_014_problem *prob);

/* {"message": msg, "details": [{"message": detail}]} (no details when detail is "" or NULL). */
HX_MUST_CHECK hx_err hx_014_write_error(struct hx_writer *w, const char *msg, const char *detail);
/* The same as a malloc'd string (NULL when out of memory): the simulator's 014 KMEs. */
char *hx_014_error_json(const char *msg, const char *detail);

/*
 * The key container, one key at a time: begin, then add (id and key bytes, written as padded
 * standard base64 into w, which the caller wipes), then end.
 */
HX_MUST_CHECK hx_err hx_014_write_keys_begin(struct hx_writer *w);
HX_MUST_CHECK hx_err hx_014_write_keys_add(struct hx_writer *w, bool first,
                                           const struct hx_uuid *id, const uint8_t *key,
                                           size_t len);
HX_MUST_CHECK hx_err hx_014_write_keys_end(struct hx_writer *w);

#endif

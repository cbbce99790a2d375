/*
 * The node's QKD key source: a client of its KME over ETSI 004 (JSON dialect, or binary in
 * either framing, plain or TLS). Blocking calls, made from worker threads; each call opens its
 * own connection (KMEs differ in how long they keep one; 2.1.1 allows one request per
 * connection anyway), through net/ (docs/net.md); qkd.timeout_ms bounds the connect and each
 * read and write on the monotonic clock. ETSI 014 is not wired in yet (docs/config.md says so).
 */
#ifndef HX_SOURCE_QKD_H
#define HX_SOURCE_QKD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/qkdid.h"
#include "common/uuid.h"
#include "hykex/hykex.h"

struct hx_qkd_client {
    int protocol; /* 1: 004 JSON, 2: 004 binary */
    int framing;  /* binary: 0 = 1.0.1, 1 = 2.1.1 */
    char host[256];
    uint16_t port;
    char tls_cert[512], tls_key[512], tls_ca[512];
    unsigned timeout_ms;
    unsigned pipeline; /* JSON: GET_KEY requests written at once (0 or 1: one at a time) */
};

/*
 * OPEN_CONNECT with qos (key_chunk_size, timeout, bps, ... as given; the mimetype is JSON);
 * *ksid in/out (none: the KME makes one). A JSON-dialect KME's id may be any bounded printable
 * string (common/qkdid.h), kept as given; the binary dialects carry UUIDs only (an opaque id is
 * refused with status 4 and a message). Returns the ETSI status in *status; with status 7 the
 * KME's counter-proposal replaces *qos.
 */
HX_MUST_CHECK hx_err hx_qkd_open(const struct hx_qkd_client *c, const char *src, const char *dst,
                                 struct hykex_qos *qos, struct hx_qkd_ksid *ksid, uint32_t *status,
                                 char *msg, size_t msg_len);
/* GET_KEY at index into key (len bytes exactly). A key of all zero bytes is refused. */
HX_MUST_CHECK hx_err hx_qkd_get(const struct hx_qkd_client *c, const struct hx_qkd_ksid *ksid,
                                uint32_t index, uint8_t *key, size_t len, uint32_t *status,
                                char *msg, size_t msg_len);
/*
 * GET_KEY for indices first .. first+count-1 into keys (count * len bytes), over one
 * connection where the dialect allows it (JSON, binary 1.0.1; 2.1.1 takes one per request).
 * Stops at the first non-zero status, which *status and msg report, with *done keys fetched.
 */
HX_MUST_CHECK hx_err hx_qkd_get_many(const struct hx_qkd_client *c, const struct hx_qkd_ksid *ksid,
                                     uint32_t first, uint32_t count, uint8_t *keys, size_t len,
                                     uint32_t *done, uint32_t *status, char *msg, size_t msg_len);
/*
 * A JSON-dialect GET_KEY reply (text) checked strictly: *status is the KME's status, or 4 when
 * key_buffer is not exactly len JSON integers 0..255 (msg names kme and the fault; nothing is
 * coerced). HX_ERR_PROTO for text that is no JSON object. Used by hx_qkd_get and the tests.
 */
HX_MUST_CHECK hx_err hx_qkd_parse_key_reply(const char *json, size_t json_len, const char *kme,
                                            uint8_t *key, size_t len, uint32_t *status, char *msg,
                                            size_t msg_len);
/* A JSON-dialect OPEN_CONNECT reply (text) as hx_qkd_open reads it: *status, the
 * counter-proposal (7) into qos, the key_stream_id (0, 1) into ksid; a malformed id is status 4
 * with msg naming kme and the fault. HX_ERR_PROTO for text that is no JSON object. */
HX_MUST_CHECK hx_err hx_qkd_parse_open_reply(const char *json, size_t json_len, const char *kme,
                                             struct hykex_qos *qos, struct hx_qkd_ksid *ksid,
                                             uint32_t *status, char *msg, size_t msg_len);
HX_MUST_CHECK hx_err hx_qkd_close(const struct hx_qkd_client *c, const struct hx_qkd_ksid *ksid);

#endif

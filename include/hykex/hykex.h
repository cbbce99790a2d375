/*
 * hykex public client API: the ETSI GS QKD 004 application interface, for applications that
 * talk to their node's hykexd (libhykex, docs/api.md).
 *
 * This header is a promise to applications: its names and values do not change within a major
 * version. The calls mirror ETSI 004's IDL; each returns 0 when hykexd answered (the ETSI
 * status is in *status, a message in hykex_message()) and a negative value when it could not
 * be reached or answered nonsense. The library never logs.
 */
#ifndef HYKEX_HYKEX_H
#define HYKEX_HYKEX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HYKEX_VERSION_MAJOR 0
#define HYKEX_VERSION_MINOR 1
#define HYKEX_VERSION_PATCH 0

/* ETSI GS QKD 004 V2.1.1, table of status values. */
enum hykex_status {
    HYKEX_STATUS_SUCCESS = 0,
    HYKEX_STATUS_PEER_NOT_CONNECTED = 1,     /* connection made, peer application not yet */
    HYKEX_STATUS_INSUFFICIENT_KEY = 2,       /* GET_KEY: not enough key available */
    HYKEX_STATUS_PEER_NOT_CONNECTED_GET = 3, /* GET_KEY: peer application not connected */
    HYKEX_STATUS_NO_QKD_CONNECTION = 4,      /* no QKD connection available */
    HYKEX_STATUS_KSID_IN_USE = 5,            /* OPEN_CONNECT: key stream id already in use */
    HYKEX_STATUS_TIMEOUT = 6,                /* TIMEOUT_ERROR */
    HYKEX_STATUS_QOS_NOT_MET = 7,            /* OPEN_CONNECT: QoS not met, counter-proposal */
    HYKEX_STATUS_METADATA_TOO_SMALL = 8,     /* GET_KEY: metadata buffer too small */
};

/* ETSI GS QKD 004 QoS. Rates in bits per second, timeout in ms, TTL in seconds. */
#define HYKEX_MIMETYPE_MAX 256
struct hykex_qos {
    uint32_t key_chunk_size;
    uint32_t max_bps;
    uint32_t min_bps;
    uint32_t jitter;
    uint32_t priority;
    uint32_t timeout_ms;
    uint32_t ttl_s;
    char metadata_mimetype[HYKEX_MIMETYPE_MAX + 1];
};

/* A short English description of an ETSI 004 status; never NULL. */
const char *hykex_status_string(int status);

#define HYKEX_KSID_LEN 36 /* text form of a key stream id, 8-4-4-4-12, without the NUL */

/* Return values other than 0. */
#define HYKEX_E_CONNECT (-1) /* could not reach hykexd */
#define HYKEX_E_IO (-2)      /* the connection broke */
#define HYKEX_E_PROTO (-3)   /* hykexd's reply was not understood */
#define HYKEX_E_ARG (-4)     /* bad argument (NULL, too long) */
#define HYKEX_E_SPACE (-5)   /* the caller's buffer is too small for the key */

struct hykex;

/* "HOST:PORT" (IPv6 as [addr]:port) or a Unix socket path starting with '/'. */
int hykex_connect(const char *address, struct hykex **out);
void hykex_disconnect(struct hykex *h);

/*
 * OPEN_CONNECT. qos is in/out (a counter-proposal comes back with status 7); key_stream_id is
 * in/out: "" asks hykexd for one, a UUID joins or predefines one (ETSI 004 cases 1 and 3).
 */
int hykex_open_connect(struct hykex *h, const char *source, const char *destination,
                       struct hykex_qos *qos, char key_stream_id[HYKEX_KSID_LEN + 1],
                       uint32_t *status);
/*
 * GET_KEY. index: NULL = the next position; else in = the position, out = the one delivered.
 * key gets *key_len bytes (in: capacity). metadata (optional, may be NULL) gets the metadata
 * JSON text, NUL-terminated, truncated to metadata_cap.
 */
int hykex_get_key(struct hykex *h, const char *key_stream_id, uint32_t *index, uint8_t *key,
                  size_t *key_len, char *metadata, size_t metadata_cap, uint32_t *status);
int hykex_close(struct hykex *h, const char *key_stream_id, uint32_t *status);

/*
 * Sends one request given as JSON text and returns the reply's JSON text (malloc'd, pretty
 * printed) in *reply: for hykex's own STATUS command and for tools.
 */
int hykex_raw_call(struct hykex *h, const char *request_json, char **reply);

/* The message of the last reply with a non-zero status ("" if none); valid until next call. */
const char *hykex_message(const struct hykex *h);

#ifdef __cplusplus
}
#endif

#endif

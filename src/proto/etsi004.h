/*
 * ETSI GS QKD 004 messages, in the two encodings found in the wild:
 *  - JSON (the reference module's "QKD node" dialect and hykexd's northbound API):
 *    {"command": "OPEN_CONNECT"|"GET_KEY"|"CLOSE", "data": {...}};
 *  - binary, 8-byte header (3 version bytes, service type, u32 BE payload length), in the
 *    QUBIP framing (version 1.0.1, fixed 256-byte mimetype) and the ETSI reference code's
 *    (version 2.1.1, NUL-terminated mimetype, metadata bytes in GET_KEY, full error replies).
 * One decoder and one encoder per message, shared by the simulator, hykexd and the tests.
 */
#ifndef HX_PROTO_ETSI004_H
#define HX_PROTO_ETSI004_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/json.h"
#include "common/qkdid.h"
#include "common/uuid.h"
#include "hykex/hykex.h"

#define HX_004_MAX_URI 1024
#define HX_004_MAX_KEY 65535
#define HX_004_MAX_METADATA 4096
#define HX_004_BIN_HEADER 8
#define HX_004_BIN_MAX_PAYLOAD (64 * 1024 + 64)

enum hx_004_command {
    HX_004_OPEN_CONNECT = 0,
    HX_004_GET_KEY,
    HX_004_CLOSE,
    HX_004_STATUS, /* hykex's own: the node's peers and streams (no "data" needed) */
    HX_004_RELOAD, /* hykex's own: reload as SIGHUP does (no "data"; the daemon's user only) */
};

struct hx_004_request {
    enum hx_004_command cmd;
    char source[HX_004_MAX_URI + 1];
    char destination[HX_004_MAX_URI + 1];
    struct hykex_qos qos;
    struct hx_uuid ksid; /* nil: none given */
    /* JSON, towards or from a KME: a key_stream_id that is not a UUID (an opaque one, which
     * a JSON-dialect KME is free to issue). When set, the encoder sends it instead of ksid;
     * hx_004_json_decode_request_ex with opaque_ids fills it for an id that is no UUID. */
    struct hx_qkd_ksid ksid_text;
    bool has_index;
    uint32_t index;
    uint32_t metadata_size; /* GET_KEY: the client's metadata capacity (0: not given) */
};

const char *hx_004_command_name(enum hx_004_command cmd);

/* ---- JSON ---- */

/* The integer fields of an ETSI 004 QoS object, by JSON name and offset in struct hykex_qos:
 * the request decoder here and the QKD client's reading of a KME's counter-proposal share it. */
#define HX_004_QOS_INT_FIELDS 7
struct hx_004_qos_field {
    const char *name;
    size_t off;
};
extern const struct hx_004_qos_field hx_004_qos_fields[HX_004_QOS_INT_FIELDS];

/*
 * A request object, checked field by field: unknown commands and fields, wrong types, numbers
 * outside 0..2^32-1, URIs over HX_004_MAX_URI and malformed stream ids are refused with a
 * message in why ("data.qos.timeout: expected an integer from 0 to 4294967295").
 */
HX_MUST_CHECK hx_err hx_004_json_decode_request(struct json_object *o, struct hx_004_request *req,
                                                char *why, size_t why_len);
/* The same; opaque_ids: a key_stream_id that is no UUID goes to req->ksid_text (bounded,
 * printable: common/qkdid.h) instead of being refused (a KME's side of the JSON dialect). */
HX_MUST_CHECK hx_err hx_004_json_decode_request_ex(struct json_object *o,
                                                   struct hx_004_request *req, bool opaque_ids,
                                                   char *why, size_t why_len);
/*
 * The next request framed in s (a server's connection), decoded: a plain GET_KEY without a
 * tree (hx_004_fast_get_request), any other through json-c and hx_004_json_decode_request_ex.
 * HX_004_MALFORMED: *why says what was wrong with the JSON (valid until the next call on s);
 * HX_004_INVALID: msg names the field.
 */
enum hx_004_next {
    HX_004_NEED_MORE = 0, /* feed more */
    HX_004_REQUEST,       /* *req holds it */
    HX_004_MALFORMED,     /* not JSON, or over a limit */
    HX_004_INVALID,       /* JSON, but no request */
};
enum hx_004_next hx_004_json_next_request(struct hx_json_stream *s,
                                          const struct hx_json_limits *lim, bool opaque_ids,
                                          struct hx_004_request *req, const char **why, char *msg,
                                          size_t msg_len);
/* {"status": N, "message": "..."} (the message only for a non-zero status). */
struct json_object *hx_004_json_status(int status, const char *message);
/* The 8 QoS fields under their JSON names. */
struct json_object *hx_004_json_qos(const struct hykex_qos *q);

/* The request as the reference clients send it (all 8 QoS fields). */
struct json_object *hx_004_json_encode_request(const struct hx_004_request *req);

/*
 * Requests of one stream differ only in their index: the first GET_KEY is encoded as
 * hx_004_json_encode_request encodes it (json-c, the reference's separators) and kept in t;
 * a later one for the same request but its index is that text with the index's digits
 * replaced. Any other request is encoded anew. hx_004_get_text_free releases t (zeroed: none
 * yet).
 */
struct hx_004_get_text {
    struct hx_004_request req; /* what text was made for */
    char *text;                /* NULL: none kept */
    size_t len;                /* its length */
    size_t digits;             /* offset of the index's digits in text */
    size_t after;              /* offset just past them */
};
HX_MUST_CHECK hx_err hx_004_json_write_get_request(struct hx_004_get_text *t,
                                                   const struct hx_004_request *req,
                                                   struct hx_writer *w);
void hx_004_get_text_free(struct hx_004_get_text *t);

/*
 * A GET_KEY success reply written straight into w: {"status": 0, "key_buffer": [...],
 * "index": N, "metadata": META}, META being JSON text already. spaced: the reference's
 * separators (", " and ": ", as Python's json.dumps), else json-c's plain ones. The key never
 * passes through json-c objects, whose freed memory nobody wipes: the caller wipes w.
 */
HX_MUST_CHECK hx_err hx_004_json_write_key_reply(struct hx_writer *w, const uint8_t *key,
                                                 size_t key_len, uint64_t index, const char *meta,
                                                 bool spaced);

/*
 * ---- JSON without a tree: the GET_KEY request and reply (etsi004_fast.c) ----
 *
 * Each says true only for a message whose meaning it is sure of (the plain shape, printable
 * ASCII without escapes, integers, no member twice, within lim); for any other it says false
 * and the caller decodes the same text with json-c (hx_json_stream_parse_text), which gives
 * every error and quirk its answer. What they accept, the json-c path accepts with the same
 * result. lim: the limits the caller's json-c path applies (NULL: hx_json_limits_default).
 */

/* A GET_KEY reply's members as the two readers of one use them. */
struct hx_004_key_reply {
    uint8_t *key;   /* the caller's: key_buffer's bytes (wiped when the answer is false) */
    size_t key_cap; /* a longer key_buffer is left to json-c */
    size_t key_len; /* its elements, each an integer 0..255 */
    bool has_key;   /* key_buffer was an array */
    int64_t status; /* required, an integer */
    bool has_index;
    int64_t index;
    char *message; /* the caller's, or NULL: "message", cut to message_cap - 1 bytes */
    size_t message_cap;
    bool has_message;
};

/* A GET_KEY request with a UUID key_stream_id, decoded as hx_004_json_decode_request_ex does. */
bool hx_004_fast_get_request(const char *text, size_t len, const struct hx_json_limits *lim,
                             struct hx_004_request *req);
/* A GET_KEY reply: an integer status, and key_buffer, index and message where present as
 * above; any other member is checked against lim only. */
bool hx_004_fast_key_reply(const char *text, size_t len, const struct hx_json_limits *lim,
                           struct hx_004_key_reply *r);

/* ---- binary ---- */

enum hx_004_framing {
    HX_004_FRAMING_101 = 0, /* QUBIP etsi-qkd-004 */
    HX_004_FRAMING_211 = 1, /* ETSI gs004-app-int reference code */
};

enum hx_004_bin_type {
    HX_004_BIN_OPEN_REQ = 0x02,
    HX_004_BIN_OPEN_RESP = 0x03,
    HX_004_BIN_GET_REQ = 0x04,
    HX_004_BIN_GET_RESP = 0x05,
    HX_004_BIN_CLOSE_REQ = 0x08,
    HX_004_BIN_CLOSE_RESP = 0x09,
};

/* Checks a header's version bytes against the framing; gives type and payload length. */
HX_MUST_CHECK hx_err hx_004_bin_header(enum hx_004_framing f, const uint8_t hdr[HX_004_BIN_HEADER],
                                       uint8_t *type, uint32_t *len, char *why, size_t why_len);
/* A request payload of the given type. */
HX_MUST_CHECK hx_err hx_004_bin_decode_request(enum hx_004_framing f, uint8_t type,
                                               const uint8_t *p, size_t len,
                                               struct hx_004_request *req, char *why,
                                               size_t why_len);
/* Whole frames (header included) appended to w. */
HX_MUST_CHECK hx_err hx_004_bin_encode_request(enum hx_004_framing f,
                                               const struct hx_004_request *req,
                                               struct hx_writer *w);

struct hx_004_response {
    enum hx_004_command cmd;
    uint32_t status;
    struct hykex_qos qos; /* OPEN_CONNECT */
    struct hx_uuid ksid;  /* OPEN_CONNECT */
    uint32_t index;       /* GET_KEY */
    const uint8_t *key;   /* GET_KEY */
    size_t key_len;
    const uint8_t *metadata; /* GET_KEY */
    size_t metadata_len;
    uint32_t metadata_needed; /* GET_KEY with status 8 */
};

HX_MUST_CHECK hx_err hx_004_bin_encode_response(enum hx_004_framing f,
                                                const struct hx_004_response *resp,
                                                struct hx_writer *w);
/* A response payload (pointers point into p). */
HX_MUST_CHECK hx_err hx_004_bin_decode_response(enum hx_004_framing f, uint8_t type,
                                                const uint8_t *p, size_t len,
                                                struct hx_004_response *resp, char *why,
                                                size_t why_len);

#endif

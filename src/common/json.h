/*
 * JSON over json-c, with limits (Redis: caps on every protocol element).
 *
 * The reference wire format sends JSON objects back to back on a TCP stream with no length
 * prefix or delimiter. struct hx_json_stream cuts such a byte stream into objects: feed it
 * whatever recv() returned, then take events until it needs more. Each complete object is
 * parsed by json-c (strict mode, UTF-8 validated) and checked against the limits.
 *
 * Framing is a small string-aware bracket scanner, not json-c's tokener, because the tokener
 * cannot find its way back after an error: a bad message would poison the connection. The
 * scanner always knows where the broken message ends, so the caller can answer it and keep
 * serving the connection. See docs/json-stream.md.
 */
#ifndef HX_COMMON_JSON_H
#define HX_COMMON_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/err.h"

struct hx_json_limits {
    size_t max_message; /* bytes from '{' to the matching '}' */
    unsigned max_depth; /* nesting of objects and arrays; the top object is depth 1 (<= 64) */
    size_t max_string;  /* bytes in one string or key */
    size_t max_members; /* members of one object or elements of one array */
};

/* Defaults sized for ETSI 004 requests: a few hundred bytes, depth 3. */
extern const struct hx_json_limits hx_json_limits_default;

#define HX_JSON_MAX_DEPTH_LIMIT 64u

enum hx_json_event {
    HX_JSON_NEED_MORE = 0, /* all fed bytes used; feed more */
    HX_JSON_OBJECT,        /* *obj is a parsed object (caller puts it with json_object_put) */
    HX_JSON_ERROR,         /* one bad message or run of garbage was dropped; see err and why */
};

struct hx_json_stream;

HX_MUST_CHECK hx_err hx_json_stream_new(const struct hx_json_limits *limits,
                                        struct hx_json_stream **out);
void hx_json_stream_free(struct hx_json_stream *s);

/*
 * Appends len bytes to the stream's input. At most max_message + pending bytes are held:
 * HX_ERR_TOO_LARGE if more is fed without taking events (a caller bug, not bad input).
 */
HX_MUST_CHECK hx_err hx_json_stream_feed(struct hx_json_stream *s, const void *p, size_t len);

/*
 * The next event. For HX_JSON_ERROR, *err is the category (HX_ERR_TOO_LARGE, HX_ERR_TOO_DEEP,
 * HX_ERR_BAD_JSON, HX_ERR_BAD_VALUE) and *why a message naming the problem, valid until the
 * next call.
 */
enum hx_json_event hx_json_stream_next(struct hx_json_stream *s, struct json_object **obj,
                                       hx_err *err, const char **why);

/*
 * The same framing, without the parse: for HX_JSON_OBJECT, *text and *len are the message's
 * bytes (from its '{' to its '}', within the size and depth limits, not yet known to be valid
 * JSON), valid until the next feed. A caller with a decoder of its own for some messages
 * (proto/etsi004_fast.c) tries it first and gives every other message to
 * hx_json_stream_parse_text, which is hx_json_stream_next's parse of it.
 */
enum hx_json_event hx_json_stream_next_text(struct hx_json_stream *s, const char **text,
                                            size_t *len, hx_err *err, const char **why);
/* The message hx_json_stream_next_text returned last, parsed with json-c and checked against
 * the limits: HX_JSON_OBJECT (*obj) or HX_JSON_ERROR, as hx_json_stream_next gives them. Only
 * right after that call returned HX_JSON_OBJECT (else HX_JSON_ERROR, HX_ERR_INVALID_ARG). */
enum hx_json_event hx_json_stream_parse_text(struct hx_json_stream *s, struct json_object **obj,
                                             hx_err *err, const char **why);

/* Bytes held that are not yet part of a returned event (0 between messages). */
size_t hx_json_stream_pending(const struct hx_json_stream *s);

/*
 * A whole document (a config file, an HTTP body) that must be exactly one object, optionally
 * surrounded by white space. why gets a message on failure.
 */
HX_MUST_CHECK hx_err hx_json_parse_object(const void *p, size_t len,
                                          const struct hx_json_limits *limits,
                                          struct json_object **out, char *why, size_t why_len);

/*
 * json-c's tokener keeps the text of the last token it read in a buffer of its own (not public
 * API) and frees it unwiped: for a reply that ends with a key (an ETSI 014 key container) that
 * is key material. Parsing one string as long as the longest text the tokener ever read
 * overwrites every byte a token can have left there. hx_json_stream_free does this.
 */
void hx_json_tokener_scrub(json_tokener *tok, size_t longest);

/*
 * Overwrites the values in a parsed tree that held key material (every number with 0, every
 * string's bytes with zeros) before json_object_put frees it: json-c's free does not wipe.
 * The tokener's own copy of the last token: hx_json_tokener_scrub; our stream buffer is wiped
 * separately.
 */
void hx_json_wipe(struct json_object *o);

struct hx_writer;

/*
 * Appends the ETSI 004 JSON text of a key buffer, an array of its bytes in decimal, to w:
 * "[b0" sep "b1" ... "]". For replies that carry a key: the bytes go straight into the caller's
 * buffer (which it wipes), never into json-c objects whose freed memory nobody wipes.
 */
HX_MUST_CHECK hx_err hx_json_write_key_array(struct hx_writer *w, const uint8_t *p, size_t n,
                                             const char *sep);

#endif

/*
 * The two ETSI 004 JSON messages every key crosses, decoded without a tree: a GET_KEY request
 * (at hykexd's API and at the simulator) and a GET_KEY reply (at libhykex and at hykexd's QKD
 * client). json-c builds an object per key byte, which made parsing these two messages the
 * largest cost of a key after the crypto (docs/performance.md, eighth round); yajl's event
 * parser fills the caller's struct as it reads.
 *
 * These decoders only ever say yes to a message whose meaning they are sure of: the plain
 * shape, every member known or harmless, printable ASCII and white space without escapes,
 * integers of at most 18 digits, none of the members they read given twice.
 * For anything else they say no and the caller decodes the message with json-c as before, so
 * every error, quirk and message text stays the json-c path's. Whatever they accept, the json-c
 * path accepts with the same result: fuzz_etsi004_json compares the whole decoded request on
 * every input, fuzz_qkd004_reply every member the reply readers use, type by type.
 *
 * Key bytes: yajl is given the whole message in one call and hands every number to
 * on_number as a pointer into the caller's buffer (its yajl_number callback: the integer and
 * double callbacks would copy), so no key byte is copied; the decoder writes them straight
 * into the caller's key buffer and wipes it when it says no. The text must be one framed
 * message (hx_json_stream_next_text): yajl keeps an unterminated string after a complete
 * value in a buffer of its own, which such text never has.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <yajl/yajl_parse.h>

#include "proto/etsi004.h"

/* ---- what both decoders share ---- */

/* What the value about to be read is. */
enum field {
    F_OTHER = 0, /* a value only checked against the limits (a reply's members we do not use) */
    F_STATUS,
    F_KEY_BUFFER,
    F_KEY_BYTE, /* an element of key_buffer */
    F_INDEX,
    F_MESSAGE,
    F_COMMAND,
    F_DATA,
    F_KSID,
    F_METADATA,
    F_META_SIZE,
    F_META_BUFFER,
};

#define MAX_LEVELS (HX_JSON_MAX_DEPTH_LIMIT + 1)

struct scan {
    const struct hx_json_limits *lim;
    bool request;                 /* a GET_KEY request, else a GET_KEY reply */
    unsigned depth;               /* containers open; the message itself is level 1 */
    bool is_array[MAX_LEVELS];    /* per open level: an array, else an object */
    enum field owner[MAX_LEVELS]; /* per open level: the field whose value it is */
    size_t members[MAX_LEVELS];   /* per open level: members or elements so far */
    enum field next;              /* an object's value: the field its key named */
    unsigned seen;                /* bit per field: a second one is left to json-c */
    bool is_get_key;
    yajl_handle h;
    size_t closed_at; /* where the message's '}' ended (0: not yet) */
    struct hx_004_key_reply *reply;
    struct hx_004_request *req;
};

/* Bytes both parsers read alike: printable ASCII, white space, and no escapes at all (a
 * backslash, a control character or a byte above 0x7e sends the message to json-c). */
static bool plain_text(const char *text, size_t len)
{
    unsigned bad = 0;

    /* no early exit: the loop vectorises, and a message is a few hundred bytes */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        bad |= (unsigned)((c < 0x20 && c != '\t' && c != '\n' && c != '\r') | (c > 0x7e) |
                          (c == '\\'));
    }
    return bad == 0;
}

static bool count_member(struct scan *s)
{
    return ++s->members[s->depth] <= s->lim->max_members;
}

/* The field of the value being read (an array element counted), and the object's next key
 * reset. false: over a limit. */
static bool value_field(struct scan *s, enum field *f)
{
    if (s->depth == 0) {
        *f = F_OTHER;
        return s->closed_at == 0; /* nothing after the message */
    }
    if (s->is_array[s->depth]) {
        *f = s->owner[s->depth] == F_KEY_BUFFER ? F_KEY_BYTE : F_OTHER;
        return count_member(s);
    }
    *f = s->next;
    s->next = F_OTHER;
    return true;
}

static bool take(struct scan *s, enum field f)
{
    if ((s->seen & (1u << f)) != 0) {
        return false;
    }
    s->seen |= 1u << f;
    s->next = f;
    return true;
}

static int on_map_key(void *ctx, const unsigned char *k, size_t n)
{
    struct scan *s = ctx;
    enum field owner = s->owner[s->depth];

    if (n > s->lim->max_string || !count_member(s)) {
        return 0;
    }
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(k, lit, n) == 0)
    if (!s->request) {
        s->next = F_OTHER;
        if (s->depth != 1) {
            return 1;
        }
        return IS("status")       ? take(s, F_STATUS)
               : IS("key_buffer") ? take(s, F_KEY_BUFFER)
               : IS("index")      ? take(s, F_INDEX)
               : IS("message")    ? take(s, F_MESSAGE)
                                  : 1;
    }
    /* A request: every member is one we know, or it is json-c's to answer. */
    if (s->depth == 1) {
        return IS("command") ? take(s, F_COMMAND) : IS("data") && take(s, F_DATA);
    }
    if (owner == F_DATA) {
        return IS("key_stream_id") ? take(s, F_KSID)
               : IS("index")       ? take(s, F_INDEX)
                                   : IS("metadata") && take(s, F_METADATA);
    }
    return owner == F_METADATA &&
           (IS("size") ? take(s, F_META_SIZE) : IS("buffer") && take(s, F_META_BUFFER));
#undef IS
}

static int on_start(void *ctx, bool array)
{
    struct scan *s = ctx;
    enum field f;
    bool ok;

    if (!value_field(s, &f) || s->depth + 1 > s->lim->max_depth) {
        return 0;
    }
    if (s->depth == 0) {
        ok = !array; /* the message is an object (the framing saw to it) */
    } else if (f == F_OTHER) {
        ok = !s->request; /* a reply's members we do not use may hold anything */
    } else {
        ok = array ? f == F_KEY_BUFFER : f == F_DATA || f == F_METADATA;
    }
    if (!ok) {
        return 0;
    }
    s->depth++;
    s->is_array[s->depth] = array;
    s->owner[s->depth] = f;
    s->members[s->depth] = 0;
    s->next = F_OTHER;
    return 1;
}

static int on_start_map(void *ctx)
{
    return on_start(ctx, false);
}

static int on_start_array(void *ctx)
{
    return on_start(ctx, true);
}

static int on_end(void *ctx)
{
    struct scan *s = ctx;

    s->depth--;
    s->next = F_OTHER;
    if (s->depth == 0) {
        /* yajl counts a token as consumed before its callback: the message's end */
        s->closed_at = yajl_get_bytes_consumed(s->h);
    }
    return 1;
}

static bool u32(long long v, uint32_t *out)
{
    if (v < 0 || v > (long long)UINT32_MAX) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

/*
 * A JSON number's text (yajl checked its syntax) as an integer: at most 18 digits, so within
 * int64 by construction. A fraction, an exponent or a longer number is json-c's to read. The
 * text is read in place: yajl's own number callbacks would copy it (a fraction into a buffer
 * it frees unwiped) and read errno.
 */
static bool token_int(const char *p, size_t n, long long *out)
{
    bool neg = n > 0 && p[0] == '-';
    long long v = 0;
    size_t i = neg ? 1 : 0;

    if (n - i == 0 || n - i > 18) {
        return false;
    }
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        v = v * 10 + (p[i] - '0');
    }
    *out = neg ? -v : v;
    return true;
}

static int on_number(void *ctx, const char *p, size_t n)
{
    struct scan *s = ctx;
    long long v;
    struct hx_004_key_reply *r = s->reply;
    enum field f;

    if (!value_field(s, &f) || !token_int(p, n, &v)) {
        return 0;
    }
    switch (f) {
    case F_OTHER:
        return !s->request;
    case F_KEY_BYTE:
        if (v < 0 || v > 255 || r->key_len >= r->key_cap) {
            return 0;
        }
        r->key[r->key_len++] = (uint8_t)v;
        return 1;
    case F_STATUS:
        r->status = v;
        return 1;
    case F_INDEX:
        if (s->request) {
            s->req->has_index = true;
            return u32(v, &s->req->index);
        }
        r->has_index = true;
        r->index = v;
        return 1;
    case F_META_SIZE:
        return u32(v, &s->req->metadata_size);
    default:
        return 0;
    }
}

static int on_string(void *ctx, const unsigned char *p, size_t n)
{
    struct scan *s = ctx;
    struct hx_004_key_reply *r = s->reply;
    enum field f;

    if (!value_field(s, &f) || n > s->lim->max_string) {
        return 0;
    }
    switch (f) {
    case F_OTHER:
        return !s->request;
    case F_MESSAGE:
        r->has_message = true;
        if (r->message != NULL && r->message_cap > 0) {
            size_t k = n < r->message_cap - 1 ? n : r->message_cap - 1;
            memcpy(r->message, p, k);
            r->message[k] = '\0';
        }
        return 1;
    case F_COMMAND:
        s->is_get_key = n == 7 && memcmp(p, "GET_KEY", 7) == 0;
        return s->is_get_key;
    case F_KSID:
        return hx_uuid_parse((const char *)p, n, &s->req->ksid) == HX_OK;
    case F_META_BUFFER:
        return 1;
    default:
        return 0;
    }
}

/* null, true and false: only where nothing of ours is read. */
static int on_literal(struct scan *s)
{
    enum field f;

    return value_field(s, &f) && f == F_OTHER && !s->request;
}

static int on_null(void *ctx)
{
    return on_literal(ctx);
}

static int on_boolean(void *ctx, int v)
{
    (void)v;
    return on_literal(ctx);
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_boolean,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_map_key,
    .yajl_end_map = on_end,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end,
};

/*
 * The whole message through yajl: true if every callback was content and the message's
 * closing brace is its last byte. (yajl takes an unterminated string after a complete value
 * as input to come, even at yajl_complete_parse: `{...}"x}` would pass its own checks. The
 * stream's framing never gives such text; this check does not rely on that.)
 */
static bool run(struct scan *s, const char *text, size_t len)
{
    bool ok;

    if (s->lim->max_depth == 0 || s->lim->max_depth > HX_JSON_MAX_DEPTH_LIMIT || len < 2 ||
        text[0] != '{' || text[len - 1] != '}' || !plain_text(text, len) ||
        (s->h = yajl_alloc(&callbacks, NULL, s)) == NULL) {
        return false;
    }
    ok = yajl_parse(s->h, (const unsigned char *)text, len) == yajl_status_ok &&
         yajl_complete_parse(s->h) == yajl_status_ok && s->depth == 0 && s->closed_at == len;
    yajl_free(s->h);
    s->h = NULL;
    return ok;
}

/* ---- the two messages ---- */

bool hx_004_fast_key_reply(const char *text, size_t len, const struct hx_json_limits *lim,
                           struct hx_004_key_reply *r)
{
    struct scan s;

    memset(&s, 0, sizeof(s));
    s.lim = lim != NULL ? lim : &hx_json_limits_default;
    s.reply = r;
    r->status = 0;
    r->has_index = false;
    r->index = 0;
    r->has_message = false;
    r->key_len = 0;
    if (r->message != NULL && r->message_cap > 0) {
        r->message[0] = '\0';
    }
    if (run(&s, text, len) && (s.seen & (1u << F_STATUS)) != 0) {
        r->has_key = (s.seen & (1u << F_KEY_BUFFER)) != 0;
        return true;
    }
    OPENSSL_cleanse(r->key, r->key_cap);
    r->key_len = 0;
    return false;
}

bool hx_004_fast_get_request(const char *text, size_t len, const struct hx_json_limits *lim,
                             struct hx_004_request *req)
{
    struct scan s;

    memset(&s, 0, sizeof(s));
    memset(req, 0, sizeof(*req));
    s.lim = lim != NULL ? lim : &hx_json_limits_default;
    s.request = true;
    s.req = req;
    if (run(&s, text, len) && s.is_get_key && (s.seen & (1u << F_DATA)) != 0 &&
        (s.seen & (1u << F_KSID)) != 0) {
        req->cmd = HX_004_GET_KEY;
        snprintf(req->qos.metadata_mimetype, sizeof(req->qos.metadata_mimetype),
                 "application/json");
        return true;
    }
    memset(req, 0, sizeof(*req));
    return false;
}

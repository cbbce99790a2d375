#include "common/json.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/buf.h"

const struct hx_json_limits hx_json_limits_default = {
    .max_message = 64 * 1024,
    .max_depth = 8,
    .max_string = 4096,
    .max_members = 1024,
};

enum scan_state {
    S_IDLE,    /* between messages: white space is skipped, '{' starts a message */
    S_OBJECT,  /* inside a message, outside strings */
    S_STRING,  /* inside a string */
    S_ESCAPE,  /* after a backslash inside a string */
    S_GARBAGE, /* after an error outside a message: drop bytes up to the next '{' */
};

struct hx_json_stream {
    struct hx_json_limits lim;
    uint8_t *buf; /* input held: [0, scan) scanned, [scan, len) not yet */
    size_t len;
    size_t alloc;
    size_t start; /* where the current message begins in buf */
    size_t scan;  /* next byte to scan */
    enum scan_state state;
    unsigned depth;  /* nesting of the current message */
    uint64_t kinds;  /* bit d set: level d+1 is an array, clear: an object */
    bool skipping;   /* current message already rejected: drop it up to its end */
    hx_err skip_err; /* what the skipped message was rejected for (reported at its start) */
    json_tokener *tok;
    size_t longest;  /* the longest message given to the tokener (scrubbed at the end) */
    size_t msg_end;  /* the end of the message hx_json_stream_next_text returned last */
    bool text_ready; /* and that message is still [start, msg_end): parse_text may parse it */
    char why[160];
};

static bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

hx_err hx_json_stream_new(const struct hx_json_limits *limits, struct hx_json_stream **out)
{
    struct hx_json_stream *s;

    *out = NULL;
    if (limits == NULL) {
        limits = &hx_json_limits_default;
    }
    if (limits->max_depth == 0 || limits->max_depth > HX_JSON_MAX_DEPTH_LIMIT ||
        limits->max_message < 2 || limits->max_message > (size_t)1 << 30) {
        return HX_ERR_INVALID_ARG;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        return HX_ERR_NOMEM;
    }
    s->lim = *limits;
    /* json-c counts the top object as depth 1, as we do; its limit is "more than" checks. */
    if ((s->tok = json_tokener_new_ex((int)limits->max_depth + 1)) == NULL) {
        free(s);
        return HX_ERR_NOMEM;
    }
    json_tokener_set_flags(s->tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    *out = s;
    return HX_OK;
}

void hx_json_tokener_scrub(json_tokener *tok, size_t longest)
{
    char *dummy;
    struct json_object *o;

    if (tok == NULL || longest == 0 || longest > INT32_MAX - 2 ||
        (dummy = malloc(longest + 2)) == NULL) {
        return;
    }
    memset(dummy, 'x', longest + 2);
    dummy[0] = dummy[longest + 1] = '"';
    json_tokener_reset(tok);
    o = json_tokener_parse_ex(tok, dummy, (int)(longest + 2));
    json_object_put(o);
    json_tokener_reset(tok);
    free(dummy);
}

void hx_json_stream_free(struct hx_json_stream *s)
{
    if (s == NULL) {
        return;
    }
    hx_json_tokener_scrub(s->tok, s->longest);
    json_tokener_free(s->tok);
    if (s->buf != NULL) {
        /* Requests carry no key bytes, but replies parsed by clients do: wipe. */
        memset(s->buf, 0, s->alloc);
        free(s->buf);
    }
    free(s);
}

size_t hx_json_stream_pending(const struct hx_json_stream *s)
{
    if (s->state == S_IDLE || s->state == S_GARBAGE) {
        size_t n = 0;
        for (size_t i = s->scan; i < s->len; i++) {
            n += is_space(s->buf[i]) ? 0 : 1;
        }
        return n;
    }
    return s->len - s->start;
}

/* Drops bytes before `keep` (the start of anything still needed). */
static void compact(struct hx_json_stream *s, size_t keep)
{
    if (keep == 0) {
        return;
    }
    memmove(s->buf, s->buf + keep, s->len - keep);
    memset(s->buf + s->len - keep, 0, keep);
    s->len -= keep;
    s->scan -= keep;
    s->start = s->start >= keep ? s->start - keep : 0;
}

hx_err hx_json_stream_feed(struct hx_json_stream *s, const void *p, size_t len)
{
    s->text_ready = false; /* the bytes move */
    size_t keep = s->state == S_OBJECT || s->state == S_STRING || s->state == S_ESCAPE
                      ? (s->skipping ? s->scan : s->start)
                      : s->scan;
    size_t need, alloc;
    uint8_t *nb;

    compact(s, keep);
    if (len > (size_t)4 << 30 || s->len + len > s->lim.max_message + len + 64 ||
        len > SIZE_MAX - s->len) {
        return HX_ERR_TOO_LARGE;
    }
    need = s->len + len;
    if (need > s->alloc) {
        alloc = s->alloc > 0 ? s->alloc : 1024;
        while (alloc < need) {
            alloc *= 2;
        }
        if ((nb = malloc(alloc)) == NULL) {
            return HX_ERR_NOMEM;
        }
        if (s->len > 0) {
            memcpy(nb, s->buf, s->len);
        }
        if (s->buf != NULL) {
            memset(s->buf, 0, s->alloc);
            free(s->buf);
        }
        s->buf = nb;
        s->alloc = alloc;
    }
    if (len > 0) {
        memcpy(s->buf + s->len, p, len);
    }
    s->len += len;
    return HX_OK;
}

/* Checks the limits json-c does not: string lengths, NUL bytes, members per container. */
static hx_err check_tree(struct hx_json_stream *s, struct json_object *o)
{
    size_t n;
    hx_err e;

    switch (json_object_get_type(o)) {
    case json_type_string:
        n = (size_t)json_object_get_string_len(o);
        if (n > s->lim.max_string) {
            snprintf(s->why, sizeof(s->why), "string of %zu bytes exceeds the limit of %zu", n,
                     s->lim.max_string);
            return HX_ERR_TOO_LARGE;
        }
        if (memchr(json_object_get_string(o), 0, n) != NULL) {
            snprintf(s->why, sizeof(s->why), "string contains a NUL character");
            return HX_ERR_BAD_VALUE;
        }
        return HX_OK;
    case json_type_array:
        n = json_object_array_length(o);
        if (n > s->lim.max_members) {
            snprintf(s->why, sizeof(s->why), "array of %zu elements exceeds the limit of %zu", n,
                     s->lim.max_members);
            return HX_ERR_TOO_LARGE;
        }
        for (size_t i = 0; i < n; i++) {
            if ((e = check_tree(s, json_object_array_get_idx(o, i))) != HX_OK) {
                return e;
            }
        }
        return HX_OK;
    case json_type_object:
        n = (size_t)json_object_object_length(o);
        if (n > s->lim.max_members) {
            snprintf(s->why, sizeof(s->why), "object of %zu members exceeds the limit of %zu", n,
                     s->lim.max_members);
            return HX_ERR_TOO_LARGE;
        }
        json_object_object_foreach (o, key, val) {
            if (strlen(key) > s->lim.max_string) {
                snprintf(s->why, sizeof(s->why), "key exceeds the limit of %zu bytes",
                         s->lim.max_string);
                return HX_ERR_TOO_LARGE;
            }
            if (val != NULL && (e = check_tree(s, val)) != HX_OK) {
                return e;
            }
        }
        return HX_OK;
    default:
        return HX_OK;
    }
}

/* Parses buf[start, end) as one object with json-c. */
static enum hx_json_event parse_message(struct hx_json_stream *s, size_t end,
                                        struct json_object **obj, hx_err *err)
{
    struct json_object *o;
    enum json_tokener_error jerr;
    size_t n = end - s->start;
    hx_err e;

    json_tokener_reset(s->tok);
    s->longest = n > s->longest ? n : s->longest;
    o = json_tokener_parse_ex(s->tok, (const char *)s->buf + s->start, (int)n);
    jerr = json_tokener_get_error(s->tok);
    if (o == NULL || jerr != json_tokener_success || json_tokener_get_parse_end(s->tok) != n) {
        json_object_put(o);
        snprintf(s->why, sizeof(s->why), "malformed JSON: %s at byte %zu",
                 jerr == json_tokener_success || jerr == json_tokener_continue
                     ? "unexpected end of object"
                     : json_tokener_error_desc(jerr),
                 json_tokener_get_parse_end(s->tok));
        *err = jerr == json_tokener_error_depth ? HX_ERR_TOO_DEEP : HX_ERR_BAD_JSON;
        return HX_JSON_ERROR;
    }
    if ((e = check_tree(s, o)) != HX_OK) {
        json_object_put(o);
        *err = e;
        return HX_JSON_ERROR;
    }
    *obj = o;
    return HX_JSON_OBJECT;
}

static enum hx_json_event fail(struct hx_json_stream *s, hx_err *err, hx_err code)
{
    *err = code;
    (void)s;
    return HX_JSON_ERROR;
}

/* Rejects the current message now and drops the rest of it as it arrives. */
static enum hx_json_event reject_message(struct hx_json_stream *s, hx_err *err, hx_err code)
{
    s->skipping = true;
    return fail(s, err, code);
}

/* Ends the current message: back to S_IDLE with nothing held. */
static void end_message(struct hx_json_stream *s)
{
    s->state = S_IDLE;
    s->depth = 0;
    s->kinds = 0;
    s->skipping = false;
}

/* Frames the next message: HX_JSON_OBJECT when one ends at s->msg_end (from s->start). */
static enum hx_json_event frame_next(struct hx_json_stream *s, hx_err *err, const char **why)
{
    s->text_ready = false;
    *err = HX_OK;
    *why = s->why;
    s->why[0] = '\0';

    while (s->scan < s->len) {
        uint8_t c = s->buf[s->scan++];

        if (s->state != S_IDLE && s->state != S_GARBAGE && !s->skipping &&
            s->scan - s->start > s->lim.max_message) {
            /* Counted before the byte is looked at, so the closing brace counts too. */
            snprintf(s->why, sizeof(s->why), "JSON message exceeds %zu bytes", s->lim.max_message);
            s->scan--; /* the byte is scanned again, in skipping mode */
            return reject_message(s, err, HX_ERR_TOO_LARGE);
        }
        switch (s->state) {
        case S_IDLE:
        case S_GARBAGE:
            if (c == '{') {
                s->state = S_OBJECT;
                s->start = s->scan - 1;
                s->depth = 1;
                s->kinds = 0;
                s->skipping = false;
            } else if (s->state == S_IDLE && !is_space(c)) {
                s->state = S_GARBAGE;
                snprintf(s->why, sizeof(s->why),
                         "expected a JSON object, found byte 0x%02x outside one", c);
                return fail(s, err, HX_ERR_BAD_JSON);
            }
            continue;
        case S_STRING:
            if (c == '\\') {
                s->state = S_ESCAPE;
            } else if (c == '"') {
                s->state = S_OBJECT;
            }
            break;
        case S_ESCAPE:
            s->state = S_STRING;
            break;
        case S_OBJECT:
            if (c == '"') {
                s->state = S_STRING;
            } else if (c == '{' || c == '[') {
                if (s->depth >= s->lim.max_depth) {
                    if (!s->skipping) {
                        snprintf(s->why, sizeof(s->why), "JSON nested deeper than %u levels",
                                 s->lim.max_depth);
                        s->depth++;
                        return reject_message(s, err, HX_ERR_TOO_DEEP);
                    }
                    if (s->depth == UINT32_MAX) {
                        s->state = S_GARBAGE; /* absurd input: give up on this message */
                        continue;
                    }
                } else if (c == '[') {
                    s->kinds |= (uint64_t)1 << s->depth;
                } else {
                    s->kinds &= ~((uint64_t)1 << s->depth);
                }
                s->depth++;
            } else if (c == '}' || c == ']') {
                s->depth--;
                if (s->depth < s->lim.max_depth && !s->skipping) {
                    bool is_array = (s->kinds >> s->depth) & 1;
                    if (is_array != (c == ']')) {
                        snprintf(s->why, sizeof(s->why),
                                 "malformed JSON: '%c' closes %s at byte %zu", c,
                                 is_array ? "an array" : "an object", s->scan - 1 - s->start);
                        /* The brackets no longer tell where it ends: resync on the next '{'. */
                        end_message(s);
                        s->state = S_GARBAGE;
                        return fail(s, err, HX_ERR_BAD_JSON);
                    }
                }
                if (s->depth == 0) {
                    bool skipped = s->skipping;
                    end_message(s);
                    if (skipped) {
                        continue;
                    }
                    s->msg_end = s->scan;
                    s->text_ready = true;
                    return HX_JSON_OBJECT;
                }
            }
            break;
        }
    }
    return HX_JSON_NEED_MORE;
}

enum hx_json_event hx_json_stream_next_text(struct hx_json_stream *s, const char **text,
                                            size_t *len, hx_err *err, const char **why)
{
    enum hx_json_event ev = frame_next(s, err, why);

    *text = NULL;
    *len = 0;
    if (ev == HX_JSON_OBJECT) {
        *text = (const char *)s->buf + s->start;
        *len = s->msg_end - s->start;
    }
    return ev;
}

enum hx_json_event hx_json_stream_parse_text(struct hx_json_stream *s, struct json_object **obj,
                                             hx_err *err, const char **why)
{
    *obj = NULL;
    *err = HX_OK;
    *why = s->why;
    s->why[0] = '\0';
    if (!s->text_ready) { /* a caller bug: no message was just framed */
        snprintf(s->why, sizeof(s->why), "no message to parse");
        *err = HX_ERR_INVALID_ARG;
        return HX_JSON_ERROR;
    }
    s->text_ready = false;
    return parse_message(s, s->msg_end, obj, err);
}

enum hx_json_event hx_json_stream_next(struct hx_json_stream *s, struct json_object **obj,
                                       hx_err *err, const char **why)
{
    enum hx_json_event ev = frame_next(s, err, why);

    *obj = NULL;
    s->text_ready = false;
    return ev == HX_JSON_OBJECT ? parse_message(s, s->msg_end, obj, err) : ev;
}

hx_err hx_json_parse_object(const void *p, size_t len, const struct hx_json_limits *limits,
                            struct json_object **out, char *why, size_t why_len)
{
    struct hx_json_stream *s = NULL;
    struct json_object *o = NULL, *extra = NULL;
    enum hx_json_event ev;
    const char *msg = "";
    hx_err e, e2;

    *out = NULL;
    if (limits == NULL) {
        limits = &hx_json_limits_default;
    }
    if (len > limits->max_message + 4096) {
        snprintf(why, why_len, "document of %zu bytes exceeds the limit of %zu", len,
                 limits->max_message);
        return HX_ERR_TOO_LARGE;
    }
    if ((e = hx_json_stream_new(limits, &s)) != HX_OK) {
        goto out;
    }
    if ((e = hx_json_stream_feed(s, p, len)) != HX_OK) {
        snprintf(why, why_len, "document exceeds the limit of %zu bytes", limits->max_message);
        goto out;
    }
    ev = hx_json_stream_next(s, &o, &e, &msg);
    if (ev == HX_JSON_ERROR) {
        snprintf(why, why_len, "%s", msg);
        goto out;
    }
    if (ev == HX_JSON_NEED_MORE) {
        snprintf(why, why_len, "%s",
                 hx_json_stream_pending(s) > 0 ? "document ends inside the JSON object"
                                               : "document holds no JSON object");
        e = HX_ERR_BAD_JSON;
        goto out;
    }
    if (hx_json_stream_next(s, &extra, &e2, &msg) != HX_JSON_NEED_MORE ||
        hx_json_stream_pending(s) > 0) {
        snprintf(why, why_len, "unexpected data after the JSON object");
        e = HX_ERR_BAD_JSON;
        goto out;
    }
    *out = o;
    o = NULL;
    e = HX_OK;
out:
    json_object_put(o);
    json_object_put(extra);
    hx_json_stream_free(s);
    return e;
}

hx_err hx_json_write_key_array(struct hx_writer *w, const uint8_t *p, size_t n, const char *sep)
{
    size_t sep_len = strlen(sep);
    hx_err e = hx_write_u8(w, '[');

    for (size_t i = 0; i < n && e == HX_OK; i++) {
        unsigned v = p[i];
        size_t k = v >= 100 ? 3 : v >= 10 ? 2 : 1;
        uint8_t *d;
        if (i > 0) {
            e = hx_write_bytes(w, sep, sep_len);
        }
        /* digits written in place: no copy of a key byte outside the caller's buffer */
        if (e == HX_OK && (e = hx_write_reserve(w, k, &d)) == HX_OK) {
            d[k - 1] = (uint8_t)('0' + v % 10);
            if (k > 1) {
                d[k - 2] = (uint8_t)('0' + v / 10 % 10);
            }
            if (k > 2) {
                d[0] = (uint8_t)('0' + v / 100);
            }
        }
    }
    return e == HX_OK ? hx_write_u8(w, ']') : e;
}

void hx_json_wipe(struct json_object *o)
{
    switch (json_object_get_type(o)) {
    case json_type_int:
        (void)json_object_set_int64(o, 0);
        break;
    case json_type_double:
        (void)json_object_set_double(o, 0.0);
        break;
    case json_type_string: {
        /* json-c owns the bytes and they are writable; set_string would reallocate instead */
        char *p = (char *)(uintptr_t)json_object_get_string(o);
        OPENSSL_cleanse(p, (size_t)json_object_get_string_len(o));
        break;
    }
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(o); i++) {
            hx_json_wipe(json_object_array_get_idx(o, i));
        }
        break;
    case json_type_object: {
        json_object_object_foreach (o, k, v) {
            (void)k;
            hx_json_wipe(v);
        }
        break;
    }
    default:
        break;
    }
}

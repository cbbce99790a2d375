#include "common/buf.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

void hx_reader_init(struct hx_reader *r, const void *data, size_t len)
{
    r->data = data;
    r->len = data != NULL ? len : 0;
    r->off = 0;
}

size_t hx_reader_remaining(const struct hx_reader *r)
{
    return r->len - r->off;
}

hx_err hx_read_view(struct hx_reader *r, size_t n, const uint8_t **out)
{
    if (n > hx_reader_remaining(r)) {
        return HX_ERR_TRUNCATED;
    }
    *out = r->data + r->off;
    r->off += n;
    return HX_OK;
}

hx_err hx_read_bytes(struct hx_reader *r, void *out, size_t n)
{
    const uint8_t *p;
    hx_err e;

    if ((e = hx_read_view(r, n, &p)) != HX_OK) {
        return e;
    }
    if (n > 0) {
        memcpy(out, p, n);
    }
    return HX_OK;
}

hx_err hx_read_skip(struct hx_reader *r, size_t n)
{
    const uint8_t *p;

    return hx_read_view(r, n, &p);
}

static hx_err read_be(struct hx_reader *r, size_t n, uint64_t *out)
{
    const uint8_t *p;
    uint64_t v = 0;
    hx_err e;

    if ((e = hx_read_view(r, n, &p)) != HX_OK) {
        return e;
    }
    for (size_t i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    *out = v;
    return HX_OK;
}

hx_err hx_read_u8(struct hx_reader *r, uint8_t *out)
{
    uint64_t v;
    hx_err e;

    if ((e = read_be(r, 1, &v)) == HX_OK) {
        *out = (uint8_t)v;
    }
    return e;
}

hx_err hx_read_u16(struct hx_reader *r, uint16_t *out)
{
    uint64_t v;
    hx_err e;

    if ((e = read_be(r, 2, &v)) == HX_OK) {
        *out = (uint16_t)v;
    }
    return e;
}

hx_err hx_read_u32(struct hx_reader *r, uint32_t *out)
{
    uint64_t v;
    hx_err e;

    if ((e = read_be(r, 4, &v)) == HX_OK) {
        *out = (uint32_t)v;
    }
    return e;
}

hx_err hx_read_u64(struct hx_reader *r, uint64_t *out)
{
    return read_be(r, 8, out);
}

hx_err hx_read_cstr(struct hx_reader *r, size_t max_len, const char **out, size_t *out_len)
{
    size_t avail = hx_reader_remaining(r);
    size_t scan = avail < max_len + 1 ? avail : max_len + 1;
    const uint8_t *start = r->data + r->off;
    const uint8_t *nul = scan > 0 ? memchr(start, 0, scan) : NULL;

    if (nul == NULL) {
        return scan == max_len + 1 ? HX_ERR_TOO_LARGE : HX_ERR_TRUNCATED;
    }
    *out = (const char *)start;
    *out_len = (size_t)(nul - start);
    r->off += *out_len + 1;
    return HX_OK;
}

void hx_writer_init_fixed(struct hx_writer *w, void *buf, size_t size)
{
    w->data = buf;
    w->len = 0;
    w->alloc = buf != NULL ? size : 0;
    w->cap = w->alloc;
    w->owned = 0;
}

void hx_writer_init_dynamic(struct hx_writer *w, size_t cap)
{
    w->data = NULL;
    w->len = 0;
    w->alloc = 0;
    w->cap = cap;
    w->owned = 1;
}

void hx_writer_wipe(struct hx_writer *w)
{
    if (w->owned && w->data != NULL) {
        OPENSSL_clear_free(w->data, w->alloc);
    }
    w->data = NULL;
    w->len = 0;
    w->alloc = 0;
    w->cap = 0;
    w->owned = 0;
}

void hx_writer_reset(struct hx_writer *w)
{
    if (w->data != NULL && w->len > 0) {
        OPENSSL_cleanse(w->data, w->len);
    }
    w->len = 0;
}

/* Makes room for n more bytes: doubles an owned buffer up to cap, never beyond. */
static hx_err ensure(struct hx_writer *w, size_t n)
{
    size_t need, alloc;
    uint8_t *p;

    if (n > w->cap - w->len) {
        return HX_ERR_NOSPACE;
    }
    need = w->len + n;
    if (need <= w->alloc) {
        return HX_OK;
    }
    if (!w->owned) {
        return HX_ERR_NOSPACE;
    }
    alloc = w->alloc > 0 ? w->alloc : 64;
    while (alloc < need) {
        alloc = alloc > w->cap / 2 ? w->cap : alloc * 2;
    }
    /* Not realloc: the old block may hold key material and must be wiped, not just freed. */
    if ((p = malloc(alloc)) == NULL) {
        return HX_ERR_NOMEM;
    }
    if (w->data != NULL) {
        memcpy(p, w->data, w->len);
        OPENSSL_clear_free(w->data, w->alloc);
    }
    w->data = p;
    w->alloc = alloc;
    return HX_OK;
}

hx_err hx_write_reserve(struct hx_writer *w, size_t n, uint8_t **out)
{
    hx_err e;

    if ((e = ensure(w, n)) != HX_OK) {
        return e;
    }
    *out = w->data + w->len;
    w->len += n;
    return HX_OK;
}

hx_err hx_write_bytes(struct hx_writer *w, const void *p, size_t n)
{
    uint8_t *dst;
    hx_err e;

    if ((e = hx_write_reserve(w, n, &dst)) != HX_OK) {
        return e;
    }
    if (n > 0) {
        memcpy(dst, p, n);
    }
    return HX_OK;
}

hx_err hx_write_zeros(struct hx_writer *w, size_t n)
{
    uint8_t *dst;
    hx_err e;

    if ((e = hx_write_reserve(w, n, &dst)) != HX_OK) {
        return e;
    }
    if (n > 0) {
        memset(dst, 0, n);
    }
    return HX_OK;
}

static hx_err write_be(struct hx_writer *w, uint64_t v, size_t n)
{
    uint8_t *dst;
    hx_err e;

    if ((e = hx_write_reserve(w, n, &dst)) != HX_OK) {
        return e;
    }
    for (size_t i = 0; i < n; i++) {
        dst[n - 1 - i] = (uint8_t)(v >> (8 * i));
    }
    return HX_OK;
}

hx_err hx_write_u8(struct hx_writer *w, uint8_t v)
{
    return write_be(w, v, 1);
}

hx_err hx_write_u16(struct hx_writer *w, uint16_t v)
{
    return write_be(w, v, 2);
}

hx_err hx_write_u32(struct hx_writer *w, uint32_t v)
{
    return write_be(w, v, 4);
}

hx_err hx_write_u64(struct hx_writer *w, uint64_t v)
{
    return write_be(w, v, 8);
}

hx_err hx_write_cstr(struct hx_writer *w, const char *s)
{
    return hx_write_bytes(w, s, strlen(s) + 1);
}

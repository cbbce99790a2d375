/*
 * Bounded byte reader and writer (s2n stuffer, OpenSSH sshbuf).
 *
 * A reader never reads past its end: a read that does not fit fails with HX_ERR_TRUNCATED and
 * leaves the reader unchanged. Integers on the wire are big endian.
 *
 * A writer either wraps a caller's fixed buffer or owns a heap buffer that grows up to a hard
 * cap (curl dynbuf); a write that does not fit fails with HX_ERR_NOSPACE and writes nothing.
 * An owned buffer is wiped when it is freed, because protocol buffers carry key material.
 */
#ifndef HX_COMMON_BUF_H
#define HX_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct hx_reader {
    const uint8_t *data;
    size_t len;
    size_t off;
};

void hx_reader_init(struct hx_reader *r, const void *data, size_t len);
size_t hx_reader_remaining(const struct hx_reader *r);

HX_MUST_CHECK hx_err hx_read_u8(struct hx_reader *r, uint8_t *out);
HX_MUST_CHECK hx_err hx_read_u16(struct hx_reader *r, uint16_t *out);
HX_MUST_CHECK hx_err hx_read_u32(struct hx_reader *r, uint32_t *out);
HX_MUST_CHECK hx_err hx_read_u64(struct hx_reader *r, uint64_t *out);
/* Copies n bytes out. */
HX_MUST_CHECK hx_err hx_read_bytes(struct hx_reader *r, void *out, size_t n);
/* Points *out at the next n bytes without copying (valid while the underlying data is). */
HX_MUST_CHECK hx_err hx_read_view(struct hx_reader *r, size_t n, const uint8_t **out);
HX_MUST_CHECK hx_err hx_read_skip(struct hx_reader *r, size_t n);
/*
 * A NUL-terminated string of at most max_len bytes before the NUL: *out points into the
 * data, *out_len excludes the NUL, and the NUL is consumed. No NUL within max_len + 1 bytes
 * gives HX_ERR_TOO_LARGE; no NUL before the end gives HX_ERR_TRUNCATED.
 */
HX_MUST_CHECK hx_err hx_read_cstr(struct hx_reader *r, size_t max_len, const char **out,
                                  size_t *out_len);

struct hx_writer {
    uint8_t *data;
    size_t len;   /* bytes written */
    size_t alloc; /* bytes allocated (owned) or available (fixed) */
    size_t cap;   /* hard limit on len */
    int owned;
};

/* Over a caller's buffer of size bytes; never allocates. */
void hx_writer_init_fixed(struct hx_writer *w, void *buf, size_t size);
/* Owned heap buffer that grows up to cap bytes. */
void hx_writer_init_dynamic(struct hx_writer *w, size_t cap);
/* Wipes and frees an owned buffer; resets the writer. Safe on a zeroed writer. */
void hx_writer_wipe(struct hx_writer *w);
/* Forgets what was written (keeps the allocation), wiping it. */
void hx_writer_reset(struct hx_writer *w);

HX_MUST_CHECK hx_err hx_write_u8(struct hx_writer *w, uint8_t v);
HX_MUST_CHECK hx_err hx_write_u16(struct hx_writer *w, uint16_t v);
HX_MUST_CHECK hx_err hx_write_u32(struct hx_writer *w, uint32_t v);
HX_MUST_CHECK hx_err hx_write_u64(struct hx_writer *w, uint64_t v);
HX_MUST_CHECK hx_err hx_write_bytes(struct hx_writer *w, const void *p, size_t n);
HX_MUST_CHECK hx_err hx_write_zeros(struct hx_writer *w, size_t n);
/* Writes s and its terminating NUL. */
HX_MUST_CHECK hx_err hx_write_cstr(struct hx_writer *w, const char *s);
/* Reserves n bytes and points *out at them (uninitialised until the caller fills them). */
HX_MUST_CHECK hx_err hx_write_reserve(struct hx_writer *w, size_t n, uint8_t **out);

#endif

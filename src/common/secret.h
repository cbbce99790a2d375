/*
 * Key material lives in struct hx_secret and nowhere else (s2n, libsodium).
 *
 * The bytes are in OpenSSL's secure heap when hx_secret_heap_init() has set one up (mlock'd,
 * guard pages, excluded from core dumps); otherwise on the normal heap. Either way freeing
 * wipes them. The struct is opaque: nothing outside this module can print it, and the log
 * module has no field type that takes one.
 */
#ifndef HX_COMMON_SECRET_H
#define HX_COMMON_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct hx_secret;

/* Largest secret we hand out (a GET_KEY chunk is at most 65535 bytes). */
#define HX_SECRET_MAX_LEN 65536u

/*
 * Sets up the process-wide secure heap of heap_size bytes (a power of two); call once at
 * start-up, before any secret exists. HX_ERR_UNSUPPORTED when the OS refuses (mlock limits):
 * callers may go on without it.
 */
HX_MUST_CHECK hx_err hx_secret_heap_init(size_t heap_size);
/* Whether the secure heap is locked in memory (mlock; false: it works, but may be swapped out,
 * typically because RLIMIT_MEMLOCK is below its size). */
bool hx_secret_heap_locked(void);
/* true when secrets are being placed in the secure heap. */
bool hx_secret_heap_active(void);
/* Bytes still free in the secure heap (SIZE_MAX without one). */
size_t hx_secret_heap_room(void);

/*
 * Raw zeroed scratch memory for key material that does not fit struct hx_secret (buffers
 * of several keys): the secure heap when there is one (NULL when it is full), else the normal
 * heap. Free it only
 * with hx_secure_free, which wipes it and returns it to the heap it came from.
 */
void *hx_secure_alloc(size_t len);
void hx_secure_free(void *p, size_t len);

/* A zero-filled secret of len bytes (1 .. HX_SECRET_MAX_LEN); HX_ERR_NOMEM when the secure
 * heap is full (never the normal heap while there is a secure heap). */
HX_MUST_CHECK hx_err hx_secret_new(size_t len, struct hx_secret **out);
/* A secret holding a copy of len bytes at p. The caller still wipes its own copy. */
HX_MUST_CHECK hx_err hx_secret_from(const void *p, size_t len, struct hx_secret **out);
/* A new secret with the same bytes. */
HX_MUST_CHECK hx_err hx_secret_dup(const struct hx_secret *s, struct hx_secret **out);
/* Wipes and frees; NULL is a no-op. */
void hx_secret_free(struct hx_secret *s);

size_t hx_secret_len(const struct hx_secret *s);
const uint8_t *hx_secret_data(const struct hx_secret *s);
/* Writable access, for code that fills a secret (KDF output, decapsulation). */
uint8_t *hx_secret_data_mut(struct hx_secret *s);
/* true when the bytes were placed in the secure heap. */
bool hx_secret_is_secure(const struct hx_secret *s);

/*
 * Constant-time equality: time depends only on the lengths, never on the contents.
 * Different lengths compare unequal.
 */
bool hx_secret_equal(const struct hx_secret *a, const struct hx_secret *b);
/* Constant-time comparison of two equal-length byte strings (tags, MACs). */
bool hx_ct_equal(const void *a, const void *b, size_t len);

#endif

#include "common/secret.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

struct hx_secret {
    size_t len;
    uint8_t *bytes;
    bool secure;
};

static size_t heap_total; /* the secure heap's size (set once, before any thread) */
static bool heap_locked;  /* mlock succeeded (set once, before any thread) */

hx_err hx_secret_heap_init(size_t heap_size)
{
    int rc;

    if (CRYPTO_secure_malloc_initialized()) {
        return HX_OK;
    }
    /* minsize 32: every allocation is rounded up to at least one key's worth. */
    rc = CRYPTO_secure_malloc_init(heap_size, 32);
    if (rc == 0) {
        return HX_ERR_UNSUPPORTED;
    }
    heap_total = heap_size;
    /* rc == 2: the heap works but mlock failed; the pages may be swapped. Still guarded. */
    heap_locked = rc == 1;
    return HX_OK;
}

bool hx_secret_heap_locked(void)
{
    return heap_locked;
}

bool hx_secret_heap_active(void)
{
    return CRYPTO_secure_malloc_initialized() != 0;
}

size_t hx_secret_heap_room(void)
{
    size_t used;

    /* Before the heap is made, OpenSSL 3.5's CRYPTO_secure_used() takes a lock it has not
     * made yet (a crash): ask it only once there is a heap. */
    if (!CRYPTO_secure_malloc_initialized()) {
        return SIZE_MAX;
    }
    used = CRYPTO_secure_used();
    return heap_total > used ? heap_total - used : 0;
}

void *hx_secure_alloc(size_t len)
{
    void *p = OPENSSL_secure_zalloc(len);

    /* With a secure heap, key material never lands on the normal heap: a full heap fails. */
    return p != NULL || CRYPTO_secure_malloc_initialized() ? p : OPENSSL_zalloc(len);
}

void hx_secure_free(void *p, size_t len)
{
    if (p == NULL) {
        return;
    }
    if (CRYPTO_secure_allocated(p)) {
        OPENSSL_secure_clear_free(p, len);
    } else {
        OPENSSL_clear_free(p, len);
    }
}

hx_err hx_secret_new(size_t len, struct hx_secret **out)
{
    struct hx_secret *s;

    *out = NULL;
    if (len == 0 || len > HX_SECRET_MAX_LEN) {
        return HX_ERR_INVALID_ARG;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        return HX_ERR_NOMEM;
    }
    /*
     * Without a secure heap OpenSSL itself uses the normal heap. With one that is full the
     * secret is refused (HX_ERR_NOMEM): key material never lands on the normal heap; the
     * daemon sizes the heap from its limits and holds production back while it is full.
     */
    if ((s->bytes = hx_secure_alloc(len)) == NULL) {
        free(s);
        return HX_ERR_NOMEM;
    }
    s->len = len;
    s->secure = CRYPTO_secure_allocated(s->bytes) != 0;
    *out = s;
    return HX_OK;
}

hx_err hx_secret_from(const void *p, size_t len, struct hx_secret **out)
{
    hx_err e;

    if ((e = hx_secret_new(len, out)) != HX_OK) {
        return e;
    }
    memcpy((*out)->bytes, p, len);
    return HX_OK;
}

hx_err hx_secret_dup(const struct hx_secret *s, struct hx_secret **out)
{
    return hx_secret_from(s->bytes, s->len, out);
}

void hx_secret_free(struct hx_secret *s)
{
    if (s == NULL) {
        return;
    }
    if (s->secure) {
        OPENSSL_secure_clear_free(s->bytes, s->len);
    } else {
        OPENSSL_clear_free(s->bytes, s->len);
    }
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
}

size_t hx_secret_len(const struct hx_secret *s)
{
    return s->len;
}

const uint8_t *hx_secret_data(const struct hx_secret *s)
{
    return s->bytes;
}

uint8_t *hx_secret_data_mut(struct hx_secret *s)
{
    return s->bytes;
}

bool hx_secret_is_secure(const struct hx_secret *s)
{
    return s->secure;
}

bool hx_ct_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

bool hx_secret_equal(const struct hx_secret *a, const struct hx_secret *b)
{
    /* Lengths are public (they come from the QoS); only contents must not leak. */
    if (a->len != b->len) {
        return false;
    }
    return hx_ct_equal(a->bytes, b->bytes, a->len);
}

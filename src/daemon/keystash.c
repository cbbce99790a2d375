/*
 * Key pairs made ahead by initiator workers while they wait (keystash.h).
 */
#include "daemon/keystash.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

/* The ML-KEM parameter sets the stash serves, in enum hx_kem_alg order. */
#define N_ALGS 3
#define WANTED_NS (2 * 1000000000LL) /* a take within this long keeps an algorithm filling */

struct stash_pair {
    struct hx_kem_key *key;
    uint8_t *pub;
};

struct stash_alg {
    struct stash_pair *pairs; /* a stack of held pairs */
    size_t held;
    size_t making;        /* pairs being made now (counted against cap) */
    int64_t wanted_until; /* hx_monotime_ns deadline; 0: never wanted */
};

struct hxd_keystash {
    pthread_mutex_t lock;
    size_t cap;
    size_t heap_reserve;
    struct stash_alg algs[N_ALGS];
};

static int slot_of(enum hx_kem_alg alg)
{
    switch (alg) {
    case HX_KEM_ML_KEM_512:
        return 0;
    case HX_KEM_ML_KEM_768:
        return 1;
    case HX_KEM_ML_KEM_1024:
        return 2;
    default:
        return -1;
    }
}

static const enum hx_kem_alg alg_of[N_ALGS] = {HX_KEM_ML_KEM_512, HX_KEM_ML_KEM_768,
                                               HX_KEM_ML_KEM_1024};

hx_err hxd_keystash_new(size_t cap, size_t heap_reserve, struct hxd_keystash **out)
{
    struct hxd_keystash *ks;

    *out = NULL;
    if (cap == 0 || cap > 4096) {
        return HX_ERR_INVALID_ARG;
    }
    if ((ks = calloc(1, sizeof(*ks))) == NULL) {
        return HX_ERR_NOMEM;
    }
    for (size_t i = 0; i < N_ALGS; i++) {
        if ((ks->algs[i].pairs = calloc(cap, sizeof(*ks->algs[i].pairs))) == NULL) {
            hxd_keystash_free(ks);
            return HX_ERR_NOMEM;
        }
    }
    if (pthread_mutex_init(&ks->lock, NULL) != 0) {
        for (size_t i = 0; i < N_ALGS; i++) {
            free(ks->algs[i].pairs);
        }
        free(ks);
        return HX_ERR_NOMEM;
    }
    ks->cap = cap;
    ks->heap_reserve = heap_reserve;
    *out = ks;
    return HX_OK;
}

void hxd_keystash_free(struct hxd_keystash *ks)
{
    if (ks == NULL) {
        return;
    }
    for (size_t i = 0; i < N_ALGS; i++) {
        for (size_t k = 0; ks->algs[i].pairs != NULL && k < ks->algs[i].held; k++) {
            hx_kem_key_free(ks->algs[i].pairs[k].key);
            free(ks->algs[i].pairs[k].pub);
        }
        free(ks->algs[i].pairs);
    }
    if (ks->cap > 0) { /* the lock was made */
        pthread_mutex_destroy(&ks->lock);
    }
    free(ks);
}

bool hxd_keystash_take(struct hxd_keystash *ks, enum hx_kem_alg alg, struct hx_kem_key **key,
                       uint8_t *pub, size_t pub_len)
{
    struct hx_kem_sizes sz;
    struct stash_pair p = {NULL, NULL};
    struct stash_alg *a;
    int i = slot_of(alg);

    *key = NULL;
    hx_kem_standard_sizes(alg, &sz);
    if (ks == NULL || i < 0 || pub_len != sz.public_key) {
        return false;
    }
    a = &ks->algs[i];
    pthread_mutex_lock(&ks->lock);
    a->wanted_until = hx_monotime_ns() + WANTED_NS;
    if (a->held > 0) {
        p = a->pairs[--a->held];
        memset(&a->pairs[a->held], 0, sizeof(a->pairs[a->held]));
    }
    pthread_mutex_unlock(&ks->lock);
    if (p.key == NULL) {
        return false;
    }
    memcpy(pub, p.pub, pub_len);
    free(p.pub);
    *key = p.key;
    return true;
}

bool hxd_keystash_fill_one(struct hxd_keystash *ks)
{
    struct hx_kem_sizes sz;
    struct stash_pair p = {NULL, NULL};
    struct stash_alg *a = NULL;
    enum hx_kem_alg alg = HX_KEM_ML_KEM_768;
    int64_t now = hx_monotime_ns();
    size_t len = 0;
    bool kept = false;

    if (ks == NULL) {
        return false;
    }
    /* Never at the cost of a batch: the secure heap keeps its reserve (pool.c kicks a batch
     * only with room for it). */
    if (hx_secret_heap_room() < ks->heap_reserve) {
        return false;
    }
    pthread_mutex_lock(&ks->lock);
    for (size_t i = 0; i < N_ALGS && a == NULL; i++) {
        struct stash_alg *c = &ks->algs[i];
        if (c->wanted_until > now && c->held + c->making < ks->cap) {
            a = c;
            alg = alg_of[i];
            a->making++;
        }
    }
    pthread_mutex_unlock(&ks->lock);
    if (a == NULL) {
        return false;
    }
    hx_kem_standard_sizes(alg, &sz);
    if ((p.pub = malloc(sz.public_key)) != NULL &&
        (hx_kem_keygen(alg, &p.key, p.pub, sz.public_key, &len) != HX_OK || len != sz.public_key)) {
        hx_kem_key_free(p.key);
        p.key = NULL;
    }
    pthread_mutex_lock(&ks->lock);
    a->making--;
    if (p.key != NULL && a->held < ks->cap) {
        a->pairs[a->held++] = p;
        kept = true;
    }
    pthread_mutex_unlock(&ks->lock);
    if (!kept) {
        hx_kem_key_free(p.key);
        free(p.pub);
    }
    return kept;
}

size_t hxd_keystash_held(struct hxd_keystash *ks, enum hx_kem_alg alg)
{
    size_t n;
    int i = slot_of(alg);

    if (ks == NULL || i < 0) {
        return 0;
    }
    pthread_mutex_lock(&ks->lock);
    n = ks->algs[i].held;
    pthread_mutex_unlock(&ks->lock);
    return n;
}

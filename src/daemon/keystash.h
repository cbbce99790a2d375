/*
 * Key pairs made ahead (docs/performance.md, "Key pairs made ahead"): an initiator worker that
 * waits for the peer's reply generates ML-KEM key pairs for the node's next batches instead of
 * sleeping, so that key generation, a third of the initiator's crypto with a fresh key pair per
 * position, leaves a batch's critical path and fills the time the worker would idle.
 *
 * Every pair is fresh and taken exactly once (removed from the stash under its lock), then owned
 * and freed by its batch as one it made itself; an unused pair has encapsulated nothing, so it
 * protects nothing yet. The stash is bounded (the largest batch a stream may reach,
 * hxd_config_batch_top, in pairs per algorithm), fills only for the algorithms this node's batches
 * took within the last two seconds and only while the secure heap keeps more than a batch's room,
 * and is freed (wiped by OpenSSL) when the pools stop. Only ML-KEM: X25519's key generation is
 * cheap and Classic McEliece's public keys are too large to hold ahead.
 *
 * Its lock is a leaf: nothing else is taken under it, and nothing slow (no key generation) runs
 * under it. Every function takes a NULL stash (none made: unit tests, pools not started).
 */
#ifndef HX_DAEMON_KEYSTASH_H
#define HX_DAEMON_KEYSTASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/kem.h"

struct hxd_keystash;

/* A stash of at most cap key pairs per ML-KEM parameter set; heap_reserve: the secure-heap room
 * (bytes) it must leave free when it fills. */
HX_MUST_CHECK hx_err hxd_keystash_new(size_t cap, size_t heap_reserve, struct hxd_keystash **out);
/* Frees every pair still held (OpenSSL wipes their private keys). */
void hxd_keystash_free(struct hxd_keystash *ks);
/*
 * A pair made ahead for alg, removed from the stash: *key (the caller's to free) and its public
 * key copied into pub (pub_len bytes, the standard size). false: none there (the caller makes
 * one); the algorithm is marked as wanted either way.
 */
bool hxd_keystash_take(struct hxd_keystash *ks, enum hx_kem_alg alg, struct hx_kem_key **key,
                       uint8_t *pub, size_t pub_len);
/* Makes one pair for an algorithm that is wanted and not full (no lock may be held by the
 * caller: key generation runs here). false: nothing wanted, or it failed. */
bool hxd_keystash_fill_one(struct hxd_keystash *ks);
/* Pairs held now for alg (tests, STATUS). */
size_t hxd_keystash_held(struct hxd_keystash *ks, enum hx_kem_alg alg);

#endif

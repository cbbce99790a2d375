/*
 * The store's secret side, used by store.c only: the state directory, the storage key and the
 * sealing of keys at rest (docs/store.md). A sealed key is nonce || ciphertext || tag,
 * HX_STORE_SEAL_OVERHEAD bytes longer than the key; the AAD binds stream id and position.
 */
#ifndef HX_STORE_SEAL_H
#define HX_STORE_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/secret.h"
#include "common/uuid.h"

#define NONCE_LEN 12
#define TAG_LEN 16
#define HX_STORE_SEAL_OVERHEAD (NONCE_LEN + TAG_LEN)

/* Makes dir (0700) if missing; refuses one that is not a directory of ours or that others may
 * write. */
HX_MUST_CHECK hx_err hx_store_make_dir(const char *dir, char *why, size_t why_len);
/* dir/storage.key: read (a regular file of ours, mode 0600, exactly 32 bytes), or made once
 * from the CSPRNG (O_EXCL: two starts never make two keys). */
HX_MUST_CHECK hx_err hx_store_storage_key(const char *dir, struct hx_secret **out, char *why,
                                          size_t why_len);
/* out: nonce || ciphertext || tag (hx_secret_len(k) + HX_STORE_SEAL_OVERHEAD bytes). */
HX_MUST_CHECK hx_err hx_store_seal(const struct hx_secret *storage, const struct hx_uuid *ksid,
                                   uint64_t pos, const struct hx_secret *k, uint8_t *out);
/* The key sealed in in, if it opens under storage for this stream and position. */
HX_MUST_CHECK hx_err hx_store_unseal(const struct hx_secret *storage, const struct hx_uuid *ksid,
                                     uint64_t pos, const uint8_t *in, size_t in_len,
                                     struct hx_secret **out);

#endif

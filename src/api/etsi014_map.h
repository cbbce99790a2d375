/*
 * ETSI 014 onto hybrid key streams: the pure parts (no threads, no streams), unit-tested on
 * their own (tests/unit/test_etsi014_map.c). docs/etsi014.md explains the design.
 *
 * - Who may call: the caller of every 014 call is a local SAE (api.etsi014.local_saes); the
 *   other SAE named in the URL must be a remote one, attached to a trusted peer node (announced
 *   by it, or api.etsi014.remote_saes). Anything else: 401 for the caller, 400 for the other.
 * - Each ordered SAE pair (master, slave) has its own key stream, initiated by the master's
 *   node, its id derived from the two SAE ids and the two node UUIDs, so that both nodes open
 *   the same stream without a message of their own; owned by the identity "etsi014", so no 004
 *   application can read it, and no 014 pair shares it.
 * - Key IDs: the position of the key in its pair's stream and its size, enciphered with
 *   AES-256 under a key both nodes derive from the stream's first key (position 0, never handed
 *   out): the slave's node deciphers a key_ID back into the position (and checks 58 redundant
 *   bits), nobody without the stream's key can make or read one. Cycle-walking keeps every
 *   key_ID an RFC 9562 version-4 UUID.
 */
#ifndef HX_API_ETSI014_MAP_H
#define HX_API_ETSI014_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/uuid.h"
#include "daemon/config.h"

#define HXD_014_IDENTITY "etsi014"
#define HXD_014_KID_LEN 32 /* the key-ID cipher's key */
#define HXD_014_MAX_POS ((UINT64_C(1) << 48) - 1)

/* The stream of the ordered pair master -> slave between the two nodes. */
void hxd_014_pair_ksid(const char *master, const struct hx_uuid *master_node, const char *slave,
                       const struct hx_uuid *slave_node, struct hx_uuid *out);

/* The key-ID cipher's key from the stream's key at position 0 (any length from 16 bytes). */
HX_MUST_CHECK hx_err hxd_014_kid_derive(const uint8_t *key0, size_t len, const struct hx_uuid *ksid,
                                        uint8_t kid[HXD_014_KID_LEN]);
/* The key_ID of position pos (1..HXD_014_MAX_POS) with size_bytes (1..65535). */
HX_MUST_CHECK hx_err hxd_014_key_id_make(const uint8_t kid[HXD_014_KID_LEN], uint64_t pos,
                                         uint32_t size_bytes, struct hx_uuid *out);
/* Back: HX_ERR_NOT_FOUND when the key_ID was not made under this key. */
HX_MUST_CHECK hx_err hxd_014_key_id_open(const uint8_t kid[HXD_014_KID_LEN],
                                         const struct hx_uuid *id, uint64_t *pos,
                                         uint32_t *size_bytes);

/* An SAE's index in a list, or -1. */
int hxd_014_sae_index(const struct hxd_014_saes *l, const char *sae);

/* Why a call is refused before any key moves: the HTTP status and the message. */
struct hxd_014_verdict {
    int http;          /* 0: allowed; 401 or 400 */
    const char *msg;   /* 400: for the reply */
    int local, remote; /* allowed: the indices of the caller and of the other SAE */
};

/* The caller (the certificate's common name) and the other SAE of a 014 URL, against the
 * local SAEs and the remote ones (configured or announced by the peers). */
void hxd_014_authorize(const struct hxd_014_saes *local, const struct hxd_014_saes *remote,
                       const char *caller, const char *other, struct hxd_014_verdict *v);

#endif

/*
 * The node's QKD source over ETSI GS QKD 014 (HTTPS with a client certificate, libcurl): the
 * initiator asks its KME for keys with enc_keys and sends their ids over the peer link; the
 * responder fetches the same keys from its KME with dec_keys. Blocking calls, made from worker
 * threads. libcurl here uses GnuTLS, which has no ML-DSA: the SAE certificate is ECDSA or RSA.
 */
#ifndef HX_SOURCE_QKD014_H
#define HX_SOURCE_QKD014_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/uuid.h"

struct hx_qkd014 {
    char base_url[300]; /* https://host:port */
    char cert[512], key[512], ca[512];
    long timeout_ms;
};

/* enc_keys for `count` keys of `bytes` bytes each; keys (count * bytes) and their ids. */
HX_MUST_CHECK hx_err hx_qkd014_enc(const struct hx_qkd014 *c, const char *slave_sae, uint32_t count,
                                   size_t bytes, uint8_t *keys, struct hx_uuid *ids, char *msg,
                                   size_t msg_len);
/* dec_keys for the given ids (in that order); keys (count * bytes). */
HX_MUST_CHECK hx_err hx_qkd014_dec(const struct hx_qkd014 *c, const char *master_sae,
                                   const struct hx_uuid *ids, uint32_t count, size_t bytes,
                                   uint8_t *keys, char *msg, size_t msg_len);

/*
 * GET status for the slave SAE: the KME's max_key_per_request (0: the status does not give
 * it). HX_ERR_IO when the KME did not answer, HX_ERR_STATE / HX_ERR_NO_KEY for an HTTP error,
 * HX_ERR_PROTO for a malformed status (msg says which).
 */
HX_MUST_CHECK hx_err hx_qkd014_status(const struct hx_qkd014 *c, const char *slave_sae,
                                      uint32_t *max_per_request, char *msg, size_t msg_len);
/* Parses a status object's max_key_per_request (absent: 0; present: an integer >= 1). */
HX_MUST_CHECK hx_err hx_qkd014_parse_status(const char *json, size_t len, uint32_t *max_per_request,
                                            char *msg, size_t msg_len);

/*
 * Parses a KME's key container {"keys": [{"key_ID", "key" (base64)}, ...]} of exactly count
 * keys of bytes bytes each into keys (count * bytes): in order, their ids into ids; or, with
 * ids_given, each at the position of its id in ids (a key not asked for is an error).
 */
HX_MUST_CHECK hx_err hx_qkd014_parse_keys(const char *json, size_t len, uint32_t count,
                                          size_t bytes, uint8_t *keys, struct hx_uuid *ids,
                                          bool ids_given, char *msg, size_t msg_len);

#endif

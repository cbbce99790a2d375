/*
 * Node identities from certificates, beyond the trusted peers: a certificate handed over in a
 * message (the relay's topology announcements, docs/relay.md) is checked against the network
 * CA alone (never the system store), and must name the node by a UUID SAN
 * (URI:urn:uuid:<uuid>); its key is what verifies that node's signatures. The peer links'
 * handshake (link_tls.c) reads the UUID SAN with the same function.
 */
#ifndef HX_PEER_CERTID_H
#define HX_PEER_CERTID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/uuid.h"
#include "crypto/sig.h"

struct hx_certid;

/* The network CA certificates (PEM, one or more) as the only trust anchors. */
HX_MUST_CHECK hx_err hx_certid_new(const char *ca_path, struct hx_certid **out, char *why,
                                   size_t why_len);
void hx_certid_free(struct hx_certid *c);

/*
 * Checks a DER certificate: it parses, is issued by the CA (the chain verifies to it, and the
 * time is within its validity), and carries a node UUID SAN. HX_OK with the node, its
 * signature key (caller frees) and its expiry (Unix time); HX_ERR_VERIFY with why otherwise.
 */
HX_MUST_CHECK hx_err hx_certid_verify(const struct hx_certid *c, const uint8_t *der, size_t len,
                                      struct hx_uuid *node, struct hx_sig_key **key,
                                      int64_t *not_after, char *why, size_t why_len);

/* The first certificate of a PEM file as DER (malloc'd; this node's own, to announce). */
HX_MUST_CHECK hx_err hx_certid_load_der(const char *pem_path, uint8_t **der, size_t *len);

/* The node UUID in an X509's SAN (URI:urn:uuid:...); x509 is an OpenSSL X509 *. */
bool hx_certid_uuid(void *x509, struct hx_uuid *out);

#endif

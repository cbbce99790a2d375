/*
 * ETSI 014: which SAEs are attached to which node, learned over the peer links. Each node sends
 * its api.etsi014.local_saes in an SAE_LIST (proto/peer.h) to its peers, again every few
 * seconds (hxd_svc_014_announce, from the 014 server); a peer's list replaces the one it sent
 * before. The lists are kept in struct hxd under d->lock.
 */
#ifndef HX_DAEMON_ETSI014_PEERS_H
#define HX_DAEMON_ETSI014_PEERS_H

#include <stddef.h>
#include <stdint.h>

#include "common/uuid.h"

struct hxd;

/* An SAE_LIST from a peer (its link's I/O thread): decoded, then kept; a malformed one is
 * dropped and logged. */
void hxd_014_on_sae_list(struct hxd *d, const struct hx_uuid *peer, const uint8_t *p, size_t len);

#endif

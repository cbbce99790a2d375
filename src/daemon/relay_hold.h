/*
 * Messages held for a short time at the end of a relayed path (daemon/relay_fwd.c, docs/relay.md
 * "Forwarding"): a RELAY_FWD whose origin is not on this node's map yet (its announcement is
 * still on its way; a STREAM_OPEN sent as soon as the sender's map had a path can overtake the
 * sender's own announcement) waits until the origin's certificate is verified, and is delivered
 * then, in arrival order; or it is dropped when its time is over. Bounded in count, bytes and
 * time. Pure: no locks, no I/O (the caller holds the relay's lock). Held bytes are wiped when
 * they go (a BATCH_REQ may carry the relayed QKD part, one-time padded); they are taken from the
 * normal heap, not the secure heap, which is sized for key production alone.
 */
#ifndef HX_DAEMON_RELAY_HOLD_H
#define HX_DAEMON_RELAY_HOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/uuid.h"

#define HX_HOLD_MAX 32           /* messages */
#define HX_HOLD_BYTES (8u << 20) /* and bytes (two largest BATCH_REQs) */
#define HX_HOLD_MS 5000          /* each waits at most this long */

struct hx_hold_item {
    struct hx_uuid from;   /* the neighbour it came from */
    struct hx_uuid origin; /* the path's first node */
    int64_t until_ms;      /* monotonic ms */
    uint8_t *p;            /* the whole RELAY_FWD frame */
    size_t len;
};

struct hx_hold {
    struct hx_hold_item item[HX_HOLD_MAX]; /* in arrival order */
    size_t n, bytes;
};

/* Is something from origin held (a later message of it must wait behind it)? */
bool hx_hold_has(const struct hx_hold *h, const struct hx_uuid *origin);
/* Holds a copy of the frame p until now_ms + HX_HOLD_MS; HX_ERR_NOSPACE when HX_HOLD_MAX
 * messages or HX_HOLD_BYTES would be exceeded, HX_ERR_NOMEM. */
HX_MUST_CHECK hx_err hx_hold_put(struct hx_hold *h, const struct hx_uuid *from,
                                 const struct hx_uuid *origin, const uint8_t *p, size_t len,
                                 int64_t now_ms);
/* Takes out the first held message (arrival order) whose origin known(arg, origin) says is on
 * the map now (*expired false), or whose time is over (*expired true); the caller owns out->p
 * (hx_hold_item_free). false: nothing to act on now. */
bool hx_hold_next(struct hx_hold *h, bool (*known)(void *arg, const struct hx_uuid *origin),
                  void *arg, int64_t now_ms, struct hx_hold_item *out, bool *expired);
void hx_hold_item_free(struct hx_hold_item *it);
/* Drops everything held (wiped). */
void hx_hold_wipe(struct hx_hold *h);

#endif

/*
 * Key streams (stream.c): the table of struct hxd_stream, its hash index by stream id, and each
 * stream's ready keys sorted by position. Callers hold d->lock. The structs are in daemon/hxd.h;
 * this module calls nothing above it (no store, no peer protocol, no API).
 */
#ifndef HX_DAEMON_STREAM_H
#define HX_DAEMON_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/secret.h"
#include "common/uuid.h"

struct hxd;
struct hxd_stream;
struct hxd_pending;

/* The stream table has a hash index by stream id: lookups cost the same with 4 or 4 million
 * slots (limits.max_streams). */
HX_MUST_CHECK hx_err hxd_streams_init(struct hxd *d);
void hxd_streams_free(struct hxd *d);
struct hxd_stream *hxd_stream_find(struct hxd *d, const struct hx_uuid *ksid);
/* A fresh stream with this id (NULL when the table is full); the caller fills the rest. */
struct hxd_stream *hxd_stream_new(struct hxd *d, const struct hx_uuid *ksid);
/* A copy of a stream's fixed fields (ids, URIs, QoS, counters) for use without the lock: none
 * of its buffers, batches in flight or keys come along. */
void hxd_stream_copy_fixed(struct hxd_stream *dst, const struct hxd_stream *s);
/* Wipes a stream's keys and frees its slot (its waiting GET_KEYs are woken). */
void hxd_stream_drop(struct hxd *d, struct hxd_stream *s);
/*
 * The GET_KEYs waiting for a stream's keys wait on their stream's own condition variable
 * (monotonic), not on d->changed: a batch of one stream wakes its own applications only.
 * Whoever changes what they wait for (keys, the watermark, failing, peer_closed, the stream's
 * end, the daemon stopping) wakes them: hxd_stream_wake (lock held).
 */
void hxd_stream_wake(struct hxd *d, const struct hxd_stream *s);
/* Every stream's waiters (the daemon stops). */
void hxd_streams_wake_all(struct hxd *d);
/* Waits for hxd_stream_wake(s) until deadline (lock held); true when the deadline passed. */
bool hxd_stream_wait(struct hxd *d, const struct hxd_stream *s, int64_t deadline);
/* Wipes a responder's pending batch and frees its slot. */
void hxd_pending_drop(struct hxd_pending *p);
/* Moves the ready key at pos out of the stream (NULL if none). */
/* The relays on the path the batch of position pos travelled (newest batch first); -1 when no
 * batch of this run of the daemon noted it (a key restored from the store). */
int hxd_stream_hops_at(const struct hxd_stream *s, uint64_t pos);
struct hx_secret *hxd_stream_take(struct hxd_stream *s, uint64_t pos, double *ready_at);
/* Puts a key taken by hxd_stream_take back (its delivery could not be recorded). */
void hxd_stream_untake(struct hxd_stream *s, uint64_t pos, double ready_at, struct hx_secret *key);
/* Ready keys at positions above pos: a GET_KEY's reserve (pace.h). */
uint64_t hxd_stream_ready_after(const struct hxd_stream *s, uint64_t pos);
/* A ready key (not prepared) at pos? */
bool hxd_stream_has(const struct hxd_stream *s, uint64_t pos);
/*
 * The key buffer's window: positions from the lowest one still held here (or the watermark)
 * up to limits.buffer_depth (at least one batch) further; the end is returned. Nothing beyond
 * is made for a GET_KEY: it refuses it (service.c). The window starts
 * at the lowest key held, not at the watermark: a client asking ever further ahead, leaving
 * the positions between unclaimed, finds it does not move.
 */
uint64_t hxd_stream_window_end(const struct hxd *d, const struct hxd_stream *s);
/* The responder's window at the initiator (the limit its STREAM_WINDOW gave, window.c): may
 * the initiator make count positions from first? hxd_window_cut: count cut so that
 * first + count stays within it (0: no room). No limit heard: no limit. */
bool hxd_window_allows(const struct hxd_stream *s, uint64_t first, uint32_t count);
uint32_t hxd_window_cut(const struct hxd_stream *s, uint64_t first, uint32_t count);
/*
 * Positions in the initiator's next new batch (d->lock held), before the frame cap and the
 * responder's window cut it: limits.batch_size, doubled while the stream's ready keys would
 * still hold two batches of the doubled size, the buffer (hxd_stream_window_end, counted from
 * next_first: the batches in flight are below it) has room for one, and the secure heap for it
 * twice, up to limits.batch_max. So an application draining the buffer gets small batches (the
 * shortest wait for the next one) and a stock that is filling, or an application slower than
 * production, large ones (the four ML-DSA operations of a batch over more keys). may_grow
 * false (a KME whose per-request limit is unknown): limits.batch_size.
 */
uint32_t hxd_stream_batch_size(const struct hxd *d, const struct hxd_stream *s, bool may_grow);
/* A prepared key at pos? */
bool hxd_stream_has_prepared(const struct hxd_stream *s, uint64_t pos);
/* A key at pos; a committed one (not prepared) counts as made for the stream's pace. */
hx_err hxd_stream_add_key(struct hxd_stream *s, uint64_t pos, struct hx_secret *key, bool prepared);
/* Prepared keys in first..first+count become ready / are wiped. */
void hxd_stream_ready_range(struct hxd_stream *s, uint64_t first, uint32_t count);
void hxd_stream_discard_range(struct hxd_stream *s, uint64_t first, uint32_t count);

#endif

/*
 * Paced delivery (pace.c): a jitter buffer between a stream's production and its GET_KEYs.
 *
 * Keys become ready a batch at a time (limits.batch_size), so an application that asks faster
 * than the nodes produce gets batch_size - 1 keys at once and then waits the whole time
 * between two batches (docs/performance.md, "The draining application"). While the stream's
 * reserve (ready keys beyond the position asked) is below a target (two batches: service.c
 * pace_target), the controller releases keys at the measured production rate R instead, in bursts:
 * 4 keys at once (HXD_PACE_BURST), the next burst 4 gaps later, the gap 1/R stretched a little when
 * the reserve is low. At or above the target it never holds a key (a filled buffer keeps its speed,
 * a slow application never waits). The reserve then absorbs the batches' granularity and jitter:
 * one call in 4 of a draining application waits about 4/R (1 ms at 4 000 keys/s) instead of one in
 * batch_size waiting batch_size/R, and in the long run keys leave as fast as they are made. Why 4:
 * every held call is a sleep and a wake-up, which cost CPU that production needs (on the 2-core
 * benchmark machine, holding every call cost ~20 % more CPU per key with 64 streams draining,
 * bursts of 2 ~13 % on one stream; docs/performance.md "Paced delivery"; those figures still
 * included the batches the initiator then cut to the responder's window: since it no longer does,
 * bursts of 2 cost ~4 % more CPU per key and 2-4 % of keys/s for a tenth off the tail, "third
 * round"), and a sleep may end late on a busy machine: the fewer, the better, as long as 4/R stays
 * well under the latency asked of GET_KEY.
 *
 * R is estimated from the times keys are made ready (hxd_pace_arrive), leaving out the time
 * production was held by a full buffer (limits.buffer_depth: an application slower than
 * production, or gone for a while), with old samples fading over HXD_PACE_TAU_NS. (Not only
 * the time the reserve was below the target: a stream at the target crosses it with every
 * batch, and counting from the crossing overestimates R.) The controller is pure
 * (times are given, in nanoseconds on the monotonic clock): the caller holds d->lock, keeps
 * one struct per stream, takes only keys that are ready, and does the waiting.
 */
#ifndef HX_DAEMON_PACE_H
#define HX_DAEMON_PACE_H

#include <stdbool.h>
#include <stdint.h>

/* How fast old rate samples fade (ns): half their weight after TAU of newer samples. */
#define HXD_PACE_TAU_NS 500000000LL
/* No gap is longer than this (ns), whatever the estimate: a stream producing less than 20
 * keys/s is paced as if it made 20 (its reserve runs out, and its application waits for its
 * batches as without pacing), and a ready key is never held longer than HXD_PACE_BURST gaps
 * (200 ms), also while the estimate still remembers a stall that has ended. */
#define HXD_PACE_MAX_GAP_NS 50000000LL
/* The gap at an empty reserve is (1 + STRETCH) / R; at the target 1 / R. */
#define HXD_PACE_STRETCH 0.25
/* Keys per burst. */
#define HXD_PACE_BURST 4

struct hxd_pace {
    double acc_keys, acc_ns; /* faded sums of keys made ready and of the time they took */
    int64_t last_arrival;    /* when keys were last made ready; 0: never */
    int64_t free_since;      /* when the buffer last stopped holding production */
    bool held;               /* the buffer held production at the last delivery */
    int64_t next_burst;      /* the current burst's keys are out: the next may leave then;
                                0: no key has left yet */
    uint32_t burst_left;     /* keys of the current burst that may still leave at once */
};

/* count keys of the stream became ready at now. */
void hxd_pace_arrive(struct hxd_pace *p, int64_t now, uint64_t count);
/* The estimated time between two keys made (ns); 0 while there is no estimate. */
int64_t hxd_pace_gap_ns(const struct hxd_pace *p);
/*
 * When the key a GET_KEY asked for (ready now) may leave: now when the reserve is at or above
 * target, when there is no estimate yet, or while the current burst has keys left; else when
 * the next burst may begin (now for an application slower than that). Never after deadline.
 * Changes nothing: ask again after a wait (a batch arriving meanwhile may end it).
 */
int64_t hxd_pace_release_at(const struct hxd_pace *p, int64_t now, uint64_t reserve,
                            uint64_t target, int64_t deadline);
/* A key left at now, leaving reserve ready keys beyond it (the next burst's gap is set from
 * it); held: they leave no room in the buffer for a new batch (production waits for the
 * application). */
void hxd_pace_taken(struct hxd_pace *p, int64_t now, uint64_t reserve, uint64_t target, bool held);

#endif

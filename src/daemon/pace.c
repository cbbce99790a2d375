/* Paced delivery: the production rate estimate and the release times (pace.h). Pure. */
#include "daemon/pace.h"

/* Fewer keys than this in the estimate, or less time: no estimate (the first batch). */
#define MIN_KEYS 2.0
#define MIN_NS 100000.0

void hxd_pace_arrive(struct hxd_pace *p, int64_t now, uint64_t count)
{
    if (!p->held && p->last_arrival != 0 && count > 0) {
        /* Only the time since the buffer had room counts: before it, production was held by
         * the application, not by how fast it can go. */
        int64_t from = p->last_arrival > p->free_since ? p->last_arrival : p->free_since;
        double dt = now > from ? (double)(now - from) : 0.0;
        double keep = (double)HXD_PACE_TAU_NS / ((double)HXD_PACE_TAU_NS + dt);

        p->acc_keys = p->acc_keys * keep + (double)count;
        p->acc_ns = p->acc_ns * keep + dt;
    }
    if (count > 0 && now > p->last_arrival) {
        p->last_arrival = now;
    }
}

int64_t hxd_pace_gap_ns(const struct hxd_pace *p)
{
    double gap;

    if (p->acc_keys < MIN_KEYS || p->acc_ns < MIN_NS) {
        return 0;
    }
    gap = p->acc_ns / p->acc_keys;
    return gap > (double)HXD_PACE_MAX_GAP_NS ? HXD_PACE_MAX_GAP_NS : (int64_t)gap;
}

/* The gap for a reserve below target: 1/R, up to (1 + STRETCH)/R when it is empty. */
static int64_t stretched(const struct hxd_pace *p, uint64_t reserve, uint64_t target)
{
    int64_t gap = hxd_pace_gap_ns(p);
    double low = reserve < target ? (double)(target - reserve) / (double)target : 0.0;

    gap = (int64_t)((double)gap * (1.0 + HXD_PACE_STRETCH * low));
    return gap > HXD_PACE_MAX_GAP_NS ? HXD_PACE_MAX_GAP_NS : gap;
}

int64_t hxd_pace_release_at(const struct hxd_pace *p, int64_t now, uint64_t reserve,
                            uint64_t target, int64_t deadline)
{
    int64_t at = p->next_burst;

    if (reserve >= target || hxd_pace_gap_ns(p) == 0 || at == 0 || p->burst_left > 0 || at <= now) {
        return now;
    }
    return at < deadline ? at : (deadline > now ? deadline : now);
}

void hxd_pace_taken(struct hxd_pace *p, int64_t now, uint64_t reserve, uint64_t target, bool held)
{
    int64_t gap;

    if (!held && p->held) {
        p->free_since = now;
    }
    p->held = held;
    if (p->burst_left > 0 && now < p->next_burst) { /* one more of the current burst */
        p->burst_left--;
        return;
    }
    /* A new burst begins with this key: BURST keys, the next burst BURST gaps later. */
    gap = stretched(p, reserve, target);
    p->next_burst = now + HXD_PACE_BURST * gap;
    if (p->next_burst == 0) {
        p->next_burst = 1; /* 0 means none yet */
    }
    p->burst_left = HXD_PACE_BURST - 1;
}

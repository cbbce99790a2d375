/* Scheduler hints for the calling thread (sched.h). */
#define _GNU_SOURCE /* SCHED_BATCH */
#include "common/sched.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* struct sched_attr of sched_setattr(2) / sched_getattr(2) (glibc before 2.41 declares
 * neither): its first version (SCHED_ATTR_SIZE_VER0, 48 bytes) holds every field used here. */
struct hx_sched_attr {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
};

/* Set once a kernel showed it keeps no custom slice: never asked again. */
static atomic_bool unsupported;

#if defined(SYS_sched_setattr) && defined(SYS_sched_getattr)
static int getattr(struct hx_sched_attr *a)
{
    memset(a, 0, sizeof(*a));
    return (int)syscall(SYS_sched_getattr, 0, a, (unsigned)sizeof(*a), 0u);
}
#endif

hx_err hx_sched_slice(uint64_t ns)
{
#if defined(SYS_sched_setattr) && defined(SYS_sched_getattr)
    struct hx_sched_attr a;

    if (atomic_load_explicit(&unsupported, memory_order_relaxed) || getattr(&a) != 0) {
        return HX_ERR_UNSUPPORTED;
    }
    /* Normal and batch threads have slices; real-time, deadline, idle and other policies keep
     * what their operator chose. */
    if (a.sched_policy != SCHED_OTHER && a.sched_policy != SCHED_BATCH) {
        return HX_ERR_UNSUPPORTED;
    }
    /* Only the slice changes: the policy, nice value and flags (reset-on-fork) are the
     * thread's own, as read just now. */
    a.size = sizeof(a);
    a.sched_runtime = ns;
    if (syscall(SYS_sched_setattr, 0, &a, 0u) != 0) {
        if (errno == ENOSYS) {
            atomic_store_explicit(&unsupported, true, memory_order_relaxed);
        }
        return HX_ERR_UNSUPPORTED;
    }
    /* Linux 3.14 to 6.11 accept sched_runtime for a normal thread and ignore it; since 6.12
     * sched_getattr reports the slice the thread has. */
    if (ns != 0 && (getattr(&a) != 0 || a.sched_runtime != ns)) {
        atomic_store_explicit(&unsupported, true, memory_order_relaxed);
        return HX_ERR_UNSUPPORTED;
    }
    return HX_OK;
#else
    (void)ns;
    return HX_ERR_UNSUPPORTED;
#endif
}

void hx_sched_slice_keep(struct hx_slice *sl, uint64_t ns)
{
    if (sl->asked && sl->ns == ns) {
        return;
    }
    /* A failure is remembered like a success: this thread does not ask for the same slice
     * again, and a kernel without custom slices is not asked at all any more (above). */
    sl->ok = hx_sched_slice(ns) == HX_OK;
    sl->ns = ns;
    sl->asked = true;
}

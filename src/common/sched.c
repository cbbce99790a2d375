/* Scheduler hints for the calling thread (sched.h). */
#define _GNU_SOURCE /* SCHED_BATCH, SCHED_IDLE */
#include "common/sched.h"

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* struct sched_attr of sched_setattr(2) (glibc before 2.41 declares neither): its first
 * version (SCHED_ATTR_SIZE_VER0, 48 bytes) is all a normal thread's slice needs. */
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

/* The calling thread's nice value (Linux: who 0 is the thread, not the process). */
static int own_nice(int *nice)
{
    errno = 0;
    *nice = getpriority(PRIO_PROCESS, 0);
    return *nice == -1 && errno != 0 ? -1 : 0;
}

int hx_sched_slice(uint64_t ns)
{
#ifdef SYS_sched_setattr
    struct hx_sched_attr a;
    int nice, policy = sched_getscheduler(0);

    if (policy == -1 || own_nice(&nice) != 0) {
        return -1;
    }
    if (policy != SCHED_OTHER && policy != SCHED_BATCH && policy != SCHED_IDLE) {
        errno = ENOTSUP; /* real-time: its operator chose; there is no slice to ask for */
        return -1;
    }
    memset(&a, 0, sizeof(a));
    a.size = sizeof(a);
    a.sched_policy = (uint32_t)policy;
    a.sched_nice = nice; /* sched_setattr sets the nice value too: keep it */
    a.sched_runtime = ns;
    return (int)syscall(SYS_sched_setattr, 0, &a, 0);
#else
    (void)ns;
    errno = ENOSYS;
    return -1;
#endif
}

void hx_sched_slice_keep(struct hx_slice *sl, uint64_t ns)
{
    if (sl->asked && sl->ns == ns) {
        return;
    }
    /* asked even when it failed: a kernel without custom slices is not asked again */
    (void)hx_sched_slice(ns);
    sl->ns = ns;
    sl->asked = true;
}

/*
 * Scheduler hints for the calling thread (sched.c).
 *
 * hykexd's crypto workers keep both cores of a small node busy while applications drain keys;
 * what an application then feels is how soon its GET_KEY thread, and the application itself,
 * get a core when they wake (docs/performance.md, "The draining application", fourth round).
 * The hint is the time slice (Linux 6.12 and later, EEVDF: sched_setattr(2), sched_runtime
 * with SCHED_OTHER, 0.1-100 ms), for the calling thread only (Linux schedules threads). A
 * thread woken with a shorter slice than the running one may preempt it at once; one with a
 * longer slice yields to every woken thread with a shorter one. The workers ask for a long
 * slice, the threads serving GET_KEY a short one, while few applications take keys; with many,
 * every thread has the kernel's default (hxd_latency_mode in daemon/hxd.h says which). Neither
 * changes a thread's share of the CPU. (A higher nice value for the workers was measured and left
 * out: a worker holding OpenSSL's secure-heap lock was preempted by API threads that then spun in
 * glibc's pthread_rwlock_wrlock for it, and 64 draining streams lost half their keys/s.)
 */
#ifndef HX_COMMON_SCHED_H
#define HX_COMMON_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

/* The slices hykexd asks for: its crypto workers and the threads that serve GET_KEY. */
#define HX_SLICE_WORKER_NS 8000000ULL
#define HX_SLICE_IO_NS 100000ULL

/* Asks for a time slice of ns for the calling thread (0: the kernel's default), keeping its
 * policy, nice value and flags. HX_ERR_UNSUPPORTED, with nothing changed, when the kernel keeps
 * no custom slice (before Linux 6.12: read back to tell), for a thread that is not SCHED_OTHER
 * or SCHED_BATCH, or when a seccomp policy refuses the call with an error. */
HX_MUST_CHECK hx_err hx_sched_slice(uint64_t ns);

/* A thread's slice as last asked for (zero-initialised: none asked yet). */
struct hx_slice {
    uint64_t ns; /* asked for last */
    bool asked;
    bool ok; /* the thread has it */
};

/* Asks for a slice of ns for the calling thread (0: the kernel's default) unless sl says it
 * was asked for already: a system call only when the slice changes. */
void hx_sched_slice_keep(struct hx_slice *sl, uint64_t ns);

#endif

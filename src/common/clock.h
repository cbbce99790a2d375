/*
 * One clock for every timeout (OpenSSH misc.c monotime() / ptimeout_*).
 *
 * Deadlines are absolute points on CLOCK_MONOTONIC, in nanoseconds, so that a step of the wall
 * clock (NTP, an operator's `date -s`) never shortens or stretches a wait. Condition variables
 * that wait for a deadline must be made by hx_cond_init_monotonic(). The wall clock
 * (hx_walltime) is only for what people read and for what must survive a reboot (a stream's
 * TTL start in the store, a certificate's expiry).
 */
#ifndef HX_COMMON_CLOCK_H
#define HX_COMMON_CLOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

/* A deadline that never passes. */
#define HX_DEADLINE_NEVER INT64_MAX

/* Nanoseconds on CLOCK_MONOTONIC (an arbitrary origin, never steps). */
int64_t hx_monotime_ns(void);
/* The same in seconds, for ages and rates. */
double hx_monotime(void);
/* Unix time in seconds: for people and for what outlives the process. */
int64_t hx_walltime(void);

/* now + ms, saturating at HX_DEADLINE_NEVER. */
int64_t hx_deadline_in_ms(uint64_t ms);
/* now + seconds (fractions allowed; negative means now). */
int64_t hx_deadline_in_s(double s);
/* The earlier of a and b. */
int64_t hx_deadline_min(int64_t a, int64_t b);
bool hx_deadline_passed(int64_t deadline);
/* Milliseconds left, rounded up, for poll(): -1 for HX_DEADLINE_NEVER, 0 when passed, at
 * most INT32_MAX. */
int hx_deadline_poll_ms(int64_t deadline);

/* A condition variable whose timed waits count on CLOCK_MONOTONIC. */
HX_MUST_CHECK hx_err hx_cond_init_monotonic(pthread_cond_t *cond);
/* Waits on cond (mutex held) until signalled or the deadline; true when the deadline passed.
 * HX_DEADLINE_NEVER waits without a timeout. Spurious wake-ups return false: callers loop. */
bool hx_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mutex, int64_t deadline);

#endif

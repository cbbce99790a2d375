#include "common/clock.h"

#include <errno.h>
#include <time.h>

int64_t hx_monotime_ns(void)
{
    struct timespec ts;

    /* CLOCK_MONOTONIC cannot fail with a valid clock id and pointer (POSIX). */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + (int64_t)ts.tv_nsec;
}

double hx_monotime(void)
{
    return (double)hx_monotime_ns() / 1e9;
}

int64_t hx_walltime(void)
{
    return (int64_t)time(NULL);
}

static int64_t add_sat(int64_t now, uint64_t ns)
{
    if (ns >= (uint64_t)(HX_DEADLINE_NEVER - now)) {
        return HX_DEADLINE_NEVER;
    }
    return now + (int64_t)ns;
}

int64_t hx_deadline_in_ms(uint64_t ms)
{
    if (ms > UINT64_MAX / 1000000ULL) {
        return HX_DEADLINE_NEVER;
    }
    return add_sat(hx_monotime_ns(), ms * 1000000ULL);
}

int64_t hx_deadline_in_s(double s)
{
    if (!(s > 0)) {
        return hx_monotime_ns();
    }
    if (s >= 9.0e9) { /* beyond ~285 years: never */
        return HX_DEADLINE_NEVER;
    }
    return add_sat(hx_monotime_ns(), (uint64_t)(s * 1e9));
}

int64_t hx_deadline_min(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

bool hx_deadline_passed(int64_t deadline)
{
    return deadline != HX_DEADLINE_NEVER && hx_monotime_ns() >= deadline;
}

int hx_deadline_poll_ms(int64_t deadline)
{
    int64_t left;

    if (deadline == HX_DEADLINE_NEVER) {
        return -1;
    }
    left = deadline - hx_monotime_ns();
    if (left <= 0) {
        return 0;
    }
    left = (left + 999999) / 1000000;
    return left > INT32_MAX ? INT32_MAX : (int)left;
}

hx_err hx_cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    hx_err r = HX_ERR_INTERNAL;

    if (pthread_condattr_init(&attr) != 0) {
        return HX_ERR_INTERNAL;
    }
    if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
        pthread_cond_init(cond, &attr) == 0) {
        r = HX_OK;
    }
    pthread_condattr_destroy(&attr);
    return r;
}

bool hx_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mutex, int64_t deadline)
{
    struct timespec ts;

    if (deadline == HX_DEADLINE_NEVER) {
        pthread_cond_wait(cond, mutex);
        return false;
    }
    if (hx_monotime_ns() >= deadline) {
        return true;
    }
    ts.tv_sec = (time_t)(deadline / 1000000000LL);
    ts.tv_nsec = (long)(deadline % 1000000000LL);
    return pthread_cond_timedwait(cond, mutex, &ts) == ETIMEDOUT;
}

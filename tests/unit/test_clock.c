/* common/clock: monotonic deadlines and condition variables on CLOCK_MONOTONIC. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "common/clock.h"

static void monotime_never_goes_back(void **state)
{
    (void)state;
    int64_t prev = hx_monotime_ns();
    for (int i = 0; i < 10000; i++) {
        int64_t now = hx_monotime_ns();
        assert_true(now >= prev);
        prev = now;
    }
    assert_true(hx_walltime() > 1700000000); /* after 2023: a wall clock, not the monotonic one */
}

static void deadlines_saturate_and_pass(void **state)
{
    (void)state;
    int64_t now = hx_monotime_ns();
    int64_t d = hx_deadline_in_ms(1000);

    assert_true(d >= now + 1000000000LL);
    assert_false(hx_deadline_passed(d));
    assert_int_equal(hx_deadline_in_ms(UINT64_MAX), HX_DEADLINE_NEVER);
    assert_int_equal(hx_deadline_in_ms(UINT64_MAX / 1000), HX_DEADLINE_NEVER);
    assert_int_equal(hx_deadline_in_s(1e12), HX_DEADLINE_NEVER);
    assert_false(hx_deadline_passed(HX_DEADLINE_NEVER));
    assert_true(hx_deadline_passed(hx_deadline_in_s(-1.0)));
    assert_true(hx_deadline_passed(hx_deadline_in_ms(0)));
    assert_int_equal(hx_deadline_min(5, HX_DEADLINE_NEVER), 5);
    assert_int_equal(hx_deadline_min(HX_DEADLINE_NEVER, 7), 7);
}

static void poll_ms_rounds_up_and_clamps(void **state)
{
    (void)state;
    assert_int_equal(hx_deadline_poll_ms(HX_DEADLINE_NEVER), -1);
    assert_int_equal(hx_deadline_poll_ms(hx_monotime_ns() - 1), 0);
    int ms = hx_deadline_poll_ms(hx_deadline_in_ms(500));
    assert_true(ms > 0 && ms <= 500);
    /* a fraction of a millisecond left is one millisecond, never a busy 0 */
    assert_int_equal(hx_deadline_poll_ms(hx_monotime_ns() + 100000), 1);
    /* ~3 weeks is more than INT32_MAX ms: clamped, not wrapped negative */
    assert_int_equal(hx_deadline_poll_ms(hx_deadline_in_ms(3000000000ULL)), INT32_MAX);
}

static void cond_waits_until_the_deadline(void **state)
{
    (void)state;
    pthread_cond_t c;
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;

    assert_int_equal(hx_cond_init_monotonic(&c), HX_OK);
    pthread_mutex_lock(&m);
    int64_t start = hx_monotime_ns();
    int64_t dl = start + 50 * 1000000LL;
    bool passed = false;
    while (!passed) {
        passed = hx_cond_wait_until(&c, &m, dl);
    }
    int64_t end = hx_monotime_ns();
    pthread_mutex_unlock(&m);
    /* it returned at or after the deadline, measured on the same clock: a condition variable
     * left on CLOCK_REALTIME would read the monotonic deadline as ~1970 and return at once */
    assert_true(end >= dl);
    /* a deadline already passed returns at once */
    pthread_mutex_lock(&m);
    assert_true(hx_cond_wait_until(&c, &m, start));
    pthread_mutex_unlock(&m);
    pthread_cond_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(monotime_never_goes_back),
        cmocka_unit_test(deadlines_saturate_and_pass),
        cmocka_unit_test(poll_ms_rounds_up_and_clamps),
        cmocka_unit_test(cond_waits_until_the_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * common/sched.c, the calling thread's time slice: asked for, it is the one the kernel keeps
 * for the thread (/proc/thread-self/sched, se.slice), and the thread's nice value is the same
 * after it; hx_sched_slice_keep asks only for a change. On a kernel without custom slices (before
 * Linux 6.12, told by reading the slice back) the call says HX_ERR_UNSUPPORTED and changes
 * nothing: the tests are then skipped, saying so.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/sched.h"

/* se.slice of the calling thread in ns; 0 when the kernel does not show it. */
static uint64_t own_slice(void)
{
    char line[256];
    uint64_t v = 0;
    FILE *f = fopen("/proc/thread-self/sched", "r");

    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        const char *colon = strchr(line, ':');
        if (strncmp(line, "se.slice", 8) == 0 && colon != NULL) {
            v = strtoull(colon + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static void test_slice_is_kept(void **state)
{
    int nice_before, nice_after;

    (void)state;
    /* a nice value that is not the default, to see that the call keeps it */
    assert_int_equal(setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 3), 0);
    nice_before = getpriority(PRIO_PROCESS, 0);
    if (hx_sched_slice(HX_SLICE_IO_NS) != HX_OK) {
        assert_int_equal(getpriority(PRIO_PROCESS, 0), nice_before);
        skip(); /* no custom slices on this kernel: reported as skipped, not passed */
    }
    nice_after = getpriority(PRIO_PROCESS, 0);
    assert_int_equal(nice_after, nice_before);
    if (own_slice() == 0) {
        skip(); /* the kernel does not show se.slice */
    }
    assert_int_equal(own_slice(), HX_SLICE_IO_NS);
    assert_int_equal(hx_sched_slice(HX_SLICE_WORKER_NS), HX_OK);
    assert_int_equal(own_slice(), HX_SLICE_WORKER_NS);
    assert_int_equal(getpriority(PRIO_PROCESS, 0), nice_before);
}

/* hx_sched_slice_keep asks only when the slice changes, and 0 gives the kernel's default back. */
static void test_keep(void **state)
{
    struct hx_slice sl = {0};
    uint64_t base;

    (void)state;
    if (hx_sched_slice(0) != HX_OK || (base = own_slice()) == 0 ||
        hx_sched_slice(HX_SLICE_IO_NS) != HX_OK) {
        skip(); /* no custom slices here, or se.slice not shown */
    }
    hx_sched_slice_keep(&sl, HX_SLICE_WORKER_NS);
    assert_true(sl.asked && sl.ok);
    assert_int_equal(own_slice(), HX_SLICE_WORKER_NS);
    /* what sl says it has is not asked again: a slice set behind its back stays */
    assert_int_equal(hx_sched_slice(HX_SLICE_IO_NS), HX_OK);
    hx_sched_slice_keep(&sl, HX_SLICE_WORKER_NS);
    assert_int_equal(own_slice(), HX_SLICE_IO_NS);
    hx_sched_slice_keep(&sl, 0);
    assert_int_equal(own_slice(), base);
    assert_int_equal(sl.ns, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slice_is_kept),
        cmocka_unit_test(test_keep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

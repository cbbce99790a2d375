/*
 * daemon/batch.c: the responder's answer to a BATCH_QUERY. After the initiator's restart the
 * range it asks about is a run of its prepared rows, which may span two batches that were
 * settled apart (a batch cut at the responder's window, then the next one): "committed" must
 * mean every position of the range, "not committed" none of them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "daemon/batch.h"
#include "daemon/hxd.h"
#include "daemon/stream.h"

static struct hxd_stream *responder_at(uint64_t produced)
{
    struct hxd_stream *s = calloc(1, sizeof(*s));

    assert_non_null(s);
    s->role = HXD_RESPONDER;
    s->produced = produced;
    return s;
}

/* The failing run's state: watermark 1041, batch 1041..1046 never committed, 1047.. was. */
static void a_run_over_two_batches_is_partly_committed(void **state)
{
    struct hxd_stream *s = responder_at(1041);

    (void)state;
    hxd_batch_mark_done(s, 1047, 10);
    assert_int_equal(s->produced, 1041);
    assert_int_equal(hxd_batch_committed_of(s, 1041, 16), HXD_COMMITTED_PART);
    assert_int_equal(hxd_batch_committed_of(s, 1041, 6), HXD_COMMITTED_NONE);
    assert_int_equal(hxd_batch_committed_of(s, 1047, 10), HXD_COMMITTED_ALL);
    assert_int_equal(hxd_batch_committed_of(s, 1044, 6), HXD_COMMITTED_PART);
    assert_int_equal(hxd_batch_committed_of(s, 1057, 16), HXD_COMMITTED_NONE);
    free(s);
}

static void below_the_watermark_is_committed(void **state)
{
    struct hxd_stream *s = responder_at(100);

    (void)state;
    assert_int_equal(hxd_batch_committed_of(s, 84, 16), HXD_COMMITTED_ALL);
    assert_int_equal(hxd_batch_committed_of(s, 90, 16), HXD_COMMITTED_PART);
    assert_int_equal(hxd_batch_committed_of(s, 100, 16), HXD_COMMITTED_NONE);
    free(s);
}

/* Runs that fill the range between them, and one that the watermark passed in part. */
static void adjacent_runs_add_up(void **state)
{
    struct hxd_stream *s = responder_at(10);

    (void)state;
    hxd_batch_mark_done(s, 20, 5);
    hxd_batch_mark_done(s, 25, 5);
    assert_int_equal(hxd_batch_committed_of(s, 20, 10), HXD_COMMITTED_ALL);
    assert_int_equal(hxd_batch_committed_of(s, 20, 11), HXD_COMMITTED_PART);
    hxd_batch_mark_done(s, 10, 10); /* the watermark moves over all of them */
    assert_int_equal(s->produced, 30);
    assert_int_equal(hxd_batch_committed_of(s, 5, 25), HXD_COMMITTED_ALL);
    assert_int_equal(hxd_batch_committed_of(s, 5, 26), HXD_COMMITTED_PART);
    free(s);
}

/*
 * Short batches committed above a gap, one position each, many more than the table of runs
 * holds: they join into one run, so the watermark passes all of them once the gap is filled
 * (one entry per batch would have dropped every batch past the twelfth).
 */
static void many_short_runs_join(void **state)
{
    struct hxd_stream *s = responder_at(10);

    (void)state;
    for (uint64_t p = 12; p < 60; p++) {
        hxd_batch_mark_done(s, p, 1);
    }
    hxd_batch_mark_done(s, 100, 4);      /* a second gap: a run of its own */
    for (uint64_t p = 99; p > 60; p--) { /* downwards: each joins the run above it */
        hxd_batch_mark_done(s, p, 1);
    }
    assert_int_equal(s->n_done_above, 2);
    assert_int_equal(hxd_batch_committed_of(s, 12, 48), HXD_COMMITTED_ALL);
    assert_int_equal(hxd_batch_committed_of(s, 61, 43), HXD_COMMITTED_ALL);
    assert_int_equal(hxd_batch_committed_of(s, 59, 3), HXD_COMMITTED_PART);
    hxd_batch_mark_done(s, 10, 2);
    assert_int_equal(s->produced, 60);
    hxd_batch_mark_done(s, 60, 1);
    assert_int_equal(s->produced, 104);
    assert_int_equal(s->n_done_above, 0);
    free(s);
}

/* metadata.hops per key: each position reports the relays of the path its latest batch took. */
static void hops_by_position(void **state)
{
    struct hxd_stream *s = responder_at(0);
    struct hxd_batch *b = calloc(1, sizeof(*b));

    (void)state;
    assert_non_null(b);
    assert_int_equal(hxd_stream_hops_at(s, 0), -1); /* nothing noted: the caller's fallback */
    b->count = 4;
    for (uint64_t f = 0; f < 12; f += 4) { /* three batches over A-B-C-D: one run */
        b->first = f;
        b->path.hops = 3;
        hxd_batch_note_hops(s, b);
    }
    assert_int_equal(s->n_hops_run, 1);
    b->first = 12; /* rerouted over a path with three relays */
    b->path.hops = 4;
    hxd_batch_note_hops(s, b);
    b->first = 4; /* a failed batch made again over it */
    hxd_batch_note_hops(s, b);
    b->first = 16; /* then a direct link */
    b->path.hops = 0;
    hxd_batch_note_hops(s, b);
    assert_int_equal(hxd_stream_hops_at(s, 0), 2);
    assert_int_equal(hxd_stream_hops_at(s, 3), 2);
    assert_int_equal(hxd_stream_hops_at(s, 4), 3);
    assert_int_equal(hxd_stream_hops_at(s, 7), 3);
    assert_int_equal(hxd_stream_hops_at(s, 8), 2);
    assert_int_equal(hxd_stream_hops_at(s, 15), 3);
    assert_int_equal(hxd_stream_hops_at(s, 16), 0);
    assert_int_equal(hxd_stream_hops_at(s, 20), -1);
    for (uint64_t f = 100; f < 100 + 2 * 40; f += 2) { /* alternating paths: the oldest go */
        b->first = f;
        b->count = 2;
        b->path.hops = f % 4 == 0 ? 2 : 3;
        hxd_batch_note_hops(s, b);
    }
    assert_int_equal(s->n_hops_run, sizeof(s->hops_run) / sizeof(s->hops_run[0]));
    assert_int_equal(hxd_stream_hops_at(s, 0), -1);
    assert_int_equal(hxd_stream_hops_at(s, 178), 2);
    assert_int_equal(hxd_stream_hops_at(s, 179), 2);
    assert_int_equal(hxd_stream_hops_at(s, 177), 1);
    free(b);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_run_over_two_batches_is_partly_committed),
        cmocka_unit_test(below_the_watermark_is_committed),
        cmocka_unit_test(adjacent_runs_add_up),
        cmocka_unit_test(many_short_runs_join),
        cmocka_unit_test(hops_by_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

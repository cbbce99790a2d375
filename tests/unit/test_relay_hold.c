/* daemon/relay_hold.c: RELAY_FWD messages held at the end of a path until their origin is on the
 * map (docs/relay.md "Forwarding"): bounded in count and bytes, delivered in arrival order per
 * origin once it is known, dropped when their time is over, wiped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/relay_hold.h"

static struct hx_uuid id(int i)
{
    struct hx_uuid u;
    memset(u.b, i, sizeof(u.b));
    return u;
}

/* known() of the tests: the origins whose byte is set in the array. */
static bool known_in(void *arg, const struct hx_uuid *origin)
{
    return ((const bool *)arg)[origin->b[0]];
}

static void held_until_known_in_order(void **state)
{
    struct hx_hold *h = calloc(1, sizeof(*h));
    struct hx_hold_item it;
    struct hx_uuid from = id(9), x = id(1), y = id(2);
    bool known[16] = {false}, expired = true;
    const uint8_t a[] = {1, 1}, b[] = {2, 2, 2}, c[] = {3};

    (void)state;
    assert_non_null(h);
    assert_false(hx_hold_has(h, &x));
    assert_int_equal(hx_hold_put(h, &from, &x, a, sizeof(a), 1000), HX_OK);
    assert_int_equal(hx_hold_put(h, &from, &y, c, sizeof(c), 1100), HX_OK);
    assert_int_equal(hx_hold_put(h, &from, &x, b, sizeof(b), 1200), HX_OK);
    assert_true(hx_hold_has(h, &x) && hx_hold_has(h, &y));
    assert_int_equal(h->n, 3);
    assert_int_equal(h->bytes, 6);
    /* nobody known, nothing expired: nothing to do */
    assert_false(hx_hold_next(h, known_in, known, 2000, &it, &expired));
    /* y known: its message comes out, x's two stay, in order */
    known[2] = true;
    assert_true(hx_hold_next(h, known_in, known, 2000, &it, &expired));
    assert_false(expired);
    assert_memory_equal(it.origin.b, y.b, 16);
    assert_memory_equal(it.from.b, from.b, 16);
    assert_int_equal(it.len, 1);
    assert_memory_equal(it.p, c, 1);
    hx_hold_item_free(&it);
    assert_null(it.p);
    assert_false(hx_hold_next(h, known_in, known, 2000, &it, &expired));
    assert_false(hx_hold_has(h, &y));
    /* x known: first a, then b */
    known[1] = true;
    assert_true(hx_hold_next(h, known_in, known, 2000, &it, &expired));
    assert_memory_equal(it.p, a, sizeof(a));
    hx_hold_item_free(&it);
    assert_true(hx_hold_next(h, known_in, known, 2000, &it, &expired));
    assert_memory_equal(it.p, b, sizeof(b));
    hx_hold_item_free(&it);
    assert_false(hx_hold_next(h, known_in, known, 2000, &it, &expired));
    assert_int_equal(h->n, 0);
    assert_int_equal(h->bytes, 0);
    free(h);
}

static void dropped_when_time_is_over(void **state)
{
    struct hx_hold *h = calloc(1, sizeof(*h));
    struct hx_hold_item it;
    struct hx_uuid from = id(9), x = id(1);
    bool known[16] = {false}, expired = false;
    const uint8_t a[] = {7};

    (void)state;
    assert_non_null(h);
    assert_int_equal(hx_hold_put(h, &from, &x, a, sizeof(a), 1000), HX_OK);
    assert_int_equal(hx_hold_put(h, &from, &x, a, sizeof(a), 1500), HX_OK);
    assert_false(hx_hold_next(h, known_in, known, 1000 + HX_HOLD_MS - 1, &it, &expired));
    assert_true(hx_hold_next(h, known_in, known, 1000 + HX_HOLD_MS, &it, &expired));
    assert_true(expired);
    hx_hold_item_free(&it);
    /* the second one's time is not over yet */
    assert_false(hx_hold_next(h, known_in, known, 1000 + HX_HOLD_MS, &it, &expired));
    assert_true(hx_hold_next(h, known_in, known, 1500 + HX_HOLD_MS, &it, &expired));
    assert_true(expired);
    hx_hold_item_free(&it);
    assert_int_equal(h->n, 0);
    free(h);
}

static void bounded_and_wiped(void **state)
{
    struct hx_hold *h = calloc(1, sizeof(*h));
    struct hx_uuid from = id(9), x = id(1);
    uint8_t *big = calloc(1, HX_HOLD_BYTES);
    const uint8_t a[] = {1};

    (void)state;
    assert_non_null(h);
    assert_non_null(big);
    assert_int_equal(hx_hold_put(h, &from, &x, a, 0, 0), HX_ERR_NOSPACE); /* empty: refused */
    for (int i = 0; i < HX_HOLD_MAX; i++) {
        assert_int_equal(hx_hold_put(h, &from, &x, a, sizeof(a), i), HX_OK);
    }
    assert_int_equal(hx_hold_put(h, &from, &x, a, sizeof(a), 0), HX_ERR_NOSPACE);
    hx_hold_wipe(h);
    assert_int_equal(h->n, 0);
    assert_int_equal(h->bytes, 0);
    assert_false(hx_hold_has(h, &x));
    /* bytes: all of HX_HOLD_BYTES fits once; one byte more does not */
    assert_int_equal(hx_hold_put(h, &from, &x, big, HX_HOLD_BYTES, 0), HX_OK);
    assert_int_equal(hx_hold_put(h, &from, &x, a, sizeof(a), 0), HX_ERR_NOSPACE);
    hx_hold_wipe(h);
    assert_int_equal(hx_hold_put(h, &from, &x, big, HX_HOLD_BYTES - 1, 0), HX_OK);
    assert_int_equal(hx_hold_put(h, &from, &x, a, sizeof(a), 0), HX_OK);
    assert_int_equal(h->bytes, HX_HOLD_BYTES);
    hx_hold_wipe(h);
    free(big);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(held_until_known_in_order),
        cmocka_unit_test(dropped_when_time_is_over),
        cmocka_unit_test(bounded_and_wiped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

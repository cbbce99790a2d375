#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"

static const uint8_t sample[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                                 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f};

static void reads_integers_big_endian(void **state)
{
    struct hx_reader r;
    uint8_t a;
    uint16_t b;
    uint32_t c;
    uint64_t d;

    (void)state;
    hx_reader_init(&r, sample, sizeof(sample));
    assert_int_equal(hx_read_u8(&r, &a), HX_OK);
    assert_int_equal(a, 0x01);
    assert_int_equal(hx_read_u16(&r, &b), HX_OK);
    assert_int_equal(b, 0x0203);
    assert_int_equal(hx_read_u32(&r, &c), HX_OK);
    assert_int_equal(c, 0x04050607);
    assert_int_equal(hx_read_u64(&r, &d), HX_OK);
    assert_true(d == 0x08090a0b0c0d0e0fULL);
    assert_int_equal(hx_reader_remaining(&r), 0);
    assert_int_equal(hx_read_u8(&r, &a), HX_ERR_TRUNCATED);
}

/* Every read that does not fit fails and leaves the reader where it was, at every offset. */
static void reads_never_pass_the_end(void **state)
{
    (void)state;
    for (size_t len = 0; len <= sizeof(sample); len++) {
        for (size_t width = 1; width <= 8; width *= 2) {
            struct hx_reader r;
            uint8_t b1;
            uint16_t b2;
            uint32_t b4;
            uint64_t b8;
            hx_err e = HX_OK;

            hx_reader_init(&r, sample, len);
            for (;;) {
                size_t before = r.off;
                switch (width) {
                case 1:
                    e = hx_read_u8(&r, &b1);
                    break;
                case 2:
                    e = hx_read_u16(&r, &b2);
                    break;
                case 4:
                    e = hx_read_u32(&r, &b4);
                    break;
                default:
                    e = hx_read_u64(&r, &b8);
                    break;
                }
                if (e != HX_OK) {
                    assert_int_equal(e, HX_ERR_TRUNCATED);
                    assert_int_equal(r.off, before);
                    assert_true(hx_reader_remaining(&r) < width);
                    break;
                }
                assert_int_equal(r.off, before + width);
                assert_true(r.off <= len);
            }
        }
    }
}

static void reads_bytes_views_and_skips(void **state)
{
    struct hx_reader r;
    uint8_t out[4];
    const uint8_t *v;

    (void)state;
    hx_reader_init(&r, sample, 6);
    assert_int_equal(hx_read_bytes(&r, out, 4), HX_OK);
    assert_memory_equal(out, sample, 4);
    assert_int_equal(hx_read_bytes(&r, out, 3), HX_ERR_TRUNCATED);
    assert_int_equal(hx_read_view(&r, 2, &v), HX_OK);
    assert_ptr_equal(v, sample + 4);
    assert_int_equal(hx_read_skip(&r, 1), HX_ERR_TRUNCATED);
    assert_int_equal(hx_read_bytes(&r, out, 0), HX_OK);
    hx_reader_init(&r, NULL, 10);
    assert_int_equal(hx_reader_remaining(&r), 0);
    assert_int_equal(hx_read_skip(&r, (size_t)-1), HX_ERR_TRUNCATED);
}

static void reads_bounded_c_strings(void **state)
{
    struct hx_reader r;
    const char *s;
    size_t len;
    static const char two[] = "ab\0cde\0f";

    (void)state;
    hx_reader_init(&r, two, sizeof(two) - 1); /* "ab\0cde\0f" without the final NUL */
    assert_int_equal(hx_read_cstr(&r, 10, &s, &len), HX_OK);
    assert_int_equal(len, 2);
    assert_string_equal(s, "ab");
    /* "cde" has 3 bytes: a limit of 2 rejects it and consumes nothing. */
    assert_int_equal(hx_read_cstr(&r, 2, &s, &len), HX_ERR_TOO_LARGE);
    assert_int_equal(r.off, 3);
    assert_int_equal(hx_read_cstr(&r, 3, &s, &len), HX_OK);
    assert_string_equal(s, "cde");
    /* "f" has no NUL before the end. */
    assert_int_equal(hx_read_cstr(&r, 10, &s, &len), HX_ERR_TRUNCATED);
    assert_int_equal(r.off, 7);
    /* Empty string, and a limit of zero. */
    hx_reader_init(&r, "\0", 1);
    assert_int_equal(hx_read_cstr(&r, 0, &s, &len), HX_OK);
    assert_int_equal(len, 0);
    assert_int_equal(hx_read_cstr(&r, 0, &s, &len), HX_ERR_TRUNCATED);
}

static void fixed_writer_stops_at_its_size(void **state)
{
    uint8_t buf[7];
    struct hx_writer w;

    (void)state;
    hx_writer_init_fixed(&w, buf, sizeof(buf));
    assert_int_equal(hx_write_u32(&w, 0xdeadbeef), HX_OK);
    assert_int_equal(hx_write_u32(&w, 1), HX_ERR_NOSPACE);
    assert_int_equal(w.len, 4);
    assert_int_equal(hx_write_u16(&w, 0x0102), HX_OK);
    assert_int_equal(hx_write_u8(&w, 0xff), HX_OK);
    assert_int_equal(hx_write_u8(&w, 0), HX_ERR_NOSPACE);
    static const uint8_t want[] = {0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0xff};
    assert_memory_equal(buf, want, sizeof(want));
    hx_writer_reset(&w);
    assert_int_equal(w.len, 0);
    assert_int_equal(buf[0], 0); /* reset wipes */
}

static void dynamic_writer_grows_to_its_cap(void **state)
{
    struct hx_writer w;
    struct hx_reader r;
    uint64_t v;
    const char *s;
    size_t len;

    (void)state;
    hx_writer_init_dynamic(&w, 1000);
    for (uint64_t i = 0; i < 100; i++) {
        assert_int_equal(hx_write_u64(&w, i * 0x0101010101010101ULL), HX_OK);
    }
    assert_int_equal(w.len, 800);
    assert_int_equal(hx_write_zeros(&w, 201), HX_ERR_NOSPACE);
    assert_int_equal(w.len, 800);
    assert_int_equal(hx_write_cstr(&w, "hello"), HX_OK);
    assert_int_equal(hx_write_zeros(&w, 194), HX_OK);
    assert_int_equal(w.len, 1000);
    assert_int_equal(hx_write_u8(&w, 1), HX_ERR_NOSPACE);
    assert_true(w.alloc <= 1000);

    hx_reader_init(&r, w.data, w.len);
    for (uint64_t i = 0; i < 100; i++) {
        assert_int_equal(hx_read_u64(&r, &v), HX_OK);
        assert_true(v == i * 0x0101010101010101ULL);
    }
    assert_int_equal(hx_read_cstr(&r, 16, &s, &len), HX_OK);
    assert_string_equal(s, "hello");
    hx_writer_wipe(&w);
    assert_null(w.data);
    assert_int_equal(w.len, 0);
    hx_writer_wipe(&w); /* twice is fine */
}

static void writer_of_size_zero(void **state)
{
    struct hx_writer w;
    uint8_t *p;

    (void)state;
    hx_writer_init_fixed(&w, NULL, 100);
    assert_int_equal(hx_write_u8(&w, 1), HX_ERR_NOSPACE);
    assert_int_equal(hx_write_bytes(&w, "", 0), HX_OK);
    hx_writer_init_dynamic(&w, 16);
    assert_int_equal(hx_write_reserve(&w, (size_t)-1, &p), HX_ERR_NOSPACE);
    assert_int_equal(hx_write_reserve(&w, 16, &p), HX_OK);
    hx_writer_wipe(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_integers_big_endian),
        cmocka_unit_test(reads_never_pass_the_end),
        cmocka_unit_test(reads_bytes_views_and_skips),
        cmocka_unit_test(reads_bounded_c_strings),
        cmocka_unit_test(fixed_writer_stops_at_its_size),
        cmocka_unit_test(dynamic_writer_grows_to_its_cap),
        cmocka_unit_test(writer_of_size_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

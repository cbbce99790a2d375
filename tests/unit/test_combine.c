/* Combiners: known answers (reference and independent vectors) and the properties they owe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/secret.h"
#include "common/uuid.h"
#include "crypto/combine.h"
#include "vectors.h"

static void check_file(const char *file)
{
    struct json_object *doc, *arr = vectors_load(file, &doc);

    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        struct json_object *v = json_object_array_get_idx(arr, i), *keys, *names, *f;
        struct hx_iov secrets[HX_COMBINE_MAX_SOURCES];
        uint8_t *bufs[HX_COMBINE_MAX_SOURCES];
        const char *name_list[HX_COMBINE_MAX_SOURCES];
        struct hx_combine_input in;
        enum hx_combine_method m;
        struct hx_secret *out = NULL;
        size_t exp_len, t_len = 0;
        uint8_t *exp = vec_hex(v, "expected", &exp_len), *t = NULL;

        memset(&in, 0, sizeof(in));
        assert_int_equal(hx_combine_parse(vec_str(v, "method"), &m), HX_OK);
        assert_true(json_object_object_get_ex(v, "keys", &keys));
        in.n = json_object_array_length(keys);
        for (size_t k = 0; k < in.n; k++) {
            size_t len;
            bufs[k] = hex_dup(json_object_get_string(json_object_array_get_idx(keys, k)), &len);
            secrets[k] = (struct hx_iov){bufs[k], len};
        }
        in.secrets = secrets;
        if (json_object_object_get_ex(v, "names", &names)) {
            for (size_t k = 0; k < in.n; k++) {
                name_list[k] = json_object_get_string(json_object_array_get_idx(names, k));
            }
            in.names = name_list;
        }
        if (json_object_object_get_ex(v, "stream_id", &f)) {
            assert_int_equal(hx_uuid_parse(json_object_get_string(f),
                                           (size_t)json_object_get_string_len(f), &in.stream_id),
                             HX_OK);
        }
        if (json_object_object_get_ex(v, "position", &f)) {
            in.position = (uint64_t)json_object_get_int64(f);
        }
        if (json_object_object_get_ex(v, "transcript", &f)) {
            t = hex_dup(json_object_get_string(f), &t_len);
            in.transcript = t;
            in.transcript_len = t_len;
        }
        assert_int_equal(vec_int(v, "L"), (int64_t)exp_len);
        assert_int_equal(hx_combine(m, &in, exp_len, &out), HX_OK);
        if (memcmp(hx_secret_data(out), exp, exp_len) != 0) {
            fail_msg("%s vector %zu (%s, L=%zu) differs", file, i, vec_str(v, "method"), exp_len);
        }
        hx_secret_free(out);
        for (size_t k = 0; k < in.n; k++) {
            free(bufs[k]);
        }
        free(t);
        free(exp);
    }
    json_object_put(doc);
}

static void reference_vectors(void **state)
{
    (void)state;
    check_file("reference-combiners.json");
}

static void independent_vectors(void **state)
{
    (void)state;
    check_file("hykex-combiners.json");
}

static const uint8_t key_a[32] = {0x11, 0x22, 0x33}, key_b[32] = {0x44, 0x55}, key_c[32] = {9};

static struct hx_combine_input two_keys(struct hx_iov *s)
{
    struct hx_combine_input in;

    memset(&in, 0, sizeof(in));
    s[0] = (struct hx_iov){key_a, 32};
    s[1] = (struct hx_iov){key_b, 32};
    s[2] = (struct hx_iov){key_c, 32};
    in.secrets = s;
    in.n = 2;
    return in;
}

static void never_fewer_than_two_sources(void **state)
{
    struct hx_iov s[3];
    struct hx_combine_input in = two_keys(s);
    struct hx_secret *out = (struct hx_secret *)1;

    (void)state;
    for (int m = 0; m < HX_COMBINE_METHOD_COUNT; m++) {
        in.n = 1;
        assert_int_equal(hx_combine((enum hx_combine_method)m, &in, 32, &out), HX_ERR_INVALID_ARG);
        assert_null(out);
        in.n = 0;
        assert_int_equal(hx_combine((enum hx_combine_method)m, &in, 32, &out), HX_ERR_INVALID_ARG);
        in.n = 2;
        assert_int_equal(hx_combine((enum hx_combine_method)m, &in, 0, &out), HX_ERR_INVALID_ARG);
        assert_int_equal(hx_combine((enum hx_combine_method)m, &in,
                                    hx_combine_max_output((enum hx_combine_method)m) + 1, &out),
                         HX_ERR_INVALID_ARG);
        s[1].len = 0;
        assert_int_equal(hx_combine((enum hx_combine_method)m, &in, 32, &out), HX_ERR_INVALID_ARG);
        s[1].len = 32;
    }
    assert_int_equal(hx_combine(HX_COMBINE_METHOD_COUNT, &in, 32, &out), HX_ERR_INVALID_ARG);
}

static struct hx_secret *run(enum hx_combine_method m, const struct hx_combine_input *in,
                             size_t len)
{
    struct hx_secret *out = NULL;

    assert_int_equal(hx_combine(m, in, len, &out), HX_OK);
    return out;
}

/* Counts output bytes that differ; n outputs of random-looking bytes agree by chance 1/256. */
static size_t differing(const struct hx_secret *a, const struct hx_secret *b)
{
    size_t d = 0;

    for (size_t i = 0; i < hx_secret_len(a); i++) {
        d += hx_secret_data(a)[i] != hx_secret_data(b)[i];
    }
    return d;
}

/* Every source reaches every output byte, also beyond the reference's 32 bytes. */
static void every_key_reaches_every_byte(void **state)
{
    static const size_t lengths[] = {16, 32, 33, 64, 200};
    struct hx_iov s[3];
    struct hx_combine_input in = two_keys(s);
    uint8_t flipped[32];

    (void)state;
    in.n = 3;
    for (int m = 0; m < HX_COMBINE_METHOD_COUNT; m++) {
        for (size_t li = 0; li < sizeof(lengths) / sizeof(lengths[0]); li++) {
            size_t len = lengths[li];
            struct hx_secret *base = run((enum hx_combine_method)m, &in, len);
            for (size_t k = 0; k < in.n; k++) {
                const struct hx_iov saved = s[k];
                memcpy(flipped, saved.p, 32);
                flipped[31] ^= 0x80;
                s[k] = (struct hx_iov){flipped, 32};
                struct hx_secret *other = run((enum hx_combine_method)m, &in, len);
                /* xoring is linear: a flipped bit flips exactly that bit (up to 32 bytes). */
                if (m == HX_COMBINE_XORING && len <= 32) {
                    assert_int_equal(differing(base, other), len == 32 ? 1 : 0);
                } else {
                    assert_true(differing(base, other) >= len * 9 / 10);
                }
                hx_secret_free(other);
                s[k] = saved;
            }
            /* No run of zeros where the reference left them (bytes 32 and on). */
            if (len > 32) {
                size_t zeros = 0;
                for (size_t i = 32; i < len; i++) {
                    zeros += hx_secret_data(base)[i] == 0;
                }
                assert_true(zeros < (len - 32) / 16 + 2);
            }
            hx_secret_free(base);
        }
    }
}

/* KDF methods bind stream id, position, names and transcript; reference ones do not. */
static void context_is_bound(void **state)
{
    struct hx_iov s[3];
    struct hx_combine_input in = two_keys(s);
    const char *names[2] = {"QKD", "ML-KEM-768"}, *other_names[2] = {"QKD", "ML-KEM-1024"};
    uint8_t t1[32] = {1}, t2[32] = {2};

    (void)state;
    in.names = names;
    in.transcript = t1;
    in.transcript_len = 32;
    for (int m = 0; m < HX_COMBINE_METHOD_COUNT; m++) {
        bool reference = m <= HX_COMBINE_XORHMAC;
        struct hx_secret *base = run((enum hx_combine_method)m, &in, 32), *o;

        in.position = 1;
        o = run((enum hx_combine_method)m, &in, 32);
        assert_true(hx_secret_equal(base, o) == reference);
        hx_secret_free(o);
        in.position = 0;

        in.stream_id.b[15] = 1;
        o = run((enum hx_combine_method)m, &in, 32);
        assert_true(hx_secret_equal(base, o) == reference);
        hx_secret_free(o);
        in.stream_id.b[15] = 0;

        in.names = other_names;
        o = run((enum hx_combine_method)m, &in, 32);
        assert_true(hx_secret_equal(base, o) == reference);
        hx_secret_free(o);
        in.names = names;

        in.transcript = t2;
        o = run((enum hx_combine_method)m, &in, 32);
        assert_true(hx_secret_equal(base, o) == reference);
        hx_secret_free(o);
        in.transcript = t1;

        /* The order of key_sources matters to the KDF methods (the reference sorts). */
        s[0] = (struct hx_iov){key_b, 32};
        s[1] = (struct hx_iov){key_a, 32};
        in.names = NULL;
        struct hx_secret *swapped = run((enum hx_combine_method)m, &in, 32);
        s[0] = (struct hx_iov){key_a, 32};
        s[1] = (struct hx_iov){key_b, 32};
        struct hx_secret *unswapped = run((enum hx_combine_method)m, &in, 32);
        assert_true(hx_secret_equal(swapped, unswapped) == reference);
        hx_secret_free(swapped);
        hx_secret_free(unswapped);
        in.names = names;

        /* A shorter output is not a prefix of a longer one for the KDF methods: L is bound. */
        struct hx_secret *longer = run((enum hx_combine_method)m, &in, 48);
        if (!reference) {
            assert_memory_not_equal(hx_secret_data(longer), hx_secret_data(base), 32);
        } else if (m != HX_COMBINE_XORING) {
            /* hmac's extension keeps the reference's first block (xoring re-expands). */
            assert_memory_equal(hx_secret_data(longer), hx_secret_data(base), 32);
        }
        hx_secret_free(longer);
        hx_secret_free(base);
    }
}

static void names_and_limits(void **state)
{
    enum hx_combine_method m;

    (void)state;
    assert_int_equal(hx_combine_parse("HKDF", &m), HX_OK);
    assert_int_equal(m, HX_COMBINE_HKDF_SHA256);
    assert_int_equal(hx_combine_parse("kmac", &m), HX_OK);
    assert_int_equal(m, HX_COMBINE_KMAC256);
    assert_int_equal(hx_combine_parse("XORing", &m), HX_OK);
    assert_int_equal(m, HX_COMBINE_XORING);
    assert_int_equal(hx_combine_parse("caskdf", &m), HX_OK);
    assert_int_equal(m, HX_COMBINE_CASKDF_HKDF_SHA256);
    assert_int_equal(hx_combine_parse("sha256", &m), HX_ERR_UNSUPPORTED);
    for (int i = 0; i < HX_COMBINE_METHOD_COUNT; i++) {
        assert_int_equal(hx_combine_parse(hx_combine_name((enum hx_combine_method)i), &m), HX_OK);
        assert_int_equal(m, i);
        assert_non_null(strstr(hx_combine_names(), hx_combine_name((enum hx_combine_method)i)));
    }
    assert_int_equal(hx_combine_max_output(HX_COMBINE_HKDF_SHA256), 8160);
    assert_int_equal(hx_combine_max_output(HX_COMBINE_CASKDF_HKDF_SHA256), 8160 - 32);
    assert_int_equal(hx_combine_max_output(HX_COMBINE_XORING), 65535);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reference_vectors),
        cmocka_unit_test(independent_vectors),
        cmocka_unit_test(never_fewer_than_two_sources),
        cmocka_unit_test(every_key_reaches_every_byte),
        cmocka_unit_test(context_is_bound),
        cmocka_unit_test(names_and_limits),
    };
    if (hx_secret_heap_init(1u << 20) != HX_OK) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}

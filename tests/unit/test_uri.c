/* proto/uri: the reference's hybrid:// application URIs, every field, every refusal, every cut. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/uri.h"

#define NODE "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ef"
#define BASE "hybrid://app1@" NODE
#define FULL BASE "?hybridization=hkdf&key_sources=QKD,ML-KEM-768"

/* Parses s from a heap copy of exactly its size, so that ASan sees any read past the end. */
static hx_err parse(const char *s, struct hx_uri *u, char *why, size_t why_len)
{
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    hx_err e;

    assert_non_null(copy);
    memcpy(copy, s, n);
    why[0] = '\0';
    e = hx_uri_parse(copy, u, why, why_len);
    free(copy);
    return e;
}

/* s is refused with e, and the reason contains want. */
static void refused(const char *s, hx_err e, const char *want)
{
    struct hx_uri u;
    char why[256];

    assert_int_equal(parse(s, &u, why, sizeof(why)), e);
    if (strstr(why, want) == NULL) {
        fail_msg("'%s': reason '%s' does not say '%s'", s, why, want);
    }
}

static void every_field(void **state)
{
    struct hx_uri u;
    struct hx_uuid node;
    char why[256];

    (void)state;
    assert_int_equal(hx_uuid_parse(NODE, strlen(NODE), &node), HX_OK);
    assert_int_equal(parse(FULL, &u, why, sizeof(why)), HX_OK);
    assert_string_equal(u.app, "app1");
    assert_true(hx_uuid_equal(&u.node, &node));
    assert_int_equal(u.has_query, 1);
    assert_int_equal(u.method, HX_COMBINE_HKDF_SHA256);
    assert_int_equal(u.n_sources, 2);
    assert_int_equal(u.sources[0], HX_SRC_QKD);
    assert_int_equal(u.sources[1], HX_SRC_ML_KEM_768);

    /* Every source by name, case-insensitive, in the order given, repeats allowed. */
    assert_int_equal(
        parse(BASE "?key_sources=x25519,ml-kem-1024,ML-KEM-512,qkd,X25519", &u, why, sizeof(why)),
        HX_OK);
    assert_int_equal(u.n_sources, 5);
    assert_int_equal(u.sources[0], HX_SRC_X25519);
    assert_int_equal(u.sources[1], HX_SRC_ML_KEM_1024);
    assert_int_equal(u.sources[2], HX_SRC_ML_KEM_512);
    assert_int_equal(u.sources[3], HX_SRC_QKD);
    assert_int_equal(u.sources[4], HX_SRC_X25519);
    /* No hybridization: the default method; the keys in any order; a trailing '&'. */
    assert_int_equal(u.method, HX_COMBINE_DEFAULT);
    assert_int_equal(
        parse(BASE "?key_sources=QKD,X25519&hybridization=xoring&", &u, why, sizeof(why)), HX_OK);
    assert_int_equal(u.method, HX_COMBINE_XORING);
    assert_int_equal(u.n_sources, 2);

    /* A destination without a query. */
    assert_int_equal(parse(BASE, &u, why, sizeof(why)), HX_OK);
    assert_int_equal(u.has_query, 0);
    assert_int_equal(u.n_sources, 0);
    assert_int_equal(u.method, HX_COMBINE_DEFAULT);

    assert_string_equal(hx_source_name(HX_SRC_QKD), "QKD");
    assert_string_equal(hx_source_name(HX_SRC_ML_KEM_512), "ML-KEM-512");
    assert_string_equal(hx_source_name(HX_SRC_ML_KEM_768), "ML-KEM-768");
    assert_string_equal(hx_source_name(HX_SRC_ML_KEM_1024), "ML-KEM-1024");
    assert_string_equal(hx_source_name(HX_SRC_X25519), "X25519");
    assert_string_equal(hx_source_name((enum hx_source_kind)99), "?");
}

static void every_error(void **state)
{
    (void)state;
    refused("", HX_ERR_BAD_VALUE, "expected hybrid://");
    refused("http://app@" NODE, HX_ERR_BAD_VALUE, "expected hybrid://");
    refused("HYBRID://app@" NODE, HX_ERR_BAD_VALUE, "expected hybrid://");
    refused("hybrid://app" NODE, HX_ERR_BAD_VALUE, "missing '@<node uuid>'");
    refused("hybrid://app?key_sources=QKD,X25519@" NODE, HX_ERR_BAD_VALUE, "missing '@");
    refused("hybrid://@" NODE, HX_ERR_BAD_VALUE, "application name must be 1..128");
    refused("hybrid://app@not-a-uuid", HX_ERR_BAD_UUID, "'not-a-uuid' is not a node UUID");
    refused("hybrid://app@" NODE "0", HX_ERR_BAD_UUID, "is not a node UUID");
    refused("hybrid://app@?key_sources=QKD,X25519", HX_ERR_BAD_UUID, "is not a node UUID");
    refused(BASE "?", HX_ERR_BAD_VALUE, "key_sources missing from the query");
    refused(BASE "?hybridization=hkdf", HX_ERR_BAD_VALUE, "key_sources missing");
    refused(BASE "?key_sources", HX_ERR_BAD_VALUE, "query part 'key_sources' is not key=value");
    refused(BASE "?key_sources=QKD,X25519&&", HX_ERR_BAD_VALUE, "is not key=value");
    refused(BASE "?color=red&key_sources=QKD,X25519", HX_ERR_BAD_VALUE,
            "unknown query key 'color' (hybridization, key_sources, relay, relay_max_hops, "
            "relay_avoid)");
    refused(BASE "?Key_Sources=QKD,X25519", HX_ERR_BAD_VALUE, "unknown query key 'Key_Sources'");
    refused(BASE "?hybridization=hkdf&hybridization=hkdf&key_sources=QKD,X25519", HX_ERR_BAD_VALUE,
            "hybridization given twice");
    refused(BASE "?hybridization=&key_sources=QKD,X25519", HX_ERR_BAD_VALUE,
            "hybridization: empty or over-long");
    refused(BASE "?hybridization=blake3&key_sources=QKD,X25519", HX_ERR_UNSUPPORTED,
            "hybridization: 'blake3' is not one of: xoring");
    refused(BASE "?key_sources=QKD,X25519&key_sources=QKD,X25519", HX_ERR_BAD_VALUE,
            "key_sources given twice");
    refused(BASE "?key_sources=", HX_ERR_BAD_VALUE, "key_sources: empty or over-long entry");
    refused(BASE "?key_sources=QKD,,X25519", HX_ERR_BAD_VALUE, "empty or over-long entry");
    refused(BASE "?key_sources=QKD,X25519,", HX_ERR_BAD_VALUE, "empty or over-long entry");
    refused(BASE "?key_sources=QKD,RSA", HX_ERR_UNSUPPORTED,
            "key_sources: 'RSA' is unknown; supported: QKD, ML-KEM-512, ML-KEM-768, "
            "ML-KEM-1024, X25519");
    refused(BASE "?key_sources=QKD,Kyber512", HX_ERR_UNSUPPORTED,
            "'Kyber512' is not offered by OpenSSL");
    refused(BASE "?key_sources=QKD,frodokem-640-aes", HX_ERR_UNSUPPORTED, "not offered by OpenSSL");
    refused(BASE "?key_sources=QKD", HX_ERR_BAD_VALUE,
            "a hybrid key needs at least 2 sources (one was given)");
}

/* Every prefix of a valid URI: accepted only where a valid URI ends, otherwise refused with a
 * reason; never a read past the end. */
/* The stream's relay policy in the query (docs/relay.md "Per-stream policy"). */
static void relay_policy(void **state)
{
    struct hx_uri u;
    char why[200];

    (void)state;
    assert_int_equal(hx_uri_parse(FULL, &u, why, sizeof(why)), HX_OK);
    assert_int_equal(u.relay_forbidden, 0); /* absent: the node's relay.* options */
    assert_int_equal(u.relay_max_hops, 0);
    assert_int_equal(u.n_avoid, 0);
    assert_int_equal(hx_uri_parse(FULL "&relay=NO&relay_max_hops=3&relay_avoid=" NODE
                                       ",11111111-2222-3333-4444-555555555555",
                                  &u, why, sizeof(why)),
                     HX_OK);
    assert_int_equal(u.relay_forbidden, 1);
    assert_int_equal(u.relay_max_hops, 3);
    assert_int_equal(u.n_avoid, 2);
    assert_int_equal(u.avoid[1].b[15], 0x55);
    assert_int_equal(hx_uri_parse(FULL "&relay=yes&relay_max_hops=16", &u, why, sizeof(why)),
                     HX_OK);
    assert_int_equal(u.relay_forbidden, 0);
    assert_int_equal(u.relay_max_hops, 16);
    refused(FULL "&relay=maybe", HX_ERR_BAD_VALUE, "relay: 'maybe' is not yes or no");
    refused(FULL "&relay=", HX_ERR_BAD_VALUE, "relay: '' is not yes or no");
    refused(FULL "&relay=no&relay=no", HX_ERR_BAD_VALUE, "relay given twice");
    refused(FULL "&relay_max_hops=0", HX_ERR_BAD_VALUE, "relay_max_hops: '0' is not");
    refused(FULL "&relay_max_hops=17", HX_ERR_BAD_VALUE, "relay_max_hops: '17'");
    refused(FULL "&relay_max_hops=", HX_ERR_BAD_VALUE, "relay_max_hops: ''");
    refused(FULL "&relay_max_hops=3x", HX_ERR_BAD_VALUE, "relay_max_hops: '3x'");
    refused(FULL "&relay_max_hops=-1", HX_ERR_BAD_VALUE, "relay_max_hops: '-1'");
    refused(FULL "&relay_max_hops=99999999999", HX_ERR_BAD_VALUE, "relay_max_hops");
    refused(FULL "&relay_avoid=", HX_ERR_BAD_VALUE, "relay_avoid: empty");
    refused(FULL "&relay_avoid=" NODE ",", HX_ERR_BAD_UUID, "relay_avoid: '' is not a node UUID");
    refused(FULL "&relay_avoid=x", HX_ERR_BAD_UUID, "relay_avoid: 'x' is not a node UUID");
    refused(FULL "&relay_avoid=" NODE "," NODE "," NODE "," NODE "," NODE "," NODE "," NODE "," NODE
                 "," NODE,
            HX_ERR_BAD_VALUE, "relay_avoid: at most 8 nodes");
    refused(FULL "&relay_avoid=" NODE "&relay_avoid=" NODE, HX_ERR_BAD_VALUE,
            "relay_avoid given twice");
}

static void cut_at_every_byte(void **state)
{
    static const char full[] = FULL;
    char buf[sizeof(full)], why[256];
    struct hx_uri u;

    (void)state;
    for (size_t n = 0; n < sizeof(full); n++) {
        hx_err e;
        memcpy(buf, full, n);
        buf[n] = '\0';
        e = parse(buf, &u, why, sizeof(why));
        if (n == strlen(BASE) || n == strlen(FULL)) {
            assert_int_equal(e, HX_OK);
            assert_int_equal(u.has_query, n == strlen(FULL));
            continue;
        }
        if (e == HX_OK) {
            fail_msg("prefix of %zu bytes accepted: '%s'", n, buf);
        }
        assert_true(why[0] != '\0');
    }
}

static void too_long(void **state)
{
    char s[4096], why[256], name[64];
    struct hx_uri u;

    (void)state;
    /* The application name: 128 characters at most. */
    {
        char app[HX_URI_MAX_APP + 2];
        memset(app, 'a', sizeof(app));
        app[HX_URI_MAX_APP] = '\0';
        snprintf(s, sizeof(s), "hybrid://%s@" NODE, app);
        assert_int_equal(parse(s, &u, why, sizeof(why)), HX_OK);
        assert_int_equal(strlen(u.app), HX_URI_MAX_APP);
        app[HX_URI_MAX_APP] = 'a';
        app[HX_URI_MAX_APP + 1] = '\0';
        snprintf(s, sizeof(s), "hybrid://%s@" NODE, app);
        refused(s, HX_ERR_BAD_VALUE, "application name must be 1..128 characters");
    }
    /* A name far longer than any buffer. */
    memset(s, 'x', sizeof(s));
    memcpy(s, "hybrid://", 9);
    s[sizeof(s) - 1] = '\0';
    refused(s, HX_ERR_BAD_VALUE, "missing '@<node uuid>'");
    s[3000] = '@';
    refused(s, HX_ERR_BAD_VALUE, "application name must be 1..128");
    /* A node UUID with a long tail: the reason quotes 40 characters at most. */
    snprintf(s, sizeof(s), "hybrid://app@" NODE "%0200d", 0);
    assert_int_equal(parse(s, &u, why, sizeof(why)), HX_ERR_BAD_UUID);
    assert_true(strlen(why) < 80);
    /* Method and source names: 47 characters fit the parser's buffers (and name nothing), 48
     * do not. */
    memset(name, 'a', sizeof(name));
    name[48] = '\0';
    snprintf(s, sizeof(s), BASE "?hybridization=%s&key_sources=QKD,X25519", name);
    refused(s, HX_ERR_BAD_VALUE, "hybridization: empty or over-long");
    snprintf(s, sizeof(s), BASE "?key_sources=QKD,%s", name);
    refused(s, HX_ERR_BAD_VALUE, "key_sources: empty or over-long entry");
    name[47] = '\0';
    snprintf(s, sizeof(s), BASE "?hybridization=%s&key_sources=QKD,X25519", name);
    refused(s, HX_ERR_UNSUPPORTED, "is not one of");
    snprintf(s, sizeof(s), BASE "?key_sources=QKD,%s", name);
    refused(s, HX_ERR_UNSUPPORTED, "is unknown");
    /* 8 sources at most. */
    assert_int_equal(parse(BASE "?key_sources=QKD,X25519,QKD,X25519,QKD,X25519,QKD,X25519", &u, why,
                           sizeof(why)),
                     HX_OK);
    assert_int_equal(u.n_sources, HX_URI_MAX_SOURCES);
    refused(BASE "?key_sources=QKD,X25519,QKD,X25519,QKD,X25519,QKD,X25519,QKD", HX_ERR_BAD_VALUE,
            "key_sources: at most 8 sources");
    /* An unknown key or a bad part is quoted to 40 characters at most. */
    snprintf(s, sizeof(s), BASE "?%0300d=1", 0);
    assert_int_equal(parse(s, &u, why, sizeof(why)), HX_ERR_BAD_VALUE);
    assert_true(strlen(why) < 140);
    /* A reason is cut to the caller's buffer, NUL-terminated. */
    assert_int_equal(parse(BASE "?key_sources=QKD,RSA", &u, why, 8), HX_ERR_UNSUPPORTED);
    assert_int_equal(strlen(why), 7);
}

/* Classic McEliece and sntrup by their liboqs names (any case), with the other sources; the
 * families no library here offers stay refused by name. */
static void code_based_and_ntru_prime_sources(void **state)
{
    struct hx_uri u;
    char why[256];
    static const struct {
        const char *name;
        enum hx_kem_alg alg;
    } ok[] = {
        {"Classic-McEliece-348864", HX_KEM_MCELIECE_348864},
        {"classic-mceliece-348864f", HX_KEM_MCELIECE_348864F},
        {"Classic-McEliece-460896", HX_KEM_MCELIECE_460896},
        {"Classic-McEliece-6688128f", HX_KEM_MCELIECE_6688128F},
        {"Classic-McEliece-6960119", HX_KEM_MCELIECE_6960119},
        {"Classic-McEliece-8192128f", HX_KEM_MCELIECE_8192128F},
        {"sntrup761", HX_KEM_SNTRUP761},
        {"SNTRUP1277", HX_KEM_SNTRUP1277},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char s[256];
        snprintf(s, sizeof(s), BASE "?key_sources=QKD,ML-KEM-768,%s,X25519", ok[i].name);
        assert_int_equal(parse(s, &u, why, sizeof(why)), HX_OK);
        assert_int_equal(u.n_sources, 4);
        assert_int_equal(u.sources[2], HX_SRC_KEM(ok[i].alg));
        assert_int_equal(hx_source_kem(u.sources[2]), ok[i].alg);
        assert_string_equal(hx_source_name(u.sources[2]), hx_kem_name(ok[i].alg));
        assert_int_equal(hx_source_kem(u.sources[1]), HX_KEM_ML_KEM_768);
    }
    assert_string_equal(hx_source_name(HX_SRC_QKD), "QKD");
    assert_string_equal(hx_source_name(HX_SRC_X25519), "X25519");
    assert_string_equal(hx_source_name(HX_SRC_MCELIECE_348864), "Classic-McEliece-348864");
    refused(BASE "?key_sources=QKD,HQC-256", HX_ERR_UNSUPPORTED,
            "'HQC-256' is not offered by OpenSSL, libmceliece or libntruprime (HQC, BIKE, "
            "FrodoKEM refused)");
    refused(BASE "?key_sources=QKD,BIKE-L5", HX_ERR_UNSUPPORTED, "HQC, BIKE, FrodoKEM refused");
    refused(BASE "?key_sources=QKD,FrodoKEM-640-AES", HX_ERR_UNSUPPORTED, "not offered");
    refused(BASE "?key_sources=QKD,Classic-McEliece-348864pc", HX_ERR_UNSUPPORTED, "not offered");
    refused(BASE "?key_sources=QKD,sntrup4591761", HX_ERR_UNSUPPORTED, "not offered");
    refused(BASE "?key_sources=QKD,RSA", HX_ERR_UNSUPPORTED,
            "supported: QKD, ML-KEM-512, ML-KEM-768, ML-KEM-1024, X25519, "
            "Classic-McEliece-348864/460896/6688128/6960119/8192128[f], "
            "sntrup653/761/857/953/1013/1277");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_field),  cmocka_unit_test(every_error),
        cmocka_unit_test(relay_policy), cmocka_unit_test(cut_at_every_byte),
        cmocka_unit_test(too_long),     cmocka_unit_test(code_based_and_ntru_prime_sources),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * daemon/config.c: what a reload sees as changed, and which of it applies live (the rest needs
 * a restart; docs/hykexd.md "Reload").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/config.h"
#include "daemon/config014.h"

static const char base[] =
    "{\"uuid\": \"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa\","
    " \"certificate_config\": {\"cert_authority_path\": \"ca.crt\", \"cert_path\": \"n.crt\","
    " \"key_path\": \"n.key\"}, \"qkd\": {\"protocol\": \"none\"},"
    " \"trusted_peers\": {\"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb\": {\"address\":"
    " {\"host\": \"127.0.0.1\", \"port\": 3002}}}";

/* base plus extra members, loaded. */
static void load(struct hxd_config *cfg, const char *extra)
{
    char path[] = "/tmp/hykex-dcfg-XXXXXX", why[300];
    int fd = mkstemp(path);
    FILE *f;

    assert_true(fd >= 0);
    assert_non_null(f = fdopen(fd, "w"));
    fprintf(f, "%s%s}", base, extra);
    fclose(f);
    if (hxd_config_load(cfg, path, NULL, why, sizeof(why)) != HX_OK) {
        unlink(path);
        fail_msg("%s", why);
    }
    unlink(path);
}

static void expect_changed(const char *extra, const char *name, bool live)
{
    struct hxd_config *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
    const char *names[8];
    bool lv[8];
    size_t n;

    assert_true(a != NULL && b != NULL);
    load(a, "");
    load(b, extra);
    n = hxd_config_changed(a, b, names, lv, 8);
    if (n != 1 || strcmp(names[0], name) != 0 || lv[0] != live) {
        fail_msg("%s: %zu changed, first %s (live %d); want %s (live %d)", extra, n,
                 n > 0 ? names[0] : "-", n > 0 ? lv[0] : -1, name, live);
    }
    free(a);
    free(b);
}

static void nothing_changed(void **state)
{
    struct hxd_config *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
    const char *names[4];
    bool lv[4];

    (void)state;
    assert_true(a != NULL && b != NULL);
    load(a, "");
    load(b, "");
    assert_int_equal(hxd_config_changed(a, b, names, lv, 4), 0);
    free(a);
    free(b);
}

static void live_options_apply(void **state)
{
    (void)state;
    expect_changed(", \"trusted_peers\": {}", "trusted_peers", true);
    expect_changed(", \"log_level\": \"debug\"", "log_level", true);
    expect_changed(", \"peer\": {\"tls_groups\": \"X25519\"}", "peer.tls_groups", true);
    expect_changed(
        ", \"certificate_config\": {\"cert_authority_path\": \"ca.crt\", "
        "\"cert_path\": \"m.crt\", \"key_path\": \"n.key\"}",
        "certificate_config.cert_path", true);
    expect_changed(
        ", \"certificate_config\": {\"cert_authority_path\": \"ca.crt\", "
        "\"cert_path\": \"n.crt\", \"key_path\": \"n.key\", "
        "\"expiry_warning_days\": 30}",
        "certificate_config.expiry_warning_days", true);
}

static void others_need_a_restart(void **state)
{
    (void)state;
    expect_changed(", \"hybridization_server_address\": {\"port\": 7000}",
                   "hybridization_server_address.port", false);
    expect_changed(", \"state_dir\": \"/tmp/x\"", "state_dir", false);
    expect_changed(", \"limits\": {\"max_streams\": 9}", "limits.max_streams", false);
    expect_changed(", \"peer_local_address\": {\"port\": 4000}", "peer_local_address.port", false);
}

static void expiry_warning_days_default_and_range(void **state)
{
    struct hxd_config *a = calloc(1, sizeof(*a));

    (void)state;
    assert_non_null(a);
    load(a, "");
    assert_int_equal(a->cert_warn_days, 14);
    free(a);
}

/* api.etsi014.pairs: a pair's own method and sources, one of them alone, the defaults else;
 * a change of it needs a restart. */
static void etsi014_pair_overrides(void **state)
{
    struct hxd_config *a = calloc(1, sizeof(*a));
    const char *m, *k;

    (void)state;
    assert_non_null(a);
    load(a,
         ", \"api\": {\"etsi014\": {\"hybridization\": \"xor\", \"pairs\": ["
         "{\"master\": \"A\", \"slave\": \"B\", \"hybridization\": \"kmac\","
         " \"key_sources\": \"ML-KEM-768,X25519\"},"
         "{\"master\": \"B\", \"slave\": \"A\", \"key_sources\": \"QKD,ML-KEM-1024\"}]}}");
    assert_int_equal(a->e014.pairs.n, 2);
    hxd_014_pair_method(&a->e014, "A", "B", &m, &k);
    assert_string_equal(m, "kmac");
    assert_string_equal(k, "ML-KEM-768,X25519");
    hxd_014_pair_method(&a->e014, "B", "A", &m, &k);
    assert_string_equal(m, "xor");
    assert_string_equal(k, "QKD,ML-KEM-1024");
    hxd_014_pair_method(&a->e014, "A", "C", &m, &k);
    assert_string_equal(m, "xor");
    assert_string_equal(k, "QKD,ML-KEM-768");
    free(a);
    expect_changed(
        ", \"api\": {\"etsi014\": {\"pairs\": [{\"master\": \"A\","
        " \"slave\": \"B\", \"hybridization\": \"kmac\"}]}}",
        "api.etsi014.pairs", false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nothing_changed),
        cmocka_unit_test(live_options_apply),
        cmocka_unit_test(others_need_a_restart),
        cmocka_unit_test(expiry_warning_days_default_and_range),
        cmocka_unit_test(etsi014_pair_overrides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

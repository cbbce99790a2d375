/*
 * daemon/etsi014_peers: the SAE lists the peers announce (SAE_LIST), on a struct hxd in memory.
 * Who is learned (a local SAE and an SAE claimed by two peers are not), a newer list replacing
 * an older one, the boot id, malformed lists and untrusted senders ignored. The link layer is
 * wrapped: no link is up, so an announcement goes nowhere (and must not fail).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"
#include "daemon/etsi014_peers.h"
#include "daemon/hxd.h"
#include "daemon/service.h"

struct hx_link *__wrap_hx_links_get(struct hx_links *ls, const struct hx_uuid *peer);

struct hx_link *__wrap_hx_links_get(struct hx_links *ls, const struct hx_uuid *peer)
{
    (void)ls;
    (void)peer;
    return NULL;
}

static struct hx_uuid node(uint8_t fill)
{
    struct hx_uuid u;

    memset(u.b, fill, sizeof(u.b));
    return u;
}

static struct hxd *daemon_new(void)
{
    struct hxd *d = calloc(1, sizeof(*d));

    assert_non_null(d);
    d->cfg.uuid = node(0xaa);
    d->cfg.trusted.peers[0].uuid = node(0xbb);
    d->cfg.trusted.peers[1].uuid = node(0xcc);
    d->cfg.trusted.n = 2;
    snprintf(d->cfg.e014.local.saes[0].id, sizeof(d->cfg.e014.local.saes[0].id), "SAE_A");
    d->cfg.e014.local.n = 1;
    pthread_mutex_init(&d->lock, NULL);
    return d;
}

/* Sends the list {boot, ids...} from peer as its link would hand it over. */
static void receive(struct hxd *d, uint8_t from, uint8_t boot, const char *const *ids, size_t n)
{
    static struct hx_peer_sae_list m;
    uint8_t buf[4096];
    struct hx_writer w;
    struct hx_uuid peer = node(from);

    memset(&m, 0, sizeof(m));
    m.boot = node(boot);
    for (size_t i = 0; i < n; i++) {
        snprintf(m.ids[i], sizeof(m.ids[i]), "%s", ids[i]);
    }
    m.n = (uint16_t)n;
    hx_writer_init_fixed(&w, buf, sizeof(buf));
    assert_int_equal(hx_peer_encode_sae_list(&w, &m), HX_OK);
    hxd_014_on_sae_list(d, &peer, buf, w.len);
}

static const struct hxd_014_sae *find(const struct hxd_014_sae *l, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(l[i].id, id) == 0) {
            return &l[i];
        }
    }
    return NULL;
}

static void learned(void **state)
{
    static const char *const from_b[] = {"SAE_B", "SAE_X"};
    static const char *const from_c[] = {"SAE_X", "SAE_A", "SAE_C"};
    static const char *const from_b2[] = {"SAE_X"};
    struct hxd_014_sae out[8];
    struct hxd *d = daemon_new();
    struct hx_uuid b = node(0xbb), c = node(0xcc), boot;
    size_t n;

    (void)state;
    assert_int_equal(hxd_svc_014_learned(d, out, 8), 0);
    assert_false(hxd_svc_014_peer_boot(d, &b, &boot));
    receive(d, 0xbb, 1, from_b, 2);
    receive(d, 0xcc, 2, from_c, 3);
    n = hxd_svc_014_learned(d, out, 8);
    assert_int_equal(n, 3);
    assert_true(hx_uuid_equal(&find(out, n, "SAE_B")->node, &b));
    assert_true(hx_uuid_equal(&find(out, n, "SAE_X")->node, &b)); /* the first claim stands */
    assert_true(hx_uuid_equal(&find(out, n, "SAE_C")->node, &c));
    assert_null(find(out, n, "SAE_A")); /* local here: never remote */
    assert_true(hxd_svc_014_announced(d, &b, "SAE_B"));
    assert_false(hxd_svc_014_announced(d, &c, "SAE_B"));
    assert_true(hxd_svc_014_peer_boot(d, &b, &boot));
    assert_true(hx_uuid_equal(&boot, (struct hx_uuid[1]){node(1)}));
    /* at most cap */
    assert_int_equal(hxd_svc_014_learned(d, out, 2), 2);

    /* B restarts without SAE_B: a new boot id, its list replaced */
    receive(d, 0xbb, 3, from_b2, 1);
    n = hxd_svc_014_learned(d, out, 8);
    assert_int_equal(n, 2);
    assert_null(find(out, n, "SAE_B"));
    assert_false(hxd_svc_014_announced(d, &b, "SAE_B"));
    assert_true(hxd_svc_014_peer_boot(d, &b, &boot));
    assert_true(hx_uuid_equal(&boot, (struct hx_uuid[1]){node(3)}));

    /* malformed: dropped, the last good list stays; a sender that is not a trusted peer: too */
    static const uint8_t bad[] = {1, 2, 3};
    hxd_014_on_sae_list(d, &b, bad, sizeof(bad));
    assert_true(hxd_svc_014_announced(d, &b, "SAE_X"));
    receive(d, 0xdd, 4, from_b, 2);
    assert_int_equal(hxd_svc_014_learned(d, out, 8), 2);

    /* announcing with no link up: a boot id is made, nothing fails */
    hxd_svc_014_announce(d);
    assert_false(hx_uuid_is_nil(&d->e014_boot));
    boot = d->e014_boot;
    hxd_svc_014_announce(d);
    assert_true(hx_uuid_equal(&boot, &d->e014_boot)); /* one per start */

    pthread_mutex_destroy(&d->lock);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(learned),
    };
    hx_log_set_level(HX_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

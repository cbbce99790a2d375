/* The relay's topology (docs/relay.md): the TOPO_ANNOUNCE codec (proto/peer_topo.c), the map
 * and its paths (daemon/topology.c: flooding, replacement, ageing, path choice, the announcements
 * kept for the map hand-over) and the checks
 * an announcement passes before the map takes it (daemon/relay.c: certificate from the network
 * CA naming the origin, signature; a bad one refused). Certificates are made here with OpenSSL
 * (ML-DSA-65 CA and nodes), so the test needs no files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "daemon/relay.h"
#include "daemon/topology.h"
#include "peer/certid.h"
#include "proto/peer_topo.h"

static const uint8_t fake_cert[3] = {0x30, 0x01, 0x00};

/* Node i's UUID: every byte i (so that UUID order is node order). */
static struct hx_uuid id(int i)
{
    struct hx_uuid u;
    memset(u.b, i, sizeof(u.b));
    return u;
}

/* The same as a pointer (a ring of 8, enough for one call's arguments). */
static const struct hx_uuid *idp(int i)
{
    static struct hx_uuid ring[8];
    static size_t next;
    struct hx_uuid *u = &ring[next++ % 8];
    *u = id(i);
    return u;
}

static void msg(struct hx_peer_topo *m, int origin, uint64_t seq, const int *neigh, size_t n,
                uint32_t key)
{
    memset(m, 0, sizeof(*m));
    m->origin = id(origin);
    m->seq = seq;
    m->lifetime_s = 40;
    m->node_flags = HX_TOPO_TRANSIT;
    for (size_t i = 0; i < n; i++) {
        m->neigh[i] =
            (struct hx_topo_neigh){.node = id(neigh[i]), .flags = HX_TOPO_QKD, .key_avail = key};
    }
    m->n_neigh = n;
    m->cert = fake_cert;
    m->cert_len = sizeof(fake_cert);
}

static size_t encode(const struct hx_peer_topo *m, uint8_t *buf, size_t cap)
{
    struct hx_writer w;
    const uint8_t sig[5] = {1, 2, 3, 4, 5};

    hx_writer_init_fixed(&w, buf, cap);
    assert_int_equal(hx_peer_encode_topo_body(&w, m), HX_OK);
    assert_int_equal(hx_peer_encode_topo_sig(&w, sig, sizeof(sig)), HX_OK);
    return w.len;
}

/* ---- codec ---- */

static void codec_round_trip_and_cuts(void **state)
{
    static struct hx_peer_topo m, d;
    const int nb[] = {2, 3};
    uint8_t buf[512], big[513];
    size_t len;

    (void)state;
    msg(&m, 1, 0x0102030405060708ull, nb, 2, 77);
    m.neigh[1].flags = 0;
    len = encode(&m, buf, sizeof(buf));
    /* 16 + 8 + 4 + 1 + 1 + 2 x 21 + 2 + 3 + 2 + 5 */
    assert_int_equal(len, 84);
    assert_int_equal(buf[16], 0x01);
    assert_int_equal(buf[28], HX_TOPO_TRANSIT);
    assert_int_equal(buf[29], 2);
    assert_int_equal(hx_peer_decode_topo(buf, len, &d), HX_OK);
    assert_memory_equal(d.origin.b, m.origin.b, 16);
    assert_true(d.seq == m.seq);
    assert_int_equal(d.lifetime_s, 40);
    assert_int_equal(d.node_flags, HX_TOPO_TRANSIT);
    assert_int_equal(d.n_neigh, 2);
    assert_int_equal(d.neigh[0].key_avail, 77);
    assert_int_equal(d.neigh[0].flags, HX_TOPO_QKD);
    assert_int_equal(d.neigh[1].flags, 0);
    assert_int_equal(d.cert_len, 3);
    assert_ptr_equal(d.signed_part, buf);
    assert_int_equal(d.signed_len, len - 7);
    assert_int_equal(d.sig_len, 5);
    for (size_t cut = 0; cut < len; cut++) {
        assert_int_not_equal(hx_peer_decode_topo(buf, cut, &d), HX_OK);
    }
    memcpy(big, buf, len);
    big[len] = 0;
    assert_int_not_equal(hx_peer_decode_topo(big, len + 1, &d), HX_OK);
}

static void codec_refusals(void **state)
{
    static struct hx_peer_topo m, d;
    const int nb[] = {2, 3};
    uint8_t buf[512];
    size_t len;
    struct hx_writer w;

    (void)state;
    /* unknown flag bits */
    msg(&m, 1, 1, nb, 2, 0);
    len = encode(&m, buf, sizeof(buf));
    buf[16 + 8 + 4 + 2 + 16] = 0x02;
    assert_int_equal(hx_peer_decode_topo(buf, len, &d), HX_ERR_BAD_VALUE);
    /* unknown node flag bits */
    len = encode(&m, buf, sizeof(buf));
    buf[28] = 0x03;
    assert_int_equal(hx_peer_decode_topo(buf, len, &d), HX_ERR_BAD_VALUE);
    /* the origin as its own neighbour; a neighbour twice: the encoder refuses too */
    hx_writer_init_fixed(&w, buf, sizeof(buf));
    m.neigh[1].node = id(1);
    assert_int_equal(hx_peer_encode_topo_body(&w, &m), HX_ERR_INVALID_ARG);
    m.neigh[1].node = id(2);
    assert_int_equal(hx_peer_encode_topo_body(&w, &m), HX_ERR_INVALID_ARG);
    msg(&m, 1, 1, nb, 2, 0);
    len = encode(&m, buf, sizeof(buf));
    memset(buf + 16 + 8 + 4 + 2 + 21, 2, 16); /* second neighbour = first */
    assert_int_equal(hx_peer_decode_topo(buf, len, &d), HX_ERR_BAD_VALUE);
    /* lifetime 0 and above the maximum */
    msg(&m, 1, 1, nb, 2, 0);
    len = encode(&m, buf, sizeof(buf));
    memset(buf + 24, 0, 4);
    assert_int_equal(hx_peer_decode_topo(buf, len, &d), HX_ERR_BAD_VALUE);
    buf[26] = 0x0e;
    buf[27] = 0x11; /* 3601 s */
    assert_int_equal(hx_peer_decode_topo(buf, len, &d), HX_ERR_BAD_VALUE);
    /* 65 neighbours */
    msg(&m, 1, 1, nb, 0, 0);
    len = encode(&m, buf, sizeof(buf));
    buf[29] = HX_TOPO_MAX_NEIGH + 1;
    assert_int_equal(hx_peer_decode_topo(buf, len, &d), HX_ERR_TOO_LARGE);
    /* no certificate, no signature */
    msg(&m, 1, 1, nb, 0, 0);
    m.cert_len = 0;
    hx_writer_init_fixed(&w, buf, sizeof(buf));
    assert_int_equal(hx_peer_encode_topo_body(&w, &m), HX_ERR_INVALID_ARG);
    assert_int_equal(hx_peer_encode_topo_sig(&w, buf, 0), HX_ERR_INVALID_ARG);
    msg(&m, 1, 1, nb, 0, 0);
    len = encode(&m, buf, sizeof(buf));
    buf[len - 7] = 0;
    buf[len - 6] = 0; /* signature length 0 */
    assert_int_not_equal(hx_peer_decode_topo(buf, len - 5, &d), HX_OK);
}

/* RELAY_FWD: layout, with and without the relayed QKD part, and refusals. */
static void relay_fwd_codec(void **state)
{
    static struct hx_peer_fwd m, d;
    static uint8_t buf[1024], big[1025];
    const uint8_t inner[20] = {0xaa}, acc[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct hx_writer w;
    size_t len;

    (void)state;
    memset(&m, 0, sizeof(m));
    m.n = 3;
    m.path[0] = id(1);
    m.path[1] = id(2);
    m.path[2] = id(3);
    m.at = 1;
    m.type = 0x10; /* STREAM_OPEN */
    m.p = inner;
    m.len = sizeof(inner);
    hx_writer_init_fixed(&w, buf, sizeof(buf));
    assert_int_equal(hx_peer_encode_fwd(&w, &m), HX_OK);
    len = w.len;
    assert_int_equal(len, 1 + 3 * 16 + 3 + 20);
    assert_int_equal(buf[49], 1);    /* at */
    assert_int_equal(buf[50], 0x10); /* inner type */
    assert_int_equal(buf[51], 0);    /* no QKD part */
    assert_int_equal(hx_peer_decode_fwd(buf, len, &d), HX_OK);
    assert_int_equal(d.n, 3);
    assert_memory_equal(d.path[2].b, id(3).b, 16);
    assert_false(d.has_qkd);
    assert_int_equal(d.len, 20);
    assert_ptr_equal(d.p, buf + 52);
    /* any cut refuses, except an inner payload cut short (the inner decoder judges that) */
    for (size_t cut = 0; cut < 52; cut++) {
        assert_int_not_equal(hx_peer_decode_fwd(buf, cut, &d), HX_OK);
    }
    /* with the accumulator: only on a BATCH_REQ */
    m.type = 0x20;
    m.has_qkd = true;
    m.qkd_index = 0x0102030405060708ull;
    m.qkd_acc = acc;
    m.qkd_acc_len = sizeof(acc);
    hx_writer_init_fixed(&w, buf, sizeof(buf));
    assert_int_equal(hx_peer_encode_fwd(&w, &m), HX_OK);
    len = w.len;
    assert_int_equal(len, 52 + 8 + 4 + 8 + 20);
    assert_int_equal(hx_peer_decode_fwd(buf, len, &d), HX_OK);
    assert_true(d.has_qkd && d.qkd_index == m.qkd_index && d.qkd_acc_len == 8);
    assert_memory_equal(d.qkd_acc, acc, 8);
    for (size_t cut = 0; cut < 72; cut++) {
        assert_int_not_equal(hx_peer_decode_fwd(buf, cut, &d), HX_OK);
    }
    buf[50] = 0x21; /* an accumulator on a BATCH_RESP */
    assert_int_equal(hx_peer_decode_fwd(buf, len, &d), HX_ERR_BAD_VALUE);
    buf[50] = 0x20;
    buf[51] = 2; /* unknown QKD flag */
    assert_int_equal(hx_peer_decode_fwd(buf, len, &d), HX_ERR_BAD_VALUE);
    buf[51] = 1;
    memset(buf + 60, 0, 4); /* accumulator of length 0 */
    assert_int_not_equal(hx_peer_decode_fwd(buf, len, &d), HX_OK);
    /* a loop, at 0, at past the end, a path of 1, a type a relay does not carry */
    m.has_qkd = false;
    m.path[2] = id(1);
    hx_writer_init_fixed(&w, buf, sizeof(buf));
    assert_int_equal(hx_peer_encode_fwd(&w, &m), HX_ERR_INVALID_ARG);
    m.path[2] = id(3);
    m.at = 0;
    assert_int_equal(hx_peer_encode_fwd(&w, &m), HX_ERR_INVALID_ARG);
    m.at = 3;
    assert_int_equal(hx_peer_encode_fwd(&w, &m), HX_ERR_INVALID_ARG);
    m.at = 1;
    m.type = 0x50; /* TOPO_ANNOUNCE */
    assert_int_equal(hx_peer_encode_fwd(&w, &m), HX_ERR_INVALID_ARG);
    m.type = 0x51; /* RELAY_FWD in RELAY_FWD */
    assert_int_equal(hx_peer_encode_fwd(&w, &m), HX_ERR_INVALID_ARG);
    m.type = 0x20;
    assert_int_equal(hx_peer_encode_fwd(&w, &m), HX_OK);
    memcpy(big, buf, w.len);
    big[0] = 1; /* n = 1 */
    assert_int_equal(hx_peer_decode_fwd(big, w.len, &d), HX_ERR_BAD_VALUE);
    big[0] = HX_RELAY_MAX_PATH + 1;
    assert_int_equal(hx_peer_decode_fwd(big, w.len, &d), HX_ERR_BAD_VALUE);
    big[0] = 3;
    memcpy(big + 1 + 32, id(1).b, 16); /* path[2] = path[0] */
    assert_int_equal(hx_peer_decode_fwd(big, w.len, &d), HX_ERR_BAD_VALUE);
}

/* RELAY_REPATH: layout, every cut, and refusals. */
static void relay_repath_codec(void **state)
{
    struct hx_peer_repath m, d;
    uint8_t buf[300];
    struct hx_writer w;
    size_t len;

    (void)state;
    memset(&m, 0, sizeof(m));
    m.ksid = id(7);
    m.epoch = 0x01020304;
    m.kind = HX_REPATH_OPEN;
    m.qkd_link = id(9);
    hx_writer_init_fixed(&w, buf, sizeof(buf));
    assert_int_equal(hx_peer_encode_repath(&w, &m), HX_OK);
    len = w.len;
    assert_int_equal(len, 16 + 4 + 1 + 16 + 2);
    assert_int_equal(buf[16], 0x01); /* epoch, big endian */
    assert_int_equal(buf[19], 0x04);
    assert_int_equal(buf[20], 0); /* kind */
    assert_int_equal(buf[21], 9); /* the link's QKD stream id */
    assert_int_equal(hx_peer_decode_repath(buf, len, &d), HX_OK);
    assert_memory_equal(&d, &m, sizeof(m));
    for (size_t cut = 0; cut < len; cut++) {
        assert_int_not_equal(hx_peer_decode_repath(buf, cut, &d), HX_OK);
    }
    buf[len] = 0;
    assert_int_equal(hx_peer_decode_repath(buf, len + 1, &d), HX_ERR_TOO_LARGE);
    buf[20] = 3; /* unknown kind */
    assert_int_equal(hx_peer_decode_repath(buf, len, &d), HX_ERR_BAD_VALUE);
    buf[20] = 1; /* an answer carries no link id */
    assert_int_equal(hx_peer_decode_repath(buf, len, &d), HX_ERR_BAD_VALUE);
    /* a refusal with its reason */
    m.kind = HX_REPATH_REFUSED;
    memset(&m.qkd_link, 0, sizeof(m.qkd_link));
    snprintf(m.msg, sizeof(m.msg), "no KME");
    hx_writer_init_fixed(&w, buf, sizeof(buf));
    assert_int_equal(hx_peer_encode_repath(&w, &m), HX_OK);
    assert_int_equal(hx_peer_decode_repath(buf, w.len, &d), HX_OK);
    assert_string_equal(d.msg, "no KME");
    buf[w.len - 1] = 0; /* a NUL inside the reason */
    assert_int_not_equal(hx_peer_decode_repath(buf, w.len, &d), HX_OK);
    /* what the encoder refuses: a reason on a non-refusal, an open without a link, no stream */
    m.kind = HX_REPATH_DONE;
    hx_writer_init_fixed(&w, buf, sizeof(buf));
    assert_int_equal(hx_peer_encode_repath(&w, &m), HX_ERR_INVALID_ARG);
    m.msg[0] = '\0';
    m.kind = HX_REPATH_OPEN;
    assert_int_equal(hx_peer_encode_repath(&w, &m), HX_ERR_INVALID_ARG);
    m.kind = HX_REPATH_DONE;
    memset(&m.ksid, 0, sizeof(m.ksid));
    assert_int_equal(hx_peer_encode_repath(&w, &m), HX_ERR_INVALID_ARG);
    /* a relay carries it inside RELAY_FWD */
    assert_true(hx_peer_fwd_type_ok(HX_PEER_RELAY_REPATH));
}

/* ---- the map ---- */

static void replace_and_age(void **state)
{
    static struct hx_peer_topo m;
    struct hx_topo t;
    enum hx_topo_verdict v;
    const int nb[] = {2};

    (void)state;
    assert_int_equal(hx_topo_init(&t, &(struct hx_uuid){0}, 3), HX_OK);
    msg(&m, 1, 10, nb, 1, 0);
    assert_true(hx_topo_is_newer(&t, &m.origin, 10));
    assert_int_equal(hx_topo_accept(&t, &m, 1000, &v), HX_OK);
    assert_int_equal(v, HX_TOPO_NEW);
    assert_false(hx_topo_is_newer(&t, &m.origin, 10));
    /* the same or an older version: stale, kept as it was */
    assert_int_equal(hx_topo_accept(&t, &m, 2000, &v), HX_OK);
    assert_int_equal(v, HX_TOPO_STALE);
    m.seq = 9;
    m.n_neigh = 0;
    assert_int_equal(hx_topo_accept(&t, &m, 2000, &v), HX_OK);
    assert_int_equal(v, HX_TOPO_STALE);
    assert_int_equal(hx_topo_find(&t, &m.origin)->n_neigh, 1);
    /* a newer one replaces it and restarts its lifetime */
    m.seq = 11;
    assert_int_equal(hx_topo_accept(&t, &m, 30000, &v), HX_OK);
    assert_int_equal(v, HX_TOPO_REPLACED);
    assert_int_equal(hx_topo_find(&t, &m.origin)->n_neigh, 0);
    assert_int_equal(hx_topo_age(&t, 41000), 0); /* 40 s after 1 s would have expired it */
    assert_int_equal(hx_topo_age(&t, 70000), 1);
    assert_null(hx_topo_find(&t, &m.origin));
    /* this node's own entry never expires; a full map refuses new nodes, replaces known ones */
    msg(&m, 0, 1, nb, 1, 0);
    assert_int_equal(hx_topo_accept(&t, &m, 0, &v), HX_OK);
    for (int i = 1; i <= 2; i++) {
        msg(&m, i, 1, nb, 0, 0);
        assert_int_equal(hx_topo_accept(&t, &m, 0, &v), HX_OK);
    }
    msg(&m, 5, 1, nb, 0, 0);
    assert_int_equal(hx_topo_accept(&t, &m, 0, &v), HX_ERR_NOSPACE);
    msg(&m, 2, 2, nb, 0, 0);
    assert_int_equal(hx_topo_accept(&t, &m, 0, &v), HX_OK);
    assert_int_equal(v, HX_TOPO_REPLACED);
    assert_int_equal(hx_topo_age(&t, INT64_MAX), 2);
    assert_non_null(hx_topo_find(&t, idp(0)));
    hx_topo_wipe(&t);
}

/* Flooding as daemon/relay.c does it: a node takes what is newer and passes it to every
 * neighbour but the one it came from. Every map ends equal, each node handles each
 * announcement a bounded number of times, and a later version replaces the earlier one
 * everywhere. */
#define NN 6
static const int ring_links[][2] = {{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 0}, {1, 4}};
#define NL (sizeof(ring_links) / sizeof(ring_links[0]))

struct flood_msg {
    int to, from;
    struct hx_peer_topo m;
};

static size_t neighbours_of(int n, int *out)
{
    size_t k = 0;
    for (size_t i = 0; i < NL; i++) {
        if (ring_links[i][0] == n) {
            out[k++] = ring_links[i][1];
        } else if (ring_links[i][1] == n) {
            out[k++] = ring_links[i][0];
        }
    }
    return k;
}

static void flood(struct hx_topo *maps, struct flood_msg *q, size_t *handled, int origin,
                  uint64_t seq)
{
    size_t head = 0, tail = 0;
    int nb[NN];
    size_t n = neighbours_of(origin, nb);
    enum hx_topo_verdict v;

    msg(&q[tail].m, origin, seq, nb, n, 100);
    q[tail].to = origin;
    q[tail++].from = -1;
    while (head < tail) {
        struct flood_msg *f = &q[head++];
        handled[f->to]++;
        assert_int_equal(hx_topo_accept(&maps[f->to], &f->m, 0, &v), HX_OK);
        if (v == HX_TOPO_STALE) {
            continue;
        }
        int fw[NN];
        size_t k = neighbours_of(f->to, fw);
        for (size_t i = 0; i < k; i++) {
            if (fw[i] != f->from) {
                assert_true(tail < 4 * NN * NN);
                q[tail] = (struct flood_msg){.to = fw[i], .from = f->to, .m = f->m};
                tail++;
            }
        }
    }
}

static void flooding_converges(void **state)
{
    struct hx_topo maps[NN];
    struct flood_msg *q = calloc(4 * NN * NN, sizeof(*q));
    struct hx_topo_path p;
    size_t handled[NN] = {0};

    (void)state;
    assert_non_null(q);
    for (int i = 0; i < NN; i++) {
        assert_int_equal(hx_topo_init(&maps[i], &(struct hx_uuid){0}, 16), HX_OK);
        maps[i].self = id(i);
    }
    for (int i = 0; i < NN; i++) {
        flood(maps, q, handled, i, 1);
    }
    for (int i = 0; i < NN; i++) {
        assert_int_equal(maps[i].n, NN);
        /* each announcement reaches a node at most once per neighbour (+ its own start) */
        int nb[NN];
        assert_true(handled[i] <= NN * (neighbours_of(i, nb) + 1));
    }
    /* every node finds the others; 0 to 3 is 3 hops in the ring, 2 with the chord 1-4 */
    assert_int_equal(hx_topo_path(&maps[0], idp(3), NULL, &p), HX_OK);
    assert_int_equal(p.hops, 3);
    /* node 3 announces again without its link to 2: everyone's path avoids it */
    {
        static struct hx_peer_topo m;
        const int nb[] = {4};
        enum hx_topo_verdict v;
        msg(&m, 3, 2, nb, 1, 100);
        for (int i = 0; i < NN; i++) {
            assert_int_equal(hx_topo_accept(&maps[i], &m, 0, &v), HX_OK);
            assert_int_equal(v, HX_TOPO_REPLACED);
        }
    }
    assert_int_equal(hx_topo_path(&maps[2], idp(3), NULL, &p), HX_OK);
    assert_int_equal(p.hops, 3); /* 2-1-4-3, no longer 2-3 */
    assert_memory_equal(p.node[1].b, id(1).b, 16);
    assert_memory_equal(p.node[2].b, id(4).b, 16);
    for (int i = 0; i < NN; i++) {
        hx_topo_wipe(&maps[i]);
    }
    free(q);
}

/* The announcements kept for the map hand-over (docs/relay.md "Map hand-over"): one per node,
 * a newer one in place of the older, bounded, pruned with the map; and what they are for: a
 * node whose link comes up after everyone announced learns the whole map from its neighbour's
 * kept announcements at once, where flooding alone (only what is new) would tell it nothing. */
static void kept_for_hand_over(void **state)
{
    static struct hx_peer_topo m;
    struct hx_topo_keep k;
    struct hx_topo t, late;
    enum hx_topo_verdict v;
    const int nb[] = {1};
    uint8_t buf[4][512];
    size_t len[4];

    (void)state;
    assert_int_equal(hx_topo_keep_init(&k, 0), HX_ERR_INVALID_ARG);
    assert_int_equal(hx_topo_keep_init(&k, 3), HX_OK);
    assert_int_equal(hx_topo_init(&t, idp(1), 8), HX_OK);
    /* nodes 0, 2, 3 announce (each linked to 1); node 1 keeps them as they arrived */
    for (int i = 0; i < 3; i++) {
        int o = i == 0 ? 0 : i + 1;
        msg(&m, o, 5, nb, 1, 0);
        len[i] = encode(&m, buf[i], sizeof(buf[i]));
        assert_int_equal(hx_topo_accept(&t, &m, 0, &v), HX_OK);
        assert_int_equal(hx_topo_keep_put(&k, &m.origin, m.seq, buf[i], len[i]), HX_OK);
    }
    assert_int_equal(k.n, 3);
    /* full: a fourth node is refused, a known one replaced (the newer bytes, one entry) */
    assert_int_equal(hx_topo_keep_put(&k, idp(6), 1, buf[0], len[0]), HX_ERR_NOSPACE);
    msg(&m, 2, 6, nb, 1, 0);
    len[3] = encode(&m, buf[3], sizeof(buf[3]));
    assert_int_equal(hx_topo_accept(&t, &m, 100, &v), HX_OK);
    assert_int_equal(hx_topo_keep_put(&k, &m.origin, 6, buf[3], len[3]), HX_OK);
    assert_int_equal(k.n, 3);
    assert_int_equal(k.a[1].seq, 6);
    assert_int_equal(k.a[1].len, len[3]);
    assert_memory_equal(k.a[1].p, buf[3], len[3]);
    hx_topo_keep_prune(&k, &t); /* all on the map at their kept version: none dropped */
    assert_int_equal(k.n, 3);
    /* 1's own announcement and a late node 4 linked to 1: before the hand-over, node 4's map
     * holds only itself; after 1 hands it the kept ones (and its own), every node with a path */
    const int own[] = {0, 2, 3, 4};
    msg(&m, 1, 7, own, 4, 0);
    assert_int_equal(hx_topo_accept(&t, &m, 100, &v), HX_OK);
    assert_int_equal(hx_topo_init(&late, idp(4), 8), HX_OK);
    msg(&m, 4, 1, nb, 1, 0);
    assert_int_equal(hx_topo_accept(&late, &m, 100, &v), HX_OK);
    assert_null(hx_topo_find(&late, idp(0)));
    for (size_t i = 0; i < k.n; i++) {
        static struct hx_peer_topo got;
        assert_int_equal(hx_peer_decode_topo(k.a[i].p, k.a[i].len, &got), HX_OK);
        assert_int_equal(hx_topo_accept(&late, &got, 200, &v), HX_OK);
        assert_int_equal(v, HX_TOPO_NEW);
    }
    msg(&m, 1, 7, own, 4, 0);
    assert_int_equal(hx_topo_accept(&late, &m, 200, &v), HX_OK);
    struct hx_topo_path p;
    for (int i = 0; i <= 3; i++) {
        assert_int_equal(hx_topo_path(&late, idp(i), NULL, &p), HX_OK);
        assert_int_equal(p.hops, i == 1 ? 1 : 2);
    }
    /* node 0 forgotten by the map (its lifetime over): its kept announcement goes too; node 3
     * replaced on the map by a version not kept here: dropped as well */
    msg(&m, 3, 9, nb, 1, 0);
    assert_int_equal(hx_topo_accept(&t, &m, 30000, &v), HX_OK);
    msg(&m, 2, 9, nb, 1, 0);
    assert_int_equal(hx_topo_accept(&t, &m, 30000, &v), HX_OK);
    assert_int_equal(hx_topo_keep_put(&k, &m.origin, 9, buf[3], len[3]), HX_OK);
    assert_int_equal(hx_topo_age(&t, 50000), 1); /* node 0, heard at 0 with 40 s */
    hx_topo_keep_prune(&k, &t);
    assert_int_equal(k.n, 1);
    assert_memory_equal(k.a[0].origin.b, id(2).b, 16);
    assert_int_equal(k.a[0].seq, 9);
    hx_topo_keep_wipe(&k);
    assert_int_equal(k.n, 0);
    assert_null(k.a);
    assert_int_equal(hx_topo_keep_put(&k, idp(2), 10, buf[0], len[0]), HX_ERR_STATE);
    hx_topo_wipe(&late);
    hx_topo_wipe(&t);
}

/* Builds a map seen from node 0 out of (a, b, key) links, both ends announcing. */
static void build(struct hx_topo *t, const int (*links)[3], size_t n_links, int n_nodes,
                  uint8_t non_qkd_from)
{
    static struct hx_peer_topo m;
    enum hx_topo_verdict v;

    assert_int_equal(hx_topo_init(t, &(struct hx_uuid){0}, 32), HX_OK);
    for (int node = 0; node < n_nodes; node++) {
        msg(&m, node, 1, NULL, 0, 0);
        for (size_t i = 0; i < n_links; i++) {
            int other = links[i][0] == node ? links[i][1] : links[i][1] == node ? links[i][0] : -1;
            if (other >= 0) {
                m.neigh[m.n_neigh++] = (struct hx_topo_neigh){
                    .node = id(other),
                    .flags = node == non_qkd_from && other == non_qkd_from + 1 ? 0 : HX_TOPO_QKD,
                    .key_avail = (uint32_t)links[i][2]};
            }
        }
        assert_int_equal(hx_topo_accept(t, &m, 0, &v), HX_OK);
    }
}

static void path_choice(void **state)
{
    /* 0-1-3 with 10 bytes, 0-2-3 with 50, 0-4-5-3 with 1000: fewest hops, then most key */
    const int links[][3] = {{0, 1, 10},   {1, 3, 500},  {0, 2, 50},  {2, 3, 60},
                            {0, 4, 1000}, {4, 5, 1000}, {5, 3, 1000}};
    struct hx_topo_policy pol = {0};
    struct hx_topo_path p;
    struct hx_topo t;

    (void)state;
    build(&t, links, 7, 6, 0xff);
    assert_int_equal(hx_topo_path(&t, idp(3), NULL, &p), HX_OK);
    assert_int_equal(p.hops, 2);
    assert_memory_equal(p.node[1].b, id(2).b, 16);
    assert_int_equal(p.key_avail, 50);
    /* never through 2: the other 2-hop path */
    struct hx_uuid avoid = id(2);
    pol.avoid = &avoid;
    pol.n_avoid = 1;
    assert_int_equal(hx_topo_path(&t, idp(3), &pol, &p), HX_OK);
    assert_memory_equal(p.node[1].b, id(1).b, 16);
    /* an avoided node may still be the end */
    assert_int_equal(hx_topo_path(&t, idp(2), &pol, &p), HX_OK);
    assert_int_equal(p.hops, 1);
    /* node 2 stops relaying for others (relay.transit false): the other 2-hop path */
    {
        static struct hx_peer_topo m2;
        enum hx_topo_verdict v2;
        const struct hx_topo_node *n2 = hx_topo_find(&t, idp(2));
        memset(&m2, 0, sizeof(m2));
        m2.origin = id(2);
        m2.seq = 2;
        m2.lifetime_s = 40;
        m2.n_neigh = n2->n_neigh;
        memcpy(m2.neigh, n2->neigh, sizeof(n2->neigh));
        assert_int_equal(hx_topo_accept(&t, &m2, 0, &v2), HX_OK);
        pol.n_avoid = 0;
        assert_int_equal(hx_topo_path(&t, idp(3), &pol, &p), HX_OK);
        assert_memory_equal(p.node[1].b, id(1).b, 16);
        assert_int_equal(hx_topo_path(&t, idp(2), &pol, &p), HX_OK); /* still an end */
    }
    /* at most 1 hop: 3 out of reach */
    pol.n_avoid = 0;
    pol.max_hops = 1;
    assert_int_equal(hx_topo_path(&t, idp(3), &pol, &p), HX_ERR_NOT_FOUND);
    assert_int_equal(hx_topo_path(&t, idp(9), NULL, &p), HX_ERR_NOT_FOUND);
    /* to itself: 0 hops */
    assert_int_equal(hx_topo_path(&t, idp(0), NULL, &p), HX_OK);
    assert_int_equal(p.hops, 0);
    /* all at once agrees with one at a time */
    {
        struct hx_topo_path all[32];
        bool reach[32];
        assert_int_equal(hx_topo_paths(&t, NULL, all, reach), HX_OK);
        for (size_t i = 0; i < t.n; i++) {
            assert_true(reach[i]);
            assert_int_equal(hx_topo_path(&t, &t.nodes[i].id, NULL, &p), HX_OK);
            assert_memory_equal(&p, &all[i], sizeof(p));
        }
    }
    hx_topo_wipe(&t);
}

static void path_ties_one_sided_and_qkd(void **state)
{
    /* a square 0-1-3, 0-2-3, equal key: the smaller UUIDs (via 1) */
    const int square[][3] = {{0, 1, 5}, {1, 3, 5}, {0, 2, 5}, {2, 3, 5}};
    const int line[][3] = {{0, 1, 0}, {1, 2, 0}, {2, 3, 0}};
    struct hx_topo_policy qkd = {.need_qkd = true};
    struct hx_topo_path p;
    struct hx_topo t;
    static struct hx_peer_topo m;
    enum hx_topo_verdict v;

    (void)state;
    build(&t, square, 4, 4, 0xff);
    assert_int_equal(hx_topo_path(&t, idp(3), NULL, &p), HX_OK);
    assert_memory_equal(p.node[1].b, id(1).b, 16);
    hx_topo_wipe(&t);
    /* a line whose hop 1-2 has no QKD at node 1: no QKD path, a path without the need */
    build(&t, line, 3, 4, 1);
    assert_int_equal(hx_topo_path(&t, idp(3), &qkd, &p), HX_ERR_NOT_FOUND);
    assert_int_equal(hx_topo_path(&t, idp(3), NULL, &p), HX_OK);
    assert_int_equal(p.hops, 3);
    /* a pinned path stays valid while both ends of each link announce it, with QKD if asked */
    assert_true(hx_topo_path_valid(&t, &p, false));
    assert_false(hx_topo_path_valid(&t, &p, true)); /* hop 1-2: no QKD at node 1 */
    msg(&m, 2, 2, (const int[]){3}, 1, 0);          /* node 2 drops its link to 1 */
    assert_int_equal(hx_topo_accept(&t, &m, 0, &v), HX_OK);
    assert_false(hx_topo_path_valid(&t, &p, false));
    msg(&m, 2, 3, (const int[]){1, 3}, 2, 0);
    assert_int_equal(hx_topo_accept(&t, &m, 0, &v), HX_OK);
    assert_true(hx_topo_path_valid(&t, &p, false));
    /* node 3 claims a link to 0 that 0 does not announce: not taken */
    msg(&m, 3, 2, (const int[]){2, 0}, 2, 0);
    assert_int_equal(hx_topo_accept(&t, &m, 0, &v), HX_OK);
    assert_int_equal(hx_topo_path(&t, idp(3), NULL, &p), HX_OK);
    assert_int_equal(p.hops, 3);
    hx_topo_wipe(&t);
}

/* ---- certificates and signatures ---- */

static EVP_PKEY *keygen(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ML-DSA-65");
    assert_non_null(k);
    return k;
}

static X509 *make_cert(EVP_PKEY *key, EVP_PKEY *ca_key, X509 *ca, const char *san, bool is_ca)
{
    X509 *x = X509_new();
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), is_ca ? 1 : 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)(is_ca ? "test CA" : "node"), -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(ca != NULL ? ca : x));
    X509V3_set_ctx(&ctx, ca != NULL ? ca : x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
                              is_ca ? "critical,CA:TRUE" : "CA:FALSE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (is_ca) {
        ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    if (san != NULL) {
        ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    assert_true(X509_sign(x, ca_key, NULL) > 0);
    return x;
}

static size_t der_of(X509 *x, uint8_t *out)
{
    unsigned char *p = out;
    int n = i2d_X509(x, &p);
    assert_true(n > 0 && n <= HX_TOPO_MAX_CERT);
    return (size_t)n;
}

/* A signed announcement of node 1 with certificate der, into buf; decoded into d. */
static size_t signed_msg(EVP_PKEY *signer, const uint8_t *der, size_t der_len, uint8_t *buf,
                         size_t cap, struct hx_peer_topo *d)
{
    static struct hx_peer_topo m;
    struct hx_sig_key *k;
    uint8_t sig[HX_TOPO_MAX_SIG];
    size_t sig_len;
    struct hx_writer w;

    msg(&m, 1, 5, (const int[]){2}, 1, 0);
    m.cert = der;
    m.cert_len = der_len;
    hx_writer_init_fixed(&w, buf, cap);
    assert_int_equal(hx_peer_encode_topo_body(&w, &m), HX_OK);
    assert_int_equal(hx_sig_key_from_evp(signer, &k), HX_OK);
    assert_int_equal(hx_sig_sign(k, (const uint8_t *)HX_TOPO_SIG_CTX, strlen(HX_TOPO_SIG_CTX),
                                 w.data, w.len, sig, sizeof(sig), &sig_len),
                     HX_OK);
    hx_sig_key_free(k);
    assert_int_equal(hx_peer_encode_topo_sig(&w, sig, sig_len), HX_OK);
    assert_int_equal(hx_peer_decode_topo(buf, w.len, d), HX_OK);
    return w.len;
}

static void announcements_checked(void **state)
{
    EVP_PKEY *ca_key = keygen(), *other_ca_key = keygen(), *k1 = keygen(), *k2 = keygen();
    X509 *ca = make_cert(ca_key, ca_key, NULL, NULL, true);
    X509 *other_ca = make_cert(other_ca_key, other_ca_key, NULL, NULL, true);
    const char *u1 = "URI:urn:uuid:01010101-0101-0101-0101-010101010101";
    X509 *c1 = make_cert(k1, ca_key, ca, u1, false);
    X509 *c1_other = make_cert(k1, other_ca_key, other_ca, u1, false);
    X509 *c1_nouuid = make_cert(k1, ca_key, ca, "DNS:node1.example", false);
    X509 *c2 =
        make_cert(k2, ca_key, ca, "URI:urn:uuid:02020202-0202-0202-0202-020202020202", false);
    char path[] = "/tmp/hykex-test-topo-XXXXXX", why[200];
    static uint8_t der[HX_TOPO_MAX_CERT], buf[HX_TOPO_MAX_CERT + 8192];
    static struct hx_peer_topo d;
    struct hx_certid *cid;
    struct hx_sig_key *key = NULL;
    int64_t not_after;
    size_t len;
    int fd;
    FILE *f;

    (void)state;
    assert_true((fd = mkstemp(path)) >= 0);
    assert_non_null(f = fdopen(fd, "w"));
    assert_true(PEM_write_X509(f, ca) == 1);
    fclose(f);
    assert_int_equal(hx_certid_new(path, &cid, why, sizeof(why)), HX_OK);
    unlink(path);

    /* good: the CA's certificate naming node 1, signed with node 1's key */
    len = signed_msg(k1, der, der_of(c1, der), buf, sizeof(buf), &d);
    assert_int_equal(hxd_relay_check_cert(cid, &d, &key, &not_after, why, sizeof(why)), HX_OK);
    assert_true(not_after > 0);
    assert_int_equal(hxd_relay_check_sig(key, &d), HX_OK);
    /* a bit flipped anywhere in the signed part or the signature: refused */
    buf[20] ^= 1; /* the sequence number */
    assert_int_equal(hx_peer_decode_topo(buf, len, &d), HX_OK);
    assert_int_equal(hxd_relay_check_sig(key, &d), HX_ERR_VERIFY);
    buf[20] ^= 1;
    buf[len - 1] ^= 0x80;
    assert_int_equal(hx_peer_decode_topo(buf, len, &d), HX_OK);
    assert_int_equal(hxd_relay_check_sig(key, &d), HX_ERR_VERIFY);
    hx_sig_key_free(key);
    key = NULL;
    /* signed by another node's key under node 1's certificate: refused */
    signed_msg(k2, der, der_of(c1, der), buf, sizeof(buf), &d);
    assert_int_equal(hxd_relay_check_cert(cid, &d, &key, &not_after, why, sizeof(why)), HX_OK);
    assert_int_equal(hxd_relay_check_sig(key, &d), HX_ERR_VERIFY);
    hx_sig_key_free(key);
    key = NULL;
    /* node 2's certificate on node 1's announcement: another node */
    signed_msg(k2, der, der_of(c2, der), buf, sizeof(buf), &d);
    assert_int_equal(hxd_relay_check_cert(cid, &d, &key, &not_after, why, sizeof(why)),
                     HX_ERR_VERIFY);
    assert_non_null(strstr(why, "another node"));
    assert_null(key);
    /* a certificate of another CA, or without a UUID SAN, or not DER */
    signed_msg(k1, der, der_of(c1_other, der), buf, sizeof(buf), &d);
    assert_int_equal(hxd_relay_check_cert(cid, &d, &key, &not_after, why, sizeof(why)),
                     HX_ERR_VERIFY);
    signed_msg(k1, der, der_of(c1_nouuid, der), buf, sizeof(buf), &d);
    assert_int_equal(hxd_relay_check_cert(cid, &d, &key, &not_after, why, sizeof(why)),
                     HX_ERR_VERIFY);
    assert_non_null(strstr(why, "UUID"));
    signed_msg(k1, fake_cert, sizeof(fake_cert), buf, sizeof(buf), &d);
    assert_int_equal(hxd_relay_check_cert(cid, &d, &key, &not_after, why, sizeof(why)),
                     HX_ERR_VERIFY);

    hx_certid_free(cid);
    X509_free(ca);
    X509_free(other_ca);
    X509_free(c1);
    X509_free(c1_other);
    X509_free(c1_nouuid);
    X509_free(c2);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(other_ca_key);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(codec_round_trip_and_cuts),
        cmocka_unit_test(codec_refusals),
        cmocka_unit_test(relay_fwd_codec),
        cmocka_unit_test(relay_repath_codec),
        cmocka_unit_test(replace_and_age),
        cmocka_unit_test(flooding_converges),
        cmocka_unit_test(kept_for_hand_over),
        cmocka_unit_test(path_choice),
        cmocka_unit_test(path_ties_one_sided_and_qkd),
        cmocka_unit_test(announcements_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

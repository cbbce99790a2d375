/* The relay's TOPO_ANNOUNCE codec (src/proto/peer_topo.c) and map (src/daemon/topology.c) on
 * arbitrary bytes. What decodes has its views inside the input, encodes again to the same
 * bytes, and is taken by a small map (as node 0's neighbours would see it) whose paths are
 * then computed: every path starts at the map's node, ends at its goal and has no more hops
 * than allowed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/topology.h"
#include "proto/peer_topo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(const uint8_t *p, size_t len, const uint8_t *v, size_t vlen)
{
    if (vlen > 0 && (v < p || v + vlen > p + len)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct hx_peer_topo m;
    static struct hx_topo_path paths[8];
    bool reach[8];
    struct hx_topo t;
    struct hx_topo_policy pol = {.max_hops = 3};
    enum hx_topo_verdict v;
    struct hx_writer w;
    struct hx_uuid self;

    if (hx_peer_decode_topo(data, size, &m) != HX_OK) {
        return 0;
    }
    inside(data, size, m.cert, m.cert_len);
    inside(data, size, m.sig, m.sig_len);
    if (m.signed_part != data || m.signed_len + 2 + m.sig_len != size) {
        abort();
    }
    hx_writer_init_dynamic(&w, 1u << 20);
    if (hx_peer_encode_topo_body(&w, &m) != HX_OK || w.len != m.signed_len ||
        hx_peer_encode_topo_sig(&w, m.sig, m.sig_len) != HX_OK || w.len != size ||
        memcmp(w.data, data, size) != 0) {
        abort();
    }
    hx_writer_wipe(&w);
    /* the map: the origin and, as the map's own node, its first neighbour (if any) announcing
     * the origin back */
    self = m.n_neigh > 0 ? m.neigh[0].node : m.origin;
    if (hx_topo_init(&t, &self, 8) != HX_OK) {
        return 0;
    }
    if (hx_topo_accept(&t, &m, 0, &v) != HX_OK || v != HX_TOPO_NEW) {
        abort();
    }
    if (m.n_neigh > 0) {
        static struct hx_peer_topo back;
        memset(&back, 0, sizeof(back));
        back.origin = self;
        back.seq = 1;
        back.lifetime_s = 1;
        back.node_flags = HX_TOPO_TRANSIT;
        back.n_neigh = 1;
        back.neigh[0] = (struct hx_topo_neigh){.node = m.origin, .flags = HX_TOPO_QKD};
        if (hx_topo_accept(&t, &back, 0, &v) != HX_OK) {
            abort();
        }
    }
    if (hx_topo_paths(&t, &pol, paths, reach) == HX_OK) {
        for (size_t i = 0; i < t.n; i++) {
            if (reach[i] && (paths[i].hops > 3 || !hx_uuid_equal(&paths[i].node[0], &self) ||
                             !hx_uuid_equal(&paths[i].node[paths[i].hops], &t.nodes[i].id))) {
                abort();
            }
        }
    }
    /* everything but the map's own node expires */
    (void)hx_topo_age(&t, INT64_MAX);
    if (t.n != 1 || !hx_uuid_equal(&t.nodes[0].id, &self)) {
        abort();
    }
    hx_topo_wipe(&t);
    return 0;
}

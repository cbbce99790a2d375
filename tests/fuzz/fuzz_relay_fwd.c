/* The relay's RELAY_FWD codec (src/proto/peer_topo.c) on arbitrary bytes: what decodes has its
 * views inside the input, a path without loops, `at` inside it, an accumulator only on a
 * BATCH_REQ, and encodes again to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/peer.h"
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
    static struct hx_peer_fwd m;
    struct hx_writer w;

    if (hx_peer_decode_fwd(data, size, &m) != HX_OK) {
        return 0;
    }
    inside(data, size, m.p, m.len);
    inside(data, size, m.qkd_acc, m.qkd_acc_len);
    if (m.n < 2 || m.n > HX_RELAY_MAX_PATH || m.at < 1 || m.at >= m.n ||
        !hx_peer_fwd_type_ok(m.type) || (m.has_qkd && m.type != HX_PEER_BATCH_REQ)) {
        abort();
    }
    for (size_t i = 0; i < m.n; i++) {
        for (size_t j = 0; j < i; j++) {
            if (hx_uuid_equal(&m.path[i], &m.path[j])) {
                abort();
            }
        }
    }
    hx_writer_init_dynamic(&w, 1u << 22);
    if (hx_peer_encode_fwd(&w, &m) != HX_OK || w.len != size || memcmp(w.data, data, size) != 0) {
        abort();
    }
    hx_writer_wipe(&w);
    return 0;
}

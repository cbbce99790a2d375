/* The relay's RELAY_REPATH codec (src/proto/peer_topo.c) on arbitrary bytes: what decodes is a
 * known kind with a stream id, a link id exactly on an open, a reason only on a refusal, and
 * encodes again to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/peer.h"
#include "proto/peer_topo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct hx_uuid nil;
    struct hx_peer_repath m;
    uint8_t out[16 + 4 + 1 + 16 + 2 + HX_REPATH_MAX_MSG];
    struct hx_writer w;

    if (hx_peer_decode_repath(data, size, &m) != HX_OK) {
        return 0;
    }
    if (m.kind > HX_REPATH_REFUSED || hx_uuid_is_nil(&m.ksid) ||
        (m.kind == HX_REPATH_OPEN) == hx_uuid_equal(&m.qkd_link, &nil) ||
        (m.kind != HX_REPATH_REFUSED && m.msg[0] != '\0') ||
        strnlen(m.msg, sizeof(m.msg)) > HX_REPATH_MAX_MSG) {
        abort();
    }
    hx_writer_init_fixed(&w, out, sizeof(out));
    if (hx_peer_encode_repath(&w, &m) != HX_OK || w.len != size || memcmp(out, data, size) != 0) {
        abort();
    }
    return 0;
}

/*
 * Test-only misbehaviour (compiled only with HYKEX_FAULT_INJECTION: dev and asan presets, never
 * release; fault_none.c stands in otherwise). hykexd.c sets d->fault and d->fault_drop_ack from
 * the environment at start-up; the fault tests make one node a hostile peer and check that the
 * other refuses it, that a lost ACK keeps the positions equal at both nodes, and (LOSE_FIN_AT)
 * that a restarted initiator settles a run of prepared batches that were committed apart.
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "daemon/batch.h"

/* RESP_REPLAY: keep this batch's body; send the previous one's (a recorded message replayed),
 * whatever its length: ECDSA signatures vary in length, and a replay sent only when the lengths
 * matched let honest bodies through (a flaky test). The first is honest. */
static void replay(struct hxd *d, struct hx_writer *w)
{
    size_t now_len = w->len - HX_PEER_BATCH_HEAD;
    uint8_t *now = malloc(now_len);

    if (now == NULL) {
        return;
    }
    memcpy(now, w->data + HX_PEER_BATCH_HEAD, now_len);
    if (d->fault_last != NULL) {
        w->len = HX_PEER_BATCH_HEAD;
        if (hx_write_bytes(w, d->fault_last, d->fault_last_len) != HX_OK) {
            w->len = HX_PEER_BATCH_HEAD; /* an empty body: refused as malformed, still no key */
        }
    }
    free(d->fault_last);
    d->fault_last = now;
    d->fault_last_len = now_len;
}

void hxd_fault_alter(struct hxd *d, uint8_t type, struct hx_writer *w, size_t sig_len)
{
    enum hxd_fault f = d->fault;
    bool resp = type == HX_PEER_BATCH_RESP, fin = type == HX_PEER_BATCH_FIN;
    bool mac = sig_len == 32; /* a MAC (batch_auth.c): no signature scheme is that short */

    if (w->len < HX_PEER_BATCH_HEAD + 2 + sig_len + HX_PEER_TAG_LEN) {
        return;
    }
    if ((resp && f == HXD_FAULT_RESP_SIG) || (fin && f == HXD_FAULT_FIN_SIG) ||
        (mac && ((resp && f == HXD_FAULT_RESP_MAC) || (fin && f == HXD_FAULT_FIN_MAC)))) {
        w->data[w->len - HX_PEER_TAG_LEN - sig_len / 2] ^= 0x01;
    } else if ((resp && f == HXD_FAULT_RESP_TAG) || (fin && f == HXD_FAULT_FIN_TAG)) {
        w->data[w->len - 1] ^= 0x80;
    } else if (resp && (f == HXD_FAULT_RESP_CT || (mac && f == HXD_FAULT_RESP_MAC_CT))) {
        w->data[HX_PEER_BATCH_HEAD] ^= 0x01;
    } else if (resp && f == HXD_FAULT_RESP_REPLAY) {
        replay(d, w);
    } else {
        return;
    }
    hx_warn("fault injection: sending an altered batch message",
            HX_F_STR("type", resp ? "BATCH_RESP" : "BATCH_FIN"));
}

bool hxd_fault_drop_ack(struct hxd *d)
{
    return d->fault_drop_ack > 0 && --d->fault_drop_ack == 0;
}

bool hxd_fault_lose_fin(struct hxd *d, uint64_t first)
{
    if (d->fault_lose_fin == 0 || d->fault_fin_lost || first != d->fault_lose_fin - 1) {
        return false;
    }
    d->fault_fin_lost = true;
    hx_warn("fault injection: BATCH_FIN lost", HX_F_U64("first", first));
    return true;
}

bool hxd_fault_mute_ack(struct hxd *d, uint64_t first)
{
    if (!d->fault_fin_lost || d->fault_lose_fin == 0 || first < d->fault_lose_fin) {
        return false;
    }
    hx_warn("fault injection: BATCH_ACK not sent", HX_F_U64("first", first));
    return true;
}

void hxd_fault_query_seen(struct hxd *d)
{
    if (d->fault_fin_lost) {
        d->fault_lose_fin = 0; /* the initiator is back: production goes on as usual */
    }
}

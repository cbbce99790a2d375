/* Builds without HYKEX_FAULT_INJECTION (release): no misbehaviour, whatever the environment. */
#include "daemon/batch.h"

void hxd_fault_alter(struct hxd *d, uint8_t type, struct hx_writer *w, size_t sig_len)
{
    (void)d;
    (void)type;
    (void)w;
    (void)sig_len;
}

bool hxd_fault_drop_ack(struct hxd *d)
{
    (void)d;
    return false;
}

bool hxd_fault_lose_fin(struct hxd *d, uint64_t first)
{
    (void)d;
    (void)first;
    return false;
}

bool hxd_fault_mute_ack(struct hxd *d, uint64_t first)
{
    (void)d;
    (void)first;
    return false;
}

void hxd_fault_query_seen(struct hxd *d)
{
    (void)d;
}

/*
 * hykex public client API: the ETSI GS QKD 004 application interface.
 *
 * This header is a promise to applications: its names and values do not change within a major
 * version. It starts with what ETSI 004 fixes (status codes, QoS); the calls
 * hykex_open_connect / hykex_get_key / hykex_close arrive with the client library.
 */
#ifndef HYKEX_HYKEX_H
#define HYKEX_HYKEX_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HYKEX_VERSION_MAJOR 0
#define HYKEX_VERSION_MINOR 1
#define HYKEX_VERSION_PATCH 0

/* ETSI GS QKD 004 V2.1.1, table of status values. */
enum hykex_status {
    HYKEX_STATUS_SUCCESS = 0,
    HYKEX_STATUS_PEER_NOT_CONNECTED = 1,     /* connection made, peer application not yet */
    HYKEX_STATUS_INSUFFICIENT_KEY = 2,       /* GET_KEY: not enough key available */
    HYKEX_STATUS_PEER_NOT_CONNECTED_GET = 3, /* GET_KEY: peer application not connected */
    HYKEX_STATUS_NO_QKD_CONNECTION = 4,      /* no QKD connection available */
    HYKEX_STATUS_KSID_IN_USE = 5,            /* OPEN_CONNECT: key stream id already in use */
    HYKEX_STATUS_TIMEOUT = 6,                /* TIMEOUT_ERROR */
    HYKEX_STATUS_QOS_NOT_MET = 7,            /* OPEN_CONNECT: QoS not met, counter-proposal */
    HYKEX_STATUS_METADATA_TOO_SMALL = 8,     /* GET_KEY: metadata buffer too small */
};

/* ETSI GS QKD 004 QoS. Rates in bits per second, timeout in ms, TTL in seconds. */
#define HYKEX_MIMETYPE_MAX 256
struct hykex_qos {
    uint32_t key_chunk_size;
    uint32_t max_bps;
    uint32_t min_bps;
    uint32_t jitter;
    uint32_t priority;
    uint32_t timeout_ms;
    uint32_t ttl_s;
    char metadata_mimetype[HYKEX_MIMETYPE_MAX + 1];
};

/* A short English description of an ETSI 004 status; never NULL. */
const char *hykex_status_string(int status);

#ifdef __cplusplus
}
#endif

#endif

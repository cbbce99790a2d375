/* Between source/qkd.c and source/qkd_reply.c: a JSON KME reply's parts. Not for use outside
 * src/source/. */
#ifndef HX_SOURCE_QKD_INT_H
#define HX_SOURCE_QKD_INT_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/qkdid.h"
#include "hykex/hykex.h"

/* The reply's integer status (4 when there is none), its message into msg. */
uint32_t hx_qkd_reply_status(struct json_object *o, char *msg, size_t msg_len);
/* A GET_KEY reply's status, its key_buffer (exactly len integers 0..255) into key. */
uint32_t hx_qkd_key_from_reply(struct json_object *o, const char *kme, uint8_t *key, size_t len,
                               char *msg, size_t msg_len);
/* An OPEN_CONNECT reply's status; with 7 its counter-proposal into qos; with 0 or 1 its
 * key_stream_id (opaque: common/qkdid.h) into ksid, or status 4 naming kme and the fault. */
uint32_t hx_qkd_open_from_reply(struct json_object *o, const char *kme, struct hykex_qos *qos,
                                struct hx_qkd_ksid *ksid, char *msg, size_t msg_len);

#endif

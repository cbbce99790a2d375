/*
 * ETSI 004 requests to replies (handlers.c): a decoded OPEN_CONNECT, GET_KEY, CLOSE or STATUS
 * goes to the stream service (daemon/service.h) and its result becomes the reply, with the
 * reference's separators (", " and ": ", as Python's json.dumps prints them). No connection
 * here: server.c reads requests and sends what these write.
 */
#ifndef HX_API_HANDLERS_H
#define HX_API_HANDLERS_H

#include <json-c/json.h>

#include "common/buf.h"
#include "daemon/service.h"
#include "proto/etsi004.h"

struct hxd;

/* Who sent a request, and how to ask whether they are still there. */
struct hxd_api_caller {
    const char *identity; /* "uid:N" (Unix socket), "cert:CN" (mutual TLS), "" (plain TCP) */
    hxd_svc_gone_fn gone;
    void *gone_arg;
};

/*
 * Serves one request: the reply as a JSON object the caller writes with hxd_api_dump (and
 * frees), or NULL when the reply, a key, was written into key_reply (the caller sends it and
 * wipes it with hx_writer_reset).
 */
struct json_object *hxd_api_handle(struct hxd *d, const struct hx_004_request *req,
                                   const struct hxd_api_caller *who, struct hx_writer *key_reply);

/* o as JSON text with the reference's separators, appended to w; an error when w's cap cut it
 * (then w holds no valid reply: close the connection, send nothing). */
HX_MUST_CHECK hx_err hxd_api_dump(struct json_object *o, struct hx_writer *w);

#endif

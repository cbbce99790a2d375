/*
 * The northbound ETSI 004 API's listeners and connections (server.c): TCP, an optional Unix
 * socket with a uid/gid allow-list, an optional mutual-TLS port. Each request is handed to
 * api/handlers.c, which calls the stream service. Started and stopped by hykexd's main.
 */
#ifndef HX_API_SERVER_H
#define HX_API_SERVER_H

#include <stddef.h>

#include "common/err.h"

struct hxd;
struct hxd_api;

/* Binds the configured listeners and starts their accept threads; why says what failed. */
HX_MUST_CHECK hx_err hxd_api_start(struct hxd *d, struct hxd_api **out, char *why, size_t why_len);
/* Stops accepting, ends the connections (1 s at most) and frees a; NULL is a no-op. */
void hxd_api_stop(struct hxd_api *a);

#endif

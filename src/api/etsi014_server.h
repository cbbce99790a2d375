/*
 * hykexd's ETSI GS QKD 014 server for applications (SAEs): HTTPS on libevent's evhttp over
 * OpenSSL 3.5 (bufferevent_openssl), TLS 1.3 only, X25519MLKEM768 first, a client certificate
 * from api.etsi014.ca required; the caller's SAE id is its common name. docs/etsi014.md says
 * why these libraries.
 *
 * Threads: api.etsi014.threads event loops, each with its own event_base and evhttp accepting
 * on the one listening socket; a loop serves one request at a time (the stream service may
 * wait for keys, up to api.etsi014.timeout_ms), the others go on meanwhile. The calls are in
 * etsi014_keys.c; requests are parsed by proto/etsi014.c.
 */
#ifndef HX_API_ETSI014_SERVER_H
#define HX_API_ETSI014_SERVER_H

#include <stddef.h>

#include "common/err.h"

struct hxd;
struct hxd_014_server;

/* Nothing when api.etsi014.port is 0 (*out NULL). why says what failed. */
HX_MUST_CHECK hx_err hxd_014_server_start(struct hxd *d, struct hxd_014_server **out, char *why,
                                          size_t why_len);
/* After hxd_svc_shutdown: stops the loops and the pairs' openers, frees s; NULL: no-op. */
void hxd_014_server_stop(struct hxd_014_server *s);

#endif

/*
 * The api.etsi014 options' own parsers (config.c's table names them) and the checks across
 * options made once the whole configuration is read: the SAE lists, the peers they name, the
 * certificates, the stream's method and sources (docs/etsi014.md).
 */
#ifndef HX_DAEMON_CONFIG014_H
#define HX_DAEMON_CONFIG014_H

#include <stddef.h>

#include <json-c/json.h>

#include "common/err.h"
#include "daemon/config.h"
#include "proto/etsi014.h"

/* ["SAE_A", "SAE_B", ...] */
hx_err hxd_014_parse_local(struct json_object *v, void *field, char *why, size_t why_len);
struct json_object *hxd_014_print_local(const void *field);
/* {"SAE_C": "<peer node uuid>", ...} */
hx_err hxd_014_parse_remote(struct json_object *v, void *field, char *why, size_t why_len);
struct json_object *hxd_014_print_remote(const void *field);

/* [{"master": "SAE_A", "slave": "SAE_B", "hybridization": "...", "key_sources": "..."}, ...] */
hx_err hxd_014_parse_pairs(struct json_object *v, void *field, char *why, size_t why_len);
struct json_object *hxd_014_print_pairs(const void *field);
/* The method and sources of the stream of the ordered pair master -> slave: its entry in
 * api.etsi014.pairs, else the defaults (pointers into c). */
void hxd_014_pair_method(const struct hxd_014_config *c, const char *master, const char *slave,
                         const char **method, const char **key_sources);

/* With api.etsi014.port set: everything it needs, consistent; why names the key. */
HX_MUST_CHECK hx_err hxd_014_config_check(const struct hxd_config *cfg, const char *path, char *why,
                                          size_t why_len);

#endif

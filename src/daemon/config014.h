/*
 * The api.etsi014 options: their types and limits (struct hxd_014_config, a member of
 * struct hxd_config) and their own parsers (config.c's table names them): the SAE lists and the
 * per-pair methods (docs/etsi014.md). The checks across options, made once the whole
 * configuration is read, are config.c's (hxd_014_config_check in config.h).
 */
#ifndef HX_DAEMON_CONFIG014_H
#define HX_DAEMON_CONFIG014_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/err.h"
#include "common/uuid.h"
#include "proto/etsi014.h"

/* Sizes daemon/config.h shares (it includes this header). */
#define HXD_MAX_HOST 256
#define HXD_MAX_PATH 512

/* ---- hykex: the ETSI 014 server for applications (api.etsi014, docs/etsi014.md) ---- */
#define HXD_014_MAX_SAES 256  /* local and remote SAEs, each */
#define HXD_014_MAX_SAE_ID 64 /* a certificate's common name is at most 64 bytes */

struct hxd_014_sae {
    char id[HXD_014_MAX_SAE_ID + 1];
    struct hx_uuid node; /* remote: the trusted peer it is attached to; local: nil */
};

struct hxd_014_saes {
    struct hxd_014_sae saes[HXD_014_MAX_SAES];
    size_t n;
};

/* api.etsi014.pairs: one ordered SAE pair's own method and sources (docs/etsi014.md) */
#define HXD_014_MAX_OVERRIDES 64
struct hxd_014_override {
    char master[HXD_014_MAX_SAE_ID + 1], slave[HXD_014_MAX_SAE_ID + 1];
    char method[32];       /* "": api.etsi014.hybridization */
    char key_sources[128]; /* "": api.etsi014.key_sources */
};

struct hxd_014_overrides {
    struct hxd_014_override o[HXD_014_MAX_OVERRIDES];
    size_t n;
};

struct hxd_014_config {
    char host[HXD_MAX_HOST];
    uint32_t port; /* 0: off */
    char cert[HXD_MAX_PATH], key[HXD_MAX_PATH], ca[HXD_MAX_PATH];
    struct hxd_014_saes local, remote;
    char method[32];
    char key_sources[128];
    struct hxd_014_overrides pairs; /* per pair: method and sources other than the above */
    uint32_t key_size_bits;
    uint32_t max_keys_per_request;
    uint32_t timeout_ms;
    uint32_t threads;
};
/* ---- end of ETSI 014 ---- */

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

#endif

/*
 * Table-driven configuration (Redis static_configs[], OpenSSH keywords[]).
 *
 * A table lists every option once: dotted JSON path, type, where it lives in the target
 * struct, range, default (as JSON text) and help. Loading a JSON file applies the defaults,
 * then the file; a key not in the table, a value of the wrong type or out of range, and a
 * missing required key are errors naming the file, the key and the reason. hx_cfg_to_json()
 * gives the effective configuration back as JSON (what --check-config prints).
 */
#ifndef HX_COMMON_CONFIG_H
#define HX_COMMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/err.h"

enum hx_cfg_type {
    HX_CFG_STR,    /* char[size]: at most size-1 bytes, no NUL; min = minimum length */
    HX_CFG_INT,    /* signed or unsigned integer of size 1, 2, 4 or 8 bytes, in [min, max] */
    HX_CFG_BOOL,   /* bool */
    HX_CFG_ENUM,   /* int: index into choices (names compared case-insensitively) */
    HX_CFG_UUID,   /* struct hx_uuid */
    HX_CFG_CUSTOM, /* parse/print callbacks: any JSON value (maps, lists, host/port pairs) */
};

enum {
    HX_CFG_REQUIRED = 1u << 0, /* no default: the file must set it */
    HX_CFG_SECRET = 1u << 1,   /* printed as "<redacted>" */
};

/* why/why_len: where to write the reason for a rejected value. */
typedef hx_err (*hx_cfg_parse_fn)(struct json_object *value, void *field, char *why,
                                  size_t why_len);
typedef struct json_object *(*hx_cfg_print_fn)(const void *field);
typedef void (*hx_cfg_free_fn)(void *field);

struct hx_cfg_opt {
    const char *name;
    enum hx_cfg_type type;
    size_t offset;
    size_t size;
    int64_t min;
    int64_t max;
    const char *def; /* JSON text of the default; NULL: required or empty */
    const char *const *choices;
    hx_cfg_parse_fn parse;
    hx_cfg_print_fn print;
    hx_cfg_free_fn free_fn;
    unsigned flags;
    const char *help;
};

#define HX_CFG_OPT_STR(nm, st, m, minlen, dflt, fl, hlp)                                       \
    {                                                                                          \
        .name = (nm), .type = HX_CFG_STR, HX_CFG_OFFSZ(st, m), .min = (minlen), .def = (dflt), \
        .flags = (fl), .help = (hlp)                                                           \
    }
#define HX_CFG_OPT_INT(nm, st, m, lo, hi, dflt, fl, hlp)                                 \
    {                                                                                    \
        .name = (nm), .type = HX_CFG_INT, HX_CFG_OFFSZ(st, m), .min = (lo), .max = (hi), \
        .def = (dflt), .flags = (fl), .help = (hlp)                                      \
    }
#define HX_CFG_OPT_BOOL(nm, st, m, dflt, hlp)                                                \
    {                                                                                        \
        .name = (nm), .type = HX_CFG_BOOL, HX_CFG_OFFSZ(st, m), .def = (dflt), .help = (hlp) \
    }
#define HX_CFG_OPT_ENUM(nm, st, m, names, dflt, hlp)                                               \
    {                                                                                              \
        .name = (nm), .type = HX_CFG_ENUM, HX_CFG_OFFSZ(st, m), .choices = (names), .def = (dflt), \
        .help = (hlp)                                                                              \
    }
#define HX_CFG_OPT_UUID(nm, st, m, dflt, fl, hlp)                                             \
    {                                                                                         \
        .name = (nm), .type = HX_CFG_UUID, HX_CFG_OFFSZ(st, m), .def = (dflt), .flags = (fl), \
        .help = (hlp)                                                                         \
    }
#define HX_CFG_OPT_CUSTOM(nm, st, m, p, pr, fr, dflt, fl, hlp)                                 \
    {                                                                                          \
        .name = (nm), .type = HX_CFG_CUSTOM, HX_CFG_OFFSZ(st, m), .parse = (p), .print = (pr), \
        .free_fn = (fr), .def = (dflt), .flags = (fl), .help = (hlp)                           \
    }
#define HX_CFG_OFFSZ(st, m) .offset = offsetof(st, m), .size = sizeof(((st *)0)->m)

/* Applies every default to target (which the caller zeroed). */
HX_MUST_CHECK hx_err hx_cfg_defaults(const struct hx_cfg_opt *table, size_t n, void *target,
                                     char *why, size_t why_len);
/*
 * Applies the keys of root on top of what target holds. source names the input in messages
 * ("nodes/Alice/config.json"). Checks required keys.
 */
HX_MUST_CHECK hx_err hx_cfg_apply(const struct hx_cfg_opt *table, size_t n, void *target,
                                  struct json_object *root, const char *source, char *why,
                                  size_t why_len);
/* Defaults, then the file at path (at most 1 MiB, one JSON object). */
HX_MUST_CHECK hx_err hx_cfg_load_file(const struct hx_cfg_opt *table, size_t n, void *target,
                                      const char *path, char *why, size_t why_len);
/* The effective configuration as a JSON object (secrets redacted); NULL on allocation failure. */
struct json_object *hx_cfg_to_json(const struct hx_cfg_opt *table, size_t n, const void *target);
/* Releases what CUSTOM options allocated. */
void hx_cfg_free(const struct hx_cfg_opt *table, size_t n, void *target);

/* Reads a whole regular file of at most max bytes into a NUL-terminated heap buffer. */
HX_MUST_CHECK hx_err hx_read_file(const char *path, size_t max, char **out, size_t *out_len);

#endif

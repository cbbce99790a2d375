/* hx_err: the one error type of hykex, grouped by category (s2n S2N_ERR_T_*, OpenSSH ssherr.h). */
#ifndef HX_COMMON_ERR_H
#define HX_COMMON_ERR_H

/* Every fallible function returns hx_err and must have its result looked at. */
#define HX_MUST_CHECK __attribute__((warn_unused_result))

enum hx_err_category {
    HX_ERRCAT_NONE = 0,
    HX_ERRCAT_IO,       /* sockets, files, the OS */
    HX_ERRCAT_PROTO,    /* malformed or oversize input from a peer, client or file */
    HX_ERRCAT_CRYPTO,   /* a crypto operation failed or did not verify */
    HX_ERRCAT_STATE,    /* the request does not fit the current state */
    HX_ERRCAT_USAGE,    /* bad arguments or configuration from the operator */
    HX_ERRCAT_INTERNAL, /* out of memory, bugs */
};

/* Categories occupy blocks of 100 so that hx_err_category() is a division. */
typedef enum hx_err {
    HX_OK = 0,

    HX_ERR_IO = 100,
    HX_ERR_IO_CLOSED,
    HX_ERR_IO_TIMEOUT,
    HX_ERR_IO_PERM,
    HX_ERR_IO_NOT_FOUND,

    HX_ERR_PROTO = 200,
    HX_ERR_TRUNCATED,
    HX_ERR_TOO_LARGE,
    HX_ERR_TOO_DEEP,
    HX_ERR_BAD_JSON,
    HX_ERR_BAD_TYPE,
    HX_ERR_BAD_VALUE,
    HX_ERR_BAD_UUID,
    HX_ERR_UNKNOWN_FIELD,
    HX_ERR_MISSING_FIELD,

    HX_ERR_CRYPTO = 300,
    HX_ERR_VERIFY,
    HX_ERR_RANDOM,

    HX_ERR_STATE = 400,
    HX_ERR_NOT_FOUND,
    HX_ERR_EXISTS,
    HX_ERR_NO_KEY,

    HX_ERR_USAGE = 500,
    HX_ERR_INVALID_ARG,
    HX_ERR_CONFIG,
    HX_ERR_UNSUPPORTED,

    HX_ERR_INTERNAL = 600,
    HX_ERR_NOMEM,
    HX_ERR_NOSPACE,
} hx_err;

/* For the few calls whose failure is already handled elsewhere (best-effort notifications). */
static inline void hx_ignore(hx_err e)
{
    (void)e;
}

/* A short, constant English description; never NULL, also for unknown values. */
const char *hx_strerror(hx_err e);

enum hx_err_category hx_err_category(hx_err e);

/* "io", "proto", ...; "none" for HX_OK, "unknown" for values outside every block. */
const char *hx_err_category_name(enum hx_err_category c);

#endif

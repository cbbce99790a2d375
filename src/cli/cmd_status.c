/*
 * hykex status: hykexd's STATUS document, as JSON (--json, exactly what hykexd sent) or for a
 * person. The person's view knows no field names beyond an order: the top-level values first
 * (node, version, uptime before the others), then kme, peers and streams, then the other
 * objects and lists in the document's order; an object is a section of "name value" lines, a
 * list of objects a table whose columns are the union of its elements' keys. A field hykexd
 * adds shows up without a change here. Control characters in values are shown as '?', so a
 * value cannot move the cursor or colour the terminal.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "hykex/hykex.h"

#define MAX_COLUMNS 48
#define CELL_MAX 512

/* Shown first, in this order, where present; everything else follows in hykexd's order. */
static const char *const preferred[] = {"node", "version", "uptime_s", "uptime", "state"};

static int rank(const char *key)
{
    for (size_t i = 0; i < sizeof(preferred) / sizeof(preferred[0]); i++) {
        if (strcmp(key, preferred[i]) == 0) {
            return (int)i;
        }
    }
    return (int)(sizeof(preferred) / sizeof(preferred[0]));
}

static bool is_scalar(struct json_object *v)
{
    return !json_object_is_type(v, json_type_object) && !json_object_is_type(v, json_type_array);
}

/* Control characters (a newline, an escape sequence) replaced by '?', in place. */
static char *unctrl(char *s)
{
    for (char *p = s; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *p = '?';
        }
    }
    return s;
}

/* A member name, for printing: at most CELL_MAX - 1 bytes, no control characters. */
static const char *name_of(const char *k, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", k);
    return unctrl(buf);
}

/* One value as a table cell: scalars as they are, lists of scalars comma-separated, else JSON. */
static void cell(struct json_object *v, char *out, size_t cap)
{
    size_t off = 0;

    out[0] = '\0';
    if (v == NULL || json_object_is_type(v, json_type_null)) {
        snprintf(out, cap, "-");
    } else if (json_object_is_type(v, json_type_string)) {
        snprintf(out, cap, "%s", json_object_get_string(v));
    } else if (json_object_is_type(v, json_type_boolean)) {
        snprintf(out, cap, "%s", json_object_get_boolean(v) ? "yes" : "no");
    } else if (json_object_is_type(v, json_type_array)) {
        bool flat = true;
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            flat = flat && is_scalar(json_object_array_get_idx(v, i));
        }
        for (size_t i = 0; flat && i < json_object_array_length(v) && off < cap; i++) {
            char one[CELL_MAX];
            cell(json_object_array_get_idx(v, i), one, sizeof(one));
            off += (size_t)snprintf(out + off, cap - off, "%s%s", i ? "," : "", one);
        }
        if (!flat) {
            snprintf(out, cap, "%s", json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
        } else if (json_object_array_length(v) == 0) {
            snprintf(out, cap, "-");
        }
    } else {
        snprintf(out, cap, "%s", json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
    }
    unctrl(out);
}

/* The object's scalar members as "key value" lines, preferred keys first. */
static void print_scalars(struct json_object *o, const char *indent)
{
    char buf[CELL_MAX];
    size_t np = sizeof(preferred) / sizeof(preferred[0]);

    for (size_t r = 0; r <= np; r++) {
        json_object_object_foreach (o, k, v) {
            if ((size_t)rank(k) != r || !is_scalar(v)) {
                continue;
            }
            char name[CELL_MAX];
            cell(v, buf, sizeof(buf));
            printf("%s%-24s %s\n", indent, name_of(k, name, sizeof(name)), buf);
        }
    }
}

static bool is_table(struct json_object *v)
{
    if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) == 0) {
        return false;
    }
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_object)) {
            return false;
        }
    }
    return true;
}

/* A list of objects as a table: one row each, the union of their keys as columns. */
static void print_table(const char *name, struct json_object *arr)
{
    const char *cols[MAX_COLUMNS];
    size_t ncols = 0, width[MAX_COLUMNS], n = json_object_array_length(arr);
    char buf[CELL_MAX];

    for (size_t i = 0; i < n; i++) {
        json_object_object_foreach (json_object_array_get_idx(arr, i), k, v) {
            size_t c = 0;
            (void)v;
            while (c < ncols && strcmp(cols[c], k) != 0) {
                c++;
            }
            if (c == ncols && ncols < MAX_COLUMNS) {
                cols[ncols] = k;
                width[ncols++] = strlen(k);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t c = 0; c < ncols; c++) {
            struct json_object *v = NULL;
            json_object_object_get_ex(json_object_array_get_idx(arr, i), cols[c], &v);
            cell(v, buf, sizeof(buf));
            width[c] = strlen(buf) > width[c] ? strlen(buf) : width[c];
        }
    }
    printf("\n%s (%zu)\n", name_of(name, buf, sizeof(buf)), n);
    for (size_t c = 0; c < ncols; c++) {
        printf("  %-*s", c + 1 < ncols ? (int)width[c] : 0, name_of(cols[c], buf, sizeof(buf)));
    }
    printf("\n");
    for (size_t i = 0; i < n; i++) {
        for (size_t c = 0; c < ncols; c++) {
            struct json_object *v = NULL;
            json_object_object_get_ex(json_object_array_get_idx(arr, i), cols[c], &v);
            cell(v, buf, sizeof(buf));
            printf("  %-*s", c + 1 < ncols ? (int)width[c] : 0, buf);
        }
        printf("\n");
    }
}

/* A nested object as a section: its scalars, then its own sections and tables. */
static void print_sections(struct json_object *o, int depth);

static void print_section(const char *name, struct json_object *v, int depth)
{
    char buf[CELL_MAX], shown[CELL_MAX];

    if (json_object_is_type(v, json_type_object)) {
        printf("\n%s\n", name_of(name, buf, sizeof(buf)));
        print_scalars(v, "  ");
        print_sections(v, depth + 1);
    } else if (is_table(v)) {
        print_table(name, v);
    } else {
        cell(v, buf, sizeof(buf)); /* an empty list, or a list of plain values */
        printf("\n%s (%zu)%s%s\n", name_of(name, shown, sizeof(shown)), json_object_array_length(v),
               json_object_array_length(v) > 0 ? ": " : "",
               json_object_array_length(v) > 0 ? buf : "");
    }
}

/* Sections shown first, in this order, where present; the others follow in hykexd's order. */
static const char *const first_sections[] = {"kme", "peers", "streams"};

static bool is_first_section(const char *key)
{
    for (size_t i = 0; i < sizeof(first_sections) / sizeof(first_sections[0]); i++) {
        if (strcmp(key, first_sections[i]) == 0) {
            return true;
        }
    }
    return false;
}

static void print_sections(struct json_object *o, int depth)
{
    struct json_object *v;

    if (depth > 4) {
        printf("  %s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        return;
    }
    for (size_t i = 0; depth == 0 && i < sizeof(first_sections) / sizeof(first_sections[0]); i++) {
        if (json_object_object_get_ex(o, first_sections[i], &v) && !is_scalar(v)) {
            print_section(first_sections[i], v, depth);
        }
    }
    json_object_object_foreach (o, k, w) {
        if (!is_scalar(w) && (depth > 0 || !is_first_section(k))) {
            print_section(k, w, depth);
        }
    }
}

static void print_document(struct json_object *o)
{
    struct json_object *st;

    /* The reply's ETSI status says only that STATUS was answered: shown when it is not 0. */
    if (json_object_object_get_ex(o, "status", &st) && json_object_is_type(st, json_type_int) &&
        json_object_get_int64(st) == 0) {
        json_object_object_del(o, "status");
    }
    print_scalars(o, "");
    print_sections(o, 0);
}

static const struct option status_options[] = {
    CLI_ADDRESS_OPTIONS, {"json", no_argument, NULL, 'j'}, HX_CMDLINE_STD_OPTIONS};
static const struct hx_cmdline status_cmdline = {
    "hykex status",
    "usage: hykex status [OPTIONS]\n"
    "hykexd's STATUS: the node, its peers (up/down, TLS group, certificate expiry), its streams\n"
    "(method, sources, counters, state), the KME and the error counters, as tables; every field\n"
    "hykexd sends is shown.\n"
    "  -j, --json           the STATUS document as hykexd sent it (JSON)\n" CLI_ADDRESS_USAGE
    "Exit status 1 when hykexd cannot be reached or answers STATUS with a status other than 0.\n",
    CLI_ADDRESS_SHORTOPTS "j", status_options, 0};

int cmd_status(int argc, char **argv)
{
    char address[CLI_ADDRESS_MAX] = CLI_DEFAULT_ADDRESS, *text = NULL;
    struct json_object *o = NULL, *st = NULL, *msg = NULL;
    struct hykex *h;
    bool json = false;
    int rc, ch, ex;

    hx_cmdline_begin();
    while ((ch = hx_cmdline_next(&status_cmdline, argc, argv, &ex)) != -1) {
        if (ch == -2) {
            return ex;
        }
        if ((rc = cli_address_option("status", ch, optarg, address)) < 0) {
            return -rc;
        }
        json = json || ch == 'j';
    }
    if (optind < argc) {
        return hx_cmdline_error(&status_cmdline, "takes no operands ('%s' given)", argv[optind]);
    }
    if (cli_connect("status", address, &h) != 0) {
        return 1;
    }
    rc = hykex_raw_call(h, "{\"command\": \"STATUS\"}", &text);
    hykex_disconnect(h);
    if (rc != 0) {
        return cli_call_failed("status", address, rc);
    }
    o = json_tokener_parse(text);
    if (json || o == NULL || !json_object_is_type(o, json_type_object)) {
        printf("%s\n", text);
    } else {
        print_document(o); /* takes the "status": 0 out */
    }
    /* Not hykexd (a KME answers STATUS with status 4), or hykexd refusing: not healthy. */
    if (o != NULL && json_object_object_get_ex(o, "status", &st) &&
        json_object_get_int64(st) != 0) {
        json_object_object_get_ex(o, "message", &msg);
        rc = cli_fail("status", "%s%s answered STATUS with status %" PRId64 " (%.200s)",
                      address[0] == '/' ? "Unix socket " : "", address, json_object_get_int64(st),
                      msg != NULL ? json_object_get_string(msg) : "no message");
    }
    json_object_put(o);
    free(text);
    return rc;
}

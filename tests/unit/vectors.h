/* Test helpers: JSON vector files from tests/vectors/ and hex fields in them. */
#ifndef HX_TEST_VECTORS_H
#define HX_TEST_VECTORS_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

/* The "vectors" array of tests/vectors/<name> (the whole document in *doc, to put later). */
struct json_object *vectors_load(const char *name, struct json_object **doc);
/* A string field. */
const char *vec_str(struct json_object *v, const char *key);
/* A hex string field decoded into a fresh malloc'd buffer (*len bytes, may be 0). */
uint8_t *vec_hex(struct json_object *v, const char *key, size_t *len);
/* An integer field. */
int64_t vec_int(struct json_object *v, const char *key);
/* Decodes a hex C string (test inputs). */
uint8_t *hex_dup(const char *hex, size_t *len);

#endif

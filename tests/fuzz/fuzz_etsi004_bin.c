/*
 * The ETSI 004 binary codec, both framings: header, every request and response decoder on
 * arbitrary payloads; whatever decodes must encode again and decode to the same message.
 * Byte 0 picks the framing and the service type.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/etsi004.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t types[] = {HX_004_BIN_OPEN_REQ,  HX_004_BIN_GET_REQ,  HX_004_BIN_CLOSE_REQ,
                                HX_004_BIN_OPEN_RESP, HX_004_BIN_GET_RESP, HX_004_BIN_CLOSE_RESP};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hx_004_request req, again;
    struct hx_004_response resp;
    enum hx_004_framing f;
    uint8_t type, t2, buf[HX_004_BIN_HEADER + HX_004_BIN_MAX_PAYLOAD];
    uint32_t len;
    struct hx_writer w;
    char why[200];

    if (size < 1) {
        return 0;
    }
    f = (data[0] & 1) ? HX_004_FRAMING_211 : HX_004_FRAMING_101;
    type = types[(data[0] >> 1) % sizeof(types)];
    data++;
    size--;
    if (size >= HX_004_BIN_HEADER &&
        hx_004_bin_header(f, data, &t2, &len, why, sizeof(why)) == HX_OK &&
        len > HX_004_BIN_MAX_PAYLOAD) {
        abort(); /* the header check caps the length */
    }
    if (type == HX_004_BIN_OPEN_REQ || type == HX_004_BIN_GET_REQ || type == HX_004_BIN_CLOSE_REQ) {
        if (hx_004_bin_decode_request(f, type, data, size, &req, why, sizeof(why)) != HX_OK) {
            return 0;
        }
        hx_writer_init_fixed(&w, buf, sizeof(buf));
        if (hx_004_bin_encode_request(f, &req, &w) != HX_OK ||
            hx_004_bin_header(f, buf, &t2, &len, why, sizeof(why)) != HX_OK || t2 != type ||
            hx_004_bin_decode_request(f, t2, buf + HX_004_BIN_HEADER, len, &again, why,
                                      sizeof(why)) != HX_OK ||
            again.cmd != req.cmd || strcmp(again.source, req.source) != 0 ||
            !hx_uuid_equal(&again.ksid, &req.ksid) || again.index != req.index) {
            abort();
        }
        return 0;
    }
    if (hx_004_bin_decode_response(f, type, data, size, &resp, why, sizeof(why)) == HX_OK) {
        hx_writer_init_fixed(&w, buf, sizeof(buf));
        if (hx_004_bin_encode_response(f, &resp, &w) != HX_OK) {
            abort();
        }
    }
    return 0;
}

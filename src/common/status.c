/* ETSI 004 status texts for the public header. */
#include "hykex/hykex.h"

const char *hykex_status_string(int status)
{
    switch (status) {
    case HYKEX_STATUS_SUCCESS:
        return "successful";
    case HYKEX_STATUS_PEER_NOT_CONNECTED:
        return "successful connection, but peer not connected";
    case HYKEX_STATUS_INSUFFICIENT_KEY:
        return "GET_KEY failed because insufficient key available";
    case HYKEX_STATUS_PEER_NOT_CONNECTED_GET:
        return "GET_KEY failed because peer application is not connected";
    case HYKEX_STATUS_NO_QKD_CONNECTION:
        return "no QKD connection available";
    case HYKEX_STATUS_KSID_IN_USE:
        return "OPEN_CONNECT failed because the key stream id is already in use";
    case HYKEX_STATUS_TIMEOUT:
        return "TIMEOUT_ERROR";
    case HYKEX_STATUS_QOS_NOT_MET:
        return "OPEN failed because requested QoS settings could not be met";
    case HYKEX_STATUS_METADATA_TOO_SMALL:
        return "GET_KEY failed because metadata field size is insufficient";
    default:
        return "unknown status";
    }
}

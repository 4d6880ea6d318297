/* tc_err.c - names and messages of the tcp_core error codes (see tc_err.h). */
#include "tc_err.h"

const char *tc_err_name(int err)
{
    switch (err) {
    case TC_OK:
        return "OK";
#define TC_ERR_NAME_(name, value, msg) \
    case (value):                      \
        return #name;
        TC_ERR_MAP(TC_ERR_NAME_)
#undef TC_ERR_NAME_
    default:
        return "UNKNOWN";
    }
}

const char *tc_strerror(int err)
{
    switch (err) {
    case TC_OK:
        return "success";
#define TC_ERR_MSG_(name, value, msg) \
    case (value):                     \
        return msg;
        TC_ERR_MAP(TC_ERR_MSG_)
#undef TC_ERR_MSG_
    default:
        return "unknown error";
    }
}

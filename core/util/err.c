/* Human texts for the shared error codes. */
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>

void err_printf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

const char *tide_strerror(int err)
{
    switch (err) {
    case TIDE_OK: return "success";
    case TIDE_EPARTIAL: return "incomplete input";
    case TIDE_EMALFORMED: return "malformed packet";
    case TIDE_EPROTOCOL: return "protocol error";
    case TIDE_ETOOBIG: return "too large";
    case TIDE_EDENIED: return "not authorized";
    case TIDE_EQUOTA: return "quota exceeded";
    case TIDE_ENOMEM: return "out of memory";
    case TIDE_EIO: return "i/o error";
    case TIDE_EVERSION: return "unsupported protocol version";
    case TIDE_EINVAL: return "invalid value";
    case TIDE_ETOPIC: return "invalid topic";
    case TIDE_ECLIENTID: return "invalid client identifier";
    case TIDE_ENOTFOUND: return "not found";
    case TIDE_EBUSY: return "busy";
    case TIDE_EALIAS: return "topic alias invalid";
    case TIDE_ERECVMAX: return "receive maximum exceeded";
    case TIDE_EAUTHMETHOD: return "bad authentication method";
    case TIDE_EQOS: return "qos not supported";
    case TIDE_ERETAIN: return "retain not supported";
    case TIDE_EBADAUTH: return "bad user name or password";
    case TIDE_EKEEPALIVE: return "keepalive not acceptable";
    }
    return "unknown error";
}

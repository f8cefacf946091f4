/* Shared error codes. Functions return 0 or a negative TIDE_E* value; exactly one place
 * (proto.c) turns them into MQTT reason codes. */
#ifndef TIDE_UTIL_ERR_H
#define TIDE_UTIL_ERR_H

#include <stddef.h>

enum {
    TIDE_OK = 0,
    TIDE_EPARTIAL = -1,   /* need more bytes */
    TIDE_EMALFORMED = -2, /* bytes do not form a valid packet (MQTT 5: 0x81) */
    TIDE_EPROTOCOL = -3,  /* well-formed but breaks a protocol rule (0x82) */
    TIDE_ETOOBIG = -4,    /* exceeds a size limit (0x95) */
    TIDE_EDENIED = -5,    /* not authorized (0x87) */
    TIDE_EQUOTA = -6,     /* a quota or count limit (0x97) */
    TIDE_ENOMEM = -7,     /* allocation refused */
    TIDE_EIO = -8,        /* operating-system I/O failure */
    TIDE_EVERSION = -9,   /* unsupported protocol level (0x84 / rc 1) */
    TIDE_EINVAL = -10,    /* bad argument or value */
    TIDE_ETOPIC = -11,    /* topic name or filter invalid (0x90 / 0x8F) */
    TIDE_ECLIENTID = -12, /* client identifier not valid (0x85 / rc 2) */
    TIDE_ENOTFOUND = -13, /* no such item */
    TIDE_EBUSY = -14,     /* server busy / unavailable (0x89 / rc 3) */
    TIDE_EALIAS = -15,    /* topic alias out of range (0x94) */
    TIDE_ERECVMAX = -16,  /* peer exceeded our Receive Maximum (0x93) */
    TIDE_EAUTHMETHOD = -17, /* enhanced authentication not supported (0x8C) */
    TIDE_EQOS = -18,      /* QoS not supported (0x9B) */
    TIDE_ERETAIN = -19,   /* retain not supported (0x9A) */
    TIDE_EBADAUTH = -20,  /* bad user name or password (0x86 / rc 4) */
    TIDE_EKEEPALIVE = -21, /* 3.1.1 keepalive above max_keepalive (rc 2) */
};

/* Returns a static, human text for a TIDE_E* code. */
const char *tide_strerror(int err);

/* Formats an error message into err[0..errlen) for loaders that report "file:line: why"; does
 * nothing when err is NULL or errlen is 0. */
void err_printf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif

/* The PROXY protocol header (HAProxy's spec, versions 1 and 2) that a load balancer sends before
 * the client's own bytes: finding where it ends and decoding the client's address from it. Pure:
 * reads only the bytes it is given, allocates nothing, no I/O, no logging. */
#ifndef TIDE_PROXY_HEADER_H
#define TIDE_PROXY_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* v1 is one text line of at most 107 bytes with its CRLF (the spec's bound). */
#define PROXY_V1_MAX 107
/* v2: 16 fixed bytes plus the announced length (addresses and TLVs). The spec lets TLVs make it
 * longer than the 232 bytes of addresses alone; balancers' TLVs (AWS, Azure, GCP ids, TLS
 * details) fit well within this. A longer header is refused rather than buffered. */
#define PROXY_HEADER_MAX 1024

/* What a complete header says. */
struct proxy_header {
    uint8_t version; /* 1 or 2 */
    /* true for v2 LOCAL (the balancer's own health check), v1 UNKNOWN and v2 families other than
     * TCP over IPv4/IPv6: the connection's own peer address stands */
    bool local;
    uint8_t family;   /* AF_INET or AF_INET6 when !local */
    uint16_t port;    /* the client's source port when !local */
    uint8_t addr[16]; /* the client's source address when !local (4 bytes for AF_INET) */
};

/* Looks at the first n bytes received (n may be 0) and returns the total length of the header
 * they begin (> 0, at most PROXY_HEADER_MAX) as soon as it can be known, without checking more
 * than its framing; TIDE_EPARTIAL when more bytes are needed to know it; TIDE_EMALFORMED when
 * these bytes cannot begin a PROXY header (with *why set to a static reason); TIDE_ETOOBIG when
 * the header would be longer than the bound (v1: no CRLF within 107 bytes; v2: announced length
 * over PROXY_HEADER_MAX), *why set too. Every byte before the returned length, and every byte of
 * p while TIDE_EPARTIAL is returned, belongs to the header: a caller may consume them. Borrows p.
 */
int proxy_header_length(const uint8_t *p, size_t n, const char **why);

/* Decodes a complete header p[0..n), n being what proxy_header_length returned. Returns 0 with
 * *out filled, or TIDE_EMALFORMED with *why set to a static reason. Borrows p. */
int proxy_header_decode(const uint8_t *p, size_t n, struct proxy_header *out, const char **why);

#endif

/* libFuzzer harness for the PROXY protocol header reader (core/proxy_header.c): frames the input,
 * checks the contract (a length within PROXY_HEADER_MAX, a reason for every refusal, every prefix
 * partial or giving the same answer, so bytes consumed while partial always belong to the header)
 * and decodes a complete header, checking its family and that LOCAL carries no address. Build
 * with clang -fsanitize=fuzzer,address,undefined from core/proxy_header.c, core/util and this file;
 * seeds are in tests/fuzz/corpus/proxy_header. */
#include "proxy_header.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = NULL;
    int len = proxy_header_length(data, size, &why);
    /* v2 announces its length after 16 bytes: it may exceed what is here yet */
    if (len > PROXY_HEADER_MAX || len == 0)
        abort();
    if (len < 0 && len != TIDE_EPARTIAL && len != TIDE_EMALFORMED && len != TIDE_ETOOBIG)
        abort();
    if ((len == TIDE_EMALFORMED || len == TIDE_ETOOBIG) && !why)
        abort();
    /* a shorter input is partial or already gives the same answer */
    size_t step = size > 64 ? size / 64 : 1;
    size_t upto = len > 0 && (size_t)len < size ? (size_t)len : size;
    for (size_t cut = 0; cut < upto; cut += step) {
        int p = proxy_header_length(data, cut, &why);
        if (p != TIDE_EPARTIAL && p != len)
            abort();
    }
    if (len > 0 && (size_t)len <= size) {
        /* an exact copy: reading past the header is an ASan error */
        uint8_t *exact = malloc((size_t)len);
        memcpy(exact, data, (size_t)len);
        struct proxy_header h;
        why = NULL;
        int rc = proxy_header_decode(exact, (size_t)len, &h, &why);
        if (rc != 0 && (rc != TIDE_EMALFORMED || !why))
            abort();
        if (rc == 0 && !h.local && h.family != AF_INET && h.family != AF_INET6)
            abort();
        if (rc == 0 && h.version != 1 && h.version != 2)
            abort();
        free(exact);
    }
    return 0;
}

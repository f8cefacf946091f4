/* libFuzzer harness for the WebSocket upgrade parser (core/ws_handshake.c): parses the input as a
 * request, checks the result's contract (a length within the input, a status for every outcome,
 * a 101 only with a 28-character accept key and a known subprotocol), writes the response, and
 * parses every prefix of the input to check that a refusal never depends on bytes not yet seen.
 * Build with clang -fsanitize=fuzzer,address,undefined from core/ws_handshake.c, the core/util
 * sources and this file (link -lcrypto); seeds are in tests/fuzz/corpus/ws_handshake. */
#include "ws_handshake.h"

#include <stdlib.h>
#include <string.h>

#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ws_handshake h;
    int rc = ws_handshake_parse(data, size, &h);
    if (rc > 0 && (size_t)rc > size)
        abort();
    if (rc != TIDE_EPARTIAL && !h.status)
        abort();
    if (h.status == 101 && (strlen(h.accept) != 28 || !h.subprotocol))
        abort();
    if (rc != TIDE_EPARTIAL) {
        char out[WS_RESPONSE_MAX];
        if (!ws_handshake_response(&h, out, sizeof out))
            abort();
    }
    /* an early "not HTTP" must hold for every longer input: prefixes never refuse otherwise */
    size_t step = size > 64 ? size / 64 : 1;
    for (size_t cut = 0; cut < size; cut += step) {
        struct ws_handshake p;
        int prc = ws_handshake_parse(data, cut, &p);
        if (prc == TIDE_EMALFORMED && rc != TIDE_EMALFORMED)
            abort();
        if (prc > 0 && rc != prc)
            abort();
    }
    return 0;
}

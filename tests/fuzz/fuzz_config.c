/* libFuzzer harness for the config parser: parses the input as a config file through the
 * in-memory entry point, finishes it when it loaded, reads the result and frees everything.
 * Build with clang -fsanitize=fuzzer,address,undefined from the config module's sources, core/util
 * and this file (link -lcrypto); seeds are in tests/fuzz/corpus/config, the directive names in
 * tests/fuzz/config.dict. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config c;
    char err[256];

    config_init(&c);
    if (config_load_buffer(&c, "fuzz.conf", (const char *)data, size, err, sizeof(err)) == 0 &&
        config_finish(&c, err, sizeof(err)) == 0) {
        for (size_t i = 0; i < c.listener_count; i++)
            (void)config_allow_anonymous(&c, &c.listeners[i]);
    }
    config_fini(&c);
    return 0;
}

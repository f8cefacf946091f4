/* libFuzzer harness for rules/engine/pattern.c, the budgeted Lua 5.1 pattern matcher: the first
 * byte splits the input into a pattern and a subject; every start position is searched with a
 * step budget (so a backtracking pattern ends), and the captures are checked to lie inside the
 * subject. Build: clang -fsanitize=fuzzer,address,undefined -Irules/engine pattern.c + this. */
#include "pattern.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int budget(void *ud)
{
    return ++*(int *)ud > 200; /* 200 * PATTERN_CHECK_EVERY steps */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t plen = data[0] < size - 1 ? data[0] : size - 1;
    /* copies, so reading past either end hits ASan's redzones */
    char *pat = malloc(plen ? plen : 1);
    char *subj = malloc(size - 1 - plen ? size - 1 - plen : 1);
    memcpy(pat, data + 1, plen);
    size_t slen = size - 1 - plen;
    memcpy(subj, data + 1 + plen, slen);
    int calls = 0;
    struct pattern_state ps;
    pattern_init(&ps, subj, slen, pat, plen, budget, &calls);
    size_t init = 0, st, en;
    while (init <= slen) {
        int rc = pattern_find(&ps, init, &st, &en);
        if (rc <= 0)
            break;
        if (st > en || en > slen || st < init)
            abort();
        for (int i = 0; i < ps.level; i++) {
            const struct pattern_capture *c = &ps.capture[i];
            if (c->init < subj || c->init > subj + slen)
                abort();
            if (c->len >= 0 && c->init + c->len > subj + slen)
                abort();
        }
        init = en > init ? en : init + 1;
    }
    free(pat);
    free(subj);
    return 0;
}

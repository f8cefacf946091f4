/* tidemq-rules-micro: the rule engine's per-message cost without a broker. Loads a rules directory
 * (the bench's are tests/bench/rules/<scenario>/), then runs one message through the hooks the
 * way the broker does (wants, then on_publish, or on_deliver for one subscriber) N times, each
 * time with a new payload, and prints the CPU time per call: what the engine adds per message on
 * top of routing, away from sockets. Profile it with perf record, or count its instructions per
 * call with valgrind --tool=cachegrind at two values of N (instruction counts hardly move with
 * the machine's load; times do). The rule_cpu_share breaker is off: calls run flat out.
 * usage: tidemq-rules-micro DIR [publish|deliver] [N] [payload]   (payload default: 64-byte JSON,
 * N default 1000000) */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hooks.h"
#include "host.h"
#include "msg.h"

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ms(void *ctx)
{
    (void)ctx;
    return clock_ns(CLOCK_MONOTONIC) / 1000000u;
}

static double wall(void *ctx)
{
    (void)ctx;
    return (double)time(NULL);
}

static void on_log(void *ctx, int level, const char *rule, const char *text)
{
    (void)ctx, (void)level;
    fprintf(stderr, "[%s] %s\n", rule, text);
}

static void on_err(void *arg, const char *text)
{
    (void)arg;
    fprintf(stderr, "load error: %s\n", text);
}

/* A 64-byte JSON reading, like the bench's JSON payloads. */
static const char json64[] = "{\"id\":\"tb1-p0\",\"seq\":1234567,\"t\":\"0123456789abcdef\",\"c\":21.5}";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [publish|deliver] [N] [payload]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    bool deliver = argc > 2 && strcmp(argv[2], "deliver") == 0;
    long n = argc > 3 ? atol(argv[3]) : 1000000;
    const char *payload = argc > 4 ? argv[4] : json64;

    struct host host = {.monotonic_ms = mono_ms, .now = wall, .log = on_log};
    struct engine_limits lim;
    engine_limits_default(&lim);
    lim.cpu_share = 0; /* flat out, every rule would trip the rule_cpu_share breaker */
    struct engine *e = engine_new(&lim, &host);
    if (engine_load(e, dir, true, on_err, NULL) != 0)
        return 1;

    const char *topic = "tb1234/in/7";
    struct msg_init in = {.topic = topic, .topic_len = strlen(topic), .payload = payload,
                          .payload_len = strlen(payload), .origin = "tb1234-p0", .qos = 0,
                          .now_ms = mono_ms(NULL)};
    struct msg *m = msg_new(&in);
    struct hooks_client cl = {.client_id = "tb1234-p0", .protocol = 4, .address = "127.0.0.1",
                              .port = 40000, .listener = 1883};
    struct hooks h;
    engine_hooks(e, &h);

    uint64_t outs = 0, same = 0;
    uint64_t c0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID), w0 = clock_ns(CLOCK_MONOTONIC);
    /* Every message gets a new payload, as in real traffic (a repeated one would be found in
     * Lua's string table instead of being created): the default payload's "t" field takes the
     * call's number in hex. The micro driver owns m (one reference between calls). */
    char *t_field = payload == json64 ? strstr((char *)m->payload, "\"t\":\"") : NULL;
    for (long i = 0; i < n; i++) {
        if (t_field) {
            for (int d = 0; d < 16; d++)
                t_field[5 + d] = "0123456789abcdef"[((unsigned long)i >> (60 - 4 * d)) & 15];
        }
        if (!(deliver ? hooks_wants_deliver(&h, m->topic, m->topic_len)
                      : h.wants(h.ctx, m->topic, m->topic_len)))
            continue;
        if (deliver) {
            struct msg *d = h.on_deliver(h.ctx, m, &cl, "tb1234/in/+", 11);
            if (d) {
                outs++;
                same += d == m;
                msg_release(&d);
            }
            continue;
        }
        struct hooks_publish_answer a;
        h.on_publish(h.ctx, m, &cl, 0, &a);
        for (size_t k = 0; k < a.out_count; k++) {
            same += a.out[k] == m;
            msg_release(&a.out[k]);
        }
        outs += a.out_count;
        hooks_publish_answer_fini(&a);
    }
    uint64_t c1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID), w1 = clock_ns(CLOCK_MONOTONIC);
    printf("%s %s: %ld calls, %.3f us CPU/call (%.3f us wall), %llu out (%llu unchanged)\n", dir,
           deliver ? "on_deliver" : "on_publish", n, (double)(c1 - c0) / 1e3 / (double)n,
           (double)(w1 - w0) / 1e3 / (double)n, (unsigned long long)outs,
           (unsigned long long)same);
    for (size_t i = 0; i < engine_rule_count(e); i++) {
        struct engine_rule_stats st;
        if (engine_rule_stats(e, i, &st) == 0)
            printf("  rule %s: calls %llu errors %llu timeouts %llu mean %.3f us%s%s\n", st.name,
                   (unsigned long long)st.calls, (unsigned long long)st.errors,
                   (unsigned long long)st.timeouts, st.mean_us, *st.last_error ? " last: " : "",
                   st.last_error);
    }
    msg_release(&m);
    engine_free(e);
    return 0;
}

/* Scaffolding shared by the rule-engine unit tests (tests/rules/test_*.c): the pass/fail counter,
 * the clock callbacks of an offline struct host, a temporary rules directory with its load error
 * buffer, loading an engine from it and running one publish through it. Header-only (static inline) so every test stays a single-source executable in the
 * CMake glob; each test still defines its own on_log and struct host, because those differ. */
#ifndef TIDEMQ_RULES_TEST_SUPPORT_H
#define TIDEMQ_RULES_TEST_SUPPORT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "hooks.h"
#include "host.h"
#include "msg.h"

static int passed, failed;

static inline void check(int ok, const char *what, const char *detail)
{
    if (ok) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAIL %s: %s\n", what, detail ? detail : "");
    }
}

/* struct host clock callbacks: the real clocks, since no test here needs fake time. */
static inline uint64_t mono(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline double now(void *ctx)
{
    (void)ctx;
    return (double)time(NULL);
}

/* Runs one message through e's publish chain as client cl; returns the first output payload
 * (static: valid until the next call), "dropped" or "refused:N". */
static inline const char *publish_outcome(struct engine *e, const struct msg_init *mi,
                                          const struct hooks_client *cl)
{
    static char out[4096];
    struct msg *m = msg_new(mi);
    struct hooks_publish_answer a;
    engine_on_publish(e, m, cl, 0, &a);
    if (a.a.verdict == HOOKS_REFUSE)
        snprintf(out, sizeof(out), "refused:%d", a.a.reason);
    else if (a.out_count == 0)
        snprintf(out, sizeof(out), "dropped");
    else
        snprintf(out, sizeof(out), "%.*s", (int)a.out[0]->payload_len,
                 (const char *)a.out[0]->payload);
    for (size_t i = 0; i < a.out_count; i++)
        msg_release(&a.out[i]);
    hooks_publish_answer_fini(&a);
    msg_release(&m);
    return out;
}

/* The temporary rules directory (made by make_rules_dir) and the last engine_load error. */
static char dir[64];
static char errbuf[1024];

/* The rule log lines so far, joined, so a test can look for a marker (a host's `log`). */
static char logbuf[8192] __attribute__((unused));

static inline void collect_log(void *ctx, int level, const char *rule, const char *text)
{
    (void)ctx, (void)level;
    size_t o = strlen(logbuf);
    if (o + strlen(rule) + strlen(text) + 4 < sizeof(logbuf))
        snprintf(logbuf + o, sizeof(logbuf) - o, "%s: %s\n", rule, text);
}

static inline void on_err(void *arg, const char *text)
{
    (void)arg;
    snprintf(errbuf, sizeof(errbuf), "%s", text);
}

/* Writes dir/name through a temporary file and a rename, as editors do, so a reload never sees a
 * half-written rule. */
static inline void write_rule(const char *name, const char *text)
{
    char path[160], tmp[170];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
    FILE *f = fopen(tmp, "w");
    fputs(text, f);
    fclose(f);
    chmod(tmp, 0644);
    rename(tmp, path);
}

static inline void clear_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -f %s/*.lua", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot clear %s\n", dir);
}

/* A new engine with limits lim on host h, loaded from dir; NULL (and a failed check naming the
 * load error) when the bundle does not load. */
static inline struct engine *load_engine(const struct engine_limits *lim, const struct host *h)
{
    struct engine *e = engine_new(lim, h);
    errbuf[0] = '\0';
    if (engine_load(e, dir, true, on_err, NULL) != 0) {
        check(0, "load", errbuf);
        engine_free(e);
        return NULL;
    }
    return e;
}

/* Clears dir and loads text as its only rule (10-t.lua) on host h, with the default limits but
 * no rule_cpu_share breaker (calls run flat out); NULL as load_engine. */
static inline struct engine *load_single_rule(const char *text, const struct host *h)
{
    clear_dir();
    write_rule("10-t.lua", text);
    struct engine_limits lim;
    engine_limits_default(&lim);
    lim.cpu_share = 0;
    return load_engine(&lim, h);
}

/* Makes dir from a mkdtemp template ("/tmp/name-XXXXXX") with the given mode; 0 on success. */
static inline int make_rules_dir(const char *template, mode_t mode)
{
    snprintf(dir, sizeof(dir), "%s", template);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return -1;
    }
    chmod(dir, mode);
    return 0;
}

/* Removes dir and prints the tally; the exit status for main. */
static inline int finish(const char *test_name)
{
    clear_dir();
    rmdir(dir);
    printf("%s: %d passed, %d failed\n", test_name, passed, failed);
    return failed ? 1 : 0;
}

#endif

/* The rule bundle: finds the rule files of a directory (refusing one others can write), compiles
 * each in a fresh sandboxed VM, validates the table it returns (naming the file and field),
 * optionally runs init, and swaps the bundle in only when every rule loaded. A reload keeps the
 * rules whose bytes did not change, hands each replaced rule's on_unload() state to its successor's
 * init (as msgpack, across VMs) and unloads deleted ones. Owns the engine struct, the bundles and
 * their rules; the hooks themselves run in dispatch.c. */
#include "engine_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "hooks.h"
#include "log.h"
#include "msg.h"
#include "subtree.h"
#include "topic.h"
#include "util/alloc.h"
#include "util/err.h"

#define RULE_FILE_MAX (4u * 1024 * 1024)
#define RULE_LOAD_BUDGET_MS 250 /* top-level chunk and init: their own, larger budget */

static const char *const hook_names[RH_COUNT] = {
    [RH_CONNECT] = "on_connect", [RH_SUBSCRIBE] = "on_subscribe", [RH_PUBLISH] = "on_publish",
    [RH_DELIVER] = "on_deliver", [RH_DISCONNECT] = "on_disconnect", [RH_INIT] = "init",
    [RH_UNLOAD] = "on_unload",
};

double engine_wall_clock(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void engine_limits_default(struct engine_limits *l)
{
    l->timeout_ms = 5;
    l->memory_limit = 32u * 1024 * 1024;
    l->cpu_share = 20;
    l->max_payload = 1024u * 1024;
    l->store_limit = 64u * 1024 * 1024;
}

struct engine *engine_new(const struct engine_limits *lim, const struct host *host)
{
    struct engine *e = xcalloc(1, sizeof(*e));
    e->lim = *lim;
    e->host = *host;
    e->store = store_new(lim->store_limit);
    hmap_init(&e->re_cache);
    return e;
}

static void rule_free(struct rule *r)
{
    if (!r)
        return;
    api_timers_stop(r);
    vm_close(r);
    for (size_t i = 0; i < r->nfilters; i++)
        free(r->filters[i]);
    free(r->filters);
    free(r->name);
    free(r->path);
    free(r);
}

static void bundle_free(struct bundle *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->count; i++)
        rule_free(b->rules[i]);
    free(b->rules);
    if (b->match)
        subtree_free(b->match);
    free(b);
}

void engine_free(struct engine *e)
{
    if (!e)
        return;
    bundle_free(e->cur);
    for (size_t i = 0; i < e->npending; i++) {
        msg_release(&e->pending[i].m);
        free(e->pending[i].rule_name);
    }
    free(e->pending);
    api_re_fini(e);
    args_close(e);
    hmap_fini(&e->re_cache);
    store_free(e->store);
    free(e);
}

size_t engine_rule_count(const struct engine *e)
{
    return e->cur ? e->cur->count : 0;
}

int engine_rule_stats(const struct engine *e, size_t i, struct engine_rule_stats *out)
{
    if (!e->cur || i >= e->cur->count)
        return TIDE_ENOTFOUND;
    const struct rule *r = e->cur->rules[i];
    out->name = r->name;
    out->calls = r->st.calls;
    out->errors = r->st.errors;
    out->timeouts = r->st.timeouts;
    out->drops = r->st.drops;
    out->refusals = r->st.refusals;
    out->mean_us = r->st.calls ? (double)r->st.ns_total / (double)r->st.calls / 1000.0 : 0;
    out->max_us = (double)r->st.ns_max / 1000.0;
    out->last_error = r->st.last_error;
    return 0;
}

void engine_rule_error(struct rule *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->st.last_error, sizeof(r->st.last_error), fmt, ap);
    va_end(ap);
}

/* --- validation of the returned table --- */

/* "16M", "512K", "1G", "1048576": bytes, or 0 when malformed. */
static uint64_t parse_size(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno)
        return 0;
    uint64_t mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1024, end++;
    else if (*end == 'm' || *end == 'M')
        mul = 1024 * 1024, end++;
    else if (*end == 'g' || *end == 'G')
        mul = 1024 * 1024 * 1024, end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end || v > UINT64_MAX / mul)
        return 0;
    return v * mul;
}

static void add_filter(lua_State *L, struct rule *r, int idx)
{
    size_t len;
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_error(L, "%s: field 'match': a filter must be a string", r->path);
    const char *f = lua_tolstring(L, idx, &len);
    if (strncmp(f, "$share/", 7) == 0 || topic_validate_filter(f, len) != 0 ||
        memchr(f, '\0', len))
        luaL_error(L, "%s: field 'match': invalid filter \"%s\"", r->path, f);
    r->filters = xrealloc(r->filters, (r->nfilters + 1) * sizeof(*r->filters));
    r->filters[r->nfilters++] = xstrndup(f, len);
}

/* stack: tbl -- reads every field of the rule table, raising on the first bad one. */
static void validate(lua_State *L, struct rule *r)
{
    if (lua_type(L, 1) != LUA_TTABLE)
        luaL_error(L, "%s: the file must return a table (got %s)", r->path, luaL_typename(L, 1));
    lua_pushnil(L);
    while (lua_next(L, 1)) { /* stack: tbl key value */
        if (lua_type(L, 2) != LUA_TSTRING)
            luaL_error(L, "%s: a %s key is not a rule field", r->path, luaL_typename(L, 2));
        const char *k = lua_tostring(L, 2);
        int h = -1;
        for (int i = 0; i < RH_COUNT; i++)
            if (strcmp(k, hook_names[i]) == 0)
                h = i;
        if (h >= 0) {
            if (lua_type(L, 3) != LUA_TFUNCTION)
                luaL_error(L, "%s: field '%s': a hook must be a function, got %s", r->path, k,
                           luaL_typename(L, 3));
            lua_pushvalue(L, 3);
            r->hook_ref[h] = luaL_ref(L, LUA_REGISTRYINDEX);
        } else if (strcmp(k, "match") == 0) {
            if (lua_type(L, 3) == LUA_TTABLE) {
                size_t n = lua_objlen(L, 3);
                if (n == 0)
                    luaL_error(L, "%s: field 'match': an empty list", r->path);
                for (size_t i = 1; i <= n; i++) {
                    lua_rawgeti(L, 3, (int)i);
                    add_filter(L, r, 4);
                    lua_pop(L, 1);
                }
            } else {
                add_filter(L, r, 3);
            }
        } else if (strcmp(k, "on_error") == 0) {
            const char *v = lua_type(L, 3) == LUA_TSTRING ? lua_tostring(L, 3) : "";
            if (strcmp(v, "drop") != 0 && strcmp(v, "pass") != 0)
                luaL_error(L, "%s: field 'on_error': must be \"drop\" or \"pass\"", r->path);
            r->on_error_pass = strcmp(v, "pass") == 0;
        } else if (strcmp(k, "timeout_ms") == 0) {
            double v = lua_tonumber(L, 3);
            if (lua_type(L, 3) != LUA_TNUMBER || !(v >= 1 && v <= 60000))
                luaL_error(L, "%s: field 'timeout_ms': must be a number from 1 to 60000", r->path);
            r->timeout_ms = (uint32_t)v;
        } else if (strcmp(k, "memory_limit") == 0) {
            uint64_t v = 0;
            if (lua_type(L, 3) == LUA_TNUMBER && lua_tonumber(L, 3) > 0)
                v = (uint64_t)lua_tonumber(L, 3);
            else if (lua_type(L, 3) == LUA_TSTRING)
                v = parse_size(lua_tostring(L, 3));
            if (v < 256 * 1024 || v > (uint64_t)16 * 1024 * 1024 * 1024)
                luaL_error(L, "%s: field 'memory_limit': must be a size from 256K to 16G",
                           r->path);
            r->mem_limit = (size_t)v;
        } else {
            luaL_error(L, "%s: field '%s': unknown field", r->path, k);
        }
        lua_pop(L, 1);
    }
    if (r->nfilters == 0) {
        r->filters = xmalloc(sizeof(*r->filters));
        r->filters[r->nfilters++] = xstrdup("#");
    }
}

struct load_ctx {
    struct rule *r;
    const char *src;
    size_t len;
};

static int load_fn(lua_State *L, void *ud)
{
    struct load_ctx *c = ud;
    char chunkname[4096];
    sandbox_open(L, NULL);
    snprintf(chunkname, sizeof(chunkname), "@%s", c->r->path);
    /* "t": text only, bytecode is never loadable */
    if (luaL_loadbufferx(L, c->src, c->len, chunkname, "t") != 0)
        lua_error(L);
    lua_call(L, 0, 1);
    lua_settop(L, 1);
    validate(L, c->r);
    builder_prepare(L, c->r); /* now, not in the first message's budget */
    return 0;
}

static bool name_ok(const char *name, size_t len)
{
    if (len < 5 || name[0] == '.' || strcmp(name + len - 4, ".lua") != 0)
        return false;
    return true;
}

static bool name_chars_ok(const char *name, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* An error text if st says others than the broker's user can write it, else NULL. */
static const char *unsafe(const struct stat *st)
{
    if (st->st_mode & (S_IWGRP | S_IWOTH))
        return "writable by group or others";
    if (st->st_uid != geteuid() && st->st_uid != 0)
        return "owned by another user";
    return NULL;
}

static char *read_file(const char *path, size_t *len, char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf = NULL;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(why, whylen, "%s", strerror(errno));
        goto fail;
    }
    if ((uint64_t)st.st_size > RULE_FILE_MAX) {
        snprintf(why, whylen, "larger than %u bytes", RULE_FILE_MAX);
        goto fail;
    }
    buf = xmalloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(why, whylen, "%s", n < 0 ? strerror(errno) : "short read");
            goto fail;
        }
        got += (size_t)n;
    }
    close(fd);
    *len = got;
    return buf;
fail:
    free(buf);
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void report(engine_error_fn err, void *arg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(engine_error_fn err, void *arg, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (err)
        err(arg, text);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One rule file as read by a load: its name, path, bytes and digest. */
struct rule_src {
    char *name; /* without .lua */
    char *path;
    char *src;
    size_t len;
    unsigned char digest[32];
};

static void srcs_free(struct rule_src *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].path);
        free(v[i].src);
    }
    free(v);
}

/* Compiles one rule file into r (a fresh VM); 0 or -1 (reported). */
static int rule_load(struct engine *e, struct rule *r, const struct rule_src *f,
                     engine_error_fn err, void *arg)
{
    r->eng = e;
    r->timeout_ms = e->lim.timeout_ms;
    r->mem_limit = (size_t)e->lim.memory_limit;
    memcpy(r->digest, f->digest, sizeof(r->digest));
    for (int i = 0; i < RH_COUNT; i++)
        r->hook_ref[i] = LUA_NOREF;
    if (vm_open(r) != 0) {
        report(err, arg, "%s: cannot create a Lua state", r->path);
        return -1;
    }
    struct load_ctx c = {r, f->src, f->len};
    int st = vm_call(r, VM_CTX_CHUNK, RULE_LOAD_BUDGET_MS, false, load_fn, &c);
    if (st != VM_OK) {
        const char *m = r->st.last_error;
        size_t pl = strlen(r->path);
        if (strncmp(m, r->path, pl) == 0)
            report(err, arg, "%s", m);
        else
            report(err, arg, "%s: %s", r->path, m);
        return -1;
    }
    r->st.last_error[0] = '\0';
    return 0;
}

/* Finds the rule files of dir (RULES-API "Loading": regular files or symlinks to them, *.lua, not
 * starting with '.', in byte order of the names), refusing unsafe ones, and reads them. Returns
 * the number of failures (each reported); *out gets the files read. */
static int scan(const char *dir, struct rule_src **out, size_t *nout, engine_error_fn err,
                void *arg)
{
    struct stat st;
    *out = NULL;
    *nout = 0;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        report(err, arg, "%s: not a directory", dir);
        return -1;
    }
    if (unsafe(&st)) {
        report(err, arg, "%s: refusing a rules directory %s", dir, unsafe(&st));
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d) {
        report(err, arg, "%s: %s", dir, strerror(errno));
        return -1;
    }
    size_t dl = strlen(dir);
    const char *sep = dl && dir[dl - 1] == '/' ? "" : "/";
    char **names = NULL;
    size_t n = 0;
    int failed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (!name_ok(de->d_name, len))
            continue;
        char *path = NULL;
        if (asprintf(&path, "%s%s%s", dir, sep, de->d_name) < 0)
            panic("out of memory");
        struct stat fst;
        bool regular = stat(path, &fst) == 0 && S_ISREG(fst.st_mode);
        if (regular && !name_chars_ok(de->d_name, len)) {
            report(err, arg, "%s: a rule name may use only A-Z a-z 0-9 . _ -", path);
            failed++;
        } else if (regular && unsafe(&fst)) {
            report(err, arg, "%s: refusing a rule file %s", path, unsafe(&fst));
            failed++;
        } else if (regular) {
            names = xrealloc(names, (n + 1) * sizeof(*names));
            names[n++] = xstrdup(de->d_name);
        }
        free(path);
    }
    closedir(d);
    if (n > ENGINE_MAX_RULES) {
        report(err, arg, "%s: more than %d rules", dir, ENGINE_MAX_RULES);
        failed++;
    }
    if (n)
        qsort(names, n, sizeof(*names), by_name);
    struct rule_src *v = xcalloc(n ? n : 1, sizeof(*v));
    size_t got = 0;
    for (size_t i = 0; i < n && !failed; i++) {
        struct rule_src *f = &v[got];
        char why[256];
        if (asprintf(&f->path, "%s%s%s", dir, sep, names[i]) < 0)
            panic("out of memory");
        f->name = xstrndup(names[i], strlen(names[i]) - 4);
        got++;
        f->src = read_file(f->path, &f->len, why, sizeof(why));
        if (!f->src) {
            report(err, arg, "%s: %s", f->path, why);
            failed++;
            continue;
        }
        api_sha256(f->src, f->len, f->digest);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    *out = v;
    *nout = got;
    return failed;
}

/* The bundle hash: SHA-256 over each file's name, a NUL and its digest, in bundle order. */
static void bundle_hash(const struct rule_src *v, size_t n, char hex[65])
{
    size_t cap = 1, len = 0;
    for (size_t i = 0; i < n; i++)
        cap += strlen(v[i].name) + 1 + sizeof(v[i].digest);
    unsigned char *buf = xmalloc(cap);
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(v[i].name) + 1;
        memcpy(buf + len, v[i].name, nl);
        len += nl;
        memcpy(buf + len, v[i].digest, sizeof(v[i].digest));
        len += sizeof(v[i].digest);
    }
    unsigned char md[32];
    api_sha256(buf, len, md);
    free(buf);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

const char *engine_bundle_hash(const struct engine *e)
{
    return e->cur && e->cur->count ? e->cur->hash : "";
}

/* The running bundle's rule called name, or NULL. */
static struct rule *find_rule(const struct bundle *b, const char *name)
{
    for (size_t i = 0; b && i < b->count; i++)
        if (strcmp(b->rules[i]->name, name) == 0)
            return b->rules[i];
    return NULL;
}

/* on_unload's result, carried from the old VM to the new one as msgpack bytes (C memory, so no
 * Lua value crosses between states). */
struct snapshot {
    struct rule *r;
    char *state; /* NULL: nil */
    size_t len;
};

static int unload_fn(lua_State *L, void *ud)
{
    struct snapshot *s = ud;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->r->hook_ref[RH_UNLOAD]);
    lua_call(L, 0, 1);
    if (lua_isnil(L, -1))
        return 0;
    if (lua_type(L, -1) != LUA_TTABLE)
        return luaL_error(L, "on_unload: returned a %s (expected a table or nil)",
                          luaL_typename(L, -1));
    if (api_msgpack_encode_value(L, -1) != 1)
        return luaL_error(L, "on_unload: the state cannot be carried: %s", lua_tostring(L, -1));
    size_t len;
    const char *p = lua_tolstring(L, -1, &len);
    s->state = xmalloc(len ? len : 1); /* owned by ud: nothing raises after this */
    memcpy(s->state, p, len);
    s->len = len;
    return 0;
}

/* Runs old's on_unload (if any) under its budget and stores its result in *s (the caller frees
 * s->state). A failure is logged and leaves the state nil rather than failing the reload: the new
 * file cannot fix the old version's on_unload. */
static void run_unload(struct engine *e, struct rule *old, struct snapshot *s)
{
    s->r = old;
    s->state = NULL;
    s->len = 0;
    if (old->hook_ref[RH_UNLOAD] == LUA_NOREF)
        return;
    e->depth++;
    int vs = vm_call(old, VM_CTX_UNLOAD, RULE_LOAD_BUDGET_MS, false, unload_fn, s);
    e->depth--;
    if (vs != VM_OK) {
        free(s->state);
        s->state = NULL;
        char line[320];
        snprintf(line, sizeof(line), "on_unload failed (the next init gets nil): %s",
                 old->st.last_error);
        if (e->host.log)
            e->host.log(e->host.ctx, LOG_WARN, old->name, line);
    }
}

struct init_ctx {
    struct rule *r;
    const struct snapshot *s;
};

static int init_fn(lua_State *L, void *ud)
{
    struct init_ctx *c = ud;
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->r->hook_ref[RH_INIT]);
    if (c->s && c->s->state) {
        if (api_msgpack_decode_string(L, c->s->state, c->s->len) != 1)
            return luaL_error(L, "init: the previous state cannot be read: %s",
                              lua_tostring(L, -1));
    } else {
        lua_pushnil(L);
    }
    lua_call(L, 1, 0);
    return 0;
}

/* Frees the rules of a bundle that load made and did not keep (never the kept ones). */
static void discard_new(struct bundle *b, const bool *kept)
{
    for (size_t i = 0; i < b->count; i++)
        if (!kept[i])
            rule_free(b->rules[i]);
    free(b->rules);
    free(b);
}

int engine_load(struct engine *e, const char *dir, bool run_init, engine_error_fn err, void *arg)
{
    struct rule_src *srcs;
    size_t n;
    int failed = scan(dir, &srcs, &n, err, arg);
    if (failed < 0)
        return TIDE_EIO;
    bool scan_failed = failed > 0;
    char hash[65];
    /* rules that never ran init cannot stand in for ones that must have */
    const struct bundle *reuse = e->cur && (e->cur->inited || !run_init) ? e->cur : NULL;
    if (!failed) {
        bundle_hash(srcs, n, hash);
        if (reuse && strcmp(reuse->hash, hash) == 0) {
            srcs_free(srcs, n); /* nothing changed: nothing to do */
            return 0;
        }
    }

    /* every file compiles in a fresh VM, except one whose bytes the running bundle already has:
     * that rule is kept as it is, state, timers and counters included */
    struct bundle *b = xcalloc(1, sizeof(*b));
    b->rules = xcalloc(n ? n : 1, sizeof(*b->rules));
    bool *kept = xcalloc(n ? n : 1, sizeof(*kept));
    struct rule **prev = xcalloc(n ? n : 1, sizeof(*prev)); /* the version a new rule replaces */
    for (size_t i = 0; i < n && !scan_failed; i++) {
        struct rule *old = find_rule(e->cur, srcs[i].name);
        if (old && reuse && strcmp(old->path, srcs[i].path) == 0 &&
            memcmp(old->digest, srcs[i].digest, sizeof(old->digest)) == 0) {
            b->rules[b->count] = old;
            kept[b->count++] = true;
            continue;
        }
        struct rule *r = xcalloc(1, sizeof(*r));
        r->name = srcs[i].name;
        r->path = srcs[i].path;
        srcs[i].name = srcs[i].path = NULL;
        r->index = (unsigned)b->count;
        prev[b->count] = old;
        b->rules[b->count++] = r;
        if (rule_load(e, r, &srcs[i], err, arg) != 0)
            failed++; /* go on: every broken file is reported at once */
    }
    srcs_free(srcs, n);

    /* init runs only once every file compiled, so a broken file stops the bundle first; the old
     * versions keep serving meanwhile and hand over a snapshot of their state */
    for (size_t i = 0; i < b->count && !failed && run_init; i++) {
        struct rule *r = b->rules[i];
        if (kept[i])
            continue;
        struct snapshot s = {0};
        if (prev[i])
            run_unload(e, prev[i], &s);
        if (r->hook_ref[RH_INIT] != LUA_NOREF) {
            struct init_ctx c = {r, &s};
            e->depth++;
            int vs = vm_call(r, VM_CTX_INIT, RULE_LOAD_BUDGET_MS, false, init_fn, &c);
            e->depth--;
            if (vs != VM_OK) {
                report(err, arg, "%s: init: %s", r->path, r->st.last_error);
                failed++;
            }
        }
        free(s.state);
    }
    if (failed) {
        dispatch_discard(e); /* what a failed bundle's init published goes nowhere */
        discard_new(b, kept);
        free(kept);
        free(prev);
        return TIDE_EINVAL;
    }

    /* the swap: nothing below can fail */
    memcpy(b->hash, hash, sizeof(b->hash));
    b->inited = run_init;
    b->match = subtree_new();
    for (size_t i = 0; i < b->count; i++) {
        struct rule *r = b->rules[i];
        r->index = (unsigned)i;
        if (r->hook_ref[RH_PUBLISH] == LUA_NOREF && r->hook_ref[RH_DELIVER] == LUA_NOREF)
            continue;
        for (size_t k = 0; k < r->nfilters; k++)
            subtree_add(b->match, NULL, 0, r->filters[k], strlen(r->filters[k]), r, 0, 0, NULL);
    }
    struct bundle *old = e->cur;
    e->cur = b;
    for (size_t i = 0; old && i < old->count; i++) {
        struct rule *r = old->rules[i];
        bool still = false, replaced = false;
        for (size_t k = 0; k < b->count; k++) {
            still = still || b->rules[k] == r;
            replaced = replaced || prev[k] == r;
        }
        if (still)
            continue;
        if (!replaced && run_init) { /* a deleted file: its on_unload runs, the result goes nowhere */
            struct snapshot s;
            run_unload(e, r, &s);
            free(s.state);
        }
        rule_free(r);
    }
    if (old) {
        if (old->match)
            subtree_free(old->match);
        free(old->rules);
        free(old);
    }
    free(kept);
    free(prev);
    if (run_init)
        dispatch_drain(e);
    return 0;
}

/* Shared by the rule engine's own files only (engine.c vm.c sandbox.c values.c dispatch.c api*.c):
 * the rule and engine structs and each file's internal entry points. Nothing outside
 * rules/engine includes it. */
#ifndef TIDE_RULES_ENGINE_INTERNAL_H
#define TIDE_RULES_ENGINE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <lua.h>

#include "engine.h"
#include "host.h"
#include "util/hash.h"

#define ENGINE_MAX_RULES 512
#define ENGINE_MASK_WORDS (ENGINE_MAX_RULES / 64)
#define ENGINE_HOP_LIMIT 8
#define ENGINE_FANOUT_MAX 100
#define ENGINE_PUBLISH_MAX 100
/* tide.publish messages one event may queue in all (rules publishing to each other multiply) */
#define ENGINE_PENDING_MAX 1000
#define ENGINE_TIMER_MIN_MS 10
#define ENGINE_TIMERS_MAX 256 /* live tide.every/tide.after timers per rule */
#define ENGINE_MEMO_TOPIC 128
/* vm.c's per-rule cache of small blocks: 16-byte classes up to 512 bytes */
#define VM_CACHE_GRAIN 16
#define VM_CACHE_CLASSES 32

struct msg;
struct subtree;

enum rule_hook {
    RH_CONNECT,
    RH_SUBSCRIBE,
    RH_PUBLISH,
    RH_DELIVER,
    RH_DISCONNECT,
    RH_INIT,
    RH_UNLOAD,
    RH_COUNT
};

/* Where a rule's code is running: API functions declare the contexts they allow (api_check). */
enum vm_ctx {
    VM_CTX_NONE = 0,
    VM_CTX_CHUNK = 1,  /* the file's top-level chunk */
    VM_CTX_INIT = 2,   /* init(state) */
    VM_CTX_HOOK = 4,   /* on_connect ... on_disconnect */
    VM_CTX_TIMER = 8,  /* a tide.every / tide.after callback */
    VM_CTX_UNLOAD = 16 /* on_unload() */
};
#define VM_CTX_RUN (VM_CTX_INIT | VM_CTX_HOOK | VM_CTX_TIMER)

/* The outcome of vm_call. */
enum vm_status { VM_OK = 0, VM_ERROR, VM_TIMEOUT, VM_NOMEM };

struct rule_stats {
    uint64_t calls, errors, timeouts, drops, refusals;
    uint64_t ns_total, ns_max;
    char last_error[256];
};

/* --- args.c --- */
#define ARGS_PARAMS 2 /* the parameters analysed: msg, client */
enum arg_how {
    ARG_UNUSED, /* never read: need not be built */
    ARG_FIELDS, /* only indexed with constant names: `fields` has a bit per name read */
    ARG_ALL     /* anything else: the whole table */
};
struct arg_use {
    uint8_t how[ARGS_PARAMS];
    uint32_t fields[ARGS_PARAMS];
};

/* How a rule calls on_publish or on_deliver (builder.c): found when the rule loads. */
struct hook_shape {
    struct arg_use use;
    int builder_ref; /* the generated builder in the registry; LUA_NOREF: call the hook bare */
};

struct rule_timer {
    struct rule *r;
    struct rule_timer *next;
    void *handle;
    int fn_ref;
    bool repeat;
    bool fired; /* a one-shot that fired: freed by its callback */
};

struct rule {
    struct engine *eng;
    char *name;
    char *path;
    unsigned char digest[32]; /* SHA-256 of the file: a reload keeps the rule while it matches */
    unsigned index;  /* position in the bundle */
    lua_State *L;
    /* memory (vm.c's allocator) */
    size_t mem_used, mem_limit;
    bool mem_capped; /* the cap is enforced only while Lua code runs */
    int gc_pause;    /* the collector's pause now set (vm.c's vm_gc_tune) */
    void *cache[VM_CACHE_CLASSES]; /* freed small blocks kept for reuse, by size class */
    size_t cache_bytes;
    /* options from the returned table */
    uint32_t timeout_ms;
    bool on_error_pass;
    int hook_ref[RH_COUNT]; /* registry references, LUA_NOREF when absent */
    struct hook_shape shape[2]; /* builder.c: on_publish's and on_deliver's arguments */
    char **filters;
    size_t nfilters;
    struct rule_stats st;
    /* per-call state (vm.c) */
    unsigned ctx;           /* enum vm_ctx of the running call */
    int abort;              /* 0, or why the running call is being aborted */
    uint64_t cpu_deadline_ns, wall_deadline_ns; /* 0: not known yet / no call running */
    uint64_t wall_start_ns, budget_ns;
    const char *stack_base; /* C stack address at vm_call entry */
    unsigned hop;           /* hop of the message being handled (tide.publish) */
    unsigned published;     /* tide.publish calls in this call */
    const uint8_t *scrub;   /* bytes to scrub from errors and logs (on_connect's password) */
    size_t scrub_len;
    bool warned_reason, warned_hop, warned_publish;
    /* tide.log rate limit */
    uint64_t cpu_window_ms, cpu_window_ns, breaker_until_ms; /* rule_cpu_share breaker */
    uint64_t log_window_ms;
    unsigned log_lines, log_suppressed;
    struct rule_timer *timers;
};

/* A tide.publish waiting for the current event to finish. */
struct pending_pub {
    struct msg *m;
    unsigned hop;
    unsigned sender; /* rule index, never run on it */
    char *rule_name;
};

struct bundle {
    struct rule **rules;
    size_t count;
    char hash[65]; /* hex SHA-256 over every rule's name and file digest */
    bool inited;   /* loaded with run_init: its rules ran init and may be kept by a reload */
    struct subtree *match; /* rules with on_publish or on_deliver, by their match filters */
    /* dispatch.c's memo of the last topic matched (the broker asks about one topic several
     * times per message: wants, on_publish, and per subscriber); dies with the bundle */
    char memo_topic[ENGINE_MEMO_TOPIC];
    size_t memo_len; /* 0: empty */
    uint64_t memo_mask[ENGINE_MASK_WORDS];
    /* dispatch.c: which rules have on_publish / on_deliver (filled on first use) */
    bool hook_masks;
    uint64_t publish_rules[ENGINE_MASK_WORDS], deliver_rules[ENGINE_MASK_WORDS];
};

struct store;

struct engine {
    struct engine_limits lim;
    struct host host;
    struct bundle *cur;
    struct store *store;
    /* tide.re's compiled pattern cache and match data (api_re.c) */
    struct hmap re_cache;
    void *re_match_data;
    void *re_mctx;
    unsigned re_busy; /* gsub callbacks running: do not clear the cache */
    /* tide.publish queue (dispatch.c) */
    struct pending_pub *pending;
    size_t npending, cap_pending;
    unsigned depth; /* nesting of engine entry points */
    struct args_reader *args; /* args.c's bytecode reader, opened on first use */
};

/* --- vm.c --- */
typedef int (*vm_fn)(lua_State *L, void *ud);
/* Creates r->L with r's allocator and the JIT off. Returns 0 or TIDE_ENOMEM. */
int vm_open(struct rule *r);
/* Closes r->L (NULL is fine). */
void vm_close(struct rule *r);
/* Runs fn(L, ud) in protected mode under r's budgets: every Lua value fn pushes, every call it
 * makes and every result it reads happens inside the protection, so running out of memory never
 * reaches atpanic. fn may raise; whatever C memory it allocates must be owned by ud, which the
 * caller cleans on failure. timeout_ms 0 means r->timeout_ms. Restores the stack top, updates
 * r->st (calls, errors, timeouts, time) and returns enum vm_status; on failure the message (with
 * r->scrub removed) is in r->st.last_error. count: whether this is a counted hook call. */
int vm_call(struct rule *r, unsigned ctx, uint32_t timeout_ms, bool count, vm_fn fn, void *ud);
/* Raises "C stack overflow" if the C stack used since vm_call entry passed the guard. */
void vm_check_cstack(lua_State *L);
/* The rule that owns L (its allocator userdata). */
struct rule *vm_rule(lua_State *L);
/* Remaining pattern-matcher steps before the next budget check, and the check itself: raises
 * (after the caller released everything it owns) when the call's time is up. */
void vm_check_budget(lua_State *L);
/* Nanoseconds of the thread CPU clock / monotonic clock. */
uint64_t vm_cpu_ns(void);
uint64_t vm_wall_ns(void);

/* --- watchdog.c --- */
/* The call a helper thread watches: once deadline_ns (vm_wall_ns) has passed and the calling
 * thread spent at least half of the next budget_ns running, L's count hook is set to `hook` with
 * count 1, so C functions called in a loop cannot outrun the wall backstop. */
struct watchdog_slot {
    lua_State *L; /* NULL: none */
    lua_Hook hook;
    uint64_t deadline_ns, interval_ns;
    clockid_t cpu_clock; /* the calling thread's CPU clock */
};
/* Watches an outermost call from now on; *saved keeps what was watched before. Takes no lock
 * (the thread is woken only when deadline_ns is earlier than the time it sleeps until). Calls
 * come from one thread (the loop thread); nested ones leave before their outer call. */
void watchdog_enter(lua_State *L, lua_Hook hook, uint64_t deadline_ns, uint64_t budget_ns,
                    struct watchdog_slot *saved);
/* Stops watching it (restoring *saved). After it returns the thread never touches that L (it
 * waits out a poke under way). */
void watchdog_leave(const struct watchdog_slot *saved);

/* --- args.c --- */
/* What the Lua function on top of L reads of each of its first ARGS_PARAMS parameters, by the
 * field names of each (NULL-terminated, at most 32): see args.c. Anything it cannot tell is
 * ARG_ALL. Runs inside a protected call of L (it pushes a dump buffer, which may raise). */
void args_analyze(struct engine *e, lua_State *L, const char *const *const names[ARGS_PARAMS],
                  struct arg_use *out);
void args_close(struct engine *e);

/* --- builder.c --- */
struct hooks_client;
/* With r's hook function `hook` (RH_PUBLISH or RH_DELIVER) on top of the stack, places the
 * rule's argument builder for it below (unless the hook reads neither argument) and pushes what
 * the builder needs to call it as hook(msg, client): only the fields the hook reads (args.c).
 * client is nil when NULL; msg.from comes from `from` when not NULL. Returns the argument count
 * for lua_call (may raise). */
int builder_push_call(lua_State *L, struct rule *r, int hook, const struct msg *m,
                      const struct hooks_client *from, const struct hooks_client *client);
/* Shapes r's on_publish and on_deliver when the rule loads (inside load's protected call, whose
 * failure fails the load): reading the bytecode and compiling a builder take longer than a hook's
 * budget, so no message pays for it. builder_push_call relies on it. */
void builder_prepare(lua_State *L, struct rule *r);

/* --- sandbox.c --- */
/* Opens the allowed libraries and sets the rule's environment (RULES-API "The sandbox"). Runs
 * inside vm_call. */
int sandbox_open(lua_State *L, void *ud);

/* --- api.c --- */
/* Pushes a new `tide` table with every module. Runs inside vm_call. */
void api_open(lua_State *L);
/* Raises unless the running call's context is one of `allowed`; fname names the function. */
void api_check(lua_State *L, unsigned allowed, const char *fname);
/* Sends one line from rule r to the host log, scrubbed and rate-limited. */
void api_log_line(struct rule *r, int level, const char *text, size_t len);

/* The tide.* modules: each sets its sub-table on the `tide` table on top of the stack. */
void api_json_open(lua_State *L);
void api_msgpack_open(lua_State *L);
void api_re_open(lua_State *L);
void api_topic_open(lua_State *L);
void api_log_open(lua_State *L);
void api_store_open(lua_State *L);
void api_crypto_open(lua_State *L);
void api_publish_open(lua_State *L);
void api_string_open(lua_State *L); /* replaces string.find/match/gmatch/gsub */
void api_table_open(lua_State *L);  /* replaces table.sort (on the table library on top) */

/* api_json.c, for cmd_rules.c and the fuzz harness: encode the value at idx / decode s; push the
 * result, or nil and an error string. */
int api_json_encode_value(lua_State *L, int idx);
int api_json_decode_string(lua_State *L, const char *s, size_t len);
/* Pushes tide.json.array_mt (nil before api_json_open): tide.msgpack marks its arrays with it too,
 * so an empty array stays an array through either codec. */
void api_json_push_array_mt(lua_State *L);
/* api_msgpack.c, the same for msgpack (engine.c carries on_unload's state across VMs with it). */
int api_msgpack_encode_value(lua_State *L, int idx);
int api_msgpack_decode_string(lua_State *L, const char *s, size_t len);
/* api_crypto.c: SHA-256 of p (engine.c's bundle and file digests). */
void api_sha256(const void *p, size_t n, unsigned char out[32]);

/* api_re.c */
void api_re_fini(struct engine *e);
/* api_store.c */
struct store *store_new(uint64_t limit);
void store_free(struct store *s);
/* api_publish.c */
void api_timers_stop(struct rule *r);

/* A growable byte buffer owned by Lua (a userdata with __gc), allocated through the rule's
 * allocator so it counts against its memory cap; adding never raises. */
struct abuf {
    char *p;
    size_t len, cap, max;
    lua_Alloc fn;
    void *ud;
};
/* Pushes a new abuf userdata (may raise: call before owning anything) and returns it. */
struct abuf *abuf_push(lua_State *L, size_t max);
/* Appends; false if the allocator refused or max would be passed. Never raises. */
bool abuf_add(struct abuf *b, const void *p, size_t n);
bool abuf_addc(struct abuf *b, char c);

/* --- values.c --- */
struct hooks_client;
struct hooks_connect;
struct hooks_sub;
/* Push a table for the value (may raise). */
void values_push_msg(lua_State *L, const struct msg *m, const struct hooks_client *from);
void values_push_client(lua_State *L, const struct hooks_client *c);
void values_push_conn(lua_State *L, const struct hooks_connect *c);
void values_push_sub(lua_State *L, const struct hooks_sub *s);
/* msg.properties from m's pre-encoded forward properties (codec_encode_forward_props). */
void values_push_props(lua_State *L, const struct msg *m);
/* Builds a new message from the partial table at idx over base (fields it leaves out keep base's).
 * Raises naming the field on a bad value; otherwise returns a new message (one reference). For
 * on_deliver, filter (if not NULL) is the subscriber's filter the topic must still match, and
 * the QoS may only be lowered. */
struct msg *values_to_msg(lua_State *L, int idx, const struct msg *base, const char *what,
                          bool deliver, const char *filter, size_t filter_len, uint64_t now_ms);
/* Per-client attrs (string/number/boolean values), kept by the broker as an opaque pointer. */
struct attrs;
void values_push_attrs(lua_State *L, const struct attrs *a);
bool values_attrs_empty(const struct attrs *a); /* NULL or no keys */
/* Merges the table at idx into *a (creating it); ignores other value types. Never raises. */
void values_read_attrs(lua_State *L, int idx, struct attrs **a);
void values_free_attrs(struct attrs *a);
/* Maps a reason (name or number at idx) for a packet kind ('C' connack, 'S' suback, 'P' puback)
 * to an MQTT 5 code; unknown names give 0x80 and set *unknown. */
uint8_t values_reason(lua_State *L, int idx, char kind, bool *unknown);
/* The snake-case name of an MQTT 5 reason code ("unspecified_error" if unknown). */
const char *values_reason_name(uint8_t code);

/* --- dispatch.c --- */
/* Runs the tide.publish queue until it is empty (called when the outermost entry returns). */
void dispatch_drain(struct engine *e);
/* Queues a tide.publish from rule r; returns 0, or TIDE_EQUOTA / TIDE_ETOPIC with m released. */
int dispatch_enqueue(struct rule *r, struct msg *m, unsigned hop);
/* Releases every queued tide.publish without running it. */
void dispatch_discard(struct engine *e);
/* Runs a rule's timer callback. */
void dispatch_timer(struct rule_timer *t);

/* --- engine.c --- */
void engine_rule_error(struct rule *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

/* One LuaJIT VM per rule: its capped allocator, the JIT switched off, and vm_call, the only
 * lua_pcall of the engine, which arms the instruction-count hook with the CPU budget (and its
 * wall-clock backstop), guards C-stack depth, installs the message handler, restores the stack
 * and updates the rule's counters. Knows nothing of hooks or values. */
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <luajit.h>

#include "util/err.h"

/* Instructions between two budget checks: small enough that a C-recursion chain through Lua
 * callbacks (each level runs at least one instruction) is caught well within the C stack. */
#define VM_HOOK_COUNT 1000
/* C stack a call may use below its vm_call frame (the thread has 8 MiB; sanitizers triple them). */
#define VM_CSTACK_MAX (1024 * 1024)

enum { ABORT_NONE, ABORT_TIMEOUT, ABORT_CSTACK };

/* Slots 1 and 2 of every rule's main stack hold these for the VM's whole life, so vm_call pushes
 * nothing that could allocate before the protection is in place. */
#define VM_SLOT_MSGH 1
#define VM_SLOT_TRAMPOLINE 2

struct vm_callctx {
    vm_fn fn;
    void *ud;
};

uint64_t vm_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t vm_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The collector's pause (LUA_GCSETPAUSE: a cycle starts once the heap is PAUSE % of what the
 * last one left). LuaJIT's 200 lets garbage grow to the live heap's size, so with a small heap a
 * cycle comes every few dozen messages and re-marks the whole live heap (the sandbox, the rule's
 * code) each time: 400 cuts a pass-through call by 12 % of its instructions, JSON by 7 %. The
 * extra garbage it allows is bounded by the per-VM cap: a heap past an eighth of the cap goes
 * back to 200, so the larger pause never makes a call run out of memory the default would not. */
#define VM_GC_PAUSE_SMALL 400
#define VM_GC_PAUSE_DEFAULT 200

static void vm_gc_tune(struct rule *r)
{
    int want = r->mem_used <= r->mem_limit / 8 ? VM_GC_PAUSE_SMALL : VM_GC_PAUSE_DEFAULT;
    if (want != r->gc_pause) {
        lua_gc(r->L, LUA_GCSETPAUSE, want); /* only stores the number: no allocation */
        r->gc_pause = want;
    }
}

/* Blocks of up to VM_CACHE_MAX bytes are malloc'd at their class's size and, once Lua frees
 * them, kept on the rule's free list of that class (up to VM_CACHE_BYTES in all) for the next
 * allocation of the class: a message's tables and strings are a dozen small blocks made and
 * swept again and again, and the garbage collector frees them in bursts that overflow malloc's
 * own per-size caches into its slow paths (a third of a pass-through call was malloc and free). */
#define VM_CACHE_MAX (VM_CACHE_GRAIN * VM_CACHE_CLASSES)
#define VM_CACHE_BYTES (128 * 1024)

static size_t class_of(size_t n) /* n in 1..VM_CACHE_MAX */
{
    return (n - 1) / VM_CACHE_GRAIN;
}

static size_t class_size(size_t c)
{
    return (c + 1) * VM_CACHE_GRAIN;
}

static void *block_get(struct rule *r, size_t n)
{
    if (n > VM_CACHE_MAX)
        return malloc(n);
    size_t c = class_of(n);
    void *p = r->cache[c];
    if (!p)
        return malloc(class_size(c));
    memcpy(&r->cache[c], p, sizeof(void *)); /* the next free block */
    r->cache_bytes -= class_size(c);
    return p;
}

/* n is the size Lua knows the block by: a small block is at least its class's size. */
static void block_put(struct rule *r, void *p, size_t n)
{
    if (n == 0 || n > VM_CACHE_MAX || r->cache_bytes + class_size(class_of(n)) > VM_CACHE_BYTES) {
        free(p);
        return;
    }
    size_t c = class_of(n);
    memcpy(p, &r->cache[c], sizeof(void *));
    r->cache[c] = p;
    r->cache_bytes += class_size(c);
}

static void cache_flush(struct rule *r)
{
    for (size_t c = 0; c < VM_CACHE_CLASSES; c++) {
        while (r->cache[c]) {
            void *p = r->cache[c];
            memcpy(&r->cache[c], p, sizeof(void *));
            free(p);
        }
    }
    r->cache_bytes = 0;
}

/* The rule's allocator: refuses growth past mem_limit while Lua code runs (the call then fails
 * with "not enough memory"); shrinking and freeing always succeed. vm_alloc below takes the two
 * cases a message makes a dozen of each (a new small block from the cache, a small block back to
 * it) without a call; everything else comes here. */
__attribute__((noinline)) static void *vm_alloc_slow(struct rule *r, void *ptr, size_t osize,
                                                     size_t nsize)
{
    if (!ptr)
        osize = 0;
    if (nsize == 0) {
        if (ptr)
            block_put(r, ptr, osize);
        r->mem_used -= osize;
        return NULL;
    }
    if (nsize > osize && r->mem_capped && r->mem_used - osize + nsize > r->mem_limit)
        return NULL;
    void *p;
    if (!ptr) {
        p = block_get(r, nsize); /* the common case: a new object */
    } else if (osize > VM_CACHE_MAX && nsize > VM_CACHE_MAX) {
        p = realloc(ptr, nsize); /* large to large: malloc's own realloc */
    } else if (nsize <= VM_CACHE_MAX && osize <= VM_CACHE_MAX &&
               class_of(nsize) == class_of(osize)) {
        p = ptr; /* the block already has the room */
    } else {
        p = block_get(r, nsize);
        if (p) {
            memcpy(p, ptr, osize < nsize ? osize : nsize);
            block_put(r, ptr, osize);
        }
    }
    if (!p && nsize > osize)
        return NULL;
    if (!p)
        p = ptr; /* a shrink that found no new block keeps the old, larger one */
    r->mem_used = r->mem_used - osize + nsize;
    return p;
}

static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct rule *r = ud;
    if (nsize == 0) {
        if (ptr && osize - 1 < VM_CACHE_MAX) { /* osize in 1..VM_CACHE_MAX */
            size_t c = class_of(osize);
            if (r->cache_bytes + class_size(c) <= VM_CACHE_BYTES) {
                memcpy(ptr, &r->cache[c], sizeof(void *));
                r->cache[c] = ptr;
                r->cache_bytes += class_size(c);
                r->mem_used -= osize;
                return NULL;
            }
        }
    } else if (!ptr && nsize <= VM_CACHE_MAX) {
        size_t c = class_of(nsize);
        void *p = r->cache[c];
        if (p && !(r->mem_capped && r->mem_used + nsize > r->mem_limit)) {
            memcpy(&r->cache[c], p, sizeof(void *)); /* the next free block */
            r->cache_bytes -= class_size(c);
            r->mem_used += nsize;
            return p;
        }
    }
    return vm_alloc_slow(r, ptr, osize, nsize);
}

struct rule *vm_rule(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

static const char *abort_text(int why)
{
    return why == ABORT_CSTACK ? "C stack overflow" : "timeout: the call ran out of time";
}

void vm_check_cstack(lua_State *L)
{
    struct rule *r = vm_rule(L);
    char here;
    if (r->stack_base && (size_t)(r->stack_base - &here) > VM_CSTACK_MAX) {
        r->abort = ABORT_CSTACK;
        lua_sethook(L, NULL, 0, 0); /* re-armed below with count 1: every instruction fails */
        luaL_error(L, "%s", abort_text(r->abort));
    }
}

static void vm_hook(lua_State *L, lua_Debug *ar);

/* Once a call is aborted, every later instruction raises again, so a pcall in the rule cannot
 * swallow the abort. */
static void raise_abort(lua_State *L, struct rule *r)
{
    lua_sethook(L, vm_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "%s", abort_text(r->abort));
}

/* Wall time into a call (or its budget, if less) from which its budget checks read the CPU
 * clock: see vm_check_budget. */
#define VM_CPU_ANCHOR_NS 20000

void vm_check_budget(lua_State *L)
{
    struct rule *r = vm_rule(L);
    char here;
    if (!r->abort && r->stack_base && (size_t)(r->stack_base - &here) > VM_CSTACK_MAX)
        r->abort = ABORT_CSTACK;
    if (!r->abort && r->wall_deadline_ns) {
        uint64_t wall = vm_wall_ns();
        uint64_t elapsed = wall - r->wall_start_ns;
        /* The thread CPU clock is a system call, and the count carries over from call to call,
         * so checks land in short calls too: read it only when it can matter. A thread uses at
         * most the wall time that passed as CPU time. The first read (the anchor) takes the
         * call's start as its CPU clock minus all wall time so far (never less CPU used than the
         * truth, off by the time the thread was put aside before it): so it comes early in a
         * long call, but no call shorter than VM_CPU_ANCHOR_NS makes it. Once anchored,
         * cpu - anchor <= wall elapsed since the anchor, so cpu > cpu_deadline needs elapsed >
         * budget: no read before that either. Neither skip lets a call past its budget. */
        uint64_t anchor = r->budget_ns < VM_CPU_ANCHOR_NS ? r->budget_ns : VM_CPU_ANCHOR_NS;
        if (wall > r->wall_deadline_ns) {
            r->abort = ABORT_TIMEOUT;
        } else if (r->cpu_deadline_ns ? elapsed > r->budget_ns : elapsed >= anchor) {
            uint64_t cpu = vm_cpu_ns();
            if (!r->cpu_deadline_ns)
                r->cpu_deadline_ns = (cpu > elapsed ? cpu - elapsed : 0) + r->budget_ns;
            if (cpu > r->cpu_deadline_ns)
                r->abort = ABORT_TIMEOUT;
        }
    }
    if (r->abort)
        raise_abort(L, r);
}

static void vm_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    vm_check_budget(L);
}

/* The message handler: keeps a string error (adding nothing), names other error objects by
 * type. It never calls __tostring, so an error object whose metamethod errors or loops cannot
 * hurt it. */
static int l_msgh(lua_State *L)
{
    int t = lua_type(L, 1);
    if (t == LUA_TSTRING)
        return 1;
    if (t == LUA_TNUMBER) {
        lua_pushfstring(L, "%f", lua_tonumber(L, 1));
        return 1;
    }
    lua_pushfstring(L, "(error object is a %s value)", lua_typename(L, t));
    return 1;
}

/* What l_trampoline runs, handed over by vm_call right before its lua_pcall (nothing else runs
 * in between: a C function entered by lua_pcall fires no count hook). A light userdata argument
 * costs a lookup in LuaJIT's light-userdata segment table per call. */
static _Thread_local const struct vm_callctx *trampoline_ctx;

/* stack: (empty) -- runs the caller's function with everything it pushes protected. */
static int l_trampoline(lua_State *L)
{
    const struct vm_callctx *c = trampoline_ctx;
    trampoline_ctx = NULL; /* one run per vm_call */
    if (c)
        c->fn(L, c->ud);
    return 0;
}

int vm_open(struct rule *r)
{
    r->mem_capped = false;
    r->L = lua_newstate(vm_alloc, r);
    if (!r->L)
        return TIDE_ENOMEM;
    luaJIT_setmode(r->L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    r->gc_pause = VM_GC_PAUSE_DEFAULT; /* LuaJIT's own; vm_call tunes it after each call */
    /* Outside any protection, but uncapped: only a failing malloc can make these raise, and
     * that is the broker-wide out-of-memory condition util/alloc.h aborts on anyway. */
    lua_checkstack(r->L, LUA_MINSTACK);
    lua_pushcfunction(r->L, l_msgh);
    lua_pushcfunction(r->L, l_trampoline);
    return 0;
}

void vm_close(struct rule *r)
{
    if (r->L) {
        r->mem_capped = false;
        lua_close(r->L);
        r->L = NULL;
        cache_flush(r);
    }
}

/* Copies msg into buf without the scrubbed bytes (replaced by "***"). */
static void scrub_copy(const struct rule *r, const char *msg, size_t len, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < cap;) {
        if (r->scrub && r->scrub_len && i + r->scrub_len <= len &&
            memcmp(msg + i, r->scrub, r->scrub_len) == 0) {
            for (int k = 0; k < 3 && o + 1 < cap; k++)
                buf[o++] = '*';
            i += r->scrub_len;
            continue;
        }
        buf[o++] = msg[i++];
    }
    buf[o] = '\0';
}

int vm_call(struct rule *r, unsigned ctx, uint32_t timeout_ms, bool count, vm_fn fn, void *ud)
{
    lua_State *L = r->L;
    struct vm_callctx c = {fn, ud};
    int top = lua_gettop(L);
    /* A nested call (a callback of the rule's own call) runs under the outer call's budget,
     * stack base and watch, which it leaves as they are: only ctx and the cap need restoring (a
     * CPU anchor a check took inside it is the outer call's, same start and budget). */
    unsigned saved_ctx = r->ctx;
    bool saved_cap = r->mem_capped;
    bool nested = saved_ctx != VM_CTX_NONE;
    struct watchdog_slot watched;
    char here;

    if (!timeout_ms)
        timeout_ms = r->timeout_ms;
    uint64_t w0 = vm_wall_ns();
    if (!nested) {
        r->stack_base = &here;
        r->abort = ABORT_NONE;
        r->budget_ns = (uint64_t)timeout_ms * 1000000u;
        r->wall_start_ns = w0;
        r->cpu_deadline_ns = 0; /* set by the first budget check */
        r->wall_deadline_ns = w0 + (uint64_t)timeout_ms * 10000000u; /* backstop: 10x */
        r->published = 0;
        if (r->eng)
            r->eng->re_busy = 0; /* a callback that raised left it counted */
        /* The count hook stays armed between calls (outside a call it finds no deadline and does
         * nothing): lua_sethook rewrites LuaJIT's whole dispatch table, which cost two of them
         * per message. Only an abort (count 1, or no hook) needs it set again. */
        if (lua_gethook(L) != vm_hook || lua_gethookcount(L) != VM_HOOK_COUNT ||
            lua_gethookmask(L) != LUA_MASKCOUNT)
            lua_sethook(L, vm_hook, LUA_MASKCOUNT, VM_HOOK_COUNT);
        watchdog_enter(L, vm_hook, r->wall_deadline_ns, r->budget_ns, &watched);
    }
    r->ctx = ctx;
    r->mem_capped = true;

    lua_pushvalue(L, VM_SLOT_TRAMPOLINE);
    trampoline_ctx = &c;
    int rc = lua_pcall(L, 0, 0, VM_SLOT_MSGH);
    trampoline_ctx = NULL; /* in case lua_pcall failed before running it */

    int status = VM_OK;
    if (rc != 0) {
        size_t len = 0;
        const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : "error";
        if (!len)
            len = strlen(m);
        if (rc == LUA_ERRMEM)
            status = VM_NOMEM;
        else if (r->abort == ABORT_TIMEOUT)
            status = VM_TIMEOUT;
        else
            status = VM_ERROR;
        scrub_copy(r, m, len, r->st.last_error, sizeof(r->st.last_error));
    }
    lua_settop(L, top);

    r->ctx = saved_ctx;
    if (!nested) {
        watchdog_leave(&watched);
        r->stack_base = NULL;
        r->abort = ABORT_NONE;
        r->cpu_deadline_ns = 0;
        r->wall_deadline_ns = 0;
        r->mem_capped = false;
        if (status == VM_NOMEM)
            lua_gc(L, LUA_GCCOLLECT, 0); /* uncapped: collection may allocate */
        vm_gc_tune(r);
    } else {
        r->mem_capped = saved_cap;
    }

    if (count) {
        uint64_t dt = vm_wall_ns() - w0; /* wall time: the CPU clock costs a system call */
        r->st.calls++;
        r->st.ns_total += dt;
        if (dt > r->st.ns_max)
            r->st.ns_max = dt;
        if (status == VM_TIMEOUT)
            r->st.timeouts++;
        else if (status != VM_OK)
            r->st.errors++;
    }
    return status;
}

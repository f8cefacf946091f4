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
/* C stack a call may use below its vm_call frame (the thread has 8 MiB; sanitizers triple frames). */
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

/* The rule's allocator: refuses growth past mem_limit while Lua code runs (the call then fails
 * with "not enough memory"); shrinking and freeing always succeed. */
static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct rule *r = ud;
    if (!ptr)
        osize = 0;
    if (nsize == 0) {
        free(ptr);
        r->mem_used -= osize;
        return NULL;
    }
    if (nsize > osize && r->mem_capped && r->mem_used - osize + nsize > r->mem_limit)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (!p)
        return nsize <= osize ? ptr : NULL;
    r->mem_used = r->mem_used - osize + nsize;
    return p;
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

void vm_check_budget(lua_State *L)
{
    struct rule *r = vm_rule(L);
    char here;
    if (!r->abort && r->stack_base && (size_t)(r->stack_base - &here) > VM_CSTACK_MAX)
        r->abort = ABORT_CSTACK;
    if (!r->abort && r->wall_deadline_ns) {
        uint64_t wall = vm_wall_ns();
        /* The thread CPU clock is a system call; a short call never reads it. The first check
         * takes it, counting all wall time so far as CPU time (never less than the truth). */
        uint64_t cpu = vm_cpu_ns();
        if (!r->cpu_deadline_ns)
            r->cpu_deadline_ns = cpu - (wall - r->wall_start_ns) + r->budget_ns;
        if (cpu > r->cpu_deadline_ns || wall > r->wall_deadline_ns)
            r->abort = ABORT_TIMEOUT;
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

/* stack: callctx -- runs the caller's function with everything it pushes protected. */
static int l_trampoline(lua_State *L)
{
    struct vm_callctx *c = lua_touserdata(L, 1);
    lua_settop(L, 0);
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
    unsigned saved_ctx = r->ctx;
    const char *saved_base = r->stack_base;
    uint64_t saved_cpu = r->cpu_deadline_ns, saved_wall = r->wall_deadline_ns;
    uint64_t saved_start = r->wall_start_ns, saved_budget = r->budget_ns;
    bool saved_cap = r->mem_capped;
    bool nested = saved_ctx != VM_CTX_NONE;
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
        lua_sethook(L, vm_hook, LUA_MASKCOUNT, VM_HOOK_COUNT);
    }
    r->ctx = ctx;
    r->mem_capped = true;

    lua_pushvalue(L, VM_SLOT_TRAMPOLINE);
    lua_pushlightuserdata(L, &c);
    int rc = lua_pcall(L, 1, 0, VM_SLOT_MSGH);

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
        lua_sethook(L, NULL, 0, 0);
        r->stack_base = NULL;
        r->abort = ABORT_NONE;
        r->cpu_deadline_ns = 0;
        r->wall_deadline_ns = 0;
        r->mem_capped = false;
        if (status == VM_NOMEM)
            lua_gc(L, LUA_GCCOLLECT, 0); /* uncapped: collection may allocate */
    } else {
        r->stack_base = saved_base;
        r->cpu_deadline_ns = saved_cpu;
        r->wall_deadline_ns = saved_wall;
        r->wall_start_ns = saved_start;
        r->budget_ns = saved_budget;
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

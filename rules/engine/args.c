/* Which parts of its arguments a hook function reads, found in its bytecode. A parameter the
 * function never reads cannot be observed, so it need not be built at all; one the function only
 * indexes with constant names (msg.topic, client.username) needs only those fields, as no other
 * code can ever see the table. Building a message's tables and interning its strings is most of
 * what a short rule costs, so this is where a rule stops paying for fields it does not read.
 *
 * Anything else a function does with a parameter needs the whole table: passing it on, returning
 * it, comparing or testing it, storing it or into it, indexing it with a variable, assigning the
 * parameter, and any closure made in the function (it could capture the parameter). So does a
 * function that cannot be read: a C function, one taking `...`, a dump that fails, or a LuaJIT
 * without jit.util. The check rests on LuaJIT's register allocation: parameters are the lowest
 * slots and live for the whole function, so every temporary, call frame and loop state lies above
 * them, and an operand that names a parameter's slot (or a range starting at or below it) is a use.
 *
 * The bytecode is read with jit.util in a private Lua state of the engine's, never in the rule's
 * own VM (opening the jit library there would switch its JIT back on), from the function's
 * lua_dump. The opcodes that matter (TGETS, FNEW, RET0) are learnt from probe functions compiled
 * there, so nothing here depends on LuaJIT's opcode numbering. */
#include "engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "util/alloc.h"

/* LuaJIT's operand modes (lj_bc.h, "ORDER BCMode"; the same in 2.0 and 2.1). */
enum {
    BCM_NONE,
    BCM_DST,
    BCM_BASE,
    BCM_VAR,
    BCM_RBASE,
    BCM_UV,
    BCM_LIT,
    BCM_STR = 10,
    BCM_FUNC = 12
};

struct args_reader {
    lua_State *A; /* the private state; NULL: not opened yet */
    bool usable;  /* jit.util and both probes worked */
    int op_tgets, op_fnew, op_ret0;
};

/* One instruction and its operand modes. */
struct ins {
    int op, a, b, c, d;
    int ma, mb, mc; /* mb == BCM_NONE: the D form (d with mode mc) */
};

static struct ins decode(uint32_t raw, uint32_t mode)
{
    struct ins i = {
        .op = (int)(raw & 0xff),
        .a = (int)((raw >> 8) & 0xff),
        .c = (int)((raw >> 16) & 0xff),
        .b = (int)(raw >> 24),
        .d = (int)(raw >> 16),
        .ma = (int)(mode & 7),
        .mb = (int)((mode >> 3) & 15),
        .mc = (int)((mode >> 7) & 15),
    };
    return i;
}

/* jit.util.funcbc(f, pc) for the function at index f of A: false past the end. */
static bool fetch(lua_State *A, int f, int pc, struct ins *out)
{
    lua_getfield(A, LUA_REGISTRYINDEX, "tidemq.funcbc");
    lua_pushvalue(A, f);
    lua_pushinteger(A, pc);
    lua_call(A, 2, 2);
    bool ok = lua_isnumber(A, -2) && lua_isnumber(A, -1);
    if (ok)
        *out = decode((uint32_t)lua_tointeger(A, -2), (uint32_t)lua_tointeger(A, -1));
    lua_pop(A, 2);
    return ok;
}

/* The opcode of the first instruction of the function `src` returns (after its header). */
static int probe(lua_State *A, const char *src, int want_ma, int want_mc)
{
    if (luaL_loadstring(A, src) != 0)
        return -1;
    lua_call(A, 0, 1);
    struct ins i;
    int op = fetch(A, lua_gettop(A), 1, &i) && i.ma == want_ma && i.mc == want_mc ? i.op : -1;
    lua_pop(A, 1);
    return op;
}

/* Protected part of opening the reader: jit.util's functions into A's registry, the probes. */
static int open_reader(lua_State *A)
{
    struct args_reader *rd = lua_touserdata(A, 1);
    luaL_openlibs(A);
    if (luaL_loadstring(A, "return require('jit.util')") != 0)
        return lua_error(A);
    lua_call(A, 0, 1);
    static const char *const fns[] = {"funcinfo", "funcbc", "funck"};
    for (size_t k = 0; k < 3; k++) {
        lua_getfield(A, -1, fns[k]);
        if (!lua_isfunction(A, -1))
            return luaL_error(A, "jit.util.%s missing", fns[k]);
        char key[32];
        snprintf(key, sizeof(key), "tidemq.%s", fns[k]);
        lua_setfield(A, LUA_REGISTRYINDEX, key);
    }
    rd->op_tgets = probe(A, "return function(t) return t.k end", BCM_DST, BCM_STR);
    rd->op_fnew = probe(A, "return function() return function() end end", BCM_DST, BCM_FUNC);
    rd->op_ret0 = probe(A, "return function() end", BCM_RBASE, BCM_LIT);
    rd->usable = rd->op_tgets >= 0 && rd->op_fnew >= 0 && rd->op_ret0 >= 0 &&
                 rd->op_tgets != rd->op_fnew && rd->op_ret0 != rd->op_tgets &&
                 rd->op_ret0 != rd->op_fnew;
    return 0;
}

static struct args_reader *reader(struct engine *e)
{
    struct args_reader *rd = e->args;
    if (rd)
        return rd->usable ? rd : NULL;
    rd = e->args = xcalloc(1, sizeof(*rd));
    rd->A = luaL_newstate();
    if (rd->A && (lua_cpcall(rd->A, open_reader, rd) != 0 || !rd->usable)) {
        rd->usable = false;
        lua_close(rd->A);
        rd->A = NULL;
    }
    return rd->usable ? rd : NULL;
}

void args_close(struct engine *e)
{
    struct args_reader *rd = e->args;
    if (!rd)
        return;
    if (rd->A)
        lua_close(rd->A);
    free(rd);
    e->args = NULL;
}

/* What one analysis works on: the dump, the field names and the answer. */
struct job {
    struct args_reader *rd;
    const char *dump;
    size_t len;
    const char *const *names[ARGS_PARAMS];
    struct arg_use *out;
};

static void use_all(struct arg_use *u, int p)
{
    u->how[p] = ARG_ALL;
    u->fields[p] = 0;
}

/* An operand of mode m naming slot x: a use of every parameter it covers. */
static void operand(struct arg_use *u, int np, int m, int x)
{
    for (int p = 0; p < np; p++) {
        bool hit = (m == BCM_DST || m == BCM_VAR)      ? x == p
                   : (m == BCM_BASE || m == BCM_RBASE) ? x <= p /* a range from x up */
                                                       : false;
        if (hit)
            use_all(u, p);
    }
}

static void add_field(struct arg_use *u, const char *const *names, int p, const char *key)
{
    if (u->how[p] == ARG_ALL)
        return;
    u->how[p] = ARG_FIELDS;
    for (int k = 0; names[k]; k++)
        if (strcmp(names[k], key) == 0)
            u->fields[p] |= UINT32_C(1) << k; /* another name reads nil either way */
}

static int analyze(lua_State *A)
{
    struct job *j = lua_touserdata(A, 1);
    struct arg_use *u = j->out;
    lua_settop(A, 0);
    if (luaL_loadbuffer(A, j->dump, j->len, "=hook") != 0)
        return lua_error(A);
    int f = lua_gettop(A);
    lua_getfield(A, LUA_REGISTRYINDEX, "tidemq.funcinfo");
    lua_pushvalue(A, f);
    lua_call(A, 1, 1);
    lua_getfield(A, -1, "params");
    lua_getfield(A, -2, "isvararg");
    lua_getfield(A, -3, "bytecodes");
    int params = (int)lua_tointeger(A, -3), nbc = (int)lua_tointeger(A, -1);
    bool vararg = lua_toboolean(A, -2);
    lua_settop(A, f);
    int np = params < ARGS_PARAMS ? params : ARGS_PARAMS;
    for (int p = 0; p < ARGS_PARAMS; p++) {
        if (vararg || nbc <= 0)
            use_all(u, p); /* `...` hands out arguments past the declared ones */
        else
            u->how[p] = ARG_UNUSED, u->fields[p] = 0;
    }
    if (vararg || nbc <= 0)
        return 0;
    for (int pc = 1; pc < nbc; pc++) { /* pc 0 is the function header */
        struct ins i;
        if (!fetch(A, f, pc, &i))
            return luaL_error(A, "bytecode %d unreadable", pc);
        if (i.op == j->rd->op_ret0)
            continue; /* `return` of nothing: its base operand names no value */
        if (i.op == j->rd->op_fnew) {
            for (int p = 0; p < np; p++)
                use_all(u, p); /* a closure may capture a parameter */
            continue;
        }
        if (i.op == j->rd->op_tgets && i.b < np) {
            operand(u, np, BCM_DST, i.a); /* x = msg.topic overwriting a parameter */
            lua_getfield(A, LUA_REGISTRYINDEX, "tidemq.funck");
            lua_pushvalue(A, f);
            lua_pushinteger(A, -i.c - 1); /* string constants count down from -1 */
            lua_call(A, 2, 1);
            if (lua_type(A, -1) != LUA_TSTRING)
                use_all(u, i.b);
            else
                add_field(u, j->names[i.b], i.b, lua_tostring(A, -1));
            lua_pop(A, 1);
            continue;
        }
        operand(u, np, i.ma, i.a);
        if (i.mb == BCM_NONE) {
            operand(u, np, i.mc, i.d);
        } else {
            operand(u, np, i.mb, i.b);
            operand(u, np, i.mc, i.c);
        }
    }
    return 0;
}

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud)
{
    (void)L;
    struct abuf *b = ud;
    return abuf_add(b, p, n) ? 0 : 1;
}

void args_analyze(struct engine *e, lua_State *L, const char *const *const names[ARGS_PARAMS],
                  struct arg_use *out)
{
    for (int p = 0; p < ARGS_PARAMS; p++)
        use_all(out, p);
    struct args_reader *rd = reader(e);
    if (!rd || lua_iscfunction(L, -1) || !lua_isfunction(L, -1))
        return;
    struct abuf *b = abuf_push(L, 1u << 20); /* stack: fn abuf */
    lua_pushvalue(L, -2);
    int rc = lua_dump(L, dump_writer, b);
    lua_pop(L, 1);
    if (rc == 0 && b->p) {
        struct arg_use u;
        struct job j = {.rd = rd, .dump = b->p, .len = b->len, .out = &u};
        memcpy(j.names, names, sizeof(j.names));
        if (lua_cpcall(rd->A, analyze, &j) == 0)
            *out = u;
        lua_settop(rd->A, 0);
        lua_gc(rd->A, LUA_GCCOLLECT, 0); /* the loaded dump is garbage now */
    }
    lua_pop(L, 1); /* the abuf, collected with the dump */
}

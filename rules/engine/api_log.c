/* tide.log.debug|info|warn|error(fmt, ...): string.format, then one line to the host log tagged
 * with the rule, with on_connect's password scrubbed, limited to 100 lines a second per rule
 * (then one line saying how many were suppressed). print() uses the same path at info. */
#include "engine_internal.h"

#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "log.h"

#define LOG_LINES_PER_S 100
#define LOG_LINE_MAX 4096

static void emit(struct rule *r, int level, const char *text, size_t len)
{
    struct engine *e = r->eng;
    char line[LOG_LINE_MAX + 4];
    size_t o = 0;
    for (size_t i = 0; i < len && o < LOG_LINE_MAX;) {
        if (r->scrub && r->scrub_len && i + r->scrub_len <= len &&
            memcmp(text + i, r->scrub, r->scrub_len) == 0) {
            memcpy(line + o, "***", 3);
            o += 3;
            i += r->scrub_len;
            continue;
        }
        char ch = text[i++];
        line[o++] = (ch == '\n' || ch == '\r') ? ' ' : ch;
    }
    line[o] = '\0';
    if (e->host.log)
        e->host.log(e->host.ctx, level, r->name, line);
}

void api_log_line(struct rule *r, int level, const char *text, size_t len)
{
    struct engine *e = r->eng;
    uint64_t now = e->host.monotonic_ms ? e->host.monotonic_ms(e->host.ctx)
                                        : vm_wall_ns() / 1000000u;
    if (now - r->log_window_ms >= 1000) {
        if (r->log_suppressed) {
            char note[96];
            int n = snprintf(note, sizeof(note), "%u log lines suppressed (over %d a second)",
                             r->log_suppressed, LOG_LINES_PER_S);
            emit(r, LOG_WARN, note, (size_t)n);
        }
        r->log_window_ms = now;
        r->log_lines = 0;
        r->log_suppressed = 0;
    }
    if (r->log_lines >= LOG_LINES_PER_S) {
        r->log_suppressed++;
        return;
    }
    r->log_lines++;
    emit(r, level, text, len);
}

/* stack: fmt args... -- string.format (upvalue 1) then log at `level` */
static int log_at_level(lua_State *L, int level)
{
    luaL_checkany(L, 1);
    vm_check_cstack(L); /* string.format's %s may call a __tostring that logs: C recursion */
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, 1);
    size_t len = 0;
    const char *s = lua_tolstring(L, -1, &len);
    api_log_line(vm_rule(L), level, s ? s : "", s ? len : 0);
    return 0;
}

static int l_debug(lua_State *L)
{
    return log_at_level(L, LOG_DEBUG);
}

static int l_info(lua_State *L)
{
    return log_at_level(L, LOG_INFO);
}

static int l_warn(lua_State *L)
{
    return log_at_level(L, LOG_WARN);
}

static int l_error(lua_State *L)
{
    return log_at_level(L, LOG_ERROR);
}

static const luaL_Reg api_log[] = {
    {"debug", l_debug},
    {"info", l_info},
    {"warn", l_warn},
    {"error", l_error},
    {NULL, NULL},
};

void api_log_open(lua_State *L)
{
    lua_newtable(L); /* stack: tide log */
    lua_getglobal(L, "string"); /* the rule's globals are not in place yet: this is the library */
    lua_getfield(L, -1, "format");
    lua_remove(L, -2); /* stack: tide log format */
    luaL_setfuncs(L, api_log, 1);
    lua_setfield(L, -2, "log");
}

/* Unit tests for rules/engine/pattern.c and the string.find/match/gmatch/gsub built on it: every
 * case runs through LuaJIT's own string library too, and the answers must be the same; then the
 * budget must stop a backtracking pattern. Exits non-zero on any failure. */
#include "pattern.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "engine.h"
#include "hooks.h"
#include "host.h"
#include "msg.h"
#include "rules_test_support.h"

struct find_case {
    const char *s, *p;
    int init;
};

static const struct find_case cases[] = {
    {"hello world", "o", 1}, {"hello world", "o", 6}, {"hello world", "l+", 1},
    {"hello world", "^h", 1}, {"hello world", "^w", 1}, {"hello world", "d$", 1},
    {"hello world", "o w", 1}, {"hello", "", 1}, {"hello", "", 10}, {"", "", 1},
    {"", "a*", 1}, {"aaa", "a-", 1}, {"aaa", "a-$", 1}, {"aaab", "a*b", 1},
    {"aaab", "a+b", 1}, {"b", "a+b", 1}, {"ab", "a?b", 1}, {"b", "a?b", 1},
    {"x = 10, y = 20", "(%w+) = (%w+)", 1}, {"x = 10, y = 20", "(%w+) = (%w+)", 5},
    {"key=val", "()=()", 1}, {"THE (quick) fox", "%((%a+)%)", 1},
    {"f(a(b)c)d", "%b()", 1}, {"f(a(b c)d", "%b()", 1}, {"[[x]]", "%b[]", 1},
    {"THE (quick) fox", "%f[%a]%a+", 5}, {"hello", "%f[%l]", 1}, {"abc", "%f[%z]", 1},
    {"abcabc", "(abc)%1", 1}, {"abcab", "(abc)%1", 1}, {"a.b", "%.", 1},
    {"a+b", "[+]", 1}, {"a]b", "[]]", 1}, {"a-b", "[a-]", 2}, {"a^b", "[%^]", 1},
    {"x1y2", "[%d]", 1}, {"x1y2", "[^%d]+", 2}, {"AbC", "%u%l%u", 1},
    {"tab\there", "%s", 1}, {"ctl\001", "%c", 1}, {"p,q", "%p", 1}, {"0x1F", "%x+", 3},
    {"caf\xc3\xa9", "[\x80-\xff]+", 1}, {"a\0b", "%z", 1}, {"a\0b", "a%zb", 1},
    {"  trim  ", "^%s*(.-)%s*$", 1}, {"2024-01-31", "(%d+)-(%d+)-(%d+)", 1},
    {"sensors/a/celsius", "celsius$", 1}, {"a/b/c", "([^/]+)/([^/]+)$", 1},
    {"aaa", "(a*(.)%w(%s*))", 1}, {"hello", "(h)(e)(l)(l)(o)", 1}, {"hello", "()ll()", 1},
    {"one two", "%a+", -3}, {"one two", "%a+", -100}, {"abc", "b", 100},
    {"x", "%", 1}, {"x", "[a", 1}, {"x", "(x", 1}, {"x", "x)", 1}, {"x", "%1", 1},
    {"x", "%b", 1}, {"x", "%f", 1}, {"x", "%g", 1}, {"a b", "%G", 1}, {"x]", "[^]]", 1},
    {"a$b", "a$b", 1}, {"a^b", "a^b", 1}, {"^x", "^^x", 1}, {"..", "%.%.", 1},
    {"abc", ".-b", 1}, {"abc", ".*", 2}, {"xyz", "[x-z]+", 1}, {"xyz", "[z-x]", 1},
    {"a(b", "%(", 1}, {"mississippi", "(ss)i%1", 1}, {"mississippi", "s-p", 1},
};

/* Serialises what LuaJIT's string.find(s, p, init) returns (or "error"). */
static void lua_answer(lua_State *L, const struct find_case *c, char *out, size_t cap)
{
    lua_settop(L, 0);
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "find");
    lua_pushstring(L, c->s);
    if (c->s[0] == 'a' && c->s[1] == 0) {
        lua_pop(L, 1);
        lua_pushlstring(L, "a\0b", 3);
    }
    lua_pushstring(L, c->p);
    lua_pushinteger(L, c->init);
    if (lua_pcall(L, 3, LUA_MULTRET, 0) != 0) {
        snprintf(out, cap, "error");
        return;
    }
    size_t o = 0;
    out[0] = '\0';
    for (int i = 2; i <= lua_gettop(L); i++) {
        size_t n;
        const char *v = lua_isnil(L, i) ? "nil" : lua_tolstring(L, i, &n);
        o += (size_t)snprintf(out + o, cap - o, "%s|", v);
    }
}

static void my_answer(const struct find_case *c, char *out, size_t cap)
{
    const char *s = c->s;
    size_t sl = strlen(s);
    if (strcmp(s, "a\0b") == 0 || (s[0] == 'a' && s[1] == 0)) {
        s = "a\0b";
        sl = 3;
    }
    long init = c->init;
    if (init < 0)
        init += (long)sl + 1;
    if (init < 1)
        init = 1;
    if ((size_t)init > sl + 1)
        init = (long)sl + 1;
    size_t pl = strlen(c->p);
    if (pattern_is_plain(c->p, pl)) { /* what string.find does too */
        const char *q = pl <= sl - (size_t)(init - 1) ? strstr(s + init - 1, c->p) : NULL;
        if (q)
            snprintf(out, cap, "%td|%td|", q - s + 1, q - s + (ptrdiff_t)pl);
        else
            snprintf(out, cap, "nil|");
        return;
    }
    struct pattern_state ps;
    pattern_init(&ps, s, sl, c->p, strlen(c->p), NULL, NULL);
    size_t st, en;
    int rc = pattern_find(&ps, (size_t)init - 1, &st, &en);
    if (rc < 0) {
        snprintf(out, cap, "error");
        return;
    }
    if (rc == 0) {
        snprintf(out, cap, "nil|");
        return;
    }
    size_t o = (size_t)snprintf(out, cap, "%zu|%zu|", st + 1, en);
    for (int i = 0; i < ps.level; i++) {
        const struct pattern_capture *cp = &ps.capture[i];
        if (cp->len == PATTERN_CAP_UNFINISHED) { /* string.find raises "unfinished capture" */
            snprintf(out, cap, "error");
            return;
        }
        if (cp->len == PATTERN_CAP_POSITION)
            o += (size_t)snprintf(out + o, cap - o, "%td|", cp->init - s + 1);
        else
            o += (size_t)snprintf(out + o, cap - o, "%.*s|", (int)cp->len, cp->init);
    }
}

static void test_find_against_luajit(lua_State *L)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char want[512], got[512], what[128];
        lua_answer(L, &cases[i], want, sizeof(want));
        my_answer(&cases[i], got, sizeof(got));
        snprintf(what, sizeof(what), "find(\"%s\", \"%s\", %d)", cases[i].s, cases[i].p,
                 cases[i].init);
        char detail[1100];
        snprintf(detail, sizeof(detail), "luajit %s, ours %s", want, got);
        check(strcmp(want, got) == 0, what, detail);
    }
}

/* The same Lua code in plain LuaJIT and in a rule VM (where string.* is ours). */
static const char glue_code[] =
    "local o = {}\n"
    "local function add(...) local t = {...} for i = 1, select('#', ...) do "
    "o[#o + 1] = tostring(t[i]) end o[#o + 1] = ';' end\n"
    "add(string.gsub('hello world', 'o', '0'))\n"
    "add(string.gsub('hello world', 'o', '0', 1))\n"
    "add(string.gsub('hello world', '(%w+)', '<%1>'))\n"
    "add(string.gsub('hello world', '%w+', '%0 %0'))\n"
    "add(string.gsub('abc', '', '-'))\n"
    "add(string.gsub('abc', '^', '>'))\n"
    "add(string.gsub('abc', '$', '<'))\n"
    "add(string.gsub('abc', '.', {a = 1, b = false}))\n"
    "add(string.gsub('abc', '%w', function(c) if c ~= 'b' then return c:upper() end end))\n"
    "add(string.gsub('x=1, y=2', '(%w+)=(%w+)', '%2=%1'))\n"
    "add(string.gsub('a,b,,c', ',', ';'))\n"
    "add(string.gsub('100%', '%%', ' percent'))\n"
    "add(string.gsub('abc', 'b', '%%'))\n"
    "add(string.gsub('  x  ', '^%s+', ''))\n"
    "add(('x'):rep(3):gsub('x', 'yy'))\n"
    "for k, v in string.gmatch('a=1, b=2, c=3', '(%w+)=(%w+)') do add(k, v) end\n"
    "for w in string.gmatch('one two  three', '%a+') do add(w) end\n"
    "for w in string.gmatch('abc', '') do add(w) end\n"
    "for p in string.gmatch('abc', '()') do add(p) end\n"
    "add(string.match('key = value', '(%w+)%s*=%s*(%w+)'))\n"
    "add(string.match('2024-01-31', '^(%d%d%d%d)-(%d%d)'))\n"
    "add(string.match('hello', '.-(l+)(.*)'))\n"
    "add(string.match('hello', 'xyz'))\n"
    "add(string.match('hello', '()e()'))\n"
    "add(string.find('a.b.c', '.', 1, true))\n"
    "add(string.find('a.b.c', '%.', 3))\n"
    "add(('hello'):find('l'))\n"
    "add(('hello'):match('^(h)'))\n"
    "add(pcall(string.gsub, 'x', '(', 'y'))\n"
    "add(pcall(string.gsub, 'x', 'x', '%2'))\n"
    "add(pcall(string.gsub, 'x', 'x', function() return {} end))\n"
    "add(pcall(string.find, 'x', '[a'))\n"
    "return table.concat(o, ' ')\n";

/* Runs `body` as the on_publish of a one-rule bundle; returns the resulting payload (static). */
static const char *run_in_rule(const char *body, double *ms)
{
    static char payload[8192];
    char rule_dir[] = "/tmp/tidemq-test-pattern-XXXXXX";
    if (!mkdtemp(rule_dir))
        return "mkdtemp";
    chmod(rule_dir, 0755);
    char path[256];
    snprintf(path, sizeof(path), "%s/10-t.lua", rule_dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "local function body(msg)\n%s\nend\n"
               "return { on_publish = function(msg) return { payload = body(msg) } end }\n",
            body);
    fclose(f);
    chmod(path, 0644);
    struct host h = {.monotonic_ms = mono};
    struct engine_limits lim;
    engine_limits_default(&lim);
    struct engine *e = engine_new(&lim, &h);
    snprintf(payload, sizeof(payload), "load failed");
    if (engine_load(e, rule_dir, true, NULL, NULL) == 0) {
        struct msg_init mi = {.topic = "t", .topic_len = 1, .payload = "p", .payload_len = 1};
        struct msg *m = msg_new(&mi);
        struct hooks_client cl = {.client_id = "test", .protocol = 5};
        struct hooks_publish_answer a;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        engine_on_publish(e, m, &cl, 0, &a);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (ms)
            *ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        snprintf(payload, sizeof(payload), "refused/dropped");
        if (a.out_count == 1)
            snprintf(payload, sizeof(payload), "%.*s", (int)a.out[0]->payload_len,
                     (const char *)a.out[0]->payload);
        for (size_t i = 0; i < a.out_count; i++)
            msg_release(&a.out[i]);
        hooks_publish_answer_fini(&a);
        msg_release(&m);
    }
    engine_free(e);
    unlink(path);
    rmdir(rule_dir);
    return payload;
}

static void test_glue_against_luajit(lua_State *L)
{
    lua_settop(L, 0);
    if (luaL_loadstring(L, glue_code) != 0 || lua_pcall(L, 0, 1, 0) != 0) {
        check(0, "glue reference", lua_tostring(L, -1));
        return;
    }
    char want[8192];
    snprintf(want, sizeof(want), "%s", lua_tostring(L, -1));
    const char *got = run_in_rule(glue_code, NULL);
    char detail[17000];
    snprintf(detail, sizeof(detail), "\nluajit: %s\nours:   %s", want, got);
    /* error texts differ in wording: compare up to the first pcall result */
    const char *cut_w = strstr(want, "false");
    const char *cut_g = strstr(got, "false");
    size_t nw = cut_w ? (size_t)(cut_w - want) : strlen(want);
    size_t ng = cut_g ? (size_t)(cut_g - got) : strlen(got);
    check(nw == ng && memcmp(want, got, nw) == 0, "gsub/gmatch/match/find glue", detail);
    int falses_w = 0, falses_g = 0;
    for (const char *p = want; (p = strstr(p, "false")); p++)
        falses_w++;
    for (const char *p = got; (p = strstr(p, "false")); p++)
        falses_g++;
    check(falses_w == falses_g && falses_w == 3, "pattern errors raise", detail);
}

static int stop_after(void *ud)
{
    return ++*(int *)ud > 100;
}

static void test_budget(void)
{
    char s[25], p[256];
    memset(s, 'a', 24);
    s[24] = '\0';
    p[0] = '\0';
    for (int i = 0; i < 24; i++)
        strcat(p, "a?");
    for (int i = 0; i < 24; i++)
        strcat(p, "a");
    strcat(p, "b");
    int calls = 0;
    struct pattern_state ps;
    pattern_init(&ps, s, 24, p, strlen(p), stop_after, &calls);
    size_t st, en;
    int rc = pattern_find(&ps, 0, &st, &en);
    check(rc == -1 && ps.aborted, "pure matcher stops when the check says so", p);

    double ms = 0;
    const char *r = run_in_rule("return tostring(string.find(('a'):rep(24), ('a?'):rep(24) .. "
                                "('a'):rep(24) .. 'b'))", &ms);
    char detail[128];
    snprintf(detail, sizeof(detail), "%s after %.1f ms", r, ms);
    check(strcmp(r, "refused/dropped") == 0 && ms < 1000, "rule budget stops the pattern",
          detail);
    fprintf(stderr, "pathological pattern stopped after %.2f ms\n", ms);
}

int main(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    test_find_against_luajit(L);
    test_glue_against_luajit(L);
    test_budget();
    lua_close(L);
    printf("test_pattern: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

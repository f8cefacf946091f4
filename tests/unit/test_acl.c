/* Unit tests for core/acl.c: parsing (accepted files and file:line errors), Mosquitto's decision
 * order (section deny, section allow, pattern deny, pattern allow), the anonymous section, %c/%u
 * substitution and the ids it refuses, $SYS and $share, regex entries, and the subscribe check's
 * filter-against-filter reasoning. Tables of {name, input, expected}; exits non-zero on any
 * failure. */
#include "acl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/err.h"

#include "unit.h"

static void check(bool ok, const char *what, const char *name)
{
    CHECK(ok, "%s: %s", what, name);
}

/* ---- parsing ------------------------------------------------------------------------------ */

struct parse_case {
    const char *name;
    const char *in;
    int expected;
    size_t entries;  /* when it loads */
    const char *err; /* substring of the error, when it does not */
};

static const struct parse_case parse_cases[] = {
    {"empty", "", 0, 0, NULL},
    {"mosquitto's aclfile.example",
     "# This affects access control for clients with no username.\ntopic read $SYS/#\n\n"
     "# This only affects clients with username \"roger\".\nuser roger\ntopic foo/bar\n\n"
     "# This affects all clients.\npattern write $SYS/broker/connection/%c/state\n",
     0, 3, NULL},
    {"crlf and blanks", "topic read a\r\n\r\n  \t\r\nuser u\r\ntopic b\r\n", 0, 2, NULL},
    {"tabs and leading blanks", "\ttopic\tread\ta/b\n   pattern  deny   x/%c\n", 0, 2, NULL},
    {"indented comment", "   # not a line\ntopic a\n", 0, 1, NULL},
    {"topic with spaces", "topic read a b c\n", 0, 1, NULL},
    {"lone access word is a topic", "topic read\n", 0, 1, NULL},
    {"lone regex word is a topic", "topic regex\n", 0, 1, NULL},
    {"every access", "topic read a\ntopic write a\ntopic readwrite a\ntopic deny a\n", 0, 4, NULL},
    {"regex entry", "topic regex read ^a/[0-9]+$\nuser u\ntopic regex deny a/.*\n", 0, 2, NULL},
    {"same user twice", "user u\ntopic a\nuser v\ntopic b\nuser u\ntopic c\n", 0, 3, NULL},
    {"no final newline", "topic a", 0, 1, NULL},
    {"missing topic", "topic read a\ntopic\n", TIDE_EINVAL, 0, "t.acl:2: missing topic"},
    {"missing topic after blanks", "pattern   \n", TIDE_EINVAL, 0, "t.acl:1: missing topic"},
    {"unknown access", "topic reed a/b\n", TIDE_EINVAL, 0, "t.acl:1: unknown access 'reed'"},
    {"bad filter", "\n\ntopic read a/#/b\n", TIDE_EINVAL, 0, "t.acl:3: invalid topic filter"},
    {"plus inside a level", "topic a+/b\n", TIDE_EINVAL, 0, "invalid topic filter"},
    {"shared filter", "topic read $share/g/a\n", TIDE_EINVAL, 0, "invalid topic filter"},
    {"user without name", "user\n", TIDE_EINVAL, 0, "t.acl:1: missing user name"},
    {"user with blanks only", "user   \t\n", TIDE_EINVAL, 0, "missing user name"},
    {"unknown keyword", "topic a\nusers bob\n", TIDE_EINVAL, 0, "t.acl:2: expected 'topic',"},
    {"regex on a pattern", "pattern regex read a\n", TIDE_EINVAL, 0, "'topic' lines only"},
    {"regex without access", "topic regex a.*\n", TIDE_EINVAL, 0, "topic regex read|write"},
    {"regex without regex", "topic regex read\n", TIDE_EINVAL, 0, "topic regex read|write"},
    {"bad regex", "topic regex read a(b\n", TIDE_EINVAL, 0, "t.acl:1: invalid regex at offset"},
    {"NUL byte", "topic a\0b\n", TIDE_EINVAL, 0, "NUL byte"},
};

static void test_parse(void)
{
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        const struct parse_case *c = &parse_cases[i];
        size_t len = strlen(c->in);
        if (strcmp(c->name, "NUL byte") == 0)
            len = 10;
        struct acl *a = NULL;
        char err[256] = "";
        int rc = acl_load_buffer(&a, "t.acl", c->in, len, err, sizeof(err));
        bool ok = rc == c->expected;
        if (ok && rc == 0)
            ok = acl_entry_count(a) == c->entries;
        if (ok && rc != 0)
            ok = a == NULL && strstr(err, c->err) != NULL;
        if (!ok)
            fprintf(stderr, "  rc=%d err='%s'\n", rc, err);
        check(ok, "parse", c->name);
        acl_free(a);
    }
    char big[ACL_REGEX_MAX + 64] = "topic regex read ";
    memset(big + strlen(big), 'a', ACL_REGEX_MAX + 1);
    big[sizeof(big) - 1] = '\0';
    struct acl *a = NULL;
    char err[256];
    check(acl_load_buffer(&a, "t.acl", big, strlen(big), err, sizeof(err)) == TIDE_EINVAL &&
              strstr(err, "regex longer than"),
          "parse", "regex too long");
    check(acl_load_file(&a, "/nonexistent/tidemq.acl", err, sizeof(err)) == TIDE_EIO &&
              strstr(err, "/nonexistent/tidemq.acl: ") == err,
          "parse", "missing file says path: why");
    char path[] = "/tmp/tidemq-test-acl-XXXXXX";
    int fd = mkstemp(path);
    const char text[] = "user u\ntopic read a/#\n";
    bool wrote = fd >= 0 && write(fd, text, sizeof(text) - 1) == (ssize_t)(sizeof(text) - 1);
    if (fd >= 0)
        close(fd);
    check(wrote && acl_load_file(&a, path, err, sizeof(err)) == 0 && acl_entry_count(a) == 1 &&
              acl_can_read(a, "c", "u", "a/b", 3),
          "parse", "load from a file");
    acl_free(a);
    unlink(path);
}

/* ---- checks ------------------------------------------------------------------------------- */

/* P: acl_can_publish, R: acl_can_read, S: acl_can_subscribe */
struct check_case {
    const char *name;
    const char *acl;
    const char *id, *user; /* user NULL: anonymous */
    char op;
    const char *topic;
    bool expected;
};

static const char fixture[] = "# anonymous section\n"
                              "topic read public/#\n"
                              "topic deny public/secret\n"
                              "topic regex read ^anon/[0-9]+$\n"
                              "\n"
                              "user alice\n"
                              "topic readwrite alice/#\n"
                              "topic read shared/#\n"
                              "topic deny shared/private/#\n"
                              "topic write shared/inbox\n"
                              "topic read $SYS/broker/clients/#\n"
                              "topic read devices/#\n"
                              "\n"
                              "user bob\n"
                              "topic read #\n"
                              "topic regex deny sensors/[0-9]+/raw\n"
                              "topic regex readwrite sensors/[0-9]+/(temp|humidity)\n"
                              "topic write bob/out\n"
                              "\n"
                              "pattern read devices/%c/#\n"
                              "pattern write devices/%c/out\n"
                              "pattern readwrite users/%u/#\n"
                              "pattern deny devices/%c/locked\n"
                              "pattern read $SYS/clients/%c\n"
                              "pattern read %c/inbox/#\n"
                              "\n"
                              "user carol\n"
                              "topic sensors/+/temp\n"
                              "topic readwrite $SYS/#\n"
                              "\n"
                              "user alice\n"
                              "topic write alice2/#\n";

#define F fixture

static const struct check_case check_cases[] = {
    /* the anonymous section */
    {"anon reads public", F, "c1", NULL, 'R', "public/news", true},
    {"anon reads public parent", F, "c1", NULL, 'R', "public", true},
    {"anon deny wins", F, "c1", NULL, 'R', "public/secret", false},
    {"anon cannot write public", F, "c1", NULL, 'P', "public/news", false},
    {"anon regex", F, "c1", NULL, 'R', "anon/42", true},
    {"anon regex is anchored at the end", F, "c1", NULL, 'R', "anon/42/x", false},
    {"anon regex is anchored at the start", F, "c1", NULL, 'R', "x/anon/42", false},
    {"anon regex no match", F, "c1", NULL, 'R', "anon/x", false},
    {"anon section is not alice's", F, "c1", "alice", 'R', "public/news", false},
    {"user without section: patterns only", F, "c1", "zed", 'R', "public/news", false},
    {"user without section reads %u", F, "c1", "zed", 'R', "users/zed/a", true},
    {"user without section writes %u", F, "c1", "zed", 'P', "users/zed/a", true},
    {"anon skips %u patterns", F, "c1", NULL, 'R', "users//a", false},
    {"empty user name substitutes", F, "c1", "", 'R', "users//a", true},
    /* a user's section */
    {"alice readwrite", F, "c2", "alice", 'P', "alice/x", true},
    {"alice readwrite read", F, "c2", "alice", 'R', "alice/x/y", true},
    {"alice read only", F, "c2", "alice", 'P', "shared/x", false},
    {"alice reads shared", F, "c2", "alice", 'R', "shared/x", true},
    {"alice deny subtree", F, "c2", "alice", 'R', "shared/private/x", false},
    {"alice deny parent", F, "c2", "alice", 'R', "shared/private", false},
    {"alice write-only inbox", F, "c2", "alice", 'P', "shared/inbox", true},
    {"alice write-only still readable via shared/#", F, "c2", "alice", 'R', "shared/inbox", true},
    {"alice second section merged", F, "c2", "alice", 'P', "alice2/z", true},
    {"user names are exact", F, "c2", "Alice", 'P', "alice/x", false},
    /* $SYS and $share */
    {"alice reads granted $SYS", F, "c2", "alice", 'R', "$SYS/broker/clients/total", true},
    {"alice other $SYS", F, "c2", "alice", 'R', "$SYS/broker/uptime", false},
    {"nobody publishes $SYS", F, "c5", "carol", 'P', "$SYS/x", false},
    {"nobody publishes $SYSfoo (Mosquitto's prefix test)", F, "c5", "carol", 'P', "$SYSx", false},
    {"carol reads $SYS", F, "c5", "carol", 'R', "$SYS/x", true},
    {"# does not reach $SYS", F, "c3", "bob", 'R', "$SYS/broker/uptime", false},
    {"# reaches other $ topics? no", F, "c3", "bob", 'R', "$other/x", false},
    {"no $share publish", F, "c3", "bob", 'P', "$share/g/x", false},
    {"no $share delivery", F, "c3", "bob", 'R', "$share/g/x", false},
    {"dollar pattern", F, "dev1", NULL, 'R', "$SYS/clients/dev1", true},
    {"dollar pattern other id", F, "dev1", NULL, 'R', "$SYS/clients/dev2", false},
    {"%c cannot reach $ via id", F, "$SYS", NULL, 'R', "$SYS/inbox/x", false},
    {"%c pattern normal id", F, "box", NULL, 'R', "box/inbox/x", true},
    /* regex entries */
    {"bob reads all", F, "c3", "bob", 'R', "a/b/c", true},
    {"bob regex deny", F, "c3", "bob", 'R', "sensors/12/raw", false},
    {"bob regex deny beats #", F, "c3", "bob", 'R', "sensors/1/raw", false},
    {"bob regex deny does not overreach", F, "c3", "bob", 'R', "sensors/x/raw", true},
    {"bob regex write", F, "c3", "bob", 'P', "sensors/7/humidity", true},
    {"bob regex write other", F, "c3", "bob", 'P', "sensors/7/pressure", false},
    {"bob regex write denied", F, "c3", "bob", 'P', "sensors/7/raw", false},
    {"bob write-only", F, "c3", "bob", 'P', "bob/out", true},
    {"bob cannot write #", F, "c3", "bob", 'P', "a/b", false},
    /* patterns */
    {"pattern %c read", F, "dev1", NULL, 'R', "devices/dev1/temp", true},
    {"pattern %c write", F, "dev1", NULL, 'P', "devices/dev1/out", true},
    {"pattern %c no write elsewhere", F, "dev1", NULL, 'P', "devices/dev1/temp", false},
    {"pattern other id", F, "dev1", NULL, 'R', "devices/dev2/temp", false},
    {"pattern deny", F, "dev1", NULL, 'R', "devices/dev1/locked", false},
    {"section allow beats pattern deny", F, "dev1", "alice", 'R', "devices/dev1/locked", true},
    {"section deny beats pattern allow", F, "shared", "alice", 'R', "shared/private/inbox/x",
     false},
    {"patterns apply to named users", F, "dev1", "bob", 'P', "devices/dev1/out", true},
    {"%u pattern", F, "x", "carol", 'R', "users/carol/a", true},
    {"%u pattern other user", F, "x", "carol", 'R', "users/dave/a", false},
    /* ids that must not be substituted */
    {"id with + never matches", F, "a+b", NULL, 'R', "devices/a+b/x", false},
    {"id with / never matches", F, "x/y", NULL, 'R', "devices/x/y/z", false},
    {"id with / cannot climb", F, "x/y", NULL, 'R', "devices/x/y", false},
    {"id with # never matches", F, "#", NULL, 'R', "devices/q/r", false},
    {"user with / never matches", F, "c", "u/v", 'R', "users/u/v/x", false},
    {"user with + never matches", F, "c", "u+", 'R', "users/u+/x", false},
    {"bad id still uses its section", F, "x/y", NULL, 'R', "public/news", true},
    {"bad id: deny pattern fails closed", F, "x/y", NULL, 'R', "box/inbox/x", false},
    {"bad user: %u deny absent, %c allow kept", F, "box", "u/v", 'R', "box/inbox/x", true},
    /* subscribe */
    {"sub anon public/#", F, "c1", NULL, 'S', "public/#", true},
    {"sub anon #", F, "c1", NULL, 'S', "#", true},
    {"sub anon denied topic", F, "c1", NULL, 'S', "public/secret", false},
    {"sub anon nothing readable", F, "c1", NULL, 'S', "private/#", false},
    {"sub anon regex exact", F, "c1", NULL, 'S', "anon/7", true},
    {"sub anon regex exact miss", F, "c1", NULL, 'S', "anon/x", false},
    {"sub anon regex prefix", F, "c1", NULL, 'S', "anon/+", true},
    {"sub anon regex prefix miss", F, "c1", NULL, 'S', "anon/x/+", false},
    {"sub anon regex parent of #", F, "c1", NULL, 'S', "anon/#", true},
    {"sub alice shared", F, "c2", "alice", 'S', "shared/+", true},
    {"sub alice private", F, "c2", "alice", 'S', "shared/private/#", false},
    {"sub alice private parent", F, "c2", "alice", 'S', "shared/private", false},
    {"sub alice $SYS/#", F, "c2", "alice", 'S', "$SYS/#", true},
    {"sub alice $SYS other", F, "c2", "alice", 'S', "$SYS/broker/+", true},
    {"sub alice $SYS uptime", F, "c2", "alice", 'S', "$SYS/broker/uptime", false},
    {"sub alice write-only", F, "c2", "alice", 'S', "alice2/#", false},
    {"sub bob $SYS/broker", F, "c3", "bob", 'S', "$SYS/broker/#", false},
    {"sub bob $SYS/# through the $SYS pattern", F, "c3", "bob", 'S', "$SYS/#", true},
    {"sub bob raw exact", F, "c3", "bob", 'S', "sensors/5/raw", false},
    {"sub bob raw wildcard (deny regex cannot cover a filter)", F, "c3", "bob", 'S',
     "sensors/+/raw", true},
    {"sub pattern %c", F, "dev1", NULL, 'S', "devices/dev1/#", true},
    {"sub pattern via +", F, "dev1", NULL, 'S', "devices/+/temp", true},
    {"sub pattern denied", F, "dev1", NULL, 'S', "devices/dev1/locked", false},
    {"sub pattern other id", F, "dev1", NULL, 'S', "devices/dev2/#", false},
    {"sub bad id", F, "x/y", NULL, 'S', "devices/#", false},
    {"sub bad id keeps its section", F, "x/y", NULL, 'S', "public/+", true},
    {"sub invalid filter", F, "c3", "bob", 'S', "a/#/b", false},
    {"sub $share must be split first", F, "c3", "bob", 'S', "$share/g/a", false},
    {"publish invalid topic", F, "c3", "bob", 'P', "sensors/+/temp", false},
    /* an empty file denies everything */
    {"empty read", "", "c", NULL, 'R', "a", false},
    {"empty publish", "", "c", "u", 'P', "a", false},
    {"empty subscribe", "", "c", "u", 'S', "#", false},
    /* filter against filter (one read entry, then denies) */
    {"a/b grants a/+", "topic read a/b", "c", NULL, 'S', "a/+", true},
    {"a/# grants #", "topic read a/#", "c", NULL, 'S', "#", true},
    {"a/# grants a", "topic read a/#", "c", NULL, 'S', "a", true},
    {"a grants a/#", "topic read a", "c", NULL, 'S', "a/#", true},
    {"a/b does not grant a/c", "topic read a/b", "c", NULL, 'S', "a/c", false},
    {"a/+/c meets +/b/+", "topic read a/+/c", "c", NULL, 'S', "+/b/+", true},
    {"a/+/c misses +/b/d", "topic read a/+/c", "c", NULL, 'S', "+/b/d", false},
    {"+/+ misses a", "topic read +/+", "c", NULL, 'S', "a", false},
    {"+/# grants a", "topic read +/#", "c", NULL, 'S', "a", true},
    {"a/+ misses a/b/c", "topic read a/+", "c", NULL, 'S', "a/b/c", false},
    {"a/+ misses a", "topic read a/+", "c", NULL, 'S', "a", false},
    {"empty levels", "topic read a//b", "c", NULL, 'S', "a/+/b", true},
    {"trailing slash", "topic read a/", "c", NULL, 'S', "a/+", true},
    {"$SYS/# vs #", "topic read $SYS/#", "c", NULL, 'S', "#", false},
    {"# vs $SYS/x", "topic read #", "c", NULL, 'S', "$SYS/x", false},
    {"+/x vs $SYS/x", "topic read +/x", "c", NULL, 'S', "$SYS/x", false},
    {"$SYS/+ vs $SYS/#", "topic read $SYS/+", "c", NULL, 'S', "$SYS/#", true},
    {"deny covers all", "topic read a/#\ntopic deny a/#", "c", NULL, 'S', "#", false},
    {"deny covers part", "topic read a/#\ntopic deny a/b", "c", NULL, 'S', "a/+", true},
    {"deny a/+ leaves a and a/x/y", "topic read a/#\ntopic deny a/+", "c", NULL, 'S', "a/#", true},
    {"deny a/+ covers a/+", "topic read a/+\ntopic deny a/+", "c", NULL, 'S', "a/#", false},
    {"deny +/b/# covers a/b/c", "topic read a/+/c\ntopic deny +/b/#", "c", NULL, 'S', "a/b/c",
     false},
    {"deny +/b/# leaves a/x/c", "topic read a/+/c\ntopic deny +/b/#", "c", NULL, 'S', "a/+/c",
     true},
    {"deny # covers", "topic read a/b\ntopic deny #", "c", NULL, 'S', "a/b", false},
    {"write-only grants nothing", "topic write a/#", "c", NULL, 'S', "a/#", false},
    {"deny-only grants nothing", "topic deny a/#", "c", NULL, 'S', "a/#", false},
    {"denies are not unioned (documented)", "topic read a/#\ntopic deny a\ntopic deny a/+/#", "c",
     NULL, 'S', "a/#", true},
    {"regex vs wildcard first level", "topic regex read x/[0-9]+", "c", NULL, 'S', "+/1", true},
    {"regex vs wildcard prefix miss", "topic regex read x/[0-9]+", "c", NULL, 'S', "y/+", false},
    {"regex vs $SYS", "topic regex read .*", "c", NULL, 'S', "$SYS/#", false},
    {"regex .* reads", "topic regex read .*", "c", NULL, 'R', "a/b", true},
    {"regex .* not $", "topic regex read .*", "c", NULL, 'R', "$SYS/a", false},
    {"dollar regex reads $", "topic regex read \\$SYS/.*", "c", NULL, 'R', "$SYS/a", true},
    {"dollar regex ^", "topic regex read ^\\$SYS/.*", "c", NULL, 'R', "$SYS/a", true},
    {"dollar regex grants $SYS/#", "topic regex read \\$SYS/.*", "c", NULL, 'S', "$SYS/#", true},
    {"dollar regex does not grant #", "topic regex read \\$SYS/.*", "c", NULL, 'S', "#", false},
    {"regex deny exact", "topic read #\ntopic regex deny a/.*", "c", NULL, 'S', "a/b", false},
    {"regex utf-8", "topic regex read caf\xc3\xa9/.", "c", NULL, 'R', "caf\xc3\xa9/\xc3\xa9", true},
    /* (a+)+[bc] against a...d backtracks exponentially: the match limit stops it */
    {"regex match limit fails closed", "topic read #\ntopic regex deny (a+)+[bc]", "c", NULL, 'R',
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaad", false},
    {"regex match limit grants nothing", "topic regex read (a+)+[bc]", "c", NULL, 'R',
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaad", false},
    {"regex below the limit still denies", "topic read #\ntopic regex deny (a+)+[bc]", "c", NULL,
     'R', "aab", false},
    {"regex below the limit still allows", "topic read #\ntopic regex deny (a+)+[bc]", "c", NULL,
     'R', "aad", true},
    {"regex case sensitive", "topic regex read abc", "c", NULL, 'R', "ABC", false},
    {"regex inline flag", "topic regex read (?i)abc", "c", NULL, 'R', "ABC", true},
    {"regex alternation anchored", "topic regex read a|b", "c", NULL, 'R', "ab", false},
    {"regex alternation whole", "topic regex read a|b", "c", NULL, 'R', "b", true},
    {"regex does not see %c", "topic regex read x/%c", "c", NULL, 'R', "x/c", false},
    /* substitution details */
    {"%c inside a level", "pattern read dev-%c/x", "7", NULL, 'R', "dev-7/x", true},
    {"%c twice", "pattern read %c/%c", "q", NULL, 'R', "q/q", true},
    {"%% then c", "pattern read a/%%c", "q", NULL, 'R', "a/%q", true},
    {"%x is literal", "pattern read a/%x", "q", NULL, 'R', "a/%x", true},
    {"trailing %", "pattern read a/%", "q", NULL, 'R', "a/%", true},
    {"%u and %c", "pattern read %u/%c", "id", "me", 'R', "me/id", true},
    {"pattern without substitution", "pattern read common/#", "id", NULL, 'R', "common/x", true},
    {"fail closed reaches plain patterns", "pattern read common/#\npattern deny x/%c", "a/b", NULL,
     'R', "common/x", false},
    {"fail closed subscribe", "pattern read common/#\npattern deny x/%c", "a/b", NULL, 'S',
     "common/#", false},
    {"deny %u skipped without user", "pattern read common/#\npattern deny x/%u", "id", NULL, 'R',
     "common/x", true},
};

static bool run(const struct acl *a, const struct check_case *c)
{
    size_t n = strlen(c->topic);
    switch (c->op) {
    case 'P':
        return acl_can_publish(a, c->id, c->user, c->topic, n);
    case 'R':
        return acl_can_read(a, c->id, c->user, c->topic, n);
    default:
        return acl_can_subscribe(a, c->id, c->user, c->topic, n);
    }
}

static void test_checks(void)
{
    struct acl *fx = NULL;
    char err[256];
    if (acl_load_buffer(&fx, "fixture", fixture, strlen(fixture), err, sizeof(err)) != 0) {
        check(false, "fixture loads", err);
        return;
    }
    for (size_t i = 0; i < sizeof(check_cases) / sizeof(check_cases[0]); i++) {
        const struct check_case *c = &check_cases[i];
        struct acl *a = fx;
        if (c->acl != fixture &&
            acl_load_buffer(&a, "case", c->acl, strlen(c->acl), err, sizeof(err)) != 0) {
            fprintf(stderr, "  %s\n", err);
            check(false, "check (acl loads)", c->name);
            continue;
        }
        check(run(a, c) == c->expected, "check", c->name);
        if (a != fx)
            acl_free(a);
    }
    acl_free(fx);
}

/* A long filter and a long entry exercise the heap path of the scratch buffers. */
static void test_long(void)
{
    size_t n = 3001; /* x/x/.../x */
    char *topic = malloc(n + 1), *text = malloc(n + 32);
    for (size_t i = 0; i < n; i++)
        topic[i] = i % 2 ? '/' : 'x';
    topic[n] = '\0';
    snprintf(text, n + 32, "topic read %s\npattern read %%c/%s", topic, topic);
    struct acl *a = NULL;
    char err[256];
    check(acl_load_buffer(&a, "long", text, strlen(text), err, sizeof(err)) == 0, "long", "loads");
    check(a && acl_can_subscribe(a, "c", NULL, topic, n), "long", "subscribe");
    topic[n - 1] = '#';
    check(a && acl_can_subscribe(a, "c", NULL, topic, n), "long", "subscribe #");
    check(a && !acl_can_read(a, "c", NULL, "c/x", 3), "long", "pattern");
    acl_free(a);
    /* a long client id substituted into a pattern */
    char id[400], t[420];
    memset(id, 'i', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    snprintf(t, sizeof(t), "d/%s/x", id);
    const char *p = "pattern read d/%c/#";
    a = NULL;
    check(acl_load_buffer(&a, "long", p, strlen(p), err, sizeof(err)) == 0 &&
              acl_can_read(a, id, NULL, t, strlen(t)) &&
              acl_can_subscribe(a, id, NULL, t, strlen(t)),
          "long", "long client id");
    acl_free(a);
    free(topic);
    free(text);
}

int main(void)
{
    test_parse();
    test_checks();
    test_long();
    return unit_finish();
}

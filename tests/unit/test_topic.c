/* Unit tests for core/topic.c: name and filter validation, "$share/G/F" parsing and one-pair
 * matching, as tables of {name, input, expected}. Exits non-zero on any failure. */
#include "topic.h"

#include <string.h>

#include "unit.h"
#include "util/err.h"

struct valid_case {
    const char *name;
    const char *in;
    size_t len; /* 0: strlen(in) */
    int expected;
};

static const struct valid_case name_cases[] = {
    {"simple", "a", 0, 0},
    {"levels", "a/b/c", 0, 0},
    {"leading slash", "/a", 0, 0},
    {"trailing slash", "a/", 0, 0},
    {"only slash", "/", 0, 0},
    {"empty levels", "a//b", 0, 0},
    {"dollar", "$SYS/broker/uptime", 0, 0},
    {"space", "a b/c d", 0, 0},
    {"utf8", "caf\xc3\xa9/x", 0, 0},
    {"[MQTT-4.7.3-1] empty", "", 0, TIDE_ETOPIC},
    {"[MQTT-3.3.2-2] plus", "a/+", 0, TIDE_ETOPIC},
    {"[MQTT-3.3.2-2] hash", "a/#", 0, TIDE_ETOPIC},
    {"[MQTT-3.3.2-2] plus in level", "a+b", 0, TIDE_ETOPIC},
    {"[MQTT-3.3.2-2] hash in level", "a#", 0, TIDE_ETOPIC},
    {"[MQTT-4.7.3-2] NUL", "a\0b", 3, TIDE_ETOPIC},
};

static const struct valid_case filter_cases[] = {
    {"simple", "a", 0, 0},
    {"levels", "a/b/c", 0, 0},
    {"hash alone", "#", 0, 0},
    {"plus alone", "+", 0, 0},
    {"plus plus", "+/+", 0, 0},
    {"slash hash", "/#", 0, 0},
    {"a hash", "a/#", 0, 0},
    {"plus middle", "a/+/b", 0, 0},
    {"plus hash", "+/#", 0, 0},
    {"empty levels", "a//b", 0, 0},
    {"only slash", "/", 0, 0},
    {"leading plus empty", "+/", 0, 0},
    {"dollar", "$SYS/#", 0, 0},
    {"share without slash is plain", "$share", 0, 0},
    {"shared must be split first", "$share/g/a", 0, TIDE_ETOPIC},
    {"share prefix only", "$share/", 0, TIDE_ETOPIC},
    {"[MQTT-4.7.3-1] empty", "", 0, TIDE_ETOPIC},
    {"[MQTT-4.7.1-2] hash not last", "#/a", 0, TIDE_ETOPIC},
    {"[MQTT-4.7.1-2] hash in level", "a#", 0, TIDE_ETOPIC},
    {"[MQTT-4.7.1-2] hash after text", "a/b#", 0, TIDE_ETOPIC},
    {"[MQTT-4.7.1-2] double hash", "a/##", 0, TIDE_ETOPIC},
    {"[MQTT-4.7.1-2] hash hash", "#/#", 0, TIDE_ETOPIC},
    {"[MQTT-4.7.1-3] plus in level", "a+", 0, TIDE_ETOPIC},
    {"[MQTT-4.7.1-3] plus before text", "a/+b", 0, TIDE_ETOPIC},
    {"[MQTT-4.7.1-3] double plus", "++", 0, TIDE_ETOPIC},
    {"[MQTT-4.7.3-2] NUL", "a/\0", 3, TIDE_ETOPIC},
};

struct shared_case {
    const char *name;
    const char *in;
    int expected;
    const char *group;
    const char *filter;
};

static const struct shared_case shared_cases[] = {
    {"ordinary", "a/b", 0, NULL, NULL},
    {"no slash after share", "$share", 0, NULL, NULL},
    {"other dollar", "$SYS/#", 0, NULL, NULL},
    {"prefix case matters", "$SHARE/g/a", 0, NULL, NULL},
    {"simple", "$share/g/a/b", 1, "g", "a/b"},
    {"wildcard filter", "$share/grp/+/x/#", 1, "grp", "+/x/#"},
    {"hash filter", "$share/g/#", 1, "g", "#"},
    {"slash filter", "$share/g//", 1, "g", "/"},
    {"dollar filter", "$share/g/$SYS/x", 1, "g", "$SYS/x"},
    {"[MQTT-4.8.2-1] empty group", "$share//a", TIDE_ETOPIC, NULL, NULL},
    {"[MQTT-4.8.2-1] nothing", "$share/", TIDE_ETOPIC, NULL, NULL},
    {"no filter", "$share/g", TIDE_ETOPIC, NULL, NULL},
    {"empty filter", "$share/g/", TIDE_ETOPIC, NULL, NULL},
    {"[MQTT-4.8.2-2] plus group", "$share/g+/a", TIDE_ETOPIC, NULL, NULL},
    {"[MQTT-4.8.2-2] hash group", "$share/#/a", TIDE_ETOPIC, NULL, NULL},
    {"bad filter", "$share/g/a#", TIDE_ETOPIC, NULL, NULL},
    {"bad filter hash not last", "$share/g/#/a", TIDE_ETOPIC, NULL, NULL},
    {"nested share", "$share/g/$share/h/a", TIDE_ETOPIC, NULL, NULL},
};

struct match_case {
    const char *filter;
    const char *topic;
    bool expected;
};

static const struct match_case match_cases[] = {
    {"a", "a", true},
    {"a", "b", false},
    {"a", "ab", false},
    {"ab", "a", false},
    {"a/b", "a/b", true},
    {"a/b", "a", false},
    {"a", "a/b", false},
    {"a/b", "a/b/c", false},
    {"#", "a", true},
    {"#", "a/b/c", true},
    {"#", "/", true},
    {"#", "/a", true},
    {"#", "a//b", true},
    {"a/#", "a", true}, /* §4.7.1.2: the parent level matches too */
    {"a/#", "a/b", true},
    {"a/#", "a/b/c", true},
    {"a/#", "a/", true},
    {"a/#", "ab", false},
    {"a/#", "b/a", false},
    {"a/b/#", "a", false},
    {"+", "a", true},
    {"+", "a/b", false},
    {"+", "/", false},
    {"+", "", true},
    {"+/+", "a/b", true},
    {"+/+", "/", true},
    {"+/+", "/a", true},
    {"+/+", "a/", true},
    {"+/+", "a", false},
    {"+/+", "a/b/c", false},
    {"/+", "/a", true},
    {"/+", "/", true},
    {"/+", "a/b", false},
    {"+/b", "a/b", true},
    {"+/b", "/b", true},
    {"a/+", "a/", true},
    {"a/+", "a", false},
    {"a/+/c", "a/b/c", true},
    {"a/+/c", "a//c", true},
    {"a/+/c", "a/b/d", false},
    {"+/#", "a", true},
    {"+/#", "a/b/c", true},
    {"+/#", "/", true},
    {"/#", "/", true},
    {"/#", "/a/b", true},
    {"/#", "a", false},
    {"/#", "", true}, /* "" is one empty level, the parent of "/#" */
    {"a//b", "a//b", true},
    {"a//b", "a/b", false},
    {"a/+/b", "a//b", true},
    {"/a", "/a", true},
    {"/a", "a", false},
    {"a/", "a/", true},
    {"a/", "a", false},
    {"/", "/", true},
    {"/", "", false},
    {"+/+/+", "a/b/c", true},
    {"+/+/+", "a/b", false},
    /* [MQTT-4.7.2-1] '$' names are not matched by a leading wildcard */
    {"#", "$SYS", false},
    {"#", "$SYS/broker", false},
    {"+", "$SYS", false},
    {"+/broker", "$SYS/broker", false},
    {"+/#", "$SYS/broker", false},
    {"$SYS/#", "$SYS/broker", true},
    {"$SYS/#", "$SYS", true},
    {"$SYS/+", "$SYS/broker", true},
    {"$SYS/broker", "$SYS/broker", true},
    {"$SYS", "$SYS", true},
    {"a/#", "a/$b", true},
    {"a/+", "a/$b", true},
    {"$", "$", true},
    {"+", "$", false},
    {"x/$SYS", "x/$SYS", true},
};

struct levels_case {
    const char *in;
    size_t expected;
};

static const struct levels_case levels_cases[] = {
    {"", 1}, {"a", 1}, {"a/b", 2}, {"/", 2}, {"//", 3}, {"/a/", 3}, {"a/b/c/d", 4},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static size_t len_of(const struct valid_case *c)
{
    return c->len ? c->len : strlen(c->in);
}

int main(void)
{
    for (size_t i = 0; i < N(name_cases); i++) {
        const struct valid_case *c = &name_cases[i];
        CHECK_EQ(topic_validate_name(c->in, len_of(c)), c->expected, "name: %s", c->name);
    }
    for (size_t i = 0; i < N(filter_cases); i++) {
        const struct valid_case *c = &filter_cases[i];
        CHECK_EQ(topic_validate_filter(c->in, len_of(c)), c->expected, "filter: %s", c->name);
    }
    for (size_t i = 0; i < N(shared_cases); i++) {
        const struct shared_case *c = &shared_cases[i];
        const char *g = NULL, *f = NULL;
        size_t gl = 0, fl = 0;
        int rc = topic_parse_shared(c->in, strlen(c->in), &g, &gl, &f, &fl);
        bool ok = rc == c->expected;
        if (ok && rc == 1) {
            ok = gl == strlen(c->group) && memcmp(g, c->group, gl) == 0 &&
                 fl == strlen(c->filter) && memcmp(f, c->filter, fl) == 0;
        }
        CHECK(ok, "shared: %s", c->name);
    }
    for (size_t i = 0; i < N(match_cases); i++) {
        const struct match_case *c = &match_cases[i];
        CHECK_EQ(topic_matches(c->filter, strlen(c->filter), c->topic, strlen(c->topic)),
                 c->expected, "match: '%s' vs '%s'", c->filter, c->topic);
    }
    for (size_t i = 0; i < N(levels_cases); i++) {
        const struct levels_case *c = &levels_cases[i];
        CHECK_EQ(topic_levels(c->in, strlen(c->in)), c->expected, "levels: '%s'", c->in);
    }
    CHECK(topic_has_wildcard("a/+", 3), "wildcard: plus");
    CHECK(topic_has_wildcard("#", 1), "wildcard: hash");
    CHECK(!topic_has_wildcard("a/b", 3), "wildcard: none");
    /* [MQTT-4.7.3-3] at most 65535 bytes */
    static char big[65537];
    memset(big, 'a', sizeof big);
    CHECK_EQ(topic_validate_name(big, 65535), 0, "name: 65535 bytes");
    CHECK_EQ(topic_validate_name(big, 65536), TIDE_ETOPIC, "name: 65536 bytes");
    CHECK_EQ(topic_validate_filter(big, 65536), TIDE_ETOPIC, "filter: 65536 bytes");

    return unit_finish();
}

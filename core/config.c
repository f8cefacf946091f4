/* Reads mosquitto.conf-format files into struct config: splits lines, drops comments, finds each
 * directive in the table (config_directives.c) and runs its handler; follows include_dir. Reads
 * only the files it is given and include_dir's *.conf files; never logs: errors come back as
 * "file:line: why" and warnings are collected in config.warnings. */
#include "config.h"

#include "config_internal.h"
#include "util/alloc.h"
#include "util/err.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_FILE_SIZE (16u * 1024 * 1024)

/* ---- messages ---- */

int config_fail(struct config_pstate *st, const char *fmt, ...)
{
    va_list ap;
    int n = 0;

    if (st->err && st->errlen) {
        n = snprintf(st->err, st->errlen, "%s:%d: ", st->file, st->line);
        if (n >= 0 && (size_t)n < st->errlen) {
            va_start(ap, fmt);
            vsnprintf(st->err + n, st->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return TIDE_EINVAL;
}

int config_bad(struct config_pstate *st, const char *form, const char *v)
{
    if (!*v)
        return config_fail(st, "%s: expected %s, got nothing", st->name, form);
    return config_fail(st, "%s: expected %s, got '%.100s'", st->name, form, v);
}

void config_warn(struct config_pstate *st, const char *fmt, ...)
{
    struct config *c = st->c;
    char text[512];
    int n;
    va_list ap;

    n = snprintf(text, sizeof(text), "%s:%d: ", st->file, st->line);
    if (n < 0 || (size_t)n >= sizeof(text))
        n = 0;
    va_start(ap, fmt);
    vsnprintf(text + n, sizeof(text) - (size_t)n, fmt, ap);
    va_end(ap);
    c->warnings = xrealloc(c->warnings, (c->warning_count + 1) * sizeof(*c->warnings));
    c->warnings[c->warning_count++] = xstrdup(text);
}

/* ---- tokens ---- */

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Cuts the first token off *v (NUL-terminating it) and advances *v past the spaces after it.
 * Returns NULL at the end of the line or at a `#` comment after the values. */
char *config_next_tok(char **v)
{
    char *p = *v, *t;

    while (is_space(*p))
        p++;
    if (!*p || *p == '#') {
        *v = p;
        return NULL;
    }
    t = p;
    while (*p && !is_space(*p))
        p++;
    if (*p)
        *p++ = '\0';
    while (is_space(*p))
        p++;
    *v = p;
    return t;
}

/* The single token of a one-value directive; NULL (after writing the error) when there is
 * none or more than one. Text after `#` is a comment, as Mosquitto's strtok reading ignores it. */
char *config_one_tok(struct config_pstate *st, char *v, const char *form)
{
    char *t = config_next_tok(&v);

    if (!t || (*v && *v != '#')) {
        config_bad(st, form, st->raw);
        return NULL;
    }
    return t;
}

/* ---- reading ---- */

static int parse_line(struct config_pstate *st, char *line)
{
    const struct config_directive *d;
    char *p = line, *end = line + strlen(line), *v, *raw;
    int rc;

    /* Mosquitto: a comment is a line whose very first character is '#' */
    if (*p == '#')
        return 0;
    while (end > p && (is_space(end[-1]) || end[-1] == '\r'))
        *--end = '\0';
    while (is_space(*p))
        p++;
    if (!*p)
        return 0;
    if (*p == '#')
        return config_fail(st, "a comment must start at the beginning of the line (Mosquitto reads "
                               "'#' only there)");
    v = p;
    while (*v && !is_space(*v))
        v++;
    if (*v)
        *v++ = '\0';
    while (is_space(*v))
        v++;
    st->name = p;
    st->raw = v;
    d = config_lookup(p);
    if (!d)
        return config_fail(st, "unknown directive '%.100s'", p);
    switch (d->kind) {
    case K_IGNORE:
        config_warn(st, "Mosquitto directive '%s' has no meaning in tidemq and is ignored (%s)", p,
                    d->text);
        return 0;
    case K_REFUSE:
        return config_fail(st, "Mosquitto directive '%.100s' is not supported by tidemq", p);
    default:
        /* handlers cut tokens in place; messages quote the value as written */
        raw = xstrdup(v);
        st->raw = raw;
        rc = d->fn(st, d, v);
        st->raw = NULL;
        free(raw);
        return rc;
    }
}

static int parse_text(struct config *c, const char *file, const char *text, size_t len, int level,
                      char *err, size_t errlen)
{
    struct config_pstate st = {c, file, 0, level, -1, -1, NULL, NULL, err, errlen};
    char *buf = xmalloc(len + 1), *p = buf, *stop = buf + len;
    int rc = 0;

    memcpy(buf, text, len);
    buf[len] = '\0';
    while (p < stop && rc == 0) {
        char *nl = memchr(p, '\n', (size_t)(stop - p));
        char *eol = nl ? nl : stop;

        st.line++;
        *eol = '\0';
        if (memchr(p, '\0', (size_t)(eol - p)))
            rc = config_fail(&st, "NUL byte in the line");
        else
            rc = parse_line(&st, p);
        p = eol + 1;
    }
    free(buf);
    return rc;
}

static int read_file(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    size_t len = 0, cap = 4096, n;
    char *buf;

    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return TIDE_EIO;
    }
    buf = xmalloc(cap);
    while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            if (cap >= MAX_FILE_SIZE) {
                snprintf(err, errlen, "%s: larger than %u bytes", path, MAX_FILE_SIZE);
                free(buf);
                fclose(f);
                return TIDE_EINVAL;
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        free(buf);
        fclose(f);
        return TIDE_EIO;
    }
    fclose(f);
    *out = buf;
    *outlen = len;
    return 0;
}

static int load_path(struct config *c, const char *path, int level, char *err, size_t errlen)
{
    char *text;
    size_t len;
    int rc = read_file(path, &text, &len, err, errlen);

    if (rc)
        return rc == TIDE_EIO ? TIDE_EINVAL : rc;
    rc = parse_text(c, path, text, len, level, err, errlen);
    free(text);
    return rc;
}

/* Mosquitto's include_dir order: case-sensitive alphabetical, with each upper-case letter just
 * before its lower case (00.conf 01.conf A.conf a.conf B.conf b.conf). */
static int name_key(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return (ch - 'A' + 'a') * 2;
    if (ch >= 'a' && ch <= 'z')
        return ch * 2 + 1;
    return ch * 2;
}

static int name_cmp(const void *a, const void *b)
{
    const unsigned char *x = *(const unsigned char *const *)a;
    const unsigned char *y = *(const unsigned char *const *)b;

    for (; *x && *y; x++, y++) {
        if (name_key(*x) != name_key(*y))
            return name_key(*x) - name_key(*y);
    }
    return name_key(*x) - name_key(*y);
}

int config_include_dir(struct config_pstate *st, const struct config_directive *d, char *v)
{
    DIR *dir;
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, i;
    int rc = 0;

    (void)d;
    if (!*v)
        return config_bad(st, "a directory", v);
    if (st->level > 0) {
        config_warn(st,
                    "include_dir is read only in the main config file (as in Mosquitto); ignored");
        return 0;
    }
    dir = opendir(v);
    if (!dir)
        return config_fail(st, "include_dir: cannot open '%.200s': %s", v, strerror(errno));
    while ((de = readdir(dir))) {
        size_t len = strlen(de->d_name);
        if (len > 5 && !strcmp(de->d_name + len - 5, ".conf")) {
            names = xrealloc(names, (n + 1) * sizeof(*names));
            names[n++] = xstrdup(de->d_name);
        }
    }
    closedir(dir);
    if (n)
        qsort(names, n, sizeof(*names), name_cmp);
    for (i = 0; i < n && rc == 0; i++) {
        size_t vlen = strlen(v);
        bool slash = vlen && v[vlen - 1] == '/';
        char *path = xmalloc(vlen + strlen(names[i]) + 2);
        struct stat sb;

        sprintf(path, "%s%s%s", v, slash ? "" : "/", names[i]);
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
            rc = load_path(st->c, path, st->level + 1, st->err, st->errlen);
        free(path);
    }
    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

int config_load_buffer(struct config *c, const char *name, const char *text, size_t len, char *err,
                       size_t errlen)
{
    return parse_text(c, name, text, len, 0, err, errlen);
}

int config_load_file(struct config *c, const char *path, char *err, size_t errlen)
{
    if (!c->path)
        c->path = xstrdup(path);
    return load_path(c, path, 0, err, errlen);
}

/* Password and ACL tables of the config's files, reload, and the password-check worker: one
 * thread takes jobs from a queue, runs PBKDF2 and hands results back through an eventfd the
 * loop watches. Jobs carry copies (no pointer into a table a reload may free); a result whose
 * connection closed meanwhile is discarded. Two workers (the machine's cores): a storm of wrong
 * passwords delays other fresh logins less, and never the loop. */
#include "auth.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "acl.h"
#include "broker.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "passwd.h"
#include "util/alloc.h"
#include "util/crypto.h"
#include "util/err.h"

#define AUTH_WORKERS 2

/* One file and its current table. */
struct auth_file {
    const char *path;               /* borrowed from the config */
    const struct config_listener *l; /* NULL: the global setting */
    bool is_acl;
    void *table;                    /* struct passwd * or struct acl * */
};

struct job {
    struct job *next;
    struct conn *c;                 /* NULL once the connection closed */
    struct passwd *pw;              /* for the cache store; checked against the current table */
    struct passwd_check chk;
    char *user;
    size_t ulen;
    char *pass;
    size_t plen;
    int result;
};

struct auth {
    struct broker *b;
    auth_done_fn done;
    struct auth_file *files;
    size_t count;
    pthread_t threads[AUTH_WORKERS];
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct job *todo, *todo_tail; /* guarded by lock */
    struct job *finished;         /* guarded by lock */
    bool stop;
    int efd;
    struct event *ev;
};

static int load(struct auth_file *f, void **out)
{
    char err[512];
    int rc = f->is_acl ? acl_load_file((struct acl **)out, f->path, err, sizeof err)
                       : passwd_load_file((struct passwd **)out, f->path, err, sizeof err);
    if (rc < 0)
        log_error("auth", "%s", err);
    return rc;
}

static void free_table(struct auth_file *f)
{
    if (f->is_acl)
        acl_free(f->table);
    else
        passwd_free(f->table);
    f->table = NULL;
}

static void add_file(struct auth *a, const char *path, const struct config_listener *l, bool acl)
{
    if (!path)
        return;
    a->files = xrealloc(a->files, (a->count + 1) * sizeof *a->files);
    a->files[a->count++] = (struct auth_file){path, l, acl, NULL};
}

static void free_job(struct job *j)
{
    crypto_wipe(j->pass, j->plen);
    free(j->pass);
    free(j->user);
    free(j);
}

static void *worker(void *arg)
{
    struct auth *a = arg;
    pthread_mutex_lock(&a->lock);
    for (;;) {
        while (!a->todo && !a->stop)
            pthread_cond_wait(&a->wake, &a->lock);
        if (a->stop)
            break;
        struct job *j = a->todo;
        a->todo = j->next;
        if (!a->todo)
            a->todo_tail = NULL;
        bool wanted = j->c != NULL; /* a check whose connection is gone is not worth running */
        pthread_mutex_unlock(&a->lock);
        j->result = wanted ? passwd_check_run(&j->chk, j->pass, j->plen) : TIDE_EBADAUTH;
        pthread_mutex_lock(&a->lock);
        j->next = a->finished;
        a->finished = j;
        uint64_t one = 1;
        if (write(a->efd, &one, sizeof one) < 0) {
            /* the counter cannot overflow in practice; the loop drains every result anyway */
        }
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

static void on_results(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct auth *a = arg;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0) {
        /* EAGAIN: another wake-up already took the count */
    }
    pthread_mutex_lock(&a->lock);
    struct job *done = a->finished;
    a->finished = NULL;
    pthread_mutex_unlock(&a->lock);
    while (done) {
        struct job *j = done;
        done = j->next;
        if (j->c) {
            struct conn *c = j->c;
            c->auth_job = NULL;
            bool ok = j->result == 0;
            /* cache only into the table the job was prepared from, if it is still current */
            if (ok && j->pw == auth_passwd(a->b, c->lcfg))
                passwd_cache_store(j->pw, &j->chk, j->user, j->ulen, j->pass, j->plen);
            a->done(c, ok);
        }
        free_job(j);
    }
}

int auth_open(struct broker *b, auth_done_fn done)
{
    const struct config *cfg = b->cfg;
    struct auth *a = xcalloc(1, sizeof *a);
    a->b = b;
    a->done = done;
    a->efd = -1;
    add_file(a, cfg->password_file, NULL, false);
    add_file(a, cfg->acl_file, NULL, true);
    for (size_t i = 0; i < cfg->listener_count; i++) {
        add_file(a, cfg->listeners[i].password_file, &cfg->listeners[i], false);
        add_file(a, cfg->listeners[i].acl_file, &cfg->listeners[i], true);
    }
    b->auth = a;
    for (size_t i = 0; i < a->count; i++) {
        int rc = load(&a->files[i], &a->files[i].table);
        if (rc < 0)
            return rc;
    }
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->wake, NULL);
    a->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (a->efd < 0)
        panic("cannot create the password workers' eventfd");
    for (int i = 0; i < AUTH_WORKERS; i++)
        if (pthread_create(&a->threads[i], NULL, worker, a) != 0)
            panic("cannot start a password worker");
    a->ev = event_new(b->base, a->efd, EV_READ | EV_PERSIST, on_results, a);
    event_add(a->ev, NULL);
    return 0;
}

void auth_close(struct broker *b)
{
    struct auth *a = b->auth;
    if (!a)
        return;
    if (a->ev) {
        pthread_mutex_lock(&a->lock);
        a->stop = true;
        pthread_cond_broadcast(&a->wake);
        pthread_mutex_unlock(&a->lock);
        for (int i = 0; i < AUTH_WORKERS; i++)
            pthread_join(a->threads[i], NULL);
        event_free(a->ev);
        close(a->efd);
        for (struct job *j = a->todo, *n; j; j = n) {
            n = j->next;
            free_job(j);
        }
        for (struct job *j = a->finished, *n; j; j = n) {
            n = j->next;
            free_job(j);
        }
        pthread_mutex_destroy(&a->lock);
        pthread_cond_destroy(&a->wake);
    }
    for (size_t i = 0; i < a->count; i++)
        free_table(&a->files[i]);
    free(a->files);
    free(a);
    b->auth = NULL;
}

int auth_reload(struct broker *b)
{
    struct auth *a = b->auth;
    int failed = 0;
    for (size_t i = 0; a && i < a->count; i++) {
        void *fresh = NULL;
        if (load(&a->files[i], &fresh) < 0) {
            log_warn("auth", "keeping the previous %s", a->files[i].path);
            failed++;
            continue;
        }
        /* jobs in flight hold copies; a cache store into the old table is skipped (see above) */
        free_table(&a->files[i]);
        a->files[i].table = fresh;
        log_notice("auth", "reloaded %s", a->files[i].path);
    }
    return failed;
}

static void *find(const struct broker *b, const struct config_listener *l, bool acl)
{
    const struct auth *a = b->auth;
    if (!a)
        return NULL;
    const struct config_listener *scope = b->cfg->per_listener_settings ? l : NULL;
    for (size_t i = 0; i < a->count; i++)
        if (a->files[i].is_acl == acl && a->files[i].l == scope)
            return a->files[i].table;
    return NULL;
}

struct passwd *auth_passwd(const struct broker *b, const struct config_listener *l)
{
    return find(b, l, false);
}

const struct acl *auth_acl(const struct broker *b, const struct config_listener *l)
{
    return find(b, l, true);
}

int auth_check_password(struct broker *b, struct conn *c, struct passwd *pw, const char *user,
                        size_t ulen, const char *pass, size_t plen)
{
    struct auth *a = b->auth;
    int rc = passwd_cache_lookup(pw, user, ulen, pass, plen);
    if (rc != TIDE_ENOTFOUND)
        return rc;
    struct job *j = xcalloc(1, sizeof *j);
    j->c = c;
    j->pw = pw;
    passwd_check_prepare(pw, user, ulen, &j->chk);
    j->user = xmemdup(user, ulen);
    j->ulen = ulen;
    j->pass = xmemdup(pass, plen);
    j->plen = plen;
    c->auth_job = j;
    pthread_mutex_lock(&a->lock);
    if (a->todo_tail)
        a->todo_tail->next = j;
    else
        a->todo = j;
    a->todo_tail = j;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->lock);
    return TIDE_EPARTIAL;
}

void auth_cancel(struct broker *b, struct conn *c)
{
    struct auth *a = b->auth;
    if (!a || !c->auth_job)
        return;
    /* the job stays queued or running; it is freed when its result comes back */
    pthread_mutex_lock(&a->lock);
    ((struct job *)c->auth_job)->c = NULL;
    pthread_mutex_unlock(&a->lock);
    c->auth_job = NULL;
}

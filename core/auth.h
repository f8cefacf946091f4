/* Who may connect and what they may touch: the password tables and ACLs named by the config
 * (global, or per listener with per_listener_settings), their reload on SIGHUP (a file that fails
 * to load keeps the previous table and says file:line), and password checks on a worker thread so
 * a storm of wrong passwords never stalls the loop. Loop thread, except the worker inside. */
#ifndef TIDE_AUTH_H
#define TIDE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct acl;
struct broker;
struct config_listener;
struct conn;
struct passwd;

/* Called on the loop thread when the check started by auth_check_password finishes: ok tells
 * whether the password matched. c is never a freed connection (a closed one is skipped). */
typedef void (*auth_done_fn)(struct conn *c, bool ok);

struct auth;

/* Loads every password and ACL file the config names and starts the worker. Returns 0, or
 * TIDE_EINVAL / TIDE_EIO after logging the file:line that failed (the broker must not start). */
int auth_open(struct broker *b, auth_done_fn done);
void auth_close(struct broker *b);

/* Reloads the files (SIGHUP); a file that fails keeps its previous table. Returns the number of
 * files that failed. */
int auth_reload(struct broker *b);

/* The tables that apply to listener l (NULL: none configured). Valid until the next reload. */
struct passwd *auth_passwd(const struct broker *b, const struct config_listener *l);
const struct acl *auth_acl(const struct broker *b, const struct config_listener *l);

/* Checks user/pass for c against pw. Answers at once from the table's cache when it can
 * (returns 0 for a match or TIDE_EBADAUTH); otherwise returns TIDE_EPARTIAL and calls the done
 * function later with the outcome. Copies user and pass. */
int auth_check_password(struct broker *b, struct conn *c, struct passwd *pw, const char *user,
                        size_t ulen, const char *pass, size_t plen);

/* Forgets c's pending check, if any (c is closing): its outcome will be discarded. */
void auth_cancel(struct broker *b, struct conn *c);

#endif

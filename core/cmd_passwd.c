/* `tidemq passwd`: creates and updates password files in mosquitto_passwd format, with
 * mosquitto_passwd's flags, messages and exit codes, but writing `$7$` hashes at
 * PASSWD_DEFAULT_ITERATIONS and replacing the file atomically (temporary file + rename, keeping
 * the file's mode and owner; 0600 for a new file). Never prints a password or a hash. */
#include "cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "passwd.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/crypto.h"

#define PASSWORD_MAX 65535

struct opts {
    bool batch, create, del, update_file;
    uint32_t iterations;
    const char *file, *user, *password;
};

static struct termios saved_tty;
static volatile sig_atomic_t tty_changed;

static void usage(void)
{
    printf(
        "tidemq passwd is a tool for managing password files for tidemq and mosquitto.\n\n"
        "Usage: tidemq passwd [-H sha512-pbkdf2] [-I iterations] [-c | -D] passwordfile username\n"
        "       tidemq passwd [-H sha512-pbkdf2] [-I iterations] [-c] -b passwordfile username "
        "password\n"
        "       tidemq passwd [-I iterations] -U passwordfile\n"
        " -b : run in batch mode to allow passing passwords on the command line.\n"
        " -c : create a new password file. This will overwrite existing files.\n"
        " -D : delete the username rather than adding/updating its password.\n"
        " -H : specify the hashing algorithm. Only sha512-pbkdf2 ($7$) is written.\n"
        " -I : PBKDF2 iterations for new hashes (default %u; mosquitto_passwd uses 101).\n"
        " -U : update a plain text password file to use hashed passwords.\n"
        "      Entries that already hold a $6$ or $7$ hash are left as they are.\n",
        PASSWD_DEFAULT_ITERATIONS);
}

static bool username_ok(const char *u)
{
    size_t n = strlen(u);
    if (n > PASSWD_USER_MAX) {
        fprintf(stderr, "Error: Username must be less than 65536 characters long.\n");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)u[i] < 0x20 || u[i] == 0x7f) {
            fprintf(stderr, "Error: Username must not contain control characters.\n");
            return false;
        }
    }
    if (strchr(u, ':')) {
        fprintf(stderr, "Error: Username must not contain the ':' character.\n");
        return false;
    }
    return true;
}

/* Parses argv as mosquitto_passwd does. Returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, struct opts *o)
{
    int i = 1;
    o->iterations = PASSWD_DEFAULT_ITERATIONS;
    if (argc == 1) {
        usage();
        return 1;
    }
    for (; i < argc; i++) {
        if (strcmp(argv[i], "-H") == 0) {
            if (i + 1 == argc) {
                fprintf(stderr, "Error: -H argument given but not enough other arguments.\n");
                return 1;
            }
            i++;
            if (strcmp(argv[i], "sha512") == 0) {
                fprintf(stderr, "Error: tidemq passwd writes only sha512-pbkdf2 hashes; "
                                "-H sha512 is not supported.\n");
                return 1;
            }
            if (strcmp(argv[i], "sha512-pbkdf2") != 0) {
                fprintf(stderr, "Error: Unknown hash type '%s'\n", argv[i]);
                return 1;
            }
        } else if (strcmp(argv[i], "-b") == 0) {
            o->batch = true;
        } else if (strcmp(argv[i], "-c") == 0) {
            o->create = true;
        } else if (strcmp(argv[i], "-D") == 0) {
            o->del = true;
        } else if (strcmp(argv[i], "-I") == 0) {
            if (i + 1 == argc) {
                fprintf(stderr, "Error: -I argument given but not enough other arguments.\n");
                return 1;
            }
            char *end;
            errno = 0;
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (argv[i][0] < '0' || argv[i][0] > '9' || *end || errno || v < 1) {
                fprintf(stderr, "Error: Number of iterations must be > 0.\n");
                return 1;
            }
            if (v > PASSWD_MAX_ITERATIONS) {
                fprintf(stderr, "Error: Number of iterations must be <= %u.\n",
                        PASSWD_MAX_ITERATIONS);
                return 1;
            }
            o->iterations = (uint32_t)v;
        } else if (strcmp(argv[i], "-U") == 0) {
            o->update_file = true;
        } else {
            break;
        }
    }
    if (o->create && o->del) {
        fprintf(stderr, "Error: -c and -D cannot be used together.\n");
        return 1;
    }
    if (o->create && o->update_file) {
        fprintf(stderr, "Error: -c and -U cannot be used together.\n");
        return 1;
    }
    if (o->del && o->update_file) {
        fprintf(stderr, "Error: -D and -U cannot be used together.\n");
        return 1;
    }
    if (o->del && o->batch) {
        fprintf(stderr, "Error: -b and -D cannot be used together.\n");
        return 1;
    }
    int left = argc - i;
    if (o->create) {
        if (left < (o->batch ? 3 : 2)) {
            fprintf(stderr, o->batch ? "Error: -c argument given but password file, username, or "
                                       "password missing.\n"
                                     : "Error: -c argument given but password file or username "
                                       "missing.\n");
            return 1;
        }
    } else if (o->del) {
        if (left < 2) {
            fprintf(stderr, "Error: -D argument given but password file or username missing.\n");
            return 1;
        }
    } else if (o->update_file) {
        if (left != 1) {
            fprintf(stderr, "Error: -U argument given but password file missing.\n");
            return 1;
        }
    } else if (left != (o->batch ? 3 : 2)) {
        usage();
        return 1;
    }
    o->file = argv[i];
    o->user = left > 1 ? argv[i + 1] : NULL;
    o->password = o->batch && left > 2 ? argv[i + 2] : NULL;
    if (o->user && !username_ok(o->user))
        return 1;
    if (o->password && strlen(o->password) > PASSWORD_MAX) {
        fprintf(stderr, "Error: Password must be less than 65536 characters long.\n");
        return 1;
    }
    return -1;
}

static void on_signal(int sig)
{
    (void)sig;
    if (tty_changed)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
    _exit(1);
}

/* Reads one line from stdin without echo when it is a terminal. Returns 0, 1 for an empty or
 * missing line, 3 for one that is too long. */
static int read_secret(const char *prompt, char *out, size_t cap)
{
    printf("%s", prompt);
    fflush(stdout);
    if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_tty) == 0) {
        struct termios quiet = saved_tty;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tty_changed = 1;
        tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    char *r = fgets(out, (int)cap, stdin);
    if (tty_changed) {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
        tty_changed = 0;
    }
    printf("\n");
    if (!r)
        return 1;
    size_t n = strlen(out);
    if (n > 0 && out[n - 1] != '\n' && !feof(stdin))
        return 3;
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = '\0';
    return n == 0 ? 1 : 0;
}

/* mosquitto_passwd's get_password: prompt twice. Returns 0, 1 (empty), 2 (mismatch). */
static int prompt_password(char *pw, size_t cap)
{
    char *again = xmalloc(cap);
    int rc = read_secret("Password: ", pw, cap);
    if (rc == 0)
        rc = read_secret("Reenter password: ", again, cap);
    if (rc == 1)
        fprintf(stderr, "Error: Empty password.\n");
    else if (rc == 3)
        fprintf(stderr, "Error: Password must be less than 65536 characters long.\n");
    else if (rc == 0 && strcmp(pw, again) != 0) {
        fprintf(stderr, "Error: Passwords do not match.\n");
        rc = 2;
    }
    crypto_wipe(again, cap);
    free(again);
    return rc == 3 ? 1 : rc;
}

/* Appends "user:$7$...\n" to b. Returns 0 or 1 after printing why. */
static int put_entry(struct buf *b, const char *user, size_t ulen, const char *pw, size_t plen,
                     uint32_t iterations)
{
    char hash[PASSWD_HASH_STR_MAX];
    if (passwd_encode_hash(hash, sizeof(hash), pw, plen, iterations) != 0) {
        fprintf(stderr, "Error: Unable to hash password.\n");
        return 1;
    }
    buf_append(b, user, ulen);
    buf_append(b, ":", 1);
    buf_append(b, hash, strlen(hash));
    buf_append(b, "\n", 1);
    crypto_wipe(hash, sizeof(hash));
    return 0;
}

/* Reads the whole file into *data. Returns 0, or the errno. */
static int slurp(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno;
    size_t cap = 4096, n = 0;
    char *p = xmalloc(cap);
    for (;;) {
        if (n == cap)
            p = xrealloc(p, cap *= 2);
        size_t r = fread(p + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    int e = ferror(f) ? EIO : 0;
    fclose(f);
    if (e) {
        free(p);
        return e;
    }
    *data = p;
    *len = n;
    return 0;
}

/* Rebuilds the file's content into out: keeps other lines verbatim, replaces, drops or converts
 * entries as o says. Returns 0, or 1 after printing why. */
static int rewrite(const struct opts *o, const char *data, size_t len, const char *pw,
                   struct buf *out)
{
    size_t pos = 0, ulen = o->user ? strlen(o->user) : 0;
    int lineno = 0;
    bool found = false;
    while (pos < len) {
        const char *line = data + pos, *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        lineno++;
        const char *user, *hash, *why;
        size_t un, hn;
        int rc = passwd_split_line(line, n, &user, &un, &hash, &hn, &why);
        if (rc < 0) {
            fprintf(stderr, "Error: Corrupt password file at line %d.\n", lineno);
            return 1;
        }
        bool match = rc == 1 && o->user && un == ulen && memcmp(user, o->user, un) == 0;
        if (rc == 1 && o->update_file) {
            struct passwd_check chk;
            if (passwd_parse_hash(hash, hn, &chk, NULL) != 0) {
                /* a plain-text password: hash it; entries already hashed stay as they are */
                char *plain = xstrndup(hash, hn);
                int r = put_entry(out, user, un, plain, hn, o->iterations);
                crypto_wipe(plain, hn);
                free(plain);
                if (r)
                    return 1;
                continue;
            }
        }
        if (match) {
            found = true;
            if (!o->del && put_entry(out, user, un, pw, strlen(pw), o->iterations))
                return 1;
            continue;
        }
        buf_append(out, line, n);
        buf_append(out, "\n", 1);
    }
    if (o->del && !found) {
        fprintf(stderr, "Warning: User %s not found in password file.\n", o->user);
        return 1;
    }
    if (!o->del && !o->update_file && !found)
        return put_entry(out, o->user, ulen, pw, strlen(pw), o->iterations);
    return 0;
}

/* Replaces path's content with data[0..len) atomically: a temporary file in the same directory,
 * with the old file's mode and owner (0600 for a new file), fsync, rename, fsync the directory. */
static int write_atomic(const char *path, const char *data, size_t len)
{
    struct stat st;
    bool exists = stat(path, &st) == 0;
    size_t plen = strlen(path);
    char *tmp = xmalloc(plen + 16);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "Error: Unable to open file %s for writing. %s.\n", path, strerror(errno));
        free(tmp);
        return 1;
    }
    if (exists) {
        /* keep the owner first (a root-run update of a file the broker's user reads), then the
         * mode; both best effort for an unprivileged user */
        if (fchown(fd, st.st_uid, st.st_gid) != 0 && errno != EPERM)
            goto fail;
        if (fchmod(fd, st.st_mode & 07777) != 0)
            goto fail;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            goto fail;
        off += (size_t)w;
    }
    if (fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        goto fail;
    char *slash = strrchr(tmp, '/');
    if (slash)
        slash[slash == tmp ? 1 : 0] = '\0';
    int dfd = open(slash ? tmp : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(tmp);
    return 0;
fail:
    fprintf(stderr, "Error: Unable to write password file %s. %s.\n", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    free(tmp);
    return 1;
}

int cmd_passwd(int argc, char **argv)
{
    struct opts o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    /* write through a symlink to its target, as mosquitto_passwd does with realpath */
    char *path = realpath(o.file, NULL);
    if (!path && errno != ENOENT) {
        fprintf(stderr, "Error reading password file: %s\n", strerror(errno));
        return 1;
    }
    if (!path)
        path = xstrdup(o.file);

    char *data = NULL, *pw = NULL;
    size_t len = 0, pwcap = PASSWORD_MAX + 2;
    struct buf out;
    buf_init(&out);
    rc = 1;
    if (!o.create) {
        int e = slurp(path, &data, &len);
        if (e) {
            fprintf(stderr, "Error: Unable to open password file %s. %s.\n", path, strerror(e));
            goto done;
        }
    }
    if (!o.del && !o.update_file) {
        pw = xmalloc(pwcap);
        if (o.password) {
            snprintf(pw, pwcap, "%s", o.password);
        } else if ((rc = prompt_password(pw, pwcap)) != 0) {
            goto done;
        }
        rc = 1;
    }
    if (o.create ? put_entry(&out, o.user, strlen(o.user), pw, strlen(pw), o.iterations) != 0
                 : rewrite(&o, data, len, pw, &out) != 0)
        goto done;
    rc = write_atomic(path, (const char *)out.data, out.len);
done:
    if (pw) {
        crypto_wipe(pw, pwcap);
        free(pw);
    }
    if (data) {
        crypto_wipe(data, len);
        free(data);
    }
    if (out.data)
        crypto_wipe(out.data, out.cap);
    buf_fini(&out);
    free(path);
    return rc;
}

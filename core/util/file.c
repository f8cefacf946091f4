/* Whole-file reads with a size cap. */
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/err.h"

static int fail(int rc, char *err, size_t errlen, const char *path, const char *why, size_t max)
{
    if (err && rc == TIDE_ETOOBIG)
        snprintf(err, errlen, "%s: file larger than %zu bytes", path, max);
    else if (err)
        snprintf(err, errlen, "%s: %s", path, why);
    return rc;
}

int file_read_all(const char *path, size_t max, char **data, size_t *len, char *err,
                  size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(TIDE_EIO, err, errlen, path, strerror(errno), max);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return fail(TIDE_EIO, err, errlen, path, strerror(e), max);
    }
    if (st.st_size > (off_t)max) {
        close(fd);
        return fail(TIDE_ETOOBIG, err, errlen, path, NULL, max);
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = xmalloc(cap);
    int rc = 0;
    const char *why = NULL;
    for (;;) {
        if (n == cap) { /* the file grew while we read it */
            if (cap > max) {
                rc = TIDE_ETOOBIG;
                break;
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = TIDE_EIO;
            why = strerror(errno);
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (rc < 0) {
        explicit_bzero(buf, n);
        free(buf);
        return fail(rc, err, errlen, path, why, max);
    }
    *data = buf;
    *len = n;
    return 0;
}

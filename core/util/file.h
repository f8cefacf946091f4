/* Reading a whole small file (password, ACL and similar files) into memory, with a size cap. */
#ifndef TIDE_UTIL_FILE_H
#define TIDE_UTIL_FILE_H

#include <stddef.h>

/* Reads the file at path into a new buffer (*data, *len bytes; the caller frees it, after wiping
 * it if it holds secrets). Returns 0; TIDE_EIO with "path: strerror" in err; TIDE_ETOOBIG with
 * "path: file larger than MAX bytes" when the file exceeds max (also if it grows past max while
 * being read). On error nothing is allocated and any bytes read are wiped. err may be NULL. */
int file_read_all(const char *path, size_t max, char **data, size_t *len, char *err,
                  size_t errlen);

#endif

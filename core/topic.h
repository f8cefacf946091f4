/* Topic names and filters: validation, shared-subscription parsing, and matching one filter
 * against one name. Pure: no allocation, no I/O. Strings are (pointer, length), not NUL-terminated;
 * UTF-8 validity is the codec's job and is assumed here. */
#ifndef TIDE_TOPIC_H
#define TIDE_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

/* 0 if t is a valid topic name for PUBLISH: non-empty [MQTT-4.7.3-1], at most 65535 bytes
 * [MQTT-4.7.3-3], no '+' or '#' [MQTT-3.3.2-2], no U+0000 [MQTT-4.7.3-2]. TIDE_ETOPIC otherwise. */
int topic_validate_name(const char *t, size_t len);

/* 0 if f is a valid topic filter: non-empty, at most 65535 bytes, no U+0000; '#' only as the whole
 * last level [MQTT-4.7.1-2]; '+' only as a whole level [MQTT-4.7.1-3]. TIDE_ETOPIC otherwise. Does
 * not accept "$share/...": split those first with topic_parse_shared. */
int topic_validate_filter(const char *f, size_t len);

/* If f starts with "$share/", splits it into the group name and the real filter and returns 1;
 * returns 0 for an ordinary filter; TIDE_ETOPIC when it is a malformed shared filter (empty group,
 * a group containing '+', '#' or '/', or a missing or invalid filter) [MQTT-4.8.2-1] [MQTT-4.8.2-2]. */
int topic_parse_shared(const char *f, size_t len, const char **group, size_t *group_len,
                       const char **filter, size_t *filter_len);

/* True if the valid filter f matches the valid name t. A leading '+' or '#' never matches a name
 * starting with '$' [MQTT-4.7.2-1]; "a/#" matches "a" (§4.7.1.2). */
bool topic_matches(const char *f, size_t flen, const char *t, size_t tlen);

/* True if filter f contains '+' or '#'. */
bool topic_has_wildcard(const char *f, size_t len);

/* Number of levels of a name or filter ("a/b" is 2, "" is 1, "/" is 2). */
size_t topic_levels(const char *t, size_t len);

struct buf;

/* Listener mount points (Mosquitto's mount_point): writes prefix + t into out (reset first).
 * For a shared filter "$share/G/F" the prefix goes before F: "$share/G/" prefix F. */
void topic_mount(const char *prefix, const char *t, size_t len, struct buf *out);

/* If t starts with prefix, returns the length of the prefix to strip, else 0. */
size_t topic_mounted_prefix(const char *prefix, const char *t, size_t len);

#endif

/* ACL files in Mosquitto's format plus tidemq's regex entries: parse one into a table and answer
 * "may this client publish / receive / subscribe to this topic". Pure: the only I/O is reading the
 * file in acl_load_file; never logs.
 *
 * FORMAT (Mosquitto 2.0's acl_file, read line by line):
 *     # comment                        a line whose first non-blank character is '#'
 *     topic [ACCESS] FILTER            an entry for the current section
 *     user NAME                        starts NAME's section (rest of the line, trimmed)
 *     pattern [ACCESS] FILTER          an entry for every client, wherever it appears
 *     topic regex ACCESS REGEX         tidemq extension: see REGEX ENTRIES
 * ACCESS is read, write, readwrite or deny; without it an entry is readwrite (as in Mosquitto,
 * `topic read` alone is the topic "read"). FILTER is the rest of the line, trimmed, and must be a
 * valid MQTT topic filter (it may contain spaces). Blank lines are skipped; spaces and tabs
 * separate words; CR-LF is accepted. `topic` lines before the first `user` line form the
 * anonymous section. Two `user` lines with the same NAME add to one section. Any other line fails
 * the load with "file:line: why", so a reload keeps the previous table.
 *
 * WHICH ENTRIES APPLY. A client with a user name uses its user's section (none if the file has no
 * section for it); a client without one uses the anonymous section. `pattern` entries apply to
 * every client after substitution: "%c" becomes the client id and "%u" the user name (as in
 * Mosquitto, "%" followed by anything else is a literal '%'). A pattern with "%u" is skipped for
 * a client without a user name. A client id or user name containing '+', '#' or '/' is never
 * substituted: a pattern that would need it grants nothing, and a `deny` pattern that would need
 * it denies everything the patterns could grant (fail closed; Mosquitto instead refuses such
 * clients every pattern-based access, and does not refuse '/').
 *
 * DECISION (Mosquitto's order). For a topic T and an access (read or write):
 *   1. a matching `deny` entry of the client's section denies;
 *   2. else a matching entry of the section whose ACCESS includes the access allows;
 *   3. else a matching `deny` pattern denies;
 *   4. else a matching pattern whose ACCESS includes the access allows;
 *   5. else the access is denied (an empty file denies everything).
 * Order within the file does not matter otherwise. An entry matches T as an MQTT filter matches a
 * topic name; in addition a topic beginning with '$' is matched only by an entry whose text
 * begins with '$' (so "#", "+/x" and "%c/#" never reach $SYS, whatever the client id).
 *
 * WHAT THE BROKER CHECKS (the lead wires these):
 *   - PUBLISH needs write on its topic (acl_can_publish), and so does a will, at CONNECT;
 *   - SUBSCRIBE is refused when the ACL grants read on no topic the filter could match
 *     (acl_can_subscribe), e.g. "a/+" is granted by `topic read a/b`, "#" by `topic read a/#`;
 *   - every delivery, retained messages included, is checked against the subscriber's read access
 *     at that moment (acl_can_read), so a granted "#" still receives only what is readable, and a
 *     reloaded file takes effect on the next delivery;
 *   - as in Mosquitto, nothing can be published to a topic beginning with "$SYS" (the broker's own
 *     $SYS messages are not checked), and topics beginning with "$share" are neither published
 *     nor delivered; reading $SYS needs an entry that grants it, e.g. `topic read $SYS/#`.
 *
 * REGEX ENTRIES (tidemq extension). `topic regex ACCESS REGEX` — ACCESS is required — matches a
 * topic T when the PCRE2 regex REGEX (the rest of the line, trimmed, at most 1024 bytes) matches
 * the whole of T: it is anchored at both ends as if written ^(?:REGEX)$, so leading ^ and
 * trailing $ are optional. Example: `topic regex read sensors/[0-9]+/(temp|humidity)`. Regexes are
 * compiled once at load (UTF mode, JIT when available) and run under match and heap limits; a
 * match that errors or hits a limit counts as "no match" for an allowing entry and as "match" for
 * a deny entry (fail closed). Like "#", a regex reaches topics beginning with '$' only if it
 * begins with a literal dollar: `\$` or `^\$`. Regex entries are allowed in the anonymous and user
 * sections, not on `pattern` lines ("%c"/"%u" are not substituted into a regex). Mosquitto reports
 * "Invalid topic access type" for these lines, so a tidemq ACL file with regexes is never
 * silently misread by Mosquitto.
 *
 * SUBSCRIBE, precisely: acl_can_subscribe(F) is true when some entry E that grants read (in the
 * order above) overlaps F — their intersection I, itself a filter, is non-empty — and no single
 * deny entry that outranks E covers all of I. Regexes are exact against a wildcard-free F. For a
 * wildcard F, a regex E overlaps when it could match some topic starting with F's literal levels
 * before the first wildcard (PCRE2 partial matching: "sensors/+" overlaps `sensors/[0-9]+`,
 * "lights/+" does not; with a leading wildcard it always overlaps), and a regex deny never
 * covers. The answer can therefore be "granted" where the readable part of F is empty only
 * through the union of several deny entries or a regex; the per-delivery check
 * still stops every message that is not readable.
 *
 * Threads: a loaded table is read-only, but regex matching uses scratch memory inside it, so call
 * the check functions from one thread at a time per table (the loop thread). */
#ifndef TIDE_ACL_H
#define TIDE_ACL_H

#include <stdbool.h>
#include <stddef.h>

#define ACL_FILE_MAX (64u << 20) /* refuse ACL files above 64 MiB */
#define ACL_REGEX_MAX 1024       /* longest regex source accepted */

struct acl; /* opaque: a loaded ACL table */

/* Reads and parses the ACL file at path into a new table (*out). Returns 0, TIDE_EIO when the file
 * cannot be read (err: "path: strerror"), TIDE_ETOOBIG above ACL_FILE_MAX, or TIDE_EINVAL for a
 * malformed file (err: "path:line: why"); *out is set only on success. err may be NULL. The
 * caller frees the table with acl_free. */
int acl_load_file(struct acl **out, const char *path, char *err, size_t errlen);

/* As acl_load_file, parsing data[0..len) (need not be NUL-terminated; a NUL byte is an error) and
 * naming it name in errors. The entry point for the fuzzer and the tests. Borrows data and name. */
int acl_load_buffer(struct acl **out, const char *name, const char *data, size_t len, char *err,
                    size_t errlen);

/* Frees a table and its compiled regexes (NULL is fine). */
void acl_free(struct acl *a);

/* Number of entries (topic, regex and pattern lines) in the table. */
size_t acl_entry_count(const struct acl *a);

/* True if the client may publish (or set a will) on topic[0..len), a topic name. client_id is the
 * client's NUL-terminated id, username its NUL-terminated user name or NULL for none; both
 * borrowed. False for an invalid topic name, for "$SYS..." and "$share..." topics, and whenever
 * the decision above denies write. */
bool acl_can_publish(const struct acl *a, const char *client_id, const char *username,
                     const char *topic, size_t len);

/* True if a message on topic[0..len) may be delivered to the client (read access). Arguments as
 * for acl_can_publish. False for an invalid topic name and for "$share..." topics. */
bool acl_can_read(const struct acl *a, const char *client_id, const char *username,
                  const char *topic, size_t len);

/* True if the client may subscribe to filter[0..len): some topic the filter could match is
 * readable (see SUBSCRIBE above). Pass the filter without its "$share/GROUP/" prefix (split it
 * with topic_parse_shared first); a filter that is not valid, "$share/..." included, is refused.
 * Arguments otherwise as for acl_can_publish. May allocate a little scratch memory. */
bool acl_can_subscribe(const struct acl *a, const char *client_id, const char *username,
                       const char *filter, size_t len);

#endif

/* Shared between codec.c and codec_props.c only: the bounds-checked reader both use, and the
 * property block entry points. Nothing outside the codec includes this. The reader never reads
 * past r->len; every read either succeeds whole or returns TIDE_EMALFORMED. */
#ifndef TIDE_CODEC_INTERNAL_H
#define TIDE_CODEC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "util/err.h"

struct buf;

/* A cursor over borrowed input bytes p[0..len). */
struct rd {
    const uint8_t *p;
    size_t len;
    size_t pos;
};

/* Property context for a will (packet types use their enum codec_ptype value). */
#define CODEC_CTX_WILL 0

static inline size_t rd_left(const struct rd *r)
{
    return r->len - r->pos;
}

static inline int rd_u8(struct rd *r, uint8_t *v)
{
    if (rd_left(r) < 1)
        return TIDE_EMALFORMED;
    *v = r->p[r->pos++];
    return 0;
}

static inline int rd_u16(struct rd *r, uint16_t *v)
{
    if (rd_left(r) < 2)
        return TIDE_EMALFORMED;
    *v = (uint16_t)(r->p[r->pos] << 8 | r->p[r->pos + 1]);
    r->pos += 2;
    return 0;
}

static inline int rd_u32(struct rd *r, uint32_t *v)
{
    if (rd_left(r) < 4)
        return TIDE_EMALFORMED;
    const uint8_t *q = r->p + r->pos;
    *v = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
    r->pos += 4;
    return 0;
}

/* Variable Byte Integer: at most 4 bytes (MQTT 5 §1.5.5). */
static inline int rd_varint(struct rd *r, uint32_t *v)
{
    uint32_t val = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t byte;
        if (rd_u8(r, &byte) != 0)
            return TIDE_EMALFORMED;
        val |= (uint32_t)(byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            *v = val;
            return 0;
        }
    }
    return TIDE_EMALFORMED;
}

/* Binary Data: a 16-bit length then the bytes, which must lie inside the input. */
static inline int rd_bin(struct rd *r, struct codec_bytes *out)
{
    uint16_t n;
    if (rd_u16(r, &n) != 0 || rd_left(r) < n)
        return TIDE_EMALFORMED;
    out->p = r->p + r->pos;
    out->len = n;
    r->pos += n;
    return 0;
}

/* UTF-8 Encoded String [MQTT-1.5.4-1] [MQTT-1.5.4-2]. */
static inline int rd_str(struct rd *r, struct codec_bytes *out)
{
    if (rd_bin(r, out) != 0 || !codec_utf8_valid(out->p, out->len))
        return TIDE_EMALFORMED;
    return 0;
}

/* Reads a property length and block at r for packet type `ctx` (or CODEC_CTX_WILL) into *out
 * (zeroed first), validating each property's identifier, placement, multiplicity and range. */
int codec_props_decode(struct rd *r, uint8_t ctx, struct codec_props *out);

/* True when pr (may be NULL) has nothing to encode. */
bool codec_props_empty(const struct codec_props *pr);

/* Appends the property length and the properties of pr (NULL: a zero length). */
void codec_props_encode(struct buf *b, const struct codec_props *pr);

/* Inserts, at offset `at`, the Variable Byte Integer length of b's bytes after `at`. */
void codec_insert_len(struct buf *b, size_t at);

#endif

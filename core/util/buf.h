/* A growable byte buffer for encoding. The buffer owns `data`; buf_fini frees it.
 * Writers append in network byte order and grow with xrealloc (they never fail). */
#ifndef TIDE_UTIL_BUF_H
#define TIDE_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

void buf_init(struct buf *b);
void buf_fini(struct buf *b);
/* Empties the buffer, keeping its storage. */
void buf_reset(struct buf *b);
/* Makes room for `extra` more bytes; returns a pointer to the first free byte. */
uint8_t *buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_put_u8(struct buf *b, uint8_t v);
void buf_put_u16(struct buf *b, uint16_t v);
void buf_put_u32(struct buf *b, uint32_t v);
/* MQTT Variable Byte Integer (1..4 bytes); v must be < 268435456. */
void buf_put_varint(struct buf *b, uint32_t v);
/* MQTT UTF-8 string / binary data: a 16-bit length then the bytes (n must be <= 65535). */
void buf_put_str(struct buf *b, const void *p, size_t n);

/* Number of bytes buf_put_varint writes for v. */
size_t varint_size(uint32_t v);

#endif

/* MQTT packet handling: one entry point per packet family (proto_*.c), and the one map from
 * TIDE_E* codes to MQTT 5 reason codes and 3.1.1 return codes. Handlers return codes; they do not
 * close connections themselves (conn.c does, with proto_reason). */
#ifndef TIDE_PROTO_H
#define TIDE_PROTO_H

#include <stdbool.h>
#include <stdint.h>

struct broker;
struct codec_packet;
struct codec_props;
struct codec_connect;
struct codec_publish;
struct codec_ack;
struct codec_subscribe;
struct codec_disconnect;
struct conn;

/* Handles one decoded packet from c (dispatch by type). 0, or a TIDE_E* error. */
int proto_handle(struct conn *c, struct codec_packet *p);

/* True if p's user properties are within max_user_properties (count and bytes); a refusal is
 * counted in refused_user_properties. */
bool proto_user_props_ok(struct broker *b, const struct codec_props *p);

/* The MQTT 5 reason code for a TIDE_E* error (DISCONNECT/CONNACK). */
uint8_t proto_reason(int err);
/* The 3.1.1 CONNACK return code for a TIDE_E* error. */
uint8_t proto_connack_rc(int err);

/* Answers a CONNECT that failed to decode or was refused (CONNACK with the right code for
 * version when there is one to send). */
void proto_connect_refuse(struct conn *c, uint8_t version, int err);

/* Finishes a CONNECT whose password was checked off the loop thread (the auth_done_fn the broker
 * gives auth_open): refuses it, or completes it, then resumes reading c. */
void proto_password_checked(struct conn *c, bool ok);

int proto_connect(struct conn *c, struct codec_connect *p);
int proto_publish(struct conn *c, struct codec_publish *p);
int proto_ack(struct conn *c, uint8_t type, struct codec_ack *a);
int proto_subscribe(struct conn *c, struct codec_subscribe *s);
int proto_unsubscribe(struct conn *c, struct codec_subscribe *s);
int proto_disconnect(struct conn *c, struct codec_disconnect *d);

#endif

/* $SYS/broker/... topics under Mosquitto's names, plus tidemq's limit counters, published as
 * retained messages every sys_interval seconds. */
#ifndef TIDE_SYS_H
#define TIDE_SYS_H

struct broker;

/* Starts the periodic publisher (no-op when sys_interval is 0) and publishes once at once. */
void sys_start(struct broker *b);
/* Publishes every figure now. */
void sys_publish(struct broker *b);

#endif

// An MQTT.js client for tests/broker/test_41_websockets.py. One JSON argument says what to do:
//   {"url": "ws://127.0.0.1:PORT/mqtt", "mode": "roundtrip" | "sub" | "pub", "topic": "t",
//    "count": 3, "qos": 1, "protocolVersion": 4, "ca": "/path/ca.pem", "timeoutMs": 8000,
//    "cert": "/path/client.pem", "key": "/path/client.key"}
// roundtrip: subscribe, publish `count` messages, wait for all of them back.
// sub: subscribe, print {"ready": true}, then one {"topic", "payload"} line per message, until
//      `count` arrived. pub: publish `count` messages (acknowledged at qos > 0) and disconnect.
// The last line is always {"ok": true|false, ...}; the exit status is 0 only when ok. Every wait
// is bounded by timeoutMs.
'use strict';

const fs = require('fs');
const mqtt = require('mqtt');
const WebSocket = require('ws');

const opts = JSON.parse(process.argv[2] || '{}');
const count = opts.count ?? 3;
const qos = opts.qos ?? 1;
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

let socket = null; // the WebSocket under the client: tells which subprotocol the broker chose
const connectOpts = {
  protocolVersion: opts.protocolVersion ?? 4,
  clientId: opts.clientId ?? `js-${process.pid}-${Date.now()}`,
  reconnectPeriod: 0,
  connectTimeout: opts.timeoutMs ?? 8000,
  createWebsocket: (url, protocols, o) => {
    socket = new WebSocket(url, protocols, o.wsOptions);
    return socket;
  },
};
if (connectOpts.protocolVersion === 3) connectOpts.protocolId = 'MQIsdp';
if (opts.ca) {
  connectOpts.ca = fs.readFileSync(opts.ca);
  connectOpts.rejectUnauthorized = true;
}
if (opts.cert) {
  connectOpts.cert = fs.readFileSync(opts.cert);
  connectOpts.key = fs.readFileSync(opts.key);
}

const client = mqtt.connect(opts.url, connectOpts);
const received = [];
let finished = false;

function finish(ok, extra) {
  if (finished) return;
  finished = true;
  out({ ok, subprotocol: socket ? socket.protocol : null, received, ...extra });
  client.end(true, () => process.exit(ok ? 0 : 1));
  setTimeout(() => process.exit(ok ? 0 : 1), 1000).unref();
}

setTimeout(() => finish(false, { error: 'timeout' }), opts.timeoutMs ?? 8000).unref();
client.on('error', (err) => finish(false, { error: String(err && err.message || err) }));
client.on('close', () => finish(false, { error: 'closed' }));

client.on('message', (topic, payload) => {
  const msg = { topic, payload: payload.toString() };
  received.push(msg);
  if (opts.mode === 'sub') out(msg);
  if (received.length >= count && opts.mode !== 'pub') finish(true);
});

function publishAll(done) {
  let acked = 0;
  if (count === 0) return done();
  for (let i = 0; i < count; i++) {
    client.publish(opts.topic, `js-${i}`, { qos }, (err) => {
      if (err) return finish(false, { error: String(err.message || err) });
      if (++acked === count) done();
    });
  }
}

client.on('connect', () => {
  if (opts.mode === 'pub') {
    publishAll(() => finish(true));
    return;
  }
  client.subscribe(opts.topic, { qos }, (err, granted) => {
    if (err || !granted || granted[0].qos > 2)
      return finish(false, { error: `subscribe failed: ${err || JSON.stringify(granted)}` });
    if (opts.mode === 'sub') out({ ready: true });
    else publishAll(() => {});
  });
});

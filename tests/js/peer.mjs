// A real MQTT.js client for the pytest suite (tests/transports/test_websocket.py).
//
// Usage: node peer.mjs '<json options>'
//   url               ws://host:port/mqtt or wss://...
//   protocolVersion   4 (3.1.1) or 5
//   ca, cert, key     PEM file paths (wss); the server certificate is verified against ca
//   subscribe         topic filter to subscribe to (QoS 1) before saying "ready"
//   expect            how many messages to wait for before publishing and leaving
//   publish           [{topic, payload, qos}] sent once the expected messages came
//   timeoutMs         give up (exit 1) after this long
//
// Prints one JSON object per line on stdout: {"event": "ready"} once subscribed,
// {"event": "message", "topic", "payload", "qos"} per message, {"event": "done"} at the end.
import { readFileSync } from "node:fs";
import mqtt from "mqtt";

const opts = JSON.parse(process.argv[2]);
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const fail = (why) => {
  process.stderr.write(`peer.mjs: ${why}\n`);
  process.exit(1);
};

const connectOptions = {
  protocolVersion: opts.protocolVersion ?? 5,
  clientId: opts.clientId ?? `mqttjs-${process.pid}`,
  reconnectPeriod: 0,
  connectTimeout: 5000,
};
if (opts.ca) {
  connectOptions.ca = readFileSync(opts.ca);
  connectOptions.rejectUnauthorized = true;
}
if (opts.cert) connectOptions.cert = readFileSync(opts.cert);
if (opts.key) connectOptions.key = readFileSync(opts.key);

setTimeout(() => fail("timed out"), opts.timeoutMs ?? 15000).unref();

const client = mqtt.connect(opts.url, connectOptions);
const received = [];

client.on("error", (err) => fail(`error: ${err.message}`));
client.on("close", () => {
  if (received.length < (opts.expect ?? 0)) fail("connection closed early");
});
client.on("message", (topic, payload, packet) => {
  received.push(topic);
  say({ event: "message", topic, payload: payload.toString("utf8"), qos: packet.qos });
  if (received.length === opts.expect) finish();
});
client.on("connect", async () => {
  try {
    if (opts.subscribe) {
      const granted = await client.subscribeAsync(opts.subscribe, { qos: 1 });
      if (granted[0].qos > 2) fail(`subscription refused: ${JSON.stringify(granted)}`);
    }
    say({ event: "ready" });
    if (!opts.expect) await finish();
  } catch (err) {
    fail(`subscribe: ${err.message}`);
  }
});

async function finish() {
  try {
    for (const m of opts.publish ?? []) {
      await client.publishAsync(m.topic, m.payload, { qos: m.qos ?? 1 });
    }
    await client.endAsync();
    say({ event: "done" });
    process.exit(0);
  } catch (err) {
    fail(`publish: ${err.message}`);
  }
}

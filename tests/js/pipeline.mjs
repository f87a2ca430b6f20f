// MQTT.js publishing the everyday way, for tests/transports/test_flow_control.py: client.publish in a loop,
// `count` QoS 1 then `count` QoS 2 messages, no waiting between them.
//
// Usage: node pipeline.mjs '{"url", "protocolVersion", "clientId", "count", "topic", "timeoutMs"}'
// Prints {"event": "done", "acked": {"1": n, "2": n}, "errors": [...]} once every callback came.
import mqtt from "mqtt";
const o = JSON.parse(process.argv[2]);
const say = (x) => process.stdout.write(JSON.stringify(x) + "\n");
setTimeout(() => { say({event: "timeout", acked}); process.exit(1); }, o.timeoutMs).unref();
const client = mqtt.connect(o.url, {protocolVersion: o.protocolVersion, clientId: o.clientId,
                                    reconnectPeriod: 0, connectTimeout: 5000});
let acked = {1: 0, 2: 0}, errors = [];
client.on("error", (e) => { say({event: "error", message: e.message}); process.exit(1); });
client.on("close", () => {
  if (acked[1] + acked[2] < 2 * o.count) {
    say({event: "closed", acked});
    process.exit(1);
  }
});
client.on("connect", () => {
  // The everyday way: client.publish in a loop, no waiting.
  for (const qos of [1, 2]) {
    for (let i = 0; i < o.count; i++) {
      client.publish(o.topic + "/" + qos, String(i), {qos}, (err) => {
        if (err) errors.push(err.message); else acked[qos]++;
        if (acked[1] + acked[2] + errors.length === 2 * o.count) {
          say({event: "done", acked, errors});
          client.end(false, () => process.exit(errors.length ? 1 : 0));
        }
      });
    }
  }
});

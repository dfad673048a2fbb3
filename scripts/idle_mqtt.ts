/**
 * A floor for scripts/measure.ts: bare Deno holding one idle MQTT.js connection, opened as
 * the daemon opens its own (lib/sinks/mqtt.ts: write cache off, keepalive 60 s, clean
 * session), and doing nothing else. Whatever `smartmeter run` uses above this process is
 * the program's own.
 *
 * ```sh
 * deno run -A scripts/idle_mqtt.ts PORT     # runs until killed; exits 1 when disconnected
 * ```
 *
 * @module
 */

import mqtt from "mqtt";

const port = Number(Deno.args[0]);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: deno run -A scripts/idle_mqtt.ts PORT");
  Deno.exit(2);
}
const client = mqtt.connect({
  host: "127.0.0.1",
  port,
  clientId: `idle-mqtt-${Deno.pid}`,
  keepalive: 60,
  clean: true,
  reconnectPeriod: 0,
  writeCache: false,
});
client.on("error", (e) => {
  console.error(`idle_mqtt: ${e.message}`);
  Deno.exit(1);
});
client.on("close", () => Deno.exit(1));

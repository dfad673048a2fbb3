/**
 * MQTT.js without its write cache (issue 13). With `writeCache` on (MQTT.js's default),
 * mqtt-packet builds 65,536 two-byte Buffers, one per message id, on the first packet it
 * writes and keeps them for the life of the process (about 11 MB resident). With it off,
 * each message id is written as it comes: these tests show the daemon's client is created
 * so, and that message ids still work through the whole id space and its wrap-around
 * against a real Mosquitto (tests/e2e/mosquitto.ts).
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import mqtt from "mqtt";
import type { IClientOptions, MqttClient, Packet } from "mqtt";
import { mqttClientOptions, type MqttConfig, MqttSink } from "../lib/sinks/mqtt.ts";
import { brokerMissing, mqttTestConfig, startBroker, TEST_DEVICE } from "./e2e/mosquitto.ts";
import { tuneBroker } from "../scripts/harness.ts";

const missing = brokerMissing();
if (missing !== null) console.log(`mqtt_memory_test.ts: ${missing}`);

/** Message ids are 16 bits, 0 is not used: 65,535 of them, then they start again at 1. */
const MESSAGE_IDS = 65_535;

function config(port: number): MqttConfig {
  return mqttTestConfig(port, { clientId: `smartmeter-${crypto.randomUUID()}` });
}

async function waitUntil(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("mqttClientOptions() turns MQTT.js's write cache off", () => {
  equal(mqttClientOptions(config(1883), "smartmeter/availability").writeCache, false);
  equal(mqttClientOptions(config(1883), null).writeCache, false);
});

Deno.test({
  name: "MqttSink creates its MQTT.js client without the write cache",
  ignore: missing !== null,
  async fn() {
    const broker = await startBroker();
    const created: IClientOptions[] = [];
    const clients: MqttClient[] = [];
    const sink = new MqttSink({
      config: config(broker.port),
      device: TEST_DEVICE,
      log: () => {},
      random: () => 0,
      createClient: (options) => {
        created.push(options);
        const client = mqtt.connect(options);
        clients.push(client);
        return client;
      },
    });
    try {
      sink.start();
      await waitUntil(() => sink.connected, "the connection");
      equal(created.length, 1);
      equal(created[0]!.writeCache, false);
      // What MQTT.js itself made of the options.
      equal(clients[0]!.options.writeCache, false);
    } finally {
      await sink.stop();
      await broker.close();
    }
  },
});

Deno.test({
  name: "without the write cache, 70,000 QoS 1 publishes go through every message id and wrap",
  ignore: missing !== null,
  async fn() {
    const broker = await startBroker();
    // The broker's default log_type (all) would write a line per PUBLISH and PUBACK.
    await tuneBroker(broker, { log_type: ["error", "warning"] });
    const count = 70_000;
    const received: number[] = [];
    const watcher = await mqtt.connectAsync({
      host: "127.0.0.1",
      port: broker.port,
      reconnectPeriod: 0,
      clientId: `watcher-${crypto.randomUUID()}`,
    });
    watcher.on("message", (_topic, payload) => received.push(Number(payload.toString())));
    await watcher.subscribeAsync("ids", { qos: 1 });
    // The daemon's own options: the client as the sink creates it.
    const client = await mqtt.connectAsync(mqttClientOptions(config(broker.port), null));
    const sentIds: number[] = [];
    client.on("packetsend", (p: Packet) => {
      if (p.cmd === "publish" && p.messageId !== undefined) sentIds.push(p.messageId);
    });
    const acked: number[] = [];
    try {
      equal(client.options.writeCache, false);
      // A window of publishes in flight at a time, each one resolved by its PUBACK: a
      // message id written wrong would be acknowledged under another id, and its publish
      // (or another's) would never resolve.
      const window = 500;
      for (let first = 0; first < count; first += window) {
        const batch = [];
        for (let i = first; i < Math.min(count, first + window); i++) {
          batch.push(client.publishAsync("ids", String(i), { qos: 1 }).then(() => acked.push(i)));
        }
        await Promise.all(batch);
      }
      equal(acked.length, count, "every publish acknowledged");
      await waitUntil(() => received.length >= count, `${count} messages at the subscriber`);
      deepStrictEqual(received, Array.from({ length: count }, (_, i) => i), "all, in order");

      equal(sentIds.length, count);
      ok(sentIds.every((id) => id >= 1 && id <= MESSAGE_IDS), "ids within 1…65535");
      // The ids count up by one and wrap from 65535 to 1: all 65,535 of them were written.
      for (let i = 1; i < sentIds.length; i++) {
        const expected = sentIds[i - 1] === MESSAGE_IDS ? 1 : sentIds[i - 1]! + 1;
        if (sentIds[i] !== expected) {
          throw new Error(`message id ${sentIds[i]} after ${sentIds[i - 1]} (publish ${i})`);
        }
      }
      equal(new Set(sentIds).size, MESSAGE_IDS, "every message id used");
    } finally {
      await client.endAsync();
      await watcher.endAsync();
      await broker.close();
    }
  },
});

/**
 * Two programs with one config on one broker (a service plus a manual run, the add-on plus a
 * Pi): the broker hands the client id to whoever connects last. The sink that lost it must
 * say so and wait instead of taking it back, so Home Assistant does not see the device flap.
 * And a broker that takes the connection but refuses what we publish (MQTT 5 PUBACK reason
 * codes) must be visible. Real Mosquitto; skipped with a message when it is not installed.
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import mqtt from "mqtt";
import type { IClientOptions, MqttClient } from "mqtt";
import type { Reading } from "../lib/cosem/reading.ts";
import { type LogLevel, type MqttConfig, MqttSink } from "../lib/sinks/mqtt.ts";
import { SESSION_TAKEN_OVER, TakeoverDetector } from "../lib/sinks/takeover.ts";
import { brokerMissing, mqttTestConfig, startBroker, TEST_DEVICE } from "./e2e/mosquitto.ts";

const missing = brokerMissing();
if (missing !== null) console.log(`takeover_test.ts: ${missing}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(cond: () => boolean, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await sleep(20);
  }
}

function config(port: number, over: Partial<MqttConfig> = {}): MqttConfig {
  return mqttTestConfig(port, over);
}

function reading(wh: number): Reading {
  return {
    time: null,
    meter_id: "30137181",
    system_title: null,
    frame_counter: null,
    values: { energy_import_wh: wh, power_import_w: 100 },
    obis: {},
  };
}

interface Logged {
  level: LogLevel;
  msg: string;
}

function sink(cfg: MqttConfig, logs: Logged[]): MqttSink {
  return new MqttSink({
    config: cfg,
    device: TEST_DEVICE,
    log: (level, msg) => logs.push({ level, msg }),
    random: () => 0,
    takeover: { checkEveryMs: 1_000, watchMs: 1_000 },
    createClient: (options: IClientOptions) => mqtt.connect(options),
  });
}

/** Every message on `#`, with the time it came. */
async function watcher(port: number) {
  const messages: { topic: string; payload: string; at: number }[] = [];
  const client: MqttClient = await mqtt.connectAsync({
    host: "127.0.0.1",
    port,
    reconnectPeriod: 0,
    clientId: `watcher-${crypto.randomUUID()}`,
  });
  client.on("message", (topic, payload) => {
    messages.push({ topic, payload: payload.toString(), at: Date.now() });
  });
  await client.subscribeAsync("#", { qos: 1 });
  return { messages, close: () => client.endAsync() };
}

Deno.test("TakeoverDetector: MQTT 5's 'session taken over', or connections closed right after they began", () => {
  let now = 0;
  const d = new TakeoverDetector({ now: () => now, shortMs: 5_000, shortInARow: 2 });
  // A long connection that is lost: not a takeover.
  d.connected();
  now += 60_000;
  equal(d.closed(), "no");
  // MQTT 5 says so.
  d.connected();
  now += 60_000;
  d.disconnected(SESSION_TAKEN_OVER);
  equal(d.closed(), "told");
  // Another DISCONNECT reason is not a takeover.
  d.connected();
  now += 60_000;
  d.disconnected(0x8b); // server shutting down
  equal(d.closed(), "no");
  // MQTT 3.1.1: two connections in a row closed within 5 s: suspected (a broker that
  // restarts again and again does that too, so the sink looks before it believes it).
  now += 60_000;
  d.connected();
  now += 800;
  equal(d.closed(), "no");
  d.connected();
  now += 800;
  equal(d.closed(), "suspected");
  // Failed attempts in between (never connected) do not count either way.
  equal(d.closed(), "no");
  d.connected();
  now += 800;
  equal(d.closed(), "no", "the count starts over after a takeover");
});

for (const protocolVersion of [5, 4] as const) {
  Deno.test({
    name: `Two instances with one config (MQTT ${
      protocolVersion === 5 ? "5" : "3.1.1"
    }): one says so and waits, the device does not flap, and it takes over when the other stops`,
    ignore: missing !== null,
    fn: async () => {
      const broker = await startBroker();
      const w = await watcher(broker.port);
      const logsA: Logged[] = [];
      const logsB: Logged[] = [];
      const a = sink(config(broker.port, { protocolVersion }), logsA);
      const b = sink(config(broker.port, { protocolVersion }), logsB);
      const takeover = (logs: Logged[]) =>
        logs.filter((l) =>
          l.level === "warning" && /same client id .* took over the MQTT connection/.test(l.msg)
        );
      try {
        a.start();
        await waitUntil(() => a.connected, "the first instance");
        a.publishReading(reading(1));
        b.start();
        // Within a few seconds one of the two gives way, and says why, once.
        await waitUntil(
          () => takeover(logsA).length + takeover(logsB).length > 0,
          "a takeover warning",
        );
        await sleep(1_500);
        const since = Date.now();
        // Then 6 s of quiet: one instance holds the connection, no availability flapping.
        for (let i = 0; i < 30; i++) {
          a.publishReading(reading(2 + i));
          b.publishReading(reading(2 + i));
          await sleep(200);
        }
        const flaps = w.messages.filter((m) =>
          m.topic === "smartmeter/availability" && m.at >= since && m.payload === "offline"
        );
        deepStrictEqual(flaps.map((m) => m.payload), [], "no offline while both run");
        equal(a.connected !== b.connected, true, "exactly one holds the connection");
        equal(takeover(logsA).length + takeover(logsB).length, 1, "said once");
        // The one that holds it stops: the other sees the device go offline and takes over.
        const [holder, waiter] = a.connected ? [a, b] : [b, a];
        await holder.stop();
        await waitUntil(() => waiter.connected, "the waiting instance to take over", 10_000);
        const before = w.messages.length;
        waiter.publishReading(reading(100));
        await waitUntil(
          () => w.messages.slice(before).some((m) => m.topic === "smartmeter/state"),
          "a state from the instance that took over",
        );
        ok(
          w.messages.slice(before).some((m) =>
            m.topic === "smartmeter/availability" && m.payload === "online"
          ) || w.messages.filter((m) => m.topic === "smartmeter/availability").at(-1)
                ?.payload === "online",
          "online again",
        );
      } finally {
        await a.stop();
        await b.stop();
        await w.close();
        await broker.close();
      }
    },
  });
}

Deno.test({
  name:
    "A broker that takes the connection but refuses the publishes (MQTT 5 ACL) is a warning naming the topic, once",
  ignore: missing !== null,
  fn: async () => {
    const broker = await startBroker({
      users: { meter: "pw" },
      acl: "user meter\ntopic read #\n",
    });
    const logs: Logged[] = [];
    const s = sink(
      config(broker.port, { protocolVersion: 5, user: "meter", password: "pw" }),
      logs,
    );
    try {
      s.start();
      await waitUntil(() => s.connected, "the connection");
      s.publishReading(reading(1));
      const refused = () =>
        logs.filter((l) => l.level === "warning" && /refused to take/.test(l.msg));
      await waitUntil(
        () => refused().some((l) => l.msg.includes("homeassistant/device/")),
        "refusal",
      );
      const line = refused().find((l) => l.msg.includes('"smartmeter/availability"'))!;
      ok(line, JSON.stringify(logs));
      ok(
        /Not authorized \(reason code 0x87\): check that the broker's ACL lets user "meter"/.test(
          line.msg,
        ),
        line.msg,
      );
      // The announcement publishes availability again: no second line for it.
      const count = refused().length;
      await sleep(6_000);
      equal(refused().length, count, "folded: one line per topic");
    } finally {
      await s.stop();
      await broker.close();
    }
  },
});

Deno.test({
  name:
    "A broker restarted right after each connect (MQTT 3.1.1) is not taken for another instance",
  ignore: missing !== null,
  fn: async () => {
    // tuneBroker-free: the test broker keeps no retained messages over a restart.
    const broker = await startBroker();
    const logs: Logged[] = [];
    const s = sink(config(broker.port), logs);
    try {
      s.start();
      for (let i = 0; i < 3; i++) {
        await waitUntil(() => s.connected, `connection ${i + 1}`);
        await sleep(300);
        await broker.stop();
        await broker.start();
      }
      await waitUntil(() => s.connected, "the connection after the last restart", 8_000);
      const warned = logs.filter((l) => /took over the MQTT connection/.test(l.msg));
      deepStrictEqual(warned, [], "no takeover warning for a restarting broker");
    } finally {
      await s.stop();
      await broker.close();
    }
  },
});

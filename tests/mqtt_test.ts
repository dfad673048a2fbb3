/**
 * MqttSink against a real Mosquitto broker (tests/e2e/mosquitto.ts). A second client
 * subscribed to `#` sees what the sink publishes. Skipped, with a message, when
 * mosquitto (or openssl, for TLS) is not installed.
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import mqtt from "mqtt";
import type { IClientOptions, MqttClient } from "mqtt";
import type { Reading } from "../lib/cosem/reading.ts";
import type { DeviceInfo } from "../lib/homeassistant/discovery.ts";
import { buildState } from "../lib/homeassistant/state.ts";
import { type LogLevel, type MqttConfig, MqttSink } from "../lib/sinks/mqtt.ts";
import {
  type Broker,
  brokerMissing,
  type Certificates,
  makeCertificates,
  mqttTestConfig,
  startBroker,
} from "./e2e/mosquitto.ts";

const missing = brokerMissing();
const missingTls = brokerMissing(true);
if (missing !== null) console.log(`mqtt_test.ts: ${missing}`);
else if (missingTls !== null) console.log(`mqtt_test.ts: ${missingTls}`);

const SECRET = "s3cret-Pa55";

function config(port: number, over: Partial<MqttConfig> = {}): MqttConfig {
  // the add-on's defaults: an empty user name and password
  return mqttTestConfig(port, { user: "", password: "", ...over });
}

const DEVICE: DeviceInfo = {
  deviceId: "smartmeter",
  name: "Smart Meter",
  prefix: "",
  discoveryPrefix: "homeassistant",
  manufacturer: null,
  model: "E450",
  serialNumber: null,
  swVersion: "0.1.0",
};

function e450(energyWh = 31358606, powerW = 29): Reading {
  return {
    time: "2023-03-28T19:11:20",
    meter_id: "30137181",
    system_title: "4c475a6772a9a111",
    frame_counter: 2195702,
    values: {
      voltage_l1_v: 236,
      voltage_l2_v: 237,
      voltage_l3_v: 236,
      current_l1_a: 0,
      current_l2_a: 0.04,
      current_l3_a: 0.26,
      power_import_w: powerW,
      power_export_w: 0,
      power_w: powerW,
      energy_import_wh: energyWh,
      energy_export_wh: 7619,
      angle_l1_deg: 40,
      angle_l2_deg: 5.3,
      angle_l3_deg: 29.5,
    },
    obis: {},
  };
}

interface Logged {
  level: LogLevel;
  msg: string;
}

interface Harness {
  sink: MqttSink;
  logs: Logged[];
  clients: MqttClient[];
}

function makeSink(
  cfg: MqttConfig,
  extra: { meterTimeout?: number; device?: Partial<DeviceInfo> } = {},
): Harness {
  const logs: Logged[] = [];
  const clients: MqttClient[] = [];
  const sink = new MqttSink({
    config: cfg,
    device: { ...DEVICE, ...extra.device },
    log: (level, msg) => logs.push({ level, msg }),
    random: () => 0, // shortest pause (1 s) and backoff
    createClient: (options: IClientOptions) => {
      const client = mqtt.connect(options);
      clients.push(client);
      return client;
    },
    ...(extra.meterTimeout === undefined ? {} : { meterTimeout: extra.meterTimeout }),
  });
  return { sink, logs, clients };
}

function noSecretLogged(logs: Logged[], secret: string) {
  for (const { msg } of logs) ok(!msg.includes(secret), `password logged: ${msg}`);
}

interface Message {
  topic: string;
  payload: string;
  retain: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A second client that records every message on `#`. */
class Watcher {
  readonly messages: Message[] = [];
  private constructor(private readonly client: MqttClient) {}

  static async open(port: number): Promise<Watcher> {
    const client = await mqtt.connectAsync({
      host: "127.0.0.1",
      port,
      reconnectPeriod: 0,
      clientId: `watcher-${crypto.randomUUID()}`,
    });
    const w = new Watcher(client);
    client.on("error", () => {});
    client.on("message", (topic, payload, packet) => {
      w.messages.push({ topic, payload: payload.toString(), retain: packet.retain });
    });
    await client.subscribeAsync("#", { qos: 1 });
    return w;
  }

  on(topic: string): Message[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  async next(topic: string, what: string, after = 0, timeoutMs = 10_000): Promise<Message> {
    await waitUntil(() => this.on(topic).length > after, what, timeoutMs);
    return this.on(topic)[after]!;
  }

  async close(): Promise<void> {
    await this.client.endAsync();
  }
}

/** The retained message of `topic`, as a new subscriber gets it. */
async function retained(port: number, topic: string): Promise<Message | null> {
  const w = await Watcher.open(port);
  try {
    await waitUntil(() => w.on(topic).length > 0, `retained ${topic}`, 1_000).catch(() => {});
    const m = w.on(topic)[0] ?? null;
    return m !== null && m.retain ? m : null;
  } finally {
    await w.close();
  }
}

/** Starts a broker and a watcher, runs `body`, and stops everything. */
async function withBroker(
  body: (broker: Broker, watcher: () => Watcher) => Promise<void>,
  options: Parameters<typeof startBroker>[0] = {},
): Promise<void> {
  const broker = await startBroker(options);
  let watcher: Watcher | null = null;
  try {
    if (options.tls === undefined && options.users === undefined) {
      watcher = await Watcher.open(broker.port);
    }
    await body(broker, () => watcher!);
  } catch (e) {
    console.log(`mosquitto log:\n${broker.log()}`);
    throw e;
  } finally {
    await watcher?.close().catch(() => {});
    await broker.close();
  }
}

const TOPICS = {
  discovery: "homeassistant/device/smartmeter/config",
  state: "smartmeter/state",
  availability: "smartmeter/availability",
  meter: "smartmeter/meter",
  diagnostics: "smartmeter/diagnostics",
};

Deno.test({
  name: "MqttSink publishes availability, discovery and state that a subscriber can read",
  ignore: missing !== null,
  fn: () =>
    withBroker(async (broker, watcher) => {
      const { sink, logs } = makeSink(config(broker.port));
      try {
        sink.start();
        sink.publishReading(e450());
        sink.setDiagnostics({
          decoded: 1,
          failed: 0,
          lastError: null,
          lastTelegram: "2023-03-28T19:11:20+02:00",
        });
        await watcher().next(TOPICS.discovery, "discovery");
        ok(sink.connected);

        const discovery = await retained(broker.port, TOPICS.discovery);
        ok(discovery !== null, "discovery is retained");
        const payload = JSON.parse(discovery.payload);
        deepStrictEqual(payload.device, {
          identifiers: ["smartmeter"],
          name: "Smart Meter",
          manufacturer: "Landis+Gyr",
          model: "E450",
          serial_number: "30137181",
          sw_version: "0.1.0",
        });
        deepStrictEqual(payload.origin, { name: "smartmeter", sw_version: "0.1.0" });
        deepStrictEqual(Object.keys(payload.components), [
          "smartmeter",
          "smartmeter_total_energy_consumed",
          "smartmeter_total_energy_provided",
          "smartmeter_power_consumed",
          "smartmeter_power_provided",
          "smartmeter_net_power",
          "smartmeter_voltage_l1",
          "smartmeter_voltage_l2",
          "smartmeter_voltage_l3",
          "smartmeter_current_l1",
          "smartmeter_current_l2",
          "smartmeter_current_l3",
          "smartmeter_angle_l1",
          "smartmeter_angle_l2",
          "smartmeter_angle_l3",
          "smartmeter_telegrams_decoded",
          "smartmeter_telegrams_failed",
          "smartmeter_last_error",
          "smartmeter_last_telegram",
          "smartmeter_states_superseded",
        ]);
        const energy = payload.components.smartmeter_total_energy_consumed;
        equal(energy.unique_id, "smartmeter_total_energy_consumed");
        equal(energy.device_class, "energy");
        equal(energy.state_class, "total_increasing");
        equal(energy.unit_of_measurement, "Wh");
        equal(energy.state_topic, TOPICS.state);
        equal(energy.availability_mode, "all");

        equal((await retained(broker.port, TOPICS.availability))?.payload, "online");
        equal((await retained(broker.port, TOPICS.meter))?.payload, "online");
        equal(await retained(broker.port, TOPICS.state), null, "state is not retained");

        const states = watcher().on(TOPICS.state).map((m) => JSON.parse(m.payload));
        ok(states.length >= 1);
        for (const s of states) deepStrictEqual(s, buildState(e450()));
        deepStrictEqual(
          JSON.parse((await watcher().next(TOPICS.diagnostics, "diagnostics")).payload),
          {
            decoded: 1,
            failed: 0,
            last_error: null,
            last_telegram: "2023-03-28T19:11:20+02:00",
            published: 1,
            superseded: 0,
          },
        );
        ok(sink.stats.published >= 1);
        ok(sink.stats.discoveryPublished >= 1);
        equal(sink.stats.reconnects, 0);
      } finally {
        await sink.stop();
      }
      const offline = watcher().on(TOPICS.availability).at(-1);
      equal(offline?.payload, "offline", "stop() publishes offline");
      equal((await retained(broker.port, TOPICS.availability))?.payload, "offline");
      ok(!sink.connected);
      ok(logs.some((l) => l.msg.startsWith("Disconnected from the MQTT broker")));
    }),
});

Deno.test({
  name: "MqttSink sends discovery again when it learns the meter id and new values",
  ignore: missing !== null,
  fn: () =>
    withBroker(async (broker, watcher) => {
      const { sink } = makeSink(config(broker.port), { device: { model: null } });
      try {
        sink.start();
        const first = JSON.parse((await watcher().next(TOPICS.discovery, "discovery")).payload);
        deepStrictEqual(first.device, {
          identifiers: ["smartmeter"],
          name: "Smart Meter",
          sw_version: "0.1.0",
        });
        deepStrictEqual(Object.keys(first.components), [
          "smartmeter",
          "smartmeter_telegrams_decoded",
          "smartmeter_telegrams_failed",
          "smartmeter_last_error",
          "smartmeter_last_telegram",
          "smartmeter_states_superseded",
        ]);
        const single: Reading = {
          ...e450(),
          values: { energy_import_wh: 1000, power_import_w: 5, voltage_l1_v: 230 },
        };
        sink.publishReading(single);
        const second = JSON.parse((await watcher().next(TOPICS.discovery, "update", 1)).payload);
        equal(second.device.serial_number, "30137181");
        equal(second.device.manufacturer, "Landis+Gyr");
        deepStrictEqual(Object.keys(second.components), [
          "smartmeter",
          "smartmeter_total_energy_consumed",
          "smartmeter_power_consumed",
          "smartmeter_voltage_l1",
          "smartmeter_telegrams_decoded",
          "smartmeter_telegrams_failed",
          "smartmeter_last_error",
          "smartmeter_last_telegram",
          "smartmeter_states_superseded",
        ]);
        sink.publishReading(single);
        await sleep(300);
        equal(watcher().on(TOPICS.discovery).length, 2, "nothing new, no discovery");
        sink.publishReading({ ...single, values: { voltage_l2_v: 231 } });
        const third = JSON.parse((await watcher().next(TOPICS.discovery, "L2", 2)).payload);
        ok("smartmeter_voltage_l2" in third.components);
        ok("smartmeter_total_energy_consumed" in third.components, "components only grow");
      } finally {
        await sink.stop();
      }
    }),
});

Deno.test({
  name: "MqttSink learns the model a telegram tells and announces it once",
  ignore: missing !== null,
  fn: () =>
    withBroker(async (broker, watcher) => {
      const { sink } = makeSink(config(broker.port), { device: { model: null } });
      try {
        sink.start();
        const first = JSON.parse((await watcher().next(TOPICS.discovery, "discovery")).payload);
        equal(first.device.model, undefined);
        sink.publishReading({ ...e450(), model: "E450" });
        const second = JSON.parse((await watcher().next(TOPICS.discovery, "model", 1)).payload);
        equal(second.device.model, "E450");
        sink.publishReading({ ...e450(), model: "E450" });
        sink.publishReading({ ...e450(), model: null });
        await sleep(300);
        equal(watcher().on(TOPICS.discovery).length, 2, "the model is announced once");
      } finally {
        await sink.stop();
      }
    }),
});

Deno.test({
  name: "MqttSink's last will says offline when its connection dies, and it comes back",
  ignore: missing !== null,
  fn: () =>
    withBroker(async (broker, watcher) => {
      const { sink, clients } = makeSink(config(broker.port));
      try {
        sink.start();
        sink.publishReading(e450());
        await watcher().next(TOPICS.discovery, "discovery");
        // The announce publishes discovery, online, meter, then state: after the state, the
        // count of online messages is final.
        await watcher().next(TOPICS.state, "state");
        const onlines = watcher().on(TOPICS.availability).length;
        clients[0]!.stream.destroy(); // the connection dies without DISCONNECT
        const will = await watcher().next(TOPICS.availability, "the will", onlines);
        equal(will.payload, "offline");
        await waitUntil(() => sink.stats.reconnects === 1, "the reconnect");
        const back = await watcher().next(TOPICS.availability, "online again", onlines + 1);
        equal(back.payload, "online");
        await watcher().next(TOPICS.discovery, "discovery again", 1);
        equal(clients.length, 1, "the same client reconnects");
      } finally {
        await sink.stop();
      }
    }),
});

Deno.test({
  name: "MqttSink reconnects after the broker restarts and publishes discovery again",
  ignore: missing !== null,
  fn: () =>
    withBroker(async (broker, watcher) => {
      const { sink, logs } = makeSink(config(broker.port));
      try {
        sink.start();
        sink.publishReading(e450());
        await watcher().next(TOPICS.discovery, "discovery");
        await broker.stop(); // no persistence: the retained messages are gone
        await waitUntil(() => !sink.connected, "the disconnect");
        await sleep(300);
        await broker.start();
        const after = await Watcher.open(broker.port);
        try {
          await after.next(TOPICS.discovery, "discovery after the restart");
          equal(sink.stats.reconnects, 1);
          equal((await retained(broker.port, TOPICS.availability))?.payload, "online");
          ok((await retained(broker.port, TOPICS.discovery)) !== null);
          const state = await after.next(TOPICS.state, "the last state again");
          deepStrictEqual(JSON.parse(state.payload), buildState(e450()));
        } finally {
          await after.close();
        }
        ok(logs.some((l) => l.level === "warning" && l.msg.startsWith("MQTT connection lost")));
      } finally {
        await sink.stop();
      }
    }),
});

Deno.test({
  name: "MqttSink keeps only the newest reading while the broker is away",
  ignore: missing !== null,
  fn: () =>
    withBroker(async (broker) => {
      await broker.stop();
      const { sink, logs } = makeSink(config(broker.port));
      try {
        sink.start();
        for (const w of [100, 200, 300]) sink.publishReading(e450(31358606, w));
        await waitUntil(() => logs.some((l) => l.msg.includes("ECONNREFUSED")), "a refusal");
        ok(!sink.connected);
        await broker.start();
        const watcher = await Watcher.open(broker.port);
        try {
          const state = await watcher.next(TOPICS.state, "the state");
          equal(JSON.parse(state.payload).power_import_w, 300);
          await sleep(300);
          equal(watcher.on(TOPICS.state).length, 1, "one state, the newest");
        } finally {
          await watcher.close();
        }
      } finally {
        await sink.stop();
      }
    }),
});

Deno.test({
  name: "MqttSink announces again once after homeassistant/status says online",
  ignore: missing !== null,
  fn: () =>
    withBroker(async (broker, watcher) => {
      const { sink, logs } = makeSink(config(broker.port));
      const ha = await mqtt.connectAsync({ host: "127.0.0.1", port: broker.port });
      try {
        sink.start();
        sink.publishReading(e450());
        await watcher().next(TOPICS.discovery, "discovery");
        const before = sink.stats.discoveryPublished;
        const states = watcher().on(TOPICS.state).length;
        // Home Assistant restarts: several birth messages arrive together.
        for (let i = 0; i < 3; i++) await ha.publishAsync("homeassistant/status", "online");
        await sleep(400);
        equal(sink.stats.discoveryPublished, before, "not before the pause");
        await watcher().next(TOPICS.discovery, "discovery again", 1);
        await watcher().next(TOPICS.state, "state again", states);
        await sleep(1_500);
        equal(sink.stats.discoveryPublished, before + 1, "one announcement for three births");
        await ha.publishAsync("homeassistant/status", "offline");
        await sleep(1_300);
        equal(sink.stats.discoveryPublished, before + 1, "offline is not a birth");
        ok(logs.some((l) => l.msg.startsWith("Home Assistant is online")));
      } finally {
        await ha.endAsync();
        await sink.stop();
      }
    }),
});

Deno.test({
  name: "MqttSink publishes at most one state per publish interval, the newest",
  ignore: missing !== null,
  fn: () =>
    withBroker(async (broker, watcher) => {
      const { sink } = makeSink(config(broker.port, { publishInterval: 2 }));
      try {
        sink.start();
        await watcher().next(TOPICS.availability, "online");
        await waitUntil(() => sink.connected, "the connection");
        await sleep(1_200); // past the announcement
        const start = watcher().on(TOPICS.state).length;
        for (let w = 1; w <= 5; w++) {
          sink.publishReading(e450(31358606, w));
          await sleep(50);
        }
        const first = await watcher().next(TOPICS.state, "the first state", start);
        equal(JSON.parse(first.payload).power_import_w, 1, "the first goes out at once");
        await sleep(1_000);
        equal(watcher().on(TOPICS.state).length, start + 1, "nothing more in the interval");
        const second = await watcher().next(TOPICS.state, "the second state", start + 1);
        equal(JSON.parse(second.payload).power_import_w, 5, "then the newest");
        await sleep(2_200);
        equal(watcher().on(TOPICS.state).length, start + 2, "nothing left to send");
        equal(sink.stats.published, 2);
      } finally {
        await sink.stop();
      }
    }),
});

Deno.test({
  name: "MqttSink marks the meter unavailable when telegrams stop",
  ignore: missing !== null,
  fn: () =>
    withBroker(async (broker, watcher) => {
      const { sink, logs } = makeSink(config(broker.port), { meterTimeout: 0.6 });
      try {
        sink.start();
        await waitUntil(() => sink.connected, "the connection");
        sink.publishReading(e450());
        equal((await watcher().next(TOPICS.meter, "meter online")).payload, "online");
        const silent = await watcher().next(TOPICS.meter, "meter offline", 1);
        equal(silent.payload, "offline");
        equal((await retained(broker.port, TOPICS.meter))?.payload, "offline");
        ok(
          logs.some((l) => l.level === "warning" && l.msg.startsWith("No telegram from the meter")),
        );
        sink.publishReading(e450());
        equal((await watcher().next(TOPICS.meter, "meter back", 2)).payload, "online");
      } finally {
        await sink.stop();
      }
    }),
});

Deno.test({
  name: "MqttSink logs a refused login clearly and keeps retrying without throwing",
  ignore: missing !== null,
  fn: () =>
    withBroker(async (broker) => {
      const { sink, logs } = makeSink(
        config(broker.port, { user: "smartmeter", password: "wrong" }),
      );
      try {
        sink.start();
        await waitUntil(() => logs.filter((l) => l.msg.includes("refused")).length >= 2, "retries");
        const refusal = logs.find((l) => l.msg.includes("refused"))!;
        equal(refusal.level, "error");
        equal(
          refusal.msg,
          `MQTT broker mqtt://127.0.0.1:${broker.port} refused the connection: not authorized — ` +
            "check mqtt.user/mqtt.password; retrying in 1 s",
        );
        equal(logs.filter((l) => l.level === "error").length, 1, "repeats only at debug level");
        ok(!sink.connected);
        noSecretLogged(logs, "wrong");
      } finally {
        await sink.stop();
      }
    }, { users: { smartmeter: SECRET } }),
});

Deno.test({
  name: "MqttSink logs in with a user name and password and never logs the password",
  ignore: missing !== null,
  fn: () =>
    withBroker(async (broker) => {
      const { sink, logs } = makeSink(
        config(broker.port, { user: "smartmeter", password: SECRET, protocolVersion: 5 }),
      );
      try {
        sink.start();
        await waitUntil(() => sink.connected, "the connection");
        ok(logs.some((l) => l.msg.includes(`as user "smartmeter"`)));
      } finally {
        await sink.stop();
      }
      noSecretLogged(logs, SECRET);
    }, { users: { smartmeter: SECRET } }),
});

Deno.test({
  name: "MqttSink reports a broker it cannot reach and stops cleanly while retrying",
  ignore: missing !== null,
  fn: async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const { sink, logs } = makeSink(config(port));
    sink.start();
    await waitUntil(() => logs.some((l) => l.level === "warning"), "the failure");
    const failure = logs.find((l) => l.level === "warning")!;
    ok(
      failure.msg.startsWith(`MQTT connection to mqtt://127.0.0.1:${port} failed:`),
      failure.msg,
    );
    ok(failure.msg.endsWith("retrying in 1 s"), failure.msg);
    await sink.stop();
  },
});

Deno.test("MqttSink reports any other refusal with the broker's reason and code", async () => {
  // A stand-in broker that answers every CONNECT with CONNACK "server unavailable" (3).
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const conns: Deno.Conn[] = [];
  const serve = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      await conn.read(new Uint8Array(512));
      await conn.write(Uint8Array.of(0x20, 0x02, 0x00, 0x03));
    }
  })();
  const { sink, logs } = makeSink(config(port));
  try {
    sink.start();
    await waitUntil(() => logs.some((l) => l.level === "error"), "the refusal");
    equal(
      logs.find((l) => l.level === "error")!.msg,
      `MQTT broker mqtt://127.0.0.1:${port} refused the connection: Connection refused: ` +
        "Server unavailable (code 3); retrying in 1 s",
    );
    ok(!sink.connected);
  } finally {
    await sink.stop();
    listener.close();
    await serve.catch(() => {});
    for (const conn of conns) {
      try {
        conn.close();
      } catch {
        // closed by the client already
      }
    }
  }
});

Deno.test("MqttSink does not connect without a host name, and says so", async () => {
  const { sink, logs } = makeSink(config(1883, { host: "" }));
  sink.start();
  sink.publishReading(e450());
  deepStrictEqual(logs, [
    { level: "error", msg: "MQTT host is empty: set mqtt.host to the broker's address" },
  ]);
  ok(!sink.connected);
  await sink.stop();
});

Deno.test({
  name: "MqttSink warns that a password without a user name is not sent",
  ignore: missing !== null,
  fn: () =>
    withBroker(async (broker) => {
      const { sink, logs } = makeSink(config(broker.port, { user: null, password: SECRET }));
      try {
        sink.start();
        await waitUntil(() => sink.connected, "the anonymous connection");
        ok(logs.some((l) =>
          l.level === "warning" &&
          l.msg === "mqtt.password is set but mqtt.user is not: the password is not sent"
        ));
        noSecretLogged(logs, SECRET);
      } finally {
        await sink.stop();
      }
    }),
});

Deno.test({
  name: "MqttSink connects over TLS: CA, client certificate, host name check",
  ignore: missingTls !== null,
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "smartmeter-pki-" });
    try {
      const certs = await makeCertificates(dir);
      const tls = (c: Certificates, over: Partial<MqttConfig> = {}) => ({
        tls: true,
        tlsCa: c.ca,
        user: null,
        password: null,
        ...over,
      });
      const cases: {
        name: string;
        broker: { requireCertificate?: boolean; wrongHost?: boolean };
        config: Partial<MqttConfig>;
        connects: boolean;
        error?: string;
      }[] = [
        { name: "server certificate from our CA", broker: {}, config: tls(certs), connects: true },
        {
          name: "host name localhost",
          broker: {},
          config: tls(certs, { host: "localhost" }),
          connects: true,
        },
        {
          name: "client certificate required and given (mTLS)",
          broker: { requireCertificate: true },
          config: tls(certs, { tlsCert: certs.clientCert, tlsKey: certs.clientKey }),
          connects: true,
        },
        {
          name: "client certificate required, none given",
          broker: { requireCertificate: true },
          config: tls(certs),
          connects: false,
        },
        {
          name: "certificate for another host name",
          broker: { wrongHost: true },
          config: tls(certs),
          connects: false,
          error: "127.0.0.1",
        },
        {
          name: "another host name with tls_insecure",
          broker: { wrongHost: true },
          config: tls(certs, { tlsInsecure: true }),
          connects: true,
        },
        {
          name: "tls_insecure still verifies the chain",
          broker: { wrongHost: true },
          config: tls(certs, { tlsInsecure: true, tlsCa: null }),
          connects: false,
        },
        {
          name: "a CA file that cannot be read",
          broker: {},
          config: tls(certs, { tlsCa: `${dir}/missing.crt` }),
          connects: false,
          error: `Cannot read mqtt.tls_ca "${dir}/missing.crt"`,
        },
      ];
      for (const c of cases) {
        await t.step(c.name, async () => {
          const broker = await startBroker({ tls: { certs, ...c.broker } });
          const { sink, logs } = makeSink(config(broker.port, c.config));
          try {
            sink.start();
            if (c.connects) {
              await waitUntil(() => sink.connected, "the TLS connection");
              ok(logs.some((l) => l.msg.startsWith("Connecting to the MQTT broker mqtts://")));
            } else {
              await waitUntil(
                () => logs.some((l) => l.level === "warning" || l.level === "error"),
                "the failure",
              );
              ok(!sink.connected);
              const failure = logs.find((l) => l.level === "warning" || l.level === "error")!;
              ok(failure.msg.endsWith("retrying in 1 s"), failure.msg);
              if (c.error !== undefined) ok(failure.msg.includes(c.error), failure.msg);
            }
          } catch (e) {
            console.log(logs, broker.log());
            throw e;
          } finally {
            await sink.stop();
            await broker.close();
          }
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "MqttSink holds state back while the socket is backed up, and sends the newest on drain",
  ignore: missing !== null,
  fn: () =>
    withBroker(async (broker, watcher) => {
      const { sink, clients } = makeSink({ ...config(broker.port), publishInterval: 0 });
      try {
        sink.start();
        sink.publishReading(e450(100));
        await watcher().next(TOPICS.state, "first state");
        const before = watcher().on(TOPICS.state).length;
        // The socket reports a large unsent backlog: a broker that stopped reading.
        const stream = clients[0]!.stream as unknown as {
          writableLength: number;
          emit(e: string): void;
        };
        Object.defineProperty(stream, "writableLength", { value: 1 << 20, configurable: true });
        sink.publishReading(e450(101));
        sink.publishReading(e450(102));
        sink.publishReading(e450(103));
        await new Promise((r) => setTimeout(r, 300));
        equal(watcher().on(TOPICS.state).length, before, "nothing is queued behind the backlog");
        // The backlog drains: only the newest reading goes out.
        Object.defineProperty(stream, "writableLength", { value: 0, configurable: true });
        stream.emit("drain");
        const sent = await watcher().next(TOPICS.state, "the newest state", before);
        equal(JSON.parse(sent.payload).energy_import_wh, 103);
        await new Promise((r) => setTimeout(r, 200));
        equal(watcher().on(TOPICS.state).length, before + 1);
      } finally {
        await sink.stop();
      }
    }),
});

Deno.test({
  name: "MqttSink does not republish discovery for every telegram when meter ids alternate",
  ignore: missing !== null,
  fn: () =>
    withBroker(async (broker, watcher) => {
      const { sink } = makeSink({ ...config(broker.port), publishInterval: 0 });
      try {
        sink.start();
        sink.publishReading(e450(1));
        await watcher().next(TOPICS.discovery, "discovery");
        await watcher().next(TOPICS.state, "state");
        const before = watcher().on(TOPICS.discovery).length;
        for (let i = 0; i < 20; i++) {
          sink.publishReading({ ...e450(2 + i), meter_id: i % 2 ? "30137181" : "99999999" });
        }
        await watcher().next(TOPICS.state, "the last state", 20);
        await new Promise((r) => setTimeout(r, 200));
        equal(watcher().on(TOPICS.discovery).length, before);
      } finally {
        await sink.stop();
      }
    }),
});

Deno.test({
  name:
    "MqttSink counts every state it supersedes while a frozen broker stalls the socket: published + superseded = given",
  ignore: missing !== null,
  fn: () =>
    withBroker(async (broker, watcher) => {
      const { sink } = makeSink({ ...config(broker.port), publishInterval: 0 });
      let given = 0;
      try {
        sink.start();
        sink.publishReading(e450(given++));
        await watcher().next(TOPICS.state, "first state");
        ok(sink.writable, "connected and drained: a reading given now goes out at once");
        // A broker that stops reading (SIGSTOP): the kernel's socket buffers fill up, then
        // the client's own backlog passes its limit and only the newest state waits.
        broker.pause();
        while (sink.stats.superseded < 1_000) {
          for (let i = 0; i < 100; i++) sink.publishReading(e450(given++));
          await sleep(2); // lets the socket write what the kernel still takes
          ok(given < 1_000_000, "the socket never backed up");
        }
        ok(!sink.writable, "the socket is backed up");
        equal(sink.stats.published + sink.stats.superseded + 1, given, "one state still waits");
        equal(await sink.ready(200), false, "not ready while the broker is frozen");
        broker.resume();
        equal(await sink.ready(10_000), true, "ready again once the socket drained");
        await waitUntil(
          () =>
            watcher().on(TOPICS.state).some((m) =>
              JSON.parse(m.payload).energy_import_wh === given - 1
            ),
          "the newest state",
        );
        sink.setDiagnostics({ decoded: given, failed: 0, lastError: null, lastTelegram: null });
        const d = await waitUntil(
          () => watcher().on(TOPICS.diagnostics).length > 0,
          "diagnostics",
        ).then(() => JSON.parse(watcher().on(TOPICS.diagnostics).at(-1)!.payload));
        equal(d.published + d.superseded, given, "the diagnostics JSON adds up");
      } finally {
        broker.resume(); // a frozen broker would hold every close below
        await sink.stop();
      }
      equal(sink.stats.published + sink.stats.superseded, given, "nothing unaccounted for");
    }),
});

Deno.test({
  name: "MqttSink counts the state that was still waiting at stop as superseded",
  ignore: missing !== null,
  fn: () =>
    withBroker(async (broker, watcher) => {
      const { sink } = makeSink({ ...config(broker.port), publishInterval: 3600 });
      sink.start();
      sink.publishReading(e450(1));
      await watcher().next(TOPICS.state, "first state");
      sink.publishReading(e450(2)); // waits for the interval
      sink.publishReading(e450(3)); // supersedes 2
      equal(sink.stats.superseded, 1);
      await broker.stop(); // 3 can no longer go out
      await waitUntil(() => !sink.connected, "the sink to notice");
      await sink.stop();
      deepStrictEqual(
        { published: sink.stats.published, superseded: sink.stats.superseded },
        { published: 1, superseded: 2 },
      );
    }),
});

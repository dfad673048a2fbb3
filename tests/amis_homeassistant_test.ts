/**
 * A Netz OÖ AMIS meter in Home Assistant: the same entities as every meter, with the
 * manufacturer and model its telegrams' header names.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import mqtt from "mqtt";
import { MqttSink } from "../lib/sinks/mqtt.ts";
import { validateConfig } from "../lib/config.ts";
import { METER_TYPES } from "../lib/cosem/interpret.ts";
import { Decoder } from "../lib/pipeline.ts";
import { buildDiscovery } from "../lib/homeassistant/discovery.ts";
import { brokerMissing, startBroker, TEST_DEVICE } from "./e2e/mosquitto.ts";
import { fixture } from "./fixtures.ts";

async function amisReading() {
  const f = fixture("netzooe_siemens-amis_3");
  const [r] = await (await Decoder.create({ key: f.key })).push(f.bytes);
  ok(r?.ok);
  return r.reading;
}

Deno.test("An AMIS reading gets the entities of every meter: energy, power, net power, reactive", async () => {
  const reading = await amisReading();
  const present = new Set(Object.keys(reading.values)) as Set<keyof typeof reading.values>;
  const { payload } = buildDiscovery(TEST_DEVICE, present);
  deepEqual(Object.keys(payload.components as Record<string, unknown>), [
    "smartmeter",
    "smartmeter_total_energy_consumed",
    "smartmeter_total_energy_provided",
    "smartmeter_power_consumed",
    "smartmeter_power_provided",
    "smartmeter_net_power",
    "smartmeter_reactive_energy_import",
    "smartmeter_reactive_energy_export",
    "smartmeter_reactive_power_import",
    "smartmeter_reactive_power_export",
    "smartmeter_telegrams_decoded",
    "smartmeter_telegrams_failed",
    "smartmeter_last_error",
    "smartmeter_last_telegram",
    "smartmeter_states_superseded",
  ]);
  deepEqual([reading.manufacturer, reading.model], ["Siemens", "AMIS TD-351x"]);
});

Deno.test({
  name: "MqttSink names the AMIS meter's manufacturer and model in discovery",
  ignore: brokerMissing() !== null,
  async fn() {
    const broker = await startBroker();
    const watcher = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`);
    const discovery: Record<string, unknown>[] = [];
    watcher.on("message", (topic, payload) => {
      if (topic === "homeassistant/device/smartmeter/config" && payload.length > 0) {
        discovery.push(JSON.parse(payload.toString()));
      }
    });
    await watcher.subscribeAsync("homeassistant/device/smartmeter/config");
    const config = validateConfig({
      mqtt: { host: "127.0.0.1", port: broker.port, publish_interval: 0 },
    }, { env: {}, meterTypes: METER_TYPES }).mqtt;
    const sink = new MqttSink({
      config,
      device: TEST_DEVICE,
      log: () => {},
      random: () => 0,
    });
    try {
      sink.start();
      sink.publishReading(await amisReading());
      const deadline = Date.now() + 10_000;
      while (
        !discovery.some((d) => (d.device as { model?: string }).model !== undefined) &&
        Date.now() < deadline
      ) await new Promise((r) => setTimeout(r, 20));
      const device = discovery.at(-1)!.device as Record<string, unknown>;
      equal(device.manufacturer, "Siemens");
      equal(device.model, "AMIS TD-351x");
    } finally {
      await sink.stop();
      await watcher.endAsync();
      await broker.close();
    }
  },
});

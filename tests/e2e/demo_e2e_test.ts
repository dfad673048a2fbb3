/**
 * `smartmeter demo --mqtt URL` beside a real installation on the same Mosquitto: the demo
 * must not touch the installation's connection, discovery or states, and must take its own
 * device out of Home Assistant again when it ends. Both run as real processes.
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { fromHex } from "../../lib/bytes.ts";
import { MeterSimulator } from "../../lib/simulator.ts";
import { brokerMissing, startBroker } from "./mosquitto.ts";
import {
  PtyMeter,
  retainedMessage,
  sleep,
  Smartmeter,
  Subscriber,
  tempDir,
  writeConfig,
} from "./process.ts";
import { hasPseudoTerminals } from "../pty_support.ts";

const missing = brokerMissing();
if (missing !== null) console.log(`demo_e2e_test.ts: ${missing}`);
const hasPty = hasPseudoTerminals("demo_e2e_test.ts");

/** The installation's key; the demo uses its own public test key. */
const HOME_KEY = "00112233445566778899aabbccddeeff";

Deno.test({
  name: "demo --mqtt beside a running installation leaves its connection, discovery and " +
    "states alone, and clears its own discovery when it ends",
  ignore: missing !== null || !hasPty,
  async fn() {
    const broker = await startBroker();
    await using dir = await tempDir();
    const watcher = await Subscriber.open(broker.port);
    const meter = await PtyMeter.open(dir.path);
    const sim = await MeterSimulator.create({
      meter: "noe_evn",
      key: fromHex(HOME_KEY),
      authKey: null,
    });
    let feeding = true;
    const feeder = (async () => {
      while (feeding) {
        await meter.write((await sim.next(new Date())).bytes);
        await sleep(300);
      }
    })();
    const config = await writeConfig(dir.path, {
      dlms: { port: meter.link, baudrate: 9600, key: HOME_KEY },
      mqtt: { host: "127.0.0.1", port: broker.port, publish_interval: 0 },
    });
    const home = Smartmeter.spawn(["run", "-c", config]);
    try {
      // The installation is up: discovery (after its 1–5 s pause) and states.
      await watcher.next("homeassistant/device/smartmeter/config", 0, 15_000);
      await watcher.next("smartmeter/state", 1);
      const homeDiscovery = watcher.on("homeassistant/device/smartmeter/config").length;

      const demo = await Smartmeter.run([
        "demo",
        "--count",
        "3",
        "--interval",
        "0.3",
        "--mqtt",
        `mqtt://127.0.0.1:${broker.port}`,
      ], { timeoutMs: 30_000 });
      equal(demo.code, 0, demo.stdout + demo.stderr);
      await watcher.next("smartmeter/state", watcher.on("smartmeter/state").length);

      // The demo had its own device, topics and unique_ids, named as a demo.
      const demoDiscovery = watcher.on("homeassistant/device/smartmeter_demo/config")
        .find((m) => m.payload !== "");
      ok(demoDiscovery !== undefined, "the demo announced its own device");
      const payload = JSON.parse(demoDiscovery.payload);
      deepStrictEqual(payload.device.identifiers, ["smartmeter_demo"]);
      match(payload.device.name, /demo/i);
      for (const c of Object.values(payload.components) as { unique_id: string }[]) {
        match(c.unique_id, /^smartmeter_demo/);
      }
      ok(watcher.on("smartmeter_demo/state").length >= 1, "demo states on its own topic");

      // The installation was not touched: no takeover of its client id, no "offline",
      // discovery only its own, every state from its own meter.
      ok(!/already connected, closing old connection/.test(broker.log()), broker.log());
      equal(home.logLines(/Connected to the MQTT broker/).length, 1, home.stderr);
      deepStrictEqual(
        watcher.on("smartmeter/availability").map((m) => m.payload).filter((p) => p !== "online"),
        [],
      );
      const homeDevices = watcher.on("homeassistant/device/smartmeter/config");
      equal(homeDevices.length, homeDiscovery, "no discovery for the installation's device");
      for (const m of watcher.on("smartmeter/state")) {
        equal(JSON.parse(m.payload).meter_id, "1KFM0000000001", m.payload);
      }

      // No ghost device: the demo's retained messages are gone, the installation's stay.
      for (const topic of ["homeassistant/device/smartmeter_demo/config"]) {
        equal(await retainedMessage(broker.port, topic), null, `${topic} is cleared`);
      }
      for (const topic of ["smartmeter_demo/availability", "smartmeter_demo/meter"]) {
        equal(await retainedMessage(broker.port, topic), null, `${topic} is cleared`);
      }
      ok(await retainedMessage(broker.port, "homeassistant/device/smartmeter/config"));
      equal((await retainedMessage(broker.port, "smartmeter/availability"))?.payload, "online");
    } catch (e) {
      console.log(`mosquitto log:\n${broker.log()}\ninstallation:\n${home.output}`);
      throw e;
    } finally {
      feeding = false;
      await feeder;
      await home.stop();
      await meter.close();
      await watcher.close();
      await broker.close();
    }
  },
});

/**
 * What the web server costs the meter path per telegram: turning it into an event for
 * 100 open streams, and rendering /metrics. In process, no network (the end-to-end
 * figures, memory and telegram → event latency, come from scripts/http_measure.ts).
 */

import { fromHex } from "../lib/bytes.ts";
import { Decoder } from "../lib/pipeline.ts";
import { MeterSimulator } from "../lib/simulator.ts";
import { StatusModel, type TelegramEvent } from "../lib/status.ts";
import { metricsText, readingJson } from "../lib/sinks/http/api.ts";
import { EventHub, sseEvent } from "../lib/sinks/http/events.ts";

// The demo's public test keys (lib/commands/simulate.ts, which would load MQTT.js).
const DEMO_KEY = "000102030405060708090a0b0c0d0e0f";
const DEMO_AUTH_KEY = "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf";

const sim = await MeterSimulator.create({
  meter: "burgenland",
  key: fromHex(DEMO_KEY),
  authKey: fromHex(DEMO_AUTH_KEY),
});
const decoder = await Decoder.create({ key: fromHex(DEMO_KEY), authKey: fromHex(DEMO_AUTH_KEY) });
const [result] = await decoder.push((await sim.next(new Date())).bytes);
if (!result?.ok) throw new Error("the simulated telegram did not decode");

const status = new StatusModel({ version: "bench" });
let last: TelegramEvent | null = null;
status.subscribe((e) => last = e);
status.record(result);

const hub = new EventHub({ maxClients: 100 });
const readers = Array.from({ length: 100 }, () => hub.open("")!.getReader());
await Promise.all(readers.map((r) => r.read()));

Deno.bench("one telegram → event bytes queued to 100 open streams", async () => {
  hub.broadcast(sseEvent(JSON.stringify(readingJson(last!, null)), { id: 1 }));
  await Promise.all(readers.map((r) => r.read()));
});

Deno.bench("GET /metrics body for a three-phase reading", () => {
  metricsText(status, { eventClients: 3 });
});

globalThis.addEventListener("unload", () => hub.close());

/**
 * The web server cannot hurt the meter path: `smartmeter run` as a real process reads a
 * pseudo-terminal that gets a push every second (the fastest meters' rate), publishes to a
 * real Mosquitto, and serves the web page while 200 event streams are opened against it
 * and a request flood runs. Every push must still reach MQTT, and the event streams that
 * were accepted must get every telegram too.
 */

import { deepEqual, equal, ok as assert } from "node:assert/strict";
import { fromHex } from "../../lib/bytes.ts";
import { DEMO_KEY } from "../../lib/commands/simulate.ts";
import { MAX_CLIENTS } from "../../lib/sinks/http/events.ts";
import { MeterSimulator } from "../../lib/simulator.ts";
import { brokerMissing, startBroker } from "./mosquitto.ts";
import {
  PtyMeter,
  sleep,
  Smartmeter,
  Subscriber,
  tempDir,
  waitUntil,
  writeConfig,
} from "./process.ts";
import { hasPseudoTerminals } from "../pty_support.ts";

const missing = brokerMissing();
if (missing !== null) console.log(`http_flood_test.ts: ${missing}`);
const hasPty = hasPseudoTerminals("http_flood_test.ts");

const PUSHES = 20;
const PUSH_MS = 1_000;
const STREAMS = 200;
const FLOODERS = 12;
const FLOOD_PATHS = [
  "",
  "app.js",
  "uPlot.iife.min.js",
  "api/v1/status",
  "api/v1/reading",
  "metrics",
];

/** Reads an event stream to its end (or until aborted), counting the telegram events. */
async function follow(res: Response, ids: Set<string>): Promise<void> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const id = /^id: (\d+)$/m.exec(buffer.slice(0, end));
        if (id) ids.add(id[1]!);
        buffer = buffer.slice(end + 2);
      }
    }
  } catch {
    // aborted at the end of the test
  }
}

Deno.test({
  name: "200 event streams and a request flood do not cost a single telegram on MQTT",
  ignore: missing !== null || !hasPty,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const broker = await startBroker();
    await using dir = await tempDir();
    const meter = await PtyMeter.open(dir.path);
    const watcher = await Subscriber.open(broker.port, { topic: "smartmeter/state" });
    const config = await writeConfig(dir.path, {
      logging: "info",
      dlms: { port: meter.link, baudrate: 9600, key: DEMO_KEY },
      mqtt: { host: "127.0.0.1", port: broker.port, publish_interval: 0 },
      http: { listen: "127.0.0.1:0" },
    });
    const daemon = Smartmeter.spawn(["run", "--config", config]);
    const stop = new AbortController();
    try {
      const line = await daemon.waitFor(/Web page on http:\/\/127\.0\.0\.1:\d+\//);
      const url = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(line)![1]!;
      await daemon.waitFor(/Reading from /);
      await daemon.waitFor(/Connected to the MQTT broker/);

      // 200 event streams: the first MAX_CLIENTS are served, the rest are told to come back.
      const followers: { ids: Set<string>; done: Promise<void> }[] = [];
      let refused = 0;
      for (let i = 0; i < STREAMS; i++) {
        const res = await fetch(`${url}api/v1/events`, { signal: stop.signal });
        if (res.status === 503) {
          refused++;
          await res.body?.cancel();
          continue;
        }
        equal(res.status, 200);
        const ids = new Set<string>();
        followers.push({ ids, done: follow(res, ids) });
      }
      equal(followers.length, MAX_CLIENTS);
      equal(refused, STREAMS - MAX_CLIENTS);

      // The flood: every page file and endpoint, and more event streams, as fast as it goes.
      let requests = 0;
      let failures = 0;
      const flood = Array.from({ length: FLOODERS }, async (_, k) => {
        for (let i = 0; !stop.signal.aborted; i++) {
          const path = i % 7 === 6 ? "api/v1/events" : FLOOD_PATHS[(i + k) % FLOOD_PATHS.length]!;
          try {
            const res = await fetch(`${url}${path}`, { signal: stop.signal });
            await res.body?.cancel();
            requests++;
            if (res.status !== 200 && res.status !== 503) failures++;
          } catch {
            if (!stop.signal.aborted) failures++;
          }
        }
      });

      // The meter: one push a second, each with its own time.
      const sim = await MeterSimulator.create({ meter: "noe_evn", key: fromHex(DEMO_KEY) });
      const times: string[] = [];
      const start = Date.UTC(2026, 4, 1, 10, 0, 0);
      for (let i = 0; i < PUSHES; i++) {
        const t = await sim.next(new Date(start + i * 1000));
        assert(await meter.write(t.bytes), "the push was written");
        times.push(new Date(start + i * 1000).toISOString().slice(14, 19));
        await sleep(PUSH_MS);
      }
      await waitUntil(
        () => watcher.messages.length >= PUSHES,
        `${PUSHES} states on MQTT (got ${watcher.messages.length})`,
        15_000,
      );
      stop.abort();
      await Promise.all(flood);
      await Promise.all(followers.map((f) => f.done));

      // Every push reached MQTT. (A state may come twice: the announcement after the
      // connection repeats the last one.) Minutes and seconds name a push whatever the
      // meter's time zone.
      const seen = new Set(
        watcher.messages.map((m) => String(JSON.parse(m.payload).time).slice(14, 19)),
      );
      deepEqual([...seen].sort(), times.sort());
      assert(requests > 500, `the flood sent ${requests} requests`);
      equal(failures, 0, "the flood's requests were answered");
      // The streams that were accepted got every telegram.
      for (const f of followers) equal(f.ids.size, PUSHES);
      console.log(
        `http_flood_test.ts: ${PUSHES} pushes, all on MQTT; ${requests} flood requests, ` +
          `${MAX_CLIENTS} streams with every event, ${refused} refused`,
      );
    } finally {
      stop.abort();
      await daemon.stop();
      await watcher.close();
      await meter.close();
      await broker.close();
    }
  },
});

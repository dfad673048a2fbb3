/**
 * What the web server costs: resident memory of `smartmeter run` with the server off and
 * on, and the latency from a telegram to its Server-Sent Event. Run by hand (needs
 * /dev/ptmx; uses Mosquitto when it is installed, else runs with --no-mqtt):
 *
 * ```
 * deno run -A scripts/http_measure.ts            # 2 × 90 s
 * deno run -A scripts/http_measure.ts --seconds 30
 * ```
 *
 * Each run reads a pseudo-terminal that gets a simulated Netz NÖ push every second. With
 * the server on, a browser's worth of clients is attached: the page and its files loaded
 * once, three event streams (one of them is the latency probe) and /api/v1/status polled
 * every 5 s, /metrics scraped every 15 s. RSS comes from /proc/<pid>/status once a second;
 * the figure is the median of the second half of the run (after start-up has settled).
 *
 * Latency: from the moment the last byte of a push was written into the pseudo-terminal
 * to the arrival of its event at the probe (and, for comparison, of its state at an MQTT
 * subscriber). It includes the serial read, the decoding and the loopback network.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fromHex } from "../lib/bytes.ts";
import { DEMO_KEY } from "../lib/commands/simulate.ts";
import { MeterSimulator } from "../lib/simulator.ts";
import { brokerMissing, startBroker } from "../tests/e2e/mosquitto.ts";
import type { Broker } from "../tests/e2e/mosquitto.ts";
import {
  procMemory,
  PtyMeter,
  sleep,
  Smartmeter,
  Subscriber,
  tempDir,
  writeConfig,
} from "../tests/e2e/process.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { seconds: { type: "string", default: "90" } },
});
const SECONDS = Number(values.seconds);

interface RunResult {
  rssMedianKb: number;
  rssMaxKb: number;
  sseMs: number[];
  mqttMs: number[];
  requests: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)]!;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

/** Follows an event stream; calls `onEvent` with each telegram's frame counter. */
function follow(url: string, signal: AbortSignal, onEvent: (counter: number) => void): void {
  (async () => {
    const res = await fetch(`${url}api/v1/events?history=1`, { signal });
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = /^data: (.*)$/m.exec(block);
        if (data && !block.startsWith("event: history")) {
          onEvent(JSON.parse(data[1]!).frame_counter);
        }
      }
    }
  })().catch(() => {});
}

async function measure(web: boolean, broker: Broker | null): Promise<RunResult> {
  await using dir = await tempDir("smartmeter-http-measure-");
  const meter = await PtyMeter.open(dir.path);
  const config = await writeConfig(dir.path, {
    logging: "info",
    dlms: { port: meter.link, baudrate: 9600, key: DEMO_KEY },
    mqtt: broker
      ? { host: "127.0.0.1", port: broker.port, publish_interval: 0 }
      : { host: "127.0.0.1" },
    ...(web ? { http: { listen: "127.0.0.1:0" } } : {}),
  });
  const daemon = Smartmeter.spawn(["run", "--config", config, ...(broker ? [] : ["--no-mqtt"])]);
  const stop = new AbortController();
  const written = new Map<number, number>();
  const sseMs: number[] = [];
  const mqttMs: number[] = [];
  let requests = 0;
  const watcher = broker
    ? await Subscriber.open(broker.port, {
      topic: "smartmeter/state",
      keep: () => false,
      onMessage: (m) => {
        const at = written.get(Number(JSON.parse(m.payload).energy_import_wh));
        if (at !== undefined) mqttMs.push(m.at - at);
      },
    })
    : null;
  const energyOf = new Map<number, number>();
  try {
    await daemon.waitFor(/Reading from /);
    const clients: Promise<void>[] = [];
    if (web) {
      const line = await daemon.waitFor(/Web page on http:\/\/127\.0\.0\.1:\d+\//);
      const url = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(line)![1]!;
      const get = async (path: string) => {
        const res = await fetch(`${url}${path}`, { signal: stop.signal });
        await res.arrayBuffer();
        requests++;
      };
      for (const p of ["", "app.js", "style.css", "uPlot.iife.min.js", "uPlot.min.css"]) {
        await get(p);
      }
      follow(url, stop.signal, (counter) => {
        const at = written.get(energyOf.get(counter) ?? -1);
        if (at !== undefined) sseMs.push(performance.now() - at);
      });
      follow(url, stop.signal, () => {});
      follow(url, stop.signal, () => {});
      const every = (ms: number, path: string) =>
        clients.push((async () => {
          while (!stop.signal.aborted) {
            await get(path).catch(() => {});
            await sleep(ms);
          }
        })());
      every(5_000, "api/v1/status");
      every(15_000, "metrics");
    }
    const sim = await MeterSimulator.create({ meter: "noe_evn", key: fromHex(DEMO_KEY) });
    const samples: number[] = [];
    let max = 0;
    const t0 = performance.now();
    for (let i = 0; performance.now() - t0 < SECONDS * 1000; i++) {
      const t = await sim.next(new Date());
      energyOf.set(t.frameCounter, t.values.energy_import_wh!);
      await meter.write(t.bytes);
      written.set(t.values.energy_import_wh!, performance.now());
      const rss = procMemory(daemon.pid).rssKb;
      samples.push(rss);
      max = Math.max(max, rss);
      await sleep(1000);
    }
    stop.abort();
    await Promise.all(clients);
    return {
      rssMedianKb: median(samples.slice(Math.floor(samples.length / 2))),
      rssMaxKb: max,
      sseMs,
      mqttMs,
      requests,
    };
  } finally {
    stop.abort();
    await daemon.stop();
    await watcher?.close();
    await meter.close();
  }
}

const missing = brokerMissing();
const broker = missing === null ? await startBroker() : null;
if (broker === null) console.log(`(${missing}: measuring with --no-mqtt)`);
try {
  console.log(`Two runs of ${SECONDS} s each, a push a second (Netz NÖ, M-Bus, encrypted).\n`);
  const off = await measure(false, broker);
  const on = await measure(true, broker);
  const mib = (kb: number) => (kb / 1024).toFixed(1);
  const ms = (x: number) => x.toFixed(1);
  console.log("| web server | RSS median, 2nd half (MiB) | RSS max (MiB) |");
  console.log("|---|---|---|");
  console.log(`| off | ${mib(off.rssMedianKb)} | ${mib(off.rssMaxKb)} |`);
  console.log(
    `| on (page loaded, 3 event streams, status every 5 s, metrics every 15 s) | ${
      mib(on.rssMedianKb)
    } | ${mib(on.rssMaxKb)} |`,
  );
  console.log(`\nCost of the server: ${mib(on.rssMedianKb - off.rssMedianKb)} MiB RSS.\n`);
  console.log("| path | telegrams | median (ms) | p95 (ms) | max (ms) |");
  console.log("|---|---|---|---|---|");
  console.log(
    `| push written → SSE event | ${on.sseMs.length} | ${ms(median(on.sseMs))} | ${
      ms(percentile(on.sseMs, 95))
    } | ${ms(Math.max(...on.sseMs))} |`,
  );
  if (broker) {
    console.log(
      `| push written → MQTT state (same run) | ${on.mqttMs.length} | ${ms(median(on.mqttMs))} | ${
        ms(percentile(on.mqttMs, 95))
      } | ${ms(Math.max(...on.mqttMs))} |`,
    );
  }
} finally {
  await broker?.close();
}

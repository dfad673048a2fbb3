/**
 * Measures the footprint of `smartmeter run` as a real process and prints a markdown
 * report. Run by hand (needs mosquitto and /dev/ptmx):
 *
 * ```
 * deno run -A scripts/measure.ts               # about two minutes
 * deno run -A scripts/measure.ts --quick       # a short rehearsal: smaller numbers, same tables
 * deno run -A scripts/measure.ts --only bulk   # one part: idle, bulk, latency or startup
 * ```
 *
 * What it measures, against one Mosquitto on a loopback port:
 *
 * 1. **Idle footprint.** `run` reading a pseudo-terminal that gets one telegram every 5 s,
 *    for 60 s, next to a bare `deno run` of a script that only waits (the floor). Both
 *    sampled once a second from /proc/<pid>/status (VmRSS, VmHWM) and /proc/<pid>/stat
 *    (utime + stime).
 * 2. **Throughput and memory under load.** A capture file of 100,000 simulator pushes
 *    replayed as fast as the daemon reads (publish_interval 0, MQTT on): RSS when the
 *    reader has passed 10k, 50k and 100k telegrams (its file position, from
 *    /proc/<pid>/fdinfo), the states a subscriber received, wall time and telegrams/s.
 * 3. **Latency.** 200 telegrams written into the pseudo-terminal 100 ms apart: time from
 *    the write of a telegram's last byte to its state message at a subscriber.
 * 4. **Start-up.** Spawn → port open (log line), → MQTT online, → first state, with a
 *    telegram written every 50 ms from the start.
 *
 * The meter is the simulated Netz NÖ (EVN) Kaifa meter: M-Bus, two segments per push,
 * AES-GCM encrypted, 35-element OBIS-tagged structure (lib/simulator.ts).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fromHex } from "../lib/bytes.ts";
import { DEMO_KEY } from "../lib/commands/simulate.ts";
import { MeterSimulator } from "../lib/simulator.ts";
import { PseudoTerminal } from "../lib/sources/pty.ts";
import { brokerMissing, startBroker } from "../tests/e2e/mosquitto.ts";
import type { Broker } from "../tests/e2e/mosquitto.ts";
import {
  childEnv,
  type Message,
  procCpuSeconds,
  procFilePosition,
  procMemory,
  sleep,
  Smartmeter,
  Subscriber,
  tempDir,
  waitUntil,
  writeConfig,
} from "../tests/e2e/process.ts";

const STATE = "smartmeter/state";
const AVAILABILITY = "smartmeter/availability";
const DISCOVERY = "homeassistant/device/smartmeter/config";

interface Plan {
  idleSeconds: number;
  idlePushSeconds: number;
  bulkTelegrams: number;
  bulkMarks: number[];
  latencyTelegrams: number;
  startupRuns: number;
}

const FULL: Plan = {
  idleSeconds: 60,
  idlePushSeconds: 5,
  bulkTelegrams: 100_000,
  bulkMarks: [10_000, 50_000, 100_000],
  latencyTelegrams: 200,
  startupRuns: 5,
};

const QUICK: Plan = {
  idleSeconds: 10,
  idlePushSeconds: 5,
  bulkTelegrams: 5_000,
  bulkMarks: [1_000, 2_500, 5_000],
  latencyTelegrams: 30,
  startupRuns: 2,
};

const mib = (kb: number) => (kb / 1024).toFixed(1);
const ms = (x: number) => x.toFixed(1);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]!;
}

function median(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 0.5);
}

function log(line: string): void {
  console.error(`measure: ${line}`);
}

async function meterSimulator(): Promise<MeterSimulator> {
  return await MeterSimulator.create({ meter: "noe_evn", key: fromHex(DEMO_KEY) });
}

function daemonConfig(port: string, brokerPort: number) {
  return {
    logging: "info",
    dlms: { port, baudrate: 2400, key: DEMO_KEY },
    mqtt: { host: "127.0.0.1", port: brokerPort, publish_interval: 0 },
  };
}

/** The state message of a push: the same power and voltages. */
function sameReading(state: Record<string, unknown>, values: Record<string, number>): boolean {
  return ["power_import_w", "voltage_l1_v", "voltage_l2_v", "current_l1_a", "power_factor"]
    .every((k) => state[k] === values[k]);
}

// ---- machine ----

function machine(): string[] {
  const cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? "unknown CPU";
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(Deno.readTextFileSync("/proc/meminfo"))?.[1]);
  const load = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  let mosquitto = "mosquitto";
  try {
    const out = new Deno.Command("mosquitto", { args: ["-h"], stdout: "piped", stderr: "null" })
      .outputSync();
    mosquitto = new TextDecoder().decode(out.stdout).split("\n")[0]?.trim() ?? mosquitto;
  } catch { /* the version is only decoration */ }
  return [
    `- CPU: ${navigator.hardwareConcurrency} × ${model}; RAM ${(memKb / 1048576).toFixed(1)} GiB`,
    `- Load average at the start: ${load} (the machine is shared with other work)`,
    `- Deno ${Deno.version.deno} (V8 ${Deno.version.v8}), ${mosquitto}`,
    `- Kernel ${Deno.osRelease()}`,
  ];
}

// ---- 1. idle footprint ----

interface Footprint {
  rssStartKb: number;
  rssEndKb: number;
  rssMaxKb: number;
  hwmKb: number;
  cpuWindowS: number;
  cpuTotalS: number;
  windowS: number;
}

/** Samples a process once a second for `seconds`. */
async function sampleFootprint(pid: number, seconds: number): Promise<Footprint> {
  const cpuStart = procCpuSeconds(pid);
  const first = procMemory(pid);
  const t0 = performance.now();
  let rssMaxKb = first.rssKb;
  let last = first;
  for (let i = 0; i < seconds; i++) {
    await sleep(1000);
    last = procMemory(pid);
    rssMaxKb = Math.max(rssMaxKb, last.rssKb);
  }
  const cpuEnd = procCpuSeconds(pid);
  return {
    rssStartKb: first.rssKb,
    rssEndKb: last.rssKb,
    rssMaxKb,
    hwmKb: last.hwmKb,
    cpuWindowS: cpuEnd - cpuStart,
    cpuTotalS: cpuEnd,
    windowS: (performance.now() - t0) / 1000,
  };
}

async function idleFootprint(plan: Plan, broker: Broker, dir: string): Promise<string[]> {
  log(`idle footprint: ${plan.idleSeconds} s, one telegram every ${plan.idlePushSeconds} s`);
  const idleScript = `${dir}/idle.ts`;
  // The floor: a Deno process that only waits (longer than the window; killed after it).
  await Deno.writeTextFile(idleScript, "await new Promise((r) => setTimeout(r, 600_000));\n");
  const pty = PseudoTerminal.open();
  const sim = await meterSimulator();
  const config = await writeConfig(dir, daemonConfig(pty.path, broker.port), "idle.yaml");
  const watcher = await Subscriber.open(broker.port, { topic: STATE });
  const daemon = Smartmeter.spawn(["run", "-c", config]);
  const floor = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", idleScript],
    clearEnv: true,
    env: childEnv(),
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let stopped = false;
  let telegrams = 0;
  const feeder = (async () => {
    await daemon.waitFor(/Reading from/, 20_000);
    while (!stopped) {
      await pty.write((await sim.next(new Date())).bytes, 2_000);
      telegrams++;
      for (let i = 0; i < plan.idlePushSeconds * 10 && !stopped; i++) await sleep(100);
    }
  })();
  try {
    await watcher.next(STATE, 0, 20_000);
    // Both measured over the same wall-clock window, side by side.
    const [run, bare] = await Promise.all([
      sampleFootprint(daemon.pid, plan.idleSeconds),
      sampleFootprint(floor.pid, plan.idleSeconds),
    ]);
    const received = watcher.on(STATE).length;
    const row = (name: string, f: Footprint) =>
      `| ${name} | ${mib(f.rssStartKb)} | ${mib(f.rssEndKb)} | ${mib(f.rssMaxKb)} | ${
        mib(f.hwmKb)
      } | ${f.cpuWindowS.toFixed(2)} | ${(100 * f.cpuWindowS / f.windowS).toFixed(2)} % | ${
        f.cpuTotalS.toFixed(2)
      } |`;
    return [
      `### Idle footprint: one telegram every ${plan.idlePushSeconds} s for ${plan.idleSeconds} s`,
      "",
      `Window starts after the first state reached the subscriber; ${telegrams} telegrams written in all, ${received} states received. Both processes sampled once a second over the same window.`,
      "",
      "| process | RSS at window start (MiB) | RSS at end (MiB) | RSS max (MiB) | VmHWM (MiB) | CPU in window (s) | CPU average | CPU since spawn (s) |",
      "|---|---:|---:|---:|---:|---:|---:|---:|",
      row("`smartmeter run` (pty + MQTT)", run),
      row("floor: `deno run` idle script", bare),
      "",
      `Above the floor: ${mib(run.rssEndKb - bare.rssEndKb)} MiB RSS, ${
        (run.cpuWindowS - bare.cpuWindowS).toFixed(2)
      } s CPU per ${Math.round(run.windowS)} s.`,
    ];
  } finally {
    stopped = true;
    await daemon.stop();
    try {
      floor.kill("SIGKILL");
    } catch { /* exited */ }
    await floor.status;
    await feeder.catch(() => {});
    pty.close();
    await pty.whenIdle();
    await watcher.close();
  }
}

// ---- 2. throughput and memory under load ----

/** A capture file of simulator pushes; push `i` carries the meter time `start + 5 s × i`. */
async function bulkCapture(
  plan: Plan,
  dir: string,
): Promise<{ path: string; pushBytes: number; start: number }> {
  const sim = await meterSimulator();
  const path = `${dir}/bulk.bin`;
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  // Whole seconds: the telegram's date-time has no milliseconds.
  const start = Math.floor(Date.now() / 1000) * 1000;
  let pushBytes = 0;
  const batch: Uint8Array[] = [];
  const flush = async () => {
    const total = batch.reduce((n, b) => n + b.length, 0);
    const joined = new Uint8Array(total);
    let at = 0;
    for (const b of batch) {
      joined.set(b, at);
      at += b.length;
    }
    let off = 0;
    while (off < joined.length) off += await file.write(joined.subarray(off));
    batch.length = 0;
  };
  try {
    for (let i = 0; i < plan.bulkTelegrams; i++) {
      // Pushes 5 s apart in meter time, as a real meter sends them.
      const t = await sim.next(new Date(start + i * 5_000));
      if (pushBytes === 0) pushBytes = t.bytes.length;
      if (t.bytes.length !== pushBytes) throw new Error("pushes of unequal length");
      batch.push(t.bytes);
      if (batch.length === 1000) await flush();
    }
    await flush();
  } finally {
    file.close();
  }
  return { path, pushBytes, start };
}

async function throughput(plan: Plan, broker: Broker, dir: string): Promise<string[]> {
  log(`writing a capture of ${plan.bulkTelegrams} pushes`);
  const { path, pushBytes, start } = await bulkCapture(plan, dir);
  const config = await writeConfig(dir, daemonConfig(path, broker.port), "bulk.yaml");
  // Each push carries its own meter time (5 s apart): the time tells telegrams apart, so
  // the announcement's repeat of the last state after the connection is not counted twice.
  const distinct = new Set<number>();
  let received = 0;
  let lastAt = 0;
  const watcher = await Subscriber.open(broker.port, {
    topic: STATE,
    keep: () => false,
    onMessage: (m: Message) => {
      received++;
      lastAt = m.at;
      const time = /"time":"([^"]*)"/.exec(m.payload)?.[1];
      if (time !== undefined) distinct.add(Math.round((Date.parse(time) - start) / 5_000));
    },
  });
  log(
    `replaying ${plan.bulkTelegrams} telegrams (${
      (pushBytes * plan.bulkTelegrams / 1048576).toFixed(1)
    } MiB)`,
  );
  const daemon = Smartmeter.spawn(["run", "-c", config]);
  const marks: { telegrams: number; rssKb: number; atS: number; received: number }[] = [];
  let firstReadAt: number | null = null;
  let peakKb = 0;
  try {
    let next = 0;
    while (daemon.status === null) {
      let mem;
      try {
        mem = procMemory(daemon.pid);
      } catch {
        break; // exited between the check and the read
      }
      peakKb = Math.max(peakKb, mem.rssKb);
      const pos = procFilePosition(daemon.pid, path);
      if (pos !== null && pos > 0 && firstReadAt === null) firstReadAt = performance.now();
      // The file closed, or the daemon has logged its final count: everything is read.
      const done = (pos === null && firstReadAt !== null) || /Stopping:/.test(daemon.stderr);
      const readTelegrams = done
        ? plan.bulkTelegrams
        : pos === null
        ? 0
        : Math.floor(pos / pushBytes);
      while (next < plan.bulkMarks.length && readTelegrams >= plan.bulkMarks[next]!) {
        marks.push({
          telegrams: plan.bulkMarks[next]!,
          rssKb: mem.rssKb,
          atS: (performance.now() - daemon.spawnedAt) / 1000,
          received,
        });
        next++;
      }
      await sleep(20);
    }
    const status = await daemon.waitExit(600_000);
    const exitAt = performance.now();
    // Messages still on their way through the broker.
    const settled = performance.now();
    await waitUntil(() => performance.now() - Math.max(lastAt, settled) > 1_500, "quiet", 120_000)
      .catch(() => {});
    const stopping = /Stopping: (\d+) telegrams decoded, (\d+) failed/.exec(daemon.stderr);
    const wallS = (exitAt - daemon.spawnedAt) / 1000;
    const readS = firstReadAt === null ? wallS : (exitAt - firstReadAt) / 1000;
    const hwm = marks.length > 0 ? peakKb : 0;
    return [
      `### ${
        plan.bulkTelegrams.toLocaleString("en")
      } telegrams replayed from a capture file as fast as possible`,
      "",
      `publish_interval 0, MQTT on, one subscriber on ${STATE}; push size ${pushBytes} bytes (two M-Bus segments). Exit status ${status.code}; the daemon's own count: ${
        stopping ? `${stopping[1]} decoded, ${stopping[2]} failed` : "(no Stopping line)"
      }.`,
      "",
      "| telegrams read (file position; the last row: all read) | RSS (MiB) | seconds since spawn | states received by then |",
      "|---:|---:|---:|---:|",
      ...marks.map((m) =>
        `| ${m.telegrams.toLocaleString("en")} | ${mib(m.rssKb)} | ${m.atS.toFixed(1)} | ${
          m.received.toLocaleString("en")
        } |`
      ),
      "",
      "| figure | value |",
      "|---|---:|",
      `| peak RSS sampled (MiB) | ${mib(hwm)} |`,
      `| wall time, spawn → exit (s) | ${wallS.toFixed(1)} |`,
      `| time from the first byte read → exit (s) | ${readS.toFixed(1)} |`,
      `| telegrams/s (first byte read → exit) | ${Math.round(plan.bulkTelegrams / readS)} |`,
      `| telegrams/s (spawn → exit) | ${Math.round(plan.bulkTelegrams / wallS)} |`,
      `| telegrams whose state reached the subscriber | ${distinct.size.toLocaleString("en")} of ${
        plan.bulkTelegrams.toLocaleString("en")
      } |`,
      `| state messages received (with repeats) | ${received.toLocaleString("en")} |`,
      `| telegrams missing at the subscriber | ${describeMissing(distinct, plan.bulkTelegrams)} |`,
    ];
  } finally {
    await daemon.stop();
    await watcher.close();
    await Deno.remove(path).catch(() => {});
  }
}

/** Which of the telegrams 0 … count−1 are not in `seen`: "none", or their ranges. */
function describeMissing(seen: Set<number>, count: number): string {
  const ranges: string[] = [];
  let missing = 0;
  for (let i = 0; i < count; i++) {
    if (seen.has(i)) continue;
    let j = i;
    while (j + 1 < count && !seen.has(j + 1)) j++;
    missing += j - i + 1;
    ranges.push(i === j ? `#${i}` : `#${i}–#${j}`);
    i = j;
  }
  if (missing === 0) return "none";
  const shown = ranges.length > 8 ? [...ranges.slice(0, 8), "…"] : ranges;
  return `${missing.toLocaleString("en")} in ${ranges.length} run(s): ${shown.join(", ")}`;
}

// ---- 3. latency ----

async function latency(plan: Plan, broker: Broker, dir: string): Promise<string[]> {
  log(`latency: ${plan.latencyTelegrams} telegrams, 100 ms apart`);
  const pty = PseudoTerminal.open();
  const sim = await meterSimulator();
  const config = await writeConfig(dir, daemonConfig(pty.path, broker.port), "latency.yaml");
  const watcher = await Subscriber.open(broker.port);
  const daemon = Smartmeter.spawn(["run", "-c", config]);
  try {
    await daemon.waitFor(/Reading from/, 20_000);
    // Let the announcement after the connection (discovery, last state) pass first.
    await watcher.next(DISCOVERY, 0, 20_000);
    await sleep(300);
    const base = watcher.on(STATE).length;
    const writes: { at: number; values: Record<string, number> }[] = [];
    for (let i = 0; i < plan.latencyTelegrams; i++) {
      const t = await sim.next(new Date());
      await pty.write(t.bytes, 2_000);
      writes.push({ at: performance.now(), values: { ...t.values } });
      await sleep(100);
    }
    await waitUntil(
      () => watcher.on(STATE).length >= base + plan.latencyTelegrams,
      "every state",
      10_000,
    ).catch(() => {});
    const states = watcher.on(STATE).slice(base);
    const delays: number[] = [];
    let from = 0;
    for (const m of states) {
      const state = JSON.parse(m.payload);
      const i = writes.findIndex((w, j) => j >= from && sameReading(state, w.values));
      if (i < 0) continue;
      delays.push(m.at - writes[i]!.at);
      from = i + 1;
    }
    delays.sort((a, b) => a - b);
    const missed = plan.latencyTelegrams - delays.length;
    return [
      `### Latency: last byte written into the pty → state message at a subscriber`,
      "",
      `${plan.latencyTelegrams} telegrams, 100 ms apart; ${delays.length} matched${
        missed > 0 ? `, ${missed} not received` : ""
      }. The pty has no baud-rate delay: at a real 2400 baud the 284-byte push itself takes ~1.2 s on the wire.`,
      "",
      "| median (ms, nearest rank) | p90 (ms) | p99 (ms) | min (ms) | max (ms) |",
      "|---:|---:|---:|---:|---:|",
      `| ${ms(percentile(delays, 0.5))} | ${ms(percentile(delays, 0.9))} | ${
        ms(percentile(delays, 0.99))
      } | ${ms(delays[0]!)} | ${ms(delays.at(-1)!)} |`,
    ];
  } finally {
    await daemon.stop();
    pty.close();
    await pty.whenIdle();
    await watcher.close();
  }
}

// ---- 4. start-up ----

async function startup(plan: Plan, broker: Broker, dir: string): Promise<string[]> {
  log(`start-up: ${plan.startupRuns} runs`);
  const runs: { open: number; online: number; state: number }[] = [];
  for (let r = 0; r < plan.startupRuns; r++) {
    const pty = PseudoTerminal.open();
    const sim = await meterSimulator();
    const config = await writeConfig(dir, daemonConfig(pty.path, broker.port), "startup.yaml");
    const watcher = await Subscriber.open(broker.port, { topic: "smartmeter/#" });
    // The retained "offline" of the run before arrives at once: count only what follows.
    await sleep(200);
    const skip = watcher.messages.length;
    let stopped = false;
    const daemon = Smartmeter.spawn(["run", "-c", config]);
    watchOpen(daemon);
    const feeder = (async () => {
      while (!stopped) {
        await pty.write((await sim.next(new Date())).bytes, 2_000);
        await sleep(50);
      }
    })();
    try {
      const fresh = () => watcher.messages.slice(skip);
      await waitUntil(() => fresh().some((m) => m.topic === STATE), "first state", 30_000);
      const online = fresh().find((m) => m.topic === AVAILABILITY && m.payload === "online")!;
      const state = fresh().find((m) => m.topic === STATE)!;
      runs.push({
        open: await openTime(daemon),
        online: online.at - daemon.spawnedAt,
        state: state.at - daemon.spawnedAt,
      });
    } finally {
      stopped = true;
      await daemon.stop();
      await feeder.catch(() => {});
      pty.close();
      await pty.whenIdle();
      await watcher.close();
    }
  }
  const row = (name: string, values: number[]) =>
    `| ${name} | ${ms(median(values))} | ${ms(Math.min(...values))} | ${ms(Math.max(...values))} |`;
  return [
    `### Start-up (${plan.startupRuns} runs; a telegram written every 50 ms from the spawn on)`,
    "",
    "| spawn → | median (ms) | min (ms) | max (ms) |",
    "|---|---:|---:|---:|",
    row("serial port open (log line read from stderr)", runs.map((r) => r.open)),
    row("`online` at a subscriber (MQTT connected)", runs.map((r) => r.online)),
    row("first state at a subscriber", runs.map((r) => r.state)),
  ];
}

/** When the "Reading from" line arrived, as seen by polling stderr (recorded on first sight). */
const openSeen = new WeakMap<Smartmeter, number>();

async function openTime(daemon: Smartmeter): Promise<number> {
  const seen = openSeen.get(daemon);
  if (seen !== undefined) return seen;
  await daemon.waitFor(/Reading from/);
  return performance.now() - daemon.spawnedAt;
}

/** Polls stderr every 5 ms to note when the port was opened (finer than waitFor's 20 ms). */
function watchOpen(daemon: Smartmeter): void {
  const timer = setInterval(() => {
    if (/Reading from/.test(daemon.stderr)) {
      openSeen.set(daemon, performance.now() - daemon.spawnedAt);
      clearInterval(timer);
    } else if (daemon.status !== null) clearInterval(timer);
  }, 5);
}

// ---- main ----

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string", multiple: true },
    },
  });
  const parts = {
    idle: idleFootprint,
    bulk: throughput,
    latency,
    startup,
  } as const;
  const chosen = values.only ?? Object.keys(parts);
  for (const name of chosen) {
    if (!(name in parts)) {
      console.error(`measure: --only takes ${Object.keys(parts).join(", ")}; got "${name}"`);
      return 2;
    }
  }
  const missing = brokerMissing();
  if (missing !== null) {
    console.error(`measure: ${missing}`);
    return 1;
  }
  const plan = values.quick ? QUICK : FULL;
  const out: string[] = [
    `## smartmeter run: measured footprint${values.quick ? " (--quick rehearsal)" : ""}`,
    "",
    `Measured ${new Date().toISOString().slice(0, 16)}Z with \`deno run -A scripts/measure.ts\`.`,
    "",
    ...machine(),
    "",
  ];
  const broker = await startBroker();
  await using dir = await tempDir("smartmeter-measure-");
  try {
    for (const name of chosen) {
      out.push(...await parts[name as keyof typeof parts](plan, broker, dir.path), "");
    }
  } finally {
    await broker.close();
  }
  const load = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  out.push(`Load average at the end: ${load}.`);
  console.log(out.join("\n"));
  return 0;
}

if (import.meta.main) Deno.exit(await main());

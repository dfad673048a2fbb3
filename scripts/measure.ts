/**
 * Measures the footprint of `smartmeter run` as a real process and prints a markdown
 * report. Run by hand (needs mosquitto and /dev/ptmx):
 *
 * ```
 * deno run -A scripts/measure.ts               # about five minutes
 * deno run -A scripts/measure.ts --quick       # a short rehearsal: smaller numbers, same tables
 * deno run -A scripts/measure.ts --only bulk   # one part: idle, bulk, latency or startup
 * deno run -A scripts/measure.ts --only idle --runs 3 --v8-flags= --v8-flags=--lite-mode
 *                                              # V8 flag sets side by side, three windows
 * ```
 *
 * The daemon runs with the V8 flags of the compiled binaries (the `compile:*` tasks of
 * deno.json, passed as `DENO_V8_FLAGS`) unless `--v8-flags=A,B` says otherwise; an empty
 * `--v8-flags=` is V8's defaults. Given several times, the idle part compares the sets
 * side by side in the same window; the other parts use the first.
 *
 * What it measures, against one Mosquitto on a loopback port:
 *
 * 1. **Idle footprint.** `run` reading a pseudo-terminal that gets one telegram every 5 s,
 *    for 120 s after its first state (`--runs N` windows), next to two floors under the
 *    same V8 flags: a bare `deno run` of a script that only waits, and bare Deno holding
 *    an idle MQTT.js connection (scripts/idle_mqtt.ts). All sampled once a second from
 *    /proc/<pid>/status: VmRSS and its split into RssAnon (the program's own heap and
 *    stacks) and RssFile (pages of the mapped executable: clean, shared, reclaimable);
 *    CPU (ns) and wake-ups (voluntary context switches) of every thread from
 *    /proc/<pid>/task/. `--baud N` writes each telegram as a USB serial adapter delivers
 *    it at N baud (a packet every 16 ms) instead of all at once.
 * 2. **Throughput and memory under load.** A capture file of 100,000 simulator pushes
 *    replayed as fast as the daemon reads (publish_interval 0, MQTT on): RSS when the
 *    reader has passed 10k, 50k and 100k telegrams (its file position, from
 *    /proc/<pid>/fdinfo), the states a subscriber received, wall time and telegrams/s.
 * 3. **Latency.** 60 telegrams written into the pseudo-terminal 1 s apart (the fastest
 *    meters push once a second): time from the write of a telegram's last byte to its
 *    state message at a subscriber.
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
  procFilePosition,
  type ProcMemory,
  procMemory,
  type ProcThread,
  procThreads,
  ROOT_DIR,
  sleep,
  Smartmeter,
  Subscriber,
  tempDir,
  waitUntil,
  writeConfig,
} from "../tests/e2e/process.ts";
import { loadAverage, markdownTable, tuneBroker } from "./harness.ts";
import { readCompileTasks } from "./permissions.ts";

const STATE = "smartmeter/state";
const AVAILABILITY = "smartmeter/availability";
const DISCOVERY = "homeassistant/device/smartmeter/config";

interface Plan {
  idleSeconds: number;
  idlePushSeconds: number;
  bulkTelegrams: number;
  bulkMarks: number[];
  latencyTelegrams: number;
  latencyGapMs: number;
  startupRuns: number;
}

const FULL: Plan = {
  idleSeconds: 120,
  idlePushSeconds: 5,
  bulkTelegrams: 100_000,
  bulkMarks: [10_000, 50_000, 100_000],
  latencyTelegrams: 60,
  latencyGapMs: 1000,
  startupRuns: 5,
};

const QUICK: Plan = {
  idleSeconds: 10,
  idlePushSeconds: 5,
  bulkTelegrams: 5_000,
  bulkMarks: [1_000, 2_500, 5_000],
  latencyTelegrams: 10,
  latencyGapMs: 1000,
  startupRuns: 2,
};

/** What the command line chose. */
interface Options {
  /** V8 flag sets, comma-separated each ("" = V8's defaults); the first drives parts 2–4. */
  v8Flags: string[];
  /** Idle windows. */
  runs: number;
  /** Line rate the idle feed is paced at, or null to write each telegram at once. */
  baud: number | null;
}

const mib = (kb: number) => (kb / 1024).toFixed(1);
const mibOf = (kb: number) => mib(kb);

/** The daemon's environment for a set of V8 flags. */
function v8Env(flags: string): Record<string, string> {
  return flags === "" ? {} : { DENO_V8_FLAGS: flags };
}
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

/** One process of the idle window: the daemon or a floor, under one set of V8 flags. */
interface Watched {
  role: "run" | "deno" | "mqtt";
  flags: string;
  pid: number;
  spawnedAt: number;
}

/** What one process did over the window. */
interface Footprint {
  role: Watched["role"];
  flags: string;
  /** RSS at the start and end of the window, its largest sample, KiB. */
  rssStartKb: number;
  rssMaxKb: number;
  end: ProcMemory;
  /** Seconds from the spawn to the last sample. */
  ageS: number;
  windowS: number;
  cpuWindowNs: number;
  /** Voluntary context switches of all threads in the window: the wake-ups. */
  wakeups: number;
  threads: number;
  /** Wake-ups and CPU in the window by thread name. */
  byThread: Map<string, { count: number; wakeups: number; cpuNs: number }>;
}

const ROLE_NAMES: Record<Watched["role"], string> = {
  run: "`smartmeter run` (pty + MQTT)",
  deno: "floor: bare `deno run` that only waits",
  mqtt: "floor: bare Deno + an idle MQTT.js connection",
};

function threadTotals(threads: ProcThread[]) {
  return {
    cpuNs: threads.reduce((n, t) => n + t.cpuNs, 0),
    voluntary: threads.reduce((n, t) => n + t.voluntary, 0),
  };
}

/** Samples every process once a second for `seconds`, all over the same window. */
async function sampleWindow(watched: Watched[], seconds: number): Promise<Footprint[]> {
  const t0 = performance.now();
  const first = watched.map((w) => ({ mem: procMemory(w.pid), threads: procThreads(w.pid) }));
  const rssMax = first.map((f) => f.mem.rssKb);
  let last = first.map((f) => f.mem);
  for (let i = 0; i < seconds; i++) {
    await sleep(Math.max(0, t0 + (i + 1) * 1000 - performance.now()));
    last = watched.map((w) => procMemory(w.pid));
    last.forEach((m, j) => rssMax[j] = Math.max(rssMax[j]!, m.rssKb));
  }
  const endThreads = watched.map((w) => procThreads(w.pid));
  const t1 = performance.now();
  return watched.map((w, j) => {
    const before = first[j]!.threads;
    const after = endThreads[j]!;
    const byThread = new Map<string, { count: number; wakeups: number; cpuNs: number }>();
    for (const t of after) {
      const b = before.find((x) => x.tid === t.tid);
      const entry = byThread.get(t.name) ?? { count: 0, wakeups: 0, cpuNs: 0 };
      entry.count++;
      entry.wakeups += t.voluntary - (b?.voluntary ?? 0);
      entry.cpuNs += t.cpuNs - (b?.cpuNs ?? 0);
      byThread.set(t.name, entry);
    }
    const a = threadTotals(after);
    // Threads that ended in the window count with what they had at its start (their
    // share of the window is lost; the daemon's threads live as long as it does).
    const bt = threadTotals(before.filter((b) => after.some((t) => t.tid === b.tid)));
    return {
      role: w.role,
      flags: w.flags,
      rssStartKb: first[j]!.mem.rssKb,
      rssMaxKb: rssMax[j]!,
      end: last[j]!,
      ageS: (t1 - w.spawnedAt) / 1000,
      windowS: (t1 - t0) / 1000,
      cpuWindowNs: a.cpuNs - bt.cpuNs,
      wakeups: a.voluntary - bt.voluntary,
      threads: after.length,
      byThread,
    };
  });
}

/** `median (min–max)` of the runs, or the value of a single run. */
function spread(values: number[], format: (x: number) => string): string {
  if (values.length === 1) return format(values[0]!);
  return `${format(median(values))} (${format(Math.min(...values))}–${
    format(Math.max(...values))
  })`;
}

const cpuPercent = (f: Footprint) => 100 * f.cpuWindowNs / 1e9 / f.windowS;
const wakeupsPerS = (f: Footprint) => f.wakeups / f.windowS;
const flagsName = (flags: string) => flags === "" ? "V8 defaults" : `\`${flags}\``;

/**
 * Writes `bytes` into the pty as a USB serial adapter delivers a line at `baud`: a USB
 * packet every 16 ms (an FTDI chip's default latency timer) with what arrived meanwhile.
 */
async function writePaced(pty: PseudoTerminal, bytes: Uint8Array, baud: number): Promise<void> {
  const perSlice = Math.max(1, Math.round(baud / 10 * 0.016));
  for (let at = 0; at < bytes.length; at += perSlice) {
    await pty.write(bytes.subarray(at, at + perSlice), 2_000);
    await sleep(16);
  }
}

/**
 * One window: for each set of V8 flags, a daemon reading a pty that gets a telegram every
 * `idlePushSeconds`, and the two floors, all started together and sampled together.
 */
async function idleRun(
  plan: Plan,
  opts: Options,
  broker: Broker,
  dir: string,
): Promise<{ footprints: Footprint[]; telegrams: number; received: number }> {
  const started: { daemon: Smartmeter; pty: PseudoTerminal; watcher: Subscriber }[] = [];
  const floors: Deno.ChildProcess[] = [];
  const watched: Watched[] = [];
  let stopped = false;
  let telegrams = 0;
  const feeders: Promise<void>[] = [];
  const idleScript = `${dir}/idle.ts`;
  // The bare floor: a Deno process that only waits (longer than the window; killed after).
  await Deno.writeTextFile(idleScript, "await new Promise((r) => setTimeout(r, 3_600_000));\n");
  const spawnFloor = (role: "deno" | "mqtt", flags: string) => {
    const args = role === "deno"
      ? ["run", "-A", idleScript]
      : ["run", "-A", `${ROOT_DIR}scripts/idle_mqtt.ts`, String(broker.port)];
    const child = new Deno.Command(Deno.execPath(), {
      args,
      cwd: ROOT_DIR,
      clearEnv: true,
      env: childEnv(flags === "" ? {} : { DENO_V8_FLAGS: flags }),
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    floors.push(child);
    watched.push({ role, flags, pid: child.pid, spawnedAt: performance.now() });
  };
  try {
    for (const [i, flags] of opts.v8Flags.entries()) {
      const deviceId = `smartmeter${i}`;
      const pty = PseudoTerminal.open();
      const sim = await meterSimulator();
      const config = await writeConfig(dir, {
        ...daemonConfig(pty.path, broker.port),
        mqtt: { host: "127.0.0.1", port: broker.port, publish_interval: 0, device_id: deviceId },
      }, `idle${i}.yaml`);
      const watcher = await Subscriber.open(broker.port, { topic: `${deviceId}/state` });
      const daemon = Smartmeter.spawn(["run", "-c", config], { env: v8Env(flags) });
      started.push({ daemon, pty, watcher });
      watched.push({ role: "run", flags, pid: daemon.pid, spawnedAt: daemon.spawnedAt });
      spawnFloor("deno", flags);
      spawnFloor("mqtt", flags);
      feeders.push((async () => {
        await daemon.waitFor(/Reading from/, 30_000);
        // A push starts every idlePushSeconds, however long a paced one takes to write.
        const first = performance.now();
        for (let k = 1; !stopped; k++) {
          const bytes = (await sim.next(new Date())).bytes;
          if (opts.baud === null) await pty.write(bytes, 2_000);
          else await writePaced(pty, bytes, opts.baud);
          telegrams++;
          const due = first + k * plan.idlePushSeconds * 1000;
          while (!stopped && performance.now() < due) {
            await sleep(Math.max(0, Math.min(100, due - performance.now())));
          }
        }
      })());
    }
    for (const [i, s] of started.entries()) await s.watcher.next(`smartmeter${i}/state`, 0, 30_000);
    const footprints = await sampleWindow(watched, plan.idleSeconds);
    const received = started.reduce((n, s) => n + s.watcher.messages.length, 0);
    return { footprints, telegrams, received };
  } finally {
    stopped = true;
    for (const s of started) await s.daemon.stop();
    for (const f of floors) {
      try {
        f.kill("SIGKILL");
      } catch { /* exited */ }
      await f.status;
    }
    await Promise.all(feeders.map((f) => f.catch(() => {})));
    for (const s of started) {
      s.pty.close();
      await s.pty.whenIdle();
      await s.watcher.close();
    }
  }
}

async function idleFootprint(
  plan: Plan,
  broker: Broker,
  dir: string,
  opts: Options,
): Promise<string[]> {
  const runs: Footprint[][] = [];
  let telegrams = 0;
  let received = 0;
  const loads: string[] = [];
  for (let r = 0; r < opts.runs; r++) {
    log(
      `idle footprint, run ${
        r + 1
      } of ${opts.runs}: ${plan.idleSeconds} s, one telegram every ${plan.idlePushSeconds} s, ${opts.v8Flags.length} flag set(s)`,
    );
    const run = await idleRun(plan, opts, broker, dir);
    runs.push(run.footprints);
    telegrams += run.telegrams;
    received += run.received;
    loads.push(loadAverage());
  }
  const of = (role: Watched["role"], flags: string) =>
    runs.map((fs) => fs.find((f) => f.role === role && f.flags === flags)!);
  const rows: string[][] = [];
  for (const flags of opts.v8Flags) {
    for (const role of ["run", "mqtt", "deno"] as const) {
      const fs = of(role, flags);
      rows.push([
        `${ROLE_NAMES[role]}, ${flagsName(flags)}`,
        spread(fs.map((f) => f.end.rssKb), mibOf),
        spread(fs.map((f) => f.end.anonKb), mibOf),
        spread(fs.map((f) => f.end.fileKb), mibOf),
        spread(fs.map((f) => f.end.rssKb - f.rssStartKb), mibOf),
        spread(fs.map(cpuPercent), (x) => `${x.toFixed(3)} %`),
        spread(fs.map(wakeupsPerS), (x) => x.toFixed(2)),
        spread(fs.map((f) => f.threads), String),
      ]);
    }
  }
  const above = opts.v8Flags.map((flags) => {
    const run = of("run", flags);
    const floor = of("mqtt", flags);
    const cpu = run.map((f, i) => cpuPercent(f) - cpuPercent(floor[i]!));
    const wake = run.map((f, i) => wakeupsPerS(f) - wakeupsPerS(floor[i]!));
    return `- ${flagsName(flags)}: CPU ${spread(cpu, (x) => `${x.toFixed(3)} %`)} of a core, ${
      spread(wake, (x) => x.toFixed(2))
    } wake-ups/s above the MQTT.js floor; RSS ${
      spread(run.map((f, i) => f.end.rssKb - floor[i]!.end.rssKb), mibOf)
    } MiB, anonymous ${
      spread(run.map((f, i) => f.end.anonKb - floor[i]!.end.anonKb), mibOf)
    } MiB above it.`;
  });
  // Where the daemon's wake-ups come from (the first flag set, every run together).
  const first = of("run", opts.v8Flags[0]!);
  const names = new Map<string, { count: number; wakeups: number; cpuNs: number; s: number }>();
  for (const f of first) {
    for (const [name, t] of f.byThread) {
      const e = names.get(name) ?? { count: 0, wakeups: 0, cpuNs: 0, s: 0 };
      e.count = Math.max(e.count, t.count);
      e.wakeups += t.wakeups;
      e.cpuNs += t.cpuNs;
      e.s += f.windowS;
      names.set(name, e);
    }
  }
  const totalS = first.reduce((n, f) => n + f.windowS, 0);
  const threadRows = [...names.entries()]
    .sort((a, b) => b[1].wakeups - a[1].wakeups)
    .map(([name, e]) => [
      `\`${name}\``,
      String(e.count),
      (e.wakeups / totalS).toFixed(2),
      `${(100 * e.cpuNs / 1e9 / totalS).toFixed(3)} %`,
    ]);
  const ages = runs.flat().filter((f) => f.role === "run").map((f) => f.ageS);
  return [
    `### Idle footprint: one telegram every ${plan.idlePushSeconds} s${
      opts.baud === null ? "" : ` at ${opts.baud} baud (16 ms USB packets)`
    }, ${plan.idleSeconds} s window, ${opts.runs} run(s)`,
    "",
    `Each run starts, per set of V8 flags (\`DENO_V8_FLAGS\`), the daemon and two floors under the same flags, all side by side; the window starts once every daemon's first state has reached a subscriber. End figures are taken ${
      Math.min(...ages).toFixed(0)
    }–${
      Math.max(...ages).toFixed(0)
    } s after the daemon's spawn. ${telegrams} telegrams written, ${received} states received. Runs: median (min–max). CPU from /proc/<pid>/task/*/schedstat, wake-ups = voluntary context switches of all threads. Load average after each run: ${
      loads.join("; ")
    }.`,
    "",
    ...markdownTable(
      [
        "process",
        "RSS (MiB)",
        "RssAnon (MiB)",
        "RssFile (MiB)",
        "RSS growth in window (MiB)",
        "CPU (of a core)",
        "wake-ups/s",
        "threads",
      ],
      rows,
    ),
    "",
    ...above,
    "",
    `Wake-ups of \`smartmeter run\` by thread (${flagsName(opts.v8Flags[0]!)}, all runs):`,
    "",
    ...markdownTable(["thread", "threads", "wake-ups/s", "CPU (of a core)"], threadRows),
  ];
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

async function throughput(
  plan: Plan,
  broker: Broker,
  dir: string,
  opts: Options,
): Promise<string[]> {
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
  const daemon = Smartmeter.spawn(["run", "-c", config], { env: v8Env(opts.v8Flags[0]!) });
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

async function latency(
  plan: Plan,
  broker: Broker,
  dir: string,
  opts: Options,
): Promise<string[]> {
  log(`latency: ${plan.latencyTelegrams} telegrams, ${plan.latencyGapMs} ms apart`);
  const pty = PseudoTerminal.open();
  const sim = await meterSimulator();
  const config = await writeConfig(dir, daemonConfig(pty.path, broker.port), "latency.yaml");
  const watcher = await Subscriber.open(broker.port);
  const daemon = Smartmeter.spawn(["run", "-c", config], { env: v8Env(opts.v8Flags[0]!) });
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
      await sleep(plan.latencyGapMs);
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
      `${plan.latencyTelegrams} telegrams, ${plan.latencyGapMs} ms apart; ${delays.length} matched${
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

async function startup(
  plan: Plan,
  broker: Broker,
  dir: string,
  opts: Options,
): Promise<string[]> {
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
    const daemon = Smartmeter.spawn(["run", "-c", config], { env: v8Env(opts.v8Flags[0]!) });
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
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        quick: { type: "boolean", default: false },
        only: { type: "string", multiple: true },
        "v8-flags": { type: "string", multiple: true },
        runs: { type: "string", default: "1" },
        baud: { type: "string" },
      },
      strict: true,
    }));
  } catch (e) {
    console.error(`measure: ${(e as Error).message}`);
    return 2;
  }
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
  const runs = Number(values.runs);
  const baud = values.baud === undefined ? null : Number(values.baud);
  if (!Number.isInteger(runs) || runs < 1 || (baud !== null && !(baud > 0))) {
    console.error("measure: --runs takes a whole number from 1, --baud a positive rate");
    return 2;
  }
  const compiled = (await readCompileTasks()).find((t) => t.arch === "x86_64");
  const opts: Options = {
    v8Flags: values["v8-flags"] ?? [compiled?.v8Flags.join(",") ?? ""],
    runs,
    baud,
  };
  const missing = brokerMissing();
  if (missing !== null) {
    console.error(`measure: ${missing}`);
    return 1;
  }
  const plan = values.quick ? QUICK : FULL;
  const out: string[] = [
    `## smartmeter run: measured footprint${values.quick ? " (--quick rehearsal)" : ""}`,
    "",
    `Measured ${new Date().toISOString().slice(0, 16)}Z with \`deno run -A scripts/measure.ts${
      Deno.args.length > 0 ? ` ${Deno.args.join(" ")}` : ""
    }\`; the daemon's V8 flags: ${opts.v8Flags.map(flagsName).join("; ")}.`,
    "",
    ...machine(),
    "",
  ];
  const broker = await startBroker();
  await using dir = await tempDir("smartmeter-measure-");
  try {
    // The default log_type (all) would have Mosquitto write a line per PUBLISH.
    await tuneBroker(broker, { log_type: ["error", "warning", "notice"] });
    for (const name of chosen) {
      out.push(...await parts[name as keyof typeof parts](plan, broker, dir.path, opts), "");
    }
  } finally {
    await broker.close();
  }
  out.push(`Load average at the end: ${loadAverage()}.`);
  console.log(out.join("\n"));
  return 0;
}

if (import.meta.main) Deno.exit(await main());

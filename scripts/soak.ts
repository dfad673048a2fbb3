/**
 * `deno task soak`: a million telegrams through `smartmeter run` to a real Mosquitto, as
 * fast as the pipeline takes them; counts what comes out and watches the daemon's memory.
 *
 * ```
 * deno task soak                         # 1,000,000 replayed + 200,000 live-like telegrams
 * deno task soak --hog                   # the same with a busy loop on one core
 * deno task soak --count 40000 --live 8000   # a short rehearsal
 * deno task soak --only M-Bus --v8-flags=    # V8's default flags
 * ```
 *
 * What it does, for each mixed stream of scripts/harness.ts (HDLC: Burgenland with auth
 * key + Wiener Netze; M-Bus: Netz NÖ + Sagemcom; one daemon each, since a daemon reads one
 * link layer):
 *
 * 1. Takes the capture from `.cache/soak/` or generates it there (once, a minute or two).
 * 2. Starts Mosquitto with `log_type` reduced (its default `all` in tests/e2e/mosquitto.ts
 *    logs every PUBLISH), no queue limits, and `$SYS` every second.
 * 3. Subscribes to `smartmeter/state`: every message is traced to its push (meter id and
 *    meter time), and its `energy_import_wh` checked against the simulator's.
 * 4. Spawns `deno run -A main.ts run -c <config>` (dlms.port = the capture file,
 *    publish_interval 0) and samples its VmRSS every 0.5 s and its read position in the
 *    file (/proc/<pid>/fdinfo) every 20 ms, until it exits at the end of the file.
 * 5. The live-like pass: the same kind of stream served once by a TCP server on loopback
 *    (`dlms.port: tcp://…`), read as fast as the daemon decodes it. A live meter never
 *    waits for the broker: the newest state wins, and the daemon counts every state it
 *    supersedes. The daemon is stopped once the server has closed the connection.
 * 6. Prints a markdown report; exits 1 when
 *    - the replay lost a telegram ("in = out": every telegram of a capture reaches the
 *      subscriber, and the daemon's own count says 0 superseded),
 *    - the live-like pass does not add up (decoded = in, decoded = published +
 *      superseded, and the subscriber saw exactly the published states),
 *    - a state carries a wrong energy value, or
 *    - the RSS of a replay grew by 5 MiB or more after the warm-up (median over the first
 *      tenth of the telegrams after it against the median over the last tenth).
 *
 * The daemon runs with the V8 flags of the compiled binaries (deno.json's compile tasks)
 * unless `--v8-flags` says otherwise. `--hog` starts a busy loop on one core for the whole
 * run and stops it at the end: the soak must pass on a loaded machine too.
 *
 * With V8's default flags (`--v8-flags=`) RSS grows to ~210 MiB during a flood: V8 sizes its
 * young generation and old space to the allocation rate (the live heap after a full GC stays
 * ~20 MiB). V8 flags are comma-separated.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { DEMO_AUTH_KEY, DEMO_KEY } from "../lib/commands/simulate.ts";
import { readCompileTasks } from "./permissions.ts";
import { type Broker, brokerMissing, startBroker } from "../tests/e2e/mosquitto.ts";
import {
  type Message,
  procCpuSeconds,
  procFilePosition,
  procMemory,
  Smartmeter,
  Subscriber,
  tempDir,
  waitUntil,
  writeConfig,
} from "../tests/e2e/process.ts";
import {
  loadAverage,
  machineLines,
  markdownTable,
  median,
  mib,
  MIXED_STREAMS,
  type MixedCapture,
  mixedCapture,
  pushOfState,
  sleep,
  TOPICS,
  tuneBroker,
} from "./harness.ts";

/** Growth of RSS after the warm-up that fails the soak, KiB. */
const GROWTH_LIMIT_KB = 5 * 1024;
const RSS_EVERY_MS = 500;
const POSITION_EVERY_MS = 20;
/** No state for this long after the daemon exited: everything has arrived. */
const QUIET_MS = 2_000;

const USAGE = `deno task soak [--count N] [--live N] [--hog] [--seed S] [--block B] [--warmup W]
                [--only NAME] [--v8-flags=FLAGS]

  --count N      replayed telegrams in all, split between the ${MIXED_STREAMS.length} streams (default 1000000)
  --live N       live-like telegrams (tcp://) in all, split likewise (default 200000; 0: none)
  --hog          a busy loop on one core for the whole run
  --seed S       simulator seed (default 1); count, seed and block key the cache
  --block B      pushes per meter before the stream switches meter (default 1000)
  --warmup W     telegrams per daemon before the RSS baseline (default 20 % of its count)
  --only NAME    one stream: ${MIXED_STREAMS.map((s) => s.name).join(" or ")}
  --v8-flags=F   V8 flags for the daemon (DENO_V8_FLAGS); default: the compiled binaries'
                 flags from deno.json; empty: V8's defaults`;

function log(line: string): void {
  console.error(`soak: ${line}`);
}

/** What the subscriber saw of one capture. */
class Tally {
  /** Times each push was seen, index meter × perMeter + k. */
  readonly seen: Uint8Array;
  received = 0;
  distinct = 0;
  repeats = 0;
  unknown = 0;
  wrongEnergy = 0;
  outOfOrder = 0;
  firstAt = 0;
  lastAt = 0;
  readonly #lastK: number[];
  readonly examples: string[] = [];

  constructor(readonly capture: MixedCapture) {
    this.seen = new Uint8Array(capture.count);
    this.#lastK = capture.meters.map(() => -1);
  }

  onMessage = (m: Message): void => {
    this.received++;
    if (this.firstAt === 0) this.firstAt = m.at;
    this.lastAt = m.at;
    let state: Record<string, unknown>;
    try {
      state = JSON.parse(m.payload);
    } catch {
      this.#odd(`not JSON: ${m.payload.slice(0, 80)}`);
      return;
    }
    const push = pushOfState(this.capture, state);
    if (push === null) {
      this.unknown++;
      this.#odd(`matches no push: ${m.payload.slice(0, 120)}`);
      return;
    }
    const i = push.meter * this.capture.perMeter + push.k;
    if (this.seen[i]! > 0) this.repeats++;
    else this.distinct++;
    if (this.seen[i]! < 255) this.seen[i]!++;
    if (state.energy_import_wh !== this.capture.energyImportWh[push.k]) {
      this.wrongEnergy++;
      this.#odd(`push ${push.k}: energy_import_wh ${state.energy_import_wh}`);
    }
    const last = this.#lastK[push.meter]!;
    if (push.k < last) this.outOfOrder++;
    this.#lastK[push.meter] = Math.max(last, push.k);
  };

  #odd(line: string): void {
    if (this.examples.length < 5) this.examples.push(line);
  }

  /** The pushes never seen, as "meter #a–#b" runs. */
  missing(): string {
    const runs: string[] = [];
    let total = 0;
    const { perMeter, meters } = this.capture;
    for (const [m, meter] of meters.entries()) {
      for (let k = 0; k < perMeter; k++) {
        if (this.seen[m * perMeter + k]! > 0) continue;
        let j = k;
        while (j + 1 < perMeter && this.seen[m * perMeter + j + 1] === 0) j++;
        total += j - k + 1;
        runs.push(`${meter} ${k === j ? `#${k}` : `#${k}–#${j}`}`);
        k = j;
      }
    }
    if (total === 0) return "none";
    const shown = runs.length > 6 ? [...runs.slice(0, 6), "…"] : runs;
    return `${total.toLocaleString("en")} in ${runs.length} run(s): ${shown.join(", ")}`;
  }
}

interface Sample {
  /** ms since the daemon was spawned. */
  t: number;
  rssKb: number;
  /** Telegrams read, estimated from the file position (null: file not open). */
  read: number | null;
  received: number;
}

/** The daemon's resident memory after the warm-up, KiB. */
interface RssFigures {
  /** The sample when the reader passed the warm-up mark, and the last one while reading. */
  atWarmupKb: number | null;
  lastKb: number | null;
  /** Medians over the first and the last tenth of the telegrams after the warm-up. */
  warmupMedianKb: number | null;
  endMedianKb: number | null;
  /** endMedian − warmupMedian: the figure judged against the 5 MiB limit. */
  growthKb: number | null;
  maxKb: number | null;
  /** Least-squares slope of RSS over telegrams read after the warm-up, KiB per 100,000. */
  slopeKbPer100k: number | null;
}

/**
 * RSS figures robust to V8's saw-tooth: single samples can land on a peak or a trough of
 * a heap that grows and shrinks by 20 MiB within seconds, so growth is judged between the
 * medians of a window after the warm-up and a window at the end, and the trend by a
 * fitted slope; the single samples are reported too.
 */
function rssFigures(samples: Sample[], warmup: number, count: number): RssFigures {
  const after = samples.filter((s): s is Sample & { read: number } =>
    s.read !== null && s.read >= warmup
  );
  const tenth = count / 10;
  const first = after.filter((s) => s.read < warmup + tenth).map((s) => s.rssKb);
  const last = after.filter((s) => s.read >= count - tenth).map((s) => s.rssKb);
  const warmupMedianKb = first.length > 0 ? median(first) : null;
  const endMedianKb = last.length > 0 ? median(last) : null;
  let slopeKbPer100k: number | null = null;
  if (after.length >= 3) {
    const mx = after.reduce((a, s) => a + s.read, 0) / after.length;
    const my = after.reduce((a, s) => a + s.rssKb, 0) / after.length;
    const sxy = after.reduce((a, s) => a + (s.read - mx) * (s.rssKb - my), 0);
    const sxx = after.reduce((a, s) => a + (s.read - mx) ** 2, 0);
    if (sxx > 0) slopeKbPer100k = (sxy / sxx) * 100_000;
  }
  return {
    atWarmupKb: after[0]?.rssKb ?? null,
    lastKb: samples.filter((s) => s.read !== null).at(-1)?.rssKb ?? null,
    warmupMedianKb,
    endMedianKb,
    growthKb: warmupMedianKb === null || endMedianKb === null ? null : endMedianKb - warmupMedianKb,
    maxKb: after.length > 0 ? Math.max(...after.map((s) => s.rssKb)) : null,
    slopeKbPer100k,
  };
}

interface StreamResult {
  name: string;
  capture: MixedCapture;
  tally: Tally;
  samples: Sample[];
  exitCode: number;
  stopping: string;
  rss: RssFigures;
  hwmKb: number;
  cpuS: number;
  firstByteAt: number | null;
  readDoneAt: number | null;
  exitAt: number;
  spawnedAt: number;
  discovery: number;
  sys: Map<string, string>;
  warnings: string[];
  /** The daemon's log when it read nothing (it failed to start). */
  failedLog: string | null;
  /** The daemon's own account: states published and superseded (null: no such line). */
  sink: SinkTally | null;
}

/** What the daemon says became of its readings, at its stop. */
interface SinkTally {
  decoded: number;
  published: number;
  superseded: number;
}

/** Reads the daemon's "Stopping" and "Disconnected" lines. */
function sinkTally(stderr: string): SinkTally | null {
  const decoded = /Stopping: (\d+) telegrams decoded/.exec(stderr);
  const sink = /Disconnected from the MQTT broker: (\d+) states published, (\d+) superseded/
    .exec(stderr);
  if (decoded === null || sink === null) return null;
  return { decoded: Number(decoded[1]), published: Number(sink[1]), superseded: Number(sink[2]) };
}

/** A broker tuned for the flood, with subscribers: every state to `tally`, `$SYS` to `sys`. */
async function floodBroker(
  tally: Tally,
  sys: Map<string, string>,
  extra: { topic: string; onMessage: (m: Message) => void }[] = [],
): Promise<{ broker: Broker; subs: Subscriber[] }> {
  const broker = await startBroker();
  const subs: Subscriber[] = [];
  try {
    await tuneBroker(broker, BROKER_SETTINGS);
    const topics = [
      { topic: TOPICS.state, onMessage: tally.onMessage },
      ...extra,
      { topic: "$SYS/broker/#", onMessage: (m: Message) => sys.set(m.topic, m.payload) },
    ];
    for (const t of topics) {
      subs.push(await Subscriber.open(broker.port, { ...t, keep: () => false }));
    }
    return { broker, subs };
  } catch (e) {
    for (const sub of subs) await sub.close();
    await broker.close();
    throw e;
  }
}

async function soakStream(
  stream: (typeof MIXED_STREAMS)[number],
  opts: { count: number; seed: number; block: number; warmup: number; v8Flags: string | null },
  dir: string,
): Promise<StreamResult> {
  const capture = await mixedCapture({
    meters: stream.meters,
    count: opts.count,
    seed: opts.seed,
    block: opts.block,
    progress: (done, count) => log(`  generated ${done.toLocaleString("en")} of ${count}`),
  });
  log(
    `${stream.name}: ${capture.generated ? "generated" : "reusing"} ${capture.path} (${
      (capture.bytes / 1048576).toFixed(1)
    } MiB${capture.generated ? `, ${capture.generateSeconds.toFixed(0)} s` : ""})`,
  );
  const bytesPerTelegram = capture.bytes / capture.count;

  const tally = new Tally(capture);
  const sys = new Map<string, string>();
  let discovery = 0;
  const { broker, subs } = await floodBroker(tally, sys, [
    { topic: TOPICS.discovery, onMessage: () => discovery++ },
  ]);
  try {
    const config = await writeConfig(dir, {
      logging: "info",
      meter_type: "auto",
      dlms: { port: capture.path, key: DEMO_KEY, auth_key: DEMO_AUTH_KEY },
      mqtt: { host: "127.0.0.1", port: broker.port, publish_interval: 0 },
    }, `${stream.name}.yaml`);

    log(`${stream.name}: replaying ${capture.count.toLocaleString("en")} telegrams`);
    const daemon = Smartmeter.spawn(
      ["run", "-c", config],
      opts.v8Flags === null ? {} : { env: { DENO_V8_FLAGS: opts.v8Flags } },
    );
    const samples: Sample[] = [];
    let firstByteAt: number | null = null;
    let readDoneAt: number | null = null;
    let hwmKb = 0;
    let cpuS = 0;
    let nextRss = 0;
    let nextProgress = 0;
    while (daemon.status === null) {
      const t = performance.now();
      const pos = procFilePosition(daemon.pid, capture.path);
      if (pos !== null && pos > 0 && firstByteAt === null) firstByteAt = t;
      if (pos === null && firstByteAt !== null && readDoneAt === null) readDoneAt = t;
      if (t >= nextRss) {
        nextRss = t + RSS_EVERY_MS;
        try {
          const mem = procMemory(daemon.pid);
          cpuS = procCpuSeconds(daemon.pid);
          hwmKb = mem.hwmKb;
          samples.push({
            t: t - daemon.spawnedAt,
            rssKb: mem.rssKb,
            read: pos === null ? null : Math.floor(pos / bytesPerTelegram),
            received: tally.received,
          });
        } catch {
          break; // exited meanwhile
        }
      }
      if (t >= nextProgress) {
        nextProgress = t + 10_000;
        const s = samples.at(-1);
        if (s !== undefined && s.read !== null) {
          log(
            `  ${stream.name}: read ~${s.read.toLocaleString("en")}, received ${
              tally.received.toLocaleString("en")
            }, RSS ${mib(s.rssKb)} MiB`,
          );
        }
      }
      await sleep(POSITION_EVERY_MS);
    }
    const status = await daemon.waitExit(600_000);
    const exitAt = performance.now();
    readDoneAt ??= exitAt;
    await waitUntil(
      () => performance.now() - Math.max(tally.lastAt, exitAt) > QUIET_MS,
      "the last state message",
      600_000,
    );
    // One more $SYS round, so the broker's counters include the end.
    await sleep(1_500);

    const stopping = /Stopping: .*/.exec(daemon.stderr)?.[0] ?? "(no Stopping line)";
    return {
      name: stream.name,
      capture,
      tally,
      samples,
      exitCode: status.code,
      stopping,
      rss: rssFigures(samples, opts.warmup, capture.count),
      hwmKb,
      cpuS,
      firstByteAt,
      readDoneAt,
      exitAt,
      spawnedAt: daemon.spawnedAt,
      discovery,
      sys,
      warnings: daemon.logLines(/WARNING|ERROR/).slice(0, 5),
      failedLog: firstByteAt === null ? daemon.output.slice(-2_000) : null,
      sink: sinkTally(daemon.stderr),
    };
  } finally {
    for (const s of subs) await s.close();
    await broker.close();
  }
}

/** What the live-like pass saw. */
interface LiveResult {
  name: string;
  capture: MixedCapture;
  tally: Tally;
  sink: SinkTally | null;
  exitCode: number;
  sys: Map<string, string>;
  /** Connection accepted → the daemon has decoded it all (it logs the closed connection), s. */
  readSeconds: number;
  cpuS: number;
  warnings: string[];
  log: string;
}

/**
 * Serves `path` once over TCP on loopback, as fast as the reader takes it, then closes
 * the connection and the listener (the daemon's reconnects are refused from then on).
 */
function serveOnce(path: string): { port: number; done: Promise<{ at: number; from: number }> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    const conn = await listener.accept();
    listener.close();
    const from = performance.now();
    const file = await Deno.open(path, { read: true });
    await file.readable.pipeTo(conn.writable).catch(() => {});
    return { at: performance.now(), from };
  })();
  return { port: (listener.addr as Deno.NetAddr).port, done };
}

async function soakLive(
  stream: (typeof MIXED_STREAMS)[number],
  opts: { count: number; seed: number; block: number; v8Flags: string },
  dir: string,
): Promise<LiveResult> {
  const capture = await mixedCapture({
    meters: stream.meters,
    count: opts.count,
    seed: opts.seed,
    block: opts.block,
    progress: (done, count) => log(`  generated ${done.toLocaleString("en")} of ${count}`),
  });
  const tally = new Tally(capture);
  const sys = new Map<string, string>();
  const { broker, subs } = await floodBroker(tally, sys);
  try {
    const server = serveOnce(capture.path);
    const config = await writeConfig(dir, {
      logging: "info",
      meter_type: "auto",
      dlms: { port: `tcp://127.0.0.1:${server.port}`, key: DEMO_KEY, auth_key: DEMO_AUTH_KEY },
      mqtt: { host: "127.0.0.1", port: broker.port, publish_interval: 0 },
    }, `${stream.name}-live.yaml`);
    log(`${stream.name}: ${capture.count.toLocaleString("en")} telegrams live-like over tcp://`);
    const daemon = Smartmeter.spawn(
      ["run", "-c", config],
      opts.v8Flags === "" ? {} : { env: { DENO_V8_FLAGS: opts.v8Flags } },
    );
    try {
      const served = await server.done;
      // The connection closed: the daemon has decoded all it read once it says so.
      await daemon.waitFor(/Lost tcp:\/\//, 600_000);
      const decodedAt = performance.now();
      await waitUntil(
        () => performance.now() - Math.max(tally.lastAt, served.at) > QUIET_MS,
        "the last state message",
        600_000,
      );
      const cpuS = procCpuSeconds(daemon.pid);
      const status = await daemon.stop(30_000);
      await sleep(1_500); // one more $SYS round
      return {
        name: stream.name,
        capture,
        tally,
        sink: sinkTally(daemon.stderr),
        exitCode: status.code,
        sys,
        readSeconds: (decodedAt - served.from) / 1000,
        cpuS,
        warnings: daemon.logLines(/WARNING|ERROR/).slice(0, 5),
        log: daemon.stderr.slice(-2_000),
      };
    } finally {
      await daemon.stop();
    }
  } finally {
    for (const s of subs) await s.close();
    await broker.close();
  }
}

/** The live-like passes as a table, and whether each adds up. */
function liveReport(results: LiveResult[]): string[] {
  const rows = results.map((r) => {
    const k = r.sink;
    const sys = (key: string) => r.sys.get(`$SYS/broker/${key}`) ?? "n/a";
    return [
      `${r.name} (${r.capture.meters.join(" + ")})`,
      r.capture.count.toLocaleString("en"),
      k?.decoded.toLocaleString("en") ?? "n/a",
      k?.published.toLocaleString("en") ?? "n/a",
      k?.superseded.toLocaleString("en") ?? "n/a",
      k === null ? "n/a" : k.published + k.superseded === k.decoded ? "yes" : "NO",
      r.tally.distinct.toLocaleString("en"),
      `${sys("publish/messages/received")} / ${sys("publish/messages/dropped")}`,
      Math.round(r.capture.count / r.readSeconds).toLocaleString("en"),
      r.cpuS.toFixed(1),
    ];
  });
  const out = [
    ...markdownTable(
      [
        "stream",
        "telegrams in",
        "decoded",
        "states published",
        "superseded",
        "decoded = published + superseded",
        "distinct states at the subscriber",
        "broker: PUBLISH received / dropped",
        "telegrams/s (decoded)",
        "daemon CPU (s)",
      ],
      rows,
    ),
  ];
  for (const r of results) {
    if (r.tally.examples.length > 0) {
      out.push("", `${r.name}, odd messages:`, ...r.tally.examples.map((e) => `- ${e}`));
    }
    if (r.warnings.length > 0) {
      out.push("", `${r.name}, daemon warnings (first 5):`, ...r.warnings.map((w) => `- \`${w}\``));
    }
    if (r.sink === null) out.push("", `${r.name}: the daemon's log ends:`, "```", r.log, "```");
  }
  return out;
}

/** Failures of the live-like arithmetic. */
function liveFailures(r: LiveResult): string[] {
  const k = r.sink;
  if (k === null) return [`${r.name} live: the daemon did not report its counts`];
  const out: string[] = [];
  if (k.decoded !== r.capture.count) {
    out.push(`${r.name} live: ${k.decoded} of ${r.capture.count} telegrams decoded`);
  }
  if (k.published + k.superseded !== k.decoded) {
    out.push(
      `${r.name} live: decoded ${k.decoded} ≠ published ${k.published} + superseded ${k.superseded}`,
    );
  }
  if (r.tally.distinct !== k.published) {
    out.push(
      `${r.name} live: the subscriber saw ${r.tally.distinct} states, the daemon published ${k.published}`,
    );
  }
  if (r.tally.wrongEnergy > 0) out.push(`${r.name} live: ${r.tally.wrongEnergy} wrong states`);
  return out;
}

/** A busy loop on one core, in its own process. */
function startHog(): { stop(): Promise<void> } {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "for (;;) {}"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  return {
    async stop() {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
    },
  };
}

/** No PUBLISH logging, no queue limits, `$SYS` every second. */
const BROKER_SETTINGS = {
  log_type: ["error", "warning", "notice"],
  max_queued_messages: "0",
  max_queued_bytes: "0",
  max_inflight_messages: "0",
  sys_interval: "1",
} as const;

/** RSS over the run, one row per tenth of the telegrams read. */
function rssCurve(r: StreamResult): string[] {
  const rows: (string | number)[][] = [];
  const step = r.capture.count / 10;
  let next = step;
  for (const s of r.samples) {
    if (s.read === null || s.read < next) continue;
    rows.push([
      `~${s.read.toLocaleString("en")}`,
      mib(s.rssKb),
      (s.t / 1000).toFixed(1),
      s.received.toLocaleString("en"),
    ]);
    while (next <= s.read) next += step;
  }
  return markdownTable(
    ["telegrams read (file position)", "RSS (MiB)", "s since spawn", "states received by then"],
    rows,
  );
}

/** Seconds from `a` to `b` (performance.now()), or "n/a". */
function span(a: number | null, b: number | null): string {
  return a === null || b === null ? "n/a" : ((b - a) / 1000).toFixed(1);
}

function report(results: StreamResult[], opts: { warmup: number; v8Flags: string | null }) {
  const out: string[] = [];
  const m = (kb: number | null, sign = false) =>
    kb === null ? "n/a" : `${sign && kb >= 0 ? "+" : ""}${mib(kb)}`;
  const rows = results.map((r) => {
    const t = r.tally;
    const wall = r.firstByteAt === null ? NaN : (t.lastAt - r.firstByteAt) / 1000;
    return [
      `${r.name} (${r.capture.meters.join(" + ")})`,
      r.capture.count.toLocaleString("en"),
      t.distinct.toLocaleString("en"),
      `${t.received.toLocaleString("en")} (${t.repeats} repeats)`,
      `${m(r.rss.atWarmupKb)} / ${m(r.rss.lastKb)}`,
      `${m(r.rss.warmupMedianKb)} / ${m(r.rss.endMedianKb)}`,
      m(r.rss.growthKb, true),
      m(r.rss.slopeKbPer100k, true),
      m(r.rss.maxKb),
      mib(r.hwmKb),
      wall.toFixed(1),
      Math.round(t.distinct / wall).toLocaleString("en"),
      r.cpuS.toFixed(1),
    ];
  });
  out.push(
    ...markdownTable(
      [
        "stream",
        "telegrams in",
        "telegrams out (distinct)",
        "state messages",
        "RSS at warm-up mark / last sample (MiB)",
        "RSS median, first / last tenth after warm-up (MiB)",
        "growth of the medians (MiB)",
        "trend (MiB per 100k)",
        "max after warm-up (MiB)",
        "VmHWM (MiB)",
        "first byte → last state (s)",
        "telegrams/s",
        "daemon CPU (s)",
      ],
      rows,
    ),
  );
  const totalIn = results.reduce((n, r) => n + r.capture.count, 0);
  const totalOut = results.reduce((n, r) => n + r.tally.distinct, 0);
  out.push(
    "",
    "",
    "Growth is judged between the medians of RSS over the first and the last tenth of the telegrams after the warm-up (V8's heap saw-tooth moves single samples by ±20 MiB); the trend is the least-squares slope over all samples after the warm-up.",
    `In all: ${totalIn.toLocaleString("en")} telegrams in, ${
      totalOut.toLocaleString("en")
    } out. Warm-up: ${opts.warmup.toLocaleString("en")} telegrams read per daemon. V8 flags: ${
      opts.v8Flags ?? "none"
    }.`,
  );
  for (const r of results) {
    const t = r.tally;
    const sys = (k: string) => r.sys.get(`$SYS/broker/${k}`) ?? "n/a";
    out.push(
      "",
      `### ${r.name}: ${r.capture.meters.join(" + ")}`,
      "",
      `Capture ${
        r.capture.bytes.toLocaleString("en")
      } bytes, runs of ${r.capture.block} pushes per meter, seed ${r.capture.seed}. Daemon exit status ${r.exitCode}; ${r.stopping}.`,
      "",
      ...markdownTable(["figure", "value"], [
        ["telegrams missing at the subscriber", t.missing()],
        [
          "the daemon's count: decoded / states published / superseded",
          r.sink === null
            ? "n/a"
            : `${r.sink.decoded} / ${r.sink.published} / ${r.sink.superseded}`,
        ],
        ["state messages matching no push", t.unknown],
        ["states with a wrong energy_import_wh", t.wrongEnergy],
        ["states of a meter arriving out of order", t.outOfOrder],
        ["discovery messages", r.discovery],
        [
          "broker: PUBLISH received / sent / dropped",
          `${sys("publish/messages/received")} / ${sys("publish/messages/sent")} / ${
            sys("publish/messages/dropped")
          }`,
        ],
        ["spawn → first byte read (s)", span(r.spawnedAt, r.firstByteAt)],
        ["first byte → end of file read (s)", span(r.firstByteAt, r.readDoneAt)],
        [
          "end of file read → last state at the subscriber (s)",
          span(r.readDoneAt, t.lastAt || null),
        ],
        ["spawn → exit (s)", ((r.exitAt - r.spawnedAt) / 1000).toFixed(1)],
      ]),
      "",
      ...rssCurve(r),
    );
    if (r.failedLog !== null) {
      out.push("", "The daemon read nothing; its output:", "", "```", r.failedLog, "```");
    }
    if (t.examples.length > 0) out.push("", "Odd messages:", ...t.examples.map((e) => `- ${e}`));
    if (r.warnings.length > 0) {
      out.push("", "Daemon warnings (first 5):", ...r.warnings.map((w) => `- \`${w}\``));
    }
  }
  return out;
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        count: { type: "string", default: "1000000" },
        live: { type: "string", default: "200000" },
        hog: { type: "boolean", default: false },
        seed: { type: "string", default: "1" },
        block: { type: "string", default: "1000" },
        warmup: { type: "string" },
        only: { type: "string" },
        "v8-flags": { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    }));
  } catch (e) {
    console.error(`soak: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const streams = MIXED_STREAMS.filter((s) => values.only === undefined || s.name === values.only);
  const count = Number(values.count);
  const live = Number(values.live);
  const seed = Number(values.seed);
  const block = Number(values.block);
  const unit = 2 * MIXED_STREAMS.length;
  if (
    streams.length === 0 || !(count > 0 && count % unit === 0) ||
    !(live >= 0 && live % unit === 0) || !(block > 0)
  ) {
    console.error(`soak: bad arguments (count, live: multiples of ${unit})\n${USAGE}`);
    return 2;
  }
  const perDaemon = count / MIXED_STREAMS.length;
  const livePerDaemon = live / MIXED_STREAMS.length;
  const warmup = values.warmup === undefined ? Math.round(perDaemon / 5) : Number(values.warmup);
  const missing = brokerMissing();
  if (missing !== null) {
    console.error(`soak: ${missing}`);
    return 1;
  }
  const compiled = (await readCompileTasks()).find((t) => t.arch === "x86_64");
  const v8Flags = values["v8-flags"] ?? compiled?.v8Flags.join(",") ?? "";
  const startLoad = machineLines();
  const hog = values.hog ? startHog() : null;
  if (hog) log("a busy loop runs on one core for the whole soak");
  const results: StreamResult[] = [];
  const liveResults: LiveResult[] = [];
  try {
    await using dir = await tempDir("smartmeter-soak-");
    for (const stream of streams) {
      results.push(
        await soakStream(stream, { count: perDaemon, seed, block, warmup, v8Flags }, dir.path),
      );
    }
    if (livePerDaemon > 0) {
      for (const stream of streams) {
        liveResults.push(
          await soakLive(stream, { count: livePerDaemon, seed, block, v8Flags }, dir.path),
        );
      }
    }
  } finally {
    await hog?.stop();
  }
  const out = [
    `## Soak: ${
      (perDaemon * streams.length).toLocaleString("en")
    } telegrams replayed through \`smartmeter run\` to Mosquitto`,
    "",
    `Measured ${new Date().toISOString().slice(0, 16)}Z with \`deno task soak${
      Deno.args.length > 0 ? ` ${Deno.args.join(" ")}` : ""
    }\`${hog ? ", **with a busy loop on one core** for the whole run" : ""}.`,
    "",
    ...startLoad,
    "",
    ...report(results, { warmup, v8Flags: v8Flags === "" ? null : v8Flags }),
  ];
  if (liveResults.length > 0) {
    out.push(
      "",
      `## Live-like: ${
        (livePerDaemon * streams.length).toLocaleString("en")
      } telegrams over tcp://, as fast as the daemon reads`,
      "",
      "A live meter never waits for the broker: the newest state wins, and the daemon counts every state it supersedes, so decoded = published + superseded.",
      "",
      ...liveReport(liveResults),
    );
  }
  out.push("", `Load average at the end: ${loadAverage()}.`);
  console.log(out.join("\n"));
  const failures: string[] = [];
  for (const r of results) {
    if (r.tally.distinct !== r.capture.count) {
      failures.push(`${r.name}: ${r.capture.count - r.tally.distinct} telegrams missing`);
    }
    if (r.sink !== null && r.sink.superseded > 0) {
      failures.push(`${r.name}: the daemon superseded ${r.sink.superseded} states of a replay`);
    }
    if (r.tally.wrongEnergy > 0) failures.push(`${r.name}: ${r.tally.wrongEnergy} wrong states`);
    const growth = r.rss.growthKb;
    if (growth === null) failures.push(`${r.name}: no RSS at warm-up and end`);
    else if (growth >= GROWTH_LIMIT_KB) {
      failures.push(`${r.name}: RSS grew ${mib(growth)} MiB after the warm-up (limit 5)`);
    }
  }
  for (const r of liveResults) failures.push(...liveFailures(r));
  for (const f of failures) console.error(`soak: FAIL ${f}`);
  return failures.length === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());

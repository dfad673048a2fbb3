/**
 * Shared pieces of the soak and fault harnesses (scripts/soak.ts, scripts/faults.ts):
 * the mixed capture file, a broker tuned for floods, state messages traced back to the
 * push they came from, and the small statistics and markdown helpers of the reports.
 *
 * A mixed capture interleaves simulated meters (lib/simulator.ts) of one link layer in
 * runs of `block` pushes each (see {@link MIXED_STREAMS}), all encrypted with the demo
 * key; the Burgenland meter adds a GCM tag with the demo authentication key, so one
 * daemon configured with both keys decodes all of them:
 *
 * ```
 *  run 0                                          run 1
 *  burgenland k=0…B-1 │ wiener-netze k=0…B-1 │ burgenland k=B…2B-1 │ wiener-netze … │ …
 *  push k of every meter carries the meter time START + 5 s × k; every meter has its own
 *  system title and its own increasing frame counter
 * ```
 *
 * The simulators share one seed and one clock, so their registers are equal at the same
 * k: push k of any meter must publish `energy_import_wh` = `energyImportWh[k]`.
 * Generating a million AES-GCM pushes takes a minute or two, so the file is written once
 * into `.cache/soak/` (gitignored), keyed by meters, count, seed and block, and reused.
 *
 * @module
 */

import { fromHex } from "../lib/bytes.ts";
import { DEMO_AUTH_KEY, DEMO_KEY } from "../lib/commands/simulate.ts";
import { MeterSimulator, type SimulatedMeter } from "../lib/simulator.ts";
import type { Broker } from "../tests/e2e/mosquitto.ts";
import type { Message } from "../tests/e2e/process.ts";
export { PtyMeter } from "../tests/e2e/process.ts";

/** The project's root directory. */
export const ROOT: string = new URL("../", import.meta.url).pathname;

/** Topics of the default device id `smartmeter`. */
export const TOPICS = {
  state: "smartmeter/state",
  availability: "smartmeter/availability",
  discovery: "homeassistant/device/smartmeter/config",
  diagnostics: "smartmeter/diagnostics",
  meter: "smartmeter/meter",
} as const;

/**
 * The mixed streams of the soak: one per link layer, since the framer locks onto the
 * framing of the first frame with a good checksum (lib/framing/framer.ts) and then skips
 * the other framing's bytes; one daemon reads one meter's link layer.
 */
export const MIXED_STREAMS: readonly { name: string; meters: readonly SimulatedMeter[] }[] = [
  { name: "HDLC", meters: ["burgenland", "wiener-netze"] },
  { name: "M-Bus", meters: ["noe_evn", "sagemcom"] },
];

/** Meter time between two pushes of one meter, ms. */
export const PUSH_PERIOD_MS = 5_000;
/** Meter time of push 0 (whole seconds: a DLMS date-time has no milliseconds). */
export const CAPTURE_START_MS = Date.UTC(2024, 0, 1);
/** Bump when the capture's layout changes, so an old cache file is not reused. */
const CAPTURE_VERSION = 1;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A simulator of `meter` with the demo key (and the demo auth key for Burgenland). */
export async function demoSimulator(meter: SimulatedMeter, seed = 1): Promise<MeterSimulator> {
  return await MeterSimulator.create({
    meter,
    key: fromHex(DEMO_KEY),
    authKey: meter === "burgenland" ? fromHex(DEMO_AUTH_KEY) : null,
    seed,
  });
}

/** A mixed capture file and what a correct daemon must publish from it. */
export interface MixedCapture {
  path: string;
  meters: readonly SimulatedMeter[];
  count: number;
  seed: number;
  block: number;
  /** Pushes per meter (count / 4). */
  perMeter: number;
  /** Size of the file, bytes. */
  bytes: number;
  /** `energy_import_wh` of push k (the same for every meter). */
  energyImportWh: number[];
  /** The meter id each meter's state carries (null: the layout has none). */
  meterIds: Partial<Record<SimulatedMeter, string | null>>;
  /** Whether the file was generated now (false: reused from the cache). */
  generated: boolean;
  /** Seconds the generation took (0 when reused). */
  generateSeconds: number;
}

interface CaptureMeta {
  version: number;
  count: number;
  seed: number;
  block: number;
  bytes: number;
  energyImportWh: number[];
  meterIds: Partial<Record<SimulatedMeter, string | null>>;
}

/** The layouts that carry no meter id: their state's `meter_id` is null. */
const WITHOUT_METER_ID: ReadonlySet<SimulatedMeter> = new Set(["wiener-netze"]);

/**
 * The mixed capture of `count` pushes of `meters` (a multiple of their number), from the
 * cache or generated into it. `progress` is told every 50,000 pushes while generating.
 */
export async function mixedCapture(opts: {
  meters: readonly SimulatedMeter[];
  count: number;
  seed: number;
  block: number;
  cacheDir?: string;
  progress?: (done: number, count: number) => void;
}): Promise<MixedCapture> {
  const { meters, count, seed, block } = opts;
  if (count <= 0 || count % meters.length !== 0) {
    throw new RangeError(
      `Capture size must be a positive multiple of ${meters.length}, got ${count}`,
    );
  }
  if (block <= 0) throw new RangeError(`Block must be positive, got ${block}`);
  const perMeter = count / meters.length;
  const dir = opts.cacheDir ?? `${ROOT}.cache/soak`;
  const name = `${meters.join("+")}-v${CAPTURE_VERSION}-n${count}-seed${seed}-block${block}`;
  const path = `${dir}/${name}.bin`;
  const metaPath = `${dir}/${name}.json`;
  try {
    const meta = JSON.parse(await Deno.readTextFile(metaPath)) as CaptureMeta;
    const size = (await Deno.stat(path)).size;
    if (meta.version === CAPTURE_VERSION && meta.bytes === size) {
      return {
        path,
        meters,
        count,
        seed,
        block,
        perMeter,
        bytes: size,
        energyImportWh: meta.energyImportWh,
        meterIds: meta.meterIds,
        generated: false,
        generateSeconds: 0,
      };
    }
  } catch {
    // Not cached yet (or half written): generate it.
  }
  await Deno.mkdir(dir, { recursive: true });
  const t0 = performance.now();
  const sims = await Promise.all(meters.map((m) => demoSimulator(m, seed)));
  const energyImportWh: number[] = new Array(perMeter);
  const meterIds: Partial<Record<SimulatedMeter, string | null>> = {};
  const tmp = `${path}.${Deno.pid}.tmp`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  let bytes = 0;
  let done = 0;
  const batch: Uint8Array[] = [];
  let batchBytes = 0;
  const flush = async () => {
    const joined = new Uint8Array(batchBytes);
    let at = 0;
    for (const b of batch) {
      joined.set(b, at);
      at += b.length;
    }
    let off = 0;
    while (off < joined.length) off += await file.write(joined.subarray(off));
    batch.length = 0;
    batchBytes = 0;
  };
  try {
    for (let from = 0; from < perMeter; from += block) {
      const to = Math.min(perMeter, from + block);
      for (const [m, sim] of sims.entries()) {
        const meter = meters[m]!;
        for (let k = from; k < to; k++) {
          const t = await sim.next(new Date(CAPTURE_START_MS + k * PUSH_PERIOD_MS));
          if (m === 0) energyImportWh[k] = t.values.energy_import_wh!;
          else if (t.values.energy_import_wh !== energyImportWh[k]) {
            throw new Error(`Simulators drifted apart at push ${k} of ${meter}`);
          }
          if (k === 0) meterIds[meter] = WITHOUT_METER_ID.has(meter) ? null : t.meterId;
          batch.push(t.bytes);
          batchBytes += t.bytes.length;
          bytes += t.bytes.length;
          if (++done % 50_000 === 0) opts.progress?.(done, count);
        }
        if (batchBytes > 1 << 20) await flush();
      }
    }
    await flush();
  } finally {
    file.close();
  }
  await Deno.rename(tmp, path);
  const meta: CaptureMeta = {
    version: CAPTURE_VERSION,
    count,
    seed,
    block,
    bytes,
    energyImportWh,
    meterIds,
  };
  await Deno.writeTextFile(metaPath, JSON.stringify(meta));
  return {
    path,
    meters,
    count,
    seed,
    block,
    perMeter,
    bytes,
    energyImportWh,
    meterIds,
    generated: true,
    generateSeconds: (performance.now() - t0) / 1000,
  };
}

/** Which push of the mixed capture a state message shows, or null when none fits. */
export function pushOfState(
  capture: MixedCapture,
  state: { time?: unknown; meter_id?: unknown },
): { meter: number; k: number } | null {
  const id = state.meter_id ?? null;
  const meter = capture.meters.findIndex((m) => capture.meterIds[m] === id);
  if (meter < 0) return null;
  const k = (Date.parse(String(state.time)) - CAPTURE_START_MS) / PUSH_PERIOD_MS;
  if (!Number.isInteger(k) || k < 0 || k >= capture.perMeter) return null;
  return { meter, k };
}

// ---- a live meter for the fault scenarios ----

/** One push of a {@link PushFeeder}. */
export interface Push {
  /** Its number: its meter time is CAPTURE_START_MS + 5 s × k. */
  readonly k: number;
  /** performance.now() after it was written; null when there was nowhere to write it. */
  writtenAt: number | null;
  /** When its state first reached the subscriber; null while it has not. */
  arrivedAt: number | null;
}

/**
 * A simulated meter pushing every `periodMs` in the background through `write` (which
 * resolves false when there is nowhere to write, e.g. while unplugged). Push k carries the
 * meter time START + 5 s × k, so every state message names the push it came from; feed
 * the state messages to {@link onState}.
 */
export class PushFeeder {
  readonly pushes: Push[] = [];
  /** State messages that matched no push. */
  unknown = 0;
  #stopped = false;
  #loop: Promise<void> | null = null;

  constructor(
    private readonly sim: MeterSimulator,
    private readonly write: (bytes: Uint8Array) => Promise<boolean>,
    private readonly periodMs: number,
  ) {}

  start(): this {
    this.#loop ??= (async () => {
      while (!this.#stopped) {
        const k = this.pushes.length;
        const t = await this.sim.next(new Date(CAPTURE_START_MS + k * PUSH_PERIOD_MS));
        const push: Push = { k, writtenAt: null, arrivedAt: null };
        this.pushes.push(push);
        if (await this.write(t.bytes)) push.writtenAt = performance.now();
        await sleep(this.periodMs);
      }
    })();
    return this;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }

  onState = (m: Message): void => {
    let time: unknown;
    try {
      time = (JSON.parse(m.payload) as { time?: unknown }).time;
    } catch {
      this.unknown++;
      return;
    }
    const k = (Date.parse(String(time)) - CAPTURE_START_MS) / PUSH_PERIOD_MS;
    const push = Number.isInteger(k) ? this.pushes[k] : undefined;
    if (push === undefined) this.unknown++;
    else push.arrivedAt ??= m.at;
  };

  /** Pushes written in [from, to] (performance.now()). */
  writtenIn(from: number, to: number): Push[] {
    return this.pushes.filter((p) =>
      p.writtenAt !== null && p.writtenAt >= from && p.writtenAt <= to
    );
  }

  /** How many pushes written after `since` have arrived. */
  arrivedSince(since: number): number {
    return this.writtenIn(since, Infinity).filter((p) => p.arrivedAt !== null).length;
  }

  /** The first push written after `since` whose state arrived, or undefined. */
  firstArrivedAfter(since: number): Push | undefined {
    return this.writtenIn(since, Infinity).find((p) => p.arrivedAt !== null);
  }
}

// ---- the broker ----

/**
 * Rewrites settings of a broker from tests/e2e/mosquitto.ts (which has no option for
 * them) and restarts it on the same port: each key's lines replace those of that key, or
 * are added (several values: several lines, as `log_type` takes). Used for `log_type`
 * (its default `all` logs every PUBLISH), queue limits and `sys_interval`.
 */
export async function tuneBroker(
  broker: Broker,
  settings: Record<string, string | readonly string[]>,
): Promise<void> {
  const file = `${broker.dir}/mosquitto.conf`;
  let lines = (await Deno.readTextFile(file)).split("\n").filter((l) => l !== "");
  for (const [key, value] of Object.entries(settings)) {
    lines = lines.filter((l) => l.split(/\s+/)[0] !== key);
    for (const v of typeof value === "string" ? [value] : value) lines.push(`${key} ${v}`);
  }
  await Deno.writeTextFile(file, lines.join("\n") + "\n");
  await broker.stop();
  await broker.start();
}

// ---- statistics and tables ----

/** The nearest-rank percentile `p` (0…1) of `values`; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]!;
}

export const median = (values: readonly number[]): number => percentile(values, 0.5);

/** KiB as MiB with one decimal. */
export const mib = (kb: number): string => (kb / 1024).toFixed(1);

/** A markdown table; `align` is "l" or "r" per column (default: first left, others right). */
export function markdownTable(
  headers: readonly string[],
  rows: readonly (readonly (string | number)[])[],
  align?: readonly ("l" | "r")[],
): string[] {
  const a = align ?? headers.map((_, i) => (i === 0 ? "l" : "r"));
  return [
    `| ${headers.join(" | ")} |`,
    `|${a.map((x) => (x === "l" ? "---" : "---:")).join("|")}|`,
    ...rows.map((r) => `| ${r.map(String).join(" | ")} |`),
  ];
}

/** The machine the figures come from. */
export function machineLines(): string[] {
  const cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? "unknown CPU";
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(Deno.readTextFileSync("/proc/meminfo"))?.[1]);
  return [
    `- CPU: ${navigator.hardwareConcurrency} × ${model}; RAM ${(memKb / 1048576).toFixed(1)} GiB`,
    `- Load average at the start: ${loadAverage()} (the machine may be shared)`,
    `- Deno ${Deno.version.deno} (V8 ${Deno.version.v8}), kernel ${Deno.osRelease()}`,
  ];
}

export function loadAverage(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}

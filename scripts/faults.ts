/**
 * `deno task faults`: `smartmeter run` against the faults of years of service, each
 * repeated, with a real Mosquitto and a simulated meter pushing every 250 ms.
 *
 * ```
 * deno task faults                       # 20 cycles of each scenario, about 2 minutes
 * deno task faults --cycles 3            # a rehearsal
 * deno task faults --only broker --sequential
 * ```
 *
 * One daemon (and one broker) per scenario; the four run side by side unless
 * `--sequential`:
 *
 * - **serial**: a pseudo-terminal behind a symlink (Burgenland, HDLC with auth key).
 *   Unplug = remove the symlink and close the master; ~1 s later a new pty and symlink.
 *   Recovery: replug → the first state of a push written after the replug.
 * - **broker**: Mosquitto stopped, ~1 s, started on the same port (the meter, Netz NÖ
 *   M-Bus, on a plain pty). Reconnect: broker started → `online` at a subscriber that
 *   connects right after the start; recovery: start → first new state. Discovery
 *   messages are counted between one restart and the next.
 * - **broker-long**: three more restarts with the broker down 5, 15 and 30 s, longer than
 *   the first steps of the sink's reconnect backoff (1, 2, 4, 8 … 60 s, ±25 % jitter),
 *   to show what the schedule costs after a longer outage.
 * - **tcp**: a `Deno.listen` server (Sagemcom M-Bus) closes the connection and accepts
 *   the daemon's next one. Recovery: close → first state of a push on the new connection.
 *
 * Loss is judged only where the daemon could see the push: for serial, pushes written
 * after the daemon logged it is back and more than a push period before the unplug (the
 * bytes of a push written just before the master closes may die in the line); for the
 * broker, pushes written after `online` and a push period before the stop; for TCP,
 * every push written on a connection (TCP hands over all data before the close). Every
 * one of those must reach the subscriber. Pushes outside the windows are reported, not
 * judged (by design only the newest state waits for the broker).
 *
 * Prints one markdown table and per-cycle details; exits 1 when a cycle did not recover,
 * a recovery took 5 s or more (broker-long excepted: it is there to show the backoff),
 * a push was lost while connected, or the source's Lost warnings do not match the outages.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { DEMO_AUTH_KEY, DEMO_KEY } from "../lib/commands/simulate.ts";
import { PseudoTerminal } from "../lib/sources/pty.ts";
import { brokerMissing, startBroker } from "../tests/e2e/mosquitto.ts";
import {
  type Message,
  Smartmeter,
  Subscriber,
  tempDir,
  waitUntil,
  writeConfig,
} from "../tests/e2e/process.ts";
import {
  demoSimulator,
  loadAverage,
  machineLines,
  markdownTable,
  median,
  percentile,
  PtyMeter,
  type Push,
  PushFeeder,
  sleep,
  TOPICS,
} from "./harness.ts";

/** Time between two pushes of the simulated meter, ms. */
const PUSH_MS = 250;
/** How long a fault lasts, ms. */
const OUTAGE_MS = 1_000;
/** Pushes written this close before a serial unplug or a broker stop are not judged, ms. */
const GUARD_MS = PUSH_MS;
/** States of new pushes to see between two faults (about 2 s). */
const STATES_BETWEEN = 8;
/** Longest wait for a recovery before the cycle counts as not recovered, ms. */
const RECOVERY_TIMEOUT_MS = 75_000;
const TARGET_MS = 5_000;

const SCENARIOS = ["serial", "broker", "broker-long", "tcp"] as const;
/** Outages of the broker-long scenario, ms: longer than the first backoff steps. */
const LONG_OUTAGES_MS = [5_000, 15_000, 30_000];
type ScenarioName = typeof SCENARIOS[number];

const USAGE = `deno task faults [--cycles N] [--only ${SCENARIOS.join("|")}] [--sequential]

  --cycles N     faults per scenario (default 20; broker-long always has 3: 5, 15, 30 s)
  --only NAME    one scenario (repeatable)
  --sequential   one scenario after the other (default: side by side)`;

/** What one fault and its recovery looked like. */
interface Cycle {
  recovered: boolean;
  /** Fault cleared (replug, broker started, connection accepted or closed) → first new state, ms. */
  recoveryMs: number | null;
  /** Broker started → `online` (broker scenarios), ms. */
  reconnectMs?: number | null;
  /** How long the broker was down (broker scenarios), ms. */
  outageMs?: number;
  /** Discovery messages between this restart and the next fault (broker scenario). */
  discovery?: number;
  /** Pushes written while cut off whose state still arrived. */
  outageArrived: number;
  outageWritten: number;
  note?: string;
}

interface ScenarioResult {
  name: ScenarioName;
  what: string;
  cycles: Cycle[];
  /** Pushes the daemon could see, and how many of them arrived. */
  connectedWritten: number;
  connectedArrived: number;
  missing: number[];
  /** Pushes written in the guard before a cut: written, arrived. */
  guardWritten: number;
  guardArrived: number;
  /** Outage warnings: `Lost ...` (source), or every MQTT warning (broker). */
  lostLines: number;
  warningLines: string[];
  stillRunning: boolean;
  unknownStates: number;
  seconds: number;
  error: string | null;
}

function log(name: string, line: string): void {
  console.error(`faults ${name}: ${line}`);
}

/** Connected windows → the pushes judged, and what arrived of them. */
function judge(feeder: PushFeeder, windows: [number, number][]) {
  const judged = new Set<Push>();
  for (const [from, to] of windows) for (const p of feeder.writtenIn(from, to)) judged.add(p);
  const missing = [...judged].filter((p) => p.arrivedAt === null).map((p) => p.k);
  return { written: judged.size, arrived: judged.size - missing.length, missing };
}

function daemonConfig(port: string, brokerPort: number, meterType: string) {
  return {
    logging: "info",
    meter_type: meterType,
    dlms: { port, baudrate: 9600, key: DEMO_KEY, auth_key: DEMO_AUTH_KEY },
    mqtt: { host: "127.0.0.1", port: brokerPort, publish_interval: 0 },
  };
}

/** Counts lines of the daemon's log matching `pattern`. */
const count = (p: Smartmeter, pattern: RegExp) => p.logLines(pattern).length;

// ---- serial: unplug and replug ----

async function serialScenario(cycles: number): Promise<ScenarioResult> {
  const name = "serial";
  const t0 = performance.now();
  const broker = await startBroker();
  await using dir = await tempDir("smartmeter-faults-serial-");
  const meter = await PtyMeter.open(dir.path);
  const feeder = new PushFeeder(await demoSimulator("burgenland"), meter.write, PUSH_MS);
  const watcher = await Subscriber.open(broker.port, {
    topic: TOPICS.state,
    keep: () => false,
    onMessage: feeder.onState,
  });
  const config = await writeConfig(dir.path, daemonConfig(meter.link, broker.port, "auto"));
  const daemon = Smartmeter.spawn(["run", "-c", config]);
  const result: Cycle[] = [];
  const windows: [number, number][] = [];
  const guards: [number, number][] = [];
  let error: string | null = null;
  try {
    await daemon.waitFor(/Reading from/, 30_000);
    let windowStart = performance.now();
    feeder.start();
    for (let i = 0; i < cycles; i++) {
      await waitUntil(
        () => feeder.arrivedSince(windowStart) >= STATES_BETWEEN,
        `states before unplug ${i + 1}`,
        20_000,
      );
      const cutAt = performance.now();
      windows.push([windowStart, cutAt - GUARD_MS]);
      guards.push([cutAt - GUARD_MS, cutAt]);
      await meter.unplug();
      const cycle: Cycle = {
        recovered: false,
        recoveryMs: null,
        outageArrived: 0,
        outageWritten: 0,
      };
      result.push(cycle);
      try {
        await daemon.waitFor(/Lost /, 10_000, i);
        await sleep(Math.max(0, OUTAGE_MS - (performance.now() - cutAt)));
        await meter.replug();
        const replugAt = performance.now();
        await daemon.waitFor(/is back after/, RECOVERY_TIMEOUT_MS, i);
        windowStart = performance.now();
        // Written between the cut and "is back": with the old pty or flushed at the open.
        const cut = feeder.writtenIn(cutAt, windowStart);
        cycle.outageWritten = cut.length;
        await waitUntil(
          () => feeder.firstArrivedAfter(replugAt) !== undefined,
          `a state after replug ${i + 1}`,
          RECOVERY_TIMEOUT_MS,
        );
        cycle.outageArrived = cut.filter((p) => p.arrivedAt !== null).length;
        cycle.recoveryMs = feeder.firstArrivedAfter(replugAt)!.arrivedAt! - replugAt;
        cycle.recovered = true;
      } catch (e) {
        cycle.note = (e as Error).message.split("\n")[0]!;
        break;
      }
      log(name, `cycle ${i + 1}: recovered in ${cycle.recoveryMs!.toFixed(0)} ms`);
    }
    if (result.every((c) => c.recovered)) {
      await waitUntil(() => feeder.arrivedSince(windowStart) >= STATES_BETWEEN, "last states");
      windows.push([windowStart, performance.now() - GUARD_MS]);
    }
  } catch (e) {
    error = (e as Error).message.split("\n")[0]!;
  } finally {
    await feeder.stop();
    await sleep(1_000); // the last states on their way
  }
  try {
    const j = judge(feeder, windows);
    const g = judge(feeder, guards);
    return {
      name,
      what: "pty behind a symlink: unplug, ~1 s, replug (Burgenland, HDLC + auth key)",
      cycles: result,
      connectedWritten: j.written,
      connectedArrived: j.arrived,
      missing: j.missing,
      guardWritten: g.written,
      guardArrived: g.arrived,
      lostLines: count(daemon, /Lost /),
      warningLines: daemon.logLines(/WARNING|ERROR/),
      stillRunning: daemon.status === null,
      unknownStates: feeder.unknown,
      seconds: (performance.now() - t0) / 1000,
      error,
    };
  } finally {
    await daemon.stop();
    await meter.unplug();
    await watcher.close();
    await broker.close();
  }
}

// ---- broker: restarts ----

async function brokerScenario(
  name: "broker" | "broker-long",
  cycles: number,
  outagesMs: readonly number[],
): Promise<ScenarioResult> {
  const t0 = performance.now();
  const broker = await startBroker();
  await using dir = await tempDir("smartmeter-faults-broker-");
  const pty = PseudoTerminal.open();
  const write = async (bytes: Uint8Array) => {
    try {
      return (await pty.write(bytes, 2_000)) === bytes.length;
    } catch {
      return false;
    }
  };
  const feeder = new PushFeeder(await demoSimulator("noe_evn"), write, PUSH_MS);
  const seen: Message[] = [];
  const subscribe = () =>
    Subscriber.open(broker.port, {
      topic: "#",
      keep: () => false,
      onMessage: (m) => {
        if (m.topic === TOPICS.state) feeder.onState(m);
        else if (m.topic === TOPICS.availability || m.topic === TOPICS.discovery) seen.push(m);
      },
    });
  let watcher: Subscriber | null = await subscribe();
  const config = await writeConfig(dir.path, daemonConfig(pty.path, broker.port, "auto"));
  const daemon = Smartmeter.spawn(["run", "-c", config]);
  const online = (after: number) =>
    seen.find((m) => m.topic === TOPICS.availability && m.payload === "online" && m.at > after);
  const discoveryAfter = (after: number) =>
    seen.find((m) => m.topic === TOPICS.discovery && m.at > after);
  const result: Cycle[] = [];
  const windows: [number, number][] = [];
  const guards: [number, number][] = [];
  /** [started, next stop] per restart, for the discovery count. */
  const spans: [number, number][] = [];
  let error: string | null = null;
  try {
    await waitUntil(() => online(0) !== undefined, "online at the start", 30_000);
    await waitUntil(() => discoveryAfter(0) !== undefined, "the first discovery", 10_000);
    let windowStart = online(0)!.at;
    feeder.start();
    for (let i = 0; i < cycles; i++) {
      await waitUntil(
        () => feeder.arrivedSince(windowStart) >= STATES_BETWEEN,
        `states before restart ${i + 1}`,
        20_000,
      );
      const cutAt = performance.now();
      windows.push([windowStart, cutAt - GUARD_MS]);
      guards.push([cutAt - GUARD_MS, cutAt]);
      if (spans.length > 0) spans.at(-1)![1] = cutAt;
      await watcher?.close();
      watcher = null;
      await broker.stop();
      const cycle: Cycle = {
        recovered: false,
        recoveryMs: null,
        reconnectMs: null,
        outageArrived: 0,
        outageWritten: 0,
      };
      result.push(cycle);
      try {
        const outageMs = outagesMs[i % outagesMs.length]!;
        cycle.outageMs = outageMs;
        await sleep(Math.max(0, outageMs - (performance.now() - cutAt)));
        await broker.start();
        const startedAt = performance.now();
        spans.push([startedAt, Infinity]);
        watcher = await subscribe();
        await waitUntil(
          () => online(startedAt) !== undefined,
          `online after restart ${i + 1}`,
          RECOVERY_TIMEOUT_MS,
        );
        const onlineAt = online(startedAt)!.at;
        cycle.reconnectMs = onlineAt - startedAt;
        const cut = feeder.writtenIn(cutAt, onlineAt);
        cycle.outageWritten = cut.length;
        windowStart = onlineAt;
        await waitUntil(
          () => feeder.firstArrivedAfter(startedAt) !== undefined,
          `a state after restart ${i + 1}`,
          RECOVERY_TIMEOUT_MS,
        );
        cycle.recoveryMs = feeder.firstArrivedAfter(startedAt)!.arrivedAt! - startedAt;
        cycle.recovered = true;
        // The announcement (discovery, online, last state) follows 1–5 s after CONNACK.
        await waitUntil(() => discoveryAfter(startedAt) !== undefined, `discovery ${i + 1}`, 10_000)
          .catch(() => {});
        await sleep(500);
        cycle.outageArrived = cut.filter((p) => p.arrivedAt !== null).length;
      } catch (e) {
        cycle.note = (e as Error).message.split("\n")[0]!;
        break;
      }
      log(
        name,
        `cycle ${i + 1}: online after ${cycle.reconnectMs!.toFixed(0)} ms, state after ${
          cycle.recoveryMs!.toFixed(0)
        } ms`,
      );
    }
    if (result.every((c) => c.recovered)) {
      await waitUntil(() => feeder.arrivedSince(windowStart) >= STATES_BETWEEN, "last states");
      windows.push([windowStart, performance.now() - GUARD_MS]);
    }
  } catch (e) {
    error = (e as Error).message.split("\n")[0]!;
  } finally {
    await feeder.stop();
    await sleep(1_000);
  }
  try {
    if (spans.length > 0 && spans.at(-1)![1] === Infinity) spans.at(-1)![1] = performance.now();
    for (const [i, [from, to]] of spans.entries()) {
      const c = result[i];
      if (c === undefined) continue;
      c.discovery = seen.filter((m) =>
        m.topic === TOPICS.discovery && !m.retain && m.at >= from && m.at < to
      ).length;
    }
    const j = judge(feeder, windows);
    const g = judge(feeder, guards);
    return {
      name,
      what: `Mosquitto stopped, ${
        outagesMs.map((ms) => `${ms / 1000} s`).join(" / ")
      }, started on the same port (Netz NÖ, M-Bus, on a pty)`,
      cycles: result,
      connectedWritten: j.written,
      connectedArrived: j.arrived,
      missing: j.missing,
      guardWritten: g.written,
      guardArrived: g.arrived,
      lostLines: count(daemon, /WARNING smartmeter:mqtt:/),
      warningLines: daemon.logLines(/WARNING|ERROR/),
      stillRunning: daemon.status === null,
      unknownStates: feeder.unknown,
      seconds: (performance.now() - t0) / 1000,
      error,
    };
  } finally {
    await daemon.stop();
    await watcher?.close();
    pty.close();
    await pty.whenIdle();
    await broker.close();
  }
}

// ---- tcp: the server drops the connection ----

async function tcpScenario(cycles: number): Promise<ScenarioResult> {
  const name = "tcp";
  const t0 = performance.now();
  const broker = await startBroker();
  await using dir = await tempDir("smartmeter-faults-tcp-");
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let conn: Deno.TcpConn | null = null;
  let writer: WritableStreamDefaultWriter<Uint8Array> | null = null;
  const write = async (bytes: Uint8Array) => {
    const w = writer;
    if (w === null) return false;
    try {
      await w.write(bytes);
      return true;
    } catch {
      return false;
    }
  };
  const accept = async () => {
    conn = await listener.accept();
    writer = conn.writable.getWriter();
    return performance.now();
  };
  const drop = async () => {
    const w = writer;
    const c = conn;
    writer = null;
    conn = null;
    await w?.close().catch(() => {});
    try {
      c?.close();
    } catch { /* closed with the writer */ }
  };
  const feeder = new PushFeeder(await demoSimulator("sagemcom"), write, PUSH_MS);
  const watcher = await Subscriber.open(broker.port, {
    topic: TOPICS.state,
    keep: () => false,
    onMessage: feeder.onState,
  });
  const config = await writeConfig(
    dir.path,
    daemonConfig(`tcp://127.0.0.1:${listener.addr.port}`, broker.port, "auto"),
  );
  const daemon = Smartmeter.spawn(["run", "-c", config]);
  const result: Cycle[] = [];
  const windows: [number, number][] = [];
  let error: string | null = null;
  try {
    let windowStart = await accept();
    await daemon.waitFor(/Reading from/, 30_000);
    feeder.start();
    for (let i = 0; i < cycles; i++) {
      await waitUntil(
        () => feeder.arrivedSince(windowStart) >= STATES_BETWEEN,
        `states before drop ${i + 1}`,
        20_000,
      );
      await drop();
      const closedAt = performance.now();
      windows.push([windowStart, closedAt]);
      const cycle: Cycle = {
        recovered: false,
        recoveryMs: null,
        outageArrived: 0,
        outageWritten: 0,
      };
      result.push(cycle);
      try {
        await daemon.waitFor(/Lost /, 10_000, i);
        windowStart = await accept();
        await daemon.waitFor(/is back after/, RECOVERY_TIMEOUT_MS, i);
        await waitUntil(
          () => feeder.firstArrivedAfter(windowStart) !== undefined,
          `a state after reconnect ${i + 1}`,
          RECOVERY_TIMEOUT_MS,
        );
        cycle.recoveryMs = feeder.firstArrivedAfter(windowStart)!.arrivedAt! - closedAt;
        cycle.recovered = true;
      } catch (e) {
        cycle.note = (e as Error).message.split("\n")[0]!;
        break;
      }
      log(name, `cycle ${i + 1}: recovered in ${cycle.recoveryMs!.toFixed(0)} ms`);
    }
    if (result.every((c) => c.recovered)) {
      await waitUntil(() => feeder.arrivedSince(windowStart) >= STATES_BETWEEN, "last states");
      windows.push([windowStart, performance.now()]);
    }
  } catch (e) {
    error = (e as Error).message.split("\n")[0]!;
  } finally {
    await feeder.stop();
    await sleep(1_000);
  }
  try {
    const j = judge(feeder, windows);
    return {
      name,
      what: "tcp:// server closes the connection and accepts the next (Sagemcom, M-Bus)",
      cycles: result,
      connectedWritten: j.written,
      connectedArrived: j.arrived,
      missing: j.missing,
      guardWritten: 0,
      guardArrived: 0,
      lostLines: count(daemon, /Lost /),
      warningLines: daemon.logLines(/WARNING|ERROR/),
      stillRunning: daemon.status === null,
      unknownStates: feeder.unknown,
      seconds: (performance.now() - t0) / 1000,
      error,
    };
  } finally {
    await daemon.stop();
    await drop();
    listener.close();
    await watcher.close();
    await broker.close();
  }
}

// ---- report ----

const s = (
  ms: number | null | undefined,
) => (ms === null || ms === undefined || Number.isNaN(ms) ? "n/a" : (ms / 1000).toFixed(2));

function summaryRow(r: ScenarioResult): (string | number)[] {
  const rec = r.cycles.filter((c) => c.recovered).map((c) => c.recoveryMs!);
  const discovery = r.cycles.map((c) => c.discovery).filter((d) => d !== undefined);
  const isBroker = r.name.startsWith("broker");
  const discoveryText = !isBroker
    ? "—"
    : `${[...new Set(discovery)].sort().join(", ")} (total ${
      discovery.reduce((a, b) => a + b, 0)
    } for ${discovery.length})`;
  return [
    r.name,
    r.cycles.length,
    r.cycles.filter((c) => c.recovered).length,
    s(median(rec)),
    s(percentile(rec, 0.9)),
    s(rec.length > 0 ? Math.max(...rec) : NaN),
    rec.filter((x) => x >= TARGET_MS).length,
    r.connectedWritten,
    r.connectedArrived,
    discoveryText,
    `${r.lostLines} / ${r.cycles.length}`,
    `${r.warningLines.length} / ${r.cycles.length}`,
  ];
}

function details(r: ScenarioResult): string[] {
  const out = [
    `### ${r.name}: ${r.what}`,
    "",
    `${r.seconds.toFixed(0)} s; daemon ${
      r.stillRunning ? "still running at the end" : "NOT running at the end"
    }; ${r.warningLines.length} WARNING/ERROR lines in its log; ${r.unknownStates} state messages matched no push.`,
  ];
  if (r.error !== null) out.push("", `Scenario error: ${r.error}`);
  if (r.missing.length > 0) {
    out.push(
      "",
      `Pushes lost while connected: ${r.missing.slice(0, 20).map((k) => `#${k}`).join(", ")}`,
    );
  }
  if (r.guardWritten > 0) {
    out.push(
      "",
      `Pushes written in the last ${GUARD_MS} ms before a cut (not judged): ${r.guardArrived} of ${r.guardWritten} arrived.`,
    );
  }
  const headers = ["cycle", "recovered", "recovery (s)"];
  const isBroker = r.name.startsWith("broker");
  if (isBroker) headers.push("down (s)", "start → online (s)", "discovery messages");
  headers.push("pushes written while cut off / arrived", "note");
  const rows = r.cycles.map((c, i) => {
    const row: (string | number)[] = [i + 1, c.recovered ? "yes" : "NO", s(c.recoveryMs)];
    if (isBroker) row.push(s(c.outageMs), s(c.reconnectMs), c.discovery ?? "n/a");
    row.push(`${c.outageWritten} / ${c.outageArrived}`, c.note ?? "");
    return row;
  });
  out.push("", ...markdownTable(headers, rows));
  const distinct = new Map<string, number>();
  for (const line of r.warningLines) {
    const key = line.trim().replace(/\d+(\.\d+)?/g, "#");
    distinct.set(key, (distinct.get(key) ?? 0) + 1);
  }
  if (distinct.size > 0) {
    out.push(
      "",
      "WARNING/ERROR lines of the daemon, by kind (numbers as #):",
      ...[...distinct].slice(0, 8).map(([l, n]) => `- ${n} × \`${l}\``),
    );
  }
  return out;
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        cycles: { type: "string", default: "20" },
        only: { type: "string", multiple: true },
        sequential: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    }));
  } catch (e) {
    console.error(`faults: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const cycles = Number(values.cycles);
  const chosen = (values.only ?? [...SCENARIOS]) as ScenarioName[];
  if (!(Number.isInteger(cycles) && cycles > 0) || chosen.some((n) => !SCENARIOS.includes(n))) {
    console.error(`faults: bad arguments\n${USAGE}`);
    return 2;
  }
  const missing = brokerMissing();
  if (missing !== null) {
    console.error(`faults: ${missing}`);
    return 1;
  }
  const runners: Record<ScenarioName, (n: number) => Promise<ScenarioResult>> = {
    serial: serialScenario,
    broker: (n) => brokerScenario("broker", n, [OUTAGE_MS]),
    "broker-long": () => brokerScenario("broker-long", LONG_OUTAGES_MS.length, LONG_OUTAGES_MS),
    tcp: tcpScenario,
  };
  const header = [
    `## Faults: ${cycles} of each, one daemon per scenario, a push every ${PUSH_MS} ms`,
    "",
    `Measured ${new Date().toISOString().slice(0, 16)}Z with \`deno task faults${
      Deno.args.length > 0 ? ` ${Deno.args.join(" ")}` : ""
    }\`; scenarios ${values.sequential ? "one after the other" : "side by side"}.`,
    "",
    ...machineLines(),
  ];
  const t0 = performance.now();
  const results: ScenarioResult[] = [];
  if (values.sequential) {
    for (const n of chosen) results.push(await runners[n](cycles));
  } else {
    results.push(...await Promise.all(chosen.map((n) => runners[n](cycles))));
  }
  const out = [
    ...header,
    "",
    ...markdownTable(
      [
        "scenario",
        "cycles",
        "recovered",
        "recovery median (s)",
        "p90 (s)",
        "max (s)",
        `≥ ${TARGET_MS / 1000} s`,
        "pushes written while connected",
        "received",
        "discovery per reconnect",
        "outage warnings (source: Lost; broker: MQTT) / outages",
        "all WARNING lines / outages",
      ],
      results.map(summaryRow),
    ),
    "",
    "Recovery: serial, replug → first state of a push written after it; broker, broker started → first new state; tcp, connection closed → first state of a push on the new connection.",
    "",
    ...results.flatMap((r) => [...details(r), ""]),
    `Total ${
      ((performance.now() - t0) / 1000).toFixed(0)
    } s. Load average at the end: ${loadAverage()}.`,
  ];
  console.log(out.join("\n"));
  const failures: string[] = [];
  for (const r of results) {
    if (r.error !== null) failures.push(`${r.name}: ${r.error}`);
    const expected = r.name === "broker-long" ? LONG_OUTAGES_MS.length : cycles;
    if (r.cycles.length !== expected || r.cycles.some((c) => !c.recovered)) {
      failures.push(
        `${r.name}: ${r.cycles.filter((c) => c.recovered).length} of ${expected} recovered`,
      );
    }
    // broker-long shows what the sink's backoff costs after longer outages: reported only.
    const slow = r.cycles.filter((c) => c.recoveryMs !== null && c.recoveryMs >= TARGET_MS);
    if (r.name !== "broker-long" && slow.length > 0) {
      failures.push(`${r.name}: ${slow.length} recoveries took ${TARGET_MS / 1000} s or more`);
    }
    if (r.connectedArrived !== r.connectedWritten) {
      failures.push(
        `${r.name}: ${r.connectedWritten - r.connectedArrived} pushes lost while connected`,
      );
    }
    // A source outage must be one `Lost` line; the broker's warnings are reported only.
    if (!r.name.startsWith("broker") && r.lostLines !== r.cycles.length) {
      failures.push(`${r.name}: ${r.lostLines} outage warnings for ${r.cycles.length} outages`);
    }
    if (!r.stillRunning) failures.push(`${r.name}: the daemon stopped`);
  }
  for (const f of failures) console.error(`faults: FAIL ${f}`);
  return failures.length === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());

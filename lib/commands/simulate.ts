/**
 * `smartmeter simulate` (frames as a chosen meter sends them) and `smartmeter demo` (a
 * simulated meter through the whole pipeline: simulator → pseudo-terminal → serial source
 * → decoder → readings on stdout, and MQTT with --mqtt).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { toHex } from "../bytes.ts";
import { ConfigError, type HttpConfig, type MqttConfig, validateConfig } from "../config.ts";
import { METER_TYPES } from "../cosem/interpret.ts";
import { runDaemon } from "../daemon.ts";
import { topicsFor } from "../homeassistant/discovery.ts";
import type { Log } from "../log.ts";
import type { TelegramResult } from "../pipeline.ts";
import { MeterSimulator, SIMULATED_METERS } from "../simulator.ts";
import { PseudoTerminal } from "../sources/pty.ts";
import { SerialError, SerialPort } from "../sources/serial.ts";
import { serialSource } from "../sources/open.ts";
import { sleep } from "../sources/source.ts";
import { resultJson } from "./decode.ts";
import { type CommandIO, Exit, parseKeyOption, type ProcessContext, UsageError } from "./io.ts";
import { processLogger, redactSecrets } from "./setup.ts";
import { whyUnwritable } from "./access.ts";
import { clearRetained } from "../sinks/retained.ts";
import { httpOption } from "./http_option.ts";
import { AMIS_SEARCH_SECONDS, DEMO_SEARCH_SECONDS, runAmisMeter, simulateAmis } from "./amis.ts";
import { AmisSimulator } from "../amis_simulator.ts";

/** Every meter `simulate` and `demo` can imitate: the push meters, and Netz OÖ's AMIS. */
const METERS = [...SIMULATED_METERS, "amis"] as const;
type Meter = typeof METERS[number];

/** The key of simulated meters unless one is given (a test key, public on purpose). */
export const DEMO_KEY = "000102030405060708090a0b0c0d0e0f";
/** The authentication key the demo's Netz Burgenland meter signs with. */
export const DEMO_AUTH_KEY = "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf";
/**
 * The demo's own Home Assistant device: its topics (`smartmeter_demo/...`), client id and
 * unique_ids never meet those of a real installation (`smartmeter`).
 */
export const DEMO_DEVICE_ID = "smartmeter_demo";
/** The demo's device name in Home Assistant: obviously not the real meter. */
export const DEMO_DEVICE_NAME = "Smartmeter demo (simulated meter)";

export const SIMULATE_USAGE = `smartmeter simulate --meter-type NAME [--key HEX] [--auth-key HEX]
                    [--interval S] [--search S] [--count N] [--seed N] [--out pty|-|PATH]

Sends frames as that meter would, encrypted with the key and an increasing frame counter.
Meter types: ${METERS.join(", ")}. An amis meter (Netz OÖ) is an M-Bus master: it
searches for its reader and sends a frame a second only while each one is answered (E5);
to a file or stdout it writes its search and then its frames, as if a reader answered.

  --key HEX         encryption key (default: the demo key ${DEMO_KEY})
  --auth-key HEX    authentication key: burgenland then adds a GCM tag
  --interval S      seconds between pushes (default 5; amis: 1)
  --search S        amis: seconds between searches while no reader answers (default ${AMIS_SEARCH_SECONDS})
  --count N         stop after N pushes (default: run until stopped)
  --out pty         create a pseudo-terminal and print its path (default): point
                    dlms.port at it
  --out -           hex text on stdout, one push per line
  --out /dev/...    raw bytes to that serial line or pseudo-terminal (9600 8N1)
  --out PATH        hex text to a file`;

export const DEMO_USAGE =
  `smartmeter demo [--meter-type NAME] [--count N] [--interval S] [--json] [--mqtt URL]
                [--http HOST:PORT]

A simulated meter through the whole pipeline: simulator → pseudo-terminal → serial port
→ framing, decryption, COSEM → readings on stdout. No setup, no hardware.

  --meter-type NAME   ${METERS.join(", ")} (default burgenland)
  --count N           telegrams to show (default 5; 0 = until stopped)
  --interval S        seconds between pushes (default 1)
  --json              print the decode JSON lines instead of a summary
  --mqtt URL          also publish to this broker, e.g. mqtt://user:pass@localhost:1883,
                      as its own device "${DEMO_DEVICE_NAME}" (device id
                      ${DEMO_DEVICE_ID}, never a real installation's), removed from Home
                      Assistant again when the demo ends
  --http HOST:PORT    also serve the web page there and print its URL, e.g.
                      127.0.0.1:8080 (with --count 0 it stays up until stopped)`;

function isArgError(e: unknown): boolean {
  return e instanceof UsageError ||
    Boolean((e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS"));
}

function number(name: string, text: string, min: number): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n < min) {
    throw new UsageError(`${name} must be a number of at least ${min}, got "${text}"`);
  }
  return n;
}

function meterName(text: string | undefined, fallback?: Meter): Meter {
  if (text === undefined) {
    if (fallback) return fallback;
    throw new UsageError(`--meter-type is required: one of ${METERS.join(", ")}`);
  }
  const name = text.toLowerCase().replace(/-/g, "_");
  const m = METERS.find((x) => x.replace(/-/g, "_") === name);
  if (!m) {
    throw new UsageError(
      `--meter-type "${text}" cannot be simulated: use one of ${METERS.join(", ")}`,
    );
  }
  return m;
}

async function writeAll(w: { write(p: Uint8Array): Promise<number> }, data: Uint8Array) {
  let off = 0;
  while (off < data.length) off += await w.write(data.subarray(off));
}

/** `smartmeter simulate`. */
export async function simulateCommand(
  args: string[],
  io: CommandIO,
  ctx: ProcessContext,
): Promise<number> {
  let sim: MeterSimulator;
  let interval: number;
  let count: number;
  let out: string;
  let meter: Meter;
  let search: number;
  try {
    const { values } = parseArgs({
      args,
      options: {
        "meter-type": { type: "string" },
        key: { type: "string" },
        "auth-key": { type: "string" },
        interval: { type: "string" },
        search: { type: "string", default: String(AMIS_SEARCH_SECONDS) },
        count: { type: "string", default: "0" },
        seed: { type: "string", default: "1" },
        out: { type: "string", default: "pty" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    });
    if (values.help) {
      io.out(SIMULATE_USAGE);
      return Exit.OK;
    }
    meter = meterName(values["meter-type"]);
    interval = number("--interval", values.interval ?? (meter === "amis" ? "1" : "5"), 0);
    search = number("--search", values.search, 0.1);
    count = number("--count", values.count, 0);
    out = values.out;
    if (out === "") throw new UsageError("--out must not be empty: pty, -, a device or a file");
    if (meter === "amis") {
      const key = parseKeyOption("--key", values.key ?? DEMO_KEY);
      const seed = number("--seed", values.seed, 0);
      return await simulateAmis({ key, interval, search, count, seed, out }, io, ctx);
    }
    sim = await MeterSimulator.create({
      meter,
      key: parseKeyOption("--key", values.key ?? DEMO_KEY),
      authKey: values["auth-key"] ? parseKeyOption("--auth-key", values["auth-key"]) : null,
      seed: number("--seed", values.seed, 0),
    });
  } catch (e) {
    if (isArgError(e)) {
      io.err(`smartmeter simulate: ${(e as Error).message}`);
      io.err("Try: smartmeter simulate --help");
      return Exit.USAGE;
    }
    throw e;
  }

  let send: (bytes: Uint8Array) => Promise<void>;
  let close = () => {};
  try {
    if (out === "-") send = (b) => Promise.resolve(io.out(toHex(b)));
    else if (out === "pty") {
      const pty = PseudoTerminal.open();
      io.out(pty.path);
      io.err(`Simulated ${meter} meter on ${pty.path}: set dlms.port to it (Ctrl-C stops)`);
      send = async (b) => void await pty.write(b);
      close = () => pty.close();
    } else if (out.startsWith("/dev/")) {
      // A serial line or pseudo-terminal: raw bytes, through the same libc path the reader
      // uses (Deno's file API refuses /dev without --allow-all).
      const port = SerialPort.open({
        path: out,
        baudRate: 9600,
        dataBits: 8,
        parity: "none",
        stopBits: 1,
      });
      send = async (b) => void await writeAll(port, b);
      close = () => port.close();
    } else {
      const file = await Deno.open(out, { write: true, create: true, truncate: true });
      const enc = new TextEncoder();
      send = (b) => writeAll(file, enc.encode(toHex(b) + "\n"));
      close = () => file.close();
    }
  } catch (e) {
    const why = e instanceof SerialError ? e.message : await whyUnwritable(out, e);
    io.err(`smartmeter simulate: cannot write to ${out}: ${why}`);
    return Exit.USAGE;
  }
  try {
    for (let i = 0; count === 0 || i < count; i++) {
      if (ctx.signal.aborted) break;
      const t = await sim.next(new Date());
      await send(t.bytes);
      if (count === 0 || i + 1 < count) await sleep(interval * 1000, ctx.signal);
    }
  } finally {
    close();
  }
  return Exit.OK;
}

/** One line a person can read for a telegram. */
export function describeResult(r: TelegramResult): string {
  if (!r.ok) return `✗ ${r.stage}: ${r.error}`;
  const v = r.reading.values;
  const fmt = (n: number | undefined, unit: string) => n === undefined ? null : `${n} ${unit}`;
  const parts = [
    fmt(v.energy_import_wh, "Wh in"),
    fmt(v.energy_export_wh, "Wh out"),
    fmt(v.power_w, "W net"),
    v.voltage_l1_v === undefined
      ? null
      : `${
        [v.voltage_l1_v, v.voltage_l2_v, v.voltage_l3_v].filter((x) => x !== undefined).join("/")
      } V`,
    v.current_l1_a === undefined
      ? null
      : `${
        [v.current_l1_a, v.current_l2_a, v.current_l3_a].filter((x) => x !== undefined).join("/")
      } A`,
  ].filter((p) => p !== null);
  return `✓ ${
    r.reading.time ?? "--"
  } ${r.framing}/${r.security}/${r.layout} #${r.reading.frame_counter}: ${parts.join(", ")}`;
}

/** `url` with what is between `//` and `@` (a user name and password) hidden. */
export function hideUserInfo(url: string): string {
  return url.replace(/^([^/]*\/\/)[^/]*@/, "$1***@");
}

/** Parses `mqtt://[user[:password]@]host[:port]` into config keys. */
export function parseMqttUrl(url: string): Record<string, unknown> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(
      `--mqtt must be a URL like mqtt://localhost:1883, got "${hideUserInfo(url)}"`,
    );
  }
  if (u.protocol !== "mqtt:" && u.protocol !== "mqtts:") {
    throw new UsageError(`--mqtt must start with mqtt:// or mqtts://, got "${u.protocol}//"`);
  }
  if (u.hostname === "") {
    throw new UsageError(
      `--mqtt needs a host, like mqtt://localhost:1883, got "${hideUserInfo(url)}"`,
    );
  }
  if (u.port === "0") throw new UsageError("--mqtt: the port must be from 1 to 65535, got 0");
  const out: Record<string, unknown> = {
    host: u.hostname.replace(/^\[|\]$/g, ""),
    port: u.port ? Number(u.port) : u.protocol === "mqtts:" ? 8883 : 1883,
    tls: u.protocol === "mqtts:",
    publish_interval: 0,
  };
  if (u.username) out.user = decodeURIComponent(u.username);
  if (u.password) out.password = decodeURIComponent(u.password);
  return out;
}

/** `smartmeter demo`. */
export async function demoCommand(
  args: string[],
  io: CommandIO,
  ctx: ProcessContext,
): Promise<number> {
  let meter: Meter;
  let count: number;
  let interval: number;
  let json: boolean;
  let mqtt: Record<string, unknown> | null = null;
  let http: HttpConfig | null = null;
  try {
    const { values } = parseArgs({
      args,
      options: {
        "meter-type": { type: "string" },
        count: { type: "string", default: "5" },
        interval: { type: "string", default: "1" },
        json: { type: "boolean", default: false },
        mqtt: { type: "string" },
        http: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    });
    if (values.http !== undefined) http = httpOption(values.http);
    if (values.help) {
      io.out(DEMO_USAGE);
      return Exit.OK;
    }
    meter = meterName(values["meter-type"], "burgenland");
    count = number("--count", values.count, 0);
    interval = number("--interval", values.interval, 0.05);
    json = values.json;
    if (values.mqtt !== undefined) {
      mqtt = parseMqttUrl(values.mqtt);
      try {
        validateConfig({ mqtt }, { env: {}, meterTypes: METER_TYPES });
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        throw new UsageError(
          `--mqtt ${hideUserInfo(values.mqtt)}: ${
            e.problems.map((p) => `${p.path}: ${p.message}`).join("; ")
          }`,
        );
      }
    }
  } catch (e) {
    if (isArgError(e)) {
      io.err(`smartmeter demo: ${(e as Error).message}`);
      io.err("Try: smartmeter demo --help");
      return Exit.USAGE;
    }
    throw e;
  }

  const authKey = meter === "burgenland" ? DEMO_AUTH_KEY : null;
  const pty = PseudoTerminal.open();
  const config = validateConfig({
    logging: "info",
    ...(meter === "amis" ? { meter_type: "amis" } : {}),
    dlms: {
      port: pty.path,
      baudrate: 9600,
      key: DEMO_KEY,
      ...(authKey ? { auth_key: authKey } : {}),
    },
    mqtt: mqtt === null
      ? { host: "localhost" }
      : { ...mqtt, device_id: DEMO_DEVICE_ID, name: DEMO_DEVICE_NAME },
  }, { env: {}, meterTypes: METER_TYPES });
  if (http !== null) config.http = http;
  const logger = processLogger("info", ctx.env, io.err, ctx.stderrIsTerminal);
  redactSecrets(logger, config);
  const stop = new AbortController();
  const signal = AbortSignal.any([ctx.signal, stop.signal]);
  io.err(
    `Demo: a simulated ${meter} meter on ${pty.path} (key ${DEMO_KEY}${
      authKey ? `, auth key ${authKey}` : ""
    }), ${count || "endless"} telegram${count === 1 ? "" : "s"}, one every ${interval} s`,
  );

  let decoded = 0;
  let failed = 0;
  const simulator = meter === "amis"
    ? amisDemo(pty, interval, count, signal, stop, io)
    : (async () => {
      const sim = await MeterSimulator.create({
        meter,
        key: parseKeyOption("key", DEMO_KEY),
        authKey: authKey ? parseKeyOption("auth key", authKey) : null,
      });
      await sleep(300, signal); // let the reader open the port first
      for (let i = 0; !signal.aborted && (count === 0 || i < count + 2); i++) {
        const t = await sim.next(new Date());
        await pty.write(t.bytes);
        await sleep(interval * 1000, signal);
      }
      // The reader could not keep up: do not wait forever.
      stop.abort();
    })();
  const status = await runDaemon({
    config,
    logger,
    signal,
    version: ctx.version,
    env: {},
    mqtt: mqtt !== null,
    source: serialSource(config.source, { log: logger.get("demo") }),
    onListening: (urls) => {
      for (const url of urls) io.err(`Web page: open ${url} in a browser`);
    },
    onResult: (r) => {
      if (r.ok) decoded++;
      else failed++;
      io.out(json ? JSON.stringify(resultJson(r)) : describeResult(r));
      if (count > 0 && decoded >= count) stop.abort();
    },
  });
  await simulator;
  pty.close();
  if (mqtt !== null) await removeDemoDevice(config.mqtt, logger.get("demo"));
  if (status !== Exit.OK) return status;
  return failed === 0 && (count === 0 || decoded >= count) ? Exit.OK : Exit.FAILED;
}

/**
 * The demo's AMIS meter: it searches (every few seconds, not once a minute), is answered by
 * the daemon, then sends a frame every `interval` s, each answered.
 */
async function amisDemo(
  pty: PseudoTerminal,
  interval: number,
  count: number,
  signal: AbortSignal,
  stop: AbortController,
  io: CommandIO,
): Promise<void> {
  io.err(
    `The AMIS meter searches for its reader every ${DEMO_SEARCH_SECONDS} s here (a real one: once a minute) and sends data only while it is answered`,
  );
  const meter = await AmisSimulator.create({
    key: parseKeyOption("key", DEMO_KEY),
    framePeriodMs: interval * 1000,
    searchPeriodMs: DEMO_SEARCH_SECONDS * 1000,
  });
  await sleep(300, signal); // let the reader open the port first
  // The reader could not keep up: do not wait forever.
  const limitMs = (DEMO_SEARCH_SECONDS + (count + 3) * interval) * 1000;
  const limit = count > 0 ? setTimeout(() => stop.abort(), limitMs) : undefined;
  try {
    await runAmisMeter(pty, meter, count === 0 ? 0 : count + 2, signal);
  } finally {
    clearTimeout(limit);
  }
  stop.abort();
}

/**
 * Takes the demo's device out of Home Assistant: empty retained payloads for its discovery
 * message, then its availability topics, so that no ghost device stays behind.
 */
async function removeDemoDevice(c: MqttConfig, log: Log): Promise<void> {
  const t = topicsFor({
    deviceId: c.deviceId,
    name: c.name,
    prefix: c.prefix,
    discoveryPrefix: c.discoveryPrefix,
    manufacturer: null,
    model: null,
    serialNumber: null,
    swVersion: "",
  });
  const problem = await clearRetained(c, [t.discovery, t.availability, t.meter, t.instance]);
  if (problem === null) log.info(`Removed the demo device "${c.name}" from Home Assistant`);
  else log.warning(`Could not remove the demo device "${c.name}": ${problem}`);
}

/**
 * `smartmeter run`: the meter's bytes in, MQTT (and optionally JSON lines) out, day and
 * night.
 *
 * ```
 *  readResilient(source) ─chunks─▶ Decoder ─results─▶ ok:   sink.publishReading, JSON line
 *     (reconnects)                                    fail: counted, logged (repeats folded)
 *                                  stats ───────────▶ sink.setDiagnostics, health warnings
 * ```
 *
 * Nothing that arrives can stop it: bad frames, a wrong key, an unplugged head or a broker
 * restart are logged once, counted and outlived. Only the abort signal (SIGINT/SIGTERM)
 * or the end of a replayed capture file ends the loop.
 *
 * @module
 */

import type { Config } from "./config.ts";
import { logConfigNotes } from "./config_notes.ts";
import { type DecodedTelegram, Decoder, type TelegramResult } from "./pipeline.ts";
import { describeGuardEvent } from "./homeassistant/guard.ts";
import { StateFile } from "./state_file.ts";
import type { Log, Logger } from "./log.ts";
import type { Reading } from "./cosem/reading.ts";
import { type ByteSource, readResilient, writeReplies } from "./sources/source.ts";
import { describeLine, sourceFromConfig } from "./sources/open.ts";
import { type Diagnostics, MqttSink, type MqttSinkOptions } from "./sinks/mqtt.ts";
import { supervisorMqtt } from "./supervisor.ts";
import { parseMeterType } from "./cosem/interpret.ts";
import { StatusModel } from "./status.ts";
import { webListeners } from "./sinks/http/address.ts";

/** Where readings go; the MQTT sink is one. */
export interface ReadingSink {
  start(): void;
  /**
   * Whether a reading given now goes out at once (optional: a sink without it takes every
   * reading at once).
   */
  readonly writable?: boolean;
  /** Resolves true once {@link writable}, false after `timeoutMs`. */
  ready?(timeoutMs: number): Promise<boolean>;
  publishReading(r: Reading): void;
  setDiagnostics(d: Diagnostics): void;
  /** Whether the broker has the connection (shown by the web server). */
  readonly connected?: boolean;
  stop(): Promise<void>;
  /** What became of the readings given: every one is either published or superseded. */
  readonly stats?: { readonly published: number; readonly superseded: number };
}

export interface DaemonOptions {
  config: Config;
  logger: Logger;
  signal: AbortSignal;
  version: string;
  env?: Record<string, string | undefined>;
  /** Publish to MQTT (default true). */
  mqtt?: boolean;
  /** Called with every telegram result, good or bad (JSON output, the demo). */
  onResult?: (r: TelegramResult) => void;
  /** Replaces the source named by the config (tests, `demo`). */
  source?: ByteSource;
  /** Replaces the MQTT sink (tests). */
  createSink?: (opts: MqttSinkOptions) => ReadingSink;
  /** Monotonic clock, ms. */
  now?: () => number;
  /** How often the health of the input is judged, ms (default 60 s). */
  healthEveryMs?: number;
  /** How often the state file is written while telegrams arrive, ms (default 5 min). */
  stateEveryMs?: number;
  /** Wall clock, ms since the epoch (the energy guard's times survive restarts). */
  clock?: () => number;
  /** What the web server shows (tests pass their own to look at it). */
  status?: StatusModel;
  /** Also serve the web page to Home Assistant's ingress proxy (the add-on). */
  ingress?: boolean;
  /** Called with the web server's URLs once it listens (`demo` prints them). */
  onListening?: (urls: string[]) => void;
}

const PROJECT_URL = "https://github.com/smartmeter-at/smartmeter";
/**
 * How long a capture-file replay waits for the broker to take the next state (to connect,
 * or to drain a backed-up socket) before it reads on without waiting.
 */
const FILE_WAIT_MS = 15_000;
/** How often the state file is written while telegrams arrive. */
const STATE_EVERY_MS = 5 * 60_000;
/** How often the log sums up what was decoded and published. */
const SUMMARY_EVERY_MS = 60 * 60_000;
/** Identical failure messages are logged at most once in this window; repeats are counted. */
const REPEAT_WINDOW_MS = 10 * 60_000;

/**
 * The kind of problem a message names: the message with what varies from one occurrence to
 * the next masked (quoted values, hex bytes and checksums, ids, counters, offsets), so that
 * "first byte 0x43" and "first byte 0x4c" are one kind.
 */
export function problemKind(message: string): string {
  return message
    .replace(/"[^"]*"/g, '"…"')
    .replace(/\b0x[0-9a-f]+\b/gi, "0x#")
    .replace(/\b[0-9a-f]*\d[0-9a-f]*\b/gi, "#")
    .slice(0, 120);
}

/**
 * Folds repeated failures of one kind ({@link problemKind}) into one line every
 * {@link REPEAT_WINDOW_MS}, which says how many were folded.
 */
export class RepeatFolder {
  readonly #seen = new Map<string, { at: number; folded: number }>();
  constructor(private readonly windowMs = REPEAT_WINDOW_MS) {}

  /** The line to log for `message` now, or null when it is a repeat to fold. */
  line(message: string, now: number): string | null {
    const key = problemKind(message);
    const seen = this.#seen.get(key);
    if (seen && now - seen.at < this.windowMs) {
      seen.folded++;
      return null;
    }
    const folded = seen?.folded ?? 0;
    if (this.#seen.size > 256) this.#seen.clear();
    this.#seen.set(key, { at: now, folded: 0 });
    return folded > 0 ? `${message} (and ${folded} more like it since the last report)` : message;
  }
}

/** What the input looked like over the last health period. */
export type Health = "ok" | "no-bytes" | "no-frames" | "no-telegrams";

/** Judges the input from the decoder's counters at the start and end of a period. */
export function judgeHealth(
  before: { bytes: number; frames: number; decoded: number },
  after: { bytes: number; frames: number; decoded: number },
): Health {
  if (after.decoded > before.decoded) return "ok";
  if (after.bytes === before.bytes) return "no-bytes";
  if (after.frames === before.frames) return "no-frames";
  return "no-telegrams";
}

/** Counters at one moment, for {@link summaryLine}. */
interface Tally {
  at: number;
  decoded: number;
  failed: number;
  published?: number;
  superseded?: number;
}

/**
 * The periodic summary: `Last 60 min: 720 telegrams decoded, 0 failed; 120 states
 * published, 600 superseded`. Decoded = published + superseded (give or take the one state
 * waiting at either end): superseded states are the publish interval's design, not a loss.
 */
export function summaryLine(from: Tally, to: Tally): string {
  const minutes = Math.round((to.at - from.at) / 60_000);
  const line = `Last ${minutes} min: ${to.decoded - from.decoded} telegrams decoded, ${
    to.failed - from.failed
  } failed`;
  if (to.published === undefined || to.superseded === undefined) return line;
  return `${line}; ${to.published - (from.published ?? 0)} states published, ${
    to.superseded - (from.superseded ?? 0)
  } superseded (newer ones replaced them within the publish interval or while MQTT was slow or away)`;
}

/** What to log when the input's health changes to `next`. */
export function healthLine(
  next: Health,
  ctx: { source: string; seconds: number; searching: boolean; lastError?: string | null },
): string {
  const { source, seconds } = ctx;
  switch (next) {
    case "ok":
      return "Telegrams are decoding again";
    case "no-bytes":
      return `No bytes from ${source} for ${seconds} s: check the cable or the IR head's position, and that the grid operator has enabled the customer interface`;
    case "no-frames":
      return `Bytes arrive from ${source} but no frame in ${seconds} s: check the baud rate and parity (or set dlms.baudrate: auto)`;
    case "no-telegrams":
      if (ctx.searching) {
        return `The meter searches for its reader (M-Bus SND_NKE, Netz OÖ AMIS) and is answered, but sends no data in ${seconds} s: check that the IR head sits straight on the optical port (it must send, not only receive), that the terminal cover is closed (no S1 on the display) and that nothing else answers on the port`;
      }
      return `Frames arrive but no telegram decoded in ${seconds} s; last error: ${
        ctx.lastError ?? "none"
      }`;
  }
}

/**
 * The MQTT sink for the config (the broker asked from the Supervisor when `mqtt.host` is
 * empty inside the add-on), started; or exit status 78 when it cannot be set up.
 */
async function openMqttSink(
  opts: DaemonOptions,
  model: StatusModel,
): Promise<ReadingSink | number> {
  const { logger } = opts;
  const log = logger.get("smartmeter");
  const mqttConfig = { ...opts.config.mqtt };
  if (mqttConfig.host === "") {
    const token = opts.env?.SUPERVISOR_TOKEN;
    if (!token) {
      log.error("mqtt.host is empty and no Home Assistant Supervisor is there to ask");
      return 78;
    }
    try {
      const s = await supervisorMqtt(token, opts.env?.SUPERVISOR_URL ?? "http://supervisor");
      mqttConfig.host = s.host;
      mqttConfig.port = s.port;
      mqttConfig.tls = s.ssl;
      mqttConfig.user = s.username;
      mqttConfig.password = s.password;
      mqttConfig.credentialsFrom = "supervisor";
      log.info(`MQTT broker from the Supervisor: ${s.host}:${s.port}`);
      const secrets = logger.options.redact;
      if (s.password && secrets) {
        // The Supervisor's password joins the secrets that never reach the log.
        logger.options.redact = (line) => secrets(line).replaceAll(s.password!, "***");
      }
    } catch (e) {
      log.error(`${(e as Error).message}`);
      return 78;
    }
  }
  const sinkOptions: MqttSinkOptions = {
    config: mqttConfig,
    device: {
      deviceId: mqttConfig.deviceId,
      name: mqttConfig.name,
      prefix: mqttConfig.prefix,
      discoveryPrefix: mqttConfig.discoveryPrefix,
      manufacturer: null,
      model: null,
      serialNumber: null,
      swVersion: opts.version,
      supportUrl: PROJECT_URL,
    },
    log: ((mqttLog: Log) => (level, msg) => mqttLog[level](msg))(log.child("mqtt")),
  };
  const sink = (opts.createSink ?? ((o) => new MqttSink(o)))(sinkOptions);
  sink.start();
  const broker = `${mqttConfig.host}:${mqttConfig.port}`;
  model.mqtt = () => ({
    state: sink.connected ? "connected" : "disconnected",
    broker,
    ...(sink.stats === undefined ? {} : {
      published: sink.stats.published,
      superseded: sink.stats.superseded,
    }),
  });
  return sink;
}

/** Runs until the signal aborts (or a replayed file ends); resolves to the exit status. */
export async function runDaemon(opts: DaemonOptions): Promise<number> {
  const status = opts.status ?? new StatusModel({ version: opts.version });
  const listeners = webListeners(opts.config.http, opts.ingress ?? false);
  if (listeners.length === 0) return await runPipeline(opts, status);
  // The web server first: an address it cannot have is a config error, before anything runs.
  // Loaded only when asked for: no cost when it is off.
  const { WebServer } = await import("./sinks/http/server.ts");
  const web = await WebServer.start({
    listeners,
    status,
    log: opts.logger.get("smartmeter").child("http"),
  });
  if (web instanceof Error) {
    opts.logger.get("smartmeter").error(web.message);
    return 78;
  }
  opts.onListening?.(web.urls);
  try {
    return await runPipeline(opts, status);
  } finally {
    await web.stop();
  }
}

async function runPipeline(opts: DaemonOptions, model: StatusModel): Promise<number> {
  const { config, logger, signal } = opts;
  const log = logger.get("smartmeter");
  const now = opts.now ?? (() => performance.now());
  const useMqtt = opts.mqtt ?? true;

  log.info(`smartmeter ${opts.version} starting: meter type ${config.meterType}`);
  logConfigNotes(log, config);
  const wallNow = opts.clock ?? Date.now;
  const state = await StateFile.open(config.stateDir, config.key, log.child("state"));
  if (config.stateDir === null) {
    log.info(
      "No state_dir: frame counters and energy registers are kept in memory only, so after " +
        "a restart the first telegrams are trusted again",
    );
  }
  const { counters, energy: guard, access } = state.restored;

  let sink: ReadingSink | null = null;
  if (useMqtt) {
    const opened = await openMqttSink(opts, model);
    if (typeof opened === "number") return opened;
    sink = opened;
  }

  let source: ByteSource;
  try {
    source = opts.source ?? await sourceFromConfig(config.source, { log: log.child("source") });
  } catch (e) {
    log.error((e as Error).message);
    await sink?.stop();
    return 78;
  }
  const line = config.source.baudRate === "auto"
    ? "baudrate auto"
    : describeLine({ ...config.source, baudRate: config.source.baudRate });
  log.info(`Meter source: ${source.description}${source.kind === "serial" ? ` (${line})` : ""}`);
  model.setSource(source.description);

  const decoder = await Decoder.create({
    key: config.key,
    authKey: config.authKey,
    meterType: parseMeterType(config.meterType),
    counters,
    accessGuard: access,
  });
  model.decoderStats = decoder.stats;
  const folder = new RepeatFolder();
  const tlog = log.child("telegram");
  let lastTelegram: string | null = null;

  const diagnostics = (): Diagnostics => ({
    decoded: decoder.stats.decoded,
    failed: decoder.stats.failed,
    lastError: decoder.stats.lastError,
    lastTelegram,
  });

  // A capture file is pulled, not pushed: each reading waits until the sink can send it,
  // so a replay loses nothing however slow the broker. A live meter never waits: there the
  // newest state wins and the sink counts what it supersedes.
  const pullFrom = source.kind === "file" ? sink : null;
  let gaveUp = false;
  const admit = async (target: ReadingSink) => {
    if (target.ready === undefined || target.writable !== false) {
      if (gaveUp) {
        gaveUp = false;
        log.info(`MQTT takes states again: the replay of ${source.description} waits for it`);
      }
      return;
    }
    if (gaveUp) return;
    if (!await target.ready(FILE_WAIT_MS)) {
      gaveUp = true;
      log.warning(
        `MQTT took no state for ${FILE_WAIT_MS / 1000} s (not connected, or the broker ` +
          `does not read): replaying ${source.description} on without waiting; states ` +
          "that cannot go out are counted as superseded",
      );
    }
  };

  // Energy registers are judged once, before any output: MQTT, the web page, the metrics
  // and the JSON lines all see the same guarded reading.
  const glog = log.child("energy");
  const guarded = (r: DecodedTelegram): DecodedTelegram => {
    const g = guard.filter(r.reading, wallNow());
    for (const e of g.events) {
      const quiet = e.kind === "leap-confirmed" || e.kind === "drop-ended";
      glog[quiet ? "info" : "warning"](describeGuardEvent(e));
    }
    return g.reading === r.reading ? r : { ...r, reading: g.reading };
  };

  const handle = async (results: TelegramResult[]) => {
    for (const raw of results) {
      const r = raw.ok ? guarded(raw) : raw;
      model.record(r);
      opts.onResult?.(r);
      if (r.ok) {
        lastTelegram = new Date().toISOString();
        if (pullFrom) await admit(pullFrom);
        sink?.publishReading(r.reading);
        for (const w of r.reading.withheld ?? []) {
          const msg = folder.line(`Named values withheld: ${w.reason}`, now());
          if (msg) tlog.warning(msg);
        }
        if (tlog.debugEnabled) {
          tlog.debug(
            `${r.framing} ${r.security} ${r.layout} counter ${r.reading.frame_counter}: ${
              JSON.stringify(r.reading.values)
            }`,
          );
        }
      } else {
        const msg = folder.line(`Telegram failed at ${r.stage}: ${r.error}`, now());
        if (msg) tlog.warning(msg);
      }
    }
    if (results.length > 0) sink?.setDiagnostics(diagnostics());
  };

  // The guards' state goes to the state file every few minutes while telegrams arrive, and
  // at the stop: after a crash at most those minutes are lost.
  let savedAt = decoder.stats.decoded;
  const saveState = async () => {
    if (state.file.path === null || decoder.stats.decoded === savedAt) return;
    savedAt = decoder.stats.decoded;
    await state.file.save(state.restored, wallNow());
  };
  const stateTimer = state.file.path === null
    ? undefined
    : setInterval(saveState, opts.stateEveryMs ?? STATE_EVERY_MS);

  // Health: once a period, say when the input has stopped making sense, and when it is back.
  // Once an hour, a summary: what was decoded, and what became of it.
  let health: Health = "ok";
  let mark = { ...decoder.stats };
  let summaryMark = { at: now(), ...decoder.stats, ...sink?.stats };
  const healthTimer = setInterval(() => {
    if (now() - summaryMark.at >= SUMMARY_EVERY_MS) {
      const next = { at: now(), ...decoder.stats, ...sink?.stats };
      log.info(summaryLine(summaryMark, next));
      summaryMark = next;
    }
    const next = judgeHealth(mark, decoder.stats);
    const searching = decoder.stats.searches > mark.searches;
    mark = { ...decoder.stats };
    if (next === health) return;
    const seconds = Math.round((opts.healthEveryMs ?? 60_000) / 1000);
    const line = healthLine(next, {
      source: source.description,
      seconds,
      searching,
      lastError: decoder.stats.lastError,
    });
    if (next === "ok") log.info(line);
    else log.warning(line);
    health = next;
  }, opts.healthEveryMs ?? 60_000);

  let status = 0;
  try {
    for await (
      const chunk of readResilient(source, {
        signal,
        log: log.child("source"),
        now,
        listener: model.sourceListener(),
      })
    ) {
      const fed = decoder.feed(chunk, now());
      writeReplies(source, fed.replies, (e) => {
        if (signal.aborted) return; // the port closing as we stop
        const msg = folder.line(`Cannot answer the meter: ${e.message}`, now());
        if (msg) log.warning(msg);
      });
      await handle(await fed.results);
    }
    // Only a replayed file has an end of input to report on; a serial line or TCP
    // stream that is stopped just stops.
    if (source.kind === "file" && !signal.aborted) {
      await handle(await decoder.end());
      model.sourceEnded();
    }
  } catch (e) {
    // Only a capture file that cannot be read ends up here.
    log.error(`Cannot read ${source.description}: ${(e as Error).message}`);
    status = 1;
  } finally {
    clearInterval(healthTimer);
    clearInterval(stateTimer);
    const s = decoder.stats;
    log.info(
      `Stopping: ${s.decoded} telegrams decoded, ${s.failed} failed, ${s.bytes} bytes read`,
    );
    await saveState();
    await sink?.stop();
  }
  return status;
}

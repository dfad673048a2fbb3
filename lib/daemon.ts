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
import { Decoder, type TelegramResult } from "./pipeline.ts";
import type { Log, Logger } from "./log.ts";
import type { Reading } from "./cosem/reading.ts";
import { type ByteSource, readResilient } from "./sources/source.ts";
import { describeLine, sourceFromConfig } from "./sources/open.ts";
import { type Diagnostics, MqttSink, type MqttSinkOptions } from "./sinks/mqtt.ts";
import { supervisorMqtt } from "./supervisor.ts";
import { parseMeterType } from "./cosem/interpret.ts";

/** Where readings go; the MQTT sink is one. */
export interface ReadingSink {
  start(): void;
  /** Resolves true once connected, false after `timeoutMs` (optional). */
  whenConnected?(timeoutMs: number): Promise<boolean>;
  publishReading(r: Reading): void;
  setDiagnostics(d: Diagnostics): void;
  stop(): Promise<void>;
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
}

const PROJECT_URL = "https://github.com/smartmeter-at/smartmeter";
/** How long a capture-file replay waits for the broker before it starts. */
const FILE_CONNECT_WAIT_MS = 15_000;
/** Identical failure messages are logged at most once in this window; repeats are counted. */
const REPEAT_WINDOW_MS = 10 * 60_000;

/** Folds repeated identical failures into one line every {@link REPEAT_WINDOW_MS}. */
export class RepeatFolder {
  readonly #seen = new Map<string, { at: number; folded: number }>();
  constructor(private readonly windowMs = REPEAT_WINDOW_MS) {}

  /** The line to log for `message` now, or null when it is a repeat to fold. */
  line(message: string, now: number): string | null {
    const key = message.replace(/\d+/g, "#").slice(0, 120);
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

/** Runs until the signal aborts (or a replayed file ends); resolves to the exit status. */
export async function runDaemon(opts: DaemonOptions): Promise<number> {
  const { config, logger, signal } = opts;
  const log = logger.get("smartmeter");
  const now = opts.now ?? (() => performance.now());
  const useMqtt = opts.mqtt ?? true;

  log.info(`smartmeter ${opts.version} starting: meter type ${config.meterType}`);
  for (const key of config.obsolete) {
    log.info(`Config key ${key} is obsolete: it is accepted and has no effect`);
  }
  if (!config.key) {
    log.warning(
      "No dlms.key set: only unencrypted meters can be read. Austrian meters encrypt: ask your grid operator for the key",
    );
  }

  let sink: ReadingSink | null = null;
  if (useMqtt) {
    const mqttConfig = { ...config.mqtt };
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
    sink = (opts.createSink ?? ((o) => new MqttSink(o)))(sinkOptions);
    sink.start();
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

  const decoder = await Decoder.create({
    key: config.key,
    authKey: config.authKey,
    meterType: parseMeterType(config.meterType),
  });
  const folder = new RepeatFolder();
  const tlog = log.child("telegram");
  let lastTelegram: string | null = null;

  const diagnostics = (): Diagnostics => ({
    decoded: decoder.stats.decoded,
    failed: decoder.stats.failed,
    lastError: decoder.stats.lastError,
    lastTelegram,
  });

  const handle = (results: TelegramResult[]) => {
    for (const r of results) {
      opts.onResult?.(r);
      if (r.ok) {
        lastTelegram = new Date().toISOString();
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

  // Health: once a period, say when the input has stopped making sense, and when it is back.
  let health: Health = "ok";
  let mark = { ...decoder.stats };
  const healthTimer = setInterval(() => {
    const next = judgeHealth(mark, decoder.stats);
    mark = { ...decoder.stats };
    if (next === health) return;
    const seconds = Math.round((opts.healthEveryMs ?? 60_000) / 1000);
    switch (next) {
      case "ok":
        log.info("Telegrams are decoding again");
        break;
      case "no-bytes":
        log.warning(
          `No bytes from ${source.description} for ${seconds} s: check the cable or the IR head's position, and that the grid operator has enabled the customer interface`,
        );
        break;
      case "no-frames":
        log.warning(
          `Bytes arrive from ${source.description} but no frame in ${seconds} s: check the baud rate and parity (or set dlms.baudrate: auto)`,
        );
        break;
      case "no-telegrams":
        log.warning(
          `Frames arrive but no telegram decoded in ${seconds} s; last error: ${
            decoder.stats.lastError ?? "none"
          }`,
        );
        break;
    }
    health = next;
  }, opts.healthEveryMs ?? 60_000);

  if (source.kind === "file" && sink?.whenConnected) {
    // A capture replays in moments: without the broker it would publish nothing.
    if (!await sink.whenConnected(FILE_CONNECT_WAIT_MS)) {
      log.warning(
        `No MQTT connection after ${
          FILE_CONNECT_WAIT_MS / 1000
        } s: replaying ${source.description} without it`,
      );
    }
  }

  let status = 0;
  try {
    for await (
      const chunk of readResilient(source, {
        signal,
        log: log.child("source"),
        now,
      })
    ) {
      handle(await decoder.push(chunk, now()));
    }
    // Only a replayed file has an end of input to report on; a serial line or TCP
    // stream that is stopped just stops.
    if (source.kind === "file" && !signal.aborted) handle(await decoder.end());
  } catch (e) {
    // Only a capture file that cannot be read ends up here.
    log.error(`Cannot read ${source.description}: ${(e as Error).message}`);
    status = 1;
  } finally {
    clearInterval(healthTimer);
    const s = decoder.stats;
    log.info(
      `Stopping: ${s.decoded} telegrams decoded, ${s.failed} failed, ${s.bytes} bytes read`,
    );
    await sink?.stop();
  }
  return status;
}

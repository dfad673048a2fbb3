/**
 * The MQTT sink: readings to Home Assistant through an MQTT broker (npm `mqtt` 5).
 *
 * What goes on the wire (topics in `homeassistant/discovery.ts`):
 *
 * ```
 *  CONNECT   clientId "smartmeter-<id>", clean session, will <base>/availability "offline" (QoS 1, retained)
 *  CONNACK → <base>/availability "online" (QoS 1, retained)
 *            SUBSCRIBE homeassistant/status
 *            … random 1–5 s pause (one timer; events that come together share it) …
 *            discovery (QoS 1, retained), "online", <base>/meter, last state, diagnostics
 *  reading → <base>/state (QoS 0, not retained), at most one per publish_interval: the newest
 *  homeassistant/status "online" → the same announcement after a random 1–5 s pause
 *  stop()  → <base>/availability "offline", DISCONNECT
 * ```
 *
 * - Network problems never throw: they are logged and the connection is retried forever
 *   with capped exponential backoff and jitter (1 s … 5 s). MQTT.js' own reconnect is off
 *   (`reconnectPeriod: 0`): it retries at a fixed period and not at all after a refused
 *   CONNACK, such as bad credentials.
 * - While the broker is away nothing is queued (`queueQoSZero: false`); only the newest
 *   reading waits, and goes out with the announcement after the reconnect.
 * - Discovery is sent again when what we know about the device grows: the meter id
 *   (serial number) first seen, the manufacturer read from the system title (or named by
 *   an OMS header: `reading.manufacturer`), or named values the meter had not sent before.
 * - The model a telegram tells (`reading.model`: `E450`, `MA304H3E`) fills the discovery's
 *   `device.model` when the configuration left it open, and is announced once.
 * - `<base>/meter` goes `offline` when no reading arrived for `meterTimeout` seconds, and
 *   `online` with the next one; the meter's entities need both availability topics.
 * - Energy registers arrive already guarded (the daemon's `EnergyGuard`): what reaches the
 *   sink is published as it is.
 * - The password is never logged.
 *
 * @module
 */

import type { MqttConfig } from "../config.ts";
import mqtt from "mqtt";
import type { IClientOptions, MqttClient } from "mqtt";
import { fromHex } from "../bytes.ts";
import type { NamedKey } from "../cosem/obis.ts";
import type { Reading } from "../cosem/reading.ts";
import {
  baseTopic,
  buildDiscovery,
  type DeviceInfo,
  HA_STATUS_TOPIC,
  manufacturerFromSystemTitle,
  type Topics,
  topicsFor,
} from "../homeassistant/discovery.ts";
import { buildState } from "../homeassistant/state.ts";
import { TakeoverDetector } from "./takeover.ts";

/** The MQTT part of the configuration (same fields as `MqttConfig` in lib/config.ts). */
export type { MqttConfig };

export type LogLevel = "debug" | "info" | "warning" | "error";

/** Counters of the decoder, shown by the diagnostic entities. */
export interface Diagnostics {
  decoded: number;
  failed: number;
  lastError: string | null;
  /** ISO 8601 time with offset of the last decoded telegram (HA's timestamp class needs it). */
  lastTelegram: string | null;
}

export interface MqttSinkOptions {
  config: MqttConfig;
  device: DeviceInfo;
  log: (level: LogLevel, msg: string) => void;
  /** Random numbers in [0, 1) for the jitter and the announcement pause (tests pin it). */
  random?: () => number;
  /** Clock in milliseconds (tests may replace it). */
  now?: () => number;
  /** Seconds without a reading after which the meter counts as silent (default 120). */
  meterTimeout?: number;
  /** Makes the client (default `mqtt.connect`); tests use it to reach the socket. */
  createClient?: (options: IClientOptions) => MqttClient;
  /**
   * After another client took our session over: how often to check whether it is gone,
   * and how long each check listens (ms; default 60 s and 10 s).
   */
  takeover?: { checkEveryMs?: number; watchMs?: number };
}

const BACKOFF_MIN_MS = 1_000;
/** Unsent bytes on the socket above which state and diagnostics wait for it to drain. */
const BACKLOG_LIMIT = 64 * 1024;
/**
 * Retries are capped at 5 s (with jitter): a broker on the LAN costs one connection attempt
 * per retry, and a longer cap made a 30 s broker restart cost 37 s of missing data.
 */
const BACKOFF_MAX_MS = 5_000;
const ANNOUNCE_MIN_MS = 1_000;
const ANNOUNCE_SPREAD_MS = 4_000;
const CONNECT_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 3_000;
const TAKEOVER_CHECK_MS = 60_000;
const TAKEOVER_WATCH_MS = 10_000;
/** How long retained messages are waited for after a subscription was granted. */
const RETAINED_SETTLE_MS = 500;
/** A refusal of the same topic by the broker is logged at most once in this window. */
const REFUSAL_WINDOW_MS = 10 * 60_000;
const DEFAULT_METER_TIMEOUT_S = 120;

/** CONNACK return codes (3.1.1) and reason codes (5) that mean "wrong credentials". */
const AUTH_REFUSALS: Readonly<Record<number, string>> = {
  4: "bad user name or password",
  5: "not authorized",
  134: "bad user name or password",
  135: "not authorized",
};

/**
 * Sends the newest pushed value at most once per interval: at once when the last send is
 * an interval ago, otherwise when the interval is over. A value that cannot be sent (the
 * broker is away, the socket is backed up) stays until {@link flush} succeeds or a newer one
 * replaces it. Every value that never went out (replaced, or still waiting when the sink
 * stops) is counted by `onSuperseded`, so that given = sent + superseded always holds.
 */
class Throttle<T> {
  #pending: T | null = null;
  #lastSent = -Infinity;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number,
    private readonly send: (value: T) => boolean,
    private readonly onSuperseded: () => void = () => {},
  ) {}

  push(value: T): void {
    if (this.#pending !== null) this.onSuperseded();
    this.#pending = value;
    const wait = this.#lastSent + this.intervalMs - this.now();
    if (wait <= 0) this.flush();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.flush();
      }, wait);
    }
  }

  /** Sends the pending value now; false when there was none or it could not be sent. */
  flush(): boolean {
    if (this.#pending === null || !this.send(this.#pending)) return false;
    this.#pending = null;
    this.#lastSent = this.now();
    return true;
  }

  /** Stops the timer; a value still pending is dropped and counted as superseded. */
  cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending !== null) {
      this.#pending = null;
      this.onSuperseded();
    }
  }
}

/** Publishes readings, discovery and availability to an MQTT broker for Home Assistant. */
export class MqttSink {
  /**
   * `published`: readings sent as state; `superseded`: readings that never went out, because
   * a newer one replaced them while they waited (the publish interval, a backed-up socket,
   * the broker away) or the sink stopped first. Every reading given to
   * {@link publishReading} ends up in exactly one of the two. `reconnects`: connections
   * re-established after one was lost; `discoveryPublished`: discovery messages sent.
   */
  readonly stats = { published: 0, superseded: 0, reconnects: 0, discoveryPublished: 0 };

  readonly #config: MqttConfig;
  readonly #device: DeviceInfo;
  readonly #log: (level: LogLevel, msg: string) => void;
  readonly #random: () => number;
  readonly #now: () => number;
  readonly #meterTimeoutMs: number;
  readonly #createClient: (options: IClientOptions) => MqttClient;
  readonly #topics: Topics;
  readonly #statusTopics: string[];
  readonly #present = new Set<NamedKey>();
  readonly #state: Throttle<Reading>;
  readonly #diagnostics: Throttle<Diagnostics>;

  #client: MqttClient | null = null;
  #started = false;
  #stopped = false;
  #everConnected = false;
  #attempts = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #announceTimer: ReturnType<typeof setTimeout> | undefined;
  #meterTimer: ReturnType<typeof setTimeout> | undefined;
  #meterOnline = false;
  #lastState: string | null = null;
  #lastDiagnostics: string | null = null;
  #failure: { message: string; level: LogLevel } | null = null;
  #lastLoggedFailure: string | null = null;
  readonly #takeover: TakeoverDetector;
  readonly #takeoverCheckMs: number;
  readonly #takeoverWatchMs: number;
  /** This process's id on `<base>/instance`, to tell another program with our client id. */
  readonly #instanceId = crypto.randomUUID();
  /** Another client has our client id: we wait for it to go instead of fighting it. */
  #yielding = false;
  #yieldTimer: ReturnType<typeof setTimeout> | undefined;
  #watchClient: MqttClient | null = null;
  /** When the broker last refused each topic (MQTT 5 PUBACK reason codes). */
  readonly #refusals = new Map<string, number>();

  constructor(opts: MqttSinkOptions) {
    this.#config = opts.config;
    this.#device = { ...opts.device };
    this.#log = opts.log;
    this.#random = opts.random ?? Math.random;
    this.#now = opts.now ?? Date.now;
    this.#meterTimeoutMs = (opts.meterTimeout ?? DEFAULT_METER_TIMEOUT_S) * 1000;
    this.#createClient = opts.createClient ?? ((options) => mqtt.connect(options));
    this.#takeover = new TakeoverDetector({ now: this.#now });
    this.#takeoverCheckMs = opts.takeover?.checkEveryMs ?? TAKEOVER_CHECK_MS;
    this.#takeoverWatchMs = opts.takeover?.watchMs ?? TAKEOVER_WATCH_MS;
    this.#topics = topicsFor(this.#device);
    const birth = `${this.#device.discoveryPrefix}/status`;
    this.#statusTopics = birth === HA_STATUS_TOPIC ? [HA_STATUS_TOPIC] : [HA_STATUS_TOPIC, birth];
    const intervalMs = Math.max(0, opts.config.publishInterval) * 1000;
    this.#state = new Throttle(
      intervalMs,
      this.#now,
      (r) => this.#sendState(r),
      () => this.stats.superseded++,
    );
    this.#diagnostics = new Throttle(intervalMs, this.#now, (d) => this.#sendDiagnostics(d));
  }

  /** Whether the broker has accepted the connection. */
  get connected(): boolean {
    return this.#client?.connected ?? false;
  }

  /** Connects in the background; problems are logged and retried, never thrown. */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    if (this.#config.host === "") {
      this.#log("error", "MQTT host is empty: set mqtt.host to the broker's address");
      return;
    }
    this.#connect();
  }

  /** Takes a reading; it is published now or at the end of the publish interval. */
  publishReading(r: Reading): void {
    if (this.#stopped) return;
    this.#noteMeterAlive();
    this.#learnDevice(r);
    this.#state.push(r);
  }

  /** Takes the decoder's counters; published on the same schedule as readings. */
  setDiagnostics(d: Diagnostics): void {
    if (this.#stopped) return;
    this.#diagnostics.push({ ...d });
  }

  /**
   * Whether a reading given now goes out at once: connected, and the socket is not backed
   * up. (With a publish interval it may still wait for the interval.)
   */
  get writable(): boolean {
    return this.connected && !this.#congested();
  }

  /**
   * Resolves true once the broker has accepted the connection (at once when it has), false
   * after `timeoutMs` or when the sink stops first.
   */
  whenConnected(timeoutMs: number): Promise<boolean> {
    return this.#until(() => this.connected, timeoutMs);
  }

  /**
   * Resolves true once the sink is {@link writable} (at once when it is), false after
   * `timeoutMs` or when the sink stops first. A capture replay waits on it before each
   * reading, so that it is read only as fast as the broker takes the states.
   */
  ready(timeoutMs: number): Promise<boolean> {
    return this.#until(() => this.writable, timeoutMs);
  }

  /** Waiters of {@link #until}: each checks its condition again on connect and drain. */
  readonly #waiters = new Set<(stopping: boolean) => void>();

  #until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
    if (condition()) return Promise.resolve(true);
    if (this.#stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(ok);
      };
      const check = (stopping: boolean) => {
        if (stopping) done(false);
        else if (condition()) done(true);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#waiters.add(check);
    });
  }

  /** Lets the waiters check their condition again (or give up, when stopping). */
  #wake(stopping = false): void {
    for (const check of [...this.#waiters]) check(stopping);
  }

  /**
   * Publishes what is still waiting (an announcement due, the newest state and
   * diagnostics), then `offline`; disconnects cleanly and stops every timer.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    const client = this.#client;
    if (client?.connected) {
      if (this.#announceTimer !== undefined) this.#announce();
      this.#state.flush();
      this.#diagnostics.flush();
    }
    this.#stopped = true;
    this.#wake(true);
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#announceTimer);
    clearTimeout(this.#meterTimer);
    clearTimeout(this.#yieldTimer);
    await this.#watchClient?.endAsync(true).catch(() => {});
    this.#state.cancel();
    this.#diagnostics.cancel();
    if (client === null) return;
    let clean = false;
    if (client.connected) {
      clean = await this.#publishAndWait(client, this.#topics.availability, "offline");
    }
    if (!clean) dropInFlight(client);
    await client.endAsync(!clean);
    this.#log("info", `Disconnected from the MQTT broker: ${this.#tally()}`);
  }

  /** What became of the readings: `12 states published, 3 superseded`. */
  #tally(): string {
    return `${this.stats.published} states published, ${this.stats.superseded} superseded`;
  }

  // ---- connection ----

  #brokerUrl(): string {
    const c = this.#config;
    return `${c.tls ? "mqtts" : "mqtt"}://${c.host}:${c.port}`;
  }

  #connect(): void {
    if (this.#stopped) return;
    if (this.#client !== null) {
      this.#log("debug", `Reconnecting to the MQTT broker (attempt ${this.#attempts})`);
      this.#client.reconnect();
      return;
    }
    let options: IClientOptions;
    try {
      options = this.#clientOptions();
    } catch (e) {
      this.#failure = { message: (e as Error).message, level: "error" };
      this.#scheduleReconnect();
      return;
    }
    const c = this.#config;
    const who = c.user === null ? "without a user name" : `as user "${c.user}"`;
    this.#log(
      "info",
      `Connecting to the MQTT broker ${this.#brokerUrl()} ${who} (client id "${c.clientId}")`,
    );
    if (c.password !== null && c.password !== "" && c.user === null) {
      this.#log("warning", "mqtt.password is set but mqtt.user is not: the password is not sent");
    }
    const client = this.#createClient(options);
    this.#client = client;
    client.on("connect", () => this.#onConnect(client));
    client.on("disconnect", (packet) => this.#takeover.disconnected(packet.reasonCode));
    client.on("close", () => this.#onClose(client));
    client.on("error", (e) => this.#onError(e));
    client.on("message", (topic, payload) => this.#onMessage(topic, payload.toString()));
  }

  #clientOptions(): IClientOptions {
    return mqttClientOptions(this.#config, this.#topics.availability);
  }

  #onConnect(client: MqttClient): void {
    this.#takeover.connected();
    this.#yielding = false;
    if (this.#everConnected) this.stats.reconnects++;
    const after = this.#attempts > 1 ? ` after ${this.#attempts} attempts` : "";
    this.#log("info", `Connected to the MQTT broker ${this.#brokerUrl()}${after}`);
    this.#everConnected = true;
    this.#attempts = 0;
    this.#failure = null;
    this.#lastLoggedFailure = null;
    this.#waitingForDrain = false;
    this.#publish(this.#topics.instance, this.#instanceId, 1, true);
    this.#publish(this.#topics.availability, "online", 1, true);
    client.subscribe(this.#statusTopics, { qos: 0 }, (err) => {
      if (err) {
        this.#log("warning", `Subscribing to Home Assistant's status failed: ${err.message}`);
      }
    });
    this.#scheduleAnnounce();
    this.#wake();
  }

  #onError(e: Error): void {
    this.#failure = describeMqttError(e, this.#brokerUrl(), this.#config.credentialsFrom);
  }

  #onClose(client: MqttClient): void {
    if (this.#stopped) return;
    clearTimeout(this.#announceTimer);
    this.#announceTimer = undefined;
    dropInFlight(client);
    const takeover = this.#takeover.closed();
    if (takeover !== "no") {
      this.#failure = null;
      void this.#checkTakeover(takeover);
      return;
    }
    if (this.#failure === null && this.#attempts === 0) {
      this.#failure = { message: "MQTT connection lost", level: "warning" };
    }
    this.#scheduleReconnect();
  }

  // ---- another client with our client id ----

  /**
   * The broker closed the connection in a way that points at another client with our id:
   * told so (MQTT 5), or suspected (MQTT 3.1.1). Look before yielding: only a device that is
   * "online" under another instance's id is another program; otherwise reconnect as usual.
   */
  async #checkTakeover(how: "told" | "suspected"): Promise<void> {
    const seen = await this.#lookAtDevice();
    if (this.#stopped) return;
    const other = seen !== null && seen.online && seen.instance !== this.#instanceId &&
      (how === "told" || seen.instance !== null);
    if (other || (how === "told" && seen === null)) this.#yieldToOther();
    else this.#scheduleReconnect();
  }

  /**
   * Another client took our session: instead of taking it back (and making Home Assistant
   * see the device flap), wait, and check now and then with another client id whether the
   * other one still holds the device's availability topic at "online".
   */
  #yieldToOther(): void {
    if (!this.#yielding) {
      this.#yielding = true;
      this.#log(
        "warning",
        `Another client with the same client id "${this.#config.clientId}" took over the ` +
          "MQTT connection: is a second smartmeter running with this config (a service and " +
          "a manual run, or the add-on and another machine)? Not fighting it: waiting until " +
          `it is gone (checking every ${Math.round(this.#takeoverCheckMs / 1000)} s)`,
      );
    }
    clearTimeout(this.#yieldTimer);
    this.#yieldTimer = setTimeout(() => {
      this.#yieldTimer = undefined;
      void this.#checkOther();
    }, this.#takeoverCheckMs);
  }

  async #checkOther(): Promise<void> {
    const seen = await this.#lookAtDevice();
    if (this.#stopped) return;
    if (seen !== null && seen.online && seen.instance !== this.#instanceId) {
      this.#log("debug", "The other client is still online: waiting");
      this.#yieldToOther();
      return;
    }
    this.#log(
      "info",
      seen !== null
        ? "The other client with this client id is gone: connecting again"
        : "Cannot tell whether the other client is still there: connecting again",
    );
    this.#connect();
  }

  /**
   * What the broker keeps retained for the device while we are not connected: whether
   * `<base>/availability` is "online", and the instance id on `<base>/instance`. Listens
   * with the client id `<client id>-watch`; null when the broker could not be asked.
   */
  #lookAtDevice(): Promise<{ online: boolean; instance: string | null } | null> {
    let options: IClientOptions;
    try {
      options = {
        ...mqttClientOptions(this.#config, null),
        clientId: `${this.#config.clientId}-watch`,
        connectTimeout: this.#takeoverWatchMs,
      };
    } catch {
      return Promise.resolve(null);
    }
    const watch = this.#createClient(options);
    this.#watchClient = watch;
    const seen = { online: false, instance: null as string | null };
    const got = new Set<string>();
    return new Promise((resolve) => {
      let settle: ReturnType<typeof setTimeout> | undefined;
      const done = (answer: typeof seen | null) => {
        clearTimeout(timer);
        clearTimeout(settle);
        this.#watchClient = null;
        watch.removeAllListeners("message");
        watch.endAsync(true).catch(() => {});
        resolve(answer);
      };
      const timer = setTimeout(() => done(null), this.#takeoverWatchMs);
      watch.on("error", () => done(null));
      watch.on("message", (topic, payload) => {
        const text = payload.toString();
        if (topic === this.#topics.availability) seen.online = text === "online";
        else if (topic === this.#topics.instance) seen.instance = text === "" ? null : text;
        got.add(topic);
        if (got.size === 2) done(seen);
      });
      watch.on("connect", () => {
        const topics = [this.#topics.availability, this.#topics.instance];
        watch.subscribe(topics, { qos: 0 }, (err) => {
          // Retained messages follow the subscription at once; what has not come soon
          // after is not there.
          if (err) done(null);
          else settle = setTimeout(() => done(seen), RETAINED_SETTLE_MS);
        });
      });
    });
  }

  #scheduleReconnect(): void {
    if (this.#stopped || this.#reconnectTimer !== undefined) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.#attempts);
    const jittered = base * (0.75 + 0.5 * this.#random());
    const delay = Math.round(Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_MIN_MS, jittered)));
    this.#attempts++;
    const failure = this.#failure ?? { message: "MQTT connection failed", level: "warning" };
    const line = `${failure.message}; retrying in ${Math.round(delay / 1000)} s`;
    // One outage, one line: the first failure is logged at its level; later ones only at
    // debug level, unless a new error (say, a refusal of the credentials) shows up.
    const quiet = failure.message === this.#lastLoggedFailure ||
      (this.#lastLoggedFailure !== null && failure.level !== "error");
    this.#log(quiet ? "debug" : failure.level, line);
    if (!quiet) this.#lastLoggedFailure = failure.message;
    this.#failure = null;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#connect();
    }, delay);
  }

  #onMessage(topic: string, payload: string): void {
    if (!this.#statusTopics.includes(topic)) return;
    if (payload === "online") {
      this.#log("info", "Home Assistant is online: sending discovery and state again");
      this.#scheduleAnnounce();
    }
  }

  // ---- publishing ----

  /** One pending announcement at a time: events that come together share it. */
  #scheduleAnnounce(): void {
    if (this.#announceTimer !== undefined) return;
    const delay = ANNOUNCE_MIN_MS + ANNOUNCE_SPREAD_MS * this.#random();
    this.#announceTimer = setTimeout(() => {
      this.#announceTimer = undefined;
      this.#announce();
    }, delay);
  }

  #announce(): void {
    if (!this.connected) return;
    this.#publishDiscovery();
    this.#publish(this.#topics.availability, "online", 1, true);
    this.#publishMeterAvailability();
    if (!this.#state.flush() && this.#lastState !== null) {
      this.#publish(this.#topics.state, this.#lastState, 0, false);
    }
    if (!this.#diagnostics.flush() && this.#lastDiagnostics !== null) {
      this.#publish(this.#topics.diagnostics, this.#lastDiagnostics, 0, false);
    }
  }

  #publishDiscovery(): void {
    const { payload } = buildDiscovery(this.#device, this.#present);
    if (this.#publish(this.#topics.discovery, JSON.stringify(payload), 1, true)) {
      this.stats.discoveryPublished++;
    }
  }

  #publishMeterAvailability(): void {
    this.#publish(this.#topics.meter, this.#meterOnline ? "online" : "offline", 1, true);
  }

  #sendState(r: Reading): boolean {
    if (!this.connected || this.#congested()) return false;
    const json = JSON.stringify(buildState(r));
    if (!this.#publish(this.#topics.state, json, 0, false)) return false;
    this.#lastState = json;
    this.stats.published++;
    return true;
  }

  #sendDiagnostics(d: Diagnostics): boolean {
    if (this.#congested()) return false;
    const json = JSON.stringify({
      decoded: d.decoded,
      failed: d.failed,
      last_error: d.lastError,
      last_telegram: d.lastTelegram,
      published: this.stats.published,
      superseded: this.stats.superseded,
    });
    if (!this.#publish(this.#topics.diagnostics, json, 0, false)) return false;
    this.#lastDiagnostics = json;
    return true;
  }

  /** Publishes when connected; false when not (nothing is queued). */
  #publish(topic: string, payload: string, qos: 0 | 1, retain: boolean): boolean {
    const client = this.#client;
    if (client === null || !client.connected) return false;
    if (qos === 0) {
      // No callback: MQTT.js adds a 'drain' listener per callback while the socket is full.
      client.publish(topic, payload, { qos, retain });
    } else {
      client.publish(topic, payload, { qos, retain }, (err) => {
        if (err) this.#publishFailed(topic, err);
      });
    }
    return true;
  }

  /**
   * A QoS 1 publish that did not go through. A refusal by the broker (an MQTT 5 PUBACK
   * reason code of 0x80 or more: not authorized, topic name invalid, quota exceeded, ...)
   * is a warning naming the topic, once per topic every 10 minutes; a publish lost with
   * its connection is only debug (the announcement after the reconnect sends it again).
   */
  #publishFailed(topic: string, err: Error): void {
    const code = (err as { code?: unknown }).code;
    if (typeof code !== "number" || code < 0x80) {
      this.#log("debug", `Publishing to "${topic}" failed: ${err.message}`);
      return;
    }
    const at = this.#now();
    const last = this.#refusals.get(topic);
    if (last !== undefined && at - last < REFUSAL_WINDOW_MS) return;
    this.#refusals.set(topic, at);
    const who = this.#config.user === null ? "this client" : `user "${this.#config.user}"`;
    this.#log(
      "warning",
      `The MQTT broker refused to take "${topic}": ${
        err.message.replace(/^Publish error: /, "")
      } ` +
        `(reason code 0x${code.toString(16)}): check that the broker's ACL lets ${who} ` +
        "publish there",
    );
  }

  /**
   * Whether the socket holds more unsent bytes than {@link BACKLOG_LIMIT}: then state and
   * diagnostics wait (only the newest is kept) and go out when the socket has drained, so
   * a broker that reads slowly cannot make the backlog, and memory, grow without bound.
   */
  #congested(): boolean {
    const stream = this.#client?.stream as { writableLength?: number; once?: unknown } | undefined;
    if (!stream || (stream.writableLength ?? 0) <= BACKLOG_LIMIT) return false;
    if (!this.#waitingForDrain && typeof stream.once === "function") {
      this.#waitingForDrain = true;
      (stream as { once(event: string, f: () => void): void }).once("drain", () => {
        this.#waitingForDrain = false;
        if (this.#stopped) return;
        this.#state.flush();
        this.#diagnostics.flush();
        this.#wake();
      });
    }
    return true;
  }

  #waitingForDrain = false;

  async #publishAndWait(client: MqttClient, topic: string, payload: string): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), STOP_TIMEOUT_MS);
    });
    const sent = client.publishAsync(topic, payload, { qos: 1, retain: true }).then(
      () => true,
      () => false,
    );
    try {
      return await Promise.race([sent, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  // ---- what we learn from readings ----

  #noteMeterAlive(): void {
    clearTimeout(this.#meterTimer);
    this.#meterTimer = setTimeout(() => {
      this.#meterTimer = undefined;
      this.#meterOnline = false;
      this.#log(
        "warning",
        `No telegram from the meter for ${this.#meterTimeoutMs / 1000} s: ` +
          "Home Assistant shows its entities as unavailable",
      );
      this.#publishMeterAvailability();
    }, this.#meterTimeoutMs);
    if (!this.#meterOnline) {
      this.#meterOnline = true;
      this.#publishMeterAvailability();
    }
  }

  #learnDevice(r: Reading): void {
    let changed = false;
    for (const [key, value] of Object.entries(r.values) as [NamedKey, number][]) {
      if (Number.isFinite(value) && !this.#present.has(key)) {
        this.#present.add(key);
        changed = true;
      }
    }
    if (r.meter_id !== null && r.meter_id !== "" && r.meter_id !== this.#device.serialNumber) {
      // The first id is announced at once. A different one later (a new meter, or two
      // meters on one line) goes out with the next announcement, not with every telegram.
      if (this.#device.serialNumber === null) changed = true;
      this.#device.serialNumber = r.meter_id;
    }
    // An OMS header names the manufacturer itself (Netz OÖ AMIS: Siemens).
    if (this.#device.manufacturer === null && r.manufacturer !== undefined) {
      this.#device.manufacturer = r.manufacturer;
      changed = true;
    }
    if (this.#device.manufacturer === null && r.system_title !== null) {
      const manufacturer = manufacturerFromSystemTitle(systemTitleBytes(r.system_title));
      if (manufacturer !== null) {
        this.#device.manufacturer = manufacturer;
        changed = true;
      }
    }
    if (this.#device.model === null && r.model) {
      this.#device.model = r.model;
      changed = true;
    }
    // The announcement after a (re)connect sends discovery anyway.
    if (changed && this.#announceTimer === undefined) this.#publishDiscovery();
  }
}

/**
 * MQTT.js options for `c`: TLS files read, `tls_insecure` as a host-name-only relaxation,
 * no automatic reconnect (the sink backs off itself), and the last will on `willTopic`.
 */
export function mqttClientOptions(c: MqttConfig, willTopic: string | null): IClientOptions {
  const options: IClientOptions & { checkServerIdentity?: () => undefined } = {
    protocol: c.tls ? "mqtts" : "mqtt",
    host: c.host,
    port: c.port,
    clientId: c.clientId,
    keepalive: c.keepalive,
    clean: true,
    protocolVersion: c.protocolVersion,
    reconnectPeriod: 0,
    connectTimeout: CONNECT_TIMEOUT_MS,
    queueQoSZero: false,
    resubscribe: false,
    // Without it, mqtt-packet keeps 65,536 pre-built message-id Buffers (~11 MB resident).
    writeCache: false,
  };
  if (willTopic !== null) {
    options.will = { topic: willTopic, payload: "offline", qos: 1, retain: true };
  }
  if (c.user !== null) {
    options.username = c.user;
    if (c.password !== null) options.password = c.password;
  }
  if (c.tls) {
    if (c.tlsCa !== null) options.ca = readTlsFile("mqtt.tls_ca", c.tlsCa);
    if (c.tlsCert !== null) options.cert = readTlsFile("mqtt.tls_cert", c.tlsCert);
    if (c.tlsKey !== null) options.key = readTlsFile("mqtt.tls_key", c.tlsKey);
    options.rejectUnauthorized = true;
    // tls_insecure skips the host name check only; the chain is still verified.
    if (c.tlsInsecure) options.checkServerIdentity = () => undefined;
  }
  return options;
}

/** A connection error as a message for users, and how loud to log it. */
export function describeMqttError(
  e: Error,
  brokerUrl: string,
  credentialsFrom: MqttConfig["credentialsFrom"] = "config",
): { message: string; level: "warning" | "error" } {
  const code = (e as { code?: unknown }).code;
  if (typeof code === "number" && code in AUTH_REFUSALS) {
    const fix = credentialsFrom === "supervisor"
      ? "the user name and password came from the Home Assistant Supervisor (mqtt.host is " +
        "empty), not from mqtt.user: restart the Mosquitto broker add-on, or set mqtt.host, " +
        "mqtt.user and mqtt.password yourself"
      : "check mqtt.user/mqtt.password";
    return {
      message: `MQTT broker ${brokerUrl} refused the connection: ${AUTH_REFUSALS[code]} — ${fix}`,
      level: "error",
    };
  }
  if (typeof code === "number" && e.message.startsWith("Connection refused")) {
    return {
      message: `MQTT broker ${brokerUrl} refused the connection: ${e.message} (code ${code})`,
      level: "error",
    };
  }
  return { message: `MQTT connection to ${brokerUrl} failed: ${e.message}`, level: "warning" };
}

/** The topic `smartmeter check` sends its test message to: `<base>/check`. */
export function probeTopic(c: MqttConfig): string {
  return `${baseTopic(c.prefix, c.deviceId)}/check`;
}

/** How a client is named in messages: `as user "meter"` or `without a user name`. */
export function describeUser(c: MqttConfig): string {
  return c.user === null ? "without a user name" : `as user "${c.user}"`;
}

/**
 * For `smartmeter check`: connects once, subscribes to {@link probeTopic}, publishes a QoS 1
 * test message there and waits up to `roundTripMs` for it to come back, then disconnects.
 * Null when the broker took the connection and delivered the message, else the reason.
 * A broker whose ACL refuses us drops the message in silence (MQTT 3.1.1) or refuses it
 * in its PUBACK (MQTT 5): both are reported, naming the user and the topic.
 */
export async function probeMqtt(
  c: MqttConfig,
  timeoutMs = 10_000,
  roundTripMs = 5_000,
): Promise<string | null> {
  const url = `${c.tls ? "mqtts" : "mqtt"}://${c.host}:${c.port}`;
  let options: IClientOptions;
  try {
    options = { ...mqttClientOptions(c, null), connectTimeout: timeoutMs };
  } catch (e) {
    return (e as Error).message;
  }
  const client = mqtt.connect({ ...options, clientId: `${c.clientId}-check` });
  const timers: ReturnType<typeof setTimeout>[] = [];
  const after = (ms: number) =>
    new Promise<void>((resolve) => timers.push(setTimeout(resolve, ms)));
  try {
    const refused = await new Promise<string | null>((resolve) => {
      after(timeoutMs).then(() =>
        resolve(`No answer from the MQTT broker ${url} within ${timeoutMs / 1000} s`)
      );
      client.once("connect", () => resolve(null));
      client.on("error", (e) => resolve(describeMqttError(e, url, c.credentialsFrom).message));
    });
    if (refused !== null) return refused;

    const topic = probeTopic(c);
    const token = `smartmeter check ${crypto.randomUUID()}`;
    const deaf = `connected to ${url} ${describeUser(c)}, but the broker does not deliver:`;
    const who = c.user === null ? "anonymous clients" : `user "${c.user}"`;
    const fix = `its access control (ACL) must let ${who} publish to and read "${
      baseTopic(c.prefix, c.deviceId)
    }/#" (and the discovery topics under "${c.discoveryPrefix}/")`;
    const cameBack = new Promise<boolean>((resolve) => {
      client.on("message", (t, payload) => {
        if (t === topic && payload.toString() === token) resolve(true);
      });
    });
    try {
      const granted = await client.subscribeAsync(topic, { qos: 1 });
      if (granted.some((g) => g.qos >= 0x80)) {
        return `${deaf} it refused the subscription to "${topic}"; ${fix}`;
      }
    } catch (e) {
      return `${deaf} it refused the subscription to "${topic}" (${(e as Error).message}); ${fix}`;
    }
    try {
      await client.publishAsync(topic, token, { qos: 1, retain: false });
    } catch (e) {
      return `${deaf} it refused the test message to "${topic}" (${(e as Error).message}); ${fix}`;
    }
    const back = await Promise.race([cameBack, after(roundTripMs).then(() => false)]);
    if (!back) {
      return `${deaf} a test message to "${topic}" did not come back within ${
        roundTripMs / 1000
      } s; ${fix}`;
    }
    return null;
  } finally {
    for (const t of timers) clearTimeout(t);
    await client.endAsync(true).catch(() => {});
  }
}

function readTlsFile(key: string, path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (e) {
    throw new Error(`Cannot read ${key} "${path}": ${(e as Error).message}`);
  }
}

function systemTitleBytes(hex: string): Uint8Array | null {
  try {
    return fromHex(hex);
  } catch {
    return null;
  }
}

/**
 * Forgets QoS 1 messages still waiting for their PUBACK on a connection that is gone.
 * MQTT.js keeps them after its stores are replaced by `reconnect()`, and `end()` would
 * then wait for them forever. Whatever they carried is published again by the
 * announcement after the reconnect.
 */
function dropInFlight(client: MqttClient): void {
  for (const id of Object.keys(client.outgoing)) client.removeOutgoingMessage(Number(id));
}

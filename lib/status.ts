/**
 * What the daemon is doing, for whoever asks (the web server today): counters, the last
 * few failures with their stage and cause, the last decoded telegram, the state of the
 * source and of MQTT, and the uptime.
 *
 * ```
 *  daemon ──record(result)──▶ StatusModel ──subscribe()──▶ web server (SSE, plot, "today")
 *  readResilient ──listener──▶     │        ──snapshot()──▶ /api/v1/status, /metrics
 *  MQTT sink ──mqtt()─────────▶    │
 * ```
 *
 * Everything here is bounded: a fixed number of failures is kept, and only the newest
 * telegram. Nothing is written anywhere. Keys and passwords never reach it: it sees
 * telegram results, source descriptions (a device path or host:port) and connection
 * states only.
 *
 * @module
 */

import { type Layer, LAYERS } from "./errors.ts";
import type { Framing } from "./framing/framer.ts";
import type { SecurityLevel } from "./dlms/security.ts";
import type { Reading } from "./cosem/reading.ts";
import type { DecodedTelegram, DecoderStats, TelegramResult } from "./pipeline.ts";
import type { SourceListener } from "./sources/source.ts";

/** How many failures {@link StatusModel} keeps (the newest). */
export const FAILURES_KEPT = 10;

/** One telegram that did not decode. */
export interface FailureRecord {
  /** ISO 8601 UTC time it was seen. */
  readonly time: string;
  readonly stage: Layer;
  readonly error: string;
  readonly framing: Framing | null;
}

/** A telegram that decoded, as the daemon saw it arrive. */
export interface TelegramEvent {
  /** Running number since start, from 1. */
  readonly seq: number;
  /** Wall-clock time it was decoded, ms since the epoch. */
  readonly receivedMs: number;
  readonly framing: Framing;
  readonly security: SecurityLevel;
  readonly layout: string;
  readonly reading: Reading;
}

/** `starting`: not opened yet; `open`: bytes can flow; `lost`: retrying; `ended`: a replayed file is done. */
export type SourceState = "starting" | "open" | "lost" | "ended";

/** `off`: not used (`--no-mqtt`, the demo without `--mqtt`). */
export type MqttState = "off" | "connected" | "disconnected";

/** What the MQTT side reports when asked. */
export interface MqttStatus {
  readonly state: MqttState;
  /** `host:port` of the broker (never a user name or password). */
  readonly broker: string | null;
  /**
   * States sent, and states a newer one replaced before they went out (the publish
   * interval, a slow or absent broker): decoded = published + superseded, give or take
   * the one state waiting.
   */
  readonly published?: number;
  readonly superseded?: number;
}

export interface StatusOptions {
  version: string;
  /** Wall clock, ms since the epoch (tests pin it). */
  now?: () => number;
}

/** The daemon's state, fed by the daemon, read by the web server. */
export class StatusModel {
  readonly version: string;
  readonly startedMs: number;
  readonly now: () => number;

  decoded = 0;
  failed = 0;
  readonly failedByStage: Record<Layer, number> = Object.fromEntries(
    LAYERS.map((s) => [s, 0]),
  ) as Record<Layer, number>;
  /** The newest failures, oldest first, at most {@link FAILURES_KEPT}. */
  readonly failures: FailureRecord[] = [];
  /** The newest decoded telegram. */
  last: TelegramEvent | null = null;

  source: {
    description: string | null;
    state: SourceState;
    /** ms since the epoch of the last change */
    sinceMs: number;
    error: string | null;
  };

  /** Asked whenever the MQTT state is shown; the daemon sets it. */
  mqtt: () => MqttStatus = () => ({ state: "off", broker: null });
  /** The decoder's own counters (bytes, frames), when the daemon links them. */
  decoderStats: Readonly<DecoderStats> | null = null;

  readonly #listeners = new Set<(e: TelegramEvent) => void>();

  constructor(opts: StatusOptions) {
    this.version = opts.version;
    this.now = opts.now ?? Date.now;
    this.startedMs = this.now();
    this.source = { description: null, state: "starting", sinceMs: this.startedMs, error: null };
  }

  /** Takes one telegram result from the pipeline. */
  record(r: TelegramResult): void {
    if (r.ok) this.#decoded(r);
    else {
      this.failed++;
      this.failedByStage[r.stage] = (this.failedByStage[r.stage] ?? 0) + 1;
      this.failures.push({
        time: new Date(this.now()).toISOString(),
        stage: r.stage,
        error: r.error,
        framing: r.framing ?? null,
      });
      if (this.failures.length > FAILURES_KEPT) this.failures.shift();
    }
  }

  #decoded(r: DecodedTelegram): void {
    this.decoded++;
    const e: TelegramEvent = {
      seq: this.decoded,
      receivedMs: this.now(),
      framing: r.framing,
      security: r.security,
      layout: r.layout,
      reading: r.reading,
    };
    this.last = e;
    for (const listener of this.#listeners) {
      try {
        listener(e);
      } catch {
        // A listener's trouble is its own: the meter path carries on.
      }
    }
  }

  /** Calls `listener` with every decoded telegram until the returned function is called. */
  subscribe(listener: (e: TelegramEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Names the source (its description is shown, never any secret). */
  setSource(description: string): void {
    this.source = { ...this.source, description };
  }

  /** A listener for `readResilient` that follows the source's state. */
  sourceListener(): SourceListener {
    return {
      connected: () => this.#sourceState("open", null),
      lost: (e) => this.#sourceState("lost", e.message),
    };
  }

  /** A replayed capture file has been read to its end. */
  sourceEnded(): void {
    this.#sourceState("ended", null);
  }

  #sourceState(state: SourceState, error: string | null): void {
    this.source = { ...this.source, state, sinceMs: this.now(), error };
  }

  /** Seconds since start. */
  uptimeSeconds(): number {
    return (this.now() - this.startedMs) / 1000;
  }
}

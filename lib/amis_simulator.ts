/**
 * A simulated Netz OÖ AMIS meter (Siemens TD-3511/TD-3512): an M-Bus master on the optical
 * port that searches for its reader and sends data only while the reader answers, for
 * `simulate`, `demo` and the tests. Pure: the caller passes the time and the reader's
 * bytes, and writes what comes back (`lib/amis_line.ts` does, over a pseudo-terminal or a
 * serial line).
 *
 * ```
 *   searching ── SND_NKE 10 40 F0 30 16 every searchPeriodMs (60 s) ──┐
 *       ▲                                                             │ E5 within
 *       │ maxMissed (10) answers in a row missing                     │ ackTimeoutMs
 *       │                                                             ▼ (0.5 s)
 *   sending ── SND_UD every framePeriodMs (1 s): 68 5F 5F 68, C 53/73 (FCB toggles),
 *              A F0, CI 5B, header (reader's address, ACC + 1 each), AES-CBC mode 5
 *              over the records of the specification's table 2, each to be answered
 * ```
 *
 * Values move plausibly (power wanders, energy registers only grow), from a seed, so a
 * run is reproducible. Searches keep to a fixed cadence from the start, so a meter that
 * falls back waits up to one search period for its next search, as the real one does.
 *
 * @module
 */

import { concatBytes } from "./bytes.ts";
import type { NamedValues } from "./cosem/obis.ts";
import {
  encodeMbusLongFrame,
  encodeMbusShortFrame,
  MBUS_ACK,
  MBUS_C_SND_NKE,
  MBUS_C_SND_UD,
  MBUS_CI_OMS_LONG_HEADER,
  MBUS_READER_ADDRESS,
} from "./framing/mbus.ts";
import { encodeMbusDateTime } from "./oms/datetime.ts";
import {
  configurationField,
  encodeOmsHeader,
  OMS_BLOCK_LENGTH,
  OMS_MODE_AES_CBC,
  parseOmsHeader,
} from "./oms/header.ts";
import { OMS_FILLER, OmsSecurity } from "./oms/security.ts";
import { prng } from "./simulator.ts";

/** Timing and limits of the simulated meter. */
export interface AmisSimulatorOptions {
  /** The customer's AMIS key, 16 bytes. */
  key: Uint8Array;
  seed?: number;
  /** Time between searches while no reader answers, ms (default 60 000). */
  searchPeriodMs?: number;
  /** Time between data frames, ms (default 1000). */
  framePeriodMs?: number;
  /** How long an answer may take, ms (default 500). */
  ackTimeoutMs?: number;
  /** Missed answers in a row after which the meter searches again (default 10). */
  maxMissed?: number;
  /** The first access number (default 0). */
  access?: number;
}

/** One frame the meter sends. */
export interface AmisFrame {
  readonly kind: "search" | "data";
  readonly bytes: Uint8Array;
  /** Data frames: the access number, the values a decoder must read, the meter's time. */
  readonly access: number | null;
  readonly values: NamedValues | null;
  readonly time: string | null;
}

/** What the meter has seen, for tests and the latency measurement. */
export interface AmisStats {
  searches: number;
  frames: number;
  /** Frames (and searches) answered in time. */
  answered: number;
  /** Data frames not answered in time. */
  missed: number;
  /** Times the meter went back to searching. */
  fallbacks: number;
  /** Bytes from the reader that were not an answer it waited for. */
  stray: number;
  /** Time from the end of each answered frame to its answer, ms. */
  latenciesMs: number[];
  /** The access numbers of the data frames answered in time. */
  answeredAccess: number[];
}

const DEFAULT_SEARCH_MS = 60_000;
const DEFAULT_FRAME_MS = 1000;
const DEFAULT_ACK_MS = 500;
const DEFAULT_MAX_MISSED = 10;
const FCB = 0x20;
/** The reader's fixed secondary address in every AMIS frame (spec 2.4.2.6, table 1). */
const READER = { id: "00000000", manufacturer: "SAM", version: 1, medium: 0x0e } as const;
const PLAINTEXT_BLOCKS = 5;

/** Minutes east of UTC in Austria at `t`: CEST from the last Sunday of March to October. */
export function austrianOffsetMinutes(t: Date): number {
  const y = t.getUTCFullYear();
  const lastSunday = (month: number) => {
    const last = new Date(Date.UTC(y, month + 1, 0, 1)); // 01:00 UTC on the last day
    last.setUTCDate(last.getUTCDate() - last.getUTCDay());
    return last.getTime();
  };
  const ms = t.getTime();
  return ms >= lastSunday(2) && ms < lastSunday(9) ? 120 : 60;
}

/** ISO week number of a local calendar date. */
function isoWeek(year: number, month: number, day: number): number {
  const d = new Date(Date.UTC(year, month - 1, day));
  const dow = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - dow);
  const start = Date.UTC(d.getUTCFullYear(), 0, 1);
  return Math.ceil(((d.getTime() - start) / 86_400_000 + 1) / 7);
}

const u32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, true);
  return b;
};
const i32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, n | 0, true);
  return b;
};

/** Imitates one AMIS meter. Create with {@link AmisSimulator.create}. */
export class AmisSimulator {
  readonly stats: AmisStats = {
    searches: 0,
    frames: 0,
    answered: 0,
    missed: 0,
    fallbacks: 0,
    stray: 0,
    latenciesMs: [],
    answeredAccess: [],
  };
  readonly #security: OmsSecurity;
  readonly #random: () => number;
  readonly #searchMs: number;
  readonly #frameMs: number;
  readonly #ackMs: number;
  readonly #maxMissed: number;
  #state: "searching" | "sending" = "searching";
  #access: number;
  #fcb = 0;
  #missedInRow = 0;
  /** When the meter acts next; null: not started. */
  #nextMs: number | null = null;
  #searchEpoch = 0;
  /** The frame waiting for its answer: when it was sent, and its access number (search: null). */
  #waiting: { sentMs: number; access: number | null } | null = null;
  #lastMs: number | null = null;
  readonly #meter = {
    energyImport: 9_295_305,
    energyExport: 4_966_955,
    reactiveImport: 1_911_174,
    reactiveExport: 5_854_693,
    powerImport: 420,
    powerExport: 0,
    reactivePower: 60,
    billing: 0,
  };

  private constructor(opts: AmisSimulatorOptions, security: OmsSecurity) {
    this.#security = security;
    this.#random = prng(opts.seed ?? 1);
    this.#searchMs = Math.max(1, opts.searchPeriodMs ?? DEFAULT_SEARCH_MS);
    this.#frameMs = Math.max(1, opts.framePeriodMs ?? DEFAULT_FRAME_MS);
    this.#ackMs = opts.ackTimeoutMs ?? DEFAULT_ACK_MS;
    this.#maxMissed = opts.maxMissed ?? DEFAULT_MAX_MISSED;
    this.#access = (opts.access ?? 0) & 0xff;
  }

  static async create(opts: AmisSimulatorOptions): Promise<AmisSimulator> {
    return new AmisSimulator(opts, await OmsSecurity.create(opts.key));
  }

  /** Searching for a reader, or sending data to one. */
  get state(): "searching" | "sending" {
    return this.#state;
  }

  /** When the meter next wants {@link tick} called (its next frame or answer deadline). */
  nextAtMs(nowMs: number): number {
    if (this.#nextMs === null) return nowMs;
    // Just past the answer's deadline: an answer at the deadline itself is in time.
    const deadline = this.#waiting ? this.#waiting.sentMs + this.#ackMs + 1 : Infinity;
    return Math.min(this.#nextMs, deadline);
  }

  /** Bytes the reader sent, arrived at `nowMs`: an E5 in time answers the frame waiting. */
  receive(bytes: Uint8Array, nowMs: number): void {
    for (const b of bytes) {
      const w = this.#waiting;
      if (b !== MBUS_ACK || w === null || nowMs > w.sentMs + this.#ackMs) {
        this.stats.stray++;
        continue;
      }
      this.#waiting = null;
      this.stats.answered++;
      this.stats.latenciesMs.push(nowMs - w.sentMs);
      this.#missedInRow = 0;
      if (w.access !== null) this.stats.answeredAccess.push(w.access);
      else {
        this.#state = "sending";
        this.#nextMs = nowMs + this.#frameMs;
      }
    }
  }

  /**
   * Lets the meter act at `nowMs`: an answer deadline that passed is counted, and the frame
   * that is due is returned (null: none yet). `wall` is the meter's clock for the data.
   * Call {@link sent} once its last byte is on the line.
   */
  async tick(nowMs: number, wall: Date): Promise<AmisFrame | null> {
    if (this.#nextMs === null) {
      this.#nextMs = nowMs;
      this.#searchEpoch = nowMs;
    }
    const w = this.#waiting;
    if (w !== null && nowMs > w.sentMs + this.#ackMs) this.#unanswered(nowMs);
    if (nowMs < this.#nextMs) return null;
    // A frame still waiting when the next is due was not answered in time either.
    if (this.#waiting !== null) {
      this.#unanswered(nowMs);
      if (nowMs < this.#nextMs) return null;
    }
    if (this.#state === "searching") {
      this.stats.searches++;
      this.#nextMs += this.#searchMs;
      while (this.#nextMs <= nowMs) this.#nextMs += this.#searchMs;
      return {
        kind: "search",
        bytes: encodeMbusShortFrame(MBUS_C_SND_NKE, MBUS_READER_ADDRESS),
        access: null,
        values: null,
        time: null,
      };
    }
    this.#nextMs += this.#frameMs;
    while (this.#nextMs <= nowMs) this.#nextMs += this.#frameMs;
    this.stats.frames++;
    return await this.#dataFrame(nowMs, wall);
  }

  /** The frame waiting for an answer got none: count it, and search again after too many. */
  #unanswered(nowMs: number): void {
    const w = this.#waiting;
    this.#waiting = null;
    if (w === null || w.access === null) return;
    this.stats.missed++;
    if (++this.#missedInRow < this.#maxMissed) return;
    this.#state = "searching";
    this.#missedInRow = 0;
    this.stats.fallbacks++;
    const periods = Math.ceil((nowMs - this.#searchEpoch) / this.#searchMs);
    this.#nextMs = this.#searchEpoch + periods * this.#searchMs;
  }

  /** The frame just returned by {@link tick} went out at `nowMs`: its answer is due. */
  sent(frame: AmisFrame, nowMs: number): void {
    this.#waiting = { sentMs: nowMs, access: frame.access };
  }

  async #dataFrame(nowMs: number, wall: Date): Promise<AmisFrame> {
    this.#advance(nowMs);
    const m = this.#meter;
    const offset = austrianOffsetMinutes(wall);
    const local = new Date(Math.floor(wall.getTime() / 1000) * 1000 + offset * 60_000);
    const [year, month, day] = [
      local.getUTCFullYear(),
      local.getUTCMonth() + 1,
      local.getUTCDate(),
    ];
    const time = encodeMbusDateTime({
      year,
      month,
      day,
      hour: local.getUTCHours(),
      minute: local.getUTCMinutes(),
      second: local.getUTCSeconds(),
      dayOfWeek: local.getUTCDay() || 7,
      summer: offset === 120,
    }, isoWeek(year, month, day));
    const e = (n: number) => Math.floor(n);
    const plain = new Uint8Array(PLAINTEXT_BLOCKS * OMS_BLOCK_LENGTH).fill(OMS_FILLER);
    plain.set(
      concatBytes([
        Uint8Array.of(OMS_FILLER, OMS_FILLER, 0x06, 0x6d),
        time,
        Uint8Array.of(0x04, 0x03),
        u32(e(m.energyImport)),
        Uint8Array.of(0x04, 0x83, 0x3c),
        u32(e(m.energyExport)),
        Uint8Array.of(0x84, 0x10, 0xfb, 0x82, 0x73),
        u32(e(m.reactiveImport)),
        Uint8Array.of(0x84, 0x10, 0xfb, 0x82, 0xf3, 0x3c),
        u32(e(m.reactiveExport)),
        Uint8Array.of(0x04, 0x2b),
        u32(m.powerImport),
        Uint8Array.of(0x04, 0xab, 0x3c),
        u32(m.powerExport),
        Uint8Array.of(0x04, 0xfb, 0x14),
        u32(m.reactivePower),
        Uint8Array.of(0x04, 0xfb, 0x94, 0x3c),
        u32(0),
        Uint8Array.of(0x04, 0x83, 0xff, 0x04),
        i32(e(m.billing)),
      ]),
    );
    const access = this.#access;
    this.#access = (this.#access + 1) & 0xff;
    const header = encodeOmsHeader({
      ...READER,
      access,
      status: 0,
      configuration: configurationField(OMS_MODE_AES_CBC, PLAINTEXT_BLOCKS),
    });
    const address = parseOmsHeader(header).address;
    const ciphertext = await this.#security.encrypt(address, access, plain);
    const c = MBUS_C_SND_UD | this.#fcb;
    this.#fcb ^= FCB;
    const bytes = encodeMbusLongFrame(
      c,
      MBUS_READER_ADDRESS,
      MBUS_CI_OMS_LONG_HEADER,
      concatBytes([header, ciphertext]),
    );
    const pad = (n: number) => String(n).padStart(2, "0");
    return {
      kind: "data",
      bytes,
      access,
      values: {
        energy_import_wh: e(m.energyImport),
        energy_export_wh: e(m.energyExport),
        reactive_energy_import_varh: e(m.reactiveImport),
        reactive_energy_export_varh: e(m.reactiveExport),
        power_import_w: m.powerImport,
        power_export_w: m.powerExport,
        power_w: m.powerImport - m.powerExport,
        reactive_power_import_var: m.reactivePower,
        reactive_power_export_var: 0,
      },
      time: `${year}-${pad(month)}-${pad(day)}T${pad(local.getUTCHours())}:${
        pad(local.getUTCMinutes())
      }:${pad(local.getUTCSeconds())}`,
    };
  }

  /** Moves the meter's state to `ms`: power wanders, energy integrates it. */
  #advance(ms: number): void {
    const m = this.#meter;
    const hours = this.#lastMs === null ? 0 : Math.max(0, ms - this.#lastMs) / 3_600_000;
    this.#lastMs = ms;
    m.energyImport += m.powerImport * hours;
    m.energyExport += m.powerExport * hours;
    m.reactiveImport += m.reactivePower * hours;
    m.billing += (m.powerImport - m.powerExport) * hours;
    const net = Math.max(
      -3000,
      Math.min(8000, m.powerImport - m.powerExport + (this.#random() - 0.5) * 600),
    );
    m.powerImport = Math.round(Math.max(0, net));
    m.powerExport = Math.round(Math.max(0, -net));
    m.reactivePower = Math.round(Math.abs(net) * 0.1);
  }
}

/**
 * The decoding pipeline: bytes in, telegram results out.
 *
 * ```
 *  bytes ─▶ Framer ─▶ payload ─▶ parseApdu ─┬─ block ─▶ BlockTransfer ─▶ (whole APDU, again)
 *                                           ├─ ciphered ─▶ SecurityContext ─▶ CounterGuard ─▶ (plain APDU, again)
 *                                           ├─ data-notification ─▶ interpret ─▶ buildReading
 *                                           └─ text (DSMR) ─▶ interpretDsmr ─▶ buildReading
 *                  ─▶ OMS data (M-Bus CI 5B) ─▶ parseOmsHeader ─▶ OmsSecurity (mode 5)
 *                       ─▶ walkRecords ─▶ AccessGuard ─▶ interpretOms ─▶ buildReading
 *                  ─▶ replies (E5 to an M-Bus master: Netz OÖ AMIS) ─▶ the caller, at once
 * ```
 *
 * Pure: no I/O and no clock. The caller passes the time of each chunk (for the silence gap)
 * and receives one {@link TelegramResult} per telegram, good or bad. Nothing is dropped in
 * silence: every frame that fails says at which stage and why, and the end of the input
 * reports a partial frame or an unfinished block transfer.
 *
 * Some meters must be answered ({@link Decoder.feed}): what to answer is decided here, while
 * the chunk is framed, before any decryption, and handed back as bytes; the caller writes
 * them to the line. The decoder itself never writes anything.
 *
 * @module
 */

import { toHex } from "./bytes.ts";
import { isLayeredError, type Layer, ParseError } from "./errors.ts";
import { Framer, type FramerEvent, type Framing } from "./framing/framer.ts";
import { type Apdu, type CipheredApdu, parseApdu } from "./dlms/apdu.ts";
import { BlockTransfer } from "./dlms/transfer.ts";
import { SecurityContext, type SecurityLevel } from "./dlms/security.ts";
import { CounterGuard } from "./dlms/counter.ts";
import { interpret, type MeterType } from "./cosem/interpret.ts";
import { interpretDsmr } from "./cosem/dsmr.ts";
import { buildReading } from "./cosem/build.ts";
import type { Interpretation, Reading } from "./cosem/reading.ts";
import { OMS_MODE_AES_CBC, type OmsHeader, parseOmsHeader } from "./oms/header.ts";
import { OmsSecurity } from "./oms/security.ts";
import { walkRecords } from "./oms/records.ts";
import { AccessGuard } from "./oms/access.ts";
import { interpretOms } from "./oms/interpret.ts";

/** How the decoder is set up. */
export interface DecoderOptions {
  /** Encryption key (GUEK), 16 bytes; null for meters that send in the clear. */
  key?: Uint8Array | null;
  /** Authentication key (GAK), 16 bytes; when set, a GCM tag sent by the meter must verify. */
  authKey?: Uint8Array | null;
  /** Pins the COSEM layout; "auto" detects it from the data. */
  meterType?: MeterType;
  /** System title for service-specific ciphering APDUs, which do not carry one. */
  systemTitle?: Uint8Array | null;
  /** Silence after which a partial frame or block transfer is dropped, ms (default 1000). */
  gapMs?: number;
  /** The replay guard, with the counters a previous run saved (default: a fresh one). */
  counters?: CounterGuard;
  /** Told each step as it happens (`decode --explain`); never given a key. */
  trace?: (step: TraceStep) => void;
  /**
   * The replay guard of OMS telegrams (Netz OÖ AMIS), with the state a previous run saved
   * (default: a fresh one).
   */
  accessGuard?: AccessGuard;
}

/** One step of the decoder's work, for `decode --explain`. No step carries a key. */
export type TraceStep =
  | {
    readonly kind: "frame";
    readonly framing: Framing;
    /** Stream offset of the first frame. */
    readonly offset: number;
    readonly frames: number;
    readonly payload: Uint8Array;
  }
  | {
    readonly kind: "skipped";
    readonly offset: number;
    readonly bytes: number;
    readonly reason: string;
  }
  /** An APDU parsed from `bytes`; `depth` counts the APDUs it is nested in. */
  | {
    readonly kind: "apdu";
    readonly apdu: Apdu;
    readonly bytes: Uint8Array;
    readonly depth: number;
  }
  | {
    readonly kind: "decrypted";
    readonly security: SecurityLevel;
    readonly systemTitle: Uint8Array;
    readonly plaintext: Uint8Array;
  }
  | { readonly kind: "result"; readonly result: TelegramResult };

/** A telegram that decoded. */
export interface DecodedTelegram {
  readonly ok: true;
  readonly framing: Framing;
  readonly security: SecurityLevel;
  readonly layout: string;
  readonly reading: Reading;
}

/** A telegram (or a frame, or a stretch of input) that did not decode. */
export interface FailedTelegram {
  readonly ok: false;
  readonly stage: Layer;
  readonly error: string;
  readonly framing?: Framing;
  /** Byte offset in the input stream where the failing frame started. */
  readonly offset?: number;
}

export type TelegramResult = DecodedTelegram | FailedTelegram;

/** What one chunk asks of the caller: answers to write at once, and its telegrams. */
export interface FedChunk {
  /** Bytes to write to the meter now, in order (the M-Bus acknowledgement E5). */
  readonly replies: readonly Uint8Array[];
  /** The telegrams the chunk completed, once decrypted and decoded. */
  readonly results: Promise<TelegramResult[]>;
}

/** Counters over the life of a decoder. */
export interface DecoderStats {
  bytes: number;
  frames: number;
  decoded: number;
  failed: number;
  skippedBytes: number;
  failedByStage: Partial<Record<Layer, number>>;
  lastError: string | null;
  /** Searches of an M-Bus master for its reader (SND_NKE: a Netz OÖ AMIS meter), answered. */
  searches: number;
  /** Answers decided (each SND_NKE and SND_UD to the reader's address). */
  replies: number;
  /** Bytes of our own answers that came back (an echoing IR head): not garbage. */
  echoBytes: number;
}

/** Nesting of APDUs inside APDUs (a block transfer carrying a ciphering APDU, ...). */
const MAX_NESTING = 4;

interface Context {
  framing: Framing;
  offset: number;
  security: SecurityLevel;
  systemTitle: Uint8Array | null;
  frameCounter: number | null;
}

/** Turns a byte stream from a meter into telegram results. */
export class Decoder {
  readonly stats: DecoderStats = {
    bytes: 0,
    frames: 0,
    decoded: 0,
    failed: 0,
    skippedBytes: 0,
    failedByStage: {},
    lastError: null,
    searches: 0,
    replies: 0,
    echoBytes: 0,
  };
  readonly #framer: Framer;
  readonly #transfer = new BlockTransfer();
  readonly #counters: CounterGuard;
  readonly #security: SecurityContext | null;
  readonly #oms: OmsSecurity | null;
  readonly #access: AccessGuard;
  readonly #meterType: MeterType;
  readonly #systemTitle: Uint8Array | null;
  readonly #gapMs: number;
  readonly #trace: ((step: TraceStep) => void) | null;
  #lastMs: number | null = null;
  #transferStart = 0;
  /** The results of the chunks fed so far, in order: each waits for the one before. */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(
    opts: DecoderOptions,
    security: SecurityContext | null,
    oms: OmsSecurity | null,
  ) {
    this.#gapMs = opts.gapMs ?? 1000;
    this.#framer = new Framer({ gapMs: this.#gapMs });
    this.#counters = opts.counters ?? new CounterGuard();
    this.#security = security;
    this.#oms = oms;
    this.#access = opts.accessGuard ?? new AccessGuard();
    this.#meterType = opts.meterType ?? "auto";
    this.#systemTitle = opts.systemTitle ?? null;
    this.#trace = opts.trace ?? null;
  }

  /** Creates a decoder; imports the keys once. */
  static async create(opts: DecoderOptions = {}): Promise<Decoder> {
    const [security, oms] = opts.key
      ? await Promise.all([
        SecurityContext.create(opts.key, opts.authKey ?? null),
        OmsSecurity.create(opts.key),
      ])
      : [null, null];
    return new Decoder(opts, security, oms);
  }

  /** The replay guard of OMS telegrams (its state can be saved with `toJSON()`). */
  get accessGuard(): AccessGuard {
    return this.#access;
  }

  /**
   * Feeds a chunk of bytes. `nowMs` is the arrival time (any monotonic clock); without it
   * no silence gap is detected. Same as {@link feed}, for callers that cannot answer.
   */
  push(chunk: Uint8Array, nowMs?: number): Promise<TelegramResult[]> {
    return this.feed(chunk, nowMs).results;
  }

  /**
   * Feeds a chunk of bytes and returns at once, synchronously, what the line must be
   * answered now (write `replies` before awaiting anything), with the chunk's telegrams
   * as a promise. Await `results` before feeding the next chunk.
   */
  feed(chunk: Uint8Array, nowMs?: number): FedChunk {
    const out: TelegramResult[] = [];
    if (nowMs !== undefined) {
      if (
        this.#lastMs !== null && nowMs - this.#lastMs > this.#gapMs && this.#transfer.pending
      ) {
        const seconds = ((nowMs - this.#lastMs) / 1000).toFixed(1);
        out.push(this.#fail({
          stage: "transfer",
          offset: this.#transferStart,
          error:
            `Block transfer abandoned after ${seconds} s of silence: ${this.#transfer.received} block(s) received, the last block never came`,
        }));
        this.#transfer.reset();
      }
      this.#lastMs = nowMs;
    }
    this.stats.bytes += chunk.length;
    const events = this.#framer.push(chunk, nowMs);
    const replies: Uint8Array[] = [];
    for (const ev of events) {
      if (ev.kind === "reply") replies.push(ev.bytes);
    }
    const results = this.#queue.then(() => this.#handle(events, out)).then(() => out);
    this.#queue = results.catch(() => {});
    return { replies, results };
  }

  /** The input has ended: reports whatever was left unfinished. */
  async end(): Promise<TelegramResult[]> {
    await this.#queue;
    const out: TelegramResult[] = [];
    await this.#handle(this.#framer.end(), out);
    if (this.#transfer.pending) {
      out.push(this.#fail({
        stage: "transfer",
        offset: this.#transferStart,
        error:
          `Input ends inside a block transfer: ${this.#transfer.received} block(s) received, the last block never came`,
      }));
      this.#transfer.reset();
    }
    if (this.stats.searches > 0 && this.stats.decoded === 0 && this.stats.failed === 0) {
      out.push(this.#fail({
        stage: "framing",
        framing: "mbus",
        offset: 0,
        error:
          `Only the search of an M-Bus master for its reader (SND_NKE 10 40 F0 30 16, ${this.stats.searches} time(s)) in ${this.stats.bytes} bytes, no data: a Netz OÖ AMIS meter sends data only while a reader answers each frame with E5`,
      }));
    } else if (this.stats.frames === 0 && this.stats.failed === 0) {
      out.push(this.#fail({
        stage: "framing",
        offset: 0,
        error: this.stats.bytes === 0
          ? "Input is empty: no bytes to decode"
          : `No frame found in ${this.stats.bytes} bytes: neither HDLC (7E), M-Bus (68) nor a DLMS APDU; check the baud rate, parity and that the capture is complete`,
      }));
    }
    return out;
  }

  async #handle(events: FramerEvent[], out: TelegramResult[]): Promise<void> {
    for (const ev of events) {
      switch (ev.kind) {
        case "skipped":
          this.stats.skippedBytes += ev.bytes;
          this.#trace?.(ev);
          break;
        case "reply":
          this.stats.replies++;
          if (ev.request === "SND_NKE") {
            this.stats.searches++;
            this.stats.frames++;
          }
          break;
        case "echo":
          this.stats.echoBytes += ev.bytes;
          break;
        case "mbus-data": {
          this.stats.frames++;
          this.#trace?.({
            kind: "frame",
            framing: "mbus",
            offset: ev.offset,
            frames: 1,
            payload: ev.data,
          });
          const ctx: Context = {
            framing: "mbus",
            offset: ev.offset,
            security: "none",
            systemTitle: null,
            frameCounter: null,
          };
          out.push(await this.#omsTelegram(ev.data, ctx));
          break;
        }
        case "error":
          out.push(this.#fail({
            stage: "framing",
            framing: ev.framing,
            offset: ev.offset,
            error: ev.message,
          }));
          break;
        case "payload": {
          this.stats.frames++;
          this.#trace?.({
            kind: "frame",
            framing: ev.framing,
            offset: ev.offset,
            frames: ev.frames,
            payload: ev.payload,
          });
          const ctx: Context = {
            framing: ev.framing,
            offset: ev.offset,
            security: "none",
            systemTitle: null,
            frameCounter: null,
          };
          const r = await this.#apdu(ev.payload, ctx, 0);
          if (r) out.push(r);
        }
      }
    }
  }

  async #apdu(bytes: Uint8Array, ctx: Context, depth: number): Promise<TelegramResult | null> {
    let apdu: Apdu;
    try {
      if (depth >= MAX_NESTING) {
        throw new ParseError("apdu", 0, `APDUs nested ${depth} deep: damaged or hostile data`);
      }
      apdu = parseApdu(bytes);
      this.#trace?.({ kind: "apdu", apdu, bytes, depth });
      switch (apdu.kind) {
        case "block": {
          if (apdu.blockNumber === 1) this.#transferStart = ctx.offset;
          const t = this.#transfer.push(apdu);
          if (this.#transfer.lastAbandoned > 0) {
            // A new transfer started before the old one finished: say so, then go on.
            const dropped = this.#fail({
              stage: "transfer",
              framing: ctx.framing,
              offset: ctx.offset,
              error:
                `Block transfer restarted at block 1: ${this.#transfer.lastAbandoned} block(s) of the previous transfer were dropped`,
            });
            if (t.status === "pending") return dropped;
          }
          if (t.status === "pending") return null;
          return await this.#apdu(t.apdu, ctx, depth + 1);
        }
        case "ciphered":
          return await this.#decipher(apdu, ctx, depth);
        case "data-notification":
          return this.#ok(
            ctx,
            interpret(apdu.body, {
              headerTime: apdu.dateTime,
              systemTitle: ctx.systemTitle,
              meterType: this.#meterType,
            }),
          );
        case "text":
          return this.#ok(ctx, interpretDsmr(apdu.text));
      }
    } catch (e) {
      return this.#failFrom(e, ctx);
    }
  }

  async #decipher(
    apdu: CipheredApdu,
    ctx: Context,
    depth: number,
  ): Promise<TelegramResult | null> {
    const systemTitle = apdu.systemTitle ?? this.#systemTitle;
    if (!this.#security) {
      return this.#fail({
        stage: "decrypt",
        framing: ctx.framing,
        offset: ctx.offset,
        error:
          "Telegram is encrypted but no key is configured: set dlms.key (or --key) to the key from your grid operator",
      });
    }
    if (!systemTitle) {
      return this.#fail({
        stage: "decrypt",
        framing: ctx.framing,
        offset: ctx.offset,
        error:
          "Telegram carries no system title and none is configured: it cannot be decrypted (pass --system-title)",
      });
    }
    const { plaintext, security } = await this.#security.decrypt(apdu, systemTitle);
    this.#trace?.({ kind: "decrypted", security, systemTitle, plaintext });
    const titleHex = toHex(systemTitle);
    this.#counters.check(titleHex, apdu.invocationCounter);
    return await this.#apdu(plaintext, {
      ...ctx,
      security,
      systemTitle,
      frameCounter: apdu.invocationCounter,
    }, depth + 1);
  }

  /** One OMS telegram: the data after CI 0x5B. */
  async #omsTelegram(data: Uint8Array, ctx: Context): Promise<TelegramResult> {
    try {
      const header: OmsHeader = parseOmsHeader(data);
      let plaintext = header.data;
      let security: SecurityLevel = "none";
      if (header.mode === OMS_MODE_AES_CBC) {
        if (!this.#oms) {
          return this.#fail({
            stage: "decrypt",
            framing: ctx.framing,
            offset: ctx.offset,
            error:
              "Telegram is encrypted but no key is configured: set dlms.key (or --key) to the key from your grid operator (Netz OÖ: the AMIS key from the eService portal)",
          });
        }
        plaintext = await this.#oms.decrypt(header);
        security = "encrypted";
      }
      const { records } = walkRecords(plaintext);
      const pinned = this.#meterType === "amis" ? "amis" : null;
      const found = interpretOms(header, records, pinned);
      this.#access.check(header.addressHex, header.access, found.clock);
      return this.#ok({ ...ctx, security, frameCounter: header.access }, found, found.manufacturer);
    } catch (e) {
      return this.#failFrom(e, ctx);
    }
  }

  #ok(
    ctx: Context,
    interpretation: Interpretation,
    manufacturer: string | null = null,
  ): DecodedTelegram {
    this.stats.decoded++;
    const reading = buildReading(interpretation, {
      systemTitle: ctx.systemTitle,
      frameCounter: ctx.frameCounter,
    });
    const result: DecodedTelegram = {
      ok: true,
      framing: ctx.framing,
      security: ctx.security,
      layout: interpretation.layout,
      reading: manufacturer === null ? reading : { ...reading, manufacturer },
    };
    this.#trace?.({ kind: "result", result });
    return result;
  }

  #failFrom(e: unknown, ctx: Context): FailedTelegram {
    if (!isLayeredError(e)) throw e; // a bug, not bad input: let it surface
    return this.#fail({
      stage: e.layer,
      framing: ctx.framing,
      offset: ctx.offset,
      error: e.message,
    });
  }

  #fail(f: Omit<FailedTelegram, "ok">): FailedTelegram {
    this.stats.failed++;
    this.stats.failedByStage[f.stage] = (this.stats.failedByStage[f.stage] ?? 0) + 1;
    this.stats.lastError = `${f.stage}: ${f.error}`;
    const result: FailedTelegram = { ok: false, ...f };
    this.#trace?.({ kind: "result", result });
    return result;
  }
}

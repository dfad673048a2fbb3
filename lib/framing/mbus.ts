/**
 * M-Bus frames (EN 13757-2, the FT1.2 format of IEC 60870-5-2): a length-driven parser that
 * answers frame / short frame / need-more / skip, the DLMS segment reassembler, what a
 * slave must answer, and the encoders used by the tests and the meter simulator.
 *
 * ```
 *   long frame
 *   offset 0    1   2   3    4   5   6    7       8       9 ..         4+L  5+L
 *   +----+---+---+----+---+---+----+-------+-------+------------+----+----+
 *   | 68 | L | L | 68 | C | A | CI | STSAP | DTSAP | data       | CS | 16 |
 *   +----+---+---+----+---+---+----+-------+-------+------------+----+----+
 *                     └──────────────── L bytes ─────────────────┘
 *   CS  = sum of C .. the last data byte, mod 256;  16 = stop byte
 *   CI  = 0x00..0x1F for DLMS: bits 0-3 = segment number (0..15),
 *                              bit 4 (0x10) = this is the final segment
 *         0x5B for OMS data with the 12-byte long header (Netz OÖ AMIS, lib/oms):
 *              the bytes after CI go up as they are
 *   STSAP, DTSAP = source and destination transport service access points (DLMS only)
 *
 *   short frame            single character
 *   +----+---+---+----+----+   +----+
 *   | 10 | C | A | CS | 16 |   | E5 |   acknowledgement
 *   +----+---+---+----+----+   +----+
 *   CS = C + A mod 256
 * ```
 *
 * - A DLMS APDU longer than one frame is split into segments 0, 1, 2 ...; the payload is
 *   the data after CI/STSAP/DTSAP of segments 0..final, concatenated. Segment numbers do
 *   not wrap: a payload has at most 16 segments.
 * - The single character `E5` and short frames carry no data. Other CI values (`0x72`:
 *   classic M-Bus data) are reported as unsupported.
 * - The slave's one duty ({@link mbusReply}): a master that sends SND_NKE (C = 0x40) or
 *   SND_UD (C = 0x53/0x73, the FCB bit toggling) to the slave's primary address wants the
 *   single character E5 back within 0.5 s. The Netz OÖ AMIS meter is such a master and the
 *   reader its slave at address 240 (0xF0): it searches with `10 40 F0 30 16` once a minute
 *   and sends data only to a reader that answers, one SND_UD a second, each to be answered
 *   (Netz OÖ, "AMIS-Zähler Kundenschnittstelle" 2021, 2.2-2.3). A bad checksum is never
 *   answered, and nothing else (REQ_UD2, broadcasts to 0xFE/0xFF) ever is.
 * - L-field overflow: some firmware (seen on the Sagemcom T210-D) writes the length of a
 *   frame with L > 255 modulo 256, e.g. `68 01 01 68` for L = 257. The rule here is
 *   generic: when the frame at L does not validate (checksum and stop byte), or L < 3
 *   (too short for C, A and CI), the frame at L + 256 is tried and accepted only when its
 *   checksum and stop byte are right. Only where the CI is a DLMS segment's: the quirk is
 *   the DLMS transport's, and a damaged frame of another kind (an AMIS frame, answered
 *   within 0.5 s, the next one a second later) is refused at once instead of holding
 *   back the frames behind it until 256 more bytes have come.
 *
 * @module
 */

import { concatBytes, hex2 } from "../bytes.ts";
import type { ChainOutput } from "./hdlc.ts";

/** Start byte of a long frame. */
export const MBUS_START = 0x68;
/** Stop byte of every frame. */
export const MBUS_STOP = 0x16;
/** Single-character acknowledgement. */
export const MBUS_ACK = 0xe5;
/** Start byte of a short frame `10 C A CS 16`. */
export const MBUS_SHORT_START = 0x10;
/** C field of SND_NKE: the master (re)initialises the slave; the AMIS meter's search. */
export const MBUS_C_SND_NKE = 0x40;
/** C field of SND_UD with FCV set and the FCB bit (0x20) clear; 0x73 with it set. */
export const MBUS_C_SND_UD = 0x53;
/** The frame count bit of the C field, toggled by the master from one SND_UD to the next. */
const MBUS_C_FCB = 0x20;
/** The primary address the Netz OÖ AMIS meter sends to: its reader's, the same for all. */
export const MBUS_READER_ADDRESS = 0xf0;
/** CI of OMS data with the 12-byte long header, sent to a device (EN 13757-7). */
export const MBUS_CI_OMS_LONG_HEADER = 0x5b;

// Offsets from the first start byte.
const MBUS_L = 1;
const MBUS_L_REPEAT = 2;
const MBUS_START_REPEAT = 3;
const MBUS_C = 4;
const MBUS_A = 5;
const MBUS_CI = 6;
const MBUS_BODY = 7;
/** Bytes outside L: 68 L L 68 before, CS 16 after. */
const MBUS_OVERHEAD = 6;
/** C, A and CI: the least a long frame's L can count. */
const MBUS_MIN_L = 3;
const L_OVERFLOW = 256;

// Short frame `10 C A CS 16`.
const SHORT_C = 1;
const SHORT_A = 2;
const SHORT_CS = 3;
const SHORT_STOP = 4;
const SHORT_LENGTH = 5;

// DLMS transport inside the frame.
const DLMS_CI_MAX = 0x1f;
const CI_SEGMENT_MASK = 0x0f;
const CI_FINAL_BIT = 0x10;
const STSAP = 0;
const DTSAP = 1;
const DLMS_HEADER = 2;
const MAX_SEGMENTS = 16;

const DEFAULT_C = 0x53;
const DEFAULT_A = 0xff;
const DEFAULT_STSAP = 0x01;
const DEFAULT_DTSAP = 0x67;
/** L = 0xFA like the Netz NÖ Kaifa frames: C, A, CI, STSAP, DTSAP and 245 data bytes. */
const DEFAULT_MAX_DATA = 245;

/** A long frame whose checksum and stop byte are right. `body` is a view into the input. */
export interface MbusFrame {
  readonly c: number;
  readonly a: number;
  readonly ci: number;
  /** The true length: L as sent, or L + 256 when the L field overflowed. */
  readonly l: number;
  readonly lengthOverflow: boolean;
  /** Everything after CI, up to the checksum. */
  readonly body: Uint8Array;
}

/** A short frame `10 C A CS 16` whose checksum and stop byte are right. */
export interface MbusShortFrame {
  readonly c: number;
  readonly a: number;
}

/** What {@link scanMbusFrame} found at the start of its input. */
export type MbusScan =
  /** A whole long frame of `bytes` bytes. */
  | { readonly kind: "frame"; readonly frame: MbusFrame; readonly bytes: number }
  /** A whole short frame (5 bytes). */
  | { readonly kind: "short"; readonly frame: MbusShortFrame; readonly bytes: number }
  /**
   * The input ends before the frame does. `credible`: `68 L L 68` has been seen, so this
   * is a frame; `total` is then the bytes it takes.
   */
  | { readonly kind: "need-more"; readonly credible: boolean; readonly total?: number }
  /** Not a frame (garbage, E5): drop `bytes` and look again. */
  | { readonly kind: "skip"; readonly bytes: number; readonly reason: string }
  /** A frame with a credible header that is bad: report `message`, drop `bytes`. */
  | { readonly kind: "invalid"; readonly bytes: number; readonly message: string };

/** Whether `bytes` holds the header `68 L L 68` of a long frame at `at`. */
export function hasMbusHeader(bytes: Uint8Array, at = 0): boolean {
  return at + MBUS_START_REPEAT < bytes.length && bytes[at] === MBUS_START &&
    bytes[at + MBUS_L] === bytes[at + MBUS_L_REPEAT] &&
    bytes[at + MBUS_START_REPEAT] === MBUS_START;
}

/** Why the frame of length `l` does not validate, or null when it does. */
function checkFrame(bytes: Uint8Array, l: number, base: number): string | null {
  const csAt = MBUS_C + l;
  let sum = 0;
  for (let i = MBUS_C; i < csAt; i++) sum += bytes[i]!;
  sum &= 0xff;
  const sent = bytes[csAt]!;
  if (sum !== sent) {
    return `Bad M-Bus checksum: computed 0x${hex2(sum)}, frame says 0x${
      hex2(sent)
    } (byte ${base}): damaged frame or wrong baud rate/parity`;
  }
  const stop = bytes[csAt + 1]!;
  if (stop !== MBUS_STOP) {
    return `Missing M-Bus stop byte: expected 0x16, found 0x${
      hex2(stop)
    } at the end of a frame of L = ${l} (byte ${base}): wrong length field or damaged frame`;
  }
  return null;
}

function frameAt(bytes: Uint8Array, l: number): MbusScan {
  return {
    kind: "frame",
    bytes: l + MBUS_OVERHEAD,
    frame: {
      c: bytes[MBUS_C]!,
      a: bytes[MBUS_A]!,
      ci: bytes[MBUS_CI]!,
      l,
      lengthOverflow: l > 0xff,
      body: bytes.subarray(MBUS_BODY, MBUS_C + l),
    },
  };
}

/**
 * Looks for one M-Bus frame at the start of `bytes`. Never throws on any input.
 *
 * @param base stream offset of `bytes[0]`, quoted in messages
 * @param final no more bytes will come: decide with what is there (the L + 256 reading of
 *   a frame that fails at L is then given up)
 */
export function scanMbusFrame(bytes: Uint8Array, base = 0, final = false): MbusScan {
  const notYet: MbusScan = { kind: "need-more", credible: false };
  if (bytes.length === 0) return notYet;
  const first = bytes[0]!;
  if (first === MBUS_ACK) {
    return { kind: "skip", bytes: 1, reason: "M-Bus single character E5 (acknowledgement)" };
  }
  if (first === MBUS_SHORT_START) {
    if (bytes.length < SHORT_LENGTH) return notYet;
    const sum = (bytes[SHORT_C]! + bytes[SHORT_A]!) & 0xff;
    if (bytes[SHORT_STOP] === MBUS_STOP && bytes[SHORT_CS] === sum) {
      return {
        kind: "short",
        bytes: SHORT_LENGTH,
        frame: { c: bytes[SHORT_C]!, a: bytes[SHORT_A]! },
      };
    }
    return { kind: "skip", bytes: 1, reason: "no frame start" };
  }
  if (first !== MBUS_START) return { kind: "skip", bytes: 1, reason: "no frame start" };
  if (bytes.length < MBUS_C) return notYet;
  if (bytes[MBUS_L] !== bytes[MBUS_L_REPEAT]) {
    return { kind: "skip", bytes: 1, reason: "M-Bus length bytes differ" };
  }
  if (bytes[MBUS_START_REPEAT] !== MBUS_START) {
    return { kind: "skip", bytes: 1, reason: "M-Bus header without its second 68" };
  }
  const l = bytes[MBUS_L]!;
  let failure: string | null = null;
  if (l >= MBUS_MIN_L) {
    const total = l + MBUS_OVERHEAD;
    if (bytes.length < total) return { kind: "need-more", credible: true, total };
    failure = checkFrame(bytes, l, base);
    if (failure === null) return frameAt(bytes, l);
    if (bytes[MBUS_CI]! > DLMS_CI_MAX) {
      return { kind: "invalid", bytes: l + MBUS_OVERHEAD, message: failure };
    }
  }
  const longL = l + L_OVERFLOW;
  const longTotal = longL + MBUS_OVERHEAD;
  if (bytes.length < longTotal) {
    if (final && failure !== null) {
      return { kind: "invalid", bytes: l + MBUS_OVERHEAD, message: failure };
    }
    return { kind: "need-more", credible: true, total: longTotal };
  }
  const longFailure = checkFrame(bytes, longL, base);
  if (longFailure === null) return frameAt(bytes, longL);
  return failure !== null
    ? { kind: "invalid", bytes: l + MBUS_OVERHEAD, message: failure }
    : { kind: "invalid", bytes: longTotal, message: longFailure };
}

/** The single character E5: the only thing this program ever sends to a meter. */
export function mbusAck(): Uint8Array {
  return Uint8Array.of(MBUS_ACK);
}

/**
 * What a slave at primary address `address` must answer to a frame with control field `c`
 * sent to `a`: E5 to SND_NKE and to SND_UD, nothing (null) to anything else. Only frames
 * whose checksum is right may be asked: a damaged frame is never answered.
 */
export function mbusReply(c: number, a: number, address: number): Uint8Array | null {
  if (a !== address) return null;
  if (c === MBUS_C_SND_NKE || (c & ~MBUS_C_FCB) === MBUS_C_SND_UD) return mbusAck();
  return null;
}

/** Whether a long frame carries OMS data for lib/oms rather than a DLMS segment. */
export function isOmsFrame(frame: MbusFrame): boolean {
  return frame.ci === MBUS_CI_OMS_LONG_HEADER;
}

/** The DLMS transport view of a long frame's body. */
export interface DlmsSegment {
  /** 0..15 */
  readonly segment: number;
  readonly final: boolean;
  readonly stsap: number;
  readonly dtsap: number;
  /** The APDU bytes this segment carries (a view). */
  readonly data: Uint8Array;
}

/**
 * Reads the DLMS segment inside a long frame, or says why it is none.
 * @param base stream offset of the frame, quoted in messages
 */
export function dlmsSegment(
  frame: MbusFrame,
  base = 0,
): { readonly ok: true; readonly segment: DlmsSegment } | {
  readonly ok: false;
  readonly message: string;
} {
  if (frame.ci > DLMS_CI_MAX) {
    return {
      ok: false,
      message: `Unsupported M-Bus CI field 0x${
        hex2(frame.ci)
      } (byte ${base}): neither a DLMS segment (CI 0x00..0x1F) nor OMS data (CI 0x5B); the meter sends classic M-Bus data, which is not decoded here`,
    };
  }
  if (frame.body.length < DLMS_HEADER) {
    return {
      ok: false,
      message:
        `M-Bus DLMS segment too short: L = ${frame.l} leaves no room for STSAP and DTSAP (byte ${base}): damaged frame`,
    };
  }
  return {
    ok: true,
    segment: {
      segment: frame.ci & CI_SEGMENT_MASK,
      final: (frame.ci & CI_FINAL_BIT) !== 0,
      stsap: frame.body[STSAP]!,
      dtsap: frame.body[DTSAP]!,
      data: frame.body.subarray(DLMS_HEADER),
    },
  };
}

/** What the reassembler hands to the framer: the same as the HDLC reassembler's. */
export type MbusChainOutput = ChainOutput;

/** A segment chain still waiting for its final segment. */
export interface PendingSegments {
  /** Stream offset of segment 0. */
  readonly offset: number;
  readonly frames: number;
  readonly bytes: number;
  /** Number of the last segment received. */
  readonly last: number;
}

/**
 * Joins DLMS segments 0, 1, ... final into payloads, checking their order: a gap in the
 * numbers, a segment without segment 0, or a new segment 0 before the final one is an
 * error, and the rest of a failed chain is dropped up to its final segment.
 */
export class MbusReassembler {
  readonly #maxPayloadBytes: number;
  #parts: Uint8Array[] = [];
  #bytes = 0;
  #offset = 0;
  #last = 0;
  /** After a failed chain: drop segments up to a final one or a new segment 0. */
  #discarding = false;

  constructor(maxPayloadBytes = 65536) {
    this.#maxPayloadBytes = maxPayloadBytes;
  }

  /** The unfinished chain, if any. */
  get pending(): PendingSegments | undefined {
    if (this.#parts.length === 0) return undefined;
    return {
      offset: this.#offset,
      frames: this.#parts.length,
      bytes: this.#bytes,
      last: this.#last,
    };
  }

  /** Adds the segment of a good frame found at stream offset `offset`. */
  add(seg: DlmsSegment, offset: number): MbusChainOutput[] {
    const out: MbusChainOutput[] = [];
    if (this.#discarding) {
      if (seg.segment !== 0) {
        if (seg.final) this.#discarding = false;
        return [{ kind: "discarded", reason: "rest of a failed M-Bus segment chain" }];
      }
      this.#discarding = false;
    }
    if (this.#parts.length > 0) {
      const expected = this.#last + 1;
      if (seg.segment === 0) {
        out.push({
          kind: "error",
          offset: this.#offset,
          message:
            `Incomplete M-Bus segment chain: segment 0 at byte ${offset} began a new one after segments 0..${this.#last} (byte ${this.#offset}): the final segment was lost`,
        });
        this.clear();
      } else if (seg.segment !== expected) {
        out.push({
          kind: "error",
          offset,
          message:
            `M-Bus segment out of order: expected segment ${expected}, got segment ${seg.segment} (byte ${offset}): a segment was lost or damaged`,
        });
        this.clear();
        this.#discarding = !seg.final;
        return out;
      }
    } else if (seg.segment !== 0) {
      out.push({
        kind: "error",
        offset,
        message:
          `M-Bus segment ${seg.segment} without segment 0 (byte ${offset}): the start of the chain was lost`,
      });
      this.#discarding = !seg.final;
      return out;
    }
    if (this.#parts.length === 0) this.#offset = offset;
    if (this.#bytes + seg.data.length > this.#maxPayloadBytes) {
      out.push({
        kind: "error",
        offset: this.#offset,
        message:
          `M-Bus payload too long: its segments add up to more than ${this.#maxPayloadBytes} bytes (byte ${this.#offset}): damaged segment numbers`,
      });
      this.clear();
      this.#discarding = !seg.final;
      return out;
    }
    if (seg.final && this.#parts.length === 0) {
      out.push({ kind: "payload", payload: seg.data.slice(), offset, frames: 1 });
      return out;
    }
    this.#parts.push(seg.data.slice());
    this.#bytes += seg.data.length;
    this.#last = seg.segment;
    if (seg.final) {
      out.push({
        kind: "payload",
        payload: concatBytes(this.#parts),
        offset: this.#offset,
        frames: this.#parts.length,
      });
      this.clear();
    } else if (this.#last === MAX_SEGMENTS - 1) {
      out.push({
        kind: "error",
        offset: this.#offset,
        message:
          `M-Bus segment chain too long: segment 15 is not final (byte ${this.#offset}): a damaged final bit`,
      });
      this.clear();
      this.#discarding = true;
    }
    return out;
  }

  /**
   * A frame with a credible header failed its checksum: its CI cannot be trusted, so the
   * chain is lost (the caller has reported it) and following segments up to a final one
   * or a new segment 0 are dropped.
   */
  damaged(): void {
    this.clear();
    this.#discarding = true;
  }

  /** Forgets the unfinished chain and any discarding state. */
  clear(): void {
    this.#parts = [];
    this.#bytes = 0;
    this.#last = 0;
    this.#discarding = false;
  }
}

/** Options of {@link encodeMbusFrames}. */
export interface MbusFramesOptions {
  /** Largest number of APDU bytes per frame (default 245, giving L = 0xFA). */
  maxData?: number;
  /** C field (default 0x53, SND_UD). */
  c?: number;
  /** A field (default 0xFF, broadcast). */
  a?: number;
  /** Source TSAP (default 0x01). */
  stsap?: number;
  /** Destination TSAP (default 0x67). */
  dtsap?: number;
  /**
   * Allows frames with L > 255 and writes L modulo 256, as the Sagemcom T210-D firmware
   * does (`68 01 01 68` for L = 257). Without it such a frame is refused.
   */
  overflowLength?: boolean;
}

function checkByte(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xff) {
    throw new RangeError(`Bad M-Bus ${what} ${v}: must be 0..255`);
  }
}

/**
 * An APDU as M-Bus long frames: segments of at most `maxData` bytes, CI = segment number,
 * plus 0x10 on the last.
 * @throws {RangeError} on a bad option, more than 16 segments, or L > 255 without
 *   `overflowLength`
 */
export function encodeMbusFrames(apdu: Uint8Array, opts: MbusFramesOptions = {}): Uint8Array[] {
  const maxData = opts.maxData ?? DEFAULT_MAX_DATA;
  const c = opts.c ?? DEFAULT_C;
  const a = opts.a ?? DEFAULT_A;
  const stsap = opts.stsap ?? DEFAULT_STSAP;
  const dtsap = opts.dtsap ?? DEFAULT_DTSAP;
  for (
    const [v, what] of [[c, "C field"], [a, "A field"], [stsap, "STSAP"], [dtsap, "DTSAP"]] as const
  ) {
    checkByte(v, what);
  }
  if (!Number.isInteger(maxData) || maxData < 1) {
    throw new RangeError(`Bad maxData ${maxData}: must be a positive integer`);
  }
  const maxL = opts.overflowLength ? 0xff + L_OVERFLOW : 0xff;
  const headerL = MBUS_BODY - MBUS_C + DLMS_HEADER; // C, A, CI, STSAP, DTSAP
  if (headerL + Math.min(maxData, apdu.length) > maxL) {
    throw new RangeError(
      `M-Bus frame too long: maxData ${maxData} gives L = ${headerL + maxData}, more than ${maxL}${
        opts.overflowLength ? "" : " (set overflowLength to write L modulo 256)"
      }`,
    );
  }
  const count = Math.max(1, Math.ceil(apdu.length / maxData));
  if (count > MAX_SEGMENTS) {
    throw new RangeError(
      `APDU too long for M-Bus: ${apdu.length} bytes need ${count} segments, at most ${MAX_SEGMENTS}`,
    );
  }
  const frames: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const data = apdu.subarray(i * maxData, Math.min((i + 1) * maxData, apdu.length));
    const l = headerL + data.length;
    const out = new Uint8Array(l + MBUS_OVERHEAD);
    out[0] = MBUS_START;
    out[MBUS_L] = l & 0xff;
    out[MBUS_L_REPEAT] = l & 0xff;
    out[MBUS_START_REPEAT] = MBUS_START;
    out[MBUS_C] = c;
    out[MBUS_A] = a;
    out[MBUS_CI] = i | (i === count - 1 ? CI_FINAL_BIT : 0);
    out[MBUS_BODY + STSAP] = stsap;
    out[MBUS_BODY + DTSAP] = dtsap;
    out.set(data, MBUS_BODY + DLMS_HEADER);
    let sum = 0;
    for (let j = MBUS_C; j < MBUS_C + l; j++) sum += out[j]!;
    out[MBUS_C + l] = sum & 0xff;
    out[MBUS_C + l + 1] = MBUS_STOP;
    frames.push(out);
  }
  return frames;
}

/** A short frame `10 C A CS 16`. @throws {RangeError} on a bad C or A field */
export function encodeMbusShortFrame(c: number, a: number): Uint8Array {
  checkByte(c, "C field");
  checkByte(a, "A field");
  const out = new Uint8Array(SHORT_LENGTH);
  out[0] = MBUS_SHORT_START;
  out[SHORT_C] = c;
  out[SHORT_A] = a;
  out[SHORT_CS] = (c + a) & 0xff;
  out[SHORT_STOP] = MBUS_STOP;
  return out;
}

/**
 * One long frame `68 L L 68 C A CI data CS 16` around `data` (everything after CI), for
 * link layers other than the DLMS transport (OMS data, CI 0x5B).
 * @throws {RangeError} on a bad field or more than 252 data bytes
 */
export function encodeMbusLongFrame(
  c: number,
  a: number,
  ci: number,
  data: Uint8Array,
): Uint8Array {
  for (const [v, what] of [[c, "C field"], [a, "A field"], [ci, "CI field"]] as const) {
    checkByte(v, what);
  }
  const l = MBUS_BODY - MBUS_C + data.length;
  if (l > 0xff) {
    throw new RangeError(
      `M-Bus frame too long: ${data.length} data bytes give L = ${l}, more than 255`,
    );
  }
  const out = new Uint8Array(l + MBUS_OVERHEAD);
  out[0] = MBUS_START;
  out[MBUS_L] = l;
  out[MBUS_L_REPEAT] = l;
  out[MBUS_START_REPEAT] = MBUS_START;
  out[MBUS_C] = c;
  out[MBUS_A] = a;
  out[MBUS_CI] = ci;
  out.set(data, MBUS_BODY);
  let sum = 0;
  for (let j = MBUS_C; j < MBUS_C + l; j++) sum += out[j]!;
  out[MBUS_C + l] = sum & 0xff;
  out[MBUS_C + l + 1] = MBUS_STOP;
  return out;
}

/**
 * HDLC frames of DLMS/COSEM (IEC 62056-46, frame format type 3; CRC from ISO/IEC 13239):
 * a length-driven parser that answers frame / need-more / skip, the S-bit reassembler, and
 * the encoders used by the tests and the meter simulator.
 *
 * ```
 *   offset 0    1..2        3..           ..           ..       ..      ..       ..      last
 *   +----+---------------+-----------+-----------+---------+-------+--------+-------+----+
 *   | 7E | format        | dest addr | src addr  | control | HCS   | info   | FCS   | 7E |
 *   |    | 1010 S LLL    | 1..4      | 1..4      | 1       | 2     | 0..n   | 2     |    |
 *   |    | LLLLLLLL      |           |           |         |       |        |       |    |
 *   +----+---------------+-----------+-----------+---------+-------+--------+-------+----+
 *          │    │  └─ frame length (11 bits): counts format .. FCS, not the flags
 *          │    └─ S, segmentation bit 0x0800: more segments of this information follow
 *          └─ frame format type 3: 0xA000
 * ```
 *
 * - An address continues while the low bit of its bytes is 0; the byte whose low bit is 1
 *   ends it (1, 2 or 4 bytes in the standard; up to 4 accepted here).
 * - HCS is CRC-16/X.25 over format .. control; FCS over format .. the last info byte. Both
 *   are sent least significant byte first. A frame without an information field has no
 *   HCS: `format | addresses | control | FCS`.
 * - There is no byte stuffing: `7E` may occur inside a frame, which is found by its length
 *   alone. The closing flag may therefore be doubled (`7E 7E`), shared with the next frame's
 *   opening flag, or missing; a frame is accepted when its FCS is right.
 * - Push frames are UI frames: control `0x13`; segments of a longer APDU carry the S bit
 *   and control `0x03`, the last one has no S bit and control `0x13`.
 * - The first segment's information field starts with the LLC header `E6 E7 00` (or
 *   `E6 E6 00`), which the reassembler removes.
 *
 * @module
 */

import { bytesEqual, concatBytes, toHex } from "../bytes.ts";
import { crc16x25 } from "./crc.ts";

/** Opening and closing flag. */
export const HDLC_FLAG = 0x7e;
/** Largest value of the 11-bit frame length field. */
export const HDLC_MAX_FRAME_LENGTH = 0x7ff;
/** Control byte of a UI frame with the poll/final bit: a push frame, or a last segment. */
export const HDLC_CONTROL_UI = 0x13;
/** Control byte of a UI frame without the poll/final bit: a push segment with the S bit. */
export const HDLC_CONTROL_UI_SEGMENT = 0x03;
/** LLC header of a response or push (IEC 62056-46 §8.1). */
export const LLC_RESPONSE: Uint8Array = Uint8Array.of(0xe6, 0xe7, 0x00);
/** LLC header of a command; some meters push with it. */
export const LLC_COMMAND: Uint8Array = Uint8Array.of(0xe6, 0xe6, 0x00);

// Offsets from the opening flag.
const HDLC_FORMAT = 1;
const HDLC_ADDRESSES = 3;

const FORMAT_TYPE_MASK = 0xf000;
const FORMAT_TYPE_3 = 0xa000;
const SEGMENTATION_BIT = 0x0800;
const LENGTH_MASK = 0x07ff;
const MAX_ADDRESS_BYTES = 4;
const ADDRESS_END_BIT = 0x01;
const CHECK_BYTES = 2;
const LLC_LENGTH = 3;
/** format (2) + dest (1) + src (1) + control (1) + FCS (2): a frame without info. */
const MIN_FRAME_LENGTH = 7;

const DEFAULT_DEST = Uint8Array.of(0x41);
const DEFAULT_SRC = Uint8Array.of(0x03);
/** The HDLC default maximum information field length (IEC 62056-46 §6.4.4.4.3.2). */
const DEFAULT_MAX_INFO = 128;

/** One HDLC frame whose checksums are right. Byte fields are views into the input. */
export interface HdlcFrame {
  /** The S bit: more segments of the same information follow. */
  readonly segmented: boolean;
  /** The 11-bit frame length (format .. FCS). */
  readonly frameLength: number;
  readonly dest: Uint8Array;
  readonly src: Uint8Array;
  readonly control: number;
  /** The information field (empty for frames without one). */
  readonly info: Uint8Array;
}

/** What {@link scanHdlcFrame} found at the start of its input. */
export type HdlcScan =
  /** A whole frame; `bytes` = opening flag + frame length (the closing flag is left). */
  | { readonly kind: "frame"; readonly frame: HdlcFrame; readonly bytes: number }
  /**
   * The input ends before the frame does. `credible`: the header checksum is right, so
   * this is a frame; `total` is then the number of bytes it takes (without the closing
   * flag) and `segmented` its S bit.
   */
  | {
    readonly kind: "need-more";
    readonly credible: boolean;
    readonly total?: number;
    readonly segmented?: boolean;
  }
  /** Not the start of a frame: drop `bytes` and look again. */
  | { readonly kind: "skip"; readonly bytes: number; readonly reason: string }
  /** A frame with a right header checksum that is bad: report `message`, drop `bytes`. */
  | {
    readonly kind: "invalid";
    readonly bytes: number;
    readonly segmented: boolean;
    readonly message: string;
  };

/** Whether `b`, the byte after a flag, can begin a type 3 frame format field. */
export function isHdlcFormatStart(b: number): boolean {
  return (b & (FORMAT_TYPE_MASK >> 8)) === FORMAT_TYPE_3 >> 8;
}

const hex4 = (v: number) => `0x${v.toString(16).padStart(4, "0")}`;
const readCheck = (b: Uint8Array, at: number) => b[at]! | (b[at + 1]! << 8);

/** Index after the address starting at `at`; -1: input ends inside it; -2: too long. */
function addressEnd(bytes: Uint8Array, at: number): number {
  for (let i = 0; i < MAX_ADDRESS_BYTES; i++) {
    if (at + i >= bytes.length) return -1;
    if (bytes[at + i]! & ADDRESS_END_BIT) return at + i + 1;
  }
  return -2;
}

/**
 * Looks for one HDLC frame at the start of `bytes` (which should begin with the opening
 * flag). Never throws on any input; "need more" is a result, not an exception.
 *
 * @param base stream offset of `bytes[0]`, quoted in messages
 */
export function scanHdlcFrame(bytes: Uint8Array, base = 0): HdlcScan {
  const notYet: HdlcScan = { kind: "need-more", credible: false };
  if (bytes.length === 0) return notYet;
  if (bytes[0] !== HDLC_FLAG) return { kind: "skip", bytes: 1, reason: "not an HDLC flag" };
  if (bytes.length < HDLC_ADDRESSES) return notYet;
  const format = (bytes[HDLC_FORMAT]! << 8) | bytes[HDLC_FORMAT + 1]!;
  if ((format & FORMAT_TYPE_MASK) !== FORMAT_TYPE_3) {
    return { kind: "skip", bytes: 1, reason: "HDLC flag without a type 3 frame format" };
  }
  const frameLength = format & LENGTH_MASK;
  const segmented = (format & SEGMENTATION_BIT) !== 0;
  if (frameLength < MIN_FRAME_LENGTH) {
    return { kind: "skip", bytes: 1, reason: "HDLC frame length too short" };
  }
  const destEnd = addressEnd(bytes, HDLC_ADDRESSES);
  if (destEnd === -1) return notYet;
  const srcEnd = destEnd < 0 ? -2 : addressEnd(bytes, destEnd);
  if (srcEnd === -1) return notYet;
  if (destEnd < 0 || srcEnd < 0) {
    return { kind: "skip", bytes: 1, reason: "HDLC address longer than 4 bytes" };
  }
  const control = srcEnd; // offset of the control byte
  const headerEnd = control + 1; // offset of the HCS, or of the FCS without info
  const headerLength = headerEnd - HDLC_FORMAT;
  const total = HDLC_FORMAT + frameLength;
  const fcsAt = total - CHECK_BYTES;

  if (frameLength === headerLength + CHECK_BYTES) {
    // No information field, so no HCS: only the FCS can vouch for the header.
    if (bytes.length < total) return notYet;
    if (crc16x25(bytes, HDLC_FORMAT, fcsAt) !== readCheck(bytes, fcsAt)) {
      return { kind: "skip", bytes: 1, reason: "bad checksum on a short HDLC frame" };
    }
    return {
      kind: "frame",
      bytes: total,
      frame: frameOf(bytes, segmented, frameLength, destEnd, srcEnd, headerEnd, headerEnd),
    };
  }
  if (frameLength < headerLength + 2 * CHECK_BYTES) {
    return { kind: "skip", bytes: 1, reason: "HDLC frame length shorter than its header" };
  }
  if (bytes.length < headerEnd + CHECK_BYTES) return notYet;
  if (crc16x25(bytes, HDLC_FORMAT, headerEnd) !== readCheck(bytes, headerEnd)) {
    return { kind: "skip", bytes: 1, reason: "bad HDLC header checksum" };
  }
  if (bytes.length < total) return { kind: "need-more", credible: true, total, segmented };
  const computed = crc16x25(bytes, HDLC_FORMAT, fcsAt);
  const sent = readCheck(bytes, fcsAt);
  if (computed !== sent) {
    return {
      kind: "invalid",
      bytes: total,
      segmented,
      message: `Bad HDLC frame checksum: computed ${hex4(computed)}, frame says ${
        hex4(sent)
      } (byte ${base}): damaged frame or wrong baud rate/parity`,
    };
  }
  const infoStart = headerEnd + CHECK_BYTES;
  return {
    kind: "frame",
    bytes: total,
    frame: frameOf(bytes, segmented, frameLength, destEnd, srcEnd, infoStart, fcsAt),
  };
}

function frameOf(
  bytes: Uint8Array,
  segmented: boolean,
  frameLength: number,
  destEnd: number,
  srcEnd: number,
  infoStart: number,
  infoEnd: number,
): HdlcFrame {
  return {
    segmented,
    frameLength,
    dest: bytes.subarray(HDLC_ADDRESSES, destEnd),
    src: bytes.subarray(destEnd, srcEnd),
    control: bytes[srcEnd]!,
    info: bytes.subarray(infoStart, infoEnd),
  };
}

/** What the reassemblers hand to the framer. */
export type ChainOutput =
  /** A whole payload: `offset` is the stream offset of its first frame. */
  | {
    readonly kind: "payload";
    readonly payload: Uint8Array;
    readonly offset: number;
    readonly frames: number;
  }
  /** A chain failed; `message` names the cause. */
  | { readonly kind: "error"; readonly offset: number; readonly message: string }
  /** The frame belongs to a chain already reported as failed: it is dropped. */
  | { readonly kind: "discarded"; readonly reason: string };

/** A segment chain still waiting for its last frame. */
export interface PendingChain {
  /** Stream offset of the first frame. */
  readonly offset: number;
  readonly frames: number;
  /** Bytes of payload gathered so far. */
  readonly bytes: number;
}

/** Length of the LLC header `info` starts with: 3, or 0 when it has none. */
function llcLength(info: Uint8Array): number {
  const head = info.subarray(0, LLC_LENGTH);
  return bytesEqual(head, LLC_RESPONSE) || bytesEqual(head, LLC_COMMAND) ? LLC_LENGTH : 0;
}

const addressText = (a: Uint8Array) => `0x${toHex(a)}`;

/**
 * Joins S-bit segments into payloads. A frame without the S bit ends a chain (a single
 * frame is a chain of one). UI frames carry no sequence numbers, so the only order check
 * possible is that every segment comes from the same addresses.
 */
export class HdlcReassembler {
  readonly #maxPayloadBytes: number;
  #parts: Uint8Array[] = [];
  #bytes = 0;
  #offset = 0;
  #dest: Uint8Array = new Uint8Array(0);
  #src: Uint8Array = new Uint8Array(0);
  /** After a failed segment: drop frames up to the end of that chain. */
  #discarding = false;

  constructor(maxPayloadBytes = 65536) {
    this.#maxPayloadBytes = maxPayloadBytes;
  }

  /** The unfinished chain, if any. */
  get pending(): PendingChain | undefined {
    if (this.#parts.length === 0) return undefined;
    return { offset: this.#offset, frames: this.#parts.length, bytes: this.#bytes };
  }

  /** Adds a good frame found at stream offset `offset`. */
  add(frame: HdlcFrame, offset: number): ChainOutput[] {
    if (this.#discarding) {
      if (!frame.segmented) this.#discarding = false;
      return [{ kind: "discarded", reason: "rest of a failed HDLC segment chain" }];
    }
    const out: ChainOutput[] = [];
    if (
      this.#parts.length > 0 &&
      !(bytesEqual(frame.dest, this.#dest) && bytesEqual(frame.src, this.#src))
    ) {
      out.push({
        kind: "error",
        offset: this.#offset,
        message: `HDLC segment chain broken: it came from address ${addressText(this.#src)} to ${
          addressText(this.#dest)
        }, the frame at byte ${offset} from ${addressText(frame.src)} to ${
          addressText(frame.dest)
        } (byte ${this.#offset}): its final segment was lost, or two stations share the line`,
      });
      this.clear();
    }
    const first = this.#parts.length === 0;
    const info = first ? frame.info.subarray(llcLength(frame.info)) : frame.info;
    if (first) this.#offset = offset;
    if (this.#bytes + info.length > this.#maxPayloadBytes) {
      out.push({
        kind: "error",
        offset: this.#offset,
        message:
          `HDLC payload too long: its segments add up to more than ${this.#maxPayloadBytes} bytes (byte ${this.#offset}): final segments lost or a damaged S bit`,
      });
      this.clear();
      this.#discarding = frame.segmented;
      return out;
    }
    if (first && !frame.segmented) {
      out.push({ kind: "payload", payload: info.slice(), offset, frames: 1 });
      return out;
    }
    if (first) {
      this.#dest = frame.dest.slice();
      this.#src = frame.src.slice();
    }
    this.#parts.push(info.slice());
    this.#bytes += info.length;
    if (!frame.segmented) {
      out.push({
        kind: "payload",
        payload: concatBytes(this.#parts),
        offset: this.#offset,
        frames: this.#parts.length,
      });
      this.clear();
    }
    return out;
  }

  /**
   * A frame with a right header but a bad FCS arrived: the chain it belongs to is lost
   * (the caller has reported it). When that frame had the S bit, the rest of its chain is
   * dropped too.
   */
  damaged(segmented: boolean): void {
    this.clear();
    this.#discarding = segmented;
  }

  /** Forgets the unfinished chain and any discarding state. */
  clear(): void {
    this.#parts = [];
    this.#bytes = 0;
    this.#discarding = false;
  }
}

function checkAddress(address: Uint8Array, what: string): void {
  const ok = address.length >= 1 && address.length <= MAX_ADDRESS_BYTES &&
    address.every((b, i) => ((b & ADDRESS_END_BIT) === 1) === (i === address.length - 1));
  if (!ok) {
    throw new RangeError(
      `Bad HDLC ${what} address 0x${
        toHex(address)
      }: 1 to 4 bytes, low bit set on the last byte only`,
    );
  }
}

/** Options of {@link encodeHdlcFrame}. */
export interface HdlcFrameOptions {
  /** Destination address as sent (default `41`: client SAP 0x20). */
  dest?: Uint8Array;
  /** Source address as sent (default `03`: server upper address 1). */
  src?: Uint8Array;
  /** Control byte (default `0x03` for a segment, `0x13` otherwise). */
  control?: number;
  /** Sets the S bit. */
  segmented?: boolean;
}

/**
 * One HDLC frame with both flags, HCS (when there is information) and FCS.
 * @throws {RangeError} on a bad address or a frame longer than the 11-bit length allows
 */
export function encodeHdlcFrame(info: Uint8Array, opts: HdlcFrameOptions = {}): Uint8Array {
  const dest = opts.dest ?? DEFAULT_DEST;
  const src = opts.src ?? DEFAULT_SRC;
  const segmented = opts.segmented ?? false;
  const control = opts.control ?? (segmented ? HDLC_CONTROL_UI_SEGMENT : HDLC_CONTROL_UI);
  checkAddress(dest, "destination");
  checkAddress(src, "source");
  if (!Number.isInteger(control) || control < 0 || control > 0xff) {
    throw new RangeError(`Bad HDLC control byte ${control}: must be 0..255`);
  }
  const headerEnd = HDLC_ADDRESSES + dest.length + src.length + 1;
  const headerLength = headerEnd - HDLC_FORMAT;
  const frameLength = headerLength + (info.length > 0 ? CHECK_BYTES + info.length : 0) +
    CHECK_BYTES;
  if (frameLength > HDLC_MAX_FRAME_LENGTH) {
    throw new RangeError(
      `HDLC frame too long: ${frameLength} bytes, the length field holds at most ${HDLC_MAX_FRAME_LENGTH}`,
    );
  }
  const out = new Uint8Array(frameLength + 2);
  const format = FORMAT_TYPE_3 | (segmented ? SEGMENTATION_BIT : 0) | frameLength;
  out[0] = HDLC_FLAG;
  out[HDLC_FORMAT] = format >> 8;
  out[HDLC_FORMAT + 1] = format & 0xff;
  out.set(dest, HDLC_ADDRESSES);
  out.set(src, HDLC_ADDRESSES + dest.length);
  out[headerEnd - 1] = control;
  let at = headerEnd;
  if (info.length > 0) {
    const hcs = crc16x25(out, HDLC_FORMAT, headerEnd);
    out[at++] = hcs & 0xff;
    out[at++] = hcs >> 8;
    out.set(info, at);
    at += info.length;
  }
  const fcs = crc16x25(out, HDLC_FORMAT, at);
  out[at++] = fcs & 0xff;
  out[at++] = fcs >> 8;
  out[at] = HDLC_FLAG;
  return out;
}

/** Options of {@link encodeHdlcFrames}. */
export interface HdlcFramesOptions {
  /** Largest information field per frame (default 128, the HDLC default). */
  maxInfo?: number;
  /** Prepends the LLC header `E6 E7 00` to the APDU (default true). */
  llc?: boolean;
  dest?: Uint8Array;
  src?: Uint8Array;
}

/**
 * An APDU as HDLC frames: LLC header first (unless `llc: false`), split into information
 * fields of at most `maxInfo` bytes; every frame but the last has the S bit and control
 * `0x03`, the last control `0x13`.
 * @throws {RangeError} on a bad `maxInfo` or address
 */
export function encodeHdlcFrames(apdu: Uint8Array, opts: HdlcFramesOptions = {}): Uint8Array[] {
  const maxInfo = opts.maxInfo ?? DEFAULT_MAX_INFO;
  if (!Number.isInteger(maxInfo) || maxInfo < 1) {
    throw new RangeError(`Bad maxInfo ${maxInfo}: must be a positive integer`);
  }
  const data = opts.llc ?? true ? concatBytes([LLC_RESPONSE, apdu]) : apdu;
  const addressing: HdlcFrameOptions = {};
  if (opts.dest) addressing.dest = opts.dest;
  if (opts.src) addressing.src = opts.src;
  const frames: Uint8Array[] = [];
  let at = 0;
  do {
    const end = Math.min(at + maxInfo, data.length);
    const segmented = end < data.length;
    frames.push(encodeHdlcFrame(data.subarray(at, end), { ...addressing, segmented }));
    at = end;
  } while (at < data.length);
  return frames;
}

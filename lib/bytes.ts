/**
 * The one bounds-checked big-endian reader every decoder reads through, and hex helpers.
 *
 * A {@link ByteReader} is a cursor over a `DataView` of exactly the window being decoded.
 * Running past the end throws a {@link TruncatedError} naming the layer and the offset, so
 * no decoder ever indexes past its input or silently reads `undefined`.
 *
 * BER lengths (ITU-T X.690 §8.1.3, as used by DLMS for octet strings and APDU bodies):
 *
 * ```
 *   0x00..0x7F            short form: the byte is the length
 *   0x81 nn               long form, 1 length byte
 *   0x82 nn nn            long form, 2 length bytes (big-endian)
 *   0x83 nn nn nn         ... up to 0x84 (4 bytes)
 * ```
 *
 * @module
 */

import { type Layer, ParseError, TruncatedError } from "./errors.ts";

/** A big-endian cursor over a byte window. */
export class ByteReader {
  /** Current offset, relative to the start of the window. */
  pos = 0;
  readonly #view: DataView;
  readonly #bytes: Uint8Array;

  /**
   * @param bytes the window to read; offsets in errors are relative to its start
   * @param layer the layer named in errors
   * @param base added to offsets in errors (where the window sits in a larger input)
   */
  constructor(bytes: Uint8Array, readonly layer: Layer, readonly base = 0) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Bytes left after the cursor. */
  get remaining(): number {
    return this.#bytes.length - this.pos;
  }

  /** Length of the whole window. */
  get length(): number {
    return this.#bytes.length;
  }

  /** Throws a {@link TruncatedError} unless `n` more bytes are available. */
  need(n: number, what: string): void {
    if (this.pos + n > this.#bytes.length) {
      throw new TruncatedError(
        this.layer,
        this.base + this.pos,
        `Input ends inside ${what}: needs ${plural(n, "byte")}, ${this.remaining} left`,
        this.pos + n - this.#bytes.length,
      );
    }
  }

  /** A {@link ParseError} at the current offset (or `at`), for the caller to throw. */
  error(message: string, at = this.pos): ParseError {
    return new ParseError(this.layer, this.base + at, message);
  }

  /** The byte at the cursor without consuming it. */
  peek(what = "a tag"): number {
    this.need(1, what);
    return this.#bytes[this.pos]!;
  }

  u8(what = "an 8-bit value"): number {
    this.need(1, what);
    return this.#bytes[this.pos++]!;
  }

  i8(what = "an 8-bit value"): number {
    this.need(1, what);
    return this.#view.getInt8(this.pos++);
  }

  u16(what = "a 16-bit value"): number {
    this.need(2, what);
    const v = this.#view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  i16(what = "a 16-bit value"): number {
    this.need(2, what);
    const v = this.#view.getInt16(this.pos);
    this.pos += 2;
    return v;
  }

  u32(what = "a 32-bit value"): number {
    this.need(4, what);
    const v = this.#view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  i32(what = "a 32-bit value"): number {
    this.need(4, what);
    const v = this.#view.getInt32(this.pos);
    this.pos += 4;
    return v;
  }

  u64(what = "a 64-bit value"): bigint {
    this.need(8, what);
    const v = this.#view.getBigUint64(this.pos);
    this.pos += 8;
    return v;
  }

  i64(what = "a 64-bit value"): bigint {
    this.need(8, what);
    const v = this.#view.getBigInt64(this.pos);
    this.pos += 8;
    return v;
  }

  f32(what = "a 32-bit float"): number {
    this.need(4, what);
    const v = this.#view.getFloat32(this.pos);
    this.pos += 4;
    return v;
  }

  f64(what = "a 64-bit float"): number {
    this.need(8, what);
    const v = this.#view.getFloat64(this.pos);
    this.pos += 8;
    return v;
  }

  /** `n` bytes as a view into the input (no copy). */
  bytes(n: number, what = "a byte string"): Uint8Array {
    this.need(n, what);
    const out = this.#bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Everything after the cursor (no copy). */
  rest(): Uint8Array {
    const out = this.#bytes.subarray(this.pos);
    this.pos = this.#bytes.length;
    return out;
  }

  /** A BER length: short form, or `81`..`84` followed by that many big-endian bytes. */
  berLength(what = "a length"): number {
    const start = this.pos;
    const first = this.u8(what);
    if (first < 0x80) return first;
    const count = first & 0x7f;
    if (count === 0 || count > 4) {
      throw this.error(`Bad length: 0x${hex2(first)} is not a BER length`, start);
    }
    let n = 0;
    for (let i = 0; i < count; i++) n = n * 256 + this.u8(what);
    return n;
  }
}

/** "1 byte", "2 bytes". */
export function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

/** Appends a BER length (short form below 128, else `81`, `82` or `84` and the bytes). */
export function pushBerLength(n: number, out: number[]): void {
  if (n < 0x80) out.push(n);
  else if (n <= 0xff) out.push(0x81, n);
  else if (n <= 0xffff) out.push(0x82, n >> 8, n & 0xff);
  else out.push(0x84, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
}

/** One byte as two lower-case hex digits. */
export function hex2(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}

const HEX_DIGITS = Array.from({ length: 256 }, (_, i) => hex2(i));

/** Bytes as lower-case hex without separators. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += HEX_DIGITS[b]!;
  return s;
}

/**
 * Hex text to bytes. Accepts any case and any whitespace (spaces, tabs, newlines) between
 * and inside byte pairs; rejects anything else.
 * @throws {SyntaxError} on a non-hex character or an odd number of digits
 */
export function fromHex(text: string): Uint8Array<ArrayBuffer> {
  const digits = text.replace(/\s+/g, "");
  const bad = digits.search(/[^0-9a-fA-F]/);
  if (bad >= 0) {
    throw new SyntaxError(`Not hex: character "${digits[bad]}" at digit ${bad}`);
  }
  if (digits.length % 2 !== 0) {
    throw new SyntaxError(`Not hex: odd number of digits (${digits.length})`);
  }
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(digits.substring(2 * i, 2 * i + 2), 16);
  }
  return out;
}

/**
 * Bytes as ISO 8859-1 text: each byte is its code point. (TextDecoder's "latin1" is really
 * windows-1252, and slow for the short strings meters send.)
 */
export function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

/** Concatenation of byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Whether two byte arrays hold the same bytes. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Incremental hex text to bytes, for captures of any size read in chunks: whitespace is
 * skipped anywhere, a byte may be split across chunks.
 */
export class HexStreamDecoder {
  #pending = -1; // high nibble waiting for its low nibble, or -1
  #digits = 0;

  /** Converts one chunk of text. @throws {SyntaxError} on a character that is not hex */
  push(text: string): Uint8Array {
    const out = new Uint8Array((text.length + 1) >> 1);
    let n = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      let v: number;
      if (c >= 0x30 && c <= 0x39) v = c - 0x30;
      else if (c >= 0x61 && c <= 0x66) v = c - 0x57;
      else if (c >= 0x41 && c <= 0x46) v = c - 0x37;
      else if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
      else {
        throw new SyntaxError(
          `Not hex: character "${
            text[i]
          }" after ${this.#digits} hex digits (use --binary for raw bytes)`,
        );
      }
      this.#digits++;
      if (this.#pending < 0) this.#pending = v;
      else {
        out[n++] = (this.#pending << 4) | v;
        this.#pending = -1;
      }
    }
    return out.subarray(0, n);
  }

  /** The text has ended. @throws {SyntaxError} when an odd number of digits was read */
  end(): void {
    if (this.#pending >= 0) {
      throw new SyntaxError(`Not hex: odd number of hex digits (${this.#digits})`);
    }
  }
}

/**
 * A-XDR decoding of DLMS `Data` (IEC 62056-6-2 / DLMS Blue Book §4.1.5, Green Book §9.5).
 *
 * Every value starts with a one-byte type tag; lengths and element counts use the BER
 * length form; all integers are big-endian.
 *
 * ```
 *   00                      null-data
 *   01 <count> <item>...    array            02 <count> <item>...   structure
 *   03 <0|1>                boolean          04 <bits> <bytes>      bit-string
 *   05 <4>  double-long     06 <4>  double-long-unsigned
 *   09 <len> <bytes>        octet-string     0A <len> <ascii>       visible-string
 *   0C <len> <utf8>         utf8-string      0D <1>                 bcd
 *   0F <1>  integer         10 <2>  long     11 <1>  unsigned       12 <2>  long-unsigned
 *   14 <8>  long64          15 <8>  long64-unsigned                16 <1>  enum
 *   17 <4>  float32         18 <8>  float64
 *   19 <12> date-time       1A <5>  date     1B <4>  time            FF     dont-care
 * ```
 *
 * Decoding is bounded: nesting deeper than {@link MAX_DEPTH} and element counts larger
 * than the bytes left are refused before any allocation.
 *
 * @module
 */

import { ByteReader, hex2, latin1, plural, pushBerLength } from "../bytes.ts";
import { ParseError } from "../errors.ts";
import { type DlmsDateTime, parseDate, parseDateTime, parseTime } from "./datetime.ts";

/** Integer types that fit a JavaScript number exactly. */
export type SmallIntegerType =
  | "integer"
  | "long"
  | "double-long"
  | "unsigned"
  | "long-unsigned"
  | "double-long-unsigned"
  | "enum"
  | "bcd";

/** A decoded DLMS `Data` value. */
export type AxdrValue =
  | { readonly type: "null" }
  | { readonly type: "dont-care" }
  | { readonly type: "array"; readonly items: readonly AxdrValue[] }
  | { readonly type: "structure"; readonly items: readonly AxdrValue[] }
  | { readonly type: "boolean"; readonly value: boolean }
  | { readonly type: "bit-string"; readonly bits: number; readonly bytes: Uint8Array }
  | { readonly type: SmallIntegerType; readonly value: number }
  | { readonly type: "long64" | "long64-unsigned"; readonly value: bigint }
  | { readonly type: "float32" | "float64"; readonly value: number }
  | { readonly type: "octet-string"; readonly bytes: Uint8Array }
  | { readonly type: "visible-string" | "utf8-string"; readonly text: string }
  | { readonly type: "date-time"; readonly value: DlmsDateTime }
  | { readonly type: "date"; readonly value: DlmsDateTime }
  | { readonly type: "time"; readonly value: DlmsDateTime };

/** Type tags of DLMS `Data`. */
export const DataTag = {
  NULL: 0x00,
  ARRAY: 0x01,
  STRUCTURE: 0x02,
  BOOLEAN: 0x03,
  BIT_STRING: 0x04,
  DOUBLE_LONG: 0x05,
  DOUBLE_LONG_UNSIGNED: 0x06,
  OCTET_STRING: 0x09,
  VISIBLE_STRING: 0x0a,
  UTF8_STRING: 0x0c,
  BCD: 0x0d,
  INTEGER: 0x0f,
  LONG: 0x10,
  UNSIGNED: 0x11,
  LONG_UNSIGNED: 0x12,
  COMPACT_ARRAY: 0x13,
  LONG64: 0x14,
  LONG64_UNSIGNED: 0x15,
  ENUM: 0x16,
  FLOAT32: 0x17,
  FLOAT64: 0x18,
  DATE_TIME: 0x19,
  DATE: 0x1a,
  TIME: 0x1b,
  DONT_CARE: 0xff,
} as const;

/** Deepest nesting of arrays and structures accepted. Real pushes use 3 or 4. */
export const MAX_DEPTH = 16;

const utf8 = new TextDecoder("utf-8");

/** Variants of the encoding seen in the field. */
export interface DecodeOptions {
  /**
   * Read a structure(2) that starts with 00 as `{attribute descriptor, value}`: the class
   * id (2 bytes), OBIS code (6) and attribute (1) sent without type tags, as Sagemcom XT211
   * meters (EG.D) do. The descriptor comes back as
   * structure{long-unsigned class id, octet-string OBIS, integer attribute}.
   */
  readonly attributeDescriptors?: boolean;
  /**
   * When given, receives the byte span `[start, end)` of every element of every array and
   * structure (offsets plus the reader's base), for `decode --explain`.
   */
  readonly spans?: Spans;
}

/** Where each decoded value sat in the input: value → `[start, end)`. */
export type Spans = Map<AxdrValue, readonly [number, number]>;

const ATTRIBUTE_DESCRIPTOR_LENGTH = 9;
const STRICT: DecodeOptions = {};
const VARIANTS: DecodeOptions = { attributeDescriptors: true };

/** Decodes one `Data` value at the reader's cursor. */
export function decodeData(r: ByteReader, depth = 0, opts: DecodeOptions = STRICT): AxdrValue {
  const at = r.pos;
  const tag = r.u8("a data type tag");
  switch (tag) {
    case DataTag.NULL:
      return { type: "null" };
    case DataTag.DONT_CARE:
      return { type: "dont-care" };
    case DataTag.ARRAY:
    case DataTag.STRUCTURE: {
      if (depth >= MAX_DEPTH) {
        throw r.error(
          `Nesting too deep: more than ${MAX_DEPTH} levels of arrays and structures`,
          at,
        );
      }
      const count = r.berLength("an element count");
      // Every element takes at least one byte: a larger count cannot be honest.
      if (count > r.remaining) {
        throw r.error(
          `Element count ${count} exceeds the ${
            plural(r.remaining, "byte")
          } left: damaged or misaligned data`,
          at,
        );
      }
      const items: AxdrValue[] = [];
      if (
        opts.attributeDescriptors && tag === DataTag.STRUCTURE && count === 2 &&
        r.peek() === 0x00 && r.remaining > ATTRIBUTE_DESCRIPTOR_LENGTH
      ) {
        const start = r.pos;
        const descriptor: AxdrValue = {
          type: "structure",
          items: [
            { type: "long-unsigned", value: r.u16("a class id") },
            { type: "octet-string", bytes: r.bytes(6, "an OBIS code") },
            { type: "integer", value: r.i8("an attribute index") },
          ],
        };
        items.push(descriptor);
        if (opts.spans) {
          const at = r.base + start;
          opts.spans.set(descriptor, [at, at + ATTRIBUTE_DESCRIPTOR_LENGTH]);
          const [cls, obis, attribute] = descriptor.items;
          opts.spans.set(cls!, [at, at + 2]);
          opts.spans.set(obis!, [at + 2, at + 8]);
          opts.spans.set(attribute!, [at + 8, at + 9]);
        }
        const valueStart = r.pos;
        const value = decodeData(r, depth + 1, opts);
        items.push(value);
        opts.spans?.set(value, [r.base + valueStart, r.base + r.pos]);
        return { type: "structure", items };
      }
      for (let i = 0; i < count; i++) {
        const start = r.pos;
        const item = decodeData(r, depth + 1, opts);
        items.push(item);
        if (opts.spans) opts.spans.set(item, [r.base + start, r.base + r.pos]);
      }
      return { type: tag === DataTag.ARRAY ? "array" : "structure", items };
    }
    case DataTag.BOOLEAN:
      return { type: "boolean", value: r.u8("a boolean") !== 0 };
    case DataTag.BIT_STRING: {
      const bits = r.berLength("a bit-string length");
      return { type: "bit-string", bits, bytes: r.bytes(Math.ceil(bits / 8), "a bit-string") };
    }
    case DataTag.DOUBLE_LONG:
      return { type: "double-long", value: r.i32("a double-long") };
    case DataTag.DOUBLE_LONG_UNSIGNED:
      return { type: "double-long-unsigned", value: r.u32("a double-long-unsigned") };
    case DataTag.OCTET_STRING: {
      const n = r.berLength("an octet-string length");
      return { type: "octet-string", bytes: r.bytes(n, "an octet-string") };
    }
    case DataTag.VISIBLE_STRING: {
      const n = r.berLength("a visible-string length");
      return { type: "visible-string", text: latin1(r.bytes(n, "a visible-string")) };
    }
    case DataTag.UTF8_STRING: {
      const n = r.berLength("a utf8-string length");
      return { type: "utf8-string", text: utf8.decode(r.bytes(n, "a utf8-string")) };
    }
    case DataTag.BCD:
      return { type: "bcd", value: r.i8("a bcd") };
    case DataTag.INTEGER:
      return { type: "integer", value: r.i8("an integer") };
    case DataTag.LONG:
      return { type: "long", value: r.i16("a long") };
    case DataTag.UNSIGNED:
      return { type: "unsigned", value: r.u8("an unsigned") };
    case DataTag.LONG_UNSIGNED:
      return { type: "long-unsigned", value: r.u16("a long-unsigned") };
    case DataTag.LONG64:
      return { type: "long64", value: r.i64("a long64") };
    case DataTag.LONG64_UNSIGNED:
      return { type: "long64-unsigned", value: r.u64("a long64-unsigned") };
    case DataTag.ENUM:
      return { type: "enum", value: r.u8("an enum") };
    case DataTag.FLOAT32:
      return { type: "float32", value: r.f32("a float32") };
    case DataTag.FLOAT64:
      return { type: "float64", value: r.f64("a float64") };
    case DataTag.DATE_TIME:
      return { type: "date-time", value: parseDateTime(r.bytes(12, "a date-time")) };
    case DataTag.DATE:
      return { type: "date", value: parseDate(r.bytes(5, "a date")) };
    case DataTag.TIME:
      return { type: "time", value: parseTime(r.bytes(4, "a time")) };
    case DataTag.COMPACT_ARRAY:
      throw r.error("Unsupported data type: compact-array (0x13) is not used in push messages", at);
    default:
      throw r.error(`Unknown data type tag 0x${hex2(tag)}: damaged data or wrong key`, at);
  }
}

/**
 * Decodes one `Data` value that should end exactly at the end of the reader's window: the
 * standard encoding first, then (only when that fails or leaves bytes over) the field
 * variants of {@link DecodeOptions}. The error of the standard reading is the one thrown.
 */
export function decodeDataWhole(r: ByteReader, depth = 0, spans?: Spans): AxdrValue {
  const start = r.pos;
  let strict: AxdrValue | null = null;
  let strictEnd = start;
  let strictError: unknown = null;
  const record = (v: AxdrValue) => spans?.set(v, [r.base + start, r.base + r.pos]);
  try {
    strict = decodeData(r, depth, spans ? { spans } : STRICT);
    if (r.remaining === 0) {
      record(strict);
      return strict;
    }
    strictEnd = r.pos;
  } catch (e) {
    if (!(e instanceof ParseError)) throw e;
    strictError = e;
  }
  r.pos = start;
  try {
    const v = decodeData(r, depth, spans ? { attributeDescriptors: true, spans } : VARIANTS);
    if (r.remaining === 0) {
      record(v);
      return v;
    }
  } catch (e) {
    if (!(e instanceof ParseError)) throw e;
  }
  if (strict === null) {
    r.pos = start;
    throw strictError;
  }
  // The standard reading worked but left bytes over: the caller reports those.
  r.pos = strictEnd;
  record(strict);
  return strict;
}

/** Decodes a whole buffer that must hold exactly one `Data` value. */
export function decodeDataExact(bytes: Uint8Array, base = 0): AxdrValue {
  const r = new ByteReader(bytes, "axdr", base);
  const v = decodeData(r);
  if (r.remaining !== 0) {
    throw r.error(`${plural(r.remaining, "byte")} left over after the data`);
  }
  return v;
}

/** The value as a JavaScript number, if it is numeric (64-bit values converted). */
export function numericValue(v: AxdrValue): number | undefined {
  switch (v.type) {
    case "integer":
    case "long":
    case "double-long":
    case "unsigned":
    case "long-unsigned":
    case "double-long-unsigned":
    case "enum":
    case "bcd":
    case "float32":
    case "float64":
      return v.value;
    case "long64":
    case "long64-unsigned":
      return Number(v.value);
    default:
      return undefined;
  }
}

function pushInt(out: number[], value: number, bytes: number): void {
  for (let i = bytes - 1; i >= 0; i--) out.push(Math.floor(value / 2 ** (8 * i)) & 0xff);
}

const latin1Encode = (s: string) => Array.from(s, (c) => c.charCodeAt(0) & 0xff);

function encodeDateTimeBytes(v: DlmsDateTime, out: number[]): void {
  const year = v.year ?? 0xffff;
  out.push(year >> 8, year & 0xff, v.month ?? 0xff, v.day ?? 0xff, v.dayOfWeek ?? 0xff);
  out.push(v.hour ?? 0xff, v.minute ?? 0xff, v.second ?? 0xff, v.hundredths ?? 0xff);
  const dev = v.deviation === null ? 0x8000 : v.deviation & 0xffff;
  out.push(dev >> 8, dev & 0xff, v.clockStatus ?? 0xff);
}

/** The 12 bytes of a date-time (the inverse of `parseDateTime`). */
export function encodeDateTime(v: DlmsDateTime): Uint8Array {
  const out: number[] = [];
  encodeDateTimeBytes(v, out);
  return Uint8Array.from(out);
}

/** Encodes a value as A-XDR `Data` (the inverse of {@link decodeData}). */
export function encodeData(v: AxdrValue, out: number[] = []): number[] {
  switch (v.type) {
    case "null":
      out.push(DataTag.NULL);
      break;
    case "dont-care":
      out.push(DataTag.DONT_CARE);
      break;
    case "array":
    case "structure":
      out.push(v.type === "array" ? DataTag.ARRAY : DataTag.STRUCTURE);
      pushBerLength(v.items.length, out);
      for (const item of v.items) encodeData(item, out);
      break;
    case "boolean":
      out.push(DataTag.BOOLEAN, v.value ? 1 : 0);
      break;
    case "bit-string":
      out.push(DataTag.BIT_STRING);
      pushBerLength(v.bits, out);
      out.push(...v.bytes);
      break;
    case "double-long":
    case "double-long-unsigned":
      out.push(v.type === "double-long" ? DataTag.DOUBLE_LONG : DataTag.DOUBLE_LONG_UNSIGNED);
      pushInt(out, v.value >>> 0, 4);
      break;
    case "integer":
    case "unsigned":
    case "enum":
    case "bcd": {
      const tag = {
        integer: DataTag.INTEGER,
        unsigned: DataTag.UNSIGNED,
        enum: DataTag.ENUM,
        bcd: DataTag.BCD,
      }[
        v.type
      ];
      out.push(tag, v.value & 0xff);
      break;
    }
    case "long":
    case "long-unsigned":
      out.push(v.type === "long" ? DataTag.LONG : DataTag.LONG_UNSIGNED);
      pushInt(out, v.value & 0xffff, 2);
      break;
    case "long64":
    case "long64-unsigned": {
      out.push(v.type === "long64" ? DataTag.LONG64 : DataTag.LONG64_UNSIGNED);
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v.value));
      out.push(...b);
      break;
    }
    case "float32":
    case "float64": {
      const n = v.type === "float32" ? 4 : 8;
      const b = new Uint8Array(n);
      const view = new DataView(b.buffer);
      if (n === 4) view.setFloat32(0, v.value);
      else view.setFloat64(0, v.value);
      out.push(v.type === "float32" ? DataTag.FLOAT32 : DataTag.FLOAT64, ...b);
      break;
    }
    case "octet-string":
      out.push(DataTag.OCTET_STRING);
      pushBerLength(v.bytes.length, out);
      out.push(...v.bytes);
      break;
    case "visible-string":
    case "utf8-string": {
      const bytes = v.type === "visible-string"
        ? latin1Encode(v.text)
        : [...new TextEncoder().encode(v.text)];
      out.push(v.type === "visible-string" ? DataTag.VISIBLE_STRING : DataTag.UTF8_STRING);
      pushBerLength(bytes.length, out);
      out.push(...bytes);
      break;
    }
    case "date-time":
      out.push(DataTag.DATE_TIME);
      encodeDateTimeBytes(v.value, out);
      break;
    case "date": {
      out.push(DataTag.DATE);
      const year = v.value.year ?? 0xffff;
      out.push(year >> 8, year & 0xff, v.value.month ?? 0xff, v.value.day ?? 0xff);
      out.push(v.value.dayOfWeek ?? 0xff);
      break;
    }
    case "time":
      out.push(DataTag.TIME, v.value.hour ?? 0xff, v.value.minute ?? 0xff);
      out.push(v.value.second ?? 0xff, v.value.hundredths ?? 0xff);
      break;
  }
  return out;
}

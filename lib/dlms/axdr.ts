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

import { ByteReader, hex2 } from "../bytes.ts";
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

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8");

/** Decodes one `Data` value at the reader's cursor. */
export function decodeData(r: ByteReader, depth = 0): AxdrValue {
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
          `Element count ${count} exceeds the ${r.remaining} bytes left: damaged or misaligned data`,
          at,
        );
      }
      const items: AxdrValue[] = [];
      for (let i = 0; i < count; i++) items.push(decodeData(r, depth + 1));
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
      return { type: "visible-string", text: latin1.decode(r.bytes(n, "a visible-string")) };
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

/** Decodes a whole buffer that must hold exactly one `Data` value. */
export function decodeDataExact(bytes: Uint8Array, base = 0): AxdrValue {
  const r = new ByteReader(bytes, "axdr", base);
  const v = decodeData(r);
  if (r.remaining !== 0) {
    throw r.error(`${r.remaining} bytes left over after the data`);
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

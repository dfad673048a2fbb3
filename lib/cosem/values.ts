/**
 * Questions the COSEM readers ask of A-XDR values: is it an OBIS code, a `{scaler, unit}`,
 * a date-time, text; and how to name what was seen in a message.
 *
 * ```
 *   OBIS code        09 06 A B C D E F                     octet-string of 6
 *   {scaler, unit}   02 02 0F <scaler> 16 <unit>           structure { integer, enum }
 *   date-time        09 0C <12 bytes>  or  19 <12 bytes>   octet-string of 12, or date-time
 * ```
 *
 * @module
 */

import { latin1, toHex } from "../bytes.ts";
import type { AxdrValue } from "../dlms/axdr.ts";
import { type DlmsDateTime, looksLikeDateTime, parseDateTime } from "../dlms/datetime.ts";

/** A register's `scaler_unit` (Blue Book class 3 attribute 3) as numbers. */
export interface ScalerUnit {
  readonly scaler: number;
  readonly unit: number;
}

const INTEGER_TYPES = new Set([
  "integer",
  "long",
  "double-long",
  "unsigned",
  "long-unsigned",
  "double-long-unsigned",
  "long64",
  "long64-unsigned",
]);

export const isInteger = (v: AxdrValue): boolean => INTEGER_TYPES.has(v.type);

export type Container = Extract<AxdrValue, { type: "array" | "structure" }>;
export const isContainer = (v: AxdrValue): v is Container =>
  v.type === "array" || v.type === "structure";

export type OctetString = Extract<AxdrValue, { type: "octet-string" }>;
/** Whether `v` can be an OBIS code: an octet string of 6. */
export const isObis = (v: AxdrValue): v is OctetString =>
  v.type === "octet-string" && v.bytes.length === 6;

/** `structure { integer scaler, enum unit }` as numbers, or null. */
export function asScalerUnit(v: AxdrValue): ScalerUnit | null {
  if (v.type !== "structure" || v.items.length !== 2) return null;
  const [s, u] = v.items as [AxdrValue, AxdrValue];
  if (s.type !== "integer" || u.type !== "enum") return null;
  return { scaler: s.value, unit: u.value };
}

/** A date-time value, or an octet string of 12 that reads as one. */
export function dateTimeOf(v: AxdrValue): DlmsDateTime | null {
  if (v.type === "date-time") return v.value;
  if (v.type === "octet-string" && looksLikeDateTime(v.bytes)) return parseDateTime(v.bytes);
  return null;
}

const PRINTABLE = /^[\x20-\x7e]*$/;

/** Strings as text: octet strings when printable ASCII, else lower-case hex. */
export function textOf(v: AxdrValue): string | null {
  if (v.type === "visible-string" || v.type === "utf8-string") return v.text;
  if (v.type !== "octet-string") return null;
  const text = latin1(v.bytes);
  return PRINTABLE.test(text) ? text : toHex(v.bytes);
}

/** Whether an octet string reads as printable ASCII text. */
export const isPrintable = (bytes: Uint8Array): boolean => PRINTABLE.test(latin1(bytes));

export const hexOf = (v: AxdrValue): string => (v.type === "octet-string" ? toHex(v.bytes) : "");

const SHOWN_TYPES = 8;

/** "a structure of 7 elements (types: octet-string, ...)", for messages. */
export function describe(v: AxdrValue): string {
  if (!isContainer(v)) return article(v);
  if (v.items.length === 0) return `an empty ${v.type}`;
  const types: string[] = v.items.slice(0, SHOWN_TYPES).map((x) => x.type);
  if (v.items.length > SHOWN_TYPES) types.push("…");
  const n = v.items.length;
  return `${indefinite(v.type)} of ${n} element${n === 1 ? "" : "s"} (types: ${types.join(", ")})`;
}

/** "an enum", "a structure of 3", "an octet-string of 12 bytes". */
export function article(v: AxdrValue): string {
  if (isContainer(v)) return `${indefinite(v.type)} of ${v.items.length}`;
  if (v.type === "octet-string") return `an octet-string of ${v.bytes.length} bytes`;
  return indefinite(v.type);
}

/** "an enum", "a structure": the word with its indefinite article. */
export const indefinite = (word: string): string =>
  /^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`;

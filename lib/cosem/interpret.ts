/**
 * COSEM interpretation: from the A-XDR body of a data-notification to registers, a time
 * and a meter id.
 *
 * Meters push one of three kinds of body, told apart by their shape alone:
 *
 * ```
 *   push-object-list   structure { array of {class id, OBIS, attribute, data index},
 *                                  value 1, value 2, ... }          (Swiss VSE pushes)
 *
 *   obis-tagged        a flat list:  [date-time] OBIS value [{scaler, unit}] OBIS value ... [id]
 *                      or objects:   { {OBIS, value[, {scaler, unit}]}, ... }
 *                      or both, with a leading list version string (Kamstrup, Aidon),
 *                      a bare clock OBIS followed by its date-time (Vorarlberg), or
 *                      {attribute descriptor, value} objects (Sagemcom XT211, EG.D)
 *
 *   positional         values only, no OBIS codes: one row of layouts.ts per operator
 * ```
 *
 * `{scaler, unit}` is `structure { integer, enum }`. Where a body sends bare integers, the
 * scaler comes from a per-manufacturer table (layouts.ts `SCALER_TABLES`), picked by the
 * system title's manufacturer id, the logical device name 0-0:42.0.0 or the list version;
 * never from the magnitude of a value.
 *
 * The time of a reading is the clock register (0-0:1.0.0 or 0-1:1.0.0) when it is
 * specified, else a positional date-time, else the notification header's date-time.
 * The meter id is 0-0:96.1.0, then 0-0:96.1.1, then a positional id, then a trailing bare
 * string (Netz NÖ), then the logical device name 0-0:42.0.0.
 *
 * @module
 */

import { latin1, toHex } from "../bytes.ts";
import { ParseError } from "../errors.ts";
import { type AxdrValue, numericValue } from "../dlms/axdr.ts";
import {
  type DlmsDateTime,
  formatDateTime,
  looksLikeDateTime,
  parseDate,
  parseDateTime,
  parseTime,
} from "../dlms/datetime.ts";
import { CLOCK_OBIS, formatObis, METER_ID_OBIS, namedValueFor, parseObis } from "./obis.ts";
import type { Interpretation, Register } from "./reading.ts";
import {
  POSITIONAL_LAYOUTS,
  type PositionalField,
  type PositionalLayout,
  QUANTITIES,
  type Quantity,
  SCALER_TABLES,
  type ScalerTable,
} from "./layouts.ts";
import { scale, unitSymbol } from "./units.ts";

/** Every accepted `--meter-type` / `meter_type` value. */
export const METER_TYPES = [
  "auto",
  "burgenland",
  "noe_evn",
  "wiener-netze",
  "kaernten",
  "kaifa-no",
  "aidon",
  "kamstrup",
  "obis-tagged",
  "push-object-list",
  "dsmr",
  "amis",
] as const;

/**
 * How to read a body. `auto` detects the layout; `burgenland` pins the Netz Burgenland
 * positional layout and `noe_evn` the OBIS-tagged one (the seed project's two names);
 * the others pin one layout family. `amis` (Netz OÖ, lib/oms) sends no DLMS at all.
 */
export type MeterType = typeof METER_TYPES[number];

/** What the layers below know about the telegram. */
export interface InterpretContext {
  /** The date-time of the data-notification header, if it had one. */
  headerTime: DlmsDateTime | null;
  /** System title (8 bytes; the first 3 are the manufacturer id), null when unencrypted. */
  systemTitle: Uint8Array | null;
  meterType: MeterType;
}

const normalise = (name: string) => name.trim().toLowerCase().replace(/[-_\s]/g, "");

/**
 * The meter type for a user-given name. Case, `-` and `_` do not matter
 * (`NOE-EVN` is `noe_evn`, `wiener_netze` is `wiener-netze`).
 * @throws {RangeError} naming the accepted values
 */
export function parseMeterType(name: string): MeterType {
  const wanted = normalise(name);
  const found = METER_TYPES.find((t) => normalise(t) === wanted);
  if (found === undefined) {
    throw new RangeError(
      `Unknown meter type "${name}": accepted are ${METER_TYPES.join(", ")}`,
    );
  }
  return found;
}

/**
 * Finds the readings in a data-notification body.
 * @throws {ParseError} (layer "cosem") when no layout fits, or the pinned one does not
 */
export function interpret(body: AxdrValue, ctx: InterpretContext): Interpretation {
  const manufacturer = manufacturerOf(ctx.systemTitle);
  const pinned = ctx.meterType !== "auto";
  const attempts = readersFor(ctx.meterType);
  const reasons: string[] = [];
  for (const attempt of attempts) {
    const found = attempt.read(body, pinned, manufacturer);
    if (typeof found === "string") {
      reasons.push(found);
      continue;
    }
    return finish(found, ctx, manufacturer, attempt.table ?? null);
  }
  if (ctx.meterType === "amis") {
    throw new ParseError(
      "cosem",
      0,
      `Meter type "amis" does not fit ${describe(body)}: an AMIS meter sends OMS M-Bus ` +
        `frames, this telegram carries DLMS A-XDR data; use meter type "auto"`,
    );
  }
  if (ctx.meterType === "dsmr") {
    throw new ParseError(
      "cosem",
      0,
      `Meter type "dsmr" does not fit ${describe(body)}: a DSMR meter sends text, ` +
        `this telegram carries A-XDR data; use meter type "auto"`,
    );
  }
  if (!pinned) {
    throw new ParseError(
      "cosem",
      0,
      `No known layout for ${describe(body)}: pin one with --meter-type`,
    );
  }
  throw new ParseError(
    "cosem",
    0,
    `Meter type "${ctx.meterType}" does not fit ${describe(body)}: ${reasons.join("; ")}`,
  );
}

// ---------------------------------------------------------------------------------------
// Readers: each returns what it collected, or a string saying why the body does not fit.

/** A value found in the body, before scaling. */
interface Entry {
  readonly obis: string;
  readonly value: AxdrValue;
  /** The meter's own {scaler, unit} (or the positional table's), null when absent. */
  readonly scalerUnit: ScalerUnit | null;
}

interface ScalerUnit {
  readonly scaler: number;
  readonly unit: number;
}

interface Collected {
  readonly layout: string;
  readonly entries: Entry[];
  /** {scaler, unit} sent as a separate attribute (class 3 attribute 3), by OBIS. */
  readonly scalerUnits: Map<string, ScalerUnit>;
  positionalTime: DlmsDateTime | null;
  positionalMeterId: string | null;
  trailingId: string | null;
  listId: string | null;
}

type Found = Collected | string;

interface Attempt {
  read(body: AxdrValue, pinned: boolean, manufacturer: string | null): Found;
  /** A scaler table the meter type forces, whatever the manufacturer. */
  table?: ScalerTable;
}

const tableNamed = (name: string): ScalerTable => SCALER_TABLES.find((t) => t.name === name)!;

const PUSH_LIST: Attempt = { read: readPushObjectList };
const TAGGED: Attempt = { read: readTagged };
const positionalFor = (meterType: string | null): Attempt => ({
  read: (body, pinned, manufacturer) => readPositional(body, meterType, pinned, manufacturer),
});

function readersFor(meterType: MeterType): Attempt[] {
  switch (meterType) {
    case "auto":
      return [PUSH_LIST, TAGGED, positionalFor(null)];
    case "burgenland":
    case "wiener-netze":
    case "kaernten":
      return [positionalFor(meterType)];
    case "kaifa-no":
      return [positionalFor(meterType), { read: readTagged, table: tableNamed("kaifa") }];
    case "kamstrup":
      return [{ read: readTagged, table: tableNamed("kamstrup") }];
    case "noe_evn":
    case "aidon":
    case "obis-tagged":
      return [TAGGED];
    case "push-object-list":
      return [PUSH_LIST];
    case "dsmr":
    case "amis":
      return [];
  }
}

function newCollected(layout: string): Collected {
  return {
    layout,
    entries: [],
    scalerUnits: new Map(),
    positionalTime: null,
    positionalMeterId: null,
    trailingId: null,
    listId: null,
  };
}

// Push-object-list ------------------------------------------------------------------------

const CLOCK = "0-0:1.0.0";

/** COSEM interface classes whose attribute 2 is a value worth publishing. */
const VALUE_CLASSES = new Set([1, 3, 4, 5, 8]);
const CLASS_REGISTER = 3;
const CLASS_EXTENDED_REGISTER = 4;
const CLASS_PUSH_SETUP = 40;
const ATTRIBUTE_VALUE = 2;
const ATTRIBUTE_SCALER_UNIT = 3;

interface Descriptor {
  readonly classId: number;
  readonly obis: string;
  readonly attribute: number;
}

/** `structure { long-unsigned class, octet-string[6] OBIS, integer attribute, long-unsigned index }` */
function pushListEntry(v: AxdrValue): (Descriptor & { dataIndex: number }) | null {
  if (v.type !== "structure" || v.items.length !== 4) return null;
  const [cls, obis, attr, index] = v.items as [AxdrValue, AxdrValue, AxdrValue, AxdrValue];
  if (cls.type !== "long-unsigned" || !isObis(obis)) return null;
  if (attr.type !== "integer" && attr.type !== "unsigned") return null;
  if (index.type !== "long-unsigned") return null;
  return {
    classId: cls.value,
    obis: formatObis(obis.bytes),
    attribute: attr.value,
    dataIndex: index.value,
  };
}

function readPushObjectList(body: AxdrValue): Found {
  const what = "push-object-list";
  if (!isContainer(body) || body.items.length === 0) {
    return `${what} needs a structure whose element 0 is the push object list`;
  }
  const list = body.items[0]!;
  if (list.type !== "array" || list.items.length === 0) {
    return `${what}: element 0 is ${
      article(list)
    }, not an array of {class id, OBIS, attribute, data index}`;
  }
  const descriptors = list.items.map(pushListEntry);
  const bad = descriptors.findIndex((d) => d === null);
  if (bad >= 0) {
    return `${what}: push object list entry ${bad} is not {class id, OBIS, attribute, data index}`;
  }
  // The list usually names itself first (push setup, attribute 2), so it has as many
  // entries as the body has elements; a list that leaves itself out has one fewer.
  const values = list.items.length === body.items.length
    ? body.items
    : list.items.length === body.items.length - 1
    ? body.items.slice(1)
    : null;
  if (values === null) {
    return `${what}: the push object list names ${list.items.length} objects but the body has ${
      body.items.length - 1
    } values`;
  }
  const c = newCollected(what);
  descriptors.forEach((d, i) => addDescribed(c, d!, values[i]!, d!.dataIndex));
  return c.entries.length > 0 ? c : `${what}: the push object list names no values`;
}

/** Adds the value of a described attribute (push list entry or XT211 descriptor). */
function addDescribed(c: Collected, d: Descriptor, value: AxdrValue, dataIndex = 0): void {
  if (dataIndex !== 0 || d.classId === CLASS_PUSH_SETUP) return;
  if (d.attribute === ATTRIBUTE_VALUE && VALUE_CLASSES.has(d.classId)) {
    c.entries.push({ obis: d.obis, value, scalerUnit: null });
  } else if (
    d.attribute === ATTRIBUTE_SCALER_UNIT &&
    (d.classId === CLASS_REGISTER || d.classId === CLASS_EXTENDED_REGISTER)
  ) {
    const su = asScalerUnit(value);
    if (su) c.scalerUnits.set(d.obis, su);
  }
}

// OBIS-tagged -----------------------------------------------------------------------------

/**
 * Sagemcom XT211 attribute descriptor, as a structure or as the 9 raw bytes:
 *
 * ```
 *   | class id 2 | OBIS 6 | attribute 1 |      e.g. 00 03 | 01 00 01 08 00 FF | 02
 * ```
 */
const DESCRIPTOR_BYTES = 9;
const DESCRIPTOR_OBIS_AT = 2;
const DESCRIPTOR_ATTRIBUTE_AT = 8;
/** COSEM class ids are below 256; a text of 9 bytes never starts with a 00 byte. */
const DESCRIPTOR_CLASS_HIGH_BYTE = 0;

function attributeDescriptor(v: AxdrValue): Descriptor | null {
  if (v.type === "structure" && v.items.length === 3) {
    const [cls, obis, attr] = v.items as [AxdrValue, AxdrValue, AxdrValue];
    if (cls.type !== "long-unsigned" || !isObis(obis)) return null;
    if (attr.type !== "integer" && attr.type !== "unsigned") return null;
    return { classId: cls.value, obis: formatObis(obis.bytes), attribute: attr.value };
  }
  if (
    v.type === "octet-string" && v.bytes.length === DESCRIPTOR_BYTES &&
    v.bytes[0] === DESCRIPTOR_CLASS_HIGH_BYTE
  ) {
    const b = v.bytes;
    return {
      classId: (b[0]! << 8) | b[1]!,
      obis: formatObis(b.subarray(DESCRIPTOR_OBIS_AT, DESCRIPTOR_OBIS_AT + 6)),
      attribute: b[DESCRIPTOR_ATTRIBUTE_AT]!,
    };
  }
  return null;
}

/**
 * One object: `{OBIS, value}`, `{OBIS, value, {scaler, unit}}` or `{descriptor, value}`.
 * Adds it and returns true, or returns false when `v` is not an object.
 */
function addObject(c: Collected, v: AxdrValue): boolean {
  if (v.type !== "structure") return false;
  const [first, value, su] = v.items;
  if (first === undefined || value === undefined) return false;
  if (isObis(first) && (v.items.length === 2 || v.items.length === 3)) {
    const scalerUnit = su === undefined ? null : asScalerUnit(su);
    if (su !== undefined && scalerUnit === null) return false;
    c.entries.push({ obis: formatObis(first.bytes), value, scalerUnit });
    return true;
  }
  const d = v.items.length === 2 ? attributeDescriptor(first) : null;
  if (d === null) return false;
  addDescribed(c, d, value);
  return true;
}

const isObjectList = (v: AxdrValue): boolean =>
  isContainer(v) && v.items.length > 0 &&
  v.items.every((x) => x.type === "structure" && addObject(newCollected(""), x));

function readTagged(body: AxdrValue): Found {
  const what = "obis-tagged";
  if (!isContainer(body)) return `${what} needs a structure or an array`;
  let items = body.items;
  // A wrapper of one element around the real list.
  if (items.length === 1 && isContainer(items[0]!) && !isObjectList(body)) {
    items = (items[0] as { items: readonly AxdrValue[] }).items;
  }
  const c = newCollected(what);
  let i = 0;
  while (i < items.length) {
    const item = items[i]!;
    const last = i === items.length - 1;
    if (isObis(item) && !last) {
      const value = items[i + 1]!;
      const su = items[i + 2] === undefined ? null : asScalerUnit(items[i + 2]!);
      c.entries.push({ obis: formatObis(item.bytes), value, scalerUnit: su });
      i += su ? 3 : 2;
    } else if (addObject(c, item)) {
      i++;
    } else if (isObjectList(item)) {
      for (const object of (item as { items: readonly AxdrValue[] }).items) addObject(c, object);
      i++;
    } else if (i === 0 && dateTimeOf(item)) {
      c.positionalTime = dateTimeOf(item);
      i++;
    } else if (i === 0 && (item.type === "enum" || item.type === "unsigned")) {
      i++; // a push header value before the list (XT211 sends an enum)
    } else if (i === 0 && !last && textOf(item) !== null) {
      c.listId = textOf(item);
      i++;
    } else if (last && i > 0 && textOf(item) !== null) {
      c.trailingId = textOf(item);
      i++;
    } else {
      return `${what}: element ${i} is ${article(item)}, not an OBIS code or an object`;
    }
  }
  if (c.entries.length === 0) return `${what}: no OBIS code found`;
  return c;
}

// Positional ------------------------------------------------------------------------------

function readPositional(
  body: AxdrValue,
  meterType: string | null,
  pinned: boolean,
  manufacturer: string | null,
): Found {
  const layouts = POSITIONAL_LAYOUTS.filter((l) => meterType === null || l.meterType === meterType);
  const reasons: string[] = [];
  for (const layout of layouts) {
    const found = readLayout(body, layout, pinned, manufacturer);
    if (typeof found !== "string") return found;
    reasons.push(found);
  }
  return reasons.join("; ");
}

function readLayout(
  body: AxdrValue,
  layout: PositionalLayout,
  pinned: boolean,
  manufacturer: string | null,
): Found {
  const { count, manufacturers } = layout.match;
  if (body.type !== "structure" || body.items.length !== count) {
    return `${layout.name} needs a structure(${count})`;
  }
  if (!pinned && manufacturers && !(manufacturer && manufacturers.includes(manufacturer))) {
    return `${layout.name} is only recognised from a ${manufacturers.join("/")} system title`;
  }
  const c = newCollected(layout.name);
  let time: DlmsDateTime | null = null;
  let date: DlmsDateTime | null = null;
  for (let i = 0; i < count; i++) {
    const field = layout.fields[i]!;
    const item = body.items[i]!;
    const problem = fieldProblem(field, item);
    if (problem !== null) {
      return `${layout.name}: element ${i} (${field.label}) is ${
        article(item)
      }, expected ${problem}`;
    }
    switch (field.kind) {
      case "number":
        c.entries.push({
          obis: field.obis!,
          value: item,
          scalerUnit: { scaler: field.scaler ?? 0, unit: field.unit ?? 255 },
        });
        break;
      case "date-time":
        c.positionalTime = dateTimeOf(item);
        if (field.obis) {
          c.entries.push({
            obis: field.obis,
            value: { type: "date-time", value: c.positionalTime! },
            scalerUnit: null,
          });
        }
        break;
      case "time":
        time = item.type === "time"
          ? item.value
          : item.type === "octet-string"
          ? parseTime(item.bytes)
          : null;
        break;
      case "date":
        date = item.type === "date"
          ? item.value
          : item.type === "octet-string"
          ? parseDate(item.bytes)
          : null;
        break;
      case "push-setup":
        break;
      case "meter-id":
        c.positionalMeterId = textOf(item);
        if (field.obis) c.entries.push({ obis: field.obis, value: item, scalerUnit: null });
        break;
      case "list-id":
        c.listId = textOf(item);
        if (field.obis) c.entries.push({ obis: field.obis, value: item, scalerUnit: null });
        break;
      case "text":
      case "info":
        if (field.obis && item.type !== "null") {
          c.entries.push({ obis: field.obis, value: item, scalerUnit: null });
        }
        break;
    }
  }
  if (time && date) {
    c.positionalTime = {
      ...time,
      year: date.year,
      month: date.month,
      day: date.day,
      dayOfWeek: date.dayOfWeek,
    };
    c.entries.push({
      obis: CLOCK,
      value: { type: "date-time", value: c.positionalTime },
      scalerUnit: null,
    });
  }
  return c;
}

const PATTERNS = new Map<string, RegExp>();
/** A layout table's pattern as a RegExp, compiled once. */
function compiled(pattern: string): RegExp {
  let re = PATTERNS.get(pattern);
  if (!re) PATTERNS.set(pattern, re = new RegExp(pattern));
  return re;
}

/** Null when `item` fits `field`, else what was expected. */
function fieldProblem(field: PositionalField, item: AxdrValue): string | null {
  switch (field.kind) {
    case "number":
      return isInteger(item) ? null : "an integer";
    case "text":
    case "meter-id":
      return textOf(item) !== null ? null : "a string";
    case "list-id": {
      const text = textOf(item);
      const pattern = field.pattern ?? "";
      return text !== null && compiled(pattern).test(text)
        ? null
        : `a list version matching /${pattern}/`;
    }
    case "date-time":
      return dateTimeOf(item) ? null : "a date-time";
    case "time":
      return item.type === "time" || (item.type === "octet-string" && item.bytes.length === 4)
        ? null
        : "a time (octet string of 4)";
    case "date":
      return item.type === "date" || (item.type === "octet-string" && item.bytes.length === 5)
        ? null
        : "a date (octet string of 5)";
    case "push-setup":
      return isObis(item) && formatObis(item.bytes) === field.obis
        ? null
        : `the OBIS code ${field.obis}`;
    case "info":
      return item.type === "null" || isInteger(item) || textOf(item) !== null
        ? null
        : "a string, a number or null";
  }
}

// Finishing -------------------------------------------------------------------------------

function finish(
  c: Collected,
  ctx: InterpretContext,
  manufacturer: string | null,
  forcedTable: ScalerTable | null,
): Interpretation {
  const logicalName = c.entries.find((e) => e.obis === "0-0:42.0.0");
  const maker = manufacturer ?? manufacturerOfName(logicalName ? textOf(logicalName.value) : null);
  const listIdEntry = c.entries.find((e) => LIST_ID_OBIS.has(e.obis));
  const listId = c.listId ?? (listIdEntry ? textOf(listIdEntry.value) : null);
  const table = forcedTable ?? scalerTableFor(maker, listId);

  const registers: Register[] = [];
  let clockTime: string | null = null;
  for (const entry of c.entries) {
    const register = toRegister(entry, c.scalerUnits.get(entry.obis) ?? null, table);
    if (register === null) continue;
    registers.push(register);
    if (
      clockTime === null && CLOCK_OBIS.includes(entry.obis) && typeof register.value === "string"
    ) {
      const dt = dateTimeOf(entry.value);
      if (dt) clockTime = formatDateTime(dt);
    }
  }

  const time = clockTime ??
    (c.positionalTime ? formatDateTime(c.positionalTime) : null) ??
    (ctx.headerTime ? formatDateTime(ctx.headerTime) : null);

  const text = (obis: string | undefined) => {
    const r = registers.find((x) => x.obis === obis && x.value !== "");
    return r === undefined ? null : String(r.value);
  };
  const meterId = text(METER_ID_OBIS[0]) ?? text(METER_ID_OBIS[1]) ?? c.positionalMeterId ??
    c.trailingId ?? text(METER_ID_OBIS[2]);

  return { layout: c.layout, time, meterId, registers };
}

function toRegister(
  entry: Entry,
  separateScalerUnit: ScalerUnit | null,
  table: ScalerTable | null,
): Register | null {
  const { obis, value } = entry;
  const n = value.type === "boolean" ? (value.value ? 1 : 0) : numericValue(value);
  if (n !== undefined) {
    const su = entry.scalerUnit ?? separateScalerUnit;
    if (su) return { obis, value: scale(n, su.scaler), unit: unitSymbol(su.unit) };
    const quantity = quantityOf(obis);
    const scaler = quantity ? table?.scalers[quantity.quantity] ?? 0 : 0;
    const unit = quantity ? unitSymbol(quantity.unit) : namedValueFor(obis)?.unit || null;
    return { obis, value: scale(n, scaler), unit };
  }
  const dt = value.type === "octet-string" && !CLOCK_OBIS.includes(obis) ? null : dateTimeOf(value);
  if (dt) return { obis, value: formatDateTime(dt) ?? hexOf(value), unit: null };
  if (value.type === "date" || value.type === "time") {
    return { obis, value: formatPart(value.value, value.type), unit: null };
  }
  const text = textOf(value) ?? (value.type === "bit-string" ? toHex(value.bytes) : null);
  return text === null ? null : { obis, value: text, unit: null };
}

const pad = (n: number | null, width = 2) =>
  n === null ? "?".repeat(width) : String(n).padStart(width, "0");

/** A date alone (`2024-05-07`) or a time alone (`21:11:20`); unspecified fields as `?`. */
function formatPart(v: DlmsDateTime, part: "date" | "time"): string {
  return part === "date"
    ? `${pad(v.year, 4)}-${pad(v.month)}-${pad(v.day)}`
    : `${pad(v.hour)}:${pad(v.minute)}:${pad(v.second)}`;
}

// Helpers ---------------------------------------------------------------------------------

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

const isInteger = (v: AxdrValue) => INTEGER_TYPES.has(v.type);

type Container = Extract<AxdrValue, { type: "array" | "structure" }>;
const isContainer = (v: AxdrValue): v is Container => v.type === "array" || v.type === "structure";

type OctetString = Extract<AxdrValue, { type: "octet-string" }>;
const isObis = (v: AxdrValue): v is OctetString =>
  v.type === "octet-string" && v.bytes.length === 6;

/** `structure { integer scaler, enum unit }` as numbers, or null. */
function asScalerUnit(v: AxdrValue): ScalerUnit | null {
  if (v.type !== "structure" || v.items.length !== 2) return null;
  const [s, u] = v.items as [AxdrValue, AxdrValue];
  if (s.type !== "integer" || u.type !== "enum") return null;
  return { scaler: s.value, unit: u.value };
}

/** A date-time value, or an octet string of 12 that reads as one. */
function dateTimeOf(v: AxdrValue): DlmsDateTime | null {
  if (v.type === "date-time") return v.value;
  if (v.type === "octet-string" && looksLikeDateTime(v.bytes)) return parseDateTime(v.bytes);
  return null;
}

const PRINTABLE = /^[\x20-\x7e]*$/;

/** Strings as text: octet strings when printable ASCII, else lower-case hex. */
function textOf(v: AxdrValue): string | null {
  if (v.type === "visible-string" || v.type === "utf8-string") return v.text;
  if (v.type !== "octet-string") return null;
  const text = latin1(v.bytes);
  return PRINTABLE.test(text) ? text : toHex(v.bytes);
}

const hexOf = (v: AxdrValue) => (v.type === "octet-string" ? toHex(v.bytes) : "");

/** The FLAG manufacturer id in the first 3 bytes of a system title (`LGZ`, `KFM`, ...). */
function manufacturerOf(systemTitle: Uint8Array | null): string | null {
  if (!systemTitle || systemTitle.length < 3) return null;
  return manufacturerOfName(latin1(systemTitle.subarray(0, 3)));
}

function manufacturerOfName(name: string | null): string | null {
  const m = name === null ? null : /^[A-Z]{3}/.exec(name);
  return m ? m[0] : null;
}

/** The list-version register (NVE lists), A and B 0 or 1. */
const LIST_ID_OBIS = new Set(["0-0:0.2.129", "0-1:0.2.129", "1-0:0.2.129", "1-1:0.2.129"]);

/** Each scaler table's list-id patterns, compiled once. */
const LIST_ID_PATTERNS = new Map(
  SCALER_TABLES.map((t) => [t, (t.match.listIds ?? []).map((p) => new RegExp(p))]),
);

function scalerTableFor(manufacturer: string | null, listId: string | null): ScalerTable | null {
  if (listId !== null) {
    const byList = SCALER_TABLES.find((t) => LIST_ID_PATTERNS.get(t)!.some((p) => p.test(listId)));
    if (byList) return byList;
  }
  if (manufacturer === null) return null;
  return SCALER_TABLES.find((t) => t.match.manufacturers?.includes(manufacturer)) ?? null;
}

/** The quantity an electricity OBIS code measures (A = 1), from its C and D groups. */
function quantityOf(obis: string): { quantity: Quantity; unit: number } | null {
  let found = QUANTITY_BY_OBIS.get(obis);
  if (found === undefined) {
    found = findQuantity(obis);
    if (QUANTITY_BY_OBIS.size >= MEMO_LIMIT) QUANTITY_BY_OBIS.clear();
    QUANTITY_BY_OBIS.set(obis, found);
  }
  return found;
}

/** Meters repeat the same few codes every telegram: answers are remembered (bounded). */
const MEMO_LIMIT = 1024;
const QUANTITY_BY_OBIS = new Map<string, { quantity: Quantity; unit: number } | null>();

function findQuantity(obis: string): { quantity: Quantity; unit: number } | null {
  let bytes: Uint8Array;
  try {
    bytes = parseObis(obis);
  } catch {
    return null;
  }
  if (bytes[0] !== 1) return null;
  const c = bytes[2]!, d = bytes[3]!;
  const rule = QUANTITIES.find((q) => q.d === d && q.c.includes(c));
  return rule ? { quantity: rule.quantity, unit: rule.unit } : null;
}

const SHOWN_TYPES = 8;

/** "a structure of 7 elements (types: octet-string, ...)", for messages. */
function describe(v: AxdrValue): string {
  if (!isContainer(v)) return article(v);
  if (v.items.length === 0) return `an empty ${v.type}`;
  const types: string[] = v.items.slice(0, SHOWN_TYPES).map((x) => x.type);
  if (v.items.length > SHOWN_TYPES) types.push("…");
  const n = v.items.length;
  return `${indefinite(v.type)} of ${n} element${n === 1 ? "" : "s"} (types: ${types.join(", ")})`;
}

/** "an enum", "a structure of 3", "an octet-string of 12 bytes". */
function article(v: AxdrValue): string {
  if (isContainer(v)) return `${indefinite(v.type)} of ${v.items.length}`;
  if (v.type === "octet-string") return `an octet-string of ${v.bytes.length} bytes`;
  return indefinite(v.type);
}

const indefinite = (word: string) => (/^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`);

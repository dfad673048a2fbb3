/**
 * COSEM interpretation: from the A-XDR body of a data-notification to registers, a time,
 * a meter id and a model.
 *
 * Meters push one of three kinds of body, told apart by their shape alone; each has its
 * reader:
 *
 * ```
 *   push-object-list   the list of {class id, OBIS, attribute, data index} with the values,
 *                      as element 0 or as a part of its own            (push_list.ts)
 *   obis-tagged        OBIS code, value [, {scaler, unit}] ..., flat or as objects,
 *                      or {attribute descriptor, value} objects        (tagged.ts)
 *   positional         values only, no OBIS codes: one row of layouts.ts per operator
 *                                                                      (positional.ts)
 * ```
 *
 * Auto-detection tries them in that order; a meter type pins one. Each number is then
 * scaled by the telegram's own `{scaler, unit}`, the positional layout, or the scaler
 * table of its meter family, and otherwise left raw with its scale unknown (`scale.ts`).
 *
 * The time of a reading is the clock register (0-0:1.0.0 or 0-1:1.0.0) when it is
 * specified, else a positional date-time, else the notification header's date-time.
 * The meter id is 0-0:96.1.0, then 1-1:0.0.5 (Kamstrup), then 0-0:96.1.1, then a
 * positional id, then a trailing bare string (Netz NÖ), then the logical device name
 * 0-0:42.0.0. The model comes from the layout or a meter-type register (`model.ts`).
 *
 * @module
 */

import { ParseError } from "../errors.ts";
import { type AxdrValue, numericValue } from "../dlms/axdr.ts";
import { type DlmsDateTime, formatDateTime } from "../dlms/datetime.ts";
import type { Collected, Entry, Found } from "./collected.ts";
import { SCALER_TABLES, type ScalerTable } from "./layouts.ts";
import { modelOf } from "./model.ts";
import { CLOCK_OBIS, LOGICAL_DEVICE_NAME, METER_ID_OBIS } from "./obis.ts";
import { readPositional } from "./positional.ts";
import { readPushObjectList } from "./push_list.ts";
import type { Interpretation, Register } from "./reading.ts";
import {
  chooseTable,
  describeChoice,
  manufacturerOf,
  manufacturerOfName,
  numberRegister,
  type TableChoice,
} from "./scale.ts";
import { readTagged } from "./tagged.ts";
import { dateTimeOf, describe, hexOf, textOf } from "./values.ts";
import type { ScalerUnit } from "./values.ts";
import { toHex } from "../bytes.ts";

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

/** No layout fits a body; `reasons` says, per layout tried, why not. */
export class LayoutError extends ParseError {
  readonly reasons: readonly string[];

  constructor(message: string, reasons: readonly string[]) {
    super("cosem", 0, message);
    this.reasons = reasons;
  }
}

/**
 * Finds the readings in a data-notification body.
 * @throws {LayoutError} (layer "cosem") when no layout fits, or the pinned one does not
 */
export function interpret(body: AxdrValue, ctx: InterpretContext): Interpretation {
  const manufacturer = manufacturerOf(ctx.systemTitle);
  const pinned = ctx.meterType !== "auto";
  const reasons: string[] = [];
  for (const attempt of readersFor(ctx.meterType)) {
    const found = attempt.read(body, pinned, manufacturer);
    if (typeof found === "string") {
      reasons.push(found);
      continue;
    }
    return finish(found, ctx, manufacturer, attempt.table ?? null, reasons);
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
    throw new LayoutError(
      `Meter type "dsmr" does not fit ${describe(body)}: a DSMR meter sends text, ` +
        `this telegram carries A-XDR data; use meter type "auto"`,
      reasons,
    );
  }
  if (!pinned) {
    throw new LayoutError(
      `No known layout for ${describe(body)}: pin one with --meter-type`,
      reasons,
    );
  }
  throw new LayoutError(
    `Meter type "${ctx.meterType}" does not fit ${describe(body)}: ${reasons.join("; ")}`,
    reasons,
  );
}

// ---------------------------------------------------------------------------------------
// Readers: each returns what it collected, or a string saying why the body does not fit.

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

// Finishing -------------------------------------------------------------------------------

/** The list-version register (NVE lists), A and B 0 or 1. */
const LIST_ID_OBIS = new Set(["0-0:0.2.129", "0-1:0.2.129", "1-0:0.2.129", "1-1:0.2.129"]);

function finish(
  c: Collected,
  ctx: InterpretContext,
  manufacturer: string | null,
  forcedTable: ScalerTable | null,
  tried: readonly string[],
): Interpretation {
  const logicalName = c.entries.find((e) => e.obis === LOGICAL_DEVICE_NAME);
  const maker = manufacturer ?? manufacturerOfName(logicalName ? textOf(logicalName.value) : null);
  const listIdEntry = c.entries.find((e) => LIST_ID_OBIS.has(e.obis));
  const listId = c.listId ?? (listIdEntry ? textOf(listIdEntry.value) : null);
  const choice = chooseTable(forcedTable, listId, maker, c.shape);

  const registers: Register[] = [];
  let clockTime: string | null = null;
  for (const entry of c.entries) {
    const register = toRegister(entry, c.scalerUnits.get(entry.obis) ?? null, choice);
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

  const text = (obis: string) => {
    const r = registers.find((x) => x.obis === obis && x.value !== "");
    return r === undefined ? null : String(r.value);
  };
  let meterId: string | null = null;
  for (const code of METER_ID_OBIS) meterId ??= text(code);
  meterId ??= c.positionalMeterId ?? c.trailingId ?? text(LOGICAL_DEVICE_NAME);

  const byTable = registers.some((r) =>
    r.scale?.from === "unknown" || (r.scale?.from === "rule" && r.scale.rule === choice.table?.name)
  );
  const notes = byTable
    ? [...c.notes, `numbers without a {scaler, unit}: ${describeChoice(choice)}`]
    : c.notes;
  return {
    layout: c.layout,
    time,
    meterId,
    model: modelOf(c.model, registers),
    registers,
    tried,
    notes,
  };
}

function toRegister(
  entry: Entry,
  separateScalerUnit: ScalerUnit | null,
  choice: TableChoice,
): Register | null {
  const { obis, value } = entry;
  const n = value.type === "boolean" ? (value.value ? 1 : 0) : numericValue(value);
  if (n !== undefined) {
    return numberRegister(
      obis,
      n,
      value,
      entry.scalerUnit ?? separateScalerUnit,
      entry.layoutRule,
      choice,
    );
  }
  const dt = value.type === "octet-string" && !CLOCK_OBIS.includes(obis) ? null : dateTimeOf(value);
  if (dt) return { obis, value: formatDateTime(dt) ?? hexOf(value), unit: null, node: value };
  if (value.type === "date" || value.type === "time") {
    return { obis, value: formatPart(value.value, value.type), unit: null, node: value };
  }
  const text = textOf(value) ?? (value.type === "bit-string" ? toHex(value.bytes) : null);
  return text === null ? null : { obis, value: text, unit: null, node: value };
}

const pad = (n: number | null, width = 2) =>
  n === null ? "?".repeat(width) : String(n).padStart(width, "0");

/** A date alone (`2024-05-07`) or a time alone (`21:11:20`); unspecified fields as `?`. */
function formatPart(v: DlmsDateTime, part: "date" | "time"): string {
  return part === "date"
    ? `${pad(v.year, 4)}-${pad(v.month)}-${pad(v.day)}`
    : `${pad(v.hour)}:${pad(v.minute)}:${pad(v.second)}`;
}

/**
 * Scale rules: where a number's power of ten and unit come from. The decoder's rule is
 * **zero wrong values**: a number becomes a named value only when the telegram itself or a
 * named rule settles its scale. In order:
 *
 * | source | what it is | `Scale` |
 * |---|---|---|
 * | the telegram | `{scaler, unit}` next to the value, or sent as the register's attribute 3; a unit written in DSMR text | `telegram` |
 * | a positional layout | the layout that read the body gives each position its scaler and unit (`POSITIONAL_LAYOUTS`) | `rule` = the layout's name |
 * | a scaler table | one scaler per quantity for a meter family (`SCALER_TABLES`), picked by the pinned meter type, the list version, the manufacturer (system title, then logical device name 0-0:42.0.0) or the body shape; the same for every body shape of the family | `rule` = the table's name |
 * | a DSMR unit rule | a power register written without a unit is in kW / kvar (Luxembourg Smarty) | `rule` = `dsmr-power-without-unit` |
 * | nothing | the raw number stays in `obis`, marked `"scale": "unknown"`; no named value | `unknown` |
 *
 * The quantity of a register (current, voltage, energy, ...) comes from its OBIS code's C
 * and D groups (`QUANTITIES`), and so does the unit a table's scaler applies to. A number
 * that measures no physical quantity (a counter, a number used as an id) is taken as sent.
 * Never is a scale guessed from the size of a value. Named values scaled by a rule then
 * pass the consistency check (`consistency.ts`).
 *
 * @module
 */

import { latin1 } from "../bytes.ts";
import {
  POSITIONAL_LAYOUTS,
  QUANTITIES,
  type Quantity,
  SCALER_TABLES,
  type ScalerTable,
} from "./layouts.ts";
import { parseObis } from "./obis.ts";
import type { Register, Scale } from "./reading.ts";
import { scale, unitSymbol } from "./units.ts";
import type { ScalerUnit } from "./values.ts";
import type { AxdrValue } from "../dlms/axdr.ts";

/** The scale of a number whose `{scaler, unit}` the telegram carries. */
export const TELEGRAM_SCALE: Scale = { from: "telegram" };
/** The scale of a number that measures no physical quantity. */
export const NO_SCALE: Scale = { from: "none" };

/** DSMR power registers written without a unit are in kW or kvar (dsmr.ts). */
export const DSMR_POWER_RULE = "dsmr-power-without-unit";

/** Every named scale rule: name → what it says. */
export const SCALE_RULES: ReadonlyMap<string, string> = new Map<string, string>([
  ...POSITIONAL_LAYOUTS.map((l) => [l.name, l.description] as [string, string]),
  ...SCALER_TABLES.map((t) => [t.name, t.description] as [string, string]),
  [
    DSMR_POWER_RULE,
    "DSMR power registers written without a unit are in kW (active) or kvar (reactive), as the Luxembourg Smarty specification says",
  ],
]);

const RULE_SCALES = new Map<string, Scale>();
/** The scale given by rule `name` (one shared object per rule). */
export function ruleScale(name: string): Scale {
  let s = RULE_SCALES.get(name);
  if (s === undefined) RULE_SCALES.set(name, s = { from: "rule", rule: name });
  return s;
}

/** The FLAG manufacturer id in the first 3 bytes of a system title (`LGZ`, `KFM`, ...). */
export function manufacturerOf(systemTitle: Uint8Array | null): string | null {
  if (!systemTitle || systemTitle.length < 3) return null;
  return manufacturerOfName(latin1(systemTitle.subarray(0, 3)));
}

/** The FLAG manufacturer id a logical device name starts with (`LGZ1030653520967`). */
export function manufacturerOfName(name: string | null): string | null {
  const m = name === null ? null : /^[A-Z]{3}/.exec(name);
  return m ? m[0] : null;
}

/** The scaler table that applies to a body, and by what it was chosen. */
export interface TableChoice {
  readonly table: ScalerTable | null;
  /** What chose it: the meter type, the list version, the manufacturer or the body's shape. */
  readonly by: "meter type" | "list version" | "manufacturer" | "shape" | null;
  readonly listId: string | null;
  readonly manufacturer: string | null;
  readonly shape: string | null;
}

/** Each scaler table's list-id patterns, compiled once. */
const LIST_ID_PATTERNS = new Map(
  SCALER_TABLES.map((t) => [t, (t.match.listIds ?? []).map((p) => new RegExp(p))]),
);

/**
 * The scaler table for a body: the one the meter type forces, else the one its list
 * version, then its manufacturer, then its shape names.
 */
export function chooseTable(
  forced: ScalerTable | null,
  listId: string | null,
  manufacturer: string | null,
  shape: string | null,
): TableChoice {
  const choice = (table: ScalerTable | null, by: TableChoice["by"]): TableChoice => ({
    table,
    by,
    listId,
    manufacturer,
    shape,
  });
  if (forced) return choice(forced, "meter type");
  if (listId !== null) {
    const t = SCALER_TABLES.find((t) => LIST_ID_PATTERNS.get(t)!.some((p) => p.test(listId)));
    if (t) return choice(t, "list version");
  }
  if (manufacturer !== null) {
    const t = SCALER_TABLES.find((t) => t.match.manufacturers?.includes(manufacturer));
    if (t) return choice(t, "manufacturer");
  }
  if (shape !== null) {
    const t = SCALER_TABLES.find((t) => t.match.shapes?.includes(shape));
    if (t) return choice(t, "shape");
  }
  return choice(null, null);
}

/** How a table was chosen, or why there is none (for messages and `--explain`). */
export function describeChoice(c: TableChoice): string {
  switch (c.by) {
    case "meter type":
      return `scaler table "${c.table!.name}" (the meter type)`;
    case "list version":
      return `scaler table "${c.table!.name}" (list version "${c.listId}")`;
    case "manufacturer":
      return `scaler table "${c.table!.name}" (manufacturer ${c.manufacturer})`;
    case "shape":
      return `scaler table "${c.table!.name}" (the body's ${c.shape} shape)`;
    case null:
      return c.manufacturer === null
        ? "nothing in the telegram names the manufacturer (no system title, logical device name or list version)"
        : `no scaler table is known for manufacturer ${c.manufacturer}`;
  }
}

/** A quantity and its DLMS unit code. */
interface QuantityOf {
  readonly quantity: Quantity;
  readonly unit: number;
}

/** The quantity an electricity OBIS code measures (A = 1), from its C and D groups. */
export function quantityOf(obis: string): QuantityOf | null {
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
const QUANTITY_BY_OBIS = new Map<string, QuantityOf | null>();

function findQuantity(obis: string): QuantityOf | null {
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

/**
 * The register for a number: scaled by the telegram's `{scaler, unit}` (or the positional
 * layout's, when `layoutRule` names it), else by the chosen table, else left raw with its
 * scale unknown.
 */
export function numberRegister(
  obis: string,
  raw: number,
  node: AxdrValue,
  su: ScalerUnit | null,
  layoutRule: string | undefined,
  choice: TableChoice,
): Register {
  if (su) {
    const resolution = scale(1, su.scaler);
    if (layoutRule === undefined) {
      return {
        obis,
        value: scale(raw, su.scaler),
        unit: unitSymbol(su.unit),
        scale: TELEGRAM_SCALE,
        resolution,
        node,
      };
    }
    return {
      obis,
      value: scale(raw, su.scaler),
      unit: unitSymbol(su.unit),
      scale: ruleScale(layoutRule),
      raw,
      resolution,
      node,
    };
  }
  const q = quantityOf(obis);
  if (q === null) return { obis, value: raw, unit: null, scale: NO_SCALE, node };
  const unit = unitSymbol(q.unit);
  const scaler = choice.table?.scalers[q.quantity];
  if (scaler === undefined) {
    const why = choice.table
      ? `the telegram sends no scaler and ${describeChoice(choice)} gives none for ${q.quantity}`
      : `the telegram sends no scaler and ${describeChoice(choice)}`;
    return { obis, value: raw, unit, scale: { from: "unknown", why }, raw, node };
  }
  return {
    obis,
    value: scale(raw, scaler),
    unit,
    scale: ruleScale(choice.table!.name),
    raw,
    resolution: scale(1, scaler),
    node,
  };
}

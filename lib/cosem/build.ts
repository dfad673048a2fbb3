/**
 * From an interpretation to a reading: named values in the catalog's units, and every
 * register keyed by its OBIS code.
 *
 * Only numbers whose scale the telegram or a named rule settles become named values
 * (`scale.ts`); the others stay in `obis`, marked `"scale": "unknown"`, and the reading's
 * `withheld` says which named values are missing and why. When a rule scaled any named
 * value, the consistency check (`consistency.ts`) runs; the values it doubts are withheld
 * too, their registers shown raw and marked `"scale": "doubtful"`.
 *
 * Registers arrive in the meter's units (DLMS bodies mostly in Wh/W/V/A already, DSMR in
 * kWh/kW/kvar). Each register the catalog names is converted to the catalog's unit; one
 * whose unit cannot be converted (say, VA for a register the catalog calls W) is left out
 * of the named values rather than published wrong. A converted value is rounded to 1e-6,
 * so 6.695 kWh becomes 6695 Wh, not 6694.999999999999.
 *
 * @module
 */

import { toHex } from "../bytes.ts";
import { checkConsistency, CHECKED_KEYS, type CheckedValue } from "./consistency.ts";
import { NAMED_VALUES, type NamedKey, namedValueFor, type NamedValues } from "./obis.ts";
import type { Interpretation, ObisEntry, Reading, Register, Withheld } from "./reading.ts";

/** Unit conversions into the catalog's units: from → [to, factor]. */
const CONVERSIONS: Readonly<Record<string, readonly [string, number]>> = {
  kWh: ["Wh", 1e3],
  MWh: ["Wh", 1e6],
  kvarh: ["varh", 1e3],
  Mvarh: ["varh", 1e6],
  kVAh: ["VAh", 1e3],
  kW: ["W", 1e3],
  MW: ["W", 1e6],
  kvar: ["var", 1e3],
  kVA: ["VA", 1e3],
  kV: ["V", 1e3],
  mA: ["A", 1e-3],
  mV: ["V", 1e-3],
};

const ROUNDING = 1e6;

/** `value` in unit `from` expressed in unit `to`, or undefined when they do not convert. */
export function convertUnit(value: number, from: string | null, to: string): number | undefined {
  const source = from ?? "";
  if (source === to) return value;
  const conversion = CONVERSIONS[source];
  if (conversion === undefined || conversion[0] !== to) return undefined;
  return Math.round(value * conversion[1] * ROUNDING) / ROUNDING;
}

/** The reading for one telegram. */
export function buildReading(
  i: Interpretation,
  meta: { systemTitle: Uint8Array | null; frameCounter: number | null },
): Reading {
  const values: NamedValues = {};
  const obis: Record<string, ObisEntry> = {};
  /** The registers of the named values the consistency check reads. */
  let checked: Map<NamedKey, Register> | null = null;
  let unknown: Map<NamedKey, string> | null = null;
  let ruleScaled = false;
  for (const register of i.registers) {
    if (!(register.obis in obis)) obis[register.obis] = obisEntry(register);
    const named = register.named !== undefined
      ? NAMED_VALUES.find((n) => n.key === register.named)
      : namedValueFor(register.obis);
    if (named === undefined || typeof register.value !== "number") continue;
    if (values[named.key] !== undefined) continue;
    if (register.scale?.from === "unknown") {
      unknown ??= new Map();
      if (!unknown.has(named.key)) unknown.set(named.key, register.scale.why);
      continue;
    }
    const converted = convertUnit(register.value, register.unit, named.unit);
    // A float register may hold NaN or an infinity (or overflow when scaled): not a value.
    if (converted !== undefined && Number.isFinite(converted)) {
      values[named.key] = converted;
      if (CHECKED_KEYS.has(named.key)) {
        (checked ??= new Map()).set(named.key, register);
        if (register.scale?.from === "rule") ruleScaled = true;
      }
    }
  }
  const withheld: Withheld[] = [];
  if (unknown !== null) withheld.push(...unscaled(unknown, values));
  if (ruleScaled) withheld.push(...doubtful(values, checked!, obis));
  if (values.power_import_w !== undefined && values.power_export_w !== undefined) {
    const net = values.power_import_w - values.power_export_w;
    if (Number.isFinite(net)) values.power_w = net;
  }
  const reading: Reading = {
    time: i.time,
    meter_id: i.meterId,
    model: i.model ?? null,
    system_title: meta.systemTitle ? toHex(meta.systemTitle) : null,
    frame_counter: meta.frameCounter,
    values: ordered(values),
    obis,
  };
  return withheld.length === 0 ? reading : { ...reading, withheld };
}

function obisEntry(r: Register): ObisEntry {
  return r.scale?.from === "unknown"
    ? { value: r.value, unit: r.unit, scale: "unknown" }
    : { value: r.value, unit: r.unit };
}

/** One withheld entry per reason for the named values no rule scales. */
function unscaled(unknown: Map<NamedKey, string>, values: NamedValues): Withheld[] {
  const byWhy = new Map<string, NamedKey[]>();
  for (const [key, why] of unknown) {
    if (values[key] !== undefined) continue; // another register of the same value had a scale
    const keys = byWhy.get(why);
    if (keys) keys.push(key);
    else byWhy.set(why, [key]);
  }
  return [...byWhy].map(([why, keys]) => ({
    keys,
    reason: `Scale unknown for ${keys.join(", ")}: ${why}`,
  }));
}

/** Runs the consistency check; removes what fails from `values` and marks it in `obis`. */
function doubtful(
  values: NamedValues,
  sources: Map<NamedKey, Register>,
  obis: Record<string, ObisEntry>,
): Withheld[] {
  const checked = new Map<NamedKey, CheckedValue>();
  for (const [key, r] of sources) {
    const unit = NAMED_UNITS.get(key)!;
    checked.set(key, {
      value: values[key]!,
      ruleScaled: r.scale?.from === "rule",
      resolution: convertUnit(r.resolution ?? 0, r.unit, unit) ?? 0,
    });
  }
  const doubts = checkConsistency(checked);
  for (const d of doubts) {
    for (const key of d.keys) {
      delete values[key];
      const r = sources.get(key)!;
      obis[r.obis] = { value: r.raw ?? r.value, unit: r.unit, scale: "doubtful" };
    }
  }
  return doubts;
}

const NAMED_UNITS = new Map(NAMED_VALUES.map((n) => [n.key, n.unit]));

/** Named values in catalog order, whatever order the registers came in. */
function ordered(values: NamedValues): NamedValues {
  const out: NamedValues = {};
  for (const { key } of NAMED_VALUES) if (values[key] !== undefined) out[key] = values[key];
  return out;
}

/**
 * From an interpretation to a reading: named values in the catalog's units, and every
 * register keyed by its OBIS code.
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
import { NAMED_VALUES, namedValueFor, type NamedValues } from "./obis.ts";
import type { Interpretation, Reading } from "./reading.ts";

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
  const obis: Record<string, { value: number | string; unit: string | null }> = {};
  for (const register of i.registers) {
    if (!(register.obis in obis)) {
      obis[register.obis] = { value: register.value, unit: register.unit };
    }
    const named = register.named !== undefined
      ? NAMED_VALUES.find((n) => n.key === register.named)
      : namedValueFor(register.obis);
    if (named === undefined || typeof register.value !== "number") continue;
    if (values[named.key] !== undefined) continue;
    const converted = convertUnit(register.value, register.unit, named.unit);
    // A float register may hold NaN or an infinity (or overflow when scaled): not a value.
    if (converted !== undefined && Number.isFinite(converted)) values[named.key] = converted;
  }
  if (values.power_import_w !== undefined && values.power_export_w !== undefined) {
    const net = values.power_import_w - values.power_export_w;
    if (Number.isFinite(net)) values.power_w = net;
  }
  return {
    time: i.time,
    meter_id: i.meterId,
    system_title: meta.systemTitle ? toHex(meta.systemTitle) : null,
    frame_counter: meta.frameCounter,
    values: ordered(values),
    obis,
  };
}

/** Named values in catalog order, whatever order the registers came in. */
function ordered(values: NamedValues): NamedValues {
  const out: NamedValues = {};
  for (const { key } of NAMED_VALUES) if (values[key] !== undefined) out[key] = values[key];
  return out;
}

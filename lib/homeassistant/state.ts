/**
 * The state JSON published on `<prefix>/<device_id>/state`.
 *
 * It carries `time`, `meter_id` and the named values (DESIGN.md "Named values"), plus
 * the Python add-on's short keys (`u1` … `power_factor`, `research/seed-compat.md` §5)
 * for the values the reading has, in the add-on's units (Wh, W, V, A, °), so users'
 * own templates and automations on the raw JSON keep working:
 *
 * ```
 * {"time":"2024-05-01T12:00:05+02:00","meter_id":"…","energy_import_wh":1234567,…,
 *  "u1":230.1,…,"total_con":1234567,"total_prov":89}
 * ```
 *
 * Keys the reading does not have are left out (the add-on wrote `0` instead); the
 * value templates of the discovered entities render `''` for them.
 *
 * @module
 */

import { NAMED_VALUES, type NamedKey } from "../cosem/obis.ts";
import type { Reading } from "../cosem/reading.ts";

/** The add-on's short state keys, in its order, and the named value each one mirrors. */
export const SHORT_KEYS: readonly (readonly [string, NamedKey])[] = [
  ["u1", "voltage_l1_v"],
  ["u2", "voltage_l2_v"],
  ["u3", "voltage_l3_v"],
  ["i1", "current_l1_a"],
  ["i2", "current_l2_a"],
  ["i3", "current_l3_a"],
  ["w_con", "power_import_w"],
  ["w_prov", "power_export_w"],
  ["total_con", "energy_import_wh"],
  ["total_prov", "energy_export_wh"],
  ["angle1", "angle_l1_deg"],
  ["angle2", "angle_l2_deg"],
  ["angle3", "angle_l3_deg"],
  ["power_factor", "power_factor"],
];

/** Significant digits kept: enough for any register, few enough to hide binary noise. */
const SIGNIFICANT_DIGITS = 15;

/**
 * Removes the noise that decimal scaling leaves in binary floats
 * (`2301 * 0.1` is `230.10000000000002`), so the JSON shows `230.1`.
 */
export function tidyNumber(v: number): number {
  if (Number.isInteger(v)) return v;
  return Number(v.toPrecision(SIGNIFICANT_DIGITS));
}

/** A value JSON can carry as a number (NaN and infinities would become `null`). */
function isPublishable(v: number | undefined): v is number {
  return v !== undefined && Number.isFinite(v);
}

/** Builds the state JSON object of one reading; non-finite values are left out. */
export function buildState(r: Reading): Record<string, unknown> {
  const state: Record<string, unknown> = { time: r.time, meter_id: r.meter_id };
  for (const { key } of NAMED_VALUES) {
    const v = r.values[key];
    if (isPublishable(v)) state[key] = tidyNumber(v);
  }
  for (const [short, key] of SHORT_KEYS) {
    const v = r.values[key];
    if (isPublishable(v)) state[short] = tidyNumber(v);
  }
  return state;
}

/**
 * Energy registers never go backwards in what we publish.
 *
 * Home Assistant books a drop of a `total_increasing` sensor as a meter reset: a corrupt
 * low value followed by the true one would add the whole register to the Energy
 * dashboard once more. The guard remembers the last value let through for each energy
 * register and removes a lower one from the reading (equal values pass). It starts over
 * when the meter changes (another meter id or system title), since a new meter starts
 * from its own count.
 *
 * @module
 */

import { type NamedKey, namedValueFor } from "../cosem/obis.ts";
import type { Reading } from "../cosem/reading.ts";

/** The named values that are cumulative registers. */
export const ENERGY_KEYS: readonly NamedKey[] = [
  "energy_import_wh",
  "energy_export_wh",
  "reactive_energy_import_varh",
  "reactive_energy_export_varh",
];

/** What {@link EnergyGuard.filter} returns. */
export interface GuardResult {
  /** The reading without the registers that went backwards (the same object if none did). */
  readonly reading: Reading;
  /** One line per removed register: `energy_import_wh went back from 1200 to 1000`. */
  readonly dropped: string[];
}

/** Drops energy registers that are lower than the last value let through. */
export class EnergyGuard {
  #last = new Map<NamedKey, number>();
  #meterId: string | null = null;
  #systemTitle: string | null = null;

  /** Filters one reading and remembers its energy registers. */
  filter(r: Reading): GuardResult {
    // Some meters send their id in only some of their lists: compare each identity with
    // its own last value, never an id with a missing one.
    const newMeter =
      (r.meter_id !== null && this.#meterId !== null && r.meter_id !== this.#meterId) ||
      (r.system_title !== null && this.#systemTitle !== null &&
        r.system_title !== this.#systemTitle);
    if (newMeter) this.#last.clear();
    if (r.meter_id !== null) this.#meterId = r.meter_id;
    if (r.system_title !== null) this.#systemTitle = r.system_title;
    const dropped: string[] = [];
    const droppedKeys = new Set<NamedKey>();
    for (const key of ENERGY_KEYS) {
      const v = r.values[key];
      if (v === undefined || !Number.isFinite(v)) continue;
      const last = this.#last.get(key);
      if (last !== undefined && v < last) {
        dropped.push(`${key} went back from ${last} to ${v}`);
        droppedKeys.add(key);
      } else {
        this.#last.set(key, v);
      }
    }
    if (droppedKeys.size === 0) return { reading: r, dropped };
    const values = { ...r.values };
    for (const key of droppedKeys) delete values[key];
    const obis = Object.fromEntries(
      Object.entries(r.obis).filter(([code]) => {
        const named = namedValueFor(code);
        return named === undefined || !droppedKeys.has(named.key);
      }),
    );
    return { reading: { ...r, values, obis }, dropped };
  }

  /** Forgets every remembered register. */
  reset(): void {
    this.#last.clear();
    this.#meterId = null;
    this.#systemTitle = null;
  }
}

/**
 * The reading: what one telegram says, in named values and OBIS registers.
 *
 * @module
 */

import type { NamedKey, NamedValues } from "./obis.ts";

/** One register as the meter sent it, scaled to its unit. */
export interface Register {
  /** `A-B:C.D.E`, see {@link formatObis}. */
  readonly obis: string;
  /** Scaled number, or text for identifiers and strings. */
  readonly value: number | string;
  /** Unit symbol (`Wh`, `W`, `V`, `A`, `varh`, `var`, `Hz`, `°`, …) or null. */
  readonly unit: string | null;
  /**
   * The named value this register feeds when its OBIS code alone does not say: a
   * profile's rule (Netz OÖ AMIS sends reactive energy as tariff 1, 3.8.1 and 4.8.1).
   */
  readonly named?: NamedKey;
}

/** What the COSEM layer found in a notification body. */
export interface Interpretation {
  /** Which layout matched: `obis-tagged`, `push-object-list`, `dsmr`, or a profile name. */
  readonly layout: string;
  /** ISO 8601 local time of the measurement, offset only where the meter sent one. */
  readonly time: string | null;
  readonly meterId: string | null;
  readonly registers: readonly Register[];
}

/** A decoded telegram (DESIGN.md "reading"). */
export interface Reading {
  readonly time: string | null;
  readonly meter_id: string | null;
  /** System title as lower-case hex, null for unencrypted telegrams without one. */
  readonly system_title: string | null;
  readonly frame_counter: number | null;
  readonly values: NamedValues;
  /** Manufacturer and model, where the telegram's header names them (OMS). */
  readonly manufacturer?: string;
  readonly model?: string;
  readonly obis: Readonly<
    Record<string, { readonly value: number | string; readonly unit: string | null }>
  >;
}

/**
 * The reading: what one telegram says, in named values and OBIS registers.
 *
 * Every number carries where its scale (its power of ten and its unit) came from: the
 * telegram, a named rule (`scale.ts`), or nothing. Only the first two become named values;
 * see `build.ts` and `consistency.ts` for what is withheld and why.
 *
 * @module
 */

import type { AxdrValue } from "../dlms/axdr.ts";
import type { NamedKey, NamedValues } from "./obis.ts";

/** Where a number's scale (its power of ten and its unit) comes from. */
export type Scale =
  /** The telegram says it: a `{scaler, unit}` the meter sent, or a unit written in DSMR text. */
  | { readonly from: "telegram" }
  /** A named rule (`SCALE_RULES` in scale.ts): a positional layout or a scaler table. */
  | { readonly from: "rule"; readonly rule: string }
  /** Nothing settles it: the value is the raw register, which stays only in `obis`. */
  | { readonly from: "unknown"; readonly why: string }
  /** Not a physical quantity (a counter, a number used as an id): taken as sent. */
  | { readonly from: "none" };

/** One register as the meter sent it, scaled to its unit. */
export interface Register {
  /** `A-B:C.D.E`, see {@link formatObis}. */
  readonly obis: string;
  /** Scaled number, or text for identifiers and strings. */
  readonly value: number | string;
  /** Unit symbol (`Wh`, `W`, `V`, `A`, `varh`, `var`, `Hz`, `°`, …) or null. */
  readonly unit: string | null;
  /** For numbers: where the scale came from. Absent: the unit given is the meter's own. */
  readonly scale?: Scale;
  /** For numbers: the value before scaling, where it was scaled by a rule or not at all. */
  readonly raw?: number;
  /** For numbers: one step of the register's resolution, in `unit` (10^scaler). */
  readonly resolution?: number;
  /** The A-XDR value the register was read from (for `decode --explain`). */
  readonly node?: AxdrValue;
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
  /** The meter's model where the layout or the meter tells it (`E450`, `MA304H3E`). */
  readonly model?: string | null;
  readonly registers: readonly Register[];
  /** Why the layouts tried before the one that matched did not fit (for `--explain`). */
  readonly tried?: readonly string[];
  /** What else is worth knowing about how the body was read (for `--explain`). */
  readonly notes?: readonly string[];
}

/** Named values left out of a reading, and why. */
export interface Withheld {
  readonly keys: readonly NamedKey[];
  /** Sentence case, with the values involved. */
  readonly reason: string;
}

/**
 * How `obis` marks a number that is not a named value's source: `unknown` when no rule
 * settles its scale, `doubtful` when the rule's scaling failed the consistency check. Both
 * show the raw register.
 */
export type ObisScaleMark = "unknown" | "doubtful";

/** One register in a reading's `obis`. */
export interface ObisEntry {
  readonly value: number | string;
  readonly unit: string | null;
  readonly scale?: ObisScaleMark;
}

/** A decoded telegram (DESIGN.md "reading"). */
export interface Reading {
  readonly time: string | null;
  readonly meter_id: string | null;
  /** The meter's model where the telegram tells it; absent in readings made by hand. */
  readonly model?: string | null;
  /** The manufacturer, where the telegram's header names it (OMS: `SAM` is Siemens). */
  readonly manufacturer?: string;
  /** System title as lower-case hex, null for unencrypted telegrams without one. */
  readonly system_title: string | null;
  readonly frame_counter: number | null;
  readonly values: NamedValues;
  readonly obis: Readonly<Record<string, ObisEntry>>;
  /** Named values this telegram had but that are not published, with the reason. */
  readonly withheld?: readonly Withheld[];
}

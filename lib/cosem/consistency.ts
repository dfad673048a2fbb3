/**
 * The consistency check of readings scaled by a rule rather than by the telegram. A scale
 * rule read wrong for one meter (a model that sends 0.1 V where its family sends V, a
 * current in mA read as 0.01 A) gives numbers that do not fit together. Each check below
 * involves at least one named value scaled by a rule; when it fails, the rule-scaled values
 * involved are withheld and the reason names the values. Values the telegram scaled are
 * never withheld: they are the meter's own word.
 *
 * | check | holds when |
 * |---|---|
 * | voltage range | a voltage is 0 (phase absent) or 50–1000 V (above extra-low voltage, at most low voltage, IEC 60449) |
 * | power factor range | −1 ≤ power factor ≤ 1 |
 * | apparent power | active power (import + export) ≤ Σ U·I over the phases that send a current, with each register's last digit of tolerance and 2 % more; a phase without a voltage (or with 0 V) counts 230 V + 10 % (EN 50160) |
 * | power factor under load | from 300 W of active power, P / Σ U·I > 0.1 (with the tolerances the other way, and 230 V − 10 %) |
 *
 * The bounds are on ratios, never on amps or watts: meters behind current transformers carry
 * hundreds of amps, and a current read 100 times too large still shows as a power factor
 * of a hundredth.
 *
 * @module
 */

import type { NamedKey } from "./obis.ts";
import type { Withheld } from "./reading.ts";

/** One named value as the check sees it. */
export interface CheckedValue {
  readonly value: number;
  /** Whether a rule (not the telegram) gave its scale. */
  readonly ruleScaled: boolean;
  /** One step of its resolution (0 when unknown). */
  readonly resolution: number;
}

export const NOMINAL_VOLTAGE = 230;
/** EN 50160: supply voltage within ±10 % of nominal. */
const VOLTAGE_TOLERANCE = 0.1;
/** IEC 60449: extra-low voltage is at most 50 V AC, low voltage at most 1000 V AC. */
const EXTRA_LOW_VOLTAGE = 50;
const LOW_VOLTAGE_MAX = 1000;
/** Extra tolerance for values sampled a moment apart. */
const RELATIVE_SLACK = 0.02;
/** Active power from which the implied power factor is checked, W. */
export const LOAD_FOR_POWER_FACTOR = 300;
/** Lowest plausible power factor under that load. */
export const LOWEST_POWER_FACTOR = 0.1;

const PHASES: readonly (readonly [NamedKey, NamedKey])[] = [
  ["voltage_l1_v", "current_l1_a"],
  ["voltage_l2_v", "current_l2_a"],
  ["voltage_l3_v", "current_l3_a"],
];
const POWERS: readonly NamedKey[] = ["power_import_w", "power_export_w"];

const fmt = (n: number) => String(Math.round(n * 1000) / 1000);

/** The named values the checks read. */
export const CHECKED_KEYS: ReadonlySet<NamedKey> = new Set<NamedKey>([
  ...PHASES.flat(),
  ...POWERS,
  "power_factor",
]);

/** Values that fail the checks, to be withheld, each with the reason. */
export function checkConsistency(named: ReadonlyMap<NamedKey, CheckedValue>): Withheld[] {
  const out: Withheld[] = [];
  const doubtful = new Set<NamedKey>();
  const withhold = (keys: NamedKey[], reason: string) => {
    const rule = keys.filter((k) => named.get(k)?.ruleScaled && !doubtful.has(k));
    if (rule.length === 0) return;
    for (const k of rule) doubtful.add(k);
    out.push({ keys: rule, reason });
  };

  // Ranges.
  let badVoltages: NamedKey[] | null = null;
  for (const [k] of PHASES) {
    const v = named.get(k);
    if (!v?.ruleScaled) continue;
    const u = Math.abs(v.value);
    if (u !== 0 && (u + v.resolution < EXTRA_LOW_VOLTAGE || u - v.resolution > LOW_VOLTAGE_MAX)) {
      (badVoltages ??= []).push(k);
    }
  }
  if (badVoltages !== null) {
    withhold(
      badVoltages,
      `Voltage out of range: ${
        badVoltages.map((k) => `${k} ${fmt(named.get(k)!.value)} V`).join(", ")
      } is neither 0 nor within ${EXTRA_LOW_VOLTAGE}–${LOW_VOLTAGE_MAX} V, so the scale rule does not fit this meter`,
    );
  }
  const pf = named.get("power_factor");
  if (pf?.ruleScaled && Math.abs(pf.value) - pf.resolution > 1) {
    withhold(
      ["power_factor"],
      `Power factor out of range: power_factor ${
        fmt(pf.value)
      } is beyond ±1, so the scale rule does not fit this meter`,
    );
  }

  // Active power against the apparent power of the phases.
  let p = 0;
  let pTolerance = 0;
  let powers = 0;
  let anyRule = false;
  for (const k of POWERS) {
    const v = named.get(k);
    if (v === undefined) continue;
    powers++;
    p += Math.abs(v.value);
    pTolerance += v.resolution;
    anyRule ||= v.ruleScaled;
  }
  if (powers === 0) return out;
  let phases = 0;
  let upper = 0;
  let lower = 0;
  for (const [uKey, iKey] of PHASES) {
    const i = named.get(iKey);
    if (i === undefined) continue;
    phases++;
    anyRule ||= i.ruleScaled;
    const amps = Math.abs(i.value);
    const u = voltageOf(named, doubtful, uKey);
    if (u !== undefined) anyRule ||= u.ruleScaled;
    const volts = u === undefined ? 0 : Math.abs(u.value);
    const uHigh = u === undefined
      ? NOMINAL_VOLTAGE * (1 + VOLTAGE_TOLERANCE)
      : volts + u.resolution;
    const uLow = u === undefined
      ? NOMINAL_VOLTAGE * (1 - VOLTAGE_TOLERANCE)
      : Math.max(0, volts - u.resolution);
    upper += uHigh * (amps + i.resolution);
    lower += uLow * Math.max(0, amps - i.resolution);
  }
  if (phases === 0 || !anyRule) return out;
  if (p - pTolerance > upper * (1 + RELATIVE_SLACK)) {
    const { involved, pText, apparent } = describe(named, doubtful, p);
    withhold(
      involved,
      `Active power above the apparent power: ${pText} exceeds ${apparent} ≈ ${
        fmt(upper)
      } VA at most, so a scale rule does not fit this meter`,
    );
  } else if (
    p - pTolerance >= LOAD_FOR_POWER_FACTOR && lower > 0 &&
    (p + pTolerance) * (1 + RELATIVE_SLACK) / lower < LOWEST_POWER_FACTOR
  ) {
    const { involved, pText, apparent } = describe(named, doubtful, p);
    withhold(
      involved,
      `Implausible power factor: ${pText} against ${apparent} ≈ ${fmt(lower)} VA at least gives ${
        fmt(p / lower)
      }, below ${LOWEST_POWER_FACTOR} under load, so a scale rule does not fit this meter`,
    );
  }
  return out;
}

/** A phase's voltage, unless it is absent, 0 or withheld (then the nominal one counts). */
function voltageOf(
  named: ReadonlyMap<NamedKey, CheckedValue>,
  doubtful: ReadonlySet<NamedKey>,
  key: NamedKey,
): CheckedValue | undefined {
  const u = doubtful.has(key) ? undefined : named.get(key);
  return u === undefined || u.value === 0 ? undefined : u;
}

/** The keys a failed power comparison involves, and its values as text. */
function describe(
  named: ReadonlyMap<NamedKey, CheckedValue>,
  doubtful: ReadonlySet<NamedKey>,
  p: number,
): { involved: NamedKey[]; pText: string; apparent: string } {
  const powers = POWERS.filter((k) => named.has(k));
  const involved: NamedKey[] = [...powers];
  const terms: string[] = [];
  for (const [uKey, iKey] of PHASES) {
    const i = named.get(iKey);
    if (i === undefined) continue;
    involved.push(iKey);
    const u = voltageOf(named, doubtful, uKey);
    if (u !== undefined) involved.push(uKey);
    const uText = u === undefined ? `${NOMINAL_VOLTAGE} V nominal` : `${fmt(Math.abs(u.value))} V`;
    terms.push(`${uText} × ${fmt(Math.abs(i.value))} A`);
  }
  return {
    involved,
    pText: `active power ${fmt(p)} W (${
      powers.map((k) => `${k} ${fmt(named.get(k)!.value)}`).join(", ")
    })`,
    apparent: `Σ U·I = ${terms.join(" + ")}`,
  };
}

/**
 * Energy registers never go backwards in what we publish, and never leap further than the
 * meter could have counted.
 *
 * Home Assistant books a drop of a `total_increasing` sensor as a meter reset and counts
 * the whole register again; a leap is booked as consumption. Both corrupt the Energy
 * dashboard for good. So each energy register is let through only when it is plausible
 * against the last value let through (its *baseline*):
 *
 * ```
 *   new value v, baseline b at time tb, reading at time t, power bound P (W):
 *
 *   b ≤ v ≤ b + P·(t − tb + slack) + resolution      published; v is the new baseline
 *   v > that                                           a leap: held back until the next
 *                                                      telegrams confirm it (they continue
 *                                                      from v) or refute it (they continue
 *                                                      from b: v was a glitch)
 *   v < b                                              a drop: held back; a run of lower
 *                                                      readings that rise consistently among
 *                                                      themselves for a while becomes the
 *                                                      new baseline (a bad high value was
 *                                                      published once, say before this
 *                                                      guard existed), with one warning
 * ```
 *
 * P is a generous maximum for a house connection ({@link MAX_POWER_W}), or twice the power
 * the meter itself reports for that direction when that is more (meters behind current
 * transformers carry hundreds of kilowatts). The guard starts over when the meter changes
 * (another meter id or system title): a new meter starts from its own count.
 *
 * Pure: the caller passes the wall-clock time of each reading. The baselines survive
 * restarts through {@link EnergyGuard.toJSON} / {@link EnergyGuard.fromJSON}; what is held
 * back does not (it is a matter of seconds).
 *
 * @module
 */

import { type NamedKey, namedValueFor } from "../cosem/obis.ts";
import type { Reading } from "../cosem/reading.ts";

/** The named values that are cumulative registers, each with the power that feeds it. */
export const ENERGY_REGISTERS: readonly { energy: NamedKey; power: NamedKey }[] = [
  { energy: "energy_import_wh", power: "power_import_w" },
  { energy: "energy_export_wh", power: "power_export_w" },
  { energy: "reactive_energy_import_varh", power: "reactive_power_import_var" },
  { energy: "reactive_energy_export_varh", power: "reactive_power_export_var" },
];

/** The named values that are cumulative registers. */
export const ENERGY_KEYS: readonly NamedKey[] = ENERGY_REGISTERS.map((r) => r.energy);

/**
 * Power no house connection exceeds, W: a large Austrian connection is 3 × 63 A at
 * 230 V (43.5 kW); this leaves more than twice that.
 */
export const MAX_POWER_W = 100_000;
/** Time added to the interval between two readings (a push delayed, clocks apart), ms. */
const SLACK_MS = 10_000;
/** Register steps that any meter may make at once (its resolution), Wh or varh. */
const RESOLUTION = 100;
/** Readings that continue from a held leap before it is published. */
export const CONFIRMATIONS = 2;
/** A run of lower readings becomes the new baseline after this many readings … */
export const REBASELINE_READINGS = 5;
/** … spanning at least this long, ms. */
export const REBASELINE_MS = 30_000;

/** What the guard did with a register, for the log (one event per episode, not per reading). */
export type GuardEvent =
  | { kind: "leap-held"; key: NamedKey; from: number; to: number; seconds: number; bound: number }
  | { kind: "leap-confirmed"; key: NamedKey; from: number; to: number }
  | { kind: "leap-refuted"; key: NamedKey; value: number; baseline: number }
  | { kind: "drop-held"; key: NamedKey; from: number; to: number }
  | { kind: "drop-ended"; key: NamedKey; baseline: number; withheld: number }
  | { kind: "rebaselined"; key: NamedKey; from: number; to: number; readings: number };

/** What {@link EnergyGuard.filter} returns. */
export interface GuardResult {
  /** The reading without the registers held back (the same object if none was). */
  readonly reading: Reading;
  /** Registers held back from this reading. */
  readonly held: readonly NamedKey[];
  /** What changed: a hold began, was confirmed, refuted or ended. */
  readonly events: readonly GuardEvent[];
}

/** A register's last published value. */
interface Baseline {
  value: number;
  /** Wall-clock time of the reading, ms since the epoch. */
  at: number;
  /** The power the meter reported with it, if any. */
  power: number | null;
}

/** A leap waiting for confirmation, or a run of lower readings. */
interface Pending {
  kind: "leap" | "drop";
  /** The newest value of the episode and its time. */
  value: number;
  at: number;
  power: number | null;
  /** Readings that continued the episode consistently (the first one counts). */
  readings: number;
  since: number;
}

/** The guard's state as JSON (the baselines only). */
export interface EnergyGuardState {
  meter_id: string | null;
  system_title: string | null;
  registers: Partial<Record<NamedKey, { value: number; at: number }>>;
}

/** The most a register may grow from `from` to a reading at `at` with power `power`. */
function growthBound(from: Baseline | Pending, at: number, power: number | null): number {
  const watts = Math.max(MAX_POWER_W, 2 * Math.max(from.power ?? 0, power ?? 0));
  const hours = (Math.max(0, at - from.at) + SLACK_MS) / 3_600_000;
  return watts * hours + RESOLUTION;
}

/** Whether `value` at `at` continues plausibly from `from`. */
function continues(from: Baseline | Pending, value: number, at: number, power: number | null) {
  return value >= from.value && value - from.value <= growthBound(from, at, power);
}

/** Holds back energy registers that went backwards or leapt further than possible. */
export class EnergyGuard {
  #baselines = new Map<NamedKey, Baseline>();
  #pending = new Map<NamedKey, Pending>();
  #meterId: string | null = null;
  #systemTitle: string | null = null;

  /** Filters one reading taken at `atMs` (wall clock, ms since the epoch). */
  filter(r: Reading, atMs: number): GuardResult {
    // Some meters send their id in only some of their lists: compare each identity with
    // its own last value, never an id with a missing one.
    const newMeter =
      (r.meter_id !== null && this.#meterId !== null && r.meter_id !== this.#meterId) ||
      (r.system_title !== null && this.#systemTitle !== null &&
        r.system_title !== this.#systemTitle);
    if (newMeter) {
      this.#baselines.clear();
      this.#pending.clear();
    }
    if (r.meter_id !== null) this.#meterId = r.meter_id;
    if (r.system_title !== null) this.#systemTitle = r.system_title;
    const held: NamedKey[] = [];
    const events: GuardEvent[] = [];
    for (const { energy: key, power: powerKey } of ENERGY_REGISTERS) {
      const v = r.values[key];
      if (v === undefined || !Number.isFinite(v)) continue;
      const p = r.values[powerKey];
      const power = p !== undefined && Number.isFinite(p) ? Math.abs(p) : null;
      if (!this.#judge(key, v, atMs, power, events)) held.push(key);
    }
    if (held.length === 0) return { reading: r, held, events };
    const values = { ...r.values };
    for (const key of held) delete values[key];
    const obis = Object.fromEntries(
      Object.entries(r.obis).filter(([code]) => {
        const named = namedValueFor(code);
        return named === undefined || !held.includes(named.key);
      }),
    );
    return { reading: { ...r, values, obis }, held, events };
  }

  /** Decides one register; true when `v` is published. */
  #judge(
    key: NamedKey,
    v: number,
    at: number,
    power: number | null,
    events: GuardEvent[],
  ): boolean {
    const base = this.#baselines.get(key);
    const accept = () => {
      this.#baselines.set(key, { value: v, at, power });
      this.#pending.delete(key);
      return true;
    };
    if (base === undefined) return accept();
    const pending = this.#pending.get(key);
    const fromBase = continues(base, v, at, power);

    if (pending?.kind === "leap") {
      if (continues(pending, v, at, power)) {
        Object.assign(pending, { value: v, at, power, readings: pending.readings + 1 });
        if (pending.readings <= CONFIRMATIONS) return false;
        events.push({ kind: "leap-confirmed", key, from: base.value, to: v });
        return accept();
      }
      if (fromBase) {
        events.push({ kind: "leap-refuted", key, value: pending.value, baseline: base.value });
        return accept();
      }
      this.#pending.delete(key); // neither: judged afresh below
    } else if (pending?.kind === "drop") {
      if (v < base.value) {
        if (continues(pending, v, at, power)) {
          Object.assign(pending, { value: v, at, power, readings: pending.readings + 1 });
        } else {
          Object.assign(pending, { value: v, at, power, readings: 1, since: at });
        }
        if (pending.readings < REBASELINE_READINGS || at - pending.since < REBASELINE_MS) {
          return false;
        }
        events.push({
          kind: "rebaselined",
          key,
          from: base.value,
          to: v,
          readings: pending.readings,
        });
        return accept();
      }
      if (fromBase) {
        events.push({ kind: "drop-ended", key, baseline: base.value, withheld: pending.readings });
        return accept();
      }
      this.#pending.delete(key); // past the baseline, but by a leap: judged afresh below
    }

    if (fromBase) return accept();
    if (v < base.value) {
      events.push({ kind: "drop-held", key, from: base.value, to: v });
      this.#pending.set(key, { kind: "drop", value: v, at, power, readings: 1, since: at });
      return false;
    }
    events.push({
      kind: "leap-held",
      key,
      from: base.value,
      to: v,
      seconds: Math.round((at - base.at) / 1000),
      bound: Math.round(growthBound(base, at, power)),
    });
    this.#pending.set(key, { kind: "leap", value: v, at, power, readings: 1, since: at });
    return false;
  }

  /** The baselines, for the state file (nothing secret). */
  toJSON(): EnergyGuardState {
    const registers: EnergyGuardState["registers"] = {};
    for (const [key, b] of this.#baselines) registers[key] = { value: b.value, at: b.at };
    return { meter_id: this.#meterId, system_title: this.#systemTitle, registers };
  }

  /**
   * A guard with the baselines of {@link toJSON}. Values that are not what `toJSON` writes
   * are left out.
   * @throws {TypeError} when `data` is not an object of that shape at all
   */
  static fromJSON(data: unknown): EnergyGuard {
    if (typeof data !== "object" || data === null || Array.isArray(data)) {
      throw new TypeError("energy guard state must be an object");
    }
    const d = data as Record<string, unknown>;
    const text = (v: unknown) => typeof v === "string" ? v : null;
    const guard = new EnergyGuard();
    guard.#meterId = text(d.meter_id);
    guard.#systemTitle = text(d.system_title);
    const registers = d.registers;
    if (typeof registers !== "object" || registers === null) {
      throw new TypeError("energy guard state has no registers object");
    }
    for (const key of ENERGY_KEYS) {
      const entry = (registers as Record<string, unknown>)[key];
      if (typeof entry !== "object" || entry === null) continue;
      const { value, at } = entry as Record<string, unknown>;
      if (typeof value !== "number" || !Number.isFinite(value)) continue;
      if (typeof at !== "number" || !Number.isFinite(at)) continue;
      guard.#baselines.set(key, { value, at, power: null });
    }
    return guard;
  }

  /** Forgets every baseline. */
  reset(): void {
    this.#baselines.clear();
    this.#pending.clear();
    this.#meterId = null;
    this.#systemTitle = null;
  }
}

/** One line for the log about a guard event. */
export function describeGuardEvent(e: GuardEvent): string {
  switch (e.kind) {
    case "leap-held":
      return `Energy register ${e.key} leapt from ${e.from} to ${e.to} in ${e.seconds} s, ` +
        `more than the meter can count in that time (at most ${e.bound}): held back until ` +
        `the next telegrams confirm it`;
    case "leap-confirmed":
      return `Energy register ${e.key}: the leap from ${e.from} to ${e.to} was confirmed by ` +
        `the following telegrams and is published`;
    case "leap-refuted":
      return `Energy register ${e.key}: the value ${e.value} was a glitch (the following ` +
        `telegrams continue from ${e.baseline}) and was never published`;
    case "drop-held":
      return `Energy register ${e.key} went back from ${e.from} to ${e.to}: held back; ` +
        `published again when it passes ${e.from}`;
    case "drop-ended":
      return `Energy register ${e.key} is past ${e.baseline} again and published ` +
        `(${e.withheld} lower reading(s) were held back)`;
    case "rebaselined":
      return `Energy register ${e.key} has read lower than the last published value ` +
        `${e.from} for ${e.readings} telegrams in a row: ${e.to} is taken as the true value. ` +
        `A wrong high value was published before; Home Assistant books this drop as a ` +
        `meter reset, which may need a correction in its energy statistics`;
  }
}

/**
 * Energy imported and exported today, since local midnight, from the meter's own
 * registers: the register now minus the register at midnight. Memory only.
 *
 * The register at midnight is the last reading before it, when that came at most
 * {@link MIDNIGHT_SLACK_MS} before midnight; otherwise (the program started during the day,
 * or the meter was silent over midnight) the first reading of the day, and the figures say
 * since when they count.
 *
 * @module
 */

/** How old the last reading before midnight may be to stand for the register at midnight. */
export const MIDNIGHT_SLACK_MS = 5 * 60_000;

/** Today's figures. */
export interface TodayEnergy {
  /** Local date, YYYY-MM-DD. */
  readonly date: string;
  /** ms since the epoch the figures count from: local midnight, or the first reading. */
  readonly sinceMs: number;
  /** Whether they count from midnight (false: from the first reading today). */
  readonly fromMidnight: boolean;
  readonly importWh: number | null;
  readonly exportWh: number | null;
}

interface Registers {
  readonly importWh: number | undefined;
  readonly exportWh: number | undefined;
}

/** Local calendar date of `ms` (the process's time zone), YYYY-MM-DD. */
export function localDate(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** ms since the epoch of the local midnight that starts the day of `ms`. */
export function localMidnight(ms: number): number {
  const d = new Date(ms);
  return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
}

/** Follows the energy registers through the day. */
export class DayEnergy {
  #date: string | null = null;
  #sinceMs = 0;
  #fromMidnight = false;
  #base: Registers = { importWh: undefined, exportWh: undefined };
  #last: (Registers & { ms: number }) | null = null;
  #now: Registers = { importWh: undefined, exportWh: undefined };

  /** Takes the registers of a reading received at `ms` (either may be missing). */
  update(ms: number, importWh: number | undefined, exportWh: number | undefined): void {
    const date = localDate(ms);
    if (date !== this.#date) {
      const midnight = localMidnight(ms);
      const last = this.#last;
      if (last !== null && midnight - last.ms <= MIDNIGHT_SLACK_MS && last.ms < midnight) {
        this.#base = { importWh: last.importWh, exportWh: last.exportWh };
        this.#sinceMs = midnight;
        this.#fromMidnight = true;
      } else {
        this.#base = { importWh, exportWh };
        this.#sinceMs = ms;
        this.#fromMidnight = false;
      }
      this.#date = date;
    }
    // A register seen for the first time today, or one that went back (a new meter):
    // count from here.
    if (importWh !== undefined && !(importWh >= (this.#base.importWh ?? Infinity))) {
      this.#base = { ...this.#base, importWh };
    }
    if (exportWh !== undefined && !(exportWh >= (this.#base.exportWh ?? Infinity))) {
      this.#base = { ...this.#base, exportWh };
    }
    this.#now = { importWh, exportWh };
    this.#last = { importWh, exportWh, ms };
  }

  /** Today's figures; null before the first reading. */
  get(): TodayEnergy | null {
    if (this.#date === null) return null;
    const diff = (now: number | undefined, base: number | undefined) =>
      now === undefined || base === undefined ? null : now - base;
    return {
      date: this.#date,
      sinceMs: this.#sinceMs,
      fromMidnight: this.#fromMidnight,
      importWh: diff(this.#now.importWh, this.#base.importWh),
      exportWh: diff(this.#now.exportWh, this.#base.exportWh),
    };
  }
}

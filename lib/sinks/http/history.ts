/**
 * The last hour of import and export power, for the page's plot: a ring buffer in memory,
 * never written anywhere (the grid operators' rules for customer interface adapters forbid
 * keeping a history in the adapter).
 *
 * ```
 *  time (s) │ t0 │ t1 │ … │ t3599 │   three Float64Arrays of CAPACITY, written round
 *  import W │    │    │   │       │   and round; points older than the window are
 *  export W │    │    │   │       │   left out when read
 * ```
 *
 * Bounded by count as well as age: a meter that pushed more often than once a second
 * would shorten the window, never grow the memory.
 *
 * @module
 */

/** Points kept: an hour of once-a-second pushes (DSMR meters), 84 KiB in all. */
export const HISTORY_CAPACITY = 3600;
/** The plot's window, seconds. */
export const HISTORY_WINDOW_S = 3600;

/** The plot's data as uPlot takes it: times (s since the epoch), import W, export W. */
export type HistoryColumns = [number[], (number | null)[], (number | null)[]];

/** Import/export power over the last hour. */
export class PowerHistory {
  readonly #t: Float64Array;
  readonly #import: Float64Array;
  readonly #export: Float64Array;
  #next = 0;
  #size = 0;

  constructor(readonly capacity = HISTORY_CAPACITY, readonly windowS = HISTORY_WINDOW_S) {
    this.#t = new Float64Array(capacity);
    this.#import = new Float64Array(capacity);
    this.#export = new Float64Array(capacity);
  }

  /** Points held (some may be older than the window until they are overwritten). */
  get size(): number {
    return this.#size;
  }

  /** Adds a point; a missing value is NaN (a gap in the plot). */
  push(timeS: number, importW: number | undefined, exportW: number | undefined): void {
    this.#t[this.#next] = timeS;
    this.#import[this.#next] = importW ?? NaN;
    this.#export[this.#next] = exportW ?? NaN;
    this.#next = (this.#next + 1) % this.capacity;
    if (this.#size < this.capacity) this.#size++;
  }

  /** The points of the window ending at `nowS`, oldest first. */
  columns(nowS: number): HistoryColumns {
    const from = nowS - this.windowS;
    const out: HistoryColumns = [[], [], []];
    const start = (this.#next - this.#size + this.capacity) % this.capacity;
    for (let i = 0; i < this.#size; i++) {
      const at = (start + i) % this.capacity;
      const t = this.#t[at]!;
      if (t < from) continue;
      out[0].push(t);
      out[1].push(orNull(this.#import[at]!));
      out[2].push(orNull(this.#export[at]!));
    }
    return out;
  }
}

function orNull(n: number): number | null {
  return Number.isNaN(n) ? null : n;
}

/**
 * Replay check of the invocation counter (frame counter) of ciphered frames.
 *
 * The invocation counter is half of the GCM nonce, so a sender must never reuse one under
 * the same key: each system title's counter must strictly increase (Green Book §9.2.7.2.4).
 * A repeat or a step back means a replayed or injected frame, and the frame is dropped.
 *
 * Call {@link CounterGuard.check} only after the frame decrypted (and, where a tag is
 * checked, authenticated): otherwise one forged frame with a huge counter would lock out
 * every genuine frame that follows.
 *
 * The counters survive restarts through {@link CounterGuard.toJSON} and
 * {@link CounterGuard.fromJSON} (the daemon keeps them in its state file): otherwise a
 * restart would accept an old frame once more.
 *
 * @module
 */

import { ParseError } from "../errors.ts";

/** Default number of system titles remembered. One meter per port is the usual case. */
export const DEFAULT_MAX_TITLES = 16;

/** Remembers the last accepted counter of each system title (least recently seen evicted). */
export class CounterGuard {
  readonly #maxTitles: number;
  /** Insertion order is recency order: an accepted title is moved to the end. */
  readonly #last = new Map<string, number>();

  /** @param maxTitles how many system titles to remember (at least 1) */
  constructor(maxTitles = DEFAULT_MAX_TITLES) {
    this.#maxTitles = Math.max(1, Math.floor(maxTitles));
  }

  /** Number of system titles remembered. */
  get size(): number {
    return this.#last.size;
  }

  /** The last accepted counter of a system title, if it was seen. */
  last(systemTitleHex: string): number | undefined {
    return this.#last.get(systemTitleHex);
  }

  /**
   * Accepts `counter` if it is larger than the last one of this system title (or the first
   * one seen), and remembers it.
   * @throws {ParseError} (layer "counter") on a repeat or a step back
   */
  check(systemTitleHex: string, counter: number): void {
    const last = this.#last.get(systemTitleHex);
    if (last !== undefined) {
      if (counter <= last) {
        throw new ParseError(
          "counter",
          0,
          `Replayed frame counter: ${counter} after ${last} from system title ` +
            `${systemTitleHex}: frame dropped`,
        );
      }
      this.#last.delete(systemTitleHex);
    } else if (this.#last.size >= this.#maxTitles) {
      const oldest = this.#last.keys().next().value;
      if (oldest !== undefined) this.#last.delete(oldest);
    }
    this.#last.set(systemTitleHex, counter);
  }

  /** The last counter of each system title, least recently seen first (for the state file). */
  toJSON(): Record<string, number> {
    return Object.fromEntries(this.#last);
  }

  /**
   * A guard that remembers the counters of {@link toJSON}. Entries that are not a
   * 16-hex-digit title with a whole counter are left out.
   * @throws {TypeError} when `data` is not an object
   */
  static fromJSON(data: unknown, maxTitles = DEFAULT_MAX_TITLES): CounterGuard {
    if (typeof data !== "object" || data === null || Array.isArray(data)) {
      throw new TypeError("frame counter state must be an object");
    }
    const guard = new CounterGuard(maxTitles);
    for (const [title, counter] of Object.entries(data)) {
      if (!/^[0-9a-f]{16}$/.test(title)) continue;
      if (typeof counter !== "number" || !Number.isSafeInteger(counter) || counter < 0) continue;
      if (guard.#last.size >= guard.#maxTitles) {
        const oldest = guard.#last.keys().next().value;
        if (oldest !== undefined) guard.#last.delete(oldest);
      }
      guard.#last.set(title, counter);
    }
    return guard;
  }
}

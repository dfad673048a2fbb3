/**
 * Replay check of OMS telegrams, by the access number and the meter's own clock.
 *
 * The access number is 8 bits: it wraps after 256 telegrams (four minutes of AMIS data), and
 * a meter that restarts may begin it anywhere. Alone it cannot tell a replayed telegram from
 * a meter that wrapped or restarted. The meter's clock can: every telegram carries the time
 * it was made, to the second, and that time only moves on.
 *
 * ```
 *   per meter address: the access number and clock of the last accepted telegram
 *
 *   clock of both known  clock later                        → accept (wrapped, restarted:
 *                                                              the clock moved on)
 *                        not later, access number = last+1  → accept (the meter's very
 *                                                              next telegram: its clock
 *                                                              was set back)
 *                        otherwise                          → refuse (replayed)
 *   a clock unknown      access number = last               → refuse (the same telegram)
 *                        otherwise                          → accept
 * ```
 *
 * "Clock" is {@link mbusClockSeconds}: summer time counted as standard time, so the hour
 * repeated when summer time ends is no step back. What gets through: an old telegram whose
 * access number happens to be the successor of the last one (1 in 256). The energy guard
 * downstream keeps even that from moving a published energy register back.
 *
 * Call {@link AccessGuard.check} only after the telegram decrypted and its records were
 * read: a damaged telegram must not move the state. The guard is pure and serialisable
 * ({@link AccessGuard.toJSON}, {@link AccessGuard.fromJSON}) so that the state can outlive
 * a restart; it holds no key and nothing secret.
 *
 * @module
 */

import { ParseError } from "../errors.ts";

/** Default number of meter addresses remembered (one meter per port is the usual case). */
export const DEFAULT_MAX_METERS = 16;
/** The access number's modulus. */
const ACCESS_MODULUS = 256;
/** Version of the serialised form. */
const JSON_VERSION = 1;

/** The last accepted telegram of one meter. */
export interface AccessState {
  /** Access number, 0..255. */
  readonly access: number;
  /** The meter's clock in seconds ({@link mbusClockSeconds}), null when it sent none. */
  readonly clock: number | null;
}

/** The serialised form: meters in order of recency, the most recent last. */
export interface AccessGuardJson {
  readonly version: 1;
  readonly meters: Readonly<Record<string, AccessState>>;
}

/** Remembers the last accepted telegram of each meter address (least recently seen evicted). */
export class AccessGuard {
  readonly #maxMeters: number;
  /** Insertion order is recency order: an accepted address is moved to the end. */
  readonly #last = new Map<string, AccessState>();

  /** @param maxMeters how many meter addresses to remember (at least 1) */
  constructor(maxMeters = DEFAULT_MAX_METERS) {
    this.#maxMeters = Math.max(1, Math.floor(maxMeters));
  }

  /** Number of meter addresses remembered. */
  get size(): number {
    return this.#last.size;
  }

  /** The last accepted telegram of a meter address, if it was seen. */
  last(address: string): AccessState | undefined {
    return this.#last.get(address);
  }

  /**
   * Accepts a telegram and remembers it, or refuses it (see the module documentation).
   * @param address the header's address as hex (the key)
   * @param access the access number, 0..255
   * @param clock the meter's clock in seconds, null when the telegram has no valid time
   * @throws {ParseError} (layer "counter") for a replayed telegram
   */
  check(address: string, access: number, clock: number | null): void {
    if (!Number.isInteger(access) || access < 0 || access >= ACCESS_MODULUS) {
      throw new RangeError(`Bad access number ${access}: must be 0..255`);
    }
    const last = this.#last.get(address);
    if (last !== undefined) {
      const why = refusal(last, access, clock);
      if (why !== null) {
        throw new ParseError(
          "counter",
          0,
          `Replayed OMS telegram from meter address ${address}: access number ${access}, ${why}: frame dropped`,
        );
      }
      this.#last.delete(address);
    } else if (this.#last.size >= this.#maxMeters) {
      const oldest = this.#last.keys().next().value;
      if (oldest !== undefined) this.#last.delete(oldest);
    }
    this.#last.set(address, { access, clock });
  }

  /** The state as plain JSON data (nothing secret in it). */
  toJSON(): AccessGuardJson {
    return { version: JSON_VERSION, meters: Object.fromEntries(this.#last) };
  }

  /**
   * A guard holding the state `toJSON()` gave.
   * @throws {TypeError} when `json` is not such a state (a corrupt file): the caller says
   *   so and starts with an empty guard
   */
  static fromJSON(json: unknown, maxMeters = DEFAULT_MAX_METERS): AccessGuard {
    const bad = (why: string) => new TypeError(`Not an OMS replay guard state: ${why}`);
    if (typeof json !== "object" || json === null) throw bad("not an object");
    const { version, meters } = json as { version?: unknown; meters?: unknown };
    if (version !== JSON_VERSION) throw bad(`version ${JSON.stringify(version)}, expected 1`);
    if (typeof meters !== "object" || meters === null || Array.isArray(meters)) {
      throw bad("no meters");
    }
    const guard = new AccessGuard(maxMeters);
    for (const [address, state] of Object.entries(meters)) {
      const { access, clock } = (state ?? {}) as { access?: unknown; clock?: unknown };
      if (
        typeof access !== "number" || !Number.isInteger(access) || access < 0 ||
        access >= ACCESS_MODULUS
      ) throw bad(`meter ${address}: access number ${JSON.stringify(access)}`);
      if (clock !== null && (typeof clock !== "number" || !Number.isFinite(clock))) {
        throw bad(`meter ${address}: clock ${JSON.stringify(clock)}`);
      }
      guard.#last.delete(address);
      if (guard.#last.size >= guard.#maxMeters) {
        const oldest = guard.#last.keys().next().value;
        if (oldest !== undefined) guard.#last.delete(oldest);
      }
      guard.#last.set(address, { access, clock });
    }
    return guard;
  }
}

/** Why a telegram after `last` is a replay, or null when it is not. */
function refusal(last: AccessState, access: number, clock: number | null): string | null {
  if (clock !== null && last.clock !== null) {
    if (clock > last.clock) return null;
    if ((access - last.access + ACCESS_MODULUS) % ACCESS_MODULUS === 1) return null;
    const behind = last.clock - clock;
    return behind === 0
      ? `the same meter time as the last accepted telegram (access number ${last.access})`
      : `meter time ${behind} s before the last accepted telegram (access number ${last.access})`;
  }
  return access === last.access
    ? `the same as the last accepted telegram, which had no valid meter time`
    : null;
}

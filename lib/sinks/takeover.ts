/**
 * Tells a broker handing our session to another client from an ordinary lost connection.
 *
 * A broker allows one connection per client id: when a second `smartmeter run` with the
 * same config connects (a service plus a manual run, the add-on plus a Pi), the broker
 * closes the first one. Two programs that both reconnect at once would take the session
 * from each other for ever, and Home Assistant would see the device flap between online
 * and offline. The signs:
 *
 * - MQTT 5: the broker's DISCONNECT carries reason code 0x8E, "session taken over";
 * - MQTT 3.1.1: the broker just closes the connection, so a takeover looks like
 *   connections that the broker closes again right after it accepted them, several in a
 *   row.
 *
 * Each sink announces a random instance id on the retained topic `<base>/instance` when it
 * connects. After a takeover (told, or suspected and then seen: the device is "online" under
 * another instance's id) the MQTT sink stops reconnecting on its own and watches those
 * topics with another client id until the other program is gone. A broker that restarts
 * again and again looks like a suspected takeover, but shows no other instance.
 *
 * @module
 */

/** MQTT 5 DISCONNECT reason code "Session taken over". */
export const SESSION_TAKEN_OVER = 0x8e;

export interface TakeoverOptions {
  /** Monotonic clock, ms. */
  now: () => number;
  /** A connection closed within this time after the broker accepted it is short, ms. */
  shortMs?: number;
  /** Short connections in a row that mean another client (MQTT 3.1.1). */
  shortInARow?: number;
}

/** Watches one client's connections for a takeover. */
export class TakeoverDetector {
  readonly #now: () => number;
  readonly #shortMs: number;
  readonly #shortInARow: number;
  #connectedAt: number | null = null;
  #short = 0;
  #toldTakenOver = false;

  constructor(opts: TakeoverOptions) {
    this.#now = opts.now;
    this.#shortMs = opts.shortMs ?? 5_000;
    this.#shortInARow = opts.shortInARow ?? 2;
  }

  /** The broker accepted the connection (CONNACK). */
  connected(): void {
    this.#connectedAt = this.#now();
  }

  /** The broker sent DISCONNECT (MQTT 5) with this reason code. */
  disconnected(reasonCode: number | undefined): void {
    if (reasonCode === SESSION_TAKEN_OVER) this.#toldTakenOver = true;
  }

  /**
   * The connection closed. `told`: the broker said another client took it (MQTT 5);
   * `suspected`: it looks so (MQTT 3.1.1: connections closed again right after they
   * began, which a broker restarting over and over does too, so the caller looks before
   * it believes); `no`: an ordinary lost connection.
   */
  closed(): "told" | "suspected" | "no" {
    const lived = this.#connectedAt === null ? null : this.#now() - this.#connectedAt;
    this.#connectedAt = null;
    const told = this.#toldTakenOver;
    this.#toldTakenOver = false;
    if (lived !== null) this.#short = lived < this.#shortMs ? this.#short + 1 : 0;
    if (told) {
      this.#short = 0;
      return "told";
    }
    if (this.#short >= this.#shortInARow) {
      this.#short = 0;
      return "suspected";
    }
    return "no";
  }
}

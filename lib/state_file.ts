/**
 * The daemon's state file: the replay guard's last frame counters and the energy guard's
 * baselines, so that a restart lets no old telegram through and no energy register go back
 * (DESIGN.md "State across restarts").
 *
 * ```
 * <state_dir>/smartmeter-state.json
 * {
 *   "version": 1,
 *   "written": "2026-12-05T20:00:00.000Z",
 *   "salt": "<16 random bytes, hex>",
 *   "key_id": "<8 bytes of HMAC-SHA-256 under dlms.key of 'smartmeter key id' ‖ salt, hex>",
 *   "frame_counters": { "<system title, hex>": 701 },
 *   "oms_access": { "version": 1, "meters": { "<OMS address, hex>": { "access": 12,
 *                   "clock": <meter time, s> } } },
 *   "energy": { "meter_id": "…", "system_title": "…",
 *               "registers": { "energy_import_wh": { "value": 1234567, "at": <ms> } } }
 * }
 * ```
 *
 * - **Atomic.** Written to a temporary file beside it, flushed to the disk (fsync), then
 *   renamed over the old one, and the directory flushed too: a crash or a power cut leaves
 *   the old file or the new one, never half a file.
 * - **Nothing secret.** The key id is a keyed hash under a random salt, cut to 8 bytes: it
 *   only tells whether `dlms.key` is still the key the counters were recorded under. When
 *   it is not (the operator re-keyed the meter, which may restart its counter), the frame
 *   counters and OMS access numbers start afresh; the energy baselines stay, since they do
 *   not depend on the key.
 * - **Never fatal.** A missing file is the first start. An unreadable or damaged file, or
 *   a directory that cannot be written, is reported once and the program carries on with
 *   what it has in memory.
 *
 * An edge module: the guards themselves are pure and only turn into JSON and back.
 *
 * @module
 */

import { fromHex, toHex } from "./bytes.ts";
import { CounterGuard } from "./dlms/counter.ts";
import { AccessGuard } from "./oms/access.ts";
import { EnergyGuard } from "./homeassistant/guard.ts";
import type { Log } from "./log.ts";

/** The file's name inside `state_dir`. */
export const STATE_FILE_NAME = "smartmeter-state.json";
/** The layout version written and understood. */
const VERSION = 1;
const SALT_BYTES = 16;
const KEY_ID_BYTES = 8;

/** What a state file restores. */
export interface RestoredState {
  counters: CounterGuard;
  energy: EnergyGuard;
  /** The OMS replay guard (Netz OÖ AMIS): access numbers and meter times. */
  access: AccessGuard;
}

/** The key id of `key` under `salt`; null without a key. */
export async function keyId(key: Uint8Array | null, salt: Uint8Array): Promise<string | null> {
  if (key === null) return null;
  const hmacKey = await crypto.subtle.importKey(
    "raw",
    key as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const label = new TextEncoder().encode("smartmeter key id");
  const message = new Uint8Array(label.length + salt.length);
  message.set(label);
  message.set(salt, label.length);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, message));
  return toHex(mac.subarray(0, KEY_ID_BYTES));
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The state file of one daemon. */
export class StateFile {
  /** Whether the last write failed (a failure is reported once, a recovery once). */
  #failing = false;

  private constructor(
    /** null: state is kept in memory only. */
    readonly path: string | null,
    private readonly salt: Uint8Array,
    private readonly keyId: string | null,
    private readonly log: Log,
  ) {}

  /**
   * Reads the state of `dir` for a daemon with `key`. Never throws: a missing file starts
   * empty; an unreadable or damaged one is reported and ignored.
   */
  static async open(
    dir: string | null,
    key: Uint8Array | null,
    log: Log,
  ): Promise<{ file: StateFile; restored: RestoredState }> {
    const fresh = (): RestoredState => ({
      counters: new CounterGuard(),
      energy: new EnergyGuard(),
      access: new AccessGuard(),
    });
    if (dir === null) {
      const file = new StateFile(null, new Uint8Array(0), null, log);
      return { file, restored: fresh() };
    }
    const path = `${dir.replace(/\/+$/, "")}/${STATE_FILE_NAME}`;
    let text: string | null = null;
    try {
      text = await Deno.readTextFile(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        log.warning(
          `Cannot read the state file ${path}: ${describe(e)}; starting without it ` +
            "(frame counters and energy registers start afresh)",
        );
      }
    }
    let data: Record<string, unknown> | null = null;
    if (text !== null) {
      try {
        const parsed = JSON.parse(text);
        if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
          throw new SyntaxError("not a JSON object");
        }
        if (parsed.version !== VERSION) {
          throw new SyntaxError(`version ${JSON.stringify(parsed.version)}, not ${VERSION}`);
        }
        data = parsed;
      } catch (e) {
        log.warning(
          `The state file ${path} is damaged (${describe(e)}); starting without it ` +
            "(frame counters and energy registers start afresh); it is rewritten soon",
        );
      }
    }
    let salt: Uint8Array | null = null;
    if (data !== null && typeof data.salt === "string") {
      try {
        salt = fromHex(data.salt);
      } catch { /* damaged: a new salt */ }
    }
    if (salt === null || salt.length !== SALT_BYTES) {
      salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
    }
    const id = await keyId(key, salt);
    const file = new StateFile(path, salt, id, log);
    const restored = fresh();
    if (data === null) return { file, restored };
    if (data.frame_counters !== undefined) {
      if (data.key_id !== id) {
        log.info(
          "dlms.key is not the key the saved frame counters were recorded under (a re-keyed " +
            "meter may count afresh): the replay guard starts afresh",
        );
      } else {
        try {
          restored.counters = CounterGuard.fromJSON(data.frame_counters);
        } catch (e) {
          log.warning(`The state file ${path}: frame counters ignored (${describe(e)})`);
        }
      }
    }
    if (data.oms_access !== undefined && data.key_id === id) {
      try {
        restored.access = AccessGuard.fromJSON(data.oms_access);
      } catch (e) {
        log.warning(`The state file ${path}: OMS access numbers ignored (${describe(e)})`);
      }
    }
    if (data.energy !== undefined) {
      try {
        restored.energy = EnergyGuard.fromJSON(data.energy);
      } catch (e) {
        log.warning(`The state file ${path}: energy registers ignored (${describe(e)})`);
      }
    }
    const titles = Object.keys(restored.counters.toJSON()).length;
    const registers = Object.keys(restored.energy.toJSON().registers).length;
    const oms = restored.access.size;
    log.info(
      `State from ${path}: frame counters of ${titles} meter(s), ${
        oms > 0 ? `access numbers of ${oms} OMS meter(s), ` : ""
      }${registers} energy register(s)`,
    );
    return { file, restored };
  }

  /**
   * Writes the state atomically. Resolves false when it could not be written (reported
   * once, until a write succeeds again); never throws.
   */
  async save(state: RestoredState, nowMs: number = Date.now()): Promise<boolean> {
    if (this.path === null) return false;
    const text = JSON.stringify(
      {
        version: VERSION,
        written: new Date(nowMs).toISOString(),
        salt: toHex(this.salt),
        key_id: this.keyId,
        frame_counters: state.counters.toJSON(),
        oms_access: state.access.toJSON(),
        energy: state.energy.toJSON(),
      },
      null,
      1,
    ) + "\n";
    const dir = this.path.slice(0, this.path.lastIndexOf("/")) || "/";
    const temp = `${this.path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
    try {
      await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
      const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
      try {
        const bytes = new TextEncoder().encode(text);
        let off = 0;
        while (off < bytes.length) off += await file.write(bytes.subarray(off));
        await file.sync();
      } finally {
        file.close();
      }
      await Deno.rename(temp, this.path);
      await syncDirectory(dir);
    } catch (e) {
      await Deno.remove(temp).catch(() => {});
      if (!this.#failing) {
        this.log.warning(
          `Cannot write the state file ${this.path}: ${describe(e)}; frame counters and ` +
            "energy registers are kept in memory only until it can be written (check " +
            "state_dir and its permissions)",
        );
      }
      this.#failing = true;
      return false;
    }
    if (this.#failing) this.log.info(`The state file ${this.path} is written again`);
    this.#failing = false;
    return true;
  }
}

/** Flushes a directory's entries (the rename) to the disk, where the system allows it. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: Deno.FsFile | null = null;
  try {
    handle = await Deno.open(dir, { read: true });
    await handle.sync();
  } catch {
    // Some file systems refuse fsync on a directory; the rename is still atomic.
  } finally {
    handle?.close();
  }
}

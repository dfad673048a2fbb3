/**
 * What a config says besides its values: warnings (it works, but probably not as meant),
 * unknown keys (typos?) and obsolete keys of the Python add-on. `run` logs them at start
 * and `check` lists them, also next to the problems of a config that cannot be used.
 *
 * @module
 */

import type { Config } from "./config.ts";
import type { Log } from "./log.ts";

/** The notes of a config (a valid one, or one refused with a `ConfigError`). */
export type ConfigNotes = Pick<Config, "warnings" | "unknown" | "obsolete">;

/** The notes as `check` prints them: `! path: message`, `· path: obsolete, ...`. */
export function configNoteLines(n: ConfigNotes): string[] {
  return [
    ...n.warnings.map((w) => `! ${w.path}: ${w.message}`),
    ...n.unknown.map((u) => `! ${u}: unknown key, ignored (a typo?)`),
    ...n.obsolete.map((o) => `· ${o}: obsolete, accepted and ignored`),
  ];
}

/** Logs every note: warnings and unknown keys as warnings, obsolete keys as information. */
export function logConfigNotes(log: Log, n: ConfigNotes): void {
  for (const w of n.warnings) log.warning(`Config ${w.path}: ${w.message}`);
  for (const u of n.unknown) log.warning(`Config ${u}: unknown key, ignored (a typo?)`);
  for (const o of n.obsolete) {
    log.info(`Config key ${o} is obsolete: it is accepted and has no effect`);
  }
}

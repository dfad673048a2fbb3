/**
 * What `run`, `check` and `capture` share: finding and reading the config file (with
 * systemd credentials and environment secrets), and setting up logging.
 *
 * @module
 */

import { type Config, ConfigError, loadConfig } from "../config.ts";
import { METER_TYPES } from "../cosem/interpret.ts";
import { Logger, type LogLevel } from "../log.ts";
import { redact } from "../redact.ts";

/** Where the config is looked for when `--config` is not given, in this order. */
export const DEFAULT_CONFIG_PATHS: readonly string[] = [
  "/etc/smartmeter/config.yaml",
  "/data/options.json", // the Home Assistant add-on's options
];

/** Names of the systemd credentials read from `$CREDENTIALS_DIRECTORY`. */
export const CREDENTIAL_NAMES = ["key", "auth_key", "mqtt_password"] as const;

/** A config that cannot be used: exit 78 so that systemd does not restart in a loop. */
export class BadConfig extends Error {
  override name = "BadConfig";
}

/** Chooses the config file: `--config`, then `$SMARTMETER_CONFIG`, then the defaults. */
export async function findConfigPath(
  given: string | undefined,
  env: Record<string, string | undefined>,
): Promise<string> {
  if (given) return given;
  if (env.SMARTMETER_CONFIG) return env.SMARTMETER_CONFIG;
  for (const p of DEFAULT_CONFIG_PATHS) {
    try {
      if ((await Deno.stat(p)).isFile) return p;
    } catch { /* not there */ }
  }
  throw new BadConfig(
    `No config file: pass --config FILE, set SMARTMETER_CONFIG, or create ${
      DEFAULT_CONFIG_PATHS[0]
    } (config.example.yaml shows every key)`,
  );
}

/** Reads the systemd credentials that exist; a missing directory or file is fine. */
export async function readCredentials(
  env: Record<string, string | undefined>,
): Promise<Record<string, string>> {
  const dir = env.CREDENTIALS_DIRECTORY;
  const out: Record<string, string> = {};
  if (!dir) return out;
  for (const name of CREDENTIAL_NAMES) {
    try {
      out[name] = await Deno.readTextFile(`${dir}/${name}`);
    } catch { /* not given */ }
  }
  return out;
}

/** Reads, parses and validates the config. @throws {BadConfig} with every problem */
export async function readConfig(
  path: string,
  env: Record<string, string | undefined>,
): Promise<Config> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new BadConfig(`Cannot read the config file ${path}: ${(e as Error).message}`);
  }
  try {
    return loadConfig(text, {
      env,
      credentials: await readCredentials(env),
      meterTypes: METER_TYPES,
      fileName: path,
    });
  } catch (e) {
    if (e instanceof ConfigError) {
      throw new BadConfig(
        `The config file ${path} has ${e.problems.length} problem${
          e.problems.length === 1 ? "" : "s"
        }:\n${e.problems.map((p) => `  ${p.path}: ${p.message}`).join("\n")}`,
      );
    }
    throw e;
  }
}

/** A logger for this process: journald-aware, timestamps on a terminal, secrets redacted. */
export function processLogger(
  level: LogLevel,
  env: Record<string, string | undefined>,
  write: (line: string) => void,
  isTerminal: boolean,
): Logger {
  return new Logger({
    level,
    journald: Boolean(env.JOURNAL_STREAM),
    timestamps: isTerminal && !env.JOURNAL_STREAM,
    write,
  });
}

/** Makes the logger hide the config's secrets from every line. */
export function redactSecrets(logger: Logger, config: Config): void {
  const secrets = [config.key, config.authKey, config.mqtt.password];
  logger.options.redact = (line) => redact(line, secrets);
}

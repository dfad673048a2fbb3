/**
 * What `run`, `check` and `capture` share: finding and reading the config file (with
 * systemd credentials and environment secrets), and setting up logging.
 *
 * @module
 */

import { type Config, ConfigError, type ConfigProblem, loadConfig } from "../config.ts";
import type { ConfigNotes } from "../config_notes.ts";
import { METER_TYPES } from "../cosem/interpret.ts";
import { Logger, type LogLevel } from "../log.ts";
import { redact } from "../redact.ts";
import { whyUnreadable } from "./access.ts";

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
  /** Warnings, unknown and obsolete keys found besides the problems, when it was read. */
  readonly notes: ConfigNotes;

  constructor(message: string, notes: ConfigNotes = { warnings: [], unknown: [], obsolete: [] }) {
    super(message);
    this.notes = notes;
  }
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
    const fix = e instanceof Deno.errors.PermissionDenied
      ? `: let the service's group read it (sudo chgrp smartmeter ${path} && sudo chmod ` +
        `0640 ${path}, with SupplementaryGroups=smartmeter in the unit, as the README's ` +
        "Raspberry Pi recipe does), or run smartmeter as a user that can read it"
      : "";
    throw new BadConfig(
      `Cannot read the config file ${path}: ${await whyUnreadable(path, e)}${fix}`,
    );
  }
  let config: Config;
  try {
    config = loadConfig(text, {
      env,
      credentials: await readCredentials(env),
      meterTypes: METER_TYPES,
      fileName: path,
    });
  } catch (e) {
    if (e instanceof ConfigError) throw badConfig(path, e.problems, e.notes);
    throw e;
  }
  const files = await unreadableFiles(config);
  if (files.length > 0) throw badConfig(path, files, config);
  return config;
}

function badConfig(path: string, problems: ConfigProblem[], notes: ConfigNotes): BadConfig {
  return new BadConfig(
    `The config file ${path} has ${problems.length} problem${problems.length === 1 ? "" : "s"}:\n${
      problems.map((p) => `  ${p.path}: ${p.message}`).join("\n")
    }`,
    { warnings: notes.warnings, unknown: notes.unknown, obsolete: notes.obsolete },
  );
}

/**
 * The files the config names that cannot be read (the TLS CA, certificate and key that
 * will be used): a config problem at start, not a connection retried for ever.
 */
export async function unreadableFiles(config: Config): Promise<ConfigProblem[]> {
  const m = config.mqtt;
  if (!m.tls) return [];
  const used: [string, string | null][] = [
    ["mqtt.tls_ca", m.tlsCa],
    ["mqtt.tls_cert", m.tlsCert],
    ["mqtt.tls_key", m.tlsCert === null ? null : m.tlsKey],
  ];
  const problems: ConfigProblem[] = [];
  for (const [key, path] of used) {
    if (path === null) continue;
    try {
      await Deno.readTextFile(path);
    } catch (e) {
      problems.push({
        path: key,
        message: `cannot read "${path}": ${await whyUnreadable(path, e)}`,
      });
    }
  }
  return problems;
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

/**
 * The configuration file: YAML (1.1, as the Python add-on read it) or JSON, validated into a
 * typed {@link Config}.
 *
 * An edge module that stays pure: it reads no files and no environment itself. `main.ts`
 * passes the file's text, the environment and any systemd credentials in, so every rule here
 * is testable with plain strings.
 *
 * The accepted file is a superset of the Python add-on's `smartmeter-config.yaml` and of its
 * Home Assistant add-on `/data/options.json` (research/seed-compat.md §1, §2): both load
 * unchanged. The decisions, in short:
 *
 * - **YAML 1.1 like PyYAML.** Unquoted `yes`/`no`/`on`/`off`/`true`/`false` (lower, Capitalised
 *   or UPPER case) are booleans and unquoted numbers are numbers, exactly where PyYAML's
 *   resolver says so. The `yaml` package's 1.1 schema is a little wider than PyYAML's (it also
 *   reads `y`/`n` as booleans, `1e3` and `0815` as numbers); such scalars are turned back
 *   into the text that was written, so `parity: N` stays the letter N and a key that PyYAML
 *   read as text is read as text here too.
 * - **Lenient where the meaning is unambiguous.** Boolean keys also take the words
 *   yes/no/on/off/true/false/y/n as text in any case; number keys take numbers written as
 *   text (`port: "1883"`); keys take spaces or colons between byte pairs and a `0x` prefix;
 *   `logging` and `parity` are read in any case.
 * - **Every problem at once**, each with its key path, in one {@link ConfigError}. Secret
 *   values (keys, password) never appear in a message: it says "(hidden)" instead.
 * - **Secrets**: file < systemd credentials < environment. Each later source overrides the
 *   earlier one; an empty value does not override.
 * - **`mqtt.host`**: absent means "ask the Supervisor" inside the Home Assistant add-on
 *   (`SUPERVISOR_TOKEN` set), `localhost` elsewhere; an explicit `""` is valid only inside
 *   the add-on.
 * - **Obsolete keys** of the add-on are accepted and listed, never refused; unknown keys are
 *   listed (for `check` to point out typos), never refused.
 *
 * @module
 */

import { parseDocument, visit } from "yaml";
import { BAUD_RATES } from "./sources/baud.ts";
import { type ListenAddress, parseListenAddress } from "./sinks/http/address.ts";

// ---------------------------------------------------------------------------------------
// The typed configuration (the contract with its users)

/** Log level; the add-on's Python names map onto these. */
export type LogLevel = "debug" | "info" | "warning" | "error";
/** Serial parity that termios can set. */
export type Parity = "none" | "even" | "odd";

/** Where the meter's bytes come from and how the serial line is set up. */
export interface SourceConfig {
  /** a tty path (/dev/ttyUSB0, /dev/serial/by-id/...), tcp://host:port, or a capture file path */
  port: string;
  baudRate: number | "auto";
  dataBits: 7 | 8;
  parity: Parity;
  stopBits: 1 | 2;
}

/** The MQTT broker and the Home Assistant device. */
export interface MqttConfig {
  /** "" = ask the Home Assistant Supervisor (inside the add-on) */
  host: string;
  port: number;
  /** null = no username sent; "" is sent as an empty username (add-on behaviour) */
  user: string | null;
  password: string | null;
  /** seconds */
  keepalive: number;
  /** topics are "<prefix>/<deviceId>/..."; leading "/" already stripped */
  prefix: string;
  deviceId: string;
  name: string;
  /** seconds; 0 = every telegram */
  publishInterval: number;
  discoveryPrefix: string;
  tls: boolean;
  tlsCa: string | null;
  tlsCert: string | null;
  tlsKey: string | null;
  /** disables the hostname check only */
  tlsInsecure: boolean;
  /** default "smartmeter-<deviceId>" */
  clientId: string;
  /** 4 = MQTT 3.1.1, 5 = MQTT 5 */
  protocolVersion: 4 | 5;
  /** Who chose the user name and password: the Supervisor when `host` was asked from it. */
  credentialsFrom?: "config" | "supervisor";
}

/** The built-in web server (lib/sinks/http). */
export interface HttpConfig {
  /** null = no server */
  listen: ListenAddress | null;
  /** what set `listen`, named in errors: "http.listen" or a command-line option */
  from: string;
}

/** Where a secret's value came from; null when it is not set at all. */
export type SecretSource = "file" | "credentials" | "env" | null;

/** The whole validated configuration. */
export interface Config {
  logging: LogLevel;
  /** "auto" | "burgenland" | "noe_evn" | profile names (as spelled in `meterTypes`) */
  meterType: string;
  source: SourceConfig;
  /** 16 bytes (GUEK) or null for unencrypted meters */
  key: Uint8Array | null;
  /** 16 bytes (GAK) or null */
  authKey: Uint8Array | null;
  mqtt: MqttConfig;
  http: HttpConfig;
  /**
   * Where the replay guard's frame counters and the energy guard's registers survive
   * restarts (DESIGN.md "State across restarts"); null: in memory only.
   */
  stateDir: string | null;
  /** what chose `stateDir`: the key, systemd's `$STATE_DIRECTORY`, or the add-on's /data */
  stateDirFrom: "state_dir" | "STATE_DIRECTORY" | "add-on" | null;
  /** obsolete keys that were present (interface_type, dlms.hdlc_frame_size, dlms.timeout, mqtt.sensors_migrated) */
  obsolete: string[];
  /** key paths this program does not know (typos?), e.g. "mqtt.hots" */
  unknown: string[];
  /** things that work but are probably not what the user wants; `check` prints them */
  warnings: ConfigProblem[];
  /** where each secret came from, for `check` and the start-up log */
  secretSources: { key: SecretSource; authKey: SecretSource; password: SecretSource };
}

// ---------------------------------------------------------------------------------------
// Errors

/** One thing wrong (or worth a warning) in the configuration. */
export interface ConfigProblem {
  /** key path such as "mqtt.port" or "dlms.key"; "(file)" for the file as a whole */
  path: string;
  /** what is wrong and what is allowed; never contains a secret */
  message: string;
}

/** The configuration cannot be used; {@link ConfigError.problems} lists every reason. */
export class ConfigError extends Error {
  override name = "ConfigError";
  readonly problems: ConfigProblem[];
  /** What else was found: warnings, unknown and obsolete keys (`check` lists them too). */
  readonly notes: Pick<Config, "warnings" | "unknown" | "obsolete">;

  constructor(
    problems: ConfigProblem[],
    notes: Pick<Config, "warnings" | "unknown" | "obsolete"> = {
      warnings: [],
      unknown: [],
      obsolete: [],
    },
  ) {
    super(problems.map((p) => `${p.path}: ${p.message}`).join("\n"));
    this.problems = problems;
    this.notes = notes;
  }
}

/** Options for {@link validateConfig} and {@link loadConfig}. */
export interface LoadOptions {
  /**
   * The process environment. Read: SMARTMETER_KEY, SMARTMETER_AUTH_KEY,
   * SMARTMETER_MQTT_PASSWORD (override the file), SUPERVISOR_TOKEN (set inside the Home
   * Assistant add-on; decides what an absent or empty `mqtt.host` and `state_dir` mean) and
   * STATE_DIRECTORY (set by systemd's `StateDirectory=`: the default `state_dir`).
   */
  env?: Record<string, string | undefined>;
  /**
   * systemd credentials already read by main.ts from $CREDENTIALS_DIRECTORY, by name:
   * "key", "auth_key", "mqtt_password". A trailing newline is ignored.
   */
  credentials?: Record<string, string>;
  /** accepted meter_type values (owned by the COSEM layer); "auto" is always accepted */
  meterTypes: readonly string[];
}

// ---------------------------------------------------------------------------------------
// The defaults table

/** One key of the file, for `check` and the docs. */
export interface ConfigKeyInfo {
  /** path in the file, e.g. "mqtt.port" */
  readonly path: string;
  /** the value used when the key is absent, as it would be written in the file */
  readonly default: string | number | boolean | null;
  /** what may be written */
  readonly allowed: string;
  /** what the key does (and how the default is chosen when it depends on other keys) */
  readonly about: string;
  /** accepted for the add-on's sake but changes nothing */
  readonly obsolete?: boolean;
  /** never printed */
  readonly secret?: boolean;
  /** environment variable that overrides it */
  readonly env?: string;
  /** systemd credential that overrides it */
  readonly credential?: string;
}

/** Standard serial speeds accepted for `dlms.baudrate`. */
export { BAUD_RATES };
const DEFAULT_PORT = "/dev/ttyUSB0";
const DEFAULT_MQTT_PORT = 1883;
const DEFAULT_KEEPALIVE = 60;
const DEFAULT_DEVICE_ID = "smartmeter";
const DEFAULT_NAME = "Smart Meter";
const DEFAULT_PUBLISH_INTERVAL = 30;
const DEFAULT_DISCOVERY_PREFIX = "homeassistant";
const HOST_OUTSIDE_ADDON = "localhost";
const MIN_KEEPALIVE = 5;
const MAX_KEEPALIVE = 65535;
const MAX_PUBLISH_INTERVAL = 86400;
const KEY_BYTES = 16;

/** Profile default speeds, as the add-on had them (an explicit baudrate always wins). */
const PROFILE_BAUD: Readonly<Record<string, number>> = {
  burgenland: 9600,
  noe_evn: 2400,
  amis: 9600,
};
/** Profile default parities: Netz OÖ's AMIS meters talk 9600 8E1 (an explicit parity wins). */
const PROFILE_PARITY: Readonly<Record<string, Parity>> = { amis: "even" };

/** Every key of the file with its default, in file order. */
export const CONFIG_DEFAULTS: readonly ConfigKeyInfo[] = [
  {
    path: "logging",
    default: "info",
    allowed: "debug | info | warning | error, any case (also the add-on's CRITICAL, WARN, " +
      "FATAL, NOTSET)",
    about: "how much is logged",
  },
  {
    path: "meter_type",
    default: "auto",
    allowed: "auto | burgenland | noe_evn | a profile name, any case",
    about: "auto detects the telegram layout; a name pins it",
  },
  {
    path: "interface_type",
    default: null,
    allowed: "anything",
    about: "the add-on's optical/physical switch; the framing is now detected",
    obsolete: true,
  },
  {
    path: "dlms.port",
    default: DEFAULT_PORT,
    allowed: "a tty path, tcp://host:port, or a capture file",
    about: "where the meter's bytes come from",
  },
  {
    path: "dlms.baudrate",
    default: "auto",
    allowed: `auto | ${BAUD_RATES.join(" | ")}`,
    about: "serial speed; absent: 9600 for burgenland and amis, 2400 for noe_evn, otherwise " +
      "auto (tries the usual settings until checksums pass)",
  },
  { path: "dlms.bytesize", default: 8, allowed: "7 | 8", about: "data bits" },
  {
    path: "dlms.parity",
    default: "none",
    allowed: "NONE | EVEN | ODD or N | E | O, any case",
    about: "serial parity; absent: EVEN for amis, otherwise NONE",
  },
  { path: "dlms.stopbits", default: 1, allowed: "1 | 2", about: "stop bits" },
  {
    path: "dlms.key",
    default: null,
    allowed: "32 hex characters (spaces or colons between byte pairs and a 0x prefix are " +
      "ignored); empty for an unencrypted meter",
    about: "encryption key (GUEK) from the grid operator",
    secret: true,
    env: "SMARTMETER_KEY",
    credential: "key",
  },
  {
    path: "dlms.auth_key",
    default: null,
    allowed: "32 hex characters, or empty",
    about: "authentication key (GAK); when set, every authentication tag must verify",
    secret: true,
    env: "SMARTMETER_AUTH_KEY",
    credential: "auth_key",
  },
  {
    path: "dlms.hdlc_frame_size",
    default: null,
    allowed: "anything",
    about: "the add-on's read size; frames are now length-driven",
    obsolete: true,
  },
  {
    path: "dlms.timeout",
    default: null,
    allowed: "anything",
    about: "the add-on's serial read timeout; not needed any more",
    obsolete: true,
  },
  {
    path: "mqtt.host",
    default: HOST_OUTSIDE_ADDON,
    allowed: "a host name or address; empty inside the Home Assistant add-on",
    about: "MQTT broker; absent or empty inside the add-on: asked from the Supervisor",
  },
  { path: "mqtt.port", default: DEFAULT_MQTT_PORT, allowed: "1..65535", about: "broker port" },
  {
    path: "mqtt.user",
    default: null,
    allowed: "text",
    about: 'user name; absent: none sent, "": an empty name is sent',
  },
  {
    path: "mqtt.password",
    default: null,
    allowed: "text",
    about: "password",
    secret: true,
    env: "SMARTMETER_MQTT_PASSWORD",
    credential: "mqtt_password",
  },
  {
    path: "mqtt.keepalive",
    default: DEFAULT_KEEPALIVE,
    allowed: `${MIN_KEEPALIVE}..${MAX_KEEPALIVE} seconds`,
    about: "MQTT keep-alive",
  },
  {
    path: "mqtt.prefix",
    default: "",
    allowed: "topic text without + or #",
    about: "topics are <prefix>/<device_id>/...; leading / removed",
  },
  {
    path: "mqtt.device_id",
    default: DEFAULT_DEVICE_ID,
    allowed: "letters, digits, _ and -",
    about: "Home Assistant device identifier, topic level and unique_id prefix",
  },
  {
    path: "mqtt.name",
    default: DEFAULT_NAME,
    allowed: "text",
    about: "device name in Home Assistant",
  },
  {
    path: "mqtt.publish_interval",
    default: DEFAULT_PUBLISH_INTERVAL,
    allowed: `0..${MAX_PUBLISH_INTERVAL} seconds`,
    about: "least time between two published states; 0 = every telegram",
  },
  {
    path: "mqtt.discovery_prefix",
    default: DEFAULT_DISCOVERY_PREFIX,
    allowed: "topic text without + or #",
    about: "Home Assistant discovery prefix",
  },
  { path: "mqtt.tls", default: false, allowed: "true | false", about: "MQTT over TLS" },
  {
    path: "mqtt.tls_ca",
    default: null,
    allowed: "a PEM file path, or empty",
    about: "CA certificate; empty: the system CA store",
  },
  {
    path: "mqtt.tls_cert",
    default: null,
    allowed: "a PEM file path, or empty",
    about: "client certificate",
  },
  {
    path: "mqtt.tls_key",
    default: null,
    allowed: "a PEM file path, or empty",
    about: "client certificate's private key",
  },
  {
    path: "mqtt.tls_insecure",
    default: false,
    allowed: "true | false",
    about: "skip the host name check (the certificate chain is still verified)",
  },
  {
    path: "mqtt.sensors_migrated",
    default: null,
    allowed: "anything",
    about: "the add-on's legacy discovery migration; nothing to migrate any more",
    obsolete: true,
  },
  {
    path: "mqtt.client_id",
    default: null,
    allowed: "text",
    about: "MQTT client id; absent: smartmeter-<device_id>",
  },
  {
    path: "mqtt.protocol_version",
    default: 4,
    allowed: "4 (MQTT 3.1.1) | 5 (MQTT 5)",
    about: "MQTT protocol version",
  },
  {
    path: "state_dir",
    default: null,
    allowed: "a directory the program may write",
    about: "where frame counters and energy registers survive restarts (one small file, " +
      "nothing secret); absent: $STATE_DIRECTORY (systemd's StateDirectory=), /data in the " +
      "Home Assistant add-on, otherwise kept in memory only",
  },
  {
    path: "http.listen",
    default: null,
    allowed: "host:port, like 127.0.0.1:8080 or 0.0.0.0:8080; empty: no web server",
    about: "the built-in web page, JSON API and Prometheus metrics (read only)",
  },
];

const KNOWN_PATHS: ReadonlySet<string> = new Set(CONFIG_DEFAULTS.map((k) => k.path));
const SECTIONS = ["dlms", "mqtt", "http"] as const;

// ---------------------------------------------------------------------------------------
// Parsing

/** PyYAML's implicit int (YAML 1.1): binary, octal, decimal, hex, base 60. */
const PYYAML_INT =
  /^(?:[-+]?0b[01_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/;
/** PyYAML's implicit float: a dot is required, an exponent needs a sign. */
const PYYAML_FLOAT =
  /^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/;
/** PyYAML's implicit bool: these words, in these three spellings only. */
const PYYAML_BOOL =
  /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/;

/**
 * Whether PyYAML would have read this plain scalar as the type the `yaml` package chose.
 * Where it would not, the scalar goes back to the text that was written.
 */
function pyyamlAgrees(value: unknown, source: string): boolean {
  if (typeof value === "boolean") return PYYAML_BOOL.test(source);
  if (typeof value === "number" || typeof value === "bigint") {
    return PYYAML_INT.test(source) || PYYAML_FLOAT.test(source);
  }
  // Dates become their text again: nothing here wants a date object.
  if (value instanceof Date) return false;
  return true;
}

/**
 * First line of a `yaml` error message, without its "at line" suffix, its source excerpt
 * and any quoted token (a token could be part of a key).
 */
function yamlReason(message: string): string {
  const first = message.split("\n", 1)[0] ?? message;
  return first.replace(/ at line \d+, column \d+:?$/, "").replace(/:\s*".*"$/, "");
}

/**
 * Parses the text of a config file with YAML 1.1 semantics, as the add-on's PyYAML
 * `safe_load` did. JSON is YAML, so the add-on's `options.json` parses too.
 *
 * Duplicate keys are allowed (the last wins, as in PyYAML). An empty file gives `null`.
 *
 * @param fileName named in error messages
 * @throws {ConfigError} with path "(file)", line and column, on the first syntax error (or
 *   an alias without its anchor). The message never quotes the source (it could hold a key).
 */
export function parseConfigText(text: string, fileName = "config"): unknown {
  const doc = parseDocument(text, {
    version: "1.1",
    uniqueKeys: false,
    prettyErrors: true,
    logLevel: "error",
  });
  if (doc.errors.length > 0) {
    // A file that is valid JSON but not valid YAML (tabs for indentation, say) still loads.
    if (/^\s*[{[]/.test(text)) {
      try {
        return JSON.parse(text);
      } catch {
        // report the YAML errors below
      }
    }
    // Only the first: the errors after it are mostly consequences of it.
    const e = doc.errors[0]!;
    const at = e.linePos?.[0];
    const where = at ? ` line ${at.line}, column ${at.col}` : "";
    throw new ConfigError([
      { path: "(file)", message: `${fileName}${where}: ${yamlReason(e.message)}` },
    ]);
  }
  visit(doc, {
    Scalar(_key, node) {
      if (node.type !== "PLAIN" || node.tag !== undefined) return;
      const source = node.source;
      if (typeof source === "string" && !pyyamlAgrees(node.value, source)) node.value = source;
    },
  });
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    // an alias to a missing anchor, or too many aliases
    const reason = e instanceof Error ? e.message : String(e);
    throw new ConfigError([{ path: "(file)", message: `${fileName}: ${reason}` }]);
  }
}

// ---------------------------------------------------------------------------------------
// Validation helpers

type Mapping = Record<string, unknown>;

function isMapping(v: unknown): v is Mapping {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** How a value is named in a message. Never used for secrets. */
function shown(v: unknown): string {
  if (typeof v === "string") {
    const s = v.length > 60 ? `${v.slice(0, 57)}...` : v;
    return JSON.stringify(s);
  }
  if (Array.isArray(v)) return "a list";
  if (isMapping(v)) return "a mapping";
  return String(v);
}

/** What kind of value it is, for messages about secrets (which never show the value). */
function kind(v: unknown): string {
  if (typeof v === "string") return "text";
  if (typeof v === "number" || typeof v === "bigint") return "a number";
  if (typeof v === "boolean") return "true/false";
  if (Array.isArray(v)) return "a list";
  return "a mapping";
}

const QUOTE_BOOLEAN =
  "must be text: put it in quotes (unquoted yes/no/on/off/true/false are read as true/false)";

/** Collects problems, warnings and notes while the file is read. */
class Reader {
  readonly problems: ConfigProblem[] = [];
  readonly warnings: ConfigProblem[] = [];
  readonly unknown: string[] = [];
  readonly obsolete: string[] = [];

  problem(path: string, message: string): void {
    this.problems.push({ path, message });
  }

  warn(path: string, message: string): void {
    this.warnings.push({ path, message });
  }

  /** A mapping section; null/""/absent is an empty one. */
  section(raw: Mapping, name: string): Mapping {
    const v = raw[name];
    if (v === undefined || v === null || v === "") return {};
    if (!isMapping(v)) {
      this.problem(
        name,
        `must be a mapping of keys (indented "key: value" lines), got ${shown(v)}`,
      );
      return {};
    }
    return v;
  }

  /**
   * Text. Numbers become their digits (as the add-on's f-strings did), except in `strict`
   * fields where a number means the written text was lost (`password: 0123` is 83).
   * Returns undefined when absent, null or invalid.
   */
  text(path: string, v: unknown, strict = false): string | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v === "string") return v;
    if (typeof v === "number" || typeof v === "bigint") {
      if (!strict) return String(v);
      this.problem(path, "quote the value in the file: it was read as a number");
      return undefined;
    }
    if (typeof v === "boolean") {
      this.problem(path, QUOTE_BOOLEAN);
      return undefined;
    }
    this.problem(path, `must be text, got ${shown(v)}`);
    return undefined;
  }

  /**
   * A number, also written as decimal text ("1883"). Returns undefined when absent, null or
   * "" (the default applies) or invalid (a problem is recorded).
   */
  number(
    path: string,
    v: unknown,
    range: { min: number; max: number; whole: boolean; what: string },
  ): number | undefined {
    if (v === undefined || v === null || v === "") return undefined;
    let n: number | undefined;
    if (typeof v === "number") n = v;
    else if (typeof v === "bigint") n = Number(v);
    else if (typeof v === "string" && /^\s*[+-]?(?:\d+\.?\d*|\.\d+)\s*$/.test(v)) n = Number(v);
    if (
      n === undefined || !Number.isFinite(n) || n < range.min || n > range.max ||
      (range.whole && !Number.isInteger(n))
    ) {
      this.problem(path, `must be ${range.what}, got ${shown(v)}`);
      return undefined;
    }
    return n;
  }

  /** A boolean: true/false, or the words yes/no/on/off/true/false/y/n as text in any case. */
  bool(path: string, v: unknown): boolean | undefined {
    if (v === undefined || v === null || v === "") return undefined;
    if (typeof v === "boolean") return v;
    if (typeof v === "string") {
      const w = v.trim().toLowerCase();
      if (["yes", "y", "true", "on"].includes(w)) return true;
      if (["no", "n", "false", "off"].includes(w)) return false;
    }
    this.problem(path, `must be true or false (yes/no and on/off work too), got ${shown(v)}`);
    return undefined;
  }
}

function checkKnownKeys(r: Reader, raw: Mapping): void {
  for (const top of Object.keys(raw)) {
    if ((SECTIONS as readonly string[]).includes(top)) {
      const section = raw[top];
      if (!isMapping(section)) continue;
      for (const k of Object.keys(section)) {
        if (!KNOWN_PATHS.has(`${top}.${k}`)) r.unknown.push(`${top}.${k}`);
      }
    } else if (!KNOWN_PATHS.has(top)) {
      r.unknown.push(top);
    }
  }
  for (const info of CONFIG_DEFAULTS) {
    if (!info.obsolete) continue;
    const [a, b] = info.path.split(".") as [string, string | undefined];
    const holder = b === undefined ? raw : raw[a];
    if (isMapping(holder) && Object.hasOwn(holder, b ?? a)) r.obsolete.push(info.path);
  }
}

// ---------------------------------------------------------------------------------------
// Top-level keys

const LOG_LEVELS: Readonly<Record<string, LogLevel>> = {
  debug: "debug",
  info: "info",
  notset: "info",
  warning: "warning",
  warn: "warning",
  error: "error",
  critical: "error",
  fatal: "error",
};

function readLogging(r: Reader, v: unknown): LogLevel {
  if (v === undefined || v === null || v === "") return "info";
  const level = typeof v === "string" ? LOG_LEVELS[v.trim().toLowerCase()] : undefined;
  if (level === undefined) {
    r.problem("logging", `must be debug, info, warning or error (any case), got ${shown(v)}`);
    return "info";
  }
  return level;
}

function readMeterType(r: Reader, v: unknown, meterTypes: readonly string[]): string {
  if (v === undefined || v === null || v === "") return "auto";
  const names = ["auto", ...meterTypes.filter((t) => t.toLowerCase() !== "auto")];
  const wanted = typeof v === "string" ? v.trim().toLowerCase() : undefined;
  const found = names.find((t) => t.toLowerCase() === wanted);
  if (found === undefined) {
    r.problem("meter_type", `unknown meter type ${shown(v)}: allowed are ${names.join(", ")}`);
    return "auto";
  }
  return found;
}

// ---------------------------------------------------------------------------------------
// dlms

function readPort(r: Reader, v: unknown): string {
  const path = "dlms.port";
  const port = r.text(path, v);
  if (port === undefined) return DEFAULT_PORT;
  const trimmed = port.trim();
  if (trimmed === "") {
    r.problem(
      path,
      "must not be empty: give a serial device such as /dev/ttyUSB0, tcp://host:port or a " +
        "capture file",
    );
    return DEFAULT_PORT;
  }
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(trimmed);
  if (scheme === null) return trimmed;
  if (scheme[1]!.toLowerCase() !== "tcp") {
    r.problem(
      path,
      `unsupported address ${shown(trimmed)}: use a device path, tcp://host:port or a file path`,
    );
    return trimmed;
  }
  let ok = false;
  try {
    const url = new URL(trimmed);
    ok = url.hostname !== "" && url.port !== "" && (url.pathname === "" || url.pathname === "/");
  } catch {
    ok = false;
  }
  if (!ok) {
    r.problem(
      path,
      `${shown(trimmed)} needs a host and a port and nothing else, like tcp://192.168.1.20:8888`,
    );
  }
  return trimmed;
}

function readBaudRate(r: Reader, v: unknown, meterType: string): number | "auto" {
  const path = "dlms.baudrate";
  if (v === undefined || v === null || v === "") return PROFILE_BAUD[meterType] ?? "auto";
  if (typeof v === "string" && v.trim().toLowerCase() === "auto") return "auto";
  const allowed = `auto or one of ${BAUD_RATES.join(", ")}`;
  const n = r.number(path, v, { min: 1, max: Infinity, whole: true, what: allowed });
  if (n === undefined) return "auto";
  if (!BAUD_RATES.includes(n)) {
    r.problem(path, `must be ${allowed}, got ${shown(v)}`);
    return "auto";
  }
  return n;
}

function readByteSize(r: Reader, v: unknown): 7 | 8 {
  const path = "dlms.bytesize";
  const n = r.number(path, v, { min: -Infinity, max: Infinity, whole: true, what: "7 or 8" });
  if (n === undefined || n === 8) return 8;
  if (n === 7) return 7;
  if (n === 5 || n === 6) {
    r.problem(path, `${n} data bits are not supported: meters send 8 (a few 7); allowed 7 or 8`);
  } else {
    r.problem(path, `must be 7 or 8, got ${shown(v)}`);
  }
  return 8;
}

const PARITIES: Readonly<Record<string, Parity>> = {
  n: "none",
  none: "none",
  e: "even",
  even: "even",
  o: "odd",
  odd: "odd",
};

function readParity(r: Reader, v: unknown, meterType: string): Parity {
  const path = "dlms.parity";
  if (v === undefined || v === null || v === "" || v === false) {
    return PROFILE_PARITY[meterType] ?? "none";
  }
  const word = typeof v === "string" ? v.trim().toLowerCase() : undefined;
  const parity = word === undefined ? undefined : PARITIES[word];
  if (parity !== undefined) return parity;
  if (word === "m" || word === "mark" || word === "s" || word === "space") {
    const name = word.startsWith("m") ? "MARK" : "SPACE";
    r.problem(
      path,
      `${name} parity cannot be set on a serial port portably (termios has no mark or space ` +
        "parity): use NONE, EVEN or ODD",
    );
  } else {
    r.problem(path, `must be NONE, EVEN or ODD (or N, E, O; any case), got ${shown(v)}`);
  }
  return "none";
}

function readStopBits(r: Reader, v: unknown): 1 | 2 {
  const path = "dlms.stopbits";
  const n = r.number(path, v, { min: -Infinity, max: Infinity, whole: false, what: "1 or 2" });
  if (n === undefined || n === 1) return 1;
  if (n === 2) return 2;
  if (n === 1.5) r.problem(path, "1.5 stop bits cannot be set through termios: allowed 1 or 2");
  else r.problem(path, `must be 1 or 2, got ${shown(v)}`);
  return 1;
}

/**
 * An AES-128 key written as hex. Accepts any case, a `0x` prefix, and spaces or colons
 * between byte pairs (or between longer even-length groups, as some letters print keys).
 * @returns the 16 bytes, or a message that never contains the key
 */
export function parseKeyText(text: string): Uint8Array | string {
  let s = text.trim();
  let offset = text.indexOf(s);
  if (/^0x/i.test(s)) {
    s = s.slice(2);
    offset += 2;
  }
  let digits = "";
  const groups = s.split(/([\s:]+)/);
  let pos = offset;
  let separated = false;
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i]!;
    if (i % 2 === 1) {
      separated = true;
      pos += g.length;
      continue;
    }
    const bad = g.search(/[^0-9a-fA-F]/);
    if (bad >= 0) {
      return `must be 32 hex characters (0-9, a-f), got (hidden) with a character that is ` +
        `not hex at position ${pos + bad + 1}`;
    }
    digits += g;
    pos += g.length;
  }
  if (separated && groups.some((g, i) => i % 2 === 0 && g.length % 2 === 1)) {
    return "a separator splits a byte pair in (hidden): write 32 hex characters, or byte " +
      "pairs separated by spaces or colons";
  }
  if (digits.length !== KEY_BYTES * 2) {
    return `must be ${KEY_BYTES * 2} hex characters (got ${digits.length})`;
  }
  const out = new Uint8Array(KEY_BYTES);
  for (let i = 0; i < KEY_BYTES; i++) out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return out;
}

interface SecretInput {
  path: string;
  fileValue: unknown;
  credential: string;
  env: string;
}

interface SecretText {
  text: string | null;
  source: SecretSource;
  /** appended to messages about a value that did not come from the file */
  from: string;
}

/**
 * The effective text of a secret: file < systemd credential < environment. An empty value
 * does not override. A file value of the wrong type is a problem only when it is used.
 */
function secretText(
  s: SecretInput,
  opts: LoadOptions,
  fileText: (v: unknown) => string | null | undefined,
): SecretText {
  const fromEnv = opts.env?.[s.env];
  if (fromEnv !== undefined && fromEnv !== "") {
    return { text: fromEnv, source: "env", from: ` (from the environment variable ${s.env})` };
  }
  const cred = opts.credentials?.[s.credential]?.replace(/\r?\n$/, "");
  if (cred !== undefined && cred !== "") {
    return {
      text: cred,
      source: "credentials",
      from: ` (from the systemd credential ${s.credential})`,
    };
  }
  const t = fileText(s.fileValue);
  if (t === undefined || t === null) return { text: null, source: null, from: "" };
  return { text: t, source: "file", from: "" };
}

function readKey(
  r: Reader,
  s: SecretInput,
  opts: LoadOptions,
): { key: Uint8Array | null; source: SecretSource } {
  const got = secretText(s, opts, (v) => {
    if (v === undefined || v === null) return null;
    if (typeof v === "string") return v;
    if (typeof v === "number" || typeof v === "bigint") {
      r.problem(s.path, "quote the key in the file: it was read as a number");
    } else {
      r.problem(s.path, `must be text of 32 hex characters, got ${kind(v)}`);
    }
    return undefined;
  });
  if (got.text === null || got.text.trim() === "") return { key: null, source: null };
  const parsed = parseKeyText(got.text);
  if (typeof parsed === "string") {
    r.problem(s.path, parsed + got.from);
    return { key: null, source: got.source };
  }
  return { key: parsed, source: got.source };
}

// ---------------------------------------------------------------------------------------
// mqtt

function readHost(r: Reader, v: unknown, env: LoadOptions["env"]): string {
  const path = "mqtt.host";
  const inAddon = (env?.SUPERVISOR_TOKEN ?? "") !== "";
  const host = r.text(path, v);
  if (host === undefined) return inAddon ? "" : HOST_OUTSIDE_ADDON;
  const trimmed = host.trim();
  if (trimmed === "") {
    if (!inAddon) {
      r.problem(
        path,
        "is empty: give the broker's host name or address (an empty host asks the Home " +
          "Assistant Supervisor, which works only inside the add-on)",
      );
    }
    return "";
  }
  if (/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(trimmed)) {
    r.problem(
      path,
      `give only the host name, without "${trimmed.split("//")[0]}//": the port goes in ` +
        "mqtt.port and TLS in mqtt.tls",
    );
  } else if (trimmed.includes("@")) {
    // Never shown: what comes before the "@" may be a password.
    r.problem(
      path,
      'must not hold a user name or password ("…@"): put the user name in mqtt.user and ' +
        "the password in mqtt.password",
    );
  } else if (/[\s/]/.test(trimmed)) {
    r.problem(path, `must be a host name or address without spaces or "/", got ${shown(host)}`);
  } else if (/^\[[0-9a-fA-F:.]+\]$/.test(trimmed)) {
    return trimmed.slice(1, -1); // an IPv6 literal in brackets, as in a URL
  } else if (/^[^:]+:\d*$/.test(trimmed)) {
    r.problem(
      path,
      `give only the host name or address: the port goes in mqtt.port, got ${shown(host)}`,
    );
  }
  return trimmed;
}

/** A topic part (prefix, discovery prefix): no wildcards. */
function checkTopicText(r: Reader, path: string, t: string): void {
  if (/[+#]/.test(t)) {
    r.problem(path, `must not contain the MQTT wildcards + or #, got ${shown(t)}`);
  }
}

function readDeviceId(r: Reader, v: unknown): string {
  const path = "mqtt.device_id";
  const id = r.text(path, v);
  if (id === undefined) return DEFAULT_DEVICE_ID;
  if (id === "") {
    r.problem(path, "must not be empty: it names the Home Assistant device and its topics");
    return DEFAULT_DEVICE_ID;
  }
  if (/[/+#]/.test(id)) {
    r.problem(path, `must not contain "/", "+" or "#" (it is one topic level), got ${shown(id)}`);
  } else if (!/^[A-Za-z0-9_-]+$/.test(id)) {
    r.warn(
      path,
      `${shown(id)} has characters other than letters, digits, _ and -: Home Assistant ` +
        "ignores discovery topics with such an id",
    );
  }
  return id;
}

function readDiscoveryPrefix(r: Reader, v: unknown): string {
  const path = "mqtt.discovery_prefix";
  const p = r.text(path, v);
  if (p === undefined || p === "") return DEFAULT_DISCOVERY_PREFIX;
  checkTopicText(r, path, p);
  if (p.startsWith("/") || p.endsWith("/")) {
    r.problem(path, `must not start or end with "/", got ${shown(p)}`);
  }
  return p;
}

function readPrefix(r: Reader, v: unknown): string {
  const path = "mqtt.prefix";
  const raw = r.text(path, v);
  if (raw === undefined) return "";
  checkTopicText(r, path, raw);
  const p = raw.replace(/^\/+/, "");
  if (p.endsWith("/")) {
    r.warn(path, `ends with "/": topics will contain "//" (kept as the add-on did)`);
  }
  return p;
}

function readProtocolVersion(r: Reader, v: unknown): 4 | 5 {
  const path = "mqtt.protocol_version";
  if (v === undefined || v === null || v === "") return 4;
  const w = String(v).trim();
  if (w === "4" || w === "3.1.1") return 4;
  if (w === "5" || w === "5.0") return 5;
  r.problem(path, `must be 4 (MQTT 3.1.1) or 5 (MQTT 5), got ${shown(v)}`);
  return 4;
}

function readMqtt(
  r: Reader,
  m: Mapping,
  opts: LoadOptions,
): { mqtt: MqttConfig; password: SecretSource } {
  const host = readHost(r, m.host, opts.env);
  const port = r.number("mqtt.port", m.port, {
    min: 1,
    max: 65535,
    whole: true,
    what: "a whole number from 1 to 65535",
  }) ?? DEFAULT_MQTT_PORT;
  const user = r.text("mqtt.user", m.user, true) ?? null;
  const pw = secretText(
    {
      path: "mqtt.password",
      fileValue: m.password,
      credential: "mqtt_password",
      env: "SMARTMETER_MQTT_PASSWORD",
    },
    opts,
    (v) => r.text("mqtt.password", v, true),
  );
  const keepalive = r.number("mqtt.keepalive", m.keepalive, {
    min: MIN_KEEPALIVE,
    max: MAX_KEEPALIVE,
    whole: true,
    what: `a whole number of seconds from ${MIN_KEEPALIVE} to ${MAX_KEEPALIVE}`,
  }) ?? DEFAULT_KEEPALIVE;
  const prefix = readPrefix(r, m.prefix);
  const deviceId = readDeviceId(r, m.device_id);
  const name = r.text("mqtt.name", m.name) || DEFAULT_NAME;
  const publishInterval = r.number("mqtt.publish_interval", m.publish_interval, {
    min: 0,
    max: MAX_PUBLISH_INTERVAL,
    whole: false,
    what: `a number of seconds from 0 to ${MAX_PUBLISH_INTERVAL} (0 = every telegram)`,
  }) ?? DEFAULT_PUBLISH_INTERVAL;
  const discoveryPrefix = readDiscoveryPrefix(r, m.discovery_prefix);
  const tls = r.bool("mqtt.tls", m.tls) ?? false;
  const path = (key: string): string | null => {
    const p = r.text(`mqtt.${key}`, m[key])?.trim();
    return p === undefined || p === "" ? null : p;
  };
  const tlsCa = path("tls_ca");
  const tlsCert = path("tls_cert");
  const tlsKey = path("tls_key");
  const tlsInsecure = r.bool("mqtt.tls_insecure", m.tls_insecure) ?? false;
  if (!tls) {
    const unused = [
      ["tls_ca", tlsCa],
      ["tls_cert", tlsCert],
      ["tls_key", tlsKey],
      ["tls_insecure", tlsInsecure || null],
    ] as const;
    for (const [key, value] of unused) {
      if (value !== null) r.warn(`mqtt.${key}`, "ignored because mqtt.tls is false");
    }
  }
  if (tls && tlsKey !== null && tlsCert === null) {
    r.warn("mqtt.tls_key", "ignored without mqtt.tls_cert (the client certificate)");
  }
  const clientId = r.text("mqtt.client_id", m.client_id)?.trim() || `smartmeter-${deviceId}`;
  const protocolVersion = readProtocolVersion(r, m.protocol_version);
  return {
    mqtt: {
      host,
      port,
      user,
      password: pw.text,
      keepalive,
      prefix,
      deviceId,
      name,
      publishInterval,
      discoveryPrefix,
      tls,
      tlsCa,
      tlsCert,
      tlsKey,
      tlsInsecure,
      clientId,
      protocolVersion,
    },
    password: pw.source,
  };
}

// ---------------------------------------------------------------------------------------
// state_dir

function readStateDir(
  r: Reader,
  v: unknown,
  env: LoadOptions["env"],
): Pick<Config, "stateDir" | "stateDirFrom"> {
  const given = r.text("state_dir", v)?.trim();
  if (given !== undefined && given !== "") {
    if (given.includes("\0")) r.problem("state_dir", "must be a directory path");
    return { stateDir: given, stateDirFrom: "state_dir" };
  }
  // systemd's StateDirectory= sets it (several directories are separated by ":").
  const systemd = env?.STATE_DIRECTORY?.split(":")[0]?.trim();
  if (systemd) return { stateDir: systemd, stateDirFrom: "STATE_DIRECTORY" };
  if ((env?.SUPERVISOR_TOKEN ?? "") !== "") return { stateDir: "/data", stateDirFrom: "add-on" };
  return { stateDir: null, stateDirFrom: null };
}

// ---------------------------------------------------------------------------------------
// http

function readHttp(r: Reader, h: Mapping): HttpConfig {
  const from = "http.listen";
  const text = r.text(from, h.listen)?.trim();
  if (text === undefined || text === "") return { listen: null, from };
  const listen = parseListenAddress(text);
  if (typeof listen === "string") {
    r.problem(from, listen);
    return { listen: null, from };
  }
  return { listen, from };
}

// ---------------------------------------------------------------------------------------
// Entry points

/**
 * Validates parsed config data (from {@link parseConfigText}, or any JSON value) into a
 * {@link Config}, applying defaults, the overrides from `opts.env` and `opts.credentials`,
 * and the add-on's spellings.
 *
 * @throws {ConfigError} listing every problem found, each with its key path
 */
export function validateConfig(raw: unknown, opts: LoadOptions): Config {
  const r = new Reader();
  let top: Mapping = {};
  if (isMapping(raw)) top = raw;
  else if (raw !== null && raw !== undefined) {
    r.problem("(file)", `must be a mapping of keys such as mqtt: and dlms:, got ${shown(raw)}`);
  }
  checkKnownKeys(r, top);

  const logging = readLogging(r, top.logging);
  const meterType = readMeterType(r, top.meter_type, opts.meterTypes);
  const d = r.section(top, "dlms");
  const m = r.section(top, "mqtt");

  const port = readPort(r, d.port);
  const baudRate = readBaudRate(r, d.baudrate, meterType.toLowerCase());
  const dataBits = readByteSize(r, d.bytesize);
  const parity = readParity(r, d.parity, meterType.toLowerCase());
  const stopBits = readStopBits(r, d.stopbits);
  const key = readKey(r, {
    path: "dlms.key",
    fileValue: d.key,
    credential: "key",
    env: "SMARTMETER_KEY",
  }, opts);
  const authKey = readKey(r, {
    path: "dlms.auth_key",
    fileValue: d.auth_key,
    credential: "auth_key",
    env: "SMARTMETER_AUTH_KEY",
  }, opts);
  if (key.key === null && key.source === null) {
    r.warn(
      "dlms.key",
      "not set: only unencrypted meters can be read (Austrian meters encrypt: ask your grid " +
        "operator for the key)",
    );
  }
  if (meterType.toLowerCase() === "noe_evn" && baudRate === 9600) {
    r.warn(
      "dlms.baudrate",
      "9600 with meter_type noe_evn, whose profile speed is 2400 (the add-on always sent " +
        "9600): if nothing is read, remove dlms.baudrate or set it to auto",
    );
  }
  if (
    meterType.toLowerCase() === "amis" && baudRate !== "auto" &&
    (baudRate !== 9600 || parity !== "even")
  ) {
    r.warn(
      baudRate !== 9600 ? "dlms.baudrate" : "dlms.parity",
      `${baudRate} baud, parity ${parity.toUpperCase()} with meter_type amis, whose meters ` +
        "talk 9600 8E1: if nothing is read, remove dlms.baudrate and dlms.parity",
    );
  }
  const { mqtt, password } = readMqtt(r, m, opts);
  const http = readHttp(r, r.section(top, "http"));
  const state = readStateDir(r, top.state_dir, opts.env);

  if (r.problems.length > 0) {
    throw new ConfigError(r.problems, {
      warnings: r.warnings,
      unknown: r.unknown,
      obsolete: r.obsolete,
    });
  }
  return {
    logging,
    meterType,
    source: { port, baudRate, dataBits, parity, stopBits },
    key: key.key,
    authKey: authKey.key,
    mqtt,
    http,
    ...state,
    obsolete: r.obsolete,
    unknown: r.unknown,
    warnings: r.warnings,
    secretSources: { key: key.source, authKey: authKey.source, password },
  };
}

/**
 * Parses and validates the text of a config file.
 * @throws {ConfigError} on a syntax error, or listing every validation problem
 */
export function loadConfig(text: string, opts: LoadOptions & { fileName?: string }): Config {
  return validateConfig(parseConfigText(text, opts.fileName), opts);
}

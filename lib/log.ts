/**
 * Logging to standard error with a short namespace per component.
 *
 * Under journald (`JOURNAL_STREAM` set) each line starts with the syslog priority (`<6>`)
 * and has no timestamp: the journal adds its own. On a terminal, lines get the local time.
 * Every line passes through a redaction function first, so a key or password that slipped
 * into a message never reaches the log.
 *
 * @module
 */

export type LogLevel = "debug" | "info" | "warning" | "error";

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warning: 2, error: 3 };
const SYSLOG: Record<LogLevel, number> = { debug: 7, info: 6, warning: 4, error: 3 };
const LABEL: Record<LogLevel, string> = {
  debug: "DEBUG",
  info: "INFO",
  warning: "WARNING",
  error: "ERROR",
};

/** How lines are written. */
export interface LogOptions {
  level: LogLevel;
  /** Prefix lines with `<N>` syslog priorities and leave out the time. */
  journald: boolean;
  /** Prefix lines with the local time (for terminals). */
  timestamps: boolean;
  /** Writes one finished line (without the newline). */
  write: (line: string) => void;
  /** Applied to every line before it is written. */
  redact?: (line: string) => string;
}

/** A namespaced logger. */
export interface Log {
  debug(msg: string): void;
  info(msg: string): void;
  warning(msg: string): void;
  error(msg: string): void;
  /** Whether debug lines are written (to skip building expensive messages). */
  readonly debugEnabled: boolean;
  /** A logger for a sub-component: `smartmeter:mqtt`. */
  child(ns: string): Log;
}

/** The root of all loggers; its options can change at run time (after the config is read). */
export class Logger {
  constructor(public options: LogOptions) {}

  /** A logger for namespace `ns`. */
  get(ns: string): Log {
    const emit = (level: LogLevel, msg: string) => {
      const o = this.options;
      if (RANK[level] < RANK[o.level]) return;
      let line: string;
      if (o.journald) line = `<${SYSLOG[level]}>${ns}: ${msg}`;
      else {
        const time = o.timestamps ? new Date().toTimeString().slice(0, 8) + " " : "";
        line = `${time}${LABEL[level]} ${ns}: ${msg}`;
      }
      // A message may hold several lines: keep the prefix on each.
      if (line.includes("\n")) line = line.replaceAll("\n", "\n  ");
      o.write(o.redact ? o.redact(line) : line);
    };
    const isDebug = () => this.options.level === "debug";
    return {
      debug: (m) => emit("debug", m),
      info: (m) => emit("info", m),
      warning: (m) => emit("warning", m),
      error: (m) => emit("error", m),
      get debugEnabled() {
        return isDebug();
      },
      child: (sub) => this.get(`${ns}:${sub}`),
    };
  }
}

/** A logger that records lines in memory, for tests. */
export function memoryLogger(level: LogLevel = "debug"): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    logger: new Logger({ level, journald: false, timestamps: false, write: (l) => lines.push(l) }),
  };
}

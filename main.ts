/**
 * smartmeter: reads an electricity smart meter's customer interface (DLMS/COSEM push
 * messages over HDLC, M-Bus or bare APDUs) and publishes the readings to MQTT with Home
 * Assistant discovery.
 *
 * This file is the command line: it picks the command, wires the process's streams,
 * environment and signals into it, and exits with its status.
 *
 * @module
 */

import denoJson from "./deno.json" with { type: "json" };
import { type CommandIO, Exit, OutputClosed, type ProcessContext } from "./lib/commands/io.ts";
import { decodeCommand } from "./lib/commands/decode.ts";

export const VERSION: string = denoJson.version;

const USAGE = `smartmeter ${VERSION}: smart meter customer interface → MQTT / Home Assistant

Usage:
  smartmeter [run] [--config FILE] [--json] [--no-mqtt] [--http HOST:PORT] [--state-dir DIR]
                     the daemon: meter → MQTT with Home Assistant discovery
                     (--http: also a web page, JSON API and metrics; SIGHUP reloads
                     the config)
  smartmeter check [--config FILE] [--seconds N]
                     validate the config, listen for a telegram, try the broker
  smartmeter decode [--key HEX] [--auth-key HEX] [--meter-type NAME] [--binary] [--explain] [FILE|-]
                     decode a capture (hex text by default) → one JSON object per telegram;
                     --explain shows what each layer saw (never a key), for bug reports
  smartmeter capture [--config FILE] [--seconds N] [--out FILE]
                     record the meter's raw bytes as hex
  smartmeter simulate --meter-type NAME [--key HEX] [--interval S] [--out pty|-|PATH]
                     send frames as that meter would
  smartmeter demo [--meter-type NAME] [--mqtt URL] [--http HOST:PORT]
                     a simulated meter through the whole pipeline → stdout
  smartmeter --version | --help

Run 'smartmeter COMMAND --help' for the options of a command.`;

const encoder = new TextEncoder();

function writeAll(w: { writeSync(p: Uint8Array): number }, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += w.writeSync(data.subarray(off));
}

/** Whether standard error failed once: it is not tried again (a daemon logs a lot). */
let stderrGone = false;

/** The real process's streams and files. */
export const processIO: CommandIO = {
  stdin: Deno.stdin.readable,
  async openFile(path: string) {
    const f = await Deno.open(path, { read: true });
    return f.readable;
  },
  out(line: string) {
    try {
      writeAll(Deno.stdout, encoder.encode(line + "\n"));
    } catch (e) {
      throw new OutputClosed(e);
    }
  },
  err(line: string) {
    // A closed standard error (a journal restarted, a terminal gone) must never stop the
    // daemon: the line is lost, and the next ones are not tried.
    if (stderrGone) return;
    try {
      writeAll(Deno.stderr, encoder.encode(line + "\n"));
    } catch {
      stderrGone = true;
    }
  },
};

/**
 * Every environment variable the program reads. Only these are read (one by one), so the
 * compiled binary can be given exactly these in `--allow-env`.
 */
export const ENV_NAMES = [
  "CREDENTIALS_DIRECTORY",
  "JOURNAL_STREAM",
  "SMARTMETER_AUTH_KEY",
  "SMARTMETER_CONFIG",
  "SMARTMETER_KEY",
  "SMARTMETER_MQTT_PASSWORD",
  "STATE_DIRECTORY",
  "SUPERVISOR_TOKEN",
  "SUPERVISOR_URL",
] as const;

function readEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const name of ENV_NAMES) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/**
 * The process context with a signal that SIGINT and SIGTERM abort, and for the daemon
 * (`reload`) "reload" events on SIGHUP. The other commands keep SIGHUP's default: a closed
 * terminal ends them.
 */
function processContext(opts: { reload?: boolean } = {}): ProcessContext {
  const ac = new AbortController();
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => ac.abort());
  }
  let reload: EventTarget | undefined;
  if (opts.reload) {
    const target = new EventTarget();
    Deno.addSignalListener("SIGHUP", () => target.dispatchEvent(new Event("reload")));
    reload = target;
  }
  return {
    env: readEnv(),
    signal: ac.signal,
    ...(reload ? { reload } : {}),
    stderrIsTerminal: Deno.stderr.isTerminal(),
    version: VERSION,
  };
}

/**
 * Runs the command line `args`; resolves to the exit status. Never throws: every failure
 * a user can cause has its own one-line message, and anything else ends as one line too,
 * never as a stack trace.
 */
export async function main(
  args: string[],
  io: CommandIO = processIO,
  context: (opts?: { reload?: boolean }) => ProcessContext = processContext,
): Promise<number> {
  try {
    return await dispatch(args, io, context);
  } catch (e) {
    if (e instanceof OutputClosed) {
      io.err(`smartmeter: ${e.message}`);
      return Exit.FAILED;
    }
    try {
      io.err(
        `smartmeter: unexpected error: ${
          e instanceof Error ? e.message : String(e)
        } (a bug: please report it with the command line)`,
      );
    } catch { /* stderr is gone too */ }
    return Exit.FAILED;
  }
}

async function dispatch(
  args: string[],
  io: CommandIO,
  context: (opts?: { reload?: boolean }) => ProcessContext,
): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case "decode":
      return await decodeCommand(rest, io);
    // The daemon's commands load MQTT.js and the serial code: only when they are used, so
    // that `decode` starts fast and needs nothing but read access.
    case "run":
      return await (await import("./lib/commands/run.ts")).runCommand(
        rest,
        io,
        context({ reload: true }),
      );
    case "check":
      return await (await import("./lib/commands/check.ts")).checkCommand(rest, io, context());
    case "capture":
      return await (await import("./lib/commands/run.ts")).captureCommand(rest, io, context());
    case "simulate":
      return await (await import("./lib/commands/simulate.ts")).simulateCommand(
        rest,
        io,
        context(),
      );
    case "demo":
      return await (await import("./lib/commands/simulate.ts")).demoCommand(rest, io, context());
    case "--version":
    case "-V":
    case "version":
      io.out(`smartmeter ${VERSION}`);
      return Exit.OK;
    case "--help":
    case "-h":
    case "help":
      io.out(USAGE);
      return Exit.OK;
    default:
      // `smartmeter`, `smartmeter -c FILE` (the Python add-on's command line): run.
      if (command === undefined || command.startsWith("-")) {
        return await (await import("./lib/commands/run.ts")).runCommand(
          args,
          io,
          context({ reload: true }),
        );
      }
      io.err(`smartmeter: unknown command "${command}"`);
      io.err("Try: smartmeter --help");
      return Exit.USAGE;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

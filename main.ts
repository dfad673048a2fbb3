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
import { type CommandIO, Exit, type ProcessContext } from "./lib/commands/io.ts";
import { decodeCommand } from "./lib/commands/decode.ts";
import { captureCommand, runCommand } from "./lib/commands/run.ts";
import { checkCommand } from "./lib/commands/check.ts";
import { demoCommand, simulateCommand } from "./lib/commands/simulate.ts";

export const VERSION: string = denoJson.version;

const USAGE = `smartmeter ${VERSION}: smart meter customer interface → MQTT / Home Assistant

Usage:
  smartmeter [run] [--config FILE] [--json] [--no-mqtt]
                     the daemon: meter → MQTT with Home Assistant discovery
  smartmeter check [--config FILE] [--seconds N]
                     validate the config, listen for a telegram, try the broker
  smartmeter decode [--key HEX] [--auth-key HEX] [--meter-type NAME] [--binary] [FILE|-]
                     decode a capture (hex text by default) → one JSON object per telegram
  smartmeter capture [--config FILE] [--seconds N] [--out FILE]
                     record the meter's raw bytes as hex
  smartmeter simulate --meter-type NAME [--key HEX] [--interval S] [--out pty|-|PATH]
                     send frames as that meter would
  smartmeter demo [--meter-type NAME] [--mqtt URL]
                     a simulated meter through the whole pipeline → stdout
  smartmeter --version | --help

Run 'smartmeter COMMAND --help' for the options of a command.`;

const encoder = new TextEncoder();

function writeAll(w: { writeSync(p: Uint8Array): number }, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += w.writeSync(data.subarray(off));
}

/** The real process's streams and files. */
export const processIO: CommandIO = {
  stdin: Deno.stdin.readable,
  async openFile(path: string) {
    const f = await Deno.open(path, { read: true });
    return f.readable;
  },
  out(line: string) {
    writeAll(Deno.stdout, encoder.encode(line + "\n"));
  },
  err(line: string) {
    writeAll(Deno.stderr, encoder.encode(line + "\n"));
  },
};

/** The process context with a signal that SIGINT and SIGTERM abort. */
function processContext(): ProcessContext {
  const ac = new AbortController();
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => ac.abort());
  }
  return {
    env: Deno.env.toObject(),
    signal: ac.signal,
    stderrIsTerminal: Deno.stderr.isTerminal(),
    version: VERSION,
  };
}

/** Runs the command line `args`; resolves to the exit status. */
export async function main(
  args: string[],
  io: CommandIO = processIO,
  context: () => ProcessContext = processContext,
): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case "decode":
      return await decodeCommand(rest, io);
    case "run":
      return await runCommand(rest, io, context());
    case "check":
      return await checkCommand(rest, io, context());
    case "capture":
      return await captureCommand(rest, io, context());
    case "simulate":
      return await simulateCommand(rest, io, context());
    case "demo":
      return await demoCommand(rest, io, context());
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
        return await runCommand(args, io, context());
      }
      io.err(`smartmeter: unknown command "${command}"`);
      io.err("Try: smartmeter --help");
      return Exit.USAGE;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

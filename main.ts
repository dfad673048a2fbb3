/**
 * smartmeter: reads an electricity smart meter's customer interface (DLMS/COSEM push
 * messages over HDLC, M-Bus or bare APDUs) and publishes the readings to MQTT with Home
 * Assistant discovery.
 *
 * This file is the command line: it parses the first word, wires the process's streams and
 * files into the command, and exits with its status.
 *
 * @module
 */

import denoJson from "./deno.json" with { type: "json" };
import { type CommandIO, Exit } from "./lib/commands/io.ts";
import { decodeCommand } from "./lib/commands/decode.ts";

export const VERSION: string = denoJson.version;

const USAGE = `smartmeter ${VERSION}: smart meter customer interface → MQTT / Home Assistant

Usage:
  smartmeter decode [--key HEX] [--auth-key HEX] [--meter-type NAME] [--binary] [FILE|-]
                    decode a capture (hex text by default) → one JSON object per telegram
  smartmeter --version | --help

Run 'smartmeter COMMAND --help' for the options of a command.`;

const encoder = new TextEncoder();

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

function writeAll(w: { writeSync(p: Uint8Array): number }, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += w.writeSync(data.subarray(off));
}

/** Runs the command line `args`; resolves to the exit status. */
export async function main(args: string[], io: CommandIO = processIO): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case "decode":
      return await decodeCommand(rest, io);
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
    case undefined:
      io.out(USAGE);
      return Exit.USAGE;
    default:
      io.err(`smartmeter: unknown command "${command}"`);
      io.err("Try: smartmeter --help");
      return Exit.USAGE;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

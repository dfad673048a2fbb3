/**
 * The Netz OÖ AMIS meter in `simulate` and `demo`: unlike the push meters it talks only to a
 * reader that answers, so on a line (a pseudo-terminal, a serial port) the simulated meter
 * holds the conversation (lib/amis_line.ts); written to a file or stdout, it gives what the
 * line carries while a reader answers every frame: its search, then its data frames.
 *
 * @module
 */

import { toHex } from "../bytes.ts";
import { AmisSimulator } from "../amis_simulator.ts";
import { runAmisLine } from "../amis_line.ts";
import { PseudoTerminal } from "../sources/pty.ts";
import { SerialError, SerialPort } from "../sources/serial.ts";
import { sleep } from "../sources/source.ts";
import { type CommandIO, Exit, type ProcessContext } from "./io.ts";
import { whyUnwritable } from "./access.ts";

/** How often the demo's meter searches: sooner than the real meter's minute. */
export const DEMO_SEARCH_SECONDS = 3;
/** How often a simulated AMIS meter searches by default, as the real one. */
export const AMIS_SEARCH_SECONDS = 60;
const ACK = Uint8Array.of(0xe5);

export interface AmisSimulateOptions {
  key: Uint8Array;
  /** Seconds between data frames. */
  interval: number;
  /** Seconds between searches. */
  search: number;
  /** Data frames answered before it stops (0: until stopped). */
  count: number;
  seed: number;
  /** `pty`, `-`, a `/dev/...` line, or a file. */
  out: string;
}

/** A simulated AMIS meter talking on `line` until `signal` aborts or `count` frames were answered. */
export async function runAmisMeter(
  line: PseudoTerminal | SerialPort,
  meter: AmisSimulator,
  count: number,
  signal: AbortSignal,
): Promise<void> {
  const stop = new AbortController();
  await runAmisLine(line, meter, {
    signal: AbortSignal.any([signal, stop.signal]),
    onReceive: () => {
      if (count > 0 && meter.stats.answeredAccess.length >= count) stop.abort();
    },
  });
}

/** `simulate --meter-type amis`. */
export async function simulateAmis(
  o: AmisSimulateOptions,
  io: CommandIO,
  ctx: ProcessContext,
): Promise<number> {
  const meter = await AmisSimulator.create({
    key: o.key,
    seed: o.seed,
    framePeriodMs: o.interval * 1000,
    searchPeriodMs: o.search * 1000,
  });
  const cannot = async (e: unknown) => {
    const why = e instanceof SerialError ? e.message : await whyUnwritable(o.out, e);
    io.err(`smartmeter simulate: cannot write to ${o.out}: ${why}`);
    return Exit.USAGE;
  };
  if (o.out === "pty" || o.out.startsWith("/dev/")) {
    let line: PseudoTerminal | SerialPort;
    try {
      if (o.out === "pty") line = PseudoTerminal.open();
      else {
        const path = o.out;
        line = SerialPort.open({ path, baudRate: 9600, dataBits: 8, parity: "even", stopBits: 1 });
      }
    } catch (e) {
      return await cannot(e);
    }
    if (o.out === "pty") {
      io.out(line.path);
      io.err(
        `Simulated AMIS meter on ${line.path}: set dlms.port to it and meter_type: amis. It ` +
          `searches every ${o.search} s until answered, then sends a frame every ${o.interval} s ` +
          `(Ctrl-C stops)`,
      );
    }
    try {
      await runAmisMeter(line, meter, o.count, ctx.signal);
    } finally {
      line.close();
    }
    return Exit.OK;
  }
  // No reader behind a file or stdout: what the line carries while one answers every frame.
  let file: Deno.FsFile | null = null;
  try {
    if (o.out !== "-") file = await Deno.open(o.out, { write: true, create: true, truncate: true });
  } catch (e) {
    return await cannot(e);
  }
  const encoder = new TextEncoder();
  const emit = async (bytes: Uint8Array) => {
    if (file === null) return io.out(toHex(bytes));
    const data = encoder.encode(toHex(bytes) + "\n");
    let at = 0;
    while (at < data.length) at += await file.write(data.subarray(at));
  };
  try {
    let now = 0;
    let sent = 0;
    while (!ctx.signal.aborted && (o.count === 0 || sent < o.count)) {
      now = Math.max(now, meter.nextAtMs(now));
      const frame = await meter.tick(now, new Date());
      if (frame === null) continue;
      await emit(frame.bytes);
      meter.sent(frame, now);
      meter.receive(ACK, now);
      if (frame.kind !== "data") continue;
      sent++;
      if (o.count === 0 || sent < o.count) await sleep(o.interval * 1000, ctx.signal);
    }
  } finally {
    file?.close();
  }
  return Exit.OK;
}

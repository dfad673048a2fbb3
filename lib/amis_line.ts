/**
 * Runs a simulated AMIS meter ({@link AmisSimulator}) on a line: the master side of a
 * pseudo-terminal, or a serial port. The edge of the simulator: it keeps the meter's time,
 * writes its frames, and hands it what the reader sends back.
 *
 * ```
 *   loop: the meter's next act due? ── tick(now) ─▶ frame ─▶ write ─▶ sent(now)
 *         else read the line until then ─▶ bytes ─▶ receive(bytes, now)
 *                                               └─ echo: written back to the reader
 * ```
 *
 * With `echo`, every byte the reader sends comes back to it, as from an IR head that
 * echoes its own transmissions.
 *
 * @module
 */

import type { AmisFrame, AmisSimulator } from "./amis_simulator.ts";

/** A line the meter talks on (a {@link PseudoTerminal} or a {@link SerialPort}). */
export interface MeterLine {
  write(data: Uint8Array, timeoutMs?: number): Promise<number>;
  read(buf: Uint8Array, timeoutMs: number, signal?: AbortSignal): Promise<number>;
}

export interface AmisLineOptions {
  signal: AbortSignal;
  /** Send the reader's bytes back to it (an echoing IR head). */
  echo?: boolean;
  /** Told about every frame once it is on the line. */
  onFrame?: (frame: AmisFrame) => void;
  /** Told after the meter took bytes from the reader (its stats have moved on). */
  onReceive?: () => void;
  /** Monotonic clock, ms (default performance.now). */
  now?: () => number;
  /** The meter's wall clock (default: the real one). */
  wall?: () => Date;
}

async function writeAll(line: MeterLine, data: Uint8Array): Promise<void> {
  let at = 0;
  while (at < data.length) at += await line.write(data.subarray(at));
}

/** Runs the meter until `signal` aborts. Rejects when the line fails. */
export async function runAmisLine(
  line: MeterLine,
  meter: AmisSimulator,
  opts: AmisLineOptions,
): Promise<void> {
  const now = opts.now ?? (() => performance.now());
  const wall = opts.wall ?? (() => new Date());
  const buf = new Uint8Array(256);
  while (!opts.signal.aborted) {
    const t = now();
    const due = meter.nextAtMs(t);
    if (due <= t) {
      const frame = await meter.tick(t, wall());
      if (frame === null) continue;
      await writeAll(line, frame.bytes);
      meter.sent(frame, now());
      opts.onFrame?.(frame);
      continue;
    }
    const n = await line.read(buf, Math.max(1, due - t), opts.signal);
    if (n === 0) continue;
    const at = now();
    const bytes = buf.slice(0, n);
    if (opts.echo) await writeAll(line, bytes);
    meter.receive(bytes, at);
    opts.onReceive?.();
  }
}

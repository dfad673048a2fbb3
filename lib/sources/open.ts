/**
 * Chooses the byte source a `dlms.port` setting names, and finds the serial settings
 * when `baudrate: auto` is configured.
 *
 * - `tcp://host:port`: a TCP serial server
 * - a path to a regular file: a capture, replayed once
 * - anything else (`/dev/ttyUSB0`, `/dev/serial/by-id/...`): a serial port
 *
 * @module
 */

import type { SourceConfig } from "../config.ts";
import { Framer } from "../framing/framer.ts";
import type { Log } from "../log.ts";
import { fileSource } from "./file.ts";
import { type SerialOptions, SerialPort } from "./serial.ts";
import type { ByteSource } from "./source.ts";
import { parseTcpSpec, tcpSource } from "./tcp.ts";

/** Line settings to try for `baudrate: auto`, most common first (operators.md). */
export const AUTO_SETTINGS: readonly Omit<SerialOptions, "path">[] = [
  { baudRate: 9600, dataBits: 8, parity: "none", stopBits: 1 }, // IR heads: Burgenland, Wiener Netze
  { baudRate: 2400, dataBits: 8, parity: "even", stopBits: 1 }, // M-Bus: TINETZ, Netz NÖ, Kaifa
  { baudRate: 2400, dataBits: 8, parity: "none", stopBits: 1 },
  { baudRate: 115200, dataBits: 8, parity: "none", stopBits: 1 }, // P1: Energienetze Steiermark
  { baudRate: 9600, dataBits: 8, parity: "even", stopBits: 1 }, // IR: Netz OÖ AMIS (searching)
  { baudRate: 4800, dataBits: 8, parity: "none", stopBits: 1 },
  { baudRate: 19200, dataBits: 8, parity: "none", stopBits: 1 },
  { baudRate: 38400, dataBits: 8, parity: "none", stopBits: 1 },
];

/** How line settings are written in logs: `9600 8N1`. */
export function describeLine(o: Omit<SerialOptions, "path">): string {
  return `${o.baudRate} ${o.dataBits}${o.parity[0]!.toUpperCase()}${o.stopBits}`;
}

export interface OpenSourceOptions {
  log: Log;
  /** How long to listen at each setting while probing, ms (pushes come every 1–15 s). */
  probeMs?: number;
  /**
   * How long to listen at 9600 8E1, ms: a Netz OÖ AMIS meter waiting for a reader sends
   * one search frame a minute (default 62 s).
   */
  searchProbeMs?: number;
}

/** The line of the Netz OÖ AMIS meters, which search for their reader once a minute. */
const SEARCHING_LINE = { baudRate: 9600, dataBits: 8, parity: "even", stopBits: 1 } as const;
const SEARCH_PROBE_MS = 62_000;

/** The byte source `config.port` names. */
export async function sourceFromConfig(
  config: SourceConfig,
  opts: OpenSourceOptions,
): Promise<ByteSource> {
  const tcp = parseTcpSpec(config.port);
  if (tcp) return tcpSource(tcp.hostname, tcp.port);
  if (config.port.startsWith("tcp:")) {
    throw new Error(`dlms.port "${config.port}" is not a TCP address: write tcp://host:port`);
  }
  let info: Deno.FileInfo | null = null;
  try {
    info = await Deno.stat(config.port);
  } catch {
    // Not there (yet): a USB adapter may be plugged in later. The serial source says so.
  }
  if (info?.isFile) return fileSource(config.port);
  if (info?.isDirectory) {
    throw new Error(
      `dlms.port "${config.port}" is a directory: give the serial device (/dev/ttyUSB0, ` +
        "/dev/serial/by-id/...), tcp://host:port or a capture file",
    );
  }
  return serialSource(config, opts);
}

/** How long an answer to the meter may wait for room in the port's output buffer, ms. */
const REPLY_WRITE_MS = 100;

/** A serial port as a byte source; with `baudrate: auto` the first open probes the line. */
export function serialSource(config: SourceConfig, opts: OpenSourceOptions): ByteSource {
  let found: SerialOptions | null = config.baudRate === "auto" ? null : {
    path: config.port,
    baudRate: config.baudRate,
    dataBits: config.dataBits,
    parity: config.parity,
    stopBits: config.stopBits,
  };
  let probes = 0;
  /** The port open now, for the answers to the meter. */
  let current: SerialPort | null = null;
  return {
    description: config.port,
    kind: "serial",
    async write(bytes: Uint8Array) {
      const port = current;
      if (port === null || port.closed) {
        throw new Error(`Cannot answer the meter: ${config.port} is not open`);
      }
      const n = await port.write(bytes, REPLY_WRITE_MS);
      if (n < bytes.length) {
        throw new Error(
          `Cannot answer the meter: ${config.port} took ${n} of ${bytes.length} bytes in ${REPLY_WRITE_MS} ms`,
        );
      }
    },
    async open(signal: AbortSignal) {
      let port: SerialPort;
      if (found) port = SerialPort.open(found);
      else {
        // Only the first round of probing is told at info level; repeats go to debug.
        const log = probes++ === 0 ? opts.log : { ...opts.log, info: opts.log.debug };
        const probed = await probeLine(config.port, signal, { ...opts, log });
        port = probed.port;
        found = probed.options;
      }
      current = port;
      return closingStream(port, signal, () => {
        if (current === port) current = null;
      });
    },
  };
}

/** The port's stream; the port is closed when the stream ends, fails or is cancelled. */
function closingStream(
  port: SerialPort,
  signal: AbortSignal,
  closed: () => void,
): ReadableStream<Uint8Array> {
  const reader = port.readable({ signal }).getReader();
  const close = () => {
    closed();
    try {
      port.close();
    } catch { /* already closed */ }
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done } = await reader.read();
        if (done) {
          close();
          controller.close();
        } else controller.enqueue(value);
      } catch (e) {
        close();
        controller.error(e);
      }
    },
    async cancel() {
      await reader.cancel().catch(() => {});
      close();
    },
  });
}

/**
 * Tries the {@link AUTO_SETTINGS} one after the other until a frame with a valid checksum
 * (or a whole bare APDU) arrives, and returns the open port with the settings that worked.
 * An M-Bus master's search or data frame for the reader (Netz OÖ AMIS) counts, and is
 * answered on the spot.
 * @throws {Error} when no setting gave a frame
 */
export async function probeLine(
  path: string,
  signal: AbortSignal,
  opts: OpenSourceOptions,
): Promise<{ port: SerialPort; options: SerialOptions }> {
  const probeMs = opts.probeMs ?? 12_000;
  const port = SerialPort.open({ path, ...AUTO_SETTINGS[0]! });
  const buf = new Uint8Array(1024);
  try {
    for (const setting of AUTO_SETTINGS) {
      if (signal.aborted) break;
      port.reconfigure(setting);
      const searching = describeLine(setting) === describeLine(SEARCHING_LINE);
      const listenMs = searching
        ? Math.max(probeMs, opts.searchProbeMs ?? SEARCH_PROBE_MS)
        : probeMs;
      opts.log.info(
        `baudrate auto: listening at ${describeLine(setting)} on ${path}${
          searching
            ? ` for up to ${
              Math.round(listenMs / 1000)
            } s (a Netz OÖ AMIS meter searches for its reader once a minute)`
            : ""
        }`,
      );
      const framer = new Framer();
      const until = performance.now() + listenMs;
      let bytes = 0;
      while (!signal.aborted && performance.now() < until) {
        const n = await port.read(buf, Math.max(1, until - performance.now()), signal);
        bytes += n;
        const events = framer.push(buf.subarray(0, n));
        // A meter that wants an answer (AMIS) gets it at once, here too: else it goes on
        // searching, and the next search is a minute away.
        for (const e of events) if (e.kind === "reply") await port.write(e.bytes, 100);
        if (
          events.some((e) => e.kind === "payload" || e.kind === "mbus-data" || e.kind === "reply")
        ) {
          opts.log.info(
            `baudrate auto: frames arrive at ${
              describeLine(setting)
            }; set dlms.baudrate, parity, bytesize and stopbits to this to skip probing`,
          );
          return { port, options: { path, ...setting } };
        }
      }
      opts.log.info(
        `baudrate auto: no valid frame at ${describeLine(setting)} (${bytes} bytes received)`,
      );
    }
  } catch (e) {
    port.close();
    throw e;
  }
  port.close();
  throw new Error(
    `No frame found at any of ${AUTO_SETTINGS.length} line settings on ${path}: check the wiring, that the customer interface is enabled by the grid operator, and that the IR head sits on the meter`,
  );
}

/**
 * A TCP serial server as a byte source (`tcp://host:port`: ser2net, ESP-Link, Tasmota
 * serial bridges). The meter's bytes arrive unchanged over the socket, and the answers to
 * the meter (the AMIS acknowledgement) go back the same way.
 *
 * @module
 */

import type { ByteSource } from "./source.ts";

/** Parses `tcp://host:port`; null when `spec` is not a TCP address. */
export function parseTcpSpec(spec: string): { hostname: string; port: number } | null {
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d{1,5})\/?$/.exec(spec);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  return { hostname: m[1]!.replace(/^\[|\]$/g, ""), port };
}

/** A byte source reading from a TCP connection. */
export function tcpSource(hostname: string, port: number): ByteSource {
  const description = `tcp://${hostname}:${port}`;
  /** The connection open now, for the answers to the meter. */
  let current: Deno.Conn | null = null;
  return {
    description,
    kind: "tcp",
    async write(bytes: Uint8Array) {
      const conn = current;
      if (conn === null) {
        throw new Error(`Cannot answer the meter: ${description} is not connected`);
      }
      let at = 0;
      while (at < bytes.length) at += await conn.write(bytes.subarray(at));
    },
    async open(signal: AbortSignal) {
      const conn = await Deno.connect({ hostname, port });
      current = conn;
      const onAbort = () => {
        if (current === conn) current = null;
        try {
          conn.close();
        } catch { /* already closed */ }
      };
      signal.addEventListener("abort", onAbort, { once: true });
      const reader = conn.readable.getReader();
      return new ReadableStream<Uint8Array>({
        async pull(controller) {
          try {
            const { value, done } = await reader.read();
            if (done) {
              signal.removeEventListener("abort", onAbort);
              if (current === conn) current = null;
              controller.close();
            } else controller.enqueue(value);
          } catch (e) {
            signal.removeEventListener("abort", onAbort);
            if (current === conn) current = null;
            if (signal.aborted) controller.close();
            else controller.error(e);
          }
        },
        cancel() {
          signal.removeEventListener("abort", onAbort);
          onAbort();
        },
      });
    },
  };
}

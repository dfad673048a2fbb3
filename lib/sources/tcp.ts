/**
 * A TCP serial server as a byte source (`tcp://host:port`: ser2net, ESP-Link, Tasmota
 * serial bridges). The meter's bytes arrive unchanged over the socket.
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
  return {
    description: `tcp://${hostname}:${port}`,
    kind: "tcp",
    async open(signal: AbortSignal) {
      const conn = await Deno.connect({ hostname, port });
      const onAbort = () => {
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
              controller.close();
            } else controller.enqueue(value);
          } catch (e) {
            signal.removeEventListener("abort", onAbort);
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

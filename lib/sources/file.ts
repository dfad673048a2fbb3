/**
 * A capture file as a byte source, replayed once: raw bytes, or hex text as written by
 * `smartmeter capture` (detected from the file's first bytes).
 *
 * @module
 */

import { HexStreamDecoder } from "../bytes.ts";
import type { ByteSource } from "./source.ts";

/** Whether a file's first bytes look like hex text rather than raw meter bytes. */
export function looksLikeHexText(head: Uint8Array): boolean {
  if (head.length === 0) return false;
  for (const b of head) {
    const hex = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
    const space = b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
    if (!hex && !space) return false;
  }
  return true;
}

/** A byte source that reads a capture file once (then the stream ends). */
export function fileSource(path: string): ByteSource {
  return {
    description: path,
    kind: "file",
    async open(signal: AbortSignal) {
      const file = await Deno.open(path, { read: true });
      if ((await file.stat()).size === 0) {
        file.close();
        throw new Error(
          "the capture file is empty: nothing to replay (smartmeter capture records a meter's bytes)",
        );
      }
      const reader = file.readable.getReader();
      let hex: HexStreamDecoder | null | undefined; // undefined: not decided yet
      const text = new TextDecoder();
      let bytes = 0;
      return new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (signal.aborted) {
            await reader.cancel();
            controller.close();
            return;
          }
          const { value, done } = await reader.read();
          if (done) {
            if (hex) {
              const rest = hex.push(text.decode());
              hex.end();
              if (rest.length > 0) controller.enqueue(rest);
              bytes += rest.length;
            }
            if (bytes === 0) {
              controller.error(new Error("the capture file holds no bytes, only white space"));
            } else controller.close();
            return;
          }
          if (hex === undefined) {
            hex = looksLikeHexText(value.subarray(0, 4096)) ? new HexStreamDecoder() : null;
          }
          const chunk = hex ? hex.push(text.decode(value, { stream: true })) : value;
          bytes += chunk.length;
          controller.enqueue(chunk);
        },
        async cancel() {
          await reader.cancel();
        },
      });
    },
  };
}

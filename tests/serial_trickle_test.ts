/**
 * A slow line through a USB serial adapter: the meter's push arrives a few bytes at a time
 * (an FTDI chip sends what it has every 16 ms; at 2400 baud that is 4 bytes). Read as it
 * comes, every USB packet would wake the daemon (issue 13: 44 wake-ups a second at one
 * push every 5 s). `SerialPort.readable()` lets the bytes gather for
 * {@link READ_COALESCE_MS} after a read that got some, so a push is read in a few chunks,
 * each still soon after its bytes arrived.
 */

import { equal, ok as assert } from "node:assert/strict";
import { PseudoTerminal } from "../lib/sources/pty.ts";
import { READ_COALESCE_MS, SerialPort } from "../lib/sources/serial.ts";
import { NonBlockingFd } from "../lib/sources/libc.ts";
import { hasPseudoTerminals } from "./pty_support.ts";

const hasPty = hasPseudoTerminals("serial_trickle_test.ts");

/** What an FTDI adapter passes on per USB packet at 2400 baud (240 bytes/s × 16 ms). */
const SLICE_BYTES = 4;
const SLICE_MS = 16;
/** A push of the Netz NÖ meter: two M-Bus segments, 282 bytes. */
const PUSH_BYTES = 282;
/** Generous bound for "soon" on a machine shared with other test runs. */
const PROMPT_MS = 500;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function withPort(
  fn: (pty: PseudoTerminal, port: SerialPort) => Promise<void>,
  baudRate = 2400,
) {
  const pty = PseudoTerminal.open();
  let port: SerialPort | undefined;
  try {
    port = SerialPort.open({
      path: pty.path,
      baudRate,
      dataBits: 8,
      parity: "none",
      stopBits: 1,
    });
    await fn(pty, port);
  } finally {
    port?.close();
    pty.close();
    await port?.whenIdle();
    await pty.whenIdle();
  }
}

/** Writes `bytes` a slice every 16 ms; resolves when the last slice was written. */
async function trickle(pty: PseudoTerminal, bytes: Uint8Array): Promise<number> {
  for (let at = 0; at < bytes.length; at += SLICE_BYTES) {
    if (at > 0) await sleep(SLICE_MS);
    await pty.write(bytes.subarray(at, at + SLICE_BYTES), 2_000);
  }
  return performance.now();
}

Deno.test({
  name: "SerialPort.readable() reads a push trickling in at 2400 baud in a few chunks",
  ignore: !hasPty,
  fn: () =>
    withPort(async (pty, port) => {
      const push = Uint8Array.from({ length: PUSH_BYTES }, (_, i) => (i * 7 + 3) & 0xff);
      const reader = port.readable().getReader();
      try {
        const pollsBefore = NonBlockingFd.pollCalls;
        const started = performance.now();
        const written = trickle(pty, push);
        const got: number[] = [];
        let chunks = 0;
        let lastAt = 0;
        while (got.length < push.length) {
          const { value, done } = await reader.read();
          if (done) break;
          chunks++;
          got.push(...value);
          lastAt = performance.now();
        }
        const lastWrittenAt = await written;
        const polls = NonBlockingFd.pollCalls - pollsBefore;
        equal(got.length, push.length);
        assert(got.every((b, i) => b === push[i]), "the bytes arrive whole and in order");
        // One read per coalescing period at most, plus the first byte and the tail.
        const bound = Math.ceil((lastWrittenAt - started) / READ_COALESCE_MS) + 2;
        const slices = Math.ceil(PUSH_BYTES / SLICE_BYTES);
        assert(
          chunks <= bound,
          `${chunks} chunks for ${slices} slices over ${
            Math.round(lastWrittenAt - started)
          } ms (at most ${bound})`,
        );
        assert(polls <= bound, `${polls} poll(2) calls for one push (at most ${bound})`);
        assert(
          lastAt - lastWrittenAt < READ_COALESCE_MS + PROMPT_MS,
          `the last bytes were read ${Math.round(lastAt - lastWrittenAt)} ms after they came`,
        );
      } finally {
        await reader.cancel();
      }
    }),
});

Deno.test({
  name: "SerialPort.readable() yields a burst at once: the pause comes only after a read",
  ignore: !hasPty,
  fn: () =>
    withPort(async (pty, port) => {
      const reader = port.readable().getReader();
      try {
        // Idle first: the next read waits in poll(2) and takes the burst as soon as it comes.
        const next = reader.read();
        await sleep(READ_COALESCE_MS * 2);
        await pty.write(new TextEncoder().encode("burst"), 2_000);
        const writtenAt = performance.now();
        const { value } = await next;
        equal(new TextDecoder().decode(value), "burst");
        assert(
          performance.now() - writtenAt < PROMPT_MS,
          `read ${Math.round(performance.now() - writtenAt)} ms after the write`,
        );
      } finally {
        await reader.cancel();
      }
    }),
});

Deno.test({
  name: "SerialPort.readable() ends at once when aborted while the bytes gather",
  ignore: !hasPty,
  fn: () =>
    withPort(async (pty, port) => {
      const controller = new AbortController();
      const reader = port.readable({ signal: controller.signal, coalesceMs: 30_000 })
        .getReader();
      await pty.write(new TextEncoder().encode("first"), 2_000);
      equal(new TextDecoder().decode((await reader.read()).value), "first");
      // The next read waits 30 s for more bytes to gather; the abort must not.
      const next = reader.read();
      await sleep(100);
      const abortedAt = performance.now();
      controller.abort();
      const { done } = await next;
      equal(done, true);
      const ms = performance.now() - abortedAt;
      assert(ms < PROMPT_MS, `the stream ended ${Math.round(ms)} ms after the abort`);
    }),
});

Deno.test({
  name:
    "SerialPort.readable() does not hold bytes back at 9600 baud and faster (an AMIS meter wants its answer within milliseconds)",
  ignore: !hasPty,
  fn: () =>
    withPort(async (pty, port) => {
      const reader = port.readable().getReader();
      try {
        await pty.write(new TextEncoder().encode("first part of a frame"), 2_000);
        await reader.read();
        // The frame's last bytes right after: read at once, not after a gathering pause.
        const next = reader.read();
        await pty.write(new TextEncoder().encode("last bytes"), 2_000);
        const writtenAt = performance.now();
        const { value } = await next;
        equal(new TextDecoder().decode(value), "last bytes");
        const ms = performance.now() - writtenAt;
        assert(ms < READ_COALESCE_MS / 2, `read ${Math.round(ms)} ms after the write`);
      } finally {
        await reader.cancel();
      }
    }, 9600),
});

/**
 * Byte sources behind one interface, and the loop that keeps one open.
 *
 * A {@link ByteSource} opens a `ReadableStream<Uint8Array>` of the meter's bytes: a serial
 * port, a TCP serial server, or a capture file. Serial ports and TCP servers can also carry
 * bytes back to the meter ({@link ByteSource.write}): only ever the answers the decoder
 * decides (the M-Bus acknowledgement E5 a Netz OÖ AMIS meter waits for), written by
 * {@link writeReplies}. A replayed capture answers nothing. {@link readResilient} reads it forever: when
 * the device vanishes (USB unplug) or the TCP peer closes, it logs once per outage, retries
 * with a capped backoff, and logs again when the bytes flow again.
 *
 * @module
 */

import type { Log } from "../log.ts";

/** Something that yields the meter's bytes. */
export interface ByteSource {
  /** For logs: the device path or address. */
  readonly description: string;
  readonly kind: "serial" | "tcp" | "file";
  /** Opens the source. Rejects when it cannot be opened (missing device, refused, ...). */
  open(signal: AbortSignal): Promise<ReadableStream<Uint8Array>>;
  /**
   * Writes all of `bytes` to the meter over the connection open now; absent where nothing
   * can go back (a capture file). Starts the write before it returns. Rejects when no
   * connection is open or the bytes cannot be written at once.
   */
  write?(bytes: Uint8Array): Promise<void>;
}

/**
 * Writes the decoder's answers to `source` at once, in order, without waiting: the meter
 * wants them within 0.5 s, and the chunk's telegrams are decoded meanwhile. A source that
 * cannot write (a replayed capture) is left alone; a failed write is passed to `failed`.
 */
export function writeReplies(
  source: ByteSource,
  replies: readonly Uint8Array[],
  failed: (e: Error) => void,
): void {
  if (replies.length === 0 || source.write === undefined) return;
  let chain: Promise<void> | null = null;
  for (const reply of replies) {
    chain = chain === null ? source.write(reply) : chain.then(() => source.write!(reply));
  }
  chain!.catch((e) => failed(e instanceof Error ? e : new Error(String(e))));
}

/** Retry delays: 0.5 s doubling to 5 s, so a replugged IR head is read again within seconds. */
export function backoffMs(attempt: number, minMs = 500, maxMs = 5000): number {
  return Math.min(maxMs, minMs * 2 ** Math.min(attempt, 16));
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** What the loop reports besides bytes. */
export interface SourceListener {
  /** The source is open (first time, or again after an outage of `downMs`). */
  connected?(downMs: number | null): void;
  /** The source was lost or could not be opened; called once per outage. */
  lost?(error: Error): void;
}

export interface ResilientOptions {
  signal: AbortSignal;
  log: Log;
  listener?: SourceListener;
  /** Monotonic clock in ms (injected for tests). */
  now?: () => number;
  backoff?: (attempt: number) => number;
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Reads `source` until `signal` aborts, reopening it after every failure. A file source is
 * read once: the generator returns at its end, and a file that cannot be opened throws.
 */
export async function* readResilient(
  source: ByteSource,
  opts: ResilientOptions,
): AsyncGenerator<Uint8Array> {
  const { signal, log, listener } = opts;
  const now = opts.now ?? (() => performance.now());
  const backoff = opts.backoff ?? backoffMs;
  let attempt = 0;
  let downSince: number | null = null;
  let everConnected = false;
  while (!signal.aborted) {
    let stream: ReadableStream<Uint8Array>;
    try {
      stream = await source.open(signal);
    } catch (e) {
      if (signal.aborted) return;
      if (source.kind === "file") throw e;
      if (downSince === null) {
        downSince = now();
        log.warning(
          `${everConnected ? "Cannot reopen" : "Cannot open"} ${source.description}: ${
            describe(e)
          }; retrying until it is back`,
        );
        listener?.lost?.(e instanceof Error ? e : new Error(describe(e)));
      } else log.debug(`Still cannot open ${source.description}: ${describe(e)}`);
      await sleep(backoff(attempt++), signal);
      continue;
    }
    const downMs = downSince === null ? null : now() - downSince;
    if (downMs === null) log.info(`Reading from ${source.description}`);
    else log.info(`${source.description} is back after ${(downMs / 1000).toFixed(1)} s`);
    listener?.connected?.(downMs);
    everConnected = true;
    downSince = null;
    attempt = 0;
    let failure: unknown = null;
    try {
      for await (const chunk of stream) {
        if (chunk.length > 0) yield chunk;
      }
    } catch (e) {
      failure = e;
    }
    if (signal.aborted) return;
    if (source.kind === "file") {
      if (failure) throw failure;
      return;
    }
    downSince = now();
    const why = failure ? describe(failure) : "the other side closed the connection";
    log.warning(`Lost ${source.description}: ${why}; reconnecting`);
    listener?.lost?.(failure instanceof Error ? failure : new Error(why));
    await sleep(backoff(attempt++), signal);
  }
}

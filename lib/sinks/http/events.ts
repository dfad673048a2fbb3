/**
 * Server-Sent Events for `/api/v1/events`: one stream per client, fed without ever waiting
 * for one.
 *
 * ```
 *  telegram ─▶ broadcast(text) ─encode once─▶ enqueue to every client's stream queue
 *                                              │ a queue above MAX_QUEUED_BYTES: that
 *                                              │ client is too slow and is dropped
 *  new client, MAX_CLIENTS open ─▶ the client with the longest queue is dropped for it;
 *                                  when none is behind, the newcomer gets 503
 *  every HEARTBEAT_MS ─▶ ": keep-alive" (proxies close idle streams; dead peers show),
 *                        only while a stream is open
 * ```
 *
 * Enqueueing is synchronous and bounded: a client that does not read costs at most
 * {@link MAX_QUEUED_BYTES}, and the meter path never awaits a client.
 *
 * @module
 */

/** Streams open at once. */
export const MAX_CLIENTS = 100;
/** Unsent bytes a client may fall behind before it is dropped (about a hundred telegrams). */
export const MAX_QUEUED_BYTES = 256 * 1024;
/** A comment line this often keeps idle streams open through proxies. */
export const HEARTBEAT_MS = 25_000;

const encoder = new TextEncoder();
const HEARTBEAT = encoder.encode(": keep-alive\n\n");

interface Client {
  readonly controller: ReadableStreamDefaultController<Uint8Array>;
  readonly openedMs: number;
  queued(): number;
}

/** Formats one event: optional id and name, then the data lines. */
export function sseEvent(data: string, opts: { id?: number; event?: string } = {}): string {
  let out = "";
  if (opts.event !== undefined) out += `event: ${opts.event}\n`;
  if (opts.id !== undefined) out += `id: ${opts.id}\n`;
  for (const line of data.split("\n")) out += `data: ${line}\n`;
  return out + "\n";
}

export interface EventHubOptions {
  maxClients?: number;
  maxQueuedBytes?: number;
  heartbeatMs?: number;
  /** Logs a dropped client (debug level). */
  log?: (msg: string) => void;
}

/** The open event streams. */
export class EventHub {
  readonly #clients = new Set<Client>();
  readonly #maxClients: number;
  readonly #maxQueued: number;
  readonly #log: (msg: string) => void;
  readonly #heartbeatMs: number;
  /** Runs only while a stream is open: an idle server wakes nobody. */
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  /** Clients dropped for being slow, or to make room. */
  dropped = 0;
  #closed = false;

  constructor(opts: EventHubOptions = {}) {
    this.#maxClients = opts.maxClients ?? MAX_CLIENTS;
    this.#maxQueued = opts.maxQueuedBytes ?? MAX_QUEUED_BYTES;
    this.#log = opts.log ?? (() => {});
    this.#heartbeatMs = opts.heartbeatMs ?? HEARTBEAT_MS;
  }

  /** Whether the keep-alive timer runs (only while a stream is open). */
  get beating(): boolean {
    return this.#heartbeat !== undefined;
  }

  #add(c: Client): void {
    this.#clients.add(c);
    if (this.#heartbeat !== undefined) return;
    this.#heartbeat = setInterval(() => this.#send(HEARTBEAT), this.#heartbeatMs);
    // The heartbeat alone never keeps the process alive.
    Deno.unrefTimer(Number(this.#heartbeat));
  }

  #remove(c: Client): void {
    this.#clients.delete(c);
    if (this.#clients.size > 0) return;
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
  }

  /** Streams open now. */
  get size(): number {
    return this.#clients.size;
  }

  /**
   * A new stream starting with `first` (already formatted events), or null when every
   * place is taken by a client that keeps up.
   */
  open(first: string): ReadableStream<Uint8Array> | null {
    if (this.#closed) return null;
    if (this.#clients.size >= this.#maxClients) {
      let slowest: Client | null = null;
      for (const c of this.#clients) {
        if (slowest === null || c.queued() > slowest.queued()) slowest = c;
      }
      if (slowest === null || slowest.queued() === 0) return null;
      this.#drop(slowest, "to make room for a new one");
    }
    let client: Client | undefined;
    const hwm = this.#maxQueued;
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        client = {
          controller,
          openedMs: Date.now(),
          // desiredSize = highWaterMark − bytes queued
          queued: () => hwm - (controller.desiredSize ?? hwm),
        };
        this.#add(client);
        controller.enqueue(encoder.encode(`retry: 5000\n\n${first}`));
      },
      cancel: () => {
        if (client) this.#remove(client);
      },
    }, new ByteLengthQueuingStrategy({ highWaterMark: hwm }));
  }

  /** Sends one formatted event to every client; drops those that have fallen too far behind. */
  broadcast(event: string): void {
    if (this.#clients.size === 0) return;
    this.#send(encoder.encode(event));
  }

  #send(bytes: Uint8Array): void {
    for (const c of this.#clients) {
      if (c.queued() + bytes.length > this.#maxQueued) {
        this.#drop(c, `it fell ${c.queued()} bytes behind`);
        continue;
      }
      try {
        c.controller.enqueue(bytes);
      } catch {
        this.#remove(c);
      }
    }
  }

  #drop(c: Client, why: string): void {
    this.#remove(c);
    this.dropped++;
    this.#log(`Event stream dropped: ${why}`);
    try {
      // error(), not close(): what is queued is thrown away at once, not sent first.
      c.controller.error(new Error(`Event stream dropped: ${why}`));
    } catch {
      // already closed or errored
    }
  }

  /** Ends every stream and stops the heartbeat. */
  close(): void {
    this.#closed = true;
    for (const c of [...this.#clients]) {
      this.#remove(c);
      try {
        c.controller.close();
      } catch {
        // already closed
      }
    }
  }
}

/**
 * The framer: bytes from a serial port, in chunks of any size, in; whole link-layer
 * payloads (a DLMS APDU, or one general-block-transfer block) out. It finds out by itself
 * whether the meter frames its pushes as HDLC, as M-Bus long frames, or not at all (bare
 * APDUs on P1 ports), verifies checksums, joins link-layer segments, resynchronises after
 * garbage, bounds its memory and drops a partial frame after a silence gap. Pure: the
 * caller passes the time; nothing here reads a clock.
 *
 * ```
 *   push(chunk, nowMs)
 *     │ silence > gapMs? ──▶ drop the partial frame / segment chain ("error")
 *     ▼
 *   buffer (≤ maxBufferBytes), byte at its head ──┬─ 7E            ─▶ scanHdlcFrame
 *                                                 ├─ 68 / E5 / 10  ─▶ scanMbusFrame
 *                                                 ├─ an APDU tag   ─▶ scanRawApdu
 *                                                 └─ anything else ─▶ skip (garbage)
 *   scan result:  frame      ─▶ reassembler (S bit / CI segments) ─▶ "payload"
 *                            ─▶ OMS data (CI 5B)                   ─▶ "mbus-data"
 *                 short      ─▶ SND_NKE to us: "reply"; else "skipped"
 *                 need-more  ─▶ wait for the next chunk
 *                 skip n     ─▶ "skipped", consecutive skips coalesced
 *                 invalid    ─▶ "error", the frame dropped
 *   a frame that must be answered (SND_NKE, SND_UD to our address) ─▶ "reply" first
 *   the reply's bytes coming back right after it (an echoing IR head) ─▶ "echo"
 * ```
 *
 * Detection and locking. At the buffer head, `7E` tries HDLC, `68` M-Bus (`E5` and short
 * frames `10 ..` are skipped), an APDU tag (`0F`, `DB`, `DC`, `E0`, `C8`..`D7`) a bare APDU;
 * anything else is garbage. A candidate whose header does not check out (bad HCS, unequal
 * M-Bus lengths, implausible APDU header) skips one byte and the search goes on. The first
 * frame that passes a checksum (HDLC FCS or M-Bus CS) locks the framer to the checksummed
 * framings: from then on only HDLC and M-Bus start bytes begin a candidate (a capture may
 * hold both), so a stray `0F` or `DB` inside the garbage of an HDLC stream can never start
 * a false bare APDU. Bare APDUs have no
 * checksum, so they never lock. Before the lock, two more rules keep guesses out: a
 * bare-APDU candidate that has an HDLC header with a right HCS, or an M-Bus `68 L L 68`
 * header, inside it is refused (a checksummed frame wins over a guess); and the APDU
 * forms with little redundancy (block transfer `E0`, service-specific ciphering
 * `C8`..`D7`) are tried only where a frame is expected to begin: at the start, after a
 * silence gap, or right after a frame, never right after skipped garbage. `reset()`
 * removes the lock.
 *
 * Answers. The reader is an M-Bus slave at `replyAddress` (0xF0, the Netz OÖ AMIS reader's
 * address): a good SND_NKE or SND_UD sent there must be answered with E5 within 0.5 s, so
 * the framer decides the answer as soon as the frame's last byte is in, synchronously, and
 * returns it as a "reply" event (before the frame's own event) for the caller to write. It
 * writes nothing itself. Some optical heads echo what they send: bytes equal to the reply
 * that arrive next (before anything else, and before a silence gap) are that echo, reported
 * as "echo" and never as garbage, and the next frame is parsed as if they had not come.
 *
 * Events. "payload" for every whole payload; "error" for a frame whose header was
 * credible (HDLC HCS right, M-Bus `68 L L 68`, a checked APDU header) but that failed
 * later (checksum, stop byte, segment order, CI, length, end of input, silence gap): each
 * is one failed telegram upstream; "skipped" for garbage, consecutive skips coalesced into
 * one event (its reason "no frame start" when the reasons differ) that is emitted when
 * something else happens, at a gap, at the end, or when it reaches `maxBufferBytes`.
 * Events do not depend on how the input is chunked (one rare exception: whether a
 * bare-APDU guess contains a link header is judged with the bytes at hand, so a header
 * starting in its last dozen bytes may be seen in one chunking and not in another).
 * Sizes quoted in messages count an HDLC frame with both flags, as on the wire.
 *
 * Bounds. Never more than `maxBufferBytes` of unparsed input: when the buffer is full and
 * its head is still an unfinished candidate, that byte is skipped. A frame whose header
 * announces more than the buffer can hold is an error and is dropped as it streams by.
 * Reassembled payloads never exceed `maxPayloadBytes`. The hot path allocates nothing per
 * byte: garbage is skipped by index, frames are views into the buffer, and bytes are
 * copied only into a payload or a pending segment.
 *
 * @module
 */

import { HDLC_FLAG, HdlcReassembler, isHdlcFormatStart, scanHdlcFrame } from "./hdlc.ts";
import type { ChainOutput, HdlcFrame, HdlcScan } from "./hdlc.ts";
import {
  dlmsSegment,
  hasMbusHeader,
  isOmsFrame,
  MBUS_ACK,
  MBUS_C_SND_NKE,
  MBUS_READER_ADDRESS,
  MBUS_SHORT_START,
  MBUS_START,
  MbusReassembler,
  mbusReply,
  scanMbusFrame,
} from "./mbus.ts";
import type { MbusChainOutput, MbusFrame, MbusScan, MbusShortFrame } from "./mbus.ts";
import { isRawApduTag, type RawScan, scanRawApdu } from "./raw.ts";

/** The link layer a payload came in. */
export type Framing = "hdlc" | "mbus" | "raw";

/** What the framer reports. */
export type FramerEvent =
  | {
    kind: "payload";
    framing: Framing;
    payload: Uint8Array;
    /** Stream offset of the first frame's first byte. */
    offset: number;
    /** Link frames it took. */
    frames: number;
  }
  /** A frame whose header was credible but which is bad. */
  | { kind: "error"; framing: Framing; offset: number; message: string }
  /** Garbage, or frames that carry no payload; consecutive skips are one event. */
  | { kind: "skipped"; offset: number; bytes: number; reason: string }
  /**
   * The frame at `offset` must be answered with `bytes` now: an M-Bus SND_NKE (the
   * master's search) or SND_UD (data) sent to the reader's address.
   */
  | { kind: "reply"; offset: number; bytes: Uint8Array; request: "SND_NKE" | "SND_UD" }
  /** The reply's own bytes coming back (an echoing IR head): not garbage. */
  | { kind: "echo"; offset: number; bytes: number }
  /**
   * An M-Bus long frame with OMS data (CI 0x5B) for a layer above: `data` is a copy of
   * everything after CI, up to the checksum.
   */
  | {
    kind: "mbus-data";
    offset: number;
    c: number;
    a: number;
    ci: number;
    data: Uint8Array;
  };

/** Limits of a {@link Framer}. */
export interface FramerOptions {
  /** Silence after which a partial frame or segment chain is dropped, ms (default 1000). */
  gapMs?: number;
  /** Most unparsed input held (default 8192, at least 64). */
  maxBufferBytes?: number;
  /** Longest reassembled payload (default 65536). */
  maxPayloadBytes?: number;
  /**
   * The M-Bus primary address this reader answers at (default 0xF0, the Netz OÖ AMIS
   * reader's); null: never answer anything.
   */
  replyAddress?: number | null;
}

const DEFAULT_GAP_MS = 1000;
const DEFAULT_MAX_BUFFER_BYTES = 8192;
const DEFAULT_MAX_PAYLOAD_BYTES = 65536;
const MIN_BUFFER_BYTES = 64;
/** Reason of a skip of bytes that start no frame, or of a run of mixed reasons. */
const GARBAGE = "no frame start";
const INITIAL_CAPACITY = 1024;
/** Below this many bytes a chunk is copied in a loop rather than through a view. */
const SMALL_COPY = 16;
/** Offset of the byte after an HDLC flag: the frame format, or another flag. */
const AFTER_FLAG = 1;
/** Bytes of `68 L L 68`. */
const MBUS_HEADER_LENGTH = 4;

/** Which bytes may start a candidate: with `raw`, bare APDU tags too. */
function startTable(raw: boolean): Uint8Array {
  const t = new Uint8Array(256);
  t[HDLC_FLAG] = 1;
  t[MBUS_START] = 1;
  t[MBUS_ACK] = 1;
  t[MBUS_SHORT_START] = 1;
  if (raw) { for (let b = 0; b < 256; b++) if (isRawApduTag(b)) t[b] = 1; }
  return t;
}
const STARTS_ANY = startTable(true);
/** After the lock: both checksummed framings, no bare-APDU guesses. */
const STARTS_CHECKSUMMED = startTable(false);

const NAMES: Record<Framing, { article: string; frame: string; chain: string }> = {
  hdlc: { article: "an", frame: "HDLC frame", chain: "HDLC segment chain" },
  mbus: { article: "an", frame: "M-Bus frame", chain: "M-Bus segment chain" },
  raw: { article: "a", frame: "raw APDU", chain: "raw APDU" },
};

/** Why buffered bytes are being given up: the input ended, or the line fell silent. */
type Ending = { readonly kind: "end" } | { readonly kind: "gap"; readonly silenceMs: number };

function endingMessage(why: Ending, what: string, article: string, detail: string, at: number) {
  if (why.kind === "end") {
    return `Input ends inside ${article} ${what}: ${detail} (byte ${at}): the input was cut off`;
  }
  const seconds = (why.silenceMs / 1000).toFixed(1);
  return `Incomplete ${what} dropped after ${seconds} s of silence: ${detail} (byte ${at}): bytes were lost or the meter stopped sending mid-frame`;
}

type Scan = HdlcScan | MbusScan | RawScan;

/** Incremental frame detector and parser. See the module documentation. */
/**
 * How many bytes to wait for before measuring a bare data-notification again: what it
 * needs at least, and for one past 1 KB (real pushes are a few hundred bytes) a quarter
 * more than is there, so that a huge one fed in small chunks is measured a few times, not
 * once per chunk. A silence gap or the end of input measures the tail in any case.
 */
function rawWaitFor(atLeast: number, have: number): number {
  return have < RAW_GROWTH_FROM ? atLeast : Math.max(atLeast, Math.floor(have * RAW_GROWTH));
}

const RAW_GROWTH_FROM = 1024;
const RAW_GROWTH = 1.25;

export class Framer {
  readonly #gapMs: number;
  readonly #maxBuffer: number;
  readonly #rawLimit: number;
  readonly #hdlc: HdlcReassembler;
  readonly #mbus: MbusReassembler;
  readonly #replyAddress: number | null;
  /** The last reply's bytes, from `#echoAt` on, as they would come back from an echoing head. */
  #echo: Uint8Array | null = null;
  #echoAt = 0;

  #buf = new Uint8Array(0);
  #head = 0;
  #tail = 0;
  /** Stream offset of `#buf[#head]`. */
  #offset = 0;
  /** Bytes of a frame too long for the buffer still to be dropped as they arrive. */
  #discard = 0;
  #lock: Framing | null = null;
  #starts = STARTS_ANY;
  #skip: { offset: number; bytes: number; reason: string } | null = null;
  #lastMs: number | undefined = undefined;
  /** Stream offset where the closing flag of the last HDLC frame would be. */
  #closingFlagAt = -1;
  /**
   * Whether the head is where a frame is expected to begin: at the start, after a
   * silence gap, or right after a frame; not after skipped garbage.
   */
  #atBoundary = true;
  /** How far the raw candidate at stream offset `start` was searched for link headers. */
  #rawSearch = { start: -1, upTo: 0 };

  constructor(options: FramerOptions = {}) {
    const gapMs = options.gapMs ?? DEFAULT_GAP_MS;
    const maxBuffer = options.maxBufferBytes ?? DEFAULT_MAX_BUFFER_BYTES;
    const maxPayload = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    if (!(gapMs >= 0)) throw new RangeError(`Bad gapMs ${gapMs}: must be a number >= 0`);
    if (!Number.isInteger(maxBuffer) || maxBuffer < MIN_BUFFER_BYTES) {
      throw new RangeError(
        `Bad maxBufferBytes ${maxBuffer}: must be an integer >= ${MIN_BUFFER_BYTES}`,
      );
    }
    if (!Number.isInteger(maxPayload) || maxPayload < 1) {
      throw new RangeError(`Bad maxPayloadBytes ${maxPayload}: must be a positive integer`);
    }
    this.#gapMs = gapMs;
    this.#maxBuffer = maxBuffer;
    this.#rawLimit = Math.min(maxBuffer, maxPayload);
    this.#hdlc = new HdlcReassembler(maxPayload);
    this.#mbus = new MbusReassembler(maxPayload);
    const address = options.replyAddress === undefined ? MBUS_READER_ADDRESS : options.replyAddress;
    if (address !== null && (!Number.isInteger(address) || address < 0 || address > 0xff)) {
      throw new RangeError(`Bad replyAddress ${address}: must be 0..255 or null`);
    }
    this.#replyAddress = address;
  }

  /** Unparsed input held right now (never more than `maxBufferBytes`). */
  get bufferedBytes(): number {
    return this.#tail - this.#head;
  }

  /** Payload bytes of unfinished segment chains (never more than `maxPayloadBytes`). */
  get pendingPayloadBytes(): number {
    return (this.#hdlc.pending?.bytes ?? 0) + (this.#mbus.pending?.bytes ?? 0);
  }

  /** The framing locked to by the first checksummed frame, if any. */
  get lockedFraming(): Framing | null {
    return this.#lock;
  }

  /**
   * Feeds a chunk. `nowMs` is its arrival time on any monotonic clock; when the silence
   * since the last byte exceeds `gapMs`, a partial frame or segment chain is dropped first
   * (an empty chunk with a time works as a timer tick). Without `nowMs` there is no gap
   * logic. Never throws on any input.
   */
  push(chunk: Uint8Array, nowMs?: number): FramerEvent[] {
    const events: FramerEvent[] = [];
    if (nowMs !== undefined) {
      if (this.#lastMs !== undefined && nowMs - this.#lastMs > this.#gapMs) {
        this.#finish(events, { kind: "gap", silenceMs: nowMs - this.#lastMs });
      }
      if (chunk.length > 0) this.#lastMs = nowMs;
    }
    let at = 0;
    while (at < chunk.length) {
      if (this.#discard > 0) {
        const n = Math.min(this.#discard, chunk.length - at);
        this.#discard -= n;
        this.#offset += n;
        at += n;
        continue;
      }
      const n = Math.min(this.#maxBuffer - (this.#tail - this.#head), chunk.length - at);
      this.#append(chunk, at, n);
      at += n;
      this.#drain(events, null);
    }
    return events;
  }

  /**
   * The input has ended: a partial frame or an unfinished segment chain becomes an
   * "error" event (never dropped in silence), pending skips are reported, and the framer
   * is {@link reset}.
   */
  end(): FramerEvent[] {
    const events: FramerEvent[] = [];
    this.#finish(events, { kind: "end" });
    this.reset();
    return events;
  }

  /** Forgets everything: buffer, segment chains, lock, time and stream offset. */
  reset(): void {
    this.#head = 0;
    this.#tail = 0;
    this.#offset = 0;
    this.#discard = 0;
    this.#lock = null;
    this.#starts = STARTS_ANY;
    this.#skip = null;
    this.#lastMs = undefined;
    this.#closingFlagAt = -1;
    this.#atBoundary = true;
    this.#rawSearch = { start: -1, upTo: 0 };
    this.#rawWait = null;
    this.#echo = null;
    this.#hdlc.clear();
    this.#mbus.clear();
  }

  /** Gives up what is buffered and pending, reporting it. */
  #finish(events: FramerEvent[], why: Ending): void {
    this.#drain(events, why);
    for (const framing of ["hdlc", "mbus"] as const) {
      const message = this.#chainMessage(framing, why, "");
      if (message !== null) this.#emit(events, { kind: "error", framing, ...message });
    }
    this.#hdlc.clear();
    this.#mbus.clear();
    this.#flushSkip(events);
    this.#discard = 0;
    this.#closingFlagAt = -1;
    this.#atBoundary = true;
    this.#endEcho(events);
  }

  /** The message for the unfinished chain of `framing`, or null when there is none. */
  #chainMessage(
    framing: "hdlc" | "mbus",
    why: Ending,
    more: string,
  ): { offset: number; message: string } | null {
    const { article, chain } = NAMES[framing];
    let detail: string;
    let offset: number;
    if (framing === "hdlc") {
      const p = this.#hdlc.pending;
      if (!p) return null;
      detail = `${p.frames} segment${
        p.frames === 1 ? "" : "s"
      } (${p.bytes} bytes) with the S bit set, the last one missing`;
      offset = p.offset;
    } else {
      const p = this.#mbus.pending;
      if (!p) return null;
      detail = `segments 0..${p.last} (${p.bytes} bytes), the final one missing`;
      offset = p.offset;
    }
    return { offset, message: endingMessage(why, chain, article, detail + more, offset) };
  }

  #append(chunk: Uint8Array, from: number, n: number): void {
    if (this.#tail + n > this.#buf.length) {
      const live = this.#tail - this.#head;
      if (live + n <= this.#buf.length) {
        this.#buf.copyWithin(0, this.#head, this.#tail);
      } else {
        const capacity = Math.min(
          this.#maxBuffer,
          Math.max(INITIAL_CAPACITY, 2 * this.#buf.length, live + n),
        );
        const grown = new Uint8Array(capacity);
        grown.set(this.#buf.subarray(this.#head, this.#tail));
        this.#buf = grown;
      }
      this.#head = 0;
      this.#tail = live;
    }
    if (n < SMALL_COPY) {
      for (let i = 0; i < n; i++) this.#buf[this.#tail + i] = chunk[from + i]!;
    } else {
      this.#buf.set(chunk.subarray(from, from + n), this.#tail);
    }
    this.#tail += n;
  }

  #consume(n: number): void {
    this.#head += n;
    this.#offset += n;
    if (this.#head >= this.#tail) {
      this.#head = 0;
      this.#tail = 0;
    }
  }

  /** Reports a frame (payload, error, or a frame without payload): a frame boundary. */
  #emit(events: FramerEvent[], event: FramerEvent): void {
    this.#flushSkip(events);
    events.push(event);
    this.#atBoundary = true;
  }

  #flushSkip(events: FramerEvent[]): void {
    if (this.#skip === null) return;
    events.push({ kind: "skipped", ...this.#skip });
    this.#skip = null;
  }

  /** Skips `n` bytes at the head, coalescing with a skip that ends right there. */
  #skipBytes(events: FramerEvent[], n: number, reason: string): void {
    const s = this.#skip;
    if (s !== null && s.offset + s.bytes === this.#offset) {
      s.bytes += n;
      if (s.reason !== reason) s.reason = GARBAGE;
    } else {
      this.#flushSkip(events);
      this.#skip = { offset: this.#offset, bytes: n, reason };
    }
    this.#consume(n);
    this.#atBoundary = false;
    if (this.#skip!.bytes >= this.#maxBuffer) this.#flushSkip(events);
  }

  /** Reports `n` bytes at the head as skipped on their own (not garbage) and drops them. */
  #skipFrame(events: FramerEvent[], n: number, reason: string): void {
    this.#emit(events, { kind: "skipped", offset: this.#offset, bytes: n, reason });
    this.#consume(n);
  }

  #lockTo(framing: "hdlc" | "mbus"): void {
    if (this.#lock !== null) return;
    this.#lock = framing;
    this.#starts = STARTS_CHECKSUMMED;
  }

  /**
   * Parses as much of the buffer as possible. With `why` (end of input, silence gap) no
   * more bytes will come for what is there, so nothing is left waiting.
   */
  /** The raw APDU at the head needs at least `atLeast` bytes; until then, `scan` stands. */
  #rawWait:
    | { offset: number; atLeast: number; scan: Extract<RawScan, { kind: "need-more" }> }
    | null = null;

  #drain(events: FramerEvent[], why: Ending | null): void {
    while (this.#head < this.#tail) {
      const buf = this.#buf;
      const head = this.#head;
      const first = buf[head]!;
      if (this.#echo !== null) {
        if (first === this.#echo[this.#echoAt]) {
          this.#consume(1);
          if (++this.#echoAt === this.#echo.length) this.#endEcho(events);
          continue;
        }
        this.#endEcho(events);
      }
      if (!this.#starts[first]) {
        let end = head + 1;
        while (end < this.#tail && !this.#starts[buf[end]!]) end++;
        this.#skipBytes(events, end - head, GARBAGE);
        continue;
      }
      const view = buf.subarray(head, this.#tail);
      let framing: Framing;
      let scan: Scan;
      if (first === HDLC_FLAG) {
        const flag = this.#flag(view, why);
        if (flag === "wait") return;
        if (flag === "consumed") continue;
        framing = "hdlc";
        scan = scanHdlcFrame(view, this.#offset);
      } else if (first === MBUS_START || first === MBUS_ACK || first === MBUS_SHORT_START) {
        framing = "mbus";
        scan = scanMbusFrame(view, this.#offset, why !== null);
      } else {
        framing = "raw";
        // A bare data-notification has no length field: it is measured by decoding it, and
        // decoding again before the bytes it is known to need have come would be wasted
        // (quadratic in a stream of small chunks).
        const wait = this.#rawWait;
        const raw: RawScan = why === null && wait !== null && wait.offset === this.#offset &&
            view.length < wait.atLeast
          ? wait.scan
          : scanRawApdu(view, this.#offset, {
            maxLength: this.#rawLimit,
            weakForms: this.#atBoundary,
            final: why !== null,
          });
        this.#rawWait = raw.kind === "need-more" && raw.atLeast !== undefined
          ? { offset: this.#offset, atLeast: rawWaitFor(raw.atLeast, view.length), scan: raw }
          : null;
        scan = raw;
      }
      if (!this.#handle(events, framing, scan, view, why)) return;
    }
  }

  /**
   * Flags between frames: `7E 7E` is fill, and the flag right after a frame that is not
   * followed by a frame format is that frame's closing flag; both vanish in silence.
   */
  #flag(view: Uint8Array, why: Ending | null): "wait" | "consumed" | "frame" {
    if (view.length < 2) {
      if (why === null) return "wait";
      this.#consume(1); // a lone closing flag at the very end
      return "consumed";
    }
    const next = view[AFTER_FLAG]!;
    if (next === HDLC_FLAG || (this.#offset === this.#closingFlagAt && !isHdlcFormatStart(next))) {
      this.#consume(1);
      return "consumed";
    }
    return "frame";
  }

  /** Acts on one scan result; false when the head must wait for more bytes. */
  #handle(
    events: FramerEvent[],
    framing: Framing,
    scan: Scan,
    view: Uint8Array,
    why: Ending | null,
  ): boolean {
    const offset = this.#offset;
    switch (scan.kind) {
      case "skip":
        this.#skipBytes(events, scan.bytes, scan.reason);
        return true;
      case "short":
        this.#shortFrame(events, scan.frame, scan.bytes);
        return true;
      case "invalid":
        this.#emit(events, { kind: "error", framing, offset, message: scan.message });
        if ("segmented" in scan) {
          this.#hdlc.damaged(scan.segmented);
          this.#closingFlagAt = offset + scan.bytes;
        } else {
          this.#mbus.damaged();
        }
        // The span the bad frame announced is dropped, up to a credible link header inside
        // it: the header may have been garbage that happened to look right, with a real
        // frame starting inside. Raw APDUs inside are not looked for: without a checksum, a
        // damaged frame's content could pass for one and decode to wrong values.
        this.#consume(this.#linkHeaderAt(view, scan.bytes));
        return true;
      case "frame":
        if ("tag" in scan) return this.#rawFrame(events, view, scan.bytes);
        if ("segmented" in scan.frame) {
          this.#hdlcFrame(events, scan.frame, scan.bytes);
        } else {
          this.#mbusFrame(events, scan.frame, scan.bytes);
        }
        return true;
      case "need-more":
        return this.#needMore(events, framing, scan, view, why);
    }
  }

  #hdlcFrame(events: FramerEvent[], frame: HdlcFrame, bytes: number): void {
    const offset = this.#offset;
    this.#lockTo("hdlc");
    this.#closingFlagAt = offset + bytes;
    if (frame.info.length === 0) {
      this.#skipFrame(events, bytes, "HDLC frame without information field");
      return;
    }
    this.#chainOutputs(events, "hdlc", this.#hdlc.add(frame, offset), bytes);
  }

  #mbusFrame(events: FramerEvent[], frame: MbusFrame, bytes: number): void {
    const offset = this.#offset;
    this.#lockTo("mbus");
    this.#replyTo(events, frame);
    if (isOmsFrame(frame)) {
      const { c, a, ci } = frame;
      this.#emit(events, { kind: "mbus-data", offset, c, a, ci, data: frame.body.slice() });
      this.#consume(bytes);
      return;
    }
    const seg = dlmsSegment(frame, offset);
    if (!seg.ok) {
      this.#emit(events, { kind: "error", framing: "mbus", offset, message: seg.message });
      this.#consume(bytes);
      return;
    }
    this.#chainOutputs(events, "mbus", this.#mbus.add(seg.segment, offset), bytes);
  }

  /** A short frame: a SND_NKE to us is answered; any other carries nothing for us. */
  #shortFrame(events: FramerEvent[], frame: MbusShortFrame, bytes: number): void {
    if (!this.#replyTo(events, frame)) {
      this.#skipBytes(events, bytes, "M-Bus short frame (no APDU)");
      return;
    }
    this.#lockTo("mbus");
    this.#consume(bytes);
  }

  /**
   * Emits the answer a good M-Bus frame at the head asks for, if any, and expects its echo.
   * @returns whether there was one
   */
  #replyTo(events: FramerEvent[], frame: { c: number; a: number }): boolean {
    if (this.#replyAddress === null) return false;
    const reply = mbusReply(frame.c, frame.a, this.#replyAddress);
    if (reply === null) return false;
    const request = frame.c === MBUS_C_SND_NKE ? "SND_NKE" : "SND_UD";
    this.#emit(events, { kind: "reply", offset: this.#offset, bytes: reply, request });
    this.#echo = reply;
    this.#echoAt = 0;
    return true;
  }

  /** Stops expecting an echo, reporting the part of it that came. */
  #endEcho(events: FramerEvent[]): void {
    if (this.#echo === null) return;
    const n = this.#echoAt;
    this.#echo = null;
    this.#echoAt = 0;
    if (n > 0) {
      this.#flushSkip(events);
      events.push({ kind: "echo", offset: this.#offset - n, bytes: n });
    }
  }

  /** Turns reassembler outputs into events, then drops the frame's `bytes`. */
  #chainOutputs(
    events: FramerEvent[],
    framing: "hdlc" | "mbus",
    outputs: readonly (ChainOutput | MbusChainOutput)[],
    bytes: number,
  ): void {
    for (const o of outputs) {
      if (o.kind === "discarded") {
        this.#skipFrame(events, bytes, o.reason);
        return;
      }
      if (o.kind === "payload") {
        const { payload, offset, frames } = o;
        this.#emit(events, { kind: "payload", framing, payload, offset, frames });
      } else {
        this.#emit(events, { kind: "error", framing, offset: o.offset, message: o.message });
      }
    }
    this.#consume(bytes);
  }

  #rawFrame(events: FramerEvent[], view: Uint8Array, bytes: number): boolean {
    if (this.#linkHeaderInside(view, bytes)) {
      this.#skipBytes(events, 1, "raw APDU candidate overlaps a checksummed frame");
      return true;
    }
    this.#emit(events, {
      kind: "payload",
      framing: "raw",
      payload: view.slice(0, bytes),
      offset: this.#offset,
      frames: 1,
    });
    this.#consume(bytes);
    return true;
  }

  #needMore(
    events: FramerEvent[],
    framing: Framing,
    scan: Extract<Scan, { kind: "need-more" }>,
    view: Uint8Array,
    why: Ending | null,
  ): boolean {
    const offset = this.#offset;
    const have = view.length;
    if (scan.credible && scan.total !== undefined && scan.total > this.#maxBuffer) {
      if (framing === "mbus" && why === null) {
        // The buffer cannot hold the L + 256 reading: decide on the frame at L.
        const decided = scanMbusFrame(view, offset, true);
        if (decided.kind !== "need-more") return this.#handle(events, framing, decided, view, why);
      }
      const { frame } = NAMES[framing];
      const wire = framing === "hdlc" ? scan.total + 1 : scan.total;
      this.#emit(events, {
        kind: "error",
        framing,
        offset,
        message:
          `${frame} too long for the buffer: ${wire} bytes, maxBufferBytes is ${this.#maxBuffer} (byte ${offset}): raise maxBufferBytes, or a damaged length field`,
      });
      if (framing === "hdlc") this.#hdlc.damaged("segmented" in scan && scan.segmented === true);
      else this.#mbus.damaged();
      this.#consume(have);
      this.#discard = scan.total - have;
      return true;
    }
    if (framing === "raw" && this.#linkHeaderInside(view, scan.total ?? have)) {
      this.#skipBytes(events, 1, "raw APDU candidate overlaps a checksummed frame");
      return true;
    }
    if (why === null) {
      if (have < this.#maxBuffer) return false;
      this.#skipBytes(events, 1, `no complete frame within ${this.#maxBuffer} bytes`);
      return true;
    }
    if (!scan.credible) {
      this.#skipBytes(events, 1, "frame header cut off");
      return true;
    }
    const { article, frame } = NAMES[framing];
    // An HDLC frame is quoted with its closing flag: the length a user sees on the wire.
    const total = scan.total !== undefined && framing === "hdlc" ? scan.total + 1 : scan.total;
    const detail = total !== undefined
      ? `${have} of ${total} bytes`
      : `${have} bytes, the rest missing`;
    const chained = framing === "raw"
      ? null
      : this.#chainMessage(framing, why, `, then ${detail} of the next frame`);
    if (chained !== null) {
      this.#emit(events, { kind: "error", framing, ...chained });
      if (framing === "hdlc") this.#hdlc.clear();
      else this.#mbus.clear();
    } else {
      this.#emit(events, {
        kind: "error",
        framing,
        offset,
        message: endingMessage(why, frame, article, detail, offset),
      });
    }
    this.#consume(have);
    return true;
  }

  /**
   * Where the first HDLC header with a right HCS, or M-Bus `68 L L 68` header, starts
   * inside the first `span` bytes of `view` (after the head); `span` when none does.
   */
  #linkHeaderAt(view: Uint8Array, span: number): number {
    const end = Math.min(span, view.length);
    for (let i = 1; i < end; i++) {
      const b = view[i]!;
      if (b === HDLC_FLAG) {
        const r = scanHdlcFrame(view.subarray(i));
        if (r.kind === "frame" || r.kind === "invalid" || (r.kind === "need-more" && r.credible)) {
          return i;
        }
      } else if (b === MBUS_START && hasMbusHeader(view, i)) return i;
    }
    return span;
  }

  /**
   * Whether an HDLC header with a right HCS, or an M-Bus `68 L L 68` header, starts
   * inside the first `span` bytes of `view` (a raw APDU candidate at the head). Headers
   * that cannot be judged yet are searched again when more bytes have come.
   */
  #linkHeaderInside(view: Uint8Array, span: number): boolean {
    const end = Math.min(span, view.length);
    const search = this.#rawSearch;
    let from = 1;
    if (search.start === this.#offset) from = Math.max(from, search.upTo - this.#offset);
    let undecided = -1;
    for (let i = from; i < end; i++) {
      const b = view[i]!;
      if (b === HDLC_FLAG) {
        const r = scanHdlcFrame(view.subarray(i));
        if (r.kind === "frame" || r.kind === "invalid" || (r.kind === "need-more" && r.credible)) {
          return true;
        }
        if (r.kind === "need-more" && undecided < 0) undecided = i;
      } else if (b === MBUS_START) {
        if (hasMbusHeader(view, i)) return true;
        if (i + MBUS_HEADER_LENGTH > view.length && undecided < 0) undecided = i;
      }
    }
    this.#rawSearch = {
      start: this.#offset,
      upTo: this.#offset + (undecided >= 0 ? undecided : end),
    };
    return false;
  }
}

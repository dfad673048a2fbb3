/**
 * The fuzzing harness of the decoding pipeline: a seeded PRNG, byte mutators, a generator
 * of random but well-formed A-XDR bodies, a corpus built from the real captures, and a
 * driver that feeds each input through the whole {@link Decoder} in random chunks while
 * checking its invariants.
 *
 * ```
 *   corpus (one target per fixture: wire bytes, whole APDU, plaintext, keys)
 *     │
 *     ├─ random      random bytes, some with frame start bytes sprinkled in
 *     ├─ wire        the capture mutated as it is on the wire       ─▶ framing
 *     ├─ apdu        the APDU mutated, framed again (right CRCs)     ─▶ apdu, decrypt
 *     ├─ plaintext   the plaintext mutated, encrypted again          ─▶ axdr, cosem
 *     └─ generated   a random A-XDR body, encrypted and framed       ─▶ axdr, cosem
 *
 *   OMS targets (Netz OÖ AMIS, M-Bus CI 5B) take the same kinds: "apdu" mutates the
 *   header and ciphertext, "plaintext" the decrypted records (encrypted again under mode
 *   5), "generated" is random DIF/VIF records; all framed again with a right checksum.
 *     │
 *     ▼
 *   runCase: fresh Decoder, random chunks and arrival times, a shadow Framer fed the
 *   same chunks; checks: nothing thrown, every failure has a stage and a message,
 *   results serialise to JSON, named values are finite, framer buffers stay bounded
 * ```
 *
 * Every input is reproducible from (seed, index) alone: {@link Rng.for}.
 *
 * Used by tests/fuzz_test.ts (fixed seeds, a few tens of thousands of inputs) and runnable
 * on its own for long runs:
 *
 * ```
 *   deno run --allow-read tests/fuzz.ts --inputs 1000000 --seed 1
 * ```
 *
 * @module
 */

import { concatBytes, toHex } from "../lib/bytes.ts";
import { type AxdrValue, DataTag, encodeData, encodeDateTime } from "../lib/dlms/axdr.ts";
import { ApduTag, parseApdu, SecurityControl } from "../lib/dlms/apdu.ts";
import { SecurityContext } from "../lib/dlms/security.ts";
import { BlockTransfer } from "../lib/dlms/transfer.ts";
import { METER_TYPES } from "../lib/cosem/interpret.ts";
import { Framer, type Framing } from "../lib/framing/framer.ts";
import { encodeHdlcFrames } from "../lib/framing/hdlc.ts";
import {
  encodeMbusFrames,
  encodeMbusLongFrame,
  MBUS_CI_OMS_LONG_HEADER,
} from "../lib/framing/mbus.ts";
import {
  configurationField,
  OMS_BLOCK_LENGTH,
  OMS_LONG_HEADER_LENGTH,
  OMS_MODE_AES_CBC,
  parseOmsHeader,
} from "../lib/oms/header.ts";
import { OMS_FILLER, OmsSecurity } from "../lib/oms/security.ts";
import { LAYERS } from "../lib/errors.ts";
import { Decoder, type DecoderOptions, type TelegramResult } from "../lib/pipeline.ts";
import type { Fixture } from "./fixtures.ts";

// ─── PRNG ────────────────────────────────────────────────────────────────────────────

/** A small seeded PRNG (mulberry32): the same seed gives the same inputs on every run. */
export class Rng {
  #a: number;

  constructor(seed: number) {
    this.#a = seed >>> 0;
  }

  /** The generator of input `index` of a run seeded with `seed`. */
  static for(seed: number, index: number): Rng {
    let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35);
    h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
    h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
    return new Rng(h ^ (h >>> 16));
  }

  /** A float in [0, 1). */
  next(): number {
    this.#a = (this.#a + 0x6d2b79f5) >>> 0;
    let t = this.#a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new RangeError("Rng.pick() of an empty list");
    return xs[this.int(xs.length)]!;
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }

  /** A length skewed towards small values: mostly under 16, sometimes up to `max`. */
  smallLength(max: number): number {
    return Math.min(max, this.chance(0.8) ? this.range(1, 16) : this.range(1, max));
  }
}

// ─── Mutators ────────────────────────────────────────────────────────────────────────

/** One mutation: returns a new array, never changes its input. */
export type Mutator = (rng: Rng, input: Uint8Array, pool: readonly Uint8Array[]) => Uint8Array;

/** Values a length field is set to: empty, the largest short form, the long-form markers. */
export const LENGTH_VALUES: readonly number[] = [0x00, 0x7f, 0x80, 0x81, 0x82, 0xff];

/** A-XDR tags followed by a BER length or an element count. */
const LENGTH_TAGS = new Set<number>([
  DataTag.ARRAY,
  DataTag.STRUCTURE,
  DataTag.BIT_STRING,
  DataTag.OCTET_STRING,
  DataTag.VISIBLE_STRING,
  DataTag.UTF8_STRING,
]);

/**
 * Offsets of link and APDU length fields at the start of an input: HDLC format field and
 * M-Bus L (1, 2), service-specific ciphering length (1), block-transfer length (6),
 * general-ciphering length after the system title (10).
 */
const HEADER_LENGTH_OFFSETS: readonly number[] = [1, 2, 6, 10];

const ALL_TAGS: readonly number[] = Object.values(DataTag);

/** Byte patterns at integer boundaries, overwritten at a random place. */
const INTERESTING: readonly (readonly number[])[] = [
  [0x00],
  [0xff],
  [0x7f],
  [0x80],
  [0x7f, 0xff],
  [0x80, 0x00],
  [0xff, 0xff],
  [0x7f, 0xff, 0xff, 0xff],
  [0x80, 0x00, 0x00, 0x00],
  [0xff, 0xff, 0xff, 0xff],
  [0x7f, 0xf0, 0, 0, 0, 0, 0, 0], // +Infinity as float64
  [0x7f, 0xf8, 0, 0, 0, 0, 0, 0], // NaN as float64
  [0x7f, 0x80, 0x00, 0x00], // +Infinity as float32
  [0x7f, 0xc0, 0x00, 0x00], // NaN as float32
  [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
];

function splice(input: Uint8Array, at: number, remove: number, insert: ArrayLike<number>) {
  const out = new Uint8Array(input.length - remove + insert.length);
  out.set(input.subarray(0, at));
  out.set(insert, at);
  out.set(input.subarray(at + remove), at + insert.length);
  return out;
}

/** Offsets that may hold a length: header length offsets, and bytes after a length-carrying tag. */
export function lengthFieldPositions(input: Uint8Array): number[] {
  const out = HEADER_LENGTH_OFFSETS.filter((i) => i < input.length);
  for (let i = 1; i < input.length; i++) if (LENGTH_TAGS.has(input[i - 1]!)) out.push(i);
  return out;
}

/** The mutators by name (the names appear in crash reports). */
export const MUTATORS: Readonly<Record<string, Mutator>> = {
  bitFlip(rng, input) {
    const out = input.slice();
    if (out.length === 0) return out;
    for (let n = rng.range(1, 4); n > 0; n--) out[rng.int(out.length)]! ^= 1 << rng.int(8);
    return out;
  },
  byteReplace(rng, input) {
    const out = input.slice();
    if (out.length === 0) return out;
    for (let n = rng.range(1, 4); n > 0; n--) out[rng.int(out.length)] = rng.int(256);
    return out;
  },
  interesting(rng, input) {
    const pattern = rng.pick(INTERESTING);
    if (input.length < pattern.length) return input.slice();
    const out = input.slice();
    out.set(pattern, rng.int(input.length - pattern.length + 1));
    return out;
  },
  insert(rng, input) {
    const bytes = rng.chance(0.5) ? rng.bytes(rng.smallLength(64)) : [rng.pick(LENGTH_VALUES)];
    return splice(input, rng.int(input.length + 1), 0, bytes);
  },
  delete(rng, input) {
    if (input.length === 0) return input.slice();
    const at = rng.int(input.length);
    return splice(input, at, Math.min(rng.smallLength(64), input.length - at), []);
  },
  truncate(rng, input) {
    const cut = rng.int(input.length + 1);
    return rng.chance(0.7) ? input.slice(0, cut) : input.slice(cut);
  },
  duplicate(rng, input) {
    if (input.length === 0) return input.slice();
    const from = rng.int(input.length);
    const span = input.slice(from, from + rng.smallLength(128));
    const at = rng.chance(0.5) ? from + span.length : rng.int(input.length + 1);
    return splice(input, at, 0, span);
  },
  splice(rng, input, pool) {
    const other = pool.length > 0 ? rng.pick(pool) : input;
    const head = input.subarray(0, rng.int(input.length + 1));
    const tail = other.subarray(rng.int(other.length + 1));
    return concatBytes([head, tail]);
  },
  lengthField(rng, input) {
    const at = lengthFieldPositions(input);
    if (at.length === 0) return input.slice();
    const out = input.slice();
    out[rng.pick(at)] = rng.pick(LENGTH_VALUES);
    return out;
  },
  tagSwap(rng, input) {
    const at: number[] = [];
    for (let i = 0; i < input.length; i++) if (ALL_TAGS.includes(input[i]!)) at.push(i);
    if (at.length === 0) return input.slice();
    const out = input.slice();
    out[rng.pick(at)] = rng.pick(ALL_TAGS);
    return out;
  },
};

const MUTATOR_NAMES = Object.keys(MUTATORS);

/** Applies 1..`maxOps` random mutations; returns the bytes and the names applied. */
export function mutate(
  rng: Rng,
  input: Uint8Array,
  pool: readonly Uint8Array[],
  maxOps = 3,
): { bytes: Uint8Array; ops: string[] } {
  let bytes = input;
  const ops: string[] = [];
  for (let n = rng.range(1, maxOps); n > 0; n--) {
    const name = rng.pick(MUTATOR_NAMES);
    bytes = MUTATORS[name]!(rng, bytes, pool);
    ops.push(name);
  }
  return { bytes, ops };
}

// ─── Chunking ────────────────────────────────────────────────────────────────────────

/** One chunk and its arrival time (undefined: no clock, as in `decode`). */
export interface Chunk {
  readonly bytes: Uint8Array;
  readonly nowMs: number | undefined;
}

/**
 * Splits `bytes` as a serial port might deliver them: whole, in fixed pieces, or in
 * random pieces; with arrival times that now and then leave a silence gap longer than
 * `gapMs`, or without any clock.
 */
export function chunkRandomly(rng: Rng, bytes: Uint8Array, gapMs = 1000): Chunk[] {
  const out: Chunk[] = [];
  const clock = rng.chance(0.7);
  let now = 0;
  const style = rng.int(4);
  const fixed = rng.range(1, 64);
  for (let at = 0; at < bytes.length || out.length === 0;) {
    let n: number;
    switch (style) {
      case 0:
        n = bytes.length;
        break;
      case 1:
        n = fixed;
        break;
      case 2:
        n = 1 << rng.int(9);
        break;
      default:
        n = rng.range(1, 300);
    }
    out.push({ bytes: bytes.subarray(at, at + n), nowMs: clock ? now : undefined });
    at += Math.max(n, 1);
    now += rng.chance(0.02) ? gapMs + 1 + rng.int(5000) : rng.int(50);
  }
  return out;
}

// ─── Corpus ──────────────────────────────────────────────────────────────────────────

/** What the re-encryption of a mutated plaintext needs. */
export interface CipherInfo {
  readonly security: SecurityContext;
  readonly systemTitle: Uint8Array;
  readonly securityControl: number;
  readonly tag: number;
  readonly invocationCounter: number;
}

/** An OMS telegram (Netz OÖ AMIS) taken apart: what re-encrypting and re-framing need. */
export interface OmsTarget {
  /** The C field of its long frame. */
  readonly c: number;
  /** The 12 header bytes after CI. */
  readonly header: Uint8Array;
  /** Header and ciphertext: the data after CI. */
  readonly data: Uint8Array;
  /** The decrypted records (null without the key). */
  readonly plaintext: Uint8Array | null;
  readonly security: OmsSecurity | null;
}

/** One fixture, taken apart layer by layer. */
export interface Target {
  readonly name: string;
  readonly options: DecoderOptions;
  /** The capture as it came from the meter. */
  readonly wire: Uint8Array;
  readonly framing: Framing;
  /** Whether the capture used a general block transfer. */
  readonly blocks: boolean;
  /** The whole APDU after the link layer and any block transfer; null when incomplete. */
  readonly apdu: Uint8Array | null;
  /** The ciphering of `apdu`, when it is a ciphered APDU the key opens. */
  readonly cipher: CipherInfo | null;
  /** The decrypted APDU, or `apdu` itself when it is in the clear. */
  readonly plaintext: Uint8Array | null;
  /** Its OMS telegram, for an OMS capture. */
  readonly oms: OmsTarget | null;
}

/** The payloads (and OMS data) a fresh Framer finds in `wire`. */
function payloadsOf(
  wire: Uint8Array,
): { framing: Framing; payloads: Uint8Array[]; oms: { c: number; data: Uint8Array } | null } {
  const framer = new Framer();
  const payloads: Uint8Array[] = [];
  let framing: Framing = "raw";
  let oms: { c: number; data: Uint8Array } | null = null;
  for (const ev of [...framer.push(wire), ...framer.end()]) {
    if (ev.kind === "payload") {
      payloads.push(ev.payload);
      framing = ev.framing;
    } else if (ev.kind === "mbus-data") {
      oms ??= { c: ev.c, data: ev.data };
      framing = "mbus";
    }
  }
  return { framing, payloads, oms };
}

/** The OMS telegram of a capture, decrypted when the key is known. */
async function omsTarget(
  found: { c: number; data: Uint8Array },
  key: Uint8Array | null,
): Promise<OmsTarget> {
  const header = parseOmsHeader(found.data);
  const security = key ? await OmsSecurity.create(key) : null;
  const plaintext = security ? await security.decrypt(header) : null;
  return {
    c: found.c,
    header: found.data.slice(0, OMS_LONG_HEADER_LENGTH),
    data: found.data,
    plaintext,
    security,
  };
}

/** The whole APDU: the single payload, or the blocks of a transfer joined. */
function wholeApdu(payloads: Uint8Array[]): { apdu: Uint8Array | null; blocks: boolean } {
  const first = payloads[0];
  if (first === undefined) return { apdu: null, blocks: false };
  if (first[0] !== ApduTag.GENERAL_BLOCK_TRANSFER) return { apdu: first, blocks: false };
  const transfer = new BlockTransfer();
  for (const p of payloads) {
    const block = parseApdu(p);
    if (block.kind !== "block") return { apdu: null, blocks: true };
    const t = transfer.push(block);
    if (t.status === "complete") return { apdu: t.apdu, blocks: true };
  }
  return { apdu: null, blocks: true };
}

/** Takes each fixture apart into a {@link Target}. */
export async function buildCorpus(fixtures: readonly Fixture[]): Promise<Target[]> {
  const out: Target[] = [];
  for (const f of fixtures) {
    const options: DecoderOptions = {
      key: f.key,
      authKey: f.authKey,
      systemTitle: f.systemTitle,
    };
    const { framing, payloads, oms } = payloadsOf(f.bytes);
    const { apdu, blocks } = wholeApdu(payloads);
    let cipher: CipherInfo | null = null;
    let plaintext: Uint8Array | null = apdu;
    if (apdu !== null) {
      const parsed = parseApdu(apdu);
      if (parsed.kind === "ciphered") {
        plaintext = null;
        const title = parsed.systemTitle ?? f.systemTitle;
        if (f.key && title) {
          const security = await SecurityContext.create(f.key, f.authKey);
          plaintext = (await security.decrypt(parsed, title)).plaintext;
          cipher = {
            security,
            systemTitle: title,
            securityControl: parsed.securityControl,
            tag: parsed.tag,
            invocationCounter: parsed.invocationCounter,
          };
        }
      }
    }
    out.push({
      name: f.name,
      options,
      wire: f.bytes,
      framing,
      blocks,
      apdu,
      cipher,
      plaintext,
      oms: oms ? await omsTarget(oms, f.key) : null,
    });
  }
  return out;
}

// ─── Framing and ciphering of generated APDUs ───────────────────────────────────────

const BLOCK_SIZE = 120;

/** An APDU as general-block-transfer blocks (E0 control number ack length data). */
export function toBlocks(apdu: Uint8Array, size = BLOCK_SIZE): Uint8Array[] {
  const out: Uint8Array[] = [];
  const count = Math.max(1, Math.ceil(apdu.length / size));
  for (let i = 0; i < count; i++) {
    const data = apdu.subarray(i * size, (i + 1) * size);
    const n = i + 1;
    const length = data.length < 0x80 ? [data.length] : [0x81, data.length];
    out.push(
      Uint8Array.of(
        ApduTag.GENERAL_BLOCK_TRANSFER,
        i === count - 1 ? 0xc0 : 0x40,
        n >> 8,
        n & 0xff,
        0,
        0,
        ...length,
        ...data,
      ),
    );
  }
  return out;
}

/** Segments an M-Bus payload may take (segment numbers 0..15). */
const MBUS_MAX_SEGMENTS = 16;
/** Largest HDLC information field that fits the 11-bit length. */
const HDLC_MAX_INFO = 2000;

/** Wraps an APDU in a link layer with right checksums, as `framing` would carry it. */
export function frameApdu(rng: Rng, apdu: Uint8Array, framing: Framing): Uint8Array {
  if (framing === "mbus") {
    const maxData = rng.pick([245, 200, 64]);
    if (apdu.length <= MBUS_MAX_SEGMENTS * maxData) {
      return concatBytes(encodeMbusFrames(apdu, { maxData }));
    }
  }
  if (framing === "raw" && rng.chance(0.7)) return apdu;
  return concatBytes(
    encodeHdlcFrames(apdu, { maxInfo: rng.pick([128, 240, HDLC_MAX_INFO]) }),
  );
}

/** Frames `apdu` as the target's capture was framed, in blocks when it used them. */
export function frameLike(rng: Rng, t: Target, apdu: Uint8Array): Uint8Array {
  if (t.blocks && rng.chance(0.8)) {
    return concatBytes(toBlocks(apdu).map((b) => frameApdu(rng, b, t.framing)));
  }
  return frameApdu(rng, apdu, t.framing);
}

/**
 * Encrypts a plaintext as the target's meter did (its APDU tag and security control, the
 * authentication bit flipped now and then), under a later invocation counter.
 */
export async function encryptLike(
  rng: Rng,
  c: CipherInfo,
  plaintext: Uint8Array,
): Promise<Uint8Array> {
  let sc = c.securityControl;
  if (rng.chance(0.1)) sc ^= SecurityControl.AUTHENTICATED;
  // encrypt() cannot make a tag without the authentication key.
  if (!c.security.verifiesTags) sc &= ~SecurityControl.AUTHENTICATED;
  if ((sc & (SecurityControl.AUTHENTICATED | SecurityControl.ENCRYPTED)) === 0) {
    sc |= SecurityControl.ENCRYPTED;
  }
  return await c.security.encrypt(plaintext, {
    systemTitle: c.systemTitle,
    invocationCounter: (c.invocationCounter + 1 + rng.int(1000)) >>> 0,
    securityControl: sc,
    tag: c.tag,
  });
}

// ─── Random A-XDR ────────────────────────────────────────────────────────────────────

/** OBIS codes the COSEM layer knows, so generated bodies reach its named values. */
const KNOWN_OBIS: readonly (readonly number[])[] = [
  [1, 0, 1, 8, 0, 255],
  [1, 0, 2, 8, 0, 255],
  [1, 0, 1, 7, 0, 255],
  [1, 0, 2, 7, 0, 255],
  [1, 0, 3, 8, 0, 255],
  [1, 0, 32, 7, 0, 255],
  [1, 0, 31, 7, 0, 255],
  [1, 0, 13, 7, 0, 255],
  [1, 0, 14, 7, 0, 255],
  [1, 0, 81, 7, 4, 255],
  [0, 0, 96, 1, 0, 255],
  [0, 0, 96, 1, 1, 255],
  [0, 0, 42, 0, 0, 255],
  [0, 0, 1, 0, 0, 255],
  [0, 1, 1, 0, 0, 255],
  [1, 1, 0, 2, 129, 255], // list version id (Kamstrup, Aidon)
  [0, 6, 25, 9, 0, 255], // push setup
];

const INT_TYPES = [
  ["integer", -128, 127],
  ["unsigned", 0, 255],
  ["long", -32768, 32767],
  ["long-unsigned", 0, 65535],
  ["double-long", -2147483648, 2147483647],
  ["double-long-unsigned", 0, 4294967295],
  ["enum", 0, 255],
] as const;

const FLOATS = [0, -0, 1.5, -1e30, 3.4e38, 1.7e308, Infinity, -Infinity, NaN];

function randomDateTime(rng: Rng): Uint8Array {
  if (rng.chance(0.3)) return rng.bytes(12);
  return encodeDateTime({
    year: rng.chance(0.1) ? null : rng.range(1990, 2100),
    month: rng.range(1, 12),
    day: rng.range(1, 31),
    dayOfWeek: rng.range(1, 7),
    hour: rng.range(0, 23),
    minute: rng.range(0, 59),
    second: rng.range(0, 59),
    hundredths: rng.chance(0.5) ? null : 0,
    deviation: rng.chance(0.3) ? null : rng.range(-720, 720),
    clockStatus: rng.chance(0.5) ? null : 0,
  });
}

function randomScalar(rng: Rng): AxdrValue {
  switch (rng.int(10)) {
    case 0: {
      const [type, lo, hi] = rng.pick(INT_TYPES);
      return { type, value: rng.chance(0.3) ? rng.pick([lo, hi]) : rng.range(lo, hi) };
    }
    case 1:
      return {
        type: rng.pick(["long64", "long64-unsigned"] as const),
        value: rng.pick([0n, 1n, -1n, 2n ** 53n + 1n, 2n ** 63n - 1n, -(2n ** 63n)]),
      };
    case 2:
      return { type: rng.pick(["float32", "float64"] as const), value: rng.pick(FLOATS) };
    case 3:
      return { type: "octet-string", bytes: Uint8Array.from(rng.pick(KNOWN_OBIS)) };
    case 4:
      return { type: "octet-string", bytes: rng.bytes(rng.pick([0, 4, 5, 6, 8, 12, 20])) };
    case 5:
      return { type: "octet-string", bytes: randomDateTime(rng) };
    case 6:
      return {
        type: rng.pick(["visible-string", "utf8-string"] as const),
        text: rng.pick(["", "1KFM0000000001", "AIDON_V0001", "\u0000\u00ff", "x".repeat(40)]),
      };
    case 7:
      return rng.pick<AxdrValue>([{ type: "null" }, { type: "boolean", value: true }]);
    case 8:
      return {
        type: "structure",
        items: [
          { type: "integer", value: rng.chance(0.3) ? rng.pick([-128, 127]) : rng.range(-6, 6) },
          {
            type: "enum",
            value: rng.chance(0.7) ? rng.pick([27, 30, 33, 35, 44, 255]) : rng.int(256),
          },
        ],
      };
    default:
      return { type: "long-unsigned", value: rng.int(65536) };
  }
}

function randomTree(rng: Rng, depth: number): AxdrValue {
  if (depth >= 4 || rng.chance(0.6)) return randomScalar(rng);
  const items: AxdrValue[] = [];
  for (let n = rng.int(12); n > 0; n--) items.push(randomTree(rng, depth + 1));
  return { type: rng.chance(0.5) ? "structure" : "array", items };
}

const obisValue = (rng: Rng): AxdrValue => ({
  type: "octet-string",
  bytes: Uint8Array.from(rng.chance(0.9) ? rng.pick(KNOWN_OBIS) : rng.bytes(6)),
});

/**
 * A random body shaped like one of the layouts the COSEM layer recognises (flat
 * OBIS-tagged list, list of objects, positional structure, push-object-list) or like
 * nothing at all, with hostile values: extreme integers and scalers, NaN, infinities.
 */
export function randomBody(rng: Rng): AxdrValue {
  const triplets = (n: number) => {
    const items: AxdrValue[] = [];
    for (let i = 0; i < n; i++) {
      items.push(obisValue(rng), randomScalar(rng));
      if (rng.chance(0.7)) items.push(randomScalar(rng));
    }
    return items;
  };
  switch (rng.int(5)) {
    case 0: {
      const head: AxdrValue[] = rng.chance(0.5)
        ? [{ type: "octet-string", bytes: randomDateTime(rng) }]
        : [];
      return { type: "structure", items: [...head, ...triplets(rng.range(1, 12))] };
    }
    case 1: {
      const objects: AxdrValue[] = [];
      for (let n = rng.range(1, 12); n > 0; n--) {
        objects.push({ type: "structure", items: triplets(1) });
      }
      return { type: rng.chance(0.5) ? "array" : "structure", items: objects };
    }
    case 2: {
      const items: AxdrValue[] = [];
      for (let n = rng.pick([9, 10, 11, 12, 14]); n > 0; n--) items.push(randomScalar(rng));
      return { type: "structure", items };
    }
    case 3: {
      const n = rng.range(1, 8);
      const descriptors: AxdrValue[] = [];
      const values: AxdrValue[] = [];
      for (let i = 0; i < n; i++) {
        descriptors.push({
          type: "structure",
          items: [
            { type: "long-unsigned", value: rng.pick([1, 3, 4, 8, 40]) },
            obisValue(rng),
            { type: "integer", value: rng.pick([1, 2, 3]) },
            { type: "long-unsigned", value: rng.pick([0, 1]) },
          ],
        });
        values.push(randomScalar(rng));
      }
      return {
        type: "structure",
        items: [{ type: "array", items: descriptors }, ...values.slice(rng.int(2))],
      };
    }
    default:
      return randomTree(rng, 0);
  }
}

/** A data-notification around `body`, with or without a date-time in its header. */
export function dataNotification(rng: Rng, body: AxdrValue): Uint8Array {
  const header = [ApduTag.DATA_NOTIFICATION, ...rng.bytes(4)];
  if (rng.chance(0.3)) header.push(0x00);
  else header.push(0x0c, ...randomDateTime(rng));
  return Uint8Array.from(encodeData(body, header));
}

// ─── Inputs ──────────────────────────────────────────────────────────────────────────

export const INPUT_KINDS = ["random", "wire", "apdu", "plaintext", "generated"] as const;
export type InputKind = typeof INPUT_KINDS[number];

/** One fuzz input: the bytes, the decoder set-up, and how they were made. */
export interface FuzzInput {
  readonly kind: InputKind;
  readonly target: string;
  readonly ops: readonly string[];
  readonly bytes: Uint8Array;
  readonly options: DecoderOptions;
}

/** Frame start bytes sprinkled into random input so the framer tries its parsers. */
const START_BYTES = [0x7e, 0x68, 0x0f, 0xdb, 0xe0, 0xc8, 0x10, 0xe5, 0x2f];

function randomInput(rng: Rng): Uint8Array {
  const bytes = rng.bytes(rng.chance(0.9) ? rng.int(600) : rng.int(20000));
  if (rng.chance(0.5)) {
    for (let n = rng.int(20); n > 0 && bytes.length > 0; n--) {
      bytes[rng.int(bytes.length)] = rng.pick(START_BYTES);
    }
  }
  return bytes;
}

function optionsFor(rng: Rng, t: Target): DecoderOptions {
  const o: DecoderOptions = { ...t.options };
  if (rng.chance(0.05)) o.meterType = rng.pick(METER_TYPES);
  if (rng.chance(0.03)) o.key = null;
  if (rng.chance(0.03)) o.authKey = null;
  return o;
}

function pickKind(rng: Rng, t: Target): InputKind {
  const r = rng.next();
  if (r < 0.1) return "random";
  if (t.oms !== null) {
    if (r < 0.35 || t.oms.plaintext === null) return "wire";
    if (r < 0.55) return "apdu";
    return r < 0.85 ? "plaintext" : "generated";
  }
  if (r < 0.35 || t.plaintext === null) return "wire";
  if (r < 0.55) return "apdu";
  if (r < 0.85) return "plaintext";
  return "generated";
}

/** Makes one input from the corpus (deterministic in `rng`). */
export async function makeInput(rng: Rng, corpus: readonly Target[]): Promise<FuzzInput> {
  const t = rng.pick(corpus);
  const kind = pickKind(rng, t);
  const options = optionsFor(rng, t);
  const base = { kind, target: t.name, options };
  if (t.oms !== null && kind !== "random" && kind !== "wire") {
    return { ...base, ...await omsInput(rng, t, t.oms, kind, corpus) };
  }
  switch (kind) {
    case "random":
      return { ...base, ops: [], bytes: randomInput(rng) };
    case "wire": {
      const pool = corpus.map((c) => c.wire);
      const { bytes, ops } = mutate(rng, t.wire, pool);
      return { ...base, ops, bytes: withNeighbours(rng, t, bytes) };
    }
    case "apdu": {
      const pool = corpus.flatMap((c) => (c.apdu ? [c.apdu] : []));
      const { bytes, ops } = mutate(rng, t.apdu!, pool);
      return { ...base, ops, bytes: withNeighbours(rng, t, frameLike(rng, t, bytes)) };
    }
    case "plaintext": {
      const pool = corpus.flatMap((c) => (c.plaintext ? [c.plaintext] : []));
      const { bytes, ops } = mutate(rng, t.plaintext!, pool);
      const apdu = t.cipher ? await encryptLike(rng, t.cipher, bytes) : bytes;
      return { ...base, ops, bytes: withNeighbours(rng, t, frameLike(rng, t, apdu)) };
    }
    case "generated": {
      const plain = dataNotification(rng, randomBody(rng));
      const apdu = t.cipher ? await encryptLike(rng, t.cipher, plain) : plain;
      return { ...base, ops: [], bytes: withNeighbours(rng, t, frameLike(rng, t, apdu)) };
    }
  }
}

// ─── OMS inputs ──────────────────────────────────────────────────────────────────────

/** The most data a long frame holds after CI (L = 255: C, A, CI and 252 bytes). */
const MBUS_MAX_DATA = 252;
/** The most encrypted blocks the configuration field can announce. */
const OMS_MAX_BLOCKS = 15;
/** Offsets in the OMS long header: the access number, the configuration field. */
const OMS_ACCESS_AT = 8;
const OMS_CF_AT = 10;

/** DIF/VIF heads of records, the AMIS ones and others a meter might send. */
const OMS_HEADS: readonly (readonly number[])[] = [
  [0x06, 0x6d],
  [0x04, 0x6d],
  [0x04, 0x03],
  [0x04, 0x83, 0x3c],
  [0x84, 0x10, 0xfb, 0x82, 0x73],
  [0x84, 0x10, 0xfb, 0x82, 0xf3, 0x3c],
  [0x04, 0x2b],
  [0x04, 0xab, 0x3c],
  [0x04, 0xfb, 0x14],
  [0x04, 0xfb, 0x94, 0x3c],
  [0x04, 0x83, 0xff, 0x04],
  [0x07, 0x03],
  [0x0c, 0x03],
  [0x05, 0x2b],
  [0x0d, 0x7c],
  [0x44, 0x03],
  [0x14, 0x2b],
  [0x02, 0xfd, 0x17],
  [0x2f],
  [0x0f],
];

/** Random records: known heads with random data lengths and bytes, or random bytes. */
function randomRecords(rng: Rng): Uint8Array {
  const parts: Uint8Array[] = [Uint8Array.of(OMS_FILLER, OMS_FILLER)];
  for (let n = rng.range(1, 12); n > 0; n--) {
    if (rng.chance(0.1)) {
      parts.push(rng.bytes(rng.smallLength(16)));
      continue;
    }
    const head = rng.pick(OMS_HEADS);
    parts.push(Uint8Array.from(head));
    parts.push(rng.bytes(rng.chance(0.8) ? [0, 1, 2, 3, 4, 6, 8][rng.int(7)]! : rng.int(20)));
  }
  return concatBytes(parts);
}

/**
 * `plain` encrypted under mode 5 for the target's address and a later access number,
 * padded with fillers to whole blocks (at most 15), behind a header that announces them.
 */
async function encryptOms(rng: Rng, o: OmsTarget, plain: Uint8Array): Promise<Uint8Array> {
  const blocks = Math.min(
    OMS_MAX_BLOCKS,
    Math.max(1, Math.ceil(plain.length / OMS_BLOCK_LENGTH)),
  );
  const padded = new Uint8Array(blocks * OMS_BLOCK_LENGTH).fill(OMS_FILLER);
  padded.set(plain.subarray(0, padded.length));
  const header = o.header.slice();
  header[OMS_ACCESS_AT] = (header[OMS_ACCESS_AT]! + 1 + rng.int(200)) & 0xff;
  const cf = configurationField(OMS_MODE_AES_CBC, blocks);
  header[OMS_CF_AT] = cf & 0xff;
  header[OMS_CF_AT + 1] = cf >> 8;
  const address = parseOmsHeader(header).address;
  const ciphertext = await o.security!.encrypt(address, header[OMS_ACCESS_AT]!, padded);
  return concatBytes([header, ciphertext]);
}

/** The data after CI in a long frame to the reader, with a right checksum. */
function frameOms(o: OmsTarget, data: Uint8Array): Uint8Array {
  const body = data.subarray(0, MBUS_MAX_DATA);
  return encodeMbusLongFrame(o.c, 0xf0, MBUS_CI_OMS_LONG_HEADER, body);
}

async function omsInput(
  rng: Rng,
  t: Target,
  o: OmsTarget,
  kind: InputKind,
  corpus: readonly Target[],
): Promise<{ ops: string[]; bytes: Uint8Array }> {
  let data: Uint8Array;
  let ops: string[] = [];
  if (kind === "apdu" || o.plaintext === null) {
    const pool = corpus.flatMap((c) => (c.oms ? [c.oms.data] : []));
    ({ bytes: data, ops } = mutate(rng, o.data, pool));
  } else if (kind === "plaintext") {
    const pool = corpus.flatMap((c) => (c.oms?.plaintext ? [c.oms.plaintext] : []));
    const mutated = mutate(rng, o.plaintext, pool);
    ops = mutated.ops;
    data = await encryptOms(rng, o, mutated.bytes);
  } else {
    data = await encryptOms(rng, o, randomRecords(rng));
  }
  return { ops, bytes: withNeighbours(rng, t, frameOms(o, data)) };
}

/** Sometimes puts the good capture, or garbage, before or after the hostile bytes. */
function withNeighbours(rng: Rng, t: Target, bytes: Uint8Array): Uint8Array {
  if (!rng.chance(0.15)) return bytes;
  const other = rng.chance(0.5) ? t.wire : rng.bytes(rng.int(64));
  return rng.chance(0.5) ? concatBytes([other, bytes]) : concatBytes([bytes, other]);
}

// ─── Running one input ───────────────────────────────────────────────────────────────

/** Default framer limits, which the Decoder uses too. */
export const MAX_BUFFER_BYTES = 8192;
export const MAX_PAYLOAD_BYTES = 65536;

/** An invariant of the decoder that an input broke. */
export class InvariantError extends Error {
  override name = "InvariantError";
}

/** What one input did. */
export interface CaseReport {
  readonly ms: number;
  readonly results: readonly TelegramResult[];
  readonly maxBuffered: number;
  readonly maxPending: number;
}

/** Checks one result; throws {@link InvariantError} when it breaks a contract. */
export function checkResult(r: TelegramResult): void {
  if (!r.ok) {
    if (typeof r.error !== "string" || r.error.trim() === "") {
      throw new InvariantError(`Failed result without an error message: ${JSON.stringify(r)}`);
    }
    if (!LAYERS.includes(r.stage)) {
      throw new InvariantError(`Failed result with a bad stage: ${JSON.stringify(r)}`);
    }
    return;
  }
  for (const [key, value] of Object.entries(r.reading.values)) {
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new InvariantError(`Named value ${key} is not a finite number: ${value}`);
    }
  }
  // What `decode` prints and MQTT publishes: must serialise (no bigint, no cycles).
  JSON.stringify(r);
}

/**
 * Feeds one input through a fresh Decoder in the given chunks, with a shadow Framer fed
 * the same chunks to watch the buffer bounds. Exceptions from `push`/`end` escape (they
 * are the bugs a fuzzer looks for); broken invariants throw {@link InvariantError}.
 */
export async function runCase(
  bytes: Uint8Array,
  options: DecoderOptions,
  chunks: readonly Chunk[],
): Promise<CaseReport> {
  const start = performance.now();
  const decoder = await Decoder.create(options);
  const shadow = new Framer({ gapMs: options.gapMs ?? 1000 });
  const results: TelegramResult[] = [];
  let maxBuffered = 0;
  let maxPending = 0;
  let fed = 0;
  for (const c of chunks) {
    results.push(...await decoder.push(c.bytes, c.nowMs));
    shadow.push(c.bytes, c.nowMs);
    fed += c.bytes.length;
    maxBuffered = Math.max(maxBuffered, shadow.bufferedBytes);
    maxPending = Math.max(maxPending, shadow.pendingPayloadBytes);
  }
  results.push(...await decoder.end());
  const ms = performance.now() - start;
  if (fed !== bytes.length) throw new InvariantError(`Chunks hold ${fed} of ${bytes.length} bytes`);
  if (maxBuffered > MAX_BUFFER_BYTES) {
    throw new InvariantError(`Framer buffered ${maxBuffered} bytes, bound ${MAX_BUFFER_BYTES}`);
  }
  if (maxPending > MAX_PAYLOAD_BYTES) {
    throw new InvariantError(`Framer held ${maxPending} payload bytes, bound ${MAX_PAYLOAD_BYTES}`);
  }
  if (results.length === 0) {
    throw new InvariantError("No result at all: the end of input must report something");
  }
  for (const r of results) checkResult(r);
  return { ms, results, maxBuffered, maxPending };
}

// ─── The driver ──────────────────────────────────────────────────────────────────────

/** An input that made the decoder throw or break an invariant. */
export interface Crash {
  readonly seed: number;
  readonly index: number;
  readonly kind: InputKind;
  readonly target: string;
  readonly ops: readonly string[];
  readonly error: string;
  readonly hex: string;
}

/** Figures of a fuzz run. */
export interface FuzzStats {
  inputs: number;
  bytes: number;
  byKind: Record<string, number>;
  decoded: number;
  failedByStage: Record<string, number>;
  maxMs: number;
  /** Index of the slowest input, and what it was. */
  maxMsIndex: number;
  maxMsInput: string;
  totalMs: number;
  maxBuffered: number;
  maxPending: number;
  crashes: Crash[];
}

/** Options of {@link fuzz}. */
export interface FuzzOptions {
  seed: number;
  inputs: number;
  /** Index of the first input (to resume or to shard a long run). */
  first?: number;
  /** Called every `every` inputs with the figures so far. */
  progress?: (stats: FuzzStats, every: number) => void;
  every?: number;
}

/** Runs `inputs` inputs; crashes are collected, never thrown. */
export async function fuzz(corpus: readonly Target[], opts: FuzzOptions): Promise<FuzzStats> {
  const stats: FuzzStats = {
    inputs: 0,
    bytes: 0,
    byKind: {},
    decoded: 0,
    failedByStage: {},
    maxMs: 0,
    maxMsIndex: -1,
    maxMsInput: "",
    totalMs: 0,
    maxBuffered: 0,
    maxPending: 0,
    crashes: [],
  };
  const first = opts.first ?? 0;
  for (let index = first; index < first + opts.inputs; index++) {
    const rng = Rng.for(opts.seed, index);
    const input = await makeInput(rng, corpus);
    const chunks = chunkRandomly(rng, input.bytes);
    stats.inputs++;
    stats.bytes += input.bytes.length;
    stats.byKind[input.kind] = (stats.byKind[input.kind] ?? 0) + 1;
    try {
      const report = await runCase(input.bytes, input.options, chunks);
      stats.totalMs += report.ms;
      if (report.ms > stats.maxMs) {
        stats.maxMs = report.ms;
        stats.maxMsIndex = index;
        stats.maxMsInput =
          `seed ${opts.seed} index ${index} (${input.kind} ${input.target}, ${input.bytes.length} bytes, ${chunks.length} chunks)`;
      }
      stats.maxBuffered = Math.max(stats.maxBuffered, report.maxBuffered);
      stats.maxPending = Math.max(stats.maxPending, report.maxPending);
      for (const r of report.results) {
        if (r.ok) stats.decoded++;
        else stats.failedByStage[r.stage] = (stats.failedByStage[r.stage] ?? 0) + 1;
      }
    } catch (e) {
      stats.crashes.push({
        seed: opts.seed,
        index,
        kind: input.kind,
        target: input.target,
        ops: input.ops,
        error: e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ""}` : String(e),
        hex: toHex(input.bytes),
      });
    }
    if (opts.progress && (stats.inputs % (opts.every ?? 10000)) === 0) {
      opts.progress(stats, opts.every ?? 10000);
    }
  }
  return stats;
}

/** Regenerates input `index` of a run seeded with `seed` (to replay a crash). */
export async function replay(
  corpus: readonly Target[],
  seed: number,
  index: number,
): Promise<{ input: FuzzInput; chunks: Chunk[] }> {
  const rng = Rng.for(seed, index);
  const input = await makeInput(rng, corpus);
  return { input, chunks: chunkRandomly(rng, input.bytes) };
}

/**
 * Shrinks an input while `fails` still holds: removes spans of halving size, then tries
 * each single byte. Enough for the short inputs a crash usually needs.
 */
export async function minimise(
  bytes: Uint8Array,
  fails: (b: Uint8Array) => Promise<boolean>,
): Promise<Uint8Array> {
  let best = bytes;
  for (let span = best.length >> 1; span >= 1; span >>= 1) {
    for (let at = 0; at + span <= best.length;) {
      const candidate = concatBytes([best.subarray(0, at), best.subarray(at + span)]);
      if (await fails(candidate)) best = candidate;
      else at += span;
    }
  }
  return best;
}

// ─── Command line ────────────────────────────────────────────────────────────────────

if (import.meta.main) {
  const arg = (name: string, fallback: number) => {
    const i = Deno.args.indexOf(`--${name}`);
    return i >= 0 ? Number(Deno.args[i + 1]) : fallback;
  };
  const { FIXTURES } = await import("./fixtures.ts");
  const corpus = await buildCorpus(FIXTURES);
  const seed = arg("seed", 1);
  const inputs = arg("inputs", 100_000);
  const t0 = performance.now();
  const stats = await fuzz(corpus, {
    seed,
    inputs,
    first: arg("first", 0),
    every: 10_000,
    progress: (s) =>
      console.error(
        `${s.inputs} inputs, ${s.crashes.length} crashes, max ${s.maxMs.toFixed(1)} ms, ` +
          `heap ${(Deno.memoryUsage().heapUsed / 1e6).toFixed(1)} MB`,
      ),
  });
  const seconds = (performance.now() - t0) / 1000;
  // One timing can be a GC pause or the scheduler: time the slowest input again, alone.
  const again: number[] = [];
  if (stats.inputs > 0) {
    const { input, chunks } = await replay(corpus, seed, stats.maxMsIndex);
    for (let i = 0; i < 21; i++) {
      const start = performance.now();
      await runCase(input.bytes, input.options, chunks);
      again.push(performance.now() - start);
    }
    again.sort((a, b) => a - b);
  }
  const slowestAgainMs = again[10] ?? null;
  console.log(
    JSON.stringify({ ...stats, seconds, slowestAgainMs, crashes: stats.crashes.length }, null, 1),
  );
  for (const c of stats.crashes.slice(0, 10)) console.log(c);
  Deno.exit(stats.crashes.length === 0 ? 0 : 1);
}

/**
 * Bare DLMS APDUs with no link layer, as P1 ports send them: a length-driven scanner that
 * answers frame / need-more / skip, with enough checks that garbage rarely starts a frame
 * (DLMS Green Book §9.3 APDU encodings; tags from the xDLMS ASN.1 module).
 *
 * ```
 *   data-notification (no length field: measured by decoding its one Data value)
 *   +----+--------------------+-----------------------------+--------------------------+
 *   | 0F | invoke-id (4)      | date-time                   | notification body: Data  |
 *   |    |                    | 00 | 0C + 12 | 09 0C + 12    | (array / structure /     |
 *   |    |                    |                             |  octet-string)           |
 *   +----+--------------------+-----------------------------+--------------------------+
 *
 *   general-glo-ciphering DB, general-ded-ciphering DC
 *   +-------+----+------------------+-----------+----+--------+------------+-----------+
 *   | DB/DC | 08 | system title (8) | BER len n | SC | IC (4) | ciphertext | [tag (12)]|
 *   +-------+----+------------------+-----------+----+--------+------------+-----------+
 *                                               └──────────── n bytes ───────────────┘
 *   service-specific glo- (C8..CF) and ded- (D0..D7) ciphering: the same without the
 *   system title:  C8 | BER len n | SC | IC (4) | ciphertext [| tag]
 *
 *   general-block-transfer
 *   +----+---------+------------------+----------------------+-----------+------------+
 *   | E0 | control | block number (2) | block number ack (2) | BER len n | block data |
 *   +----+---------+------------------+----------------------+-----------+------------+
 *          └ bit 7 last block, bit 6 streaming, bits 0-5 window
 *
 *   BER length: 00..7F, or 81 nn, 82 nn nn, 83 .., 84 nn nn nn nn
 * ```
 *
 * Checks that keep garbage out (each is something every real APDU satisfies):
 * - ciphering: the security control byte SC names suite 0..2, sets the authentication
 *   and/or encryption bit (0x10/0x20) and not the compression bit (0x80); the content is
 *   long enough for SC, the invocation counter and (with 0x10) the 12-byte tag.
 * - general ciphering: the system title is 8 bytes and begins with a manufacturer id
 *   (three ASCII letters, as the FLAG id is: `LGZ`, `KFM`, `SAG`, `ISK`, `KAM` ...).
 * - data-notification: the date-time is absent or a plausible date-time, the body is an
 *   array, a structure or an octet-string, and it decodes as A-XDR: standard, or else
 *   with the untagged attribute descriptors of the Sagemcom XT211 (EG.D) in
 *   structure(2)s, the variant `decodeData` reads with `attributeDescriptors`.
 * - block transfer: block number >= 1, acknowledged block <= block number, and block 1
 *   starts with one of the APDU tags above.
 *
 * Random bytes pass the data-notification and general-ciphering checks at about one
 * position in 10^8 or fewer, but the block-transfer and service-specific-ciphering checks
 * at about one in a thousand: these "weak forms" can be switched off
 * ({@link RawScanOptions}).
 *
 * @module
 */

import { ByteReader, hex2 } from "../bytes.ts";
import { ParseError, TruncatedError } from "../errors.ts";
import { DataTag, decodeData, type DecodeOptions } from "../dlms/axdr.ts";
import { looksLikeDateTime } from "../dlms/datetime.ts";

/** APDU tags that may start a raw APDU. */
export const RawTag = {
  DATA_NOTIFICATION: 0x0f,
  GLO_FIRST: 0xc8,
  GLO_LAST: 0xcf,
  DED_FIRST: 0xd0,
  DED_LAST: 0xd7,
  GENERAL_GLO_CIPHERING: 0xdb,
  GENERAL_DED_CIPHERING: 0xdc,
  GENERAL_BLOCK_TRANSFER: 0xe0,
} as const;

/** Whether `b` is a tag {@link scanRawApdu} looks at. */
export function isRawApduTag(b: number): boolean {
  return b === RawTag.DATA_NOTIFICATION || b === RawTag.GENERAL_GLO_CIPHERING ||
    b === RawTag.GENERAL_DED_CIPHERING || b === RawTag.GENERAL_BLOCK_TRANSFER ||
    (b >= RawTag.GLO_FIRST && b <= RawTag.DED_LAST);
}

// data-notification, offsets from the tag (the invoke id, bytes 1..4, may hold anything).
const DN_DATE_TIME = 5;
const DATE_TIME_LENGTH = 12;
const DT_ABSENT = 0x00;
const DT_OCTET_STRING = 0x0c; // length 12: the A-XDR OCTET STRING form
const DT_DATA_TAG = 0x09; // 09 0C: the date-time sent as a Data octet-string (Kaifa)

// general-glo/ded-ciphering, offsets from the tag.
const GC_TITLE_LENGTH = 1;
const GC_TITLE = 2;
const SYSTEM_TITLE_LENGTH = 8;
const MANUFACTURER_ID_LENGTH = 3;
const GC_CONTENT_LENGTH = GC_TITLE + SYSTEM_TITLE_LENGTH;

// service-specific ciphering.
const SC_CONTENT_LENGTH = 1;

// general-block-transfer, offsets from the tag (the control byte, 1, may hold anything).
const GBT_BLOCK_NUMBER = 2;
const GBT_BLOCK_ACK = 4;
const GBT_LENGTH = 6;

// Security control byte.
const SC_SUITE_MASK = 0x0f;
const SC_MAX_SUITE = 2;
const SC_AUTHENTICATED = 0x10;
const SC_ENCRYPTED = 0x20;
const SC_COMPRESSED = 0x80;
const INVOCATION_COUNTER_LENGTH = 4;
const TAG_LENGTH = 12;

const MAX_BER_LENGTH_BYTES = 4;
/** Class id (2), OBIS code (6) and attribute (1) of an untagged attribute descriptor. */
const ATTRIBUTE_DESCRIPTOR_LENGTH = 9;
const STANDARD: DecodeOptions = {};
const WITH_DESCRIPTORS: DecodeOptions = { attributeDescriptors: true };
const DEFAULT_MAX_LENGTH = 65536;

/** What {@link scanRawApdu} found at the start of its input. */
export type RawScan =
  /** A whole APDU of `bytes` bytes starting with `tag`. */
  | { readonly kind: "frame"; readonly tag: number; readonly bytes: number }
  /**
   * The input ends before the APDU does. `credible`: its header passed the checks above;
   * `total` is the length when the header gives it (not for data-notification);
   * `atLeast`, a length the APDU has at least: scanning again before that many bytes are
   * there cannot decide more.
   */
  | {
    readonly kind: "need-more";
    readonly credible: boolean;
    readonly total?: number;
    readonly atLeast?: number;
  }
  /** Not an APDU: drop `bytes` and look again. */
  | { readonly kind: "skip"; readonly bytes: number; readonly reason: string };

const NOT_YET: RawScan = { kind: "need-more", credible: false };

/** A BER length at `at`: its value and where the content starts; null: need more. */
function berLength(bytes: Uint8Array, at: number): { n: number; next: number } | null | "bad" {
  if (at >= bytes.length) return null;
  const first = bytes[at]!;
  if (first < 0x80) return { n: first, next: at + 1 };
  const count = first & 0x7f;
  if (count === 0 || count > MAX_BER_LENGTH_BYTES) return "bad";
  if (at + 1 + count > bytes.length) return null;
  let n = 0;
  for (let i = 1; i <= count; i++) n = n * 256 + bytes[at + i]!;
  return { n, next: at + 1 + count };
}

function plausibleSecurityControl(sc: number): boolean {
  return (sc & SC_COMPRESSED) === 0 && (sc & SC_SUITE_MASK) <= SC_MAX_SUITE &&
    (sc & (SC_AUTHENTICATED | SC_ENCRYPTED)) !== 0;
}

function isLetter(b: number): boolean {
  return (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
}

const skip = (reason: string): RawScan => ({ kind: "skip", bytes: 1, reason });

/**
 * A length-prefixed APDU whose content starts with the security control byte: checks the
 * content and answers frame or need-more.
 */
function ciphered(bytes: Uint8Array, lengthAt: number, maxLength: number): RawScan {
  const len = berLength(bytes, lengthAt);
  if (len === null) return NOT_YET;
  if (len === "bad") return skip("bad BER length in a ciphered APDU");
  if (len.next >= bytes.length) return NOT_YET;
  const sc = bytes[len.next]!;
  if (!plausibleSecurityControl(sc)) {
    return skip(`implausible security control byte 0x${hex2(sc)}`);
  }
  const least = 1 + INVOCATION_COUNTER_LENGTH + (sc & SC_AUTHENTICATED ? TAG_LENGTH : 0);
  if (len.n < least) return skip("ciphered APDU shorter than its security header");
  const total = len.next + len.n;
  if (total > maxLength) return skip(`raw APDU longer than the ${maxLength}-byte limit`);
  if (bytes.length < total) return { kind: "need-more", credible: true, total };
  return { kind: "frame", tag: bytes[0]!, bytes: total };
}

function generalCiphering(bytes: Uint8Array, maxLength: number): RawScan {
  if (bytes.length <= GC_TITLE_LENGTH) return NOT_YET;
  if (bytes[GC_TITLE_LENGTH] !== SYSTEM_TITLE_LENGTH) {
    return skip("general ciphering without an 8-byte system title");
  }
  for (let i = 0; i < MANUFACTURER_ID_LENGTH; i++) {
    if (GC_TITLE + i >= bytes.length) return NOT_YET;
    if (!isLetter(bytes[GC_TITLE + i]!)) {
      return skip("system title without a manufacturer id");
    }
  }
  if (bytes.length < GC_CONTENT_LENGTH) return NOT_YET;
  return ciphered(bytes, GC_CONTENT_LENGTH, maxLength);
}

function blockTransfer(bytes: Uint8Array, maxLength: number): RawScan {
  if (bytes.length < GBT_LENGTH) return NOT_YET;
  const block = (bytes[GBT_BLOCK_NUMBER]! << 8) | bytes[GBT_BLOCK_NUMBER + 1]!;
  const ack = (bytes[GBT_BLOCK_ACK]! << 8) | bytes[GBT_BLOCK_ACK + 1]!;
  if (block === 0 || ack > block) return skip("implausible block numbers");
  const len = berLength(bytes, GBT_LENGTH);
  if (len === null) return NOT_YET;
  if (len === "bad" || len.n === 0) return skip("bad block length");
  if (block === 1) {
    if (len.next >= bytes.length) return NOT_YET;
    const inner = bytes[len.next]!;
    if (!isRawApduTag(inner) || inner === RawTag.GENERAL_BLOCK_TRANSFER) {
      return skip("block 1 does not start with an APDU");
    }
  }
  const total = len.next + len.n;
  if (total > maxLength) return skip(`raw APDU longer than the ${maxLength}-byte limit`);
  if (bytes.length < total) return { kind: "need-more", credible: true, total };
  return { kind: "frame", tag: bytes[0]!, bytes: total };
}

/**
 * Whether a non-truncation error at `at` is the A-XDR decoder refusing an element count
 * larger than the bytes left, which in a stream only means the rest has not arrived:
 * "more", or "too-long" when even one byte per element would pass `maxLength`; null when
 * the error is something else.
 */
function countShortfall(
  bytes: Uint8Array,
  at: number,
  maxLength: number,
): { more: number } | "too-long" | null {
  const tag = bytes[at];
  if (tag !== DataTag.ARRAY && tag !== DataTag.STRUCTURE) return null;
  const len = berLength(bytes, at + 1);
  if (len === null || len === "bad" || len.n <= bytes.length - len.next) return null;
  // Each element takes at least one byte: the APDU is at least this long.
  return len.next + len.n > maxLength ? "too-long" : { more: len.next + len.n };
}

/** How far a decode of the body got: `{more}` says how long the APDU is at least. */
type Measure = { more: number } | "too-long" | "bad" | number;

/** Decodes the body at `body` with `opts`: its end offset, or why there is none. */
function measure(
  window: Uint8Array,
  body: number,
  base: number,
  maxLength: number,
  opts: DecodeOptions,
): Measure {
  const reader = new ByteReader(window.subarray(body), "apdu", base + body);
  try {
    decodeData(reader, 0, opts);
    return body + reader.pos;
  } catch (e) {
    if (!(e instanceof ParseError)) throw e;
    if (e instanceof TruncatedError) return { more: window.length + e.missing };
    return countShortfall(window, e.offset - base, maxLength) ?? "bad";
  }
}

/**
 * Whether a structure(2) starting with 00 begins so close to the end of `window` that the
 * decoder cannot yet tell an untagged attribute descriptor (9 bytes) from a null: a
 * decode of this prefix with descriptors may then succeed or fail where the whole APDU
 * would not.
 */
function descriptorUndecided(window: Uint8Array, body: number): boolean {
  const from = Math.max(body, window.length - (ATTRIBUTE_DESCRIPTOR_LENGTH + 2));
  for (let p = from; p + 2 < window.length; p++) {
    if (window[p] === DataTag.STRUCTURE && window[p + 1] === 2 && window[p + 2] === 0x00) {
      return true;
    }
  }
  return false;
}

function dataNotification(
  bytes: Uint8Array,
  base: number,
  maxLength: number,
  final: boolean,
): RawScan {
  if (bytes.length <= DN_DATE_TIME) return NOT_YET;
  let body: number;
  const form = bytes[DN_DATE_TIME]!;
  if (form === DT_ABSENT) {
    body = DN_DATE_TIME + 1;
  } else {
    const lengthAt = form === DT_DATA_TAG ? DN_DATE_TIME + 1 : DN_DATE_TIME;
    if (lengthAt >= bytes.length) return NOT_YET;
    if (
      (form !== DT_OCTET_STRING && form !== DT_DATA_TAG) || bytes[lengthAt] !== DATE_TIME_LENGTH
    ) {
      return skip("data-notification without a valid date-time field");
    }
    body = lengthAt + 1 + DATE_TIME_LENGTH;
    if (bytes.length < body) return NOT_YET;
    if (!looksLikeDateTime(bytes.subarray(lengthAt + 1, body))) {
      return skip("data-notification with an implausible date-time");
    }
  }
  if (body >= bytes.length) return NOT_YET;
  const bodyTag = bytes[body]!;
  if (
    bodyTag !== DataTag.ARRAY && bodyTag !== DataTag.STRUCTURE &&
    bodyTag !== DataTag.OCTET_STRING
  ) {
    return skip("data-notification body is not an array, structure or octet-string");
  }
  const window = bytes.subarray(0, Math.min(bytes.length, maxLength));
  const cut = window.length < bytes.length;
  let end = measure(window, body, base, maxLength, STANDARD);
  if (end === "bad") {
    // The Sagemcom XT211 (EG.D) variant: attribute descriptors without type tags.
    end = measure(window, body, base, maxLength, WITH_DESCRIPTORS);
    if (!final && !cut && typeof end !== "object" && descriptorUndecided(window, body)) {
      end = { more: window.length + 1 };
    }
  }
  if (typeof end === "number") return { kind: "frame", tag: bytes[0]!, bytes: end };
  if (end === "bad") return skip("data-notification body is not valid A-XDR");
  if (end === "too-long" || cut || bytes.length >= maxLength) {
    return skip(`raw APDU longer than the ${maxLength}-byte limit`);
  }
  return { kind: "need-more", credible: true, atLeast: end.more };
}

/** Options of {@link scanRawApdu}. */
export interface RawScanOptions {
  /** Longest APDU accepted; a longer one is skipped (default 65536). */
  maxLength?: number;
  /**
   * Accept the forms with little redundancy, block transfer and service-specific
   * ciphering, whose header random bytes pass about once in a thousand (default true).
   * The framer allows them only where a frame is expected to begin.
   */
  weakForms?: boolean;
  /**
   * No more bytes will come: decide with what is there (matters only for a
   * data-notification whose last bytes could be the start of an attribute descriptor).
   */
  final?: boolean;
}

/**
 * Looks for one bare APDU at the start of `bytes`. Never throws on any input.
 *
 * @param base stream offset of `bytes[0]` (offsets of decoder errors)
 */
export function scanRawApdu(bytes: Uint8Array, base = 0, opts: RawScanOptions = {}): RawScan {
  const maxLength = opts.maxLength ?? DEFAULT_MAX_LENGTH;
  if (bytes.length === 0) return NOT_YET;
  const tag = bytes[0]!;
  if (tag === RawTag.DATA_NOTIFICATION) {
    return dataNotification(bytes, base, maxLength, opts.final ?? false);
  }
  if (tag === RawTag.GENERAL_GLO_CIPHERING || tag === RawTag.GENERAL_DED_CIPHERING) {
    return generalCiphering(bytes, maxLength);
  }
  const weak = tag === RawTag.GENERAL_BLOCK_TRANSFER ||
    (tag >= RawTag.GLO_FIRST && tag <= RawTag.DED_LAST);
  if (!weak) return skip("not an APDU tag");
  if (!(opts.weakForms ?? true)) return skip("weakly checked APDU form away from a frame boundary");
  if (tag === RawTag.GENERAL_BLOCK_TRANSFER) return blockTransfer(bytes, maxLength);
  return ciphered(bytes, SC_CONTENT_LENGTH, maxLength);
}

/**
 * The DLMS APDUs a meter pushes on its customer interface, parsed from the bytes a framer
 * delivers (IEC 62056-5-3 / DLMS Green Book §9.3 and §9.5, xDLMS APDU tags of Table 60).
 *
 * ```
 *   general-glo-ciphering (DB) / general-ded-ciphering (DC)
 *   +-----+----+-----------------+-----------+----+--------------+------------+------------+
 *   | tag | 08 | system title 8  | BER len L | SC | invocation 4 | ciphertext | [GCM tag]  |
 *   +-----+----+-----------------+-----------+----+--------------+------------+-- 12 -----+
 *                                            '------------------ L bytes -------------------'
 *   service-specific glo (C8..CF) / ded (D0..D7), system title known out of band
 *   | tag | BER len L | SC | invocation 4 | ciphertext | [GCM tag 12] |
 *
 *   SC (security control): bits 0-3 suite, 0x10 authenticated (12-byte tag present),
 *   0x20 encrypted, 0x40 broadcast key, 0x80 compressed.
 *
 *   data-notification (0F)
 *   | 0F | long-invoke-id-and-priority 4 | date-time | body: one A-XDR Data |
 *   date-time: 00 (absent) | 0C + 12 bytes | 09 0C + 12 bytes (some Kaifa)
 *
 *   general-block-transfer (E0)
 *   | E0 | block-control | block-number 2 | block-number-ack 2 | BER len | block data |
 *   block-control: bit 7 last block, bit 6 streaming, bits 0-5 window
 *
 *   DSMR P1 text carried in a ciphering APDU: starts with "/" (0x2F)
 * ```
 *
 * The general-ded-ciphering tag is 0xDC ([220]); 0xDF is general-signing ([223]), which
 * carries a signature rather than ciphered content and is refused by name.
 *
 * @module
 */

import { ByteReader, hex2, latin1 } from "../bytes.ts";
import { type AxdrValue, decodeDataWhole } from "./axdr.ts";
import { type DlmsDateTime, parseDateTime } from "./datetime.ts";

/** APDU tags used here (IEC 62056-5-3 Table 60). */
export const ApduTag = {
  DATA_NOTIFICATION: 0x0f,
  GENERAL_GLO_CIPHERING: 0xdb,
  GENERAL_DED_CIPHERING: 0xdc,
  GENERAL_CIPHERING: 0xdd,
  GENERAL_SIGNING: 0xdf,
  GENERAL_BLOCK_TRANSFER: 0xe0,
  /** "/" starts a DSMR P1 telegram. */
  DSMR_TEXT: 0x2f,
} as const;

/** Security control bits (Green Book §9.2.7.2.4). */
export const SecurityControl = {
  SUITE_MASK: 0x0f,
  AUTHENTICATED: 0x10,
  ENCRYPTED: 0x20,
  BROADCAST_KEY: 0x40,
  COMPRESSED: 0x80,
} as const;

/** Length of a system title. */
export const SYSTEM_TITLE_LENGTH = 8;
/** Length of the GCM tag DLMS sends (security suite 0 and 1). */
export const AUTH_TAG_LENGTH = 12;
/** Security control byte and invocation counter, the fixed start of ciphered content. */
const SECURITY_HEADER_LENGTH = 5;

/** The date-time of a data-notification as an octet string. */
const DATE_TIME_LENGTH = 12;
const DATE_TIME_ABSENT = 0x00;
/** Some Kaifa meters send the optional date-time with an octet-string type tag first. */
const DATE_TIME_TYPED = 0x09;

const BLOCK_LAST = 0x80;
const BLOCK_STREAMING = 0x40;
const BLOCK_WINDOW_MASK = 0x3f;

/** A ciphered APDU, not yet decrypted. */
export interface CipheredApdu {
  kind: "ciphered";
  tag: number;
  service: "general-glo" | "general-ded" | "service-specific";
  /** The sender's system title, or null for service-specific APDUs. */
  systemTitle: Uint8Array | null;
  securityControl: number;
  invocationCounter: number;
  ciphertext: Uint8Array;
  authTag: Uint8Array | null;
  encrypted: boolean;
  authenticated: boolean;
  /** Security suite id, bits 0-3 of the security control byte. */
  suite: number;
  /** Whether the broadcast key was used (SC bit 0x40). */
  broadcastKey: boolean;
  /** Whether the content is compressed (SC bit 0x80); refused when decrypting. */
  compressed: boolean;
}

/** One block of a general block transfer. */
export interface BlockApdu {
  kind: "block";
  last: boolean;
  streaming: boolean;
  window: number;
  blockNumber: number;
  ackedBlock: number;
  data: Uint8Array;
}

/** A data-notification: the push message itself. */
export interface DataNotification {
  kind: "data-notification";
  invokeId: number;
  dateTime: DlmsDateTime | null;
  body: AxdrValue;
  /** Offset of the body in the APDU's bytes (for `decode --explain`). */
  bodyOffset: number;
}

/** A DSMR P1 telegram carried as plaintext (starts with "/"). */
export interface TextApdu {
  kind: "text";
  text: string;
}

export type Apdu = CipheredApdu | BlockApdu | DataNotification | TextApdu;

/** glo-/ded- service-specific ciphering tags: C8..CF and D0..D7 without the unused CE, D6. */
export function isServiceSpecificCiphering(tag: number): boolean {
  return (tag >= 0xc8 && tag <= 0xd7) && tag !== 0xce && tag !== 0xd6;
}

function bytesCount(n: number): string {
  return n === 1 ? "1 byte" : `${n} bytes`;
}

/**
 * Parses one APDU.
 *
 * @param bytes exactly one APDU
 * @param base offset of `bytes` in a larger input, added to the offsets in errors
 * @throws {ParseError} (layer "apdu") on a malformed or unsupported APDU; the A-XDR body of
 *   a data-notification throws with layer "axdr"
 */
export function parseApdu(bytes: Uint8Array, base = 0): Apdu {
  const r = new ByteReader(bytes, "apdu", base);
  const tag = r.peek("an APDU tag");
  switch (tag) {
    case ApduTag.GENERAL_GLO_CIPHERING:
    case ApduTag.GENERAL_DED_CIPHERING:
      return parseCiphered(r);
    case ApduTag.DATA_NOTIFICATION:
      return parseDataNotification(r);
    case ApduTag.GENERAL_BLOCK_TRANSFER:
      return parseBlock(r);
    case ApduTag.DSMR_TEXT:
      return { kind: "text", text: latin1(bytes) };
    case ApduTag.GENERAL_CIPHERING:
      throw r.error(
        "Unsupported APDU: general-ciphering (0xdd) is not used by meters on a customer interface",
      );
    case ApduTag.GENERAL_SIGNING:
      throw r.error(
        "Unsupported APDU: general-signing (0xdf) carries a signature, not ciphered content",
      );
  }
  if (isServiceSpecificCiphering(tag)) return parseCiphered(r);
  throw r.error(
    `Unknown APDU tag 0x${hex2(tag)}: expected a data-notification (0f), a block transfer ` +
      `(e0), a ciphering APDU (db, dc, c8..d7) or DSMR text ("/")`,
  );
}

function parseCiphered(r: ByteReader): CipheredApdu {
  const tag = r.u8();
  let service: CipheredApdu["service"] = "service-specific";
  let systemTitle: Uint8Array | null = null;
  if (tag === ApduTag.GENERAL_GLO_CIPHERING || tag === ApduTag.GENERAL_DED_CIPHERING) {
    service = tag === ApduTag.GENERAL_GLO_CIPHERING ? "general-glo" : "general-ded";
    const at = r.pos;
    const titleLength = r.berLength("the system title length");
    if (titleLength !== SYSTEM_TITLE_LENGTH) {
      throw r.error(
        `Bad system title: length ${titleLength}, must be ${SYSTEM_TITLE_LENGTH} bytes`,
        at,
      );
    }
    systemTitle = r.bytes(SYSTEM_TITLE_LENGTH, "the system title");
  }
  const lengthAt = r.pos;
  const length = r.berLength("the ciphered content length");
  if (length < SECURITY_HEADER_LENGTH) {
    throw r.error(
      `Ciphered content too short: length ${length}, the security header alone takes ` +
        `${SECURITY_HEADER_LENGTH} bytes`,
      lengthAt,
    );
  }
  r.need(length, "the ciphered content");
  if (r.remaining > length) {
    throw r.error(
      `${bytesCount(r.remaining - length)} left over after the ciphered content of ${length} bytes`,
      r.pos + length,
    );
  }
  const scAt = r.pos;
  const sc = r.u8("the security control byte");
  const invocationCounter = r.u32("the invocation counter");
  const authenticated = (sc & SecurityControl.AUTHENTICATED) !== 0;
  const dataLength = length - SECURITY_HEADER_LENGTH;
  if (authenticated && dataLength < AUTH_TAG_LENGTH) {
    throw r.error(
      `Ciphered content too short for its GCM tag: security control 0x${hex2(sc)} announces ` +
        `a ${AUTH_TAG_LENGTH}-byte tag, only ${dataLength} bytes follow the invocation counter`,
      scAt,
    );
  }
  const ciphertext = r.bytes(dataLength - (authenticated ? AUTH_TAG_LENGTH : 0));
  const authTag = authenticated ? r.bytes(AUTH_TAG_LENGTH, "the GCM tag") : null;
  return {
    kind: "ciphered",
    tag,
    service,
    systemTitle,
    securityControl: sc,
    invocationCounter,
    ciphertext,
    authTag,
    encrypted: (sc & SecurityControl.ENCRYPTED) !== 0,
    authenticated,
    suite: sc & SecurityControl.SUITE_MASK,
    broadcastKey: (sc & SecurityControl.BROADCAST_KEY) !== 0,
    compressed: (sc & SecurityControl.COMPRESSED) !== 0,
  };
}

function parseDataNotification(r: ByteReader): DataNotification {
  r.u8();
  const invokeId = r.u32("the long-invoke-id-and-priority");
  let marker = r.u8("the date-time");
  if (marker === DATE_TIME_TYPED) marker = r.u8("the date-time length");
  let dateTime: DlmsDateTime | null = null;
  if (marker === DATE_TIME_LENGTH) {
    dateTime = parseDateTime(r.bytes(DATE_TIME_LENGTH, "the date-time"));
  } else if (marker !== DATE_TIME_ABSENT) {
    throw r.error(
      `Bad date-time in data-notification: 0x${hex2(marker)} is neither 00 (absent) nor ` +
        `0c (12 bytes follow)`,
      r.pos - 1,
    );
  }
  // The body is A-XDR: its errors name that layer, at offsets counted from the APDU start.
  const bodyAt = r.pos;
  const body = new ByteReader(r.rest(), "axdr", r.base + bodyAt);
  const value = decodeDataWhole(body);
  if (body.remaining !== 0) {
    throw r.error(
      `${bytesCount(body.remaining)} left over after the data-notification body: damaged data or ` +
        `a second value the format does not allow`,
      bodyAt + body.pos,
    );
  }
  return { kind: "data-notification", invokeId, dateTime, body: value, bodyOffset: bodyAt };
}

function parseBlock(r: ByteReader): BlockApdu {
  r.u8();
  const control = r.u8("the block-control byte");
  const blockNumber = r.u16("the block number");
  const ackedBlock = r.u16("the acknowledged block number");
  const n = r.berLength("the block data length");
  const data = r.bytes(n, "the block data");
  if (r.remaining !== 0) {
    throw r.error(
      `${bytesCount(r.remaining)} left over after block ${blockNumber} of ${n} bytes`,
    );
  }
  return {
    kind: "block",
    last: (control & BLOCK_LAST) !== 0,
    streaming: (control & BLOCK_STREAMING) !== 0,
    window: control & BLOCK_WINDOW_MASK,
    blockNumber,
    ackedBlock,
    data,
  };
}

const INVOKE_ID_LENGTH = 4;
const PRINTABLE_FIRST = 0x20;
const PRINTABLE_LAST = 0x7e;

/**
 * Whether decrypted bytes plausibly start a plain DLMS APDU (or DSMR text). Used to tell a
 * wrong encryption key from a good one when no GCM tag can decide: decryption with a wrong
 * key gives random bytes, and random bytes rarely pass these checks.
 */
export function looksLikePlainApdu(bytes: Uint8Array): boolean {
  const first = bytes[0];
  const second = bytes[1];
  if (first === undefined || second === undefined) return false;
  switch (first) {
    case ApduTag.DATA_NOTIFICATION: {
      const marker = bytes[1 + INVOKE_ID_LENGTH];
      return marker === DATE_TIME_ABSENT || marker === DATE_TIME_LENGTH ||
        (marker === DATE_TIME_TYPED && bytes[2 + INVOKE_ID_LENGTH] === DATE_TIME_LENGTH);
    }
    case ApduTag.GENERAL_BLOCK_TRANSFER:
      return bytes.length >= 7;
    case ApduTag.DSMR_TEXT:
      return bytes.subarray(1, 4).every((b) => b >= PRINTABLE_FIRST && b <= PRINTABLE_LAST);
    // get/set/event-notification/action requests and responses: a small choice byte follows
    case 0xc0:
    case 0xc1:
    case 0xc2:
    case 0xc3:
    case 0xc4:
    case 0xc5:
    case 0xc7:
      return second <= 0x07;
    default:
      return false;
  }
}

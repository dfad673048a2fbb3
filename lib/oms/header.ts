/**
 * The OMS application header of an M-Bus long frame with CI 0x5B ("long header", EN
 * 13757-7; OMS Vol. 2): who the data is addressed to, the access number, and the
 * configuration field that says how the data is protected.
 *
 * ```
 *   offset (after CI)  0..3   4..5   6     7      8     9    10..11   12 ..
 *   +------------------+------+-----+------+-----+----+--------+---------------------+
 *   | ID (BCD, LSB     | M    | ver | med  | ACC | ST | CF     | data: N encrypted   |
 *   | first)           | (LE) |     |      |     |    | (LE)   | blocks, then clear  |
 *   +------------------+------+-----+------+-----+----+--------+---------------------+
 *   M   = manufacturer: three letters of 5 bits, ('A' = 1), 0x4C2D = "SAM" (Siemens)
 *   ACC = access number, 8 bits, one more with every telegram (it wraps)
 *   CF  = configuration field:  bits 8-12 security mode (0 none, 5 AES-128-CBC)
 *                               bits 4-7  N, the number of encrypted 16-byte blocks
 *   address (OMS order, the first half of the mode 5 IV) = M ‖ ID ‖ ver ‖ med
 * ```
 *
 * In the Netz OÖ AMIS frames the address is the reader's, fixed for all readers
 * (ID 00000000, "SAM", version 1, medium 0x0E), not the meter's serial number
 * ("AMIS-Zähler Kundenschnittstelle" 2021, 2.4.2.6).
 *
 * @module
 */

import { ByteReader, hex2, toHex } from "../bytes.ts";
import { ParseError } from "../errors.ts";

// Offsets after CI.
const HEADER_ID = 0;
const HEADER_M = 4;
const HEADER_VERSION = 6;
const HEADER_MEDIUM = 7;
const HEADER_ACCESS = 8;
const HEADER_STATUS = 9;
const HEADER_CF = 10;
// Offsets in the address (M ‖ ID ‖ version ‖ medium).
const ADDRESS_ID = 2;
const ADDRESS_VERSION = 6;
const ADDRESS_MEDIUM = 7;
/** Bytes of ID, M, version and medium. */
const ADDRESS_LENGTH = 8;
const ID_LENGTH = 4;
/** ID, M, version, medium, ACC, status, configuration field. */
export const OMS_LONG_HEADER_LENGTH = 12;

const MODE_SHIFT = 8;
const MODE_MASK = 0x1f;
const BLOCKS_SHIFT = 4;
const BLOCKS_MASK = 0x0f;
/** Length of one encrypted block. */
export const OMS_BLOCK_LENGTH = 16;

/** The security modes this program reads. */
export const OMS_MODE_NONE = 0;
export const OMS_MODE_AES_CBC = 5;

const LETTER_BITS = 5;
const LETTER_MASK = 0x1f;
const LETTER_BASE = 64; // 1 = 'A'

/** The application header, parsed. */
export interface OmsHeader {
  /** ID as printed on a device: 8 BCD digits, most significant first. */
  readonly id: string;
  /** Manufacturer letters, `SAM`. */
  readonly manufacturer: string;
  readonly version: number;
  /** Medium (device type): 0x02 electricity, 0x0E bus/system component, ... */
  readonly medium: number;
  /** Access number, 0..255. */
  readonly access: number;
  readonly status: number;
  /** Configuration field, 16 bits. */
  readonly configuration: number;
  /** Security mode from the configuration field. */
  readonly mode: number;
  /** Number of encrypted 16-byte blocks from the configuration field. */
  readonly encryptedBlocks: number;
  /** M ‖ ID ‖ version ‖ medium: the 8 bytes of the IV before the access numbers. */
  readonly address: Uint8Array;
  /** The same as lower-case hex: the key of the replay guard. */
  readonly addressHex: string;
  /** Everything after the header (a view). */
  readonly data: Uint8Array;
}

/** The three letters of an M-Bus manufacturer code (`0x4C2D` → `SAM`). */
export function manufacturerLetters(code: number): string {
  let s = "";
  for (let shift = 2 * LETTER_BITS; shift >= 0; shift -= LETTER_BITS) {
    s += String.fromCharCode(((code >> shift) & LETTER_MASK) + LETTER_BASE);
  }
  return s;
}

/** The manufacturer code of three letters (`SAM` → `0x4C2D`). */
export function manufacturerCode(letters: string): number {
  if (!/^[A-Z]{3}$/.test(letters)) {
    throw new RangeError(`Bad manufacturer "${letters}": must be three letters A..Z`);
  }
  let code = 0;
  for (const ch of letters) code = (code << LETTER_BITS) | (ch.charCodeAt(0) - LETTER_BASE);
  return code;
}

/**
 * Reads the long header at the start of `data` (the bytes after CI 0x5B).
 * @param base offset of `data` in the frame, quoted in errors
 * @throws {ParseError} (layer "oms") when the header is cut short or its security mode is
 *   one this program does not read
 */
export function parseOmsHeader(data: Uint8Array, base = 0): OmsHeader {
  const r = new ByteReader(data, "oms", base);
  r.need(OMS_LONG_HEADER_LENGTH, "the OMS long header (12 bytes)");
  const idBytes = r.bytes(ID_LENGTH); // HEADER_ID
  const m = r.u8() | (r.u8() << 8);
  const version = r.u8();
  const medium = r.u8();
  const access = r.u8();
  const status = r.u8();
  const configuration = r.u8() | (r.u8() << 8);
  const mode = (configuration >> MODE_SHIFT) & MODE_MASK;
  const encryptedBlocks = (configuration >> BLOCKS_SHIFT) & BLOCKS_MASK;
  if (mode !== OMS_MODE_NONE && mode !== OMS_MODE_AES_CBC) {
    throw new ParseError(
      "oms",
      base + OMS_LONG_HEADER_LENGTH - 2,
      `Unsupported OMS security mode ${mode} (configuration field 0x${hex2(configuration >> 8)}${
        hex2(configuration & 0xff)
      }): only modes 0 (none) and 5 (AES-128-CBC) are read`,
    );
  }
  const address = new Uint8Array(ADDRESS_LENGTH);
  address.set(data.subarray(HEADER_M, HEADER_VERSION), 0);
  address.set(idBytes, ADDRESS_ID);
  address[ADDRESS_VERSION] = version;
  address[ADDRESS_MEDIUM] = medium;
  let id = "";
  for (let i = ID_LENGTH - 1; i >= 0; i--) id += hex2(idBytes[i]!);
  return {
    id,
    manufacturer: manufacturerLetters(m),
    version,
    medium,
    access,
    status,
    configuration,
    mode,
    encryptedBlocks,
    address,
    addressHex: toHex(address),
    data: r.rest(),
  };
}

/** The 12 header bytes for the given fields (the simulator and tests). */
export function encodeOmsHeader(h: {
  id: string;
  manufacturer: string;
  version: number;
  medium: number;
  access: number;
  status: number;
  configuration: number;
}): Uint8Array {
  if (!/^[0-9]{8}$/.test(h.id)) throw new RangeError(`Bad OMS id "${h.id}": must be 8 digits`);
  const out = new Uint8Array(OMS_LONG_HEADER_LENGTH);
  for (let i = 0; i < ID_LENGTH; i++) {
    out[HEADER_ID + i] = parseInt(h.id.slice(6 - 2 * i, 8 - 2 * i), 16);
  }
  const m = manufacturerCode(h.manufacturer);
  out[HEADER_M] = m & 0xff;
  out[HEADER_M + 1] = m >> 8;
  out[HEADER_VERSION] = h.version;
  out[HEADER_MEDIUM] = h.medium;
  out[HEADER_ACCESS] = h.access;
  out[HEADER_STATUS] = h.status;
  out[HEADER_CF] = h.configuration & 0xff;
  out[HEADER_CF + 1] = h.configuration >> 8;
  return out;
}

/** A configuration field for `mode` with `blocks` encrypted blocks. */
export function configurationField(mode: number, blocks: number): number {
  return ((mode & MODE_MASK) << MODE_SHIFT) | ((blocks & BLOCKS_MASK) << BLOCKS_SHIFT);
}

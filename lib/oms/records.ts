/**
 * The data records of an M-Bus/OMS telegram (EN 13757-3): a generic walk over
 * DIF [DIFE...] VIF [VIFE...] data, with what each record measures, in which unit and
 * scale, for which tariff and direction. No fixed offsets: a meter may add, drop or
 * reorder records.
 *
 * ```
 *   DIF    E  LSB-storage  function(2)  data field(4)
 *          └ a DIFE follows     00 instantaneous, 01 max, 10 min, 11 error state
 *   DIFE   E  subunit  tariff(2)  storage(4)        (up to 10; bits stack up, low first)
 *   VIF    E  code(7)     primary table; 0x7B/0xFB and 0x7D/0xFD: the first VIFE is the
 *                         code in the extension table FB or FD; 0x7C/0xFC plain text
 *                         unit (length, ASCII); 0x7F/0xFF manufacturer specific
 *   VIFE   E  code(7)     combinable extensions: 0x3B forward / 0x3C backward flow,
 *                         0x70..0x77 ×10^(n−6), 0x7D ×10³, 0x7F: the VIFEs after it
 *                         are the manufacturer's
 *   data   length by the data field: 0, 1, 2, 3, 4 (int), 4 (real), 6, 8 (int),
 *          -, 1..6 (BCD, 2..12 digits), variable (LVAR first)
 *   DIF 0x2F: filler; 0x0F / 0x1F: manufacturer data to the end of the telegram
 * ```
 *
 * Integers are sent least significant byte first. EN 13757-3 makes them signed (type B);
 * some meters send unsigned registers instead, so the record keeps its bytes and
 * {@link recordNumber} is told which. A qualifier the walk does not know (limits, per-time
 * units, error codes ...) marks the record `qualified`: it then never passes for the plain
 * quantity.
 *
 * @module
 */

import { ByteReader, hex2 } from "../bytes.ts";

const EXTENSION_BIT = 0x80;
const CODE_MASK = 0x7f;
const MAX_DIFE = 10;
const MAX_VIFE = 10;

// DIF
const DATA_FIELD_MASK = 0x0f;
const FUNCTION_SHIFT = 4;
const FUNCTION_MASK = 0x03;
const STORAGE_LSB_SHIFT = 6;
const DIF_FILLER = 0x2f;
const DIF_MANUFACTURER = 0x0f;
const DIF_MORE_RECORDS = 0x1f;
const DIF_SPECIAL = 0x0f;
// DIFE
const DIFE_STORAGE_MASK = 0x0f;
const DIFE_TARIFF_SHIFT = 4;
const DIFE_TARIFF_MASK = 0x03;
const DIFE_SUBUNIT_SHIFT = 6;
const STORAGE_BITS_PER_DIFE = 4;
const TARIFF_BITS_PER_DIFE = 2;
// VIF
const VIF_EXTENSION_FB = 0x7b;
const VIF_EXTENSION_FD = 0x7d;
const VIF_PLAIN_TEXT = 0x7c;
const VIF_ANY = 0x7e;
const VIF_MANUFACTURER = 0x7f;
// VIFE, combinable table
const VIFE_FORWARD = 0x3b;
const VIFE_BACKWARD = 0x3c;
const VIFE_FACTOR_FIRST = 0x70;
const VIFE_FACTOR_LAST = 0x77;
const VIFE_FACTOR_BIAS = 6;
const VIFE_THOUSAND = 0x7d;
const VIFE_MANUFACTURER = 0x7f;

const DATA_VARIABLE = 0x0d;
/** Data length of each data field; -1: variable (LVAR). */
const DATA_LENGTHS = [0, 1, 2, 3, 4, 4, 6, 8, 0, 1, 2, 3, 4, -1, 6, 0];
/** Data fields holding BCD digits. */
const BCD_FIELDS = new Set([0x09, 0x0a, 0x0b, 0x0c, 0x0e]);
const DATA_REAL = 0x05;
const DATA_INT64 = 0x07;
// LVAR (variable length data)
const LVAR_TEXT_MAX = 0xbf;
const LVAR_BINARY = 0xe0;
const LVAR_BIG_BINARY = 0xf0;
const LVAR_BIG_BINARY_LAST = 0xf4;
const LVAR_LOW_MASK = 0x0f;

/** What a record measures (electricity and time; anything else is `other`). */
export type Quantity =
  | "energy"
  | "reactive-energy"
  | "apparent-energy"
  | "power"
  | "reactive-power"
  | "date"
  | "date-time"
  | "other";

/** The function field of the DIF. */
export type RecordFunction = "instantaneous" | "maximum" | "minimum" | "error";
const FUNCTIONS: readonly RecordFunction[] = ["instantaneous", "maximum", "minimum", "error"];

/** One data record. */
export interface OmsRecord {
  /** Offset of its DIF in the walked bytes. */
  readonly offset: number;
  readonly dif: number;
  readonly dife: readonly number[];
  readonly vif: number;
  readonly vife: readonly number[];
  /** DIF bits 0-3: the data's coding and length. */
  readonly dataField: number;
  readonly function: RecordFunction;
  readonly storage: number;
  readonly tariff: number;
  readonly subunit: number;
  readonly quantity: Quantity;
  /** Unit of the scaled value (`Wh`, `varh`, `W`, `var`, `VAh`), null for others. */
  readonly unit: string | null;
  /** Decimal exponent: value = data × 10^exponent. */
  readonly exponent: number;
  /** Flow direction from a VIFE: backward is the export direction of electricity meters. */
  readonly direction: "forward" | "backward" | null;
  /** The VIFEs after a manufacturer-specific marker (empty: marker last), else null. */
  readonly manufacturer: readonly number[] | null;
  /** A combinable VIFE the walk does not know changes the record's meaning. */
  readonly qualified: boolean;
  /** Plain-text unit of a VIF 0x7C record. */
  readonly textUnit: string | null;
  /** The data bytes (a view). */
  readonly data: Uint8Array;
}

/** What the walk found. */
export interface OmsRecords {
  readonly records: readonly OmsRecord[];
  /** Bytes after a DIF 0x0F/0x1F: the manufacturer's own data (a view), or null. */
  readonly manufacturerData: Uint8Array | null;
}

interface Vif {
  quantity: Quantity;
  unit: string | null;
  exponent: number;
}

const OTHER: Vif = { quantity: "other", unit: null, exponent: 0 };

/** The primary VIF table, electricity and time only. */
function primaryVif(code: number): Vif {
  if (code <= 0x07) return { quantity: "energy", unit: "Wh", exponent: code - 3 }; // E000 0nnn
  if (code >= 0x28 && code <= 0x2f) {
    return { quantity: "power", unit: "W", exponent: (code & 0x07) - 3 }; // E010 1nnn
  }
  if (code === 0x6c) return { quantity: "date", unit: null, exponent: 0 };
  if (code === 0x6d) return { quantity: "date-time", unit: null, exponent: 0 };
  return OTHER;
}

/** The extension table after VIF 0xFB, electricity only (EN 13757-3:2013 table 14). */
function vifFb(code: number): Vif {
  // E000 000n energy 10^(n-1) MWh
  if (code <= 0x01) return { quantity: "energy", unit: "Wh", exponent: code - 1 + 6 };
  // E000 001n reactive energy 10^n kvarh
  if (code <= 0x03) return { quantity: "reactive-energy", unit: "varh", exponent: (code & 1) + 3 };
  // E000 010n apparent energy 10^n kVAh
  if (code <= 0x05) return { quantity: "apparent-energy", unit: "VAh", exponent: (code & 1) + 3 };
  // E001 01nn reactive power 10^(nn-3) kvar
  if (code >= 0x14 && code <= 0x17) {
    return { quantity: "reactive-power", unit: "var", exponent: (code & 0x03) - 3 + 3 };
  }
  // E010 100n power 10^(n-1) MW
  if (code === 0x28 || code === 0x29) {
    return { quantity: "power", unit: "W", exponent: (code & 1) - 1 + 6 };
  }
  return OTHER;
}

/** Length of the data of a variable-length record from its LVAR byte. */
function lvarLength(lvar: number, r: ByteReader): number {
  if (lvar <= LVAR_TEXT_MAX) return lvar;
  if (lvar < LVAR_BINARY) return lvar & LVAR_LOW_MASK; // BCD: C0..CF positive, D0..DF negative
  if (lvar < LVAR_BIG_BINARY) return lvar - LVAR_BINARY;
  if (lvar <= LVAR_BIG_BINARY_LAST) return 4 * (lvar - LVAR_BIG_BINARY + 4);
  throw r.error(`Reserved LVAR 0x${hex2(lvar)} in a variable-length M-Bus record`, r.pos - 1);
}

/**
 * Walks the records of a telegram's data (after the check bytes, or all of it: fillers
 * are skipped wherever they are).
 * @param base offset of `data` in the plaintext, quoted in errors
 * @throws {ParseError} (layer "oms") when a record is cut short or malformed
 */
export function walkRecords(data: Uint8Array, base = 0): OmsRecords {
  const r = new ByteReader(data, "oms", base);
  const records: OmsRecord[] = [];
  while (r.remaining > 0) {
    const offset = r.pos;
    const dif = r.u8("a DIF");
    if ((dif & DATA_FIELD_MASK) === DIF_SPECIAL) {
      if (dif === DIF_FILLER) continue;
      if (dif === DIF_MANUFACTURER || dif === DIF_MORE_RECORDS) {
        return { records, manufacturerData: r.rest() };
      }
      throw r.error(`Reserved M-Bus DIF 0x${hex2(dif)}: damaged or unknown record`, offset);
    }
    const dife: number[] = [];
    let more = (dif & EXTENSION_BIT) !== 0;
    while (more) {
      if (dife.length === MAX_DIFE) {
        throw r.error(`M-Bus record with more than ${MAX_DIFE} DIFEs: damaged record`, offset);
      }
      const b = r.u8("a DIFE");
      dife.push(b);
      more = (b & EXTENSION_BIT) !== 0;
    }
    let storage = (dif >> STORAGE_LSB_SHIFT) & 1;
    let tariff = 0;
    let subunit = 0;
    dife.forEach((b, i) => {
      storage += (b & DIFE_STORAGE_MASK) * 2 ** (1 + STORAGE_BITS_PER_DIFE * i);
      tariff += ((b >> DIFE_TARIFF_SHIFT) & DIFE_TARIFF_MASK) * 2 ** (TARIFF_BITS_PER_DIFE * i);
      subunit += ((b >> DIFE_SUBUNIT_SHIFT) & 1) * 2 ** i;
    });

    const vif = r.u8("a VIF");
    const vifCode = vif & CODE_MASK;
    const vife: number[] = [];
    let textUnit: string | null = null;
    let meaning: Vif;
    let manufacturer: number[] | null = null;
    let hasVife = (vif & EXTENSION_BIT) !== 0;
    const nextVife = () => {
      if (vife.length === MAX_VIFE) {
        throw r.error(`M-Bus record with more than ${MAX_VIFE} VIFEs: damaged record`, offset);
      }
      const b = r.u8("a VIFE");
      vife.push(b);
      hasVife = (b & EXTENSION_BIT) !== 0;
      return b;
    };
    if (vifCode === VIF_EXTENSION_FB || vifCode === VIF_EXTENSION_FD) {
      if (!hasVife) {
        throw r.error(
          `M-Bus VIF 0x${hex2(vif)} announces an extension table but no VIFE follows`,
          offset,
        );
      }
      const code = nextVife() & CODE_MASK;
      meaning = vifCode === VIF_EXTENSION_FB ? vifFb(code) : OTHER;
    } else if (vifCode === VIF_MANUFACTURER) {
      meaning = OTHER;
      manufacturer = [];
    } else if (vifCode === VIF_ANY || vifCode === VIF_PLAIN_TEXT) {
      meaning = OTHER;
    } else {
      meaning = primaryVif(vifCode);
    }
    let exponent = meaning.exponent;
    let direction: "forward" | "backward" | null = null;
    let qualified = false;
    while (hasVife) {
      const code = nextVife() & CODE_MASK;
      if (manufacturer !== null) manufacturer.push(code);
      else if (code === VIFE_MANUFACTURER) manufacturer = [];
      else if (code === VIFE_FORWARD) direction = "forward";
      else if (code === VIFE_BACKWARD) direction = "backward";
      else if (code >= VIFE_FACTOR_FIRST && code <= VIFE_FACTOR_LAST) {
        exponent += code - VIFE_FACTOR_FIRST - VIFE_FACTOR_BIAS;
      } else if (code === VIFE_THOUSAND) exponent += 3;
      else qualified = true;
    }
    if (vifCode === VIF_PLAIN_TEXT) {
      // The unit as text follows the VIFEs: a length byte, then ASCII (last character first).
      const text = r.bytes(r.u8("the length of a plain-text unit"), "a plain-text unit");
      textUnit = String.fromCharCode(...[...text].reverse());
    }

    const dataField = dif & DATA_FIELD_MASK;
    let length = DATA_LENGTHS[dataField]!;
    if (dataField === DATA_VARIABLE) length = lvarLength(r.u8("an LVAR byte"), r);
    const bytes = r.bytes(length, `the data of the M-Bus record at byte ${base + offset}`);
    records.push({
      offset: base + offset,
      dif,
      dife,
      vif,
      vife,
      dataField,
      function: FUNCTIONS[(dif >> FUNCTION_SHIFT) & FUNCTION_MASK]!,
      storage,
      tariff,
      subunit,
      quantity: meaning.quantity,
      unit: meaning.unit,
      exponent,
      direction,
      manufacturer,
      qualified,
      textUnit,
      data: bytes,
    });
  }
  return { records, manufacturerData: null };
}

/**
 * The number a record holds, unscaled: its integer read as signed (EN 13757-3 type B) or
 * unsigned, its real, or its BCD digits. Null for data that holds no number (none, text,
 * a BCD digit out of range, a 64-bit integer beyond 2^53).
 */
export function recordNumber(record: OmsRecord, signed: boolean): number | null {
  const d = record.data;
  const f = record.dataField;
  if (BCD_FIELDS.has(f)) return bcdNumber(d);
  if (f === DATA_REAL) {
    return new DataView(d.buffer, d.byteOffset, d.byteLength).getFloat32(0, true);
  }
  if (f === DATA_INT64) {
    const view = new DataView(d.buffer, d.byteOffset, d.byteLength);
    const big = signed ? view.getBigInt64(0, true) : view.getBigUint64(0, true);
    const n = Number(big);
    return Number.isSafeInteger(n) ? n : null;
  }
  if (d.length === 0 || d.length > 6 || f === DATA_VARIABLE) return null;
  let n = 0;
  for (let i = d.length - 1; i >= 0; i--) n = n * 256 + d[i]!;
  if (signed && d[d.length - 1]! >= 0x80) n -= 2 ** (8 * d.length);
  return n;
}

/** BCD digits, least significant byte first; a top nibble F is a minus sign. */
function bcdNumber(d: Uint8Array): number | null {
  let n = 0;
  let negative = false;
  for (let i = d.length - 1; i >= 0; i--) {
    let high = d[i]! >> 4;
    const low = d[i]! & 0x0f;
    if (i === d.length - 1 && high === 0x0f) {
      negative = true;
      high = 0;
    }
    if (high > 9 || low > 9) return null;
    n = n * 100 + high * 10 + low;
  }
  return negative ? -n : n;
}

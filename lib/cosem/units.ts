/**
 * DLMS physical units and scalers (Blue Book, IEC 62056-6-2 §4.5.2.1: class 3 "Register",
 * attribute `scaler_unit`).
 *
 * A register's value is an integer; its `scaler_unit` is a structure of two members:
 *
 * ```
 *   02 02                structure of 2
 *      0F <scaler>       integer (int8): the value is multiplied by 10^scaler
 *      16 <unit>         enum: the physical unit, from the table below
 * ```
 *
 * Example: `12 09 45` (long-unsigned 2373) with `02 02 0F FF 16 23` (scaler −1, unit 35 = V)
 * is 237.3 V.
 *
 * @module
 */

/** Unit enumeration of the Blue Book, as symbols. Codes not listed have no symbol. */
export const UNIT_SYMBOLS: Readonly<Record<number, string>> = {
  1: "a", // year
  2: "mo", // month
  3: "wk", // week
  4: "d", // day
  5: "h", // hour
  6: "min",
  7: "s",
  8: "°", // phase angle
  9: "°C",
  10: "currency", // local currency
  11: "m",
  12: "m/s",
  13: "m³",
  14: "m³", // corrected volume
  15: "m³/h",
  16: "m³/h", // corrected volume flux
  17: "m³/d",
  18: "m³/d", // corrected volume flux
  19: "l",
  20: "kg",
  21: "N",
  22: "Nm",
  23: "Pa",
  24: "bar",
  25: "J",
  26: "J/h",
  27: "W",
  28: "VA",
  29: "var",
  30: "Wh",
  31: "VAh",
  32: "varh",
  33: "A",
  34: "C",
  35: "V",
  36: "V/m",
  37: "F",
  38: "Ω",
  39: "Ωm²/m",
  40: "Wb",
  41: "T",
  42: "A/m",
  43: "H",
  44: "Hz",
  45: "1/(Wh)", // meter constant, active energy
  46: "1/(varh)",
  47: "1/(VAh)",
  48: "V²h",
  49: "A²h",
  50: "kg/s",
  51: "S",
  52: "K",
  53: "1/(V²h)",
  54: "1/(A²h)",
  55: "1/m³",
  56: "%",
  57: "Ah",
  60: "Wh/m³",
  61: "J/m³",
  62: "mol %",
  63: "g/m³",
  64: "Pa s",
  65: "J/kg",
  66: "g/cm²",
  67: "atm",
  70: "dBm",
  71: "dBµV",
  72: "dB",
};

/** Unit code 255: "count", a dimensionless number (power factor, counters). */
export const UNIT_COUNT = 255;

/**
 * The symbol of a DLMS unit code, e.g. 27 → "W", 35 → "V". Null for 255 (count, no unit),
 * 254 (other unit), 0 and codes the Blue Book does not define.
 */
export function unitSymbol(code: number): string | null {
  return UNIT_SYMBOLS[code] ?? null;
}

/**
 * `raw × 10^scaler`, computed so that decimal results are the nearest doubles: a negative
 * scaler divides by an exact power of ten (2373, −1 → 237.3, not 237.29999999999998), a
 * positive one multiplies.
 */
export function scale(raw: number, scaler: number): number {
  if (scaler === 0) return raw;
  return scaler < 0 ? raw / 10 ** -scaler : raw * 10 ** scaler;
}

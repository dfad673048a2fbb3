/**
 * CRC-16/X.25, the frame check sequence of HDLC (ISO/IEC 13239 §4.2.5, used unchanged by
 * IEC 62056-46 for both the header check sequence HCS and the frame check sequence FCS).
 *
 * ```
 *   width 16   poly 0x1021 (processed bit-reversed: 0x8408)   init 0xFFFF
 *   refin true refout true                                    xorout 0xFFFF
 *   check: crc16x25("123456789") = 0x906E
 * ```
 *
 * On the wire the 16-bit result is sent least significant byte first:
 * `crc & 0xFF`, then `crc >> 8`.
 *
 * @module
 */

/** The reflected polynomial 0x1021, as processed least significant bit first. */
const POLY_REFLECTED = 0x8408;
const INITIAL = 0xffff;
const FINAL_XOR = 0xffff;

/** One entry per byte value: the register after shifting that byte through it. */
const TABLE: Uint16Array = (() => {
  const table = new Uint16Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let reg = byte;
    for (let bit = 0; bit < 8; bit++) {
      reg = reg & 1 ? (reg >>> 1) ^ POLY_REFLECTED : reg >>> 1;
    }
    table[byte] = reg;
  }
  return table;
})();

/**
 * CRC-16/X.25 of `bytes[start..end)` (table-driven, one lookup per byte).
 *
 * @param start first byte covered (default 0)
 * @param end one past the last byte covered (default `bytes.length`)
 * @throws {RangeError} when the range does not lie inside `bytes`
 */
export function crc16x25(bytes: Uint8Array, start = 0, end: number = bytes.length): number {
  if (start < 0 || end > bytes.length || start > end) {
    throw new RangeError(
      `CRC range out of bounds: [${start}, ${end}) over ${bytes.length} bytes`,
    );
  }
  let reg = INITIAL;
  for (let i = start; i < end; i++) {
    reg = (reg >>> 8) ^ TABLE[(reg ^ bytes[i]!) & 0xff]!;
  }
  return (reg ^ FINAL_XOR) & 0xffff;
}

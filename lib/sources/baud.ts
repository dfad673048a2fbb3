/**
 * The standard serial speeds: what `dlms.baudrate` accepts and what the serial port can
 * be set to, slowest first.
 *
 * @module
 */

export const BAUD_RATES: readonly number[] = [
  300,
  600,
  1200,
  2400,
  4800,
  9600,
  19200,
  38400,
  57600,
  115200,
];

/**
 * DLMS date and time values (Blue Book §4.1.6.1) and their ISO 8601 form.
 *
 * ```
 *   date-time (12 bytes)
 *   +--------+-------+-----+-----+------+--------+--------+-----------+-----------+--------+
 *   | year 2 | month | day | dow | hour | minute | second | hundredth | deviation | status |
 *   +--------+-------+-----+-----+------+--------+--------+-----------+-- 2 ------+--------+
 *   date = the first 5 bytes; time = hour, minute, second, hundredths
 * ```
 *
 * `0xFFFF` (year), `0xFF` (other fields) and deviation `0x8000` mean "not specified".
 * The deviation is the minutes from local time to UTC: -60 is UTC+01:00.
 *
 * @module
 */

/** A DLMS date-time; `null` fields were "not specified" on the wire. */
export interface DlmsDateTime {
  readonly year: number | null;
  readonly month: number | null;
  readonly day: number | null;
  readonly dayOfWeek: number | null;
  readonly hour: number | null;
  readonly minute: number | null;
  readonly second: number | null;
  readonly hundredths: number | null;
  /** Minutes from local time to UTC (-60 for CET), or null when not sent. */
  readonly deviation: number | null;
  readonly clockStatus: number | null;
}

const DATE_TIME_LENGTH = 12;

function field(b: number | undefined, max: number): number | null {
  return b === undefined || b === 0xff || b > max ? null : b;
}

/** Parses the 12 bytes of a date-time. Unspecified or special values become null. */
export function parseDateTime(b: Uint8Array): DlmsDateTime {
  const date = parseDate(b.subarray(0, 5));
  const time = parseTime(b.subarray(5, 9));
  const dev = ((b[9]! << 8) | b[10]!) << 16 >> 16;
  return {
    ...date,
    hour: time.hour,
    minute: time.minute,
    second: time.second,
    hundredths: time.hundredths,
    deviation: dev === -0x8000 || dev < -840 || dev > 840 ? null : dev,
    clockStatus: b[11] === 0xff ? null : b[11] ?? null,
  };
}

/** Parses the 5 bytes of a date. */
export function parseDate(b: Uint8Array): DlmsDateTime {
  const year = (b[0]! << 8) | b[1]!;
  return {
    year: year === 0xffff ? null : year,
    month: field(b[2], 12) || null,
    day: field(b[3], 31) || null,
    dayOfWeek: field(b[4], 7),
    hour: null,
    minute: null,
    second: null,
    hundredths: null,
    deviation: null,
    clockStatus: null,
  };
}

/** Parses the 4 bytes of a time. */
export function parseTime(b: Uint8Array): DlmsDateTime {
  return {
    year: null,
    month: null,
    day: null,
    dayOfWeek: null,
    hour: field(b[0], 23),
    minute: field(b[1], 59),
    second: field(b[2], 59),
    hundredths: field(b[3], 99),
    deviation: null,
    clockStatus: null,
  };
}

/**
 * Whether 12 bytes are plausibly a date-time (many meters send the clock as an
 * octet-string of 12 bytes rather than as the date-time type).
 */
export function looksLikeDateTime(b: Uint8Array): boolean {
  if (b.length !== DATE_TIME_LENGTH) return false;
  const year = (b[0]! << 8) | b[1]!;
  const month = b[2]!, day = b[3]!, hour = b[5]!, minute = b[6]!, second = b[7]!;
  return (year === 0xffff || (year >= 1970 && year <= 2200)) &&
    (month === 0xff || month === 0xfd || month === 0xfe || (month >= 1 && month <= 12)) &&
    (day === 0xff || day >= 0xfd || (day >= 1 && day <= 31)) &&
    (hour === 0xff || hour <= 23) && (minute === 0xff || minute <= 59) &&
    (second === 0xff || second <= 59);
}

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

/**
 * ISO 8601 local time, `2024-05-01T12:00:05`, with `+02:00` appended only when the meter
 * sent its deviation. Null when the date or the hour and minute are not specified.
 */
export function formatDateTime(dt: DlmsDateTime): string | null {
  if (dt.year === null || dt.month === null || dt.day === null) return null;
  if (dt.hour === null || dt.minute === null) return null;
  let s = `${pad(dt.year, 4)}-${pad(dt.month)}-${pad(dt.day)}T${pad(dt.hour)}:${pad(dt.minute)}:${
    pad(dt.second ?? 0)
  }`;
  if (dt.deviation !== null) {
    const offset = -dt.deviation;
    const sign = offset < 0 ? "-" : "+";
    const abs = Math.abs(offset);
    s += `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
  }
  return s;
}

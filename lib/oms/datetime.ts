/**
 * M-Bus date and time (EN 13757-3 Annex A): type I (CP48, 6 bytes, to the second) and
 * type F (CP32, 4 bytes, to the minute), both least significant byte first.
 *
 * ```
 *   type I   b0: SS ssssss   b1: IV . mmmmmm   b2: www hhhhh   b3: yyy ddddd
 *            b4: YYYY MMMM   b5: week
 *   type F   b0: IV . mmmmmm   b1: SU .. hhhhh   b2: yyy ddddd   b3: YYYY MMMM
 *
 *   seconds = b0 & 0x3F, minutes & 0x3F, hours & 0x1F, day & 0x1F, month & 0x0F,
 *   year = 2000 + (YYYY << 3 | yyy), IV = time invalid, www = day of week (1 = Monday)
 * ```
 *
 * The masks are those of the Netz OÖ AMIS specification (2.4.2.8) and of the readers that
 * follow it. Type I bit 0x40 of b0 (`S` above) is set in every real AMIS frame, all from
 * the summer-time season, and clear in the specification's December example: it is read
 * as the summer-time flag. The time is the meter's local time; it carries no offset.
 *
 * @module
 */

const SECOND_MASK = 0x3f;
const MINUTE_MASK = 0x3f;
const HOUR_MASK = 0x1f;
const DAY_MASK = 0x1f;
const MONTH_MASK = 0x0f;
const INVALID_BIT = 0x80;
const SUMMER_BIT_I = 0x40;
const SUMMER_BIT_F = 0x80;
const YEAR_LOW_SHIFT = 5;
const YEAR_HIGH_MASK = 0xf0;
const YEAR_HIGH_SHIFT = 1;
const DAY_OF_WEEK_SHIFT = 5;
const CENTURY = 2000;
const TYPE_I_LENGTH = 6;
const TYPE_F_LENGTH = 4;
const SECONDS_PER_HOUR = 3600;

/** A date and time as the meter sent it. */
export interface MbusDateTime {
  readonly year: number;
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
  /** 1 = Monday .. 7, 0 = not given. */
  readonly dayOfWeek: number;
  /** The meter says its clock is not valid (IV bit). */
  readonly invalid: boolean;
  /** The meter keeps summer time. */
  readonly summer: boolean;
}

/**
 * Decodes a type I (6 bytes) or type F (4 bytes) date and time; null for other lengths.
 * The fields are returned as sent; {@link isValidDateTime} says whether they make a time.
 */
export function parseMbusDateTime(b: Uint8Array): MbusDateTime | null {
  if (b.length === TYPE_I_LENGTH) {
    return {
      second: b[0]! & SECOND_MASK,
      minute: b[1]! & MINUTE_MASK,
      hour: b[2]! & HOUR_MASK,
      dayOfWeek: b[2]! >> DAY_OF_WEEK_SHIFT,
      day: b[3]! & DAY_MASK,
      month: b[4]! & MONTH_MASK,
      year: CENTURY + (((b[4]! & YEAR_HIGH_MASK) >> YEAR_HIGH_SHIFT) | (b[3]! >> YEAR_LOW_SHIFT)),
      invalid: (b[1]! & INVALID_BIT) !== 0,
      summer: (b[0]! & SUMMER_BIT_I) !== 0,
    };
  }
  if (b.length === TYPE_F_LENGTH) {
    return {
      second: 0,
      minute: b[0]! & MINUTE_MASK,
      hour: b[1]! & HOUR_MASK,
      dayOfWeek: 0,
      day: b[2]! & DAY_MASK,
      month: b[3]! & MONTH_MASK,
      year: CENTURY + (((b[3]! & YEAR_HIGH_MASK) >> YEAR_HIGH_SHIFT) | (b[2]! >> YEAR_LOW_SHIFT)),
      invalid: (b[0]! & INVALID_BIT) !== 0,
      summer: (b[1]! & SUMMER_BIT_F) !== 0,
    };
  }
  return null;
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** Whether the fields make a real time and the meter does not flag it invalid. */
export function isValidDateTime(t: MbusDateTime): boolean {
  return !t.invalid && t.month >= 1 && t.month <= 12 && t.day >= 1 &&
    t.day <= daysInMonth(t.year, t.month) && t.hour <= 23 && t.minute <= 59 && t.second <= 59;
}

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

/** ISO 8601 local time without offset, `2014-07-01T08:12:31`; null when not valid. */
export function formatMbusDateTime(t: MbusDateTime): string | null {
  if (!isValidDateTime(t)) return null;
  return `${pad(t.year, 4)}-${pad(t.month)}-${pad(t.day)}T${pad(t.hour)}:${pad(t.minute)}:${
    pad(t.second)
  }`;
}

/**
 * The time as a count of seconds that only grows while the meter's clock runs: seconds of
 * the local wall clock since 2000, less an hour in summer time (so that the hour repeated
 * when summer time ends does not count as going back). Null when not valid.
 */
export function mbusClockSeconds(t: MbusDateTime): number | null {
  if (!isValidDateTime(t)) return null;
  const wall = Date.UTC(t.year, t.month - 1, t.day, t.hour, t.minute, t.second) / 1000 -
    Date.UTC(CENTURY, 0, 1) / 1000;
  return t.summer ? wall - SECONDS_PER_HOUR : wall;
}

/** Encodes type I (the simulator): the summer flag, no invalid bit, the ISO week in b5. */
export function encodeMbusDateTime(t: Omit<MbusDateTime, "invalid">, week = 0): Uint8Array {
  const y = t.year - CENTURY;
  return Uint8Array.of(
    (t.second & SECOND_MASK) | (t.summer ? SUMMER_BIT_I : 0),
    t.minute & MINUTE_MASK,
    (t.hour & HOUR_MASK) | (t.dayOfWeek << DAY_OF_WEEK_SHIFT),
    (t.day & DAY_MASK) | ((y & 0x07) << YEAR_LOW_SHIFT),
    (t.month & MONTH_MASK) | ((y << YEAR_HIGH_SHIFT) & YEAR_HIGH_MASK),
    week,
  );
}

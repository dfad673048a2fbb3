/**
 * DSMR P1 telegrams (Netbeheer Nederland "DSMR 5.0.2 P1 Companion Standard"; Luxembourg
 * Smarty and Energienetze Steiermark send them inside a DLMS ciphering APDU).
 *
 * ```
 *   /Lux5\253663629_D                  identification line
 *                                      (empty line)
 *   1-3:0.2.8(42)                      OBIS(value)
 *   0-0:1.0.0(180130102122W)           time stamp YYMMDDhhmmss, W winter (+01:00), S summer (+02:00)
 *   0-0:42.0.0(5341473130...)          strings are hex-encoded ASCII
 *   1-0:1.8.0(000006.695*kWh)          OBIS(value*unit)
 *   1-0:3.7.0(00.000)                  Smarty: power without a unit is in kvar (or kW)
 *   0-1:24.2.1(180130100000W)(01.234*m3)   several groups: capture time, then value
 *   !CFDE                              "!" then CRC-16/ARC of "/" .. "!" inclusive, 4 hex digits
 * ```
 *
 * Registers keep the telegram's own units (kWh, kW, kvar, ...); `buildReading` converts
 * them to the named values' units. A value written with its unit is scaled by the telegram;
 * a power written without one by the rule `dsmr-power-without-unit` (kW / kvar); any other
 * physical quantity without a unit has no scale. The identification line names the model.
 *
 * @module
 */

import { ParseError } from "../errors.ts";
import type { Interpretation, Register } from "./reading.ts";
import { CLOCK_OBIS, LOGICAL_DEVICE_NAME, METER_ID_OBIS } from "./obis.ts";
import { modelOfDsmrHeader } from "./model.ts";
import { DSMR_POWER_RULE, NO_SCALE, quantityOf, ruleScale, TELEGRAM_SCALE } from "./scale.ts";

const START = "/";
const END = "!";
const CRC_DIGITS = 4;

/** OBIS codes whose value is ASCII text written as hex digits. */
const HEX_TEXT = /^0-\d+:(42\.0\.0|96\.1\.[01]|96\.13\.[01])$/;
/** OBIS codes whose value is an identifier, kept as text even when it looks numeric. */
const PLAIN_TEXT = /^1-3:0\.2\.8$|^0-\d+:96\.1\.4$/;
/** Power registers sent without a unit are in kW / kvar (Luxembourg Smarty: 1-0:3.7.0). */
const ACTIVE_POWER = /^1-0:(1|2|21|22|41|42|61|62)\.7\.0$/;
const REACTIVE_POWER = /^1-0:(3|4|23|24|43|44|63|64)\.7\.0$/;

const LINE = /^(\d+-\d+:\d+\.\d+\.\d+)((?:\([^()]*\))+)$/;
const GROUP = /\(([^()]*)\)/g;
const NUMBER = /^(-?\d+(?:\.\d+)?)(?:\*(.+))?$/;
const TIME_STAMP = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)([SW])$/;

/**
 * CRC-16/ARC (polynomial 0x8005 reflected, initial value 0, no final xor), the DSMR P1
 * checksum. `crc16Arc("123456789")` is 0xBB3D.
 */
export function crc16Arc(text: string): number {
  let crc = 0;
  for (let i = 0; i < text.length; i++) {
    crc ^= text.charCodeAt(i) & 0xff;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

/**
 * Reads a DSMR P1 telegram. The CRC after "!" is verified when present.
 * @throws {ParseError} (layer "dsmr") on a missing start or end, a bad line or a CRC mismatch
 */
export function interpretDsmr(text: string): Interpretation {
  const start = text.indexOf(START);
  if (start < 0) {
    throw new ParseError(
      "dsmr",
      0,
      `Not a DSMR telegram: no "/" identification line found in ${text.length} characters`,
    );
  }
  const end = text.indexOf(END, start);
  if (end < 0) {
    throw new ParseError(
      "dsmr",
      text.length,
      `DSMR telegram is truncated: it has no "!" end line`,
    );
  }
  checkCrc(text, start, end);

  const registers: Register[] = [];
  let time: string | null = null;
  let at = start;
  const lines = text.slice(start, end).split("\n");
  const model = modelOfDsmrHeader(lines[0]!);
  for (const [index, raw] of lines.entries()) {
    const lineAt = at;
    at += raw.length + 1;
    const line = raw.trim();
    if (index === 0 || line === "") continue; // the identification line
    const m = LINE.exec(line);
    if (!m) {
      throw new ParseError(
        "dsmr",
        lineAt,
        `Bad DSMR line "${line}": expected OBIS(value), e.g. 1-0:1.8.0(000123.456*kWh)`,
      );
    }
    const obis = m[1]!;
    const groups = [...m[2]!.matchAll(GROUP)].map((g) => g[1]!);
    const register = registerOf(obis, groups);
    if (register === null) continue;
    registers.push(register);
    if (time === null && CLOCK_OBIS.includes(obis) && groups.length === 1) {
      time = timeStamp(groups[0]!);
    }
  }

  const idFrom = (obis: string | undefined) => {
    const r = registers.find((x) => x.obis === obis && x.value !== "");
    return r === undefined ? null : String(r.value);
  };
  let meterId: string | null = null;
  for (const code of METER_ID_OBIS) meterId ??= idFrom(code);
  meterId ??= idFrom(LOGICAL_DEVICE_NAME);
  return { layout: "dsmr", time, meterId, model, registers };
}

function checkCrc(text: string, start: number, end: number): void {
  const after = text.slice(end + 1).split(/\r?\n/, 1)[0]!.trim();
  if (after === "") return; // DSMR 2.2 and 3 send no checksum
  if (!new RegExp(`^[0-9A-Fa-f]{${CRC_DIGITS}}$`).test(after)) {
    throw new ParseError(
      "dsmr",
      end + 1,
      `Bad DSMR checksum "${after}": expected ${CRC_DIGITS} hex digits after "!"`,
    );
  }
  const computed = crc16Arc(text.slice(start, end + 1));
  if (computed !== parseInt(after, 16)) {
    const hex = computed.toString(16).toUpperCase().padStart(CRC_DIGITS, "0");
    throw new ParseError(
      "dsmr",
      end + 1,
      `DSMR checksum mismatch: telegram says "${after}", computed "${hex}": damaged or incomplete telegram`,
    );
  }
}

function registerOf(obis: string, groups: readonly string[]): Register | null {
  // A capture time and a value (gas 0-1:24.2.1), or several groups (event logs).
  let value = groups[0]!;
  if (groups.length === 2 && TIME_STAMP.test(groups[0]!)) value = groups[1]!;
  else if (groups.length > 1) {
    return {
      obis,
      value: groups.map((g) => `(${g})`).join(""),
      unit: null,
    };
  }

  if (value === "") return null;
  if (CLOCK_OBIS.includes(obis) && TIME_STAMP.test(value)) {
    return { obis, value: timeStamp(value) ?? value, unit: null };
  }
  if (HEX_TEXT.test(obis)) return { obis, value: hexText(value), unit: null };
  if (PLAIN_TEXT.test(obis)) return { obis, value, unit: null };
  const m = NUMBER.exec(value);
  if (!m) return { obis, value, unit: null };
  const number = Number(m[1]);
  const decimals = m[1]!.split(".")[1]?.length ?? 0;
  const resolution = 10 ** -decimals;
  if (m[2] !== undefined) {
    return { obis, value: number, unit: m[2], scale: TELEGRAM_SCALE, resolution };
  }
  const powerUnit = REACTIVE_POWER.test(obis) ? "kvar" : ACTIVE_POWER.test(obis) ? "kW" : null;
  if (powerUnit !== null) {
    return { obis, value: number, unit: powerUnit, scale: ruleScale(DSMR_POWER_RULE), resolution };
  }
  if (quantityOf(obis) === null) return { obis, value: number, unit: null, scale: NO_SCALE };
  return {
    obis,
    value: number,
    unit: null,
    scale: { from: "unknown", why: "the DSMR telegram writes no unit for it" },
    raw: number,
  };
}

/** `YYMMDDhhmmssW` as ISO 8601 with the offset the letter stands for. */
function timeStamp(value: string): string | null {
  const m = TIME_STAMP.exec(value);
  if (!m) return null;
  const [, yy, mo, dd, hh, mi, ss, season] = m;
  return `20${yy}-${mo}-${dd}T${hh}:${mi}:${ss}${season === "S" ? "+02:00" : "+01:00"}`;
}

/** Hex digits to ASCII when they spell printable text; else the digits unchanged. */
function hexText(value: string): string {
  if (!/^([0-9A-Fa-f]{2})+$/.test(value)) return value;
  let out = "";
  for (let i = 0; i < value.length; i += 2) {
    const code = parseInt(value.slice(i, i + 2), 16);
    if (code < 0x20 || code > 0x7e) return value;
    out += String.fromCharCode(code);
  }
  return out;
}

/**
 * From OMS records to registers: OBIS codes, scaled values, the meter's time.
 *
 * Each record of a plain quantity (instantaneous, storage 0, subunit 0, no qualifier the
 * walk does not know) becomes the register the electricity OBIS scheme gives it:
 *
 * ```
 *   quantity          forward (import)   backward (export)   unit
 *   energy            1-0:1.8.T          1-0:2.8.T           Wh      T = the record's tariff
 *   reactive energy   1-0:3.8.T          1-0:4.8.T           varh
 *   apparent energy   1-0:9.8.T          1-0:10.8.T          VAh
 *   power             1-0:1.7.0          1-0:2.7.0           W
 *   reactive power    1-0:3.7.0          1-0:4.7.0           var
 *   date and time     the reading's time (type I or F)
 * ```
 *
 * EN 13757-3 integers are signed. A profile may say otherwise, per register, and name what
 * the scheme cannot: the Netz OÖ AMIS meters (a header from `SAM` with the fixed reader
 * address, or `meter_type: amis`) send every counter and power unsigned, reactive energy
 * as tariff 1 (their only one: R+ and R− are 3.8.1 and 4.8.1, which feed the named
 * reactive energies), and the operator's billing register 1-0:1.128.0 ("Inkassozählwerk",
 * Wh, signed) under a manufacturer-specific VIFE ("AMIS-Zähler Kundenschnittstelle" 2021,
 * table 2, 2.4.2.8). Records that no rule places are left out.
 *
 * Mode 5 has no authentication code: a damaged frame whose M-Bus checksum still adds up
 * (two damaged bytes that cancel out) decrypts to one block of garbage and one with the
 * damage in it, and would give wrong values. A complete profile therefore wants exactly
 * its telegram: each of its registers and the time once, nothing but fillers besides, in
 * any order. Every 16-byte block of an AMIS telegram holds a record head, so garbage in
 * any block is caught.
 *
 * @module
 */

import { hex2 } from "../bytes.ts";
import { ParseError } from "../errors.ts";
import type { Interpretation, Register } from "../cosem/reading.ts";
import type { NamedKey } from "../cosem/obis.ts";
import { scale } from "../cosem/units.ts";
import { formatMbusDateTime, mbusClockSeconds, parseMbusDateTime } from "./datetime.ts";
import type { OmsHeader } from "./header.ts";
import { type OmsRecord, type Quantity, recordNumber } from "./records.ts";

/** One register of a profile: which record it is, and how to read it. */
interface ProfileRegister {
  readonly quantity: Quantity;
  readonly direction: "forward" | "backward";
  readonly tariff: number;
  /** The manufacturer-specific VIFEs the record carries, when it has a marker. */
  readonly manufacturer?: readonly number[];
  readonly obis: string;
  readonly signed: boolean;
  readonly named?: NamedKey;
}

/** A meter family whose telegrams need rules of their own. */
interface OmsProfile {
  readonly name: string;
  readonly manufacturer: string;
  readonly model: string;
  /** Whether a header is this family's (when the meter type is "auto"). */
  readonly matches: (h: OmsHeader) => boolean;
  readonly registers: readonly ProfileRegister[];
  /** The telegram holds exactly these registers and the time: anything else is damage. */
  readonly complete: boolean;
}

const AMIS_MEDIUM = 0x0e;
const AMIS_ID = "00000000";

/** Netz OÖ AMIS (Siemens TD-3511 / TD-3512), spec table 2. */
export const AMIS_PROFILE: OmsProfile = {
  name: "amis",
  manufacturer: "Siemens",
  model: "AMIS TD-351x",
  matches: (h) => h.manufacturer === "SAM" && h.medium === AMIS_MEDIUM && h.id === AMIS_ID,
  complete: true,
  registers: [
    { quantity: "energy", direction: "forward", tariff: 0, obis: "1-0:1.8.0", signed: false },
    { quantity: "energy", direction: "backward", tariff: 0, obis: "1-0:2.8.0", signed: false },
    {
      quantity: "reactive-energy",
      direction: "forward",
      tariff: 1,
      obis: "1-0:3.8.1",
      signed: false,
      named: "reactive_energy_import_varh",
    },
    {
      quantity: "reactive-energy",
      direction: "backward",
      tariff: 1,
      obis: "1-0:4.8.1",
      signed: false,
      named: "reactive_energy_export_varh",
    },
    { quantity: "power", direction: "forward", tariff: 0, obis: "1-0:1.7.0", signed: false },
    { quantity: "power", direction: "backward", tariff: 0, obis: "1-0:2.7.0", signed: false },
    {
      quantity: "reactive-power",
      direction: "forward",
      tariff: 0,
      obis: "1-0:3.7.0",
      signed: false,
    },
    {
      quantity: "reactive-power",
      direction: "backward",
      tariff: 0,
      obis: "1-0:4.7.0",
      signed: false,
    },
    {
      quantity: "energy",
      direction: "forward",
      tariff: 0,
      manufacturer: [0x04],
      obis: "1-0:1.128.0",
      signed: true,
    },
  ],
};

/** Manufacturers by their M-Bus letters (FLAG ids), where a header names one. */
const MANUFACTURERS: Readonly<Record<string, string>> = { SAM: "Siemens" };

/** OBIS C for each electricity quantity, forward and backward, and D. */
const SCHEME: Partial<Record<Quantity, { c: [number, number]; d: number; perTariff: boolean }>> = {
  "energy": { c: [1, 2], d: 8, perTariff: true },
  "reactive-energy": { c: [3, 4], d: 8, perTariff: true },
  "apparent-energy": { c: [9, 10], d: 8, perTariff: true },
  "power": { c: [1, 2], d: 7, perTariff: false },
  "reactive-power": { c: [3, 4], d: 7, perTariff: false },
};

/** What the records of one telegram say. */
export interface OmsInterpretation extends Interpretation {
  /** The meter's clock in seconds, for the replay guard; null without a valid time. */
  readonly clock: number | null;
  readonly manufacturer: string | null;
  readonly model: string | null;
}

/** Whether a record is a plain reading of its quantity (no storage, subunit, qualifier). */
function plain(r: OmsRecord): boolean {
  return r.function === "instantaneous" && r.storage === 0 && r.subunit === 0 && !r.qualified;
}

function sameList(a: readonly number[] | null, b: readonly number[] | undefined): boolean {
  if (a === null || b === undefined) return a === null && b === undefined;
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function profileRegister(p: OmsProfile | null, r: OmsRecord): ProfileRegister | undefined {
  const direction = r.direction ?? "forward";
  return p?.registers.find((x) =>
    x.quantity === r.quantity && x.direction === direction && x.tariff === r.tariff &&
    sameList(r.manufacturer, x.manufacturer)
  );
}

/** The register of a record by the OBIS scheme, or null when it places none. */
function schemeRegister(r: OmsRecord): { obis: string; signed: boolean } | null {
  const s = SCHEME[r.quantity];
  if (s === undefined || r.manufacturer !== null) return null;
  if (!s.perTariff && r.tariff !== 0) return null;
  const c = s.c[r.direction === "backward" ? 1 : 0];
  return { obis: `1-0:${c}.${s.d}.${r.tariff}`, signed: true };
}

/** A record as its DIF, DIFEs, VIF and VIFEs in hex, for messages. */
function head(r: OmsRecord): string {
  return [r.dif, ...r.dife, r.vif, ...r.vife].map((b) => hex2(b).toUpperCase()).join(" ");
}

/**
 * The registers, time and device of one telegram.
 * @param pinned the meter type "amis" forces the AMIS profile whatever the header says
 * @throws {ParseError} (layer "oms") when a complete profile's telegram lacks one of its
 *   records, repeats one, or has one it does not know
 */
export function interpretOms(
  header: OmsHeader,
  records: readonly OmsRecord[],
  pinned: "amis" | null = null,
): OmsInterpretation {
  const profile = pinned === "amis" || AMIS_PROFILE.matches(header) ? AMIS_PROFILE : null;
  const registers: Register[] = [];
  let time: string | null = null;
  let clock: number | null = null;
  let timeSeen = false;
  const complete = profile?.complete === true;
  const damaged = (r: OmsRecord, why: string) =>
    new ParseError(
      "oms",
      r.offset,
      `${why} (record ${
        head(r)
      } at byte ${r.offset}): damaged frame (its checksum cannot catch every damage), or a meter firmware that sends a new record`,
    );
  const seen = new Set<ProfileRegister>();
  for (const r of records) {
    const date = r.quantity === "date-time" && parseMbusDateTime(r.data) !== null;
    if (!plain(r) || (r.quantity === "date-time" && !date)) {
      if (complete) throw damaged(r, `Record not of the ${profile!.name} telegram`);
      continue;
    }
    if (date) {
      if (timeSeen) {
        if (complete) throw damaged(r, `Second time in the ${profile!.name} telegram`);
        continue;
      }
      const t = parseMbusDateTime(r.data)!;
      timeSeen = true;
      time = formatMbusDateTime(t);
      clock = mbusClockSeconds(t);
      continue;
    }
    const own = profileRegister(profile, r);
    if (own !== undefined && seen.has(own) && complete) {
      throw damaged(r, `Second ${own.obis} in the ${profile!.name} telegram`);
    }
    if (own !== undefined) seen.add(own);
    else if (complete) throw damaged(r, `Record not of the ${profile!.name} telegram`);
    const rule = own ?? schemeRegister(r);
    if (!rule) continue;
    const raw = recordNumber(r, rule.signed);
    if (raw === null || !Number.isFinite(raw)) continue;
    const register: Register = {
      obis: rule.obis,
      value: scale(raw, r.exponent),
      unit: r.unit,
      // The VIF (and its VIFEs) says the unit and the power of ten.
      scale: { from: "telegram" },
      raw,
      resolution: scale(1, r.exponent),
      ...("named" in rule && rule.named !== undefined ? { named: rule.named } : {}),
    };
    registers.push(register);
  }
  if (complete) {
    const missing = profile!.registers.filter((x) => !seen.has(x)).map((x) => x.obis);
    if (!timeSeen) missing.unshift("the time");
    if (missing.length > 0) {
      throw new ParseError(
        "oms",
        0,
        `${profile!.name} telegram without ${
          missing.join(", ")
        }: damaged frame (its checksum cannot catch every damage), or a meter firmware that sends other records`,
      );
    }
  }
  return {
    layout: profile?.name ?? "oms",
    time,
    meterId: null,
    registers,
    clock,
    manufacturer: profile?.manufacturer ?? MANUFACTURERS[header.manufacturer] ?? null,
    model: profile?.model ?? null,
  };
}

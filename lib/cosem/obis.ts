/**
 * OBIS codes (IEC 62056-6-1) and the catalog of named values.
 *
 * An OBIS code is six bytes `A B C D E F`, written `A-B:C.D.E` (and `*F` when F is not 255).
 * The catalog below is the one table that says which register becomes which named value
 * and in which unit; Home Assistant metadata is keyed by the same names.
 *
 * @module
 */

/** Writes six OBIS bytes as `A-B:C.D.E`, adding `*F` only when F is not 255. */
export function formatObis(b: ArrayLike<number>): string {
  const s = `${b[0]}-${b[1]}:${b[2]}.${b[3]}.${b[4]}`;
  return b[5] === 255 ? s : `${s}*${b[5]}`;
}

/** Parses `A-B:C.D.E[*F]` (or `A-B:C.D.E.F`) into six bytes. */
export function parseObis(text: string): Uint8Array {
  const m = /^(\d+)-(\d+):(\d+)\.(\d+)\.(\d+)(?:[*.](\d+))?$/.exec(text);
  if (!m) throw new SyntaxError(`Not an OBIS code: "${text}"`);
  const parts = m.slice(1, 7).map((p, i) => (p === undefined ? (i === 5 ? 255 : 0) : Number(p)));
  if (parts.some((p) => p > 255)) throw new SyntaxError(`Not an OBIS code: "${text}"`);
  return Uint8Array.from(parts);
}

/** The named numeric values a reading can carry (DESIGN.md "Named values"). */
export type NamedKey =
  | "energy_import_wh"
  | "energy_export_wh"
  | "reactive_energy_import_varh"
  | "reactive_energy_export_varh"
  | "power_import_w"
  | "power_export_w"
  | "power_w"
  | "reactive_power_import_var"
  | "reactive_power_export_var"
  | "voltage_l1_v"
  | "voltage_l2_v"
  | "voltage_l3_v"
  | "current_l1_a"
  | "current_l2_a"
  | "current_l3_a"
  | "power_factor"
  | "frequency_hz"
  | "angle_l1_deg"
  | "angle_l2_deg"
  | "angle_l3_deg";

/** Named values of one reading: plain numbers in the catalog's units. */
export type NamedValues = Partial<Record<NamedKey, number>>;

/** One entry of the catalog. */
export interface NamedValue {
  readonly key: NamedKey;
  /** `C.D.E` of the register (electricity, A = 1; B is the channel, 0 or 1). */
  readonly cde: string | null;
  /** Unit of the named value; registers are converted to it. */
  readonly unit: string;
}

/** The catalog of named values, in display order. */
export const NAMED_VALUES: readonly NamedValue[] = [
  { key: "energy_import_wh", cde: "1.8.0", unit: "Wh" },
  { key: "energy_export_wh", cde: "2.8.0", unit: "Wh" },
  { key: "reactive_energy_import_varh", cde: "3.8.0", unit: "varh" },
  { key: "reactive_energy_export_varh", cde: "4.8.0", unit: "varh" },
  { key: "power_import_w", cde: "1.7.0", unit: "W" },
  { key: "power_export_w", cde: "2.7.0", unit: "W" },
  { key: "power_w", cde: null, unit: "W" }, // import − export, derived
  { key: "reactive_power_import_var", cde: "3.7.0", unit: "var" },
  { key: "reactive_power_export_var", cde: "4.7.0", unit: "var" },
  { key: "voltage_l1_v", cde: "32.7.0", unit: "V" },
  { key: "voltage_l2_v", cde: "52.7.0", unit: "V" },
  { key: "voltage_l3_v", cde: "72.7.0", unit: "V" },
  { key: "current_l1_a", cde: "31.7.0", unit: "A" },
  { key: "current_l2_a", cde: "51.7.0", unit: "A" },
  { key: "current_l3_a", cde: "71.7.0", unit: "A" },
  { key: "power_factor", cde: "13.7.0", unit: "" },
  { key: "frequency_hz", cde: "14.7.0", unit: "Hz" },
  { key: "angle_l1_deg", cde: "81.7.4", unit: "°" },
  { key: "angle_l2_deg", cde: "81.7.15", unit: "°" },
  { key: "angle_l3_deg", cde: "81.7.26", unit: "°" },
];

const BY_CDE = new Map(NAMED_VALUES.filter((n) => n.cde).map((n) => [n.cde!, n]));

/**
 * The named value an OBIS code feeds, if any: electricity (A = 1), channel B 0 or 1,
 * F 255 or absent.
 */
export function namedValueFor(obis: string): NamedValue | undefined {
  let found = NAMED_BY_OBIS.get(obis);
  if (found === undefined) {
    const m = /^1-([01]):(\d+\.\d+\.\d+)$/.exec(obis);
    found = (m ? BY_CDE.get(m[2]!) : undefined) ?? null;
    // Meters repeat the same few codes every telegram: remember the answers (bounded).
    if (NAMED_BY_OBIS.size >= MEMO_LIMIT) NAMED_BY_OBIS.clear();
    NAMED_BY_OBIS.set(obis, found);
  }
  return found ?? undefined;
}

const MEMO_LIMIT = 1024;
const NAMED_BY_OBIS = new Map<string, NamedValue | null>();

/**
 * OBIS codes that carry the meter's identity, in order of preference: the serial number
 * 0-0:96.1.0, Kamstrup's GS1 number 1-1:0.0.5 (its Nordic lists send no 96.1.0), then the
 * second serial number 0-0:96.1.1. The logical device name {@link LOGICAL_DEVICE_NAME} is
 * the last resort.
 */
export const METER_ID_OBIS: readonly string[] = ["0-0:96.1.0", "1-1:0.0.5", "0-0:96.1.1"];

/** The logical device name (`LGZ1030653520967`): manufacturer id, then a serial number. */
export const LOGICAL_DEVICE_NAME = "0-0:42.0.0";

/**
 * OBIS codes whose text is the meter's model (type designation), in order of preference:
 * the NVE lists' meter type 0-0:96.1.7 (Kaifa `MA304H3E`, Aidon `6515`) and Kamstrup's
 * meter type 1-1:96.1.1 (`6841138BN245101090`).
 */
export const MODEL_OBIS: readonly string[] = ["0-0:96.1.7", "1-1:96.1.1"];

/** Names of registers that are not named values, for `decode --explain`. */
export const OBIS_NAMES: Readonly<Record<string, string>> = {
  "0-0:1.0.0": "clock",
  "0-1:1.0.0": "clock",
  "0-0:96.1.0": "meter serial number",
  "0-0:96.1.1": "second serial number",
  "1-1:0.0.5": "meter id, GS1 number",
  "0-0:42.0.0": "logical device name",
  "0-0:96.1.7": "meter type",
  "1-1:96.1.1": "meter type",
  "1-1:0.2.129": "list version",
  "0-0:96.13.0": "customer message text",
  "0-0:96.13.1": "customer message code",
  "0-0:96.14.0": "current tariff",
  "0-0:96.3.10": "disconnect control state",
};

/** OBIS codes of the meter's clock. */
export const CLOCK_OBIS: readonly string[] = ["0-0:1.0.0", "0-1:1.0.0"];

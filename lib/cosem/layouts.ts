/**
 * Meter layouts as data: the positional bodies (values without OBIS codes, one table row per
 * position), the physical quantities OBIS codes stand for, and the scaler tables for bodies
 * that send bare integers without `{scaler, unit}`. Each positional layout and each scaler
 * table is a named scale rule (`scale.ts`): the only ways besides the telegram itself by
 * which a number gets a scale.
 *
 * Nothing here is code that decides: `interpret.ts` reads these tables. Adding a meter is
 * adding a row.
 *
 * Positional bodies (operators' own specifications; counts are structure elements):
 *
 * ```
 *   Netz Burgenland E450        structure(14)  U1 U2 U3  I1 I2 I3  +P −P  +A −A  ∠1 ∠2 ∠3  id
 *                               structure(11)  U1 U2 U3  I1 I2 I3  +P −P  +A −A  id
 *   Wiener Netze (E450, AM550)  structure(9)   time  +A −A  +R −R  +P −P  +Q −Q
 *   Wiener Netze (IM350)        structure(10)  id  time  +A −A  +R −R  +P −P  +Q −Q
 *   Kärnten Netz (AM550, IM350) structure(12)  0-6:25.9.0  id  time(4) date(5)
 *                                              +A −A  +R −R  +P −P  info-text info-code
 *                               structure(10)  the same without the two info fields
 *   Norwegian HAN, Kaifa        structure(1)   +P, a double-long-unsigned          (list 1)
 *   (NVE lists, "KFM_001")      structure(9)   list id  +P −P +Q −Q  I1  U1   (list 2, 1-phase)
 *                               structure(13)  list id  +P −P +Q −Q  I1 I2 I3  U1 U2 U3 (list 2)
 *                               structure(14)  list 2 1-phase + time +A −A +R −R     (list 3)
 *                               structure(18)  list 2 + time +A −A +R −R             (list 3)
 *   ("list id" stands for three strings: list version, meter id, meter type)
 * ```
 *
 * Sources: Netz Burgenland "Beschreibung Endkundenschnittstelle" as decoded by the seed
 * project (`meter/bgld/data.py`) and amsreader (`LNG2`, 11 and 14 elements); Wiener Netze
 * "Smart Meter Kundenschnittstelle"; the Kärnten AM550 push in amsreader issue #787 and the
 * IM350 offsets of Andre-Schuiki/esphome_im350; Kaifa "HAN OBIS codes KFM_001" as read by
 * amsreader (`IEC6205675.cpp`: current ÷1000, voltage ÷10, energy in Wh).
 *
 * @module
 */

/** What one position of a positional body holds. */
export type FieldKind =
  /** An integer register: `scaler` and `unit` say what it means. */
  | "number"
  /** Octet or visible string shown as text (meter type, customer message). */
  | "text"
  /** The meter's identity (octet or visible string). */
  | "meter-id"
  /** A list version string; `pattern` must match it (it identifies the layout). */
  | "list-id"
  /** The measurement time: date-time, or an octet string of 12. */
  | "date-time"
  /** Time of day: time, or an octet string of 4 (combined with a `date` field). */
  | "time"
  /** Calendar date: date, or an octet string of 5 (combined with a `time` field). */
  | "date"
  /** The push setup's own logical name, an octet string of 6 equal to `obis`. */
  | "push-setup"
  /** Optional information: a string, a number or null. */
  | "info";

/** One position of a positional layout. */
export interface PositionalField {
  readonly kind: FieldKind;
  /** Short name, for descriptions and messages ("U1", "+A"). */
  readonly label: string;
  /** The OBIS code this position is published as; null: not published. */
  readonly obis: string | null;
  /** For numbers: the value is `raw × 10^scaler`. */
  readonly scaler?: number;
  /** For numbers: the DLMS unit code (see units.ts), 255 for none. */
  readonly unit?: number;
  /** For list ids: a regular expression the string must match. */
  readonly pattern?: string;
  /**
   * For numbers: the A-XDR types accepted (any integer type when absent). A layout with few
   * positions pins them so that no other body of that size passes for it.
   */
  readonly types?: readonly string[];
}

/** A body without OBIS codes: which structure it is, and what each position means. */
export interface PositionalLayout {
  /** Unique name, reported as the reading's layout. */
  readonly name: string;
  /** The `--meter-type` / `meter_type` name that pins this layout (and its variants). */
  readonly meterType: string;
  readonly description: string;
  /** The meter model this layout comes from, where it says (the Python add-on's `E450`). */
  readonly model?: string;
  readonly match: {
    /** The body is a structure of exactly this many elements. */
    readonly count: number;
    /**
     * When set, auto-detection refuses a telegram whose manufacturer is known (from its
     * system title) and is not one of these; a telegram without a system title names no
     * manufacturer and may pass. Pinning the meter type skips this.
     */
    readonly manufacturers?: readonly string[];
  };
  readonly fields: readonly PositionalField[];
}

/** DLMS unit codes used in the tables below. */
const U = { DEG: 8, W: 27, VAR: 29, WH: 30, VARH: 32, A: 33, V: 35, NONE: 255 } as const;

const num = (label: string, obis: string, unit: number, scaler = 0): PositionalField => ({
  kind: "number",
  label,
  obis,
  scaler,
  unit,
});

// Recurring groups of positions.
const VOLTAGES = [
  num("U1", "1-0:32.7.0", U.V),
  num("U2", "1-0:52.7.0", U.V),
  num("U3", "1-0:72.7.0", U.V),
];
const CURRENTS_CENTI = [
  num("I1", "1-0:31.7.0", U.A, -2),
  num("I2", "1-0:51.7.0", U.A, -2),
  num("I3", "1-0:71.7.0", U.A, -2),
];
const ENERGY_ACTIVE = [num("+A", "1-0:1.8.0", U.WH), num("−A", "1-0:2.8.0", U.WH)];
const ENERGY_REACTIVE = [num("+R", "1-0:3.8.0", U.VARH), num("−R", "1-0:4.8.0", U.VARH)];
const POWER_ACTIVE = [num("+P", "1-0:1.7.0", U.W), num("−P", "1-0:2.7.0", U.W)];
const POWER_REACTIVE = [num("+Q", "1-0:3.7.0", U.VAR), num("−Q", "1-0:4.7.0", U.VAR)];
const METER_ID: PositionalField = { kind: "meter-id", label: "meter id", obis: "0-0:96.1.0" };
const CLOCK: PositionalField = { kind: "date-time", label: "time", obis: "0-0:1.0.0" };

/**
 * The E450 phase angles (1-0:81.7.4 / 81.7.15 / 81.7.26) are published as sent, in whole
 * degrees: no public source states a scaler for the Netz Burgenland push, and the seed
 * project (whose users' automations read `angle1..3`) publishes the raw integer.
 */
const ANGLES = [
  num("∠1", "1-0:81.7.4", U.DEG),
  num("∠2", "1-0:81.7.15", U.DEG),
  num("∠3", "1-0:81.7.26", U.DEG),
];

// Kaifa NVE lists: current in mA, voltage in 0.1 V, power W, energy Wh.
const KAIFA_HEAD: readonly PositionalField[] = [
  { kind: "list-id", label: "list version", obis: "1-1:0.2.129", pattern: "^KFM_" },
  METER_ID,
  { kind: "text", label: "meter type", obis: "0-0:96.1.7" },
  ...POWER_ACTIVE,
  ...POWER_REACTIVE,
];
const KAIFA_L1 = [num("I1", "1-0:31.7.0", U.A, -3), num("U1", "1-0:32.7.0", U.V, -1)];
const KAIFA_3P = [
  num("I1", "1-0:31.7.0", U.A, -3),
  num("I2", "1-0:51.7.0", U.A, -3),
  num("I3", "1-0:71.7.0", U.A, -3),
  num("U1", "1-0:32.7.0", U.V, -1),
  num("U2", "1-0:52.7.0", U.V, -1),
  num("U3", "1-0:72.7.0", U.V, -1),
];
const KAIFA_LIST3 = [CLOCK, ...ENERGY_ACTIVE, ...ENERGY_REACTIVE];

// Kärnten Netz: the push setup's name, then meter number, time and date as octet strings.
const KAERNTEN_HEAD: readonly PositionalField[] = [
  { kind: "push-setup", label: "push setup 0-6:25.9.0", obis: "0-6:25.9.0" },
  METER_ID,
  { kind: "time", label: "time", obis: null },
  { kind: "date", label: "date", obis: null },
  ...ENERGY_ACTIVE,
  ...ENERGY_REACTIVE,
  ...POWER_ACTIVE,
];

/** Every positional layout, in the order auto-detection tries them. */
export const POSITIONAL_LAYOUTS: readonly PositionalLayout[] = [
  {
    name: "burgenland",
    meterType: "burgenland",
    model: "E450",
    description:
      "Netz Burgenland E450: structure(14) of U1–U3 (V), I1–I3 (0.01 A), +P −P (W), +A −A (Wh), three phase angles (°), meter id",
    match: { count: 14 },
    fields: [
      ...VOLTAGES,
      ...CURRENTS_CENTI,
      ...POWER_ACTIVE,
      ...ENERGY_ACTIVE,
      ...ANGLES,
      METER_ID,
    ],
  },
  {
    name: "burgenland-no-angles",
    meterType: "burgenland",
    model: "E450",
    description:
      "Netz Burgenland E450 without angles: structure(11) of U1–U3 (V), I1–I3 (0.01 A), +P −P (W), +A −A (Wh), meter id",
    match: { count: 11 },
    fields: [...VOLTAGES, ...CURRENTS_CENTI, ...POWER_ACTIVE, ...ENERGY_ACTIVE, METER_ID],
  },
  {
    name: "wiener-netze",
    meterType: "wiener-netze",
    description:
      "Wiener Netze (E450, AM550): structure(9) of date-time, +A −A (Wh), +R −R (varh), +P −P (W), +Q −Q (var)",
    match: { count: 9 },
    fields: [CLOCK, ...ENERGY_ACTIVE, ...ENERGY_REACTIVE, ...POWER_ACTIVE, ...POWER_REACTIVE],
  },
  {
    name: "wiener-netze-im350",
    meterType: "wiener-netze",
    description:
      "Wiener Netze (IM350): structure(10) of meter number, date-time, +A −A (Wh), +R −R (varh), +P −P (W), +Q −Q (var)",
    match: { count: 10 },
    fields: [
      METER_ID,
      CLOCK,
      ...ENERGY_ACTIVE,
      ...ENERGY_REACTIVE,
      ...POWER_ACTIVE,
      ...POWER_REACTIVE,
    ],
  },
  {
    name: "kaernten",
    meterType: "kaernten",
    description:
      "Kärnten Netz / Wels (AM550, IM350): structure(12) of push setup 0-6:25.9.0, meter number, time, date, +A −A (Wh), +R −R (varh), +P −P (W), customer information text and code",
    match: { count: 12 },
    fields: [
      ...KAERNTEN_HEAD,
      { kind: "info", label: "customer information text", obis: "0-0:96.13.0" },
      { kind: "info", label: "customer information code", obis: "0-0:96.13.1" },
    ],
  },
  {
    name: "kaernten-no-info",
    meterType: "kaernten",
    description:
      "Kärnten Netz / Wels without customer information: structure(10) of push setup 0-6:25.9.0, meter number, time, date, +A −A (Wh), +R −R (varh), +P −P (W)",
    match: { count: 10 },
    fields: KAERNTEN_HEAD,
  },
  {
    // The Norwegian HAN list 1 (NVE/NEK): active power import in W, sent every 2 s. Only
    // exactly this shape: a structure of one double-long-unsigned, no OBIS code, no list id.
    name: "kaifa-no-list1",
    meterType: "kaifa-no",
    description:
      "Kaifa NVE list 1: structure(1) of one double-long-unsigned, +P (W); no OBIS code, no list id",
    match: { count: 1, manufacturers: ["KFM"] },
    fields: [{ ...num("+P", "1-0:1.7.0", U.W), types: ["double-long-unsigned"] }],
  },
  {
    name: "kaifa-no-list2-1p",
    meterType: "kaifa-no",
    description:
      "Kaifa NVE list 2, one phase: structure(9) of list version KFM_…, meter id, meter type, +P −P (W), +Q −Q (var), I1 (mA), U1 (0.1 V)",
    match: { count: 9 },
    fields: [...KAIFA_HEAD, ...KAIFA_L1],
  },
  {
    name: "kaifa-no-list2-3p",
    meterType: "kaifa-no",
    description:
      "Kaifa NVE list 2: structure(13) of list version KFM_…, meter id, meter type, +P −P (W), +Q −Q (var), I1–I3 (mA), U1–U3 (0.1 V)",
    match: { count: 13 },
    fields: [...KAIFA_HEAD, ...KAIFA_3P],
  },
  {
    name: "kaifa-no-list3-1p",
    meterType: "kaifa-no",
    description:
      "Kaifa NVE list 3, one phase: structure(14) of list 2 (one phase), date-time, +A −A (Wh), +R −R (varh)",
    match: { count: 14 },
    fields: [...KAIFA_HEAD, ...KAIFA_L1, ...KAIFA_LIST3],
  },
  {
    name: "kaifa-no-list3-3p",
    meterType: "kaifa-no",
    description: "Kaifa NVE list 3: structure(18) of list 2, date-time, +A −A (Wh), +R −R (varh)",
    match: { count: 18 },
    fields: [...KAIFA_HEAD, ...KAIFA_3P, ...KAIFA_LIST3],
  },
];

/** Physical quantities that registers are classified into (for scaler tables and units). */
export type Quantity =
  | "active-power"
  | "reactive-power"
  | "apparent-power"
  | "active-energy"
  | "reactive-energy"
  | "apparent-energy"
  | "current"
  | "voltage"
  | "power-factor"
  | "frequency"
  | "angle";

/** Which electricity OBIS codes (A = 1) measure which quantity, and its natural unit. */
export interface QuantityRule {
  readonly quantity: Quantity;
  /** Value group C (what is measured: total, L1, L2, L3 variants). */
  readonly c: readonly number[];
  /** Value group D (7 = instantaneous value, 8 = time integral). */
  readonly d: number;
  /** DLMS unit code of the quantity. */
  readonly unit: number;
}

const ACTIVE_C = [1, 2, 15, 16, 21, 22, 35, 36, 41, 42, 55, 56, 61, 62, 75, 76];
const REACTIVE_C = [3, 4, 5, 6, 7, 8, 23, 24, 25, 26, 27, 28, 43, 44, 45, 46, 47, 48, 63, 64];
const APPARENT_C = [9, 10, 29, 30, 49, 50, 69, 70];

/** IEC 62056-6-1 value group C/D meanings for electricity (A = 1). */
export const QUANTITIES: readonly QuantityRule[] = [
  { quantity: "active-power", c: ACTIVE_C, d: 7, unit: U.W },
  { quantity: "active-energy", c: ACTIVE_C, d: 8, unit: U.WH },
  { quantity: "reactive-power", c: REACTIVE_C, d: 7, unit: U.VAR },
  { quantity: "reactive-energy", c: REACTIVE_C, d: 8, unit: U.VARH },
  { quantity: "apparent-power", c: APPARENT_C, d: 7, unit: 28 },
  { quantity: "apparent-energy", c: APPARENT_C, d: 8, unit: 31 },
  { quantity: "current", c: [11, 31, 51, 71, 91], d: 7, unit: U.A },
  { quantity: "voltage", c: [12, 32, 52, 72], d: 7, unit: U.V },
  { quantity: "power-factor", c: [13, 33, 53, 73], d: 7, unit: U.NONE },
  { quantity: "frequency", c: [14], d: 7, unit: 44 },
  { quantity: "angle", c: [81], d: 7, unit: U.DEG },
];

/**
 * Scalers for bodies that send bare integers, keyed by list version, manufacturer (the first
 * three letters of the system title or of the logical device name 0-0:42.0.0) or body shape.
 * A table applies the same way to every body shape of its family. A quantity a table does
 * not list has no scale: its registers stay in `obis` only, marked `"scale": "unknown"`.
 */
export interface ScalerTable {
  readonly name: string;
  readonly description: string;
  readonly match: {
    /** FLAG manufacturer ids (`KFM`, `LGZ`, ...). */
    readonly manufacturers?: readonly string[];
    /** Regular expressions for the list version string (`Kamstrup_V0001`, `KFM_001`). */
    readonly listIds?: readonly string[];
    /** Body shapes that only one meter family sends (`xt211-descriptors`). */
    readonly shapes?: readonly string[];
  };
  /** Power of ten per quantity: value = raw × 10^scaler. */
  readonly scalers: Partial<Record<Quantity, number>>;
}

export const SCALER_TABLES: readonly ScalerTable[] = [
  {
    name: "kamstrup",
    // Energy in 10 Wh: Kamstrup's "HAN NVE" information sheet gives the energy registers a
    // resolution of 0.01 kWh, and both amsreader (IEC6205675.cpp: counters × 10) and
    // hass-AMS (parsers/kamstrup.py: energy ÷ 100 → kWh) decode them so. Some Swedish
    // meters were reconfigured to 3 decimals (amsreader #874, #811): a telegram cannot
    // tell, so such meters read ten times too high; pin a profile if that is ever needed.
    description:
      "Kamstrup (list Kamstrup_V0001): current 0.01 A, power factor 0.01, voltage V, power W, energy 10 Wh",
    match: { manufacturers: ["KAM"], listIds: ["^Kamstrup_"] },
    scalers: {
      "current": -2,
      "power-factor": -2,
      "voltage": 0,
      "active-power": 0,
      "reactive-power": 0,
      "active-energy": 1,
      "reactive-energy": 1,
    },
  },
  {
    name: "kaifa",
    description:
      "Kaifa (Norway, Sweden; list KFM_001): current mA, voltage 0.1 V, power W, energy Wh",
    match: { manufacturers: ["KFM"], listIds: ["^KFM_"] },
    scalers: {
      "current": -3,
      "voltage": -1,
      "active-power": 0,
      "reactive-power": 0,
      "active-energy": 0,
      "reactive-energy": 0,
    },
  },
  {
    // The Landis+Gyr customer-interface convention (E450, E570; push-object lists without
    // scaler attributes, in every body shape): the Swiss VSE captures of scs/
    // smartmeter-datacollector and the Cyprus E450 of esphome-libs/dlms_parser agree. The
    // E360 sends its voltage in 0.1 V instead (scs lg_e360.py) and nothing in the telegram
    // tells it from an E450: its voltage, read here in V, fails the consistency check
    // (consistency.ts) and is withheld.
    name: "landis-gyr",
    description:
      "Landis+Gyr customer interface: current 0.01 A, voltage V, power factor 0.001, power W, energy Wh",
    match: { manufacturers: ["LGZ"] },
    scalers: {
      "current": -2,
      "voltage": 0,
      "power-factor": -3,
      "active-power": 0,
      "reactive-power": 0,
      "active-energy": 0,
      "reactive-energy": 0,
    },
  },
  {
    name: "iskraemeco-am550",
    description:
      "Iskraemeco AM550 (VSE push list): voltage 0.1 V, current 0.01 A, power W, energy Wh",
    match: { manufacturers: ["ISK"] },
    scalers: {
      "voltage": -1,
      "current": -2,
      "active-power": 0,
      "reactive-power": 0,
      "active-energy": 0,
      "reactive-energy": 0,
    },
  },
  {
    // Sagemcom XT211 pushes in the attribute-descriptor shape (EG.D and ČEZ Distribuce,
    // Czech Republic) send no scaler attributes. ČEZ Distribuce's customer-interface list
    // gives the active powers in W and the active energies in Wh (as quoted by
    // nero150/CEZ_rele_box `xt211_han/dlms_parser.py`; Tomer27cz/xt211's README: "the meter
    // sends the value in Wh"). Nothing is stated for other quantities.
    name: "sagemcom-xt211",
    description:
      "Sagemcom XT211 (EG.D, ČEZ Distribuce; attribute-descriptor pushes): active power W, active energy Wh",
    match: { shapes: ["xt211-descriptors"] },
    scalers: {
      "active-power": 0,
      "active-energy": 0,
    },
  },
];

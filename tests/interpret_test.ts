import { fixture } from "./fixtures.ts";
import { deepEqual, equal, match, ok as assert, throws } from "node:assert/strict";
import { ByteReader, fromHex, toHex } from "../lib/bytes.ts";
import { ParseError } from "../lib/errors.ts";
import { type AxdrValue, decodeData, decodeDataExact } from "../lib/dlms/axdr.ts";
import { type DlmsDateTime, parseDateTime } from "../lib/dlms/datetime.ts";
import { parseObis } from "../lib/cosem/obis.ts";
import type { Interpretation, Reading } from "../lib/cosem/reading.ts";
import {
  interpret,
  type InterpretContext,
  LayoutError,
  METER_TYPES,
  type MeterType,
  parseMeterType,
} from "../lib/cosem/interpret.ts";
import { buildReading } from "../lib/cosem/build.ts";
import { POSITIONAL_LAYOUTS } from "../lib/cosem/layouts.ts";

// ---------------------------------------------------------------------------------------
// Fixtures: the decrypted APDU of each capture, its header stripped by hand.

interface FixtureFile {
  hex: string;
  key: string | null;
  negative?: boolean;
  expected: Record<string, number | string>;
  plaintext_apdu_hex?: string;
}

function loadFixture(name: string): FixtureFile {
  return fixture(name).raw as unknown as FixtureFile;
}

// Data-notification (Green Book 9.3.14): 0F | long-invoke-id 4 | date-time | body.
const NOTIFICATION_TAG = 0x0f;
const INVOKE_ID_LENGTH = 4;
const DATE_TIME_ABSENT = 0x00;
const DATE_TIME_PLAIN = 0x0c; // the 12 bytes follow directly
const DATE_TIME_OCTETS = 0x09; // as an octet-string: 09 0C + 12 bytes
const DATE_TIME_LENGTH = 12;

function parseNotification(apdu: Uint8Array): { headerTime: DlmsDateTime | null; body: AxdrValue } {
  const r = new ByteReader(apdu, "apdu");
  equal(r.u8(), NOTIFICATION_TAG);
  r.bytes(INVOKE_ID_LENGTH);
  let headerTime: DlmsDateTime | null = null;
  const marker = r.u8();
  if (marker === DATE_TIME_OCTETS) {
    equal(r.u8(), DATE_TIME_LENGTH);
    headerTime = parseDateTime(r.bytes(DATE_TIME_LENGTH));
  } else if (marker === DATE_TIME_PLAIN) {
    headerTime = parseDateTime(r.bytes(DATE_TIME_LENGTH));
  } else {
    equal(marker, DATE_TIME_ABSENT);
  }
  const body = decodeData(r);
  equal(r.remaining, 0);
  return { headerTime, body };
}

/** The system title after the `DB 08` of a general-glo-ciphering APDU, if the capture has one. */
function systemTitleIn(hex: string): Uint8Array | null {
  for (let at = hex.indexOf("db08"); at >= 0; at = hex.indexOf("db08", at + 1)) {
    if (at % 2 === 0) return fromHex(hex.slice(at + 4, at + 20));
  }
  return null;
}

// The Burgenland capture has no plaintext in its fixture: decrypt it here.
// HDLC: 7E | format 2 | dest 2 | src 1 | control 1 | HCS 2 | LLC 3 | APDU | FCS 2 | 7E
// APDU: DB 08 | system title 8 | length 1 | SC 1 | invocation counter 4 | ciphertext | tag 12
const HDLC_APDU_AT = 12;
const ST_AT = HDLC_APDU_AT + 2;
const ST_LENGTH = 8;
const LENGTH_AT = ST_AT + ST_LENGTH;
const COUNTER_AT = LENGTH_AT + 2;
const COUNTER_LENGTH = 4;
const CIPHERTEXT_AT = COUNTER_AT + COUNTER_LENGTH;
const TAG_LENGTH = 12;
const SC_AND_COUNTER = 5;

async function decryptBurgenland(f: FixtureFile): Promise<Uint8Array> {
  const frame = fromHex(f.hex);
  const length = frame[LENGTH_AT]!;
  const ciphertext = frame.subarray(
    CIPHERTEXT_AT,
    CIPHERTEXT_AT + length - SC_AND_COUNTER - TAG_LENGTH,
  );
  // GCM without the tag check is CTR mode from counter block IV || 00000002.
  const counter = new Uint8Array(16);
  counter.set(frame.subarray(ST_AT, ST_AT + ST_LENGTH), 0);
  counter.set(frame.subarray(COUNTER_AT, COUNTER_AT + COUNTER_LENGTH), ST_LENGTH);
  counter[15] = 2;
  const key = await crypto.subtle.importKey("raw", fromHex(f.key!), "AES-CTR", false, [
    "decrypt",
  ]);
  const plain = await crypto.subtle.decrypt(
    { name: "AES-CTR", counter, length: 32 },
    key,
    ciphertext,
  );
  return new Uint8Array(plain);
}

async function plaintextOf(name: string, f: FixtureFile): Promise<Uint8Array> {
  if (f.plaintext_apdu_hex) return fromHex(f.plaintext_apdu_hex);
  if (name.startsWith("burgenland_")) return await decryptBurgenland(f);
  throw new Error(`Fixture ${name} has no plaintext`);
}

/** Whether a reading has every expected value (numbers to a relative 1e-9). */
function assertExpected(reading: Reading, expected: Record<string, number | string>): void {
  for (const [key, want] of Object.entries(expected)) {
    if (key === "timestamp") {
      equal(reading.time, want, "timestamp");
    } else if (key === "meter_id") {
      equal(reading.meter_id, String(want), "meter_id");
    } else {
      const got = (reading.values as Record<string, number | undefined>)[key];
      assert(typeof got === "number", `${key} missing`);
      const w = want as number;
      assert(Math.abs(got - w) <= 1e-9 * Math.max(1, Math.abs(w)), `${key}: ${got} != ${w}`);
    }
  }
}

/** Every A-XDR fixture: the layout auto-detection finds, and the meter type that pins it. */
const A_XDR_FIXTURES: readonly [string, string, MeterType][] = [
  ["austria_landis-gyr-e450_1", "obis-tagged", "obis-tagged"],
  ["burgenland_landis-gyr-e450_1", "burgenland", "burgenland"],
  ["denmark_kamstrup-omnipower_1", "obis-tagged", "kamstrup"],
  ["netznoe_kaifa-ma309_1", "obis-tagged", "noe_evn"],
  ["netznoe_sagemcom-t210d_2", "obis-tagged", "noe_evn"],
  ["norway_aidon_1", "obis-tagged", "aidon"],
  ["norway_kaifa-ma304h3e_1", "kaifa-no-list2-3p", "kaifa-no"],
  ["salzburg_kaifa-ma309m_1", "obis-tagged", "obis-tagged"],
  ["switzerland_iskraemeco-am550_1", "push-object-list", "push-object-list"],
  ["switzerland_landis-gyr-e450_2", "push-object-list", "push-object-list"],
  ["vorarlberg_kaifa-ma309m_1", "obis-tagged", "obis-tagged"],
  ["wienernetze_landis-gyr-e450_1", "wiener-netze", "wiener-netze"],
];

async function readFixture(name: string, meterType: MeterType): Promise<Reading> {
  const f = loadFixture(name);
  const { headerTime, body } = parseNotification(await plaintextOf(name, f));
  const systemTitle = systemTitleIn(f.hex);
  const i = interpret(body, { headerTime, systemTitle, meterType });
  return buildReading(i, { systemTitle, frameCounter: null });
}

Deno.test("interpret() finds every fixture's expected values by auto-detection", async (t) => {
  for (const [name, layout] of A_XDR_FIXTURES) {
    await t.step(name, async () => {
      const f = loadFixture(name);
      const { headerTime, body } = parseNotification(await plaintextOf(name, f));
      const systemTitle = systemTitleIn(f.hex);
      const i = interpret(body, { headerTime, systemTitle, meterType: "auto" });
      equal(i.layout, layout);
      assertExpected(buildReading(i, { systemTitle, frameCounter: 7 }), f.expected);
    });
  }
});

Deno.test("interpret() finds every fixture's expected values with its meter type pinned", async (t) => {
  for (const [name, , meterType] of A_XDR_FIXTURES) {
    await t.step(`${name} as ${meterType}`, async () => {
      assertExpected(await readFixture(name, meterType), loadFixture(name).expected);
    });
  }
});

Deno.test("interpret() refuses each fixture under a meter type that does not fit", async (t) => {
  const wrong: readonly [string, MeterType][] = [
    ["netznoe_kaifa-ma309_1", "burgenland"],
    ["burgenland_landis-gyr-e450_1", "noe_evn"],
    ["wienernetze_landis-gyr-e450_1", "kaernten"],
    ["switzerland_landis-gyr-e450_2", "obis-tagged"],
    ["norway_aidon_1", "push-object-list"],
    ["norway_kaifa-ma304h3e_1", "wiener-netze"],
    ["salzburg_kaifa-ma309m_1", "dsmr"],
  ];
  for (const [name, meterType] of wrong) {
    await t.step(`${name} as ${meterType}`, async () => {
      const f = loadFixture(name);
      const { headerTime, body } = parseNotification(await plaintextOf(name, f));
      throws(
        () => interpret(body, { headerTime, systemTitle: null, meterType }),
        (e: unknown) =>
          e instanceof ParseError && e.layer === "cosem" &&
          e.message.startsWith(`Meter type "${meterType}" does not fit a`),
      );
    });
  }
});

Deno.test("interpret() scales Kamstrup_V0001 energy in 10 Wh (the documented choice)", async () => {
  const reading = await readFixture("denmark_kamstrup-omnipower_1", "auto");
  // Raw 6307498 with resolution 0.01 kWh; see the "kamstrup" scaler table in layouts.ts.
  equal(reading.obis["1-1:1.8.0"]?.value, 63074980);
  equal(reading.obis["1-1:1.8.0"]?.unit, "Wh");
  equal(reading.obis["1-1:21.7.0"]?.value, 36); // per-phase power, W as sent
  equal(reading.obis["1-1:0.0.1"]?.value, 12343400); // meter number: no unit, no scaling
  equal(reading.obis["1-1:0.0.1"]?.unit, null);
});

Deno.test("interpret() publishes the Burgenland E450 angles as sent, in degrees", async () => {
  const reading = await readFixture("burgenland_landis-gyr-e450_1", "auto");
  deepEqual(
    [reading.values.angle_l1_deg, reading.values.angle_l2_deg, reading.values.angle_l3_deg],
    [400, 53, 295],
  );
  equal(reading.obis["1-0:81.7.4"]?.unit, "°");
});

Deno.test("interpret() keeps every register of a fixture, text ones too", async () => {
  const reading = await readFixture("switzerland_landis-gyr-e450_2", "auto");
  deepEqual(reading.obis["0-0:42.0.0"], { value: "LGZ1030653520967", unit: null });
  deepEqual(reading.obis["0-0:96.1.1"], { value: "1909113", unit: null });
  deepEqual(reading.obis["0-0:1.0.0"], { value: "2026-05-04T11:39:21", unit: null });
  deepEqual(reading.obis["1-0:31.7.0"], { value: 0.09, unit: "A" });
  equal(reading.obis["0-8:25.9.0"], undefined); // the push setup itself is not a reading
  equal(Object.keys(reading.obis).length, 15);
});

// ---------------------------------------------------------------------------------------
// Hand-made bodies.

const int = (
  type: "integer" | "long" | "unsigned" | "long-unsigned",
  value: number,
): AxdrValue => ({
  type,
  value,
});
const u32 = (value: number): AxdrValue => ({ type: "double-long-unsigned", value });
const u16 = (value: number): AxdrValue => int("long-unsigned", value);
const enumOf = (value: number): AxdrValue => ({ type: "enum", value });
const octets = (hex: string): AxdrValue => ({ type: "octet-string", bytes: fromHex(hex) });
const ascii = (text: string): AxdrValue => ({
  type: "octet-string",
  bytes: new TextEncoder().encode(text),
});
const visible = (text: string): AxdrValue => ({ type: "visible-string", text });
const obis = (text: string): AxdrValue => ({ type: "octet-string", bytes: parseObis(text) });
const struct = (...items: AxdrValue[]): AxdrValue => ({ type: "structure", items });
const array = (...items: AxdrValue[]): AxdrValue => ({ type: "array", items });
const su = (scaler: number, unit: number) => struct(int("integer", scaler), enumOf(unit));
const NULL: AxdrValue = { type: "null" };

// 2024-05-07 21:11:20, deviation -120 (+02:00); the same without a deviation; unspecified.
const DT_SUMMER = "07e8050702150b1400ff8800";
const DT_LOCAL = "07e8050702150b1400800000";
const DT_UNSPECIFIED = "ffffffffffffffffff800000";
const HEADER_TIME = parseDateTime(fromHex("07e80507020000000080 0000".replace(/ /g, "")));

const ctx = (
  meterType: MeterType = "auto",
  systemTitle: string | null = null,
): InterpretContext => ({
  headerTime: HEADER_TIME,
  systemTitle: systemTitle === null ? null : new TextEncoder().encode(systemTitle),
  meterType,
});

const regs = (i: Interpretation) => Object.fromEntries(i.registers.map((r) => [r.obis, r.value]));
const units = (i: Interpretation) => Object.fromEntries(i.registers.map((r) => [r.obis, r.unit]));

Deno.test("interpret() reads flat OBIS/value pairs and triplets mixed in one structure", () => {
  const i = interpret(
    struct(
      octets(DT_SUMMER),
      obis("1-0:1.8.0"),
      u32(12937),
      su(0, 30),
      obis("1-0:32.7.0"),
      u16(2337),
      su(-1, 35),
      obis("1-0:1.7.0"),
      u32(500), // no {scaler, unit}: the catalog's unit
      ascii("181220000009"),
    ),
    ctx(),
  );
  equal(i.layout, "obis-tagged");
  deepEqual(regs(i), { "1-0:1.8.0": 12937, "1-0:32.7.0": 233.7, "1-0:1.7.0": 500 });
  deepEqual(units(i), { "1-0:1.8.0": "Wh", "1-0:32.7.0": "V", "1-0:1.7.0": "W" });
  equal(i.time, "2024-05-07T21:11:20+02:00");
  equal(i.meterId, "181220000009");
});

Deno.test("interpret() reads an array of {OBIS, value, {scaler, unit}} objects", () => {
  const i = interpret(
    array(
      struct(obis("1-1:0.2.129"), visible("AIDON_V0001")),
      struct(obis("0-0:96.1.0"), visible("7359992890941742")),
      struct(obis("1-0:1.8.0"), u32(123456), su(1, 30)), // Aidon energy: scaler +1
      struct(obis("1-0:31.7.0"), int("long", -93), su(-1, 33)),
      struct(obis("1-0:1.7.0"), { type: "long64-unsigned", value: 2n ** 40n }, su(0, 27)),
    ),
    ctx(),
  );
  equal(i.layout, "obis-tagged");
  deepEqual(regs(i), {
    "1-1:0.2.129": "AIDON_V0001",
    "0-0:96.1.0": "7359992890941742",
    "1-0:1.8.0": 1234560,
    "1-0:31.7.0": -9.3,
    "1-0:1.7.0": 2 ** 40,
  });
  equal(i.meterId, "7359992890941742");
  equal(i.time, "2024-05-07T00:00:00", "no clock: the header's time");
});

Deno.test("interpret() reads a bare clock OBIS followed by its date-time (Vorarlberg)", () => {
  const i = interpret(
    struct(
      obis("0-0:1.0.0"),
      octets(DT_SUMMER),
      struct(obis("0-0:96.1.0"), ascii("1KFM0200175269")),
      struct(obis("1-0:2.8.0"), u32(42), su(0, 30)),
    ),
    ctx(),
  );
  equal(i.time, "2024-05-07T21:11:20+02:00");
  equal(regs(i)["0-0:1.0.0"], "2024-05-07T21:11:20+02:00");
  equal(i.meterId, "1KFM0200175269");
});

Deno.test("interpret() takes the scaler from the manufacturer's table when none is sent", async (t) => {
  const pairs = [
    obis("1-0:31.7.0"),
    u32(1416),
    obis("1-0:32.7.0"),
    u32(2385),
    obis("1-0:1.8.0"),
    u32(1000),
    obis("1-0:13.7.0"),
    u16(991),
  ];
  const body = struct(...pairs);
  await t.step("Kaifa by system title: mA, 0.1 V, Wh", () => {
    const i = interpret(body, ctx("auto", "KFM\x10\x20\x02\xac\xa5"));
    deepEqual(regs(i), {
      "1-0:31.7.0": 1.416,
      "1-0:32.7.0": 238.5,
      "1-0:1.8.0": 1000,
      "1-0:13.7.0": 991,
    });
    deepEqual(units(i), {
      "1-0:31.7.0": "A",
      "1-0:32.7.0": "V",
      "1-0:1.8.0": "Wh",
      "1-0:13.7.0": null,
    });
  });
  await t.step("Landis+Gyr by system title: 0.01 A, power factor 0.001", () => {
    const i = interpret(body, ctx("auto", "LGZgs|~\xe0"));
    equal(regs(i)["1-0:31.7.0"], 14.16);
    equal(regs(i)["1-0:13.7.0"], 0.991);
  });
  await t.step("Kamstrup by list version", () => {
    const i = interpret(
      struct(visible("Kamstrup_V0001"), ...pairs),
      ctx(),
    );
    deepEqual(regs(i), {
      "1-0:31.7.0": 14.16,
      "1-0:32.7.0": 2385,
      "1-0:1.8.0": 10000,
      "1-0:13.7.0": 9.91,
    });
  });
  await t.step("Iskraemeco by logical device name", () => {
    const named = struct(
      obis("0-0:42.0.0"),
      ascii("ISK1030783821282"),
      ...pairs,
    );
    equal(regs(interpret(named, ctx()))["1-0:32.7.0"], 238.5);
  });
  await t.step("pinned kamstrup forces its table whatever the manufacturer", () => {
    equal(regs(interpret(body, ctx("kamstrup", "KFMxxxxx")))["1-0:1.8.0"], 10000);
  });
  await t.step("pinned kaifa-no forces the Kaifa table on a tagged body", () => {
    equal(regs(interpret(body, ctx("kaifa-no")))["1-0:31.7.0"], 1.416);
  });
  await t.step("unknown manufacturer: the raw number, its scale unknown, no named value", () => {
    const i = interpret(body, ctx("auto", "XYZ12345"));
    equal(regs(i)["1-0:31.7.0"], 1416);
    equal(units(i)["1-0:31.7.0"], "A");
    const current = i.registers.find((r) => r.obis === "1-0:31.7.0")!;
    deepEqual(current.scale, {
      from: "unknown",
      why: "the telegram sends no scaler and no scaler table is known for manufacturer XYZ",
    });
    const reading = buildReading(i, { systemTitle: null, frameCounter: null });
    deepEqual(reading.values, {});
    deepEqual(reading.obis["1-0:31.7.0"], { value: 1416, unit: "A", scale: "unknown" });
    deepEqual(reading.withheld?.[0]?.keys, [
      "current_l1_a",
      "voltage_l1_v",
      "energy_import_wh",
      "power_factor",
    ]);
  });
  await t.step("a table that has no scaler for a quantity leaves it unknown", () => {
    const i = interpret(struct(obis("1-0:14.7.0"), u16(500), ...pairs), ctx("auto", "LGZabcde"));
    const frequency = i.registers.find((r) => r.obis === "1-0:14.7.0")!;
    equal(frequency.scale?.from, "unknown");
    match(
      (frequency.scale as { why: string }).why,
      /scaler table "landis-gyr" \(manufacturer LGZ\) gives none for frequency/,
    );
    equal(regs(i)["1-0:31.7.0"], 14.16, "the rest as the table says");
  });
  await t.step("a scaler in the telegram beats the table", () => {
    const i = interpret(struct(obis("1-0:31.7.0"), u32(1416), su(-2, 33)), ctx("auto", "KFMxxxxx"));
    equal(regs(i)["1-0:31.7.0"], 14.16);
  });
});

Deno.test("interpret() recognises Sagemcom XT211 attribute descriptors (EG.D)", async (t) => {
  const descriptorStruct = (cls: number, code: string, attr: number) =>
    struct(u16(cls), obis(code), int("integer", attr));
  const descriptorOctets = (cls: number, code: string, attr: number) =>
    octets(
      cls.toString(16).padStart(4, "0") + toHex(parseObis(code)) +
        attr.toString(16).padStart(2, "0"),
    );
  for (
    const [form, d] of [["structure", descriptorStruct], ["raw octets", descriptorOctets]] as const
  ) {
    await t.step(`descriptor as ${form}`, () => {
      const body = struct(
        enumOf(1),
        array(
          struct(d(1, "0-0:96.1.1", 2), ascii("5100005149")),
          struct(d(70, "0-0:96.3.10", 3), enumOf(1)), // disconnect control state: not a value
          struct(d(3, "1-0:1.7.0", 2), u32(1956)),
          struct(d(3, "1-0:1.8.0", 2), u32(4913794)),
          struct(d(3, "1-0:1.8.0", 3), su(0, 30)),
          struct(d(3, "1-0:32.7.0", 2), u16(2301)),
          struct(d(3, "1-0:32.7.0", 3), su(-1, 35)),
        ),
      );
      const i = interpret(body, ctx());
      equal(i.layout, "obis-tagged");
      deepEqual(regs(i), {
        "0-0:96.1.1": "5100005149",
        "1-0:1.7.0": 1956,
        "1-0:1.8.0": 4913794,
        "1-0:32.7.0": 230.1,
      });
      deepEqual(units(i)["1-0:32.7.0"], "V");
      equal(i.meterId, "5100005149");
    });
  }
});

Deno.test("interpret() reads a push object list that leaves itself out", () => {
  const entry = (cls: number, code: string, attr: number) =>
    struct(u16(cls), obis(code), int("integer", attr), u16(0));
  const i = interpret(
    struct(
      array(
        entry(1, "0-0:96.1.0", 2),
        entry(3, "1-0:1.8.0", 2),
        entry(3, "1-0:1.8.0", 3),
        entry(8, "0-0:1.0.0", 2),
      ),
      ascii("12345678"),
      u32(987654),
      su(3, 30), // kWh-ish: scaler +3 on Wh
      octets(DT_LOCAL),
    ),
    ctx(),
  );
  equal(i.layout, "push-object-list");
  deepEqual(regs(i), {
    "0-0:96.1.0": "12345678",
    "1-0:1.8.0": 987654000,
    "0-0:1.0.0": "2024-05-07T21:11:20",
  });
  equal(i.time, "2024-05-07T21:11:20");
  equal(i.meterId, "12345678");
});

Deno.test("interpret() reads every positional layout", async (t) => {
  await t.step("Kärnten structure(12) (amsreader #787 plaintext)", () => {
    const body = decodeDataExact(fromHex(
      "020c09060006190900ff090d313132313337383338313139390904150b14000905" +
        "07e805070206" + "00db4500" + "0600066be5" + "06001636f8" + "06002300b0" +
        "0600000000" + "060000000a" + "0900" + "0900",
    ));
    const i = interpret(body, ctx());
    equal(i.layout, "kaernten");
    equal(i.time, "2024-05-07T21:11:20");
    equal(i.meterId, "1121378381199");
    deepEqual(regs(i), {
      "0-0:96.1.0": "1121378381199",
      "1-0:1.8.0": 14370048,
      "1-0:2.8.0": 420837,
      "1-0:3.8.0": 1455864,
      "1-0:4.8.0": 2293936,
      "1-0:1.7.0": 0,
      "1-0:2.7.0": 10,
      "0-0:96.13.0": "",
      "0-0:96.13.1": "",
      "0-0:1.0.0": "2024-05-07T21:11:20",
    });
  });
  const kaernten10 = struct(
    obis("0-6:25.9.0"),
    ascii("1121378381199"),
    octets("150b1400"),
    octets("07e8050702"),
    u32(1),
    u32(2),
    u32(3),
    u32(4),
    u32(5),
    u32(6),
  );
  await t.step("Kärnten structure(10) without customer information", () => {
    const i = interpret(kaernten10, ctx("kaernten"));
    equal(i.layout, "kaernten-no-info");
    equal(regs(i)["1-0:2.7.0"], 6);
  });
  const wiener = [u32(9099), u32(7601), u32(8090), u32(7397), u32(1), u32(2), u32(3), u32(4)];
  await t.step("Wiener Netze IM350 structure(10)", () => {
    const i = interpret(struct(ascii("1SIE0012345678"), octets(DT_LOCAL), ...wiener), ctx());
    equal(i.layout, "wiener-netze-im350");
    equal(i.meterId, "1SIE0012345678");
    equal(i.time, "2024-05-07T21:11:20");
    equal(regs(i)["1-0:4.7.0"], 4);
    equal(units(i)["1-0:3.8.0"], "varh");
  });
  await t.step("Wiener Netze with the date-time type instead of an octet string", () => {
    const dt: AxdrValue = { type: "date-time", value: parseDateTime(fromHex(DT_SUMMER)) };
    const i = interpret(struct(dt, ...wiener), ctx("wiener-netze"));
    equal(i.time, "2024-05-07T21:11:20+02:00");
  });
  const burgenland = [
    u16(236),
    u16(237),
    u16(236),
    u16(0),
    u16(4),
    u16(26),
    u32(29),
    u32(0),
    u32(31358606),
    u32(7619),
  ];
  await t.step("Burgenland structure(11) without angles", () => {
    const i = interpret(struct(...burgenland, ascii("30137181")), ctx());
    equal(i.layout, "burgenland-no-angles");
    equal(regs(i)["1-0:51.7.0"], 0.04);
    equal(i.meterId, "30137181");
    equal(i.time, "2024-05-07T00:00:00", "no time in the body: the header's");
  });
  const kaifaHead = [
    ascii("KFM_001"),
    ascii("6970631401753985"),
    ascii("MA105H2E"),
    u32(948),
    u32(0),
    u32(0),
    u32(64),
  ];
  await t.step("Kaifa list 2, one phase", () => {
    const i = interpret(struct(...kaifaHead, u32(1416), u32(2385)), ctx());
    equal(i.layout, "kaifa-no-list2-1p");
    deepEqual([regs(i)["1-0:31.7.0"], regs(i)["1-0:32.7.0"]], [1.416, 238.5]);
    equal(regs(i)["0-0:96.1.7"], "MA105H2E");
  });
  const energies = [octets(DT_LOCAL), u32(1), u32(2), u32(3), u32(4)];
  await t.step("Kaifa list 3, one phase", () => {
    const i = interpret(struct(...kaifaHead, u32(1416), u32(2385), ...energies), ctx());
    equal(i.layout, "kaifa-no-list3-1p");
    equal(i.time, "2024-05-07T21:11:20");
    equal(regs(i)["1-0:4.8.0"], 4);
  });
  await t.step("Kaifa list 3, three phases", () => {
    const phases = [u32(1), u32(2), u32(3), u32(2300), u32(2310), u32(2320)];
    const i = interpret(struct(...kaifaHead, ...phases, ...energies), ctx());
    equal(i.layout, "kaifa-no-list3-3p");
    equal(regs(i)["1-0:72.7.0"], 232);
  });
  await t.step("Kaifa list 1: auto-detected without a system title, or from Kaifa", () => {
    const list1 = struct(u32(601));
    for (const c of [ctx(), ctx("auto", "KFMabcde"), ctx("kaifa-no")]) {
      const i = interpret(list1, c);
      equal(i.layout, "kaifa-no-list1");
      deepEqual(regs(i), { "1-0:1.7.0": 601 });
      deepEqual(units(i), { "1-0:1.7.0": "W" });
    }
    throws(
      () => interpret(list1, ctx("auto", "LGZabcde")),
      /^ParseError: No known layout for a structure of 1 element \(types: double-long-unsigned\)/,
    );
    throws(() => interpret(list1, ctx("obis-tagged")), ParseError, "pinned to another type");
  });
});

Deno.test("interpret() takes the time from the clock, then the body, then the header", async (t) => {
  const clock = (dt: string) => struct(obis("0-0:1.0.0"), octets(dt));
  const value = struct(obis("1-0:1.8.0"), u32(1), su(0, 30));
  await t.step("clock register", () => {
    equal(
      interpret(struct(octets(DT_LOCAL), clock(DT_SUMMER), value), ctx()).time,
      "2024-05-07T21:11:20+02:00",
    );
  });
  await t.step("channel 1 clock register (Kamstrup)", () => {
    const i = interpret(struct(struct(obis("0-1:1.0.0"), octets(DT_LOCAL)), value), ctx());
    equal(i.time, "2024-05-07T21:11:20");
  });
  await t.step("an unspecified clock falls back to the leading date-time", () => {
    equal(
      interpret(struct(octets(DT_LOCAL), clock(DT_UNSPECIFIED), value), ctx()).time,
      "2024-05-07T21:11:20",
    );
  });
  await t.step("then to the header", () => {
    equal(interpret(struct(clock(DT_UNSPECIFIED), value), ctx()).time, "2024-05-07T00:00:00");
  });
  await t.step("and to null without a header", () => {
    const i = interpret(struct(value), { headerTime: null, systemTitle: null, meterType: "auto" });
    equal(i.time, null);
  });
});

Deno.test("interpret() picks the meter id by precedence", async (t) => {
  const value = struct(obis("1-0:1.8.0"), u32(1), su(0, 30));
  const id = (code: string, text: string) => struct(obis(code), ascii(text));
  const cases: readonly [string, AxdrValue, string | null][] = [
    [
      "96.1.0 first",
      struct(id("0-0:42.0.0", "LDN"), id("0-0:96.1.1", "B"), id("0-0:96.1.0", "A"), value),
      "A",
    ],
    ["then 96.1.1", struct(id("0-0:42.0.0", "LDN"), id("0-0:96.1.1", "B"), value), "B"],
    ["then a trailing string", struct(id("0-0:42.0.0", "LDN"), value, ascii("TRAIL")), "TRAIL"],
    ["then 42.0.0", struct(id("0-0:42.0.0", "LDN"), value), "LDN"],
    [
      "an empty 96.1.0 does not count",
      struct(id("0-0:96.1.0", ""), id("0-0:96.1.1", "B"), value),
      "B",
    ],
    ["binary ids as hex", struct(struct(obis("0-0:96.1.0"), octets("00ff10")), value), "00ff10"],
    ["none", struct(value), null],
  ];
  for (const [what, body, want] of cases) {
    await t.step(what, () => equal(interpret(body, ctx()).meterId, want));
  }
});

Deno.test("interpret() refuses structures that almost match a layout", async (t) => {
  const wiener =
    () => [octets(DT_LOCAL), u32(1), u32(2), u32(3), u32(4), u32(5), u32(6), u32(7), u32(8)];
  const burgenland = () => [
    u16(236),
    u16(237),
    u16(236),
    u16(0),
    u16(4),
    u16(26),
    u32(29),
    u32(0),
    u32(31358606),
    u32(7619),
    u16(400),
    u16(53),
    u16(295),
    ascii("30137181"),
  ];
  const kaifa = () => [
    ascii("KFM_001"),
    ascii("6970631401753985"),
    ascii("MA304H3E"),
    ...Array.from({ length: 10 }, (_, k) => u32(k)),
  ];
  const cases: readonly [string, AxdrValue[], MeterType, RegExp][] = [
    [
      "Wiener Netze with 8 elements",
      wiener().slice(0, 8),
      "wiener-netze",
      /wiener-netze needs a structure\(9\)/,
    ],
    [
      "Wiener Netze with a string for +R",
      wiener().map((x, k) => (k === 3 ? visible("x") : x)),
      "wiener-netze",
      /element 3 \(\+R\) is a visible-string, expected an integer/,
    ],
    [
      "Wiener Netze with a bad date-time",
      [octets("0000000000000000000000ff"), ...wiener().slice(1)],
      "wiener-netze",
      /element 0 \(time\) is an octet-string of 12 bytes, expected a date-time/,
    ],
    [
      "Burgenland with a numeric meter id",
      burgenland().map((x, k) => (k === 13 ? u32(1) : x)),
      "burgenland",
      /element 13 \(meter id\) is a double-long-unsigned, expected a string/,
    ],
    [
      "Burgenland with an enum voltage",
      burgenland().map((x, k) => (k === 0 ? enumOf(1) : x)),
      "burgenland",
      /element 0 \(U1\) is an enum/,
    ],
    [
      "Kaifa with a foreign list id",
      kaifa().map((x, k) => (k === 0 ? ascii("ABC_001") : x)),
      "kaifa-no",
      /expected a list version matching \/\^KFM_\//,
    ],
    [
      "Kärnten with another push setup",
      [obis("0-6:25.9.1"), ...Array.from({ length: 9 }, () => u32(0))],
      "kaernten",
      /expected the OBIS code 0-6:25\.9\.0/,
    ],
  ];
  for (const [what, items, meterType, message] of cases) {
    await t.step(`${what}: refused when pinned`, () => {
      throws(() => interpret(struct(...items), ctx(meterType)), (e: unknown) => {
        assert(e instanceof ParseError);
        match(
          e.message,
          new RegExp(
            `^Meter type "${meterType}" does not fit a structure of ${items.length} elements`,
          ),
        );
        match(e.message, message);
        return true;
      });
    });
    await t.step(`${what}: refused by auto-detection`, () => {
      throws(
        () => interpret(struct(...items), ctx()),
        /^ParseError: No known layout for a structure/,
      );
    });
  }
});

Deno.test("interpret() refuses OBIS-tagged bodies with stray elements", async (t) => {
  const cases: readonly [string, AxdrValue, RegExp][] = [
    [
      "an enum between pairs",
      struct(obis("1-0:1.8.0"), u32(1), enumOf(3), obis("1-0:2.8.0"), u32(2)),
      /element 2 is an enum, not an OBIS code or an object/,
    ],
    [
      "a list id and nothing else",
      struct(visible("AIDON_V0001"), ascii("X")),
      /no OBIS code found/,
    ],
    [
      "an object with a bad third member",
      array(struct(obis("1-0:1.8.0"), u32(1), u32(2))),
      /element 2 is a double-long-unsigned, not an OBIS code/,
    ],
    ["a number alone", u32(5), /obis-tagged needs a structure or an array/],
  ];
  for (const [what, body, reason] of cases) {
    await t.step(what, () => {
      throws(() => interpret(body, ctx("obis-tagged")), (e: unknown) => {
        assert(e instanceof ParseError && e.layer === "cosem");
        match(e.message, /^Meter type "obis-tagged" does not fit /);
        match(e.message, reason);
        return true;
      });
    });
  }
});

Deno.test("interpret() refuses push object lists that do not add up", async (t) => {
  const entry = (code: string) => struct(u16(3), obis(code), int("integer", 2), u16(0));
  const cases: readonly [string, AxdrValue, RegExp][] = [
    [
      "more values than entries",
      struct(array(entry("1-0:1.8.0")), u32(1), u32(2), u32(3)),
      /names 1 objects but the body has 3 values/,
    ],
    [
      "an entry that is not a descriptor",
      struct(array(struct(u16(3), obis("1-0:1.8.0"))), u32(1)),
      /entry 0 is not \{class id, OBIS, attribute, data index\}/,
    ],
    [
      "element 0 not an array",
      struct(u32(1), u32(2)),
      /element 0 is a double-long-unsigned, not an array/,
    ],
    [
      "an empty array",
      array(),
      /push-object-list needs a structure whose element 0 is the push object list/,
    ],
    [
      "only the push setup itself",
      struct(array(struct(u16(40), obis("0-0:25.9.0"), int("integer", 2), u16(0)))),
      /names no values/,
    ],
  ];
  for (const [what, body, reason] of cases) {
    await t.step(what, () => {
      throws(() => interpret(body, ctx("push-object-list")), (e: unknown) => {
        assert(e instanceof ParseError);
        match(e.message, /^Meter type "push-object-list" does not fit /);
        match(e.message, reason);
        return true;
      });
    });
  }
});

Deno.test("interpret() names what it saw when no layout fits", async (t) => {
  const cases: readonly [AxdrValue, string][] = [
    [
      struct(octets("0100"), u32(1), u32(2), u16(3), enumOf(4), NULL, visible("x")),
      "a structure of 7 elements (types: octet-string, double-long-unsigned, double-long-unsigned, long-unsigned, enum, null, visible-string)",
    ],
    [array(), "an empty array"],
    [u32(7), "a double-long-unsigned"],
    [
      struct(...Array.from({ length: 10 }, () => NULL)),
      "a structure of 10 elements (types: null, null, null, null, null, null, null, null, …)",
    ],
  ];
  for (const [body, seen] of cases) {
    await t.step(seen, () => {
      throws(() => interpret(body, ctx()), (e: unknown) => {
        assert(e instanceof ParseError && e.layer === "cosem" && e.offset === 0);
        equal(e.message, `No known layout for ${seen}: pin one with --meter-type (cosem, byte 0)`);
        return true;
      });
    });
  }
});

Deno.test("interpret() says a DSMR meter type cannot read A-XDR", () => {
  throws(
    () => interpret(struct(obis("1-0:1.8.0"), u32(1)), ctx("dsmr")),
    /^ParseError: Meter type "dsmr" does not fit a structure of 2 elements .*: a DSMR meter sends text/,
  );
});

Deno.test("interpret() throws nothing but ParseError on odd bodies", () => {
  // A small deterministic generator of A-XDR trees: nulls, empty and nested containers,
  // OBIS-sized and date-time-sized octet strings, every scalar type.
  let seed = 12345;
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const leaf = (): AxdrValue => {
    switch (next(10)) {
      case 0:
        return NULL;
      case 1:
        return octets("0100010800ff");
      case 2:
        return octets(DT_LOCAL);
      case 3:
        return enumOf(next(256));
      case 4:
        return int("integer", next(256) - 128);
      case 5:
        return u16(next(65536));
      case 6:
        return visible("KFM_001");
      case 7:
        return { type: "long64", value: -5n };
      case 8:
        return { type: "boolean", value: true };
      default:
        return u32(next(1000));
    }
  };
  const tree = (depth: number): AxdrValue => {
    if (depth > 3 || next(3) === 0) return leaf();
    const items = Array.from({ length: next(16) }, () => tree(depth + 1));
    return next(2) ? struct(...items) : array(...items);
  };
  for (let n = 0; n < 1500; n++) {
    const body = tree(0);
    for (const meterType of METER_TYPES) {
      try {
        const i = interpret(body, ctx(meterType));
        buildReading(i, { systemTitle: null, frameCounter: null });
      } catch (e) {
        if (!(e instanceof ParseError)) throw e;
      }
    }
  }
});

Deno.test("parseMeterType() accepts every meter type and its spellings", () => {
  for (const t of METER_TYPES) equal(parseMeterType(t), t);
  equal(parseMeterType("NOE_EVN"), "noe_evn");
  equal(parseMeterType("noe-evn"), "noe_evn");
  equal(parseMeterType(" Wiener_Netze "), "wiener-netze");
  equal(parseMeterType("Burgenland"), "burgenland");
  equal(parseMeterType("pushobjectlist"), "push-object-list");
});

Deno.test("parseMeterType() refuses an unknown name, listing the accepted ones", () => {
  throws(() => parseMeterType("landis"), (e: unknown) => {
    assert(e instanceof RangeError);
    equal(e.message, `Unknown meter type "landis": accepted are ${METER_TYPES.join(", ")}`);
    return true;
  });
  throws(() => parseMeterType(""), RangeError);
});

Deno.test("interpret() never reads another one-element body as Kaifa's list 1", async (t) => {
  const cases: readonly [string, AxdrValue][] = [
    ["a long-unsigned", struct(u16(601))],
    ["a double-long (signed)", struct({ type: "double-long", value: 601 })],
    ["a long64-unsigned", struct({ type: "long64-unsigned", value: 601n })],
    ["an octet string", struct(ascii("601"))],
    ["an array of one double-long-unsigned", array(u32(601))],
    ["a structure of two", struct(u32(601), u32(0))],
  ];
  for (const [what, body] of cases) {
    await t.step(what, () => {
      for (const meterType of ["auto", "kaifa-no"] as const) {
        let power: unknown;
        try {
          power = regs(interpret(body, ctx(meterType)))["1-0:1.7.0"];
        } catch (e) {
          assert(e instanceof ParseError, String(e));
        }
        equal(power, undefined, `${meterType}: must not decode as power`);
      }
    });
  }
  await t.step("the pinned reason names the type it wanted", () => {
    throws(
      () => interpret(struct(u16(601)), ctx("kaifa-no")),
      /kaifa-no-list1: element 0 \(\+P\) is a long-unsigned, expected a double-long-unsigned/,
    );
  });
});

// The Swiss E450 capture's own push object list and values, rearranged into the shape in
// which list and values come as two parts of the body (constructed: no public capture of
// that shape was found).
async function swissE450(): Promise<{ list: AxdrValue; values: AxdrValue[] }> {
  const f = loadFixture("switzerland_landis-gyr-e450_2");
  const { body } = parseNotification(await plaintextOf("switzerland_landis-gyr-e450_2", f));
  assert(body.type === "structure");
  return { list: body.items[0]!, values: body.items.slice(1) };
}

Deno.test("interpret() applies the Landis+Gyr rule to push object lists in every shape", async (t) => {
  const { list, values } = await swissE450();
  const expected = loadFixture("switzerland_landis-gyr-e450_2").expected;
  const shapes: readonly [string, AxdrValue, RegExp][] = [
    ["list as element 0 of the values (the capture)", struct(list, ...values), /element 0/],
    [
      "list and values in two parts",
      struct(list, struct(...values)),
      /two parts: 16 values in a structure of 16/,
    ],
    [
      "list and values in two parts, the push setup's slot included",
      struct(list, array(NULL, ...values)),
      /two parts: 17 values in an array of 17/,
    ],
  ];
  for (const [what, body, note] of shapes) {
    await t.step(what, () => {
      const i = interpret(body, ctx());
      equal(i.layout, "push-object-list");
      assert(i.notes?.some((n) => note.test(n)), JSON.stringify(i.notes));
      assert(i.notes?.some((n) => /scaler table "landis-gyr" \(manufacturer LGZ\)/.test(n)));
      const reading = buildReading(i, { systemTitle: null, frameCounter: null });
      assertExpected(reading, expected);
      equal(reading.values.current_l1_a, 0.09, "0.01 A, not 9 A");
      const current = i.registers.find((r) => r.obis === "1-0:31.7.0")!;
      deepEqual(current.scale, { from: "rule", rule: "landis-gyr" });
    });
  }
  await t.step("the same from an LGZ system title, without the logical device name", () => {
    const listItems = (list as { items: readonly AxdrValue[] }).items;
    const ldn = listItems.findIndex((e) =>
      e.type === "structure" &&
      toHex((e.items[1] as { bytes: Uint8Array }).bytes) === "00002a0000ff"
    );
    equal(ldn, 2);
    const withoutLdn = array(...listItems.filter((_, k) => k !== ldn));
    const valuesWithoutLdn = values.filter((_, k) => k !== ldn - 1);
    const body = struct(withoutLdn, struct(...valuesWithoutLdn));
    const reading = buildReading(interpret(body, ctx("auto", "LGZgs|~\xe0")), {
      systemTitle: null,
      frameCounter: null,
    });
    equal(reading.values.current_l1_a, 0.09);
    // Nothing names the manufacturer: silent, not 100 times too large.
    const silent = buildReading(interpret(body, ctx()), { systemTitle: null, frameCounter: null });
    equal(silent.values.current_l1_a, undefined);
    equal(silent.values.energy_import_wh, undefined);
    deepEqual(silent.obis["1-0:31.7.0"], { value: 9, unit: "A", scale: "unknown" });
  });
  await t.step("a two-part body whose values do not add up is refused", () => {
    throws(
      () => interpret(struct(list, struct(...values.slice(2))), ctx("push-object-list")),
      /the push object list names 17 objects but the values' structure has 14/,
    );
  });
});

Deno.test("interpret() takes Kamstrup's meter id from 1-1:0.0.5 when there is no 96.1.0", async (t) => {
  const kamstrup = [
    visible("Kamstrup_V0001"),
    obis("1-1:0.0.5"),
    visible("5706567326590407"),
    obis("1-1:96.1.1"),
    visible("6841138BN245101090"),
    obis("1-1:1.7.0"),
    u32(826),
  ];
  await t.step("the GS1 number", () => {
    const i = interpret(struct(...kamstrup), ctx());
    equal(i.meterId, "5706567326590407");
    equal(i.model, "6841138BN245101090");
  });
  await t.step("96.1.0 still first", () => {
    const i = interpret(struct(...kamstrup, obis("0-0:96.1.0"), visible("A")), ctx());
    equal(i.meterId, "A");
  });
  await t.step("ahead of 96.1.1", () => {
    const i = interpret(struct(...kamstrup, obis("0-0:96.1.1"), visible("B")), ctx());
    equal(i.meterId, "5706567326590407");
  });
});

Deno.test("interpret() tells the model where the layout or the meter says", async (t) => {
  await t.step("the Burgenland layout: E450", async () => {
    equal((await readFixture("burgenland_landis-gyr-e450_1", "auto")).model, "E450");
  });
  await t.step("a Kaifa list's meter type", async () => {
    equal((await readFixture("norway_kaifa-ma304h3e_1", "auto")).model, "MA304H3E");
  });
  await t.step("Aidon's meter type register", async () => {
    equal((await readFixture("norway_aidon_1", "auto")).model, "6515");
  });
  await t.step("nothing said, nothing guessed", async () => {
    equal((await readFixture("netznoe_kaifa-ma309_1", "auto")).model, null);
    equal((await readFixture("wienernetze_landis-gyr-e450_1", "auto")).model, null);
  });
});

Deno.test("interpret() says why each layout did not fit, also when none does", () => {
  throws(() => interpret(struct(u16(1), u16(2), u16(3)), ctx()), (e: unknown) => {
    assert(e instanceof LayoutError && e instanceof ParseError);
    deepEqual(e.reasons, [
      "push-object-list: element 0 is a long-unsigned, not an array of {class id, OBIS, attribute, data index}",
      "obis-tagged: element 0 is a long-unsigned, not an OBIS code or an object",
      POSITIONAL_LAYOUTS.map((l) => `${l.name} needs a structure(${l.match.count})`).join("; "),
    ]);
    return true;
  });
  const i = interpret(struct(u32(601)), ctx());
  equal(i.tried?.length, 2, "push-object-list and obis-tagged came first");
});

import { deepEqual, equal, throws } from "node:assert/strict";
import { ParseError } from "../lib/errors.ts";
import { concatBytes, fromHex } from "../lib/bytes.ts";
import { configurationField, encodeOmsHeader, parseOmsHeader } from "../lib/oms/header.ts";
import { walkRecords } from "../lib/oms/records.ts";
import { interpretOms } from "../lib/oms/interpret.ts";
import { buildReading } from "../lib/cosem/build.ts";
import type { Register } from "../lib/cosem/reading.ts";
import { fixture } from "./fixtures.ts";

function amis(n: 1 | 2 | 3) {
  const f = fixture(`netzooe_siemens-amis_${n}`);
  const header = parseOmsHeader(f.bytes.subarray(7, f.bytes.length - 2));
  const { records } = walkRecords(fromHex(String(f.raw.plaintext_hex)));
  return { f, header, records };
}

/** A register without what only the scale check and `--explain` read. */
const brief = ({ obis, value, unit, named }: Register) =>
  named === undefined ? { obis, value, unit } : { obis, value, unit, named };

/** A clear-text header with the given address fields, then `records`. */
function telegram(fields: { manufacturer: string; id: string; medium: number }, records: string) {
  const header = parseOmsHeader(
    concatBytes([
      encodeOmsHeader({
        ...fields,
        version: 1,
        access: 1,
        status: 0,
        configuration: configurationField(0, 0),
      }),
      fromHex(records),
    ]),
  );
  return { header, records: walkRecords(header.data).records };
}

Deno.test("interpretOms() gives the AMIS registers of the specification's table 2", () => {
  // Each one's scale is the telegram's own: the VIF says the unit and the power of ten.
  const { header, records } = amis(1);
  const i = interpretOms(header, records);
  deepEqual(
    { layout: i.layout, time: i.time, meterId: i.meterId, m: i.manufacturer, model: i.model },
    {
      layout: "amis",
      time: "2014-07-01T08:12:31",
      meterId: null,
      m: "Siemens",
      model: "AMIS TD-351x",
    },
  );
  deepEqual(i.registers.map(brief), [
    { obis: "1-0:1.8.0", value: 684544, unit: "Wh" },
    { obis: "1-0:2.8.0", value: 129412, unit: "Wh" },
    { obis: "1-0:3.8.1", value: 357918, unit: "varh", named: "reactive_energy_import_varh" },
    { obis: "1-0:4.8.1", value: 81446, unit: "varh", named: "reactive_energy_export_varh" },
    { obis: "1-0:1.7.0", value: 0, unit: "W" },
    { obis: "1-0:2.7.0", value: 117, unit: "W" },
    { obis: "1-0:3.7.0", value: 0, unit: "var" },
    { obis: "1-0:4.7.0", value: 0, unit: "var" },
    { obis: "1-0:1.128.0", value: 20, unit: "Wh" },
  ]);
  for (const r of i.registers) deepEqual([r.scale, r.resolution], [{ from: "telegram" }, 1]);
});

/** Capture 1's plaintext with bytes replaced at the given offsets (record data only). */
function amisPlain(patch: Record<number, number[]>): Uint8Array {
  const p = fromHex(String(fixture("netzooe_siemens-amis_1").raw.plaintext_hex));
  for (const [at, bytes] of Object.entries(patch)) p.set(bytes, Number(at));
  return p;
}

/** Offsets of the data of capture 1's records (spec table 2, in its order). */
const DATA_AT = { import: 12, export: 19, powerIn: 44, powerOut: 51, billing: 74 };

Deno.test("interpretOms() reads AMIS counters unsigned and the billing register signed", () => {
  const { header } = amis(1);
  // +A = 0xFFFFFFF0 (above 2^31), the billing register = -5 Wh.
  const plain = amisPlain({
    [DATA_AT.import]: [0xf0, 0xff, 0xff, 0xff],
    [DATA_AT.billing]: [0xfb, 0xff, 0xff, 0xff],
  });
  const registers = interpretOms(header, walkRecords(plain).records).registers;
  const value = (obis: string) => registers.find((r) => r.obis === obis)?.value;
  deepEqual([value("1-0:1.8.0"), value("1-0:1.128.0")], [4294967280, -5]);
});

Deno.test("power_w is import − export, signed, however large the unsigned powers", () => {
  const { header } = amis(1);
  const plain = amisPlain({
    [DATA_AT.powerIn]: [0, 0, 0, 0],
    [DATA_AT.powerOut]: [0xe8, 0x03, 0, 0],
  });
  const r = buildReading(interpretOms(header, walkRecords(plain).records), {
    systemTitle: null,
    frameCounter: 1,
  });
  // 0 W in, 1000 W out: -1000 W, not 4294966296 W (an unsigned wrap).
  deepEqual([r.values.power_import_w, r.values.power_export_w, r.values.power_w], [0, 1000, -1000]);
});

Deno.test("interpretOms() wants the whole AMIS telegram: garbage in any block is refused", async (t) => {
  const { header } = amis(1);
  const base = amisPlain({});
  const refuse = (plain: Uint8Array, message: RegExp) =>
    throws(
      () => interpretOms(header, walkRecords(plain).records),
      (e) => e instanceof ParseError && e.layer === "oms" && message.test(e.message),
    );
  await t.step("a record the layout does not have", () => {
    // The +A record's VIF 03 (Wh) becomes 13 (volume): the walk reads it, the profile not.
    refuse(
      amisPlain({ 11: [0x13] }),
      /^Record not of the amis telegram \(record 04 13 at byte 10\): damaged frame \(its checksum cannot catch every damage\), or a meter firmware that sends a new record/,
    );
  });
  await t.step("a register missing", () => {
    // The -P record (7 bytes at 48) replaced by fillers.
    const p = base.slice();
    p.fill(0x2f, 48, 55);
    refuse(p, /^amis telegram without 1-0:2\.7\.0: damaged frame/);
  });
  await t.step("a register twice", () => {
    // The billing register's head (04 83 FF 04) turned into a second +A (04 03 2F 2F).
    refuse(amisPlain({ 71: [0x03, 0x2f, 0x2f] }), /^Second 1-0:1\.8\.0 in the amis telegram/);
  });
  await t.step("the time missing", () => {
    const p = base.slice();
    p.fill(0x2f, 2, 10);
    refuse(p, /^amis telegram without the time: damaged frame/);
  });
  await t.step("a storage number (a billing period)", () => {
    refuse(
      amisPlain({ 10: [0x44] }),
      /^Record not of the amis telegram \(record 44 03 at byte 10\)/,
    );
  });
});

Deno.test("interpretOms() refuses every single-bit damage of an AMIS ciphertext that the checksum would miss", async () => {
  // What a frame damaged in two bytes that cancel out in the M-Bus sum decrypts to: a
  // block of garbage and a flipped bit in the next. None of it may come out as values.
  const { OmsSecurity } = await import("../lib/oms/security.ts");
  let refused = 0;
  let tried = 0;
  for (const n of [1, 2, 3] as const) {
    const { f, header } = amis(n);
    const security = await OmsSecurity.create(f.key!);
    for (let at = 0; at < header.data.length; at++) {
      for (let bit = 0; bit < 8; bit++) {
        const data = header.data.slice();
        data[at]! ^= 1 << bit;
        tried++;
        try {
          const plain = await security.decrypt({ ...header, data });
          interpretOms(header, walkRecords(plain).records);
        } catch {
          refused++;
        }
      }
    }
  }
  equal(refused, tried);
});

Deno.test("interpretOms() keeps the fixtures' named values through buildReading()", async (t) => {
  for (const n of [1, 2, 3] as const) {
    await t.step(`netzooe_siemens-amis_${n}`, () => {
      const { f, header, records } = amis(n);
      const r = buildReading(interpretOms(header, records), { systemTitle: null, frameCounter: 0 });
      for (const [key, want] of Object.entries(f.expected)) {
        if (key === "timestamp") equal(r.time, want);
        else equal(r.values[key as keyof typeof r.values], want, key);
      }
      equal(
        r.obis["1-0:1.128.0"]?.value,
        (f.raw.expected_extra as Record<string, number>)
          .obis_1_128_0_inkasso_wh,
      );
      equal(
        r.values.power_w,
        Number(f.expected.power_import_w) - Number(f.expected.power_export_w),
      );
    });
  }
});

Deno.test("interpretOms() leaves out what no rule places (another OMS meter)", () => {
  const { header, records } = telegram(
    { manufacturer: "KAM", id: "12345678", medium: 0x02 },
    "0403" + "01000000" + // +A: kept
      "4403" + "02000000" + // storage 1 (a billing period): left out
      "1403" + "03000000" + // maximum: left out
      "0413" + "04000000" + // volume: left out
      "04a320" + "05000000" + // energy per second (unknown qualifier): left out
      "0483ff05" + "06000000", // a manufacturer-specific VIFE: left out
  );
  deepEqual(interpretOms(header, records).registers.map((r) => r.obis), ["1-0:1.8.0"]);
});

Deno.test("interpretOms() places other OMS electricity records by the OBIS scheme, signed", () => {
  const { header, records } = telegram(
    { manufacturer: "KAM", id: "12345678", medium: 0x02 },
    "8410" + "03" + "ffffffff" + "8420833c" + "02000000" + "04fb02" + "05000000" + "042b" +
      "10000000",
  );
  const i = interpretOms(header, records);
  deepEqual(i.registers.map(brief), [
    { obis: "1-0:1.8.1", value: -1, unit: "Wh" },
    { obis: "1-0:2.8.2", value: 2, unit: "Wh" },
    { obis: "1-0:3.8.0", value: 5000, unit: "varh" },
    { obis: "1-0:1.7.0", value: 16, unit: "W" },
  ]);
  deepEqual([i.layout, i.manufacturer, i.model, i.time, i.clock], ["oms", null, null, null, null]);
  // Pinned to amis, the same records are read with the AMIS rules, which want them all.
  throws(
    () => interpretOms(header, records, "amis"),
    /Record not of the amis telegram \(record 84 10 03 at byte 0\)/,
  );
});

Deno.test("interpretOms() takes the first valid time and no time flagged invalid", () => {
  const kam = { manufacturer: "KAM", id: "12345678", medium: 0x02 };
  const bad = telegram(kam, "066d5f8c48c1171b");
  const invalid = interpretOms(bad.header, bad.records);
  deepEqual([invalid.time, invalid.clock], [null, null]);
  const two = telegram(kam, "066d5f0c48c1171b" + "066d42222c502410");
  equal(interpretOms(two.header, two.records).time, "2014-07-01T08:12:31");
  // An AMIS telegram with its time flagged invalid still gives its values, without a time.
  const { header } = amis(1);
  const flagged = interpretOms(header, walkRecords(amisPlain({ 5: [0x8c] })).records);
  deepEqual([flagged.time, flagged.clock, flagged.registers.length], [null, null, 9]);
});

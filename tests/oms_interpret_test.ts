import { deepEqual, equal } from "node:assert/strict";
import { concatBytes, fromHex } from "../lib/bytes.ts";
import { configurationField, encodeOmsHeader, parseOmsHeader } from "../lib/oms/header.ts";
import { walkRecords } from "../lib/oms/records.ts";
import { interpretOms } from "../lib/oms/interpret.ts";
import { buildReading } from "../lib/cosem/build.ts";
import { fixture } from "./fixtures.ts";

function amis(n: 1 | 2 | 3) {
  const f = fixture(`netzooe_siemens-amis_${n}`);
  const header = parseOmsHeader(f.bytes.subarray(7, f.bytes.length - 2));
  const { records } = walkRecords(fromHex(String(f.raw.plaintext_hex)));
  return { f, header, records };
}

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
  deepEqual(i.registers, [
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
});

Deno.test("interpretOms() reads AMIS counters unsigned and the billing register signed", () => {
  const { header } = amis(1);
  // +A = 0xFFFFFFF0 (above 2^31), the billing register = -5 Wh.
  const { records } = walkRecords(fromHex("0403f0ffffff" + "0483ff04fbffffff"));
  const i = interpretOms(header, records);
  deepEqual(i.registers.map((r) => [r.obis, r.value]), [
    ["1-0:1.8.0", 4294967280],
    ["1-0:1.128.0", -5],
  ]);
});

Deno.test("power_w is import − export, signed, however large the unsigned powers", () => {
  const { header } = amis(1);
  const { records } = walkRecords(
    fromHex("042b" + "00000000" + "04ab3c" + "e8030000" + "066d5f0c48c1171b"),
  );
  const i = interpretOms(header, records);
  const r = buildReading(i, { systemTitle: null, frameCounter: 1 });
  // 0 W in, 1000 W out: -1000 W, not 4294966296 W (an unsigned wrap).
  deepEqual(r.values, { power_import_w: 0, power_export_w: 1000, power_w: -1000 });
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

Deno.test("interpretOms() leaves out what no rule places", () => {
  const { header } = amis(1);
  const { records } = walkRecords(
    fromHex(
      "0403" + "01000000" + // +A: kept
        "4403" + "02000000" + // storage 1 (a billing period): left out
        "1403" + "03000000" + // maximum: left out
        "0413" + "04000000" + // volume: left out
        "04a320" + "05000000" + // energy per second (unknown qualifier): left out
        "0483ff05" + "06000000", // another manufacturer-specific VIFE: left out
    ),
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
  deepEqual(i.registers, [
    { obis: "1-0:1.8.1", value: -1, unit: "Wh" },
    { obis: "1-0:2.8.2", value: 2, unit: "Wh" },
    { obis: "1-0:3.8.0", value: 5000, unit: "varh" },
    { obis: "1-0:1.7.0", value: 16, unit: "W" },
  ]);
  deepEqual([i.layout, i.manufacturer, i.model, i.time, i.clock], ["oms", null, null, null, null]);
  // Pinned to amis, the same header is read with the AMIS rules.
  equal(interpretOms(header, records, "amis").layout, "amis");
});

Deno.test("interpretOms() takes the first valid time and no time flagged invalid", () => {
  const { header } = amis(1);
  const invalid = interpretOms(header, walkRecords(fromHex("066d5f8c48c1171b")).records);
  deepEqual([invalid.time, invalid.clock], [null, null]);
  const two = interpretOms(
    header,
    walkRecords(fromHex("066d5f0c48c1171b" + "066d42222c502410")).records,
  );
  equal(two.time, "2014-07-01T08:12:31");
});

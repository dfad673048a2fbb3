import { deepEqual, equal, ok as assert } from "node:assert/strict";
import { buildReading, convertUnit } from "../lib/cosem/build.ts";
import type { Interpretation, Register } from "../lib/cosem/reading.ts";

const interpretation = (registers: Register[], extra: Partial<Interpretation> = {}) => ({
  layout: "obis-tagged",
  time: "2024-05-07T21:11:20+02:00",
  meterId: "1KFM0200234804",
  registers,
  ...extra,
});
const NO_META = { systemTitle: null, frameCounter: null };

Deno.test("buildReading() names the catalog's registers and keeps every register by OBIS", () => {
  const reading = buildReading(
    interpretation([
      { obis: "0-0:96.1.0", value: "1KFM0200234804", unit: null },
      { obis: "1-0:32.7.0", value: 229.2, unit: "V" },
      { obis: "1-0:31.7.0", value: 1.65, unit: "A" },
      { obis: "1-0:1.7.0", value: 714, unit: "W" },
      { obis: "1-0:2.7.0", value: 0, unit: "W" },
      { obis: "1-0:1.8.0", value: 1327456, unit: "Wh" },
      { obis: "1-0:13.7.0", value: 0.991, unit: null },
      { obis: "1-0:14.7.0", value: 50, unit: "Hz" },
      { obis: "1-0:81.7.4", value: 12, unit: "°" },
      { obis: "1-0:21.7.0", value: 300, unit: "W" }, // per phase: not a named value
    ]),
    {
      systemTitle: Uint8Array.from([0x4b, 0x46, 0x4d, 0x10, 0x20, 0x02, 0xac, 0xa5]),
      frameCounter: 42,
    },
  );
  deepEqual(reading, {
    time: "2024-05-07T21:11:20+02:00",
    meter_id: "1KFM0200234804",
    model: null,
    system_title: "4b464d102002aca5",
    frame_counter: 42,
    values: {
      energy_import_wh: 1327456,
      power_import_w: 714,
      power_export_w: 0,
      power_w: 714,
      voltage_l1_v: 229.2,
      current_l1_a: 1.65,
      power_factor: 0.991,
      frequency_hz: 50,
      angle_l1_deg: 12,
    },
    obis: {
      "0-0:96.1.0": { value: "1KFM0200234804", unit: null },
      "1-0:32.7.0": { value: 229.2, unit: "V" },
      "1-0:31.7.0": { value: 1.65, unit: "A" },
      "1-0:1.7.0": { value: 714, unit: "W" },
      "1-0:2.7.0": { value: 0, unit: "W" },
      "1-0:1.8.0": { value: 1327456, unit: "Wh" },
      "1-0:13.7.0": { value: 0.991, unit: null },
      "1-0:14.7.0": { value: 50, unit: "Hz" },
      "1-0:81.7.4": { value: 12, unit: "°" },
      "1-0:21.7.0": { value: 300, unit: "W" },
    },
  });
  deepEqual(Object.keys(reading.values), [
    "energy_import_wh",
    "power_import_w",
    "power_export_w",
    "power_w",
    "voltage_l1_v",
    "current_l1_a",
    "power_factor",
    "frequency_hz",
    "angle_l1_deg",
  ], "catalog order");
});

Deno.test("buildReading() converts k-units and mA, rounding to integers where exact", () => {
  const reading = buildReading(
    interpretation([
      { obis: "1-0:1.8.0", value: 6.695, unit: "kWh" },
      { obis: "1-0:2.8.0", value: 0.025, unit: "kWh" },
      { obis: "1-0:3.8.0", value: 0.818, unit: "kvarh" },
      { obis: "1-0:1.7.0", value: 1.234, unit: "kW" },
      { obis: "1-0:4.7.0", value: 0.007, unit: "kvar" },
      { obis: "1-0:31.7.0", value: 1416, unit: "mA" },
    ]),
    NO_META,
  );
  deepEqual(reading.values, {
    energy_import_wh: 6695,
    energy_export_wh: 25,
    reactive_energy_import_varh: 818,
    power_import_w: 1234,
    reactive_power_export_var: 7,
    current_l1_a: 1.416,
  });
  assert(Number.isInteger(reading.values.energy_import_wh));
  deepEqual(reading.obis["1-0:1.8.0"], { value: 6.695, unit: "kWh" }, "registers as sent");
});

Deno.test("buildReading() leaves out a register whose unit does not convert", () => {
  const reading = buildReading(
    interpretation([
      { obis: "1-0:1.7.0", value: 5, unit: "VA" },
      { obis: "1-0:32.7.0", value: 230, unit: null },
      { obis: "1-0:1.8.0", value: "n/a", unit: null },
    ]),
    NO_META,
  );
  deepEqual(reading.values, {});
  equal(Object.keys(reading.obis).length, 3);
});

Deno.test("buildReading() takes the first register of an OBIS code and net power from both", () => {
  const reading = buildReading(
    interpretation([
      { obis: "1-0:1.7.0", value: 100, unit: "W" },
      { obis: "1-1:1.7.0", value: 999, unit: "W" }, // channel 1 names the same value
      { obis: "1-0:1.7.0", value: 555, unit: "W" },
      { obis: "1-0:2.7.0", value: 2088, unit: "W" },
    ]),
    NO_META,
  );
  equal(reading.values.power_import_w, 100);
  equal(reading.values.power_w, 100 - 2088);
  deepEqual(reading.obis["1-0:1.7.0"], { value: 100, unit: "W" });
  deepEqual(reading.obis["1-1:1.7.0"], { value: 999, unit: "W" });
});

Deno.test("buildReading() passes time, meter id and missing metadata through", () => {
  const reading = buildReading(interpretation([], { time: null, meterId: null }), NO_META);
  deepEqual(reading, {
    time: null,
    meter_id: null,
    model: null,
    system_title: null,
    frame_counter: null,
    values: {},
    obis: {},
  });
});

Deno.test("convertUnit() converts only between matching units", () => {
  equal(convertUnit(6.695, "kWh", "Wh"), 6695);
  equal(convertUnit(1.5, "MWh", "Wh"), 1500000);
  equal(convertUnit(0.5, "kW", "W"), 500);
  equal(convertUnit(12, "mA", "A"), 0.012);
  equal(convertUnit(0.991, null, ""), 0.991);
  equal(convertUnit(3, "W", "W"), 3);
  equal(convertUnit(3, "kW", "Wh"), undefined);
  equal(convertUnit(3, "kWh", "W"), undefined);
  equal(convertUnit(3, null, "W"), undefined);
  equal(convertUnit(3, "V", ""), undefined);
});

const RULE = { from: "rule", rule: "kaifa" } as const;

Deno.test("buildReading() passes the model through", () => {
  equal(buildReading(interpretation([], { model: "MA304H3E" }), NO_META).model, "MA304H3E");
});

Deno.test("buildReading() withholds a named value whose scale is unknown, keeping the raw register", () => {
  const why = "the telegram sends no scaler and no scaler table is known for manufacturer XYZ";
  const reading = buildReading(
    interpretation([
      { obis: "1-0:31.7.0", value: 1416, unit: "A", scale: { from: "unknown", why }, raw: 1416 },
      { obis: "1-0:51.7.0", value: 7, unit: "A", scale: { from: "unknown", why }, raw: 7 },
      { obis: "1-0:1.7.0", value: 500, unit: "W", scale: { from: "telegram" } },
      // another register of the same value with a known scale fills it
      { obis: "1-0:32.7.0", value: 2385, unit: "V", scale: { from: "unknown", why }, raw: 2385 },
      { obis: "1-1:32.7.0", value: 238.5, unit: "V", scale: { from: "telegram" } },
    ]),
    NO_META,
  );
  deepEqual(reading.values, { power_import_w: 500, voltage_l1_v: 238.5 });
  deepEqual(reading.obis["1-0:31.7.0"], { value: 1416, unit: "A", scale: "unknown" });
  deepEqual(reading.obis["1-0:1.7.0"], { value: 500, unit: "W" });
  deepEqual(reading.withheld, [{
    keys: ["current_l1_a", "current_l2_a"],
    reason: `Scale unknown for current_l1_a, current_l2_a: ${why}`,
  }]);
});

Deno.test("buildReading() withholds rule-scaled values that fail the consistency check", () => {
  // Currents 100 times too large under 2 kW: a power factor of 0.01.
  const reading = buildReading(
    interpretation([
      { obis: "1-0:1.7.0", value: 2000, unit: "W", scale: RULE, raw: 2000, resolution: 1 },
      { obis: "1-0:2.7.0", value: 0, unit: "W", scale: RULE, raw: 0, resolution: 1 },
      { obis: "1-0:31.7.0", value: 870, unit: "A", scale: RULE, raw: 87000, resolution: 0.01 },
      { obis: "1-0:32.7.0", value: 230, unit: "V", scale: { from: "telegram" }, resolution: 1 },
      { obis: "1-0:1.8.0", value: 5000, unit: "Wh", scale: RULE, raw: 5000, resolution: 1 },
    ]),
    NO_META,
  );
  deepEqual(reading.values, { energy_import_wh: 5000, voltage_l1_v: 230 });
  deepEqual(reading.obis["1-0:31.7.0"], { value: 87000, unit: "A", scale: "doubtful" });
  deepEqual(reading.obis["1-0:32.7.0"], { value: 230, unit: "V" });
  deepEqual(reading.withheld?.map((w) => w.keys), [[
    "power_import_w",
    "power_export_w",
    "current_l1_a",
  ]]);
});

Deno.test("buildReading() runs no check when the telegram scaled everything", () => {
  const reading = buildReading(
    interpretation([
      { obis: "1-0:1.7.0", value: 2000, unit: "W", scale: { from: "telegram" } },
      { obis: "1-0:31.7.0", value: 870, unit: "A", scale: { from: "telegram" } },
    ]),
    NO_META,
  );
  deepEqual(reading.values, { power_import_w: 2000, current_l1_a: 870 });
  equal(reading.withheld, undefined);
});

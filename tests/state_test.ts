import { deepStrictEqual, equal, ok } from "node:assert/strict";
import type { Reading } from "../lib/cosem/reading.ts";
import { buildState, SHORT_KEYS, tidyNumber } from "../lib/homeassistant/state.ts";

/** The Netz Burgenland E450 capture (tests/fixtures/burgenland_landis-gyr-e450_1.json). */
const E450: Reading = {
  time: "2023-03-28T19:11:20",
  meter_id: "30137181",
  system_title: "4c475a6772a9a111",
  frame_counter: 2195702,
  values: {
    voltage_l1_v: 236,
    voltage_l2_v: 237,
    voltage_l3_v: 236,
    current_l1_a: 0,
    current_l2_a: 0.04,
    current_l3_a: 0.26,
    power_import_w: 29,
    power_export_w: 0,
    power_w: 29,
    energy_import_wh: 31358606,
    energy_export_wh: 7619,
    angle_l1_deg: 40,
    angle_l2_deg: 5.3,
    angle_l3_deg: 29.5,
  },
  obis: {
    "1-0:1.8.0": { value: 31358606, unit: "Wh" },
    "1-0:2.8.0": { value: 7619, unit: "Wh" },
    "1-0:32.7.0": { value: 236, unit: "V" },
  },
};

function reading(values: Reading["values"], meterId: string | null = "30137181"): Reading {
  return { ...E450, meter_id: meterId, values };
}

Deno.test("buildState() publishes named values, time, meter id and the add-on's short keys", () => {
  deepStrictEqual(buildState(E450), {
    time: "2023-03-28T19:11:20",
    meter_id: "30137181",
    energy_import_wh: 31358606,
    energy_export_wh: 7619,
    power_import_w: 29,
    power_export_w: 0,
    power_w: 29,
    voltage_l1_v: 236,
    voltage_l2_v: 237,
    voltage_l3_v: 236,
    current_l1_a: 0,
    current_l2_a: 0.04,
    current_l3_a: 0.26,
    angle_l1_deg: 40,
    angle_l2_deg: 5.3,
    angle_l3_deg: 29.5,
    u1: 236,
    u2: 237,
    u3: 236,
    i1: 0,
    i2: 0.04,
    i3: 0.26,
    w_con: 29,
    w_prov: 0,
    total_con: 31358606,
    total_prov: 7619,
    angle1: 40,
    angle2: 5.3,
    angle3: 29.5,
  });
});

Deno.test("buildState() leaves out keys the reading does not have", () => {
  deepStrictEqual(
    buildState({
      time: null,
      meter_id: null,
      system_title: null,
      frame_counter: null,
      values: { power_import_w: 1362, voltage_l1_v: 250, power_factor: 0.991, frequency_hz: 50 },
      obis: {},
    }),
    {
      time: null,
      meter_id: null,
      power_import_w: 1362,
      voltage_l1_v: 250,
      power_factor: 0.991,
      frequency_hz: 50,
      u1: 250,
      w_con: 1362,
    },
  );
});

Deno.test("buildState() removes the noise of decimal scaling and drops non-finite values", () => {
  const state = buildState(reading({ voltage_l1_v: 2301 * 0.1, current_l1_a: NaN }));
  equal(state.voltage_l1_v, 230.1);
  equal(state.u1, 230.1);
  ok(!("current_l1_a" in state));
  ok(!("i1" in state));
});

Deno.test("tidyNumber() keeps integers and real decimals", () => {
  equal(tidyNumber(123456789012), 123456789012);
  equal(tidyNumber(0.1 + 0.2), 0.3);
  equal(tidyNumber(-5.25), -5.25);
  equal(tidyNumber(1e-7), 1e-7);
});

Deno.test("the Raw data entity's JSON of short keys fits Home Assistant's 255 characters", () => {
  // The largest values a household meter shows, every short key present.
  const state = buildState(reading({
    voltage_l1_v: 239.9,
    voltage_l2_v: 239.9,
    voltage_l3_v: 239.9,
    current_l1_a: 63.25,
    current_l2_a: 63.25,
    current_l3_a: 63.25,
    power_import_w: 43999,
    power_export_w: 43999,
    energy_import_wh: 999999999,
    energy_export_wh: 999999999,
    angle_l1_deg: 359.9,
    angle_l2_deg: 359.9,
    angle_l3_deg: 359.9,
    power_factor: 0.999,
  }));
  // What the value template renders: the short keys, in order, as compact JSON.
  const raw = JSON.stringify(
    Object.fromEntries(SHORT_KEYS.map(([k]) => [k, state[k]]).filter(([, v]) => v !== undefined)),
  );
  equal(Object.keys(JSON.parse(raw)).length, SHORT_KEYS.length);
  ok(raw.length <= 255, `${raw.length} characters: ${raw}`);
});

import { deepEqual, equal, match } from "node:assert/strict";
import { checkConsistency, type CheckedValue } from "../lib/cosem/consistency.ts";
import type { NamedKey } from "../lib/cosem/obis.ts";

type Values = Partial<Record<NamedKey, number | [number, "telegram" | number]>>;

/**
 * Named values for the check: a plain number is scaled by a rule with a resolution of 0;
 * `[value, "telegram"]` came from the telegram; `[value, step]` is rule-scaled with that
 * resolution.
 */
function named(values: Values): Map<NamedKey, CheckedValue> {
  return new Map(
    (Object.entries(values) as [NamedKey, number | [number, "telegram" | number]][]).map((
      [key, v],
    ) => {
      if (typeof v === "number") return [key, { value: v, ruleScaled: true, resolution: 0 }];
      const [value, how] = v;
      return [key, {
        value,
        ruleScaled: how !== "telegram",
        resolution: how === "telegram" ? 0 : how,
      }];
    }),
  );
}

const keysOf = (values: Values) => checkConsistency(named(values)).map((w) => w.keys);

Deno.test("checkConsistency() passes the fixtures' kind of readings", async (t) => {
  const cases: readonly [string, Values][] = [
    ["Kaifa three-phase, 948 W", {
      power_import_w: 948,
      power_export_w: 0,
      current_l1_a: 1.416,
      current_l2_a: 3.241,
      current_l3_a: 3.119,
      voltage_l1_v: 238.5,
      voltage_l2_v: 0, // IT grid: the meter sends 0 for one phase
      voltage_l3_v: 238.9,
    }],
    ["L+G E450 at idle, currents at their last digit", {
      power_import_w: 28,
      power_export_w: 0,
      current_l1_a: [0.09, 0.01],
      current_l2_a: [0.08, 0.01],
      current_l3_a: [0, 0.01],
      voltage_l1_v: 236,
      voltage_l2_v: 236,
      voltage_l3_v: 0,
    }],
    ["a current transformer meter: 150 kW at 217 A per phase", {
      power_import_w: 150_000,
      current_l1_a: 217,
      current_l2_a: 217,
      current_l3_a: 217,
      voltage_l1_v: 231,
      voltage_l2_v: 231,
      voltage_l3_v: 231,
    }],
    ["a small reactive load below the power factor check", {
      power_import_w: 20,
      current_l1_a: 2,
      voltage_l1_v: 230,
    }],
    ["no voltage sent: 230 V nominal", { power_import_w: 2000, current_l1_a: 8.7 }],
    ["export only", {
      power_export_w: 2088,
      current_l1_a: 3.2,
      current_l2_a: 2.73,
      current_l3_a: 2.92,
    }],
    ["a power factor in range", { power_factor: -0.991 }],
    ["nothing to compare", { power_import_w: 5000, energy_import_wh: 1 }],
  ];
  for (const [what, values] of cases) {
    await t.step(what, () => deepEqual(checkConsistency(named(values)), []));
  }
});

Deno.test("checkConsistency() withholds a voltage outside 50–1000 V", () => {
  const w = checkConsistency(named({ voltage_l1_v: 2357, voltage_l2_v: 0, voltage_l3_v: 23.5 }));
  deepEqual(w.map((x) => x.keys), [["voltage_l1_v", "voltage_l3_v"]]);
  match(
    w[0]!.reason,
    /voltage_l1_v 2357 V, voltage_l3_v 23\.5 V is neither 0 nor within 50–1000 V/,
  );
});

Deno.test("checkConsistency() withholds a power factor beyond ±1", () => {
  deepEqual(keysOf({ power_factor: 286 }), [["power_factor"]]);
  deepEqual(keysOf({ power_factor: [1.004, 0.01] }), [], "within its last digit");
});

Deno.test("checkConsistency() withholds currents that make the power factor implausible", () => {
  // L+G currents read without their 0.01 A: 100 times too large under 2 kW of load.
  const values: Values = {
    power_import_w: [2000, "telegram"],
    current_l1_a: 870,
    current_l2_a: 0,
    current_l3_a: 0,
    voltage_l1_v: [230, "telegram"],
  };
  const w = checkConsistency(named(values));
  deepEqual(w.map((x) => x.keys), [["current_l1_a", "current_l2_a", "current_l3_a"]]);
  match(
    w[0]!.reason,
    /^Implausible power factor: active power 2000 W \(power_import_w 2000\) against Σ U·I = 230 V × 870 A/,
  );
  match(w[0]!.reason, /below 0\.1 under load/);
});

Deno.test("checkConsistency() withholds readings whose power exceeds U·I", () => {
  // Currents read in mA as if in 0.01 A: ten times too small.
  const w = checkConsistency(named({
    power_import_w: 2000,
    current_l1_a: [0.87, 0.01],
    voltage_l1_v: 230,
  }));
  deepEqual(w.map((x) => x.keys), [["power_import_w", "current_l1_a", "voltage_l1_v"]]);
  match(
    w[0]!.reason,
    /^Active power above the apparent power: active power 2000 W .* exceeds Σ U·I = 230 V × 0\.87 A ≈ 202\.4 VA at most/,
  );
});

Deno.test("checkConsistency() leaves values the telegram scaled alone", () => {
  deepEqual(
    keysOf({
      power_import_w: [2000, "telegram"],
      current_l1_a: [0.87, "telegram"],
      voltage_l1_v: [2357, "telegram"],
    }),
    [],
  );
  // Only the rule-scaled value of a failing comparison is withheld.
  deepEqual(
    keysOf({
      power_import_w: [2000, "telegram"],
      current_l1_a: 0.87,
      voltage_l1_v: [230, "telegram"],
    }),
    [["current_l1_a"]],
  );
});

Deno.test("checkConsistency() compares with the nominal voltage where a voltage was withheld", () => {
  const w = checkConsistency(
    named({ power_import_w: 11, current_l1_a: [0.06, 0.01], voltage_l1_v: 2357 }),
  );
  equal(w.length, 1, "only the voltage range fails");
  deepEqual(w[0]!.keys, ["voltage_l1_v"]);
});

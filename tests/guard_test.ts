import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import type { Reading } from "../lib/cosem/reading.ts";
import {
  CONFIRMATIONS,
  describeGuardEvent,
  EnergyGuard,
  type GuardEvent,
  MAX_POWER_W,
  REBASELINE_MS,
  REBASELINE_READINGS,
} from "../lib/homeassistant/guard.ts";

const T0 = Date.UTC(2026, 11, 5, 12, 0, 0);

function reading(values: Reading["values"], meterId: string | null = "30137181"): Reading {
  return {
    time: null,
    meter_id: meterId,
    system_title: "4c475a6772a9a111",
    frame_counter: null,
    values,
    obis: {
      "1-0:1.8.0": { value: values.energy_import_wh ?? 0, unit: "Wh" },
      "1-0:32.7.0": { value: 230, unit: "V" },
    },
  };
}

/** Feeds `wh` at 5 s steps from `start`; the published energy of each (or undefined). */
function feed(guard: EnergyGuard, whs: number[], start = T0, stepMs = 5_000) {
  const events: GuardEvent[] = [];
  const published = whs.map((wh, i) => {
    const r = guard.filter(reading({ energy_import_wh: wh }), start + i * stepMs);
    events.push(...r.events);
    return r.reading.values.energy_import_wh;
  });
  return { published, events };
}

Deno.test("EnergyGuard lets rising and equal registers through", () => {
  const { published, events } = feed(new EnergyGuard(), [100, 100, 150, 160]);
  deepStrictEqual(published, [100, 100, 150, 160]);
  deepStrictEqual(events, []);
});

Deno.test("EnergyGuard holds a register that went back, once in the log, and publishes it again past its baseline", () => {
  const guard = new EnergyGuard();
  guard.filter(reading({ energy_import_wh: 5000, voltage_l1_v: 236 }), T0);
  const low = guard.filter(reading({ energy_import_wh: 4000, voltage_l1_v: 237 }), T0 + 5_000);
  deepStrictEqual(low.held, ["energy_import_wh"]);
  equal(low.reading.values.energy_import_wh, undefined);
  equal(low.reading.values.voltage_l1_v, 237, "the other values go out");
  ok(!("1-0:1.8.0" in low.reading.obis), "the OBIS register goes too");
  ok("1-0:32.7.0" in low.reading.obis);
  deepStrictEqual(low.events, [
    { kind: "drop-held", key: "energy_import_wh", from: 5000, to: 4000 },
  ]);
  const { published, events } = feed(guard, [4001, 4002, 5001], T0 + 10_000);
  deepStrictEqual(published, [undefined, undefined, 5001]);
  deepStrictEqual(events, [
    { kind: "drop-ended", key: "energy_import_wh", baseline: 5000, withheld: 3 },
  ], "no event per held telegram");
});

Deno.test("EnergyGuard withholds one implausible spike and goes on publishing the genuine readings", () => {
  // Today's bug: the spike was published and every genuine reading after it withheld.
  const guard = new EnergyGuard();
  const { published, events } = feed(guard, [1000, 99_000_000, 1005, 1010, 1020]);
  deepStrictEqual(published, [1000, undefined, 1005, 1010, 1020]);
  deepStrictEqual(events.map((e) => e.kind), ["leap-held", "leap-refuted"]);
  const held = events[0]!;
  ok(held.kind === "leap-held" && held.from === 1000 && held.to === 99_000_000);
  ok(held.kind === "leap-held" && held.bound < 1000, `bound ${held.bound} Wh in 5 s`);
});

Deno.test("EnergyGuard publishes a genuine leap once the following telegrams confirm it", () => {
  const guard = new EnergyGuard();
  const whs = [1000, 500_000, 500_010, 500_020, 500_030];
  const { published, events } = feed(guard, whs);
  deepStrictEqual(published, [1000, undefined, undefined, 500_020, 500_030]);
  equal(CONFIRMATIONS, 2);
  deepStrictEqual(events.map((e) => e.kind), ["leap-held", "leap-confirmed"]);
  deepStrictEqual(events[1], {
    kind: "leap-confirmed",
    key: "energy_import_wh",
    from: 1000,
    to: 500_020,
  });
});

Deno.test("EnergyGuard allows what the meter's own power explains (meters behind current transformers)", () => {
  const guard = new EnergyGuard();
  // 600 kW: 833 Wh every 5 s, far beyond a house connection's bound.
  const power = 600_000;
  ok(power > MAX_POWER_W);
  let wh = 10_000_000;
  for (let i = 0; i < 5; i++) {
    const r = guard.filter(
      reading({ energy_import_wh: wh, power_import_w: power }),
      T0 + i * 5_000,
    );
    equal(r.reading.values.energy_import_wh, wh);
    deepStrictEqual(r.events, []);
    wh += Math.round(power * 5 / 3600);
  }
  // Without the power, the same step is a leap.
  const bare = new EnergyGuard();
  bare.filter(reading({ energy_import_wh: 10_000_000 }), T0);
  deepStrictEqual(bare.filter(reading({ energy_import_wh: 10_000_833 }), T0 + 5_000).held, [
    "energy_import_wh",
  ]);
});

Deno.test("EnergyGuard takes a consistent run of lower readings as the new baseline, with one warning", () => {
  // A bad high value was published once (before this guard existed): the true register
  // reads lower from then on.
  const guard = EnergyGuard.fromJSON({
    meter_id: "30137181",
    system_title: "4c475a6772a9a111",
    registers: { energy_import_wh: { value: 99_000_000, at: T0 - 60_000 } },
  });
  const whs = Array.from({ length: 10 }, (_, i) => 1000 + 5 * i);
  const { published, events } = feed(guard, whs, T0, 10_000);
  const first = published.findIndex((v) => v !== undefined);
  ok(first >= REBASELINE_READINGS - 1 && first * 10_000 >= REBASELINE_MS, `first at ${first}`);
  deepStrictEqual(published.slice(first), whs.slice(first), "then every reading");
  deepStrictEqual(events.map((e) => e.kind), ["drop-held", "rebaselined"]);
  const line = describeGuardEvent(events[1]!);
  ok(/99000000 for \d+ telegrams in a row: 10\d\d is taken as the true value/.test(line), line);
});

Deno.test("EnergyGuard does not rebaseline on lower readings that jump about", () => {
  const guard = new EnergyGuard();
  guard.filter(reading({ energy_import_wh: 5000 }), T0);
  // Lower values, but not one register counting up: garbage, not a new baseline.
  const { published } = feed(guard, [10, 3000, 20, 2500, 30, 4000, 40, 1000], T0 + 10_000, 10_000);
  deepStrictEqual(published, Array(8).fill(undefined));
});

Deno.test("EnergyGuard allows long gaps (a restart the next day)", () => {
  const guard = new EnergyGuard();
  guard.filter(reading({ energy_import_wh: 1000 }), T0);
  const r = guard.filter(reading({ energy_import_wh: 501_000 }), T0 + 24 * 3_600_000);
  deepStrictEqual(r.held, []);
});

Deno.test("EnergyGuard guards reactive energy too, but not power", () => {
  const guard = new EnergyGuard();
  guard.filter(reading({ reactive_energy_export_varh: 50, power_import_w: 500 }), T0);
  const r = guard.filter(
    reading({ reactive_energy_export_varh: 49, power_import_w: 20 }),
    T0 + 5e3,
  );
  deepStrictEqual(r.held, ["reactive_energy_export_varh"]);
  deepStrictEqual(r.reading.values, { power_import_w: 20 });
});

Deno.test("EnergyGuard starts over when the meter changes", () => {
  const guard = new EnergyGuard();
  guard.filter(reading({ energy_import_wh: 5000 }, "A"), T0);
  // A list without the meter id is still the same meter.
  deepStrictEqual(guard.filter(reading({ energy_import_wh: 10 }, null), T0 + 5e3).held, [
    "energy_import_wh",
  ]);
  deepStrictEqual(guard.filter(reading({ energy_import_wh: 10 }, "B"), T0 + 10e3).held, []);
  // Another system title is another meter too.
  const other = { ...reading({ energy_import_wh: 7 }, null), system_title: "4b464d102002aca5" };
  deepStrictEqual(guard.filter(other, T0 + 15e3).held, []);
  guard.reset();
  deepStrictEqual(guard.filter(reading({ energy_import_wh: 1 }, "B"), T0 + 20e3).held, []);
});

Deno.test("EnergyGuard.toJSON() and fromJSON() carry the baselines over a restart", () => {
  const guard = new EnergyGuard();
  guard.filter(reading({ energy_import_wh: 7000, energy_export_wh: 300 }), T0);
  const state = JSON.parse(JSON.stringify(guard.toJSON()));
  deepStrictEqual(state, {
    meter_id: "30137181",
    system_title: "4c475a6772a9a111",
    registers: {
      energy_import_wh: { value: 7000, at: T0 },
      energy_export_wh: { value: 300, at: T0 },
    },
  });
  const again = EnergyGuard.fromJSON(state);
  deepStrictEqual(again.filter(reading({ energy_import_wh: 6999 }), T0 + 5e3).held, [
    "energy_import_wh",
  ]);
  deepStrictEqual(again.filter(reading({ energy_import_wh: 7001 }), T0 + 10e3).held, []);
});

Deno.test("EnergyGuard.fromJSON() refuses what is no state and skips damaged entries", () => {
  for (const bad of [null, 5, "x", [], { meter_id: "A" }]) {
    throws(() => EnergyGuard.fromJSON(bad), TypeError, JSON.stringify(bad));
  }
  const guard = EnergyGuard.fromJSON({
    meter_id: 12,
    registers: {
      energy_import_wh: { value: "1000", at: T0 },
      energy_export_wh: { value: 50, at: null },
      reactive_energy_import_varh: { value: 5, at: T0 },
      power_w: { value: 1, at: T0 },
    },
  });
  deepStrictEqual(guard.toJSON(), {
    meter_id: null,
    system_title: null,
    registers: { reactive_energy_import_varh: { value: 5, at: T0 } },
  });
});

Deno.test("describeGuardEvent() says what happened and what comes next", () => {
  const lines = ([
    { kind: "leap-held", key: "energy_import_wh", from: 1, to: 9e7, seconds: 5, bound: 417 },
    { kind: "leap-confirmed", key: "energy_import_wh", from: 1, to: 9e7 },
    { kind: "leap-refuted", key: "energy_import_wh", value: 9e7, baseline: 1 },
    { kind: "drop-held", key: "energy_export_wh", from: 10, to: 9 },
    { kind: "drop-ended", key: "energy_export_wh", baseline: 10, withheld: 3 },
  ] as GuardEvent[]).map(describeGuardEvent);
  deepStrictEqual(lines, [
    "Energy register energy_import_wh leapt from 1 to 90000000 in 5 s, more than the meter can count in that time (at most 417): held back until the next telegrams confirm it",
    "Energy register energy_import_wh: the leap from 1 to 90000000 was confirmed by the following telegrams and is published",
    "Energy register energy_import_wh: the value 90000000 was a glitch (the following telegrams continue from 1) and was never published",
    "Energy register energy_export_wh went back from 10 to 9: held back; published again when it passes 10",
    "Energy register energy_export_wh is past 10 again and published (3 lower reading(s) were held back)",
  ]);
});

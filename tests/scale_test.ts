import { deepEqual, equal, match, ok as assert } from "node:assert/strict";
import { type DecodedTelegram, Decoder, type TraceStep } from "../lib/pipeline.ts";
import { interpret, type MeterType } from "../lib/cosem/interpret.ts";
import { interpretDsmr } from "../lib/cosem/dsmr.ts";
import { convertUnit } from "../lib/cosem/build.ts";
import { NAMED_VALUES, type NamedKey, namedValueFor } from "../lib/cosem/obis.ts";
import { parseOmsHeader } from "../lib/oms/header.ts";
import { OmsSecurity } from "../lib/oms/security.ts";
import { walkRecords } from "../lib/oms/records.ts";
import { interpretOms } from "../lib/oms/interpret.ts";
import type { Register } from "../lib/cosem/reading.ts";
import { SCALE_RULES } from "../lib/cosem/scale.ts";
import { POSITIONAL_LAYOUTS, SCALER_TABLES } from "../lib/cosem/layouts.ts";
import { type Fixture, fixture, FIXTURES } from "./fixtures.ts";

/** Offset of the data after CI in an M-Bus long frame (68 L L 68 C A CI). */
const OMS_DATA_AT = 7;

/** Every telegram a fixture decodes to, with the registers its reading was built from. */
async function decodeWithRegisters(
  f: Fixture,
): Promise<{ telegram: DecodedTelegram; registers: readonly Register[] }[]> {
  const meterType = (f.meterType ?? "auto") as MeterType;
  const out: { telegram: DecodedTelegram; registers: readonly Register[] }[] = [];
  let registers: readonly Register[] = [];
  let systemTitle: Uint8Array | null = null;
  const trace = (s: TraceStep) => {
    if (s.kind === "decrypted") systemTitle = s.systemTitle;
    if (s.kind === "apdu" && s.apdu.kind === "data-notification") {
      registers = interpret(s.apdu.body, { headerTime: s.apdu.dateTime, systemTitle, meterType })
        .registers;
    }
    if (s.kind === "apdu" && s.apdu.kind === "text") {
      registers = interpretDsmr(s.apdu.text).registers;
    }
    if (s.kind === "result" && s.result.ok) out.push({ telegram: s.result, registers });
    if (s.kind === "result") systemTitle = null;
  };
  if (f.framing === "mbus-oms") {
    // OMS (Netz OÖ AMIS): the registers of the decrypted records.
    const header = parseOmsHeader(f.bytes.subarray(OMS_DATA_AT, f.bytes.length - 2));
    const plain = await (await OmsSecurity.create(f.key!)).decrypt(header);
    registers = interpretOms(header, walkRecords(plain).records).registers;
  }
  const d = await Decoder.create({
    key: f.key,
    authKey: f.authKey,
    systemTitle: f.systemTitle,
    meterType,
    trace,
  });
  await d.push(f.bytes);
  await d.end();
  return out;
}

/** The named value a register feeds: its own rule's, or its OBIS code's. */
const namedOf = (r: Register) =>
  r.named !== undefined ? NAMED_VALUES.find((n) => n.key === r.named) : namedValueFor(r.obis);

/** The register a named value came from: the first of its code whose scale is known. */
function sourceOf(key: NamedKey, registers: readonly Register[]): Register | undefined {
  return registers.find((r) =>
    namedOf(r)?.key === key && typeof r.value === "number" && r.scale?.from !== "unknown"
  );
}

Deno.test("every named value of every fixture has its scale from the telegram or a named rule", async (t) => {
  let checked = 0;
  for (const f of FIXTURES) {
    await t.step(f.name, async () => {
      for (const { telegram, registers } of await decodeWithRegisters(f)) {
        for (
          const [key, value] of Object.entries(telegram.reading.values) as [NamedKey, number][]
        ) {
          if (key === "power_w") continue; // derived from the two below
          const r = sourceOf(key, registers);
          assert(r !== undefined, `${key}: no register`);
          const s = r.scale;
          assert(s !== undefined, `${key} (${r.obis}): the decoder gave no scale`);
          assert(
            s.from === "telegram" || (s.from === "rule" && SCALE_RULES.has(s.rule)),
            `${key} (${r.obis}): scale ${JSON.stringify(s)}`,
          );
          equal(convertUnit(r.value as number, r.unit, namedOf(r)!.unit), value, key);
          checked++;
        }
        const { power_w, power_import_w, power_export_w } = telegram.reading.values;
        if (power_w !== undefined) equal(power_w, power_import_w! - power_export_w!);
      }
    });
  }
  assert(checked > 150, `only ${checked} named values checked`);
});

Deno.test("SCALE_RULES names every positional layout and scaler table", () => {
  for (const l of POSITIONAL_LAYOUTS) assert(SCALE_RULES.has(l.name), l.name);
  for (const t of SCALER_TABLES) assert(SCALE_RULES.has(t.name), t.name);
  equal(SCALE_RULES.size, POSITIONAL_LAYOUTS.length + SCALER_TABLES.length + 1);
});

async function decodeOne(name: string): Promise<DecodedTelegram> {
  const results = await decodeWithRegisters(fixture(name));
  equal(results.length, 1, `${name}: one telegram`);
  return results[0]!.telegram;
}

Deno.test("a body without scalers from an unnamed manufacturer publishes no physical value (Cyprus L+G E450)", async () => {
  const { reading } = await decodeOne("cyprus_landis-gyr-e450_1");
  // Before: current_l1_a 130, power_factor 286 (raw numbers taken as A and units).
  deepEqual(reading.values, {});
  equal(reading.time, "2026-06-08T18:46:04");
  deepEqual(reading.obis["1-0:31.7.0"], { value: 130, unit: "A", scale: "unknown" });
  deepEqual(reading.obis["1-0:13.7.0"], { value: 286, unit: null, scale: "unknown" });
  deepEqual(reading.obis["1-0:1.7.0"], { value: 187, unit: "W", scale: "unknown" });
  equal(reading.withheld?.length, 1);
  const w = reading.withheld![0]!;
  assert(w.keys.includes("current_l1_a") && w.keys.includes("power_import_w"));
  assert(w.keys.includes("power_factor") && w.keys.includes("frequency_hz"));
  match(
    w.reason,
    /^Scale unknown for .*: the telegram sends no scaler and nothing in the telegram names the manufacturer/,
  );
});

Deno.test("a rule that does not fit the meter is caught: the L+G E360's 0.1 V voltage is withheld", async () => {
  const { reading } = await decodeOne("switzerland_landis-gyr-e360_1");
  equal(reading.values.voltage_l1_v, undefined, "not 2357 V");
  equal(reading.values.current_l1_a, 0.06);
  equal(reading.values.power_import_w, 11);
  equal(reading.values.energy_import_wh, 21956);
  deepEqual(reading.obis["1-0:32.7.0"], { value: 2357, unit: "V", scale: "doubtful" });
  deepEqual(reading.withheld?.map((w) => w.keys), [["voltage_l1_v"]]);
  match(
    reading.withheld![0]!.reason,
    /^Voltage out of range: voltage_l1_v 2357 V is neither 0 nor within 50–1000 V/,
  );
});

Deno.test("Kamstrup lists take the meter id from 1-1:0.0.5 and the model from 1-1:96.1.1", async () => {
  const { reading } = await decodeOne("sweden_kamstrup-omnipower_1");
  equal(reading.meter_id, "5706567326590407");
  equal(reading.model, "6841138BN245101090");
  equal(reading.values.current_l1_a, 2.37);
});

Deno.test("Kaifa list 1 decodes by itself: active power import in W", async (t) => {
  for (const [name, watts] of [["norway_kaifa-list1_1", 2081], ["norway_kaifa-list1_2", 5502]]) {
    await t.step(String(name), async () => {
      const telegram = await decodeOne(String(name));
      equal(telegram.layout, "kaifa-no-list1");
      deepEqual(telegram.reading.values, { power_import_w: watts });
      equal(telegram.reading.meter_id, null);
    });
  }
});

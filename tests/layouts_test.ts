import { deepEqual, equal, ok as assert, throws } from "node:assert/strict";
import { fromHex } from "../lib/bytes.ts";
import { ParseError } from "../lib/errors.ts";
import type { AxdrValue } from "../lib/dlms/axdr.ts";
import { MODEL_OBIS, parseObis } from "../lib/cosem/obis.ts";
import {
  POSITIONAL_LAYOUTS,
  type PositionalField,
  type PositionalLayout,
  QUANTITIES,
  SCALER_TABLES,
} from "../lib/cosem/layouts.ts";
import { interpret, METER_TYPES, type MeterType } from "../lib/cosem/interpret.ts";
import { scale, unitSymbol } from "../lib/cosem/units.ts";

Deno.test("unitSymbol() names the Blue Book units", () => {
  const cases: readonly [number, string | null][] = [
    [8, "°"],
    [27, "W"],
    [28, "VA"],
    [29, "var"],
    [30, "Wh"],
    [31, "VAh"],
    [32, "varh"],
    [33, "A"],
    [35, "V"],
    [44, "Hz"],
    [56, "%"],
    [255, null], // count: no unit
    [254, null], // "other unit"
    [0, null],
    [99, null],
  ];
  for (const [code, symbol] of cases) equal(unitSymbol(code), symbol, `unit ${code}`);
});

Deno.test("scale() gives the nearest double for decimal scalers", () => {
  equal(scale(2373, -1), 237.3);
  equal(scale(991, -3), 0.991);
  equal(scale(320, -2), 3.2);
  equal(scale(1416, -3), 1.416);
  equal(scale(12345, 0), 12345);
  equal(scale(6307498, 1), 63074980);
  equal(scale(7, 3), 7000);
  equal(scale(-93, -1), -9.3);
  equal(scale(0, -2), 0);
});

Deno.test("POSITIONAL_LAYOUTS rows are complete and consistent", async (t) => {
  const names = new Set<string>();
  for (const layout of POSITIONAL_LAYOUTS) {
    await t.step(layout.name, () => {
      assert(!names.has(layout.name), "unique name");
      names.add(layout.name);
      assert((METER_TYPES as readonly string[]).includes(layout.meterType), "meter type exists");
      equal(layout.fields.length, layout.match.count, "one field per element");
      assert(layout.description.length > 20);
      for (const f of layout.fields) {
        if (f.obis !== null) parseObis(f.obis); // throws on a typo
        if (f.kind === "number") {
          assert(f.obis !== null && f.scaler !== undefined && f.unit !== undefined, f.label);
        }
        if (f.kind === "list-id") new RegExp(f.pattern!);
        for (const type of f.types ?? []) {
          assert(/^(double-)?long(64)?(-unsigned)?$|^(integer|unsigned)$/.test(type), type);
        }
      }
      const published = layout.fields.filter((f) => f.obis !== null).map((f) => f.obis);
      equal(new Set(published).size, published.length, "no OBIS code twice");
    });
  }
});

Deno.test("SCALER_TABLES and QUANTITIES are consistent", () => {
  equal(new Set(SCALER_TABLES.map((t) => t.name)).size, SCALER_TABLES.length);
  for (const table of SCALER_TABLES) {
    for (const p of table.match.listIds ?? []) new RegExp(p);
    for (const m of table.match.manufacturers ?? []) assert(/^[A-Z]{3}$/.test(m), m);
    const keys = ["manufacturers", "listIds", "shapes"] as const;
    assert(keys.some((k) => (table.match[k]?.length ?? 0) > 0), `${table.name} matches nothing`);
  }
  const quantities = new Set(QUANTITIES.map((q) => q.quantity));
  for (const table of SCALER_TABLES) {
    for (const q of Object.keys(table.scalers)) assert(quantities.has(q as never), q);
  }
  for (const a of QUANTITIES) {
    for (const b of QUANTITIES) {
      if (a === b || a.d !== b.d) continue;
      assert(!a.c.some((c) => b.c.includes(c)), `${a.quantity} and ${b.quantity} overlap`);
    }
  }
});

// A body built from a layout's own rows: every position gets a distinct, valid value.
function sampleValue(f: PositionalField, position: number): AxdrValue {
  const text = (s: string): AxdrValue => ({
    type: "octet-string",
    bytes: new TextEncoder().encode(s),
  });
  switch (f.kind) {
    case "number":
      return { type: "double-long-unsigned", value: 1000 + position };
    case "text":
    case "meter-id":
    case "info":
      return text(`T${position}`);
    case "list-id":
      return text("KFM_001");
    case "date-time":
      return { type: "octet-string", bytes: fromHex("07e8050702150b1400ff8800") };
    case "time":
      return { type: "octet-string", bytes: fromHex("150b1400") };
    case "date":
      return { type: "octet-string", bytes: fromHex("07e8050702") };
    case "push-setup":
      return { type: "octet-string", bytes: parseObis(f.obis!) };
  }
}

function sampleBody(layout: PositionalLayout): AxdrValue {
  return { type: "structure", items: layout.fields.map(sampleValue) };
}

Deno.test("interpret() reads a sample of every positional layout, auto and pinned", async (t) => {
  for (const layout of POSITIONAL_LAYOUTS) {
    const systemTitle = layout.match.manufacturers
      ? new TextEncoder().encode(`${layout.match.manufacturers[0]}12345`)
      : null;
    for (const meterType of ["auto", layout.meterType] as MeterType[]) {
      await t.step(`${layout.name} (${meterType})`, () => {
        const i = interpret(sampleBody(layout), { headerTime: null, systemTitle, meterType });
        equal(i.layout, layout.name);
        const values = Object.fromEntries(i.registers.map((r) => [r.obis, r]));
        layout.fields.forEach((f, position) => {
          if (f.kind !== "number") return;
          const want = scale(1000 + position, f.scaler!);
          const r = values[f.obis!]!;
          deepEqual(
            { obis: r.obis, value: r.value, unit: r.unit, scale: r.scale, raw: r.raw },
            {
              obis: f.obis,
              value: want,
              unit: unitSymbol(f.unit!),
              scale: { from: "rule", rule: layout.name },
              raw: 1000 + position,
            },
          );
          equal(r.resolution, scale(1, f.scaler!));
        });
        const typePosition = layout.fields.findIndex((f) => MODEL_OBIS.includes(f.obis ?? ""));
        equal(i.model, layout.model ?? (typePosition >= 0 ? `T${typePosition}` : null), "model");
        if (layout.fields.some((f) => ["date-time", "time"].includes(f.kind))) {
          assert(i.time?.startsWith("2024-05-07T21:11:20"), `time ${i.time}`);
        }
        if (layout.fields.some((f) => f.kind === "meter-id")) {
          const position = layout.fields.findIndex((f) => f.kind === "meter-id");
          equal(i.meterId, `T${position}`);
        }
      });
    }
  }
});

Deno.test("interpret() refuses a positional sample one element short, pinned", async (t) => {
  for (const layout of POSITIONAL_LAYOUTS) {
    await t.step(layout.name, () => {
      const body = sampleBody(layout) as { type: "structure"; items: AxdrValue[] };
      const short: AxdrValue = { type: "structure", items: body.items.slice(0, -1) };
      throws(
        () =>
          interpret(short, {
            headerTime: null,
            systemTitle: null,
            meterType: layout.meterType as MeterType,
          }),
        (e: unknown) =>
          e instanceof ParseError &&
          e.message.includes(`${layout.name} needs a structure(${layout.match.count})`),
      );
    });
  }
});

import { deepEqual, equal, throws } from "node:assert/strict";
import { fromHex } from "../lib/bytes.ts";
import { ParseError } from "../lib/errors.ts";
import { type OmsRecord, recordNumber, walkRecords } from "../lib/oms/records.ts";
import { fixture } from "./fixtures.ts";

const plaintext = (n: 1 | 2 | 3) =>
  fromHex(String(fixture(`netzooe_siemens-amis_${n}`).raw.plaintext_hex));

/** The parts of a record a reader cares about, compactly. */
function brief(r: OmsRecord, signed = false) {
  return {
    at: r.offset,
    quantity: r.quantity,
    unit: r.unit,
    exponent: r.exponent,
    direction: r.direction,
    tariff: r.tariff,
    manufacturer: r.manufacturer,
    value: r.quantity === "date-time" ? null : recordNumber(r, signed),
  };
}

Deno.test("walkRecords() reads every record of the Netz OÖ specification's example", () => {
  const { records, manufacturerData } = walkRecords(plaintext(1));
  equal(manufacturerData, null);
  const base = { exponent: 0, direction: null, tariff: 0, manufacturer: null };
  deepEqual(records.map((r) => brief(r)), [
    { ...base, at: 2, quantity: "date-time", unit: null, value: null },
    { ...base, at: 10, quantity: "energy", unit: "Wh", value: 684544 },
    { ...base, at: 16, quantity: "energy", unit: "Wh", direction: "backward", value: 129412 },
    { ...base, at: 23, quantity: "reactive-energy", unit: "varh", tariff: 1, value: 357918 },
    {
      ...base,
      at: 32,
      quantity: "reactive-energy",
      unit: "varh",
      tariff: 1,
      direction: "backward",
      value: 81446,
    },
    { ...base, at: 42, quantity: "power", unit: "W", value: 0 },
    { ...base, at: 48, quantity: "power", unit: "W", direction: "backward", value: 117 },
    { ...base, at: 55, quantity: "reactive-power", unit: "var", value: 0 },
    {
      ...base,
      at: 62,
      quantity: "reactive-power",
      unit: "var",
      direction: "backward",
      value: 0,
    },
    { ...base, at: 70, quantity: "energy", unit: "Wh", manufacturer: [4], value: 20 },
  ]);
  // Every record is a plain, instantaneous reading of storage 0.
  for (const r of records) {
    deepEqual([r.function, r.storage, r.subunit, r.qualified], ["instantaneous", 0, 0, false]);
  }
});

Deno.test("walkRecords() does not depend on the records' order or fillers", () => {
  const a = plaintext(2);
  // Move the first energy record (6 bytes at 10) to the end, before the trailing fillers.
  const moved = new Uint8Array(a.length);
  moved.set(a.subarray(0, 10));
  moved.set(a.subarray(16, a.length - 2), 10);
  moved.set(a.subarray(10, 16), a.length - 8);
  moved.set(a.subarray(a.length - 2), a.length - 2);
  const before = walkRecords(a).records.map((r) => brief(r).value);
  const after = walkRecords(moved).records.map((r) => brief(r).value);
  deepEqual([...after].sort(), [...before].sort());
  equal(after.at(-1), 9295305);
});

Deno.test("recordNumber() reads integers signed or unsigned as asked", () => {
  // 04 03 FF FF FF FF: 32-bit all ones.
  const [r] = walkRecords(fromHex("0403ffffffff")).records;
  equal(recordNumber(r!, false), 4294967295);
  equal(recordNumber(r!, true), -1);
  const [small] = walkRecords(fromHex("01037f")).records;
  equal(recordNumber(small!, true), 127);
  const [three] = walkRecords(fromHex("0303000080")).records;
  equal(recordNumber(three!, true), -8388608);
  const [six] = walkRecords(fromHex("0603010000000000")).records;
  equal(recordNumber(six!, false), 1);
  const [sixty] = walkRecords(fromHex("07030100000000000000")).records;
  equal(recordNumber(sixty!, false), 1);
  const [huge] = walkRecords(fromHex("0703ffffffffffffff7f")).records;
  equal(recordNumber(huge!, true), null, "beyond 2^53");
  const [real] = walkRecords(fromHex("05030000c03f")).records;
  equal(recordNumber(real!, true), 1.5);
});

Deno.test("recordNumber() reads BCD, a top nibble F as minus, and refuses other nibbles", () => {
  deepEqual(
    ["0903" + "42", "0a03" + "3412", "0c03" + "78563412", "0a03" + "34f2", "0a03" + "3a12"]
      .map((h) => recordNumber(walkRecords(fromHex(h)).records[0]!, false)),
    [42, 1234, 12345678, -234, null],
  );
});

Deno.test("walkRecords() reads DIFEs: storage, tariff and subunit bits stack up", () => {
  // DIF C4 (storage LSB 1, 32-bit), DIFE 9D (subunit 0, tariff 1, storage 13, more),
  // DIFE 52 (subunit 1, tariff 1, storage 2)
  const [r] = walkRecords(fromHex("c49d5203" + "01000000")).records;
  deepEqual([r!.storage, r!.tariff, r!.subunit], [1 + 13 * 2 + 2 * 32, 1 + 1 * 4, 2]);
  const [max] = walkRecords(fromHex("142b" + "05000000")).records;
  equal(max!.function, "maximum");
});

Deno.test("walkRecords() reads VIF extensions, plain-text units and scale factors", () => {
  const { records } = walkRecords(
    fromHex(
      // FB 01: energy ×10^0 MWh; FB 15: reactive power 10 var; 83 7D: Wh ×10^3;
      // 7C: plain-text unit "kW" (sent reversed), 2 bytes of data; 2B with qualifier 0x20
      "04fb01" + "01000000" + "02fb15" + "0200" + "04837d" + "03000000" + "027c02576b" +
        "0400" + "02ab20" + "0500",
    ),
  );
  deepEqual(
    records.map((r) => [r.quantity, r.unit, r.exponent, r.textUnit, r.qualified]),
    [
      ["energy", "Wh", 6, null, false],
      ["reactive-power", "var", 1, null, false],
      ["energy", "Wh", 3, null, false],
      ["other", null, 0, "kW", false],
      ["power", "W", 0, null, true],
    ],
  );
});

Deno.test("walkRecords() reads variable-length data and stops at manufacturer data", () => {
  const { records, manufacturerData } = walkRecords(
    fromHex("0d7c" + "01" + "41" + "03" + "414243" + "2f" + "0f" + "deadbeef"),
  );
  equal(records.length, 1);
  deepEqual([...records[0]!.data], [0x41, 0x42, 0x43]);
  deepEqual([...manufacturerData!], [0xde, 0xad, 0xbe, 0xef]);
  const more = walkRecords(fromHex("1f0102"));
  deepEqual([more.records.length, [...more.manufacturerData!]], [0, [1, 2]]);
});

Deno.test("walkRecords() says where a record is cut or malformed", async (t) => {
  const cases: [string, string, RegExp][] = [
    [
      "data cut",
      "0403010203",
      /Input ends inside the data of the M-Bus record at byte 100: needs 4 bytes, 3 left \(oms, byte 102\)/,
    ],
    ["no VIF", "04", /Input ends inside a VIF/],
    ["DIFE cut", "84", /Input ends inside a DIFE/],
    ["VIFE cut", "0483", /Input ends inside a VIFE/],
    ["extension without VIFE", "047b01020304", /VIF 0x7b announces an extension table/],
    ["reserved DIF", "3f", /Reserved M-Bus DIF 0x3f/],
    ["too many DIFEs", "84" + "80".repeat(10) + "0003" + "00000000", /more than 10 DIFEs/],
    ["too many VIFEs", "0483" + "bc".repeat(10) + "3c" + "00000000", /more than 10 VIFEs/],
    ["reserved LVAR", "0d03f5", /Reserved LVAR 0xf5/],
    ["plain text cut", "027c0541", /Input ends inside a plain-text unit/],
  ];
  for (const [name, hex, message] of cases) {
    await t.step(name, () => {
      throws(
        () => walkRecords(fromHex(hex), 100),
        (e) => e instanceof ParseError && e.layer === "oms" && message.test(e.message),
      );
    });
  }
});

import { fixture } from "./fixtures.ts";
import { deepEqual, equal, ok as assert, throws } from "node:assert/strict";
import { latin1 } from "../lib/bytes.ts";
import { ParseError } from "../lib/errors.ts";
import { crc16Arc, interpretDsmr } from "../lib/cosem/dsmr.ts";
import { modelOfDsmrHeader } from "../lib/cosem/model.ts";
import { buildReading } from "../lib/cosem/build.ts";

const SMARTY = fixture("luxembourg_sagemcom-t210d-smarty_1");
const LUXEMBOURG = latin1(SMARTY.plaintextApdu!);

/** A telegram with a correct CRC around the given lines. */
function telegram(lines: readonly string[], ident = "/ISK5\\2M550T-1012"): string {
  const body = `${ident}\r\n\r\n${lines.map((l) => `${l}\r\n`).join("")}!`;
  return `${body}${crc16Arc(body).toString(16).toUpperCase().padStart(4, "0")}\r\n`;
}

Deno.test("crc16Arc() matches the CRC-16/ARC check value", () => {
  equal(crc16Arc("123456789"), 0xbb3d);
  equal(crc16Arc(""), 0);
});

Deno.test("interpretDsmr() reads the Luxembourg Smarty fixture", () => {
  const i = interpretDsmr(LUXEMBOURG);
  equal(i.layout, "dsmr");
  equal(i.time, SMARTY.expected.timestamp);
  equal(i.meterId, "SAG1030700114004");
  equal(i.model, "53663629_D", "from /Lux5\\253663629_D");
  const reading = buildReading(i, { systemTitle: null, frameCounter: null });
  for (const [key, want] of Object.entries(SMARTY.expected)) {
    if (key === "timestamp") continue;
    equal((reading.values as Record<string, number>)[key], want, key);
  }
  // Registers keep the telegram's units; the named values are converted.
  deepEqual(reading.obis["1-0:1.8.0"], { value: 6.695, unit: "kWh" });
  deepEqual(reading.obis["1-0:4.7.0"], { value: 0.007, unit: "kvar" });
  deepEqual(reading.obis["0-0:42.0.0"], { value: "SAG1030700114004", unit: null });
  deepEqual(reading.obis["1-3:0.2.8"], { value: "42", unit: null });
  deepEqual(reading.obis["0-0:96.7.21"], { value: 69, unit: null });
  equal(reading.obis["0-0:96.13.0"], undefined, "empty message left out");
  equal(reading.values.energy_import_wh, 6695);
  assert(Number.isInteger(reading.values.energy_import_wh));
});

Deno.test("interpretDsmr() reads summer time, gas lines and event logs", () => {
  const i = interpretDsmr(telegram([
    "1-3:0.2.8(50)",
    "0-0:1.0.0(240507211120S)",
    "0-0:96.1.1(4530303331303033303031363939353135)",
    "1-0:1.8.1(007054.890*kWh)",
    "1-0:99.97.0(2)(0-0:96.7.19)(200804153917S)(0000003442*s)(211214143734W)(0000016036*s)",
    "1-0:32.7.0(233.2*V)",
    "1-0:31.7.0(013*A)",
    "1-0:21.7.0(00.025*kW)",
    "1-0:22.7.0(00.125)",
    "1-0:23.7.0(01.5)",
    "0-1:24.1.0(003)",
    "0-1:96.1.0(4730303738123456789012345430303230)",
    "0-1:24.2.1(240507210000S)(04473.981*m3)",
    "0-0:96.13.0()",
  ]));
  equal(i.time, "2024-05-07T21:11:20+02:00");
  equal(i.meterId, "E0031003001699515");
  const registers = Object.fromEntries(i.registers.map((r) => [r.obis, [r.value, r.unit]]));
  deepEqual(registers["0-0:1.0.0"], ["2024-05-07T21:11:20+02:00", null]);
  deepEqual(registers["1-0:1.8.1"], [7054.89, "kWh"]);
  deepEqual(registers["0-1:24.2.1"], [4473.981, "m3"]);
  deepEqual(registers["0-1:24.1.0"], [3, null]);
  deepEqual(registers["1-0:31.7.0"], [13, "A"]);
  deepEqual(registers["1-0:22.7.0"], [0.125, "kW"], "power without a unit: kW");
  deepEqual(registers["1-0:23.7.0"], [1.5, "kvar"], "reactive power without a unit: kvar");
  const scales = Object.fromEntries(i.registers.map((r) => [r.obis, r.scale]));
  deepEqual(scales["1-0:1.8.1"], { from: "telegram" });
  deepEqual(scales["1-0:22.7.0"], { from: "rule", rule: "dsmr-power-without-unit" });
  deepEqual(scales["0-1:24.1.0"], { from: "none" }, "a count");
  equal(registers["0-1:96.1.0"]?.[0], "4730303738123456789012345430303230", "not printable");
  equal(
    registers["1-0:99.97.0"]?.[0],
    "(2)(0-0:96.7.19)(200804153917S)(0000003442*s)(211214143734W)(0000016036*s)",
  );
});

Deno.test("interpretDsmr() accepts a telegram without a checksum", () => {
  const i = interpretDsmr("/KFM5KAIFA-METER\r\n\r\n1-0:1.8.1(000123.456*kWh)\r\n!\r\n");
  deepEqual(i.registers, [{
    obis: "1-0:1.8.1",
    value: 123.456,
    unit: "kWh",
    scale: { from: "telegram" },
    resolution: 0.001,
  }]);
  equal(i.time, null);
  equal(i.meterId, null);
  equal(i.model, "KAIFA-METER", "the identification line");
});

Deno.test("interpretDsmr() accepts a lower-case checksum and leading noise", () => {
  const t = telegram(["1-0:1.8.0(000001.000*kWh)"]);
  const lower = t.replace(/![0-9A-F]{4}/, (m) => m.toLowerCase());
  equal(interpretDsmr(`\r\n\0${lower}`).registers.length, 1);
});

Deno.test("interpretDsmr() refuses a damaged telegram", () => {
  const damaged = LUXEMBOURG.replace("000006.695", "000006.696");
  throws(() => interpretDsmr(damaged), (e: unknown) => {
    assert(e instanceof ParseError && e.layer === "dsmr");
    equal(e.offset, LUXEMBOURG.indexOf("!") + 1);
    assert(
      e.message.startsWith(
        `DSMR checksum mismatch: telegram says "CFDE", computed "`,
      ),
      e.message,
    );
    assert(e.message.includes(`": damaged or incomplete telegram`));
    return true;
  });
});

Deno.test("interpretDsmr() refuses a checksum that is not 4 hex digits", () => {
  throws(
    () => interpretDsmr("/X\r\n\r\n1-0:1.8.0(1*kWh)\r\n!CFZ\r\n"),
    /^ParseError: Bad DSMR checksum "CFZ": expected 4 hex digits after "!"/,
  );
});

Deno.test("interpretDsmr() refuses text without an identification line", () => {
  throws(
    () => interpretDsmr("1-0:1.8.0(1*kWh)\r\n!"),
    /^ParseError: Not a DSMR telegram: no "\/" identification line found in 19 characters \(dsmr, byte 0\)/,
  );
});

Deno.test("interpretDsmr() refuses a telegram without its end line", () => {
  throws(
    () => interpretDsmr("/X\r\n\r\n1-0:1.8.0(1*kWh)\r\n"),
    /^ParseError: DSMR telegram is truncated: it has no "!" end line \(dsmr, byte 24\)/,
  );
});

Deno.test("interpretDsmr() refuses a line that is not OBIS(value)", async (t) => {
  for (const line of ["1-0:1.8.0 123", "hello", "1-0:1.8.0(12", "1-0:1.8(1)"]) {
    await t.step(line, () => {
      throws(() => interpretDsmr(telegram([line])), (e: unknown) => {
        assert(e instanceof ParseError && e.layer === "dsmr");
        equal(
          e.message,
          `Bad DSMR line "${line}": expected OBIS(value), e.g. 1-0:1.8.0(000123.456*kWh) (dsmr, byte ${e.offset})`,
        );
        return true;
      });
    });
  }
});

Deno.test("interpretDsmr() leaves a quantity without a unit unscaled", () => {
  const i = interpretDsmr(telegram(["1-0:32.7.0(230.1)", "1-0:31.7.0(013*A)"]));
  const reading = buildReading(i, { systemTitle: null, frameCounter: null });
  deepEqual(reading.values, { current_l1_a: 13 });
  deepEqual(reading.obis["1-0:32.7.0"], { value: 230.1, unit: null, scale: "unknown" });
  deepEqual(reading.withheld?.map((w) => w.keys), [["voltage_l1_v"]]);
});

Deno.test("modelOfDsmrHeader() reads the identification of IEC 62056-21 header lines", () => {
  equal(modelOfDsmrHeader("/ISk5\\2MT382-1000"), "MT382-1000");
  equal(modelOfDsmrHeader("/KFM5KAIFA-METER"), "KAIFA-METER");
  equal(modelOfDsmrHeader("/Lux5\\253663629_D\r"), "53663629_D");
  equal(modelOfDsmrHeader("/XMX5"), null, "no identification");
  equal(modelOfDsmrHeader("not a header"), null);
});

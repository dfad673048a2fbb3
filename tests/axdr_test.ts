import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { ByteReader, fromHex, toHex } from "../lib/bytes.ts";
import { ParseError, TruncatedError } from "../lib/errors.ts";
import {
  type AxdrValue,
  DataTag,
  decodeData,
  decodeDataExact,
  encodeData,
  encodeDateTime,
  MAX_DEPTH,
  numericValue,
} from "../lib/dlms/axdr.ts";
import {
  type DlmsDateTime,
  formatDateTime,
  looksLikeDateTime,
  parseDate,
  parseDateTime,
  parseTime,
} from "../lib/dlms/datetime.ts";

const decode = (hex: string): AxdrValue => decodeDataExact(fromHex(hex));

function throwsAxdr(fn: () => unknown, offset: number, message: RegExp, truncated = false): void {
  throws(fn, (e: unknown) => {
    ok(e instanceof ParseError, `not a ParseError: ${e}`);
    equal(e instanceof TruncatedError, truncated, "TruncatedError or not");
    equal(e.layer, "axdr");
    equal(e.offset, offset);
    ok(message.test(e.message), `message: ${e.message}`);
    return true;
  });
}

/** 2024-05-01 (Wednesday) 12:00:05.00, deviation and clock status given in hex. */
const DT_BYTES = (deviation: string, status = "00") =>
  `07e8050103` + `0c000500` + deviation + status;

const NOTHING: DlmsDateTime = {
  year: null,
  month: null,
  day: null,
  dayOfWeek: null,
  hour: null,
  minute: null,
  second: null,
  hundredths: null,
  deviation: null,
  clockStatus: null,
};

Deno.test("decodeData() decodes every scalar type", async (t) => {
  const cases: [string, string, AxdrValue][] = [
    ["null-data", "00", { type: "null" }],
    ["dont-care", "ff", { type: "dont-care" }],
    ["boolean false", "0300", { type: "boolean", value: false }],
    ["boolean true (any non-zero)", "0302", { type: "boolean", value: true }],
    ["bit-string", "040cabc0", { type: "bit-string", bits: 12, bytes: fromHex("abc0") }],
    ["double-long", "05ffffff85", { type: "double-long", value: -123 }],
    ["double-long min", "0580000000", { type: "double-long", value: -2147483648 }],
    ["double-long-unsigned", "06ffffffff", { type: "double-long-unsigned", value: 4294967295 }],
    ["octet-string", "0906010001 0800ff", { type: "octet-string", bytes: fromHex("0100010800ff") }],
    ["empty octet-string", "0900", { type: "octet-string", bytes: new Uint8Array(0) }],
    ["visible-string", "0a03414243", { type: "visible-string", text: "ABC" }],
    ["utf8-string", "0c03c3a474", { type: "utf8-string", text: "ät" }],
    ["bcd", "0d12", { type: "bcd", value: 0x12 }],
    ["integer", "0f80", { type: "integer", value: -128 }],
    ["long", "10ff38", { type: "long", value: -200 }],
    ["unsigned", "11ff", { type: "unsigned", value: 255 }],
    ["long-unsigned", "12ffff", { type: "long-unsigned", value: 65535 }],
    ["enum", "161b", { type: "enum", value: 27 }],
    ["float32", "173fc00000", { type: "float32", value: 1.5 }],
    ["float64", "18c00c000000000000", { type: "float64", value: -3.5 }],
  ];
  for (const [what, hex, expected] of cases) {
    await t.step(what, () => deepEqual(decode(hex.replace(/ /g, "")), expected));
  }
});

Deno.test("decodeData() decodes 64-bit integers exactly, as bigint", async (t) => {
  const cases: [string, string, AxdrValue][] = [
    ["long64 -1", "14ffffffffffffffff", { type: "long64", value: -1n }],
    ["long64 min", "148000000000000000", { type: "long64", value: -(2n ** 63n) }],
    ["long64 max", "147fffffffffffffff", { type: "long64", value: 2n ** 63n - 1n }],
    ["long64-unsigned max", "15ffffffffffffffff", {
      type: "long64-unsigned",
      value: 2n ** 64n - 1n,
    }],
    ["long64-unsigned above 2^53", "150020000000000001", {
      type: "long64-unsigned",
      value: 2n ** 53n + 1n,
    }],
  ];
  for (const [what, hex, expected] of cases) {
    await t.step(what, () => deepEqual(decode(hex), expected));
  }
});

Deno.test("decodeData() decodes date-time, date and time", () => {
  deepEqual(decode("19" + DT_BYTES("ffc4")), {
    type: "date-time",
    value: {
      year: 2024,
      month: 5,
      day: 1,
      dayOfWeek: 3,
      hour: 12,
      minute: 0,
      second: 5,
      hundredths: 0,
      deviation: -60,
      clockStatus: 0,
    },
  });
  deepEqual(decode("1a07e8050103"), {
    type: "date",
    value: { ...NOTHING, year: 2024, month: 5, day: 1, dayOfWeek: 3 },
  });
  deepEqual(decode("1b0c0005ff"), {
    type: "time",
    value: { ...NOTHING, hour: 12, minute: 0, second: 5 },
  });
});

Deno.test("decodeData() decodes nested arrays and structures", () => {
  // {OBIS 1-0:1.8.0, 12345 Wh, {scaler 0, unit 30}} as a push sends it
  deepEqual(decode("0201" + "0203" + "09060100010800ff" + "0600003039" + "02020f00161e"), {
    type: "structure",
    items: [{
      type: "structure",
      items: [
        { type: "octet-string", bytes: fromHex("0100010800ff") },
        { type: "double-long-unsigned", value: 12345 },
        { type: "structure", items: [{ type: "integer", value: 0 }, { type: "enum", value: 30 }] },
      ],
    }],
  });
  deepEqual(decode("0102 1101 1102".replace(/ /g, "")), {
    type: "array",
    items: [{ type: "unsigned", value: 1 }, { type: "unsigned", value: 2 }],
  });
  deepEqual(decode("0100"), { type: "array", items: [] });
});

Deno.test("decodeData() reads BER element counts and lengths (81 nn, 82 nn nn)", () => {
  const long = "00".repeat(200);
  const v = decode("0981c8" + long);
  equal(v.type === "octet-string" && v.bytes.length, 200);
  const arr = decode("018200c8" + "00".repeat(200));
  equal(arr.type === "array" && arr.items.length, 200);
});

Deno.test("decodeData() accepts MAX_DEPTH levels of nesting and refuses one more", () => {
  equal(MAX_DEPTH, 16);
  const nested = (levels: number) => "0101".repeat(levels) + "00";
  const v = decode(nested(MAX_DEPTH));
  equal(v.type, "array");
  throwsAxdr(
    () => decode(nested(MAX_DEPTH + 1)),
    2 * MAX_DEPTH,
    /^Nesting too deep: more than 16 levels of arrays and structures \(axdr, byte 32\)$/,
  );
});

Deno.test("decodeData() refuses an element count larger than the bytes left", () => {
  throwsAxdr(
    () => decode("0205110111"),
    0,
    /^Element count 5 exceeds the 3 bytes left: damaged or misaligned data/,
  );
  // before allocating anything: a 4-byte count of 4 billion fails at once
  throwsAxdr(
    () => decode("0284ffffffff00"),
    0,
    /^Element count 4294967295 exceeds the 1 byte left/,
  );
});

Deno.test("decodeData() refuses compact-array and unknown tags", () => {
  throwsAxdr(
    () => decode("020113"),
    2,
    /^Unsupported data type: compact-array \(0x13\) is not used in push messages/,
  );
  equal(DataTag.COMPACT_ARRAY, 0x13);
  throwsAxdr(() => decode("07"), 0, /^Unknown data type tag 0x07: damaged data or wrong key/);
});

Deno.test("decodeData() reports truncated input with a TruncatedError", async (t) => {
  const cases: [string, string, number, RegExp][] = [
    ["nothing at all", "", 0, /^Input ends inside a data type tag: needs 1 byte, 0 left/],
    ["a long64", "14000102", 1, /^Input ends inside a long64: needs 8 bytes, 3 left/],
    ["an octet-string", "090501", 2, /^Input ends inside an octet-string: needs 5 bytes, 1 left/],
    ["a date-time", "1907e8", 1, /^Input ends inside a date-time: needs 12 bytes, 2 left/],
    ["a structure member", "020111", 3, /^Input ends inside an unsigned/],
    ["a BER length", "0982", 2, /^Input ends inside an octet-string length/],
  ];
  for (const [what, hex, offset, message] of cases) {
    await t.step(what, () => throwsAxdr(() => decode(hex), offset, message, true));
  }
});

Deno.test("decodeData() refuses a length that is no BER length", () => {
  throwsAxdr(() => decode("0985"), 1, /^Bad length: 0x85 is not a BER length/);
  throwsAxdr(() => decode("0180"), 1, /^Bad length: 0x80 is not a BER length/);
});

Deno.test("decodeDataExact() refuses bytes left over, and adds base to offsets", () => {
  throwsAxdr(() => decode("110100"), 2, /^1 byte left over after the data \(axdr, byte 2\)$/);
  throws(
    () => decodeDataExact(fromHex("07"), 50),
    (e: unknown) => e instanceof ParseError && e.offset === 50,
  );
});

Deno.test("decodeData() leaves the reader after the value", () => {
  const r = new ByteReader(fromHex("1105ff"), "axdr");
  deepEqual(decodeData(r), { type: "unsigned", value: 5 });
  equal(r.pos, 2);
});

Deno.test("numericValue() converts every numeric type and nothing else", async (t) => {
  const cases: [string, number | undefined][] = [
    ["0f80", -128],
    ["10ff38", -200],
    ["05ffffff85", -123],
    ["11ff", 255],
    ["12ffff", 65535],
    ["06ffffffff", 4294967295],
    ["161b", 27],
    ["0d12", 0x12],
    ["173fc00000", 1.5],
    ["18c00c000000000000", -3.5],
    ["14ffffffffffffff85", -123],
    ["150000000000003039", 12345],
    ["0900", undefined],
    ["0a0141", undefined],
    ["0301", undefined],
    ["00", undefined],
    ["0100", undefined],
  ];
  for (const [hex, expected] of cases) {
    await t.step(hex, () => equal(numericValue(decode(hex)), expected));
  }
});

Deno.test("parseDateTime() turns unspecified fields into null", () => {
  deepEqual(parseDateTime(fromHex("ffffffffffffffffff8000ff")), NOTHING);
  deepEqual(parseDateTime(fromHex("07e8050103" + "0c0005ff" + "8000" + "80")), {
    year: 2024,
    month: 5,
    day: 1,
    dayOfWeek: 3,
    hour: 12,
    minute: 0,
    second: 5,
    hundredths: null,
    deviation: null,
    clockStatus: 0x80,
  });
});

Deno.test("parseDateTime() refuses out-of-range fields and deviations", () => {
  const v = parseDateTime(fromHex("07e80d2008" + "183c3c64" + "0349" + "00"));
  deepEqual(
    [v.month, v.day, v.dayOfWeek, v.hour, v.minute, v.second, v.hundredths, v.deviation],
    [null, null, null, null, null, null, null, null],
    "month 13, day 32, weekday 8, 24:60:60.100, deviation +841",
  );
  equal(parseDateTime(fromHex("07e8000000" + "00000000" + "0000" + "00")).month, null);
  equal(parseDateTime(fromHex(DT_BYTES("fcb8"))).deviation, -840);
  equal(parseDateTime(fromHex(DT_BYTES("0348"))).deviation, 840);
});

Deno.test("parseDate() and parseTime() read their own halves only", () => {
  deepEqual(parseDate(fromHex("07e8050103")), {
    ...NOTHING,
    year: 2024,
    month: 5,
    day: 1,
    dayOfWeek: 3,
  });
  deepEqual(parseTime(fromHex("0c000563")), {
    ...NOTHING,
    hour: 12,
    minute: 0,
    second: 5,
    hundredths: 99,
  });
});

Deno.test("formatDateTime() gives ISO 8601 with an offset only when the meter sent one", async (t) => {
  const cases: [string, string, string | null][] = [
    ["deviation not specified (8000)", DT_BYTES("8000"), "2024-05-01T12:00:05"],
    ["CET: deviation -60", DT_BYTES("ffc4"), "2024-05-01T12:00:05+01:00"],
    ["CEST: deviation -120", DT_BYTES("ff88"), "2024-05-01T12:00:05+02:00"],
    ["UTC: deviation 0", DT_BYTES("0000"), "2024-05-01T12:00:05+00:00"],
    ["west of UTC: deviation +300", DT_BYTES("012c"), "2024-05-01T12:00:05-05:00"],
    ["half hours: deviation -330", DT_BYTES("feb6"), "2024-05-01T12:00:05+05:30"],
    ["seconds not specified", "07e8050103" + "0c00ffff" + "8000" + "ff", "2024-05-01T12:00:00"],
    ["year not specified", "ffff050103" + "0c000500" + "8000" + "00", null],
    ["day not specified", "07e805ff03" + "0c000500" + "8000" + "00", null],
    ["hour not specified", "07e8050103" + "ff000500" + "8000" + "00", null],
    ["minute not specified", "07e8050103" + "0cff0500" + "8000" + "00", null],
  ];
  for (const [what, hex, expected] of cases) {
    await t.step(what, () => equal(formatDateTime(parseDateTime(fromHex(hex))), expected));
  }
  await t.step("a date alone has no time", () => {
    equal(formatDateTime(parseDate(fromHex("07e8050103"))), null);
  });
});

Deno.test("looksLikeDateTime() recognises a date-time sent as an octet-string", async (t) => {
  const cases: [string, string, boolean][] = [
    ["a real one (Netz NÖ)", "07e5091b01092f0f00ff8880", true],
    ["everything unspecified", "ffffffffffffffffff8000ff", true],
    ["DST begin / end months", "07e8fe0103" + "0c000500" + "8000" + "00", true],
    ["last day of month", "07e805fe03" + "0c000500" + "8000" + "00", true],
    ["11 bytes", "07e5091b01092f0f00ff88", false],
    ["13 bytes", "07e5091b01092f0f00ff888000", false],
    ["year 1900", "076c091b01092f0f00ff8880", false],
    ["month 13", "07e50d1b01092f0f00ff8880", false],
    ["day 0", "07e5090001092f0f00ff8880", false],
    ["hour 24", "07e5091b01182f0f00ff8880", false],
    ["minute 60", "07e5091b01093c0f00ff8880", false],
    ["second 60", "07e5091b01092f3c00ff8880", false],
    ["a meter number", "313831323230303030303039", false],
  ];
  for (const [what, hex, expected] of cases) {
    await t.step(what, () => equal(looksLikeDateTime(fromHex(hex)), expected));
  }
});

Deno.test("encodeData() is the exact inverse of decodeData()", async (t) => {
  const cases = [
    "00",
    "ff",
    "0300",
    "0301",
    "040cabc0",
    "05ffffff85",
    "0580000000",
    "06ffffffff",
    "09060100010800ff",
    "0900",
    "0981c8" + "00".repeat(200),
    "0a03414243",
    "0c03c3a474",
    "0d12",
    "0f80",
    "10ff38",
    "11ff",
    "12ffff",
    "14ffffffffffffffff",
    "148000000000000000",
    "15ffffffffffffffff",
    "161b",
    "173fc00000",
    "18c00c000000000000",
    "19" + DT_BYTES("ffc4"),
    "19ffffffffffffffffff8000ff",
    "1a07e8050103",
    "1b0c0005ff",
    "0100",
    "0201" + "0203" + "09060100010800ff" + "0600003039" + "02020f00161e",
    "0181c8" + "00".repeat(200), // the shortest BER form (82 00 c8 decodes too)
  ];
  for (const hex of cases) {
    await t.step(hex.slice(0, 24), () => {
      equal(toHex(Uint8Array.from(encodeData(decode(hex)))), hex);
    });
  }
  await t.step("encodeDateTime()", () => {
    const bytes = fromHex(DT_BYTES("ff88", "80"));
    equal(toHex(encodeDateTime(parseDateTime(bytes))), toHex(bytes));
  });
});

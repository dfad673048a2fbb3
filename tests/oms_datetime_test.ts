import { deepEqual, equal } from "node:assert/strict";
import { fromHex } from "../lib/bytes.ts";
import {
  encodeMbusDateTime,
  formatMbusDateTime,
  isValidDateTime,
  mbusClockSeconds,
  parseMbusDateTime,
} from "../lib/oms/datetime.ts";

Deno.test("parseMbusDateTime() reads type I with the masks of the AMIS specification", async (t) => {
  // The three AMIS captures: day of week, week number and the summer bit agree with the
  // calendar (1 July 2014 was a Tuesday in ISO week 27).
  const cases: [string, string, number, boolean][] = [
    ["5f0c48c1171b", "2014-07-01T08:12:31", 2, true],
    ["42222c502410", "2018-04-16T12:34:02", 1, true],
    ["4e1c95eb2513", "2023-05-11T21:28:14", 4, true],
  ];
  for (const [hex, iso, dayOfWeek, summer] of cases) {
    await t.step(iso, () => {
      const dt = parseMbusDateTime(fromHex(hex))!;
      equal(formatMbusDateTime(dt), iso);
      deepEqual([dt.dayOfWeek, dt.summer, dt.invalid], [dayOfWeek, summer, false]);
    });
  }
});

Deno.test("parseMbusDateTime() reads type F and refuses other lengths", () => {
  // 31 Dec 2023 23:59, summer bit clear.
  const dt = parseMbusDateTime(Uint8Array.of(59, 23, 31 | (7 << 5), 12 | (2 << 4)))!;
  equal(formatMbusDateTime(dt), "2023-12-31T23:59:00");
  equal(parseMbusDateTime(new Uint8Array(5)), null);
});

Deno.test("isValidDateTime() refuses the invalid bit and impossible fields", () => {
  const good = parseMbusDateTime(fromHex("5f0c48c1171b"))!;
  equal(isValidDateTime(good), true);
  equal(isValidDateTime({ ...good, invalid: true }), false);
  equal(isValidDateTime({ ...good, month: 13 }), false);
  equal(isValidDateTime({ ...good, month: 2, day: 30 }), false);
  equal(isValidDateTime({ ...good, hour: 24 }), false);
  equal(isValidDateTime({ ...good, second: 60 }), false);
  equal(formatMbusDateTime({ ...good, invalid: true }), null);
  equal(mbusClockSeconds({ ...good, day: 0 }), null);
  // The invalid bit as sent: b1 bit 7.
  equal(parseMbusDateTime(fromHex("5f8c48c1171b"))!.invalid, true);
});

Deno.test("mbusClockSeconds() runs on through the hour repeated when summer time ends", () => {
  // 27 Oct 2024: 02:59:59 summer time, then 02:00:00 standard time, one second later.
  const last = { year: 2024, month: 10, day: 27, hour: 2, minute: 59, second: 59, dayOfWeek: 7 };
  const before = mbusClockSeconds({ ...last, invalid: false, summer: true })!;
  const after = mbusClockSeconds({ ...last, minute: 0, second: 0, invalid: false, summer: false })!;
  equal(after - before, 1);
});

Deno.test("encodeMbusDateTime() writes what parseMbusDateTime() reads", () => {
  const t = {
    year: 2014,
    month: 7,
    day: 1,
    hour: 8,
    minute: 12,
    second: 31,
    dayOfWeek: 2,
    summer: true,
  };
  deepEqual([...encodeMbusDateTime(t, 27)], [...fromHex("5f0c48c1171b")]);
  deepEqual(parseMbusDateTime(encodeMbusDateTime({ ...t, year: 2099, summer: false })), {
    ...t,
    year: 2099,
    summer: false,
    invalid: false,
  });
});

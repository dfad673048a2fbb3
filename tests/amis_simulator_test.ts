import { deepEqual, equal, ok as assert } from "node:assert/strict";
import { toHex } from "../lib/bytes.ts";
import { type AmisFrame, AmisSimulator, austrianOffsetMinutes } from "../lib/amis_simulator.ts";
import { Decoder, type TelegramResult } from "../lib/pipeline.ts";

const KEY = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
const ACK = Uint8Array.of(0xe5);
const WALL = Date.UTC(2024, 6, 1, 10, 0, 0);

/**
 * Runs the meter in simulated time from 0 to `untilMs`, in 1-ms steps where it acts;
 * `answer(frame)` says after how many ms the reader answers it (null: never).
 */
async function drive(
  meter: AmisSimulator,
  untilMs: number,
  answer: (f: AmisFrame, at: number) => number | null,
): Promise<{ frame: AmisFrame; at: number }[]> {
  const sent: { frame: AmisFrame; at: number }[] = [];
  const answers: number[] = [];
  let t = 0;
  while (t <= untilMs) {
    const next = Math.min(meter.nextAtMs(t), answers[0] ?? Infinity);
    t = Math.max(t, next);
    if (t > untilMs) break;
    if (answers[0] !== undefined && answers[0] <= t) {
      meter.receive(ACK, answers.shift()!);
      continue;
    }
    const frame = await meter.tick(t, new Date(WALL + t));
    if (frame === null) continue;
    meter.sent(frame, t);
    sent.push({ frame, at: t });
    const delay = answer(frame, t);
    if (delay !== null) answers.push(t + delay);
  }
  return sent;
}

Deno.test("AmisSimulator searches with SND_NKE once a period while no reader answers", async () => {
  const meter = await AmisSimulator.create({ key: KEY, searchPeriodMs: 60_000 });
  const sent = await drive(meter, 200_000, () => null);
  deepEqual(sent.map((s) => [s.frame.kind, s.at, toHex(s.frame.bytes)]), [
    ["search", 0, "1040f03016"],
    ["search", 60_000, "1040f03016"],
    ["search", 120_000, "1040f03016"],
    ["search", 180_000, "1040f03016"],
  ]);
  equal(meter.state, "searching");
});

Deno.test("AmisSimulator sends a frame a second after an E5, each to be answered", async () => {
  const meter = await AmisSimulator.create({ key: KEY, access: 250 });
  const sent = await drive(meter, 10_500, () => 3);
  equal(sent[0]!.frame.kind, "search");
  const data = sent.slice(1);
  deepEqual(data.map((s) => s.at), [1003, 2003, 3003, 4003, 5003, 6003, 7003, 8003, 9003, 10003]);
  // Access numbers count up and wrap; the FCB bit of C toggles; L = 0x5F, CI 0x5B to F0.
  deepEqual(data.map((s) => s.frame.access), [250, 251, 252, 253, 254, 255, 0, 1, 2, 3]);
  deepEqual(data.map((s) => s.frame.bytes[4]), [
    0x53,
    0x73,
    0x53,
    0x73,
    0x53,
    0x73,
    0x53,
    0x73,
    0x53,
    0x73,
  ]);
  for (const { frame } of data) {
    deepEqual([...frame.bytes.subarray(0, 4)], [0x68, 0x5f, 0x5f, 0x68]);
    deepEqual([frame.bytes[5], frame.bytes[6], frame.bytes.length], [0xf0, 0x5b, 101]);
  }
  deepEqual([meter.stats.answered, meter.stats.missed, meter.state], [11, 0, "sending"]);
  deepEqual(new Set(meter.stats.latenciesMs), new Set([3]));
});

Deno.test("AmisSimulator goes back to searching after 10 missed answers", async () => {
  const meter = await AmisSimulator.create({ key: KEY });
  let answered = 0;
  // The reader answers the search and three frames, then falls silent.
  const sent = await drive(meter, 80_000, () => ++answered <= 4 ? 5 : null);
  const kinds = sent.map((s) => s.frame.kind);
  deepEqual(kinds.slice(0, 14), ["search", ...Array(13).fill("data")]);
  // Frames 4..13 go unanswered; after the tenth the meter searches again, on its minute.
  deepEqual(sent.slice(14).map((s) => [s.frame.kind, s.at]), [["search", 60_000]]);
  deepEqual([meter.stats.missed, meter.stats.fallbacks, meter.state], [10, 1, "searching"]);
});

Deno.test("AmisSimulator takes an answer only within 0.5 s", async () => {
  const meter = await AmisSimulator.create({ key: KEY, searchPeriodMs: 10_000 });
  const sent = await drive(meter, 25_000, () => 600);
  deepEqual(sent.map((s) => [s.frame.kind, s.at]), [["search", 0], ["search", 10_000], [
    "search",
    20_000,
  ]]);
  deepEqual([meter.stats.answered, meter.stats.stray, meter.state], [0, 3, "searching"]);
});

Deno.test("AmisSimulator frames decode to the values it sent, over an access-number wrap", async () => {
  const meter = await AmisSimulator.create({ key: KEY, seed: 7, framePeriodMs: 1000 });
  const sent = await drive(meter, 300_500, () => 2);
  const data = sent.filter((s) => s.frame.kind === "data");
  equal(data.length, 300);
  const decoder = await Decoder.create({ key: KEY });
  const results: TelegramResult[] = [];
  for (const { frame } of sent) results.push(...await decoder.push(frame.bytes));
  equal(results.length, 300);
  let lastImport = 0;
  results.forEach((r, i) => {
    assert(r.ok, JSON.stringify(r));
    const f = data[i]!.frame;
    deepEqual(r.reading.values, f.values);
    equal(r.reading.time, f.time);
    equal(r.reading.frame_counter, f.access);
    assert(r.reading.values.energy_import_wh! >= lastImport);
    lastImport = r.reading.values.energy_import_wh!;
  });
  // Summer time in July: the summer bit is set, and the time is CEST.
  equal(data[0]!.frame.time, "2024-07-01T12:00:01");
});

Deno.test("austrianOffsetMinutes() switches on the last Sundays of March and October", () => {
  deepEqual(
    [
      Date.UTC(2024, 2, 31, 0, 59),
      Date.UTC(2024, 2, 31, 1, 0),
      Date.UTC(2024, 9, 27, 0, 59),
      Date.UTC(2024, 9, 27, 1, 0),
      Date.UTC(2024, 0, 15),
    ].map((t) => austrianOffsetMinutes(new Date(t))),
    [60, 120, 120, 60, 60],
  );
});

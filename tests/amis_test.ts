/**
 * The Netz OÖ AMIS meters through the whole Decoder: answers, echoes, decryption, replay
 * guard, and every way an AMIS frame can fail.
 */

import { deepEqual, equal, match, ok as assert } from "node:assert/strict";
import { concatBytes, fromHex, toHex } from "../lib/bytes.ts";
import { Decoder, type TelegramResult } from "../lib/pipeline.ts";
import { AccessGuard } from "../lib/oms/access.ts";
import { fixture } from "./fixtures.ts";

const SND_NKE = fromHex("1040f03016");
const ACK = fromHex("e5");
const AMIS = [1, 2, 3].map((n) => fixture(`netzooe_siemens-amis_${n}`));
const KEY = AMIS[0]!.key!;
const frame1 = AMIS[0]!.bytes;

async function decodeAll(
  chunks: Uint8Array[],
  opts: Parameters<typeof Decoder.create>[0] = { key: KEY },
): Promise<{ results: TelegramResult[]; decoder: Decoder; replies: string[] }> {
  const decoder = await Decoder.create(opts);
  const results: TelegramResult[] = [];
  const replies: string[] = [];
  for (const c of chunks) {
    const fed = decoder.feed(c);
    replies.push(...fed.replies.map(toHex));
    results.push(...await fed.results);
  }
  results.push(...await decoder.end());
  return { results, decoder, replies };
}

const failures = (results: TelegramResult[]) =>
  results.flatMap((r) => r.ok ? [] : [`${r.stage}: ${r.error}`]);

Deno.test("Decoder.feed() returns the answer at once, before the telegram is decrypted", async () => {
  const decoder = await Decoder.create({ key: KEY });
  const fed = decoder.feed(frame1);
  // Synchronously: the answer is there before anything was awaited.
  deepEqual(fed.replies.map(toHex), ["e5"]);
  const results = await fed.results;
  equal(results.length, 1);
  assert(results[0]!.ok);
  const search = decoder.feed(SND_NKE);
  deepEqual(search.replies.map(toHex), ["e5"]);
  deepEqual(await search.results, []);
  deepEqual([decoder.stats.searches, decoder.stats.replies], [1, 2]);
});

Deno.test("Decoder decodes an AMIS telegram: manufacturer and model from its header", async () => {
  const { results } = await decodeAll([frame1]);
  const r = results[0]!;
  assert(r.ok);
  deepEqual(
    [r.framing, r.security, r.layout, r.reading.frame_counter, r.reading.system_title],
    ["mbus", "encrypted", "amis", 13, null],
  );
  deepEqual([r.reading.manufacturer, r.reading.model], ["Siemens", "AMIS TD-351x"]);
  deepEqual(r.reading.obis["1-0:1.128.0"], { value: 20, unit: "Wh" });
});

Deno.test("Decoder drops the echo of its answers without counting it as garbage", async () => {
  // Search, echo, data, echo, data, echo: what an echoing head delivers.
  const stream = concatBytes([SND_NKE, ACK, AMIS[1]!.bytes, ACK]);
  const key = AMIS[1]!.key!;
  for (let cut = 0; cut <= stream.length; cut++) {
    const chunks = [stream.subarray(0, cut), stream.subarray(cut)].filter((c) => c.length > 0);
    const { results, decoder, replies } = await decodeAll(chunks, { key });
    deepEqual(failures(results), [], `cut ${cut}`);
    equal(results.filter((r) => r.ok).length, 1);
    deepEqual(replies, ["e5", "e5"]);
    deepEqual(
      [decoder.stats.skippedBytes, decoder.stats.echoBytes, decoder.stats.failed],
      [0, 2, 0],
      `cut ${cut}`,
    );
  }
});

Deno.test("Decoder says the key is wrong, as clearly as for DLMS", async () => {
  const { results } = await decodeAll([frame1], { key: AMIS[1]!.key });
  deepEqual(results.map((r) => !r.ok && r.stage), ["decrypt"]);
  match(
    failures(results)[0]!,
    /^decrypt: Decryption gave no OMS data \(first bytes .. .., not the check bytes 2F 2F\): wrong key \(dlms\.key: for Netz OÖ the AMIS key from the eService portal\) or damaged frame$/,
  );
});

Deno.test("Decoder says an AMIS telegram needs a key", async () => {
  const { results, replies } = await decodeAll([frame1], {});
  deepEqual(replies, ["e5"], "answered even without a key: the meter must keep sending");
  match(failures(results)[0]!, /^decrypt: Telegram is encrypted but no key is configured/);
});

Deno.test("Decoder refuses an AMIS frame with a bad checksum, and does not answer it", async () => {
  const bad = frame1.slice();
  bad[40]! ^= 0x04;
  const { results, replies } = await decodeAll([bad]);
  deepEqual(replies, []);
  deepEqual(failures(results), [
    `framing: Bad M-Bus checksum: computed 0x${
      toHex(Uint8Array.of((frame1[99]! + 0x04) & 0xff))
    }, frame says 0x${
      toHex(frame1.subarray(99, 100))
    } (byte 0): damaged frame or wrong baud rate/parity`,
  ]);
  // The next good frame after it is read (and answered) as ever.
  const again = await decodeAll([bad, AMIS[2]!.bytes], { key: AMIS[2]!.key });
  deepEqual(again.replies, ["e5"]);
  equal(again.results.filter((r) => r.ok).length, 1);
});

Deno.test("Decoder reports an AMIS frame cut short, never in silence", async (t) => {
  for (const n of [1, 20, 50, 100]) {
    await t.step(`${n} of 101 bytes`, async () => {
      const { results, replies } = await decodeAll([frame1.subarray(0, n)]);
      deepEqual(replies, []);
      equal(results.length, 1);
      const r = results[0]!;
      assert(!r.ok);
      equal(r.stage, "framing");
      if (n >= 4) match(r.error, new RegExp(`Input ends inside an M-Bus frame: ${n} of 101 bytes`));
    });
  }
  await t.step("a frame whose L leaves no room for the OMS header", async () => {
    // 68 08 08 68 | 53 F0 5B | 00 00 00 00 2D | CS 16: five of the header's 12 bytes.
    const data = fromHex("53f05b000000002d");
    const sum = data.reduce((a, b) => a + b, 0) & 0xff;
    const short = concatBytes([fromHex("68080868"), data, Uint8Array.of(sum, 0x16)]);
    const { results, replies } = await decodeAll([short]);
    deepEqual(replies, ["e5"]);
    deepEqual(failures(results), [
      "oms: Input ends inside the OMS long header (12 bytes): needs 12 bytes, 5 left (oms, byte 0)",
    ]);
  });
});

Deno.test("Decoder drops a replayed AMIS telegram and keeps the guard's state", async () => {
  const guard = new AccessGuard();
  const { results } = await decodeAll([frame1, frame1], { key: KEY, accessGuard: guard });
  deepEqual(results.map((r) => r.ok || r.stage), [true, "counter"]);
  match(
    failures(results)[0]!,
    /^counter: Replayed OMS telegram from meter address 2d4c00000000010e: access number 13, the same meter time/,
  );
  // The state outlives the decoder: a new one with it refuses the same telegram.
  const later = await decodeAll([frame1], {
    key: KEY,
    accessGuard: AccessGuard.fromJSON(guard.toJSON()),
  });
  deepEqual(later.results.map((r) => r.ok || r.stage), ["counter"]);
});

Deno.test("Decoder reads the real meters' telegrams in any order: their clocks move on", async () => {
  // Capture 1 (2014) after capture 3 (2023) would be a step back for one meter; these
  // are three meters with the same (reader's) address, so only time order passes.
  const key = (i: number) => AMIS[i]!.key!;
  for (const i of [0, 1, 2]) {
    const { results } = await decodeAll([AMIS[i]!.bytes], { key: key(i) });
    assert(results[0]!.ok);
  }
  const guard = new AccessGuard();
  await decodeAll([AMIS[0]!.bytes], { key: key(0), accessGuard: guard }); // 2014
  const old = await decodeAll([AMIS[0]!.bytes], { key: key(0), accessGuard: guard });
  deepEqual(old.results.map((r) => r.ok || r.stage), ["counter"]);
  const newer = await decodeAll([AMIS[1]!.bytes], { key: key(1), accessGuard: guard }); // 2018
  deepEqual(newer.results.map((r) => r.ok), [true]);
});

Deno.test("Decoder says what a capture with only the AMIS search lacks", async () => {
  const { results } = await decodeAll([SND_NKE, SND_NKE]);
  deepEqual(failures(results), [
    "framing: Only the search of an M-Bus master for its reader (SND_NKE 10 40 F0 30 16, 2 time(s)) in 10 bytes, no data: a Netz OÖ AMIS meter sends data only while a reader answers each frame with E5",
  ]);
});

Deno.test("Decoder with meter type amis reads AMIS telegrams and refuses DLMS bodies", async () => {
  const amis = await decodeAll([frame1], { key: KEY, meterType: "amis" });
  assert(amis.results[0]!.ok);
  const dlms = fixture("netznoe_kaifa-ma309_1");
  const other = await decodeAll([dlms.bytes], { key: dlms.key, meterType: "amis" });
  match(
    failures(other.results)[0]!,
    /^cosem: Meter type "amis" does not fit .*: an AMIS meter sends OMS M-Bus frames/,
  );
});

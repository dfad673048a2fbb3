import { deepEqual, equal, match, ok as assert } from "node:assert/strict";
import { Decoder, type TelegramResult } from "../lib/pipeline.ts";
import { concatBytes } from "../lib/bytes.ts";
import { encodeHdlcFrames } from "../lib/framing/hdlc.ts";
import { closeTo, type Fixture, fixture, FIXTURES } from "./fixtures.ts";

const positives = FIXTURES.filter((f) => !f.negative && Object.keys(f.expected).length > 0);
const negatives = FIXTURES.filter((f) => f.negative);

function decoderFor(f: Fixture): Promise<Decoder> {
  return Decoder.create({ key: f.key, authKey: f.authKey, systemTitle: f.systemTitle });
}

async function decodeChunks(f: Fixture, chunks: Uint8Array[]): Promise<TelegramResult[]> {
  const d = await decoderFor(f);
  const out: TelegramResult[] = [];
  for (const c of chunks) out.push(...await d.push(c));
  out.push(...await d.end());
  return out;
}

/** Checks one decoded telegram against the fixture's expected values. */
function assertExpected(f: Fixture, results: TelegramResult[]): void {
  const good = results.filter((r) => r.ok);
  const bad = results.filter((r) => !r.ok);
  equal(bad.length, 0, `${f.name}: ${JSON.stringify(bad)}`);
  equal(good.length, 1, `${f.name}: one telegram expected`);
  const r = good[0]!;
  assert(r.ok);
  const got: Record<string, unknown> = {
    ...r.reading.values,
    meter_id: r.reading.meter_id,
    timestamp: r.reading.time,
  };
  for (const [k, want] of Object.entries(f.expected)) {
    assert(closeTo(got[k], want), `${f.name}: ${k} = ${got[k]}, expected ${want}`);
  }
}

for (const f of positives) {
  Deno.test(`Decoder decodes ${f.name} to its expected values`, async () => {
    assertExpected(f, await decodeChunks(f, [f.bytes]));
  });

  Deno.test(`Decoder decodes ${f.name} split at every byte boundary`, async () => {
    for (let cut = 1; cut < f.bytes.length; cut++) {
      const results = await decodeChunks(f, [f.bytes.subarray(0, cut), f.bytes.subarray(cut)]);
      assertExpected(f, results);
    }
  });
}

for (const f of negatives) {
  Deno.test(`Decoder refuses ${f.name} with a reason`, async () => {
    const results = await decodeChunks(f, [f.bytes]);
    equal(results.filter((r) => r.ok).length, 0);
    assert(results.length > 0, "a refused capture must say why");
  });
}

Deno.test("Decoder reports an unfinished block transfer at the end of input", async () => {
  const f = fixture("austria_landis-gyr-e450_4");
  const results = await decodeChunks(f, [f.bytes]);
  deepEqual(results.map((r) => !r.ok && r.stage), ["transfer"]);
  const r = results[0]!;
  assert(!r.ok);
  match(r.error, /Input ends inside a block transfer: 1 block\(s\) received/);
});

Deno.test("Decoder drops a block transfer after a silence gap", async () => {
  const f = fixture("austria_landis-gyr-e450_4");
  const d = await decoderFor(f);
  deepEqual(await d.push(f.bytes, 0), []);
  const later = await d.push(new Uint8Array(0), 5000);
  equal(later.length, 1);
  const r = later[0]!;
  assert(!r.ok);
  equal(r.stage, "transfer");
  match(r.error, /Block transfer abandoned after 5\.0 s of silence/);
  deepEqual(await d.end(), []);
});

Deno.test("Decoder decodes several telegrams in one stream, in order", async () => {
  const names = ["norway_aidon_1", "switzerland_iskraemeco-am550_1", "norway_kaifa-ma304h3e_1"];
  const d = await Decoder.create({});
  const stream = concatBytes(names.map((n) => fixture(n).bytes));
  const results = [...await d.push(stream), ...await d.end()];
  deepEqual(results.map((r) => r.ok && r.reading.meter_id), [
    "7359992890941742",
    "ISK1030783821282",
    "6970631401753985",
  ]);
  equal(d.stats.decoded, 3);
});

Deno.test("Decoder drops a replayed frame counter", async () => {
  const f = fixture("wienernetze_landis-gyr-e450_1");
  const d = await Decoder.create({ key: f.key });
  const results = [...await d.push(f.bytes), ...await d.push(f.bytes), ...await d.end()];
  equal(results.length, 2);
  assert(results[0]!.ok);
  const r = results[1]!;
  assert(!r.ok);
  equal(r.stage, "counter");
  match(r.error, /Replayed frame counter/);
  equal(d.stats.decoded, 1);
  equal(d.stats.failed, 1);
  deepEqual(d.stats.failedByStage, { counter: 1 });
});

Deno.test("Decoder says an encrypted telegram needs a key", async () => {
  const f = fixture("netznoe_kaifa-ma309_1");
  const d = await Decoder.create({});
  const results = [...await d.push(f.bytes), ...await d.end()];
  equal(results.length, 1);
  const r = results[0]!;
  assert(!r.ok);
  equal(r.stage, "decrypt");
  match(r.error, /no key is configured/);
});

Deno.test("Decoder reports a wrong key as such", async () => {
  const f = fixture("netznoe_kaifa-ma309_1");
  const d = await Decoder.create({ key: new Uint8Array(16).fill(0x11) });
  const results = [...await d.push(f.bytes), ...await d.end()];
  equal(results.length, 1);
  const r = results[0]!;
  assert(!r.ok);
  equal(r.stage, "decrypt");
  match(r.error, /wrong key/);
});

Deno.test("Decoder reports input with no frame in it", async () => {
  const d = await Decoder.create({});
  const results = [
    ...await d.push(new TextEncoder().encode("hello world, no meter here")),
    ...await d.end(),
  ];
  equal(results.length, 1);
  const r = results[0]!;
  assert(!r.ok);
  equal(r.stage, "framing");
  match(r.error, /No frame found in 26 bytes/);
});

Deno.test("Decoder reports empty input", async () => {
  const d = await Decoder.create({});
  const results = await d.end();
  equal(results.length, 1);
  const r = results[0]!;
  assert(!r.ok);
  match(r.error, /Input is empty/);
});

Deno.test("Decoder says a ciphered APDU without a system title needs one", async () => {
  const f = fixture("greenbook_glo-get-request_1");
  const d = await Decoder.create({ key: f.key, authKey: f.authKey });
  const results = [...await d.push(f.bytes), ...await d.end()];
  equal(results.length, 1);
  const r = results[0]!;
  assert(!r.ok);
  equal(r.stage, "decrypt");
  match(r.error, /carries no system title and none is configured/);
});

Deno.test("Decoder refuses a plain get-request as not a push message", async () => {
  const f = fixture("greenbook_glo-get-request_1");
  const d = await Decoder.create({ key: f.key, authKey: f.authKey, systemTitle: f.systemTitle });
  const results = [...await d.push(f.bytes), ...await d.end()];
  equal(results.length, 1);
  const r = results[0]!;
  assert(!r.ok);
  equal(r.stage, "apdu");
});

Deno.test("Decoder reports a block transfer that restarts, then decodes the new one", async () => {
  const f = fixture("austria_landis-gyr-e450_1");
  const firstFrame = f.bytes.subarray(0, 141); // 7E A0 8B ... 7E: block 1 of 3
  equal(firstFrame.at(-1), 0x7e);
  const d = await decoderFor(f);
  const results = [...await d.push(concatBytes([firstFrame, f.bytes])), ...await d.end()];
  equal(results.length, 2);
  const [restart, good] = results;
  assert(restart && !restart.ok);
  equal(restart.stage, "transfer");
  match(
    restart.error,
    /Block transfer restarted at block 1: 1 block\(s\) of the previous transfer/,
  );
  assert(good?.ok);
  equal(good.reading.values.energy_import_wh, 4408736);
});

Deno.test("Decoder refuses APDUs nested deeper than it allows", async () => {
  // A last-and-only block whose data is again such a block, five deep, around a notification.
  let apdu = fixture("salzburg_kaifa-ma309m_1").bytes;
  for (let i = 0; i < 5; i++) {
    const len = apdu.length < 0x80 ? [apdu.length] : [0x82, apdu.length >> 8, apdu.length & 0xff];
    apdu = concatBytes([Uint8Array.of(0xe0, 0x80, 0, 1, 0, 0, ...len), apdu]);
  }
  // Bare, the framer already refuses a block transfer inside a block transfer; inside HDLC
  // the payload reaches the pipeline as it is.
  const wire = concatBytes(encodeHdlcFrames(apdu, { maxInfo: 1000 }));
  const d = await Decoder.create({});
  const results = [...await d.push(wire), ...await d.end()];
  equal(results.length, 1);
  const r = results[0]!;
  assert(!r.ok);
  equal(r.stage, "apdu");
  match(r.error, /APDUs nested 4 deep: damaged or hostile data/);
});

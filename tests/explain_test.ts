import { equal, match, ok as assert } from "node:assert/strict";
import { Decoder } from "../lib/pipeline.ts";
import { EXPLAIN_HEADER, Explainer } from "../lib/explain.ts";
import type { MeterType } from "../lib/cosem/interpret.ts";
import { type AxdrValue, encodeData } from "../lib/dlms/axdr.ts";
import { parseObis } from "../lib/cosem/obis.ts";
import { fromHex, toHex } from "../lib/bytes.ts";
import { type Fixture, fixture, FIXTURES } from "./fixtures.ts";

/** The explanation of a capture, as `decode --explain` prints it (without the JSON lines). */
async function explain(
  bytes: Uint8Array,
  opts: { key?: Uint8Array | null; authKey?: Uint8Array | null; meterType?: MeterType } = {},
): Promise<string[]> {
  const meterType = opts.meterType ?? "auto";
  const explainer = new Explainer({ meterType });
  const lines: string[] = [...EXPLAIN_HEADER];
  const d = await Decoder.create({
    key: opts.key ?? null,
    authKey: opts.authKey ?? null,
    meterType,
    trace: (s) => lines.push(...explainer.step(s)),
  });
  await d.push(bytes);
  await d.end();
  return lines;
}

const explainFixture = (f: Fixture) =>
  explain(f.bytes, {
    key: f.key,
    authKey: f.authKey,
    meterType: (f.meterType ?? "auto") as MeterType,
  });

Deno.test("explain never prints a key, and says so at the top", async (t) => {
  match(EXPLAIN_HEADER.join("\n"), /No key is printed here/);
  for (const f of FIXTURES.filter((f) => f.key !== null)) {
    await t.step(f.name, async () => {
      const text = (await explainFixture(f)).join("\n").toLowerCase();
      assert(!text.includes(toHex(f.key!)), "the key");
      if (f.authKey) assert(!text.includes(toHex(f.authKey)), "the auth key");
      // Not even split by spaces, as the tree prints bytes.
      const spaced = toHex(f.key!).replace(/(..)(?!$)/g, "$1 ");
      assert(!text.includes(spaced), "the key as spaced bytes");
    });
  }
});

Deno.test("explain gives every telegram of every fixture a result line", async (t) => {
  for (const f of FIXTURES) {
    await t.step(f.name, async () => {
      const lines = await explainFixture(f);
      const telegrams = lines.filter((l) => /^telegram \d+$/.test(l)).length;
      const results = lines.filter((l) => l.startsWith("  result     ")).length;
      assert(telegrams > 0);
      equal(results, telegrams, lines.join("\n"));
    });
  }
});

Deno.test("explain shows frame, security header, body offsets and the scale rule (Burgenland)", async () => {
  const f = fixture("burgenland_landis-gyr-e450_1");
  const text = (await explainFixture(f)).join("\n");
  match(text, /\n {2}frame {6}hdlc at input byte 0 \(1 link frame\): payload of 105 bytes\n/);
  match(
    text,
    /apdu {7}general-glo-ciphering \(db\): system title 4c475a6772a9a111 \(LGZ, Landis\+Gyr\), security control 0x30 \(suite 0, authenticated, encrypted\), invocation counter 2195702/,
  );
  match(text, /decrypted {2}77 bytes; GCM tag verified with the authentication key/);
  match(text, /apdu {7}data-notification \(0f\): .*; body at byte 18/);
  match(text, /\n +18 {2}02 0e +structure of 14\n/);
  match(
    text,
    /\n +32 {2}12 00 04 +\[4\] long-unsigned 4 → 1-0:51\.7\.0 current L2 = 0\.04 A \(scale: rule "burgenland"\)\n/,
  );
  match(text, /\[13\] octet-string "30137181" → 0-0:96\.1\.0 meter serial number = "30137181"/);
  match(text, /\n {2}layout {5}burgenland: Netz Burgenland E450: structure\(14\)/);
  match(
    text,
    /\n {13}not obis-tagged: element 0 is a long-unsigned, not an OBIS code or an object\n/,
  );
  match(text, /\n {2}model {6}E450\n/);
  match(
    text,
    /\n {2}result {5}decoded: hdlc, encrypted\+authenticated, layout burgenland, 14 named values/,
  );
});

Deno.test("explain without the auth key says the tag was not checked", async () => {
  const f = fixture("burgenland_landis-gyr-e450_1");
  const text = (await explain(f.bytes, { key: f.key })).join("\n");
  match(text, /GCM tag sent but not checked \(no authentication key given\)/);
});

Deno.test("explain names OBIS codes, the table rule and what was withheld (Swiss E360)", async () => {
  const text = (await explainFixture(fixture("switzerland_landis-gyr-e360_1"))).join("\n");
  match(text, /octet-string OBIS 1-0:31\.7\.0 \(current L1\)/, "in the push object list");
  match(text, /long-unsigned 6 → 1-0:31\.7\.0 current L1 = 0\.06 A \(scale: rule "landis-gyr"\)/);
  match(text, /numbers without a \{scaler, unit\}: scaler table "landis-gyr" \(manufacturer LGZ\)/);
  match(text, /withheld: Voltage out of range: voltage_l1_v 2357 V/);
});

Deno.test("explain says when no rule settles a scale (Cyprus E450)", async () => {
  const text = (await explainFixture(fixture("cyprus_landis-gyr-e450_1"))).join("\n");
  match(text, /apdu {7}general-block-transfer \(e0\): block 5, the last, /);
  match(text, /long-unsigned 130 → 1-0:31\.7\.0 current L1 = 130 A \(scale unknown\)\n/);
  match(text, /octet-string OBIS 1-0:21\.7\.0 \(active power L1\)/);
  match(
    text,
    /\n {13}numbers without a \{scaler, unit\}: nothing in the telegram names the manufacturer/,
  );
  match(text, /withheld: Scale unknown for /);
});

Deno.test("explain prints the offsets of untagged XT211 descriptors", async () => {
  const lines = await explainFixture(fixture("czech_sagemcom-xt211_1"));
  const text = lines.join("\n");
  assert(!lines.some((l) => /^ +\? /.test(l)), "every value has its offset");
  match(text, /\n +14 {2}00 01 00 00 60 01 01 ff 02 +\[0\] structure of 3\n/);
  match(
    text,
    /\n +16 {2}00 00 60 01 01 ff +\[1\] octet-string OBIS 0-0:96\.1\.1 \(second serial number\)\n/,
  );
  match(text, /\[1\] octet-string OBIS 0-0:17\.0\.0\n/, "no name, no parentheses");
  match(text, /octet-string OBIS 0-0:96\.1\.1 \(second serial number\)/);
  match(text, /scale: rule "sagemcom-xt211"/);
});

Deno.test("explain says why no layout fits", async () => {
  // A data-notification whose body fits nothing: structure { integer, long, long-unsigned }.
  const body: AxdrValue = {
    type: "structure",
    items: [
      { type: "integer", value: 1 },
      { type: "long", value: 2 },
      { type: "long-unsigned", value: 3 },
    ],
  };
  const apdu = Uint8Array.from([0x0f, 0, 0, 0, 1, 0x00, ...encodeData(body)]);
  const text = (await explain(apdu)).join("\n");
  match(text, /layout {5}none fits: No known layout for a structure of 3 elements/);
  match(text, /\n {13}not push-object-list: element 0 is an integer, not an array/);
  match(
    text,
    /\n {13}not obis-tagged: element 0 is an integer, not an OBIS code or an object/,
  );
  match(text, /\n {13}not burgenland needs a structure\(14\); /);
  match(text, /result {5}failed at cosem: No known layout/);
});

Deno.test("explain notes a push object list sent apart from its values", async () => {
  // Constructed: a push object list and its values as two parts of the body.
  const entry = (cls: number, code: string): AxdrValue => ({
    type: "structure",
    items: [
      { type: "long-unsigned", value: cls },
      { type: "octet-string", bytes: parseObis(code) },
      { type: "integer", value: 2 },
      { type: "long-unsigned", value: 0 },
    ],
  });
  const body: AxdrValue = {
    type: "structure",
    items: [
      { type: "array", items: [entry(40, "0-0:25.9.0"), entry(3, "1-0:31.7.0")] },
      { type: "structure", items: [{ type: "long-unsigned", value: 123 }] },
    ],
  };
  const apdu = Uint8Array.from([0x0f, 0, 0, 0, 1, 0x00, ...encodeData(body)]);
  const text = (await explain(apdu)).join("\n");
  match(
    text,
    /the push object list and the values come as two parts: 1 values in a structure of 1/,
  );
  match(text, /long-unsigned 123 → 1-0:31\.7\.0 current L1 = 123 A \(scale unknown/);
});

Deno.test("explain reads DSMR text line by line (Luxembourg)", async () => {
  const text = (await explainFixture(fixture("luxembourg_sagemcom-t210d-smarty_1"))).join("\n");
  match(text, /dsmr {7}identification line "\/Lux5\\\\253663629_D"/);
  match(text, /1-0:1\.8\.0 energy import = 6\.695 kWh \(scale: the telegram's\)/);
  match(
    text,
    /1-0:4\.7\.0 reactive power export = 0\.007 kvar \(scale: rule "dsmr-power-without-unit"\)/,
  );
  match(text, /\n {2}model {6}53663629_D\n/);
});

Deno.test("explain reports framing failures and skipped bytes too", async () => {
  const noise = fromHex("0102030405");
  const text = (await explain(noise)).join("\n");
  match(text, /result {5}failed at framing: No frame found in 5 bytes/);
  const f = fixture("norway_kaifa-list1_1");
  const lines = await explain(fromHex("0102" + toHex(f.bytes) + "aabbcc"));
  equal(lines.filter((l) => /^telegram \d+$/.test(l)).length, 1, lines.join("\n"));
  assert(lines.some((l) => /^ {2}skipped {4}2 bytes at input byte 0: /.test(l)));
  match(
    lines.at(-1)!,
    /^ {2}skipped {4}\d+ bytes at input byte 4\d: /,
    "after the telegram, in none",
  );
  const noe = fixture("netznoe_kaifa-ma309_1");
  const wrong = (await explain(noe.bytes, { key: new Uint8Array(16) })).join("\n");
  match(wrong, /result {5}failed at decrypt: /);
});

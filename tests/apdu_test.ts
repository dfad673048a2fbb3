import { fixture, mbusData } from "./fixtures.ts";
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { fromHex, toHex } from "../lib/bytes.ts";
import { type Layer, ParseError, TruncatedError } from "../lib/errors.ts";
import {
  type Apdu,
  type BlockApdu,
  type CipheredApdu,
  type DataNotification,
  looksLikePlainApdu,
  parseApdu,
} from "../lib/dlms/apdu.ts";

function fixtureHex(name: string, field = "hex"): string {
  return String(fixture(name).raw[field]);
}

function as<K extends Apdu["kind"]>(apdu: Apdu, kind: K): Extract<Apdu, { kind: K }> {
  equal(apdu.kind, kind);
  return apdu as Extract<Apdu, { kind: K }>;
}

/** Asserts that `fn` throws a ParseError of `layer` at `offset` with a matching message. */
function throwsParse(fn: () => unknown, layer: Layer, offset: number, message: RegExp): void {
  throws(fn, (e: unknown) => {
    ok(e instanceof ParseError, `not a ParseError: ${e}`);
    equal(e.layer, layer);
    equal(e.offset, offset);
    ok(message.test(e.message), `message: ${e.message}`);
    return true;
  });
}

const TITLE = "4b464d6750000009";

Deno.test("parseApdu() reads general-glo-ciphering with a 2-byte BER length and a tag", () => {
  // Luxembourg Smarty: DB 08 <title> 82 02 7A 30 <IC> ... <tag 12>
  const wire = fromHex(fixtureHex("luxembourg_sagemcom-t210d-smarty_1"));
  const a = as(parseApdu(wire), "ciphered");
  equal(a.tag, 0xdb);
  equal(a.service, "general-glo");
  equal(toHex(a.systemTitle!), "534147677001bd54");
  equal(a.securityControl, 0x30);
  equal(a.invocationCounter, 0x0005a8e3);
  equal(a.ciphertext.length, 0x27a - 5 - 12);
  equal(toHex(a.authTag!), toHex(wire.subarray(wire.length - 12)));
  equal(a.encrypted, true);
  equal(a.authenticated, true);
  equal(a.suite, 0);
  equal(a.broadcastKey, false);
  equal(a.compressed, false);
});

Deno.test("parseApdu() reads the ciphering length forms 81 F8 and 82 01 55 alike", async (t) => {
  await t.step("Netz NÖ Kaifa: 81 F8, SC 0x20, no tag", () => {
    const apdu = mbusData(fromHex(fixtureHex("netznoe_kaifa-ma309_1")));
    const a = as(parseApdu(apdu), "ciphered");
    equal(toHex(a.systemTitle!), TITLE);
    equal(a.securityControl, 0x20);
    equal(a.invocationCounter, 0x23);
    equal(a.ciphertext.length, 0xf8 - 5);
    equal(a.authTag, null);
    equal(a.authenticated, false);
    equal(a.encrypted, true);
  });
  await t.step("VKW Kaifa: 82 01 55, SC 0x21 (suite 1)", () => {
    const apdu = mbusData(fromHex(fixtureHex("vorarlberg_kaifa-ma309m_1")));
    const a = as(parseApdu(apdu), "ciphered");
    equal(a.securityControl, 0x21);
    equal(a.suite, 1);
    equal(a.invocationCounter, 0x0026fbc4);
    equal(a.ciphertext.length, 0x155 - 5);
    equal(a.authTag, null);
  });
});

Deno.test("parseApdu() reads a service-specific glo-get-request without system title", () => {
  const a = as(parseApdu(fromHex(fixtureHex("greenbook_glo-get-request_1"))), "ciphered");
  deepEqual(
    {
      tag: a.tag,
      service: a.service,
      systemTitle: a.systemTitle,
      sc: a.securityControl,
      ic: a.invocationCounter,
      ciphertext: toHex(a.ciphertext),
      authTag: toHex(a.authTag!),
    },
    {
      tag: 0xc8,
      service: "service-specific",
      systemTitle: null,
      sc: 0x30,
      ic: 0x01234567,
      ciphertext: "411312ff935a47566827c467bc",
      authTag: "7d825c3be4a77c3fcc056b6b",
    },
  );
});

Deno.test("parseApdu() reads general-ded-ciphering (0xDC) and the broadcast and compression bits", () => {
  const a = as(parseApdu(fromHex(`dc08${TITLE}05e000000001`)), "ciphered");
  equal(a.service, "general-ded");
  equal(a.broadcastKey, true);
  equal(a.compressed, true);
  equal(a.encrypted, true);
  equal(a.ciphertext.length, 0);
});

Deno.test("parseApdu() reads data-notifications with every date-time form", async (t) => {
  await t.step("0C + 12 bytes (Salzburg Kaifa, deviation -60)", () => {
    const n = as(
      parseApdu(fromHex(fixtureHex("salzburg_kaifa-ma309m_1"))),
      "data-notification",
    );
    equal(n.invokeId, 0x0017fa98);
    deepEqual(n.dateTime, {
      year: 2022,
      month: 11,
      day: 12,
      dayOfWeek: 6,
      hour: 16,
      minute: 54,
      second: 0,
      hundredths: 0,
      deviation: -60,
      clockStatus: 0,
    });
    equal(n.body.type, "structure");
    if (n.body.type === "structure") equal(n.body.items.length, 16);
  });
  await t.step("09 0C + 12 bytes (Norwegian Kaifa)", () => {
    const n = as(
      parseApdu(fromHex(fixtureHex("norway_kaifa-ma304h3e_1", "plaintext_apdu_hex"))),
      "data-notification",
    );
    equal(n.invokeId, 0x40000000);
    equal(n.dateTime?.year, 2017);
    equal(n.dateTime?.second, 40);
    equal(n.dateTime?.deviation, null);
    equal(n.body.type, "structure");
    if (n.body.type === "structure") equal(n.body.items.length, 13);
    equal(n.bodyOffset, 19, "0F, invoke id 4, 09 0C, 12 bytes");
  });
  await t.step("00: absent (Aidon)", () => {
    const n = as(
      parseApdu(fromHex(fixtureHex("norway_aidon_1", "plaintext_apdu_hex"))),
      "data-notification",
    );
    equal(n.dateTime, null);
    equal(n.body.type, "array");
  });
  await t.step("a minimal one", () => {
    deepEqual(
      parseApdu(fromHex("0f0000002a001105")),
      {
        kind: "data-notification",
        invokeId: 42,
        dateTime: null,
        body: { type: "unsigned", value: 5 },
        bodyOffset: 6,
      } satisfies DataNotification,
    );
  });
});

Deno.test("parseApdu() reads general-block-transfer blocks", async (t) => {
  await t.step("block 1 of the E450 push (shortened)", () => {
    deepEqual(
      parseApdu(fromHex("e0400001000007db084c475a6773")),
      {
        kind: "block",
        last: false,
        streaming: true,
        window: 0,
        blockNumber: 1,
        ackedBlock: 0,
        data: fromHex("db084c475a6773"),
      } satisfies BlockApdu,
    );
  });
  await t.step("a last block with a window", () => {
    const b = as(parseApdu(fromHex("e0c5000300021f" + "00".repeat(31))), "block");
    equal(b.last, true);
    equal(b.streaming, true);
    equal(b.window, 5);
    equal(b.blockNumber, 3);
    equal(b.ackedBlock, 2);
    equal(b.data.length, 31);
  });
});

Deno.test("parseApdu() returns DSMR text as text", () => {
  const plain = fromHex(fixtureHex("luxembourg_sagemcom-t210d-smarty_1", "plaintext_apdu_hex"));
  const t = as(parseApdu(plain), "text");
  ok(t.text.startsWith("/Lux5\\253663629_D\r\n"));
  ok(t.text.includes("1-0:1.8.0(000006.695*kWh)"));
});

Deno.test("parseApdu() refuses malformed and unsupported APDUs", async (t) => {
  const cases: [string, string, number, RegExp][] = [
    [
      "a system title that is not 8 bytes",
      `db07${TITLE.slice(2)}05200000000100`,
      1,
      /^Bad system title: length 7, must be 8 bytes \(apdu, byte 1\)$/,
    ],
    [
      "ciphered content shorter than SC and IC",
      `db08${TITLE}03200000`,
      10,
      /^Ciphered content too short: length 3, the security header alone takes 5 bytes/,
    ],
    [
      "bytes after the ciphered content",
      `db08${TITLE}052000000001ffff`,
      16,
      /^2 bytes left over after the ciphered content of 5 bytes/,
    ],
    [
      "a tag announced but not there",
      `db08${TITLE}0a30000000010102030405`,
      11,
      /^Ciphered content too short for its GCM tag: security control 0x30 announces a 12-byte tag, only 5 bytes follow the invocation counter/,
    ],
    [
      "a length that is no BER length",
      `db08${TITLE}85`,
      10,
      /^Bad length: 0x85 is not a BER length/,
    ],
    [
      "a plain get-response",
      "c4010100",
      0,
      /^Unknown APDU tag 0xc4: expected a data-notification \(0f\), a block transfer \(e0\), a ciphering APDU \(db, dc, c8..d7\) or DSMR text \("\/"\)/,
    ],
    [
      "general-ciphering",
      "dd00",
      0,
      /^Unsupported APDU: general-ciphering \(0xdd\) is not used by meters on a customer interface/,
    ],
    [
      "general-signing",
      "df00",
      0,
      /^Unsupported APDU: general-signing \(0xdf\) carries a signature, not ciphered content/,
    ],
    [
      "a date-time marker that is neither 00 nor 0C",
      "0f0000000105",
      5,
      /^Bad date-time in data-notification: 0x05 is neither 00 \(absent\) nor 0c \(12 bytes follow\)/,
    ],
    [
      "an octet-string date-time of the wrong length",
      "0f000000010905",
      6,
      /^Bad date-time in data-notification: 0x05 is neither/,
    ],
    [
      "a second value after the body",
      "0f0000000100110511",
      8,
      /^1 byte left over after the data-notification body: damaged data or a second value/,
    ],
    [
      "bytes after the block data",
      "e0800001000002aabbcc",
      9,
      /^1 byte left over after block 1 of 2 bytes \(apdu, byte 9\)$/,
    ],
  ];
  for (const [what, hex, offset, message] of cases) {
    await t.step(what, () => throwsParse(() => parseApdu(fromHex(hex)), "apdu", offset, message));
  }
});

Deno.test("parseApdu() reports truncation as a TruncatedError", async (t) => {
  await t.step("empty input", () => {
    throws(() => parseApdu(new Uint8Array(0)), TruncatedError);
  });
  await t.step("the first block of the incomplete E450 push, parsed as a whole APDU", () => {
    // austria_landis-gyr-e450_4 block 1: the ciphering header declares 259 bytes.
    const wire = fromHex(fixtureHex("austria_landis-gyr-e450_4"));
    const block = as(parseApdu(wire.subarray(12, wire.length - 3)), "block");
    equal(block.last, false);
    throwsParse(
      () => parseApdu(block.data),
      "apdu",
      13,
      /^Input ends inside the ciphered content: needs 259 bytes, 106 left/,
    );
    throws(() => parseApdu(block.data), TruncatedError);
  });
  await t.step("a data-notification cut inside its date-time", () => {
    throwsParse(
      () => parseApdu(fromHex("0f000000010c07e6")),
      "apdu",
      6,
      /^Input ends inside the date-time: needs 12 bytes, 2 left/,
    );
  });
});

Deno.test("parseApdu() blames the A-XDR layer for a bad body, at APDU offsets plus base", () => {
  throwsParse(
    () => parseApdu(fromHex("0f000000010007"), 100),
    "axdr",
    106,
    /^Unknown data type tag 0x07/,
  );
  throwsParse(
    () => parseApdu(fromHex(`db07${TITLE.slice(2)}`), 40),
    "apdu",
    41,
    /^Bad system title/,
  );
});

Deno.test("looksLikePlainApdu() tells a plain APDU from random bytes", async (t) => {
  const cases: [string, string, boolean][] = [
    ["data-notification, no date-time", "0f0000000100", true],
    ["data-notification, date-time", "0f000000010c", true],
    ["data-notification, Kaifa 09 0C date-time", "0f00000001090c", true],
    ["data-notification, bad date-time marker", "0f0000000105", false],
    ["data-notification, 09 without 0C", "0f000000010900", false],
    ["data-notification cut short", "0f00", false],
    ["general-block-transfer", "e0400001000001", true],
    ["general-block-transfer cut short", "e04000", false],
    ["DSMR text", "2f4c7578", true],
    ["a slash and binary", "2f000102", false],
    ["get-response", "c40181", true],
    ["event-notification", "c200", true],
    ["action-response", "c70101", true],
    ["get-response with a bad choice", "c4f0", false],
    ["unused tag c6", "c601", false],
    ["random", "5a3c", false],
    ["one byte", "0f", false],
    ["nothing", "", false],
  ];
  for (const [what, hex, expected] of cases) {
    await t.step(what, () => equal(looksLikePlainApdu(fromHex(hex)), expected));
  }
});

Deno.test("parseApdu() keeps its views inside the input (no copies)", () => {
  const wire = fromHex(`db08${TITLE}0620000000017f`);
  const a: CipheredApdu = as(parseApdu(wire), "ciphered");
  equal(a.ciphertext.buffer, wire.buffer);
  equal(a.ciphertext.byteOffset, 16);
});

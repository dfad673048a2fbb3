import { deepEqual, equal, match, rejects, throws } from "node:assert/strict";
import { fromHex, toHex } from "../lib/bytes.ts";
import { DecryptError } from "../lib/errors.ts";
import { parseOmsHeader } from "../lib/oms/header.ts";
import { omsIv, OmsSecurity } from "../lib/oms/security.ts";
import { type Fixture, fixture } from "./fixtures.ts";

const AMIS = [1, 2, 3].map((n) => fixture(`netzooe_siemens-amis_${n}`));
const headerOf = (f: Fixture) => parseOmsHeader(f.bytes.subarray(7, f.bytes.length - 2));

Deno.test("omsIv() is the address then the access number eight times (the spec's example)", () => {
  equal(toHex(omsIv(fromHex("2d4c00000000010e"), 0x0d)), "2d4c00000000010e0d0d0d0d0d0d0d0d");
  throws(() => omsIv(new Uint8Array(7), 0), /Bad OMS address: 7 bytes, must be 8/);
});

for (const f of AMIS) {
  Deno.test(`OmsSecurity decrypts ${f.name} to its published plaintext`, async () => {
    const security = await OmsSecurity.create(f.key!);
    const plain = await security.decrypt(headerOf(f));
    equal(toHex(plain), String(f.raw.plaintext_hex).toLowerCase());
  });

  Deno.test(`OmsSecurity encrypts ${f.name}'s plaintext back to its ciphertext`, async () => {
    const h = headerOf(f);
    const security = await OmsSecurity.create(f.key!);
    const plain = fromHex(String(f.raw.plaintext_hex));
    equal(toHex(await security.encrypt(h.address, h.access, plain)), toHex(h.data));
  });
}

Deno.test("OmsSecurity refuses a wrong key, naming the key and the check bytes", async () => {
  const f = AMIS[0]!;
  const wrong = await OmsSecurity.create(AMIS[1]!.key!);
  await rejects(
    () => wrong.decrypt(headerOf(f)),
    (e) => {
      equal((e as DecryptError).layer, "decrypt");
      match(
        (e as Error).message,
        /^Decryption gave no OMS data \(first bytes [0-9A-F]{2} [0-9A-F]{2}, not the check bytes 2F 2F\): wrong key \(dlms\.key: for Netz OÖ the AMIS key from the eService portal\) or damaged frame$/,
      );
      return e instanceof DecryptError;
    },
  );
});

Deno.test("OmsSecurity refuses a block count the frame cannot hold", async () => {
  const f = AMIS[0]!;
  const security = await OmsSecurity.create(f.key!);
  const data = f.bytes.slice(7, f.bytes.length - 2);
  data[10] = 0x60; // six blocks: 96 bytes, the frame has 80
  await rejects(
    () => security.decrypt(parseOmsHeader(data)),
    /OMS configuration field announces 6 encrypted block\(s\) \(96 bytes\) but the frame carries 80 data bytes: damaged frame/,
  );
  data[10] = 0x00; // mode 5, no block
  await rejects(() => security.decrypt(parseOmsHeader(data)), /announces 0 encrypted block/);
  data[11] = 0x00; // mode 0
  await rejects(() => security.decrypt(parseOmsHeader(data)), /mode 0 is not AES-128-CBC/);
});

Deno.test("OmsSecurity keeps clear data after the encrypted blocks", async () => {
  const f = AMIS[2]!;
  const security = await OmsSecurity.create(f.key!);
  const h = headerOf(f);
  const tail = fromHex("2f2f");
  const data = new Uint8Array(12 + h.data.length + tail.length);
  data.set(f.bytes.subarray(7, 7 + 12));
  data.set(h.data, 12);
  data.set(tail, 12 + h.data.length);
  const plain = await security.decrypt(parseOmsHeader(data));
  equal(toHex(plain), String(f.raw.plaintext_hex).toLowerCase() + "2f2f");
});

Deno.test("OmsSecurity wants a 16-byte key and whole blocks to encrypt", async () => {
  await rejects(() => OmsSecurity.create(new Uint8Array(15)), /Bad OMS key: 15 bytes/);
  const security = await OmsSecurity.create(new Uint8Array(16));
  await rejects(
    () => security.encrypt(new Uint8Array(8), 0, new Uint8Array(20)),
    /must be whole 16-byte blocks/,
  );
  // The key never shows in what the object prints.
  deepEqual(Object.keys(security), []);
});

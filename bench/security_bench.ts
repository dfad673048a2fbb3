/**
 * Cost of SecurityContext.decrypt() against the bare Web Crypto AES-CTR call it wraps, on
 * the Netz NÖ Kaifa push (243 ciphertext bytes, SC 0x20). Run: `deno task bench`.
 * Our decrypt should cost at most about twice the raw AES work.
 */

import { concatBytes, fromHex } from "../lib/bytes.ts";
import { parseApdu } from "../lib/dlms/apdu.ts";
import { SecurityContext } from "../lib/dlms/security.ts";

const fixture = JSON.parse(
  Deno.readTextFileSync(new URL("../tests/fixtures/netznoe_kaifa-ma309_1.json", import.meta.url)),
) as { hex: string; key: string };

/** M-Bus user data after each 9-byte header (68 L L 68 C A CI STSAP DTSAP). */
function mbusData(wire: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let at = 0; at < wire.length; at += wire[at + 1]! + 6) {
    parts.push(wire.subarray(at + 9, at + 4 + wire[at + 1]!));
  }
  return concatBytes(parts);
}

const apdu = parseApdu(mbusData(fromHex(fixture.hex)));
if (apdu.kind !== "ciphered") throw new Error("the fixture is not a ciphered APDU");
const systemTitle = apdu.systemTitle!;
const key = fromHex(fixture.key);
const ctx = await SecurityContext.create(key);
const rawKey = await crypto.subtle.importKey("raw", key.slice(), "AES-CTR", false, ["decrypt"]);
const counter = new Uint8Array(16);
counter.set(systemTitle);
new DataView(counter.buffer).setUint32(8, apdu.invocationCounter);
counter[15] = 2;
const ciphertext = apdu.ciphertext.slice();

Deno.bench({
  name: "bare Web Crypto AES-CTR",
  group: "decrypt netznoe (243 bytes)",
  baseline: true,
  async fn() {
    await crypto.subtle.decrypt({ name: "AES-CTR", counter, length: 32 }, rawKey, ciphertext);
  },
});

Deno.bench({
  name: "SecurityContext.decrypt()",
  group: "decrypt netznoe (243 bytes)",
  async fn() {
    await ctx.decrypt(apdu, systemTitle);
  },
});

// The verified path: AES-CTR, then AES-GCM over the plaintext to recompute the tag.
const lux = JSON.parse(
  Deno.readTextFileSync(
    new URL("../tests/fixtures/luxembourg_sagemcom-t210d-smarty_1.json", import.meta.url),
  ),
) as { hex: string; key: string; auth_key: string };
const luxApdu = parseApdu(fromHex(lux.hex));
if (luxApdu.kind !== "ciphered") throw new Error("the fixture is not a ciphered APDU");
const luxTitle = luxApdu.systemTitle!;
const luxCtx = await SecurityContext.create(fromHex(lux.key), fromHex(lux.auth_key));
const luxKey = await crypto.subtle.importKey("raw", fromHex(lux.key).slice(), "AES-CTR", false, [
  "decrypt",
]);
const luxCounter = new Uint8Array(16);
luxCounter.set(luxTitle);
new DataView(luxCounter.buffer).setUint32(8, luxApdu.invocationCounter);
luxCounter[15] = 2;
const luxCiphertext = luxApdu.ciphertext.slice();

Deno.bench({
  name: "bare Web Crypto AES-CTR",
  group: "decrypt and verify tag, luxembourg (617 bytes)",
  baseline: true,
  async fn() {
    await crypto.subtle.decrypt(
      { name: "AES-CTR", counter: luxCounter, length: 32 },
      luxKey,
      luxCiphertext,
    );
  },
});

Deno.bench({
  name: "SecurityContext.decrypt() with GAK",
  group: "decrypt and verify tag, luxembourg (617 bytes)",
  async fn() {
    await luxCtx.decrypt(luxApdu, luxTitle);
  },
});

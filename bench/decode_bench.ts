/**
 * Cost of decoding one telegram with the whole pipeline (framing → decrypt → replay check
 * → A-XDR → COSEM → reading) against the bare Web Crypto work the same telegram needs,
 * on two real captures:
 *
 * - Netz NÖ Kaifa MA309: M-Bus, 2 frames, SC 0x20 (AES-CTR only);
 * - Netz Burgenland L+G E450: HDLC, SC 0x30 with the auth key (AES-CTR, then AES-GCM over
 *   the plaintext to recompute the tag).
 *
 * Target: the whole decode costs at most 2x the AES work alone (the ratio deno bench
 * prints against the baseline). Run: `deno task bench`.
 *
 * The replay guard refuses a frame counter seen before, so the pipeline bench cycles
 * through N frames built up front from the capture's plaintext, re-encrypted under
 * increasing counters; only when the cycle wraps is the decoder replaced (its keys are
 * imported once per N pushes, never per push).
 */

import { concatBytes } from "../lib/bytes.ts";
import { type CipheredApdu, parseApdu } from "../lib/dlms/apdu.ts";
import { SecurityContext } from "../lib/dlms/security.ts";
import { Framer, type Framing } from "../lib/framing/framer.ts";
import { encodeHdlcFrames } from "../lib/framing/hdlc.ts";
import { encodeMbusFrames } from "../lib/framing/mbus.ts";
import { Decoder, type DecoderOptions } from "../lib/pipeline.ts";
import { fixture } from "../tests/fixtures.ts";

const FRAMES = 4096;
const BLOCK = 16;
const IV = 12;
const FIRST_DATA_COUNTER = 2;
const TAG_BITS = 128;

/** The ciphered APDU a capture carries in one payload. */
function cipheredOf(wire: Uint8Array): { apdu: CipheredApdu; framing: Framing } {
  for (const ev of new Framer().push(wire)) {
    if (ev.kind !== "payload") continue;
    const apdu = parseApdu(ev.payload);
    if (apdu.kind === "ciphered") return { apdu, framing: ev.framing };
  }
  throw new Error("no ciphered APDU in the capture");
}

async function setUp(name: string) {
  const f = fixture(name);
  const { apdu, framing } = cipheredOf(f.bytes);
  const systemTitle = apdu.systemTitle!;
  const security = await SecurityContext.create(f.key!, f.authKey);
  const { plaintext, security: level } = await security.decrypt(apdu, systemTitle);

  // N copies of the telegram under increasing counters, framed like the capture.
  const frames: Uint8Array[] = [];
  for (let i = 1; i <= FRAMES; i++) {
    const ciphered = await security.encrypt(plaintext, {
      systemTitle,
      invocationCounter: apdu.invocationCounter + i,
      securityControl: apdu.securityControl,
      tag: apdu.tag,
    });
    frames.push(
      concatBytes(
        framing === "mbus"
          ? encodeMbusFrames(ciphered, { maxData: 245 })
          : encodeHdlcFrames(ciphered, { maxInfo: 2000 }),
      ),
    );
  }

  // The bare Web Crypto calls the telegram needs, keys imported once.
  const key = f.key!.slice();
  const ctrKey = await crypto.subtle.importKey("raw", key, "AES-CTR", false, ["decrypt"]);
  const gcmKey = await crypto.subtle.importKey("raw", key, "AES-GCM", false, ["encrypt"]);
  const iv = new Uint8Array(IV);
  iv.set(systemTitle);
  new DataView(iv.buffer).setUint32(8, apdu.invocationCounter);
  const counter = new Uint8Array(BLOCK);
  counter.set(iv);
  counter[BLOCK - 1] = FIRST_DATA_COUNTER;
  const ciphertext = apdu.ciphertext.slice();
  const aad = new Uint8Array(1 + (f.authKey?.length ?? 0));
  aad[0] = apdu.securityControl;
  if (f.authKey) aad.set(f.authKey, 1);
  const plain = plaintext.slice();
  const tagged = apdu.authTag !== null && f.authKey !== null;

  const options: DecoderOptions = { key: f.key, authKey: f.authKey };
  return {
    wire: f.bytes,
    frames,
    options,
    level,
    tagged,
    async bareAes() {
      await crypto.subtle.decrypt({ name: "AES-CTR", counter, length: 32 }, ctrKey, ciphertext);
      if (tagged) {
        await crypto.subtle.encrypt(
          { name: "AES-GCM", iv, additionalData: aad, tagLength: TAG_BITS },
          gcmKey,
          plain,
        );
      }
    },
    async decrypt() {
      await security.decrypt(apdu, systemTitle);
    },
  };
}

for (const name of ["netznoe_kaifa-ma309_1", "burgenland_landis-gyr-e450_1"]) {
  const s = await setUp(name);
  const group = `${name}: ${s.wire.length} B, ${s.level}`;
  let decoder = await Decoder.create(s.options);
  let next = 0;

  Deno.bench({
    name: s.tagged ? "bare Web Crypto AES-CTR + AES-GCM (tag)" : "bare Web Crypto AES-CTR",
    group,
    baseline: true,
    fn: s.bareAes,
  });
  Deno.bench({
    name: "SecurityContext.decrypt()",
    group,
    fn: s.decrypt,
  });
  Deno.bench({
    name: "Decoder.push() of the whole telegram",
    group,
    async fn() {
      if (next === s.frames.length) {
        next = 0;
        decoder = await Decoder.create(s.options);
      }
      const results = await decoder.push(s.frames[next++]!);
      if (results.length !== 1 || !results[0]!.ok) {
        throw new Error(`telegram did not decode: ${JSON.stringify(results)}`);
      }
    },
  });
}

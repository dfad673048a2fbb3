/**
 * Cost of one Netz OÖ AMIS telegram (M-Bus CI 5B, OMS mode 5): the whole `Decoder.push()`
 * (framing, the answer, AES-CBC, record walk, replay guard, registers, reading) against the
 * bare Web Crypto work it needs (two AES-CBC calls: the padding block, then the
 * decryption); and, apart, what deciding the answer costs: the synchronous `feed()` up to
 * the reply, which the meter waits for. Run: `deno task bench`.
 *
 * The replay guard refuses an access number twice at the same meter time, so the bench
 * cycles through N telegrams the simulator made (a second apart, access numbers wrapping);
 * only when the cycle wraps is the decoder replaced.
 */

import { AmisSimulator } from "../lib/amis_simulator.ts";
import { Decoder } from "../lib/pipeline.ts";
import { Framer } from "../lib/framing/framer.ts";
import { OMS_BLOCK_LENGTH, parseOmsHeader } from "../lib/oms/header.ts";
import { omsIv } from "../lib/oms/security.ts";
import { fixture } from "../tests/fixtures.ts";

const FRAMES = 2048;
const f = fixture("netzooe_siemens-amis_3");
const key = f.key!;

// N telegrams a second apart, as the meter sends them.
const meter = await AmisSimulator.create({ key, seed: 5 });
const frames: Uint8Array[] = [];
const start = Date.UTC(2024, 6, 1);
const search = (await meter.tick(0, new Date(start)))!;
meter.sent(search, 0);
meter.receive(Uint8Array.of(0xe5), 0);
for (let i = 1; frames.length < FRAMES; i++) {
  if (meter.state !== "sending") throw new Error("the simulated meter stopped sending");
  const frame = await meter.tick(i * 1000, new Date(start + i * 1000));
  if (frame?.kind === "data") {
    frames.push(frame.bytes);
    meter.sent(frame, i * 1000);
    meter.receive(Uint8Array.of(0xe5), i * 1000);
  }
}

// The bare Web Crypto calls of one telegram.
const header = parseOmsHeader(f.bytes.subarray(7, f.bytes.length - 2));
const cbcKey = await crypto.subtle.importKey("raw", key.slice(), "AES-CBC", false, [
  "encrypt",
  "decrypt",
]);
const ciphertext = header.data.slice();
const last = ciphertext.slice(ciphertext.length - OMS_BLOCK_LENGTH);
const padding = new Uint8Array(OMS_BLOCK_LENGTH).fill(OMS_BLOCK_LENGTH);
const iv = omsIv(header.address, header.access);

const group = `netzooe_siemens-amis: ${f.bytes.length} B, AES-128-CBC (mode 5)`;
Deno.bench({
  name: "bare Web Crypto AES-CBC (padding block + decryption)",
  group,
  baseline: true,
  async fn() {
    const sealed = new Uint8Array(
      await crypto.subtle.encrypt({ name: "AES-CBC", iv: last }, cbcKey, padding),
    );
    const extended = new Uint8Array(ciphertext.length + OMS_BLOCK_LENGTH);
    extended.set(ciphertext);
    extended.set(sealed.subarray(0, OMS_BLOCK_LENGTH), ciphertext.length);
    await crypto.subtle.decrypt({ name: "AES-CBC", iv }, cbcKey, extended);
  },
});

let decoder = await Decoder.create({ key });
let next = 0;
Deno.bench({
  name: "Decoder.push() of the whole telegram",
  group,
  async fn() {
    if (next === frames.length) {
      next = 0;
      decoder = await Decoder.create({ key });
    }
    const results = await decoder.push(frames[next++]!);
    if (results.length !== 1 || !results[0]!.ok) {
      throw new Error(`telegram did not decode: ${JSON.stringify(results)}`);
    }
  },
});

// Deciding the answer: the framing of one telegram up to its reply, synchronously.
const framer = new Framer();
Deno.bench({
  name: "Framer.push() up to the answer (no decryption)",
  group: "the answer to an AMIS frame",
  fn() {
    const events = framer.push(frames[0]!);
    if (events[0]?.kind !== "reply") throw new Error("no answer");
  },
});

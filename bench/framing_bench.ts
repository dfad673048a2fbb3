/**
 * Throughput of the Framer on real captures, fed whole and in 64-byte chunks (a serial
 * port delivers small chunks), and on noise it has to skip. Run: `deno task bench`.
 *
 * Bytes per second = the byte count in each bench name / the time per iteration. Each
 * iteration feeds one whole capture to a long-lived Framer, so its state (lock, buffer)
 * is what a running daemon has.
 */

import { fixture } from "../tests/fixtures.ts";
import { Framer } from "../lib/framing/framer.ts";
import { Rng } from "../tests/fuzz.ts";

const CHUNK = 64;

function chunksOf(bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.subarray(at, at + size));
  return out;
}

/** Feeds `chunks` and checks that `payloads` payloads came out (the framer really worked). */
function feeder(chunks: readonly Uint8Array[], payloads: number): () => void {
  const framer = new Framer();
  return () => {
    let n = 0;
    for (const c of chunks) {
      for (const ev of framer.push(c)) if (ev.kind === "payload") n++;
    }
    if (n !== payloads) throw new Error(`${n} payloads, expected ${payloads}`);
  };
}

const cases = [
  {
    label: "HDLC, L+G E450 block transfer in 3 frames",
    name: "austria_landis-gyr-e450_1",
    payloads: 3,
  },
  { label: "M-Bus, Netz NÖ Kaifa in 2 frames", name: "netznoe_kaifa-ma309_1", payloads: 1 },
];

for (const { label, name, payloads } of cases) {
  const bytes = fixture(name).bytes;
  const group = `${label} (${bytes.length} B)`;
  Deno.bench({
    name: `whole (${bytes.length} B per iteration)`,
    group,
    baseline: true,
    fn: feeder([bytes], payloads),
  });
  Deno.bench({
    name: `${CHUNK}-byte chunks (${bytes.length} B per iteration)`,
    group,
    fn: feeder(chunksOf(bytes, CHUNK), payloads),
  });
  Deno.bench({
    name: `1-byte chunks (${bytes.length} B per iteration)`,
    group,
    fn: feeder(chunksOf(bytes, 1), payloads),
  });
}

// Noise without frame start bytes is skipped by index; noise with them makes the framer
// try (and refuse) a candidate at each start byte.
const rng = new Rng(1);
const NOISE = 4096;
const quiet = rng.bytes(NOISE).map((b) => (b === 0x7e || b === 0x68 ? 0x00 : b));
const noisy = rng.bytes(NOISE);
for (const [label, bytes] of [["no start bytes", quiet], ["random bytes", noisy]] as const) {
  const framer = new Framer();
  Deno.bench({
    name: `noise, ${label} (${NOISE} B per iteration, ${CHUNK}-byte chunks)`,
    group: "garbage skipping",
    baseline: label === "no start bytes",
    fn() {
      for (const c of chunksOf(bytes, CHUNK)) framer.push(c);
    },
  });
}

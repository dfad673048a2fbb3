/**
 * The AMIS replay guard survives a restart through the state file (lib/state_file.ts).
 */

import { deepEqual, equal, match, ok as assert } from "node:assert/strict";
import { type ReadingSink, runDaemon } from "../lib/daemon.ts";
import { validateConfig } from "../lib/config.ts";
import { METER_TYPES } from "../lib/cosem/interpret.ts";
import type { Reading } from "../lib/cosem/reading.ts";
import { memoryLogger } from "../lib/log.ts";
import type { ByteSource } from "../lib/sources/source.ts";
import type { TelegramResult } from "../lib/pipeline.ts";
import { AmisSimulator } from "../lib/amis_simulator.ts";
import { fromHex } from "../lib/bytes.ts";
import { STATE_FILE_NAME } from "../lib/state_file.ts";

const KEY = "00112233445566778899aabbccddeeff";
const T0 = Date.UTC(2026, 5, 1, 12, 0, 0);

/** Frames of one simulated AMIS meter, a second apart. */
async function frames(count: number): Promise<Uint8Array[]> {
  const meter = await AmisSimulator.create({ key: fromHex(KEY), access: 250 });
  const search = (await meter.tick(0, new Date(T0)))!;
  meter.sent(search, 0);
  meter.receive(Uint8Array.of(0xe5), 0);
  const out: Uint8Array[] = [];
  for (let t = 1000; out.length < count; t += 1000) {
    const f = await meter.tick(t, new Date(T0 + t));
    if (f === null) continue;
    out.push(f.bytes);
    meter.sent(f, t);
    meter.receive(Uint8Array.of(0xe5), t);
  }
  return out;
}

class Sink implements ReadingSink {
  readings: Reading[] = [];
  start() {}
  publishReading(r: Reading) {
    this.readings.push(r);
  }
  setDiagnostics() {}
  stop() {
    return Promise.resolve();
  }
}

async function run(dir: string, chunks: Uint8Array[]) {
  const source: ByteSource = {
    description: "capture.hex",
    kind: "file",
    open: () => Promise.resolve(ReadableStream.from(chunks)),
  };
  const results: TelegramResult[] = [];
  const { logger, lines } = memoryLogger();
  const sink = new Sink();
  const status = await runDaemon({
    config: validateConfig({
      meter_type: "amis",
      state_dir: dir,
      dlms: { port: "/dev/null", key: KEY },
      mqtt: { host: "localhost" },
    }, { env: {}, meterTypes: METER_TYPES }),
    logger,
    signal: new AbortController().signal,
    version: "test",
    source,
    createSink: () => sink,
    onResult: (r) => results.push(r),
  });
  return { status, results, sink, log: lines.join("\n") };
}

Deno.test("a restart refuses an AMIS telegram older than the last one before it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const all = await frames(10); // access numbers 250 … 255, 0 … 3: it wraps
    const first = await run(dir, all.slice(6, 9));
    equal(first.status, 0);
    deepEqual(first.results.map((r) => r.ok && r.reading.frame_counter), [0, 1, 2]);
    const state = JSON.parse(Deno.readTextFileSync(`${dir}/${STATE_FILE_NAME}`));
    deepEqual(Object.keys(state.oms_access.meters), ["2d4c00000000010e"]);

    // After the restart: an older telegram (access 252, before the wrap) is refused, the
    // same last one too, and the meter's next one is taken.
    const second = await run(dir, [all[2]!, all[8]!, all[9]!]);
    deepEqual(second.results.map((r) => r.ok || r.stage), ["counter", "counter", true]);
    match((second.results[0] as { error: string }).error, /^Replayed OMS telegram/);
    deepEqual(second.sink.readings.map((r) => r.frame_counter), [3]);
    match(second.log, /access numbers of 1 OMS meter/);
    assert(!Deno.readTextFileSync(`${dir}/${STATE_FILE_NAME}`).includes(KEY));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

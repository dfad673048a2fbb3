/**
 * State across restarts: the replay guard's frame counters and the energy guard's
 * registers go to a state file and come back after a restart (lib/state_file.ts, wired in
 * lib/daemon.ts).
 */

import { deepEqual, equal, match, ok as assert } from "node:assert/strict";
import { type ReadingSink, runDaemon } from "../lib/daemon.ts";
import { validateConfig } from "../lib/config.ts";
import { METER_TYPES } from "../lib/cosem/interpret.ts";
import type { Reading } from "../lib/cosem/reading.ts";
import type { Diagnostics } from "../lib/sinks/mqtt.ts";
import { memoryLogger } from "../lib/log.ts";
import type { ByteSource } from "../lib/sources/source.ts";
import { MeterSimulator } from "../lib/simulator.ts";
import { fromHex } from "../lib/bytes.ts";
import type { TelegramResult } from "../lib/pipeline.ts";
import { keyId, STATE_FILE_NAME, StateFile } from "../lib/state_file.ts";

const KEY = "000102030405060708090a0b0c0d0e0f";
const NEW_KEY = "f0e0d0c0b0a090807060504030201000";
const T0 = Date.UTC(2026, 11, 5, 12, 0, 0);

function config(stateDir: string | null, key = KEY) {
  return validateConfig({
    dlms: { port: "/dev/null", key },
    mqtt: { host: "localhost" },
    ...(stateDir === null ? {} : { state_dir: stateDir }),
  }, { env: {}, meterTypes: METER_TYPES });
}

class RecordingSink implements ReadingSink {
  readings: Reading[] = [];
  start() {}
  publishReading(r: Reading) {
    this.readings.push(r);
  }
  setDiagnostics(_d: Diagnostics) {}
  stop() {
    return Promise.resolve();
  }
}

/** Pushes of one simulated Netz NÖ meter, frame counters `first`, `first + 1`, … */
async function pushes(first: number, count: number, key = KEY): Promise<Uint8Array[]> {
  const sim = await MeterSimulator.create({
    meter: "noe_evn",
    key: fromHex(key),
    frameCounter: first,
  });
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    out.push((await sim.next(new Date(T0 + (first + i) * 5000))).bytes);
  }
  return out;
}

function fileSource(chunks: Uint8Array[]): ByteSource {
  return {
    description: "capture.hex",
    kind: "file",
    open: () => Promise.resolve(ReadableStream.from(chunks)),
  };
}

/** One run of the daemon over `chunks`; what reached the sink and every result. */
async function run(
  stateDir: string | null,
  chunks: Uint8Array[],
  opts: { key?: string; clock?: number } = {},
) {
  const sink = new RecordingSink();
  const results: TelegramResult[] = [];
  const { logger, lines } = memoryLogger();
  const status = await runDaemon({
    config: config(stateDir, opts.key),
    logger,
    signal: new AbortController().signal,
    version: "test",
    source: fileSource(chunks),
    createSink: () => sink,
    onResult: (r) => results.push(r),
    clock: () => opts.clock ?? T0,
  });
  return { status, sink, results, log: lines.join("\n") };
}

Deno.test("a restart refuses an old telegram and never publishes an energy register lower than before", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // 650 … 701 of one meter: 650 carries a lower energy register than 700 and 701.
    const all = await pushes(650, 52);
    const first = await run(dir, [all[50]!, all[51]!]);
    equal(first.status, 0);
    deepEqual(first.sink.readings.map((r) => r.frame_counter), [700, 701]);
    const published = first.sink.readings[1]!.values.energy_import_wh!;

    const second = await run(dir, [all[0]!], { clock: T0 + 60_000 });
    equal(second.status, 0);
    equal(second.sink.readings.length, 0, "telegram 650 is not published");
    const refused = second.results[0]!;
    assert(!refused.ok && refused.stage === "counter", JSON.stringify(refused));
    match(refused.error, /Replayed frame counter: 650 after 701/);
    match(second.log, /State from .*smartmeter-state\.json: frame counters of 1 meter/);

    // A re-keyed meter may count afresh: the counters start over, the energy does not go back.
    const rekeyed = await pushes(650, 1, NEW_KEY);
    const third = await run(dir, rekeyed, { key: NEW_KEY, clock: T0 + 120_000 });
    match(third.log, /dlms\.key is not the key the saved frame counters were recorded under/);
    equal(third.sink.readings.length, 1, "the re-keyed meter's telegram is taken");
    const r = third.sink.readings[0]!;
    equal(r.frame_counter, 650);
    assert(r.values.power_import_w !== undefined, "its other values go out");
    equal(r.values.energy_import_wh, undefined, `lower than the ${published} Wh published`);
    match(third.log, /Energy register energy_import_wh went back from \d+ to \d+: held back/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the state file is written atomically, holds nothing secret and is private", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await run(dir, await pushes(1, 3));
    const names = [...Deno.readDirSync(dir)].map((e) => e.name);
    deepEqual(names, [STATE_FILE_NAME], "no temporary file is left");
    const path = `${dir}/${STATE_FILE_NAME}`;
    equal(Deno.statSync(path).mode! & 0o777, 0o600);
    const text = Deno.readTextFileSync(path);
    const state = JSON.parse(text);
    equal(state.version, 1);
    deepEqual(state.frame_counters, { "4b464d6750000001": 3 });
    assert(state.energy.registers.energy_import_wh.value > 0);
    equal(state.energy.registers.energy_import_wh.at, T0);
    // Neither the key nor anything that reveals it: the key id is a salted hash.
    for (const form of [KEY, KEY.toUpperCase(), btoa(String.fromCharCode(...fromHex(KEY)))]) {
      assert(!text.includes(form), "the key is in the state file");
    }
    equal(state.key_id.length, 16);
    equal(state.key_id, await keyId(fromHex(KEY), fromHex(state.salt)));
    // Another salt gives another id: the id cannot be looked up in a table.
    const otherSalt = crypto.getRandomValues(new Uint8Array(16));
    assert(state.key_id !== await keyId(fromHex(KEY), otherSalt));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a damaged state file is reported once and ignored, then written anew", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/${STATE_FILE_NAME}`;
    for (const damage of ["{not json", "[1,2]", '{"version":99}', ""]) {
      Deno.writeTextFileSync(path, damage);
      const r = await run(dir, await pushes(1, 2));
      equal(r.status, 0, damage);
      equal(r.sink.readings.length, 2, `telegrams decode with a state file of ${damage}`);
      equal(r.log.match(/state file .* is damaged/g)?.length, 1, r.log);
      equal(JSON.parse(Deno.readTextFileSync(path)).version, 1, "rewritten at the stop");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("damaged parts of a state file are left out, the rest is used", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await run(dir, await pushes(10, 1));
    const path = `${dir}/${STATE_FILE_NAME}`;
    const state = JSON.parse(Deno.readTextFileSync(path));
    state.energy = "garbage";
    Deno.writeTextFileSync(path, JSON.stringify(state));
    const r = await run(dir, await pushes(5, 1), { clock: T0 + 10_000 });
    match(r.log, /energy registers ignored/);
    const refused = r.results[0]!;
    assert(!refused.ok && refused.stage === "counter", "the counters still count");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a state directory that cannot be written is reported once; the daemon carries on", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A file where the directory should be: as unwritable as a read-only file system,
    // for root too.
    Deno.writeTextFileSync(`${dir}/blocked`, "");
    const r = await run(`${dir}/blocked/state`, await pushes(1, 3));
    equal(r.status, 0);
    equal(r.sink.readings.length, 3);
    equal(r.log.match(/Cannot write the state file/g)?.length, 1, r.log);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("StateFile.save() on a directory it cannot create says so once and returns false", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A file where the directory should be: mkdir fails, as for a read-only file system.
    Deno.writeTextFileSync(`${dir}/blocked`, "");
    const { logger, lines } = memoryLogger();
    const { file, restored } = await StateFile.open(`${dir}/blocked/sub`, null, logger.get("t"));
    equal(await file.save(restored), false);
    equal(await file.save(restored), false);
    equal(lines.filter((l) => l.includes("Cannot write the state file")).length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("without state_dir the daemon says that state is kept in memory only", async () => {
  const r = await run(null, await pushes(1, 1));
  match(r.log, /No state_dir: frame counters and energy registers are kept in memory only/);
});

Deno.test("state_dir defaults to systemd's $STATE_DIRECTORY, then the add-on's /data", () => {
  const opts = (env: Record<string, string>) => ({ env, meterTypes: METER_TYPES });
  const base = { dlms: { port: "/dev/null" } };
  const systemd = validateConfig(base, opts({ STATE_DIRECTORY: "/var/lib/smartmeter:/x" }));
  deepEqual([systemd.stateDir, systemd.stateDirFrom], ["/var/lib/smartmeter", "STATE_DIRECTORY"]);
  const addon = validateConfig(base, opts({ SUPERVISOR_TOKEN: "t" }));
  deepEqual([addon.stateDir, addon.stateDirFrom], ["/data", "add-on"]);
  const given = validateConfig(
    { ...base, state_dir: "/srv/meter" },
    opts({ STATE_DIRECTORY: "/var/lib/smartmeter" }),
  );
  deepEqual([given.stateDir, given.stateDirFrom], ["/srv/meter", "state_dir"]);
  const none = validateConfig(base, opts({}));
  deepEqual([none.stateDir, none.stateDirFrom], [null, null]);
});

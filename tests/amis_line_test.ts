/**
 * The AMIS handshake on real pseudo-terminals: a simulated meter (lib/amis_simulator.ts on
 * the pty's master) against the daemon's own read loop on the slave, as on an IR head.
 * Everything waits for events (with a generous bound), never for fixed times; the meter's
 * own 0.5 s deadline is the only timing that is judged.
 */

import { deepEqual, equal, match, ok as assert } from "node:assert/strict";
import { toHex } from "../lib/bytes.ts";
import { type AmisFrame, AmisSimulator } from "../lib/amis_simulator.ts";
import { runAmisLine } from "../lib/amis_line.ts";
import { validateConfig } from "../lib/config.ts";
import { METER_TYPES } from "../lib/cosem/interpret.ts";
import { runDaemon } from "../lib/daemon.ts";
import { memoryLogger } from "../lib/log.ts";
import { Decoder, type TelegramResult } from "../lib/pipeline.ts";
import { probeLine, serialSource } from "../lib/sources/open.ts";
import { PseudoTerminal } from "../lib/sources/pty.ts";
import { readResilient, writeReplies } from "../lib/sources/source.ts";
import { tcpSource } from "../lib/sources/tcp.ts";
import { fixture } from "./fixtures.ts";
import { hasPseudoTerminals } from "./pty_support.ts";

const KEY = Uint8Array.from({ length: 16 }, (_, i) => 0x11 * (i % 16));
const KEY_HEX = toHex(KEY);
const hasPty = hasPseudoTerminals("amis_line_test.ts");

/** Resolves once `cond()` holds; fails naming `what` after `timeoutMs`. */
async function until(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > timeoutMs) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A meter on a new pty, running until `stop()`. */
async function meterOnPty(
  opts: { echo?: boolean; maxMissed?: number; startAfter?: Promise<void> },
) {
  const pty = PseudoTerminal.open();
  const meter = await AmisSimulator.create({
    key: KEY,
    seed: 3,
    searchPeriodMs: 300,
    framePeriodMs: 600,
    ackTimeoutMs: 500,
    maxMissed: opts.maxMissed ?? 3,
  });
  const frames: AmisFrame[] = [];
  const ac = new AbortController();
  const running = (async () => {
    await opts.startAfter;
    await runAmisLine(pty, meter, {
      signal: ac.signal,
      echo: opts.echo ?? false,
      onFrame: (f) => frames.push(f),
    });
  })();
  return {
    pty,
    meter,
    frames,
    async stop() {
      ac.abort();
      await running;
      await pty.whenIdle();
      pty.close();
    },
  };
}

const lineConfig = (port: string, key = KEY_HEX) =>
  validateConfig({ meter_type: "amis", dlms: { port, key }, mqtt: { host: "localhost" } }, {
    env: {},
    meterTypes: METER_TYPES,
  });

/** The daemon (no MQTT) reading `port` until `stop()`, collecting its telegrams. */
function daemon(port: string, results: TelegramResult[], key = KEY_HEX) {
  const ac = new AbortController();
  const { logger, lines } = memoryLogger("info");
  const run = runDaemon({
    config: lineConfig(port, key),
    logger,
    signal: ac.signal,
    version: "test",
    mqtt: false,
    onResult: (r) => results.push(r),
  });
  return {
    lines,
    async stop() {
      ac.abort();
      equal(await run, 0);
    },
  };
}

const decodedOf = (results: TelegramResult[]) => results.filter((r) => r.ok);

/** Every decoded reading is the frame the meter sent with that access number. */
function assertDecodedAsSent(results: TelegramResult[], frames: AmisFrame[]): void {
  const byAccess = new Map(frames.filter((f) => f.kind === "data").map((f) => [f.access, f]));
  for (const r of results) {
    assert(r.ok, JSON.stringify(r));
    const f = byAccess.get(r.reading.frame_counter);
    assert(f, `no frame with access number ${r.reading.frame_counter}`);
    deepEqual(r.reading.values, f.values);
    equal(r.reading.time, f.time);
  }
}

Deno.test({
  name:
    "runDaemon answers an AMIS meter in time, decodes every frame, and finds it again after being away",
  ignore: !hasPty,
  async fn() {
    const m = await meterOnPty({ maxMissed: 3 });
    const results: TelegramResult[] = [];
    try {
      // 1. The meter searches; the daemon answers; data flows, each frame answered.
      const first = daemon(m.pty.path, results);
      await until("5 telegrams", () => decodedOf(results).length >= 5);
      equal(m.meter.stats.missed, 0, "every frame answered within 0.5 s");
      await first.stop();

      // 2. The reader is away: the meter misses its answers and goes back to searching.
      await until("the meter to fall back", () => m.meter.stats.fallbacks === 1);
      const searchesBefore = m.meter.stats.searches;
      await until("a search nobody answers", () => m.meter.stats.searches > searchesBefore);
      equal(m.meter.state, "searching");

      // 3. A reader again: the next search is answered and data flows once more.
      const decodedBefore = decodedOf(results).length;
      const second = daemon(m.pty.path, results);
      await until("3 more telegrams", () => decodedOf(results).length >= decodedBefore + 3);
      await second.stop();
    } finally {
      await m.stop();
    }
    const s = m.meter.stats;
    // Only the frames sent while no reader was there went unanswered: exactly the three
    // that made the meter search again.
    deepEqual([s.missed, s.fallbacks], [3, 1]);
    assert(s.latenciesMs.every((ms) => ms <= 500));
    // Every frame the meter saw answered was decoded, and decoded to what it sent.
    const decoded = new Set(decodedOf(results).map((r) => r.ok && r.reading.frame_counter));
    for (const access of s.answeredAccess) assert(decoded.has(access), `frame ${access}`);
    assertDecodedAsSent(results, m.frames);
    const sorted = [...s.latenciesMs].sort((a, b) => a - b);
    console.log(
      `AMIS answers on a pty: ${sorted.length}, median ${
        sorted[sorted.length >> 1]!.toFixed(1)
      } ms, ` +
        `max ${sorted.at(-1)!.toFixed(1)} ms`,
    );
  },
});

Deno.test({
  name: "An echoing IR head: our E5 comes back, is dropped as an echo, and no frame is lost",
  ignore: !hasPty,
  async fn() {
    const m = await meterOnPty({ echo: true });
    const decoder = await Decoder.create({ key: KEY });
    const results: TelegramResult[] = [];
    const ac = new AbortController();
    const { logger } = memoryLogger();
    const log = logger.get("test");
    // The daemon's own loop, to look at the decoder's counters afterwards.
    const source = serialSource(lineConfig(m.pty.path).source, { log });
    const reading = (async () => {
      for await (const chunk of readResilient(source, { signal: ac.signal, log })) {
        const fed = decoder.feed(chunk, performance.now());
        writeReplies(source, fed.replies, (e) => log.error(e.message));
        results.push(...await fed.results);
      }
    })();
    try {
      await until("4 telegrams", () => decodedOf(results).length >= 4);
    } finally {
      ac.abort();
      await reading;
      await m.stop();
    }
    deepEqual(results.filter((r) => !r.ok), []);
    assertDecodedAsSent(results, m.frames);
    const st = decoder.stats;
    equal(m.meter.stats.missed, 0);
    // The search and every frame were answered, and every answer came back as an echo.
    assert(st.echoBytes >= 5, `echo bytes ${st.echoBytes}`);
    // (The echo of the very last answer may still have been on its way at the stop.)
    assert(st.replies - st.echoBytes <= 1, `${st.replies} answers, ${st.echoBytes} echoed`);
    equal(st.skippedBytes, 0, "an echo is no garbage");
  },
});

Deno.test({
  name: "runDaemon answers AMIS frames it cannot decrypt: a wrong key keeps the meter sending",
  ignore: !hasPty,
  async fn() {
    const m = await meterOnPty({});
    const results: TelegramResult[] = [];
    const wrong = "ffeeddccbbaa99887766554433221100";
    const d = daemon(m.pty.path, results, wrong);
    try {
      await until("3 failed telegrams", () => results.length >= 3);
    } finally {
      await d.stop();
      await m.stop();
    }
    for (const r of results) {
      assert(!r.ok);
      equal(r.stage, "decrypt");
      match(r.error, /^Decryption gave no OMS data .*: wrong key/);
    }
    equal(m.meter.stats.missed, 0, "answered at framing time, before decryption");
    match(d.lines.join("\n"), /Telegram failed at decrypt: Decryption gave no OMS data/);
  },
});

Deno.test({
  name:
    "probeLine() finds a searching AMIS meter at 9600 8E1, listening there for its search, and answers it",
  ignore: !hasPty,
  async fn() {
    const { logger, lines } = memoryLogger();
    let atSearchLine!: () => void;
    const searchLine = new Promise<void>((resolve) => (atSearchLine = resolve));
    // The meter's first search comes only once the probe listens at 9600 8E1, after the
    // shorter windows of the settings before it have passed in silence.
    const m = await meterOnPty({ startAfter: searchLine });
    const watcher = until("the probe at 9600 8E1", () => lines.some((l) => /9600 8E1/.test(l)))
      .then(atSearchLine);
    const ac = new AbortController();
    try {
      const { port, options } = await probeLine(m.pty.path, ac.signal, {
        log: logger.get("probe"),
        probeMs: 50,
        searchProbeMs: 10_000,
      });
      port.close();
      deepEqual([options.baudRate, options.parity], [9600, "even"]);
      await watcher;
      await until("the meter to send data", () => m.meter.state === "sending");
    } finally {
      ac.abort();
      await m.stop();
    }
    const text = lines.join("\n");
    match(
      text,
      /listening at 9600 8E1 on .* for up to 10 s \(a Netz OÖ AMIS meter searches for its reader once a minute\)/,
    );
    match(text, /frames arrive at 9600 8E1/);
  },
});

Deno.test("runDaemon answers an AMIS meter behind a TCP serial server (ser2net)", async () => {
  // The meter end of a TCP bridge: a search, then one frame, each to be answered with E5.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const frame = fixture("netzooe_siemens-amis_3");
  const answers: string[] = [];
  const server = (async () => {
    const conn = await listener.accept();
    const buf = new Uint8Array(16);
    for (const bytes of [Uint8Array.of(0x10, 0x40, 0xf0, 0x30, 0x16), frame.bytes]) {
      await conn.write(bytes);
      const n = await conn.read(buf);
      answers.push(toHex(buf.subarray(0, n ?? 0)));
    }
    return conn;
  })();
  const results: TelegramResult[] = [];
  const ac = new AbortController();
  const { logger } = memoryLogger();
  const source = tcpSource("127.0.0.1", (listener.addr as Deno.NetAddr).port);
  const run = runDaemon({
    config: lineConfig("tcp://127.0.0.1:1", toHex(frame.key!)),
    logger,
    signal: ac.signal,
    version: "test",
    mqtt: false,
    source,
    onResult: (r) => results.push(r),
  });
  const conn = await server;
  await until("the telegram", () => results.length >= 1);
  ac.abort();
  equal(await run, 0);
  conn.close();
  listener.close();
  deepEqual(answers, ["e5", "e5"]);
  assert(results[0]!.ok);
  equal(results[0]!.reading.values.energy_import_wh, 17931540);
});

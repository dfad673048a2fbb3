import { deepEqual, equal, match, ok as assert, rejects } from "node:assert/strict";
import {
  judgeHealth,
  type ReadingSink,
  RepeatFolder,
  runDaemon,
  summaryLine,
} from "../lib/daemon.ts";
import { validateConfig } from "../lib/config.ts";
import { METER_TYPES } from "../lib/cosem/interpret.ts";
import type { Reading } from "../lib/cosem/reading.ts";
import type { Diagnostics, MqttSinkOptions } from "../lib/sinks/mqtt.ts";
import { memoryLogger } from "../lib/log.ts";
import { type ByteSource, readResilient } from "../lib/sources/source.ts";
import { parseTcpSpec } from "../lib/sources/tcp.ts";
import { fileSource, looksLikeHexText } from "../lib/sources/file.ts";
import { probeLine } from "../lib/sources/open.ts";
import { PseudoTerminal } from "../lib/sources/pty.ts";
import { supervisorMqtt } from "../lib/supervisor.ts";
import { MeterSimulator } from "../lib/simulator.ts";
import { fromHex, toHex } from "../lib/bytes.ts";
import { fixture } from "./fixtures.ts";

const KEY = "000102030405060708090a0b0c0d0e0f";

function config(extra: Record<string, unknown> = {}) {
  return validateConfig({
    dlms: { port: "/dev/null", key: KEY },
    mqtt: { host: "localhost" },
    ...extra,
  }, { env: {}, meterTypes: METER_TYPES });
}

/** A sink that records what the daemon gives it. */
class RecordingSink implements ReadingSink {
  readings: Reading[] = [];
  diagnostics: Diagnostics[] = [];
  started = false;
  stopped = false;
  start() {
    this.started = true;
  }
  publishReading(r: Reading) {
    this.readings.push(r);
  }
  setDiagnostics(d: Diagnostics) {
    this.diagnostics.push(d);
  }
  stop() {
    this.stopped = true;
    return Promise.resolve();
  }
}

/** A source that yields `chunks` once per open, then ends (like a peer closing). */
function streamSource(opens: Uint8Array[][], kind: ByteSource["kind"] = "file"): ByteSource {
  let n = 0;
  return {
    description: "test source",
    kind,
    open() {
      const chunks = opens[n++];
      if (!chunks) return Promise.reject(new Error("no more opens"));
      return Promise.resolve(ReadableStream.from(chunks));
    },
  };
}

async function pushes(meter: "noe_evn" | "burgenland", count: number): Promise<Uint8Array[]> {
  const sim = await MeterSimulator.create({ meter, key: fromHex(KEY) });
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    out.push((await sim.next(new Date(1_700_000_000_000 + i * 5000))).bytes);
  }
  return out;
}

Deno.test("runDaemon publishes every telegram of a replayed capture and stops at its end", async () => {
  const sink = new RecordingSink();
  const { logger, lines } = memoryLogger();
  const status = await runDaemon({
    config: config(),
    logger,
    signal: new AbortController().signal,
    version: "test",
    source: streamSource([await pushes("noe_evn", 3)]),
    createSink: () => sink,
  });
  equal(status, 0);
  assert(sink.started && sink.stopped);
  equal(sink.readings.length, 3);
  deepEqual(sink.readings.map((r) => r.frame_counter), [1, 2, 3]);
  const last = sink.diagnostics.at(-1)!;
  equal(last.decoded, 3);
  equal(last.failed, 0);
  match(lines.join("\n"), /Stopping: 3 telegrams decoded, 0 failed/);
});

Deno.test("runDaemon counts bad telegrams, folds repeated messages, and keeps going", async () => {
  const sink = new RecordingSink();
  const { logger, lines } = memoryLogger();
  const good = await pushes("noe_evn", 2);
  const wrongKey = fixture("netznoe_kaifa-ma309_1").bytes; // encrypted with another key
  const garbage = new TextEncoder().encode("\x00\x01garbage on the line\xff");
  const results: boolean[] = [];
  const status = await runDaemon({
    config: config(),
    logger,
    signal: new AbortController().signal,
    version: "test",
    source: streamSource([[wrongKey, garbage, good[0]!, wrongKey, wrongKey, good[1]!]]),
    createSink: () => sink,
    onResult: (r) => results.push(r.ok),
  });
  equal(status, 0);
  equal(sink.readings.length, 2);
  deepEqual(results, [false, true, false, false, true]);
  const d = sink.diagnostics.at(-1)!;
  equal(d.decoded, 2);
  equal(d.failed, 3);
  match(d.lastError!, /^decrypt: .*wrong key/);
  const warnings = lines.filter((l) => l.includes("Telegram failed at decrypt"));
  equal(warnings.length, 1, "the same failure is logged once, then folded");
});

Deno.test("runDaemon says once which named values it withholds, and why", async () => {
  const sink = new RecordingSink();
  const { logger, lines } = memoryLogger();
  const cyprus = fixture("cyprus_landis-gyr-e450_1").bytes; // no scaler, no manufacturer
  const status = await runDaemon({
    config: config(),
    logger,
    signal: new AbortController().signal,
    version: "test",
    source: streamSource([[cyprus, cyprus, cyprus]]),
    createSink: () => sink,
  });
  equal(status, 0);
  equal(sink.readings.length, 3);
  deepEqual(sink.readings[0]!.values, {});
  const warnings = lines.filter((l) => l.includes("Named values withheld: Scale unknown for"));
  equal(warnings.length, 1, "logged once, then folded");
  match(warnings[0]!, /current_l1_a.*nothing in the telegram names the manufacturer/);
});

Deno.test("runDaemon never logs the keys or the password, even at debug", async () => {
  const { logger, lines } = memoryLogger("debug");
  const cfg = config({
    logging: "debug",
    dlms: { port: "/dev/null", key: KEY, auth_key: "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf" },
    mqtt: { host: "localhost", user: "u", password: "s3cret-pass" },
  });
  const { redactSecrets } = await import("../lib/commands/setup.ts");
  redactSecrets(logger, cfg);
  // A message that would leak them, as a careless log line might.
  logger.get("x").debug(
    `key ${KEY.toUpperCase()} auth d0d1d2d3d4d5d6d7d8d9dadbdcdddedf pw s3cret-pass`,
  );
  await runDaemon({
    config: cfg,
    logger,
    signal: new AbortController().signal,
    version: "test",
    source: streamSource([await pushes("burgenland", 2)]),
    createSink: () => new RecordingSink(),
  });
  const all = lines.join("\n").toLowerCase();
  assert(!all.includes(KEY), "no key");
  assert(!all.includes("d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"), "no auth key");
  assert(!all.includes("s3cret-pass"), "no password");
  match(all, /\*\*\*/);
});

Deno.test("runDaemon asks the Supervisor for the broker when mqtt.host is empty", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    if (req.headers.get("authorization") !== "Bearer tok") {
      return new Response("no", { status: 401 });
    }
    return Response.json({
      result: "ok",
      data: {
        host: "core-mosquitto",
        port: 1884,
        ssl: false,
        username: "addons",
        password: "pw",
        protocol: "3.1.1",
      },
    });
  });
  try {
    const url = `http://127.0.0.1:${server.addr.port}`;
    let seen: MqttSinkOptions | null = null;
    const env = { SUPERVISOR_TOKEN: "tok", SUPERVISOR_URL: url };
    const cfg = validateConfig({ dlms: { port: "/dev/null", key: KEY }, mqtt: { host: "" } }, {
      env,
      meterTypes: METER_TYPES,
    });
    const status = await runDaemon({
      config: cfg,
      logger: memoryLogger().logger,
      signal: new AbortController().signal,
      version: "test",
      env,
      source: streamSource([[]]),
      createSink: (o) => {
        seen = o;
        return new RecordingSink();
      },
    });
    equal(status, 0);
    const c = (seen as MqttSinkOptions | null)!.config;
    deepEqual([c.host, c.port, c.user, c.password], ["core-mosquitto", 1884, "addons", "pw"]);

    // Wrong token: a clear error, exit 78 (a config problem systemd must not loop on).
    const bad = await runDaemon({
      config: cfg,
      logger: memoryLogger().logger,
      signal: new AbortController().signal,
      version: "test",
      env: { SUPERVISOR_TOKEN: "nope", SUPERVISOR_URL: url },
      source: streamSource([[]]),
      createSink: () => new RecordingSink(),
    });
    equal(bad, 78);
  } finally {
    await server.shutdown();
  }
});

Deno.test("supervisorMqtt() reads the service and explains each failure", async () => {
  const ok = await supervisorMqtt(
    "t",
    "http://x",
    () =>
      Promise.resolve(
        Response.json({ data: { host: "h", port: 1883, ssl: true, username: "u", password: "p" } }),
      ),
  );
  deepEqual(ok, { host: "h", port: 1883, ssl: true, username: "u", password: "p", protocol: null });
  await rejects(
    supervisorMqtt("t", "http://x", () => Promise.resolve(new Response("", { status: 400 }))),
    /no MQTT service for this add-on \(HTTP 400\): install the Mosquitto broker add-on/,
  );
  await rejects(
    supervisorMqtt("t", "http://x", () => Promise.resolve(new Response("<html>"))),
    /answer about MQTT is not JSON/,
  );
  await rejects(
    supervisorMqtt("t", "http://x", () => Promise.resolve(Response.json({ data: {} }))),
    /names no host/,
  );
  await rejects(
    supervisorMqtt("t", "http://x", () => Promise.reject(new TypeError("dns"))),
    /Cannot reach the Supervisor at http:\/\/x: dns/,
  );
});

Deno.test("readResilient() logs one line per outage and says when the source is back", async () => {
  const { logger, lines } = memoryLogger();
  let opens = 0;
  const ac = new AbortController();
  const source: ByteSource = {
    description: "/dev/ttyUSB9",
    kind: "serial",
    open() {
      opens++;
      // open 1 works and ends (unplug); opens 2-4 fail (still unplugged); open 5 works.
      if (opens === 1 || opens === 5) {
        return Promise.resolve(ReadableStream.from([Uint8Array.of(opens)]));
      }
      return Promise.reject(new Error("No such device /dev/ttyUSB9"));
    },
  };
  let clock = 0;
  const got: number[] = [];
  for await (
    const chunk of readResilient(source, {
      signal: ac.signal,
      log: logger.get("source"),
      now: () => clock += 1000,
      backoff: () => 1,
    })
  ) {
    got.push(chunk[0]!);
    if (got.length === 2) ac.abort();
  }
  deepEqual(got, [1, 5]);
  const warnings = lines.filter((l) => l.startsWith("WARNING"));
  equal(warnings.length, 1, warnings.join("\n"));
  match(warnings[0]!, /Lost \/dev\/ttyUSB9: the other side closed the connection; reconnecting/);
  match(lines.join("\n"), /\/dev\/ttyUSB9 is back after \d+\.\d s/);
});

Deno.test("readResilient() reads a file source once and fails on an unreadable one", async () => {
  const { logger } = memoryLogger();
  const signal = new AbortController().signal;
  const chunks: Uint8Array[] = [];
  for await (
    const c of readResilient(streamSource([[Uint8Array.of(1), Uint8Array.of(2)]]), {
      signal,
      log: logger.get("t"),
    })
  ) {
    chunks.push(c);
  }
  equal(chunks.length, 2);
  await rejects(async () => {
    for await (
      const _ of readResilient(fileSource("/nonexistent/capture.hex"), {
        signal,
        log: logger.get("t"),
      })
    ) {
      // nothing
    }
  }, /No such file/);
});

Deno.test("fileSource() replays hex text and raw bytes alike", async () => {
  const f = fixture("netznoe_kaifa-ma309_1");
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/c.hex`, f.hex.replace(/(.{64})/g, "$1\n"));
    await Deno.writeFile(`${dir}/c.bin`, f.bytes);
    for (const name of ["c.hex", "c.bin"]) {
      const stream = await fileSource(`${dir}/${name}`).open(new AbortController().signal);
      const parts: Uint8Array[] = [];
      for await (const c of stream) parts.push(c);
      equal(toHex(Uint8Array.from(parts.flatMap((p) => [...p]))), f.hex, name);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assert(looksLikeHexText(new TextEncoder().encode("68 fa fa 68\n")));
  assert(!looksLikeHexText(Uint8Array.of(0x68, 0xfa, 0xfa, 0x68)));
});

Deno.test("parseTcpSpec() reads tcp://host:port and refuses the rest", () => {
  deepEqual(parseTcpSpec("tcp://192.0.2.7:2001"), { hostname: "192.0.2.7", port: 2001 });
  deepEqual(parseTcpSpec("tcp://[::1]:23"), { hostname: "::1", port: 23 });
  deepEqual(parseTcpSpec("tcp://esp-meter.local:8888/"), {
    hostname: "esp-meter.local",
    port: 8888,
  });
  equal(parseTcpSpec("tcp://host"), null);
  equal(parseTcpSpec("tcp://host:70000"), null);
  equal(parseTcpSpec("/dev/ttyUSB0"), null);
});

Deno.test("probeLine() finds the line setting at which frames arrive", async () => {
  const pty = PseudoTerminal.open();
  const { logger, lines } = memoryLogger();
  const frames = await pushes("burgenland", 3);
  const ac = new AbortController();
  const writer = (async () => {
    for (const f of frames) {
      await new Promise((r) => setTimeout(r, 150));
      if (ac.signal.aborted) return;
      await pty.write(f);
    }
  })();
  try {
    const { port, options } = await probeLine(pty.path, ac.signal, {
      log: logger.get("p"),
      probeMs: 2000,
    });
    port.close();
    equal(options.baudRate, 9600);
    match(lines.join("\n"), /frames arrive at 9600 8N1/);
  } finally {
    ac.abort();
    await writer;
    pty.close();
  }
});

Deno.test("probeLine() gives up with a clear message when no setting yields a frame", async () => {
  const pty = PseudoTerminal.open();
  const { logger } = memoryLogger();
  try {
    await rejects(
      probeLine(pty.path, new AbortController().signal, {
        log: logger.get("p"),
        probeMs: 20,
        searchProbeMs: 20,
      }),
      /No frame found at any of \d+ line settings on .*: check the wiring/,
    );
  } finally {
    pty.close();
  }
});

Deno.test("RepeatFolder logs a message once per window and counts the repeats", () => {
  const f = new RepeatFolder(1000);
  equal(
    f.line("Telegram failed at decrypt: wrong key (byte 12)", 0),
    "Telegram failed at decrypt: wrong key (byte 12)",
  );
  equal(
    f.line("Telegram failed at decrypt: wrong key (byte 40)", 10),
    null,
    "numbers do not make it new",
  );
  equal(f.line("Telegram failed at framing: checksum", 20), "Telegram failed at framing: checksum");
  equal(
    f.line("Telegram failed at decrypt: wrong key (byte 12)", 2000),
    "Telegram failed at decrypt: wrong key (byte 12) (and 1 more like it since the last report)",
  );
});

Deno.test("judgeHealth() names what stopped: bytes, frames or telegrams", () => {
  const a = { bytes: 10, frames: 1, decoded: 1 };
  equal(judgeHealth(a, { bytes: 20, frames: 2, decoded: 2 }), "ok");
  equal(judgeHealth(a, a), "no-bytes");
  equal(judgeHealth(a, { bytes: 50, frames: 1, decoded: 1 }), "no-frames");
  equal(judgeHealth(a, { bytes: 50, frames: 3, decoded: 1 }), "no-telegrams");
});

Deno.test("runDaemon warns when the input stops making sense, and when it recovers", async () => {
  const { logger, lines } = memoryLogger();
  const ac = new AbortController();
  const good = await pushes("noe_evn", 1);
  let open = 0;
  const source: ByteSource = {
    description: "pty",
    kind: "serial",
    open(signal) {
      open++;
      if (open > 1) return new Promise(() => {}); // never again
      return Promise.resolve(
        new ReadableStream<Uint8Array>({
          async start(c) {
            c.enqueue(new TextEncoder().encode("noise noise noise"));
            await new Promise((r) => setTimeout(r, 120));
            c.enqueue(good[0]!);
            await new Promise((r) => setTimeout(r, 120));
            signal.addEventListener("abort", () => c.close());
          },
        }),
      );
    },
  };
  const run = runDaemon({
    config: config(),
    logger,
    signal: ac.signal,
    version: "test",
    source,
    createSink: () => new RecordingSink(),
    healthEveryMs: 50,
  });
  await new Promise((r) => setTimeout(r, 400));
  ac.abort();
  equal(await run, 0);
  const text = lines.join("\n");
  match(text, /Bytes arrive from pty but no frame in 0 s: check the baud rate and parity/);
  match(text, /Telegrams are decoding again/);
  match(text, /No bytes from pty for 0 s/);
});

Deno.test("runDaemon stopped by its signal reports no failure for a live source", async () => {
  const sink = new RecordingSink();
  const { logger, lines } = memoryLogger();
  const ac = new AbortController();
  const source: ByteSource = {
    description: "/dev/ttyUSB0",
    kind: "serial",
    open: (signal) =>
      Promise.resolve(
        new ReadableStream<Uint8Array>({
          start(c) {
            signal.addEventListener("abort", () => c.close());
          },
        }),
      ),
  };
  const run = runDaemon({
    config: config(),
    logger,
    signal: ac.signal,
    version: "test",
    source,
    createSink: () => sink,
  });
  await new Promise((r) => setTimeout(r, 50));
  ac.abort();
  equal(await run, 0);
  equal(sink.diagnostics.length, 0, "no telegram result at all");
  match(lines.join("\n"), /Stopping: 0 telegrams decoded, 0 failed/);
});

/** A sink that takes readings only while `open` is true, like MQTT with a backed-up socket. */
class StallingSink extends RecordingSink {
  open = true;
  readyCalls = 0;
  #waiters: ((ok: boolean) => void)[] = [];
  get writable() {
    return this.open;
  }
  ready(timeoutMs: number): Promise<boolean> {
    this.readyCalls++;
    if (this.open) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.#waiters.push((ok) => {
        clearTimeout(timer);
        resolve(ok);
      });
    });
  }
  override publishReading(r: Reading) {
    if (!this.open) throw new Error("a reading was given while the sink could not take it");
    super.publishReading(r);
  }
  setOpen(open: boolean) {
    this.open = open;
    if (open) { for (const w of this.#waiters.splice(0)) w(true); }
  }
}

Deno.test("runDaemon reads a capture only as fast as the sink takes it: a stall pauses the file, nothing is lost", async () => {
  const frames = await pushes("noe_evn", 12);
  let pulled = 0;
  const source: ByteSource = {
    description: "capture.hex",
    kind: "file",
    open: () =>
      Promise.resolve(
        new ReadableStream<Uint8Array>({
          pull(c) {
            if (pulled === frames.length) c.close();
            else c.enqueue(frames[pulled++]!);
          },
        }, { highWaterMark: 0 }),
      ),
  };
  const sink = new StallingSink();
  const { logger } = memoryLogger();
  const run = runDaemon({
    config: config(),
    logger,
    signal: new AbortController().signal,
    version: "test",
    source,
    createSink: () => sink,
    onResult: (r) => {
      // The broker stops taking states after the third telegram.
      if (r.ok && r.reading.frame_counter === 3) sink.setOpen(false);
    },
  });
  await new Promise((r) => setTimeout(r, 300));
  equal(sink.readings.length, 2, "the third reading waits for the sink");
  assert(pulled <= 4, `the file is not read ahead while the sink stalls (${pulled} chunks read)`);
  sink.setOpen(true);
  equal(await run, 0);
  deepEqual(sink.readings.map((r) => r.frame_counter), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
});

Deno.test("runDaemon does not hold back a live source for a stalled sink", async () => {
  const frames = await pushes("noe_evn", 5);
  const sink = new StallingSink();
  sink.open = false;
  const ac = new AbortController();
  const received: number[] = [];
  const { logger } = memoryLogger();
  sink.publishReading = (r) => void received.push(r.frame_counter!); // takes all, never asked
  const run = runDaemon({
    config: config(),
    logger,
    signal: ac.signal,
    version: "test",
    source: streamSource([frames], "tcp"),
    createSink: () => sink,
    onResult: (r) => {
      if (r.ok && r.reading.frame_counter === 5) ac.abort();
    },
  });
  equal(await run, 0);
  deepEqual(received, [1, 2, 3, 4, 5]);
  equal(sink.readyCalls, 0, "a live meter never waits for the broker");
});

Deno.test("summaryLine() sums up an hour: decoded, failed, published and superseded", () => {
  const from = { at: 0, decoded: 10, failed: 1, published: 4, superseded: 6 };
  const to = { at: 3_600_000, decoded: 730, failed: 1, published: 124, superseded: 606 };
  equal(
    summaryLine(from, to),
    "Last 60 min: 720 telegrams decoded, 0 failed; 120 states published, 600 superseded " +
      "(newer ones replaced them within the publish interval or while MQTT was slow or away)",
  );
  equal(
    summaryLine({ at: 0, decoded: 0, failed: 0 }, { at: 60_000, decoded: 3, failed: 2 }),
    "Last 1 min: 3 telegrams decoded, 2 failed",
  );
});

Deno.test("runDaemon logs the hourly summary with the sink's counts", async () => {
  const frames = await pushes("noe_evn", 3);
  const sink = new RecordingSink() as RecordingSink & {
    stats: { published: number; superseded: number };
  };
  sink.stats = { published: 0, superseded: 0 };
  sink.publishReading = function (r) {
    this.readings.push(r);
    this.stats.published++;
  };
  let clock = 0;
  const ac = new AbortController();
  const { logger, lines } = memoryLogger();
  const run = runDaemon({
    config: config(),
    logger,
    signal: ac.signal,
    version: "test",
    source: streamSource([frames], "tcp"),
    createSink: () => sink,
    now: () => clock,
    healthEveryMs: 10,
  });
  await new Promise((r) => setTimeout(r, 100));
  clock = 3_600_000;
  await new Promise((r) => setTimeout(r, 100));
  ac.abort();
  await run;
  const summary = lines.find((l) => l.includes("Last 60 min"));
  match(summary ?? "", /3 telegrams decoded, 0 failed; 3 states published, 0 superseded/);
});

Deno.test("a line-rate flood of junk from a TCP bridge gives a handful of log lines, with counts", async () => {
  // What a bridge at the wrong speed, or a noisy line, delivers: damaged frames whose
  // checksums vary, frames under another key whose first decrypted byte varies, noise.
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const good = fixture("burgenland_landis-gyr-e450_1").bytes;
  const other = await MeterSimulator.create({
    meter: "noe_evn",
    key: fromHex("ffeeddccbbaa99887766554433221100"),
  });
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < 1500; i++) {
    if (i % 3 === 0) {
      const damaged = good.slice();
      damaged[10 + Math.floor(random() * (damaged.length - 12))]! ^= 1 + Math.floor(random() * 254);
      chunks.push(damaged);
    } else if (i % 3 === 1) {
      chunks.push((await other.next(new Date(1.7e12 + i * 5000))).bytes);
    } else {
      chunks.push(Uint8Array.from({ length: 64 }, () => Math.floor(random() * 256)));
    }
  }
  const ac = new AbortController();
  const { logger, lines } = memoryLogger("info");
  let opens = 0;
  const results: boolean[] = [];
  await runDaemon({
    config: config(),
    logger,
    signal: ac.signal,
    version: "test",
    mqtt: false,
    onResult: (r) => results.push(r.ok),
    source: {
      description: "tcp://192.168.1.20:23",
      kind: "tcp",
      open: () => {
        if (opens++ > 0) {
          ac.abort();
          return Promise.reject(new Error("gone"));
        }
        return Promise.resolve(ReadableStream.from(chunks));
      },
    },
  });
  assert(results.length > 900, `${results.length} failures were counted`);
  const warnings = lines.filter((l) => l.startsWith("WARNING smartmeter:telegram"));
  assert(warnings.length <= 6, `${warnings.length} warning lines:\n${warnings.join("\n")}`);
});

Deno.test("RepeatFolder folds by the kind of problem: varying numbers, bytes and ids do not count", () => {
  const f = new RepeatFolder(60_000);
  const kinds = [
    "Telegram failed at decrypt: Decryption gave no DLMS APDU (first byte 0x43): wrong key",
    "Telegram failed at decrypt: Decryption gave no DLMS APDU (first byte 0x4c): wrong key",
    "Telegram failed at decrypt: Decryption gave no DLMS APDU (first byte 0xfe): wrong key",
    "Telegram failed at framing: Bad HDLC frame checksum: computed 0xc189, frame says 0x986b (byte 0)",
    "Telegram failed at framing: Bad HDLC frame checksum: computed 0xffee, frame says 0x98ab (byte 936)",
    "Telegram failed at counter: Replayed frame counter: 5 after 9 from system title 4c475a6772a9a111",
    "Telegram failed at counter: Replayed frame counter: 7 after 9 from system title 4b464d6750000001",
    'Telegram failed at cosem: No known layout for "structure(14)"',
    'Telegram failed at cosem: No known layout for "array(3)"',
  ];
  const logged = kinds.map((k, i) => f.line(k, i)).filter((l) => l !== null);
  equal(logged.length, 4, logged.join("\n"));
  // Different problems stay apart.
  assert(f.line("Telegram failed at decrypt: Authentication tag mismatch", 20) !== null);
});

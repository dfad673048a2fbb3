/**
 * `smartmeter run` as a real process (`deno run -A main.ts run -c <tmp config>`) against a
 * real Mosquitto (tests/e2e/mosquitto.ts): the meter is a pseudo-terminal behind a
 * symlink (as /dev/serial/by-id/... is), a TCP server, or a capture file, fed with
 * encrypted pushes of the simulator (lib/simulator.ts). What the tests look at is only
 * what a user sees: MQTT messages, log lines, the exit status.
 *
 * Skipped, with a message, when mosquitto is not installed (and the pseudo-terminal tests
 * when /dev/ptmx is absent).
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { fromHex, toHex } from "../../lib/bytes.ts";
import { MeterSimulator, type SimulatedMeter } from "../../lib/simulator.ts";
import { DEMO_AUTH_KEY, DEMO_KEY } from "../../lib/commands/simulate.ts";
import { type Broker, brokerMissing, startBroker } from "./mosquitto.ts";
import {
  type Message,
  PtyMeter,
  retainedMessage,
  sleep,
  Smartmeter,
  Subscriber,
  tempDir,
  waitUntil,
  writeConfig,
} from "./process.ts";
import { hasPseudoTerminals } from "../pty_support.ts";

const missing = brokerMissing();
if (missing !== null) console.log(`daemon_e2e_test.ts: ${missing}`);
const hasPty = hasPseudoTerminals("daemon_e2e_test.ts");

const TOPICS = {
  discovery: "homeassistant/device/smartmeter/config",
  state: "smartmeter/state",
  availability: "smartmeter/availability",
  diagnostics: "smartmeter/diagnostics",
};

/** Time between two pushes of the simulated meter, ms. */
const PUSH_MS = 300;

// ---- the simulated meter ----

/** One push written to the daemon. */
interface Sent {
  /** The meter's clock at the push (the telegram's date-time). */
  time: Date;
  values: Record<string, number>;
  /** null for layouts that carry no meter id (Wiener Netze's structure(9)). */
  meterId: string | null;
}

async function simulator(
  meter: SimulatedMeter,
  key = DEMO_KEY,
  authKey: string | null = null,
): Promise<MeterSimulator> {
  return await MeterSimulator.create({
    meter,
    key: fromHex(key),
    authKey: authKey === null ? null : fromHex(authKey),
  });
}

/** The next push of `sim`, written with `write`; recorded in `sent`. */
async function push(
  sim: MeterSimulator,
  write: (bytes: Uint8Array) => Promise<unknown>,
  sent: Sent[],
): Promise<void> {
  const time = new Date();
  const t = await sim.next(time);
  await write(t.bytes);
  sent.push({ time, values: { ...t.values }, meterId: t.meterId });
}

/** Writes a push every {@link PUSH_MS} in the background until stopped. */
class Feeder {
  readonly sent: Sent[] = [];
  #stopped = false;
  #loop: Promise<void> | null = null;

  constructor(
    private readonly sim: MeterSimulator,
    private readonly write: (bytes: Uint8Array) => Promise<unknown>,
  ) {}

  start(): this {
    this.#loop = (async () => {
      while (!this.#stopped) {
        await push(this.sim, this.write, this.sent);
        await sleep(PUSH_MS);
      }
    })();
    return this;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }
}

// ---- configs and assertions ----

function baseConfig(port: string, brokerPort: number, over: Record<string, unknown> = {}) {
  const { dlms, mqtt, ...rest } = over as {
    dlms?: Record<string, unknown>;
    mqtt?: Record<string, unknown>;
  };
  return {
    logging: "info",
    dlms: { port, baudrate: 9600, key: DEMO_KEY, ...dlms },
    mqtt: { host: "127.0.0.1", port: brokerPort, publish_interval: 0, ...mqtt },
    ...rest,
  };
}

/** The push a state message shows: every simulated value equal, the time to the second. */
function matchesPush(state: Record<string, unknown>, s: Sent): boolean {
  return state.meter_id === s.meterId &&
    Date.parse(String(state.time)) === Math.floor(s.time.getTime() / 1000) * 1000 &&
    Object.entries(s.values).every(([k, v]) => state[k] === v);
}

/**
 * Asserts that every state message is one of the pushes, in the order they were sent, and
 * returns the indices of the pushes seen, in order and without repeats. A message may
 * repeat the push before it: the announcement after a (re)connect sends the last state
 * again.
 */
function assertStatesArePushes(states: Message[], sent: Sent[]): number[] {
  const seen: number[] = [];
  for (const m of states) {
    const state = JSON.parse(m.payload) as Record<string, unknown>;
    const last = seen.at(-1) ?? -1;
    if (last >= 0 && matchesPush(state, sent[last]!)) continue;
    const i = sent.findIndex((s, j) => j > last && matchesPush(state, s));
    ok(
      i >= 0,
      `state ${m.payload} matches no push sent after push ${last}; pushes with its power: ${
        JSON.stringify(
          sent.map((s, j) => ({ j, ...s })).filter((s) =>
            s.values.power_import_w === state.power_import_w
          ),
        )
      }`,
    );
    // The add-on's short keys mirror the named values.
    equal(state.total_con, state.energy_import_wh);
    equal(state.w_con, state.power_import_w);
    seen.push(i);
  }
  return seen;
}

/** Starts a broker (and a subscriber on `#`), runs `body`, stops everything. */
async function withBroker(
  body: (broker: Broker, watcher: Subscriber, dir: string) => Promise<void>,
  options: Parameters<typeof startBroker>[0] = {},
  auth: { username?: string; password?: string } = {},
): Promise<void> {
  const broker = await startBroker(options);
  await using dir = await tempDir();
  let watcher: Subscriber | null = null;
  try {
    watcher = await Subscriber.open(broker.port, auth);
    await body(broker, watcher, dir.path);
  } catch (e) {
    console.log(`mosquitto log:\n${broker.log()}`);
    throw e;
  } finally {
    await watcher?.close();
    await broker.close();
  }
}

/** Runs `body` with the daemon process, stopping it (and printing its log on failure). */
async function withDaemon(
  config: string,
  body: (p: Smartmeter) => Promise<void>,
): Promise<Smartmeter> {
  const p = Smartmeter.spawn(["run", "-c", config]);
  try {
    await body(p);
  } catch (e) {
    console.log(`smartmeter output:\n${p.output}`);
    throw e;
  } finally {
    await p.stop();
  }
  return p;
}

const ptyTest = { ignore: missing !== null || !hasPty };

// ---- 1. serial through a pseudo-terminal ----

Deno.test({
  name: "run reads a serial port behind a symlink and publishes discovery, online and states",
  ...ptyTest,
  fn: () =>
    withBroker(async (broker, watcher, dir) => {
      const meter = await PtyMeter.open(dir);
      const config = await writeConfig(dir, baseConfig(meter.link, broker.port));
      const feeder = new Feeder(await simulator("noe_evn"), meter.write);
      try {
        await withDaemon(config, async (p) => {
          await p.waitFor(/Reading from .*usb-smartmeter-if00-port0/);
          feeder.start();
          // Discovery follows the connection after a random 1–5 s pause.
          await watcher.next(TOPICS.discovery, 0, 10_000);
          await watcher.next(TOPICS.state, 4);
          await feeder.stop();
          await sleep(500);

          const discovery = await retainedMessage(broker.port, TOPICS.discovery);
          ok(discovery !== null, "discovery is retained");
          const payload = JSON.parse(discovery.payload);
          deepStrictEqual(payload.device.identifiers, ["smartmeter"]);
          equal(payload.device.serial_number, "1KFM0000000001");
          for (
            const id of [
              "smartmeter",
              "smartmeter_total_energy_consumed",
              "smartmeter_total_energy_provided",
              "smartmeter_power_consumed",
              "smartmeter_voltage_l1",
              "smartmeter_current_l3",
              "smartmeter_telegrams_failed",
            ]
          ) {
            equal(payload.components[id]?.unique_id, id, `component ${id}`);
          }
          const energy = payload.components.smartmeter_total_energy_consumed;
          equal(energy.state_topic, TOPICS.state);
          equal(energy.device_class, "energy");
          equal(energy.unit_of_measurement, "Wh");

          equal((await retainedMessage(broker.port, TOPICS.availability))?.payload, "online");

          const states = watcher.on(TOPICS.state);
          ok(states.every((m) => !m.retain), "state is not retained");
          const seen = assertStatesArePushes(states, feeder.sent);
          // publish_interval 0: every push written after the first state is published.
          deepStrictEqual(
            seen,
            Array.from({ length: seen.length }, (_, i) => seen[0]! + i),
            "no push is left out",
          );
          equal(seen.at(-1), feeder.sent.length - 1, "the last push is published");
        });
      } finally {
        await feeder.stop();
        await meter.close();
      }
    }),
});

// ---- 2. unplugged and plugged in again ----

Deno.test({
  name: "run logs one line for an unplugged serial port and reads it again when it is back",
  ...ptyTest,
  fn: () =>
    withBroker(async (broker, watcher, dir) => {
      const meter = await PtyMeter.open(dir);
      const config = await writeConfig(
        dir,
        baseConfig(meter.link, broker.port, { logging: "debug" }),
      );
      const feeder = new Feeder(await simulator("burgenland"), meter.write);
      try {
        await withDaemon(config, async (p) => {
          await p.waitFor(/Reading from/);
          feeder.start();
          await watcher.next(TOPICS.state, 2);

          await meter.unplug();
          const lost = await p.waitFor(/Lost .*usb-smartmeter-if00-port0/);
          match(lost, /WARNING .*stopped working: the device was unplugged/);
          await sleep(1_500); // the daemon retries against a missing device meanwhile
          const sentBefore = feeder.sent.length;
          await meter.replug();
          const pluggedAt = performance.now();

          const back = await p.waitFor(/is back after/, 10_000);
          match(back, /INFO .*usb-smartmeter-if00-port0 is back after \d+(\.\d+)? s/);
          const isNew = (m: Message) => {
            const state = JSON.parse(m.payload);
            return feeder.sent.slice(sentBefore).some((s) => matchesPush(state, s));
          };
          const first = await watcher.waitFor(TOPICS.state, isNew, "a state after the replug");
          const recoveredMs = first.at - pluggedAt;
          console.log(`  replug → first state again: ${recoveredMs.toFixed(0)} ms`);
          // Retries back off from 0.5 s to at most 5 s.
          ok(recoveredMs < 7_000, `recovered after ${recoveredMs} ms`);
          await waitUntil(
            () => new Set(watcher.on(TOPICS.state).filter(isNew).map((m) => m.payload)).size >= 3,
            "three states after the replug",
          );
          await feeder.stop();

          const seen = assertStatesArePushes(watcher.on(TOPICS.state), feeder.sent);
          ok(seen.filter((i) => i >= sentBefore).length >= 3);
          // One warning for the outage, not one per retry: the retries are debug lines.
          equal(p.logLines(/WARNING/).length, 1, p.stderr);
          equal(p.logLines(/Lost /).length, 1, p.stderr);
          ok(p.logLines(/DEBUG smartmeter:source: Still cannot open/).length >= 1, p.stderr);
          equal(p.logLines(/is back after/).length, 1, p.stderr);
          equal(p.status, null, "still running");
        });
      } finally {
        await feeder.stop();
        await meter.close();
      }
    }),
});

// ---- 3. stopping ----

Deno.test({
  name: "run publishes offline and exits 0 on SIGTERM; the broker sends the will on SIGKILL",
  ...ptyTest,
  fn: () =>
    withBroker(async (broker, watcher, dir) => {
      const meter = await PtyMeter.open(dir);
      const config = await writeConfig(dir, baseConfig(meter.link, broker.port));
      const feeder = new Feeder(await simulator("noe_evn"), meter.write);
      const availability = () => watcher.on(TOPICS.availability).map((m) => m.payload);
      try {
        // SIGTERM: a clean stop.
        const p = Smartmeter.spawn(["run", "-c", config]);
        try {
          await watcher.waitFor(TOPICS.availability, (m) => m.payload === "online", "online");
          feeder.start();
          await watcher.next(TOPICS.state, 1);
          const t0 = performance.now();
          p.signal("SIGTERM");
          const status = await p.waitExit(5_000);
          const exitMs = performance.now() - t0;
          console.log(`  SIGTERM → exit: ${exitMs.toFixed(0)} ms`);
          equal(status.code, 0, p.output);
          ok(exitMs < 4_000, `exit took ${exitMs} ms`);
          await waitUntil(() => availability().at(-1) === "offline", "offline after SIGTERM");
          equal((await retainedMessage(broker.port, TOPICS.availability))?.payload, "offline");
          match(p.stderr, /Stopping: \d+ telegrams decoded/);
        } finally {
          await p.stop();
        }

        // SIGKILL: no chance to say goodbye; the broker publishes the last will.
        const onlineBefore = availability().length;
        const q = Smartmeter.spawn(["run", "-c", config]);
        try {
          await waitUntil(
            () => availability().slice(onlineBefore).includes("online"),
            "online again",
          );
          await watcher.next(TOPICS.state, watcher.on(TOPICS.state).length);
          const n = availability().length;
          q.signal("SIGKILL");
          equal((await q.waitExit(5_000)).signal, "SIGKILL");
          await waitUntil(
            () => availability().slice(n).includes("offline"),
            "the last will after SIGKILL",
          );
          equal((await retainedMessage(broker.port, TOPICS.availability))?.payload, "offline");
          ok(!q.stderr.includes("Stopping:"), "killed, not stopped");
        } catch (e) {
          console.log(`smartmeter output:\n${q.output}`);
          throw e;
        } finally {
          await q.stop();
        }
      } finally {
        await feeder.stop();
        await meter.close();
      }
    }),
});

// ---- 4. bad input ----

/**
 * Bytes that are no frame, with fake frame starts among them: a short M-Bus header, an
 * HDLC header, and at the very end an M-Bus header that announces 250 bytes, so that the
 * framer swallows the next good push while it waits, and must find it again.
 */
function garbage(length: number, seed: number): Uint8Array {
  let a = seed;
  const out = Uint8Array.from({ length }, () => {
    a = (Math.imul(a, 1103515245) + 12345) >>> 0;
    return a >>> 24;
  });
  out.set([0x68, 0x30, 0x30, 0x68, 0x53, 0xff], 20);
  out.set([0x7e, 0xa0, 0x40, 0xce, 0xff, 0x03], 80);
  out.set([0x68, 0xfa, 0xfa, 0x68, 0x53, 0xff], length - 6);
  return out;
}

Deno.test({
  name: "run outlives garbage, a wrong key and a truncated frame and reports them as diagnostics",
  ...ptyTest,
  fn: () =>
    withBroker(async (broker, watcher, dir) => {
      const meter = await PtyMeter.open(dir);
      const config = await writeConfig(dir, baseConfig(meter.link, broker.port));
      const good = await simulator("noe_evn");
      const wrongKey = await simulator("noe_evn", "f0e0d0c0b0a090807060504030201000");
      const sent: Sent[] = [];
      const goodPush = async () => {
        await push(good, meter.write, sent);
        await sleep(PUSH_MS);
      };
      const diagnostics = () =>
        watcher.on(TOPICS.diagnostics).map((m) =>
          JSON.parse(m.payload) as {
            decoded: number;
            failed: number;
            last_error: string | null;
            last_telegram: string | null;
          }
        );
      const lastDiagnostics = () => diagnostics().at(-1);
      try {
        await withDaemon(config, async (p) => {
          await watcher.waitFor(TOPICS.availability, (m) => m.payload === "online", "online");
          await p.waitFor(/Reading from/);
          await goodPush();
          await goodPush();
          await watcher.next(TOPICS.state, 1);
          equal(lastDiagnostics()?.failed, 0);

          // Garbage. The push right after it lies inside the 250 bytes its last fake header
          // announces; the framer drops that whole span at the bad checksum (see the
          // report), so only the push after that one is certain to come through.
          await meter.write(garbage(200, 7));
          await sleep(PUSH_MS);
          await goodPush();
          const afterGarbage = sent.length;
          await goodPush();
          await waitUntil(
            () => /framing: Bad M-Bus checksum/.test(lastDiagnostics()?.last_error ?? ""),
            "diagnostics naming the bad checksum of the garbage",
          );
          const failedAtGarbage = lastDiagnostics()!.failed;
          ok(failedAtGarbage >= 1);

          await push(wrongKey, meter.write, []);
          await sleep(PUSH_MS);
          const afterWrongKey = sent.length;
          await goodPush();
          const atWrongKey = await watcher.waitFor(
            TOPICS.diagnostics,
            (m) => /^decrypt: .*wrong key \(GUEK\)/.test(JSON.parse(m.payload).last_error ?? ""),
            "diagnostics naming the wrong key",
          );
          const failedAtWrongKey = JSON.parse(atWrongKey.payload).failed;
          equal(failedAtWrongKey, failedAtGarbage + 1);

          // A third of a push, then silence longer than the 1 s gap: the rest is missing.
          const cut = (await good.next(new Date())).bytes;
          await meter.write(cut.subarray(0, Math.floor(cut.length / 3)));
          await sleep(1_300);
          const afterTruncated = sent.length;
          await goodPush();
          await goodPush();
          await watcher.waitFor(
            TOPICS.state,
            (m) => matchesPush(JSON.parse(m.payload), sent.at(-1)!),
            "the last good push",
          );
          equal(p.status, null, "still running");

          const seen = new Set(assertStatesArePushes(watcher.on(TOPICS.state), sent));
          for (
            const [what, i] of [
              ["the garbage", afterGarbage],
              ["the wrong key", afterWrongKey],
              ["the truncated frame", afterTruncated],
              ["the truncated frame", afterTruncated + 1],
            ] as const
          ) {
            ok(seen.has(i), `good push ${i} after ${what} is published`);
          }

          const diag = diagnostics();
          for (let i = 1; i < diag.length; i++) {
            ok(diag[i]!.failed >= diag[i - 1]!.failed, "failed never goes down");
            ok(diag[i]!.decoded >= diag[i - 1]!.decoded, "decoded never goes down");
          }
          const last = diag.at(-1)!;
          equal(last.decoded, seen.size, "every decoded telegram was published");
          equal(last.failed, failedAtWrongKey + 1, "the truncated frame counts once");
          match(last.last_error ?? "", /^framing: Incomplete M-Bus frame dropped after .* silence/);
          match(p.stderr, /WARNING smartmeter:telegram: Telegram failed at decrypt: .*wrong key/);
        });
      } finally {
        await meter.close();
      }
    }),
});

// ---- 5. secrets ----

Deno.test({
  name: "run never writes the key, the auth key or the MQTT password, even at debug level",
  ...ptyTest,
  fn: async () => {
    const key = toHex(crypto.getRandomValues(new Uint8Array(16)));
    const authKey = toHex(crypto.getRandomValues(new Uint8Array(16)));
    const password = `pw-${crypto.randomUUID()}`;
    const wrongPassword = `wrong-${crypto.randomUUID()}`;
    const users = { smartmeter: password, watcher: "watcher-pw" };
    const outputs: string[] = [];
    await withBroker(
      async (broker, watcher, dir) => {
        const meter = await PtyMeter.open(dir);
        const sim = await simulator("burgenland", key, authKey);
        const impostor = await simulator("burgenland", DEMO_KEY, DEMO_AUTH_KEY);
        const sent: Sent[] = [];
        const settings = (pw: string) =>
          baseConfig(meter.link, broker.port, {
            logging: "debug",
            meter_type: "burgenland",
            // Upper case with spaces in the file: the redaction must catch every spelling.
            dlms: {
              key: key.toUpperCase().replace(/(..)(?!$)/g, "$1 "),
              auth_key: authKey,
            },
            mqtt: { user: "smartmeter", password: pw },
          });
        try {
          // Accepted by the broker: telegrams, then one from a meter with other keys.
          const p = await withDaemon(
            await writeConfig(dir, settings(password), "good.yaml"),
            async (p) => {
              await p.waitFor(/Reading from/);
              for (let i = 0; i < 4; i++) {
                await push(sim, meter.write, sent);
                await sleep(PUSH_MS);
              }
              await push(impostor, meter.write, []);
              await sleep(PUSH_MS);
              await push(sim, meter.write, sent);
              await watcher.waitFor(
                TOPICS.state,
                (m) => matchesPush(JSON.parse(m.payload), sent.at(-1)!),
                "the last state",
              );
              await p.waitFor(/Telegram failed at decrypt: GCM tag does not match/);
            },
          );
          outputs.push(p.output);
          match(p.stderr, /DEBUG smartmeter:telegram: hdlc encrypted\+authenticated/);

          // Refused by the broker.
          const q = await withDaemon(
            await writeConfig(dir, settings(wrongPassword), "refused.yaml"),
            async (q) => {
              await q.waitFor(/Reading from/);
              await push(sim, meter.write, sent);
              await q.waitFor(/DEBUG smartmeter:telegram/);
              await q.waitFor(/bad user name or password|not authorized/i);
            },
          );
          outputs.push(q.output);
        } finally {
          await meter.close();
        }
      },
      { users },
      { username: "watcher", password: "watcher-pw" },
    );

    const text = outputs.join("\n");
    ok(text.length > 500, "the runs wrote a log");
    const hexAnySpelling = (hex: string) => new RegExp(hex.match(/../g)!.join("[\\s:-]?"), "i");
    for (
      const [name, pattern] of [
        ["key", hexAnySpelling(key)],
        ["auth key", hexAnySpelling(authKey)],
        ["password", new RegExp(password)],
        ["wrong password", new RegExp(wrongPassword)],
      ] as const
    ) {
      ok(!pattern.test(text), `the ${name} appears in the output:\n${text}`);
    }
  },
});

// ---- 6. bad config ----

Deno.test({
  name: "run exits 78 and names every bad key path of a config, or the missing file",
  fn: async () => {
    await using dir = await tempDir();
    const config = `${dir.path}/bad.yaml`;
    await Deno.writeTextFile(
      config,
      [
        "logging: loud",
        "dlms:",
        "  port: /dev/ttyUSB0",
        "  baudrate: 12345",
        "  parity: MARK",
        '  key: "not hex"',
        "mqtt:",
        "  port: 99999",
        "  keepalive: 1",
        "  device_id: a/b",
        "",
      ].join("\n"),
    );
    const bad = await Smartmeter.run(["run", "-c", config]);
    equal(bad.code, 78, bad.stderr);
    for (
      const path of [
        "logging",
        "dlms.baudrate",
        "dlms.parity",
        "dlms.key",
        "mqtt.port",
        "mqtt.keepalive",
        "mqtt.device_id",
      ]
    ) {
      match(bad.stderr, new RegExp(`^\\s+${path.replace(".", "\\.")}: `, "m"), path);
    }
    match(bad.stderr, /has 7 problems/);

    const gone = await Smartmeter.run(["run", "-c", `${dir.path}/nowhere.yaml`]);
    equal(gone.code, 78, gone.stderr);
    match(gone.stderr, /Cannot read the config file .*nowhere\.yaml/);
  },
});

// ---- 7. TCP ----

Deno.test({
  name: "run reads a tcp:// source and connects again when the server drops the connection",
  ignore: missing !== null,
  fn: () =>
    withBroker(async (broker, watcher, dir) => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = listener.addr.port;
      const sim = await simulator("sagemcom");
      const sent: Sent[] = [];
      const connections: Deno.TcpConn[] = [];
      let stopped = false;
      const server = (async () => {
        // Two connections: the first is dropped after 4 pushes, the second stays.
        for (let n = 0; n < 2 && !stopped; n++) {
          const conn = await listener.accept();
          connections.push(conn);
          const w = conn.writable.getWriter();
          const write = (b: Uint8Array) => w.write(b);
          for (let i = 0; !stopped && (n === 1 || i < 4); i++) {
            await push(sim, write, sent).catch(() => {});
            await sleep(PUSH_MS);
          }
          await w.close().catch(() => {});
        }
      })();
      const config = await writeConfig(dir, baseConfig(`tcp://127.0.0.1:${port}`, broker.port));
      try {
        await withDaemon(config, async (p) => {
          await p.waitFor(/Reading from tcp:\/\/127\.0\.0\.1/);
          await p.waitFor(/Lost tcp:\/\/127\.0\.0\.1:\d+: the other side closed the connection/);
          const back = await p.waitFor(/is back after/, 10_000);
          match(back, /tcp:\/\/127\.0\.0\.1:\d+ is back after \d+(\.\d+)? s/);
          await waitUntil(() => sent.length >= 7, "pushes on the second connection");
          const last = sent.at(-1)!;
          await watcher.waitFor(
            TOPICS.state,
            (m) => matchesPush(JSON.parse(m.payload), last),
            "a state from the second connection",
          );
          const seen = assertStatesArePushes(watcher.on(TOPICS.state), sent);
          ok(seen.some((i) => i < 4) && seen.some((i) => i >= 4), "states from both connections");
          equal(connections.length, 2);
          equal(p.logLines(/WARNING/).length, 1, p.stderr);
        });
      } finally {
        stopped = true;
        listener.close();
        await server.catch(() => {});
        for (const c of connections) {
          try {
            c.close();
          } catch { /* closed */ }
        }
      }
    }),
});

// ---- 8. a capture file ----

/** Writes a capture of `count` Wiener Netze pushes 5 s apart; returns its path and pushes. */
async function writeCapture(dir: string, count: number): Promise<{ path: string; sent: Sent[] }> {
  const sim = await simulator("wiener-netze");
  const sent: Sent[] = [];
  const lines: string[] = [];
  const start = Date.now();
  for (let i = 0; i < count; i++) {
    const time = new Date(start + i * 5_000);
    const t = await sim.next(time);
    lines.push(toHex(t.bytes));
    // Wiener Netze's structure(9) carries no meter id.
    sent.push({ time, values: { ...t.values }, meterId: null });
  }
  const path = `${dir}/capture.hex`;
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return { path, sent };
}

/**
 * A TCP proxy to the broker that holds every new connection for `delayMs` before it
 * passes bytes on: a broker that is slow to answer (a loaded Home Assistant box).
 */
function slowProxy(brokerPort: number, delayMs: number): { port: number; close(): Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const pipes: Promise<unknown>[] = [];
  const accepting = (async () => {
    for await (const client of listener) {
      conns.push(client);
      pipes.push(
        (async () => {
          await sleep(delayMs);
          const upstream = await Deno.connect({ hostname: "127.0.0.1", port: brokerPort });
          conns.push(upstream);
          await Promise.allSettled([
            client.readable.pipeTo(upstream.writable),
            upstream.readable.pipeTo(client.writable),
          ]);
        })().catch(() => {}),
      );
    }
  })().catch(() => {});
  return {
    port: listener.addr.port,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await accepting;
      await Promise.allSettled(pipes);
    },
  };
}

Deno.test({
  name: "run replays a capture file once, decodes every telegram and exits 0 by itself",
  ignore: missing !== null,
  fn: () =>
    withBroker(async (broker, watcher, dir) => {
      const { path, sent } = await writeCapture(dir, 12);
      const config = await writeConfig(dir, baseConfig(path, broker.port));
      const p = Smartmeter.spawn(["run", "-c", config]);
      try {
        const status = await p.waitExit(20_000);
        equal(status.code, 0, p.output);
        match(p.stderr, /Stopping: 12 telegrams decoded, 0 failed/);
        // Whatever reached the broker is right (that all of it does: the next test).
        await sleep(300);
        assertStatesArePushes(watcher.on(TOPICS.state), sent);
      } catch (e) {
        console.log(`smartmeter output:\n${p.output}`);
        throw e;
      } finally {
        await p.stop();
      }
    }),
});

Deno.test({
  name: "run publishes every telegram of a capture file, even when the broker answers slowly",
  ignore: missing !== null,
  fn: () =>
    withBroker(async (broker, watcher, dir) => {
      const { path, sent } = await writeCapture(dir, 12);
      const proxy = slowProxy(broker.port, 800);
      const config = await writeConfig(dir, baseConfig(path, proxy.port));
      const p = Smartmeter.spawn(["run", "-c", config]);
      try {
        equal((await p.waitExit(20_000)).code, 0, p.output);
        await waitUntil(() => watcher.on(TOPICS.state).length >= 12, "12 states", 3_000);
        const seen = assertStatesArePushes(watcher.on(TOPICS.state), sent);
        deepStrictEqual(seen, Array.from({ length: 12 }, (_, i) => i));
        equal(watcher.on(TOPICS.availability).at(-1)?.payload, "offline");
      } catch (e) {
        console.log(`smartmeter output:\n${p.output}`);
        throw e;
      } finally {
        await p.stop();
        await proxy.close();
      }
    }),
});

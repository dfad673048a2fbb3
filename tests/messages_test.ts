/**
 * Messages that point at the real cause: a refused connection names the address, a
 * directory or an empty capture file as `dlms.port` is called what it is (not an IR head
 * problem), a login refused in the add-on does not blame `mqtt.user` when the Supervisor
 * chose the credentials, and a malformed Supervisor answer is an error.
 */

import { equal, match, ok as assert, rejects } from "node:assert/strict";
import { main } from "../main.ts";
import type { CommandIO, ProcessContext } from "../lib/commands/io.ts";
import { validateConfig } from "../lib/config.ts";
import { runDaemon } from "../lib/daemon.ts";
import { memoryLogger } from "../lib/log.ts";
import { describeMqttError } from "../lib/sinks/mqtt.ts";
import { supervisorMqtt } from "../lib/supervisor.ts";
import { brokerMissing, startBroker } from "./e2e/mosquitto.ts";

const KEY = "000102030405060708090a0b0c0d0e0f";
const METER_TYPES = ["burgenland", "noe_evn"];

async function check(configText: string, env: Record<string, string> = {}): Promise<string> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/c.yaml`, configText.replaceAll("$DIR", dir));
    const out: string[] = [];
    const io: CommandIO = {
      stdin: ReadableStream.from([]),
      openFile: async (p) => (await Deno.open(p)).readable,
      out: (l) => out.push(l),
      err: (l) => out.push(l),
    };
    const ctx: ProcessContext = {
      env,
      signal: new AbortController().signal,
      stderrIsTerminal: false,
      version: "test",
    };
    const args = ["check", "-c", `${dir}/c.yaml`, "--seconds", "1"];
    await main(env.SUPERVISOR_TOKEN ? args : [...args, "--no-mqtt"], io, () => ctx);
    return out.join("\n").replaceAll(dir, "$DIR");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("a refused TCP serial server is named by its address", async () => {
  const port = closedPort();
  const text = await check(`dlms:\n  port: tcp://127.0.0.1:${port}\n  key: "${KEY}"\n`);
  match(text, new RegExp(`✗ Meter: .*tcp://127\\.0\\.0\\.1:${port}.*[Rr]efused`));
});

Deno.test("a login refused by the broker names the broker", () => {
  const e = Object.assign(new Error("Connection refused: Not authorized"), { code: 5 });
  const { message, level } = describeMqttError(e, "mqtt://192.168.1.5:1883");
  equal(level, "error");
  equal(
    message,
    "MQTT broker mqtt://192.168.1.5:1883 refused the connection: not authorized — " +
      "check mqtt.user/mqtt.password",
  );
});

Deno.test("a directory as dlms.port is called a directory, by check and by run (exit 78)", async () => {
  const text = await check(`dlms:\n  port: $DIR\n  key: "${KEY}"\n`);
  match(text, /✗ Meter: dlms\.port "\$DIR" is a directory: give the serial device/);
  assert(!/IR head|Serial port .* failed/.test(text), text);

  const dir = await Deno.makeTempDir();
  try {
    const { logger, lines } = memoryLogger();
    const status = await runDaemon({
      config: validateConfig({ dlms: { port: dir, key: KEY } }, { meterTypes: METER_TYPES }),
      logger,
      signal: new AbortController().signal,
      version: "test",
      mqtt: false,
    });
    equal(status, 78);
    match(lines.join("\n"), /ERROR smartmeter: dlms\.port ".*" is a directory/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an empty capture file is called empty, not blamed on the IR head", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const content of ["", "  \n \n"]) {
      await Deno.writeTextFile(`${dir}/capture.hex`, content);
      await Deno.writeTextFile(
        `${dir}/c.yaml`,
        `dlms:\n  port: ${dir}/capture.hex\n  key: "${KEY}"\n`,
      );
      const out: string[] = [];
      const io: CommandIO = {
        stdin: ReadableStream.from([]),
        openFile: async (p) => (await Deno.open(p)).readable,
        out: (l) => out.push(l),
        err: (l) => out.push(l),
      };
      const ctx: ProcessContext = {
        env: {},
        signal: new AbortController().signal,
        stderrIsTerminal: false,
        version: "test",
      };
      equal(await main(["check", "-c", `${dir}/c.yaml`, "--no-mqtt"], io, () => ctx), 1);
      const text = out.join("\n");
      match(text, /✗ Meter: .*capture\.hex.* (is empty|holds no bytes)/, JSON.stringify(content));
      assert(!/IR head|cable/.test(text), text);

      const { logger, lines } = memoryLogger();
      const status = await runDaemon({
        config: validateConfig({ dlms: { port: `${dir}/capture.hex`, key: KEY } }, {
          meterTypes: METER_TYPES,
        }),
        logger,
        signal: new AbortController().signal,
        version: "test",
        mqtt: false,
      });
      equal(status, 1, lines.join("\n"));
      match(lines.join("\n"), /capture\.hex.* (is empty|holds no bytes)/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a malformed port from the Supervisor is an error, not NaN or 1883", async () => {
  const answer = (port: unknown) => () =>
    Promise.resolve(Response.json({ data: { host: "core-mosquitto", port } }));
  for (const port of ["abc", "", 0, 70000, 1883.5, true, [1883]]) {
    await rejects(
      supervisorMqtt("t", "http://x", answer(port)),
      /The Supervisor's answer about MQTT has a malformed port: /,
      JSON.stringify(port),
    );
  }
  equal((await supervisorMqtt("t", "http://x", answer("1884"))).port, 1884);
  equal((await supervisorMqtt("t", "http://x", answer(undefined))).port, 1883);
});

Deno.test({
  name: "in the add-on, a login refused with the Supervisor's credentials does not blame mqtt.user",
  ignore: brokerMissing() !== null,
  async fn() {
    const broker = await startBroker({ users: { addons: "right" } });
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      () =>
        Response.json({
          data: {
            host: "127.0.0.1",
            port: broker.port,
            ssl: false,
            username: "addons",
            password: "stale",
          },
        }),
    );
    const env = {
      SUPERVISOR_TOKEN: "tok",
      SUPERVISOR_URL: `http://127.0.0.1:${server.addr.port}`,
    };
    try {
      const text = await check(`dlms:\n  port: /dev/null\n  key: "${KEY}"\n`, env);
      match(text, /✗ MQTT: .*refused the connection: not authorized/);
      match(text, /Supervisor/);
      assert(!/check mqtt\.user/.test(text), text);

      const { logger, lines } = memoryLogger();
      const stop = new AbortController();
      const done = runDaemon({
        config: validateConfig({ dlms: { port: "/dev/null", key: KEY }, mqtt: { host: "" } }, {
          env,
          meterTypes: METER_TYPES,
        }),
        logger,
        signal: stop.signal,
        version: "test",
        env,
        source: {
          description: "nothing",
          kind: "tcp",
          open: (signal) =>
            Promise.resolve(
              new ReadableStream({
                start(c) {
                  signal.addEventListener("abort", () => c.close());
                },
              }),
            ),
        },
      });
      const deadline = Date.now() + 10_000;
      while (!lines.some((l) => /refused the connection/.test(l)) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      stop.abort();
      await done;
      const log = lines.join("\n");
      match(log, /refused the connection: not authorized .*Supervisor/);
      assert(!/check mqtt\.user/.test(log), log);
    } finally {
      await server.shutdown();
      await broker.close();
    }
  },
});

/**
 * The released binary's sandbox: the permission flags baked in by the `compile:*` tasks of
 * deno.json must be enough for every command, and no more than the program uses; the V8
 * flags baked in with them (heap limits, lite mode) must not break any command.
 *
 * The compile runtime (denort) cannot be downloaded on every machine, so the program runs
 * from source with exactly the task's permission and V8 flags (`deno run <flags>
 * --v8-flags=<flags> main.ts ...`, never `-A`). Any NotCapable or PermissionDenied fails
 * the test: a missing permission breaks CI, not a user's Raspberry Pi; so does a V8 flag
 * that V8 does not know or that breaks a command. CI also compiles and runs the real
 * binary.
 */

import { deepEqual, equal, fail, match, ok as assert } from "node:assert/strict";
import mqtt from "mqtt";
import {
  COMPILE_TARGETS,
  flagList,
  parseCompileTask,
  readCompileTasks,
  splitCommand,
} from "../scripts/permissions.ts";
import { brokerMissing, startBroker } from "./e2e/mosquitto.ts";
import { fromHex } from "../lib/bytes.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const tasks = await readCompileTasks();
const x86 = tasks.find((t) => t.arch === "x86_64");
if (x86 === undefined) throw new Error("deno.json has no compile:x86_64 task");
/** The flags every run below uses: exactly what the binary gets. */
const FLAGS = x86.permissionFlags;
/** The V8 flags as `deno run` takes them (none: V8's defaults). */
const V8_FLAGS = x86.v8Flags.length > 0 ? [`--v8-flags=${x86.v8Flags.join(",")}`] : [];

const fixture = JSON.parse(
  await Deno.readTextFile(
    new URL("./fixtures/burgenland_landis-gyr-e450_1.json", import.meta.url),
  ),
) as { hex: string; key: string; expected: Record<string, number> };
const SIM_KEY = "00112233445566778899aabbccddeeff";

/** Variables passed on to the child when the caller has them (Deno needs its caches). */
const PASSED_ENV = ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"] as const;

function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const name of PASSED_ENV) {
    const v = Deno.env.get(name);
    if (v !== undefined) env[name] = v;
  }
  return { ...env, ...extra };
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** A sandboxed run in progress. */
interface Running {
  /** Sends a signal (the test's Ctrl-C or `docker stop`). */
  kill(signal: Deno.Signal): void;
  /** Resolves when the process has exited. */
  done: Promise<Run>;
}

/** Starts `deno run <FLAGS> <V8_FLAGS> main.ts ...args` in a clean environment. */
function spawnSandboxed(
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): Running {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...FLAGS, ...V8_FLAGS, "main.ts", ...args],
    cwd: ROOT,
    clearEnv: true,
    env: childEnv(opts.env),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const kill = (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    kill("SIGKILL");
  }, opts.timeoutMs ?? 60_000);
  const done = child.output().then((out) => {
    clearTimeout(timer);
    const decoder = new TextDecoder();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
      timedOut,
    };
  });
  return { kill, done };
}

/** Runs `deno run <FLAGS> <V8_FLAGS> main.ts ...args` to its end. */
function runSandboxed(
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Run> {
  return spawnSandboxed(args, opts).done;
}

const PERMISSION_ERROR =
  /NotCapable|PermissionDenied|Requires [a-z]+ access|run again with the --allow-[a-z]+ flag/;

/** Fails naming the command and its output when it needed a permission, timed out or failed. */
function assertRanSandboxed(r: Run, what: string, expectedCode = 0): void {
  const output = `--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
  const denied = PERMISSION_ERROR.exec(r.stdout + r.stderr);
  if (denied !== null) {
    fail(`${what} needed a permission the compile tasks do not grant ("${denied[0]}"):\n${output}`);
  }
  if (r.timedOut) fail(`${what} did not finish in time:\n${output}`);
  equal(r.code, expectedCode, `${what} exited with ${r.code}:\n${output}`);
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "smartmeter-compile-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Collects every message on `#` until closed. */
async function subscribeAll(
  port: number,
  auth: { username: string; password: string } | Record<never, never> = {},
): Promise<{
  messages: { topic: string; payload: string }[];
  close(): Promise<void>;
}> {
  const client = mqtt.connect({ host: "127.0.0.1", port, reconnectPeriod: 0, ...auth });
  const messages: { topic: string; payload: string }[] = [];
  client.on("message", (topic, payload) => messages.push({ topic, payload: payload.toString() }));
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  await client.subscribeAsync("#");
  return {
    messages,
    async close() {
      await client.endAsync(true);
    },
  };
}

/**
 * A TCP serial server (as ser2net would be) that sends `bytes` to each client once and
 * keeps the connection open: the daemon then runs until it is stopped.
 */
function meterServer(bytes: Uint8Array): { port: number; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      await conn.write(bytes).catch(() => {});
    }
  })().catch(() => {});
  return {
    port: listener.addr.port,
    close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // closed by the other side
        }
      }
    },
  };
}

async function waitFor(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) fail(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---------------------------------------------------------------------------------------
// The tasks themselves

Deno.test("splitCommand() refuses shell syntax it cannot read safely", () => {
  deepEqual(splitCommand(" deno  compile main.ts "), ["deno", "compile", "main.ts"]);
  for (const bad of ['deno compile "a b"', "deno compile && rm x", "deno compile $X"]) {
    try {
      splitCommand(bad);
      fail(`accepted ${bad}`);
    } catch (e) {
      match((e as Error).message, /^Cannot read the task .*: it uses shell syntax/);
    }
  }
});

Deno.test("parseCompileTask() finds target, output, entry point, permission and V8 flags", () => {
  const t = parseCompileTask(
    "compile:aarch64",
    "deno compile --no-prompt --allow-env=A,B --v8-flags=--lite-mode,--max-old-space-size=64 " +
      "--target aarch64-unknown-linux-gnu --output dist/x main.ts",
  );
  equal(t.target, "aarch64-unknown-linux-gnu");
  equal(t.output, "dist/x");
  equal(t.entry, "main.ts");
  deepEqual(t.permissionFlags, ["--no-prompt", "--allow-env=A,B"]);
  deepEqual(t.v8Flags, ["--lite-mode", "--max-old-space-size=64"]);
  deepEqual(flagList(t.permissionFlags, "--allow-env"), ["A", "B"]);
  equal(flagList(t.permissionFlags, "--allow-net"), null);
});

Deno.test("parseCompileTask() rejects unknown tasks and tasks that are not deno compile", () => {
  for (
    const [name, command, message] of [
      ["compile:armv7", "deno compile main.ts", /^Unknown compile task "compile:armv7"/],
      ["compile:x86_64", "deno run main.ts", /must start with "deno compile"/],
      ["compile:x86_64", "deno compile main.ts", /needs --target, --output and an entry point/],
    ] as const
  ) {
    try {
      parseCompileTask(name, command);
      fail(`accepted ${command}`);
    } catch (e) {
      match((e as Error).message, message);
    }
  }
});

Deno.test("compile tasks build both Linux targets into dist/ with the same permissions", () => {
  deepEqual(tasks.map((t) => t.arch).sort(), Object.keys(COMPILE_TARGETS).sort());
  for (const t of tasks) {
    equal(t.target, COMPILE_TARGETS[t.arch]);
    equal(t.output, `dist/smartmeter-${t.arch}`);
    equal(t.entry, "main.ts");
    deepEqual(t.permissionFlags, FLAGS, `${t.name} differs from compile:x86_64`);
    deepEqual(t.v8Flags, x86.v8Flags, `${t.name}'s V8 flags differ from compile:x86_64`);
    assert(t.args.includes("--frozen"), `${t.name}: the lockfile must decide the dependencies`);
  }
});

Deno.test("the documented deno run lines of the daemon carry the compile tasks' V8 flags", async () => {
  // Running from source should hold the memory the figures in the README were measured
  // with: the same V8 flags as the binary, written the same way.
  let found = 0;
  for (const file of ["README.md", "addon/DOCS.md"]) {
    const text = await Deno.readTextFile(`${ROOT}${file}`);
    for (const line of text.split("\n")) {
      if (!/\bdeno run\b.*\bmain\.ts (?:run|check)\b/.test(line)) continue;
      found++;
      const given = line.split(/\s+/).filter((w) => w.startsWith("--v8-flags="));
      deepEqual(given, V8_FLAGS, `${file}: ${line.trim()}`);
    }
  }
  assert(found > 0, "no documented `deno run ... main.ts run` line");
});

Deno.test("compile tasks never prompt and grant nothing blanket or unused", () => {
  assert(FLAGS.includes("--no-prompt"), "a daemon has nobody to answer a prompt");
  for (const forbidden of ["-A", "--allow-all", "--allow-run", "--allow-sys", "--allow-import"]) {
    assert(
      !FLAGS.some((f) => f === forbidden || f.startsWith(`${forbidden}=`)),
      `${forbidden} is not needed`,
    );
  }
  // What is granted whole, and why: addon/DOCS.md, "Security".
  for (const whole of ["--allow-read", "--allow-write", "--allow-net", "--allow-ffi"]) {
    deepEqual(flagList(FLAGS, whole), [], `${whole} is expected without a list`);
  }
  const env = flagList(FLAGS, "--allow-env");
  assert(env !== null && env.length > 0, "--allow-env must list the variables");
});

/** Every `env.NAME`, `env?.NAME`, `env["NAME"]` and `Deno.env.get("NAME")` in the program. */
async function environmentReads(): Promise<Map<string, string>> {
  const files = ["main.ts"];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(`${ROOT}${dir}`)) {
      if (e.isDirectory) await walk(`${dir}/${e.name}`);
      else if (e.name.endsWith(".ts")) files.push(`${dir}/${e.name}`);
    }
  };
  await walk("lib");
  const found = new Map<string, string>();
  const pattern =
    /\benv\??\.([A-Z][A-Z0-9_]*)\b|\benv\??\.?\[["']([A-Z][A-Z0-9_]*)["']\]|Deno\.env\.get\(["']([A-Z][A-Z0-9_]*)["']\)|\benv:\s*"([A-Z][A-Z0-9_]*)"/g;
  for (const file of files) {
    const text = await Deno.readTextFile(`${ROOT}${file}`);
    for (const m of text.matchAll(pattern)) {
      const name = m[1] ?? m[2] ?? m[3] ?? m[4];
      if (name !== undefined && !found.has(name)) found.set(name, file);
    }
  }
  return found;
}

Deno.test("--allow-env lists every variable the program reads, and only those", async () => {
  const allowed = new Set(flagList(FLAGS, "--allow-env") ?? []);
  const reads = await environmentReads();
  for (const [name, file] of reads) {
    assert(allowed.has(name), `${file} reads ${name}, which --allow-env does not list`);
  }
  for (const name of allowed) {
    assert(reads.has(name), `--allow-env lists ${name}, which no file reads`);
  }
  // main.ts passes Deno.env.toObject() on. With a list in --allow-env that alone would be
  // refused; --ignore-env makes Deno return just the allowed variables instead (every
  // sandboxed run below depends on it). Should main.ts ever name the variables it reads
  // (ENV_NAMES), that list must be this one.
  const mainModule = await import("../main.ts") as Record<string, unknown>;
  const names = mainModule.ENV_NAMES;
  if (Array.isArray(names)) deepEqual([...names].sort(), [...allowed].sort());
});

Deno.test("deno compile accepts every flag of both compile tasks", async () => {
  await withTempDir(async (dir) => {
    for (const t of tasks) {
      // A missing denort stops the compile after the flags, the module graph and the type
      // check: what is left is the download this machine may not be able to do.
      const args = t.args.map((a) => a === t.output ? `${dir}/smartmeter-${t.arch}` : a);
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["compile", ...args],
        cwd: ROOT,
        clearEnv: true,
        env: childEnv({ DENORT_BIN: `${dir}/no-such-denort` }),
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      match(stderr, /Could not find denort/, `${t.name}:\n${stderr}`);
    }
  });
});

// ---------------------------------------------------------------------------------------
// Every command under exactly those flags

Deno.test("the sandboxed program prints its version", async () => {
  const denoJson = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)) as { version: string };
  const r = await runSandboxed(["--version"]);
  assertRanSandboxed(r, "smartmeter --version");
  equal(r.stdout.trim(), `smartmeter ${denoJson.version}`);
});

Deno.test("the sandboxed program decodes a capture file", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/capture.hex`, fixture.hex + "\n");
    const r = await runSandboxed(["decode", "--key", fixture.key, `${dir}/capture.hex`]);
    assertRanSandboxed(r, "smartmeter decode");
    const line = JSON.parse(r.stdout.trim()) as { ok: boolean; values: Record<string, number> };
    equal(line.ok, true);
    equal(line.values.energy_import_wh, fixture.expected.energy_import_wh);
  });
});

Deno.test("the sandboxed demo drives a pseudo-terminal through FFI", async () => {
  const r = await runSandboxed(["demo", "--count", "2", "--interval", "0.2"]);
  assertRanSandboxed(r, "smartmeter demo");
  equal(r.stdout.split("\n").filter((l) => l.startsWith("✓")).length, 2, r.stdout);
});

Deno.test("the sandboxed simulate --out and capture --out write their files", async () => {
  await withTempDir(async (dir) => {
    const sim = await runSandboxed([
      "simulate",
      "--meter-type",
      "burgenland",
      "--key",
      SIM_KEY,
      "--count",
      "1",
      "--interval",
      "0",
      "--out",
      `${dir}/sim.hex`,
    ]);
    assertRanSandboxed(sim, "smartmeter simulate --out FILE");
    const simulated = (await Deno.readTextFile(`${dir}/sim.hex`)).replace(/\s/g, "");
    assert(simulated.length > 0, "simulate wrote nothing");

    await Deno.writeTextFile(
      `${dir}/config.yaml`,
      `dlms:\n  port: ${dir}/sim.hex\n  key: "${SIM_KEY}"\nmqtt:\n  host: 127.0.0.1\n`,
    );
    const cap = await runSandboxed([
      "capture",
      "--config",
      `${dir}/config.yaml`,
      "--seconds",
      "10",
      "--out",
      `${dir}/capture.hex`,
    ]);
    assertRanSandboxed(cap, "smartmeter capture --out FILE");
    const captured = (await Deno.readTextFile(`${dir}/capture.hex`)).replace(/\s/g, "");
    equal(captured.toLowerCase(), simulated.toLowerCase());
  });
});

Deno.test("the sandboxed check reads the config from SMARTMETER_CONFIG and tries the broker", async () => {
  const missing = brokerMissing();
  if (missing) console.log(`${missing}; checking the meter only`);
  const broker = missing ? null : await startBroker();
  try {
    await withTempDir(async (dir) => {
      await Deno.writeTextFile(`${dir}/capture.hex`, fixture.hex + "\n");
      await Deno.writeTextFile(
        `${dir}/config.yaml`,
        `dlms:\n  port: ${dir}/capture.hex\n  key: "${fixture.key}"\n` +
          `mqtt:\n  host: 127.0.0.1\n  port: ${broker?.port ?? 1883}\n`,
      );
      const r = await runSandboxed(
        ["check", "--seconds", "10", ...(broker ? [] : ["--no-mqtt"])],
        { env: { SMARTMETER_CONFIG: `${dir}/config.yaml` } },
      );
      assertRanSandboxed(r, "smartmeter check");
      match(r.stdout, /✓ Meter: telegram decoded/);
      if (broker) match(r.stdout, /✓ MQTT: connected to mqtt:\/\/127\.0\.0\.1:/);
    });
  } finally {
    await broker?.close();
  }
});

Deno.test("the sandboxed daemon replays a capture with a systemd credential until it ends", async () => {
  const missing = brokerMissing();
  if (missing) console.log(`${missing}; the daemon runs with an unreachable broker`);
  const broker = missing ? null : await startBroker();
  try {
    await withTempDir(async (dir) => {
      await Deno.writeTextFile(`${dir}/capture.hex`, fixture.hex + "\n");
      // The key comes from $CREDENTIALS_DIRECTORY, as systemd's LoadCredential= gives it.
      await Deno.mkdir(`${dir}/credentials`);
      await Deno.writeTextFile(`${dir}/credentials/key`, fixture.key + "\n");
      await Deno.writeTextFile(
        `${dir}/config.yaml`,
        `dlms:\n  port: ${dir}/capture.hex\n` +
          `mqtt:\n  host: 127.0.0.1\n  port: ${broker?.port ?? 9}\n`,
      );
      const r = await runSandboxed(["run", "--config", `${dir}/config.yaml`, "--json"], {
        env: { CREDENTIALS_DIRECTORY: `${dir}/credentials`, JOURNAL_STREAM: "8:12345" },
      });
      assertRanSandboxed(r, "smartmeter run on a capture file");
      const line = JSON.parse(r.stdout.trim().split("\n")[0] ?? "") as { ok: boolean };
      equal(line.ok, true, "the key from the credential did not decrypt the telegram");
      // JOURNAL_STREAM was read: journald priority prefixes instead of level words.
      match(r.stderr, /^<6>smartmeter: /m);
    });
  } finally {
    await broker?.close();
  }
});

Deno.test({
  name: "the sandboxed daemon reads a tcp:// meter, publishes, and stops on SIGTERM",
  ignore: brokerMissing() !== null,
  async fn() {
    const broker = await startBroker();
    const subscriber = await subscribeAll(broker.port);
    const meter = meterServer(fromHex(fixture.hex));
    try {
      await withTempDir(async (dir) => {
        await Deno.writeTextFile(
          `${dir}/config.yaml`,
          `dlms:\n  port: tcp://127.0.0.1:${meter.port}\n  key: "${fixture.key}"\n` +
            `mqtt:\n  host: 127.0.0.1\n  port: ${broker.port}\n  publish_interval: 0\n`,
        );
        const run = spawnSandboxed(["run", "--config", `${dir}/config.yaml`]);
        const published = (topic: string, payload?: string) =>
          subscriber.messages.some((m) =>
            m.topic === topic && (payload === undefined || m.payload === payload)
          );
        await Promise.race([
          waitFor(() => published("smartmeter/state"), "the state of the first telegram", 30_000),
          run.done.then((r) => fail(`smartmeter run ended early:\n${r.stderr}`)),
        ]);
        run.kill("SIGTERM");
        const r = await run.done;
        assertRanSandboxed(r, "smartmeter run stopped by SIGTERM");
        await waitFor(() => published("smartmeter/availability", "offline"), "offline");
      });
    } finally {
      meter.close();
      await subscriber.close();
      await broker.close();
    }
  },
});

Deno.test("the sandboxed daemon asks the Supervisor for the broker when mqtt.host is empty", async () => {
  const missing = brokerMissing();
  if (missing) console.log(`${missing}; only the Supervisor's answer is checked`);
  const password = "supervisor-secret-42";
  const broker = missing ? null : await startBroker({ users: { addons: password } });
  const subscriber = broker
    ? await subscribeAll(broker.port, { username: "addons", password })
    : null;
  const meter = meterServer(fromHex(fixture.hex));
  const requests: { path: string; auth: string | null }[] = [];
  const supervisor = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => {
      requests.push({ path: new URL(req.url).pathname, auth: req.headers.get("authorization") });
      return Response.json({
        result: "ok",
        data: {
          addon: "core_mosquitto",
          host: "127.0.0.1",
          port: broker?.port ?? 9,
          ssl: false,
          protocol: "3.1.1",
          username: "addons",
          password,
        },
      });
    },
  );
  try {
    await withTempDir(async (dir) => {
      await Deno.writeTextFile(`${dir}/capture.hex`, fixture.hex + "\n");
      // The add-on's options.json, with the host left empty. Without a broker the capture
      // file ends the run; with one, the tcp:// meter keeps it up until it has published.
      const port = broker ? `tcp://127.0.0.1:${meter.port}` : `${dir}/capture.hex`;
      await Deno.writeTextFile(
        `${dir}/options.json`,
        JSON.stringify({
          logging: "info",
          meter_type: "auto",
          dlms: { port, key: fixture.key, auth_key: "" },
          mqtt: { host: "", port: 1883, device_id: "smartmeter", publish_interval: 0 },
        }),
      );
      const run = spawnSandboxed(["run", "--config", `${dir}/options.json`], {
        env: {
          SUPERVISOR_TOKEN: "token-from-the-supervisor",
          SUPERVISOR_URL: `http://127.0.0.1:${supervisor.addr.port}`,
          // The add-on keeps its state in /data; here, in the test's own directory.
          STATE_DIRECTORY: dir,
        },
      });
      if (subscriber) {
        await Promise.race([
          waitFor(
            () => subscriber.messages.some((m) => m.topic === "smartmeter/state"),
            "the state on the Supervisor's broker",
            30_000,
          ),
          run.done.then((r) => fail(`smartmeter run ended early:\n${r.stderr}`)),
        ]);
        run.kill("SIGTERM");
      }
      const r = await run.done;
      assertRanSandboxed(r, "smartmeter run inside the add-on");
      deepEqual(requests, [{
        path: "/services/mqtt",
        auth: "Bearer token-from-the-supervisor",
      }]);
      match(r.stderr, /MQTT broker from the Supervisor: 127\.0\.0\.1:/);
      assert(!r.stderr.includes(password), "the Supervisor's password reached the log");
    });
  } finally {
    meter.close();
    await subscriber?.close();
    await supervisor.shutdown();
    await broker?.close();
  }
});

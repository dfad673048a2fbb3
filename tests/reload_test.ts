/**
 * The daemon's life in a real home: SIGHUP reads the config again (a bad one is refused
 * and the daemon runs on), and closed standard streams neither kill it nor get blamed on
 * the meter.
 */

import { equal, match, ok as assert } from "node:assert/strict";
import { main } from "../main.ts";
import { type CommandIO, OutputClosed, type ProcessContext } from "../lib/commands/io.ts";
import { MeterSimulator } from "../lib/simulator.ts";
import { fromHex } from "../lib/bytes.ts";
import { Smartmeter, tempDir, waitUntil } from "./e2e/process.ts";

const KEY = "000102030405060708090a0b0c0d0e0f";

/** A TCP serial server on loopback that sends a simulated push every `everyMs`. */
async function meterServer(everyMs = 100) {
  const sim = await MeterSimulator.create({ meter: "noe_evn", key: fromHex(KEY) });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const timer = setInterval(async () => {
    const t = await sim.next(new Date());
    for (const c of conns) c.write(t.bytes).catch(() => conns.delete(c));
  }, everyMs);
  (async () => {
    for await (const c of listener) conns.add(c);
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close() {
      clearInterval(timer);
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    },
  };
}

function configText(port: number, extra = ""): string {
  return `dlms:\n  port: tcp://127.0.0.1:${port}\n  key: "${KEY}"\n${extra}`;
}

interface Captured {
  out: string[];
  err: string[];
  io: CommandIO;
}

function capture(outFails: (lines: number) => boolean = () => false): Captured {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: {
      stdin: ReadableStream.from([]),
      openFile: async (p) => (await Deno.open(p)).readable,
      out: (l) => {
        if (outFails(out.length)) throw new OutputClosed(new Error("Broken pipe (os error 32)"));
        out.push(l);
      },
      err: (l) => err.push(l),
    },
  };
}

Deno.test("SIGHUP reads the config again: a good one is taken, a bad one refused by key while the daemon runs on", async () => {
  const meter = await meterServer();
  await using dir = await tempDir();
  const path = `${dir.path}/config.yaml`;
  await Deno.writeTextFile(path, configText(meter.port));
  const c = capture();
  const stop = new AbortController();
  const reload = new EventTarget();
  const ctx: ProcessContext = {
    env: {},
    signal: stop.signal,
    reload,
    stderrIsTerminal: false,
    version: "test",
  };
  const done = main(["run", "--config", path, "--no-mqtt", "--json"], c.io, () => ctx);
  try {
    await waitUntil(() => c.out.length >= 2, "telegrams");
    // A good change: the layout is pinned now.
    await Deno.writeTextFile(path, configText(meter.port, "meter_type: noe_evn\n"));
    reload.dispatchEvent(new Event("reload"));
    await waitUntil(() => c.err.some((l) => l.includes("Config reloaded")), "the reload");
    assert(c.err.some((l) => /starting: meter type noe_evn/.test(l)), c.err.join("\n"));
    const before = c.out.length;
    await waitUntil(() => c.out.length >= before + 2, "telegrams after the reload");

    // A bad change: refused, every problem named by its key, the old config runs on.
    await Deno.writeTextFile(
      path,
      `dlms:\n  port: tcp://127.0.0.1:${meter.port}\n  key: "123"\nmqtt:\n  port: 99999\n`,
    );
    reload.dispatchEvent(new Event("reload"));
    await waitUntil(() => c.err.some((l) => l.includes("The new config is not used")), "refusal");
    const text = c.err.join("\n");
    match(text, /dlms\.key: must be 32 hex characters/);
    match(text, /mqtt\.port: /);
    const after = c.out.length;
    await waitUntil(() => c.out.length >= after + 2, "telegrams on the old config");
  } finally {
    stop.abort();
    meter.close();
  }
  equal(await done, 0);
  assert(!c.err.join("\n").includes(KEY), "no key in the log");
});

Deno.test("run --json ends with exit 1 and names standard output when it is closed", async () => {
  const meter = await meterServer();
  await using dir = await tempDir();
  const path = `${dir.path}/config.yaml`;
  await Deno.writeTextFile(path, configText(meter.port));
  const c = capture((lines) => lines >= 2);
  const ctx: ProcessContext = {
    env: {},
    signal: new AbortController().signal,
    stderrIsTerminal: false,
    version: "test",
  };
  try {
    const code = await main(["run", "--config", path, "--no-mqtt", "--json"], c.io, () => ctx);
    equal(code, 1);
  } finally {
    meter.close();
  }
  const text = c.err.join("\n");
  match(text, /Cannot write to standard output: Broken pipe .*: stopping/);
  assert(!/tcp:\/\/127\.0\.0\.1:\d+: Broken pipe/.test(text), "blamed on the meter:\n" + text);
});

Deno.test("a closed standard error never stops the daemon; a closed standard output stops --json with a message (real process)", async () => {
  await using dir = await tempDir();
  const meter = await meterServer(50);
  const path = `${dir.path}/config.yaml`;
  await Deno.writeTextFile(path, configText(meter.port));
  try {
    // stderr closed from the start: the daemon logs into nothing and goes on.
    const p = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "main.ts", "run", "--config", path, "--no-mqtt", "--json"],
      cwd: new URL("../", import.meta.url).pathname,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    await p.stderr.cancel();
    const reader = p.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while ((text.match(/\n/g)?.length ?? 0) < 5) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    assert((text.match(/"ok":true/g)?.length ?? 0) >= 5, `the daemon went on:\n${text}`);
    // Now stdout closes too: --json has nowhere to write, the daemon ends with status 1.
    await reader.cancel();
    const status = await p.status;
    equal(status.code, 1);
  } finally {
    meter.close();
  }
});

Deno.test("decode into a closed pipe ends with one line that names standard output (real process)", async () => {
  await using dir = await tempDir();
  const fixture = JSON.parse(
    await Deno.readTextFile(new URL("./fixtures/norway_aidon_1.json", import.meta.url)),
  );
  // Many telegrams: more output than a pipe holds.
  await Deno.writeTextFile(`${dir.path}/many.hex`, `${fixture.hex}\n`.repeat(3000));
  const p = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "decode", `${dir.path}/many.hex`],
    cwd: new URL("../", import.meta.url).pathname,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = p.stdout.getReader();
  await reader.read(); // the first chunk, then the reader goes away, like `| head -1`
  await reader.cancel();
  const [status, err] = await Promise.all([
    p.status,
    new Response(p.stderr).text(),
  ]);
  equal(status.code, 1);
  match(err, /^smartmeter: Cannot write to standard output: .*\(whatever read it has gone\)\n$/);
  assert(!/\n\s+at /.test(err), "no stack trace");
});

Deno.test("a real SIGHUP reloads the daemon's config (real process)", async () => {
  await using dir = await tempDir();
  const meter = await meterServer();
  const path = `${dir.path}/config.yaml`;
  await Deno.writeTextFile(path, configText(meter.port));
  const p = Smartmeter.spawn(["run", "--config", path, "--no-mqtt"]);
  try {
    await p.waitFor(/Reading from tcp:\/\//, 20_000);
    p.signal("SIGHUP");
    await p.waitFor(/SIGHUP: reading the config .* again/);
    await p.waitFor(/Config reloaded: starting again with it/);
    await p.waitFor(/Reading from tcp:\/\//, 10_000, 1);
    equal(p.status, null, "still running");
  } finally {
    meter.close();
  }
  equal((await p.stop()).code, 0);
});

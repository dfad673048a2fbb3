/**
 * The commands with a Netz OÖ AMIS meter: `simulate`, `demo`, `check`, `capture`, `decode`.
 */

import { deepEqual, equal, match, ok as assert } from "node:assert/strict";
import { runMain, withDir } from "./cli_support.ts";
import { DEMO_KEY } from "../lib/commands/simulate.ts";
import { AmisSimulator } from "../lib/amis_simulator.ts";
import { runAmisLine } from "../lib/amis_line.ts";
import { fromHex, toHex } from "../lib/bytes.ts";
import { Decoder } from "../lib/pipeline.ts";
import { PseudoTerminal } from "../lib/sources/pty.ts";

/** A meter on a new pty that searches every 200 ms; `answers: false` hears no E5. */
async function meterOnPty(answers = true) {
  const pty = PseudoTerminal.open();
  const meter = await AmisSimulator.create({
    key: fromHex(DEMO_KEY),
    searchPeriodMs: 200,
    framePeriodMs: 500,
    // A head that cannot send: the meter never gets an answer in time.
    ackTimeoutMs: answers ? 500 : -1,
  });
  const ac = new AbortController();
  const running = runAmisLine(pty, meter, { signal: ac.signal });
  return {
    pty,
    meter,
    async stop() {
      ac.abort();
      await running;
      pty.close();
    },
  };
}

const configFor = (port: string, meterType = "amis") =>
  `meter_type: ${meterType}\ndlms:\n  port: ${port}\n  key: "${DEMO_KEY}"\nmqtt:\n  host: localhost\n`;

Deno.test("simulate --meter-type amis --out - writes the search, then frames that decode", async () => {
  const sim = await runMain([
    "simulate",
    "--meter-type",
    "amis",
    "--count",
    "3",
    "--interval",
    "0",
    "--out",
    "-",
  ]);
  equal(sim.status, 0, sim.err.join("\n"));
  deepEqual(sim.out.map((l) => l.slice(0, 8)), ["1040f030", "685f5f68", "685f5f68", "685f5f68"]);
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/amis.hex`, sim.out.join("\n"));
    const dec = await runMain(["decode", "--key", DEMO_KEY, `${dir}/amis.hex`]);
    equal(dec.status, 0, dec.out.join("\n"));
    const lines = dec.out.map((l) => JSON.parse(l));
    deepEqual(lines.map((l) => [l.ok, l.layout, l.frame_counter]), [
      [true, "amis", 0],
      [true, "amis", 1],
      [true, "amis", 2],
    ]);
  });
});

Deno.test("simulate --meter-type amis --out /dev/pts/N talks to a reader on the line", async () => {
  const pty = PseudoTerminal.open();
  const decoder = await Decoder.create({ key: fromHex(DEMO_KEY) });
  let decoded = 0;
  const ac = new AbortController();
  // The reader on the master side: it answers what the decoder says to answer.
  const reader = (async () => {
    const buf = new Uint8Array(512);
    while (!ac.signal.aborted) {
      const n = await pty.read(buf, 100, ac.signal);
      if (n === 0) continue;
      const fed = decoder.feed(buf.slice(0, n));
      for (const reply of fed.replies) await pty.write(reply);
      for (const r of await fed.results) if (r.ok) decoded++;
    }
  })();
  try {
    const r = await runMain([
      "simulate",
      "--meter-type",
      "amis",
      "--count",
      "2",
      "--interval",
      "0.2",
      "--search",
      "0.2",
      "--out",
      pty.path,
    ]);
    equal(r.status, 0, r.err.join("\n"));
  } finally {
    ac.abort();
    await reader;
    pty.close();
  }
  assert(decoded >= 2, `${decoded} decoded`);
  assert(decoder.stats.searches >= 1);
});

Deno.test("demo --meter-type amis shows the handshake end to end", async () => {
  const r = await runMain(["demo", "--meter-type", "amis", "--count", "2", "--interval", "0.3"]);
  equal(r.status, 0, r.err.join("\n"));
  equal(r.out.length, 2, r.out.join("\n"));
  for (const line of r.out) {
    match(line, /^✓ \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d mbus\/encrypted\/amis #\d+: \d+ Wh in/);
  }
  match(r.err.join("\n"), /searches for its reader every 3 s here \(a real one: once a minute\)/);
});

Deno.test("check answers an AMIS meter, waits for its search, and decodes a telegram", async () => {
  const m = await meterOnPty();
  try {
    await withDir(async (dir) => {
      await Deno.writeTextFile(`${dir}/c.yaml`, configFor(m.pty.path));
      const r = await runMain(["check", "-c", `${dir}/c.yaml`, "--no-mqtt"]);
      equal(r.status, 0, r.out.join("\n"));
      const text = r.out.join("\n");
      match(text, /meter type amis; port .* \(9600 8E1\)/);
      match(text, /an AMIS meter searches for its reader once a minute: listening up to 70 s/);
      match(text, /✓ Meter: telegram decoded \(mbus, encrypted, layout amis: energy import \d+ Wh/);
    });
  } finally {
    await m.stop();
  }
});

Deno.test("check explains a meter that searches and never gets the answer", async () => {
  const m = await meterOnPty(false);
  try {
    await withDir(async (dir) => {
      await Deno.writeTextFile(`${dir}/c.yaml`, configFor(m.pty.path));
      const r = await runMain(["check", "-c", `${dir}/c.yaml`, "--no-mqtt", "--seconds", "1"]);
      equal(r.status, 1);
      const text = r.out.join("\n");
      match(
        text,
        /✗ Meter: it searched for its reader \d+ time\(s\) in 1 s \(M-Bus SND_NKE: a Netz OÖ AMIS meter\) and was answered each time, but sent no data/,
      );
      match(text, /IR head sits straight on the optical port \(it must send, not only receive\)/);
    });
  } finally {
    await m.stop();
  }
});

Deno.test("check on a silent line says an AMIS meter may need a minute", async () => {
  const pty = PseudoTerminal.open();
  try {
    await withDir(async (dir) => {
      await Deno.writeTextFile(`${dir}/c.yaml`, configFor(pty.path, "auto"));
      const r = await runMain(["check", "-c", `${dir}/c.yaml`, "--no-mqtt", "--seconds", "1"]);
      equal(r.status, 1);
      const text = r.out.join("\n");
      match(text, /✗ Meter: no bytes from .* in 1 s/);
      match(
        text,
        /a Netz OÖ AMIS meter sends nothing until its search, once a minute: try --seconds 70/,
      );
    });
  } finally {
    pty.close();
  }
});

Deno.test("capture answers an AMIS meter, so that the capture holds its data", async () => {
  const m = await meterOnPty();
  try {
    await withDir(async (dir) => {
      await Deno.writeTextFile(`${dir}/c.yaml`, configFor(m.pty.path));
      const r = await runMain(["capture", "-c", `${dir}/c.yaml`, "--seconds", "1.5"]);
      equal(r.status, 0, r.err.join("\n"));
      await Deno.writeTextFile(`${dir}/cap.hex`, r.out.join("\n"));
      const dec = await runMain(["decode", "--key", DEMO_KEY, `${dir}/cap.hex`]);
      const lines = dec.out.map((l) => JSON.parse(l));
      assert(lines.filter((l) => l.ok).length >= 1, dec.out.join("\n"));
      equal(toHex(fromHex(r.out.join("")).subarray(0, 5)), "1040f03016");
    });
  } finally {
    await m.stop();
  }
});

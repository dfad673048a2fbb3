/**
 * Measures how fast `smartmeter run` answers a Netz OÖ AMIS meter, as the meter sees it:
 * the time from the write of a frame's last byte into the pseudo-terminal to the E5 the
 * meter reads back. The daemon is a real `smartmeter run --no-mqtt` process on the pty's
 * slave (9600 8E1, meter_type amis); the meter is lib/amis_simulator.ts in this process,
 * sending one frame every `--period` ms after its search is answered. The spec's deadline
 * is 500 ms. Run by hand (needs /dev/ptmx):
 *
 * ```
 * deno run -A scripts/amis_latency.ts                  # 300 frames, 100 ms apart
 * deno run -A scripts/amis_latency.ts --frames 1000 --period 1000 --load
 * ```
 *
 * `--load` keeps both cores busy with busy-looping workers meanwhile (a loaded Pi).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fromHex } from "../lib/bytes.ts";
import { DEMO_KEY } from "../lib/commands/simulate.ts";
import { AmisSimulator } from "../lib/amis_simulator.ts";
import { runAmisLine } from "../lib/amis_line.ts";
import { PseudoTerminal } from "../lib/sources/pty.ts";
import { loadAverage, machineLines, markdownTable, percentile, ROOT } from "./harness.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    frames: { type: "string", default: "300" },
    period: { type: "string", default: "100" },
    load: { type: "boolean", default: false },
  },
});
const frames = Number(values.frames);
const period = Number(values.period);

const machine = machineLines();
const dir = await Deno.makeTempDir();
const pty = PseudoTerminal.open();
await Deno.writeTextFile(
  `${dir}/config.yaml`,
  `meter_type: amis\ndlms:\n  port: ${pty.path}\n  key: "${DEMO_KEY}"\nmqtt:\n  host: localhost\n`,
);
const meter = await AmisSimulator.create({
  key: fromHex(DEMO_KEY),
  framePeriodMs: period,
  searchPeriodMs: 500,
});

const workers: Worker[] = [];
if (values.load) {
  const code = "for (;;) { Math.sqrt(Math.random()); }";
  const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
  for (let i = 0; i < navigator.hardwareConcurrency; i++) {
    workers.push(new Worker(url, { type: "module" }));
  }
}

const daemon = new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", `${ROOT}main.ts`, "run", "--config", `${dir}/config.yaml`, "--no-mqtt"],
  stdout: "null",
  stderr: "piped",
}).spawn();

const stop = new AbortController();
const meterRun = runAmisLine(pty, meter, {
  signal: stop.signal,
  onReceive: () => {
    if (meter.stats.answeredAccess.length >= frames) stop.abort();
  },
});
const limit = setTimeout(() => stop.abort(), 20_000 + frames * period * 2);
await meterRun;
clearTimeout(limit);
daemon.kill("SIGTERM");
await daemon.status;
for (const w of workers) w.terminate();
pty.close();
await Deno.remove(dir, { recursive: true });

const s = meter.stats;
// The first answer is to the search, which came while the daemon was starting.
const ms = s.latenciesMs.slice(1);
const f = (x: number) => x.toFixed(2);
console.log(`## AMIS answer latency (${values.load ? "both cores busy" : "idle machine"})\n`);
console.log(machine.join("\n"));
console.log(`- Load average at the end: ${loadAverage()}\n`);
console.log(
  markdownTable(
    ["frames answered", "missed", "median", "p95", "p99", "max"],
    [[
      String(ms.length),
      String(s.missed),
      `${f(percentile(ms, 0.5))} ms`,
      `${f(percentile(ms, 0.95))} ms`,
      `${f(percentile(ms, 0.99))} ms`,
      `${f(Math.max(...ms))} ms`,
    ]],
  ).join("\n"),
);
console.log(
  `\nFrom the write of a frame's last byte (${period} ms apart) to the E5 read back, ` +
    `through a pseudo-terminal and a separate \`smartmeter run\` process; the meter's deadline is 500 ms.`,
);
Deno.exit(s.missed === 0 && ms.length >= frames - 1 ? 0 : 1);

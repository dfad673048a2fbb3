/**
 * No stack trace ever reaches a user: bad command-line input gives one clear line and exit
 * status 2 (usage), 1 (it failed) or 78 (bad config), never an exception. The specific
 * cases first, then a seeded sweep over the argument combinations of every command.
 *
 * Commands run in this process through `main()`, each with a signal that stops it after a
 * moment (a combination that happens to be valid may start something long-running).
 */

import { equal, match, ok as assert } from "node:assert/strict";
import { main } from "../main.ts";
import type { CommandIO, ProcessContext } from "../lib/commands/io.ts";
import { type Run, runMain } from "./cli_support.ts";
import { prng } from "../lib/simulator.ts";

function run(args: string[], stopAfterMs = 1_000): Promise<Run> {
  return runMain(args, { stdin: "7e a0", signal: AbortSignal.timeout(stopAfterMs) });
}

/** A line of a JavaScript stack trace, or the header of an uncaught error. */
const STACK = /^\s+at\s|\.ts:\d+:\d+\)?$|^(Uncaught )?\w*Error: .*\n\s+at /m;

function assertNoStack(args: string[], r: Run): void {
  for (const line of [...r.out, ...r.err]) {
    assert(!STACK.test(line), `${JSON.stringify(args)} printed a stack trace:\n${line}`);
    assert(
      !/unexpected error/.test(line),
      `${JSON.stringify(args)} reached the last-resort handler:\n${line}`,
    );
  }
}

const dir = await Deno.makeTempDir({ prefix: "smartmeter-cli-" });
const MISSING = `${dir}/missing.yaml`;
const UNWRITABLE = `${dir}/no/such/dir/out.hex`;
const GARBAGE = `${dir}/garbage.yaml`;
await Deno.writeTextFile(GARBAGE, "dlms: [unclosed\n");
const TEXT = `${dir}/text.txt`;
await Deno.writeTextFile(TEXT, "hello, not hex\n");

Deno.test("decode of a directory says so in one line (exit 2)", async () => {
  const r = await run(["decode", dir]);
  equal(r.status, 2);
  equal(r.err[0], `smartmeter decode: cannot read ${dir}: it is a directory`);
  assertNoStack(["decode", dir], r);
});

Deno.test("simulate --out to a place it cannot write says so in one line (exit 2)", async () => {
  for (const out of [UNWRITABLE, dir, "/dev/null", "/dev/smartmeter-missing"]) {
    const r = await run(["simulate", "--meter-type", "noe_evn", "--count", "1", "--out", out]);
    equal(r.status, 2, `${out}: ${r.err.join("\n")}`);
    match(r.err[0]!, new RegExp(`^smartmeter simulate: cannot write to ${out}: `));
    assertNoStack(["simulate", "--out", out], r);
  }
});

Deno.test("capture --out to a place it cannot write says so in one line (exit 2)", async () => {
  await Deno.writeTextFile(`${dir}/c.yaml`, `dlms:\n  port: ${TEXT}\n`);
  const r = await run(["capture", "-c", `${dir}/c.yaml`, "--out", UNWRITABLE]);
  equal(r.status, 2, r.err.join("\n"));
  match(
    r.err.join("\n"),
    new RegExp(`[Cc]annot write to ${UNWRITABLE}: the directory .* does not exist`),
  );
  assertNoStack(["capture", "--out", UNWRITABLE], r);
});

// ---- the sweep ----

/** Values to try for each kind of option. */
const VALUES: Record<string, string[]> = {
  path: [dir, MISSING, GARBAGE, TEXT, "/dev/null", ""],
  out: [UNWRITABLE, dir, "/dev/null", "/dev/smartmeter-missing", "/proc/version", ""],
  number: ["0", "-1", "abc", "1e309", "", " ", "NaN"],
  key: ["", "zz", "00", "0".repeat(31), "x".repeat(32), "0x" + "0".repeat(40)],
  word: ["", "nope", "BURGENLAND ", "../../etc"],
  hex: ["", "zz", "0011", "00112233445566778899"],
  url: ["", "mqtt://", "http://x", "mqtt://u:p@ho st", "mqtt://[::1", "mqtt://h:0", "x"],
};

type Kind = keyof typeof VALUES | "flag";

const COMMANDS: Record<string, { options: Record<string, Kind>; positional?: Kind }> = {
  decode: {
    options: {
      "--key": "key",
      "--auth-key": "key",
      "--meter-type": "word",
      "--system-title": "hex",
      "--binary": "flag",
    },
    positional: "path",
  },
  capture: { options: { "--config": "path", "--seconds": "number", "--out": "out" } },
  simulate: {
    options: {
      "--meter-type": "word",
      "--key": "key",
      "--auth-key": "key",
      "--interval": "number",
      "--count": "number",
      "--seed": "number",
      "--out": "out",
    },
  },
  demo: {
    options: {
      "--meter-type": "word",
      "--count": "number",
      "--interval": "number",
      "--json": "flag",
      "--mqtt": "url",
    },
  },
  check: { options: { "--config": "path", "--seconds": "number", "--no-mqtt": "flag" } },
  run: { options: { "--config": "path", "--json": "flag", "--no-mqtt": "flag" } },
};

/** A seeded generator, so every run tries the same combinations. */
const random = prng;

function combinations(): string[][] {
  const out: string[][] = [
    [],
    ["bogus"],
    ["--bogus"],
    ["-c"],
    ["--config"],
    ["help", "extra"],
  ];
  for (const [command, spec] of Object.entries(COMMANDS)) {
    out.push([command, "--bogus"], [command, "-x", "y"], [command, "--help", "--bogus"]);
    // Each option alone: without its value, and with each value.
    for (const [option, kind] of Object.entries(spec.options)) {
      if (kind === "flag") {
        out.push([command, `${option}=yes`]);
        continue;
      }
      out.push([command, option]);
      for (const v of VALUES[kind]!) out.push([command, option, v]);
    }
    for (const v of VALUES[spec.positional ?? "path"]!) {
      out.push([command, v]);
      out.push([command, v, v]);
    }
  }
  // Random mixtures of two or three options.
  const next = random(9);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  for (let i = 0; i < 60; i++) {
    const [command, spec] = pick(Object.entries(COMMANDS));
    const args = [command];
    for (let j = 0; j < 2 + Math.floor(next() * 2); j++) {
      const [option, kind] = pick(Object.entries(spec.options)) as [string, Kind];
      args.push(option);
      if (kind !== "flag") args.push(pick(VALUES[kind]!));
    }
    out.push(args);
  }
  return out;
}

Deno.test("no combination of command-line arguments prints a stack trace", async () => {
  const seen = new Set<number>();
  try {
    for (const args of combinations()) {
      let r: Run;
      try {
        r = await run(args);
      } catch (e) {
        throw new Error(`${JSON.stringify(args)} threw: ${(e as Error).stack}`);
      }
      seen.add(r.status);
      assert([0, 1, 2, 78].includes(r.status), `${JSON.stringify(args)}: status ${r.status}`);
      assertNoStack(args, r);
      if (r.status === 2) {
        assert(r.err.length >= 1, `${JSON.stringify(args)}: exit 2 without a message`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  assert(seen.has(2) && seen.has(78), `statuses seen: ${[...seen].join(", ")}`);
});

Deno.test("an error nobody foresaw still ends as one line and exit status 1", async () => {
  const err: string[] = [];
  const io: CommandIO = {
    stdin: ReadableStream.from([]),
    openFile: () => Promise.reject(new Error("unused")),
    out: () => {
      throw new TypeError("standard output broke");
    },
    err: (l) => err.push(l),
  };
  const ctx = (): ProcessContext => ({
    env: {},
    signal: new AbortController().signal,
    stderrIsTerminal: false,
    version: "test",
  });
  equal(await main(["--version"], io, ctx), 1);
  equal(err.length, 1);
  match(err[0]!, /^smartmeter: unexpected error: standard output broke \(a bug: please report/);
});

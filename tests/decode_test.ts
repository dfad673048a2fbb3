import { deepEqual, equal, match, ok as assert } from "node:assert/strict";
import { main } from "../main.ts";
import type { CommandIO } from "../lib/commands/io.ts";
import { toHex } from "../lib/bytes.ts";
import { fixture } from "./fixtures.ts";

interface Run {
  status: number;
  out: string[];
  err: string[];
  json: Record<string, unknown>[];
}

/** Runs the command line in-process with `input` as standard input. */
async function run(args: string[], input: string | Uint8Array = ""): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const bytes = typeof input === "string" ? new TextEncoder().encode(input) : input;
  const io: CommandIO = {
    stdin: ReadableStream.from([bytes]),
    openFile: async (path) => (await Deno.open(path)).readable,
    out: (l) => out.push(l),
    err: (l) => err.push(l),
  };
  const status = await main(args, io);
  const json = out.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  return { status, out, err, json };
}

const noe = fixture("netznoe_kaifa-ma309_1");
const noeKey = toHex(noe.key!);

Deno.test("decode prints one JSON line per telegram and exits 0", async () => {
  const r = await run(["decode", "--key", noeKey], noe.hex);
  equal(r.status, 0, r.err.join("\n"));
  equal(r.json.length, 1);
  const t = r.json[0]!;
  equal(t.ok, true);
  equal(t.framing, "mbus");
  equal(t.security, "encrypted");
  equal(t.system_title, "4b464d6750000009");
  equal(t.frame_counter, 0x23);
  equal(t.time, "2021-09-27T09:47:15+02:00");
  equal(t.meter_id, "181220000009");
  const values = t.values as Record<string, number>;
  equal(values.energy_import_wh, 12937);
  equal(values.voltage_l1_v, 233.7);
  deepEqual((t.obis as Record<string, unknown>)["1-0:1.8.0"], { value: 12937, unit: "Wh" });
});

Deno.test("decode accepts hex in any case with whitespace and newlines", async () => {
  const messy = noe.hex.toUpperCase().replace(/(..)/g, "$1 ").replace(/(.{48})/g, "$1\n\t");
  const r = await run(["decode", "--key", noeKey.toUpperCase()], messy);
  equal(r.status, 0, r.err.join("\n"));
  equal(r.json.length, 1);
  equal(r.json[0]!.ok, true);
});

Deno.test("decode reads raw bytes with --binary", async () => {
  const r = await run(["decode", "--binary", "--key", noeKey], noe.bytes);
  equal(r.status, 0);
  equal(r.json[0]!.ok, true);
});

Deno.test("decode reads a file named on the command line", async () => {
  const path = await Deno.makeTempFile({ suffix: ".hex" });
  try {
    await Deno.writeTextFile(path, noe.hex + "\n");
    const r = await run(["decode", "--key", noeKey, path]);
    equal(r.status, 0);
    equal(r.json.length, 1);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("decode exits 1 and prints the failure when a telegram fails", async () => {
  const r = await run(["decode", "--key", "00".repeat(16)], noe.hex);
  equal(r.status, 1);
  equal(r.json.length, 1);
  equal(r.json[0]!.ok, false);
  equal(r.json[0]!.stage, "decrypt");
  match(String(r.json[0]!.error), /wrong key/);
});

Deno.test("decode reports a partial frame at the end of the input", async () => {
  const r = await run(["decode", "--key", noeKey], noe.hex.slice(0, 300));
  equal(r.status, 1);
  assert(r.json.length >= 1);
  equal(r.json.at(-1)!.ok, false);
  equal(r.json.at(-1)!.stage, "framing");
});

Deno.test("decode refuses bad usage with one line and exit 2", async (t) => {
  const cases: [string, string[], string, RegExp][] = [
    ["odd number of hex digits", ["decode"], "68f", /odd number of hex digits \(3\)/],
    ["a non-hex character", ["decode"], "68zz", /Not hex: character "z"/],
    ["a short key", ["decode", "--key", "0011"], "", /--key must be 32 hex characters/],
    ["a non-hex key", ["decode", "--key", "x".repeat(32)], "", /--key must be 32 hex characters/],
    ["a bad auth key", ["decode", "--auth-key", "12"], "", /--auth-key must be 32 hex/],
    ["an unknown meter type", ["decode", "--meter-type", "nope"], "", /--meter-type: /],
    ["a bad system title", ["decode", "--system-title", "abcd"], "", /--system-title must be 16/],
    ["an unknown option", ["decode", "--frobnicate"], "", /frobnicate/],
    ["two input files", ["decode", "a", "b"], "", /one input file, got 2/],
    ["a missing file", ["decode", "/nonexistent/capture.hex"], "", /cannot read/],
  ];
  for (const [what, args, input, message] of cases) {
    await t.step(what, async () => {
      const r = await run(args, input);
      equal(r.status, 2);
      equal(r.json.length, 0);
      match(r.err[0]!, message);
      assert(!r.err.join("\n").includes("    at "), "no stack trace");
    });
  }
});

Deno.test("main prints the version, the help, and refuses an unknown command", async () => {
  const v = await run(["--version"]);
  equal(v.status, 0);
  match(v.out[0]!, /^smartmeter \d+\.\d+\.\d+/);
  const h = await run(["--help"]);
  equal(h.status, 0);
  match(h.out.join("\n"), /smartmeter decode/);
  const u = await run(["frobnicate"]);
  equal(u.status, 2);
  match(u.err[0]!, /unknown command "frobnicate"/);
});

/** Whether this Deno can start itself (not so under qemu-user without binfmt_misc). */
const canSpawnDeno = (() => {
  try {
    return new Deno.Command(Deno.execPath(), {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .outputSync().success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "the smartmeter process decodes stdin and exits with the status",
  ignore: !canSpawnDeno,
}, async () => {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      new URL("../main.ts", import.meta.url).pathname,
      "decode",
      "--key",
      noeKey,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  });
  const child = cmd.spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(noe.hex));
  await w.close();
  const { code, stdout } = await child.output();
  equal(code, 0);
  const lines = new TextDecoder().decode(stdout).trim().split("\n");
  equal(lines.length, 1);
  equal(JSON.parse(lines[0]!).ok, true);
});

Deno.test("decode says how many bytes were not part of any frame", async () => {
  const r = await run(["decode", "--key", noeKey], "0102030405" + noe.hex + "aabb");
  equal(r.status, 0);
  equal(r.json.length, 1);
  match(r.err.join("\n"), /7 bytes were not part of any frame and were skipped/);
  const clean = await run(["decode", "--key", noeKey], noe.hex);
  equal(clean.err.length, 0);
});

Deno.test("decode prints the model where the telegram tells it, null where not", async () => {
  const bgld = fixture("burgenland_landis-gyr-e450_1");
  const r = await run(
    ["decode", "--key", toHex(bgld.key!), "--auth-key", toHex(bgld.authKey!)],
    bgld.hex,
  );
  equal(r.status, 0);
  equal(r.json[0]!.model, "E450");
  const noeRun = await run(["decode", "--key", noeKey], noe.hex);
  equal(noeRun.json[0]!.model, null);
  deepEqual(
    Object.keys(noeRun.json[0]!),
    [
      "ok",
      "framing",
      "security",
      "layout",
      "system_title",
      "frame_counter",
      "time",
      "meter_id",
      "model",
      "values",
      "obis",
    ],
  );
});

Deno.test("decode lists the withheld named values with the reason", async () => {
  const cyprus = fixture("cyprus_landis-gyr-e450_1");
  const r = await run(["decode"], cyprus.hex);
  equal(r.status, 0, "the telegram still decodes");
  const t = r.json[0]!;
  deepEqual(t.values, {});
  const withheld = t.withheld as { keys: string[]; reason: string }[];
  equal(withheld.length, 1);
  match(withheld[0]!.reason, /^Scale unknown for power_import_w, .*current_l1_a/);
  deepEqual((t.obis as Record<string, unknown>)["1-0:31.7.0"], {
    value: 130,
    unit: "A",
    scale: "unknown",
  });
});

Deno.test("decode --explain prints each layer before the telegram's JSON, and never the key", async () => {
  const bgld = fixture("burgenland_landis-gyr-e450_1");
  const key = toHex(bgld.key!);
  const authKey = toHex(bgld.authKey!);
  const r = await run(["decode", "--explain", "--key", key, "--auth-key", authKey], bgld.hex);
  equal(r.status, 0);
  match(r.out[0]!, /^# smartmeter decode --explain/);
  match(r.out.slice(0, 3).join("\n"), /No key is printed here/);
  equal(r.out[3], "telegram 1");
  const json = r.out.findIndex((l) => l.startsWith("{"));
  assert(json > 10, "the explanation comes first");
  match(r.out[json - 1]!, /^ {2}result {5}decoded: /);
  equal(r.json.length, 1);
  equal(r.json[0]!.meter_id, "30137181");
  const all = [...r.out, ...r.err].join("\n").toLowerCase();
  assert(!all.includes(key.toLowerCase()) && !all.includes(authKey.toLowerCase()));
});

Deno.test("decode --explain keeps one JSON line per telegram, failures too", async () => {
  const r = await run(["decode", "--explain", "--key", "00".repeat(16)], noe.hex);
  equal(r.status, 1);
  equal(r.json.length, 1);
  equal(r.json[0]!.stage, "decrypt");
  assert(r.out.some((l) => /^ {2}result {5}failed at decrypt: /.test(l)));
});

Deno.test("decode --help names --explain", async () => {
  const r = await run(["decode", "--help"]);
  equal(r.status, 0);
  match(r.out.join("\n"), /--explain +before each telegram's JSON, print what every layer saw/);
});

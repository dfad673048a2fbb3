import { equal, match, ok as assert } from "node:assert/strict";
import { main } from "../main.ts";
import type { CommandIO, ProcessContext } from "../lib/commands/io.ts";

const unit = await Deno.readTextFile(new URL("../smartmeter.service", import.meta.url));
const directives = unit.split("\n").filter((l) => /^[A-Za-z]+=/.test(l));

function has(line: string): boolean {
  return directives.includes(line);
}

Deno.test("smartmeter.service is hardened the way the daemon needs", () => {
  for (
    const d of [
      "Restart=on-failure",
      "RestartPreventExitStatus=78",
      "DynamicUser=yes",
      "SupplementaryGroups=dialout smartmeter",
      "DeviceAllow=char-ttyUSB rw",
      "DeviceAllow=char-ttyACM rw",
      "NoNewPrivileges=yes",
      "ProtectSystem=strict",
      "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
      // The state file: ProtectSystem=strict leaves only this directory writable.
      "StateDirectory=smartmeter",
      // systemctl reload: SIGHUP reads the config again.
      "ExecReload=/bin/kill -HUP $MAINPID",
    ]
  ) assert(has(d), `missing ${d}`);
  // V8 needs writable+executable memory; the IR head is a device.
  assert(!directives.some((d) => d.startsWith("MemoryDenyWriteExecute=")));
  assert(!directives.some((d) => d.startsWith("PrivateDevices=")));
  // The credentials the config reads are named in the unit (ready to be enabled).
  for (const name of ["key", "auth_key", "mqtt_password"]) {
    match(unit, new RegExp(`^#?LoadCredential=${name}:`, "m"));
  }
});

Deno.test({
  name: "smartmeter.service passes systemd-analyze verify",
  ignore: (() => {
    try {
      new Deno.Command("systemd-analyze", { args: ["--version"], stdout: "null" }).outputSync();
      return false;
    } catch {
      console.log("systemd-analyze is not installed: skipping the unit verification");
      return true;
    }
  })(),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      // The binary is not installed here: point ExecStart at one that exists, and enable
      // the credential lines so they are verified too.
      const text = unit.replaceAll("/usr/local/bin/smartmeter", "/bin/true")
        .replaceAll("#LoadCredential=", "LoadCredential=");
      await Deno.writeTextFile(`${dir}/smartmeter.service`, text);
      const out = await new Deno.Command("systemd-analyze", {
        args: ["verify", `${dir}/smartmeter.service`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const messages = new TextDecoder().decode(out.stderr);
      equal(out.code, 0, messages);
      equal(messages.trim(), "");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("the unit's ExecStart command line is one smartmeter accepts", async () => {
  const exec = directives.find((d) => d.startsWith("ExecStart="))!;
  const [, ...args] = exec.slice("ExecStart=".length).split(" ");
  const dir = await Deno.makeTempDir();
  try {
    // Same words, a config that does not exist: a config problem (78), not a usage one (2).
    const missing = args.map((a) => (a.endsWith(".yaml") ? `${dir}/none.yaml` : a));
    const err: string[] = [];
    const io: CommandIO = {
      stdin: ReadableStream.from([]),
      openFile: () => Promise.reject(new Error("unused")),
      out: () => {},
      err: (l) => err.push(l),
    };
    const ctx: ProcessContext = {
      env: {},
      signal: new AbortController().signal,
      stderrIsTerminal: false,
      version: "test",
    };
    equal(await main(missing, io, () => ctx), 78);
    match(err.join("\n"), /Cannot read the config file .*none\.yaml/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

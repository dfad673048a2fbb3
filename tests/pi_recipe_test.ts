/**
 * The README's Raspberry Pi recipe works as written under the shipped unit:
 *
 * - every file it installs is downloaded first, from the release, and the release workflow
 *   uploads it;
 * - the unit's own install notes say the same as the README;
 * - run as the unit runs it, an unprivileged user with no capabilities (systemd's
 *   `DynamicUser=`, here through `setpriv`) in the unit's `SupplementaryGroups=`, with
 *   the file modes and groups the recipe sets: the config (and so the key) can be read, a
 *   telegram decodes and reaches the broker; and a config that user cannot read is
 *   refused with the owner, the mode, the user and what to do.
 *
 * The recipe's `/etc/smartmeter` is made under a temporary directory; nothing outside it
 * is touched. Needs root (to play the service's user) and setpriv.
 */

import { deepEqual, equal, match, ok as assert } from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { readCompileTasks } from "../scripts/permissions.ts";
import { brokerMissing, startBroker } from "./e2e/mosquitto.ts";
import { Subscriber } from "./e2e/process.ts";
import { fixture } from "./fixtures.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const readme = await Deno.readTextFile(`${ROOT}README.md`);
const unit = await Deno.readTextFile(`${ROOT}smartmeter.service`);
const release = parseYaml(await Deno.readTextFile(`${ROOT}.github/workflows/release.yml`)) as {
  jobs: Record<string, { steps: { uses?: string; with?: Record<string, unknown> }[] }>;
};

/** The shell lines of the README's "Raspberry Pi with systemd" recipe, comments dropped. */
function recipe(): string[] {
  const section = readme.split("### Raspberry Pi with systemd")[1]!.split("\n### ")[0]!;
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1]!;
  return block.split("\n").map((l) => l.replace(/#.*$/, "").trim()).filter((l) => l !== "");
}

/** The files a release uploads (the action-gh-release `files:` list). */
function releasedAssets(): string[] {
  const files: string[] = [];
  for (const job of Object.values(release.jobs)) {
    for (const step of job.steps) {
      if (step.uses?.startsWith("softprops/action-gh-release") && step.with?.files) {
        files.push(...String(step.with.files).split("\n").map((f) => f.trim()).filter(Boolean));
      }
    }
  }
  return files.map((f) => f.split("/").at(-1)!);
}

Deno.test("the Pi recipe downloads every file it installs from the release, which ships it", () => {
  const lines = recipe();
  const downloaded = new Set<string>();
  const assets = releasedAssets();
  for (const line of lines) {
    const url = /curl -LO (\S+)/.exec(line)?.[1];
    if (url !== undefined) {
      match(url, /^https:\/\/github\.com\/smartmeter-at\/smartmeter\/releases\/latest\/download\//);
      const name = url.split("/").at(-1)!;
      assert(assets.includes(name), `${name} is downloaded but not a release asset`);
      downloaded.add(name);
      continue;
    }
    const install = /^sudo install (?:-\S+ \S+ )*(\S+) \/\S+$/.exec(line);
    if (install && !line.includes(" -d ")) {
      assert(downloaded.has(install[1]!), `${install[1]} is installed before it is downloaded`);
    }
  }
  for (const name of ["config.example.yaml", "smartmeter.service"]) {
    assert(downloaded.has(name), `${name} is downloaded`);
  }
});

Deno.test("smartmeter.service's install notes say what the README's recipe does", () => {
  const commands = new Set(recipe().map((l) => l.replace(/^sudo /, "")));
  const notes = unit.split("\n").filter((l) => /^#\s+sudo /.test(l)).map((l) =>
    l.replace(/^#\s+sudo /, "").replace(/\s+#.*$/, "").trim()
  );
  const etc = notes.filter((n) => n.includes("/etc/smartmeter") || n.startsWith("groupadd"));
  assert(etc.length >= 3, "the unit notes how the config is installed");
  for (const n of etc) assert(commands.has(n), `the unit says "${n}", the README does not`);
});

// ---- as the unit runs it ----

const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});
const skip = Deno.uid() !== 0
  ? "not root: cannot play the service's user"
  : SETPRIV === undefined
  ? "setpriv is not installed"
  : brokerMissing();
if (skip !== null) console.log(`pi_recipe_test.ts: ${skip}: the recipe is not run`);

/** A uid and a gid from the range systemd's DynamicUser= allocates (61184–65519). */
const SERVICE_UID = 61234;
/** The gid the recipe's `groupadd --system smartmeter` stands for here. */
const SMARTMETER_GID = 61235;

function unitValues(name: string): string[] {
  return unit.split("\n").filter((l) => l.startsWith(`${name}=`)).map((l) =>
    l.slice(name.length + 1)
  );
}

function gidOf(group: string): number {
  if (group === "smartmeter") return SMARTMETER_GID;
  const line = Deno.readTextFileSync("/etc/group").split("\n").find((l) =>
    l.startsWith(`${group}:`)
  );
  if (line === undefined) throw new Error(`group ${group} is not in /etc/group`);
  return Number(line.split(":")[2]);
}

/** Applies the recipe's `install` lines for /etc/smartmeter under `root`. */
async function applyRecipe(root: string, config: string): Promise<void> {
  for (const line of recipe()) {
    const words = line.replace(/^sudo /, "").split(/\s+/);
    if (words[0] !== "install" || !line.includes("/etc/smartmeter")) continue;
    let mode = 0o755;
    let group = "root";
    let directory = false;
    const rest: string[] = [];
    for (let i = 1; i < words.length; i++) {
      const w = words[i]!;
      if (w === "-m") mode = parseInt(words[++i]!, 8);
      else if (w === "-g") group = words[++i]!;
      else if (w === "-d") directory = true;
      else rest.push(w);
    }
    const target = `${root}${rest.at(-1)}`;
    if (directory) await Deno.mkdir(target, { recursive: true });
    else await Deno.writeTextFile(target, config);
    await Deno.chmod(target, mode);
    await Deno.chown(target, 0, group === "root" ? 0 : gidOf(group));
  }
}

/** Runs the unit's ExecStart as the unit's user would, with /etc under `root`. */
async function runAsUnit(
  root: string,
  denoDir: string,
): Promise<{ code: number; log: string }> {
  const exec = unitValues("ExecStart")[0]!.split(" ");
  equal(exec[0], "/usr/local/bin/smartmeter");
  const args = exec.slice(1).map((a) => a.replace(/^\/etc\//, `${root}/etc/`));
  equal(unitValues("DynamicUser")[0], "yes");
  const groups = unitValues("SupplementaryGroups").flatMap((g) => g.split(/\s+/)).map(gidOf);
  const flags = (await readCompileTasks()).find((t) => t.arch === "x86_64")!.permissionFlags;
  const out = await new Deno.Command(SETPRIV!, {
    args: [
      `--reuid=${SERVICE_UID}`,
      `--regid=${SERVICE_UID}`,
      `--groups=${groups.join(",")}`,
      "--inh-caps=-all",
      "--bounding-set=-all",
      "--no-new-privs",
      Deno.execPath(),
      "run",
      ...flags,
      `${ROOT}main.ts`,
      ...args,
    ],
    cwd: "/",
    clearEnv: true,
    env: { PATH: "/usr/bin:/bin", HOME: denoDir, DENO_DIR: denoDir, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, log: new TextDecoder().decode(out.stderr) };
}

/** A DENO_DIR the service's user can use: the npm packages this project needs, copied. */
async function denoDirFor(dir: string): Promise<string> {
  const info = JSON.parse(
    new TextDecoder().decode(
      (await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output()).stdout,
    ),
  ) as { npmCache: string };
  const target = `${dir}/deno`;
  await Deno.mkdir(target);
  const cp = await new Deno.Command("cp", { args: ["-r", info.npmCache, `${target}/npm`] })
    .output();
  if (!cp.success) throw new Error(new TextDecoder().decode(cp.stderr));
  await new Deno.Command("chown", { args: ["-R", `${SERVICE_UID}:${SERVICE_UID}`, target] })
    .output();
  return target;
}

Deno.test({
  name: "the recipe's files, run as the unit runs them, give a running meter, and an " +
    "unreadable config is explained",
  ignore: skip !== null,
  async fn() {
    const broker = await startBroker();
    const dir = await Deno.makeTempDir({ prefix: "smartmeter-pi-" });
    const watcher = await Subscriber.open(broker.port, { topic: "smartmeter/state" });
    try {
      await Deno.chmod(dir, 0o755);
      const f = fixture("netznoe_kaifa-ma309_1");
      await Deno.writeTextFile(`${dir}/capture.hex`, f.hex);
      await Deno.chmod(`${dir}/capture.hex`, 0o644);
      const config = `dlms:\n  port: ${dir}/capture.hex\n  key: "${f.raw.key}"\n` +
        `mqtt:\n  host: 127.0.0.1\n  port: ${broker.port}\n  publish_interval: 0\n`;
      const denoDir = await denoDirFor(dir);

      await applyRecipe(dir, config);
      const ran = await runAsUnit(dir, denoDir);
      equal(ran.code, 0, ran.log);
      match(ran.log, /Stopping: 1 telegrams decoded, 0 failed/);
      await watcher.next("smartmeter/state", 0, 5_000);
      const state = JSON.parse(watcher.on("smartmeter/state")[0]!.payload);
      equal(state.energy_import_wh, 12937);

      // Someone's mistake: the config readable by root only.
      await Deno.chmod(`${dir}/etc/smartmeter/config.yaml`, 0o600);
      await Deno.chown(`${dir}/etc/smartmeter/config.yaml`, 0, 0);
      const refused = await runAsUnit(dir, denoDir);
      equal(refused.code, 78, refused.log);
      const line = refused.log.split("\n").find((l) => l.includes("Cannot read the config"));
      assert(line !== undefined, refused.log);
      match(line, /permission denied: it belongs to root:root, mode 0600/);
      match(line, new RegExp(`this program runs as uid ${SERVICE_UID}, groups `));
      match(line, /chgrp smartmeter .*config\.yaml && sudo chmod 0640/);
      deepEqual(refused.log.match(/at .*\.ts:\d+/g), null, "no stack trace");
    } finally {
      await watcher.close();
      await broker.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

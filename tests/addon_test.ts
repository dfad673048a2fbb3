/**
 * The Home Assistant add-on and the release machinery agree with the program: the add-on's
 * options load with lib/config.ts, its schema names exactly the keys the program knows,
 * its translations cover every option, the Dockerfile downloads what the release workflow
 * publishes, and the workflows hold the steps they promise.
 */

import { deepEqual, equal, fail, match, ok as assert, throws } from "node:assert/strict";
import { parse } from "yaml";
import {
  BAUD_RATES,
  CONFIG_DEFAULTS,
  ConfigError,
  loadConfig,
  validateConfig,
} from "../lib/config.ts";
import { METER_TYPES } from "../lib/cosem/interpret.ts";
import { COMPILE_TARGETS } from "../scripts/permissions.ts";
import { INGRESS_PORT } from "../lib/sinks/http/address.ts";

type Mapping = Record<string, unknown>;

const ROOT = new URL("../", import.meta.url);
const readText = (path: string) => Deno.readTextFile(new URL(path, ROOT));
const readYaml = async (path: string) => parse(await readText(path)) as Mapping;

function isMapping(v: unknown): v is Mapping {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function mapping(v: unknown, what: string): Mapping {
  if (!isMapping(v)) fail(`${what} must be a mapping, got ${JSON.stringify(v)}`);
  return v;
}

function list(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) fail(`${what} must be a list, got ${JSON.stringify(v)}`);
  return v;
}

/** Flattens `{dlms: {port: x}}` into `[["dlms.port", x]]` (the add-on nests two deep). */
function flatten(m: Mapping, prefix = ""): [string, unknown][] {
  return Object.entries(m).flatMap(([k, v]) =>
    isMapping(v) ? flatten(v, `${prefix}${k}.`) : [[`${prefix}${k}`, v] as [string, unknown]]
  );
}

/** Sets `dlms.port` in a nested copy of `m`. */
function withValue(m: Mapping, path: string, value: unknown): Mapping {
  const [head, ...rest] = path.split(".");
  if (head === undefined) return m;
  if (rest.length === 0) return { ...m, [head]: value };
  return { ...m, [head]: withValue(isMapping(m[head]) ? m[head] : {}, rest.join("."), value) };
}

const denoJson = JSON.parse(await readText("deno.json")) as { version: string };
const manifest = await readYaml("addon/config.yaml");
const options = mapping(manifest.options, "options");
const schema = mapping(manifest.schema, "schema");
const schemaEntries = flatten(schema).map(([k, v]) => [k, String(v)] as const);
const schemaPaths = schemaEntries.map(([k]) => k);
const optionEntries = flatten(options);

/** `list(a|b)?` → ["a", "b"]; null for other types. */
function listValues(type: string): string[] | null {
  const m = /^list\((.+)\)\??$/.exec(type);
  return m ? m[1]!.split("|") : null;
}

// The element grammar of the Supervisor's schema (supervisor/apps/options.py): a type,
// optionally with bounds, optionally followed by "?" for "may be left out".
const SCHEMA_TYPE =
  /^(?:bool|email|url|port|device(?:\(subsystem=[a-z]+\))?|str(?:\(\d*,\d*\))?|password(?:\(\d*,\d*\))?|int(?:\(-?\d*,-?\d*\))?|float(?:\(-?[\d.]*,-?[\d.]*\))?|match\(.*\)|list\(.+\))\??$/;

/** Whether `value` is what the Supervisor would accept for `type`. */
function fitsType(type: string, value: unknown): boolean {
  const t = type.replace(/\?$/, "");
  const values = listValues(type);
  if (values !== null) return values.includes(String(value));
  const bounds = /^(int|float)\((-?[\d.]*),(-?[\d.]*)\)$/.exec(t);
  if (t === "int" || t === "float" || bounds !== null) {
    if (typeof value !== "number" || (t.startsWith("int") && !Number.isInteger(value))) {
      return false;
    }
    const min = bounds?.[2] ? Number(bounds[2]) : -Infinity;
    const max = bounds?.[3] ? Number(bounds[3]) : Infinity;
    return value >= min && value <= max;
  }
  if (t === "port") return typeof value === "number" && value >= 1 && value <= 65535;
  if (t === "bool") return typeof value === "boolean";
  const pattern = /^match\((.*)\)$/.exec(t);
  if (pattern !== null) return typeof value === "string" && new RegExp(pattern[1]!).test(value);
  return typeof value === "string";
}

/** The obsolete keys of the Python add-on: the program accepts them, the add-on leaves them out. */
const LEFT_OUT_OBSOLETE = [
  "interface_type",
  "dlms.hdlc_frame_size",
  "dlms.timeout",
  "mqtt.sensors_migrated",
];
/** Program keys a user could set but the add-on deliberately does not offer. */
/** Keys the add-on sets itself: the state lives in the add-on's own /data. */
const LEFT_OUT_OTHER: readonly string[] = ["state_dir"];

const SUPERVISOR_ENV = { SUPERVISOR_TOKEN: "x" };

// ---------------------------------------------------------------------------------------
// The manifest

Deno.test("addon/config.yaml has the identity, version and image of this release", () => {
  equal(manifest.name, "Smartmeter");
  equal(manifest.version, denoJson.version, "addon/config.yaml and deno.json must agree");
  equal(manifest.slug, "smartmeter");
  match(String(manifest.slug), /^[-_.A-Za-z0-9]+$/);
  assert(typeof manifest.description === "string" && manifest.description.length > 20);
  deepEqual(manifest.arch, ["aarch64", "amd64"]);
  equal(manifest.url, "https://github.com/smartmeter-at/smartmeter");
  equal(manifest.image, "ghcr.io/smartmeter-at/smartmeter-addon-{arch}");
});

Deno.test("addon/config.yaml starts the add-on as a service with serial devices and MQTT", () => {
  // Left out where they are the Supervisor's defaults: started after Home Assistant, at
  // boot, with Docker's init as PID 1.
  equal(manifest.startup ?? "application", "application");
  equal(manifest.boot ?? "auto", "auto");
  equal(manifest.init ?? true, true);
  equal(manifest.uart, true);
  equal(manifest.usb, true);
  deepEqual(manifest.services, ["mqtt:need"]);
  deepEqual(manifest.map, ["share:ro", "homeassistant_config:ro"]);
  // uart: true maps every serial device; a fixed list would only add the ones present.
  equal(manifest.devices, undefined);
  for (const broad of ["hassio_api", "homeassistant_api", "host_network", "full_access"]) {
    equal(manifest[broad], undefined, `${broad} is not needed`);
  }
  equal(manifest.privileged, undefined);
});

Deno.test("addon/config.yaml shows the live page in the sidebar through ingress", async () => {
  equal(manifest.ingress, true);
  // The program's ingress listener (run --ingress) is on this port and answers only the
  // Supervisor's proxy; the manifest must send the proxy there (8099 is the default, which
  // the add-on linter wants left out).
  equal(manifest.ingress_port ?? 8099, INGRESS_PORT);
  match(String(manifest.panel_icon), /^mdi:[a-z0-9-]+$/);
  assert(typeof manifest.panel_title === "string" && manifest.panel_title !== "");
  // Network access is the user's choice: no host port unless they give one.
  deepEqual(manifest.ports, { "8080/tcp": null });
  match(await readText("addon/run.sh"), /--ingress$/m);
});

Deno.test("every schema entry is a type the Supervisor understands, at most two levels deep", () => {
  for (const [path, type] of schemaEntries) {
    match(type, SCHEMA_TYPE, `${path}: "${type}"`);
    assert(path.split(".").length <= 2, `${path} is nested too deep`);
  }
});

Deno.test("fitsType() tells values that fit a schema type from ones that do not", () => {
  for (
    const [type, good, bad] of [
      ["int(5,65535)?", 60, 4],
      ["int(0,86400)?", 0, 1.5],
      ["port?", 1883, 70000],
      ["bool?", false, "no"],
      ["list(4|5)?", 5, 3],
      ["match(^[A-Za-z0-9_-]+$)?", "smart_meter-1", "smart meter"],
      ["password?", "", 12],
    ] as const
  ) {
    assert(fitsType(type, good), `${type} should take ${good}`);
    assert(!fitsType(type, bad), `${type} should refuse ${bad}`);
  }
});

Deno.test("every default option has a schema entry and fits its type", () => {
  for (const [path, value] of optionEntries) {
    const type = schemaEntries.find(([k]) => k === path)?.[1];
    if (type === undefined) fail(`option ${path} has no schema entry`);
    assert(fitsType(type, value), `option ${path}: ${JSON.stringify(value)} is not a ${type}`);
  }
  // Required entries (no "?") must have a default, or the add-on cannot start unconfigured.
  for (const [path, type] of schemaEntries) {
    if (!type.endsWith("?")) {
      assert(optionEntries.some(([k]) => k === path), `${path} is required but has no default`);
    }
  }
});

Deno.test("the add-on's default options validate with the program, asking the Supervisor", () => {
  const config = validateConfig(options, { env: SUPERVISOR_ENV, meterTypes: METER_TYPES });
  equal(config.mqtt.host, "", "an empty host means: ask the Supervisor");
  equal(config.source.port, "/dev/ttyUSB0");
  equal(config.source.baudRate, "auto");
  equal(config.meterType, "auto");
  equal(config.key, null, 'the default key "" means no key');
  deepEqual(config.unknown, []);
  deepEqual(config.obsolete, []);
  // Only the missing key is worth a warning: it is what the user has to fill in.
  deepEqual(config.warnings.map((w) => w.path), ["dlms.key"]);
});

Deno.test("outside the add-on the default empty host is refused", () => {
  throws(
    () => validateConfig(options, { env: {}, meterTypes: METER_TYPES }),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.problems.some((p) => p.path === "mqtt.host" && /only inside the add-on/.test(p.message)),
  );
});

Deno.test("the add-on schema offers exactly the keys the program knows", () => {
  const known = new Map(CONFIG_DEFAULTS.map((k) => [k.path, k]));
  for (const path of schemaPaths) {
    const key = known.get(path);
    if (key === undefined) fail(`the add-on offers ${path}, which the program does not know`);
    assert(!key.obsolete, `the add-on offers ${path}, which the program ignores`);
  }
  deepEqual(
    CONFIG_DEFAULTS.filter((k) => k.obsolete).map((k) => k.path).sort(),
    [...LEFT_OUT_OBSOLETE].sort(),
  );
  for (const key of CONFIG_DEFAULTS) {
    if (LEFT_OUT_OBSOLETE.includes(key.path) || LEFT_OUT_OTHER.includes(key.path)) continue;
    assert(schemaPaths.includes(key.path), `${key.path} is missing from the add-on's schema`);
  }
});

Deno.test("every list value in the add-on schema is accepted by the program", async (t) => {
  for (const [path, type] of schemaEntries) {
    const values = listValues(type);
    if (values === null) continue;
    await t.step(path, () => {
      for (const value of values) {
        try {
          validateConfig(withValue(options, path, value), {
            env: SUPERVISOR_ENV,
            meterTypes: METER_TYPES,
          });
        } catch (e) {
          fail(`${path}: ${value} is refused: ${(e as Error).message}`);
        }
      }
    });
  }
});

Deno.test("the add-on's lists offer every meter type and baud rate the program has", () => {
  const type = (path: string) => schemaEntries.find(([k]) => k === path)?.[1] ?? "";
  deepEqual(listValues(type("meter_type")), [...METER_TYPES]);
  deepEqual(listValues(type("dlms.baudrate")), ["auto", ...BAUD_RATES.map(String)]);
});

Deno.test("keys and passwords are masked in the add-on's options", () => {
  for (const key of CONFIG_DEFAULTS.filter((k) => k.secret)) {
    const type = schemaEntries.find(([k]) => k === key.path)?.[1] ?? "";
    match(type, /^password\??$/, `${key.path} must be a password field`);
  }
  for (const [path, type] of schemaEntries) {
    if (type.startsWith("password")) {
      assert(CONFIG_DEFAULTS.find((k) => k.path === path)?.secret, `${path} is not a secret`);
    }
  }
});

Deno.test("every example config validates", async (t) => {
  const files = ["config.example.yaml"];
  for await (const e of Deno.readDir(new URL("tests/fixtures/config/", ROOT))) {
    files.push(`tests/fixtures/config/${e.name}`);
  }
  /** Fixtures that exist to be refused. */
  const meantToFail = ["tests/fixtures/config/several-problems.yaml"];
  for (const file of files.sort()) {
    await t.step(file, async () => {
      const text = await readText(file);
      for (const env of [{}, SUPERVISOR_ENV]) {
        const load = () => loadConfig(text, { env, meterTypes: METER_TYPES, fileName: file });
        if (meantToFail.includes(file)) throws(load, ConfigError);
        else load();
      }
    });
  }
});

// ---------------------------------------------------------------------------------------
// Translations and documents

Deno.test("translations name and describe every option in English and German", async (t) => {
  for (const language of ["en", "de"]) {
    await t.step(language, async () => {
      const configuration = mapping(
        (await readYaml(`addon/translations/${language}.yaml`)).configuration,
        `${language}.yaml configuration`,
      );
      const check = (entry: unknown, path: string) => {
        const e = mapping(entry, `${language}: ${path}`);
        assert(typeof e.name === "string" && e.name !== "", `${language}: ${path} has no name`);
        assert(
          typeof e.description === "string" && e.description !== "",
          `${language}: ${path} has no description`,
        );
        return e;
      };
      for (const [key, value] of Object.entries(schema)) {
        const entry = check(configuration[key], key);
        if (!isMapping(value)) continue;
        const fields = mapping(entry.fields, `${language}: ${key}.fields`);
        for (const sub of Object.keys(value)) check(fields[sub], `${key}.${sub}`);
        deepEqual(Object.keys(fields).sort(), Object.keys(value).sort(), `${language}: ${key}`);
      }
      deepEqual(Object.keys(configuration).sort(), Object.keys(schema).sort(), language);
    });
  }
});

Deno.test("DOCS.md documents every option, and the changelog this version", async () => {
  const docs = await readText("addon/DOCS.md");
  for (const path of schemaPaths) assert(docs.includes(`\`${path}\``), `DOCS.md: ${path}`);
  match(await readText("addon/CHANGELOG.md"), new RegExp(`^## ${denoJson.version}$`, "m"));
});

Deno.test("repository.yaml names the repository the add-on comes from", async () => {
  const repository = await readYaml("repository.yaml");
  assert(typeof repository.name === "string" && repository.name !== "");
  equal(repository.url, manifest.url);
  assert(typeof repository.maintainer === "string" && repository.maintainer !== "");
});

Deno.test("the Supervisor finds exactly one add-on manifest in this repository", async () => {
  // Its store looks at every file named config.<yaml|yml|json> below the repository,
  // skipping hidden folders and rootfs; a file without a slug is skipped with a warning.
  const found: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(new URL(dir || ".", ROOT))) {
      if (e.name.startsWith(".") || e.name === "rootfs" || e.name === "dist") continue;
      const path = `${dir}${e.name}`;
      if (e.isDirectory) await walk(`${path}/`);
      else if (/^config\..*\.(?:ya?ml|json)$|^config\.(?:ya?ml|json)$/.test(e.name)) {
        found.push(path);
      }
    }
  };
  await walk("");
  const manifests = [];
  for (const path of found) {
    const data = parse(await readText(path)) as unknown;
    if (isMapping(data) && typeof data.slug === "string") manifests.push(path);
  }
  deepEqual(manifests, ["addon/config.yaml"]);
});

Deno.test("run.sh execs the program on the options file and never prints the options", async () => {
  const script = await readText("addon/run.sh");
  const code = script.split("\n").filter((l) => l.trim() !== "" && !l.trimStart().startsWith("#"));
  equal(script.split("\n")[0], "#!/bin/sh");
  equal(code.at(-1), "exec /usr/bin/smartmeter run --config /data/options.json --ingress");
  for (const line of code.slice(0, -1)) {
    assert(!/options\.json|\bcat\b|\becho\b|\bjq\b|printenv|set -x|bashio/.test(line), line);
  }
  const mode = (await Deno.stat(new URL("addon/run.sh", ROOT))).mode;
  if (mode !== null) assert((mode & 0o111) !== 0, "run.sh must be executable");
});

// ---------------------------------------------------------------------------------------
// Dockerfile and workflows

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  with?: Mapping;
}

function steps(job: unknown, what: string): Step[] {
  return list(mapping(job, what).steps, `${what} steps`) as Step[];
}

const ci = await readYaml(".github/workflows/ci.yml");
const release = await readYaml(".github/workflows/release.yml");
const releaseJobs = mapping(release.jobs, "release jobs");

/** Release asset names, from the upload step of the release job. */
function releasedFiles(): string[] {
  const upload = steps(releaseJobs.release, "release job").find((s) =>
    s.uses?.startsWith("softprops/action-gh-release@")
  );
  if (upload === undefined) fail("the release job does not upload with action-gh-release");
  return String(upload.with?.files ?? "").split("\n").map((l) => l.trim()).filter((l) => l);
}

Deno.test("the CI workflow installs Deno and Mosquitto, runs deno task ok and compiles", () => {
  const on = mapping(ci.on, "ci on");
  assert("push" in on && "pull_request" in on, "CI runs on push and pull requests");
  const jobs = mapping(ci.jobs, "ci jobs");
  const test = steps(jobs.test, "test job");
  assert(test.some((s) => s.uses === "denoland/setup-deno@v2"), "setup-deno v2");
  assert(test.some((s) => /apt-get install .*\bmosquitto\b/.test(s.run ?? "")), "mosquitto");
  assert(test.some((s) => s.run?.trim() === "deno task ok"), "deno task ok");
  const compile = steps(jobs.compile, "compile job");
  for (const arch of Object.keys(COMPILE_TARGETS)) {
    assert(compile.some((s) => s.run?.trim() === `deno task compile:${arch}`), arch);
  }
  assert(compile.some((s) => /dist\/smartmeter-x86_64/.test(s.run ?? "")), "runs the binary");
});

Deno.test("the release workflow compiles both targets, checksums and uploads them", () => {
  const on = mapping(release.on, "release on");
  deepEqual(mapping(on.push, "release on.push").tags, ["v*"]);
  const version = steps(releaseJobs.version, "version job").map((s) => s.run ?? "").join("\n");
  match(version, /GITHUB_REF_NAME#v/, "the version is the tag without its v");
  match(version, /deno\.json/);
  match(version, /addon\/config\.yaml/);

  const build = mapping(releaseJobs.build, "build job");
  const matrix = mapping(mapping(build.strategy, "build strategy").matrix, "build matrix");
  deepEqual(matrix.arch, Object.keys(COMPILE_TARGETS));
  const buildSteps = steps(build, "build job");
  assert(buildSteps.some((s) => s.run?.trim() === "deno task compile:${{ matrix.arch }}"));
  assert(
    buildSteps.some((s) =>
      s.run?.includes('sha256sum "smartmeter-${{ matrix.arch }}" > ') &&
      s.run.includes('"smartmeter-${{ matrix.arch }}.sha256"')
    ),
    "one .sha256 per binary, naming the file without its folder",
  );

  const files = releasedFiles();
  for (const arch of Object.keys(COMPILE_TARGETS)) {
    assert(files.includes(`dist/smartmeter-${arch}`), `release asset smartmeter-${arch}`);
    assert(files.includes(`dist/smartmeter-${arch}.sha256`), `smartmeter-${arch}.sha256`);
  }
  const permissions = mapping(mapping(releaseJobs.release, "release job").permissions, "perms");
  equal(permissions.contents, "write");
});

Deno.test("the release workflow builds the add-on image of each architecture after the release", () => {
  const image = mapping(releaseJobs.image, "image job");
  deepEqual(image.needs, ["version", "release"]);
  const include = list(
    mapping(mapping(image.strategy, "image strategy").matrix, "image matrix").include,
    "image matrix include",
  ).map((m) => mapping(m, "include"));
  deepEqual(include.map((m) => m.arch).sort(), [...list(manifest.arch, "arch")].sort());
  const imageSteps = steps(image, "image job");
  const naming = imageSteps.map((s) => s.run ?? "").join("\n");
  // The pushed name is the manifest's image with {arch} filled in.
  const [, owner] = /^ghcr\.io\/([^/]+)\//.exec(String(manifest.image)) ?? [];
  assert(String(manifest.url).includes(`/${owner}/`), "the image owner is the repository's");
  match(naming, /ghcr\.io\/\$\{owner\}\/smartmeter-addon-\$\{\{ matrix\.arch \}\}/);
  const push = imageSteps.find((s) => s.uses?.startsWith("docker/build-push-action@"));
  if (push === undefined) fail("no docker/build-push-action step");
  equal(push.with?.context, "addon");
  equal(push.with?.push, true);
  const args = String(push.with?.["build-args"]);
  match(args, /^BUILD_ARCH=\$\{\{ matrix\.arch \}\}$/m);
  match(args, /^BUILD_VERSION=\$\{\{ needs\.version\.outputs\.version \}\}$/m);
  match(String(push.with?.tags), /:\$\{\{ needs\.version\.outputs\.version \}\}$/m);
});

Deno.test("the Dockerfile downloads the assets the release publishes and checks them", async () => {
  const dockerfile = await readText("addon/Dockerfile");
  match(dockerfile, /^FROM ghcr\.io\/home-assistant\/\$\{BUILD_ARCH\}-base-debian:bookworm$/m);
  assert(!/alpine/i.test(dockerfile.replace(/^#.*$/gm, "")), "Deno binaries need glibc");
  // Home Assistant architecture → release asset.
  const assets = new Map(
    [...dockerfile.matchAll(/^\s*([a-z0-9_]+)\) asset="([^"]+)" ;;/gm)].map((m) => [m[1], m[2]]),
  );
  deepEqual([...assets.keys()].sort(), [...list(manifest.arch, "arch")].sort());
  const published = releasedFiles().map((f) => f.replace(/^dist\//, ""));
  for (const asset of assets.values()) {
    assert(published.includes(asset!), `${asset} is not a release asset`);
    assert(published.includes(`${asset}.sha256`), `${asset}.sha256 is not a release asset`);
  }
  // The tag of a release is "v" + version, as release.yml's trigger expects.
  match(
    dockerfile,
    /url="https:\/\/github\.com\/\$\{BUILD_REPOSITORY\}\/releases\/download\/v\$\{BUILD_VERSION\}\/\$\{asset\}"/,
  );
  match(dockerfile, /"\$\{url\}\.sha256"/);
  match(dockerfile, /sha256sum --check --strict "\$\{asset\}\.sha256"/);
  match(dockerfile, /install -m 0755 "\$\{asset\}" \/usr\/bin\/smartmeter/);
  const repository = /^ARG BUILD_REPOSITORY=(.+)$/m.exec(dockerfile)?.[1];
  equal(`https://github.com/${repository}`, manifest.url);
  for (const label of ["io.hass.version", "io.hass.arch", "io.hass.type"]) {
    assert(dockerfile.includes(`${label}=`), `label ${label}`);
  }
  match(dockerfile, /^ENTRYPOINT \[\]$/m);
  match(dockerfile, /^CMD \["\/run\.sh"\]$/m);
});

/**
 * The Home Assistant add-on linter (frenck/action-addon-linter, src/lint.py) flags every
 * key of config.yaml set to the default its schema (src/config.schema.json) declares.
 * These are those defaults.
 */
const LINTER_DEFAULTS: Readonly<Record<string, unknown>> = {
  advanced: false,
  apparmor: true,
  audio: false,
  auth_api: false,
  auto_uart: false,
  boot: "auto",
  devicetree: false,
  docker_api: false,
  full_access: false,
  gpio: false,
  hassio_api: false,
  hassio_role: "default",
  homeassistant_api: false,
  host_dbus: false,
  host_ipc: false,
  host_network: false,
  host_pid: false,
  ingress: false,
  ingress_port: 8099,
  init: true,
  kernel_modules: false,
  legacy: false,
  options: {},
  panel_admin: true,
  panel_icon: "mdi:puzzle",
  schema: {},
  stage: "stable",
  startup: "application",
  stdin: false,
  timeout: 10,
  tmpfs: false,
  uart: false,
  udev: false,
  usb: false,
  video: false,
};

Deno.test("addon/config.yaml sets no key to its default value (the add-on linter's rule)", () => {
  const redundant = Object.entries(LINTER_DEFAULTS).filter(([key, value]) =>
    key in manifest && JSON.stringify(manifest[key]) === JSON.stringify(value)
  ).map(([key]) => key);
  deepEqual(redundant, []);
  for (const key of ["auto_uart", "watchdog"]) {
    equal(manifest[key], undefined, `${key} is obsolete`);
  }
});

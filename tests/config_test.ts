import { deepEqual, equal, match, ok as assert, throws } from "node:assert/strict";
import {
  type Config,
  CONFIG_DEFAULTS,
  ConfigError,
  type ConfigProblem,
  loadConfig,
  type LoadOptions,
  parseConfigText,
  parseKeyText,
  validateConfig,
} from "../lib/config.ts";
import { redact, redactConfig } from "../lib/redact.ts";

const METER_TYPES = ["burgenland", "noe_evn", "wienernetze", "kaernten"] as const;
const OPTS: LoadOptions = { meterTypes: METER_TYPES };
const KEY_HEX = "0123456789abcdef0123456789abcdef";
const KEY = Uint8Array.from(
  { length: 16 },
  (_, i) => parseInt(KEY_HEX.slice(2 * i, 2 * i + 2), 16),
);

function fixture(name: string): string {
  return Deno.readTextFileSync(new URL(`./fixtures/config/${name}`, import.meta.url));
}

/** `e` as a ConfigError, or rethrown. */
function configError(e: unknown): ConfigError {
  if (e instanceof ConfigError) return e;
  throw e;
}

function load(text: string, opts: Partial<LoadOptions> & { fileName?: string } = {}): Config {
  return loadConfig(text, { ...OPTS, ...opts });
}

/** The problems a config text produces (fails the test when it loads). */
function problemsOf(text: string, opts: Partial<LoadOptions> = {}): ConfigProblem[] {
  try {
    load(text, opts);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error(`expected a ConfigError for:\n${text}`);
}

/** Asserts exactly one problem, at `path`, whose message matches `pattern`. */
function assertProblem(
  text: string,
  path: string,
  pattern: RegExp,
  opts: Partial<LoadOptions> = {},
): void {
  const problems = problemsOf(text, opts);
  equal(problems.length, 1, JSON.stringify(problems));
  equal(problems[0]!.path, path);
  match(problems[0]!.message, pattern);
}

// ---------------------------------------------------------------------------------------
// The add-on's files load unchanged

Deno.test("loadConfig() loads the add-on's shipped template unchanged", () => {
  const c = load(fixture("smartmeter-config.example.yaml"));
  equal(c.logging, "info");
  equal(c.meterType, "auto"); // commented out in the template; our default detects the layout
  deepEqual(c.source, {
    port: "/dev/ttyUSB0",
    baudRate: "auto",
    dataBits: 8,
    parity: "none",
    stopBits: 1,
  });
  deepEqual(
    c.key,
    Uint8Array.from([
      0x01,
      0x23,
      0x45,
      0x67,
      0x89,
      0x01,
      0x23,
      0x45,
      0x67,
      0x89,
      0x01,
      0x23,
      0x45,
      0x67,
      0x89,
      0xab,
    ]),
  );
  equal(c.authKey, null);
  equal(c.mqtt.host, "example.com");
  equal(c.mqtt.user, "");
  equal(c.mqtt.password, "");
  equal(c.mqtt.port, 1883);
  equal(c.mqtt.deviceId, "smartmeter");
  deepEqual(c.obsolete, ["interface_type"]);
  deepEqual(c.unknown, []);
});

Deno.test("loadConfig() loads the add-on's complete standalone config with every key", () => {
  const c = load(fixture("smartmeter-config.complete.yaml"));
  deepEqual(
    c,
    {
      logging: "info",
      meterType: "burgenland",
      source: { port: "/dev/ttyUSB0", baudRate: 9600, dataBits: 8, parity: "none", stopBits: 1 },
      key: KEY,
      authKey: null,
      mqtt: {
        host: "mqtt.example",
        port: 1883,
        user: "mqttuser",
        password: "secret",
        keepalive: 60,
        prefix: "",
        deviceId: "smartmeter",
        name: "Smart Meter",
        publishInterval: 30,
        discoveryPrefix: "homeassistant",
        tls: false,
        tlsCa: null,
        tlsCert: null,
        tlsKey: null,
        tlsInsecure: false,
        clientId: "smartmeter-smartmeter",
        protocolVersion: 4,
      },
      http: { listen: null, from: "http.listen" },
      stateDir: null,
      stateDirFrom: null,
      obsolete: ["interface_type", "dlms.hdlc_frame_size", "dlms.timeout", "mqtt.sensors_migrated"],
      unknown: [],
      warnings: [],
      secretSources: { key: "file", authKey: null, password: "file" },
    } satisfies Config,
  );
});

Deno.test("loadConfig() loads a fresh add-on's options.json (defaults, empty key)", () => {
  const c = load(fixture("options.json"), { fileName: "/data/options.json" });
  equal(c.meterType, "burgenland");
  equal(c.logging, "info");
  equal(c.source.baudRate, 9600);
  equal(c.source.parity, "none");
  equal(c.key, null);
  equal(c.mqtt.host, "homeassistant.local");
  equal(c.mqtt.user, "");
  equal(c.mqtt.tlsCa, null);
  equal(c.mqtt.tlsInsecure, false);
  equal(c.mqtt.publishInterval, 30);
  deepEqual(c.obsolete, ["interface_type", "dlms.hdlc_frame_size", "mqtt.sensors_migrated"]);
  deepEqual(c.unknown, []);
  deepEqual(c.warnings, [
    {
      path: "dlms.key",
      message: "not set: only unencrypted meters can be read (Austrian meters encrypt: ask " +
        "your grid operator for the key)",
    },
  ]);
});

Deno.test("loadConfig() loads an add-on's options.json with the key filled in", () => {
  const c = load(fixture("options-with-key.json"));
  equal(c.meterType, "noe_evn");
  equal(c.logging, "debug");
  deepEqual(c.key, Uint8Array.from({ length: 16 }, (_, i) => i));
  deepEqual(c.source, {
    port: "/dev/ttyUSB1",
    baudRate: 2400,
    dataBits: 8,
    parity: "even",
    stopBits: 1,
  });
  equal(c.mqtt.host, "core-mosquitto");
  equal(c.mqtt.user, "addons");
  equal(c.mqtt.password, "Pa55:word!");
  deepEqual(c.warnings, []);
});

Deno.test("loadConfig() loads JSON indented with tabs", () => {
  const c = load(fixture("options-tabs.json"));
  equal(c.mqtt.host, "192.168.1.2");
  deepEqual(c.key, KEY);
});

Deno.test("loadConfig() loads a minimal file and fills in every default", () => {
  const c = load(fixture("minimal.yaml"));
  deepEqual(
    c.key,
    Uint8Array.from(
      { length: 16 },
      (_, i) => parseInt("00112233445566778899aabbccddeeff".slice(2 * i, 2 * i + 2), 16),
    ),
  );
  equal(c.source.port, "/dev/ttyUSB0");
  equal(c.mqtt.clientId, "smartmeter-smartmeter");
});

Deno.test("config.example.yaml itself validates", () => {
  const text = Deno.readTextFileSync(new URL("../config.example.yaml", import.meta.url));
  const c = load(text);
  equal(c.meterType, "auto");
  equal(c.mqtt.host, "homeassistant.local");
  deepEqual(c.unknown, []);
  deepEqual(c.obsolete, []);
});

Deno.test("config.example.yaml documents every key, obsolete ones commented out", () => {
  const text = Deno.readTextFileSync(new URL("../config.example.yaml", import.meta.url));
  for (const info of CONFIG_DEFAULTS) {
    const name = info.path.split(".").at(-1)!;
    if (info.obsolete) {
      match(text, new RegExp(`^\\s*# ${name}: .*obsolete`, "m"), info.path);
    } else {
      match(text, new RegExp(`^\\s*#? ?${name}:`, "m"), info.path);
    }
  }
});

Deno.test("CONFIG_DEFAULTS agrees with what an empty file gives", () => {
  const c = load("");
  const actual: Record<string, unknown> = {
    "logging": c.logging,
    "meter_type": c.meterType,
    "dlms.port": c.source.port,
    "dlms.baudrate": c.source.baudRate,
    "dlms.bytesize": c.source.dataBits,
    "dlms.parity": c.source.parity,
    "dlms.stopbits": c.source.stopBits,
    "dlms.key": c.key,
    "dlms.auth_key": c.authKey,
    "mqtt.host": c.mqtt.host,
    "mqtt.port": c.mqtt.port,
    "mqtt.user": c.mqtt.user,
    "mqtt.password": c.mqtt.password,
    "mqtt.keepalive": c.mqtt.keepalive,
    "mqtt.prefix": c.mqtt.prefix,
    "mqtt.device_id": c.mqtt.deviceId,
    "mqtt.name": c.mqtt.name,
    "mqtt.publish_interval": c.mqtt.publishInterval,
    "mqtt.discovery_prefix": c.mqtt.discoveryPrefix,
    "mqtt.tls": c.mqtt.tls,
    "mqtt.tls_ca": c.mqtt.tlsCa,
    "mqtt.tls_cert": c.mqtt.tlsCert,
    "mqtt.tls_key": c.mqtt.tlsKey,
    "mqtt.tls_insecure": c.mqtt.tlsInsecure,
    "mqtt.client_id": null, // derived: smartmeter-<device_id>
    "mqtt.protocol_version": c.mqtt.protocolVersion,
    "http.listen": c.http.listen,
    "state_dir": c.stateDir,
  };
  for (const info of CONFIG_DEFAULTS) {
    if (info.obsolete) continue;
    assert(info.path in actual, `${info.path} is not checked here`);
    equal(actual[info.path], info.default, info.path);
  }
  equal(c.mqtt.clientId, "smartmeter-smartmeter");
});

// ---------------------------------------------------------------------------------------
// YAML 1.1, as PyYAML read it

Deno.test("parseConfigText() reads YAML 1.1 booleans as PyYAML does", () => {
  const raw = parseConfigText(
    "a: yes\nb: No\nc: ON\nd: off\ne: True\nf: FALSE\ng: oFF\nh: y\ni: N\nj: 'yes'\n",
  );
  deepEqual(raw, {
    a: true,
    b: false,
    c: true,
    d: false,
    e: true,
    f: false,
    g: "oFF", // PyYAML knows only lower, Capitalised and UPPER spellings
    h: "y", // PyYAML does not read y/n as booleans
    i: "N", // so `parity: N` stays the letter N
    j: "yes",
  });
});

Deno.test("parseConfigText() reads numbers as PyYAML does", () => {
  const raw = parseConfigText(
    "a: 1883\nb: 0123\nc: 1_000\nd: 0x1F\ne: 1.5\nf: 1e3\ng: 0815\nh: 1.5e3\ni: 2024-01-01\n",
  );
  deepEqual(raw, {
    a: 1883,
    b: 83, // YAML 1.1 octal
    c: 1000,
    d: 31,
    e: 1.5,
    f: "1e3", // PyYAML's floats need a dot
    g: "0815", // not octal, not decimal: text
    h: "1.5e3", // the exponent needs a sign
    i: "2024-01-01", // dates stay text
  });
});

Deno.test("parseConfigText() reads JSON, keeps the last of duplicate keys, empty is null", () => {
  deepEqual(parseConfigText('{"mqtt": {"port": 1883, "tls": true}, "k": null}'), {
    mqtt: { port: 1883, tls: true },
    k: null,
  });
  deepEqual(parseConfigText("a: 1\na: 2\n"), { a: 2 });
  equal(parseConfigText(""), null);
  equal(parseConfigText("# only a comment\n"), null);
});

Deno.test("loadConfig() coerces YAML 1.1 booleans, letters and numbers written as text", () => {
  const c = load(fixture("yaml11-booleans.yaml"));
  equal(c.logging, "warning");
  equal(c.meterType, "burgenland");
  deepEqual(c.source, {
    port: "tcp://192.168.1.50:8888",
    baudRate: 9600,
    dataBits: 8,
    parity: "none",
    stopBits: 1,
  });
  deepEqual(
    c.key,
    Uint8Array.from([
      0x01,
      0x23,
      0x45,
      0x67,
      0x89,
      0xab,
      0xcd,
      0xef,
      0x01,
      0x23,
      0x45,
      0x67,
      0x89,
      0xab,
      0xcd,
      0xef,
    ]),
  );
  equal(c.mqtt.port, 8883);
  equal(c.mqtt.tls, true);
  equal(c.mqtt.tlsCa, "/share/ca.pem");
  equal(c.mqtt.tlsInsecure, true);
  equal(c.mqtt.prefix, "home/energy");
  equal(c.mqtt.publishInterval, 0);
  deepEqual(c.obsolete, ["mqtt.sensors_migrated"]);
});

Deno.test("validateConfig() takes boolean words as text in any case", async (t) => {
  for (
    const [word, value] of [
      ["yes", true],
      ["yEs", true],
      ["Y", true],
      ["on", true],
      ["TRUE", true],
      ["no", false],
      ["n", false],
      ["Off", false],
      ["false", false],
    ] as const
  ) {
    await t.step(word, () => {
      equal(validateConfig({ mqtt: { tls: word } }, OPTS).mqtt.tls, value);
    });
  }
});

Deno.test("loadConfig() reads a key PyYAML kept as text even when it looks like a float", () => {
  // `...e123` is a float for the yaml package's 1.1 schema but text for PyYAML.
  const hex = "0123456789012345678901234567e123";
  const c = load(`dlms:\n  key: ${hex}\n`);
  equal(c.key?.length, 16);
  equal(c.key?.[14], 0xe1);
});

Deno.test("validateConfig() accepts numbers written as text", () => {
  const c = validateConfig({
    dlms: { baudrate: "2400", bytesize: "7", stopbits: " 2 " },
    mqtt: { port: "1883", keepalive: "15", publish_interval: "2.5", protocol_version: "5" },
  }, OPTS);
  equal(c.source.baudRate, 2400);
  equal(c.source.dataBits, 7);
  equal(c.source.stopBits, 2);
  equal(c.mqtt.port, 1883);
  equal(c.mqtt.keepalive, 15);
  equal(c.mqtt.publishInterval, 2.5);
  equal(c.mqtt.protocolVersion, 5);
});

// ---------------------------------------------------------------------------------------
// Key by key

Deno.test("validateConfig() reads logging in any case, with the add-on's Python names", async (t) => {
  for (
    const [given, want] of [
      ["DEBUG", "debug"],
      ["Info", "info"],
      ["WARNING", "warning"],
      ["WARN", "warning"],
      ["error", "error"],
      ["CRITICAL", "error"],
      ["FATAL", "error"],
      ["NOTSET", "info"],
      ["", "info"],
    ] as const
  ) {
    await t.step(given || "(empty)", () => {
      equal(validateConfig({ logging: given }, OPTS).logging, want);
    });
  }
});

Deno.test("validateConfig() matches meter_type case-insensitively and returns the canonical name", () => {
  equal(validateConfig({ meter_type: "NOE_EVN" }, OPTS).meterType, "noe_evn");
  equal(validateConfig({ meter_type: "Burgenland" }, OPTS).meterType, "burgenland");
  equal(validateConfig({ meter_type: "AUTO" }, OPTS).meterType, "auto");
  equal(validateConfig({ meter_type: null }, OPTS).meterType, "auto");
});

Deno.test("validateConfig() picks the baud rate from the meter type unless one is given", async (t) => {
  const cases = [
    [{}, "auto"],
    [{ meter_type: "burgenland" }, 9600],
    [{ meter_type: "noe_evn" }, 2400],
    [{ meter_type: "wienernetze" }, "auto"],
    [{ meter_type: "burgenland", dlms: { baudrate: 115200 } }, 115200],
    [{ meter_type: "burgenland", dlms: { baudrate: "AUTO" } }, "auto"],
    [{ meter_type: "noe_evn", dlms: { baudrate: null } }, 2400],
  ] as const;
  for (const [raw, want] of cases) {
    await t.step(JSON.stringify(raw), () => {
      equal(validateConfig(raw, OPTS).source.baudRate, want);
    });
  }
});

Deno.test("validateConfig() sets 9600 8E1 for meter_type amis unless the line is given", async (t) => {
  const opts: LoadOptions = { meterTypes: [...METER_TYPES, "amis"] };
  const cases = [
    [{ meter_type: "amis" }, 9600, "even"],
    [{ meter_type: "AMIS", dlms: { parity: "" } }, 9600, "even"],
    [{ meter_type: "amis", dlms: { parity: "N", baudrate: 2400 } }, 2400, "none"],
    [{ meter_type: "amis", dlms: { baudrate: "auto" } }, "auto", "even"],
    [{ meter_type: "auto" }, "auto", "none"],
  ] as const;
  for (const [raw, baudRate, parity] of cases) {
    await t.step(JSON.stringify(raw), () => {
      const { source } = validateConfig(raw, opts);
      deepEqual([source.baudRate, source.parity, source.dataBits, source.stopBits], [
        baudRate,
        parity,
        8,
        1,
      ]);
    });
  }
});

Deno.test("validateConfig() warns when meter_type amis is given another line than 9600 8E1", () => {
  const opts: LoadOptions = { meterTypes: [...METER_TYPES, "amis"] };
  deepEqual(validateConfig({ meter_type: "amis" }, opts).warnings.map((w) => w.path), ["dlms.key"]);
  deepEqual(
    validateConfig({ meter_type: "amis", dlms: { baudrate: "auto", parity: "NONE" } }, opts)
      .warnings.map((w) => w.path),
    ["dlms.key"],
  );
  const none = validateConfig(
    { meter_type: "amis", dlms: { baudrate: 9600, parity: "NONE" } },
    opts,
  );
  deepEqual(none.warnings.at(-1), {
    path: "dlms.parity",
    message: "9600 baud, parity NONE with meter_type amis, whose meters talk 9600 8E1: if " +
      "nothing is read, remove dlms.baudrate and dlms.parity",
  });
  const slow = validateConfig({ meter_type: "amis", dlms: { baudrate: 2400 } }, opts);
  equal(slow.warnings.at(-1)?.path, "dlms.baudrate");
});

Deno.test("validateConfig() reads parity letters and names in any case", async (t) => {
  for (
    const [given, want] of [
      [undefined, "none"],
      [null, "none"],
      ["", "none"],
      [false, "none"],
      ["N", "none"],
      ["n", "none"],
      ["NONE", "none"],
      ["None", "none"],
      ["E", "even"],
      ["even", "even"],
      ["O", "odd"],
      ["ODD", "odd"],
    ] as const
  ) {
    await t.step(String(given), () => {
      equal(validateConfig({ dlms: { parity: given } }, OPTS).source.parity, want);
    });
  }
});

Deno.test("parseKeyText() accepts spaces, colons, 0x and either case", async (t) => {
  for (
    const text of [
      KEY_HEX,
      KEY_HEX.toUpperCase(),
      `0x${KEY_HEX}`,
      ` ${KEY_HEX}\n`,
      KEY_HEX.match(/../g)!.join(" "),
      KEY_HEX.match(/../g)!.join(":"),
      KEY_HEX.toUpperCase().match(/.{8}/g)!.join(" "),
    ]
  ) {
    await t.step(text, () => deepEqual(parseKeyText(text), KEY));
  }
});

Deno.test("validateConfig() takes an empty or absent key as an unencrypted meter", () => {
  for (const key of [undefined, null, "", "  "]) {
    const c = validateConfig({ dlms: { key, auth_key: key } }, OPTS);
    equal(c.key, null);
    equal(c.authKey, null);
    deepEqual(c.warnings, [
      {
        path: "dlms.key",
        message: "not set: only unencrypted meters can be read (Austrian meters encrypt: ask " +
          "your grid operator for the key)",
      },
    ]);
  }
});

Deno.test("validateConfig() reads auth_key like key", () => {
  const c = validateConfig({ dlms: { key: KEY_HEX, auth_key: KEY_HEX.toUpperCase() } }, OPTS);
  deepEqual(c.authKey, KEY);
  equal(c.secretSources.authKey, "file");
});

Deno.test("validateConfig() decides an absent or empty mqtt.host by SUPERVISOR_TOKEN", () => {
  const addon = { SUPERVISOR_TOKEN: "abc" };
  equal(validateConfig({}, OPTS).mqtt.host, "localhost");
  equal(validateConfig({ mqtt: { host: null } }, OPTS).mqtt.host, "localhost");
  equal(validateConfig({}, { ...OPTS, env: addon }).mqtt.host, "");
  equal(validateConfig({ mqtt: { host: "" } }, { ...OPTS, env: addon }).mqtt.host, "");
  equal(validateConfig({ mqtt: { host: " broker " } }, OPTS).mqtt.host, "broker");
});

Deno.test("validateConfig() distinguishes an absent mqtt.user from an empty one", () => {
  equal(validateConfig({}, OPTS).mqtt.user, null);
  equal(validateConfig({ mqtt: { user: "" } }, OPTS).mqtt.user, "");
  equal(validateConfig({ mqtt: { password: "" } }, OPTS).mqtt.password, "");
});

Deno.test("validateConfig() strips the leading / of the prefix and keeps the rest", () => {
  const c = validateConfig({ mqtt: { prefix: "//home/" } }, OPTS);
  equal(c.mqtt.prefix, "home/");
  deepEqual(c.warnings.filter((w) => w.path === "mqtt.prefix"), [
    {
      path: "mqtt.prefix",
      message: 'ends with "/": topics will contain "//" (kept as the add-on did)',
    },
  ]);
});

Deno.test("validateConfig() reads text fields given as numbers as their digits", () => {
  const c = validateConfig({ mqtt: { device_id: 1234, name: 7, host: 10 } }, OPTS);
  equal(c.mqtt.deviceId, "1234");
  equal(c.mqtt.name, "7");
  equal(c.mqtt.host, "10");
  equal(c.mqtt.clientId, "smartmeter-1234");
});

Deno.test("validateConfig() uses client_id and treats empty name or client_id as default", () => {
  const c = validateConfig({ mqtt: { client_id: "meter-a", name: "" } }, OPTS);
  equal(c.mqtt.clientId, "meter-a");
  equal(c.mqtt.name, "Smart Meter");
});

Deno.test("validateConfig() lists unknown keys without refusing them", () => {
  const c = validateConfig({
    mqtt: { hots: "x", host: "broker" },
    dlms: { baud: 9600 },
    extra: 1,
  }, OPTS);
  deepEqual(c.unknown.toSorted(), ["dlms.baud", "extra", "mqtt.hots"]);
});

Deno.test("validateConfig() accepts obsolete keys with any value", () => {
  const c = validateConfig({
    interface_type: "PHYSICAL",
    dlms: { hdlc_frame_size: "big", timeout: 2.5 },
    mqtt: { sensors_migrated: "whatever" },
  }, OPTS);
  deepEqual(c.obsolete, [
    "interface_type",
    "dlms.hdlc_frame_size",
    "dlms.timeout",
    "mqtt.sensors_migrated",
  ]);
});

Deno.test("validateConfig() treats null sections as empty", () => {
  const c = validateConfig({ dlms: null, mqtt: "" }, OPTS);
  equal(c.source.port, "/dev/ttyUSB0");
  equal(c.mqtt.port, 1883);
});

// ---------------------------------------------------------------------------------------
// Warnings

Deno.test("validateConfig() warns about what works but is probably unintended", async (t) => {
  const cases: [unknown, ConfigProblem][] = [
    [{ mqtt: { device_id: "smart.meter" } }, {
      path: "mqtt.device_id",
      message: '"smart.meter" has characters other than letters, digits, _ and -: Home ' +
        "Assistant ignores discovery topics with such an id",
    }],
    [{ mqtt: { tls_ca: "/ca.pem" } }, {
      path: "mqtt.tls_ca",
      message: "ignored because mqtt.tls is false",
    }],
    [{ mqtt: { tls_insecure: true } }, {
      path: "mqtt.tls_insecure",
      message: "ignored because mqtt.tls is false",
    }],
    [{ mqtt: { tls: true, tls_key: "/k.pem" } }, {
      path: "mqtt.tls_key",
      message: "ignored without mqtt.tls_cert (the client certificate)",
    }],
    [{ meter_type: "noe_evn", dlms: { baudrate: 9600 } }, {
      path: "dlms.baudrate",
      message: "9600 with meter_type noe_evn, whose profile speed is 2400 (the add-on always " +
        "sent 9600): if nothing is read, remove dlms.baudrate or set it to auto",
    }],
  ];
  for (const [raw, want] of cases) {
    await t.step(want.path, () => {
      // a key keeps the "key not set" warning out of the way
      deepEqual(validateConfig(raw, { ...OPTS, env: { SMARTMETER_KEY: KEY_HEX } }).warnings, [
        want,
      ]);
    });
  }
});

// ---------------------------------------------------------------------------------------
// Every problem message

Deno.test("parseConfigText() reports a YAML syntax error with line and column", () => {
  const text = `mqtt:\n  host: broker\ndlms:\n  key: "${KEY_HEX}\n  port: [x\n`;
  throws(() => parseConfigText(text, "config.yaml"), (thrown: unknown) => {
    const e = configError(thrown);
    assert(e.problems.length >= 1);
    equal(e.problems[0]!.path, "(file)");
    match(e.problems[0]!.message, /^config\.yaml line \d+, column \d+: \S/);
    assert(!e.message.includes(KEY_HEX), "the source excerpt must not be quoted");
    return true;
  });
});

Deno.test("parseConfigText() never quotes a token of the file in a syntax error", () => {
  throws(() => parseConfigText(`- a\nb: ${KEY_HEX}\n`, "c.yaml"), (thrown: unknown) => {
    const e = configError(thrown);
    equal(e.problems.length, 1);
    match(e.message, /^\(file\): c\.yaml line 2, column \d+: /);
    assert(!e.message.includes(KEY_HEX), e.message);
    return true;
  });
});

Deno.test("parseConfigText() reports an alias without its anchor", () => {
  throws(() => parseConfigText("a: *nope\n", "c.yaml"), (thrown: unknown) => {
    const e = configError(thrown);
    equal(e.problems[0]!.path, "(file)");
    match(e.message, /^\(file\): c\.yaml: Unresolved alias/);
    return true;
  });
});

Deno.test("parseConfigText() refuses a file with several YAML documents", () => {
  throws(() => parseConfigText("a: 1\n---\nb: 2\n", "c.yaml"), (thrown: unknown) => {
    const e = configError(thrown);
    match(e.message, /^\(file\): c\.yaml line 2, column 1: Source contains multiple documents/);
    return true;
  });
});

Deno.test("validateConfig() reports each problem with its path and a helpful message", async (t) => {
  const cases: [string, string, RegExp, Partial<LoadOptions>?][] = [
    ["- a\n- b\n", "(file)", /^must be a mapping of keys such as mqtt: and dlms:, got a list$/],
    [
      "logging: verbose",
      "logging",
      /^must be debug, info, warning or error \(any case\), got "verbose"$/,
    ],
    [
      "meter_type: xyz",
      "meter_type",
      /^unknown meter type "xyz": allowed are auto, burgenland, noe_evn, wienernetze, kaernten$/,
    ],
    [
      "dlms: [1, 2]",
      "dlms",
      /^must be a mapping of keys \(indented "key: value" lines\), got a list$/,
    ],
    ["mqtt: 5", "mqtt", /^must be a mapping of keys .*got 5$/],
    ["dlms:\n  port: [a]", "dlms.port", /^must be text, got a list$/],
    ["mqtt:\n  host: yes", "mqtt.host", /^must be text: put it in quotes \(unquoted yes\/no/],
    ["mqtt:\n  user: 0123", "mqtt.user", /^quote the value in the file: it was read as a number$/],
    ["mqtt:\n  password: 1234", "mqtt.password", /^quote the value in the file: it was read/],
    ["dlms:\n  port: ''", "dlms.port", /^must not be empty: give a serial device such as/],
    ["dlms:\n  port: udp://x:1", "dlms.port", /^unsupported address "udp:\/\/x:1": use a device/],
    [
      "dlms:\n  port: tcp://host",
      "dlms.port",
      /^"tcp:\/\/host" needs a host and a port and nothing else, like tcp:\/\//,
    ],
    [
      "dlms:\n  baudrate: 9601",
      "dlms.baudrate",
      /^must be auto or one of 300, 600, .*, 115200, got 9601$/,
    ],
    ["dlms:\n  baudrate: fast", "dlms.baudrate", /^must be auto or one of .* got "fast"$/],
    [
      "dlms:\n  bytesize: 5",
      "dlms.bytesize",
      /^5 data bits are not supported: meters send 8 \(a few 7\); allowed 7 or 8$/,
    ],
    ["dlms:\n  bytesize: 9", "dlms.bytesize", /^must be 7 or 8, got 9$/],
    [
      "dlms:\n  parity: M",
      "dlms.parity",
      /^MARK parity cannot be set on a serial port portably \(termios/,
    ],
    [
      "dlms:\n  parity: space",
      "dlms.parity",
      /^SPACE parity cannot be set .*: use NONE, EVEN or ODD$/,
    ],
    [
      "dlms:\n  parity: XYZ",
      "dlms.parity",
      /^must be NONE, EVEN or ODD \(or N, E, O; any case\), got "XYZ"$/,
    ],
    ["dlms:\n  parity: true", "dlms.parity", /^must be NONE, EVEN or ODD .*got true$/],
    [
      "dlms:\n  stopbits: 1.5",
      "dlms.stopbits",
      /^1\.5 stop bits cannot be set through termios: allowed 1 or 2$/,
    ],
    ["dlms:\n  stopbits: 3", "dlms.stopbits", /^must be 1 or 2, got 3$/],
    [
      "dlms:\n  key: 12345678901234567890123456789012",
      "dlms.key",
      /^quote the key in the file: it was read as a number$/,
    ],
    [
      "dlms:\n  auth_key: 1234",
      "dlms.auth_key",
      /^quote the key in the file: it was read as a number$/,
    ],
    ["dlms:\n  key: [1]", "dlms.key", /^must be text of 32 hex characters, got a list$/],
    ["dlms:\n  key: yes", "dlms.key", /^must be text of 32 hex characters, got true\/false$/],
    [`dlms:\n  key: "${KEY_HEX.slice(2)}"`, "dlms.key", /^must be 32 hex characters \(got 30\)$/],
    [
      `dlms:\n  key: "${KEY_HEX.slice(0, 4)}zz${KEY_HEX.slice(6)}"`,
      "dlms.key",
      /^must be 32 hex characters \(0-9, a-f\), got \(hidden\) with a character that is not hex at position 5$/,
    ],
    [
      `dlms:\n  key: "012 3456789abcdef0123456789abcdef"`,
      "dlms.key",
      /^a separator splits a byte pair in \(hidden\): write 32 hex characters, or byte pairs/,
    ],
    [
      "mqtt:\n  host: ''",
      "mqtt.host",
      /^is empty: give the broker's host name or address \(an empty host asks/,
    ],
    [
      "mqtt:\n  host: mqtt://b:1883",
      "mqtt.host",
      /^give only the host name, without "mqtt:\/\/": the port goes in mqtt\.port/,
    ],
    [
      "mqtt:\n  host: my broker",
      "mqtt.host",
      /^must be a host name or address without spaces or "\/", got "my broker"$/,
    ],
    ["mqtt:\n  port: 0", "mqtt.port", /^must be a whole number from 1 to 65535, got 0$/],
    ["mqtt:\n  port: 1883.5", "mqtt.port", /^must be a whole number from 1 to 65535, got 1883\.5$/],
    [
      "mqtt:\n  port: 'x1883'",
      "mqtt.port",
      /^must be a whole number from 1 to 65535, got "x1883"$/,
    ],
    [
      "mqtt:\n  keepalive: 2",
      "mqtt.keepalive",
      /^must be a whole number of seconds from 5 to 65535, got 2$/,
    ],
    [
      "mqtt:\n  prefix: home/#",
      "mqtt.prefix",
      /^must not contain the MQTT wildcards \+ or #, got "home\/#"$/,
    ],
    [
      "mqtt:\n  device_id: ''",
      "mqtt.device_id",
      /^must not be empty: it names the Home Assistant device/,
    ],
    [
      "mqtt:\n  device_id: a/b",
      "mqtt.device_id",
      /^must not contain "\/", "\+" or "#" \(it is one topic level\), got "a\/b"$/,
    ],
    [
      "mqtt:\n  publish_interval: -1",
      "mqtt.publish_interval",
      /^must be a number of seconds from 0 to 86400 \(0 = every telegram\), got -1$/,
    ],
    [
      "mqtt:\n  discovery_prefix: ha+",
      "mqtt.discovery_prefix",
      /^must not contain the MQTT wildcards/,
    ],
    [
      "mqtt:\n  discovery_prefix: /ha",
      "mqtt.discovery_prefix",
      /^must not start or end with "\/", got "\/ha"$/,
    ],
    [
      "mqtt:\n  tls: maybe",
      "mqtt.tls",
      /^must be true or false \(yes\/no and on\/off work too\), got "maybe"$/,
    ],
    ["mqtt:\n  tls_insecure: 2", "mqtt.tls_insecure", /^must be true or false .*got 2$/],
    [
      "mqtt:\n  protocol_version: 3",
      "mqtt.protocol_version",
      /^must be 4 \(MQTT 3\.1\.1\) or 5 \(MQTT 5\), got 3$/,
    ],
    [
      "dlms:\n  key: ''",
      "dlms.key",
      /^must be 32 hex characters \(got 4\) \(from the environment variable SMARTMETER_KEY\)$/,
      { env: { SMARTMETER_KEY: "abcd" } },
    ],
    [
      "dlms:\n  key: ''",
      "dlms.key",
      /^must be 32 hex characters \(got 2\) \(from the systemd credential key\)$/,
      { credentials: { key: "ab\n" } },
    ],
    [
      "dlms:\n  auth_key: ''",
      "dlms.auth_key",
      /\(from the environment variable SMARTMETER_AUTH_KEY\)$/,
      { env: { SMARTMETER_AUTH_KEY: "xyz" } },
    ],
  ];
  for (const [yaml, path, pattern, opts] of cases) {
    await t.step(`${path}: ${yaml.replaceAll("\n", " ")}`, () => {
      assertProblem(yaml, path, pattern, opts);
    });
  }
});

Deno.test("validateConfig() refuses an empty mqtt.host outside the add-on only", () => {
  assertProblem("mqtt:\n  host: ''\n", "mqtt.host", /^is empty/, { env: {} });
  equal(load("mqtt:\n  host: ''\n", { env: { SUPERVISOR_TOKEN: "t" } }).mqtt.host, "");
});

Deno.test("loadConfig() reports every problem of a file at once, with their paths", () => {
  const problems = problemsOf(fixture("several-problems.yaml"));
  deepEqual(problems.map((p) => p.path), [
    "logging",
    "dlms.parity",
    "dlms.key",
    "mqtt.host",
    "mqtt.port",
  ]);
});

Deno.test("ConfigError lists every problem in its message, one per line", () => {
  throws(() => load(fixture("several-problems.yaml")), (thrown: unknown) => {
    const e = configError(thrown);
    const lines = e.message.split("\n");
    equal(lines.length, 5);
    equal(lines[2], "dlms.key: must be 32 hex characters (got 30)");
    for (const [i, p] of e.problems.entries()) equal(lines[i], `${p.path}: ${p.message}`);
    return true;
  });
});

Deno.test("ConfigError never contains a secret", async (t) => {
  const secretKey = "0123456789abcdef0123456789abcdez"; // one bad character
  const secretPw = "hunter2-the-password";
  const cases: [string, Partial<LoadOptions>][] = [
    [`dlms:\n  key: "${secretKey}"\n  auth_key: "${secretKey}"\nmqtt:\n  port: 0\n`, {}],
    [`dlms:\n  key: "${secretKey}\n  port: [\n`, {}], // syntax error right after the key
    ["mqtt:\n  port: 0\n", { env: { SMARTMETER_KEY: secretKey } }],
    ["mqtt:\n  port: 0\n", { credentials: { auth_key: secretKey, mqtt_password: secretPw } }],
    [`mqtt:\n  password: "${secretPw}"\n  port: 0\n`, {}],
    [`dlms:\n  key: "${secretKey.slice(0, 31)}"\n`, {}],
  ];
  for (const [text, opts] of cases) {
    await t.step(text.split("\n")[0]!, () => {
      throws(() => load(text, opts), (thrown: unknown) => {
        const e = configError(thrown);
        for (const s of [secretKey, secretKey.slice(0, 30), secretPw]) {
          assert(!e.message.includes(s), `leaked in: ${e.message}`);
        }
        return true;
      });
    });
  }
});

// ---------------------------------------------------------------------------------------
// Secrets from the environment and systemd credentials

Deno.test("validateConfig() takes secrets by precedence: file < credentials < env", async (t) => {
  const fileKey = "11".repeat(16);
  const credKey = "22".repeat(16);
  const envKey = "33".repeat(16);
  const raw = { dlms: { key: fileKey, auth_key: fileKey }, mqtt: { password: "file-pw" } };
  const bytes = (hex: string) =>
    Uint8Array.from({ length: 16 }, () => parseInt(hex.slice(0, 2), 16));

  await t.step("file only", () => {
    const c = validateConfig(raw, OPTS);
    deepEqual(c.key, bytes(fileKey));
    equal(c.mqtt.password, "file-pw");
    deepEqual(c.secretSources, { key: "file", authKey: "file", password: "file" });
  });
  await t.step("credentials override the file; a trailing newline is dropped", () => {
    const c = validateConfig(raw, {
      ...OPTS,
      credentials: { key: `${credKey}\n`, auth_key: credKey, mqtt_password: "cred-pw\n" },
    });
    deepEqual(c.key, bytes(credKey));
    deepEqual(c.authKey, bytes(credKey));
    equal(c.mqtt.password, "cred-pw");
    deepEqual(c.secretSources, {
      key: "credentials",
      authKey: "credentials",
      password: "credentials",
    });
  });
  await t.step("the environment overrides both", () => {
    const c = validateConfig(raw, {
      ...OPTS,
      credentials: { key: credKey, auth_key: credKey, mqtt_password: "cred-pw" },
      env: {
        SMARTMETER_KEY: envKey,
        SMARTMETER_AUTH_KEY: envKey,
        SMARTMETER_MQTT_PASSWORD: "env-pw",
      },
    });
    deepEqual(c.key, bytes(envKey));
    deepEqual(c.authKey, bytes(envKey));
    equal(c.mqtt.password, "env-pw");
    deepEqual(c.secretSources, { key: "env", authKey: "env", password: "env" });
  });
  await t.step("empty values do not override", () => {
    const c = validateConfig(raw, {
      ...OPTS,
      credentials: { key: "\n", mqtt_password: "" },
      env: { SMARTMETER_KEY: "", SMARTMETER_MQTT_PASSWORD: "" },
    });
    deepEqual(c.key, bytes(fileKey));
    equal(c.mqtt.password, "file-pw");
  });
  await t.step("an override hides a bad value in the file", () => {
    const c = validateConfig({ dlms: { key: 12345 }, mqtt: { password: 1234 } }, {
      ...OPTS,
      env: { SMARTMETER_KEY: envKey, SMARTMETER_MQTT_PASSWORD: "env-pw" },
    });
    deepEqual(c.key, bytes(envKey));
    equal(c.mqtt.password, "env-pw");
  });
  await t.step("a secret set only outside the file", () => {
    const c = validateConfig({}, { ...OPTS, credentials: { key: credKey } });
    deepEqual(c.key, bytes(credKey));
    deepEqual(c.warnings, []);
  });
});

// ---------------------------------------------------------------------------------------
// redact

Deno.test("redact() hides a byte key in any hex spelling", async (t) => {
  const spellings = [
    KEY_HEX,
    KEY_HEX.toUpperCase(),
    KEY_HEX.match(/../g)!.join(" "),
    KEY_HEX.toUpperCase().match(/../g)!.join(" "),
    KEY_HEX.match(/../g)!.join(":"),
  ];
  for (const s of spellings) {
    await t.step(s, () => {
      equal(redact(`key=${s}, next`, [KEY]), "key=***, next");
    });
  }
});

Deno.test("redact() hides a key given as text in its other spellings too", () => {
  const configured = KEY_HEX.toUpperCase().match(/../g)!.join(" ");
  equal(redact(`a ${configured} b ${KEY_HEX} c`, [configured]), "a *** b *** c");
});

Deno.test("redact() hides a password, every time it appears", () => {
  equal(
    redact("login user=u password=s3cr3t! retry password=s3cr3t!", ["s3cr3t!"]),
    "login user=u password=*** retry password=***",
  );
});

Deno.test("redact() hides a password written as hex bytes", () => {
  const hex = Array.from(new TextEncoder().encode("s3cr3t!"), (b) => b.toString(16)).join(" ");
  equal(redact(`packet: ${hex}`, ["s3cr3t!"]), "packet: ***");
});

Deno.test("redact() skips absent secrets and leaves other text alone", () => {
  equal(redact("nothing to hide", [null, undefined, "", new Uint8Array(0)]), "nothing to hide");
  equal(redact("0123 4567", [KEY]), "0123 4567");
  equal(redact("a.b*c", ["."]), "a***b*c"); // literal, not a pattern
});

Deno.test("redact() replaces the longer of two overlapping secrets whole", () => {
  equal(redact("pw=abcdef", ["abc", "abcdef"]), "pw=***");
});

Deno.test("redactConfig() shows *** for the keys and the password", () => {
  const c = load(fixture("smartmeter-config.complete.yaml"), {
    env: { SMARTMETER_AUTH_KEY: KEY_HEX },
  });
  const r = redactConfig(c);
  equal(r.key, "***");
  equal(r.authKey, "***");
  equal((r.mqtt as Record<string, unknown>).password, "***");
  equal((r.mqtt as Record<string, unknown>).user, "mqttuser");
  const json = JSON.stringify(r);
  assert(!json.includes('"secret"'), json);
  assert(!json.includes(KEY_HEX), json);
  equal(c.mqtt.password, "secret", "the config itself is not changed");
});

Deno.test("redactConfig() keeps unset secrets as null", () => {
  const r = redactConfig(load(""));
  equal(r.key, null);
  equal(r.authKey, null);
  equal((r.mqtt as Record<string, unknown>).password, null);
});

Deno.test("validateConfig() refuses a user, a scheme, a path or a port in mqtt.host, never echoing a password", async (t) => {
  const refused: [string, RegExp][] = [
    ["meter@broker.lan", /^must not hold a user name or password \("…@"\): put the user name/],
    ["meter:s3cret@broker.lan", /^must not hold a user name or password \("…@"\)/],
    ["meter:s3cret@broker.lan/mqtt", /^must not hold a user name or password \("…@"\)/],
    ["mqtts://meter:s3cret@broker.lan:8883", /^give only the host name, without "mqtts:\/\/"/],
    ["broker.lan/mqtt", /^must be a host name or address without spaces or "\/"/],
    ["broker.lan:1883", /^give only the host name or address: the port goes in mqtt\.port/],
  ];
  for (const [host, pattern] of refused) {
    await t.step(host, () => {
      const problems = problemsOf(`mqtt:\n  host: "${host}"\n`);
      equal(problems.length, 1, JSON.stringify(problems));
      equal(problems[0]!.path, "mqtt.host");
      match(problems[0]!.message, pattern);
      assert(!problems[0]!.message.includes("s3cret"), problems[0]!.message);
    });
  }
  await t.step("IPv6 literals stay valid, with or without brackets", () => {
    for (
      const [host, expected] of [["::1", "::1"], ["fe80::1", "fe80::1"], [
        "[2001:db8::10]",
        "2001:db8::10",
      ]]
    ) {
      equal(load(`mqtt:\n  host: "${host}"\n`).mqtt.host, expected);
    }
  });
});

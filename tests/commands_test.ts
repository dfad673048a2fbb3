import { deepEqual, equal, match, ok as assert } from "node:assert/strict";
import { runMain, withDir } from "./cli_support.ts";
import { DEMO_KEY } from "../lib/commands/simulate.ts";
import { brokerMissing, startBroker } from "./e2e/mosquitto.ts";
import { fixture } from "./fixtures.ts";

Deno.test("simulate --out - writes pushes that decode with the same key", async () => {
  for (const meter of ["burgenland", "noe_evn", "sagemcom", "wiener-netze"]) {
    const sim = await runMain([
      "simulate",
      "--meter-type",
      meter,
      "--count",
      "3",
      "--interval",
      "0",
      "--out",
      "-",
    ]);
    equal(sim.status, 0, sim.err.join("\n"));
    equal(sim.out.length, 3);
    await withDir(async (dir) => {
      await Deno.writeTextFile(`${dir}/sim.hex`, sim.out.join("\n"));
      const dec = await runMain(["decode", "--key", DEMO_KEY, `${dir}/sim.hex`]);
      equal(dec.status, 0, `${meter}: ${dec.out.join("\n")}`);
      deepEqual(dec.out.map((l) => JSON.parse(l).frame_counter), [1, 2, 3]);
    });
  }
});

Deno.test("simulate writes hex lines to a file and refuses what it cannot do", async () => {
  await withDir(async (dir) => {
    const r = await runMain([
      "simulate",
      "--meter-type",
      "noe_evn",
      "--count",
      "2",
      "--interval",
      "0",
      "--out",
      `${dir}/x.hex`,
    ]);
    equal(r.status, 0);
    equal((await Deno.readTextFile(`${dir}/x.hex`)).trim().split("\n").length, 2);
  });
  const cases: [string[], RegExp][] = [
    [["simulate"], /--meter-type is required/],
    [["simulate", "--meter-type", "elster"], /cannot be simulated: use one of burgenland/],
    [
      ["simulate", "--meter-type", "noe_evn", "--interval=-1"],
      /--interval must be a number of at least 0/,
    ],
    [["simulate", "--meter-type", "noe_evn", "--key", "12"], /--key must be 32 hex characters/],
  ];
  for (const [args, message] of cases) {
    const r = await runMain(args);
    equal(r.status, 2, args.join(" "));
    match(r.err[0]!, message);
  }
});

Deno.test("demo runs a simulated meter through a pseudo-terminal and the whole pipeline", async () => {
  for (const meter of ["burgenland", "sagemcom"]) {
    const r = await runMain(["demo", "--meter-type", meter, "--count", "2", "--interval", "0.2"]);
    equal(r.status, 0, r.err.join("\n"));
    equal(r.out.length, 2, r.out.join("\n"));
    for (const line of r.out) {
      match(line, /^✓ \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d (hdlc|mbus)\/encrypted/);
    }
  }
  const json = await runMain(["demo", "--count", "1", "--interval", "0.2", "--json"]);
  equal(json.status, 0);
  const t = JSON.parse(json.out[0]!);
  equal(t.ok, true);
  equal(t.security, "encrypted+authenticated");
  equal(t.layout, "burgenland");
});

Deno.test({
  name: "demo --mqtt publishes the readings to a broker",
  ignore: brokerMissing() !== null,
  async fn() {
    const broker = await startBroker();
    try {
      const { default: mqtt } = await import("mqtt");
      const watcher = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`);
      const states: string[] = [];
      watcher.on("message", (topic, payload) => {
        if (topic === "smartmeter_demo/state") states.push(payload.toString());
      });
      await watcher.subscribeAsync("smartmeter_demo/#");
      const r = await runMain([
        "demo",
        "--count",
        "3",
        "--interval",
        "0.3",
        "--mqtt",
        `mqtt://127.0.0.1:${broker.port}`,
      ]);
      equal(r.status, 0, r.err.join("\n"));
      await new Promise((res) => setTimeout(res, 200));
      await watcher.endAsync();
      assert(states.length >= 1, "at least one state published");
      const s = JSON.parse(states.at(-1)!);
      assert(typeof s.energy_import_wh === "number" && typeof s.total_con === "number");
    } finally {
      await broker.close();
    }
  },
});

Deno.test("check reports a valid config and a telegram from a capture file", async () => {
  const f = fixture("netznoe_kaifa-ma309_1");
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/capture.hex`, f.hex);
    await Deno.writeTextFile(
      `${dir}/config.yaml`,
      `meter_type: noe_evn\ninterface_type: OPTICAL\ndlms:\n  port: ${dir}/capture.hex\n  key: "${f.raw.key}"\nmqtt:\n  host: localhost\n  hots: typo\n`,
    );
    const r = await runMain(["check", "--config", `${dir}/config.yaml`, "--no-mqtt"]);
    equal(r.status, 0, r.out.join("\n"));
    const text = r.out.join("\n");
    match(text, /✓ Config .*config\.yaml is valid/);
    match(text, /! mqtt\.hots: unknown key, ignored \(a typo\?\)/);
    match(text, /· interface_type: obsolete/);
    match(
      text,
      /✓ Meter: telegram decoded \(mbus, encrypted, layout obis-tagged, meter 181220000009: energy import 12937 Wh/,
    );
    assert(!text.includes(String(f.raw.key)), "the key is not printed");
  });
});

Deno.test("check explains a wrong key, a missing device and a bad config", async () => {
  const f = fixture("netznoe_kaifa-ma309_1");
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/capture.hex`, f.hex);
    await Deno.writeTextFile(
      `${dir}/wrong.yaml`,
      `dlms:\n  port: ${dir}/capture.hex\n  key: "${"ab".repeat(16)}"\nmqtt:\n  host: localhost\n`,
    );
    const wrong = await runMain(["check", "-c", `${dir}/wrong.yaml`, "--no-mqtt"]);
    equal(wrong.status, 1);
    match(
      wrong.out.join("\n"),
      /✗ Meter: \d+ bytes, 1 frames, no telegram decoded[\s\S]*decrypt: .*wrong key/,
    );

    await Deno.writeTextFile(
      `${dir}/missing.yaml`,
      `dlms:\n  port: ${dir}/ttyUSB9\n  key: "${"ab".repeat(16)}"\nmqtt:\n  host: localhost\n`,
    );
    const missing = await runMain([
      "check",
      "-c",
      `${dir}/missing.yaml`,
      "--no-mqtt",
      "--seconds",
      "1",
    ]);
    equal(missing.status, 1);
    match(missing.out.join("\n"), /✗ Meter: No such device .*ttyUSB9: is the IR head plugged in\?/);

    await Deno.writeTextFile(
      `${dir}/bad.yaml`,
      `dlms:\n  key: "123"\n  parity: X\nmqtt:\n  port: 99999\n`,
    );
    const bad = await runMain(["check", "-c", `${dir}/bad.yaml`]);
    equal(bad.status, 78);
    const text = bad.out.join("\n");
    match(text, /✗ Config: The config file .* has 3 problems/);
    match(text, /dlms\.key: /);
    match(text, /dlms\.parity: /);
    match(text, /mqtt\.port: /);
  });
});

Deno.test({
  name: "check connects to the MQTT broker, and names a refusal",
  ignore: brokerMissing() !== null,
  async fn() {
    const broker = await startBroker({ users: { meter: "right" } });
    const f = fixture("netznoe_kaifa-ma309_1");
    try {
      await withDir(async (dir) => {
        await Deno.writeTextFile(`${dir}/capture.hex`, f.hex);
        const cfg = (pw: string) =>
          `dlms:\n  port: ${dir}/capture.hex\n  key: "${f.raw.key}"\nmqtt:\n  host: 127.0.0.1\n  port: ${broker.port}\n  user: meter\n  password: ${pw}\n`;
        await Deno.writeTextFile(`${dir}/good.yaml`, cfg("right"));
        await Deno.writeTextFile(`${dir}/bad.yaml`, cfg("wrong"));
        const good = await runMain(["check", "-c", `${dir}/good.yaml`]);
        equal(good.status, 0, good.out.join("\n"));
        match(good.out.join("\n"), /✓ MQTT: connected to mqtt:\/\/127\.0\.0\.1:\d+/);
        const bad = await runMain(["check", "-c", `${dir}/bad.yaml`]);
        equal(bad.status, 1);
        match(
          bad.out.join("\n"),
          /✗ MQTT: MQTT broker mqtt:\/\/127\.0\.0\.1:\d+ refused the connection: not authorized — check mqtt\.user\/mqtt\.password/,
        );
        assert(!bad.out.join("\n").includes("wrong"), "the password is not printed");
      });
    } finally {
      await broker.close();
    }
  },
});

Deno.test("capture writes the source's bytes as hex lines", async () => {
  const f = fixture("netznoe_kaifa-ma309_1");
  await withDir(async (dir) => {
    await Deno.writeFile(`${dir}/capture.bin`, f.bytes);
    await Deno.writeTextFile(
      `${dir}/c.yaml`,
      `dlms:\n  port: ${dir}/capture.bin\nmqtt:\n  host: localhost\n`,
    );
    const r = await runMain(["capture", "-c", `${dir}/c.yaml`, "--seconds", "5"]);
    equal(r.status, 0, r.err.join("\n"));
    assert(r.out.every((l) => l.length <= 64));
    equal(r.out.join(""), f.hex);
    const bad = await runMain(["capture", "--seconds", "0"]);
    equal(bad.status, 2);
    match(bad.err[0]!, /--seconds must be a positive number/);
  });
});

Deno.test("simulate --out /dev/pts/N writes raw frames into a serial line", async () => {
  const { PseudoTerminal } = await import("../lib/sources/pty.ts");
  const { Decoder } = await import("../lib/pipeline.ts");
  const { fromHex } = await import("../lib/bytes.ts");
  const pty = PseudoTerminal.open();
  try {
    // The pseudo-terminal's own slave end is the line the simulator writes to; what it
    // writes comes out of the master, as it would reach a reader on a real cable.
    const r = await runMain([
      "simulate",
      "--meter-type",
      "noe_evn",
      "--count",
      "2",
      "--interval",
      "0",
      "--out",
      pty.path,
    ]);
    equal(r.status, 0, r.err.join("\n"));
    const d = await Decoder.create({ key: fromHex(DEMO_KEY) });
    const buf = new Uint8Array(4096);
    let decoded = 0;
    for (let i = 0; i < 20 && decoded < 2; i++) {
      const n = await pty.read(buf, 200);
      for (const t of await d.push(buf.slice(0, n))) if (t.ok) decoded++;
    }
    equal(decoded, 2);
  } finally {
    pty.close();
  }
});

Deno.test({
  name: "demo never shows the password of an --mqtt URL, in a usage error or a refusal",
  ignore: brokerMissing() !== null,
  async fn() {
    for (const url of ["mqtt://meter:s3cret@ho st:1883", "mqtt://meter:s3cret@127.0.0.1:99999"]) {
      const r = await runMain(["demo", "--count", "1", "--mqtt", url]);
      equal(r.status, 2, url);
      match(r.err[0]!, /^smartmeter demo: --mqtt must be a URL like mqtt:\/\/localhost:1883/);
      assert(!r.err.join("\n").includes("s3cret"), r.err.join("\n"));
    }
    const broker = await startBroker({ users: { meter: "right" } });
    try {
      const r = await runMain([
        "demo",
        "--count",
        "2",
        "--interval",
        "0.2",
        "--mqtt",
        `mqtt://meter:s3cret%21@127.0.0.1:${broker.port}`,
      ]);
      const all = [...r.out, ...r.err].join("\n");
      match(all, /refused the connection: not authorized/);
      assert(!/s3cret/.test(all), all);
    } finally {
      await broker.close();
    }
  },
});

Deno.test({
  name: "check sends a test message through the broker and names a broker that connects " +
    "but does not deliver (an ACL that only allows reading)",
  ignore: brokerMissing() !== null,
  async fn(t) {
    const f = fixture("netznoe_kaifa-ma309_1");
    const readOnly = await startBroker({
      users: { meter: "pw" },
      acl: "user meter\ntopic read #\n",
    });
    const readWrite = await startBroker({
      users: { meter: "pw" },
      acl: "user meter\ntopic readwrite smartmeter/#\n",
    });
    try {
      await withDir(async (dir) => {
        await Deno.writeTextFile(`${dir}/capture.hex`, f.hex);
        const cfg = async (port: number, version: number) => {
          const path = `${dir}/${port}-${version}.yaml`;
          await Deno.writeTextFile(
            path,
            `dlms:\n  port: ${dir}/capture.hex\n  key: "${f.raw.key}"\nmqtt:\n  host: 127.0.0.1\n  port: ${port}\n  user: meter\n  password: pw\n  protocol_version: ${version}\n`,
          );
          return path;
        };
        for (const version of [4, 5]) {
          await t.step(`MQTT ${version === 4 ? "3.1.1" : "5"}: read-only is refused`, async () => {
            const r = await runMain(["check", "-c", await cfg(readOnly.port, version)]);
            equal(r.status, 1, r.out.join("\n"));
            match(
              r.out.join("\n"),
              /✗ MQTT: connected to mqtt:\/\/127\.0\.0\.1:\d+ as user "meter", but the broker does not deliver: .*"smartmeter\/check"/,
            );
          });
          await t.step(`MQTT ${version === 4 ? "3.1.1" : "5"}: read-write passes`, async () => {
            const r = await runMain(["check", "-c", await cfg(readWrite.port, version)]);
            equal(r.status, 0, r.out.join("\n"));
            match(
              r.out.join("\n"),
              /✓ MQTT: connected to mqtt:\/\/127\.0\.0\.1:\d+ as user "meter"; a test message to "smartmeter\/check" came back/,
            );
          });
        }
      });
    } finally {
      await readOnly.close();
      await readWrite.close();
    }
  },
});

Deno.test("run logs every config warning at start, and unknown keys", async () => {
  const f = fixture("netznoe_kaifa-ma309_1");
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/capture.hex`, f.hex);
    await Deno.writeTextFile(
      `${dir}/c.yaml`,
      `dlms:\n  port: ${dir}/capture.hex\nmqtt:\n  hots: typo\n  device_id: "my meter"\n  tls_ca: /etc/ssl/ca.pem\n`,
    );
    const r = await runMain(["run", "-c", `${dir}/c.yaml`, "--no-mqtt"]);
    const log = r.err.join("\n");
    match(log, /WARNING smartmeter: Config mqtt\.hots: unknown key, ignored \(a typo\?\)/);
    match(log, /WARNING smartmeter: Config mqtt\.device_id: "my meter" has characters other than/);
    match(log, /WARNING smartmeter: Config mqtt\.tls_ca: ignored because mqtt\.tls is false/);
    match(log, /WARNING smartmeter: Config dlms\.key: not set: only unencrypted meters/);
    equal(
      r.err.filter((l) => /only unencrypted meters can be read/.test(l)).length,
      1,
      "the missing key is said once",
    );
  });
});

Deno.test("check lists the config's warnings and unknown keys even when it has errors", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/bad.yaml`,
      `dlms:\n  key: "123"\nmqtt:\n  hots: typo\n  device_id: "my meter"\ninterface_type: OPTICAL\n`,
    );
    const r = await runMain(["check", "-c", `${dir}/bad.yaml`]);
    equal(r.status, 78);
    const text = r.out.join("\n");
    match(text, /✗ Config: The config file .* has 1 problem:\n {2}dlms\.key: /);
    match(text, / {2}! mqtt\.hots: unknown key, ignored \(a typo\?\)/);
    match(text, / {2}! mqtt\.device_id: "my meter" has characters other than/);
    match(text, / {2}· interface_type: obsolete, accepted and ignored/);
  });
});

Deno.test("missing or unreadable TLS files are config errors (exit 78), not a retry loop", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/certs`);
    await Deno.writeTextFile(
      `${dir}/tls.yaml`,
      `dlms:\n  port: ${dir}/ttyUSB9\nmqtt:\n  host: 127.0.0.1\n  tls: true\n  tls_ca: ${dir}/missing-ca.pem\n  tls_cert: ${dir}/certs\n  tls_key: ${dir}/missing.key\n`,
    );
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 5_000);
    try {
      const r = await runMain(["run", "-c", `${dir}/tls.yaml`], { signal: ac.signal });
      equal(r.status, 78, r.err.join("\n"));
      const log = r.err.join("\n");
      match(log, /mqtt\.tls_ca: cannot read ".*missing-ca\.pem": it does not exist/);
      match(log, /mqtt\.tls_cert: cannot read ".*certs": it is a directory/);
      match(log, /mqtt\.tls_key: cannot read ".*missing\.key": it does not exist/);
      const c = await runMain(["check", "-c", `${dir}/tls.yaml`], { signal: ac.signal });
      equal(c.status, 78);
      match(c.out.join("\n"), /✗ Config: .*\n(.*\n)* {2}mqtt\.tls_ca: cannot read/);
    } finally {
      clearTimeout(timer);
    }
  });
});

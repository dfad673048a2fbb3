/**
 * The web server (lib/sinks/http): every endpoint and every error, the Prometheus text
 * through a real parser, the event streams' bounds, the ingress listener's peer check, the
 * assets, and the pieces behind them (address parsing, the plot's ring buffer, "today").
 *
 * The telegrams are real: the simulated Netz Burgenland meter's pushes through the real
 * decoder.
 */

import { deepEqual, equal, match, ok as assert } from "node:assert/strict";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { fromHex, toHex } from "../lib/bytes.ts";
import type { Layer } from "../lib/errors.ts";
import { DEMO_AUTH_KEY, DEMO_KEY } from "../lib/commands/simulate.ts";
import { loadConfig } from "../lib/config.ts";
import { METER_TYPES } from "../lib/cosem/interpret.ts";
import { Decoder, type TelegramResult } from "../lib/pipeline.ts";
import { MeterSimulator } from "../lib/simulator.ts";
import { FAILURES_KEPT, StatusModel } from "../lib/status.ts";
import {
  formatListenAddress,
  INGRESS_PORT,
  INGRESS_PROXY,
  parseListenAddress,
  type WebListener,
  webListeners,
} from "../lib/sinks/http/address.ts";
import { ASSETS, ASSETS_DIR } from "../lib/sinks/http/assets.ts";
import { EventHub, sseEvent } from "../lib/sinks/http/events.ts";
import { PowerHistory } from "../lib/sinks/http/history.ts";
import { DayEnergy, localMidnight } from "../lib/sinks/http/today.ts";
import { WebServer } from "../lib/sinks/http/server.ts";
import { Logger } from "../lib/log.ts";

// ---------------------------------------------------------------------------------------
// Helpers

const LOOPBACK = { host: "127.0.0.1", port: 0 };

function quietLogger(lines: string[] = []): Logger {
  return new Logger({
    level: "debug",
    journald: false,
    timestamps: false,
    write: (l) => lines.push(l),
  });
}

/** `n` pushes of the simulated Burgenland meter, decoded by the real pipeline. */
async function decoded(n: number, opts: { wrongKey?: boolean } = {}): Promise<TelegramResult[]> {
  const sim = await MeterSimulator.create({
    meter: "burgenland",
    key: fromHex(DEMO_KEY),
    authKey: fromHex(DEMO_AUTH_KEY),
  });
  const decoder = await Decoder.create({
    key: fromHex(opts.wrongKey ? "ffeeddccbbaa99887766554433221100" : DEMO_KEY),
    authKey: fromHex(DEMO_AUTH_KEY),
  });
  const out: TelegramResult[] = [];
  for (let i = 0; i < n; i++) {
    const t = await sim.next(new Date(Date.UTC(2026, 4, 1, 10, 0, 5 * i)));
    out.push(...await decoder.push(t.bytes));
  }
  return out;
}

interface Running extends AsyncDisposable {
  web: WebServer;
  status: StatusModel;
  url: string;
  log: string[];
}

async function serve(
  opts: {
    listeners?: WebListener[];
    status?: StatusModel;
    events?: ConstructorParameters<typeof EventHub>[0];
  } = {},
): Promise<Running> {
  const status = opts.status ?? new StatusModel({ version: "9.8.7" });
  const log: string[] = [];
  const web = await WebServer.start({
    listeners: opts.listeners ?? [{ address: LOOPBACK, from: "http.listen", allow: null }],
    status,
    log: quietLogger(log).get("http"),
    ...(opts.events ? { events: opts.events } : {}),
  });
  if (web instanceof Error) throw web;
  return {
    web,
    status,
    url: web.urls[0]!,
    log,
    async [Symbol.asyncDispose]() {
      await web.stop();
    },
  };
}

async function get(url: string, init?: RequestInit) {
  const res = await fetch(url, init);
  const text = await res.text();
  return { res, text };
}

/** Reads events from an SSE response until `count` data events (and any named ones) came. */
async function readEvents(
  res: Response,
  count: number,
): Promise<{ event: string; id: string | null; data: string }[]> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const events: { event: string; id: string | null; data: string }[] = [];
  let buffer = "";
  while (events.filter((e) => e.event === "message").length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      let id: string | null = null;
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("id: ")) id = line.slice(4);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      }
      if (data.length > 0) events.push({ event, id, data: data.join("\n") });
    }
  }
  await reader.cancel();
  return events;
}

// ---------------------------------------------------------------------------------------
// Addresses and config

Deno.test("parseListenAddress() reads host:port, IPv6 in brackets and :port", () => {
  deepEqual(parseListenAddress("127.0.0.1:8080"), { host: "127.0.0.1", port: 8080 });
  deepEqual(parseListenAddress(" 0.0.0.0:80 "), { host: "0.0.0.0", port: 80 });
  deepEqual(parseListenAddress("[::1]:9000"), { host: "::1", port: 9000 });
  deepEqual(parseListenAddress(":8080"), { host: "0.0.0.0", port: 8080 });
  deepEqual(parseListenAddress("localhost:0"), { host: "localhost", port: 0 });
  equal(formatListenAddress({ host: "::1", port: 9000 }), "[::1]:9000");
  equal(formatListenAddress({ host: "127.0.0.1", port: 1 }), "127.0.0.1:1");
});

Deno.test("parseListenAddress() says what is wrong with a bad address", () => {
  match(parseListenAddress("8080") as string, /"8080" is not an address to listen on/);
  match(parseListenAddress("127.0.0.1") as string, /write host:port/);
  match(parseListenAddress("http://127.0.0.1:8080") as string, /is a URL.*without http:\/\//);
  match(parseListenAddress("127.0.0.1:70000") as string, /port 70000 .* above 65535/);
  match(parseListenAddress("a b:80") as string, /not an address/);
});

Deno.test("http.listen: absent or empty is off, an address is on, a bad one is refused", () => {
  const load = (text: string) => loadConfig(text, { env: {}, meterTypes: METER_TYPES });
  deepEqual(load("mqtt:\n  host: x\n").http, { listen: null, from: "http.listen" });
  deepEqual(load("http:\n  listen: ''\n").http, { listen: null, from: "http.listen" });
  deepEqual(load("http:\n").http, { listen: null, from: "http.listen" });
  deepEqual(load("http:\n  listen: 127.0.0.1:8080\n").http, {
    listen: { host: "127.0.0.1", port: 8080 },
    from: "http.listen",
  });
  deepEqual(load("http:\n  listen: 127.0.0.1:8080\n").unknown, []);
  try {
    load("http:\n  listen: 8080\n");
    assert(false, "a port alone must be refused");
  } catch (e) {
    match((e as Error).message, /^http\.listen: "8080" is not an address to listen on/);
  }
});

Deno.test("webListeners(): http.listen answers everyone, --ingress only the Supervisor", () => {
  deepEqual(webListeners({ listen: null, from: "http.listen" }, false), []);
  const both = webListeners({ listen: { host: "127.0.0.1", port: 8080 }, from: "--http" }, true);
  deepEqual(both, [
    { address: { host: "127.0.0.1", port: 8080 }, from: "--http", allow: null },
    { address: { host: "0.0.0.0", port: INGRESS_PORT }, from: "--ingress", allow: [INGRESS_PROXY] },
  ]);
  equal(INGRESS_PROXY, "172.30.32.2");
});

// ---------------------------------------------------------------------------------------
// Starting and refusing

Deno.test("a port in use is an error that names the key and says what to do", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (taken.addr as Deno.NetAddr).port;
    const web = await WebServer.start({
      listeners: [{ address: { host: "127.0.0.1", port }, from: "http.listen", allow: null }],
      status: new StatusModel({ version: "1" }),
      log: quietLogger().get("http"),
    });
    assert(web instanceof Error, "the start must fail");
    equal(
      web.message,
      `http.listen: cannot listen on "127.0.0.1:${port}": the port is in use (another ` +
        "program, or a second smartmeter): choose another port",
    );
  } finally {
    taken.close();
  }
});

Deno.test("an address this machine does not have is an error naming the option", async () => {
  const web = await WebServer.start({
    // TEST-NET-1 (RFC 5737): never an address of this machine.
    listeners: [{ address: { host: "192.0.2.1", port: 0 }, from: "--http", allow: null }],
    status: new StatusModel({ version: "1" }),
    log: quietLogger().get("http"),
  });
  assert(web instanceof Error);
  match(
    web.message,
    /^--http: cannot listen on "192\.0\.2\.1:0": this machine has no such address/,
  );
});

Deno.test("when the second listener fails the first is closed again", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const freePort = (free.addr as Deno.NetAddr).port;
  free.close();
  try {
    const web = await WebServer.start({
      listeners: [
        { address: { host: "127.0.0.1", port: freePort }, from: "http.listen", allow: null },
        { address: { host: "127.0.0.1", port }, from: "--ingress", allow: [INGRESS_PROXY] },
      ],
      status: new StatusModel({ version: "1" }),
      log: quietLogger().get("http"),
    });
    assert(web instanceof Error);
    match(web.message, /^--ingress: /);
    // The first port is free again.
    Deno.listen({ hostname: "127.0.0.1", port: freePort }).close();
  } finally {
    taken.close();
  }
});

// ---------------------------------------------------------------------------------------
// /api/v1/reading

Deno.test("/api/v1/reading is 503 with a reason until the first telegram", async (t) => {
  await using s = await serve();
  await t.step("while the source is being opened", async () => {
    const { res, text } = await get(`${s.url}api/v1/reading`);
    equal(res.status, 503);
    equal(res.headers.get("retry-after"), "5");
    match(res.headers.get("content-type")!, /^application\/json/);
    deepEqual(JSON.parse(text), {
      error: "No reading yet",
      reason: "The meter source the meter is being opened",
    });
  });
  await t.step("while it is open and silent", async () => {
    s.status.setSource("/dev/ttyUSB0");
    s.status.sourceListener().connected!(null);
    const body = JSON.parse((await get(`${s.url}api/v1/reading`)).text);
    match(body.reason, /^No telegram from "\/dev\/ttyUSB0" yet \(waiting \d+ s\)$/);
  });
  await t.step("when telegrams fail", async () => {
    for (const r of await decoded(2, { wrongKey: true })) s.status.record(r);
    const body = JSON.parse((await get(`${s.url}api/v1/reading`)).text);
    match(body.reason, /^2 telegram\(s\) failed and none decoded yet; the last at decrypt: /);
  });
  await t.step("when the source is lost", async () => {
    s.status.sourceListener().lost!(new Error("No such file or directory"));
    const body = JSON.parse((await get(`${s.url}api/v1/reading`)).text);
    equal(
      body.reason,
      'The meter source "/dev/ttyUSB0" cannot be read: No such file or directory',
    );
  });
});

Deno.test("/api/v1/reading gives the last reading with units, OBIS registers and today", async () => {
  await using s = await serve();
  const results = await decoded(3);
  for (const r of results) s.status.record(r);
  const { res, text } = await get(`${s.url}api/v1/reading`);
  equal(res.status, 200);
  equal(res.headers.get("cache-control"), "no-store");
  const body = JSON.parse(text);
  const last = results.at(-1)!;
  assert(last.ok);
  deepEqual(Object.keys(body), [
    "time",
    "received",
    "meter_id",
    "system_title",
    "frame_counter",
    "framing",
    "security",
    "layout",
    "values",
    "units",
    "obis",
    "today",
  ]);
  equal(body.meter_id, last.reading.meter_id);
  equal(body.frame_counter, last.reading.frame_counter);
  equal(body.system_title, last.reading.system_title);
  equal(body.framing, "hdlc");
  equal(body.security, "encrypted+authenticated");
  equal(body.layout, "burgenland");
  deepEqual(body.values, last.reading.values);
  deepEqual(body.obis, last.reading.obis);
  equal(body.units.energy_import_wh, "Wh");
  equal(body.units.power_import_w, "W");
  equal(body.units.voltage_l1_v, "V");
  equal(body.units.current_l1_a, "A");
  deepEqual(Object.keys(body.units).sort(), Object.keys(body.values).sort());
  match(body.received, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  // Three telegrams arrived today: "today" counts from the first.
  const first = results[0]!;
  assert(first.ok);
  equal(
    body.today.energy_import_wh,
    last.reading.values.energy_import_wh! - first.reading.values.energy_import_wh!,
  );
  equal(body.today.from_midnight, false);
});

// ---------------------------------------------------------------------------------------
// /api/v1/status

Deno.test("/api/v1/status shows uptime, version, source, MQTT, counters and last errors", async () => {
  let now = Date.UTC(2026, 4, 1, 10, 0, 0);
  const status = new StatusModel({ version: "9.8.7", now: () => now });
  status.setSource("tcp://192.168.1.20:8888");
  status.sourceListener().connected!(null);
  status.mqtt = () => ({
    state: "connected",
    broker: "broker.lan:1883",
    published: 2,
    superseded: 0,
  });
  await using s = await serve({ status });
  const good = await decoded(2);
  const bad = await decoded(1, { wrongKey: true });
  for (const r of [...good, ...bad]) status.record(r);
  now += 42_000;
  const body = JSON.parse((await get(`${s.url}api/v1/status`)).text);
  equal(body.version, "9.8.7");
  equal(body.started, "2026-05-01T10:00:00.000Z");
  equal(body.uptime_s, 42);
  deepEqual(body.source, {
    description: "tcp://192.168.1.20:8888",
    state: "open",
    since: "2026-05-01T10:00:00.000Z",
    error: null,
  });
  deepEqual(body.mqtt, {
    state: "connected",
    broker: "broker.lan:1883",
    published: 2,
    superseded: 0,
  });
  equal(body.telegrams.decoded, 2);
  equal(body.telegrams.failed, 1);
  equal(body.telegrams.failed_by_stage.decrypt, 1);
  equal(body.telegrams.failed_by_stage.framing, 0);
  equal(body.telegrams.last, "2026-05-01T10:00:00.000Z");
  equal(body.telegrams.seconds_since_last, 42);
  deepEqual(body.meter, {
    meter_id: good[1]!.ok ? good[1]!.reading.meter_id : null,
    system_title: "4c475a6772000001",
    layout: "burgenland",
    framing: "hdlc",
    security: "encrypted+authenticated",
  });
  equal(body.last_errors.length, 1);
  equal(body.last_errors[0].stage, "decrypt");
  match(body.last_errors[0].error, /key/i);
  equal(body.last_errors[0].framing, "hdlc");
  equal(body.event_clients, 0);
});

Deno.test("the status keeps only the last few failures, newest first in the JSON", async () => {
  await using s = await serve();
  const bad = await decoded(FAILURES_KEPT + 5, { wrongKey: true });
  for (const r of bad) s.status.record(r);
  equal(s.status.failures.length, FAILURES_KEPT);
  const body = JSON.parse((await get(`${s.url}api/v1/status`)).text);
  equal(body.telegrams.failed, FAILURES_KEPT + 5);
  equal(body.last_errors.length, FAILURES_KEPT);
});

// ---------------------------------------------------------------------------------------
// /api/v1/events

Deno.test("/api/v1/events sends one event per decoded telegram, none for failures", async () => {
  await using s = await serve();
  const res = await fetch(`${s.url}api/v1/events`);
  equal(res.status, 200);
  equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
  equal(res.headers.get("access-control-allow-origin"), null);
  const good = await decoded(3);
  const bad = await decoded(1, { wrongKey: true });
  const reading = readEvents(res, 3);
  s.status.record(good[0]!);
  s.status.record(bad[0]!);
  s.status.record(good[1]!);
  s.status.record(good[2]!);
  const events = await reading;
  equal(events.length, 3);
  deepEqual(events.map((e) => e.id), ["1", "2", "3"]);
  const bodies = events.map((e) => JSON.parse(e.data));
  deepEqual(
    bodies.map((b) => b.frame_counter),
    good.map((r) => r.ok ? r.reading.frame_counter : null),
  );
  // The same fields as /api/v1/reading.
  const now = JSON.parse((await get(`${s.url}api/v1/reading`)).text);
  deepEqual(Object.keys(bodies[2]), Object.keys(now));
  deepEqual(bodies[2].values, now.values);
});

Deno.test("/api/v1/events?history=1 starts with the plot's hour", async () => {
  await using s = await serve();
  const good = await decoded(4);
  for (const r of good.slice(0, 3)) s.status.record(r);
  const res = await fetch(`${s.url}api/v1/events?history=1`);
  const reading = readEvents(res, 1);
  s.status.record(good[3]!);
  const events = await reading;
  equal(events[0]!.event, "history");
  const h = JSON.parse(events[0]!.data);
  equal(h.t.length, 3);
  deepEqual(
    h.power_import_w,
    good.slice(0, 3).map((r) => r.ok ? r.reading.values.power_import_w : null),
  );
  equal(h.power_export_w.length, 3);
  equal(events[1]!.event, "message");
});

// ---------------------------------------------------------------------------------------
// /metrics

interface Family {
  name: string;
  help: string;
  type: string;
  metrics: { value: string; labels?: Record<string, string> }[];
}

Deno.test("/metrics counts a failure of every stage, AMIS's oms included: the stages add up to the failures", async () => {
  await using s = await serve();
  const stages: Layer[] = ["framing", "decrypt", "oms", "oms"];
  for (const stage of stages) {
    s.status.record({ ok: false, stage, error: `a ${stage} failure`, framing: "mbus" });
  }
  const { text } = await get(`${s.url}metrics`);
  const families = parsePrometheusTextFormat(text) as Family[];
  const failed = families.find((f) => f.name === "smartmeter_telegrams_failed_total");
  assert(failed, "smartmeter_telegrams_failed_total is exported");
  const byStage = new Map(failed.metrics.map((m) => [m.labels?.stage, Number(m.value)]));
  equal(byStage.get("oms"), 2);
  equal(byStage.get("decrypt"), 1);
  equal([...byStage.values()].reduce((a, b) => a + b, 0), stages.length);
  equal(s.status.failed, stages.length);
});

Deno.test("/metrics is valid Prometheus text with counters, gauges and build info", async () => {
  await using s = await serve();
  s.status.setSource("/dev/ttyUSB0");
  s.status.sourceListener().connected!(null);
  s.status.mqtt = () => ({
    state: "disconnected",
    broker: "localhost:1883",
    published: 1,
    superseded: 1,
  });
  const good = await decoded(2);
  const bad = await decoded(1, { wrongKey: true });
  for (const r of [...good, ...bad]) s.status.record(r);
  s.status.decoderStats = {
    bytes: 1234,
    frames: 3,
    decoded: 2,
    failed: 1,
    skippedBytes: 0,
    failedByStage: {},
    lastError: null,
    searches: 0,
    replies: 0,
    echoBytes: 0,
  };
  const { res, text } = await get(`${s.url}metrics`);
  equal(res.status, 200);
  equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const families = parsePrometheusTextFormat(text) as Family[];
  const byName = new Map(families.map((f) => [f.name, f]));
  const value = (name: string, labels: Record<string, string> = {}) => {
    const f = byName.get(name);
    assert(f, `${name} is exported`);
    const m = f.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
    assert(m, `${name}${JSON.stringify(labels)} has a sample`);
    return Number(m.value);
  };
  const last = good[1]!;
  assert(last.ok);
  const v = last.reading.values;
  equal(byName.get("smartmeter_energy_import_watt_hours_total")?.type, "COUNTER");
  equal(value("smartmeter_energy_import_watt_hours_total"), v.energy_import_wh);
  equal(value("smartmeter_energy_export_watt_hours_total"), v.energy_export_wh);
  equal(byName.get("smartmeter_power_import_watts")?.type, "GAUGE");
  equal(value("smartmeter_power_import_watts"), v.power_import_w);
  equal(value("smartmeter_power_export_watts"), v.power_export_w);
  equal(value("smartmeter_power_watts"), v.power_w);
  for (const phase of ["l1", "l2", "l3"] as const) {
    equal(value("smartmeter_voltage_volts", { phase }), v[`voltage_${phase}_v`]);
    equal(value("smartmeter_current_amperes", { phase }), v[`current_${phase}_a`]);
  }
  equal(value("smartmeter_telegrams_decoded_total"), 2);
  equal(value("smartmeter_telegrams_failed_total", { stage: "decrypt" }), 1);
  equal(value("smartmeter_telegrams_failed_total", { stage: "framing" }), 0);
  equal(value("smartmeter_bytes_read_total"), 1234);
  equal(value("smartmeter_build_info", { version: "9.8.7" }), 1);
  equal(
    value("smartmeter_meter_info", { layout: "burgenland", security: "encrypted+authenticated" }),
    1,
  );
  const lastTime = value("smartmeter_last_telegram_timestamp_seconds");
  assert(Math.abs(lastTime - Date.now() / 1000) < 60, "a time in seconds since the epoch");
  equal(value("smartmeter_source_up"), 1);
  equal(value("smartmeter_mqtt_connected"), 0);
  equal(value("smartmeter_mqtt_states_published_total"), 1);
  equal(value("smartmeter_mqtt_states_superseded_total"), 1);
  // The conventions: every family has help and a type, counters end in _total, base
  // units in the name, and each family appears once.
  for (const f of families) {
    assert(f.help.length > 0, `${f.name} has help`);
    if (f.type === "COUNTER") match(f.name, /_total$/);
    match(f.name, /^smartmeter_[a-z0-9_]+$/);
  }
  equal(new Set(families.map((f) => f.name)).size, families.length);
  const typeLines = text.split("\n").filter((l) => l.startsWith("# TYPE "));
  equal(typeLines.length, families.length, "one TYPE line per family");
  assert(text.endsWith("\n"));
});

Deno.test("/metrics before the first telegram has only the process and decoder families", async () => {
  await using s = await serve();
  const families = parsePrometheusTextFormat((await get(`${s.url}metrics`)).text) as Family[];
  const names = families.map((f) => f.name);
  assert(names.includes("smartmeter_build_info"));
  assert(names.includes("smartmeter_telegrams_decoded_total"));
  assert(!names.some((n) => n.startsWith("smartmeter_energy")), "no value without a telegram");
  assert(!names.includes("smartmeter_mqtt_connected"), "MQTT off: no MQTT gauge");
});

Deno.test("label values are escaped in the exposition format", async () => {
  await using s = await serve({ status: new StatusModel({ version: 'a"b\\c\nd' }) });
  const text = (await get(`${s.url}metrics`)).text;
  assert(text.includes('smartmeter_build_info{version="a\\"b\\\\c\\nd"} 1'));
  const families = parsePrometheusTextFormat(text) as Family[];
  assert(families.some((f) => f.name === "smartmeter_build_info"));
});

// ---------------------------------------------------------------------------------------
// Errors and safety

Deno.test("the server refuses what it does not serve", async (t) => {
  await using s = await serve();
  await t.step("an unknown path is 404", async () => {
    const { res, text } = await get(`${s.url}config`);
    equal(res.status, 404);
    deepEqual(JSON.parse(text), { error: "Not found: /config" });
  });
  await t.step("a path outside the assets is 404, never a file", async () => {
    for (const path of ["../deno.json", "%2e%2e/deno.json", "assets/app.js", "server.ts"]) {
      const { res } = await get(`${s.url}${path}`);
      equal(res.status, 404, path);
    }
  });
  for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
    await t.step(`${method} is 405 with Allow`, async () => {
      const { res, text } = await get(`${s.url}api/v1/status`, { method });
      equal(res.status, 405);
      equal(res.headers.get("allow"), "GET, HEAD");
      equal(JSON.parse(text).error, `Method ${method} not allowed: this server only reads`);
    });
  }
  await t.step("a request body is 413", async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(s.url).port) });
    const req = "GET /api/v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    await conn.write(new TextEncoder().encode(req));
    const buf = new Uint8Array(4096);
    const n = await conn.read(buf);
    conn.close();
    match(new TextDecoder().decode(buf.subarray(0, n ?? 0)), /^HTTP\/1\.1 413 /);
  });
  await t.step("HEAD answers without a body", async () => {
    const { res, text } = await get(`${s.url}api/v1/status`, { method: "HEAD" });
    equal(res.status, 200);
    equal(text, "");
  });
  await t.step("no CORS headers, even when asked", async () => {
    for (const path of ["", "api/v1/status", "api/v1/reading", "metrics"]) {
      const { res } = await get(`${s.url}${path}`, {
        headers: { origin: "http://evil.example" },
      });
      equal(res.headers.get("access-control-allow-origin"), null, path);
    }
  });
});

Deno.test("no endpoint ever shows a key or a password", async () => {
  const key = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
  const authKey = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
  const password = "s3cr3t-mqtt-p4ss";
  const config = loadConfig(
    `dlms:\n  port: /dev/ttyUSB0\n  key: "${key}"\n  auth_key: "${authKey}"\n` +
      `mqtt:\n  host: broker\n  user: u\n  password: "${password}"\n` +
      `http:\n  listen: 127.0.0.1:0\n`,
    { env: {}, meterTypes: METER_TYPES },
  );
  equal(toHex(config.key!), key);
  const status = new StatusModel({ version: "1" });
  status.setSource(config.source.port);
  status.mqtt = () => ({ state: "connected", broker: `${config.mqtt.host}:${config.mqtt.port}` });
  for (const r of [...await decoded(2), ...await decoded(2, { wrongKey: true })]) {
    status.record(r);
  }
  await using s = await serve({ status });
  const secrets = [key, authKey, password, key.toUpperCase(), authKey.toUpperCase()];
  for (const path of ["", "api/v1/reading", "api/v1/status", "metrics", "app.js"]) {
    const { text } = await get(`${s.url}${path}`);
    for (const secret of secrets) assert(!text.includes(secret), `${path} shows a secret`);
  }
});

// ---------------------------------------------------------------------------------------
// Ingress

Deno.test("an ingress listener answers only the Supervisor's proxy address", async () => {
  await using s = await serve({
    listeners: [
      { address: LOOPBACK, from: "--ingress", allow: [INGRESS_PROXY] },
      { address: LOOPBACK, from: "--ingress", allow: ["127.0.0.1"] },
    ],
  });
  for (const path of ["", "api/v1/status", "api/v1/events", "metrics"]) {
    const refused = await get(`${s.web.urls[0]}${path}`);
    equal(refused.res.status, 403, path);
    match(JSON.parse(refused.text).error, /only Home Assistant's ingress proxy/);
  }
  const allowed = await get(`${s.web.urls[1]}api/v1/status`);
  equal(allowed.res.status, 200);
});

// ---------------------------------------------------------------------------------------
// The page's files

Deno.test("every asset is served with its type, a validator and a 304 when unchanged", async () => {
  await using s = await serve();
  for (const [path, { type }] of Object.entries(ASSETS)) {
    const { res, text } = await get(`${s.url}${path.slice(1)}`);
    equal(res.status, 200, path);
    equal(res.headers.get("content-type"), type, path);
    assert(text.length > 0, path);
    const etag = res.headers.get("etag");
    assert(etag !== null, path);
    const again = await get(`${s.url}${path.slice(1)}`, { headers: { "if-none-match": etag } });
    equal(again.res.status, 304, path);
  }
  const page = await get(s.url);
  match(page.res.headers.get("content-security-policy")!, /default-src 'self'/);
  equal(page.res.headers.get("x-content-type-options"), "nosniff");
});

Deno.test("the page loads nothing from elsewhere and uses only relative URLs", async () => {
  const files = ["index.html", "app.js", "style.css"];
  for (const file of files) {
    const text = await Deno.readTextFile(new URL(file, ASSETS_DIR));
    // src/href/url()/fetch/EventSource targets: none absolute, none starting with "/".
    const targets = [
      ...text.matchAll(/(?:src|href)="([^"]*)"/g),
      ...text.matchAll(/url\(([^)]*)\)/g),
      ...text.matchAll(/(?:fetch|EventSource)\("([^"]*)"/g),
    ].map((m) => m[1]!);
    for (const target of targets) {
      assert(!/^(?:[a-z]+:)?\/\//i.test(target), `${file} loads ${target} from elsewhere`);
      assert(!target.startsWith("/"), `${file}: ${target} is not relative`);
    }
    assert(!/https?:\/\//.test(text.replace(/<!--[\s\S]*?-->/g, "")), `${file} names a URL`);
  }
});

Deno.test("the page's files go out gzip-compressed to browsers that take it", async () => {
  await using s = await serve();
  let plain = 0;
  let sent = 0;
  for (const path of Object.keys(ASSETS)) {
    const url = `${s.url}${path.slice(1)}`;
    const raw = await fetch(url, { headers: { "accept-encoding": "identity" } });
    const body = new Uint8Array(await raw.arrayBuffer());
    equal(raw.headers.get("content-encoding"), null);
    plain += body.length;
    // Read the compressed bytes off the socket, as a browser gets them.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(s.url).port) });
    await conn.write(new TextEncoder().encode(
      `GET ${path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n`,
    ));
    const response = new Uint8Array(await new Response(conn.readable).arrayBuffer());
    const head = new TextDecoder().decode(response.subarray(0, 1024));
    const at = response.findIndex((_, i) =>
      response[i] === 13 && response[i + 1] === 10 && response[i + 2] === 13 &&
      response[i + 3] === 10
    );
    const wire = response.subarray(at + 4);
    if (/content-encoding: gzip/i.test(head)) {
      const unpacked = new Uint8Array(
        await new Response(new Blob([wire]).stream().pipeThrough(new DecompressionStream("gzip")))
          .arrayBuffer(),
      );
      deepEqual(unpacked, body, path);
    }
    sent += wire.length;
  }
  assert(sent < plain * 0.5, `${sent} bytes sent for ${plain}`);
});

Deno.test("the page's files stay small: a few tens of kilobytes in all", async () => {
  let total = 0;
  for (const { file } of Object.values(ASSETS)) {
    total += (await Deno.stat(new URL(file, ASSETS_DIR))).size;
  }
  assert(total < 80 * 1024, `${total} bytes`);
});

Deno.test("the vendored uPlot is byte for byte the npm package pinned in deno.json", async () => {
  const denoJson = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const spec = /^npm:uplot@(\d+\.\d+\.\d+)$/.exec(denoJson.imports.uplot);
  assert(spec, `deno.json pins uplot to one version: ${denoJson.imports.uplot}`);
  const version = spec[1]!;
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", `npm:uplot@${version}`],
    stdout: "piped",
    stderr: "null",
  }).output();
  const packages = JSON.parse(new TextDecoder().decode(info.stdout)).npmPackages;
  const dir = packages[`uplot@${version}`].localPath as string;
  for (
    const [file, vendored] of [["dist/uPlot.iife.min.js", "uPlot.iife.min.js"], [
      "dist/uPlot.min.css",
      "uPlot.min.css",
    ], ["LICENSE", "uPlot.LICENSE"]]
  ) {
    deepEqual(
      await Deno.readFile(new URL(vendored!, ASSETS_DIR)),
      await Deno.readFile(`${dir}/${file}`),
      `${vendored} differs from uplot@${version}/${file}: run deno task vendor:uplot`,
    );
  }
  match(await Deno.readTextFile(new URL("uPlot.iife.min.js", ASSETS_DIR)), /\(v1\.6\.32\)/);
});

// ---------------------------------------------------------------------------------------
// The event streams' bounds

Deno.test("EventHub refuses a new stream when all places are taken by clients that keep up", async () => {
  const hub = new EventHub({ maxClients: 2 });
  try {
    const a = hub.open("")!.getReader();
    const b = hub.open("")!.getReader();
    await a.read();
    await b.read();
    equal(hub.open(""), null);
    equal(hub.size, 2);
    await a.cancel();
    equal(hub.size, 1);
    assert(hub.open("") !== null, "a place freed by a leaving client is taken again");
  } finally {
    hub.close();
  }
});

Deno.test("EventHub drops the slowest stream to make room for a new one", async () => {
  const hub = new EventHub({ maxClients: 2, maxQueuedBytes: 10_000 });
  try {
    const slow = hub.open("")!.getReader(); // never read again
    const fast = hub.open("")!.getReader();
    await fast.read();
    hub.broadcast(sseEvent("x".repeat(100)));
    await fast.read();
    const newcomer = hub.open("");
    assert(newcomer !== null, "the newcomer gets the slow client's place");
    equal(hub.dropped, 1);
    await newcomer.cancel();
    // The slow one was dropped: its stream errors.
    let error: unknown = null;
    try {
      for (;;) if ((await slow.read()).done) break;
    } catch (e) {
      error = e;
    }
    match(String(error), /Event stream dropped: to make room/);
  } finally {
    hub.close();
  }
});

Deno.test("EventHub drops a client that falls too far behind, keeps the others", async () => {
  const hub = new EventHub({ maxQueuedBytes: 1_000 });
  try {
    hub.open(""); // never read
    const reader = hub.open("")!.getReader();
    const event = sseEvent("y".repeat(300));
    let received = 0;
    for (let i = 0; i < 10; i++) {
      hub.broadcast(event);
      const { value } = await reader.read();
      if (value) received++;
    }
    equal(hub.size, 1, "the client that read stays");
    equal(hub.dropped, 1);
    assert(received >= 10);
  } finally {
    hub.close();
  }
});

Deno.test("sseEvent() splits data lines and adds the id and name", () => {
  equal(
    sseEvent("a\nb", { id: 3, event: "history" }),
    "event: history\nid: 3\ndata: a\ndata: b\n\n",
  );
  equal(sseEvent("{}"), "data: {}\n\n");
});

// ---------------------------------------------------------------------------------------
// The plot's ring buffer and "today"

Deno.test("PowerHistory keeps the last hour, bounded by count", () => {
  const h = new PowerHistory(5, 100);
  for (let i = 0; i < 8; i++) h.push(1000 + i * 10, i, i === 3 ? undefined : 0);
  equal(h.size, 5);
  deepEqual(h.columns(1070), [[1030, 1040, 1050, 1060, 1070], [3, 4, 5, 6, 7], [
    null,
    0,
    0,
    0,
    0,
  ]]);
  // Older than the window: left out.
  deepEqual(h.columns(1155)[0], [1060, 1070]);
});

Deno.test("DayEnergy counts from the first reading, then from midnight", () => {
  const d = new DayEnergy();
  equal(d.get(), null);
  const day1 = new Date(2026, 4, 1, 14, 0).getTime();
  d.update(day1, 1_000_000, 50_000);
  d.update(day1 + 3_600_000, 1_000_500, 50_100);
  let t = d.get()!;
  equal(t.date, "2026-05-01");
  equal(t.fromMidnight, false);
  equal(t.sinceMs, day1);
  equal(t.importWh, 500);
  equal(t.exportWh, 100);
  // The last reading before midnight, then one after it.
  const beforeMidnight = new Date(2026, 4, 1, 23, 58).getTime();
  d.update(beforeMidnight, 1_002_000, 50_200);
  const after = new Date(2026, 4, 2, 0, 1).getTime();
  d.update(after, 1_002_010, 50_200);
  t = d.get()!;
  equal(t.date, "2026-05-02");
  equal(t.fromMidnight, true);
  equal(t.sinceMs, localMidnight(after));
  equal(t.importWh, 10);
  equal(t.exportWh, 0);
});

Deno.test("DayEnergy starts again after a silent midnight and after a register went back", () => {
  const d = new DayEnergy();
  d.update(new Date(2026, 4, 1, 20, 0).getTime(), 1_000, 0);
  const morning = new Date(2026, 4, 2, 7, 0).getTime();
  d.update(morning, 2_000, 0);
  let t = d.get()!;
  equal(t.fromMidnight, false, "no reading near midnight");
  equal(t.sinceMs, morning);
  equal(t.importWh, 0);
  d.update(morning + 60_000, 2_100, 0);
  equal(d.get()!.importWh, 100);
  // A new meter with a smaller register: count from it, never negative.
  d.update(morning + 120_000, 5, 0);
  t = d.get()!;
  equal(t.importWh, 0);
  d.update(morning + 180_000, 25, 0);
  equal(d.get()!.importWh, 20);
});

Deno.test("EventHub keeps its keep-alive timer only while a stream is open (an idle server wakes nobody)", async () => {
  const hub = new EventHub({ heartbeatMs: 20 });
  try {
    equal(hub.beating, false, "no stream, no timer");
    const stream = hub.open("")!;
    equal(hub.beating, true);
    const reader = stream.getReader();
    await reader.read(); // the retry line
    const beat = new TextDecoder().decode((await reader.read()).value);
    equal(beat, ": keep-alive\n\n");
    await reader.cancel();
    equal(hub.beating, false, "the last stream gone, the timer stops");
  } finally {
    hub.close();
  }
});

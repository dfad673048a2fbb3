// The page of smartmeter's web server. Plain browser JavaScript, no build step.
//
// It reads api/v1/events?history=1 (Server-Sent Events: the last hour for the plot, then
// one event per telegram) and polls api/v1/status for the diagnostics. Every URL is
// relative, so the page works below Home Assistant's ingress path prefix.
"use strict";

const WINDOW_S = 3600;
const STATUS_EVERY_MS = 5000;
const $ = (id) => document.getElementById(id);
const lang = navigator.language || "en";
const fmt = (digits) =>
  new Intl.NumberFormat(lang, { minimumFractionDigits: digits, maximumFractionDigits: digits });
const f0 = fmt(0);
const f1 = fmt(1);
const f2 = fmt(2);
const f3 = fmt(3);
const timeFmt = new Intl.DateTimeFormat(lang, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});
const clock = new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit" });

let plot = null;
const columns = [[], [], []];
let lastReceivedMs = null;
let lastStatus = null;

function setText(id, text) {
  const el = $(id);
  if (el && el.textContent !== text) el.textContent = text;
}

function watts(w) {
  return w === undefined || w === null ? "–" : `${f0.format(w)} W`;
}

function kwh(wh) {
  return wh === undefined || wh === null ? "–" : `${f3.format(wh / 1000)} kWh`;
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${f1.format(seconds / 3600)} h ago`;
}

function duration(seconds) {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return d > 0
    ? `${d} d ${h} h`
    : h > 0
    ? `${h} h ${m} min`
    : `${m} min ${Math.floor(seconds % 60)} s`;
}

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// ---- the plot ----

function plotOptions(width) {
  const axis = {
    stroke: cssVar("--muted"),
    grid: { stroke: cssVar("--line"), width: 1 },
    ticks: { stroke: cssVar("--line") },
  };
  return {
    width,
    height: 220,
    cursor: { drag: { x: false, y: false } },
    scales: {
      x: { time: true },
      y: { range: (_u, min, max) => [Math.min(0, min), Math.max(100, max * 1.1)] },
    },
    axes: [
      {
        ...axis,
        space: 90,
        // Minutes and seconds while the plot spans minutes, hours and minutes after that.
        values: (_u, ticks) => {
          const f = ticks.length > 1 && ticks[ticks.length - 1] - ticks[0] < 600 ? timeFmt : clock;
          return ticks.map((t) => f.format(new Date(t * 1000)));
        },
      },
      { ...axis, size: 75, values: (_u, ticks) => ticks.map((t) => `${f0.format(t)} W`) },
    ],
    series: [
      {},
      { label: "Import", stroke: cssVar("--import"), width: 2, value: (_u, v) => watts(v) },
      { label: "Export", stroke: cssVar("--export"), width: 2, value: (_u, v) => watts(v) },
    ],
  };
}

function makePlot() {
  const box = $("plot");
  if (plot) plot.destroy();
  box.textContent = "";
  plot = new uPlot(plotOptions(Math.max(200, box.clientWidth)), columns, box);
  box.dataset.points = String(plot.data[0].length);
}

function redraw() {
  if (!plot) return;
  plot.setData(columns);
  $("plot").dataset.points = String(plot.data[0].length);
}

function addPoint(timeS, imp, exp) {
  columns[0].push(timeS);
  columns[1].push(imp ?? null);
  columns[2].push(exp ?? null);
  while (columns[0].length > 0 && columns[0][0] < timeS - WINDOW_S) {
    for (const c of columns) c.shift();
  }
}

// ---- values ----

function showReading(r) {
  const v = r.values;
  lastReceivedMs = Date.parse(r.received);
  setText("power-import", watts(v.power_import_w));
  setText("power-export", watts(v.power_export_w));
  setText("energy-import", kwh(v.energy_import_wh));
  setText("energy-export", kwh(v.energy_export_wh));
  showToday(r.today);
  showPhases(v);
  const id = r.meter_id ?? "";
  setText("meter-id", id);
  setText("m-meter-id", id || "–");
  setText("m-layout", r.layout);
  setText("m-framing", r.framing);
  setText("m-security", r.security);
  setText("m-system-title", r.system_title ?? "–");
  setText("m-frame-counter", r.frame_counter === null ? "–" : String(r.frame_counter));
  setText("m-time", r.time ?? "–");
  $("notice").hidden = true;
}

function showToday(t) {
  setText("today-import", t ? kwh(t.energy_import_wh) : "–");
  setText("today-export", t ? kwh(t.energy_export_wh) : "–");
  setText(
    "today-since",
    !t
      ? ""
      : t.from_midnight
      ? `Since midnight (${t.date}).`
      : `Since ${timeFmt.format(new Date(t.since))}, when the first telegram of the day came.`,
  );
}

const PHASES = ["l1", "l2", "l3"];

function showPhases(v) {
  const present = PHASES.filter((p) =>
    v[`voltage_${p}_v`] !== undefined || v[`current_${p}_a`] !== undefined
  );
  const box = $("phases");
  if (present.length === 0) return;
  if (box.dataset.phases !== present.join(",")) {
    box.dataset.phases = present.join(",");
    box.textContent = "";
    for (const p of present) {
      const row = document.createElement("div");
      row.className = "phase";
      row.id = `phase-${p}`;
      row.innerHTML =
        `<b>${p.toUpperCase()}</b><div class="bar voltage"><span></span><em></em></div><div class="bar current"><span></span><em></em></div>`;
      box.append(row);
    }
  }
  const maxCurrent = Math.max(16, ...present.map((p) => v[`current_${p}_a`] ?? 0));
  for (const p of present) {
    const row = $(`phase-${p}`);
    const u = v[`voltage_${p}_v`];
    const i = v[`current_${p}_a`];
    // Voltage around its nominal 230 V: the bar spans 200 to 260 V.
    bar(
      row.querySelector(".voltage"),
      u === undefined ? null : (u - 200) / 60,
      u === undefined ? "– V" : `${f1.format(u)} V`,
    );
    bar(
      row.querySelector(".current"),
      i === undefined ? null : i / maxCurrent,
      i === undefined ? "– A" : `${f2.format(i)} A`,
    );
  }
}

function bar(el, fraction, text) {
  el.querySelector("span").style.width = `${
    Math.round(100 * Math.min(1, Math.max(0, fraction ?? 0)))
  }%`;
  const em = el.querySelector("em");
  if (em.textContent !== text) em.textContent = text;
}

// ---- diagnostics ----

function showStatus(s) {
  lastStatus = s;
  setText("d-decoded", f0.format(s.telegrams.decoded));
  setText("d-failed", f0.format(s.telegrams.failed));
  $("d-failed").classList.toggle("bad", s.telegrams.failed > 0);
  const src = s.source;
  setText(
    "d-source",
    `${src.description ?? "–"}: ${src.state}${src.error ? ` (${src.error})` : ""}`,
  );
  setText(
    "d-mqtt",
    s.mqtt.state === "off" ? "off" : `${s.mqtt.state}${s.mqtt.broker ? ` (${s.mqtt.broker})` : ""}`,
  );
  $("d-mqtt").classList.toggle("bad", s.mqtt.state === "disconnected");
  setText("d-version", s.version);
  if (s.telegrams.last) lastReceivedMs = Date.parse(s.telegrams.last);
  showFailures(s.last_errors);
  tick();
}

function showFailures(list) {
  $("no-failures").hidden = list.length > 0;
  const table = $("failures");
  table.hidden = list.length === 0;
  const body = table.querySelector("tbody");
  const key = list.map((f) => f.time + f.stage).join();
  if (body.dataset.key === key) return;
  body.dataset.key = key;
  body.textContent = "";
  for (const f of list) {
    const tr = document.createElement("tr");
    for (const text of [timeFmt.format(new Date(f.time)), f.stage, f.error]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    body.append(tr);
  }
}

function tick() {
  const since = lastReceivedMs === null ? null : (Date.now() - lastReceivedMs) / 1000;
  setText("d-last", ago(since));
  if (lastStatus) {
    const up = lastStatus.uptime_s + (Date.now() - lastStatus.fetchedMs) / 1000;
    setText("d-uptime", duration(up));
  }
}

async function pollStatus() {
  try {
    const res = await fetch("api/v1/status", { cache: "no-store" });
    if (res.ok) showStatus({ ...(await res.json()), fetchedMs: Date.now() });
  } catch {
    // the events' badge shows that the server is away
  }
}

async function firstReading() {
  try {
    const res = await fetch("api/v1/reading", { cache: "no-store" });
    const body = await res.json();
    if (res.ok) showReading(body);
    else {
      $("notice").textContent = `${body.error}: ${body.reason}`;
      $("notice").hidden = false;
    }
  } catch {
    // shown by the badge
  }
}

// ---- the event stream ----

function connect() {
  const live = $("live");
  const es = new EventSource("api/v1/events?history=1");
  es.addEventListener("history", (m) => {
    const h = JSON.parse(m.data);
    columns[0] = h.t;
    columns[1] = h.power_import_w;
    columns[2] = h.power_export_w;
    redraw();
  });
  es.onmessage = (m) => {
    const r = JSON.parse(m.data);
    showReading(r);
    addPoint(Date.parse(r.received) / 1000, r.values.power_import_w, r.values.power_export_w);
    redraw();
  };
  es.onopen = () => {
    live.dataset.state = "live";
    live.textContent = "live";
  };
  es.onerror = () => {
    live.dataset.state = "offline";
    live.textContent = "reconnecting";
  };
}

function start() {
  makePlot();
  let width = $("plot").clientWidth;
  new ResizeObserver(() => {
    const w = $("plot").clientWidth;
    if (plot && w !== width && w > 0) {
      width = w;
      plot.setSize({ width: Math.max(200, w), height: 220 });
    }
  }).observe($("plot"));
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", makePlot);
  firstReading();
  connect();
  pollStatus();
  setInterval(() => {
    if (!document.hidden) pollStatus();
  }, STATUS_EVERY_MS);
  setInterval(tick, 1000);
}

start();

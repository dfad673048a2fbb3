/**
 * What the web server says, built as plain values from the {@link StatusModel}: the JSON of
 * `/api/v1/reading`, `/api/v1/status` and the events of `/api/v1/events`, and the
 * Prometheus text of `/metrics`. No I/O here; the field names are a contract (README.md,
 * "Web page, JSON API and metrics").
 *
 * @module
 */

import { NAMED_VALUES, type NamedKey } from "../../cosem/obis.ts";
import type { StatusModel, TelegramEvent } from "../../status.ts";
import { LAYERS } from "../../errors.ts";
import type { TodayEnergy } from "./today.ts";

const UNITS: ReadonlyMap<NamedKey, string | null> = new Map(
  NAMED_VALUES.map((n) => [n.key, n.unit === "" ? null : n.unit]),
);

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** `today` as the JSON shows it. */
export function todayJson(t: TodayEnergy | null): Record<string, unknown> | null {
  if (t === null) return null;
  return {
    date: t.date,
    since: iso(t.sinceMs),
    from_midnight: t.fromMidnight,
    energy_import_wh: t.importWh,
    energy_export_wh: t.exportWh,
  };
}

/** The body of `/api/v1/reading` and of each event of `/api/v1/events`. */
export function readingJson(e: TelegramEvent, today: TodayEnergy | null): Record<string, unknown> {
  const r = e.reading;
  const units: Record<string, string | null> = {};
  for (const key of Object.keys(r.values) as NamedKey[]) units[key] = UNITS.get(key) ?? null;
  return {
    time: r.time,
    received: iso(e.receivedMs),
    meter_id: r.meter_id,
    system_title: r.system_title,
    frame_counter: r.frame_counter,
    framing: e.framing,
    security: e.security,
    layout: e.layout,
    values: r.values,
    units,
    obis: r.obis,
    today: todayJson(today),
  };
}

/** Why there is no reading yet: the body of the 503 of `/api/v1/reading`. */
export function noReadingJson(s: StatusModel): Record<string, unknown> {
  const src = s.source;
  const where = src.description === null ? "the meter" : `"${src.description}"`;
  let reason: string;
  if (src.state === "lost") {
    reason = `The meter source ${where} cannot be read: ${src.error ?? "unknown error"}`;
  } else if (s.failures.length > 0) {
    const f = s.failures[s.failures.length - 1]!;
    reason =
      `${s.failed} telegram(s) failed and none decoded yet; the last at ${f.stage}: ${f.error}`;
  } else if (src.state === "starting") {
    reason = `The meter source ${where} is being opened`;
  } else {
    const seconds = Math.round((s.now() - src.sinceMs) / 1000);
    reason = `No telegram from ${where} yet (waiting ${seconds} s)`;
  }
  return { error: "No reading yet", reason };
}

/** The body of `/api/v1/status`. */
export function statusJson(
  s: StatusModel,
  extra: { today: TodayEnergy | null; eventClients: number },
): Record<string, unknown> {
  const now = s.now();
  const last = s.last;
  const mqtt = s.mqtt();
  const stats = s.decoderStats;
  return {
    version: s.version,
    started: iso(s.startedMs),
    uptime_s: Math.round(s.uptimeSeconds()),
    source: {
      description: s.source.description,
      state: s.source.state,
      since: iso(s.source.sinceMs),
      error: s.source.error,
    },
    mqtt: {
      state: mqtt.state,
      broker: mqtt.broker,
      published: mqtt.published ?? null,
      superseded: mqtt.superseded ?? null,
    },
    telegrams: {
      decoded: s.decoded,
      failed: s.failed,
      failed_by_stage: { ...s.failedByStage },
      last: last === null ? null : iso(last.receivedMs),
      seconds_since_last: last === null ? null : Math.round((now - last.receivedMs) / 1000),
    },
    bytes_read: stats?.bytes ?? 0,
    frames: stats?.frames ?? 0,
    meter: last === null ? null : {
      meter_id: last.reading.meter_id,
      system_title: last.reading.system_title,
      layout: last.layout,
      framing: last.framing,
      security: last.security,
    },
    last_errors: s.failures.map((f) => ({ ...f })).reverse(),
    today: todayJson(extra.today),
    event_clients: extra.eventClients,
  };
}

// ---------------------------------------------------------------------------------------
// Prometheus text exposition format 0.0.4

/** The Content-Type of `/metrics`. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** A named value as a Prometheus metric. */
interface MetricOf {
  readonly name: string;
  readonly type: "counter" | "gauge";
  readonly help: string;
  readonly labels?: Readonly<Record<string, string>>;
}

/** How each named value is exported; angles stay out (they are diagnostic only). */
const VALUE_METRICS: Readonly<Partial<Record<NamedKey, MetricOf>>> = {
  energy_import_wh: {
    name: "smartmeter_energy_import_watt_hours_total",
    type: "counter",
    help: "Active energy imported from the grid (register 1.8.0), watt hours.",
  },
  energy_export_wh: {
    name: "smartmeter_energy_export_watt_hours_total",
    type: "counter",
    help: "Active energy exported to the grid (register 2.8.0), watt hours.",
  },
  reactive_energy_import_varh: {
    name: "smartmeter_reactive_energy_import_var_hours_total",
    type: "counter",
    help: "Reactive energy imported (register 3.8.0), var hours.",
  },
  reactive_energy_export_varh: {
    name: "smartmeter_reactive_energy_export_var_hours_total",
    type: "counter",
    help: "Reactive energy exported (register 4.8.0), var hours.",
  },
  power_import_w: {
    name: "smartmeter_power_import_watts",
    type: "gauge",
    help: "Active power imported from the grid (1.7.0), watts.",
  },
  power_export_w: {
    name: "smartmeter_power_export_watts",
    type: "gauge",
    help: "Active power exported to the grid (2.7.0), watts.",
  },
  power_w: {
    name: "smartmeter_power_watts",
    type: "gauge",
    help: "Net active power, import minus export, watts.",
  },
  reactive_power_import_var: {
    name: "smartmeter_reactive_power_import_vars",
    type: "gauge",
    help: "Reactive power imported (3.7.0), var.",
  },
  reactive_power_export_var: {
    name: "smartmeter_reactive_power_export_vars",
    type: "gauge",
    help: "Reactive power exported (4.7.0), var.",
  },
  voltage_l1_v: volts("l1"),
  voltage_l2_v: volts("l2"),
  voltage_l3_v: volts("l3"),
  current_l1_a: amperes("l1"),
  current_l2_a: amperes("l2"),
  current_l3_a: amperes("l3"),
  power_factor: {
    name: "smartmeter_power_factor",
    type: "gauge",
    help: "Power factor (13.7.0), 0 to 1.",
  },
  frequency_hz: {
    name: "smartmeter_frequency_hertz",
    type: "gauge",
    help: "Grid frequency (14.7.0), hertz.",
  },
};

function volts(phase: string): MetricOf {
  return {
    name: "smartmeter_voltage_volts",
    type: "gauge",
    help: "Voltage of each phase (32.7.0, 52.7.0, 72.7.0), volts.",
    labels: { phase },
  };
}

function amperes(phase: string): MetricOf {
  return {
    name: "smartmeter_current_amperes",
    type: "gauge",
    help: "Current of each phase (31.7.0, 51.7.0, 71.7.0), amperes.",
    labels: { phase },
  };
}

/** A label value escaped for the text format. */
function labelValue(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function sampleValue(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

/** Collects samples by family so that each family is written once, in one block. */
class Exposition {
  readonly #families = new Map<string, { help: string; type: string; lines: string[] }>();

  add(
    name: string,
    type: "counter" | "gauge",
    help: string,
    value: number,
    labels: Readonly<Record<string, string>> = {},
  ): void {
    let f = this.#families.get(name);
    if (f === undefined) {
      f = { help, type, lines: [] };
      this.#families.set(name, f);
    }
    const pairs = Object.entries(labels).map(([k, v]) => `${k}="${labelValue(v)}"`);
    f.lines.push(`${name}${pairs.length ? `{${pairs.join(",")}}` : ""} ${sampleValue(value)}`);
  }

  text(): string {
    let out = "";
    for (const [name, f] of this.#families) {
      out += `# HELP ${name} ${f.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}\n`;
      out += `# TYPE ${name} ${f.type}\n`;
      out += f.lines.join("\n") + "\n";
    }
    return out;
  }
}

/** The body of `/metrics`. */
export function metricsText(s: StatusModel, extra: { eventClients: number }): string {
  const m = new Exposition();
  m.add("smartmeter_build_info", "gauge", "Version of smartmeter; always 1.", 1, {
    version: s.version,
  });
  m.add(
    "smartmeter_start_time_seconds",
    "gauge",
    "When smartmeter started, seconds since the epoch.",
    s.startedMs / 1000,
  );
  const last = s.last;
  if (last !== null) {
    const r = last.reading;
    m.add(
      "smartmeter_meter_info",
      "gauge",
      "The meter and how its telegrams arrive; always 1.",
      1,
      {
        meter_id: r.meter_id ?? "",
        system_title: r.system_title ?? "",
        layout: last.layout,
        framing: last.framing,
        security: last.security,
      },
    );
    for (const [key, value] of Object.entries(r.values) as [NamedKey, number][]) {
      const metric = VALUE_METRICS[key];
      if (metric === undefined || !Number.isFinite(value)) continue;
      m.add(metric.name, metric.type, metric.help, value, metric.labels);
    }
    m.add(
      "smartmeter_last_telegram_timestamp_seconds",
      "gauge",
      "When the last telegram was decoded, seconds since the epoch.",
      last.receivedMs / 1000,
    );
  }
  m.add(
    "smartmeter_telegrams_decoded_total",
    "counter",
    "Telegrams decoded.",
    s.decoded,
  );
  for (const stage of LAYERS) {
    m.add(
      "smartmeter_telegrams_failed_total",
      "counter",
      "Telegrams (or stretches of input) that failed, by the stage that refused them.",
      s.failedByStage[stage] ?? 0,
      { stage },
    );
  }
  m.add(
    "smartmeter_bytes_read_total",
    "counter",
    "Bytes read from the meter source.",
    s.decoderStats?.bytes ?? 0,
  );
  m.add(
    "smartmeter_frames_total",
    "counter",
    "Frames found in the input (before decryption and decoding).",
    s.decoderStats?.frames ?? 0,
  );
  m.add(
    "smartmeter_source_up",
    "gauge",
    "1 while the meter source is open, else 0.",
    s.source.state === "open" ? 1 : 0,
  );
  const mqtt = s.mqtt();
  if (mqtt.state !== "off") {
    m.add(
      "smartmeter_mqtt_connected",
      "gauge",
      "1 while the MQTT broker has the connection, else 0.",
      mqtt.state === "connected" ? 1 : 0,
    );
    if (mqtt.published !== undefined && mqtt.superseded !== undefined) {
      m.add(
        "smartmeter_mqtt_states_published_total",
        "counter",
        "States published to MQTT.",
        mqtt.published,
      );
      m.add(
        "smartmeter_mqtt_states_superseded_total",
        "counter",
        "States a newer one replaced before they went out (publish interval, slow or absent broker).",
        mqtt.superseded,
      );
    }
  }
  m.add(
    "smartmeter_http_event_clients",
    "gauge",
    "Open Server-Sent Events streams.",
    extra.eventClients,
  );
  return m.text();
}

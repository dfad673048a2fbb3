/**
 * Home Assistant MQTT discovery: topics and the device-based discovery payload.
 *
 * Topics (`base` = `<prefix>/<device_id>` with every leading `/` stripped, as the
 * Python add-on does):
 *
 * | topic | payload | retained |
 * |---|---|---|
 * | `<discovery_prefix>/device/<device_id>/config` | {@link buildDiscovery} | yes, QoS 1 |
 * | `<base>/availability` | `online` / `offline` (last will) | yes, QoS 1 |
 * | `<base>/meter` | `online` while telegrams arrive, `offline` when the meter is silent | yes, QoS 1 |
 * | `<base>/instance` | a random id of the program holding the device (see `sinks/takeover.ts`) | yes, QoS 1 |
 * | `<base>/state` | state JSON (`state.ts`) | no, QoS 0 |
 * | `<base>/diagnostics` | `{"decoded","failed","last_error","last_telegram"}` | no, QoS 0 |
 *
 * Meter silence: the entities fed by the meter list both availability topics with
 * `availability_mode: all`, so they turn unavailable when the program stops or dies
 * (`<base>/availability`) and when the meter falls silent (`<base>/meter`). We do not
 * use `expire_after`, and state is never retained. Diagnostic entities follow only
 * `<base>/availability`: they stay visible while the meter is silent, which is when
 * they are needed.
 *
 * The payload uses full key names (no abbreviations), `default_entity_id` (never the
 * retired `object_id`), and the add-on's component keys (= `unique_id`s), listed in
 * `entities.ts`. Every component carries its own `state_topic` and `availability`, so
 * nothing depends on Home Assistant's inheritance of shared options.
 *
 * @module
 */

import type { NamedKey } from "../cosem/obis.ts";
import { ENTITIES, type EntitySpec } from "./entities.ts";
import { SHORT_KEYS } from "./state.ts";

/** What Home Assistant is told about the device. */
export interface DeviceInfo {
  /** `mqtt.device_id`: device identifier, discovery object id, prefix of every unique_id. */
  deviceId: string;
  /** `mqtt.name`: the device name shown in Home Assistant. */
  name: string;
  /** `mqtt.prefix`. */
  prefix: string;
  /** `mqtt.discovery_prefix` (`homeassistant`). */
  discoveryPrefix: string;
  manufacturer: string | null;
  model: string | null;
  /** The meter id, once a telegram carried one. */
  serialNumber: string | null;
  /** Our version. */
  swVersion: string;
  /** Project page for the discovery `origin` block; left out when not given. */
  supportUrl?: string;
}

/** Name of this program in the discovery `origin` block. */
export const ORIGIN_NAME = "smartmeter";

/** Topic on which Home Assistant announces itself (`online`) after it (re)starts. */
export const HA_STATUS_TOPIC = "homeassistant/status";

/** `<prefix>/<deviceId>` with all leading `/` removed (`/home/` + `m` → `home//m`). */
export function baseTopic(prefix: string, deviceId: string): string {
  return `${prefix}/${deviceId}`.replace(/^\/+/, "");
}

/** Every topic of one device. */
export interface Topics {
  readonly discovery: string;
  readonly state: string;
  readonly availability: string;
  readonly meter: string;
  /** Which running program holds the device (a random id per process, retained). */
  readonly instance: string;
  readonly diagnostics: string;
}

/** The topics of device `d` (see the module documentation). */
export function topicsFor(d: DeviceInfo): Topics {
  const base = baseTopic(d.prefix, d.deviceId);
  return {
    discovery: `${d.discoveryPrefix}/device/${d.deviceId}/config`,
    state: `${base}/state`,
    availability: `${base}/availability`,
    meter: `${base}/meter`,
    instance: `${base}/instance`,
    diagnostics: `${base}/diagnostics`,
  };
}

/**
 * The entity-id form of a name, close to Home Assistant's own slugify: accents removed,
 * lower case, runs of other characters replaced by one `_` (`Stromzähler Keller` →
 * `stromzahler_keller`).
 */
export function slugify(text: string): string {
  return text
    .replace(/ß/g, "ss")
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "");
}

/** Jinja test for "this key is in the JSON": numeric sensors ignore an empty result. */
function numberTemplate(field: string): string {
  return `{{ value_json.${field} if value_json.${field} is defined else '' }}`;
}

/** The add-on's short keys as compact JSON (HA's `to_json` is compact), under 255 characters. */
function rawTemplate(): string {
  const keys = SHORT_KEYS.map(([short]) => `'${short}'`).join(", ");
  return `{{ dict(value_json.items() | selectattr('0', 'in', [${keys}]) | list) | to_json }}`;
}

/** Value template of one entity; `None` renders Home Assistant's "unknown". */
export function valueTemplate(e: EntitySpec): string {
  const f = e.field ?? "";
  switch (e.template) {
    case "number":
      return numberTemplate(f);
    case "text":
      return `{{ value_json.${f}[:255] if value_json.${f} else 'None' }}`;
    case "timestamp":
      return `{{ value_json.${f} if value_json.${f} else 'None' }}`;
    case "raw":
      return rawTemplate();
  }
}

/** The component of one entity. */
function component(e: EntitySpec, d: DeviceInfo, t: Topics): Record<string, unknown> {
  const fromMeter = e.source === "state";
  const c: Record<string, unknown> = {
    platform: "sensor",
    unique_id: `${d.deviceId}${e.suffix}`,
    default_entity_id: `sensor.${slugify(d.name) || slugify(d.deviceId)}_${e.key}`,
    name: e.name,
    state_topic: fromMeter ? t.state : t.diagnostics,
    value_template: valueTemplate(e),
    availability: fromMeter
      ? [{ topic: t.availability }, { topic: t.meter }]
      : [{ topic: t.availability }],
    availability_mode: "all",
  };
  if (e.deviceClass !== null) c.device_class = e.deviceClass;
  if (e.stateClass !== null) c.state_class = e.stateClass;
  if (e.unit !== null) c.unit_of_measurement = e.unit;
  if (e.precision !== null) c.suggested_display_precision = e.precision;
  if (!e.enabledByDefault) c.enabled_by_default = false;
  if (e.diagnostic) c.entity_category = "diagnostic";
  return c;
}

/** The `device` block: identifiers `[device_id]`, as the add-on, plus what we know. */
function deviceBlock(d: DeviceInfo): Record<string, unknown> {
  const dev: Record<string, unknown> = { identifiers: [d.deviceId], name: d.name };
  if (d.manufacturer !== null) dev.manufacturer = d.manufacturer;
  if (d.model !== null) dev.model = d.model;
  if (d.serialNumber !== null) dev.serial_number = d.serialNumber;
  dev.sw_version = d.swVersion;
  return dev;
}

/**
 * The retained device-based discovery message.
 *
 * `present` is the set of named values the meter sends (null: assume all). An entity
 * that needs a named value the meter does not send is left out (no L2/L3 on a
 * single-phase meter); the raw and diagnostic entities are always there. Leaving a
 * component out later does not remove it in Home Assistant, so callers should only let
 * `present` grow.
 */
export function buildDiscovery(
  d: DeviceInfo,
  present: ReadonlySet<NamedKey> | null,
): { topic: string; payload: Record<string, unknown> } {
  const t = topicsFor(d);
  const components: Record<string, unknown> = {};
  for (const e of ENTITIES) {
    if (e.requires !== null && present !== null && !present.has(e.requires)) continue;
    components[`${d.deviceId}${e.suffix}`] = component(e, d, t);
  }
  const origin: Record<string, unknown> = { name: ORIGIN_NAME, sw_version: d.swVersion };
  if (d.supportUrl !== undefined) origin.support_url = d.supportUrl;
  return {
    topic: t.discovery,
    payload: { device: deviceBlock(d), origin, components },
  };
}

/**
 * Manufacturers by the DLMS FLAG id, the first three letters of the system title.
 * Only ids checked against the FLAG manufacturer list (the one M-Bus uses too) or seen
 * in real captures are listed.
 */
const FLAG_MANUFACTURERS: Readonly<Record<string, string>> = {
  ADN: "Aidon",
  APT: "Apator",
  DZG: "DZG Metering",
  EBZ: "eBZ",
  ELS: "Elster",
  EMH: "EMH metering",
  ESY: "EasyMeter",
  HLY: "Holley",
  HXE: "Hexing",
  ISK: "Iskraemeco",
  ITE: "Itron",
  KAM: "Kamstrup",
  KFM: "Kaifa",
  LGZ: "Landis+Gyr",
  SAG: "Sagemcom",
};

/** The manufacturer named by a system title (`LGZ…` → `Landis+Gyr`), or null. */
export function manufacturerFromSystemTitle(st: Uint8Array | null): string | null {
  if (st === null || st.length < 3) return null;
  const flag = String.fromCharCode(st[0]!, st[1]!, st[2]!).toUpperCase();
  return FLAG_MANUFACTURERS[flag] ?? null;
}

/**
 * The Home Assistant entity table: every entity we discover, as data.
 *
 * One row per entity says where its value comes from (a key of the state JSON on
 * `<base>/state`, or of the diagnostics JSON on `<base>/diagnostics`), which named value
 * must be present for it to be discovered, and its Home Assistant metadata. The payload
 * builders in `discovery.ts` only read this table.
 *
 * The first rows keep the Python add-on's entities alive: their `unique_id` is
 * `<device_id>` + the add-on's suffix (`research/seed-compat.md` §4.5, §4.6), with the
 * same unit, device class and state class, so existing entities, their entity ids and
 * their Energy-dashboard statistics carry on. Only their names change, to HA's sentence
 * case without the device name. Two deliberate differences from the add-on:
 *
 * - power factor has no unit at all (the add-on sent `""`, which Home Assistant does not
 *   accept together with device class `power_factor`);
 * - "Raw data" is disabled by default and diagnostic for new installs (it only repeats
 *   the other values; existing installs keep their registry setting).
 *
 * @module
 */

import type { NamedKey } from "../cosem/obis.ts";

/** Which topic an entity reads. */
export type EntitySource = "state" | "diagnostics";

/**
 * How the value template renders the field:
 * - `number`: the number, or `''` when the key is missing (numeric sensors ignore `''`
 *   and keep their state);
 * - `text`: the text cut to Home Assistant's 255-character state limit, or `None`
 *   (state unknown) when empty;
 * - `timestamp`: an ISO 8601 time, or `None` when there is none yet;
 * - `raw`: the add-on's short keys only, as compact JSON (the "Raw data" entity).
 */
export type TemplateKind = "number" | "text" | "timestamp" | "raw";

/** Home Assistant sensor state classes we use. */
export type StateClass = "measurement" | "total_increasing";

/** One discovered entity. */
export interface EntitySpec {
  /** Our own short name of the entity; the suffix of `default_entity_id`. */
  readonly key: string;
  /** `unique_id` and component key are `<device_id>` + this suffix (add-on compatible). */
  readonly suffix: string;
  /** Entity name, sentence case, without the device name. */
  readonly name: string;
  readonly source: EntitySource;
  /** JSON key the template reads; null for the raw entity. */
  readonly field: string | null;
  readonly template: TemplateKind;
  /** The named value the meter must send for this entity to be discovered. */
  readonly requires: NamedKey | null;
  readonly deviceClass: string | null;
  readonly stateClass: StateClass | null;
  readonly unit: string | null;
  readonly precision: number | null;
  readonly enabledByDefault: boolean;
  readonly diagnostic: boolean;
}

type Row = Omit<EntitySpec, "source" | "template" | "diagnostic"> & Partial<EntitySpec>;

function meter(row: Row): EntitySpec {
  return { source: "state", template: "number", diagnostic: false, ...row };
}

function diagnostic(row: Row): EntitySpec {
  return { source: "diagnostics", template: "number", diagnostic: true, ...row };
}

function phases<T>(make: (n: 1 | 2 | 3) => T): T[] {
  return [make(1), make(2), make(3)];
}

/** Every entity, in the order they are listed in the discovery payload. */
export const ENTITIES: readonly EntitySpec[] = [
  meter({
    key: "raw_data",
    suffix: "",
    name: "Raw data",
    field: null,
    template: "raw",
    requires: null,
    deviceClass: null,
    stateClass: null,
    unit: null,
    precision: null,
    enabledByDefault: false,
    diagnostic: true,
  }),
  meter({
    key: "energy_import",
    suffix: "_total_energy_consumed",
    name: "Energy import",
    field: "energy_import_wh",
    requires: "energy_import_wh",
    deviceClass: "energy",
    stateClass: "total_increasing",
    unit: "Wh",
    precision: 0,
    enabledByDefault: true,
  }),
  meter({
    key: "energy_export",
    suffix: "_total_energy_provided",
    name: "Energy export",
    field: "energy_export_wh",
    requires: "energy_export_wh",
    deviceClass: "energy",
    stateClass: "total_increasing",
    unit: "Wh",
    precision: 0,
    enabledByDefault: true,
  }),
  meter({
    key: "power_import",
    suffix: "_power_consumed",
    name: "Power import",
    field: "power_import_w",
    requires: "power_import_w",
    deviceClass: "power",
    stateClass: "measurement",
    unit: "W",
    precision: 0,
    enabledByDefault: true,
  }),
  meter({
    key: "power_export",
    suffix: "_power_provided",
    name: "Power export",
    field: "power_export_w",
    requires: "power_export_w",
    deviceClass: "power",
    stateClass: "measurement",
    unit: "W",
    precision: 0,
    enabledByDefault: true,
  }),
  meter({
    key: "net_power",
    suffix: "_net_power",
    name: "Net power",
    field: "power_w",
    requires: "power_w",
    deviceClass: "power",
    stateClass: "measurement",
    unit: "W",
    precision: 0,
    enabledByDefault: true,
  }),
  ...phases((n) =>
    meter({
      key: `voltage_l${n}`,
      suffix: `_voltage_l${n}`,
      name: `Voltage L${n}`,
      field: `voltage_l${n}_v`,
      requires: `voltage_l${n}_v`,
      deviceClass: "voltage",
      stateClass: "measurement",
      unit: "V",
      precision: 1,
      enabledByDefault: true,
    })
  ),
  ...phases((n) =>
    meter({
      key: `current_l${n}`,
      suffix: `_current_l${n}`,
      name: `Current L${n}`,
      field: `current_l${n}_a`,
      requires: `current_l${n}_a`,
      deviceClass: "current",
      stateClass: "measurement",
      unit: "A",
      precision: 2,
      enabledByDefault: true,
    })
  ),
  meter({
    key: "power_factor",
    suffix: "_power_factor",
    name: "Power factor",
    field: "power_factor",
    requires: "power_factor",
    deviceClass: "power_factor",
    stateClass: "measurement",
    unit: null,
    precision: 3,
    enabledByDefault: true,
  }),
  meter({
    key: "frequency",
    suffix: "_frequency",
    name: "Frequency",
    field: "frequency_hz",
    requires: "frequency_hz",
    deviceClass: "frequency",
    stateClass: "measurement",
    unit: "Hz",
    precision: 2,
    enabledByDefault: true,
  }),
  ...(["import", "export"] as const).map((dir) =>
    meter({
      key: `reactive_energy_${dir}`,
      suffix: `_reactive_energy_${dir}`,
      name: `Reactive energy ${dir}`,
      field: `reactive_energy_${dir}_varh`,
      requires: `reactive_energy_${dir}_varh`,
      deviceClass: "reactive_energy",
      stateClass: "total_increasing",
      unit: "varh",
      precision: 0,
      enabledByDefault: false,
    })
  ),
  ...(["import", "export"] as const).map((dir) =>
    meter({
      key: `reactive_power_${dir}`,
      suffix: `_reactive_power_${dir}`,
      name: `Reactive power ${dir}`,
      field: `reactive_power_${dir}_var`,
      requires: `reactive_power_${dir}_var`,
      deviceClass: "reactive_power",
      stateClass: "measurement",
      unit: "var",
      precision: 0,
      enabledByDefault: false,
    })
  ),
  ...phases((n) =>
    meter({
      key: `phase_angle_l${n}`,
      suffix: `_angle_l${n}`,
      name: `Phase angle L${n}`,
      field: `angle_l${n}_deg`,
      requires: `angle_l${n}_deg`,
      deviceClass: null,
      stateClass: "measurement",
      unit: "°",
      precision: 0,
      enabledByDefault: false,
    })
  ),
  diagnostic({
    key: "telegrams_decoded",
    suffix: "_telegrams_decoded",
    name: "Telegrams decoded",
    field: "decoded",
    requires: null,
    deviceClass: null,
    stateClass: "total_increasing",
    unit: null,
    precision: 0,
    enabledByDefault: true,
  }),
  diagnostic({
    key: "telegrams_failed",
    suffix: "_telegrams_failed",
    name: "Telegrams failed",
    field: "failed",
    requires: null,
    deviceClass: null,
    stateClass: "total_increasing",
    unit: null,
    precision: 0,
    enabledByDefault: true,
  }),
  diagnostic({
    key: "last_error",
    suffix: "_last_error",
    name: "Last error",
    field: "last_error",
    template: "text",
    requires: null,
    deviceClass: null,
    stateClass: null,
    unit: null,
    precision: null,
    enabledByDefault: true,
  }),
  diagnostic({
    key: "last_telegram",
    suffix: "_last_telegram",
    name: "Last telegram",
    field: "last_telegram",
    template: "timestamp",
    requires: null,
    deviceClass: "timestamp",
    stateClass: null,
    unit: null,
    precision: null,
    enabledByDefault: true,
  }),
  diagnostic({
    key: "states_superseded",
    suffix: "_states_superseded",
    name: "States superseded",
    field: "superseded",
    requires: null,
    deviceClass: null,
    stateClass: "total_increasing",
    unit: null,
    precision: 0,
    enabledByDefault: false,
  }),
];

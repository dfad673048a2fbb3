import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { NAMED_VALUES, type NamedKey } from "../lib/cosem/obis.ts";
import { ENTITIES } from "../lib/homeassistant/entities.ts";
import {
  baseTopic,
  buildDiscovery,
  type DeviceInfo,
  manufacturerFromSystemTitle,
  slugify,
  topicsFor,
} from "../lib/homeassistant/discovery.ts";
import { SHORT_KEYS } from "../lib/homeassistant/state.ts";

const DEVICE: DeviceInfo = {
  deviceId: "smartmeter",
  name: "Smart Meter",
  prefix: "",
  discoveryPrefix: "homeassistant",
  manufacturer: "Landis+Gyr",
  model: null,
  serialNumber: "1LGZ0012345678",
  swVersion: "1.2.3",
  supportUrl: "https://example.org/smartmeter",
};

type Component = Record<string, unknown>;

function components(payload: Record<string, unknown>): Record<string, Component> {
  return payload.components as Record<string, Component>;
}

const RAW_TEMPLATE = "{{ dict(value_json.items() | selectattr('0', 'in', ['u1', 'u2', 'u3', " +
  "'i1', 'i2', 'i3', 'w_con', 'w_prov', 'total_con', 'total_prov', 'angle1', 'angle2', " +
  "'angle3', 'power_factor']) | list) | to_json }}";

const METER_AVAILABILITY = [{ topic: "smartmeter/availability" }, { topic: "smartmeter/meter" }];
const DAEMON_AVAILABILITY = [{ topic: "smartmeter/availability" }];

Deno.test("baseTopic() strips every leading slash as the add-on does", async (t) => {
  const cases: [string, string, string][] = [
    ["", "smartmeter", "smartmeter"],
    ["home", "meter1", "home/meter1"],
    ["/home/", "meter1", "home//meter1"],
    ["//a", "b", "a/b"],
    ["", "", ""],
  ];
  for (const [prefix, id, expected] of cases) {
    await t.step(`"${prefix}" + "${id}" -> "${expected}"`, () => {
      equal(baseTopic(prefix, id), expected);
    });
  }
});

Deno.test("topicsFor() puts discovery under the discovery prefix and the rest under the base", () => {
  deepStrictEqual(topicsFor({ ...DEVICE, prefix: "/energy", discoveryPrefix: "ha" }), {
    discovery: "ha/device/smartmeter/config",
    state: "energy/smartmeter/state",
    availability: "energy/smartmeter/availability",
    meter: "energy/smartmeter/meter",
    instance: "energy/smartmeter/instance",
    diagnostics: "energy/smartmeter/diagnostics",
  });
});

Deno.test("slugify() makes entity-id words the way Home Assistant does", () => {
  equal(slugify("Smart Meter"), "smart_meter");
  equal(slugify("Stromzähler  Keller!"), "stromzahler_keller");
  equal(slugify("Großer Zähler"), "grosser_zahler");
  equal(slugify("--"), "");
});

Deno.test("buildDiscovery() builds the device message for a meter that sends energy import only", () => {
  const { topic, payload } = buildDiscovery(DEVICE, new Set<NamedKey>(["energy_import_wh"]));
  equal(topic, "homeassistant/device/smartmeter/config");
  deepStrictEqual(payload, {
    device: {
      identifiers: ["smartmeter"],
      name: "Smart Meter",
      manufacturer: "Landis+Gyr",
      serial_number: "1LGZ0012345678",
      sw_version: "1.2.3",
    },
    origin: {
      name: "smartmeter",
      sw_version: "1.2.3",
      support_url: "https://example.org/smartmeter",
    },
    components: {
      smartmeter: {
        platform: "sensor",
        unique_id: "smartmeter",
        default_entity_id: "sensor.smart_meter_raw_data",
        name: "Raw data",
        state_topic: "smartmeter/state",
        value_template: RAW_TEMPLATE,
        availability: METER_AVAILABILITY,
        availability_mode: "all",
        enabled_by_default: false,
        entity_category: "diagnostic",
      },
      smartmeter_total_energy_consumed: {
        platform: "sensor",
        unique_id: "smartmeter_total_energy_consumed",
        default_entity_id: "sensor.smart_meter_energy_import",
        name: "Energy import",
        state_topic: "smartmeter/state",
        value_template:
          "{{ value_json.energy_import_wh if value_json.energy_import_wh is defined else '' }}",
        availability: METER_AVAILABILITY,
        availability_mode: "all",
        device_class: "energy",
        state_class: "total_increasing",
        unit_of_measurement: "Wh",
        suggested_display_precision: 0,
      },
      smartmeter_telegrams_decoded: {
        platform: "sensor",
        unique_id: "smartmeter_telegrams_decoded",
        default_entity_id: "sensor.smart_meter_telegrams_decoded",
        name: "Telegrams decoded",
        state_topic: "smartmeter/diagnostics",
        value_template: "{{ value_json.decoded if value_json.decoded is defined else '' }}",
        availability: DAEMON_AVAILABILITY,
        availability_mode: "all",
        state_class: "total_increasing",
        suggested_display_precision: 0,
        entity_category: "diagnostic",
      },
      smartmeter_telegrams_failed: {
        platform: "sensor",
        unique_id: "smartmeter_telegrams_failed",
        default_entity_id: "sensor.smart_meter_telegrams_failed",
        name: "Telegrams failed",
        state_topic: "smartmeter/diagnostics",
        value_template: "{{ value_json.failed if value_json.failed is defined else '' }}",
        availability: DAEMON_AVAILABILITY,
        availability_mode: "all",
        state_class: "total_increasing",
        suggested_display_precision: 0,
        entity_category: "diagnostic",
      },
      smartmeter_last_error: {
        platform: "sensor",
        unique_id: "smartmeter_last_error",
        default_entity_id: "sensor.smart_meter_last_error",
        name: "Last error",
        state_topic: "smartmeter/diagnostics",
        value_template: "{{ value_json.last_error[:255] if value_json.last_error else 'None' }}",
        availability: DAEMON_AVAILABILITY,
        availability_mode: "all",
        entity_category: "diagnostic",
      },
      smartmeter_last_telegram: {
        platform: "sensor",
        unique_id: "smartmeter_last_telegram",
        default_entity_id: "sensor.smart_meter_last_telegram",
        name: "Last telegram",
        state_topic: "smartmeter/diagnostics",
        value_template: "{{ value_json.last_telegram if value_json.last_telegram else 'None' }}",
        availability: DAEMON_AVAILABILITY,
        availability_mode: "all",
        device_class: "timestamp",
        entity_category: "diagnostic",
      },
      smartmeter_states_superseded: {
        platform: "sensor",
        unique_id: "smartmeter_states_superseded",
        default_entity_id: "sensor.smart_meter_states_superseded",
        name: "States superseded",
        state_topic: "smartmeter/diagnostics",
        value_template: "{{ value_json.superseded if value_json.superseded is defined else '' }}",
        availability: DAEMON_AVAILABILITY,
        availability_mode: "all",
        state_class: "total_increasing",
        suggested_display_precision: 0,
        enabled_by_default: false,
        entity_category: "diagnostic",
      },
    },
  });
});

Deno.test("buildDiscovery() describes the new entities with their classes and defaults", () => {
  const c = components(buildDiscovery(DEVICE, null).payload);
  const pick = (key: string) => {
    const x = c[key]!;
    return {
      name: x.name,
      default_entity_id: x.default_entity_id,
      device_class: x.device_class,
      state_class: x.state_class,
      unit_of_measurement: x.unit_of_measurement,
      suggested_display_precision: x.suggested_display_precision,
      enabled_by_default: x.enabled_by_default,
    };
  };
  deepStrictEqual(pick("smartmeter_net_power"), {
    name: "Net power",
    default_entity_id: "sensor.smart_meter_net_power",
    device_class: "power",
    state_class: "measurement",
    unit_of_measurement: "W",
    suggested_display_precision: 0,
    enabled_by_default: undefined,
  });
  deepStrictEqual(pick("smartmeter_frequency"), {
    name: "Frequency",
    default_entity_id: "sensor.smart_meter_frequency",
    device_class: "frequency",
    state_class: "measurement",
    unit_of_measurement: "Hz",
    suggested_display_precision: 2,
    enabled_by_default: undefined,
  });
  deepStrictEqual(pick("smartmeter_reactive_energy_export"), {
    name: "Reactive energy export",
    default_entity_id: "sensor.smart_meter_reactive_energy_export",
    device_class: "reactive_energy",
    state_class: "total_increasing",
    unit_of_measurement: "varh",
    suggested_display_precision: 0,
    enabled_by_default: false,
  });
  deepStrictEqual(pick("smartmeter_reactive_power_import"), {
    name: "Reactive power import",
    default_entity_id: "sensor.smart_meter_reactive_power_import",
    device_class: "reactive_power",
    state_class: "measurement",
    unit_of_measurement: "var",
    suggested_display_precision: 0,
    enabled_by_default: false,
  });
  deepStrictEqual(pick("smartmeter_power_factor"), {
    name: "Power factor",
    default_entity_id: "sensor.smart_meter_power_factor",
    device_class: "power_factor",
    state_class: "measurement",
    unit_of_measurement: undefined,
    suggested_display_precision: 3,
    enabled_by_default: undefined,
  });
  deepStrictEqual(pick("smartmeter_angle_l2"), {
    name: "Phase angle L2",
    default_entity_id: "sensor.smart_meter_phase_angle_l2",
    device_class: undefined,
    state_class: "measurement",
    unit_of_measurement: "°",
    suggested_display_precision: 0,
    enabled_by_default: false,
  });
  equal(
    c.smartmeter_net_power!.value_template,
    "{{ value_json.power_w if value_json.power_w is defined else '' }}",
  );
});

Deno.test("buildDiscovery() discovers every named value and nothing twice", () => {
  const c = components(buildDiscovery(DEVICE, null).payload);
  const uniqueIds = Object.values(c).map((x) => x.unique_id);
  equal(new Set(uniqueIds).size, uniqueIds.length);
  equal(new Set(ENTITIES.map((e) => e.key)).size, ENTITIES.length);
  for (const [key, component] of Object.entries(c)) equal(component.unique_id, key);
  const discovered = new Set(ENTITIES.map((e) => e.requires));
  for (const { key } of NAMED_VALUES) ok(discovered.has(key), `no entity for ${key}`);
  for (const x of Object.values(c)) {
    ok(!("object_id" in x), "object_id is retired");
    match(String(x.default_entity_id), /^sensor\.smart_meter_[a-z0-9_]+$/);
    match(String(x.name), /^[A-Z][a-z]/);
    ok(!String(x.name).startsWith("Smart Meter"), "names leave out the device name");
  }
});

Deno.test("buildDiscovery() leaves out L2 and L3 for a single-phase meter", () => {
  const present = new Set<NamedKey>([
    "energy_import_wh",
    "power_import_w",
    "power_export_w",
    "power_w",
    "voltage_l1_v",
    "current_l1_a",
  ]);
  deepStrictEqual(Object.keys(components(buildDiscovery(DEVICE, present).payload)), [
    "smartmeter",
    "smartmeter_total_energy_consumed",
    "smartmeter_power_consumed",
    "smartmeter_power_provided",
    "smartmeter_net_power",
    "smartmeter_voltage_l1",
    "smartmeter_current_l1",
    "smartmeter_telegrams_decoded",
    "smartmeter_telegrams_failed",
    "smartmeter_last_error",
    "smartmeter_last_telegram",
    "smartmeter_states_superseded",
  ]);
});

Deno.test("buildDiscovery() leaves out what is not known about the device", () => {
  const { payload } = buildDiscovery(
    {
      deviceId: "meter-2",
      name: "Zähler",
      prefix: "x",
      discoveryPrefix: "homeassistant",
      manufacturer: null,
      model: null,
      serialNumber: null,
      swVersion: "0.1.0",
    },
    new Set(),
  );
  deepStrictEqual(payload.device, {
    identifiers: ["meter-2"],
    name: "Zähler",
    sw_version: "0.1.0",
  });
  deepStrictEqual(payload.origin, { name: "smartmeter", sw_version: "0.1.0" });
  const raw = components(payload)["meter-2"]!;
  equal(raw.default_entity_id, "sensor.zahler_raw_data");
  equal(raw.state_topic, "x/meter-2/state");
  deepStrictEqual(raw.availability, [
    { topic: "x/meter-2/availability" },
    { topic: "x/meter-2/meter" },
  ]);
});

Deno.test("buildDiscovery() keeps every entity of the Python add-on (Appendix A)", async (t) => {
  const short = new Map<string, string>(SHORT_KEYS);
  for (const [profile, text] of [["burgenland", SEED_BURGENLAND], ["noe_evn", SEED_NOE_EVN]]) {
    await t.step(profile!, () => {
      const seed = JSON.parse(text!) as { components: Record<string, Component> };
      const ours = components(buildDiscovery({ ...DEVICE, name: "Smart Meter" }, null).payload);
      ok(Object.keys(seed.components).length >= 12);
      for (const [key, old] of Object.entries(seed.components)) {
        const now = ours[key];
        ok(now !== undefined, `component ${key} is missing`);
        equal(now.unique_id, old.unique_id);
        equal(now.platform, "sensor");
        equal(now.state_topic, old.state_topic);
        equal(now.device_class, old.device_class, `${key} device_class`);
        equal(now.state_class, old.state_class, `${key} state_class`);
        if (key === "smartmeter_power_factor") {
          // Deliberate: the add-on's "" is not a valid unit for power_factor; HA wants none.
          equal(old.unit_of_measurement, "");
          equal(now.unit_of_measurement, undefined);
        } else {
          equal(now.unit_of_measurement, old.unit_of_measurement, `${key} unit`);
        }
        if (old.enabled_by_default === false) equal(now.enabled_by_default, false);
        // Same value: the add-on's short key, or the named value it mirrors.
        const field = /value_json\.(\w+)/.exec(String(old.value_template ?? ""))?.[1];
        if (field !== undefined) {
          const named = short.get(field);
          ok(named !== undefined, `unknown short key ${field}`);
          ok(String(now.value_template).includes(`value_json.${named}`), `${key} template`);
        }
        const availability = old.availability_topic;
        if (availability !== undefined) {
          ok((now.availability as { topic: string }[]).some((a) => a.topic === availability));
        }
      }
      equal(
        JSON.stringify((buildDiscovery(DEVICE, null).payload.device as Component).identifiers),
        JSON.stringify((seed as unknown as { device: Component }).device.identifiers),
      );
    });
  }
});

Deno.test("manufacturerFromSystemTitle() reads the FLAG id of the system title", async (t) => {
  const cases: [string, string | null][] = [
    ["4c475a6772a9a111", "Landis+Gyr"],
    ["4b464d102002aca5", "Kaifa"],
    ["534147677001bd54", "Sagemcom"],
    ["49534b0000000001", "Iskraemeco"],
    ["4b414d4501349083", "Kamstrup"],
    ["41444e0000000001", "Aidon"],
    ["5858580000000000", null],
    ["4c47", null],
  ];
  for (const [hex, expected] of cases) {
    await t.step(`${hex} -> ${expected}`, () => {
      const bytes = Uint8Array.from(hex.match(/../g)!.map((h) => parseInt(h, 16)));
      equal(manufacturerFromSystemTitle(bytes), expected);
    });
  }
  equal(manufacturerFromSystemTitle(null), null);
});
// The Python add-on's device-discovery payloads, byte for byte as it published them
// (research/seed-compat.md, Appendix A: device_id "smartmeter", name "Smart Meter").

/** meter_type burgenland (Landis+Gyr E450), 6019 bytes. */
const SEED_BURGENLAND = String
  .raw`{"device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Landis+Gyr", "mdl": "E450", "sw": "0.7.2", "sn": ""}, "o": {"name": "smartmeter_homeassistant_burgenland", "sw": "0.7.2", "url": "https://github.com/r00tat/smartmeter_homeassistant_burgenland"}, "components": {"smartmeter": {"name": "Smart Meter Raw Data", "state_topic": "smartmeter/state", "availability_topic": "smartmeter/availability", "unique_id": "smartmeter", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Landis+Gyr", "mdl": "E450", "sw": "0.7.2", "sn": ""}}, "smartmeter_total_energy_consumed": {"name": "Smart Meter Total Energy consumed", "unique_id": "smartmeter_total_energy_consumed", "value_template": "{{ value_json.total_con }}", "unit_of_measurement": "Wh", "device_class": "energy", "state_class": "total_increasing", "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Landis+Gyr", "mdl": "E450", "sw": "0.7.2", "sn": ""}}, "smartmeter_total_energy_provided": {"name": "Smart Meter Total Energy provided", "unique_id": "smartmeter_total_energy_provided", "value_template": "{{ value_json.total_prov }}", "unit_of_measurement": "Wh", "device_class": "energy", "state_class": "total_increasing", "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Landis+Gyr", "mdl": "E450", "sw": "0.7.2", "sn": ""}}, "smartmeter_power_consumed": {"name": "Smart Meter Power consumed", "unique_id": "smartmeter_power_consumed", "value_template": "{{ value_json.w_con }}", "unit_of_measurement": "W", "device_class": "power", "state_class": "measurement", "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Landis+Gyr", "mdl": "E450", "sw": "0.7.2", "sn": ""}}, "smartmeter_power_provided": {"name": "Smart Meter Power provided", "unique_id": "smartmeter_power_provided", "value_template": "{{ value_json.w_prov }}", "unit_of_measurement": "W", "device_class": "power", "state_class": "measurement", "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Landis+Gyr", "mdl": "E450", "sw": "0.7.2", "sn": ""}}, "smartmeter_voltage_l1": {"name": "Smart Meter Voltage L1", "unique_id": "smartmeter_voltage_l1", "value_template": "{{ value_json.u1 }}", "unit_of_measurement": "V", "device_class": "voltage", "state_class": "measurement", "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Landis+Gyr", "mdl": "E450", "sw": "0.7.2", "sn": ""}}, "smartmeter_voltage_l2": {"name": "Smart Meter Voltage L2", "unique_id": "smartmeter_voltage_l2", "value_template": "{{ value_json.u2 }}", "unit_of_measurement": "V", "device_class": "voltage", "state_class": "measurement", "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Landis+Gyr", "mdl": "E450", "sw": "0.7.2", "sn": ""}}, "smartmeter_voltage_l3": {"name": "Smart Meter Voltage L3", "unique_id": "smartmeter_voltage_l3", "value_template": "{{ value_json.u3 }}", "unit_of_measurement": "V", "device_class": "voltage", "state_class": "measurement", "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Landis+Gyr", "mdl": "E450", "sw": "0.7.2", "sn": ""}}, "smartmeter_current_l1": {"name": "Smart Meter Current L1", "unique_id": "smartmeter_current_l1", "value_template": "{{ value_json.i1 }}", "unit_of_measurement": "A", "device_class": "current", "state_class": "measurement", "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Landis+Gyr", "mdl": "E450", "sw": "0.7.2", "sn": ""}}, "smartmeter_current_l2": {"name": "Smart Meter Current L2", "unique_id": "smartmeter_current_l2", "value_template": "{{ value_json.i2 }}", "unit_of_measurement": "A", "device_class": "current", "state_class": "measurement", "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Landis+Gyr", "mdl": "E450", "sw": "0.7.2", "sn": ""}}, "smartmeter_current_l3": {"name": "Smart Meter Current L3", "unique_id": "smartmeter_current_l3", "value_template": "{{ value_json.i3 }}", "unit_of_measurement": "A", "device_class": "current", "state_class": "measurement", "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Landis+Gyr", "mdl": "E450", "sw": "0.7.2", "sn": ""}}, "smartmeter_angle_l1": {"name": "Smart Meter Angle between voltage L1 to current L1", "unique_id": "smartmeter_angle_l1", "value_template": "{{ value_json.angle1 }}", "unit_of_measurement": "\u00b0", "state_class": "measurement", "enabled_by_default": false, "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Landis+Gyr", "mdl": "E450", "sw": "0.7.2", "sn": ""}}, "smartmeter_angle_l2": {"name": "Smart Meter Angle between voltage L2 to current L3", "unique_id": "smartmeter_angle_l2", "value_template": "{{ value_json.angle2 }}", "unit_of_measurement": "\u00b0", "state_class": "measurement", "enabled_by_default": false, "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Landis+Gyr", "mdl": "E450", "sw": "0.7.2", "sn": ""}}, "smartmeter_angle_l3": {"name": "Smart Meter Angle between voltage L3 to current L3", "unique_id": "smartmeter_angle_l3", "value_template": "{{ value_json.angle3 }}", "unit_of_measurement": "\u00b0", "state_class": "measurement", "enabled_by_default": false, "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Landis+Gyr", "mdl": "E450", "sw": "0.7.2", "sn": ""}}}}`;

/** meter_type noe_evn (Sagemcom T210-D), 5132 bytes. */
const SEED_NOE_EVN = String
  .raw`{"device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Sagemcom", "mdl": "T210-D", "sw": "0.7.2", "sn": ""}, "o": {"name": "smartmeter_homeassistant_burgenland", "sw": "0.7.2", "url": "https://github.com/r00tat/smartmeter_homeassistant_burgenland"}, "components": {"smartmeter": {"name": "Smart Meter Raw Data", "state_topic": "smartmeter/state", "availability_topic": "smartmeter/availability", "unique_id": "smartmeter", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Sagemcom", "mdl": "T210-D", "sw": "0.7.2", "sn": ""}}, "smartmeter_total_energy_consumed": {"name": "Smart Meter Total Energy consumed", "unique_id": "smartmeter_total_energy_consumed", "value_template": "{{ value_json.total_con }}", "unit_of_measurement": "Wh", "device_class": "energy", "state_class": "total_increasing", "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Sagemcom", "mdl": "T210-D", "sw": "0.7.2", "sn": ""}}, "smartmeter_total_energy_provided": {"name": "Smart Meter Total Energy provided", "unique_id": "smartmeter_total_energy_provided", "value_template": "{{ value_json.total_prov }}", "unit_of_measurement": "Wh", "device_class": "energy", "state_class": "total_increasing", "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Sagemcom", "mdl": "T210-D", "sw": "0.7.2", "sn": ""}}, "smartmeter_power_consumed": {"name": "Smart Meter Power consumed", "unique_id": "smartmeter_power_consumed", "value_template": "{{ value_json.w_con }}", "unit_of_measurement": "W", "device_class": "power", "state_class": "measurement", "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Sagemcom", "mdl": "T210-D", "sw": "0.7.2", "sn": ""}}, "smartmeter_power_provided": {"name": "Smart Meter Power provided", "unique_id": "smartmeter_power_provided", "value_template": "{{ value_json.w_prov }}", "unit_of_measurement": "W", "device_class": "power", "state_class": "measurement", "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Sagemcom", "mdl": "T210-D", "sw": "0.7.2", "sn": ""}}, "smartmeter_voltage_l1": {"name": "Smart Meter Voltage L1", "unique_id": "smartmeter_voltage_l1", "value_template": "{{ value_json.u1 }}", "unit_of_measurement": "V", "device_class": "voltage", "state_class": "measurement", "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Sagemcom", "mdl": "T210-D", "sw": "0.7.2", "sn": ""}}, "smartmeter_voltage_l2": {"name": "Smart Meter Voltage L2", "unique_id": "smartmeter_voltage_l2", "value_template": "{{ value_json.u2 }}", "unit_of_measurement": "V", "device_class": "voltage", "state_class": "measurement", "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Sagemcom", "mdl": "T210-D", "sw": "0.7.2", "sn": ""}}, "smartmeter_voltage_l3": {"name": "Smart Meter Voltage L3", "unique_id": "smartmeter_voltage_l3", "value_template": "{{ value_json.u3 }}", "unit_of_measurement": "V", "device_class": "voltage", "state_class": "measurement", "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Sagemcom", "mdl": "T210-D", "sw": "0.7.2", "sn": ""}}, "smartmeter_current_l1": {"name": "Smart Meter Current L1", "unique_id": "smartmeter_current_l1", "value_template": "{{ value_json.i1 }}", "unit_of_measurement": "A", "device_class": "current", "state_class": "measurement", "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Sagemcom", "mdl": "T210-D", "sw": "0.7.2", "sn": ""}}, "smartmeter_current_l2": {"name": "Smart Meter Current L2", "unique_id": "smartmeter_current_l2", "value_template": "{{ value_json.i2 }}", "unit_of_measurement": "A", "device_class": "current", "state_class": "measurement", "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Sagemcom", "mdl": "T210-D", "sw": "0.7.2", "sn": ""}}, "smartmeter_current_l3": {"name": "Smart Meter Current L3", "unique_id": "smartmeter_current_l3", "value_template": "{{ value_json.i3 }}", "unit_of_measurement": "A", "device_class": "current", "state_class": "measurement", "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Sagemcom", "mdl": "T210-D", "sw": "0.7.2", "sn": ""}}, "smartmeter_power_factor": {"name": "Smart Meter Power Factor", "unique_id": "smartmeter_power_factor", "value_template": "{{ value_json.power_factor }}", "unit_of_measurement": "", "device_class": "power_factor", "state_class": "measurement", "state_topic": "smartmeter/state", "p": "sensor", "device": {"identifiers": ["smartmeter"], "name": "Smart Meter", "mf": "Sagemcom", "mdl": "T210-D", "sw": "0.7.2", "sn": ""}}}}`;

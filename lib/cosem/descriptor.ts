/**
 * COSEM attribute descriptors: which attribute of which object a pushed value is. They come
 * as push object list entries (Swiss VSE, Landis+Gyr, Iskraemeco) and, untagged, before each
 * value of a Sagemcom XT211 push (EG.D):
 *
 * ```
 *   push object list entry   structure { long-unsigned class id, octet-string[6] OBIS,
 *                                        integer attribute, long-unsigned data index }
 *   XT211 descriptor         structure { long-unsigned class id, octet-string[6] OBIS,
 *                                        integer attribute }
 *                            or its 9 raw bytes: | class id 2 | OBIS 6 | attribute 1 |
 *                                                  00 03 | 01 00 01 08 00 FF | 02
 * ```
 *
 * Attribute 2 of a data (1), register (3), extended register (4), demand register (5) or
 * clock (8) is a value; attribute 3 of a register is its `{scaler, unit}`. The push setup
 * (class 40) names itself first in its list; its value is not a reading.
 *
 * @module
 */

import type { AxdrValue } from "../dlms/axdr.ts";
import type { Collected } from "./collected.ts";
import { formatObis } from "./obis.ts";
import { asScalerUnit, isObis } from "./values.ts";

/** Which attribute of which object. */
export interface Descriptor {
  readonly classId: number;
  readonly obis: string;
  readonly attribute: number;
}

/** COSEM interface classes whose attribute 2 is a value worth publishing. */
const VALUE_CLASSES = new Set([1, 3, 4, 5, 8]);
const CLASS_REGISTER = 3;
const CLASS_EXTENDED_REGISTER = 4;
export const CLASS_PUSH_SETUP = 40;
const ATTRIBUTE_VALUE = 2;
const ATTRIBUTE_SCALER_UNIT = 3;

/** `structure { long-unsigned class, octet-string[6] OBIS, integer attribute, long-unsigned index }` */
export function pushListEntry(v: AxdrValue): (Descriptor & { dataIndex: number }) | null {
  if (v.type !== "structure" || v.items.length !== 4) return null;
  const [cls, obis, attr, index] = v.items as [AxdrValue, AxdrValue, AxdrValue, AxdrValue];
  if (cls.type !== "long-unsigned" || !isObis(obis)) return null;
  if (attr.type !== "integer" && attr.type !== "unsigned") return null;
  if (index.type !== "long-unsigned") return null;
  return {
    classId: cls.value,
    obis: formatObis(obis.bytes),
    attribute: attr.value,
    dataIndex: index.value,
  };
}

const DESCRIPTOR_BYTES = 9;
const DESCRIPTOR_OBIS_AT = 2;
const DESCRIPTOR_ATTRIBUTE_AT = 8;
/** COSEM class ids are below 256; a text of 9 bytes never starts with a 00 byte. */
const DESCRIPTOR_CLASS_HIGH_BYTE = 0;

/** A Sagemcom XT211 attribute descriptor, as a structure or as its 9 raw bytes. */
export function attributeDescriptor(v: AxdrValue): Descriptor | null {
  if (v.type === "structure" && v.items.length === 3) {
    const [cls, obis, attr] = v.items as [AxdrValue, AxdrValue, AxdrValue];
    if (cls.type !== "long-unsigned" || !isObis(obis)) return null;
    if (attr.type !== "integer" && attr.type !== "unsigned") return null;
    return { classId: cls.value, obis: formatObis(obis.bytes), attribute: attr.value };
  }
  if (
    v.type === "octet-string" && v.bytes.length === DESCRIPTOR_BYTES &&
    v.bytes[0] === DESCRIPTOR_CLASS_HIGH_BYTE
  ) {
    const b = v.bytes;
    return {
      classId: (b[0]! << 8) | b[1]!,
      obis: formatObis(b.subarray(DESCRIPTOR_OBIS_AT, DESCRIPTOR_OBIS_AT + 6)),
      attribute: b[DESCRIPTOR_ATTRIBUTE_AT]!,
    };
  }
  return null;
}

/** Adds the value of a described attribute (push list entry or XT211 descriptor). */
export function addDescribed(c: Collected, d: Descriptor, value: AxdrValue, dataIndex = 0): void {
  if (dataIndex !== 0 || d.classId === CLASS_PUSH_SETUP) return;
  if (d.attribute === ATTRIBUTE_VALUE && VALUE_CLASSES.has(d.classId)) {
    c.entries.push({ obis: d.obis, value, scalerUnit: null });
  } else if (
    d.attribute === ATTRIBUTE_SCALER_UNIT &&
    (d.classId === CLASS_REGISTER || d.classId === CLASS_EXTENDED_REGISTER)
  ) {
    const su = asScalerUnit(value);
    if (su) c.scalerUnits.set(d.obis, su);
  }
}

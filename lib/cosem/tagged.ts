/**
 * OBIS-tagged bodies: each value comes with its OBIS code.
 *
 * ```
 *   a flat list     [date-time] OBIS value [{scaler, unit}] OBIS value ... [id]
 *   objects         { {OBIS, value[, {scaler, unit}]}, ... }
 *   both, with a leading list version string (Kamstrup, Aidon), a bare clock OBIS followed
 *   by its date-time (Vorarlberg), a push header value first (XT211 sends an enum), or
 *   {attribute descriptor, value} objects (Sagemcom XT211, EG.D: descriptor.ts)
 * ```
 *
 * The XT211's descriptor objects carry no `{scaler, unit}`: a body read through them is
 * marked with the shape `xt211-descriptors`, which picks its scaler table.
 *
 * @module
 */

import type { AxdrValue } from "../dlms/axdr.ts";
import { type Collected, type Found, newCollected } from "./collected.ts";
import { addDescribed, attributeDescriptor } from "./descriptor.ts";
import { formatObis } from "./obis.ts";
import { article, asScalerUnit, dateTimeOf, isContainer, isObis, textOf } from "./values.ts";

/** The shape name of Sagemcom XT211 pushes, matched by the `sagemcom-xt211` scaler table. */
export const XT211_SHAPE = "xt211-descriptors";

const WHAT = "obis-tagged";

/**
 * One object: `{OBIS, value}`, `{OBIS, value, {scaler, unit}}` or `{descriptor, value}`.
 * Adds it and returns true, or returns false when `v` is not an object.
 */
function addObject(c: Collected, v: AxdrValue): boolean {
  if (v.type !== "structure") return false;
  const [first, value, su] = v.items;
  if (first === undefined || value === undefined) return false;
  if (isObis(first) && (v.items.length === 2 || v.items.length === 3)) {
    const scalerUnit = su === undefined ? null : asScalerUnit(su);
    if (su !== undefined && scalerUnit === null) return false;
    c.entries.push({ obis: formatObis(first.bytes), value, scalerUnit });
    return true;
  }
  const d = v.items.length === 2 ? attributeDescriptor(first) : null;
  if (d === null) return false;
  c.shape = XT211_SHAPE;
  addDescribed(c, d, value);
  return true;
}

const isObjectList = (v: AxdrValue): boolean =>
  isContainer(v) && v.items.length > 0 &&
  v.items.every((x) => x.type === "structure" && addObject(newCollected(""), x));

/** Reads an OBIS-tagged body. */
export function readTagged(body: AxdrValue): Found {
  if (!isContainer(body)) return `${WHAT} needs a structure or an array`;
  let items = body.items;
  // A wrapper of one element around the real list.
  if (items.length === 1 && isContainer(items[0]!) && !isObjectList(body)) {
    items = (items[0] as { items: readonly AxdrValue[] }).items;
  }
  const c = newCollected(WHAT);
  let i = 0;
  while (i < items.length) {
    const item = items[i]!;
    const last = i === items.length - 1;
    if (isObis(item) && !last) {
      const value = items[i + 1]!;
      const su = items[i + 2] === undefined ? null : asScalerUnit(items[i + 2]!);
      c.entries.push({ obis: formatObis(item.bytes), value, scalerUnit: su });
      i += su ? 3 : 2;
    } else if (addObject(c, item)) {
      i++;
    } else if (isObjectList(item)) {
      for (const object of (item as { items: readonly AxdrValue[] }).items) addObject(c, object);
      i++;
    } else if (i === 0 && dateTimeOf(item)) {
      c.positionalTime = dateTimeOf(item);
      i++;
    } else if (i === 0 && (item.type === "enum" || item.type === "unsigned")) {
      i++; // a push header value before the list (XT211 sends an enum)
    } else if (i === 0 && !last && textOf(item) !== null) {
      c.listId = textOf(item);
      i++;
    } else if (last && i > 0 && textOf(item) !== null) {
      c.trailingId = textOf(item);
      i++;
    } else {
      return `${WHAT}: element ${i} is ${article(item)}, not an OBIS code or an object`;
    }
  }
  if (c.entries.length === 0) return `${WHAT}: no OBIS code found`;
  return c;
}

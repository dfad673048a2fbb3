/**
 * Positional bodies: values without OBIS codes, read by one row of `layouts.ts` per operator
 * or list. A body matches a layout when it is a structure of exactly the layout's size and
 * every element has the type its position asks for; the layout then gives each number its
 * OBIS code, scaler and unit (the layout is the scale rule, named after it).
 *
 * ```
 *   structure(count) { position 0, position 1, ... }   e.g. Netz Burgenland E450 (14):
 *                                                       U1 U2 U3 I1 I2 I3 +P −P +A −A ∠1 ∠2 ∠3 id
 * ```
 *
 * @module
 */

import type { AxdrValue } from "../dlms/axdr.ts";
import { type DlmsDateTime, parseDate, parseTime } from "../dlms/datetime.ts";
import { type Found, newCollected } from "./collected.ts";
import { POSITIONAL_LAYOUTS, type PositionalField, type PositionalLayout } from "./layouts.ts";
import { formatObis } from "./obis.ts";
import { article, dateTimeOf, isInteger, isObis, textOf } from "./values.ts";

const CLOCK = "0-0:1.0.0";
const NO_UNIT = 255;

/** Tries the layouts of `meterType` (every layout when null) in table order. */
export function readPositional(
  body: AxdrValue,
  meterType: string | null,
  pinned: boolean,
  manufacturer: string | null,
): Found {
  const layouts = POSITIONAL_LAYOUTS.filter((l) => meterType === null || l.meterType === meterType);
  const reasons: string[] = [];
  for (const layout of layouts) {
    const found = readLayout(body, layout, pinned, manufacturer);
    if (typeof found !== "string") return found;
    reasons.push(found);
  }
  return reasons.join("; ");
}

function readLayout(
  body: AxdrValue,
  layout: PositionalLayout,
  pinned: boolean,
  manufacturer: string | null,
): Found {
  const { count, manufacturers } = layout.match;
  if (body.type !== "structure" || body.items.length !== count) {
    return `${layout.name} needs a structure(${count})`;
  }
  if (
    !pinned && manufacturers && manufacturer !== null && !manufacturers.includes(manufacturer)
  ) {
    return `${layout.name} is not recognised from a ${manufacturer} system title (only ${
      manufacturers.join("/")
    } or none)`;
  }
  const c = newCollected(layout.name);
  c.model = layout.model ?? null;
  let time: DlmsDateTime | null = null;
  let date: DlmsDateTime | null = null;
  for (let i = 0; i < count; i++) {
    const field = layout.fields[i]!;
    const item = body.items[i]!;
    const problem = fieldProblem(field, item);
    if (problem !== null) {
      return `${layout.name}: element ${i} (${field.label}) is ${
        article(item)
      }, expected ${problem}`;
    }
    switch (field.kind) {
      case "number":
        c.entries.push({
          obis: field.obis!,
          value: item,
          scalerUnit: { scaler: field.scaler ?? 0, unit: field.unit ?? NO_UNIT },
          layoutRule: layout.name,
        });
        break;
      case "date-time":
        c.positionalTime = dateTimeOf(item);
        if (field.obis) {
          c.entries.push({
            obis: field.obis,
            value: { type: "date-time", value: c.positionalTime! },
            scalerUnit: null,
          });
        }
        break;
      case "time":
        time = item.type === "time"
          ? item.value
          : item.type === "octet-string"
          ? parseTime(item.bytes)
          : null;
        break;
      case "date":
        date = item.type === "date"
          ? item.value
          : item.type === "octet-string"
          ? parseDate(item.bytes)
          : null;
        break;
      case "push-setup":
        break;
      case "meter-id":
        c.positionalMeterId = textOf(item);
        if (field.obis) c.entries.push({ obis: field.obis, value: item, scalerUnit: null });
        break;
      case "list-id":
        c.listId = textOf(item);
        if (field.obis) c.entries.push({ obis: field.obis, value: item, scalerUnit: null });
        break;
      case "text":
      case "info":
        if (field.obis && item.type !== "null") {
          c.entries.push({ obis: field.obis, value: item, scalerUnit: null });
        }
        break;
    }
  }
  if (time && date) {
    c.positionalTime = {
      ...time,
      year: date.year,
      month: date.month,
      day: date.day,
      dayOfWeek: date.dayOfWeek,
    };
    c.entries.push({
      obis: CLOCK,
      value: { type: "date-time", value: c.positionalTime },
      scalerUnit: null,
    });
  }
  return c;
}

const PATTERNS = new Map<string, RegExp>();
/** A layout table's pattern as a RegExp, compiled once. */
function compiled(pattern: string): RegExp {
  let re = PATTERNS.get(pattern);
  if (!re) PATTERNS.set(pattern, re = new RegExp(pattern));
  return re;
}

/** Null when `item` fits `field`, else what was expected. */
function fieldProblem(field: PositionalField, item: AxdrValue): string | null {
  switch (field.kind) {
    case "number":
      if (field.types) {
        return field.types.includes(item.type) ? null : `a ${field.types.join(" or a ")}`;
      }
      return isInteger(item) ? null : "an integer";
    case "text":
    case "meter-id":
      return textOf(item) !== null ? null : "a string";
    case "list-id": {
      const text = textOf(item);
      const pattern = field.pattern ?? "";
      return text !== null && compiled(pattern).test(text)
        ? null
        : `a list version matching /${pattern}/`;
    }
    case "date-time":
      return dateTimeOf(item) ? null : "a date-time";
    case "time":
      return item.type === "time" || (item.type === "octet-string" && item.bytes.length === 4)
        ? null
        : "a time (octet string of 4)";
    case "date":
      return item.type === "date" || (item.type === "octet-string" && item.bytes.length === 5)
        ? null
        : "a date (octet string of 5)";
    case "push-setup":
      return isObis(item) && formatObis(item.bytes) === field.obis
        ? null
        : `the OBIS code ${field.obis}`;
    case "info":
      return item.type === "null" || isInteger(item) || textOf(item) !== null
        ? null
        : "a string, a number or null";
  }
}

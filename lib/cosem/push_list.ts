/**
 * Push-object-list bodies: the meter sends the list of what it pushes (the push setup's
 * attribute 2) with the values, so the body describes itself. Two shapes are in use:
 *
 * ```
 *   list as element 0     structure { array of N entries, value 1, ..., value N-1 }
 *                         (the list names the push setup itself first: its "value" is the
 *                         list; a list that leaves itself out has N values after it)
 *
 *   list and values       structure { array of N entries, structure { value 1, ... } }
 *   as two parts          (the values' structure holds N values, or N-1 when the list's
 *                         first entry is the push setup itself)
 *
 *   entry                 structure { class id, OBIS, attribute, data index }  (descriptor.ts)
 * ```
 *
 * Most such meters (Landis+Gyr, Iskraemeco) send no `{scaler, unit}` attributes: their
 * scale comes from the manufacturer's scaler table, the same in both shapes.
 *
 * @module
 */

import type { AxdrValue } from "../dlms/axdr.ts";
import { type Collected, type Found, newCollected } from "./collected.ts";
import { addDescribed, CLASS_PUSH_SETUP, type Descriptor, pushListEntry } from "./descriptor.ts";
import { article, isContainer } from "./values.ts";

type ListEntry = Descriptor & { dataIndex: number };

const WHAT = "push-object-list";

/** Reads a push-object-list body, in either shape. */
export function readPushObjectList(body: AxdrValue): Found {
  if (!isContainer(body) || body.items.length === 0) {
    return `${WHAT} needs a structure whose element 0 is the push object list`;
  }
  const list = body.items[0]!;
  if (list.type !== "array" || list.items.length === 0) {
    return `${WHAT}: element 0 is ${
      article(list)
    }, not an array of {class id, OBIS, attribute, data index}`;
  }
  const descriptors: ListEntry[] = [];
  for (const [i, item] of list.items.entries()) {
    const d = pushListEntry(item);
    if (d === null) {
      return `${WHAT}: push object list entry ${i} is not {class id, OBIS, attribute, data index}`;
    }
    descriptors.push(d);
  }
  const n = descriptors.length;
  const c = newCollected(WHAT);
  const second = body.items[1];
  if (body.items.length === 2 && second !== undefined && isContainer(second)) {
    // List and values as two parts. (A list as element 0 whose only value is itself an
    // array or a structure would look the same; no register value is one.)
    const values = second.items;
    const selfFirst = descriptors[0]!.classId === CLASS_PUSH_SETUP;
    if (values.length === n || (selfFirst && values.length === n - 1)) {
      c.notes.push(
        `the push object list and the values come as two parts: ${values.length} values in ${
          article(second)
        }`,
      );
      return collect(c, values.length === n ? descriptors : descriptors.slice(1), values);
    }
    if (n !== 2 && n !== 1) {
      return `${WHAT}: the push object list names ${n} objects but the values' ${second.type} has ${values.length}`;
    }
  }
  // The list usually names itself first (push setup, attribute 2), so it has as many
  // entries as the body has elements; a list that leaves itself out has one fewer.
  if (n === body.items.length || n === body.items.length - 1) {
    const values = n === body.items.length ? body.items : body.items.slice(1);
    if (n === body.items.length) c.notes.push("the push object list is element 0 of the values");
    else c.notes.push("the push object list leaves itself out; the values follow it");
    return collect(c, descriptors, values);
  }
  return `${WHAT}: the push object list names ${n} objects but the body has ${
    body.items.length - 1
  } values`;
}

function collect(c: Collected, descriptors: ListEntry[], values: readonly AxdrValue[]): Found {
  descriptors.forEach((d, i) => addDescribed(c, d, values[i]!, d.dataIndex));
  return c.entries.length > 0 ? c : `${WHAT}: the push object list names no values`;
}

/**
 * The meter's model, where the telegram tells it. In order:
 *
 * | source | example |
 * |---|---|
 * | the positional layout (`model` in layouts.ts) | Netz Burgenland's layout → `E450`, as the Python add-on sent |
 * | a meter-type register (`MODEL_OBIS`) | 0-0:96.1.7 `MA304H3E` (Kaifa list), 1-1:96.1.1 `6841138BN245101090` (Kamstrup list) |
 * | the DSMR identification line `/XXXZ\WIdent` (IEC 62056-21) | `/Ske5\2MT382-1000` → `MT382-1000` |
 *
 * Nothing is guessed: a telegram that says none of these has no model.
 *
 * @module
 */

import { MODEL_OBIS } from "./obis.ts";
import type { Register } from "./reading.ts";

const LONGEST_MODEL = 64;

/** The model from a layout's own name for it, else from a meter-type register. */
export function modelOf(layoutModel: string | null, registers: readonly Register[]): string | null {
  if (layoutModel !== null) return layoutModel;
  for (const code of MODEL_OBIS) {
    const r = registers.find((x) => x.obis === code);
    if (r !== undefined && typeof r.value === "string") return clean(r.value);
  }
  return null;
}

/**
 * `/` + manufacturer (3) + baud rate character (1), then an optional `\` + mode character,
 * then the identification.
 */
const DSMR_HEADER = /^\/[A-Za-z]{3}[0-9A-Za-z](?:\\[0-9A-Za-z])?(.*)$/;

/** The identification a DSMR telegram's first line carries (`/Lux5\253663629_D` → `53663629_D`). */
export function modelOfDsmrHeader(line: string): string | null {
  const m = DSMR_HEADER.exec(line.trim());
  return m ? clean(m[1]!) : null;
}

function clean(text: string): string | null {
  const t = text.trim();
  return t === "" || t.length > LONGEST_MODEL ? null : t;
}

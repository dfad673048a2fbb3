/**
 * What a layout reader collects from a body before anything is scaled: entries (an OBIS
 * code, its A-XDR value and, where known, its `{scaler, unit}`), the time, the ids, and a
 * note of anything worth explaining. `interpret.ts` turns it into an interpretation.
 *
 * @module
 */

import type { AxdrValue } from "../dlms/axdr.ts";
import type { DlmsDateTime } from "../dlms/datetime.ts";
import type { ScalerUnit } from "./values.ts";

/** A value found in the body, before scaling. */
export interface Entry {
  readonly obis: string;
  readonly value: AxdrValue;
  /** The meter's own {scaler, unit} or the positional layout's; null when absent. */
  readonly scalerUnit: ScalerUnit | null;
  /** The positional layout that gave `scalerUnit`; null when the telegram sent it. */
  readonly layoutRule?: string;
}

/** What a reader found in a body. */
export interface Collected {
  readonly layout: string;
  readonly entries: Entry[];
  /** {scaler, unit} sent as a separate attribute (class 3 attribute 3), by OBIS. */
  readonly scalerUnits: Map<string, ScalerUnit>;
  positionalTime: DlmsDateTime | null;
  positionalMeterId: string | null;
  trailingId: string | null;
  listId: string | null;
  /** The model the layout stands for, if it says. */
  model: string | null;
  /** A body shape that names its meter family (matched by scaler tables' `shapes`). */
  shape: string | null;
  /** Remarks for `decode --explain` (which variant of a layout was read, ...). */
  readonly notes: string[];
}

/** A reader's answer: what it collected, or why the body does not fit. */
export type Found = Collected | string;

export function newCollected(layout: string): Collected {
  return {
    layout,
    entries: [],
    scalerUnits: new Map(),
    positionalTime: null,
    positionalMeterId: null,
    trailingId: null,
    listId: null,
    model: null,
    shape: null,
    notes: [],
  };
}

/**
 * The real captures under tests/fixtures/ (copied from ../shared/fixtures), loaded once.
 *
 * @module
 */

import { fromHex } from "../lib/bytes.ts";

export interface Fixture {
  name: string;
  hex: string;
  bytes: Uint8Array;
  key: Uint8Array | null;
  authKey: Uint8Array | null;
  systemTitle: Uint8Array | null;
  framing: "hdlc" | "mbus" | "raw-apdu" | "dsmr";
  meterType: string | null;
  negative: boolean;
  expected: Record<string, number | string>;
  plaintextApdu: Uint8Array | null;
  raw: Record<string, unknown>;
}

const dir = new URL("./fixtures/", import.meta.url);

function loadAll(): Fixture[] {
  const out: Fixture[] = [];
  for (const entry of [...Deno.readDirSync(dir)].sort((a, b) => a.name.localeCompare(b.name))) {
    if (!entry.isFile || !entry.name.endsWith(".json")) continue;
    const raw = JSON.parse(Deno.readTextFileSync(new URL(entry.name, dir)));
    out.push({
      name: entry.name.replace(/\.json$/, ""),
      hex: raw.hex,
      bytes: fromHex(raw.hex),
      key: raw.key ? fromHex(raw.key) : null,
      authKey: raw.auth_key ? fromHex(raw.auth_key) : null,
      systemTitle: raw.system_title ? fromHex(raw.system_title) : null,
      framing: raw.framing,
      meterType: raw.meter_type ?? null,
      negative: Boolean(raw.negative),
      expected: raw.expected ?? {},
      plaintextApdu: raw.plaintext_apdu_hex ? fromHex(raw.plaintext_apdu_hex) : null,
      raw,
    });
  }
  return out;
}

export const FIXTURES: readonly Fixture[] = loadAll();

/** A fixture by name; throws when it is missing so a typo cannot pass a test. */
export function fixture(name: string): Fixture {
  const f = FIXTURES.find((x) => x.name === name);
  if (!f) throw new Error(`No fixture named ${name}`);
  return f;
}

/** Whether `got` equals `want` for a value of the named-value vocabulary. */
export function closeTo(got: unknown, want: number | string): boolean {
  if (typeof want === "string" || typeof got === "string") {
    return String(got).trim() === String(want).trim();
  }
  if (typeof got !== "number") return false;
  return Math.abs(got - want) <= Math.max(1e-9 * Math.abs(want), 1e-9);
}

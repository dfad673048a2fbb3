/**
 * The real captures under tests/fixtures/ (copied from ../shared/fixtures), loaded once.
 *
 * @module
 */

import { concatBytes, fromHex } from "../lib/bytes.ts";

export interface Fixture {
  name: string;
  hex: string;
  bytes: Uint8Array;
  key: Uint8Array | null;
  authKey: Uint8Array | null;
  systemTitle: Uint8Array | null;
  framing: "hdlc" | "mbus" | "raw-apdu" | "dsmr" | "mbus-oms";
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

// Hand-rolled framing for the APDU and security tests, so that they do not depend on the
// real framers (lib/framing, tested on their own). Well-formed captures only.
const HDLC_FLAG = 0x7e;
const HDLC_LENGTH_MASK = 0x7ff;
const HDLC_FCS_LENGTH = 2;
const LLC = [0xe6, 0xe7, 0x00];

/** The information fields of back-to-back HDLC frames, LLC header removed. */
export function hdlcInfos(wire: Uint8Array): Uint8Array[] {
  const infos: Uint8Array[] = [];
  let at = 0;
  while (at < wire.length) {
    if (wire[at] !== HDLC_FLAG) throw new Error(`No HDLC flag at ${at}`);
    const length = ((wire[at + 1]! << 8) | wire[at + 2]!) & HDLC_LENGTH_MASK;
    const frame = wire.subarray(at + 1, at + 1 + length);
    let p = 2; // after the frame format field
    while ((frame[p]! & 1) === 0) p++; // destination address: last byte has bit 0 set
    p++;
    while ((frame[p]! & 1) === 0) p++; // source address
    p += 1 + 1 + 2; // last address byte, control, HCS
    let info = frame.subarray(p, length - HDLC_FCS_LENGTH);
    if (LLC.every((b, i) => info[i] === b)) info = info.subarray(LLC.length);
    infos.push(info);
    at += length + 2;
  }
  return infos;
}

const MBUS_HEADER = 9; // 68 L L 68 C A CI STSAP DTSAP
const MBUS_FIXED = 4; // 68 L L 68 before the L counted bytes

/** The user data of back-to-back M-Bus long frames, after the 9-byte headers. */
export function mbusData(wire: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let at = 0;
  while (at < wire.length) {
    const l = wire[at + 1]!;
    parts.push(wire.subarray(at + MBUS_HEADER, at + MBUS_FIXED + l));
    at += l + 6; // + checksum + 16
  }
  return concatBytes(parts);
}

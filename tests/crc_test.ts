import { equal, throws } from "node:assert/strict";
import { crc16x25 } from "../lib/framing/crc.ts";
import { fixture } from "./fixtures.ts";

const ascii = (s: string) => new TextEncoder().encode(s);
/** A CRC as sent on the wire: least significant byte first. */
const sentAt = (b: Uint8Array, at: number) => b[at]! | (b[at + 1]! << 8);

Deno.test("crc16x25() gives the catalogued check values", async (t) => {
  const cases: [string, Uint8Array, number][] = [
    ['"123456789" (the CRC catalogue check)', ascii("123456789"), 0x906e],
    ["no bytes (init xor xorout)", new Uint8Array(0), 0x0000],
    ["one zero byte", Uint8Array.of(0x00), 0xf078],
    ['"A"', ascii("A"), 0xa3f5],
  ];
  for (const [name, bytes, want] of cases) {
    await t.step(name, () => equal(crc16x25(bytes), want));
  }
});

Deno.test("crc16x25() covers only [start, end)", () => {
  const padded = ascii("xx123456789yy");
  equal(crc16x25(padded, 2, 11), 0x906e);
  equal(crc16x25(padded, 2, 2), 0x0000);
});

Deno.test("crc16x25() of a frame plus its own FCS leaves the X.25 residue", () => {
  const bytes = ascii("123456789");
  const crc = crc16x25(bytes);
  const withFcs = Uint8Array.of(...bytes, crc & 0xff, crc >> 8);
  // The "good FCS" residue 0xF0B8, after the final complement: 0x0F47.
  equal(crc16x25(withFcs), 0x0f47);
});

Deno.test("crc16x25() reproduces the HCS and FCS of a real HDLC frame", () => {
  // 7E A0 76 | CE FF | 03 | 13 | HCS 3C 02 | E6 E7 00 DB 08 ... | FCS | 7E (Netz Burgenland E450)
  const frame = fixture("burgenland_landis-gyr-e450_1").bytes;
  const length = ((frame[1]! << 8) | frame[2]!) & 0x7ff;
  equal(length, frame.length - 2);
  const hcsAt = 7; // after format (2), dest CE FF, src 03, control 13
  equal(crc16x25(frame, 1, hcsAt), sentAt(frame, hcsAt));
  equal(sentAt(frame, hcsAt), 0x023c);
  const fcsAt = frame.length - 3;
  equal(crc16x25(frame, 1, fcsAt), sentAt(frame, fcsAt));
});

Deno.test("crc16x25() refuses a range outside the bytes", () => {
  throws(() => crc16x25(new Uint8Array(4), 0, 5), RangeError);
  throws(
    () => crc16x25(new Uint8Array(4), -1, 2),
    /CRC range out of bounds: \[-1, 2\) over 4 bytes/,
  );
  throws(() => crc16x25(new Uint8Array(4), 3, 2), RangeError);
});

/**
 * Cost of the layers behind decryption, on the plaintext of real pushes: A-XDR decoding of
 * the notification body, the whole data-notification parse, and the COSEM interpretation
 * with the reading built from it. Run: `deno task bench`.
 */

import { ByteReader } from "../lib/bytes.ts";
import { decodeData } from "../lib/dlms/axdr.ts";
import { parseApdu } from "../lib/dlms/apdu.ts";
import { interpret } from "../lib/cosem/interpret.ts";
import { buildReading } from "../lib/cosem/build.ts";
import { Framer } from "../lib/framing/framer.ts";
import { fixture } from "../tests/fixtures.ts";

/** Offset of the body in a data-notification: tag, invoke id, then the date-time field. */
function bodyOffset(apdu: Uint8Array): number {
  const DATE_TIME_FIELD = 5;
  const marker = apdu[DATE_TIME_FIELD];
  if (marker === 0x00) return DATE_TIME_FIELD + 1;
  if (marker === 0x0c) return DATE_TIME_FIELD + 1 + 12;
  if (marker === 0x09) return DATE_TIME_FIELD + 2 + 12;
  throw new Error(`not a data-notification date-time field: ${marker}`);
}

/** The system title of a capture's ciphered APDU, or null when it is in the clear. */
function systemTitleOf(wire: Uint8Array): Uint8Array | null {
  for (const ev of new Framer().push(wire)) {
    if (ev.kind !== "payload") continue;
    const apdu = parseApdu(ev.payload);
    return apdu.kind === "ciphered" ? apdu.systemTitle : null;
  }
  return null;
}

for (const name of ["netznoe_kaifa-ma309_1", "salzburg_kaifa-ma309m_1"]) {
  const f = fixture(name);
  const plain = f.plaintextApdu!;
  const body = plain.subarray(bodyOffset(plain));
  const notification = parseApdu(plain);
  if (notification.kind !== "data-notification") throw new Error(`${name}: no notification`);
  const systemTitle = systemTitleOf(f.bytes);
  const ctx = { headerTime: notification.dateTime, systemTitle, meterType: "auto" as const };
  const meta = { systemTitle, frameCounter: 1 };
  const group = `${name}: body of ${body.length} B`;

  Deno.bench({
    name: "decodeData() of the body",
    group,
    baseline: true,
    fn() {
      decodeData(new ByteReader(body, "axdr"));
    },
  });
  Deno.bench({
    name: "parseApdu() of the whole data-notification",
    group,
    fn() {
      parseApdu(plain);
    },
  });
  Deno.bench({
    name: "interpret() + buildReading() of the decoded body",
    group,
    fn() {
      buildReading(interpret(notification.body, ctx), meta);
    },
  });
  Deno.bench({
    name: "parseApdu() + interpret() + buildReading()",
    group,
    fn() {
      const n = parseApdu(plain);
      if (n.kind !== "data-notification") throw new Error("not a notification");
      buildReading(interpret(n.body, { ...ctx, headerTime: n.dateTime }), meta);
    },
  });
}

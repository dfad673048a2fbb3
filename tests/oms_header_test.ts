import { deepEqual, equal, throws } from "node:assert/strict";
import { toHex } from "../lib/bytes.ts";
import { ParseError } from "../lib/errors.ts";
import {
  configurationField,
  encodeOmsHeader,
  manufacturerCode,
  manufacturerLetters,
  parseOmsHeader,
} from "../lib/oms/header.ts";
import { fixture } from "./fixtures.ts";

/** The data after CI of an AMIS capture (one long frame). */
const amisData = (n: 1 | 2 | 3) => {
  const wire = fixture(`netzooe_siemens-amis_${n}`).bytes;
  return wire.subarray(7, wire.length - 2);
};

Deno.test("parseOmsHeader() reads the long header of the Netz OÖ specification's example", () => {
  const h = parseOmsHeader(amisData(1));
  deepEqual(
    {
      id: h.id,
      manufacturer: h.manufacturer,
      version: h.version,
      medium: h.medium,
      access: h.access,
      status: h.status,
      configuration: h.configuration,
      mode: h.mode,
      encryptedBlocks: h.encryptedBlocks,
      address: h.addressHex,
      data: h.data.length,
    },
    {
      id: "00000000",
      manufacturer: "SAM",
      version: 1,
      medium: 0x0e,
      access: 0x0d,
      status: 0,
      configuration: 0x0550,
      mode: 5,
      encryptedBlocks: 5,
      // OMS order for the IV: M ‖ ID ‖ version ‖ medium (spec 2.4.2.7).
      address: "2d4c00000000010e",
      data: 80,
    },
  );
  equal(parseOmsHeader(amisData(2)).access, 0);
  equal(parseOmsHeader(amisData(3)).access, 0x0c);
});

Deno.test("parseOmsHeader() refuses a cut header and security modes it does not read", () => {
  throws(
    () => parseOmsHeader(amisData(1).subarray(0, 11), 7),
    (e) =>
      e instanceof ParseError && e.layer === "oms" &&
      /Input ends inside the OMS long header \(12 bytes\): needs 12 bytes, 11 left \(oms, byte 7\)/
        .test(e.message),
  );
  const mode7 = amisData(1).slice();
  mode7[11] = 0x07;
  throws(
    () => parseOmsHeader(mode7),
    /Unsupported OMS security mode 7 \(configuration field 0x0750\): only modes 0 \(none\) and 5 \(AES-128-CBC\) are read/,
  );
});

Deno.test("manufacturer letters and codes are each other's inverse", () => {
  equal(manufacturerLetters(0x4c2d), "SAM");
  equal(manufacturerCode("SAM"), 0x4c2d);
  for (const letters of ["AAA", "ZZZ", "KAM", "LGB", "EMH"]) {
    equal(manufacturerLetters(manufacturerCode(letters)), letters);
  }
  throws(() => manufacturerCode("sam"), /Bad manufacturer "sam"/);
});

Deno.test("encodeOmsHeader() writes what parseOmsHeader() reads", () => {
  const bytes = encodeOmsHeader({
    id: "00000000",
    manufacturer: "SAM",
    version: 1,
    medium: 0x0e,
    access: 0x0d,
    status: 0,
    configuration: configurationField(5, 5),
  });
  equal(toHex(bytes), toHex(amisData(1).subarray(0, 12)));
  const other = parseOmsHeader(
    encodeOmsHeader({
      id: "12345678",
      manufacturer: "KAM",
      version: 2,
      medium: 2,
      access: 255,
      status: 0x10,
      configuration: configurationField(0, 0),
    }),
  );
  deepEqual([other.id, other.manufacturer, other.access, other.mode, other.data.length], [
    "12345678",
    "KAM",
    255,
    0,
    0,
  ]);
  throws(() => encodeOmsHeader({ ...other, id: "1234" }), /Bad OMS id "1234"/);
});

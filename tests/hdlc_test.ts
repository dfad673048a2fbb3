import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { concatBytes, fromHex, toHex } from "../lib/bytes.ts";
import { crc16x25 } from "../lib/framing/crc.ts";
import {
  encodeHdlcFrame,
  encodeHdlcFrames,
  type HdlcFrame,
  HdlcReassembler,
  type HdlcScan,
  isHdlcFormatStart,
  LLC_COMMAND,
  scanHdlcFrame,
} from "../lib/framing/hdlc.ts";
import { fixture } from "./fixtures.ts";

function frameOf(scan: HdlcScan): { frame: HdlcFrame; bytes: number } {
  if (scan.kind !== "frame") throw new Error(`expected a frame, got ${JSON.stringify(scan)}`);
  return scan;
}

/** A frame with one byte changed (the frame is copied). */
function corrupt(frame: Uint8Array, at: number, xor = 0x01): Uint8Array {
  const copy = frame.slice();
  copy[at]! ^= xor;
  return copy;
}

const burgenland = () => fixture("burgenland_landis-gyr-e450_1").bytes;

Deno.test("scanHdlcFrame() reads the header fields of a real frame", () => {
  const wire = burgenland();
  const { frame, bytes } = frameOf(scanHdlcFrame(wire));
  equal(bytes, wire.length - 1); // the closing flag is left for the next scan
  equal(frame.frameLength, 0x076);
  equal(frame.segmented, false);
  equal(toHex(frame.dest), "ceff");
  equal(toHex(frame.src), "03");
  equal(frame.control, 0x13);
  equal(toHex(frame.info.subarray(0, 5)), "e6e700db08");
  equal(frame.info.length, wire.length - 12); // 9 bytes before the info, FCS and flag after
});

Deno.test("scanHdlcFrame() reads 1-byte and 2-byte addresses in either position", async (t) => {
  const cases: [string, string, string, number][] = [
    ["norway_aidon_1", "41", "0883", 0x13],
    ["norway_kaifa-ma304h3e_1", "01", "0201", 0x10],
    ["denmark_kamstrup-omnipower_1", "41", "03", 0x13],
    ["switzerland_iskraemeco-am550_1", "cf", "0223", 0x03],
  ];
  for (const [name, dest, src, control] of cases) {
    await t.step(name, () => {
      const { frame } = frameOf(scanHdlcFrame(fixture(name).bytes));
      deepEqual([toHex(frame.dest), toHex(frame.src), frame.control], [dest, src, control]);
    });
  }
});

Deno.test("scanHdlcFrame() sees the S bit of a segment (AM550 A8 A4)", () => {
  const wire = fixture("switzerland_iskraemeco-am550_1").bytes;
  const { frame, bytes } = frameOf(scanHdlcFrame(wire));
  equal(frame.segmented, true);
  equal(bytes, 1 + 0xa4);
  deepEqual(scanHdlcFrame(wire.subarray(0, 20)), {
    kind: "need-more",
    credible: true,
    total: 1 + 0xa4,
    segmented: true,
  });
});

Deno.test("isHdlcFormatStart() accepts A0..AF only", () => {
  deepEqual([0xa0, 0xa8, 0xaf, 0x7e, 0xb0, 0x90].map(isHdlcFormatStart), [
    true,
    true,
    true,
    false,
    false,
    false,
  ]);
});

Deno.test("scanHdlcFrame() asks for more bytes, credibly once the HCS is right", () => {
  const wire = burgenland();
  const hcsEnd = 9; // 7E, format 2, dest 2, src 1, control 1, HCS 2
  for (let n = 0; n < wire.length - 1; n++) {
    const scan = scanHdlcFrame(wire.subarray(0, n));
    if (n < hcsEnd) {
      deepEqual(scan, { kind: "need-more", credible: false }, `prefix of ${n} bytes`);
    } else {
      deepEqual(scan, {
        kind: "need-more",
        credible: true,
        total: wire.length - 1,
        segmented: false,
      });
    }
  }
  equal(scanHdlcFrame(wire.subarray(0, wire.length - 1)).kind, "frame");
});

Deno.test("scanHdlcFrame() skips one byte where no frame can start", async (t) => {
  const wire = burgenland();
  const cases: [string, Uint8Array, string][] = [
    ["no flag", Uint8Array.of(0x55, 0xa0), "not an HDLC flag"],
    ["not frame format type 3", Uint8Array.of(0x7e, 0x80, 0x10), "type 3 frame format"],
    ["length below 7", Uint8Array.of(0x7e, 0xa0, 0x06, 0x41), "frame length too short"],
    [
      "address of 5 bytes",
      Uint8Array.of(0x7e, 0xa0, 0x20, 0x02, 0x02, 0x02, 0x02, 0x02),
      "address longer than 4 bytes",
    ],
    ["bad HCS", corrupt(wire, 7), "bad HDLC header checksum"],
    [
      "length shorter than the header",
      Uint8Array.of(0x7e, 0xa0, 0x08, 0x41, 0x03, 0x13),
      "shorter than its header",
    ],
    [
      "frame without info and a bad FCS",
      corrupt(encodeHdlcFrame(new Uint8Array(0)), 5),
      "bad checksum on a short HDLC frame",
    ],
  ];
  for (const [name, bytes, reason] of cases) {
    await t.step(name, () => {
      const scan = scanHdlcFrame(bytes);
      if (scan.kind !== "skip") throw new Error(`expected skip, got ${scan.kind}`);
      equal(scan.bytes, 1);
      match(scan.reason, new RegExp(reason));
    });
  }
});

Deno.test("scanHdlcFrame() reports a bad FCS with both values and the stream offset", () => {
  const wire = burgenland();
  const damaged = corrupt(wire, 40);
  const fcsAt = wire.length - 3;
  const computed = crc16x25(damaged, 1, fcsAt);
  const sent = wire[fcsAt]! | (wire[fcsAt + 1]! << 8);
  const scan = scanHdlcFrame(damaged, 1234);
  const hex4 = (v: number) => `0x${v.toString(16).padStart(4, "0")}`;
  deepEqual(scan, {
    kind: "invalid",
    bytes: wire.length - 1,
    segmented: false,
    message: `Bad HDLC frame checksum: computed ${hex4(computed)}, frame says ${
      hex4(sent)
    } (byte 1234): damaged frame or wrong baud rate/parity`,
  });
});

Deno.test("scanHdlcFrame() accepts a frame without information field (no HCS)", () => {
  const wire = encodeHdlcFrame(new Uint8Array(0), { control: 0x93 });
  equal(toHex(wire.subarray(0, 6)), "7ea007410393");
  const { frame, bytes } = frameOf(scanHdlcFrame(wire));
  equal(bytes, 8);
  equal(frame.info.length, 0);
  equal(frame.control, 0x93);
});

Deno.test("scanHdlcFrame() finds the frame by length even with 7E inside it", () => {
  const info = fromHex("7e7e7e00a07e");
  const { frame } = frameOf(scanHdlcFrame(encodeHdlcFrame(info)));
  equal(toHex(frame.info), toHex(info));
});

Deno.test("encodeHdlcFrame() rebuilds a real frame byte for byte", () => {
  const wire = burgenland();
  const info = wire.subarray(9, wire.length - 3);
  const rebuilt = encodeHdlcFrame(info, {
    dest: fromHex("ceff"),
    src: fromHex("03"),
    control: 0x13,
  });
  equal(toHex(rebuilt), toHex(wire));
});

Deno.test("encodeHdlcFrames() splits like the AM550 does (S bit, control 03/03/13)", () => {
  const fx = fixture("switzerland_iskraemeco-am550_1");
  const frames = encodeHdlcFrames(fx.plaintextApdu!, {
    maxInfo: 154,
    dest: fromHex("cf"),
    src: fromHex("0223"),
  });
  deepEqual(frames.map((f) => toHex(f.subarray(0, 7))), [
    "7ea8a4cf022303",
    "7ea8a4cf022303",
    "7ea02dcf022313",
  ]);
  equal(toHex(concatBytes(frames)), fx.hex);
});

Deno.test("encodeHdlcFrames() defaults: LLC, 128-byte info fields, 41/03", () => {
  const apdu = new Uint8Array(300).map((_, i) => i & 0xff);
  const frames = encodeHdlcFrames(apdu);
  deepEqual(frames.map((f) => frameOf(scanHdlcFrame(f)).frame.info.length), [128, 128, 47]);
  const first = frameOf(scanHdlcFrame(frames[0]!)).frame;
  equal(toHex(first.info.subarray(0, 3)), "e6e700");
  deepEqual([toHex(first.dest), toHex(first.src)], ["41", "03"]);
  const noLlc = encodeHdlcFrames(apdu, { llc: false, maxInfo: 1000 });
  equal(noLlc.length, 1);
  equal(toHex(frameOf(scanHdlcFrame(noLlc[0]!)).frame.info), toHex(apdu));
});

Deno.test("encodeHdlcFrame() and encodeHdlcFrames() refuse impossible frames", async (t) => {
  const cases: [string, () => unknown, RegExp][] = [
    [
      "address without end bit",
      () => encodeHdlcFrame(Uint8Array.of(1), { dest: fromHex("02") }),
      /Bad HDLC destination address 0x02: 1 to 4 bytes/,
    ],
    [
      "address of 5 bytes",
      () => encodeHdlcFrame(Uint8Array.of(1), { src: fromHex("0202020203") }),
      /Bad HDLC source address/,
    ],
    [
      "end bit too early",
      () => encodeHdlcFrame(Uint8Array.of(1), { src: fromHex("0302") }),
      /Bad HDLC source address/,
    ],
    [
      "control out of range",
      () => encodeHdlcFrame(Uint8Array.of(1), { control: 256 }),
      /Bad HDLC control byte 256/,
    ],
    [
      "info beyond the 11-bit length",
      () => encodeHdlcFrame(new Uint8Array(2040)),
      /HDLC frame too long: 2049 bytes, the length field holds at most 2047/,
    ],
    ["maxInfo 0", () => encodeHdlcFrames(Uint8Array.of(1), { maxInfo: 0 }), /Bad maxInfo 0/],
  ];
  for (const [name, fn, message] of cases) {
    await t.step(name, () => throws(fn, message));
  }
});

function segment(info: string, segmented: boolean, src = "03"): HdlcFrame {
  return {
    segmented,
    frameLength: 0,
    dest: fromHex("41"),
    src: fromHex(src),
    control: segmented ? 0x03 : 0x13,
    info: fromHex(info),
  };
}

Deno.test("HdlcReassembler.add() joins S-bit segments and strips the LLC once", () => {
  const r = new HdlcReassembler();
  deepEqual(r.add(segment("e6e7000f0102", true), 10), []);
  deepEqual(r.pending, { offset: 10, frames: 1, bytes: 3 });
  deepEqual(r.add(segment("e6e7000304", true), 50), []);
  const out = r.add(segment("05", false), 90);
  equal(out.length, 1);
  const p = out[0]!;
  if (p.kind !== "payload") throw new Error(p.kind);
  equal(toHex(p.payload), "0f0102e6e700030405");
  deepEqual([p.offset, p.frames], [10, 3]);
  equal(r.pending, undefined);
});

Deno.test("HdlcReassembler.add() strips the command LLC E6 E6 00 too", () => {
  const r = new HdlcReassembler();
  const out = r.add(segment(toHex(LLC_COMMAND) + "0f00", false), 0);
  deepEqual(out.map((o) => o.kind === "payload" ? toHex(o.payload) : o.kind), ["0f00"]);
});

Deno.test("HdlcReassembler.add() reports a chain broken by another station", () => {
  const r = new HdlcReassembler();
  r.add(segment("0102", true, "03"), 0);
  const out = r.add(segment("0304", false, "05"), 40);
  equal(out.length, 2);
  deepEqual(out[0], {
    kind: "error",
    offset: 0,
    message:
      "HDLC segment chain broken: it came from address 0x03 to 0x41, the frame at byte 40 from 0x05 to 0x41 (byte 0): its final segment was lost, or two stations share the line",
  });
  // The new frame stands on its own.
  deepEqual(out[1]?.kind === "payload" && [toHex(out[1].payload), out[1].offset], ["0304", 40]);
});

Deno.test("HdlcReassembler.add() refuses a payload over maxPayloadBytes and drops the rest", () => {
  const r = new HdlcReassembler(4);
  deepEqual(r.add(segment("010203", true), 0), []);
  deepEqual(r.add(segment("0405", true), 20), [{
    kind: "error",
    offset: 0,
    message:
      "HDLC payload too long: its segments add up to more than 4 bytes (byte 0): final segments lost or a damaged S bit",
  }]);
  deepEqual(r.add(segment("06", false), 40), [{
    kind: "discarded",
    reason: "rest of a failed HDLC segment chain",
  }]);
  // The chain after it is whole again.
  deepEqual(r.add(segment("07", false), 60).map((o) => o.kind), ["payload"]);
});

Deno.test("HdlcReassembler.damaged() drops the chain and, after a segment, its rest", () => {
  const r = new HdlcReassembler();
  r.add(segment("01", true), 0);
  r.damaged(true);
  equal(r.pending, undefined);
  deepEqual(r.add(segment("02", true), 20).map((o) => o.kind), ["discarded"]);
  deepEqual(r.add(segment("03", false), 40).map((o) => o.kind), ["discarded"]);
  deepEqual(r.add(segment("04", false), 60).map((o) => o.kind), ["payload"]);
  r.damaged(false);
  deepEqual(r.add(segment("05", false), 80).map((o) => o.kind), ["payload"]);
});

Deno.test("HdlcReassembler payloads are copies, not views of the input", () => {
  const r = new HdlcReassembler();
  const f = segment("0f01", false);
  const out = r.add(f, 0)[0]!;
  f.info.fill(0);
  ok(out.kind === "payload" && toHex(out.payload) === "0f01");
});

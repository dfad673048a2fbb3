import { deepEqual, equal, match, throws } from "node:assert/strict";
import { concatBytes, fromHex, toHex } from "../lib/bytes.ts";
import {
  type DlmsSegment,
  dlmsSegment,
  encodeMbusFrames,
  encodeMbusLongFrame,
  encodeMbusShortFrame,
  hasMbusHeader,
  isOmsFrame,
  type MbusFrame,
  MbusReassembler,
  mbusReply,
  type MbusScan,
  scanMbusFrame,
} from "../lib/framing/mbus.ts";
import { fixture } from "./fixtures.ts";

function frameOf(scan: MbusScan): { frame: MbusFrame; bytes: number } {
  if (scan.kind !== "frame") throw new Error(`expected a frame, got ${JSON.stringify(scan)}`);
  return scan;
}

function segmentOf(frame: MbusFrame): DlmsSegment {
  const r = dlmsSegment(frame);
  if (!r.ok) throw new Error(r.message);
  return r.segment;
}

/** The frames of a capture of back-to-back long frames. */
function split(wire: Uint8Array): MbusFrame[] {
  const out: MbusFrame[] = [];
  let at = 0;
  while (at < wire.length) {
    const { frame, bytes } = frameOf(scanMbusFrame(wire.subarray(at)));
    out.push(frame);
    at += bytes;
  }
  return out;
}

const netznoe = () => fixture("netznoe_kaifa-ma309_1").bytes;

Deno.test("scanMbusFrame() reads the two segments of the Netz NÖ Kaifa push", () => {
  const wire = netznoe();
  const first = frameOf(scanMbusFrame(wire));
  equal(first.bytes, 0xfa + 6);
  deepEqual([first.frame.c, first.frame.a, first.frame.ci, first.frame.l], [
    0x53,
    0xff,
    0x00,
    0xfa,
  ]);
  equal(first.frame.lengthOverflow, false);
  const seg0 = segmentOf(first.frame);
  deepEqual([seg0.segment, seg0.final, seg0.stsap, seg0.dtsap], [0, false, 0x01, 0x67]);
  equal(toHex(seg0.data.subarray(0, 5)), "db084b464d"); // general-glo-ciphering, "KFM"
  const second = frameOf(scanMbusFrame(wire.subarray(first.bytes)));
  equal(first.bytes + second.bytes, wire.length);
  const seg1 = segmentOf(second.frame);
  deepEqual([seg1.segment, seg1.final, seg1.data.length], [1, true, 0x14 - 5]);
});

Deno.test("scanMbusFrame() asks for more bytes, credibly after 68 L L 68", () => {
  const wire = netznoe();
  for (let n = 1; n < 256; n++) {
    const scan = scanMbusFrame(wire.subarray(0, n));
    deepEqual(
      scan,
      n < 4
        ? { kind: "need-more", credible: false }
        : { kind: "need-more", credible: true, total: 256 },
      `prefix of ${n} bytes`,
    );
  }
});

Deno.test("hasMbusHeader() wants 68 L L 68 complete", () => {
  const b = fromHex("0068fafa68");
  equal(hasMbusHeader(b, 1), true);
  equal(hasMbusHeader(b, 0), false);
  equal(hasMbusHeader(b.subarray(0, 4), 1), false);
  equal(hasMbusHeader(fromHex("68fafb68")), false);
});

Deno.test("scanMbusFrame() skips what is not a long frame", async (t) => {
  const cases: [string, string, number, RegExp][] = [
    ["the E5 acknowledgement", "e5", 1, /single character E5/],
    ["10 without a valid short frame", "1053fe5216", 1, /no frame start/],
    ["unequal L bytes", "68fafb68", 1, /length bytes differ/],
    ["no second start byte", "68fafa69", 1, /without its second 68/],
    ["any other byte", "55", 1, /no frame start/],
  ];
  for (const [name, hex, bytes, reason] of cases) {
    await t.step(name, () => {
      const scan = scanMbusFrame(fromHex(hex));
      if (scan.kind !== "skip") throw new Error(`expected skip, got ${scan.kind}`);
      equal(scan.bytes, bytes);
      match(scan.reason, reason);
    });
  }
});

Deno.test("scanMbusFrame() reports a bad checksum with both values", () => {
  const wire = netznoe().slice();
  wire[100]! ^= 0x10; // inside segment 0
  const sum = (wire.subarray(4, 254).reduce((a, b) => a + b, 0)) & 0xff;
  const message = `Bad M-Bus checksum: computed 0x${
    sum.toString(16).padStart(2, "0")
  }, frame says 0x${
    wire[254]!.toString(16).padStart(2, "0")
  } (byte 77): damaged frame or wrong baud rate/parity`;
  // The frame at L failed, so the L + 256 reading is looked at first (it fails too here)...
  deepEqual(scanMbusFrame(wire.subarray(0, 256), 77), {
    kind: "need-more",
    credible: true,
    total: 512,
  });
  const padded = concatBytes([wire, new Uint8Array(300)]);
  deepEqual(scanMbusFrame(padded, 77), { kind: "invalid", bytes: 256, message });
  // ... or given up when no more bytes will come.
  deepEqual(scanMbusFrame(wire.subarray(0, 256), 77, true), {
    kind: "invalid",
    bytes: 256,
    message,
  });
});

Deno.test("scanMbusFrame() reports a missing stop byte", () => {
  const [frame] = encodeMbusFrames(fromHex("0f01020304"));
  const bad = frame!.slice();
  bad[bad.length - 1] = 0x17;
  deepEqual(scanMbusFrame(bad, 0, true), {
    kind: "invalid",
    bytes: bad.length,
    message:
      "Missing M-Bus stop byte: expected 0x16, found 0x17 at the end of a frame of L = 10 (byte 0): wrong length field or damaged frame",
  });
});

Deno.test("scanMbusFrame() takes L + 256 when L overflowed (68 01 01 68 for L = 257)", () => {
  const apdu = new Uint8Array(400).map((_, i) => (i * 7) & 0xff);
  const frames = encodeMbusFrames(apdu, { maxData: 252, overflowLength: true });
  equal(toHex(frames[0]!.subarray(0, 4)), "68010168");
  equal(frames[0]!.length, 257 + 6);
  // L = 1 cannot hold C, A and CI: only L + 256 is possible, so it is asked for at once.
  deepEqual(scanMbusFrame(frames[0]!.subarray(0, 10)), {
    kind: "need-more",
    credible: true,
    total: 263,
  });
  const { frame, bytes } = frameOf(scanMbusFrame(frames[0]!));
  deepEqual([bytes, frame.l, frame.lengthOverflow], [263, 257, true]);
  equal(toHex(segmentOf(frame).data), toHex(apdu.subarray(0, 252)));
});

Deno.test("scanMbusFrame() overflow rule is generic: a short L that fails is retried at L + 256", () => {
  // L = 0x0A + 256 = 266: the frame at L = 10 fails its checksum, the one at 266 passes.
  const apdu = new Uint8Array(261).map((_, i) => (i * 13 + 5) & 0xff);
  const [frame] = encodeMbusFrames(apdu, { maxData: 261, overflowLength: true });
  equal(frame![1], 0x0a);
  const scan = frameOf(scanMbusFrame(frame!));
  equal(scan.frame.l, 266);
  equal(toHex(segmentOf(scan.frame).data), toHex(apdu));
});

Deno.test("dlmsSegment() refuses CI fields outside the DLMS range and short bodies", () => {
  // 68 06 06 68 | C 08 | A 72 | CI 72 | 01 02 03 | CS F2 | 16
  const { frame } = frameOf(scanMbusFrame(fromHex("680606680872720102" + "03f216")));
  deepEqual(dlmsSegment(frame, 42), {
    ok: false,
    message:
      "Unsupported M-Bus CI field 0x72 (byte 42): neither a DLMS segment (CI 0x00..0x1F) nor OMS data (CI 0x5B); the meter sends classic M-Bus data, which is not decoded here",
  });
  const short = frameOf(scanMbusFrame(fromHex("68040468530110016516"))).frame;
  deepEqual(dlmsSegment(short, 7), {
    ok: false,
    message:
      "M-Bus DLMS segment too short: L = 4 leaves no room for STSAP and DTSAP (byte 7): damaged frame",
  });
});

Deno.test("encodeMbusFrames() rebuilds the real captures byte for byte", async (t) => {
  for (
    const name of ["netznoe_kaifa-ma309_1", "netznoe_sagemcom-t210d_2", "vorarlberg_kaifa-ma309m_1"]
  ) {
    await t.step(name, () => {
      const wire = fixture(name).bytes;
      const apdu = concatBytes(split(wire).map((f) => segmentOf(f).data));
      equal(toHex(concatBytes(encodeMbusFrames(apdu))), toHex(wire));
    });
  }
});

Deno.test("encodeMbusFrames() honours its options", () => {
  const frames = encodeMbusFrames(fromHex("0102030405"), {
    maxData: 2,
    c: 0x73,
    a: 0x01,
    stsap: 0x10,
    dtsap: 0x20,
  });
  // CS = C + A + CI + STSAP + DTSAP + data, e.g. 73+01+00+10+20+01+02 = A7; last CI = 0x10 | 2.
  deepEqual(frames.map((f) => toHex(f)), [
    "6807076873010010200102a716",
    "6807076873010110200304ac16",
    "68060668730112102005bb16",
  ]);
});

Deno.test("encodeMbusFrames() refuses impossible frames", async (t) => {
  const cases: [string, () => unknown, RegExp][] = [
    [
      "C field",
      () => encodeMbusFrames(Uint8Array.of(1), { c: 256 }),
      /Bad M-Bus C field 256: must be 0..255/,
    ],
    ["DTSAP", () => encodeMbusFrames(Uint8Array.of(1), { dtsap: -1 }), /Bad M-Bus DTSAP -1/],
    [
      "maxData",
      () => encodeMbusFrames(Uint8Array.of(1), { maxData: 0 }),
      /Bad maxData 0: must be a positive integer/,
    ],
    [
      "L over 255",
      () => encodeMbusFrames(new Uint8Array(300), { maxData: 252 }),
      /M-Bus frame too long: maxData 252 gives L = 257, more than 255 \(set overflowLength/,
    ],
    [
      "L over 511",
      () => encodeMbusFrames(new Uint8Array(600), { maxData: 510, overflowLength: true }),
      /more than 511$/,
    ],
    [
      "17 segments",
      () => encodeMbusFrames(new Uint8Array(17), { maxData: 1 }),
      /APDU too long for M-Bus: 17 bytes need 17 segments, at most 16/,
    ],
  ];
  for (const [name, fn, message] of cases) {
    await t.step(name, () => throws(fn, message));
  }
});

function seg(segment: number, final: boolean, data = "aa"): DlmsSegment {
  return { segment, final, stsap: 1, dtsap: 0x67, data: fromHex(data) };
}
const kinds = (out: readonly { kind: string }[]) => out.map((o) => o.kind);

Deno.test("MbusReassembler.add() joins segments 0..final", () => {
  const r = new MbusReassembler();
  deepEqual(r.add(seg(0, false, "0102"), 5), []);
  deepEqual(r.add(seg(1, false, "03"), 300), []);
  deepEqual(r.pending, { offset: 5, frames: 2, bytes: 3, last: 1 });
  deepEqual(r.add(seg(2, true, "04"), 600), [
    { kind: "payload", payload: fromHex("01020304"), offset: 5, frames: 3 },
  ]);
  equal(r.pending, undefined);
  deepEqual(r.add(seg(0, true, "05"), 700), [
    { kind: "payload", payload: fromHex("05"), offset: 700, frames: 1 },
  ]);
});

Deno.test("MbusReassembler.add() reports a segment out of order and drops the chain's rest", () => {
  const r = new MbusReassembler();
  r.add(seg(0, false), 0);
  deepEqual(r.add(seg(2, false), 300), [{
    kind: "error",
    offset: 300,
    message:
      "M-Bus segment out of order: expected segment 1, got segment 2 (byte 300): a segment was lost or damaged",
  }]);
  deepEqual(kinds(r.add(seg(3, true), 600)), ["discarded"]);
  deepEqual(kinds(r.add(seg(0, true), 900)), ["payload"]);
});

Deno.test("MbusReassembler.add() reports a segment without segment 0", () => {
  const r = new MbusReassembler();
  deepEqual(r.add(seg(1, true), 256), [{
    kind: "error",
    offset: 256,
    message: "M-Bus segment 1 without segment 0 (byte 256): the start of the chain was lost",
  }]);
  deepEqual(kinds(r.add(seg(0, true), 300)), ["payload"]);
});

Deno.test("MbusReassembler.add() reports a chain whose final segment never came", () => {
  const r = new MbusReassembler();
  r.add(seg(0, false), 0);
  r.add(seg(1, false), 256);
  const out = r.add(seg(0, true, "0f"), 512);
  deepEqual(out, [
    {
      kind: "error",
      offset: 0,
      message:
        "Incomplete M-Bus segment chain: segment 0 at byte 512 began a new one after segments 0..1 (byte 0): the final segment was lost",
    },
    { kind: "payload", payload: fromHex("0f"), offset: 512, frames: 1 },
  ]);
});

Deno.test("MbusReassembler.add() bounds the payload by maxPayloadBytes", () => {
  const r = new MbusReassembler(3);
  r.add(seg(0, false, "0102"), 0);
  deepEqual(r.add(seg(1, false, "0304"), 100), [{
    kind: "error",
    offset: 0,
    message:
      "M-Bus payload too long: its segments add up to more than 3 bytes (byte 0): damaged segment numbers",
  }]);
  deepEqual(kinds(r.add(seg(2, true), 200)), ["discarded"]);
  equal(r.pending, undefined);
});

Deno.test("MbusReassembler.add() refuses a 16th segment that is not final", () => {
  const r = new MbusReassembler();
  for (let i = 0; i < 15; i++) deepEqual(r.add(seg(i, false), i * 10), []);
  deepEqual(r.add(seg(15, false), 150), [{
    kind: "error",
    offset: 0,
    message: "M-Bus segment chain too long: segment 15 is not final (byte 0): a damaged final bit",
  }]);
  deepEqual(kinds(r.add(seg(0, true), 160)), ["payload"]);
});

Deno.test("MbusReassembler.damaged() drops segments up to a final one or a new segment 0", () => {
  const r = new MbusReassembler();
  r.add(seg(0, false), 0);
  r.damaged();
  equal(r.pending, undefined);
  deepEqual(kinds(r.add(seg(2, false), 10)), ["discarded"]);
  deepEqual(kinds(r.add(seg(3, true), 20)), ["discarded"]);
  deepEqual(kinds(r.add(seg(0, true), 30)), ["payload"]);
  r.damaged();
  deepEqual(kinds(r.add(seg(0, true), 40)), ["payload"]);
});

// ─── Short frames and the slave's answer (Netz OÖ AMIS) ─────────────────────────────────

Deno.test("scanMbusFrame() reads a short frame 10 C A CS 16 with its C and A fields", () => {
  deepEqual(scanMbusFrame(fromHex("1040f03016")), {
    kind: "short",
    bytes: 5,
    frame: { c: 0x40, a: 0xf0 },
  });
  deepEqual(scanMbusFrame(fromHex("1053fe5116")), {
    kind: "short",
    bytes: 5,
    frame: { c: 0x53, a: 0xfe },
  });
  // Cut short: wait; checksum or stop byte wrong: not a frame start.
  deepEqual(scanMbusFrame(fromHex("1040f030")), { kind: "need-more", credible: false });
  deepEqual(scanMbusFrame(fromHex("1040f03116")), {
    kind: "skip",
    bytes: 1,
    reason: "no frame start",
  });
  deepEqual(scanMbusFrame(fromHex("1040f03017")), {
    kind: "skip",
    bytes: 1,
    reason: "no frame start",
  });
});

Deno.test("mbusReply() answers E5 to SND_NKE and SND_UD at our address, nothing else", async (t) => {
  const cases: [string, number, number, number, string | null][] = [
    ["SND_NKE to F0 (the AMIS search)", 0x40, 0xf0, 0xf0, "e5"],
    ["SND_UD to F0, FCB clear", 0x53, 0xf0, 0xf0, "e5"],
    ["SND_UD to F0, FCB set", 0x73, 0xf0, 0xf0, "e5"],
    ["SND_NKE at another address of ours", 0x40, 0x01, 0x01, "e5"],
    ["SND_NKE to another slave", 0x40, 0x01, 0xf0, null],
    ["SND_UD broadcast FF (a DLMS push)", 0x53, 0xff, 0xf0, null],
    ["SND_UD broadcast FE", 0x53, 0xfe, 0xf0, null],
    ["REQ_UD2 to F0: we have no data to send", 0x5b, 0xf0, 0xf0, null],
    ["REQ_UD2 with FCB", 0x7b, 0xf0, 0xf0, null],
    ["REQ_UD1 to F0", 0x5a, 0xf0, 0xf0, null],
    ["RSP_UD (a slave's answer)", 0x08, 0xf0, 0xf0, null],
    ["SND_UD without FCV", 0x43, 0xf0, 0xf0, null],
  ];
  for (const [name, c, a, address, want] of cases) {
    await t.step(name, () => {
      const reply = mbusReply(c, a, address);
      equal(reply === null ? null : toHex(reply), want);
    });
  }
  // Every answer is a fresh array: a caller that changes one cannot change the next.
  const first = mbusReply(0x40, 0xf0, 0xf0)!;
  first[0] = 0;
  equal(toHex(mbusReply(0x40, 0xf0, 0xf0)!), "e5");
});

Deno.test("encodeMbusShortFrame() and encodeMbusLongFrame() build what scanMbusFrame() reads", () => {
  equal(toHex(encodeMbusShortFrame(0x40, 0xf0)), "1040f03016");
  const amis = fixture("netzooe_siemens-amis_1").bytes;
  const data = amis.subarray(7, amis.length - 2);
  equal(toHex(encodeMbusLongFrame(0x53, 0xf0, 0x5b, data)), toHex(amis));
  const scan = scanMbusFrame(amis);
  equal(scan.kind, "frame");
  if (scan.kind === "frame") {
    equal(isOmsFrame(scan.frame), true);
    equal(scan.bytes, 101);
  }
  throws(() => encodeMbusShortFrame(0x100, 0), /Bad M-Bus C field 256/);
  throws(() => encodeMbusLongFrame(0x53, 0xf0, 0x5b, new Uint8Array(253)), /L = 256/);
});

Deno.test("scanMbusFrame() refuses a damaged OMS frame at once: no wait for L + 256", () => {
  const bad = fixture("netzooe_siemens-amis_1").bytes.slice();
  bad[60]! ^= 0x80;
  const scan = scanMbusFrame(bad); // not final: more bytes could come
  equal(scan.kind, "invalid");
  if (scan.kind === "invalid") {
    equal(scan.bytes, 101);
    match(scan.message, /^Bad M-Bus checksum/);
  }
  // A DLMS segment (CI 0x00..0x1F) that fails still waits: its L may have overflowed.
  const dlms = netznoe().slice();
  dlms[100]! ^= 0x10;
  equal(scanMbusFrame(dlms.subarray(0, 256)).kind, "need-more");
});

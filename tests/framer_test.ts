import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { concatBytes, fromHex, toHex } from "../lib/bytes.ts";
import { Framer, type FramerEvent, type FramerOptions } from "../lib/framing/framer.ts";
import { encodeHdlcFrame, encodeHdlcFrames } from "../lib/framing/hdlc.ts";
import { encodeMbusFrames } from "../lib/framing/mbus.ts";
import { scanRawApdu } from "../lib/framing/raw.ts";
import { type Fixture, fixture, FIXTURES } from "./fixtures.ts";

// ---------------------------------------------------------------------------------------
// Helpers

/** All events of one input fed as `chunks`, then end(). */
function run(chunks: readonly Uint8Array[], opts: FramerOptions = {}): FramerEvent[] {
  const f = new Framer(opts);
  const out: FramerEvent[] = [];
  for (const c of chunks) out.push(...f.push(c));
  out.push(...f.end());
  return out;
}

/** Events as comparable plain data (payloads as hex). */
function plain(events: readonly FramerEvent[]): unknown[] {
  return events.map((e) => e.kind === "payload" ? { ...e, payload: toHex(e.payload) } : e);
}

function payloadsOf(events: readonly FramerEvent[]): Extract<FramerEvent, { kind: "payload" }>[] {
  return events.filter((e) => e.kind === "payload");
}

const hexes = (events: readonly FramerEvent[]) => payloadsOf(events).map((p) => toHex(p.payload));
const kindsOf = (events: readonly FramerEvent[]) => events.map((e) => e.kind);
const errorsOf = (events: readonly FramerEvent[]) =>
  events.flatMap((e) => e.kind === "error" ? [e.message] : []);

/** Length of a BER-length-prefixed body at `at`: [content length, content start]. */
function ber(b: Uint8Array, at: number): [number, number] {
  const first = b[at]!;
  if (first < 0x80) return [first, at + 1];
  let n = 0;
  for (let i = 1; i <= (first & 0x7f); i++) n = n * 256 + b[at + i]!;
  return [n, at + 1 + (first & 0x7f)];
}

/** A general-glo-ciphering APDU is exactly as long as its own length field says. */
function assertWholeCiphered(apdu: Uint8Array): void {
  equal(toHex(apdu.subarray(0, 2)), "db08");
  const [n, start] = ber(apdu, 10);
  equal(apdu.length, start + n, "ciphered APDU length field");
}

/** The block data of a general-block-transfer APDU (E0 control bn(2) ack(2) len data). */
function blockData(apdu: Uint8Array): Uint8Array {
  equal(apdu[0], 0xe0);
  const [n, start] = ber(apdu, 6);
  equal(apdu.length, start + n, "block length field");
  return apdu.subarray(start);
}

/** A small deterministic PRNG (xorshift32). */
function prng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

/** Garbage bytes that cannot start any frame. */
const garbage = (n: number, seed = 1) => {
  const r = prng(seed);
  const safe = [0x00, 0x11, 0x22, 0x33, 0x55, 0x99, 0xaa, 0xbb, 0xf0];
  return Uint8Array.from({ length: n }, () => safe[r(safe.length)]!);
};

// ---------------------------------------------------------------------------------------
// Every capture

type Expectation = (events: FramerEvent[], fx: Fixture) => void;

const single = (check: (payload: Uint8Array, fx: Fixture) => void): Expectation => (events, fx) => {
  const p = payloadsOf(events);
  equal(p.length, 1);
  equal(p[0]!.offset, 0);
  check(p[0]!.payload, fx);
};

/** A Netz OÖ AMIS frame: answered first, then its OMS data (after CI) handed up whole. */
const amis: Expectation = (events, fx) => {
  deepEqual(events.map((e) => e.kind === "reply" ? [e.kind, toHex(e.bytes), e.request] : e.kind), [
    ["reply", "e5", "SND_UD"],
    "mbus-data",
  ]);
  const data = events[1]!;
  ok(data.kind === "mbus-data");
  deepEqual([data.offset, data.c, data.a, data.ci], [0, fx.bytes[4], 0xf0, 0x5b]);
  equal(toHex(data.data), toHex(fx.bytes.subarray(7, fx.bytes.length - 2)));
};

const EXPECTED: Record<
  string,
  { framing: string; frames: number[]; check: Expectation; kinds?: string[] }
> = {
  "austria_landis-gyr-e450_1": {
    framing: "hdlc",
    frames: [1, 1, 1],
    check: (events) => {
      const p = payloadsOf(events);
      deepEqual(p.map((x) => toHex(x.payload.subarray(0, 4))), [
        "e0400001",
        "e0400002",
        "e0c00003",
      ]);
      deepEqual(p.map((x) => x.offset), [0, 141, 282]);
      // The LLC was in frame 1 only; the blocks join to one whole ciphered APDU.
      const apdu = concatBytes(p.map((x) => blockData(x.payload)));
      equal(apdu.length, 272);
      assertWholeCiphered(apdu);
    },
  },
  "austria_landis-gyr-e450_4": {
    framing: "hdlc",
    frames: [1],
    // A whole HDLC frame holding block 1 of 3: incomplete only for the transfer layer.
    check: single((p) => equal(toHex(p.subarray(0, 4)), "e0400001")),
  },
  "burgenland_landis-gyr-e450_1": {
    framing: "hdlc",
    frames: [1],
    check: single((p) => assertWholeCiphered(p)),
  },
  "czech_sagemcom-xt211_1": {
    framing: "raw",
    frames: [1],
    check: single((p, fx) => equal(toHex(p), fx.hex)),
  },
  "denmark_kamstrup-omnipower_1": {
    framing: "hdlc",
    frames: [1],
    check: single((p) => assertWholeCiphered(p)),
  },
  "greenbook_glo-get-request_1": {
    framing: "raw",
    frames: [1],
    check: single((p, fx) => equal(toHex(p), fx.hex)),
  },
  "luxembourg_sagemcom-t210d-smarty_1": {
    framing: "raw",
    frames: [1],
    check: single((p, fx) => {
      equal(toHex(p), fx.hex);
      assertWholeCiphered(p);
    }),
  },
  "netznoe_kaifa-ma309_1": {
    framing: "mbus",
    frames: [2],
    check: single((p) => {
      equal(toHex(p.subarray(0, 5)), "db084b464d");
      assertWholeCiphered(p);
    }),
  },
  "netznoe_sagemcom-t210d_2": {
    framing: "mbus",
    frames: [2],
    check: single((p) => assertWholeCiphered(p)),
  },
  "netzooe_siemens-amis_1": { framing: "mbus", frames: [], kinds: [], check: amis },
  "netzooe_siemens-amis_2": { framing: "mbus", frames: [], kinds: [], check: amis },
  "netzooe_siemens-amis_3": { framing: "mbus", frames: [], kinds: [], check: amis },
  "norway_aidon_1": {
    framing: "hdlc",
    frames: [1],
    check: single((p, fx) => equal(toHex(p), toHex(fx.plaintextApdu!))),
  },
  "norway_kaifa-ma304h3e_1": {
    framing: "hdlc",
    frames: [1],
    check: single((p, fx) => equal(toHex(p), toHex(fx.plaintextApdu!))),
  },
  "salzburg_kaifa-ma309m_1": {
    framing: "raw",
    frames: [1],
    check: single((p, fx) => {
      equal(toHex(p), fx.hex);
      equal(toHex(p), toHex(fx.plaintextApdu!));
    }),
  },
  "switzerland_iskraemeco-am550_1": {
    framing: "hdlc",
    frames: [3],
    check: single((p, fx) => {
      equal(p[0], 0x0f);
      equal(toHex(p), toHex(fx.plaintextApdu!));
    }),
  },
  "switzerland_landis-gyr-e450_2": {
    framing: "hdlc",
    frames: [1, 1, 1, 1],
    check: (events, fx) => {
      const p = payloadsOf(events);
      const apdu = concatBytes(p.map((x) => blockData(x.payload)));
      equal(toHex(apdu), toHex(fx.plaintextApdu!));
    },
  },
  "vorarlberg_kaifa-ma309m_1": {
    framing: "mbus",
    frames: [2],
    check: single((p) => assertWholeCiphered(p)),
  },
  "wienernetze_landis-gyr-e450_1": {
    framing: "hdlc",
    frames: [1],
    check: single((p) => assertWholeCiphered(p)),
  },
};

Deno.test("Framer frames every capture, detecting its framing", async (t) => {
  for (const fx of FIXTURES) {
    await t.step(fx.name, () => {
      const events = run([fx.bytes]);
      const want = EXPECTED[fx.name];
      if (!want) {
        // A capture added later: at least it frames cleanly in the framing it declares.
        const framing = fx.framing === "hdlc" || fx.framing === "mbus" ? fx.framing : "raw";
        ok(payloadsOf(events).length > 0, JSON.stringify(plain(events)));
        ok(payloadsOf(events).every((p) => p.framing === framing));
        if (!fx.negative) deepEqual(errorsOf(events), []);
        return;
      }
      if (want.kinds) {
        want.check(events, fx);
        return;
      }
      deepEqual(kindsOf(events), want.frames.map(() => "payload"), JSON.stringify(plain(events)));
      deepEqual(
        payloadsOf(events).map((p) => [p.framing, p.frames]),
        want.frames.map((n) => [want.framing, n]),
      );
      want.check(events, fx);
    });
  }
});

Deno.test("Framer gives the same events however the input is chunked", async (t) => {
  for (const fx of FIXTURES) {
    await t.step(fx.name, () => {
      const whole = plain(run([fx.bytes]));
      for (let cut = 1; cut < fx.bytes.length; cut++) {
        const split = [fx.bytes.subarray(0, cut), fx.bytes.subarray(cut)];
        deepEqual(plain(run(split)), whole, `split at byte ${cut}`);
      }
      const bytewise = Array.from(fx.bytes, (b) => Uint8Array.of(b));
      deepEqual(plain(run(bytewise)), whole, "byte by byte");
    });
  }
});

// ---------------------------------------------------------------------------------------
// Resynchronisation and flags

Deno.test("Framer skips garbage before, between and after frames, one event per run", () => {
  const a = fixture("burgenland_landis-gyr-e450_1").bytes;
  const b = fixture("wienernetze_landis-gyr-e450_1").bytes;
  // Before the lock, bytes that look like starts: 7E without format, 68 with unequal
  // lengths, a 0F whose date-time field is impossible.
  const g1 = fromHex("557e1268010200aa0f0000000000ce");
  const g2 = garbage(30, 2);
  const g3 = garbage(7, 3);
  const stream = concatBytes([g1, a, g2, b, g3]);
  const events = run([stream]);
  const at2 = g1.length + a.length;
  const at3 = at2 + g2.length + b.length;
  deepEqual(kindsOf(events), ["skipped", "payload", "skipped", "payload", "skipped"]);
  deepEqual(events[0], { kind: "skipped", offset: 0, bytes: g1.length, reason: "no frame start" });
  equal((events[1] as { offset: number }).offset, g1.length);
  deepEqual(events[2], {
    kind: "skipped",
    offset: at2,
    bytes: g2.length,
    reason: "no frame start",
  });
  equal((events[3] as { offset: number }).offset, at2 + g2.length);
  deepEqual(events[4], {
    kind: "skipped",
    offset: at3,
    bytes: g3.length,
    reason: "no frame start",
  });
  deepEqual(plain(run(Array.from(stream, (x) => Uint8Array.of(x)))), plain(events));
});

Deno.test("Framer resynchronises on a capture that starts mid-frame", () => {
  const wire = fixture("austria_landis-gyr-e450_1").bytes;
  const events = run([wire.subarray(50)]);
  deepEqual(kindsOf(events), ["skipped", "payload", "payload"]);
  // Bytes 50..139 are the rest of frame 1; its closing flag (140) goes in silence.
  deepEqual(events[0], { kind: "skipped", offset: 0, bytes: 90, reason: "no frame start" });
  deepEqual(payloadsOf(events).map((p) => [p.offset, toHex(p.payload.subarray(0, 4))]), [
    [91, "e0400002"],
    [232, "e0c00003"],
  ]);
});

Deno.test("Framer reports the M-Bus segment whose chain start it missed", () => {
  const wire = fixture("netznoe_kaifa-ma309_1").bytes;
  const events = run([wire.subarray(100)]);
  deepEqual(kindsOf(events), ["skipped", "error"]);
  deepEqual(events[1], {
    kind: "error",
    framing: "mbus",
    offset: 156,
    message: "M-Bus segment 1 without segment 0 (byte 156): the start of the chain was lost",
  });
});

Deno.test("Framer takes doubled, shared and missing closing flags in silence", async (t) => {
  const apdus = [fromHex("0f0000000100020109"), fromHex("0f00000002000201090a")];
  const frames = apdus.map((a) => encodeHdlcFrame(concatBytes([fromHex("e6e700"), a])));
  const want = apdus.map(toHex);
  const strip = (f: Uint8Array) => f.subarray(0, f.length - 1);
  const cases: [string, Uint8Array][] = [
    [
      "flag fill before, doubled flags between",
      concatBytes([fromHex("7e7e7e"), frames[0]!, fromHex("7e7e"), frames[1]!]),
    ],
    ["one flag shared by two frames", concatBytes([strip(frames[0]!), frames[1]!])],
    ["closing flags missing everywhere", concatBytes([strip(frames[0]!), strip(frames[1]!)])],
  ];
  for (const [name, stream] of cases) {
    await t.step(name, () => {
      const events = run([stream]);
      deepEqual(kindsOf(events), ["payload", "payload"]);
      deepEqual(hexes(events), want);
    });
  }
  await t.step("missing closing flag before garbage: only the garbage is skipped", () => {
    const events = run([concatBytes([strip(frames[0]!), garbage(5)])]);
    deepEqual(plain(events).slice(1), [{
      kind: "skipped",
      offset: frames[0]!.length - 1,
      bytes: 5,
      reason: "no frame start",
    }]);
  });
  await t.step("a flag followed by garbage after a frame is its closing flag", () => {
    const events = run([concatBytes([frames[0]!, garbage(5)])]);
    deepEqual(plain(events).slice(1), [{
      kind: "skipped",
      offset: frames[0]!.length,
      bytes: 5,
      reason: "no frame start",
    }]);
  });
});

// ---------------------------------------------------------------------------------------
// Segmentation

Deno.test("Framer joins HDLC S-bit segments into one payload", () => {
  const apdu = Uint8Array.from({ length: 1000 }, (_, i) => (i * 31) & 0xff);
  apdu[0] = 0x0f;
  const frames = encodeHdlcFrames(apdu, { maxInfo: 100 });
  equal(frames.length, 11);
  const events = run(frames);
  deepEqual(plain(events), [{
    kind: "payload",
    framing: "hdlc",
    payload: toHex(apdu),
    offset: 0,
    frames: 11,
  }]);
});

Deno.test("Framer reports M-Bus segments out of order and a lost final segment", async (t) => {
  const apdu = (seed: number) => Uint8Array.from({ length: 500 }, (_, i) => (i * seed) & 0xff);
  const f = encodeMbusFrames(apdu(3), { maxData: 200 });
  const g = encodeMbusFrames(apdu(5), { maxData: 200 });
  const at = (frames: Uint8Array[], n: number) =>
    frames.slice(0, n).reduce((s, x) => s + x.length, 0);
  await t.step("segments 0, 2, 1", () => {
    const events = run([f[0]!, f[2]!, f[1]!]);
    deepEqual(errorsOf(events), [
      `M-Bus segment out of order: expected segment 1, got segment 2 (byte ${
        at(f, 1)
      }): a segment was lost or damaged`,
      `M-Bus segment 1 without segment 0 (byte ${
        f[0]!.length + f[2]!.length
      }): the start of the chain was lost`,
    ]);
    deepEqual(hexes(events), []);
  });
  await t.step("final segment lost, next push whole", () => {
    const events = run([f[0]!, f[1]!, ...g]);
    deepEqual(kindsOf(events), ["error", "payload"]);
    equal(
      errorsOf(events)[0],
      `Incomplete M-Bus segment chain: segment 0 at byte ${
        at(f, 2)
      } began a new one after segments 0..1 (byte 0): the final segment was lost`,
    );
    deepEqual(hexes(events), [toHex(apdu(5))]);
  });
  await t.step("input ends before the final segment", () => {
    deepEqual(errorsOf(run([f[0]!, f[1]!])), [
      "Input ends inside an M-Bus segment chain: segments 0..1 (400 bytes), the final one missing (byte 0): the input was cut off",
    ]);
  });
});

Deno.test("Framer handles the M-Bus L-field overflow (68 01 01 68) however it is chunked", () => {
  const apdu = Uint8Array.from({ length: 400 }, (_, i) => (i * 11 + 3) & 0xff);
  const frames = encodeMbusFrames(apdu, { maxData: 252, overflowLength: true });
  equal(toHex(frames[0]!.subarray(0, 4)), "68010168");
  const stream = concatBytes(frames);
  const want = [{ kind: "payload", framing: "mbus", payload: toHex(apdu), offset: 0, frames: 2 }];
  deepEqual(plain(run([stream])), want);
  for (let cut = 1; cut < stream.length; cut += 7) {
    deepEqual(plain(run([stream.subarray(0, cut), stream.subarray(cut)])), want, `cut ${cut}`);
  }
  deepEqual(plain(run(Array.from(stream, (b) => Uint8Array.of(b)))), want);
});

// ---------------------------------------------------------------------------------------
// Damaged frames

Deno.test("Framer reports a bad HDLC FCS with both values and decodes the next frame", () => {
  const a = fixture("burgenland_landis-gyr-e450_1").bytes.slice();
  const b = fixture("wienernetze_landis-gyr-e450_1").bytes;
  const sent = a[a.length - 3]! | (a[a.length - 2]! << 8);
  a[50]! ^= 0x04;
  const events = run([a, b]);
  // The damaged frame is dropped whole: the ciphered APDU inside it is not taken for a
  // bare APDU (it could decode to wrong values).
  deepEqual(kindsOf(events), ["error", "payload"]);
  const e = events[0]!;
  ok(e.kind === "error");
  equal(e.framing, "hdlc");
  equal(e.offset, 0);
  match(
    e.message,
    new RegExp(
      `^Bad HDLC frame checksum: computed 0x[0-9a-f]{4}, frame says 0x${
        sent.toString(16).padStart(4, "0")
      } \\(byte 0\\): damaged frame or wrong baud rate/parity$`,
    ),
  );
  equal((events[1] as { offset: number }).offset, a.length);
});

Deno.test("Framer drops the rest of an HDLC chain whose segment failed", () => {
  const fx = fixture("switzerland_iskraemeco-am550_1");
  const wire = fx.bytes.slice();
  wire[60]! ^= 0x80; // inside segment 1 of 3
  const events = run([wire, fixture("norway_aidon_1").bytes]);
  deepEqual(kindsOf(events), ["error", "skipped", "skipped", "payload"]);
  match(errorsOf(events)[0]!, /^Bad HDLC frame checksum/);
  deepEqual(
    events.slice(1, 3).map((e) => e.kind === "skipped" && e.reason),
    ["rest of a failed HDLC segment chain", "rest of a failed HDLC segment chain"],
  );
});

Deno.test("Framer reports a bad M-Bus checksum and drops the rest of that chain", () => {
  const wire = fixture("netznoe_kaifa-ma309_1").bytes.slice();
  wire[100]! ^= 0x01;
  const events = run([wire]);
  deepEqual(kindsOf(events), ["error", "skipped"]);
  match(
    errorsOf(events)[0]!,
    /^Bad M-Bus checksum: computed 0x[0-9a-f]{2}, frame says 0x[0-9a-f]{2} \(byte 0\): damaged frame/,
  );
  deepEqual(events[1], {
    kind: "skipped",
    offset: 256,
    bytes: 26,
    reason: "rest of a failed M-Bus segment chain",
  });
});

Deno.test("Framer finds a real frame inside the span a false header announced", () => {
  // Garbage that ends like an M-Bus header, then a whole good push: the false header
  // announces 250 bytes that reach into the real frame. Only the start byte is dropped, so
  // the real frame is still found.
  const good = fixture("netznoe_kaifa-ma309_1").bytes;
  const garbage = Uint8Array.of(0x11, 0x22, 0x68, 0xfa, 0xfa, 0x68, 0x53, 0xff);
  const events = run([garbage, good]);
  const payloads = events.filter((e) => e.kind === "payload");
  equal(payloads.length, 1);
  equal((payloads[0] as { offset: number }).offset, garbage.length);
  equal(errorsOf(events).length, 1);
  match(errorsOf(events)[0]!, /^Bad M-Bus/);
});

Deno.test("Framer reports an M-Bus frame with a CI other than DLMS", () => {
  // 68 06 06 68 | 08 72 72 | 01 02 03 | CS F2 | 16
  const events = run([fromHex("680606680872720102" + "03f216")]);
  deepEqual(errorsOf(events), [
    "Unsupported M-Bus CI field 0x72 (byte 0): neither a DLMS segment (CI 0x00..0x1F) nor OMS data (CI 0x5B); the meter sends classic M-Bus data, which is not decoded here",
  ]);
});

Deno.test("Framer skips frames that carry no APDU: E5, M-Bus short frames, HDLC without info", () => {
  deepEqual(plain(run([fromHex("e5")])), [
    { kind: "skipped", offset: 0, bytes: 1, reason: "M-Bus single character E5 (acknowledgement)" },
  ]);
  deepEqual(plain(run([fromHex("105bfe5916")])), [
    { kind: "skipped", offset: 0, bytes: 5, reason: "M-Bus short frame (no APDU)" },
  ]);
  // A run of skips with different reasons is one event, its reason the generic one.
  deepEqual(plain(run([fromHex("e5105bfe591655")])), [
    { kind: "skipped", offset: 0, bytes: 7, reason: "no frame start" },
  ]);
  // A frame without information is a frame: reported on its own, never merged.
  deepEqual(plain(run([fromHex("55"), encodeHdlcFrame(new Uint8Array(0)), fromHex("55")])), [
    { kind: "skipped", offset: 0, bytes: 1, reason: "no frame start" },
    { kind: "skipped", offset: 1, bytes: 8, reason: "HDLC frame without information field" },
    { kind: "skipped", offset: 10, bytes: 1, reason: "no frame start" },
  ]);
});

Deno.test("Framer.end() reports a partial frame, never dropping it in silence", async (t) => {
  const cases: [string, Uint8Array, string[]][] = [
    [
      "HDLC frame",
      fixture("austria_landis-gyr-e450_4").bytes.subarray(0, 40),
      ["Input ends inside an HDLC frame: 40 of 141 bytes (byte 0): the input was cut off"],
    ],
    [
      "HDLC chain, then part of a frame",
      fixture("switzerland_iskraemeco-am550_1").bytes.subarray(0, 166 + 40),
      [
        "Input ends inside an HDLC segment chain: 1 segment (151 bytes) with the S bit set, the last one missing, then 40 of 166 bytes of the next frame (byte 0): the input was cut off",
      ],
    ],
    [
      "HDLC chain between frames",
      fixture("switzerland_iskraemeco-am550_1").bytes.subarray(0, 166),
      [
        "Input ends inside an HDLC segment chain: 1 segment (151 bytes) with the S bit set, the last one missing (byte 0): the input was cut off",
      ],
    ],
    [
      "M-Bus frame",
      fixture("netznoe_kaifa-ma309_1").bytes.subarray(0, 100),
      ["Input ends inside an M-Bus frame: 100 of 256 bytes (byte 0): the input was cut off"],
    ],
    [
      "raw APDU with a length field",
      fixture("luxembourg_sagemcom-t210d-smarty_1").bytes.subarray(0, 100),
      ["Input ends inside a raw APDU: 100 of 647 bytes (byte 0): the input was cut off"],
    ],
    [
      "raw data-notification",
      fixture("salzburg_kaifa-ma309m_1").bytes.subarray(0, 100),
      ["Input ends inside a raw APDU: 100 bytes, the rest missing (byte 0): the input was cut off"],
    ],
  ];
  for (const [name, bytes, messages] of cases) {
    await t.step(name, () => deepEqual(errorsOf(run([bytes])), messages));
  }
  await t.step("a header too short to judge is skipped, not an error", () => {
    deepEqual(plain(run([fromHex("7e")])), []);
    deepEqual(plain(run([fromHex("7ea0")])), [
      { kind: "skipped", offset: 0, bytes: 2, reason: "no frame start" },
    ]);
    deepEqual(plain(run([fromHex("7ea08bce")])).length, 1);
    deepEqual(plain(run([fromHex("68fafa")])), [
      { kind: "skipped", offset: 0, bytes: 3, reason: "no frame start" },
    ]);
  });
});

Deno.test("Framer drops a partial frame after a silence gap", () => {
  const wire = fixture("austria_landis-gyr-e450_1").bytes;
  const f = new Framer({ gapMs: 1000 });
  deepEqual(f.push(wire.subarray(0, 100), 5000), []);
  const events = f.push(wire.subarray(100), 6200);
  deepEqual(events[0], {
    kind: "error",
    framing: "hdlc",
    offset: 0,
    message:
      "Incomplete HDLC frame dropped after 1.2 s of silence: 100 of 141 bytes (byte 0): bytes were lost or the meter stopped sending mid-frame",
  });
  deepEqual(kindsOf(events), ["error", "skipped", "payload", "payload"]);
  deepEqual(payloadsOf(events).map((p) => p.offset), [141, 282]);
  deepEqual(f.end(), []);
});

Deno.test("Framer drops an M-Bus segment chain after a silence gap", () => {
  const wire = fixture("netznoe_kaifa-ma309_1").bytes;
  const f = new Framer();
  deepEqual(f.push(wire.subarray(0, 256), 0), []);
  deepEqual(errorsOf(f.push(wire.subarray(256), 1200)), [
    "Incomplete M-Bus segment chain dropped after 1.2 s of silence: segments 0..0 (245 bytes), the final one missing (byte 0): bytes were lost or the meter stopped sending mid-frame",
    "M-Bus segment 1 without segment 0 (byte 256): the start of the chain was lost",
  ]);
});

Deno.test("Framer keeps a frame whose pauses stay within gapMs, or without times", () => {
  const wire = fixture("netznoe_kaifa-ma309_1").bytes;
  const within = new Framer({ gapMs: 1000 });
  within.push(wire.subarray(0, 100), 0);
  within.push(wire.subarray(100, 256), 1000);
  equal(payloadsOf(within.push(wire.subarray(256), 2000)).length, 1);
  const untimed = new Framer({ gapMs: 1 });
  untimed.push(wire.subarray(0, 100));
  equal(payloadsOf(untimed.push(wire.subarray(100))).length, 1);
});

Deno.test("Framer.push() with an empty chunk works as a timer tick", () => {
  const wire = fixture("burgenland_landis-gyr-e450_1").bytes;
  const f = new Framer({ gapMs: 500 });
  f.push(wire.subarray(0, 30), 100);
  deepEqual(f.push(new Uint8Array(0), 600), []);
  deepEqual(errorsOf(f.push(new Uint8Array(0), 700)), [
    "Incomplete HDLC frame dropped after 0.6 s of silence: 30 of 120 bytes (byte 0): bytes were lost or the meter stopped sending mid-frame",
  ]);
  equal(f.bufferedBytes, 0);
});

// ---------------------------------------------------------------------------------------
// Bounds

Deno.test("Framer reports a frame longer than its buffer and drops it as it streams by", async (t) => {
  const big = fixture("burgenland_landis-gyr-e450_1").bytes; // 120 bytes with both flags
  const small = encodeHdlcFrame(fromHex("e6e7000f0000000100020109"));
  const want = [
    {
      kind: "error",
      framing: "hdlc",
      offset: 0,
      message:
        "HDLC frame too long for the buffer: 120 bytes, maxBufferBytes is 64 (byte 0): raise maxBufferBytes, or a damaged length field",
    },
    { kind: "payload", framing: "hdlc", payload: "0f0000000100020109", offset: 120, frames: 1 },
  ];
  await t.step("in one chunk", () => {
    deepEqual(plain(run([concatBytes([big, small])], { maxBufferBytes: 64 })), want);
  });
  await t.step("byte by byte", () => {
    const bytes = concatBytes([big, small]);
    deepEqual(plain(run(Array.from(bytes, (b) => Uint8Array.of(b)), { maxBufferBytes: 64 })), want);
  });
  await t.step("M-Bus", () => {
    const events = run([fixture("netznoe_kaifa-ma309_1").bytes], { maxBufferBytes: 64 });
    deepEqual(plain(events), [
      {
        kind: "error",
        framing: "mbus",
        offset: 0,
        message:
          "M-Bus frame too long for the buffer: 256 bytes, maxBufferBytes is 64 (byte 0): raise maxBufferBytes, or a damaged length field",
      },
      { kind: "skipped", offset: 256, bytes: 26, reason: "rest of a failed M-Bus segment chain" },
    ]);
  });
});

Deno.test("Framer never holds more than maxBufferBytes and reports long garbage in pieces", () => {
  const r = prng(7);
  const f = new Framer({ maxBufferBytes: 256 });
  let skipped = 0;
  for (let i = 0; i < 200; i++) {
    const chunk = Uint8Array.from({ length: 1 + r(700) }, () => r(256));
    for (const e of f.push(chunk)) {
      if (e.kind === "skipped") {
        skipped += e.bytes;
        ok(e.bytes <= 2 * 256, `a skipped event of ${e.bytes} bytes`);
      }
    }
    ok(f.bufferedBytes <= 256, `${f.bufferedBytes} bytes buffered`);
  }
  ok(skipped > 0);
});

Deno.test("Framer bounds a reassembled payload by maxPayloadBytes", () => {
  const apdu = new Uint8Array(500).fill(0x11);
  apdu[0] = 0x0f;
  const events = run(encodeHdlcFrames(apdu, { maxInfo: 100 }), { maxPayloadBytes: 300 });
  deepEqual(errorsOf(events), [
    "HDLC payload too long: its segments add up to more than 300 bytes (byte 0): final segments lost or a damaged S bit",
  ]);
  deepEqual(hexes(events), []);
});

// ---------------------------------------------------------------------------------------
// Detection rules

Deno.test("Framer locks to HDLC after a good frame: bare APDUs are garbage from then on", () => {
  const raw = fixture("salzburg_kaifa-ma309m_1").bytes;
  const hdlc = fixture("wienernetze_landis-gyr-e450_1").bytes;
  deepEqual(payloadsOf(run([raw])).map((p) => p.framing), ["raw"]);
  const f = new Framer();
  const events = [...f.push(concatBytes([hdlc, raw]))];
  equal(f.lockedFraming, "hdlc");
  events.push(...f.end());
  deepEqual(kindsOf(events), ["payload", "skipped"]);
  deepEqual(events[1], {
    kind: "skipped",
    offset: hdlc.length,
    bytes: raw.length,
    reason: "no frame start",
  });
  f.reset();
  equal(f.lockedFraming, null);
  deepEqual(payloadsOf(f.push(raw)).map((p) => p.framing), ["raw"]);
});

Deno.test("Framer locked to M-Bus still takes HDLC frames, but no bare APDUs", () => {
  // A capture may hold both checksummed framings (two meters, two captures joined): the
  // lock only ends bare-APDU guesses, which have no checksum.
  const f = new Framer();
  f.push(fixture("vorarlberg_kaifa-ma309m_1").bytes);
  equal(f.lockedFraming, "mbus");
  const events = [
    ...f.push(fixture("wienernetze_landis-gyr-e450_1").bytes),
    ...f.push(fixture("salzburg_kaifa-ma309m_1").bytes),
    ...f.end(),
  ];
  deepEqual(kindsOf(events), ["payload", "skipped"]);
  equal((events[0] as { framing: string }).framing, "hdlc");
});

Deno.test("Framer refuses a bare-APDU guess that would swallow a checksummed frame", () => {
  // DB 08 "LGZ" ... declares 200 bytes; an HDLC frame starts inside them.
  const fake = fromHex("db084c475a000000000081c8300000000001");
  const frame = fixture("burgenland_landis-gyr-e450_1").bytes;
  const tail = garbage(200, 9);
  const events = run([concatBytes([fake, frame, tail])]);
  deepEqual(kindsOf(events), ["skipped", "payload", "skipped"]);
  deepEqual(events[0], {
    kind: "skipped",
    offset: 0,
    bytes: fake.length,
    reason: "no frame start", // "raw APDU candidate overlaps a checksummed frame", then garbage
  });
  equal((events[1] as { framing: string }).framing, "hdlc");
  // Without a link frame inside, the same bytes are taken as a bare APDU.
  const alone = run([concatBytes([fake, garbage(200, 9)])]);
  deepEqual(payloadsOf(alone).map((p) => [p.framing, p.payload.length]), [["raw", 212]]);
  // And with only the start of the frame inside, byte by byte, the guess is still refused.
  const bytewise = Array.from(concatBytes([fake, frame, tail]), (b) => Uint8Array.of(b));
  deepEqual(plain(run(bytewise)), plain(events));
});

Deno.test("Framer tries weakly checked APDU forms only where a frame may begin", () => {
  const glo = fixture("greenbook_glo-get-request_1").bytes; // C8 ...
  deepEqual(payloadsOf(run([glo])).length, 1, "at the start");
  deepEqual(payloadsOf(run([glo, glo])).length, 2, "right after a frame");
  deepEqual(payloadsOf(run([garbage(3), glo])).length, 0, "right after garbage");
  const f = new Framer();
  f.push(garbage(3), 0);
  equal(payloadsOf(f.push(glo, 5000)).length, 1, "after a silence gap");
});

Deno.test("scanRawApdu() checks headers so that garbage rarely passes", async (t) => {
  const cases: [string, string, RegExp][] = [
    ["system title length", "db07", /without an 8-byte system title/],
    ["manufacturer id", "db084c015a", /without a manufacturer id/],
    ["security control", "db084c475a67730000001040", /implausible security control byte 0x40/],
    ["security control with compression", "c81eb0", /implausible security control byte 0xb0/],
    ["content too short for a tag", "c8103001234567", /shorter than its security header/],
    ["bad BER length", "c88530", /bad BER length/],
    ["block number 0", "e0c00000000010", /implausible block numbers/],
    ["acknowledged block ahead", "e0c00002000310", /implausible block numbers/],
    ["block 1 not starting an APDU", "e0400001000003550000", /block 1 does not start with an APDU/],
    ["date-time form", "0f0000000105", /without a valid date-time field/],
    ["date-time month 13", "0f000000010c07e80d01", /implausible date-time/],
    ["body type", "0f000000010011", /not an array, structure or octet-string/],
    ["body A-XDR", "0f0000000100020207ff", /not valid A-XDR/],
    ["other tags", "c0", /not an APDU tag/],
  ];
  for (const [name, hex, reason] of cases) {
    await t.step(name, () => {
      const bytes = fromHex(hex.padEnd(40, "0").slice(0, Math.max(hex.length, 40)));
      const scan = scanRawApdu(
        bytes.subarray(0, hex.length / 2 + (name === "date-time month 13" ? 12 : 0)),
      );
      if (scan.kind !== "skip") throw new Error(`expected skip, got ${JSON.stringify(scan)}`);
      match(scan.reason, reason);
    });
  }
});

Deno.test("scanRawApdu() measures a data-notification by decoding it", () => {
  const apdu = fixture("salzburg_kaifa-ma309m_1").bytes;
  deepEqual(scanRawApdu(concatBytes([apdu, garbage(10)])), {
    kind: "frame",
    tag: 0x0f,
    bytes: apdu.length,
  });
  // Any prefix past the header is a credible "need more" (an element count beyond the
  // bytes so far is not a reason to give up), with a length the APDU has at least: more
  // than is there, never more than it really is.
  for (let n = 24; n < apdu.length; n++) {
    const scan = scanRawApdu(apdu.subarray(0, n));
    if (scan.kind !== "need-more") throw new Error(`${n} bytes: ${JSON.stringify(scan)}`);
    equal(scan.credible, true, `${n} bytes`);
    ok(scan.atLeast !== undefined && scan.atLeast > n && scan.atLeast <= apdu.length, `${n} bytes`);
  }
  deepEqual(
    scanRawApdu(apdu, 0, { maxLength: 100 }),
    { kind: "skip", bytes: 1, reason: "raw APDU longer than the 100-byte limit" },
  );
});

Deno.test("scanRawApdu() can leave out the weakly checked forms", () => {
  const glo = fixture("greenbook_glo-get-request_1").bytes;
  deepEqual(scanRawApdu(glo), { kind: "frame", tag: 0xc8, bytes: 32 });
  deepEqual(scanRawApdu(glo, 0, { weakForms: false }), {
    kind: "skip",
    bytes: 1,
    reason: "weakly checked APDU form away from a frame boundary",
  });
});

// ---------------------------------------------------------------------------------------
// Options and state

Deno.test("new Framer() refuses bad options", async (t) => {
  const cases: [string, FramerOptions, RegExp][] = [
    ["gapMs", { gapMs: -1 }, /Bad gapMs -1: must be a number >= 0/],
    ["gapMs NaN", { gapMs: NaN }, /Bad gapMs NaN/],
    ["maxBufferBytes", { maxBufferBytes: 63 }, /Bad maxBufferBytes 63: must be an integer >= 64/],
    [
      "maxPayloadBytes",
      { maxPayloadBytes: 0 },
      /Bad maxPayloadBytes 0: must be a positive integer/,
    ],
  ];
  for (const [name, opts, message] of cases) {
    await t.step(name, () => throws(() => new Framer(opts), message));
  }
});

Deno.test("Framer.reset() forgets a partial frame and restarts offsets", () => {
  const wire = fixture("burgenland_landis-gyr-e450_1").bytes;
  const f = new Framer();
  f.push(wire.subarray(0, 50));
  f.reset();
  equal(f.bufferedBytes, 0);
  const events = [...f.push(wire), ...f.end()];
  deepEqual(payloadsOf(events).map((p) => p.offset), [0]);
  deepEqual(errorsOf(events), []);
});

// ---------------------------------------------------------------------------------------
// Fuzz

Deno.test("Framer.push() never throws and stays bounded on random and mutated input", () => {
  const r = prng(20240501);
  const sources = FIXTURES.map((f) => f.bytes);
  let payloads = 0;
  for (let round = 0; round < 3000; round++) {
    let input: Uint8Array;
    const kind = r(4);
    if (kind === 0) {
      input = Uint8Array.from({ length: r(600) }, () => r(256));
    } else {
      const parts = [sources[r(sources.length)]!, sources[r(sources.length)]!];
      input = concatBytes(kind === 1 ? parts : parts.slice(0, 1)).slice();
      const flips = r(4);
      for (let i = 0; i < flips && input.length > 0; i++) input[r(input.length)] = r(256);
      if (kind === 3 && input.length > 0) {
        const at = r(input.length);
        input = concatBytes([
          input.subarray(0, at),
          Uint8Array.from({ length: r(20) }, () => r(256)),
          input.subarray(at + r(20)),
        ]);
      }
    }
    const maxBufferBytes = [64, 100, 300, 8192][r(4)]!;
    const maxPayloadBytes = [16, 200, 65536][r(3)]!;
    const f = new Framer({ maxBufferBytes, maxPayloadBytes, gapMs: 50 });
    const timed = r(2) === 0;
    let now = 0;
    let at = 0;
    const events: FramerEvent[] = [];
    while (at < input.length) {
      const n = 1 + r(80);
      now += r(60);
      events.push(...f.push(input.subarray(at, at + n), timed ? now : undefined));
      at += n;
      ok(f.bufferedBytes <= maxBufferBytes, `round ${round}: ${f.bufferedBytes} buffered`);
      ok(f.pendingPayloadBytes <= maxPayloadBytes, `round ${round}: pending payload`);
    }
    events.push(...f.end());
    equal(f.bufferedBytes, 0);
    for (const e of events) {
      ok(e.offset >= 0 && e.offset <= input.length, `round ${round}: offset ${e.offset}`);
      if (e.kind === "payload") {
        payloads++;
        ok(e.payload.length <= maxPayloadBytes, `round ${round}: payload ${e.payload.length}`);
      }
      if (e.kind === "skipped") ok(e.bytes > 0);
    }
  }
  ok(payloads > 100, `only ${payloads} payloads: the fuzz input is not exercising frames`);
});

// ---------------------------------------------------------------------------------------
// Answers to an M-Bus master (Netz OÖ AMIS) and the echo of an IR head

const SND_NKE = fromHex("1040f03016");
const ACK = fromHex("e5");
const amisFrame = (n: 1 | 2 | 3) => fixture(`netzooe_siemens-amis_${n}`).bytes;

/** Events as short labels: the answers, echoes, data and skips in order. */
function labels(events: readonly FramerEvent[]): string[] {
  return events.map((e) => {
    switch (e.kind) {
      case "reply":
        return `reply ${toHex(e.bytes)} ${e.request} @${e.offset}`;
      case "echo":
        return `echo ${e.bytes} @${e.offset}`;
      case "mbus-data":
        return `mbus-data ${e.data.length} @${e.offset}`;
      case "skipped":
        return `skipped ${e.bytes} @${e.offset}: ${e.reason}`;
      case "error":
        return `error @${e.offset}: ${e.message}`;
      case "payload":
        return `payload ${e.framing} @${e.offset}`;
    }
  });
}

Deno.test("Framer answers the AMIS search SND_NKE and each SND_UD at address F0", () => {
  const stream = concatBytes([SND_NKE, amisFrame(1), amisFrame(2)]);
  deepEqual(labels(run([stream])), [
    "reply e5 SND_NKE @0",
    "reply e5 SND_UD @5",
    "mbus-data 92 @5",
    "reply e5 SND_UD @106",
    "mbus-data 92 @106",
  ]);
});

Deno.test("Framer answers a frame on the chunk that brings its last byte, not before", () => {
  const f = new Framer();
  const frame = amisFrame(3);
  for (let i = 0; i < frame.length - 1; i++) {
    deepEqual(f.push(frame.subarray(i, i + 1)), [], `byte ${i}`);
  }
  deepEqual(labels(f.push(frame.subarray(frame.length - 1))), [
    "reply e5 SND_UD @0",
    "mbus-data 92 @0",
  ]);
  const g = new Framer();
  deepEqual(g.push(SND_NKE.subarray(0, 4)), []);
  deepEqual(labels(g.push(SND_NKE.subarray(4))), ["reply e5 SND_NKE @0"]);
});

Deno.test("Framer answers nothing else: other addresses, REQ_UD2, broadcasts, bad checksums", async (t) => {
  const cases: [string, Uint8Array, string[]][] = [
    ["SND_NKE to another slave", fromHex("1040014116"), [
      "skipped 5 @0: M-Bus short frame (no APDU)",
    ]],
    ["REQ_UD2 to F0", fromHex("107bf06b16"), ["skipped 5 @0: M-Bus short frame (no APDU)"]],
    ["a DLMS push to the broadcast address", fixture("netznoe_kaifa-ma309_1").bytes, [
      "payload mbus @0",
    ]],
  ];
  for (const [name, bytes, want] of cases) {
    await t.step(name, () => deepEqual(labels(run([bytes])), want));
  }
  await t.step("a SND_UD to F0 with a bad checksum", () => {
    const bad = amisFrame(1).slice();
    bad[50]! ^= 0x01;
    const events = run([bad]);
    deepEqual(events.filter((e) => e.kind === "reply"), []);
    match(errorsOf(events)[0]!, /^Bad M-Bus checksum/);
  });
  await t.step("with replyAddress null", () => {
    deepEqual(labels(run([SND_NKE, amisFrame(1)], { replyAddress: null })), [
      "skipped 5 @0: M-Bus short frame (no APDU)",
      "mbus-data 92 @5",
    ]);
  });
});

Deno.test("Framer takes the echo of its own E5 as an echo, never as garbage", () => {
  // Search, answer echoed; data, answer echoed; data, answer echoed.
  const stream = concatBytes([SND_NKE, ACK, amisFrame(1), ACK, amisFrame(2), ACK]);
  const want = [
    "reply e5 SND_NKE @0",
    "echo 1 @5",
    "reply e5 SND_UD @6",
    "mbus-data 92 @6",
    "echo 1 @107",
    "reply e5 SND_UD @108",
    "mbus-data 92 @108",
    "echo 1 @209",
  ];
  deepEqual(labels(run([stream])), want);
  // However the bytes come: the echo alone, or in one chunk with the next frame.
  for (let cut = 1; cut < stream.length; cut++) {
    deepEqual(labels(run([stream.subarray(0, cut), stream.subarray(cut)])), want, `cut ${cut}`);
  }
});

Deno.test("Framer parses the frame after an echo as if the echo had not come", () => {
  const push = fixture("netznoe_kaifa-ma309_1").bytes;
  const stream = concatBytes([SND_NKE, ACK, push]);
  const want = ["reply e5 SND_NKE @0", "echo 1 @5", "payload mbus @6"];
  deepEqual(labels(run([stream])), want);
  const bytewise = Array.from(stream, (b) => Uint8Array.of(b));
  deepEqual(labels(run(bytewise)), want);
  // An echo cut short by the next frame's first byte is no echo: nothing is lost.
  deepEqual(labels(run([concatBytes([SND_NKE, amisFrame(1)])])), [
    "reply e5 SND_NKE @0",
    "reply e5 SND_UD @5",
    "mbus-data 92 @5",
  ]);
});

Deno.test("Framer counts an E5 as an echo only right after its answer", () => {
  // No answer before it: a stray E5 is skipped, as always.
  deepEqual(labels(run([ACK])), [
    "skipped 1 @0: M-Bus single character E5 (acknowledgement)",
  ]);
  // A second E5: only the first is the echo.
  deepEqual(labels(run([concatBytes([SND_NKE, ACK, ACK])])), [
    "reply e5 SND_NKE @0",
    "echo 1 @5",
    "skipped 1 @6: M-Bus single character E5 (acknowledgement)",
  ]);
  // Garbage first, then the E5: no echo any more.
  deepEqual(labels(run([concatBytes([SND_NKE, fromHex("55"), ACK])])), [
    "reply e5 SND_NKE @0",
    "skipped 2 @5: no frame start",
  ]);
  // After a silence gap the E5 is no echo either.
  const f = new Framer({ gapMs: 100 });
  deepEqual(labels(f.push(SND_NKE, 0)), ["reply e5 SND_NKE @0"]);
  deepEqual(labels([...f.push(ACK, 500), ...f.end()]), [
    "skipped 1 @5: M-Bus single character E5 (acknowledgement)",
  ]);
});

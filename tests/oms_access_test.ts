import { deepEqual, equal, throws } from "node:assert/strict";
import { ParseError } from "../lib/errors.ts";
import { AccessGuard } from "../lib/oms/access.ts";

const METER = "2d4c00000000010e";
const isReplay = (e: unknown) => e instanceof ParseError && e.layer === "counter";

/** A meter sending one telegram a second from clock `t0`, access numbers from `a0`. */
function* telegrams(a0: number, t0: number, n: number) {
  for (let i = 0; i < n; i++) yield { access: (a0 + i) % 256, clock: t0 + i };
}

Deno.test("AccessGuard accepts a meter whose 8-bit access number wraps, again and again", () => {
  const g = new AccessGuard();
  for (const { access, clock } of telegrams(200, 1000, 600)) g.check(METER, access, clock);
  deepEqual(g.last(METER), { access: (200 + 599) % 256, clock: 1599 });
});

Deno.test("AccessGuard accepts a meter that restarted with another access number", () => {
  const g = new AccessGuard();
  g.check(METER, 100, 5000);
  g.check(METER, 101, 5001);
  // Power cut: the meter starts again at 0, its clock (battery-backed) ran on.
  g.check(METER, 0, 5400);
  g.check(METER, 1, 5401);
  // And a restart to a number just behind the last one.
  g.check(METER, 0, 5500);
  equal(g.last(METER)?.access, 0);
});

Deno.test("AccessGuard refuses the same telegram twice, and an older one", () => {
  const g = new AccessGuard();
  g.check(METER, 12, 1000);
  g.check(METER, 13, 1001);
  throws(
    () => g.check(METER, 13, 1001),
    (e) =>
      isReplay(e) &&
      (e as Error).message ===
        `Replayed OMS telegram from meter address ${METER}: access number 13, the same meter time as the last accepted telegram (access number 13): frame dropped (counter, byte 0)`,
  );
  throws(
    () => g.check(METER, 200, 900),
    (e) =>
      isReplay(e) &&
      /access number 200, meter time 101 s before the last accepted telegram \(access number 13\)/
        .test((e as Error).message),
  );
  // A refused telegram leaves the state alone.
  deepEqual(g.last(METER), { access: 13, clock: 1001 });
  g.check(METER, 14, 1002);
});

Deno.test("AccessGuard lets the meter set its clock back: the very next access number passes", () => {
  const g = new AccessGuard();
  g.check(METER, 50, 10_000);
  g.check(METER, 51, 9_990); // clock corrected by 10 s
  g.check(METER, 52, 9_991);
  throws(() => g.check(METER, 60, 9_000), isReplay);
  equal(g.last(METER)?.access, 52);
});

Deno.test("AccessGuard without a clock refuses only a repeated access number", () => {
  const g = new AccessGuard();
  g.check(METER, 5, null);
  throws(
    () => g.check(METER, 5, null),
    (e) => isReplay(e) && /which had no valid meter time/.test((e as Error).message),
  );
  g.check(METER, 4, null);
  g.check(METER, 200, 3000);
  throws(() => g.check(METER, 200, null), isReplay);
  g.check(METER, 201, null);
});

Deno.test("AccessGuard keeps meters apart and forgets the least recent beyond its size", () => {
  const g = new AccessGuard(2);
  g.check("a", 1, 10);
  g.check("b", 1, 10);
  g.check("a", 2, 11); // a is now the most recent
  g.check("c", 1, 10); // evicts b
  equal(g.size, 2);
  equal(g.last("b"), undefined);
  g.check("b", 1, 10); // a stranger again: accepted
  throws(() => g.check("c", 1, 10), isReplay);
  throws(() => g.check(METER, 256, 1), /Bad access number 256/);
});

Deno.test("AccessGuard survives toJSON() / fromJSON(): a restart lets no old telegram in", () => {
  const g = new AccessGuard();
  g.check("a", 7, 100);
  g.check(METER, 13, 1001);
  const json = JSON.parse(JSON.stringify(g));
  deepEqual(json, {
    version: 1,
    meters: { a: { access: 7, clock: 100 }, [METER]: { access: 13, clock: 1001 } },
  });
  const restored = AccessGuard.fromJSON(json);
  throws(() => restored.check(METER, 13, 1001), isReplay);
  throws(() => restored.check(METER, 250, 900), isReplay);
  restored.check(METER, 14, 1002);
  // Recency order survives too: with room for one, the most recent (METER) is kept.
  const small = AccessGuard.fromJSON(json, 1);
  deepEqual([small.size, small.last("a"), small.last(METER)], [1, undefined, {
    access: 13,
    clock: 1001,
  }]);
});

Deno.test("AccessGuard.fromJSON() refuses what is not its state", async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ["null", null, /not an object/],
    ["another version", { version: 2, meters: {} }, /version 2, expected 1/],
    ["no meters", { version: 1 }, /no meters/],
    [
      "an access number out of range",
      { version: 1, meters: { a: { access: 300, clock: 1 } } },
      /meter a: access number 300/,
    ],
    [
      "a clock that is no number",
      { version: 1, meters: { a: { access: 1, clock: "x" } } },
      /meter a: clock "x"/,
    ],
  ];
  for (const [name, json, message] of cases) {
    await t.step(name, () => {
      throws(
        () => AccessGuard.fromJSON(json),
        (e) =>
          e instanceof TypeError && /^Not an OMS replay guard state: /.test(e.message) &&
          message.test(e.message),
      );
    });
  }
});

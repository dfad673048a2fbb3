import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { ParseError } from "../lib/errors.ts";
import { CounterGuard, DEFAULT_MAX_TITLES } from "../lib/dlms/counter.ts";

const LGZ = "4c475a6773700001";
const KFM = "4b464d6750000009";

function throwsReplay(fn: () => unknown, message: string): void {
  throws(fn, (e: unknown) => {
    ok(e instanceof ParseError, `not a ParseError: ${e}`);
    equal(e.layer, "counter");
    equal(e.offset, 0);
    equal(e.message, `${message} (counter, byte 0)`);
    return true;
  });
}

Deno.test("CounterGuard.check() accepts a first sighting and increasing counters", () => {
  const g = new CounterGuard();
  g.check(LGZ, 123);
  g.check(LGZ, 124);
  g.check(LGZ, 1000);
  g.check(LGZ, 0xffffffff);
  equal(g.last(LGZ), 0xffffffff);
});

Deno.test("CounterGuard.check() refuses a repeated counter", () => {
  const g = new CounterGuard();
  g.check(LGZ, 124);
  throwsReplay(
    () => g.check(LGZ, 124),
    `Replayed frame counter: 124 after 124 from system title ${LGZ}: frame dropped`,
  );
});

Deno.test("CounterGuard.check() refuses a step back and keeps the highest counter", () => {
  const g = new CounterGuard();
  g.check(LGZ, 124);
  throwsReplay(
    () => g.check(LGZ, 123),
    `Replayed frame counter: 123 after 124 from system title ${LGZ}: frame dropped`,
  );
  equal(g.last(LGZ), 124, "a refused counter is not remembered");
  g.check(LGZ, 125);
});

Deno.test("CounterGuard.check() keeps each system title independent", () => {
  const g = new CounterGuard();
  g.check(LGZ, 500);
  g.check(KFM, 7);
  g.check(KFM, 8);
  g.check(LGZ, 501);
  throwsReplay(
    () => g.check(KFM, 8),
    `Replayed frame counter: 8 after 8 from system title ${KFM}: frame dropped`,
  );
  equal(g.size, 2);
});

Deno.test("CounterGuard bounds its map, forgetting the least recently seen title", () => {
  const g = new CounterGuard(2);
  g.check("a", 10);
  g.check("b", 10);
  g.check("a", 11); // a is now the most recent
  g.check("c", 10); // evicts b
  equal(g.size, 2);
  equal(g.last("b"), undefined);
  equal(g.last("a"), 11);
  g.check("b", 1); // b is new again: any counter is accepted
  equal(g.last("a"), undefined, "a was the least recent when b came back");
  equal(g.size, 2);
});

Deno.test("CounterGuard keeps at least one title and defaults to a small bound", () => {
  equal(DEFAULT_MAX_TITLES, 16);
  const g = new CounterGuard(0);
  g.check("a", 1);
  equal(g.size, 1);
  throwsReplay(
    () => g.check("a", 1),
    "Replayed frame counter: 1 after 1 from system title a: frame dropped",
  );
  const big = new CounterGuard();
  for (let i = 0; i < 100; i++) big.check(`t${i}`, i);
  equal(big.size, DEFAULT_MAX_TITLES);
});

Deno.test("CounterGuard.toJSON() and fromJSON() carry the counters over a restart", () => {
  const guard = new CounterGuard();
  guard.check("4c475a6772a9a111", 700);
  guard.check("4c475a6772a9a111", 701);
  guard.check("4b464d6750000001", 5);
  const state = JSON.parse(JSON.stringify(guard.toJSON()));
  deepEqual(state, { "4c475a6772a9a111": 701, "4b464d6750000001": 5 });
  const again = CounterGuard.fromJSON(state);
  throws(() => again.check("4c475a6772a9a111", 650), /Replayed frame counter: 650 after 701/);
  throws(() => again.check("4c475a6772a9a111", 701), /Replayed frame counter/);
  again.check("4c475a6772a9a111", 702);
  equal(again.last("4b464d6750000001"), 5);
});

Deno.test("CounterGuard.fromJSON() refuses what is no state and skips damaged entries", () => {
  for (const bad of [null, 3, "x", [1, 2]]) {
    throws(() => CounterGuard.fromJSON(bad), TypeError);
  }
  const guard = CounterGuard.fromJSON({
    "4c475a6772a9a111": 7,
    "not a title": 8,
    "4b464d6750000001": -1,
    "4b464d6750000002": 1.5,
    "4b464d6750000003": "9",
  });
  deepEqual(guard.toJSON(), { "4c475a6772a9a111": 7 });
  const small = CounterGuard.fromJSON(
    Object.fromEntries(
      Array.from({ length: 20 }, (_, i) => [`4c475a67${String(i).padStart(8, "0")}`, i]),
    ),
    4,
  );
  equal(small.size, 4, "the newest titles are kept");
  equal(small.last("4c475a6700000019"), 19);
});

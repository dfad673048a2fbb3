import { fixture } from "./fixtures.ts";
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { fromHex, toHex } from "../lib/bytes.ts";
import { ParseError } from "../lib/errors.ts";
import { type BlockApdu, parseApdu } from "../lib/dlms/apdu.ts";
import { BlockTransfer, DEFAULT_MAX_TRANSFER_BYTES } from "../lib/dlms/transfer.ts";

function fixtureHex(name: string): string {
  return fixture(name).hex;
}

/**
 * The GBT blocks of back-to-back E450 HDLC frames (`7E A0 8B CE FF 03 13 HCS [E6 E7 00]
 * info FCS 7E`), cut by hand: the real framer lives in lib/framing.
 */
function e450Blocks(name: string): BlockApdu[] {
  const wire = fromHex(fixtureHex(name));
  const blocks: BlockApdu[] = [];
  let at = 0;
  while (at < wire.length) {
    const length = ((wire[at + 1]! << 8) | wire[at + 2]!) & 0x7ff;
    const frame = wire.subarray(at + 1, at + 1 + length);
    let info = frame.subarray(8, length - 2); // format 2, address 2+1, control, HCS 2
    if (info[0] === 0xe6) info = info.subarray(3);
    const apdu = parseApdu(info);
    if (apdu.kind !== "block") throw new Error(`expected a block, got ${apdu.kind}`);
    blocks.push(apdu);
    at += length + 2;
  }
  return blocks;
}

function block(blockNumber: number, data: string, last = false): BlockApdu {
  return {
    kind: "block",
    last,
    streaming: true,
    window: 0,
    blockNumber,
    ackedBlock: 0,
    data: fromHex(data),
  };
}

function throwsTransfer(fn: () => unknown, message: string): void {
  throws(fn, (e: unknown) => {
    ok(e instanceof ParseError, `not a ParseError: ${e}`);
    equal(e.layer, "transfer");
    equal(e.message, `${message} (transfer, byte 0)`);
    return true;
  });
}

Deno.test("BlockTransfer reassembles the three E450 blocks into one ciphering APDU", () => {
  const blocks = e450Blocks("austria_landis-gyr-e450_1");
  equal(blocks.length, 3);
  deepEqual(blocks.map((b) => [b.blockNumber, b.last]), [[1, false], [2, false], [3, true]]);
  const t = new BlockTransfer();
  equal(t.pending, false);
  deepEqual(t.push(blocks[0]!), { status: "pending", received: 1 });
  equal(t.pending, true);
  deepEqual(t.push(blocks[1]!), { status: "pending", received: 2 });
  equal(t.received, 2);
  const r = t.push(blocks[2]!);
  if (r.status !== "complete") throw new Error("not complete");
  equal(r.blocks, 3);
  equal(r.apdu.length, 272);
  equal(toHex(r.apdu.subarray(0, 13)), "db084c475a677370b177820103");
  equal(r.apdu.length, 13 + 0x103);
  equal(t.pending, false);
  equal(t.received, 0);
  equal(parseApdu(r.apdu).kind, "ciphered");
});

Deno.test("BlockTransfer keeps the incomplete E450 push (block 1 of 3) pending", () => {
  const blocks = e450Blocks("austria_landis-gyr-e450_4");
  equal(blocks.length, 1);
  const t = new BlockTransfer();
  deepEqual(t.push(blocks[0]!), { status: "pending", received: 1 });
  equal(t.pending, true);
  equal(t.receivedBytes, 0x77);
});

Deno.test("BlockTransfer refuses the last E450 block alone", () => {
  const last = e450Blocks("austria_landis-gyr-e450_1")[2]!;
  throwsTransfer(() => new BlockTransfer().push(last), "Block 3 of a transfer that never started");
});

Deno.test("BlockTransfer restarts at block 1 and counts the abandoned blocks", () => {
  const t = new BlockTransfer();
  t.push(block(1, "aa"));
  t.push(block(2, "bb"));
  equal(t.lastAbandoned, 0);
  deepEqual(t.push(block(1, "01")), { status: "pending", received: 1 });
  equal(t.lastAbandoned, 2);
  deepEqual(t.push(block(2, "02", true)), { status: "complete", apdu: fromHex("0102"), blocks: 2 });
  equal(t.lastAbandoned, 0);
  t.push(block(1, "03"));
  equal(t.lastAbandoned, 0, "block 1 after a completed transfer abandons nothing");
});

Deno.test("BlockTransfer completes a single-block transfer", () => {
  deepEqual(new BlockTransfer().push(block(1, "0f00", true)), {
    status: "complete",
    apdu: fromHex("0f00"),
    blocks: 1,
  });
});

Deno.test("BlockTransfer refuses gaps, duplicates and blocks out of order", async (t) => {
  await t.step("one block missing", () => {
    const tr = new BlockTransfer();
    tr.push(block(1, "aa"));
    tr.push(block(2, "bb"));
    throwsTransfer(() => tr.push(block(4, "dd")), "Block 4 follows block 2: block 3 is missing");
    equal(tr.pending, false, "the partial transfer is dropped");
    throwsTransfer(() => tr.push(block(5, "ee")), "Block 5 of a transfer that never started");
  });
  await t.step("several blocks missing", () => {
    const tr = new BlockTransfer();
    tr.push(block(1, "aa"));
    throwsTransfer(
      () => tr.push(block(5, "ee")),
      "Block 5 follows block 1: blocks 2 to 4 are missing",
    );
  });
  await t.step("a duplicate is dropped and the transfer carries on", () => {
    const tr = new BlockTransfer();
    tr.push(block(1, "aa"));
    tr.push(block(2, "bb"));
    throwsTransfer(() => tr.push(block(2, "bb")), "Block 2 received twice");
    equal(tr.received, 2);
    deepEqual(tr.push(block(3, "cc", true)), {
      status: "complete",
      apdu: fromHex("aabbcc"),
      blocks: 3,
    });
  });
  await t.step("a step back", () => {
    const tr = new BlockTransfer();
    tr.push(block(1, "aa"));
    tr.push(block(2, "bb"));
    tr.push(block(3, "cc"));
    throwsTransfer(() => tr.push(block(2, "bb")), "Block 2 follows block 3: out of order");
    equal(tr.pending, false);
  });
  await t.step("block 0", () => {
    const tr = new BlockTransfer();
    tr.push(block(1, "aa"));
    throwsTransfer(
      () => tr.push(block(0, "00")),
      "Bad block number 0: block numbering starts at 1",
    );
    equal(tr.pending, false);
  });
});

Deno.test("BlockTransfer bounds the reassembled size", async (t) => {
  await t.step("default 64 KiB", () => equal(DEFAULT_MAX_TRANSFER_BYTES, 65536));
  await t.step("refuses the block that crosses the bound and drops the transfer", () => {
    const tr = new BlockTransfer(100);
    tr.push(block(1, "00".repeat(60)));
    throwsTransfer(
      () => tr.push(block(2, "00".repeat(41))),
      "Block transfer too large: 101 bytes after block 2, the limit is 100: damaged block " +
        "numbering or not a push",
    );
    equal(tr.pending, false);
  });
  await t.step("accepts exactly the bound", () => {
    const tr = new BlockTransfer(100);
    tr.push(block(1, "00".repeat(60)));
    const r = tr.push(block(2, "00".repeat(40), true));
    equal(r.status, "complete");
  });
  await t.step("a single oversized block", () => {
    throwsTransfer(
      () => new BlockTransfer(4).push(block(1, "0000000000")),
      "Block transfer too large: 5 bytes after block 1, the limit is 4: damaged block " +
        "numbering or not a push",
    );
  });
});

Deno.test("BlockTransfer.reset() drops a partial transfer", () => {
  const tr = new BlockTransfer();
  tr.push(block(1, "aa"));
  tr.reset();
  equal(tr.pending, false);
  equal(tr.received, 0);
  throwsTransfer(() => tr.push(block(2, "bb")), "Block 2 of a transfer that never started");
});

Deno.test("BlockTransfer copies block data, so a reused frame buffer cannot corrupt it", () => {
  const tr = new BlockTransfer();
  const first = block(1, "aabb");
  tr.push(first);
  first.data.fill(0);
  const r = tr.push(block(2, "cc", true));
  if (r.status !== "complete") throw new Error("not complete");
  equal(toHex(r.apdu), "aabbcc");
});

/**
 * Reassembly of a General Block Transfer (DLMS Green Book §9.4.6.13, IEC 62056-5-3).
 *
 * A meter whose push is larger than one link-layer frame splits the APDU into numbered
 * blocks, each sent as its own general-block-transfer APDU:
 *
 * ```
 *   E0 40 0001 0000 77 <119 bytes>    block 1
 *   E0 40 0002 0000 7A <122 bytes>    block 2
 *   E0 C0 0003 0000 1F <31 bytes>     block 3, last-block bit (0x80) set
 *   ─────────────────────────────────
 *   <272 bytes>                       the whole APDU (for the L+G E450: DB ciphering)
 * ```
 *
 * Push transfers are unconfirmed: there is no retransmission, so a missing block loses the
 * whole APDU. Block 1 always starts a transfer; each further block must be the next number.
 * A duplicate is refused and dropped, but the transfer it interrupted carries on; a gap, a
 * step back or an oversized transfer drops the partial APDU.
 *
 * @module
 */

import { concatBytes } from "../bytes.ts";
import { ParseError } from "../errors.ts";
import type { BlockApdu } from "./apdu.ts";

/** The outcome of adding one block. */
export type TransferResult =
  | { status: "complete"; apdu: Uint8Array; blocks: number }
  | { status: "pending"; received: number };

/** Default bound on a reassembled APDU. Real pushes are below 1 KiB. */
export const DEFAULT_MAX_TRANSFER_BYTES = 65536;

/** Reassembles the blocks of one general block transfer at a time. */
export class BlockTransfer {
  /** Set when the last push() restarted: blocks of the abandoned transfer that were dropped. */
  lastAbandoned = 0;
  readonly #maxBytes: number;
  #parts: Uint8Array[] = [];
  #bytes = 0;
  #lastBlock = 0;

  /** @param maxBytes the largest reassembled APDU accepted */
  constructor(maxBytes = DEFAULT_MAX_TRANSFER_BYTES) {
    this.#maxBytes = maxBytes;
  }

  /** Whether a transfer has started and not completed. */
  get pending(): boolean {
    return this.#parts.length > 0;
  }

  /** Blocks received so far of the pending transfer. */
  get received(): number {
    return this.#parts.length;
  }

  /** Bytes received so far of the pending transfer. */
  get receivedBytes(): number {
    return this.#bytes;
  }

  /** Drops a partial transfer (the pipeline calls it on a silence gap). */
  reset(): void {
    this.#parts = [];
    this.#bytes = 0;
    this.#lastBlock = 0;
  }

  /**
   * Adds one block.
   * @throws {ParseError} (layer "transfer") for a gap, a duplicate, a block out of order,
   *   block N of a transfer that never started, or a transfer larger than the bound
   */
  push(block: BlockApdu): TransferResult {
    this.lastAbandoned = 0;
    const n = block.blockNumber;
    if (n === 0) {
      this.reset();
      throw new ParseError("transfer", 0, "Bad block number 0: block numbering starts at 1");
    }
    if (n === 1) {
      this.lastAbandoned = this.#parts.length;
      this.reset();
    } else if (!this.pending) {
      throw new ParseError("transfer", 0, `Block ${n} of a transfer that never started`);
    } else if (n === this.#lastBlock) {
      throw new ParseError("transfer", 0, `Block ${n} received twice`);
    } else if (n < this.#lastBlock) {
      const last = this.#lastBlock;
      this.reset();
      throw new ParseError("transfer", 0, `Block ${n} follows block ${last}: out of order`);
    } else if (n > this.#lastBlock + 1) {
      const last = this.#lastBlock;
      this.reset();
      const missing = n - last === 2
        ? `block ${last + 1} is`
        : `blocks ${last + 1} to ${n - 1} are`;
      throw new ParseError("transfer", 0, `Block ${n} follows block ${last}: ${missing} missing`);
    }
    if (this.#bytes + block.data.length > this.#maxBytes) {
      const total = this.#bytes + block.data.length;
      this.reset();
      throw new ParseError(
        "transfer",
        0,
        `Block transfer too large: ${total} bytes after block ${n}, the limit is ` +
          `${this.#maxBytes}: damaged block numbering or not a push`,
      );
    }
    // A copy: the block's bytes may be a view into a buffer the framer reuses.
    this.#parts.push(block.data.slice());
    this.#bytes += block.data.length;
    this.#lastBlock = n;
    if (!block.last) return { status: "pending", received: this.#parts.length };
    const apdu = concatBytes(this.#parts);
    const blocks = this.#parts.length;
    this.reset();
    return { status: "complete", apdu, blocks };
  }
}

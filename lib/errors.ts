/**
 * Error types shared by every layer of the protocol stack.
 *
 * Each error names the layer it comes from (the `stage` a failed telegram reports), the
 * byte offset inside that layer's input where it was found, and, in its message, the
 * likely cause. Messages are sentence case: what failed, then detail after a colon.
 *
 * @module
 */

/**
 * The layers of the decoding pipeline, in the order bytes pass through them: every failed
 * telegram names one, and every per-stage count (status, `/metrics`) lists them all.
 */
export const LAYERS = [
  "framing",
  "transfer",
  "apdu",
  "decrypt",
  "counter",
  "axdr",
  "cosem",
  "dsmr",
  "oms",
] as const;

/** One of {@link LAYERS}. */
export type Layer = typeof LAYERS[number];

/** Malformed input: the bytes do not follow the wire format of `layer`. */
export class ParseError extends SyntaxError {
  override name = "ParseError";
  /** The layer whose format was violated. */
  readonly layer: Layer;
  /** Offset of the offending byte, counted from the start of that layer's input. */
  readonly offset: number;

  constructor(layer: Layer, offset: number, message: string) {
    super(`${message} (${layer}, byte ${offset})`);
    this.layer = layer;
    this.offset = offset;
  }
}

/**
 * The input ended in the middle of a structure. Raised by {@link ByteReader} so that
 * length-driven framers can tell "need more bytes" apart from "malformed".
 */
export class TruncatedError extends ParseError {
  override name = "TruncatedError";
  /**
   * Bytes missing past the end of the input at the point it ran out: the input must grow
   * by at least this much before decoding can get further.
   */
  readonly missing: number;

  constructor(layer: Layer, offset: number, message: string, missing = 1) {
    super(layer, offset, message);
    this.missing = missing;
  }
}

/** Decryption or authentication failed; the message lists the likely causes. */
export class DecryptError extends Error {
  override name = "DecryptError";
  readonly layer: Layer = "decrypt";
  readonly offset: number;

  constructor(message: string, offset = 0) {
    super(message);
    this.offset = offset;
  }
}

/** Anything that carries a layer: the errors above, and nothing else. */
export type LayeredError = ParseError | DecryptError;

/** Whether `e` is one of the stack's own errors (as opposed to a bug). */
export function isLayeredError(e: unknown): e is LayeredError {
  return e instanceof ParseError || e instanceof DecryptError;
}
